package main

import (
	"context"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// TestCIRunsOwnData: with oidc.workload actor_claim, the runs of one job
// share the workload's issuer and subject (every push to main is
// repo:acme/etl:ref:refs/heads/main) but not the person who triggered them.
// Sessions, replay and export decided by user and issuer alone, so a run
// mallory triggered listed and replayed the recordings of a run carol
// triggered (what it typed and printed), and saw her run's pending
// requests. A run now sees the sessions and requests of runs the same
// person triggered; a recording made before sessions named their actor is
// an auditor's only. One world: real sshd, devidp as the CI issuer, and
// PostgreSQL behind the direct listener for the second finding: a refusal
// there quoted the database name the client sent, a card number included,
// into the audit log unmasked.
func TestCIRunsOwnData(t *testing.T) {
	testenv.RequirePostgres(t)
	cfg := actorWorldConfig(t)
	cfg = strings.Replace(cfg, "{name: etl, groups: [etl], targets: [web1], logins: [root], shell: false}",
		"{name: etl, groups: [etl], targets: [web1], logins: [root], shell: false}\n  - {name: approvers, groups: [dev], targets: [\"web*\"], logins: [root], approve: [\"*\"]}", 1)
	var pg *testenv.Postgres
	w := newWorldConfig(t, cfg, `, postgres: "127.0.0.1:0"`, func(k *ca.Keys) []string {
		var target string
		pg, target = startShopPostgres(t, k)
		return []string{target}
	}, strings.Replace(dbWorldYAML, "rules:\n", "rules:\n  - {name: held, on: command, match: {regex: \"^touch .*/approve\"}, action: approve, approvers: [approvers], timeout: 60s}\n", 1))
	_ = pg

	// run logs a CI run triggered by actor in, and returns it with its ssh config.
	run := func(actor string) (*world, string) {
		t.Helper()
		r := w.another()
		if res := w.ciRunLogin(t, r, actor); res.Code != 0 {
			t.Fatalf("CI login (%s): %s", actor, res)
		}
		res := r.run(nil, "ssh-config")
		if res.Code != 0 {
			t.Fatalf("ssh-config: %s", res)
		}
		sshCfg := filepath.Join(r.home, "ssh_config")
		os.WriteFile(sshCfg, []byte(res.Stdout+"\nHost *\n    BatchMode yes\n"), 0o600)
		return r, sshCfg
	}
	carol, carolSSH := run("carol")
	mallory, _ := run("mallory")
	carol2, _ := run("carol") // another run carol triggered

	// carol's run prints a secret.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "ssh", "-F", carolSSH, "root@web1", "echo carols-secret-$((6*7))").CombinedOutput()
	if err != nil || !strings.Contains(string(out), "carols-secret-42") {
		t.Fatalf("carol's run: %v\n%s", err, out)
	}
	var carolSID string
	testenv.WaitFor(t, 10*time.Second, "carol's session ended", func() bool {
		list, _ := w.app.Store.Sessions(recorder.SessionFilter{User: "ci-etl"})
		for _, s := range list {
			if s.Status != recorder.StatusLive && strings.Contains(s.Command, "carols-secret") {
				carolSID = s.ID
				return true
			}
		}
		return false
	})
	// A recording made before sessions named who triggered a run: the same
	// workload identity, no actor.
	info, err := w.app.Store.Session(carolSID)
	if err != nil {
		t.Fatal(err)
	}
	old, err := w.app.Store.Begin(recorder.SessionInfo{Kind: "exec", User: info.User, Issuer: info.Issuer, Subject: info.Subject,
		Target: "web1", Login: "root", Command: "echo legacy", Start: time.Now()})
	if err != nil {
		t.Fatal(err)
	}
	if err := old.End(recorder.ExitInfo{}); err != nil {
		t.Fatal(err)
	}
	oldSID := old.ID()

	t.Run("the session names its actor", func(t *testing.T) {
		info, _ := w.app.Store.Session(carolSID)
		if info.Actor != "carol" {
			t.Fatalf("session record: actor %q, want carol", info.Actor)
		}
		if r := carol.run(nil, "verify", carolSID); r.Code != 0 {
			t.Fatalf("verify: %s", r)
		}
	})

	t.Run("another person's run sees none of it", func(t *testing.T) {
		if r := mallory.run(nil, "sessions", "--json"); r.Code != 0 || strings.Contains(r.Stdout, carolSID) || strings.Contains(r.Stdout, oldSID) {
			t.Fatalf("mallory's run lists: %s", r)
		}
		for _, args := range [][]string{{"export", carolSID}, {"export", oldSID}, {"verify", carolSID}} {
			if r := mallory.run(nil, args...); r.Code == 0 || strings.Contains(r.Stdout, "carols-secret") || !strings.Contains(r.Stderr, "that you may see") {
				t.Fatalf("mallory's run: %v: %s", args, r)
			}
		}
	})

	t.Run("a run of the same person sees it", func(t *testing.T) {
		r := carol2.run(nil, "sessions", "--json")
		if r.Code != 0 || !strings.Contains(r.Stdout, carolSID) || !strings.Contains(r.Stdout, `"actor":"carol"`) {
			t.Fatalf("carol's other run lists: %s", r)
		}
		if strings.Contains(r.Stdout, oldSID) {
			t.Fatalf("a recording without an actor is listed to a run: %s", r)
		}
		if r := carol2.run(nil, "export", carolSID); r.Code != 0 || !strings.Contains(r.Stdout, "carols-secret-42") {
			t.Fatalf("carol's other run exports: %s", r)
		}
		if r := carol2.run(nil, "export", oldSID); r.Code == 0 {
			t.Fatalf("a recording without an actor is exported to a run: %s", r)
		}
	})

	t.Run("auditors see all", func(t *testing.T) {
		alice := w.another()
		alice.loginAlice(t)
		r := alice.run(nil, "sessions", "--json", "--user", "ci-etl")
		if r.Code != 0 || !strings.Contains(r.Stdout, carolSID) || !strings.Contains(r.Stdout, oldSID) {
			t.Fatalf("auditor lists: %s", r)
		}
		if r := alice.run(nil, "export", oldSID); r.Code != 0 {
			t.Fatalf("auditor exports the old recording: %s", r)
		}
	})

	t.Run("requests", func(t *testing.T) {
		dir := t.TempDir()
		p := testenv.StartPTY(t, 100, 30, "ssh", "-F", carolSSH, "root@web1", "touch "+filepath.Join(dir, "approve-secret-7")+" && echo ran")
		m := heldRE.FindStringSubmatch(p.Expect("Ctrl-C cancels", 20*time.Second))
		if m == nil {
			t.Fatal("no request ID in the hold message")
		}
		if r := mallory.run(nil, "requests", "--json"); r.Code != 0 || strings.Contains(r.Stdout, m[1]) {
			t.Fatalf("mallory's run sees carol's run's request: %s", r)
		}
		if r := carol2.run(nil, "requests", "--json"); r.Code != 0 || !strings.Contains(r.Stdout, m[1]) {
			t.Fatalf("carol's other run does not see her run's request: %s", r)
		}
		p.Send("\x03")
		p.Wait(20 * time.Second)
	})

	t.Run("direct listener refusals masked", func(t *testing.T) {
		r := carol.run(nil, "db", "url", "pg1", "--db", "shop", "--user", "app")
		if r.Code != 0 {
			t.Fatalf("db url: %s", r)
		}
		const card = "4111111111111111"
		for _, db := range []string{card + "/shop", "pg1/" + card, card} {
			u, err := url.Parse(strings.TrimSpace(r.Stdout))
			if err != nil {
				t.Fatal(err)
			}
			u.Path = "/" + db
			cctx, ccancel := context.WithTimeout(context.Background(), 20*time.Second)
			conn, err := pgx.Connect(cctx, u.String())
			ccancel()
			if err == nil {
				conn.Close(context.Background())
				t.Fatalf("dbname %s: connected", db)
			}
		}
		// The SSH door: a forward to a destination that is no target.
		cfgText, _ := os.ReadFile(carolSSH)
		jump := regexp.MustCompile(`ProxyJump (\S+)`).FindStringSubmatch(string(cfgText))
		if jump == nil {
			t.Fatalf("no ProxyJump in the ssh config:\n%s", cfgText)
		}
		fctx, fcancel := context.WithTimeout(context.Background(), 20*time.Second)
		out, err := exec.CommandContext(fctx, "ssh", "-F", carolSSH, "-W", card+":80", jump[1]).CombinedOutput()
		fcancel()
		if err == nil {
			t.Fatalf("a forward to %s: %s", card, out)
		}
		testenv.WaitFor(t, 10*time.Second, "four refusals audited", func() bool {
			n := 0
			w.app.Store.AuditEvents(time.Time{}, func(ev recorder.AuditEvent) error {
				if ev.Outcome == "refused" && (ev.Type == "channel.refuse" || ev.Type == "sql.connect") && ev.Fields["actor"] == "carol" {
					n++
				}
				return nil
			})
			return n >= 4
		})
		w.app.Store.AuditEvents(time.Time{}, func(ev recorder.AuditEvent) error {
			b, _ := json.Marshal(ev)
			if strings.Contains(string(b), card) {
				t.Errorf("an audit record holds the card number: %s", b)
			}
			return nil
		})
	})
}
