package pgproxy

import (
	"errors"
	"reflect"
	"slices"
	"strings"
	"testing"
)

// classifyCases are the classifier's table tests; they also seed FuzzClassify.
var classifyCases = []struct {
	sql        string
	kinds      []string // must all be present
	notKinds   []string
	tables     []string
	unknowable bool
}{
	{sql: "SELECT abalance FROM pgbench_accounts WHERE aid = 1", kinds: []string{"select"}, tables: []string{"pgbench_accounts"}},
	{sql: "DROP TABLE t", kinds: []string{"drop", "drop_table"}, tables: []string{"t"}},
	{sql: "DrOp/**/TABLE t", kinds: []string{"drop_table"}, tables: []string{"t"}},
	{sql: "drop table if exists public.t, s.u cascade", kinds: []string{"drop_table"}, tables: []string{"public.t", "s.u"}},
	{sql: `DROP TABLE "Weird Name"`, kinds: []string{"drop_table"}, tables: []string{"Weird Name"}},
	{sql: "DROP VIEW v", kinds: []string{"drop", "drop_view"}, notKinds: []string{"drop_table"}},
	{sql: "DROP DATABASE shop", kinds: []string{"drop", "drop_database"}},
	{sql: "TRUNCATE a, b", kinds: []string{"truncate"}, tables: []string{"a", "b"}},
	{sql: "DELETE FROM t", kinds: []string{"delete", "delete_without_where"}},
	{sql: "DELETE FROM t WHERE true", kinds: []string{"delete_without_where"}},
	{sql: "DELETE FROM t WHERE 1 = 1", kinds: []string{"delete_without_where"}},
	{sql: "DELETE FROM t WHERE id = 3", kinds: []string{"delete"}, notKinds: []string{"delete_without_where"}},
	{sql: "UPDATE t SET x = 1", kinds: []string{"update", "update_without_where"}},
	{sql: "UPDATE t SET x = 1 WHERE id IN (SELECT id FROM u)", kinds: []string{"update", "select"}, notKinds: []string{"update_without_where"}, tables: []string{"t", "u"}},
	{sql: "WITH gone AS (DELETE FROM t RETURNING *) SELECT * FROM gone", kinds: []string{"select", "delete", "delete_without_where"}},
	{sql: "EXPLAIN ANALYZE DELETE FROM t", kinds: []string{"explain", "delete_without_where"}},
	{sql: "PREPARE p AS DELETE FROM t", kinds: []string{"prepare", "delete_without_where"}},
	{sql: "EXECUTE p", kinds: []string{"execute"}},
	{sql: "INSERT INTO t VALUES (1)", kinds: []string{"insert", "values"}, notKinds: []string{"select"}},
	{sql: "INSERT INTO t SELECT * FROM u", kinds: []string{"insert", "select"}},
	{sql: "INSERT INTO t VALUES (1) ON CONFLICT (id) DO UPDATE SET x = 2", kinds: []string{"insert", "upsert", "update"}},
	{sql: "MERGE INTO t USING u ON t.id = u.id WHEN MATCHED THEN DELETE", kinds: []string{"merge", "delete"}},
	{sql: "ALTER TABLE t ADD COLUMN c int", kinds: []string{"alter", "alter_table"}},
	{sql: "ALTER TABLE t RENAME TO u", kinds: []string{"alter", "rename", "alter_table"}},
	{sql: "ALTER SYSTEM SET work_mem = '1GB'", kinds: []string{"alter", "alter_system", "server_admin"}},
	{sql: "GRANT SELECT ON t TO bob", kinds: []string{"grant"}, tables: []string{"t"}},
	{sql: "REVOKE ALL ON t FROM bob", kinds: []string{"revoke"}},
	{sql: "GRANT admin TO bob", kinds: []string{"grant", "grant_role", "role_change"}},
	{sql: "CREATE ROLE x LOGIN", kinds: []string{"create", "create_role", "role_change"}},
	{sql: "ALTER USER x WITH SUPERUSER", kinds: []string{"alter_role", "role_change"}},
	{sql: "DROP ROLE x", kinds: []string{"drop_role", "role_change"}},
	{sql: "SET ROLE admin", kinds: []string{"set", "role_change"}},
	{sql: "RESET ROLE", kinds: []string{"reset", "role_change"}},
	{sql: "SET SESSION AUTHORIZATION 'bob'", kinds: []string{"set", "role_change"}},
	{sql: "SET search_path = x", kinds: []string{"set"}, notKinds: []string{"role_change"}},
	{sql: "SELECT set_config('role', 'admin', false)", kinds: []string{"select", "set_config", "role_change"}},
	{sql: "SELECT set_config('work_mem', '1GB', false)", kinds: []string{"set_config"}, notKinds: []string{"role_change"}},
	{sql: "SELECT pg_catalog.set_config('ROLE', 'admin', false)", kinds: []string{"role_change"}},
	{sql: `SELECT "set_config"('session_authorization', 'admin', false)`, kinds: []string{"role_change"}},
	{sql: "SELECT set_config('role'::text, 'admin', false)", kinds: []string{"role_change"}},
	{sql: "SELECT set_config(new_value => 'admin', setting_name => 'role', is_local => false)", kinds: []string{"role_change"}},
	{sql: "SELECT set_config(current_user, 'admin', false)", kinds: []string{"set_config"}, unknowable: true},
	{sql: "SELECT set_config('ro' || 'le', 'admin', false)", kinds: []string{"set_config"}, unknowable: true},
	{sql: "SELECT * FROM t WHERE id IN (SELECT 1 FROM set_config('role', 'admin', false))", kinds: []string{"role_change"}},
	{sql: "WITH x AS (SELECT set_config('role', 'admin', false)) SELECT * FROM x", kinds: []string{"role_change"}},
	{sql: "INSERT INTO t VALUES (1, set_config('role', 'admin', false))", kinds: []string{"insert", "role_change"}},
	{sql: "CREATE TABLE d (a text DEFAULT set_config('role', 'admin', false))", kinds: []string{"create_table", "role_change"}},
	{sql: "ALTER TABLE t ALTER COLUMN name SET DEFAULT set_config('role', 'admin', false)", kinds: []string{"alter_table", "role_change"}},
	{sql: `SET "Role" = admin`, kinds: []string{"set", "role_change"}},
	{sql: "SET LOCAL ROLE admin", kinds: []string{"role_change"}},
	{sql: "RESET SESSION AUTHORIZATION", kinds: []string{"reset", "role_change"}},
	{sql: "RESET ALL", kinds: []string{"reset", "role_change"}},
	{sql: "DISCARD ALL", kinds: []string{"role_change"}},
	{sql: "DISCARD PLANS", notKinds: []string{"role_change"}},
	{sql: "ALTER DATABASE shop SET role = admin", kinds: []string{"role_change"}},
	{sql: "ALTER ROLE app SET role = admin", kinds: []string{"role_change"}},
	{sql: "SELECT pg_read_file('/etc/passwd')", kinds: []string{"select", "file_read"}},
	{sql: "SELECT pg_catalog.pg_read_binary_file('/etc/passwd')", kinds: []string{"file_read"}},
	{sql: `SELECT "pg_ls_dir"('.')`, kinds: []string{"file_read"}},
	{sql: "SELECT * FROM pg_stat_file('postgresql.conf')", kinds: []string{"file_read"}},
	{sql: "SELECT (SELECT pg_read_file('x'))", kinds: []string{"file_read"}},
	{sql: "VALUES (pg_read_file('x'))", kinds: []string{"values", "file_read"}},
	{sql: "SELECT lo_import('/etc/passwd')", kinds: []string{"file_read"}},
	{sql: "SELECT lo_export(16384, '/tmp/x')", kinds: []string{"file_write"}},
	{sql: "SELECT pg_file_write('x', 'y', false)", kinds: []string{"file_write"}},
	{sql: "COPY t FROM '/etc/passwd'", kinds: []string{"copy_from", "file_read"}},
	{sql: "COPY t TO '/tmp/t'", kinds: []string{"copy_to", "file_write"}},
	{sql: "COPY t TO PROGRAM 'sh'", kinds: []string{"copy_program", "server_program"}},
	{sql: "LOAD 'x.so'", kinds: []string{"load", "server_program", "server_admin"}},
	{sql: "ALTER ROLE app SET local_preload_libraries = 'plugins/x'", kinds: []string{"load", "server_program", "alter_role"}},
	{sql: "ALTER DATABASE shop SET session_preload_libraries TO 'x'", kinds: []string{"load", "server_program"}},
	{sql: "ALTER SYSTEM SET shared_preload_libraries = 'x'", kinds: []string{"load", "server_program", "server_admin"}},
	{sql: `SET "LOCAL_PRELOAD_LIBRARIES" = 'x'`, kinds: []string{"load", "server_program"}},
	{sql: "CREATE FUNCTION f() RETURNS int LANGUAGE sql SET jit_provider = 'x' AS 'SELECT 1'", kinds: []string{"load", "server_program"}},
	{sql: "SET work_mem = '64MB'", kinds: []string{"set"}, notKinds: []string{"load", "server_program"}},
	{sql: "CREATE FUNCTION f() RETURNS int LANGUAGE c AS 'x.so', 'f'", kinds: []string{"create_function", "server_program"}, unknowable: true},
	{sql: "SELECT dblink_exec('dbname=shop', 'DROP TABLE t')", kinds: []string{"remote_connection"}, unknowable: true},
	{sql: "SELECT * FROM public.dblink('dbname=shop', 'SELECT 1') AS x(a int)", kinds: []string{"remote_connection"}, unknowable: true},
	{sql: "CREATE SERVER s FOREIGN DATA WRAPPER postgres_fdw OPTIONS (host 'x')", kinds: []string{"remote_connection"}},
	{sql: "CREATE USER MAPPING FOR app SERVER s OPTIONS (user 'x')", kinds: []string{"remote_connection"}},
	{sql: "IMPORT FOREIGN SCHEMA public FROM SERVER s INTO x", kinds: []string{"remote_connection"}},
	{sql: "CREATE SUBSCRIPTION s CONNECTION 'host=x' PUBLICATION p", kinds: []string{"remote_connection"}},
	{sql: "SELECT pg_terminate_backend(123)", kinds: []string{"server_admin"}},
	{sql: "SELECT pg_cancel_backend(pid) FROM pg_stat_activity", kinds: []string{"server_admin"}},
	{sql: "SELECT pg_reload_conf()", kinds: []string{"server_admin"}},
	{sql: "SELECT pg_rotate_logfile()", kinds: []string{"server_admin"}},
	{sql: "CREATE TABLESPACE ts LOCATION '/tmp/ts'", kinds: []string{"server_admin", "file_write"}},
	{sql: "CREATE CAST (text AS int) WITH FUNCTION pg_read_file(text)", kinds: []string{"create_cast", "file_read"}},
	{sql: "CREATE OPERATOR ### (FUNCTION = pg_read_file, RIGHTARG = text)", kinds: []string{"file_read"}},
	{sql: "ALTER FUNCTION set_config(text, text, boolean) RENAME TO sc", kinds: []string{"rename", "set_config"}},
	{sql: "SELECT upper(name) FROM t", kinds: []string{"select"}, notKinds: []string{"file_read", "role_change", "server_admin"}},
	{sql: "UPDATE pg_settings SET setting = 'admin' WHERE name = 'role'", kinds: []string{"update", "set_config", "role_change"}, unknowable: true},
	{sql: "UPDATE pg_catalog.pg_settings SET setting = 'x' WHERE name = current_setting('x')", kinds: []string{"role_change"}, unknowable: true},
	{sql: "SELECT * FROM pg_hba_file_rules", kinds: []string{"select", "file_read"}},
	{sql: "SELECT * FROM pg_catalog.pg_file_settings", kinds: []string{"file_read"}},
	{sql: "CREATE PUBLICATION p FOR ALL TABLES", kinds: []string{"server_admin"}},
	{sql: "SELECT name, setting FROM pg_settings", kinds: []string{"select"}, notKinds: []string{"role_change", "set_config"}},
	{sql: "COPY t FROM PROGRAM 'rm -rf /'", kinds: []string{"copy", "copy_from", "copy_program"}, notKinds: []string{"copy_from_stdin"}},
	{sql: "COPY t TO '/tmp/x'", kinds: []string{"copy", "copy_to"}, notKinds: []string{"copy_to_stdout"}},
	{sql: "COPY t FROM STDIN", kinds: []string{"copy_from", "copy_from_stdin"}, tables: []string{"t"}},
	{sql: "COPY (SELECT * FROM s.t) TO STDOUT", kinds: []string{"copy_to", "copy_to_stdout", "select"}, tables: []string{"s.t"}},
	{sql: "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1'", kinds: []string{"create", "create_function"}},
	{sql: "CREATE PROCEDURE p() LANGUAGE sql BEGIN ATOMIC DELETE FROM t; END", kinds: []string{"create_procedure", "delete_without_where"}},
	{sql: "DO $$ BEGIN EXECUTE 'DROP TABLE t'; END $$", kinds: []string{"do", "drop_table"}},
	{sql: "DO $$ BEGIN EXECUTE 'DROP TABLE ' || 't'; END $$", kinds: []string{"do"}, unknowable: true},
	{sql: "DO $$ BEGIN DROP TABLE t; END $$", kinds: []string{"do", "drop_table"}, tables: []string{"t"}},
	{sql: "DO LANGUAGE plperl $$ system('x') $$", kinds: []string{"do"}, unknowable: true},
	{sql: "SELECT query_to_xml('DROP TABLE t', true, true, '')", kinds: []string{"select"}, unknowable: true},
	{sql: "DROP SCHEMA s CASCADE", kinds: []string{"drop", "drop_schema", "drop_table", "drop_view", "drop_function", "drop_sequence"}, unknowable: true},
	{sql: "DROP SCHEMA IF EXISTS s, t CASCADE", kinds: []string{"drop_schema", "drop_table"}, unknowable: true},
	{sql: "DROP SCHEMA s", kinds: []string{"drop_schema"}, notKinds: []string{"drop_table"}},
	{sql: "DROP SCHEMA s RESTRICT", kinds: []string{"drop_schema"}, notKinds: []string{"drop_table"}},
	{sql: "DROP OWNED BY CURRENT_USER", kinds: []string{"drop", "drop_owned", "drop_table", "drop_function", "drop_schema", "revoke"}, unknowable: true},
	{sql: "DROP OWNED BY app, other CASCADE", kinds: []string{"drop_owned", "drop_table"}, unknowable: true},
	{sql: "DROP TYPE mood CASCADE", kinds: []string{"drop_type", "drop_table", "alter_table"}},
	{sql: "DROP DOMAIN posint CASCADE", kinds: []string{"drop_domain", "drop_table"}},
	{sql: "DROP TYPE mood", kinds: []string{"drop_type"}, notKinds: []string{"drop_table"}},
	{sql: "DROP EXTENSION hstore", kinds: []string{"drop_extension", "drop_table", "drop_function"}},
	{sql: "DO $$BEGIN EXECUTE 'DROP SCHEMA s CASCADE'; END$$", kinds: []string{"do", "drop_table"}, unknowable: true},
	{sql: "SELECT ts_rewrite('a'::tsquery, 'DELETE FROM victim RETURNING ''a''::tsquery, ''b''::tsquery')", kinds: []string{"select"}, unknowable: true},
	{sql: "SELECT pg_catalog.ts_rewrite(q, 'SELECT t, s FROM aliases') FROM x", unknowable: true},
	{sql: "SELECT ts_rewrite('a'::tsquery, 'a'::tsquery, 'b'::tsquery)", kinds: []string{"select"}},
	{sql: "SELECT ts_rewrite(query => 'a'::tsquery, target => 'a', substitute => 'b')", unknowable: true},
	{sql: "SELECT table_to_xml('victim', true, true, '')", unknowable: true},
	{sql: "SELECT database_to_xml(true, true, '')", unknowable: true},
	{sql: "SELECT cron.schedule('nightly', '0 3 * * *', 'DROP TABLE victim')", unknowable: true},
	{sql: "SELECT pg_background_launch('DROP TABLE victim')", unknowable: true},
	{sql: "CALL p()", kinds: []string{"call"}},
	{sql: "BEGIN", kinds: []string{"transaction", "begin"}},
	{sql: "COMMIT", kinds: []string{"transaction", "commit"}},
	{sql: "VACUUM t", kinds: []string{"vacuum"}},
	{sql: "LOAD 'evil.so'", kinds: []string{"load", "server_program"}},
	{sql: "CHECKPOINT", kinds: []string{"checkpoint", "server_admin"}},
	{sql: "CREATE EXTENSION dblink", kinds: []string{"create", "create_extension", "server_admin"}},
	{sql: "CREATE TABLE x AS SELECT 1", kinds: []string{"create", "create_table"}},
	{sql: "SELECT * INTO newt FROM t", kinds: []string{"select_into", "create_table"}},
	{sql: "SELECT * FROM t FOR UPDATE", kinds: []string{"select", "select_for_update"}},
	{sql: "LOCK TABLE t", kinds: []string{"lock"}, tables: []string{"t"}},
	{sql: "SHOW work_mem", kinds: []string{"show"}},
	{sql: "CREATE INDEX i ON t (x)", kinds: []string{"create_index"}, tables: []string{"t"}},
}

