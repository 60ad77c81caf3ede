package pgproxy

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/jackc/pgx/v5"
)

// Regression tests for lineage leaks a red team demonstrated against a real PostgreSQL:
// functions the server calls without a function call in the text, catalog answers that
// went stale under another session, and definitions changed in the session's own open
// transaction (or earlier in the same message), which the side connection cannot see.

// leakHarness starts a cluster seeded with lineageSeed and extra, and the proxy with the
// names masks.
func leakHarness(t *testing.T, extra string, block bool) (*testenv.Postgres, *harness) {
	t.Helper()
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": lineageSeed + extra},
	})
	h := startProxy(t, pg, func(c *Config) {
		c.Judge = allowAll
		c.MaskColumn = nil
		c.Masks = lineageMasks(block)
	})
	return pg, h
}

// through runs sql through the proxy with psql (unaligned, tuples only).
func through(t *testing.T, h *harness, sql string) psqlResult {
	t.Helper()
	r := h.psql(t, "", "-A", "-t", "-c", sql)
	t.Logf("%s\n  err=%v out=%q stderr=%q", sql, r.err, r.stdout, r.stderr)
	return r
}

func mustRun(t *testing.T, h *harness, sql string) {
	t.Helper()
	if r := through(t, h, sql); r.err != nil {
		t.Fatalf("%s: %v %s", sql, r.err, r.stderr)
	}
}

// wantMasked asserts that every output line of r is masked and nothing leaked.
func wantMasked(t *testing.T, r psqlResult) {
	t.Helper()
	if leaksName(r.stdout + r.stderr) {
		t.Fatalf("LEAK: out=%q stderr=%q", r.stdout, r.stderr)
	}
	if r.err != nil {
		t.Fatalf("want masked rows, got an error: %v %s", r.err, r.stderr)
	}
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	for _, l := range lines {
		if l != "********" {
			t.Fatalf("want every value masked, got %q", r.stdout)
		}
	}
}

func wantRefused(t *testing.T, r psqlResult) {
	t.Helper()
	if leaksName(r.stdout + r.stderr) {
		t.Fatalf("LEAK: out=%q stderr=%q", r.stdout, r.stderr)
	}
	if r.err == nil || !strings.Contains(r.stderr, `masking rule "names"`) {
		t.Fatalf("want a refusal by the masking rule, got err=%v out=%q stderr=%q", r.err, r.stdout, r.stderr)
	}
}

func wantOut(t *testing.T, r psqlResult, want string) {
	t.Helper()
	if r.err != nil || r.stdout != want {
		t.Fatalf("want %q, got err=%v out=%q stderr=%q", want, r.err, r.stdout, r.stderr)
	}
}

// TestLineageLeakExplicitHooks: an operator, a cast and attribute notation call a
// function the text does not name; its body reads customers.name.
func TestLineageLeakExplicitHooks(t *testing.T) {
	_, h := leakHarness(t, "", false)
	for _, sql := range []string{
		"CREATE FUNCTION opn(a int, b int) RETURNS text LANGUAGE sql STABLE AS 'SELECT name FROM customers WHERE id = a'",
		"CREATE OPERATOR ### (LEFTARG = int, RIGHTARG = int, FUNCTION = opn)",
		"CREATE FUNCTION opn2(a int, b int) RETURNS text LANGUAGE plpgsql STABLE AS $$BEGIN RETURN (SELECT name FROM customers WHERE id = a); END$$",
		"CREATE OPERATOR #!# (LEFTARG = int, RIGHTARG = int, FUNCTION = opn2)",
		"CREATE TYPE wrap AS (v text)",
		"CREATE FUNCTION towrap(i int) RETURNS wrap LANGUAGE sql STABLE AS 'SELECT ROW(name)::wrap FROM customers WHERE id = i'",
		"CREATE CAST (int AS wrap) WITH FUNCTION towrap(int)",
		"CREATE DOMAIN wrapd AS wrap",
		"CREATE FUNCTION leakname(o orders) RETURNS text LANGUAGE sql STABLE AS 'SELECT name FROM customers WHERE id = o.customer_id'",
		"CREATE FUNCTION leakname2(o orders) RETURNS text LANGUAGE plpgsql STABLE AS $$BEGIN RETURN (SELECT name FROM customers WHERE id = o.customer_id); END$$",
	} {
		mustRun(t, h, sql) // explicit operators and casts are resolved where written: allowed
	}
	for _, q := range []string{
		"SELECT 1 ### 1",
		"SELECT 2 #!# 2",
		"SELECT 1 OPERATOR(public.###) 1",
		"SELECT (1::wrap).v",
		"SELECT (CAST(2 AS wrap)).v",
		"SELECT (1::wrapd).v",
		"SELECT x FROM (SELECT 1 ### 1 AS x) s",
		"SELECT o.leakname FROM orders o",
		"SELECT (o).leakname2 FROM orders o",
		"SELECT orders.leakname FROM orders",
	} {
		t.Run(q, func(t *testing.T) { wantMasked(t, through(t, h, q)) })
	}
	// What reads no masked column stays clear.
	wantOut(t, through(t, h, "SELECT 1 + 1"), "2\n")
	wantOut(t, through(t, h, "SELECT city FROM customers WHERE id = 1"), "London\n")
	wantOut(t, through(t, h, "SELECT o.customer_id FROM orders o WHERE o.id = 10"), "1\n")
}

