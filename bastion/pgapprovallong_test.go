package bastion_test

import (
	"os/exec"
	"strings"
	"testing"
	"time"
)

// TestPostgresApprovalOfCutStatement: a statement needing approval whose
// text is too long to show an approver whole is refused, not held: held,
// the approver (bastion requests, approve, the console) was shown its
// first 64 KiB, and the rest, which runs too, could say anything
// ("... WHERE name = 'none' /* 64 KiB of spaces */ OR true").
func TestPostgresApprovalOfCutStatement(t *testing.T) {
	p := newPGEnv(t)
	bobCfg := p.bobConfig(t)
	stmt := "UPDATE secret_keys SET value = 'gone' WHERE name = 'none' /*" + strings.Repeat(" ", 70<<10) + "*/ OR true"
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		cmd := exec.Command(p.pg.Tool(t, "psql"), "-X", "-v", "ON_ERROR_STOP=1", p.dsn(""), "-c", stmt)
		out, err := cmd.CombinedOutput()
		done <- result{out, err}
	}()
	deadline := time.After(50 * time.Second)
	for {
		select {
		case r := <-done:
			if r.err == nil || !strings.Contains(string(r.out), "too long") {
				t.Fatalf("psql: %v\n%s", r.err, r.out)
			}
			if got := p.pg.QueryStrings(t, "shop", "SELECT value FROM secret_keys WHERE name = 'api'"); len(got) != 1 || got[0] != "k-123" {
				t.Fatalf("secret_keys: %v", got)
			}
			return
		case <-deadline:
			t.Fatal("psql neither refused nor ended")
		case <-time.After(300 * time.Millisecond):
		}
		r := p.as(bobCfg, "bastion", "requests", "--json")
		if strings.Contains(r.Stdout, "secret_keys") {
			// What an approver would do with what they are shown.
			id := r.Stdout[strings.Index(r.Stdout, `"id":"`)+6:]
			id = id[:strings.IndexByte(id, '"')]
			p.as(bobCfg, "bastion", "approve", id)
			res := <-done
			got := p.pg.QueryStrings(t, "shop", "SELECT value FROM secret_keys WHERE name = 'api'")
			t.Fatalf("held for approval with the approver shown %d of its %d bytes; approved, it ran (api's value is now %v; psql: %s)",
				len(r.Stdout), len(stmt), got, res.out)
		}
	}
}