func TestClassify(t *testing.T) {
	for _, tc := range classifyCases {
		t.Run(tc.sql, func(t *testing.T) {
			sts, err := Classify(tc.sql)
			if err != nil {
				t.Fatalf("Classify: %v", err)
			}
			if len(sts) != 1 {
				t.Fatalf("got %d statements, want 1", len(sts))
			}
			st := sts[0]
			for _, k := range tc.kinds {
				if !st.Has(k) {
					t.Errorf("got kinds %q, want %q among them", st.Kinds, k)
				}
			}
			for _, k := range tc.notKinds {
				if st.Has(k) {
					t.Errorf("got kinds %q, want no %q", st.Kinds, k)
				}
			}
			if tc.tables != nil && !reflect.DeepEqual(st.Tables, tc.tables) {
				t.Errorf("got tables %q, want %q", st.Tables, tc.tables)
			}
			if (st.Unknowable != "") != tc.unknowable {
				t.Errorf("got unknowable %q, want %v", st.Unknowable, tc.unknowable)
			}
			if st.SQL != tc.sql {
				t.Errorf("got SQL %q, want %q", st.SQL, tc.sql)
			}
		})
	}
}

func TestClassifyMultiAndNormalized(t *testing.T) {
	sts, err := Classify("SELECT 1;  DROP/**/TABLE t ;\n delete from T where id = 'x'")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, st := range sts {
		got = append(got, st.SQL+" => "+st.Normalized)
	}
	want := []string{
		"SELECT 1 => SELECT $1",
		"DROP/**/TABLE t => DROP TABLE t",
		"delete from T where id = 'x' => DELETE FROM t WHERE id = $1",
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("got %q, want %q", got, want)
	}
	if sts[1].Kinds[0] != "drop" || !sts[1].Has("drop_table") {
		t.Errorf("got kinds %q", sts[1].Kinds)
	}
}

