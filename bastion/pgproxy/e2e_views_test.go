package pgproxy

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/jackc/pgx/v5"
)

// viewsPolicy is a deployment's table rule, compiled by the real policy engine.
const viewsPolicy = `
data_dir: /tmp/x
oidc: {issuer: "https://idp", client_id: b}
targets:
  - {name: pg1, kind: postgres, address: "10.0.0.3:5432", password_env: PGPW_UNUSED}
roles:
  - {name: dev, groups: [dev], targets: ["*"], db_users: [app]}
rules:
  - {name: no-victim-delete, on: sql, match: {statements: [delete, truncate, drop_table], tables: ["victim"]}, action: block}
`

// policyJudge judges with the real policy engine; anything but allow (an approval
// included) is a block.
func policyJudge(t *testing.T, yaml string, seen *[]Statement, mu *sync.Mutex) func(context.Context, Statement) Verdict {
	t.Helper()
	t.Setenv("PGPW_UNUSED", "x")
	cfg, err := config.Parse([]byte(yaml))
	if err != nil {
		t.Fatal(err)
	}
	pol, err := policy.Compile(cfg.PolicySpec())
	if err != nil {
		t.Fatal(err)
	}
	var conv func(st Statement) policy.Statement
	conv = func(st Statement) policy.Statement {
		ps := policy.Statement{Kinds: st.Kinds, Tables: st.Tables, Functions: st.Functions, Normalized: st.Normalized, Unknowable: st.Unknowable}
		for _, b := range st.Body {
			ps.Body = append(ps.Body, conv(b))
		}
		return ps
	}
	dev := policy.Identity{User: "alice", Groups: []string{"dev"}}
	return func(_ context.Context, st Statement) Verdict {
		mu.Lock()
		*seen = append(*seen, st)
		mu.Unlock()
		d := pol.JudgeSQL(dev, "pg1", conv(st))
		if d.Action == policy.ActionAllow {
			return Verdict{Action: Allow}
		}
		return Verdict{Action: Block, Rule: d.Rule, Message: d.Reason}
	}
}

