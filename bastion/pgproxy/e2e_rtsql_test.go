package pgproxy

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/bastionhq/bastion/internal/testenv"
)

// Red-team regressions (rt-sql): ways past statement rules and column masks found with
// the real psql against a real PostgreSQL.

// TestTablefuncRunsSQLText: tablefunc (a contrib extension marked trusted, so any role
// with CREATE on the database may install it, and often already installed) runs SQL it
// is given as text: crosstab's source and category queries, and connectby's table and
// column names, which it pastes into a query. Neither a functions rule nor a column mask
// may take the string for a constant.
func TestTablefuncRunsSQLText(t *testing.T) {
	const ext = "CREATE EXTENSION tablefunc;\n"
	t.Run("rules", func(t *testing.T) {
		pg := testenv.StartPostgres(t, testenv.PostgresOptions{
			Roles:     []string{"app", "other", "priv"},
			Databases: []string{"shop"},
			SeedSQLIn: map[string]string{"shop": sqlRulesSeed + ext},
		})
		var mu sync.Mutex
		var seen []Statement
		h := startProxy(t, pg, func(c *Config) { c.Judge = policyJudge(t, sqlRulesPolicy, &seen, &mu) })
		for _, sql := range []string{
			"SELECT * FROM crosstab('SELECT ''a''::text, ''b''::text, pg_terminate_backend(pg_backend_pid())::text') AS ct(r text, c text)",
			"SELECT * FROM crosstab('SELECT ''a''::text, ''b''::text, ''c''::text', 'SELECT pg_terminate_backend(pg_backend_pid())::text') AS ct(r text, c text)",
			"SELECT * FROM connectby('t', 'id::text', 'pg_terminate_backend(pg_backend_pid())::text', '1', 0) AS ct(k text, p text, l int)",
		} {
			r := h.psql(t, "", "-c", sql)
			if strings.Contains(r.stderr, "terminating connection") || r.err == nil || !strings.Contains(r.stderr, "cannot be judged") {
				t.Errorf("%s ran pg_terminate_backend past rule term: err=%v stderr=%q", sql, r.err, r.stderr)
			}
		}
	})
	t.Run("masks", func(t *testing.T) {
		_, h := leakHarness(t, ext, false)
		for _, q := range []string{
			"SELECT r FROM crosstab('SELECT name, ''k''::text, city FROM customers ORDER BY 1') AS ct(r text, c text)",
			"SELECT c FROM crosstab('SELECT ''r''::text, ''k''::text, name FROM customers ORDER BY 1') AS ct(r text, c text)",
			"SELECT k FROM connectby('customers', 'name', 'city', 'Ada Lovelace', 0) AS ct(k text, p text, l int)",
		} {
			r := through(t, h, q)
			if leaksName(r.stdout + r.stderr) {
				t.Errorf("LEAK: %s: out=%q stderr=%q", q, r.stdout, r.stderr)
			}
		}
	})
}

// TestPlpgsqlRecordDefault: a PL/pgSQL variable of a composite type or record is a
// PLpgSQL_rec, and pg_query's PL/pgSQL JSON leaves out its default expression, which
// the server evaluates when the block is entered. What it calls and reads must be
// judged like any other expression of the body.
func TestPlpgsqlRecordDefault(t *testing.T) {
	t.Run("rules", func(t *testing.T) {
		_, h := startSQLRules(t)
		for _, sql := range []string{
			"DO $$DECLARE r t := ROW(1, pg_terminate_backend(pg_backend_pid())::text); BEGIN END$$",
			"DO $$DECLARE r record := ROW(pg_terminate_backend(pg_backend_pid())); BEGIN END$$",
			"CREATE FUNCTION rdef() RETURNS int LANGUAGE plpgsql AS $$DECLARE r t := ROW(1, pg_terminate_backend(pg_backend_pid())::text); BEGIN RETURN 1; END$$",
		} {
			r := h.psql(t, "", "-c", sql)
			if r.err == nil || !strings.Contains(r.stderr, `rule "term"`) {
				t.Errorf("%s: want a block by rule term, got err=%v stderr=%q", sql, r.err, r.stderr)
			}
		}
		r := h.psql(t, "", "-c", "SELECT rdef()")
		if strings.Contains(r.stderr, "terminating connection") {
			t.Errorf("rdef() ran pg_terminate_backend past rule term: %q", r.stderr)
		}
	})
	t.Run("masks", func(t *testing.T) {
		_, h := leakHarness(t, "", false)
		for _, q := range []string{
			"DO $$DECLARE r customers := (SELECT c FROM customers c WHERE id = 1); BEGIN RAISE NOTICE '%', r; END$$",
			"DO $$DECLARE r record := ROW((SELECT name FROM customers WHERE id = 1)); BEGIN RAISE NOTICE '%', r; END$$",
		} {
			r := through(t, h, q)
			if leaksName(r.stdout + r.stderr) {
				t.Errorf("LEAK: %s: out=%q stderr=%q", q, r.stdout, r.stderr)
			}
		}
	})
}

// TestFastpathMessagesUnderColumnMasks: a fastpath call's result is sent as NULL under
// column masks (its lineage is unknown); its errors and notices carry values as well.
func TestFastpathMessagesUnderColumnMasks(t *testing.T) {
	pg, h := leakHarness(t, `
CREATE FUNCTION leak_raise(i int) RETURNS int LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'v=%', (SELECT name FROM customers WHERE id = i); END$$;
CREATE FUNCTION leak_notice(i int) RETURNS int LANGUAGE plpgsql AS $$BEGIN RAISE NOTICE 'v=%', (SELECT name FROM customers WHERE id = i); RETURN 1; END$$;
`, false)
	for _, fn := range []string{"leak_raise", "leak_notice"} {
		var oid uint32
		fmt.Sscan(pg.QueryStrings(t, "shop", "SELECT '"+fn+"'::regproc::oid")[0], &oid)
		c := h.raw(t, "app", "shop")
		c.send(t, &pgproto3.FunctionCall{Function: oid, ArgFormatCodes: []uint16{0}, Arguments: [][]byte{[]byte("1")}, ResultFormatCode: 0})
		c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		var seen []string
		for done := false; !done; {
			m, err := c.fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			switch m := m.(type) {
			case *pgproto3.ErrorResponse:
				seen = append(seen, "E:"+m.Message+"|"+m.Detail+"|"+m.Where)
			case *pgproto3.NoticeResponse:
				seen = append(seen, "N:"+m.Message+"|"+m.Detail+"|"+m.Where)
			case *pgproto3.FunctionCallResponse:
				seen = append(seen, fmt.Sprintf("V:%q", m.Result))
			case *pgproto3.ReadyForQuery:
				done = true
			}
		}
		t.Logf("%s: %q", fn, seen)
		if leaksName(strings.Join(seen, "\n")) {
			t.Errorf("LEAK through fastpath %s: %q", fn, seen)
		}
	}
}

// TestErrorsCarryingMaskedValues: PostgreSQL quotes a value it cannot convert in its
// error message; the error of any statement that evaluates a masked column's value,
// wherever and whenever the evaluation happens, must not reach the client.
func TestErrorsCarryingMaskedValues(t *testing.T) {
	_, h := leakHarness(t, "CREATE PROCEDURE takes_int(i int) LANGUAGE sql AS 'SELECT 1';\n", false)
	for _, q := range []string{
		"SELECT 1 FROM customers WHERE name::int = 1",
		"SELECT 1 FROM customers ORDER BY name::int",
		"SELECT 1 FROM staff s JOIN customers c ON c.name::int = s.id",
		"SELECT 1 FROM cust_view WHERE who::int = 1",
		"SELECT 1 WHERE EXISTS (SELECT 1 FROM customers WHERE name::int = 1)",
		"SELECT current_setting(name) FROM customers",
		"PREPARE p AS SELECT $1::int; EXECUTE p((SELECT name FROM customers LIMIT 1))",
		"CALL takes_int((SELECT name FROM customers LIMIT 1)::int)",
		"BEGIN; DECLARE c CURSOR FOR SELECT name::int FROM customers; FETCH c",
		"BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT name::int FROM customers; COMMIT",
		"BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT name::int FROM customers; END",
		"BEGIN; DECLARE c CURSOR WITH HOLD FOR SELECT name::int FROM customers; COMMIT AND CHAIN",
		"DECLARE c CURSOR WITH HOLD FOR SELECT name::int FROM customers; SELECT 1",
		"DECLARE c CURSOR WITH HOLD FOR SELECT name::int FROM customers",
		"PREPARE q AS SELECT name::int FROM customers; EXECUTE q",
		"SELECT 1 FROM customers LIMIT (SELECT name FROM customers LIMIT 1)::int",
		"VALUES ((SELECT name FROM customers LIMIT 1)::int)",
		"SELECT 1 FROM customers c WHERE c::text::int = 1",
		"SELECT jsonb_path_query('{}', ('$.' || (SELECT name FROM customers LIMIT 1))::jsonpath)",
		"SELECT format('%s %s', name) FROM customers",
		"SELECT pg_advisory_lock(1) FROM customers WHERE name::int = 1",
	} {
		r := through(t, h, q)
		if leaksName(r.stdout + r.stderr) {
			t.Errorf("LEAK: %s: out=%q stderr=%q", q, r.stdout, r.stderr)
		}
	}
	// The same in separate messages, as psql sends a script's statements.
	r := h.psql(t, "BEGIN;\nDECLARE c CURSOR WITH HOLD FOR SELECT name::int FROM customers;\nSELECT 1;\nCOMMIT;\n", "-v", "ON_ERROR_STOP=0")
	if leaksName(r.stdout + r.stderr) {
		t.Errorf("LEAK in a script: out=%q stderr=%q", r.stdout, r.stderr)
	}
	if !strings.Contains(r.stderr, "withheld") {
		t.Errorf("want the COMMIT's error withheld: out=%q stderr=%q", r.stdout, r.stderr)
	}
}

