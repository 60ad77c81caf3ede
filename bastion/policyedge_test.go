package bastion_test

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// reloadWith swaps in the env's config plus rules, as SIGHUP does.
func (e *env) reloadWith(t *testing.T, rules ...config.Rule) error {
	t.Helper()
	cfg := *e.app.Config
	cfg.Rules = append(cfg.Rules[:len(cfg.Rules):len(cfg.Rules)], rules...)
	return e.app.Reload(&cfg)
}

// A reload that adds masking reaches a PostgreSQL connection opened before it:
// a pooled connection must not go on returning what the new rule hides.
func TestReloadMaskingReachesLivePostgres(t *testing.T) {
	testenv.RequirePostgres(t)
	e := newEnv(t, envOptions{extraYAML: "rules:\n  - {name: no-drop, on: sql, match: {statement: drop_table}, action: block}\n", pgTarget: true})
	lport := e.forwardPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app@127.0.0.1:%d/shop?sslmode=disable", lport))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var v string
	if err := c.QueryRow(ctx, "SELECT x FROM t WHERE id = 1").Scan(&v); err != nil || v != "one" {
		t.Fatalf("before the reload: %q %v", v, err)
	}
	if err := e.reloadWith(t,
		config.Rule{Name: "mask-x", On: "sql_result", Action: "mask", Match: config.RuleMatch{Columns: []string{"t.x"}}},
		config.Rule{Name: "cards-now", On: "output", Action: "mask", Match: config.RuleMatch{Detector: "credit_card"}},
	); err != nil {
		t.Fatal(err)
	}
	var card string
	err = c.QueryRow(ctx, "SELECT x, card FROM t, orders WHERE t.id = 1 AND orders.id = 1").Scan(&v, &card)
	if err == nil && (v == "one" || strings.Contains(card, "4111 1111 1111 1111")) {
		t.Fatalf("a connection opened before the reload shows what the new rules mask: x=%q card=%q", v, card)
	}
	if err == nil {
		t.Fatalf("x = %q card = %q: want the connection ended", v, card)
	}
	mustContain(t, "the end of the old connection", err.Error(), "reload changed the masking rules")
	// A new connection masks.
	c2, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app@127.0.0.1:%d/shop?sslmode=disable", lport))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close(context.Background())
	if err := c2.QueryRow(ctx, "SELECT x FROM t WHERE id = 1").Scan(&v); err != nil || v != "********" {
		t.Fatalf("a new connection: %q %v", v, err)
	}

	// A reload that trusts another CA for pg1 (the old one rotated out)
	// ends the connection the old one verified, as a new host key does for
	// ssh; the masks stay as they were.
	cfg := *e.app.Config
	cfg.Rules = append(cfg.Rules[:len(cfg.Rules):len(cfg.Rules)],
		config.Rule{Name: "mask-x", On: "sql_result", Action: "mask", Match: config.RuleMatch{Columns: []string{"t.x"}}},
		config.Rule{Name: "cards-now", On: "output", Action: "mask", Match: config.RuleMatch{Detector: "credit_card"}})
	cfg.Targets = append([]config.Target(nil), cfg.Targets...)
	for i, tg := range cfg.Targets {
		if tg.Name == "pg1" {
			cfg.Targets[i].TLS = &config.TargetTLS{CAFile: pgCAFile(t, e.app.Keys.DBCA.PEM), ServerName: tg.TLS.ServerName}
		}
	}
	if err := e.app.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for c2.QueryRow(ctx, "SELECT x FROM t WHERE id = 1").Scan(&v) == nil {
		if time.Now().After(deadline) {
			t.Fatal("a connection verified by the CA a reload no longer trusts went on")
		}
		time.Sleep(100 * time.Millisecond)
	}
	mustContain(t, "the log", e.logs.String(), "TLS trust changed")
}

// A reload that adds an output mask reaches a shell opened before it.
func TestReloadMaskingReachesLiveShell(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := e.shell(t)
	if err := e.reloadWith(t, config.Rule{Name: "tokens", On: "output", Action: "mask",
		Match: config.RuleMatch{Detector: "regex", Pattern: "ghp_[A-Za-z0-9]{8}"}}); err != nil {
		t.Fatal(err)
	}
	p.Send("echo ghp_''ABCDEFGH; echo card 4111''111111111111; echo done-$((1+1))\r")
	p.Expect("done-2", 20*time.Second)
	if out := p.Output(); strings.Contains(out, "ghp_ABCDEFGH") {
		t.Fatalf("a shell opened before the reload shows what the new rule masks:\n%q", out)
	}
}

