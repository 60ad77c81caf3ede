package pgproxy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/bastionhq/bastion/internal/testenv"
)

// guardSeed adds a role app may switch to (so a role change that got through would
// really happen) to the usual tables.
const guardSeed = seedSQL + `
GRANT priv TO app;
CREATE TABLE victim (id int PRIMARY KEY);
INSERT INTO victim VALUES (1), (2), (3);
GRANT ALL ON victim TO app;
`

// guardKinds are what the guard tests' policy blocks, as a deployment would.
var guardKinds = []string{"drop_table", "truncate", "delete_without_where", "update_without_where",
	KindRoleChange, KindFileRead, KindFileWrite, KindServerProgram, KindRemoteConnection, KindServerAdmin}

func guardJudge(_ context.Context, st Statement) Verdict {
	for _, k := range guardKinds {
		if st.Has(k) {
			return Verdict{Action: Block, Rule: "guard", Message: "statement kind " + k}
		}
	}
	if st.Unknowable != "" {
		return Verdict{Action: Block, Rule: "guard", Message: "cannot be judged: " + st.Unknowable}
	}
	return Verdict{Action: Allow}
}

// TestGuardrailsEndToEnd: statements hidden in bodies, privilege changes through
// functions and the server's files are stopped with the real psql and pgx against a real
// PostgreSQL 15, and ordinary work still runs.
func TestGuardrailsEndToEnd(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app", "other", "priv"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": guardSeed},
	})
	h := startProxy(t, pg, func(c *Config) { c.Judge = guardJudge })
	ctx := context.Background()

	victimIntact := func(t *testing.T) {
		t.Helper()
		if !tableExists(t, pg, "victim") {
			t.Fatal("table victim was dropped")
		}
		if n := countRows(t, pg, "victim"); n != "3" {
			t.Fatalf("victim has %s rows, want 3", n)
		}
	}
	noFunction := func(t *testing.T, name string) {
		t.Helper()
		if got := pg.QueryStrings(t, "shop", fmt.Sprintf("SELECT count(*) FROM pg_proc WHERE proname = '%s'", name)); got[0] != "0" {
			t.Errorf("function %s was created", name)
		}
	}

	// Each bypass, sent whole with psql -c (one Query message) and statement by
	// statement with pgx (the extended protocol): the creating statement is refused,
	// so nothing runs.
	bypasses := []struct {
		name  string
		stmts []string
		fn    string // function that must not exist afterwards
	}{
		{"plpgsql function", []string{"CREATE FUNCTION f1() RETURNS void LANGUAGE plpgsql AS $$BEGIN DROP TABLE victim; END$$", "SELECT f1()"}, "f1"},
		{"sql function", []string{"CREATE FUNCTION f2() RETURNS void LANGUAGE sql AS 'DROP TABLE victim'", "SELECT f2()"}, "f2"},
		{"sql function, BEGIN ATOMIC", []string{"CREATE FUNCTION f3() RETURNS void LANGUAGE sql BEGIN ATOMIC DELETE FROM victim; END", "SELECT f3()"}, "f3"},
		{"procedure with EXECUTE", []string{"CREATE PROCEDURE p4() LANGUAGE plpgsql AS $$BEGIN EXECUTE 'DROP TABLE victim'; END$$", "CALL p4()"}, "p4"},
		{"procedure with EXECUTE built at run time", []string{"CREATE PROCEDURE p5() LANGUAGE plpgsql AS $$BEGIN EXECUTE 'DROP TABLE ' || 'victim'; END$$", "CALL p5()"}, "p5"},
		{"procedure with format()", []string{"CREATE PROCEDURE p6(n text) LANGUAGE plpgsql AS $$BEGIN EXECUTE format('DROP TABLE %I', n); END$$", "CALL p6('victim')"}, "p6"},
		{"trigger function fired by an INSERT", []string{
			"CREATE FUNCTION f7() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN DELETE FROM victim; RETURN NEW; END$$",
			"CREATE TRIGGER tr7 AFTER INSERT ON copied FOR EACH ROW EXECUTE FUNCTION f7()",
			"INSERT INTO copied VALUES (7, 'x')"}, "f7"},
		{"event trigger function", []string{"CREATE FUNCTION f8() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN DROP TABLE victim; END$$"}, "f8"},
		{"create or replace", []string{"CREATE OR REPLACE FUNCTION add_ints(a int, b int) RETURNS int LANGUAGE plpgsql AS $$BEGIN TRUNCATE victim; RETURN a + b; END$$", "SELECT add_ints(1, 2)"}, ""},
		{"rule", []string{"CREATE RULE r10 AS ON INSERT TO copied DO ALSO DELETE FROM victim", "INSERT INTO copied VALUES (10, 'x')"}, ""},
		{"DO block", []string{"DO $$BEGIN DROP TABLE victim; END$$"}, ""},
		{"DO block with EXECUTE", []string{"DO $$BEGIN EXECUTE 'DROP TABLE victim'; END$$"}, ""},
		{"DO block with dynamic EXECUTE", []string{"DO $$DECLARE n text := 'victim'; BEGIN EXECUTE 'DROP TABLE ' || n; END$$"}, ""},
		{"DO block in plpython", []string{"DO LANGUAGE plpython3u $$plpy.execute('DROP TABLE victim')$$"}, ""},
		{"function in another language", []string{"CREATE FUNCTION f15() RETURNS text LANGUAGE internal AS 'pg_read_file_off_len'"}, "f15"},
		{"body within a body", []string{"DO $$BEGIN CREATE FUNCTION f16() RETURNS void LANGUAGE sql AS 'DROP TABLE victim'; PERFORM f16(); END$$"}, "f16"},
	}
	t.Run("bodies", func(t *testing.T) {
		// A benign function of the same name exists: CREATE OR REPLACE must not swap in
		// a harmful body.
		if r := h.psql(t, "", "-c", "CREATE FUNCTION add_ints(a int, b int) RETURNS int LANGUAGE plpgsql AS $$BEGIN RETURN a + b; END$$"); r.err != nil {
			t.Fatalf("benign function: %v\n%s", r.err, r.stderr)
		}
		for _, tc := range bypasses {
			t.Run("psql: "+tc.name, func(t *testing.T) {
				r := h.psql(t, "", "-c", strings.Join(tc.stmts, "; "))
				if r.err == nil || !strings.Contains(r.stderr, "42501") || !strings.Contains(r.stderr, `rule "guard"`) {
					t.Errorf("got %v, stderr %q; want a block by rule guard", r.err, r.stderr)
				}
				victimIntact(t)
				if tc.fn != "" {
					noFunction(t, tc.fn)
				}
			})
			t.Run("pgx: "+tc.name, func(t *testing.T) {
				conn := h.connect(t, "app", "shop", nil)
				_, err := conn.Exec(ctx, tc.stmts[0])
				wantPgError(t, err, "42501", `rule "guard"`)
				for _, s := range tc.stmts[1:] {
					conn.Exec(ctx, s) // fails: what it needs was never created
				}
				victimIntact(t)
				if tc.fn != "" {
					noFunction(t, tc.fn)
				}
			})
		}
		var sum string
		if err := h.connect(t, "app", "shop", nil).QueryRow(ctx, "SELECT add_ints(1, 2)").Scan(&sum); err != nil || sum != "3" {
			t.Errorf("add_ints: got %q, %v; want the benign body still in place", sum, err)
		}
	})

	t.Run("privilege changes and the server's files", func(t *testing.T) {
		for _, sql := range []string{
			"SET ROLE priv",
			"SET \"Role\" = priv",
			"SET SESSION AUTHORIZATION priv",
			"SELECT set_config('role', 'priv', false)",
			"SELECT pg_catalog.set_config('ROLE', 'priv', false)",
			`SELECT "set_config"('role', 'priv', false)`,
			"SELECT set_config(setting_name => 'role', new_value => 'priv', is_local => false)",
			"SELECT set_config(current_user || '', 'priv', false)",
			"UPDATE pg_settings SET setting = 'priv' WHERE name = 'role'",
			"SELECT * FROM pg_hba_file_rules",
			"SELECT * FROM (SELECT set_config('role', 'priv', false)) s",
			"WITH x AS (SELECT set_config('role', 'priv', false)) SELECT * FROM x",
			"VALUES (set_config('role', 'priv', false))",
			"CREATE TABLE d1 (a text DEFAULT set_config('role', 'priv', false))",
			"CREATE FUNCTION f20() RETURNS text LANGUAGE sql AS $$SELECT set_config('role', 'priv', false)$$",
			"DO $$BEGIN PERFORM set_config('role', 'priv', false); END$$",
			"SELECT pg_read_file('/etc/passwd')",
			"SELECT pg_read_binary_file('postgresql.conf')",
			"SELECT pg_ls_dir('.')",
			"SELECT * FROM pg_stat_file('postgresql.conf')",
			"SELECT lo_import('/etc/passwd')",
			"SELECT lo_export(1, '/tmp/x')",
			"SELECT pg_terminate_backend(pg_backend_pid())",
			"SELECT pg_cancel_backend(1)",
			"SELECT pg_reload_conf()",
			"SELECT pg_rotate_logfile()",
			"COPY victim TO PROGRAM 'cat'",
			"COPY victim FROM '/etc/hostname'",
			"COPY victim TO '/tmp/victim'",
			"ALTER SYSTEM SET work_mem = '1GB'",
			"CREATE EXTENSION dblink",
			"LOAD 'plpgsql'",
			"SELECT dblink_exec('dbname=shop', 'DROP TABLE victim')",
		} {
			t.Run(sql, func(t *testing.T) {
				r := h.psql(t, "", "-c", sql)
				if r.err == nil || !strings.Contains(r.stderr, "42501") || !strings.Contains(r.stderr, `rule "guard"`) {
					t.Errorf("got %v, stderr %q; want a block by rule guard", r.err, r.stderr)
				}
			})
		}
		// The same session, after the attempts, is still app.
		conn := h.connect(t, "app", "shop", nil)
		for _, sql := range []string{"SELECT set_config('role', 'priv', false)", "SET ROLE priv"} {
			_, err := conn.Exec(ctx, sql)
			wantPgError(t, err, "42501", `rule "guard"`)
		}
		var user string
		if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&user); err != nil || user != "app" {
			t.Errorf("current_user: got %q, %v; want app", user, err)
		}
		victimIntact(t)
	})

	t.Run("benign work still runs", func(t *testing.T) {
		script := strings.Join([]string{
			"CREATE FUNCTION twice(x int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT x * 2';",
			"CREATE FUNCTION bump() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.name := upper(NEW.name); RETURN NEW; END$$;",
			"CREATE TRIGGER bump BEFORE INSERT ON copied FOR EACH ROW EXECUTE FUNCTION bump();",
			"INSERT INTO copied VALUES (100, 'lower');",
			"UPDATE accounts SET balance = balance + twice(1) WHERE id = 1;",
			"DELETE FROM copied WHERE id = 100 RETURNING name;",
			"DO $$BEGIN RAISE NOTICE 'hello from DO'; END$$;",
			"SET search_path = public, pg_catalog;",
			"SELECT set_config('application_name', 'benign', false);",
			"SELECT current_setting('search_path');",
			"SELECT twice(21);",
		}, "\n")
		r := h.psql(t, script, "-A", "-t")
		if r.err != nil {
			t.Fatalf("psql: %v\n%s", r.err, r.stderr)
		}
		for _, want := range []string{"LOWER", "benign", "public, pg_catalog", "42"} {
			if !strings.Contains(r.stdout, want) {
				t.Errorf("got stdout %q, want %q in it", r.stdout, want)
			}
		}
		if !strings.Contains(r.stderr, "hello from DO") {
			t.Errorf("got stderr %q, want the DO block's notice", r.stderr)
		}
		for _, m := range []string{`\d victim`, `\df`, `\dt`} {
			if r := h.psql(t, "", "-c", m); r.err != nil {
				t.Errorf("%s: %v\n%s", m, r.err, r.stderr)
			}
		}
	})

	victimIntact(t)
}