// TestLineageLeakImplicitHooks: functions the server applies where the text cannot show
// them (an implicit cast, a domain's CHECK) are refused when defined through the bastion,
// and mask everything when defined elsewhere.
func TestLineageLeakImplicitHooks(t *testing.T) {
	pg, h := leakHarness(t, `
CREATE FUNCTION chk_clean(v int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT v > 0';
CREATE DOMAIN dclean AS int CHECK (chk_clean(VALUE));
ALTER FUNCTION chk_clean(int) OWNER TO app;`, false)
	for _, sql := range []string{
		"CREATE FUNCTION chk(v int) RETURNS boolean LANGUAGE plpgsql AS $$BEGIN RAISE NOTICE '%', (SELECT name FROM customers WHERE id = v); RETURN true; END$$",
		"CREATE TYPE wrap2 AS (v text)",
		"CREATE FUNCTION towrap2(i bigint) RETURNS wrap2 LANGUAGE sql STABLE AS 'SELECT ROW(name)::wrap2 FROM customers WHERE id = i'",
		"CREATE FUNCTION show2(w wrap2) RETURNS text LANGUAGE sql IMMUTABLE AS 'SELECT w.v'",
		"CREATE FUNCTION eqleak(a int, b int) RETURNS boolean LANGUAGE sql STABLE AS 'SELECT (SELECT name FROM customers WHERE id = a) IS NOT NULL'",
	} {
		mustRun(t, h, sql)
	}
	wantOut(t, through(t, h, "SELECT 1::dclean"), "1\n")
	// Through the bastion, definitions the server would apply implicitly are refused.
	for _, sql := range []string{
		"CREATE DOMAIN dd AS int CHECK (chk(VALUE))",
		"CREATE CAST (bigint AS wrap2) WITH FUNCTION towrap2(bigint) AS IMPLICIT",
		"CREATE CAST (bigint AS wrap2) WITH FUNCTION towrap2(bigint) AS ASSIGNMENT",
		"CREATE OPERATOR public.= (LEFTARG = int, RIGHTARG = int, FUNCTION = eqleak)",
		"CREATE OR REPLACE FUNCTION chk_clean(v int) RETURNS boolean LANGUAGE sql STABLE AS 'SELECT (SELECT name FROM customers WHERE id = v) IS NOT NULL'",
	} {
		t.Run(sql, func(t *testing.T) { wantRefused(t, through(t, h, sql)) })
	}
	// Defined outside the bastion: whatever the server may apply implicitly taints every
	// result and message, and storing statements are refused.
	pg.ExecIn(t, "shop", `CREATE DOMAIN dd AS int CHECK (chk(VALUE));
CREATE CAST (bigint AS wrap2) WITH FUNCTION towrap2(bigint) AS IMPLICIT;`)
	for _, q := range []string{"SELECT 1::dd", "SELECT show2(1::bigint)", "SELECT city FROM customers WHERE id = 1"} {
		t.Run(q, func(t *testing.T) {
			r := through(t, h, q)
			wantMasked(t, r)
			if strings.Contains(r.stderr, "NOTICE") && !strings.Contains(r.stderr, "withheld") {
				t.Fatalf("a notice was not withheld: %q", r.stderr)
			}
		})
	}
	wantRefused(t, through(t, h, "INSERT INTO staff VALUES (7, 'x')"))
}