// TestTableRuleDropThroughDependency: a table can be made to depend on another object so
// that dropping that object drops the table, without a statement naming it: a typed
// table (ALTER TABLE victim OF t) goes with DROP TYPE t CASCADE, an extension's member
// (ALTER EXTENSION e ADD TABLE victim) with DROP EXTENSION e. A rule scoped to the
// table and listing a drop must match making it so, as it matches ATTACH PARTITION.
func TestTableRuleDropThroughDependency(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app", "other", "priv"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": sqlRulesSeed + "GRANT CREATE ON DATABASE shop TO app;\n"},
	})
	var mu sync.Mutex
	var seen []Statement
	h := startProxy(t, pg, func(c *Config) { c.Judge = policyJudge(t, sqlRulesPolicy, &seen, &mu) })
	alive := func(why string) {
		t.Helper()
		if !tableExists(t, pg, "victim") {
			t.Errorf("victim was dropped: %s", why)
			pg.ExecIn(t, "shop", "CREATE TABLE victim (id int PRIMARY KEY, pid int REFERENCES parent ON DELETE CASCADE); ALTER TABLE victim OWNER TO app")
		}
	}
	runRuled(t, h, "CREATE TYPE vt AS (id int, pid int)", false, "a type")
	runRuled(t, h, "ALTER TABLE victim OF vt", true, "victim becomes a table DROP TYPE vt CASCADE drops")
	h.psql(t, "", "-c", "DROP TYPE vt CASCADE")
	alive("typed table dropped with its type")

	runRuled(t, h, "CREATE EXTENSION tablefunc", false, "a trusted extension")
	runRuled(t, h, "ALTER EXTENSION tablefunc ADD TABLE victim", true, "victim becomes a member DROP EXTENSION drops")
	h.psql(t, "", "-c", "DROP EXTENSION tablefunc")
	alive("member table dropped with its extension")
}

// TestPreparedWriteAfterAnotherSessionsViewDDL: a prepared write is analysed again by
// the server when a relation it names changes, so what it writes is decided at each
// execution. Another session (through the bastion too, with no statement a rule
// matches) can turn the harmless table it writes into a view of a table a rule
// protects, and the prepared statement (pgx's statement cache, SQL PREPARE) then
// writes that table.
func TestPreparedWriteAfterAnotherSessionsViewDDL(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app", "other", "priv"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": sqlRulesSeed + "CREATE TABLE x (id int, pid int); CREATE TABLE y (id int, pid int); ALTER TABLE x OWNER TO app; ALTER TABLE y OWNER TO app;\n"},
	})
	var mu sync.Mutex
	var seen []Statement
	h := startProxy(t, pg, func(c *Config) { c.Judge = policyJudge(t, sqlRulesPolicy, &seen, &mu) })
	ctx := context.Background()
	a := h.connect(t, "app", "shop", nil)
	if _, err := a.Prepare(ctx, "px", "DELETE FROM x WHERE id = $1"); err != nil {
		t.Fatal(err)
	}
	if _, err := a.Exec(ctx, "PREPARE py AS DELETE FROM y WHERE id = 2"); err != nil {
		t.Fatal(err)
	}
	// Another session replaces x and y by views of victim: no rule is about x or y.
	runRuled(t, h, "DROP TABLE x; CREATE VIEW x AS SELECT * FROM victim", false, "x becomes a view of victim")
	runRuled(t, h, "DROP TABLE y; CREATE VIEW y AS SELECT * FROM victim", false, "y becomes a view of victim")
	_, err := a.Exec(ctx, "px", 1)
	t.Logf("EXECUTE px(1): %v", err)
	_, err = a.Exec(ctx, "EXECUTE py")
	t.Logf("EXECUTE py: %v", err)
	if n := countRows(t, pg, "victim"); n != "3" {
		t.Fatalf("victim has %s rows, want 3: a prepared DELETE FROM x/y deleted from victim through a view another session made", n)
	}
}

