package bastion_test

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
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

// TestPostgresApprovalShowsDatabase: one PostgreSQL target serves several
// databases, and a statement's effect depends on which: the approver
// (bastion requests, approve, the console's Request) is shown the
// database the held statement would run in.
func TestPostgresApprovalShowsDatabase(t *testing.T) {
	p := newPGEnv(t)
	bobCfg := p.bobConfig(t)
	done := make(chan []byte, 1)
	go func() {
		out, _ := exec.Command(p.pg.Tool(t, "psql"), "-X", p.dsn(""), "-c", "SELECT value FROM secret_keys").CombinedOutput()
		done <- out
	}()
	var r testenv.Result
	testenv.WaitFor(t, 30*time.Second, "the request", func() bool {
		r = p.as(bobCfg, "bastion", "requests", "--json")
		return strings.Contains(r.Stdout, "secret_keys")
	})
	if !strings.Contains(r.Stdout, `"database":"shop"`) {
		t.Errorf("requests --json: %s", r.Stdout)
	}
	list := p.as(bobCfg, "bastion", "requests")
	if !strings.Contains(list.Stdout, "shop") {
		t.Errorf("requests:\n%s", list.Stdout)
	}
	m := requestRE.FindStringSubmatch(r.Stdout)
	if m == nil {
		m = regexp.MustCompile(`"id":"([0-9a-f]{8})"`).FindStringSubmatch(r.Stdout)
	}
	d := p.as(bobCfg, "bastion", "deny", m[1])
	if !strings.Contains(d.Stdout, "shop") {
		t.Errorf("deny: %s", d)
	}
	<-done
}
