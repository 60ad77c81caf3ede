package recorder

import (
	"testing"

	"go.uber.org/goleak"
)

// Every Store stops its flusher on Close; no test leaves a goroutine behind.
func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }
