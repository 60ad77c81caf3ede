package pgproxy

import (
	"strings"
	"sync"
	"testing"

	"github.com/bastionhq/bastion/internal/testenv"
)

// sqlRulesPolicy is a deployment's table and function rules, compiled by the real
// policy engine.
const sqlRulesPolicy = `
data_dir: /tmp/x
oidc: {issuer: "https://idp", client_id: b}
targets:
  - {name: pg1, kind: postgres, address: "10.0.0.3:5432", password_env: PGPW_UNUSED}
roles:
  - {name: dev, groups: [dev], targets: ["*"], db_users: [app]}
rules:
  - {name: victim, on: sql, match: {statements: [delete, update, truncate, drop_table], tables: ["victim"]}, action: block}
  - {name: term, on: sql, match: {functions: [pg_terminate_backend]}, action: block}
`

// sqlRulesSeed: victim references parent with ON DELETE CASCADE (as real schemas do),
// and app owns victim (as an application's role owns its tables).
const sqlRulesSeed = seedSQL + `
CREATE TABLE parent (id int PRIMARY KEY);
INSERT INTO parent VALUES (1), (2), (3);
CREATE TABLE victim (id int PRIMARY KEY, pid int REFERENCES parent ON DELETE CASCADE);
INSERT INTO victim VALUES (1, 1), (2, 2), (3, 3);
CREATE TABLE loose (id int PRIMARY KEY);
INSERT INTO loose VALUES (1), (2), (3);
CREATE TABLE pinned (id int REFERENCES loose);
GRANT ALL ON ALL TABLES IN SCHEMA public TO app;
ALTER TABLE victim OWNER TO app;
`

func startSQLRules(t *testing.T) (*testenv.Postgres, *harness) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app", "other", "priv"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": sqlRulesSeed},
	})
	var mu sync.Mutex
	var seen []Statement
	h := startProxy(t, pg, func(c *Config) { c.Judge = policyJudge(t, sqlRulesPolicy, &seen, &mu) })
	return pg, h
}

func runRuled(t *testing.T, h *harness, sql string, wantBlocked bool, why string) {
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

// TestFunctionRuleAttributeNotation: (x).f is a call of f(x) for any type of x, so a
// functions rule (and the server_admin kind) must see it (red team:
// "SELECT (pg_backend_pid()).pg_terminate_backend" ran through a rule blocking
// pg_terminate_backend).
func TestFunctionRuleAttributeNotation(t *testing.T) {
	_, h := startSQLRules(t)
	for _, sql := range []string{
		"SELECT (pg_backend_pid()).pg_terminate_backend",
		"SELECT (p).pg_terminate_backend FROM (SELECT pg_backend_pid() AS p) s",
		"SELECT ((pg_backend_pid())).\"pg_terminate_backend\"",
	} {
		r := h.psql(t, "", "-c", sql)
		if r.err == nil || !strings.Contains(r.stderr, "42501") || !strings.Contains(r.stderr, `rule "term"`) {
			t.Errorf("%s: got %v %q; want a block by rule term", sql, r.err, r.stderr)
		}
	}
	runRuled(t, h, "SELECT t.id, (t).name FROM t", false, "columns and fields still read")
}

// TestTableRuleFollowsForeignKeysAndDrops: a table rule also stops what reaches the
// table through a foreign key's ON DELETE CASCADE, TRUNCATE ... CASCADE, and a DROP
// TABLE of a partitioned or inheritance parent it was attached to, in one message or
// after a commit (red team: each of these emptied or dropped victim).
func TestTableRuleFollowsForeignKeysAndDrops(t *testing.T) {
	pg, h := startSQLRules(t)
	rows := func(t *testing.T, want string) {
		t.Helper()
		if !tableExists(t, pg, "victim") {
			t.Fatal("victim was dropped")
		}
		if n := countRows(t, pg, "victim"); n != want {
			t.Fatalf("victim has %s rows, want %s", n, want)
		}
	}
	runRuled(t, h, "DELETE FROM parent WHERE id = 1", true, "ON DELETE CASCADE deletes from victim")
	runRuled(t, h, "DELETE FROM parent", true, "ON DELETE CASCADE, every row")
	runRuled(t, h, "TRUNCATE parent CASCADE", true, "TRUNCATE ... CASCADE truncates victim")
	runRuled(t, h, "WITH d AS (DELETE FROM parent RETURNING id) SELECT count(*) FROM d", true, "in a CTE")
	rows(t, "3")

	// Attaching victim to a parent, or adding a cascading foreign key to it, makes
	// writes and drops of another table reach it, whoever makes them (a function body
	// judged before): a rule on victim listing writes matches it.
	runRuled(t, h, "CREATE TABLE pp (id int, pid int) PARTITION BY RANGE (id); ALTER TABLE pp ATTACH PARTITION victim FOR VALUES FROM (0) TO (100); DROP TABLE pp", true, "attached and dropped in one message")
	runRuled(t, h, "CREATE TABLE pp (id int, pid int) PARTITION BY RANGE (id)", false, "a new table")
	runRuled(t, h, "CREATE FUNCTION later() RETURNS void LANGUAGE sql AS 'TRUNCATE pp'", false, "pp is not victim")
	runRuled(t, h, "ALTER TABLE pp ATTACH PARTITION victim FOR VALUES FROM (0) TO (100)", true, "attaching victim")
	runRuled(t, h, "CREATE TABLE ip (id int, pid int); ALTER TABLE victim INHERIT ip", true, "inheriting")
	runRuled(t, h, "ALTER TABLE victim ADD FOREIGN KEY (pid) REFERENCES loose ON UPDATE SET NULL", true, "a cascading foreign key")
	runRuled(t, h, "ALTER TABLE victim ADD FOREIGN KEY (id) REFERENCES parent", false, "a foreign key that writes nothing")
	runRuled(t, h, "SELECT later()", false, "pp has no partition victim")
	rows(t, "3")
	// Attached where the bastion does not see it (a migration, another tool).
	pg.ExecIn(t, "shop", "ALTER TABLE pp ATTACH PARTITION victim FOR VALUES FROM (0) TO (100)")
	runRuled(t, h, "DROP TABLE pp", true, "dropping a partitioned table drops its partition victim")
	runRuled(t, h, "TRUNCATE pp", true, "truncating the parent truncates victim")
	pg.ExecIn(t, "shop", "ALTER TABLE pp DETACH PARTITION victim; CREATE TABLE ip (id int, pid int); ALTER TABLE victim INHERIT ip; GRANT ALL ON ip TO app")
	runRuled(t, h, "DROP TABLE ip CASCADE", true, "CASCADE drops the child victim")
	rows(t, "3")
	pg.ExecIn(t, "shop", "ALTER TABLE victim NO INHERIT ip")

	// What does not reach victim still runs.
	runRuled(t, h, "DELETE FROM loose WHERE id = 3", false, "a foreign key without a cascading action")
	runRuled(t, h, "TRUNCATE loose, pinned", false, "no CASCADE")
	runRuled(t, h, "DROP TABLE pp", false, "victim is no longer its partition")
	runRuled(t, h, "DROP TABLE IF EXISTS nowhere", false, "nothing to drop")
	rows(t, "3")
}

// TestDropCascadeDropsTables: DROP FUNCTION/COLLATION ... CASCADE drops a table
// partitioned by an expression using it, with its partitions: it is a drop_table whose
// tables are not in the text (red team: DROP FUNCTION pk CASCADE dropped victim, a
// partition of a table partitioned by pk(id), past both a drop_table rule and one
// scoped to victim).
func TestDropCascadeDropsTables(t *testing.T) {
	pg, h := startSQLRules(t)
	for _, sql := range []string{
		"CREATE FUNCTION pk(int) RETURNS int IMMUTABLE LANGUAGE sql AS 'SELECT $1'",
		"CREATE TABLE p2 (id int, pid int) PARTITION BY RANGE (pk(id))",
		"CREATE COLLATION mycoll (locale = 'C')",
		"CREATE TABLE p3 (id text) PARTITION BY RANGE (id COLLATE mycoll)",
	} {
		runRuled(t, h, sql, false, "setting up")
	}
	pg.ExecIn(t, "shop", "ALTER TABLE p2 ATTACH PARTITION victim FOR VALUES FROM (0) TO (100)")
	runRuled(t, h, "DROP FUNCTION pk CASCADE", true, "drops p2 and its partition victim")
	runRuled(t, h, "DROP FUNCTION pk(int) CASCADE", true, "with its signature")
	runRuled(t, h, "DO $$BEGIN DROP FUNCTION pk CASCADE; END$$", true, "in a DO block")
	if !tableExists(t, pg, "victim") {
		t.Fatal("victim was dropped")
	}
	// Without CASCADE it reaches the server, which refuses to drop what p2 depends on.
	if r := h.psql(t, "", "-c", "DROP FUNCTION pk"); !strings.Contains(r.stderr, "2BP01") {
		t.Errorf("DROP FUNCTION pk: %v %q; want the server's 2BP01", r.err, r.stderr)
	}
	sts, err := Classify("DROP COLLATION mycoll CASCADE")
	if err != nil || !sts[0].Has("drop_table") || sts[0].Unknowable == "" {
		t.Errorf("DROP COLLATION ... CASCADE: %+v %v; want drop_table, unknowable", sts, err)
	}
	sts, err = Classify("DROP TRIGGER tr ON t CASCADE")
	if err != nil || sts[0].Has("drop_table") || sts[0].Unknowable != "" {
		t.Errorf("DROP TRIGGER ... CASCADE: %+v %v; nothing depends on a trigger", sts, err)
	}
}

// TestTableRuleRename: renaming a table a rule names, or moving it to another schema,
// matches the rule, whatever statements it lists (red team: ALTER TABLE victim RENAME
// TO x; DELETE FROM x; ALTER TABLE x RENAME TO victim emptied victim past a rule
// blocking deletes on victim).
func TestTableRuleRename(t *testing.T) {
	pg, h := startSQLRules(t)
	runRuled(t, h, "ALTER TABLE victim RENAME TO x", true, "renaming victim")
	runRuled(t, h, "ALTER TABLE IF EXISTS public.victim RENAME TO x; DELETE FROM x", true, "renaming victim, then deleting")
	runRuled(t, h, "ALTER TABLE victim SET SCHEMA s2", true, "moving victim")
	runRuled(t, h, "ALTER INDEX victim RENAME TO x", true, "ALTER INDEX renames a table too")
	runRuled(t, h, "ALTER VIEW IF EXISTS victim RENAME TO x", true, "as a view")
	runRuled(t, h, "DO $$BEGIN ALTER TABLE victim RENAME TO x; END$$", true, "in a DO block")
	if !tableExists(t, pg, "victim") || countRows(t, pg, "victim") != "3" {
		t.Fatal("victim was renamed or emptied")
	}
	runRuled(t, h, "ALTER TABLE victim RENAME COLUMN pid TO parent_id", false, "a column")
	runRuled(t, h, "CREATE TABLE mine (id int); ALTER TABLE mine RENAME TO mine2", false, "another table")
	runRuled(t, h, "ALTER TABLE mine2 RENAME TO victim_old", false, "to a name, not from one")
}

// TestQualifiedTableRule: a rule naming a table with its schema also matches the
// table written without one, which the session's search_path resolves (red team:
// DELETE FROM victim ran past tables: [public.victim]).
func TestQualifiedTableRule(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app", "other", "priv"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": sqlRulesSeed},
	})
	var mu sync.Mutex
	var seen []Statement
	policy := strings.Replace(sqlRulesPolicy, `tables: ["victim"]`, `tables: ["public.victim"]`, 1)
	h := startProxy(t, pg, func(c *Config) { c.Judge = policyJudge(t, policy, &seen, &mu) })
	runRuled(t, h, "DELETE FROM public.victim WHERE id = 1", true, "as the rule writes it")
	runRuled(t, h, "DELETE FROM victim WHERE id = 1", true, "through the search_path")
	runRuled(t, h, "SET search_path = public; TRUNCATE victim", true, "search_path set")
	runRuled(t, h, "DROP TABLE victim", true, "dropped")
	if n := countRows(t, pg, "victim"); n != "3" {
		t.Fatalf("victim has %s rows, want 3", n)
	}
	// Another schema's victim, as written, is not the rule's (the server says it does
	// not exist).
	if r := h.psql(t, "", "-c", "DELETE FROM pg_temp.victim WHERE id = 1"); !strings.Contains(r.stderr, "42P01") {
		t.Errorf("DELETE FROM pg_temp.victim: %v %q; want the server's 42P01", r.err, r.stderr)
	}
}