// TestTableRuleFollowsViews: a rule scoped to a table (statement kinds and tables:, the
// real policy engine) also stops writes that reach the table through an updatable
// view, a view of a view, a view created in the same Query or transaction, a view with
// rewrite rules, and a DO block; reads through the view and writes elsewhere still run
// (red team: DELETE FROM a view of victim emptied victim).
func TestTableRuleFollowsViews(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app", "other", "priv"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": guardSeed},
	})
	var mu sync.Mutex
	var seen []Statement
	judge := policyJudge(t, viewsPolicy, &seen, &mu)
	h := startProxy(t, pg, func(c *Config) { c.Judge = judge })

	run := func(t *testing.T, sql string, wantBlocked bool, why string) {
		t.Helper()
		r := h.psql(t, "", "-c", sql)
		blocked := r.err != nil && strings.Contains(r.stderr, "bastion: statement blocked")
		switch {
		case wantBlocked && !blocked:
			t.Errorf("%s: not blocked (%s): err=%v %q", sql, why, r.err, r.stderr)
		case !wantBlocked && r.err != nil:
			t.Errorf("%s: failed (%s): %v %q", sql, why, r.err, r.stderr)
		}
	}
	rows := func(t *testing.T, want string) {
		t.Helper()
		if n := countRows(t, pg, "victim"); n != want {
			t.Fatalf("victim has %s rows, want %s", n, want)
		}
	}

	run(t, "DELETE FROM victim WHERE id = 1", true, "the table itself")
	run(t, "CREATE VIEW vv AS SELECT * FROM victim", false, "creating a view is not a delete")
	run(t, "DELETE FROM vv WHERE id = 1", true, "a view of victim")
	run(t, "DELETE FROM vv", true, "a view of victim, no WHERE")
	run(t, "DELETE FROM public.vv", true, "schema-qualified")
	run(t, "WITH d AS (DELETE FROM vv RETURNING id) SELECT count(*) FROM d", true, "a CTE")
	run(t, "DO $$ BEGIN DELETE FROM vv WHERE id = 2; END $$", true, "a DO block")
	rows(t, "3")

	run(t, "CREATE VIEW vvv AS SELECT id FROM vv WHERE id > 0", false, "a view of a view")
	run(t, "DELETE FROM vvv WHERE id = 3", true, "a view of a view of victim")
	rows(t, "3")

	// Created and written in one Query: the catalog cannot show the new view yet.
	run(t, "CREATE VIEW v1 AS SELECT * FROM victim; DELETE FROM v1", true, "created in the same Query")
	if tableExists(t, pg, "v1") {
		t.Error("v1 was created: the refused Query ran in part")
	}
	// ... or in an open transaction, over several Queries.
	r := h.psql(t, "BEGIN;\nCREATE VIEW v2 AS SELECT * FROM victim;\nDELETE FROM v2;\nCOMMIT;\n")
	if r.err == nil || !strings.Contains(r.stderr, "bastion: statement blocked") {
		t.Errorf("a view created and written in one transaction: not blocked: %v %q", r.err, r.stderr)
	}
	// A temporary view shadowing a table of the same name in the same transaction.
	r = h.psql(t, "BEGIN;\nCREATE TABLE shadow (id int);\nCOMMIT;\nBEGIN;\nCREATE TEMP VIEW shadow AS SELECT * FROM victim;\nDELETE FROM shadow;\nCOMMIT;\n")
	if r.err == nil || !strings.Contains(r.stderr, "bastion: statement blocked") {
		t.Errorf("a temporary view shadowing a table: not blocked: %v %q", r.err, r.stderr)
	}
	rows(t, "3")

	// A view with a rewrite rule writes where the rule says: unknowable.
	pg.ExecIn(t, "shop", `CREATE TABLE harmless (id int);
CREATE VIEW ruled AS SELECT * FROM harmless;
CREATE RULE ruled_del AS ON DELETE TO ruled DO INSTEAD DELETE FROM victim;
GRANT ALL ON harmless, ruled TO app;`)
	run(t, "DELETE FROM ruled WHERE id = 1", true, "a view with an INSTEAD rule")
	// ... and so does one with INSTEAD OF triggers.
	pg.ExecIn(t, "shop", `CREATE VIEW trig AS SELECT * FROM harmless;
CREATE FUNCTION trig_del() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN DELETE FROM victim; RETURN OLD; END$$;
CREATE TRIGGER trig_del INSTEAD OF DELETE ON trig FOR EACH ROW EXECUTE FUNCTION trig_del();
INSERT INTO harmless VALUES (1);
GRANT ALL ON trig TO app;`)
	run(t, "DELETE FROM trig WHERE id = 1", true, "a view with an INSTEAD OF trigger")
	rows(t, "3")

	// Reads through the view, and writes elsewhere, still run.
	if r := h.psql(t, "", "-At", "-c", "SELECT count(*) FROM vv"); r.err != nil || strings.TrimSpace(r.stdout) != "3" {
		t.Errorf("read through the view: %v %q %q", r.err, r.stdout, r.stderr)
	}
	run(t, "DELETE FROM t WHERE id = 1", false, "an unrelated table")
	run(t, "CREATE VIEW tv AS SELECT * FROM t", false, "a view of an unrelated table")
	run(t, "DELETE FROM tv WHERE id = 2", false, "a view of an unrelated table")
	run(t, "INSERT INTO vv VALUES (4)", false, "an insert is not a delete")
	run(t, "BEGIN; CREATE TEMP TABLE scratch (id int); INSERT INTO scratch VALUES (1); DELETE FROM scratch; COMMIT", false, "a table created in the same Query")
	if n := countRows(t, pg, "t"); n != "1" {
		t.Errorf("t has %s rows, want 1", n)
	}
	rows(t, "4")

	// The judged statement names the base table, schema-qualified.
	mu.Lock()
	defer mu.Unlock()
	for _, st := range seen {
		if st.SQL == "DELETE FROM vvv WHERE id = 3" && (!contains(st.Tables, "public.victim") || !contains(st.Tables, "public.vv")) {
			t.Errorf("DELETE FROM vvv judged with tables %v, want public.vv and public.victim too", st.Tables)
		}
	}
}

