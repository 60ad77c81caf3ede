package testenv

import (
	"testing"
	"time"
)

// WaitFor polls cond until it holds, failing the test with what after
// timeout. Tests wait on conditions, never on fixed sleeps: the machines
// that run them are shared and slow by unpredictable amounts.
func WaitFor(t testing.TB, timeout time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for wait := time.Millisecond; !cond(); wait = min(2*wait, 100*time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", timeout, what)
		}
		time.Sleep(wait)
	}
}