// A statement kind no statement is given (a typo) is refused at load, not
// compiled into a rule that matches nothing.
func TestSQLRuleUnknownKindRefused(t *testing.T) {
	e := newEnv(t, envOptions{})
	err := e.reloadWith(t, config.Rule{Name: "no-drop", On: "sql", Action: "block", Match: config.RuleMatch{Statement: "drop_tables"}})
	if err == nil {
		t.Fatal("a rule naming the statement kind drop_tables (no statement has it) was loaded: it would block nothing")
	}
	mustContain(t, "the refusal", err.Error(), `rules[0] (no-drop)`, `"drop_tables"`)
	err = e.reloadWith(t, config.Rule{Name: "no-writes", On: "sql", Action: "block", Match: config.RuleMatch{Statements: []string{"insert", "updat"}}})
	if err == nil || !strings.Contains(err.Error(), `"updat"`) {
		t.Fatalf("statements [insert, updat]: %v", err)
	}
	if err := e.reloadWith(t, config.Rule{Name: "ok", On: "sql", Action: "block", Match: config.RuleMatch{Statements: []string{"drop_table", "checkpoint", "notify", "alter_system", "commit"}}}); err != nil {
		t.Fatalf("real kinds: %v", err)
	}
}

// Rules name tables, functions and targets as people write them: PostgreSQL folds
// unquoted names to lower case, so `tables: [Orders]` means the table a
// `CREATE TABLE Orders` made, and a rule's scope `targets: [PG*]` is not
// silently empty because the target is named pg1.
func TestSQLRuleNamesIgnoreCase(t *testing.T) {
	testenv.RequirePostgres(t)
	e := newEnv(t, envOptions{pgTarget: true, extraYAML: `rules:
  - {name: no-orders-delete, on: sql, match: {statements: [delete], tables: ["Orders"]}, action: block}
  - {name: no-public-t-update, on: sql, match: {statements: [update], tables: ["Public.T"]}, action: block}
  - {name: no-md5, on: sql, match: {functions: ["MD5"]}, action: block}
  - {name: no-marker, on: sql, match: {functions: [pg_backend_pid]}, action: block, targets: ["PG*"]}
`})
	p := &pgEnv{env: e, pg: e.pg, lport: e.forwardPG(t)}
	for _, tc := range []struct{ sql, rule string }{
		{"DELETE FROM orders WHERE id = 3", "no-orders-delete"},
		{"DELETE FROM ORDERS WHERE id = 3", "no-orders-delete"},
		{"UPDATE t SET x = 'y' WHERE id = 2", "no-public-t-update"},
		{"SELECT md5('x')", "no-md5"},
		{"SELECT pg_backend_pid()", "no-marker"},
	} {
		r := p.psql(t, "", "-c", tc.sql)
		if r.Code == 0 || !strings.Contains(r.Stderr, tc.rule) {
			t.Errorf("%q: got %s, want a block by %s", tc.sql, r, tc.rule)
		}
	}
	if got := e.pg.QueryStrings(t, "shop", "SELECT count(*) FROM orders WHERE id = 3"); got[0] != "1" {
		t.Error("the delete ran")
	}
}