func TestClassifyFailsClosed(t *testing.T) {
	for _, sql := range []string{"SELEC 1", "DROP TABLE", "SELECT 'unterminated", "SELECT 1; DROP TABLE t; SELEC"} {
		sts, err := Classify(sql)
		if !errors.Is(err, ErrUnparseable) || sts != nil {
			t.Errorf("Classify(%q): got %v, %v; want ErrUnparseable", sql, sts, err)
		}
	}
	if sts, err := Classify(" -- nothing\n;"); err != nil || len(sts) != 0 {
		t.Errorf("got %v, %v; want no statements", sts, err)
	}
}

func TestClassifyReplication(t *testing.T) {
	st, ok := classifyReplication("  START_REPLICATION SLOT s LOGICAL 0/0")
	if !ok || !slices.Equal(st.Kinds, []string{"replication_command", "start_replication"}) {
		t.Errorf("got %+v, %v", st, ok)
	}
	if _, ok := classifyReplication("DROP TABLE t"); ok {
		t.Error("DROP TABLE classified as a replication command")
	}
}

func TestCacheKey(t *testing.T) {
	tests := []struct {
		sql   string
		key   string // with \x01 for strings, \x02 for integers
		spans int
	}{
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 48213;", "aSELECT abalance FROM pgbench_accounts WHERE aid = \x02;", 1},
		{"SELECT * FROM t WHERE a='x''y' AND b IN (1,2)", "aSELECT * FROM t WHERE a=\x01 AND b IN (\x02,\x02)", 3},
		{"SELECT E'x', B'1', U&'d', t1, 1.5, 1e3, 0x1f, -5, 1234567890", "aSELECT E'x', B'1', U&'d', t1, 1.5, 1e3, 0x1f, -5, 1234567890", 0},
		{"SELECT 1::int", "aSELECT 1::int", 0},
		{"SELECT 'a' -- c", "vSELECT 'a' -- c", 0},
		{"SELECT '--' FROM t", "aSELECT \x01 FROM t", 1},
		{"SELECT 'a' /* c */", "vSELECT 'a' /* c */", 0},
		{`SELECT "q'" FROM t`, `vSELECT "q'" FROM t`, 0},
		{"SELECT $$x$$", "vSELECT $$x$$", 0},
		{`SELECT 'a\'`, `vSELECT 'a\'`, 0},
		{"SELECT 'unterminated", "vSELECT 'unterminated", 0},
		{"SELECT 'é'", "vSELECT 'é'", 0},
	}
	for _, tc := range tests {
		key, spans, ok := cacheKey(tc.sql)
		if !ok || key != tc.key || len(spans) != tc.spans {
			t.Errorf("cacheKey(%q): got %q, %d spans, %v; want %q, %d spans", tc.sql, key, len(spans), ok, tc.key, tc.spans)
		}
	}
	if _, _, ok := cacheKey(strings.Repeat("x", maxCachedSQL+1)); ok {
		t.Error("oversized statement is cacheable")
	}
}

// TestClassifierSoundness checks cached answers against fresh ones for statements that
// share a key with a cached one, including ones where the constants decide something
// (they must not be cached).
func TestClassifierSoundness(t *testing.T) {
	groups := [][]string{
		{"SELECT abalance FROM pgbench_accounts WHERE aid = 1;", "SELECT abalance FROM pgbench_accounts WHERE aid = 99999;"},
		{"DELETE FROM t WHERE id = 5", "DELETE FROM t WHERE id = 123456789"},
		{"SELECT * FROM t WHERE name = 'a'", "SELECT * FROM t WHERE name = 'DROP TABLE t'", "SELECT * FROM t WHERE name = ''"},
		{"COPY t TO 'x'", "COPY t TO ''"},
		{"SELECT CAST(1 AS float(10))", "SELECT CAST(1 AS float(50))"},
		{"SET ROLE 'a'", "SET ROLE 'b'"},
		{"SELECT set_config('role', 'x', false)", "SELECT set_config('work_mem', 'x', false)"},
		{"SELECT 1; SELECT 2", "SELECT 3; SELECT 4"},
	}
	for _, g := range groups {
		c := NewClassifier(100)
		for round := 0; round < 2; round++ {
			for _, sql := range g {
				cached, err1 := c.Classify(sql)
				fresh, err2 := Classify(sql)
				if (err1 == nil) != (err2 == nil) || !reflect.DeepEqual(cached, fresh) {
					t.Errorf("%q: cached %+v (%v), fresh %+v (%v)", sql, cached, err1, fresh, err2)
				}
			}
		}
	}
	c := NewClassifier(100)
	for i := 0; i < 10; i++ {
		c.Classify("SELECT abalance FROM pgbench_accounts WHERE aid = " + strings.Repeat("7", i%9+1) + ";")
	}
	if hits, misses := c.Stats(); hits != 9 || misses != 1 {
		t.Errorf("got %d hits, %d misses; want 9, 1", hits, misses)
	}
	// Constants the normaliser leaves alone (DDL) keep such statements out of the cache.
	c = NewClassifier(100)
	c.Classify("ALTER TABLE t ADD COLUMN c varchar(10) DEFAULT 'x'")
	c.Classify("ALTER TABLE t ADD COLUMN c varchar(10) DEFAULT 'y'")
	if hits, _ := c.Stats(); hits != 0 {
		t.Errorf("got %d hits for DDL with constants, want 0", hits)
	}
}

func TestClassifierEviction(t *testing.T) {
	c := NewClassifier(16)
	for i := 0; i < 100; i++ {
		c.Classify("SELECT col" + strings.Repeat("x", i) + " FROM t")
	}
	if n := len(c.entries); n > 16 {
		t.Errorf("got %d entries, want at most 16", n)
	}
}

// FuzzClassify: classification never panics, the cached classifier agrees with the
// uncached one, and rewriting the constants the key abstracts never changes the answer.
func FuzzClassify(f *testing.F) {
	for _, s := range []string{
		"SELECT abalance FROM pgbench_accounts WHERE aid = 48213;",
		"DROP TABLE t", "DrOp/**/TABLE t", "SELECT 1; DROP TABLE t",
		"SELECT * FROM t WHERE a = 'x' AND b = 2",
		"DO $$ BEGIN EXECUTE 'x'; END $$", "COPY t FROM PROGRAM 'x'",
		"SELECT E'\\'' ; DROP TABLE t; --'", "SELECT '\\'' ; DROP TABLE t; --'",
		"SET ROLE 'a'", "UPDATE t SET x = 1 WHERE 1 = 1", "SELECT 'a'\n'b'",
		"SELECT U&'d\\0061t' UESCAPE '\\'", "SELECT CAST(1 AS float(10))",
	} {
		f.Add(s, "zz")
	}
	for _, tc := range classifyCases {
		f.Add(tc.sql, "x")
	}
	f.Fuzz(func(t *testing.T, sql, repl string) {
		if len(sql) > 2000 {
			return
		}
		c := NewClassifier(8)
		fresh, err := Classify(sql)
		cached, err2 := c.Classify(sql)
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(fresh, cached) {
			t.Fatalf("first call: cached %+v (%v), fresh %+v (%v)", cached, err2, fresh, err)
		}
		// Rewrite every abstracted constant and compare the (possibly cached) answer.
		other, ok := rewriteConstants(sql, repl)
		if !ok {
			return
		}
		fresh2, err := Classify(other)
		cached2, err2 := c.Classify(other)
		if (err == nil) != (err2 == nil) || !reflect.DeepEqual(fresh2, cached2) {
			t.Fatalf("%q after %q: cached %+v (%v), fresh %+v (%v)", other, sql, cached2, err2, fresh2, err)
		}
	})
}

// rewriteConstants replaces every constant sql's cache key abstracts: strings by repl,
// integers by 7. ok is false when the key abstracts none.
func rewriteConstants(sql, repl string) (string, bool) {
	_, spans, ok := cacheKey(sql)
	if !ok || len(spans) == 0 {
		return "", false
	}
	var b strings.Builder
	prev := 0
	for _, sp := range spans {
		b.WriteString(sql[prev:sp[0]])
		if sql[sp[0]] == '\'' {
			b.WriteString("'" + strings.ReplaceAll(repl, "'", "''") + "'")
		} else {
			b.WriteString("7")
		}
		prev = sp[1]
	}
	b.WriteString(sql[prev:])
	return b.String(), true
}

// TestClassifyRefusesLexerSettings: pg_query reads SQL as standard_conforming_strings=on,
// so every way of setting it otherwise is refused (ErrUnsafeSetting), wherever it is
// written; setting it on is a statement like any other.
func TestClassifyRefusesLexerSettings(t *testing.T) {
	refused := []string{
		"SET standard_conforming_strings = off",
		"SET standard_conforming_strings TO 'off'",
		"SET SESSION standard_conforming_strings = false",
		"SET LOCAL standard_conforming_strings = 0",
		`SET "STANDARD_CONFORMING_STRINGS" = off`,
		"SET standard_conforming_strings TO DEFAULT",
		"SET standard_conforming_strings FROM CURRENT",
		"RESET standard_conforming_strings",
		"SELECT set_config('standard_conforming_strings', 'off', false)",
		"SELECT pg_catalog.set_config('Standard_Conforming_Strings', 'of' || 'f', true)",
		"SELECT set_config(setting_name => 'standard_conforming_strings', new_value => 'off', is_local => false)",
		`CREATE FUNCTION harmless() RETURNS void LANGUAGE sql SET standard_conforming_strings = off AS $$SELECT 'x\''; DROP TABLE mine1; --'$$`,
		"CREATE PROCEDURE p() LANGUAGE sql SET standard_conforming_strings FROM CURRENT AS 'SELECT 1'",
		"ALTER FUNCTION benign2() SET standard_conforming_strings = off",
		"ALTER PROCEDURE p() RESET standard_conforming_strings",
		"ALTER ROUTINE r() SET standard_conforming_strings = off",
		"ALTER ROLE app SET standard_conforming_strings = off",
		"ALTER ROLE app IN DATABASE shop SET standard_conforming_strings = off",
		"ALTER DATABASE shop SET standard_conforming_strings = off",
		"ALTER SYSTEM SET standard_conforming_strings = off",
		"SET standard_conforming_strings = off; DO $$BEGIN PERFORM 'x\\''; DROP TABLE mine2; --';\nEND$$",
		"DO $$BEGIN SET standard_conforming_strings = off; END$$",
		"DO $$BEGIN PERFORM set_config('standard_conforming_strings', 'off', false); END$$",
		"DO $$BEGIN EXECUTE 'SET standard_conforming_strings = off'; END$$",
		"CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN RESET standard_conforming_strings; END$$",
		// pg_get_functiondef's spelling, which the lineage analysis reads from the catalog.
		"CREATE OR REPLACE FUNCTION public.f()\n RETURNS void\n LANGUAGE sql\n SET standard_conforming_strings TO 'off'\nAS $function$SELECT 1$function$\n",
	}
	for _, sql := range refused {
		for _, c := range []*Classifier{nil, NewClassifier(64)} {
			sts, err := c.Classify(sql)
			if !errors.Is(err, ErrUnsafeSetting) || sts != nil {
				t.Errorf("Classify(%q) = %v, %v; want ErrUnsafeSetting", sql, sts, err)
			}
		}
	}
	allowed := []string{
		"SET standard_conforming_strings = on",
		"SET standard_conforming_strings TO 'on'",
		"SET LOCAL standard_conforming_strings = true",
		"SELECT set_config('standard_conforming_strings', 'on', false)",
		"CREATE FUNCTION g() RETURNS int LANGUAGE sql SET standard_conforming_strings = on AS 'SELECT 1'",
		"SET escape_string_warning = off",
		"RESET ALL",
		"DISCARD ALL",
	}
	for _, sql := range allowed {
		if _, err := Classify(sql); err != nil {
			t.Errorf("Classify(%q): %v", sql, err)
		}
	}
	// The cache must not answer "off" from an entry filled by "on": the value is read.
	c := NewClassifier(64)
	for _, sql := range []string{"SET standard_conforming_strings = 'on'", "SET standard_conforming_strings = 'off'"} {
		c.Classify(sql)
	}
	if _, err := c.Classify("SET standard_conforming_strings = 'off'"); !errors.Is(err, ErrUnsafeSetting) {
		t.Errorf("cached: %v", err)
	}
	// A setting name not written as a constant cannot be checked: unknowable.
	for _, sql := range []string{
		"SELECT set_config(n, 'off', false) FROM (VALUES ('standard_conforming_strings')) v(n)",
		"UPDATE pg_settings SET setting = 'off' WHERE name = 'standard_conforming_strings'",
	} {
		sts, err := Classify(sql)
		if err != nil || len(sts) != 1 || sts[0].Unknowable == "" {
			t.Errorf("Classify(%q) = %+v, %v; want unknowable", sql, sts, err)
		}
	}
}

// TestClassifyAttributeNotation: (x).f and t.f may call f(x), f(t): the function's
// name and kinds count (red team: attribute notation ran pg_terminate_backend past a
// functions rule).
func TestClassifyAttributeNotation(t *testing.T) {
	for sql, want := range map[string]string{
		"SELECT (pg_backend_pid()).pg_terminate_backend":                    KindServerAdmin,
		"SELECT ('/etc/passwd'::text).pg_read_file":                         KindFileRead,
		"SELECT (f).pg_ls_dir FROM (SELECT '.'::text AS f) s":               KindFileRead,
		"SELECT s.dblink_exec FROM (SELECT 'x'::text AS f) s":               KindRemoteConnection,
		"SELECT public.s.pg_cancel_backend FROM public.s":                   KindServerAdmin,
		"DO $$BEGIN PERFORM (pg_backend_pid()).pg_terminate_backend; END$$": KindServerAdmin,
	} {
		sts, err := Classify(sql)
		if err != nil || len(sts) != 1 {
			t.Fatalf("%s: %v %v", sql, sts, err)
		}
		if !sts[0].Has(want) {
			t.Errorf("%s: kinds %v, want %s", sql, sts[0].Kinds, want)
		}
	}
	// A column that shares its name with a function taking two arguments or more is
	// only a column.
	sts, err := Classify("SELECT j.schedule, (j).query_to_xml FROM jobs j")
	if err != nil || sts[0].Unknowable != "" {
		t.Errorf("columns named like functions of several arguments: %+v %v", sts, err)
	}
	sts, err = Classify("SELECT ('SELECT 1'::text).ts_stat")
	if err != nil || sts[0].Unknowable == "" {
		t.Errorf("(text).ts_stat runs SQL text: %+v %v", sts, err)
	}
}