// TestFileFdwProgramAndFilename: file_fdw's foreign table options run a program
// (program) or read a server file (filename) each time the table is read, as COPY …
// PROGRAM and COPY … FROM 'file' do; a rule blocking server_program or file_read must
// stop defining them, as it stops COPY.
func TestFileFdwProgramAndFilename(t *testing.T) {
	const policy = `
data_dir: /tmp/x
oidc: {issuer: "https://idp", client_id: b}
targets:
  - {name: pg1, kind: postgres, address: "10.0.0.3:5432", password_env: PGPW_UNUSED}
roles:
  - {name: dev, groups: [dev], targets: ["*"], db_users: [app]}
rules:
  - {name: noprog, on: sql, match: {statements: [server_program, file_read]}, action: block}
`
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": seedSQL + `
CREATE EXTENSION file_fdw;
CREATE SERVER fs FOREIGN DATA WRAPPER file_fdw;
GRANT USAGE ON FOREIGN SERVER fs TO app;
GRANT pg_execute_server_program, pg_read_server_files TO app;
CREATE FOREIGN TABLE ft_own (line text) SERVER fs OPTIONS (filename '/dev/null');
ALTER FOREIGN TABLE ft_own OWNER TO app;
`},
	})
	var mu sync.Mutex
	var seen []Statement
	h := startProxy(t, pg, func(c *Config) { c.Judge = policyJudge(t, policy, &seen, &mu) })
	runRuled(t, h, "COPY t FROM PROGRAM 'echo 9,x'", true, "COPY PROGRAM, the control")
	for _, sql := range []string{
		"CREATE FOREIGN TABLE ft1 (line text) SERVER fs OPTIONS (program 'echo ran-a-program')",
		"CREATE FOREIGN TABLE ft2 (line text) SERVER fs OPTIONS (filename '/etc/hostname')",
		"ALTER FOREIGN TABLE ft_own OPTIONS (SET filename '/etc/hostname')",
		"ALTER FOREIGN TABLE ft_own OPTIONS (DROP filename, ADD program 'echo ran-a-program')",
	} {
		runRuled(t, h, sql, true, "file_fdw option")
	}
	for _, tbl := range []string{"ft1", "ft_own"} {
		r := h.psql(t, "", "-A", "-t", "-c", "SELECT * FROM "+tbl)
		if strings.Contains(r.stdout, "ran-a-program") {
			t.Errorf("SELECT * FROM %s ran a program past rule noprog: %q", tbl, r.stdout)
		}
	}
}

// TestWriteToForeignTable: a foreign table's rows are wherever its server and options
// say, this very server included (postgres_fdw to the same database, OPTIONS
// (table_name 'victim')): a write to one cannot be followed to the table it reaches.
func TestWriteToForeignTable(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app", "other", "priv"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": sqlRulesSeed + `
CREATE EXTENSION postgres_fdw;
CREATE SERVER loop FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host '127.0.0.1', dbname 'shop');
CREATE USER MAPPING FOR app SERVER loop OPTIONS (user 'app');
GRANT USAGE ON FOREIGN SERVER loop TO app;
`},
	})
	var mu sync.Mutex
	var seen []Statement
	h := startProxy(t, pg, func(c *Config) { c.Judge = policyJudge(t, sqlRulesPolicy, &seen, &mu) })
	runRuled(t, h, "CREATE FOREIGN TABLE fv (id int, pid int) SERVER loop OPTIONS (table_name 'victim')", false, "a foreign table")
	for _, sql := range []string{
		"DELETE FROM fv",
		"UPDATE fv SET pid = NULL",
		"TRUNCATE fv",
	} {
		r := h.psql(t, "", "-c", sql)
		if r.err == nil || !strings.Contains(r.stderr, "bastion: statement blocked") || !strings.Contains(r.stderr, "foreign table") {
			t.Errorf("%s: reached the server (%v %q); want it unknowable: fv's rows may be victim's", sql, r.err, r.stderr)
		}
	}
}

// TestDataReaderCopiedToTable: query_to_xml and the other functions that read data
// the statement does not name (an SQL string, a table by name) give a result of
// unknowable origin; with the default unknowable: mask it is masked when shown, but a
// copy of it into a table (CREATE TABLE AS, INSERT ... SELECT) kept it in clear, for
// the next SELECT to show. Their results are known to carry any column's values: a
// copy of them is refused as a copy of a masked column is.
func TestDataReaderCopiedToTable(t *testing.T) {
	_, h := leakHarness(t, "CREATE EXTENSION tablefunc;\nCREATE TABLE sink (x text);\nGRANT ALL ON sink TO app;\n", false)
	for _, q := range []string{
		"CREATE TABLE tt1 AS SELECT query_to_xml('SELECT name FROM customers', true, false, '')::text AS x",
		"INSERT INTO sink SELECT table_to_xml('customers', true, false, '')::text",
		"INSERT INTO sink SELECT r FROM crosstab('SELECT name, ''k''::text, city FROM customers ORDER BY 1') AS ct(r text, c text)",
		"SELECT query_to_xml('SELECT name FROM customers', true, false, '')::text AS x INTO tt2",
	} {
		through(t, h, q)
	}
	for _, q := range []string{"SELECT x FROM tt1", "SELECT x FROM sink", "SELECT x FROM tt2"} {
		r := through(t, h, q)
		if leaksName(r.stdout + r.stderr) {
			t.Errorf("LEAK: %s: %q", q, r.stdout)
		}
	}
}

// TestRegexRuleSeesIdentifiersAsRead: a regex rule matches the normalised statement,
// where an identifier stayed as written: quoted ("pg_sleep") or with Unicode escapes
// (U&"pg\005fsleep", with or without UESCAPE) it names the same function, and the rule
// must see it as PostgreSQL reads it.
func TestRegexRuleSeesIdentifiersAsRead(t *testing.T) {
	const policy = `