// A line that two approval rules hold is decided only by someone both rules
// accept: the requester does not get to pick the laxer rule's approvers by putting
// a command that rule holds first.
func TestApprovalNeedsEveryMatchingRulesApprovers(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: `  - {name: security, groups: [secteam], targets: ["web*"], logins: [root], approve: ["*"]}
rules:
  - {name: lax, on: command, match: {regex: "^touch .*/lax"}, action: approve, approvers: [approvers], timeout: 60s}
  - {name: strict, on: command, match: {regex: "^touch .*/strict"}, action: approve, approvers: [security], timeout: 60s}
`})
	bobCfg := e.bobConfig(t) // group sre: role approvers, not security
	dir := t.TempDir()
	lax, strict := filepath.Join(dir, "lax"), filepath.Join(dir, "strict")
	p := testenv.StartPTY(t, 200, 30, "ssh", "-F", e.cfgPath, "root@web1", "touch "+lax+"; touch "+strict+"; echo ran-both")
	var out string
	for deadline := time.Now().Add(20 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		if out = p.Output(); strings.Contains(out, "Ctrl-C cancels") || strings.Contains(out, "blocked by rule") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("neither held nor blocked: %q", out)
		}
	}
	if m := requestRE.FindStringSubmatch(out); m != nil {
		if r := e.as(bobCfg, "bastion", "approve", m[1]); r.Code == 0 {
			p.Wait(20 * time.Second)
			if exists(strict) {
				t.Fatalf("an approver of rule lax only let through what rule strict holds for security:\n%s", p.Output())
			}
		}
	}
	if code := p.Wait(20 * time.Second); code != 126 {
		t.Errorf("exit %d, want 126", code)
	}
	if exists(strict) || exists(lax) {
		t.Fatalf("ran: %q", p.Output())
	}
	mustContain(t, "the refusal", strings.ReplaceAll(p.Output(), "\r\n", ""), "blocked by rule lax", "rule strict holds it too", "run its commands separately")
	// Alone, each is held for its own approvers (the strict one stays held).
	p2 := testenv.StartPTY(t, 200, 30, "ssh", "-F", e.cfgPath, "root@web1", "touch "+strict)
	out = p2.Expect("Ctrl-C cancels", 20*time.Second)
	mustContain(t, "the strict request", out, "strict")
	m := requestRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no request in %q", out)
	}
	if r := e.as(bobCfg, "bastion", "approve", m[1]); r.Code == 0 {
		t.Fatalf("bob approved a request of rule strict: %s", r)
	}
}

// A reload that withdraws a user's access to a target ends their live sessions
// there: a shell, an ssh -L forward to PostgreSQL and its connection, as a
// new one would be refused. Sessions the new policy still allows run on.
func TestReloadWithdrawingAccessEndsLiveSessions(t *testing.T) {
	testenv.RequirePostgres(t)
	e := newEnv(t, envOptions{pgTarget: true, extraYAML: "rules:\n  - {name: no-drop, on: sql, match: {statement: drop_table}, action: block}\n"})
	lport := e.forwardPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app@127.0.0.1:%d/shop?sslmode=disable", lport))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	var v string
	if err := c.QueryRow(ctx, "SELECT x FROM t WHERE id = 1").Scan(&v); err != nil {
		t.Fatal(err)
	}
	p := e.shell(t)
	kept := testenv.StartPTY(t, 80, 24, "ssh", "-F", e.cfgPath, "root@web1", "sleep 5; echo still-here")
	_, echoPort, _ := net.SplitHostPort(e.echo)
	port, _ := strconv.Atoi(echoPort)
	fwd, err := net.Dial("tcp", e.forwardTo(t, "echo", port))
	if err != nil {
		t.Fatal(err)
	}
	defer fwd.Close()

	// dev keeps web1 but loses pg1; the shell's role is unchanged.
	cfg := *e.app.Config
	cfg.Roles = append([]config.Role(nil), cfg.Roles...)
	cfg.Roles[0].Targets = []string{"web*", "echo"}
	if err := e.app.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	err = c.QueryRow(ctx, "SELECT x FROM t WHERE id = 1").Scan(&v)
	if err == nil {
		t.Fatalf("a PostgreSQL connection went on after a reload withdrew access to pg1: %q", v)
	}
	mustContain(t, "the end", err.Error(), "reload", "pg1")
	p.Send("echo alive-$((1+1))\r")
	p.Expect("alive-2", 20*time.Second)
	kept.Expect("still-here", 20*time.Second)

	// Now web1 goes too.
	cfg.Roles[0].Targets = []string{"echo"}
	if err := e.app.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	p.Expect("reload", 20*time.Second)
	p.Wait(20 * time.Second)
	fwd.SetReadDeadline(time.Now().Add(time.Second))
	if _, err := fwd.Read(make([]byte, 1)); !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the forward to echo, still allowed, ended: %v", err)
	}

	// And the forward to echo.
	cfg.Roles[0].Targets = []string{"nothing"}
	if err := e.app.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	fwd.SetReadDeadline(time.Now().Add(10 * time.Second))
	if _, err := fwd.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatal("a forward went on after a reload withdrew access to its target")
	}
}