// TestTableRuleLateBoundBody: a function body judged when x was a table writes
// through x when x later becomes a view of victim (created, or another view renamed to
// x): the bastion does not judge the body again when the function is called, so making
// x such a view is what a rule on victim listing writes matches, when a function body
// names x (red team: CREATE FUNCTION f() ... 'DELETE FROM x'; DROP TABLE x; CREATE
// VIEW x AS SELECT * FROM victim; SELECT f() emptied victim).
func TestTableRuleLateBoundBody(t *testing.T) {
	pg, h := startSQLRules(t)
	runRuled(t, h, "CREATE TABLE x (id int, pid int)", false, "a table")
	runRuled(t, h, "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS 'DELETE FROM x'", false, "x is not victim")
	runRuled(t, h, "DROP TABLE x; CREATE VIEW x AS SELECT * FROM victim", true, "x becomes a view of victim")
	runRuled(t, h, `CREATE RULE "_RETURN" AS ON SELECT TO x DO INSTEAD SELECT * FROM victim`, true, "the table x turned into a view of victim")
	runRuled(t, h, "DROP TABLE x", false, "x dropped")
	runRuled(t, h, "CREATE VIEW vw1 AS SELECT * FROM victim", false, "no body names vw1")
	runRuled(t, h, "CREATE VIEW vw2 AS SELECT * FROM vw1", false, "no body names vw2")
	runRuled(t, h, "ALTER VIEW vw1 RENAME TO x", true, "a view of victim renamed to x")
	runRuled(t, h, "ALTER VIEW vw2 RENAME TO x", true, "a view of a view of victim renamed to x")
	runRuled(t, h, "CREATE VIEW x AS SELECT * FROM t", false, "a view of another table")
	h.psql(t, "", "-c", "SELECT f()")
	if n := countRows(t, pg, "victim"); n != "3" {
		t.Fatalf("victim has %s rows, want 3", n)
	}
}