data_dir: /tmp/x
oidc: {issuer: "https://idp", client_id: b}
targets:
  - {name: pg1, kind: postgres, address: "10.0.0.3:5432", password_env: PGPW_UNUSED}
roles:
  - {name: dev, groups: [dev], targets: ["*"], db_users: [app]}
rules:
  - {name: nosleep, on: sql, match: {regex: "\\bpg_sleep\\("}, action: block}
  - {name: novictim, on: sql, match: {regex: "FROM victim\\b"}, action: block}
`
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": seedSQL + "CREATE TABLE victim (id int); GRANT ALL ON victim TO app;\n"},
	})
	var mu sync.Mutex
	var seen []Statement
	h := startProxy(t, pg, func(c *Config) { c.Judge = policyJudge(t, policy, &seen, &mu) })
	for _, sql := range []string{
		`SELECT pg_sleep(0)`,
		`SELECT "pg_sleep"(0)`,
		`SELECT U&"pg\005fsleep"(0)`,
		`SELECT u&"pg!005fsleep" UESCAPE '!'(0)`,
		`SELECT U&"\0070\0067\005f\0073\006c\0065\0065\0070"(0)`,
		`DELETE FROM "victim"`,
		`DELETE FROM U&"vi\0063tim"`,
	} {
		runRuled(t, h, sql, true, "the identifier names what the rule's regex names")
	}
	runRuled(t, h, `SELECT "Pg_sleep" FROM (SELECT 1 AS "Pg_sleep") s`, false, "a different, case-sensitive name")
}

// TestFunctionRuleNamedFunctions: a function named as the one behind an operator, an
// aggregate, a range type's subtype_diff or a routine's SUPPORT clause runs when the
// object is used, without a call in the text: a functions rule must match naming it.
func TestFunctionRuleNamedFunctions(t *testing.T) {
	_, h := startSQLRules(t)
	for _, sql := range []string{
		"CREATE OPERATOR ##> (LEFTARG = int, RIGHTARG = bigint, FUNCTION = pg_terminate_backend)",
		"CREATE OPERATOR ##> (LEFTARG = int, RIGHTARG = bigint, PROCEDURE = pg_catalog.pg_terminate_backend)",
		"CREATE AGGREGATE killall(int) (SFUNC = pg_terminate_backend, STYPE = bigint)",
		"CREATE FUNCTION k(p int, t bigint) RETURNS bool LANGUAGE sql AS 'SELECT true'; CREATE CAST (int AS bigint) WITH FUNCTION pg_terminate_backend(int, bigint)",
	} {
		r := h.psql(t, "", "-c", sql)
		if r.err == nil || !strings.Contains(r.stderr, `rule "term"`) {
			t.Errorf("%s: want a block by rule term, got err=%v stderr=%q", sql, r.err, r.stderr)
		}
	}
	r := h.psql(t, "", "-c", "SELECT pg_backend_pid() ##> 0::bigint")
	if strings.Contains(r.stderr, "terminating connection") {
		t.Errorf("an operator ran pg_terminate_backend past rule term: %q", r.stderr)
	}
}