// A reload is loud about what it does not do: a refused file is audited, not
// only logged, and settings outside targets, roles and rules that changed (and
// stay as they were until a restart: sql_api.enabled: false does not close the
// SQL API) are named in a warning and in the audit record.
func TestReloadSaysWhatItDidNotApply(t *testing.T) {
	e := newEnv(t, envOptions{})
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("rules: [{name: x, on: nonsense}]\n"), 0o600)
	if err := e.app.ReloadFile(bad); err == nil {
		t.Fatal("a bad file was reloaded")
	}
	cfg := *e.app.Config
	cfg.SQLAPI.Enabled = !cfg.SQLAPI.Enabled
	cfg.Recording.Input = !cfg.Recording.Input
	if err := e.app.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	mustContain(t, "the log", e.logs.String(), "take effect only when the bastion restarts", "recording, sql_api")
	var refused, notApplied bool
	e.app.Store.AuditEvents(time.Time{}, func(ev recorder.AuditEvent) error {
		if ev.Type == "config.reload" && ev.Outcome == "refused" && strings.Contains(ev.Reason, "nonsense") {
			refused = true
		}
		if ev.Type == "config.reload" && ev.Fields["not_applied"] == "recording,sql_api" {
			notApplied = true
		}
		return nil
	})
	if !refused || !notApplied {
		t.Fatalf("audit: refused %v, not applied %v", refused, notApplied)
	}
	// A reload of the policy alone warns of nothing.
	before := strings.Count(e.logs.String(), "take effect only")
	cfg = *e.app.Config
	cfg.Rules = append(cfg.Rules, config.Rule{Name: "x", On: "command", Action: "block", Match: config.RuleMatch{Commands: []string{"x"}}})
	if err := e.app.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	if strings.Count(e.logs.String(), "take effect only") != before {
		t.Fatal("a policy-only reload warned")
	}
}

// A command approved after a reload that now blocks it does not run: the
// approval was given under rules no longer in force.
func TestApprovalAfterTighteningReloadDoesNotRun(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	bobCfg := e.bobConfig(t)
	dir := t.TempDir()
	victim := filepath.Join(dir, "approve-x")
	p := testenv.StartPTY(t, 200, 30, "ssh", "-F", e.cfgPath, "root@web1", "touch "+victim+" && echo ran-it")
	out := p.Expect("Ctrl-C cancels", 20*time.Second)
	m := requestRE.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no request in %q", out)
	}
	if err := e.reloadWith(t, config.Rule{Name: "no-touch", On: "command", Action: "block", Match: config.RuleMatch{Commands: []string{"touch"}}}); err != nil {
		t.Fatal(err)
	}
	if r := e.as(bobCfg, "bastion", "approve", m[1]); r.Code != 0 {
		t.Logf("approve: %s", r)
	}
	code := p.Wait(20 * time.Second)
	if exists(victim) {
		t.Fatalf("an approval given after a reload that blocks the command ran it:\n%s", p.Output())
	}
	if code != 126 {
		t.Errorf("exit %d, want 126", code)
	}
	mustContain(t, "the message", p.Output(), "reloaded")
}

// The same for a statement: approved after a reload that blocks it, it does not run.
func TestSQLApprovalAfterTighteningReloadDoesNotRun(t *testing.T) {
	p := newPGEnv(t)
	bobCfg := p.bobConfig(t)
	p.writeSSHConfig("alice", p.alice)
	pty := testenv.StartPTY(t, 200, 30, p.pg.Tool(t, "psql"), "-X", p.dsn(""))
	pty.Expect("shop=>", 30*time.Second)
	pty.Send("DELETE FROM secret_keys WHERE name = 'api';\r")
	m := requestRE.FindStringSubmatch(pty.Expect("waiting up to", 30*time.Second))
	if m == nil {
		t.Fatal("no request ID in the notice")
	}
	if err := p.reloadWith(t, config.Rule{Name: "no-secret-writes", On: "sql", Action: "block",
		Match: config.RuleMatch{Statements: []string{"delete"}, Tables: []string{"secret*"}}}); err != nil {
		t.Fatal(err)
	}
	if r := p.as(bobCfg, "bastion", "approve", m[1]); r.Code != 0 {
		t.Fatalf("approve: %s", r)
	}
	pty.Expect("no-secret-writes", 30*time.Second)
	pty.Expect("shop=>", 30*time.Second)
	if got := p.pg.QueryStrings(t, "shop", "SELECT count(*) FROM secret_keys"); got[0] != "1" {
		t.Fatalf("the statement ran: %q", pty.Output())
	}
}