// TestAlterColumnTypeUsing: ALTER COLUMN ... TYPE ... USING rewrites every row's value:
// it is an update without a WHERE (red team: ALTER TABLE victim ALTER COLUMN pid TYPE
// int USING NULL wiped the column past a rule blocking updates of victim).
func TestAlterColumnTypeUsing(t *testing.T) {
	pg, h := startSQLRules(t)
	runRuled(t, h, "ALTER TABLE victim ALTER COLUMN pid TYPE int USING NULL", true, "every pid set to NULL")
	runRuled(t, h, "ALTER TABLE victim ALTER COLUMN pid TYPE bigint", false, "a plain type change")
	if got := pg.QueryStrings(t, "shop", "SELECT count(*) FROM victim WHERE pid IS NOT NULL"); got[0] != "3" {
		t.Fatalf("victim's pid was rewritten: %v rows keep one", got)
	}
	sts, err := Classify("ALTER TABLE t ALTER COLUMN name TYPE text USING ''")
	if err != nil || !sts[0].Has("update_without_where") {
		t.Errorf("USING: %+v %v; want update_without_where", sts, err)
	}
}

// TestMergeWithoutCondition: MERGE ... ON true WHEN MATCHED THEN DELETE deletes every
// row: it is a delete without a WHERE, as UPDATE is for THEN UPDATE (red team: it
// emptied victim past a delete_without_where rule).
func TestMergeWithoutCondition(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app", "other", "priv"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": sqlRulesSeed},
	})
	var mu sync.Mutex
	var seen []Statement
	policy := sqlRulesPolicy + `  - {name: nowhere, on: sql, match: {statements: [delete_without_where, update_without_where]}, action: block}
`
	h := startProxy(t, pg, func(c *Config) { c.Judge = policyJudge(t, policy, &seen, &mu) })
	runRuled(t, h, "MERGE INTO loose USING (SELECT 1) s ON true WHEN MATCHED THEN DELETE", true, "every row")
	runRuled(t, h, "MERGE INTO loose l USING (SELECT 1) s ON true WHEN MATCHED THEN UPDATE SET id = l.id + 10", true, "every row updated")
	runRuled(t, h, "MERGE INTO loose l USING (SELECT 1 AS k) s ON 1 = 1 WHEN MATCHED AND true THEN DELETE", true, "a condition without a column")
	runRuled(t, h, "MERGE INTO loose l USING (SELECT 3 AS k) s ON l.id = s.k WHEN MATCHED THEN DELETE", false, "joined on a column")
	runRuled(t, h, "MERGE INTO loose l USING (SELECT 1) s ON true WHEN MATCHED AND l.id = 2 THEN DELETE", false, "a condition on a column")
	if n := countRows(t, pg, "loose"); n != "1" {
		t.Fatalf("loose has %s rows, want 1", n)
	}
}