// TestTableRuleFollowsViewsExtended: the extended protocol (pgx) gets the same.
func TestTableRuleFollowsViewsExtended(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app", "other", "priv"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": guardSeed + "CREATE VIEW vv AS SELECT * FROM victim; GRANT ALL ON vv TO app;"},
	})
	var mu sync.Mutex
	var seen []Statement
	h := startProxy(t, pg, func(c *Config) { c.Judge = policyJudge(t, viewsPolicy, &seen, &mu) })
	ctx := context.Background()
	conn := h.connect(t, "app", "shop", nil)
	if _, err := conn.Exec(ctx, "DELETE FROM vv WHERE id = $1", 1); err == nil || !strings.Contains(err.Error(), "no-victim-delete") {
		t.Errorf("DELETE through a view, extended protocol: %v", err)
	}
	tx, err := conn.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "CREATE VIEW v3 AS SELECT * FROM victim"); err != nil {
		t.Fatal(err)
	}
	if _, err := tx.Exec(ctx, "DELETE FROM v3 WHERE id = $1", 2); err == nil || !strings.Contains(err.Error(), "bastion: statement blocked") {
		t.Errorf("DELETE through a view created in the transaction, extended protocol: %v", err)
	}
	_ = tx.Rollback(ctx)

	// A pipeline: the view is created and written before a Sync.
	b := &pgx.Batch{}
	b.Queue("CREATE VIEW v4 AS SELECT * FROM victim")
	b.Queue("DELETE FROM v4 WHERE id = $1", 3)
	if err := conn.SendBatch(ctx, b).Close(); err == nil || !strings.Contains(err.Error(), "bastion: statement") {
		t.Errorf("a view created and written in one pipeline: %v", err)
	}

	// A write prepared while its name was a table, executed after the session made
	// the name a view: the server analyses it again, so it is judged again.
	if _, err := conn.Exec(ctx, "CREATE TABLE swap (id int)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Prepare(ctx, "p1", "DELETE FROM swap WHERE id = $1"); err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{"DROP TABLE swap", "CREATE VIEW swap AS SELECT * FROM victim"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	if _, err := conn.Exec(ctx, "p1", 1); err == nil || !strings.Contains(err.Error(), "no-victim-delete") {
		t.Errorf("a write prepared before its name became a view: %v", err)
	}
	// One prepared before view DDL that still writes elsewhere runs (judged again).
	if _, err := conn.Prepare(ctx, "p0", "DELETE FROM t WHERE id = $1"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "CREATE VIEW v5 AS SELECT * FROM t"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.Exec(ctx, "p0", 3); err != nil {
		t.Errorf("a write to t prepared before view DDL: %v", err)
	}
	// ... and with SQL PREPARE and EXECUTE.
	r := h.psql(t, "CREATE TABLE swap2 (id int);\nPREPARE p2(int) AS DELETE FROM swap2 WHERE id = $1;\n"+
		"DROP TABLE swap2;\nCREATE VIEW swap2 AS SELECT * FROM victim;\nEXECUTE p2(2);\n")
	if r.err == nil || !strings.Contains(r.stderr, "bastion: statement blocked") {
		t.Errorf("SQL EXECUTE of a write prepared before its name became a view: %v %q", r.err, r.stderr)
	}
	// A write to a parent writes its partitions and inheritance children.
	pg.ExecIn(t, "shop", "CREATE TABLE anc (id int); ALTER TABLE victim INHERIT anc; GRANT ALL ON anc TO app; CREATE VIEW ancv AS SELECT * FROM anc; GRANT ALL ON ancv TO app")
	for _, sql := range []string{"DELETE FROM anc WHERE id = 1", "DELETE FROM ancv WHERE id = 1"} {
		if _, err := conn.Exec(ctx, sql); err == nil || !strings.Contains(err.Error(), "no-victim-delete") {
			t.Errorf("%s (victim inherits anc): %v", sql, err)
		}
	}

	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM vv").Scan(&n); err != nil || n != 3 {
		t.Errorf("read through the view: %d %v", n, err)
	}
	if got := countRows(t, pg, "victim"); got != "3" {
		t.Errorf("victim has %s rows, want 3", got)
	}
}