// TestLineageLeakStaleCatalog: another session replaces a function and a view the
// session has already analysed; the next statement must see the new definitions.
func TestLineageLeakStaleCatalog(t *testing.T) {
	pg, h := leakHarness(t, "", false)
	ctx := context.Background()
	a := h.connect(t, "app", "shop", nil)
	b := h.connect(t, "app", "shop", nil)
	exec := func(sql string) {
		t.Helper()
		if _, err := b.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	exec("CREATE FUNCTION innocent(i int) RETURNS text LANGUAGE sql STABLE AS 'SELECT city FROM customers WHERE id = i'")
	exec("CREATE VIEW innocent_v AS SELECT id, city AS c FROM customers")
	read := func(q string) string {
		var s string
		if err := a.QueryRow(ctx, q, pgx.QueryExecModeSimpleProtocol).Scan(&s); err != nil {
			return "err: " + err.Error()
		}
		return s
	}
	f, v := read("SELECT innocent(1)"), read("SELECT c FROM innocent_v WHERE id = 1")
	if f != "London" || v != "London" {
		t.Fatalf("before: %q %q, want London", f, v)
	}
	exec("CREATE OR REPLACE FUNCTION innocent(i int) RETURNS text LANGUAGE sql STABLE AS 'SELECT name FROM customers WHERE id = i'")
	exec("CREATE OR REPLACE VIEW innocent_v AS SELECT id, name AS c FROM customers")
	f, v = read("SELECT innocent(1)"), read("SELECT c FROM innocent_v WHERE id = 1")
	if f != "********" || v != "********" {
		t.Fatalf("after another session's replace: %q %q, want masked", f, v)
	}
	// A new function of a cached name, in another schema (which a search_path could
	// put first): every function of the name counts, from the next statement on.
	if got := read("SELECT plus_one(1)::text"); got != "2" {
		t.Fatalf("plus_one before: %q", got)
	}
	pg.ExecIn(t, "shop", "CREATE SCHEMA s2; GRANT USAGE ON SCHEMA s2 TO app")
	exec("SELECT 1") // b's statement: a's cache is a's own
	pg.ExecIn(t, "shop", "CREATE FUNCTION s2.plus_one(i int) RETURNS text LANGUAGE sql STABLE AS 'SELECT name FROM customers WHERE id = i'")
	// Made outside the bastion (a direct connection): seen once revalidateEvery
	// has passed, at the next statement.
	time.Sleep(revalidateEvery + 100*time.Millisecond)
	if got := read("SELECT plus_one(1)::text"); got != "********" {
		t.Fatalf("a new function of a cached name: %q, want masked", got)
	}
}

// TestLineageLeakStalePrepared: a statement prepared (with SQL PREPARE, or with the
// extended protocol by pgx's statement cache) before another session replaces a
// function it calls, or before the session renames one in its open transaction: the
// server analyses it again, and so must the bastion.
func TestLineageLeakStalePrepared(t *testing.T) {
	_, h := leakHarness(t, `
CREATE FUNCTION innocent4(i int) RETURNS text LANGUAGE sql STABLE AS 'SELECT city FROM customers WHERE id = i';
CREATE FUNCTION innocent5(i int) RETURNS text LANGUAGE sql STABLE AS 'SELECT city FROM customers WHERE id = i';
ALTER FUNCTION innocent4(int) OWNER TO app; ALTER FUNCTION innocent5(int) OWNER TO app;
ALTER FUNCTION get_name(int) OWNER TO app;`, false)
	ctx := context.Background()
	a := h.connect(t, "app", "shop", nil)
	b := h.connect(t, "app", "shop", nil)
	simple := func(q string) string {
		var s string
		if err := a.QueryRow(ctx, q, pgx.QueryExecModeSimpleProtocol).Scan(&s); err != nil {
			return "err: " + err.Error()
		}
		return s
	}
	cached := func(q string, arg int) string { // pgx prepares it once, then binds it
		var s string
		if err := a.QueryRow(ctx, q, arg).Scan(&s); err != nil {
			return "err: " + err.Error()
		}
		return s
	}
	if _, err := a.Exec(ctx, "PREPARE p AS SELECT innocent4(1)"); err != nil {
		t.Fatal(err)
	}
	if got, got2 := simple("EXECUTE p"), cached("SELECT innocent4($1)", 1); got != "London" || got2 != "London" {
		t.Fatalf("before: %q %q", got, got2)
	}
	if _, err := b.Exec(ctx, "CREATE OR REPLACE FUNCTION innocent4(i int) RETURNS text LANGUAGE sql STABLE AS 'SELECT name FROM customers WHERE id = i'"); err != nil {
		t.Fatal(err)
	}
	if got, got2 := simple("EXECUTE p"), cached("SELECT innocent4($1)", 1); got != "********" || got2 != "********" {
		t.Fatalf("after another session's replace: %q %q, want masked", got, got2)
	}

	// Renamed in the open transaction, bound again.
	if got := cached("SELECT innocent5($1)", 1); got != "London" {
		t.Fatalf("before: %q", got)
	}
	tx, err := a.Begin(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, sql := range []string{"ALTER FUNCTION innocent5(int) RENAME TO old5", "ALTER FUNCTION get_name(int) RENAME TO innocent5"} {
		if _, err := tx.Exec(ctx, sql); err != nil {
			t.Fatal(err)
		}
	}
	var got string
	if err := tx.QueryRow(ctx, "SELECT innocent5($1)", 1).Scan(&got); err != nil {
		t.Fatal(err)
	}
	if got != "********" {
		t.Fatalf("a prepared statement after a rename in the transaction: %q, want masked", got)
	}
	if err := tx.Rollback(ctx); err != nil {
		t.Fatal(err)
	}
	if got := cached("SELECT innocent5($1)", 1); got != "London" {
		t.Fatalf("after the rollback: %q, want London", got)
	}
}

// TestLineageLeakUncommittedDefinitions: definitions changed in the session's own open
// transaction, or earlier in the same message, are invisible to the side connection.
func TestLineageLeakUncommittedDefinitions(t *testing.T) {
	pg, h := leakHarness(t, `
CREATE FUNCTION innocent2(i int) RETURNS text LANGUAGE sql STABLE AS 'SELECT city FROM customers WHERE id = i';
CREATE VIEW innocent_v2 AS SELECT id, city AS c FROM customers;
CREATE FUNCTION innocent3(i int) RETURNS text LANGUAGE sql STABLE AS 'SELECT city FROM customers WHERE id = i';
ALTER FUNCTION innocent2(int) OWNER TO app; ALTER VIEW innocent_v2 OWNER TO app;
ALTER FUNCTION innocent3(int) OWNER TO app; ALTER FUNCTION get_name(int) OWNER TO app;`, false)
	t.Run("one message", func(t *testing.T) {
		wantMasked(t, through(t, h, "BEGIN; CREATE OR REPLACE FUNCTION innocent2(i int) RETURNS text LANGUAGE sql STABLE AS 'SELECT name FROM customers WHERE id = i'; SELECT innocent2(1); ROLLBACK"))
		wantMasked(t, through(t, h, "BEGIN; CREATE OR REPLACE VIEW innocent_v2 AS SELECT id, name AS c FROM customers; SELECT c FROM innocent_v2 WHERE id = 1; ROLLBACK"))
		wantMasked(t, through(t, h, "BEGIN; ALTER FUNCTION innocent3(int) RENAME TO old3; ALTER FUNCTION get_name(int) RENAME TO innocent3; SELECT innocent3(1); ROLLBACK"))
	})
	t.Run("rename in an open transaction", func(t *testing.T) {
		r := h.psql(t, "BEGIN;\nSELECT innocent3(1);\nALTER FUNCTION innocent3(int) RENAME TO old_innocent3;\nALTER FUNCTION get_name(int) RENAME TO innocent3;\nSELECT innocent3(1);\nROLLBACK;\nSELECT innocent3(1);\n", "-A", "-t")
		// Before the change and after the rollback the committed innocent3 is clear.
		wantOut(t, r, "London\n********\nLondon\n")
	})
	t.Run("rename by a DO block", func(t *testing.T) {
		r := h.psql(t, "BEGIN;\nDO $$BEGIN EXECUTE 'ALTER FUNCTION innocent3(int) RENAME TO old3'; EXECUTE 'ALTER FUNCTION get_name(int) RENAME TO innocent3'; END$$;\nSELECT innocent3(2);\nROLLBACK;\n", "-A", "-t")
		wantMasked(t, r)
	})
	t.Run("a copy in the transaction is refused", func(t *testing.T) {
		before := countRows(t, pg, "staff")
		r := h.psql(t, "BEGIN;\nALTER FUNCTION innocent3(int) RENAME TO old3;\nALTER FUNCTION get_name(int) RENAME TO innocent3;\nINSERT INTO staff SELECT 99, innocent3(1);\nCOMMIT;\n", "-A", "-t")
		wantRefused(t, r)
		if after := countRows(t, pg, "staff"); after != before {
			t.Fatalf("staff: %s rows, was %s", after, before)
		}
	})
	t.Run("committed in one message", func(t *testing.T) {
		// The implicit transaction of one Query: analysed before the renames run.
		wantMasked(t, through(t, h, "ALTER FUNCTION innocent3(int) RENAME TO old3; ALTER FUNCTION get_name(int) RENAME TO innocent3; SELECT innocent3(1)"))
		// Committed now: the side connection sees it.
		wantMasked(t, through(t, h, "SELECT innocent3(2)"))
		wantOut(t, through(t, h, "SELECT old3(1)"), "London\n")
	})
}

// TestLineageLeakPreparedDefinitions: a rename prepared with the extended protocol runs
// at Execute, which the frontend does not tie to its statement: the session is suspect
// while the server holds the statement, and after it is closed until the transaction
// ends.
func TestLineageLeakPreparedDefinitions(t *testing.T) {
	_, h := leakHarness(t, `
CREATE FUNCTION innocent6(i int) RETURNS text LANGUAGE sql STABLE AS 'SELECT city FROM customers WHERE id = i';
ALTER FUNCTION innocent6(int) OWNER TO app; ALTER FUNCTION get_name(int) OWNER TO app;`, false)
	ctx := context.Background()
	a := h.connect(t, "app", "shop", nil)
	pc := a.PgConn()
	read := func() string {
		var s string
		if err := a.QueryRow(ctx, "SELECT innocent6($1)", 1).Scan(&s); err != nil {
			return "err: " + err.Error()
		}
		return s
	}
	if got := read(); got != "London" {
		t.Fatalf("before: %q", got)
	}
	if _, err := a.Exec(ctx, "BEGIN"); err != nil {
		t.Fatal(err)
	}
	for name, sql := range map[string]string{"r1": "ALTER FUNCTION innocent6(int) RENAME TO old6", "r2": "ALTER FUNCTION get_name(int) RENAME TO innocent6"} {
		if _, err := pc.Prepare(ctx, name, sql, nil); err != nil {
			t.Fatal(err)
		}
	}
	if got := read(); got != "********" {
		t.Fatalf("with a prepared rename held: %q, want masked", got)
	}
	for _, name := range []string{"r1", "r2"} {
		if _, err := pc.ExecPrepared(ctx, name, nil, nil, nil).Close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := read(); got != "********" {
		t.Fatalf("after the prepared renames ran: %q, want masked", got)
	}
	for _, name := range []string{"r1", "r2"} {
		if err := pc.Deallocate(ctx, name); err != nil {
			t.Fatal(err)
		}
	}
	if got := read(); got != "********" {
		t.Fatalf("after closing the renames, in the transaction: %q, want masked", got)
	}
	if _, err := a.Exec(ctx, "ROLLBACK"); err != nil {
		t.Fatal(err)
	}
	if got := read(); got != "London" {
		t.Fatalf("after the rollback: %q, want London", got)
	}
}