// TestTsRewriteSQLText: ts_rewrite(query, select) runs the SQL text it is given, which
// the statement's text does not show: unknowable to the guard (blocked here, the server
// never runs it) and to the lineage analysis (masked), while its three-argument form,
// which runs nothing, is an ordinary call.
func TestTsRewriteSQLText(t *testing.T) {
	t.Run("guard", func(t *testing.T) {
		pg := testenv.StartPostgres(t, testenv.PostgresOptions{
			Roles:     []string{"app", "other", "priv"},
			Databases: []string{"shop"},
			SeedSQLIn: map[string]string{"shop": guardSeed},
		})
		h := startProxy(t, pg, func(c *Config) { c.Judge = guardJudge })
		ctx := context.Background()
		conn := h.connect(t, "app", "shop", nil)
		for _, sql := range []string{
			`SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, ''b''::tsquery FROM (SELECT set_config(''role'', ''priv'', false)) s')`,
			`SELECT ts_rewrite('a'::tsquery, 'DELETE FROM victim RETURNING ''a''::tsquery, ''b''::tsquery')`,
		} {
			_, err := conn.Exec(ctx, sql)
			if err == nil || !strings.Contains(err.Error(), `rule "guard"`) {
				t.Errorf("%s: %v; want blocked by guard", sql, err)
			}
		}
		var who string
		if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil || who != "app" {
			t.Errorf("current_user = %q, %v; want app", who, err)
		}
		if n := countRows(t, pg, "victim"); n != "3" {
			t.Errorf("victim has %s rows, want 3", n)
		}
		var got string
		if err := conn.QueryRow(ctx, "SELECT ts_rewrite('a & b'::tsquery, 'a'::tsquery, 'c'::tsquery)::text").Scan(&got); err != nil || !strings.Contains(got, "'c'") {
			t.Errorf("three-argument ts_rewrite: %q, %v", got, err)
		}
	})
	t.Run("masking", func(t *testing.T) {
		pg := testenv.StartPostgres(t, testenv.PostgresOptions{
			Roles:     []string{"app"},
			Databases: []string{"shop"},
			SeedSQLIn: map[string]string{"shop": lineageSeed},
		})
		h := startProxy(t, pg, func(c *Config) {
			c.Judge = allowAll
			c.MaskColumn = nil
			c.Masks = lineageMasks(false)
		})
		r := h.psql(t, "", "-A", "-t", "-c", `SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, quote_literal(string_agg(name, '' ''))::tsquery FROM customers')`)
		if leaksName(r.stdout + r.stderr) {
			t.Errorf("masked names through ts_rewrite: %q %q", r.stdout, r.stderr)
		}
	})
}

