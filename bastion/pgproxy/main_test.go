package pgproxy

import (
	"testing"

	"go.uber.org/goleak"
)

// Every connection's goroutines must be gone when the tests end.
func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}
