package demo

import (
	"encoding/pem"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
)

// syncBuffer is testenv's SyncBuffer with waitFor.
type syncBuffer struct{ testenv.SyncBuffer }

// waitFor waits until the buffer holds want; the deadline only bounds a
// hung test, it is not a performance threshold.
func (s *syncBuffer) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(s.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("got %q, want it to contain %q", s.String(), want)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func pemEncode(b *pem.Block) []byte { return pem.EncodeToMemory(b) }