// TestApprovalPerExecution: an approval covers one execution. A prepared statement that
// needed approval (pgx's statement cache, SQL PREPARE) asks for every execution, with
// the values bound; one with $n parameters is prepared unasked (AtExecution, as the
// bastion's Judge does), or, with a Judge that asks at Parse, asks again for its first
// execution; a denied execution runs nothing and leaves the session usable.
func TestApprovalPerExecution(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app", "other", "priv"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": guardSeed + "CREATE TABLE v2 (id int); INSERT INTO v2 SELECT generate_series(1,5); GRANT ALL ON v2 TO app;"},
	})
	var mu sync.Mutex
	var asked []Statement
	deny := map[string]bool{} // parameter lists whose execution is denied
	askAtParse := false       // a Judge that does not set AtExecution
	h := startProxy(t, pg, func(c *Config) {
		c.Judge = func(ctx context.Context, st Statement) Verdict {
			if !st.Has("delete") {
				return guardJudge(ctx, st)
			}
			mu.Lock()
			atParse := askAtParse
			mu.Unlock()
			if !atParse && Prepares(st) && HasPlaceholders(st.SQL) {
				return Verdict{Action: Hold, Rule: "deletes-need-approval", AtExecution: true}
			}
			return Verdict{Action: Hold, Rule: "deletes-need-approval", RequestID: "r1",
				Wait: func(ctx context.Context) (Verdict, error) {
					mu.Lock()
					defer mu.Unlock()
					asked = append(asked, st)
					if deny[strings.Join(st.Params, ",")] {
						return Verdict{Action: Block, Rule: "deletes-need-approval", Message: "denied"}, nil
					}
					return Verdict{Action: Allow, Rule: "deletes-need-approval"}, nil
				}}
		}
	})
	approvals := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(asked)
	}
	ctx := context.Background()

	t.Run("pgx statement cache", func(t *testing.T) {
		mu.Lock()
		deny[`'\x00000003' (binary)`] = true // pgx binds an int4 in binary
		mu.Unlock()
		conn := h.connect(t, "app", "shop", nil)
		for _, id := range []int{1, 2, 3} {
			_, err := conn.Exec(ctx, "DELETE FROM victim WHERE id = $1", id)
			if (err != nil) != (id == 3) {
				t.Errorf("DELETE id=%d: %v", id, err)
			}
		}
		if n := approvals(); n != 3 {
			t.Errorf("%d approvals asked for 3 executions, want 3", n)
		}
		if got := pg.QueryStrings(t, "shop", "SELECT string_agg(id::text, ',') FROM victim"); got[0] != "3" {
			t.Errorf("victim ids left: %v, want 3 (its delete was denied)", got)
		}
		mu.Lock()
		last := asked[len(asked)-1]
		mu.Unlock()
		if last.Protocol != "execute" || strings.Join(last.Params, ",") != `'\x00000003' (binary)` || last.SQL != "DELETE FROM victim WHERE id = $1" {
			t.Errorf("execution judged as %q %q %q", last.Protocol, last.SQL, last.Params)
		}
		var one int
		if err := conn.QueryRow(ctx, "SELECT 1").Scan(&one); err != nil || one != 1 {
			t.Errorf("session after a denied execution: %v", err)
		}
	})
	t.Run("extended protocol: pipelines, Close and a new statement of the same name", func(t *testing.T) {
		mu.Lock()
		deny["'2'"] = true
		mu.Unlock()
		before := approvals()
		c := h.raw(t, "app", "shop")
		del := &pgproto3.Parse{Name: "s1", Query: "DELETE FROM v2 WHERE id = $1", ParameterOIDs: []uint32{23}}
		c.send(t, del, &pgproto3.Sync{})
		if got, want := c.untilReady(t), "ParseComplete ReadyForQuery(I)"; got != want {
			t.Fatalf("Parse: got %s, want %s", got, want)
		}
		bind := func(v string) *pgproto3.Bind {
			return &pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte(v)}}
		}
		// Prepared unasked; the first execution asks, with its value.
		if n := approvals() - before; n != 0 {
			t.Errorf("%d approvals at Parse of a statement with parameters, want 0", n)
		}
		c.send(t, &pgproto3.Bind{PreparedStatement: "s1", Parameters: [][]byte{[]byte("4")}}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if got, want := c.untilReady(t), "BindComplete CommandComplete(DELETE 1) ReadyForQuery(I)"; got != want {
			t.Errorf("first execution: got %s, want %s", got, want)
		}
		mu.Lock()
		first := asked[len(asked)-1]
		mu.Unlock()
		if first.Protocol != "execute" || strings.Join(first.Params, ",") != "'4'" {
			t.Errorf("first execution judged as %q with %q, want its value", first.Protocol, first.Params)
		}
		// The second asks again (at its Bind), and is denied: the portal is never created.
		c.send(t, bind("2"), &pgproto3.Execute{}, &pgproto3.Sync{})
		if got, want := c.untilReady(t), "ErrorResponse(42501) ReadyForQuery(I)"; got != want {
			t.Errorf("denied execution: got %s, want %s", got, want)
		}
		if n := approvals() - before; n != 2 {
			t.Errorf("%d approvals, want 2 (first and second execution)", n)
		}
		// Closed and prepared again as a statement that needs no approval: none is asked.
		c.send(t, &pgproto3.Close{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{})
		c.untilReady(t)
		c.send(t, &pgproto3.Parse{Name: "s1", Query: "SELECT $1::int", ParameterOIDs: []uint32{23}}, bind("9"), &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if got, want := c.untilReady(t), "ParseComplete BindComplete RowDescription DataRow CommandComplete(SELECT 1) ReadyForQuery(I)"; got != want {
			t.Errorf("new statement: got %s, want %s", got, want)
		}
		if n := approvals() - before; n != 2 {
			t.Errorf("%d approvals, want still 2", n)
		}
		// Parse, Bind, Execute in one pipeline (libpq's PQexecParams): one approval.
		c.send(t, &pgproto3.Parse{Query: "DELETE FROM v2 WHERE id = $1", ParameterOIDs: []uint32{23}},
			&pgproto3.Bind{Parameters: [][]byte{[]byte("5")}}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if got, want := c.untilReady(t), "ParseComplete BindComplete CommandComplete(DELETE 1) ReadyForQuery(I)"; got != want {
			t.Errorf("pipeline: got %s, want %s", got, want)
		}
		if n := approvals() - before; n != 3 {
			t.Errorf("%d approvals, want 3", n)
		}
		if got := pg.QueryStrings(t, "shop", "SELECT string_agg(id::text, ',' ORDER BY id) FROM v2"); got[0] != "1,2,3" {
			t.Errorf("v2 ids left: %v, want 1,2,3", got)
		}
	})
	t.Run("SQL PREPARE and EXECUTE in one Query", func(t *testing.T) {
		before := approvals()
		r := h.psql(t, "", "-c", "PREPARE d(int) AS DELETE FROM v2 WHERE id = $1; EXECUTE d(1); EXECUTE d(2); EXECUTE d(3); EXECUTE d(4); EXECUTE d(5)")
		if r.err != nil {
			t.Fatalf("%v %s", r.err, r.stderr)
		}
		if n := approvals() - before; n != 5 {
			t.Errorf("%d approvals for PREPARE and 5 EXECUTEs, want 5", n)
		}
	})
	t.Run("SQL EXECUTE in later messages", func(t *testing.T) {
		conn := h.connect(t, "app", "shop", nil)
		if _, err := conn.Exec(ctx, "INSERT INTO v2 VALUES (7), (8)"); err != nil {
			t.Fatal(err)
		}
		before := approvals()
		for _, sql := range []string{"PREPARE d7(int) AS DELETE FROM v2 WHERE id = $1", "EXECUTE d7(7)", "EXECUTE d7(8)"} {
			if _, err := conn.Exec(ctx, sql, pgx.QueryExecModeSimpleProtocol); err != nil {
				t.Fatalf("%s: %v", sql, err)
			}
		}
		if n := approvals() - before; n != 2 {
			t.Errorf("%d approvals for PREPARE and 2 EXECUTEs in separate messages, want 2 (the EXECUTEs)", n)
		}
		mu.Lock()
		last := asked[len(asked)-1]
		mu.Unlock()
		if last.SQL != "EXECUTE d7(8)" || len(last.Body) == 0 || last.Body[0].Protocol != "prepared" || !strings.Contains(last.Body[0].SQL, "DELETE FROM v2") {
			t.Errorf("EXECUTE judged as %q with body %+v", last.SQL, last.Body)
		}
	})
	t.Run("a Judge that asks at Parse: the first execution asks again", func(t *testing.T) {
		mu.Lock()
		askAtParse = true
		mu.Unlock()
		defer func() { mu.Lock(); askAtParse = false; mu.Unlock() }()
		if r := h.psql(t, "", "-c", "INSERT INTO v2 VALUES (11), (12)"); r.err != nil {
			t.Fatalf("%v %s", r.err, r.stderr)
		}
		before := approvals()
		c := h.raw(t, "app", "shop")
		c.send(t, &pgproto3.Parse{Name: "s3", Query: "DELETE FROM v2 WHERE id = $1", ParameterOIDs: []uint32{23}}, &pgproto3.Sync{})
		if got, want := c.untilReady(t), "ParseComplete ReadyForQuery(I)"; got != want {
			t.Fatalf("Parse: got %s, want %s", got, want)
		}
		c.send(t, &pgproto3.Bind{PreparedStatement: "s3", Parameters: [][]byte{[]byte("11")}}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if got, want := c.untilReady(t), "BindComplete CommandComplete(DELETE 1) ReadyForQuery(I)"; got != want {
			t.Errorf("first execution: got %s, want %s", got, want)
		}
		if n := approvals() - before; n != 2 {
			t.Errorf("%d approvals, want 2 (Parse without values, the execution with them)", n)
		}
		before = approvals()
		r := h.psql(t, "", "-c", "PREPARE d12(int) AS DELETE FROM v2 WHERE id = $1; EXECUTE d12(12)")
		if r.err != nil {
			t.Fatalf("%v %s", r.err, r.stderr)
		}
		if n := approvals() - before; n != 2 {
			t.Errorf("%d approvals, want 2 (the PREPARE, the EXECUTE with its value)", n)
		}
	})
}

// TestDropSpellings: spellings of a blocked drop_table (and of deletes without WHERE)
// are blocked, DROP SCHEMA ... CASCADE and DROP OWNED included: they drop tables the
// statement does not name.
func TestDropSpellings(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app", "other", "priv"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": guardSeed + "GRANT CREATE ON DATABASE shop TO app;"},
	})
	h := startProxy(t, pg, func(c *Config) { c.Judge = guardJudge })
	setup := "CREATE TABLE mine (id int); INSERT INTO mine VALUES (1),(2),(3); CREATE SCHEMA s; CREATE TABLE s.inner_t (id int); INSERT INTO s.inner_t VALUES (1)"
	if r := h.psql(t, "", "-c", setup); r.err != nil {
		t.Fatalf("setup: %v %s", r.err, r.stderr)
	}
	for _, sql := range []string{
		`DROP TABLE U&"m\0069ne"`,
		`DROP/**/TABLE/* x */mine`,
		"drop table public.MINE",
		"DROP TABLE IF EXISTS nosuch, mine",
		"TRUNCATE ONLY mine",
		"DELETE FROM mine WHERE true",
		"DELETE FROM ONLY mine",
		"DELETE FROM mine USING mine m2",
		"WITH d AS (DELETE FROM mine RETURNING 1) SELECT count(*) FROM d",
		"COPY (DELETE FROM mine RETURNING *) TO STDOUT",
		"EXPLAIN ANALYZE DELETE FROM mine",
		"PREPARE x AS DELETE FROM mine",
		"SELECT 1; DROP TABLE mine",
		"DROP SCHEMA s CASCADE",
		"DROP OWNED BY CURRENT_USER",
		"DROP OWNED BY app CASCADE",
		"DO $$BEGIN EXECUTE 'DROP SCHEMA s CASCADE'; END$$",
	} {
		r := h.psql(t, "", "-c", sql)
		if !strings.Contains(r.stderr, "42501: bastion: statement blocked") {
			t.Errorf("%s: not blocked: err=%v %q", sql, r.err, r.stderr)
		}
	}
	if !tableExists(t, pg, "mine") || countRows(t, pg, "mine") != "3" {
		t.Error("table mine was dropped or emptied")
	}
	if got := pg.QueryStrings(t, "shop", "SELECT count(*) FROM s.inner_t"); got[0] != "1" {
		t.Error("s.inner_t was dropped")
	}
}
