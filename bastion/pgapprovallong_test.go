package bastion_test

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
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
// databases, and a statement's effect depends on which, and on the
// database user it runs as (its privileges, row security): the approver
// (bastion requests, approve, the console's Request) is shown the
// database and the user the held statement would run as.
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
	if !strings.Contains(list.Stdout, "pg1/shop as app") {
		t.Errorf("requests:\n%s", list.Stdout)
	}
	m := requestRE.FindStringSubmatch(r.Stdout)
	if m == nil {
		m = regexp.MustCompile(`"id":"([0-9a-f]{8})"`).FindStringSubmatch(r.Stdout)
	}
	d := p.as(bobCfg, "bastion", "deny", m[1])
	if !strings.Contains(d.Stdout, "pg1/shop as app") {
		t.Errorf("deny: %s", d)
	}
	<-done
}

// TestPostgresApprovalMasksCards: a held statement's request (what `bastion
// requests`, the console, the webhook and the audit log keep and show) is
// masked as the recording is: an INSERT of a card number waits with the
// number in stars, and once approved it runs with the number as sent.
func TestPostgresApprovalMasksCards(t *testing.T) {
	p := newPGEnv(t)
	bobCfg := p.bobConfig(t)
	done := make(chan []byte, 1)
	go func() {
		out, _ := exec.Command(p.pg.Tool(t, "psql"), "-X", p.dsn(""), "-c",
			"INSERT INTO secret_keys VALUES ('card', '4111 1111 1111 1111')").CombinedOutput()
		done <- out
	}()
	var r testenv.Result
	testenv.WaitFor(t, 30*time.Second, "the request", func() bool {
		r = p.as(bobCfg, "bastion", "requests", "--json")
		return strings.Contains(r.Stdout, "secret_keys")
	})
	if strings.Contains(r.Stdout, "4111 1111 1111 1111") || !strings.Contains(r.Stdout, "**** 1111") {
		t.Errorf("the request shows the card number unmasked: %s", r.Stdout)
	}
	m := regexp.MustCompile(`"id":"([0-9a-f]{8})"`).FindStringSubmatch(r.Stdout)
	if m == nil {
		t.Fatalf("no request ID: %s", r.Stdout)
	}
	if a := p.as(bobCfg, "bastion", "approve", m[1]); a.Code != 0 {
		t.Fatalf("approve: %s", a)
	}
	select {
	case out := <-done:
		if !strings.Contains(string(out), "INSERT 0 1") {
			t.Fatalf("the approved INSERT: %s", out)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the approved INSERT did not finish")
	}
	if rows := p.pg.QueryStrings(t, "shop", "SELECT value FROM secret_keys WHERE name = 'card'"); len(rows) != 1 || rows[0] != "4111 1111 1111 1111" {
		t.Errorf("the row holds %q, want the number as sent", rows)
	}
	var audited bool
	p.app.Store.AuditEvents(time.Time{}, func(ev recorder.AuditEvent) error {
		for _, v := range ev.Fields {
			if strings.Contains(v, "4111 1111 1111 1111") {
				t.Errorf("audit %s holds the card number: %v", ev.Type, ev.Fields)
			}
			if strings.Contains(v, "secret_keys") {
				audited = true
			}
		}
		return nil
	})
	if !audited {
		t.Error("no audit record names the statement")
	}
}