// TestClassifyAttributeFunctions: a name read only in attribute notation is in
// Functions (for rules) and in AttrFunctions (a column unless such a function
// exists, for the lineage's "does this body write"); a name also called as written
// is not only that, in the statement or in a body it writes.
func TestClassifyAttributeFunctions(t *testing.T) {
	for sql, want := range map[string][]string{
		"SELECT o.customer_id FROM orders o":                                        {"customer_id"},
		"SELECT o.customer_id, customer_id(o) FROM orders o":                        nil,
		"SELECT customer_id(o), o.customer_id FROM orders o":                        nil,
		"CREATE FUNCTION f(o orders) RETURNS int LANGUAGE sql AS 'SELECT o.total'":  {"total"},
		"CREATE FUNCTION f(o orders) RETURNS int LANGUAGE sql AS 'SELECT total(o)'": nil,
	} {
		sts, err := Classify(sql)
		if err != nil || len(sts) != 1 {
			t.Fatalf("%s: %v %v", sql, sts, err)
		}
		if got := sts[0].AttrFunctions; !slices.Equal(got, want) {
			t.Errorf("%s: AttrFunctions %q, want %q", sql, got, want)
		}
		for _, f := range want {
			if !contains(sts[0].Functions, f) {
				t.Errorf("%s: Functions %q lack %q", sql, sts[0].Functions, f)
			}
		}
	}
}

// Every kind the classifier gives is one KnownKind accepts, so a rule can name it.
func TestKnownKinds(t *testing.T) {
	for _, tc := range classifyCases {
		sts, err := Classify(tc.sql)
		if err != nil {
			continue
		}
		var check func(st Statement)
		check = func(st Statement) {
			for _, k := range st.Kinds {
				if !KnownKind(k) {
					t.Errorf("%q: kind %q is not known", tc.sql, k)
				}
			}
			for _, b := range st.Body {
				check(b)
			}
		}
		for _, st := range sts {
			check(st)
		}
	}
	for _, k := range []string{"drop_table", "delete_without_where", "role_change", "checkpoint", "discard", "notify", "begin", "commit", "rollback", "alter_system", "drop_materialized_view", "create_extension", "start_replication", "listen"} {
		if !KnownKind(k) {
			t.Errorf("%q is not known", k)
		}
	}
	for _, k := range []string{"drop_tables", "delet", "drop_tabel", "sleect"} {
		if KnownKind(k) {
			t.Errorf("%q is known", k)
		}
	}
}

// TestClassifySQLJSONAsOlderServerCalls: SQL/JSON syntax of PostgreSQL 17's parser that
// an older server reads as a call of a function of that name names that function, for
// functions rules.
func TestClassifySQLJSONAsOlderServerCalls(t *testing.T) {
	for sql, want := range map[string]string{
		"SELECT json_scalar(1)":          "json_scalar",
		"SELECT json_serialize(1)":       "json_serialize",
		"SELECT json_query(1, '$')":      "json_query",
		"SELECT json_value(1, '$')":      "json_value",
		"SELECT json_exists(1, '$')":     "json_exists",
		"SELECT json_array(1)":           "json_array",
		"SELECT json(1)":                 "json",
		"SELECT json_arrayagg(x) FROM t": "json_arrayagg",
	} {
		sts, err := Classify(sql)
		if err != nil || len(sts) != 1 {
			t.Fatalf("%s: %v %v", sql, sts, err)
		}
		if !contains(sts[0].Functions, want) {
			t.Errorf("%s: Functions %q lack %q", sql, sts[0].Functions, want)
		}
	}
}
