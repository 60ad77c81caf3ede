package pgproxy

import (
	"strings"
	"testing"
)

// TestEndToEnd drives the real psql and pgx through the proxy to a real PostgreSQL 15.
func TestEndToEnd(t *testing.T) {
	pg := startCluster(t)
	h := startProxy(t, pg, nil)

	t.Run("psql select", func(t *testing.T) {
		r := h.psql(t, "", "-A", "-t", "-c", "SELECT name FROM t ORDER BY id")
		if r.err != nil {
			t.Fatalf("psql: %v\n%s", r.err, r.stderr)
		}
		if got, want := strings.TrimSpace(r.stdout), "one\ntwo\nthree"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
	})
	t.Logf("transcript:\n%s", h.transcript.String())
	t.Logf("errors: %v", h.Errors())
}
