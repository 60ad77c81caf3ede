package pgproxy

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
)

// bodyCases: the statements of function, procedure and DO bodies are classified as if
// sent directly, and merged into the statement that writes them.
var bodyCases = []struct {
	name       string
	sql        string
	kinds      []string // of the statement (merged)
	body       []string // SQL of the body statements, in order
	unknowable string   // substring of Unknowable; "" for none
}{
	{
		name:  "plpgsql function",
		sql:   "CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN DROP TABLE t; END$$",
		kinds: []string{"create_function", "drop_table"},
		body:  []string{"DROP TABLE t"},
	},
	{
		name:  "or replace, upper-case language, quoted body",
		sql:   "CREATE OR REPLACE FUNCTION public.f() RETURNS void LANGUAGE PLPGSQL AS 'BEGIN TRUNCATE t; END'",
		kinds: []string{"create_function", "truncate"},
		body:  []string{"TRUNCATE t"},
	},
	{
		name:  "sql function with several statements",
		sql:   "CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'DELETE FROM t; SELECT 1'",
		kinds: []string{"create_function", "delete_without_where", "select"},
		body:  []string{"DELETE FROM t", "SELECT 1"},
	},
	{
		name:  "sql-standard body is in the tree",
		sql:   "CREATE FUNCTION f() RETURNS int LANGUAGE sql BEGIN ATOMIC DELETE FROM t; SELECT 1; END",
		kinds: []string{"create_function", "delete_without_where"},
	},
	{
		name:  "a parameter is not a column",
		sql:   "CREATE FUNCTION f(flag bool) RETURNS void LANGUAGE sql AS 'DELETE FROM t WHERE flag'",
		kinds: []string{"delete_without_where"},
		body:  []string{"DELETE FROM t WHERE flag"},
	},
	{
		name:  "a parameter is not a column in a sql-standard body either",
		sql:   "CREATE FUNCTION f(flag bool) RETURNS void LANGUAGE sql BEGIN ATOMIC DELETE FROM t WHERE flag; END",
		kinds: []string{"delete_without_where"},
	},
	{
		name:  "a column still restricts",
		sql:   "CREATE FUNCTION f(k int) RETURNS void LANGUAGE plpgsql AS $$BEGIN DELETE FROM t WHERE id = k; END$$",
		kinds: []string{"delete"},
		body:  []string{"DELETE FROM t WHERE id = k"},
	},
	{
		name:  "procedure with EXECUTE of a constant",
		sql:   "CREATE PROCEDURE p() LANGUAGE plpgsql AS $$BEGIN EXECUTE 'DROP TABLE t'; END$$",
		kinds: []string{"create_procedure", "drop_table"},
		body:  []string{"SELECT 'DROP TABLE t'", "DROP TABLE t"},
	},
	{
		name:       "EXECUTE of a string built at run time",
		sql:        "CREATE PROCEDURE p(n text) LANGUAGE plpgsql AS $$BEGIN EXECUTE format('DROP TABLE %I', n); END$$",
		kinds:      []string{"create_procedure"},
		body:       []string{"SELECT format('DROP TABLE %I', n)"},
		unknowable: "EXECUTE",
	},
	{
		name:       "FOR ... IN EXECUTE",
		sql:        "CREATE FUNCTION f(q text) RETURNS void LANGUAGE plpgsql AS $$DECLARE r record; BEGIN FOR r IN EXECUTE q LOOP END LOOP; END$$",
		body:       []string{"SELECT q"},
		unknowable: "EXECUTE",
	},
	{
		name:       "RETURN QUERY EXECUTE",
		sql:        "CREATE FUNCTION f(q text) RETURNS SETOF int LANGUAGE plpgsql AS $$BEGIN RETURN QUERY EXECUTE q; END$$",
		body:       []string{"SELECT q"},
		unknowable: "EXECUTE",
	},
	{
		name:       "OPEN ... FOR EXECUTE",
		sql:        "CREATE FUNCTION f(q text) RETURNS void LANGUAGE plpgsql AS $$DECLARE c refcursor; BEGIN OPEN c FOR EXECUTE q; END$$",
		body:       []string{"SELECT q"},
		unknowable: "EXECUTE",
	},
	{
		name:  "trigger function",
		sql:   "CREATE FUNCTION trg() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN IF TG_OP = 'INSERT' THEN DELETE FROM audit WHERE tg_op = 'x'; END IF; NEW.x := upper(NEW.y); RETURN NEW; END$$",
		kinds: []string{"create_function", "delete_without_where"},
		body:  []string{"SELECT TG_OP = 'INSERT'", "DELETE FROM audit WHERE tg_op = 'x'", "SELECT  upper(NEW.y)", "SELECT NEW"},
	},
	{
		name:  "event trigger function",
		sql:   "CREATE FUNCTION et() RETURNS event_trigger LANGUAGE plpgsql AS $$BEGIN DROP TABLE t; END$$",
		kinds: []string{"drop_table"},
		body:  []string{"DROP TABLE t"},
	},
	{
		name: "every place a statement or expression hides",
		sql: `CREATE FUNCTION f(p int) RETURNS SETOF int LANGUAGE plpgsql AS $$
DECLARE
  v int := (SELECT count(*) FROM a);
  c CURSOR FOR SELECT * FROM b;
  r record;
BEGIN
  PERFORM pg_read_file('x');
  v := (SELECT 1 FROM d);
  SELECT x INTO v FROM e;
  FOR r IN SELECT * FROM g LOOP END LOOP;
  OPEN c;
  IF v > (SELECT 1 FROM h) THEN RETURN QUERY SELECT 1 FROM i; END IF;
  WHILE v < (SELECT 2 FROM j) LOOP v := v + 1; END LOOP;
  RAISE NOTICE '%', (SELECT 3 FROM k);
  ASSERT v > 0, (SELECT 'm' FROM l);
  CALL pr();
  RETURN NEXT (SELECT 4 FROM m);
END$$`,
		kinds: []string{"create_function", "file_read", "select", "call"},
		body: []string{
			"SELECT (SELECT count(*) FROM a)", "SELECT * FROM b", "SELECT pg_read_file('x')", "SELECT  (SELECT 1 FROM d)",
			"SELECT x        FROM e", "SELECT * FROM g", "SELECT v > (SELECT 1 FROM h)", "SELECT 1 FROM i",
			"SELECT v < (SELECT 2 FROM j)", "SELECT  v + 1", "SELECT (SELECT 3 FROM k)", "SELECT v > 0",
			"SELECT (SELECT 'm' FROM l)", "CALL pr()", "SELECT (SELECT 4 FROM m)",
		},
	},
	{
		name:  "DO block",
		sql:   "DO $$BEGIN PERFORM set_config('role', 'postgres', false); END$$",
		kinds: []string{"do", "role_change"},
		body:  []string{"SELECT set_config('role', 'postgres', false)"},
	},
	{
		name:       "DO block in another language",
		sql:        "DO LANGUAGE plpython3u $$import os$$",
		kinds:      []string{"do"},
		unknowable: "plpython3u",
	},
	{
		name:       "function in another language",
		sql:        "CREATE FUNCTION f() RETURNS text LANGUAGE internal AS 'pg_read_file_off_len'",
		unknowable: "internal",
	},
	{
		name:  "bodies within bodies",
		sql:   "DO $$BEGIN CREATE FUNCTION g() RETURNS void LANGUAGE sql AS 'DROP TABLE t'; END$$",
		kinds: []string{"do", "create_function", "drop_table"},
		body:  []string{"CREATE FUNCTION g() RETURNS void LANGUAGE sql AS 'DROP TABLE t'", "DROP TABLE t"},
	},
	{
		name:  "a benign function",
		sql:   "CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE plpgsql IMMUTABLE AS $$BEGIN RETURN a + b; END$$",
		kinds: []string{"create_function", "select"},
		body:  []string{"SELECT a + b"},
	},
	{
		name:  "rule actions",
		sql:   "CREATE RULE r AS ON INSERT TO t DO ALSO DELETE FROM u",
		kinds: []string{"create_rule", "delete_without_where"},
	},
	{
		// pg_query's JSON has no default for a record variable: it is read from the text.
		name:  "record variable defaults",
		sql:   "DO $$\nDECLARE a int; r record := ROW(pg_read_file('x')); \"Q\" record\n  DEFAULT (SELECT ROW(1) FROM u); s record = ROW(2); n record;\n  c CURSOR FOR SELECT 1;\nBEGIN FOR z IN c LOOP END LOOP; END$$",
		kinds: []string{"do", "file_read", "select"},
		body:  []string{"SELECT 1", "SELECT ROW(pg_read_file('x'))", "SELECT (SELECT ROW(1) FROM u)", "SELECT ROW(2)"},
	},
}

func TestClassifyBodies(t *testing.T) {
	for _, tc := range bodyCases {
		t.Run(tc.name, func(t *testing.T) {
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
			var body []string
			for _, b := range st.Body {
				body = append(body, b.SQL)
				if b.Protocol != "body" || b.Normalized == "" || len(b.Body) != 0 {
					t.Errorf("body statement %q: got protocol %q, normalized %q, %d nested; want body, set, none", b.SQL, b.Protocol, b.Normalized, len(b.Body))
				}
			}
			if !reflect.DeepEqual(body, tc.body) {
				t.Errorf("got body %q, want %q", body, tc.body)
			}
			if tc.unknowable == "" && st.Unknowable != "" || !strings.Contains(st.Unknowable, tc.unknowable) {
				t.Errorf("got unknowable %q, want %q", st.Unknowable, tc.unknowable)
			}
		})
	}
}

// malformedBodies fail closed: the statement is unparseable.
var malformedBodies = []string{
	"CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$BEGIN SELEC 1; END$$",
	"CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$BEGIN DROP TABLE t END$$",
	"CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$BEGIN x := 1; END$$",
	"CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$BEGIN$$",
	"CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS $$$$",
	"CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql AS 'a', 'b'",
	"CREATE FUNCTION f() RETURNS int LANGUAGE plpgsql",
	"CREATE FUNCTION f() RETURNS int AS 'SELECT 1'",
	"CREATE FUNCTION f() RETURNS int LANGUAGE sql LANGUAGE plpgsql AS 'SELECT 1'",
	"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELEC 1'",
	"CREATE FUNCTION f() RETURNS int LANGUAGE sql AS 'SELECT 1' BEGIN ATOMIC SELECT 1; END",
	"DO LANGUAGE plpgsql",
	"DO $$BEGIN RAISE NOTICE 'x' $$",
	"DO $$BEGIN EXECUTE 'DROP TABL t'; END$$",
	"DO $$DECLARE v int; BEGIN v := ; END$$",
	"DO 'BEGIN' 'END'",
	deepDo(maxBodyDepth + 1),
}

func TestClassifyMalformedBodies(t *testing.T) {
	for _, sql := range malformedBodies {
		sts, err := Classify(sql)
		if !errors.Is(err, ErrUnparseable) || sts != nil {
			t.Errorf("Classify(%q): got %+v, %v; want ErrUnparseable", sql, sts, err)
		}
		if _, err := NewClassifier(8).Classify(sql); !errors.Is(err, ErrUnparseable) {
			t.Errorf("Classifier.Classify(%q): got %v; want ErrUnparseable", sql, err)
		}
	}
}

// FuzzBody feeds the same text as the body of a PL/pgSQL function, a DO block and a SQL
// function: classification never crashes the process, fails only with ErrUnparseable,
// and a cached classifier agrees with a fresh one.
func FuzzBody(f *testing.F) {
	for _, tc := range bodyCases {
		if b, ok := bodyOf(tc.sql); ok {
			f.Add(b)
		}
	}
	for _, sql := range malformedBodies {
		if b, ok := bodyOf(sql); ok {
			f.Add(b)
		}
	}
	f.Add("BEGIN EXECUTE 'DROP TABLE t'; END")
	f.Add("DECLARE r record; BEGIN FOR r IN EXECUTE 'x' USING 1 LOOP END LOOP; END")
	f.Add("<<l>> DECLARE a int[]; BEGIN a[(SELECT 1)] := 2; l.a := '{}'; END")
	f.Fuzz(func(t *testing.T, body string) {
		if len(body) > 4000 || strings.Contains(body, "$q$") {
			return
		}
		for _, sql := range []string{
			"CREATE FUNCTION f(a int, b text) RETURNS int LANGUAGE plpgsql AS $q$" + body + "$q$",
			"CREATE FUNCTION f() RETURNS trigger LANGUAGE plpgsql AS $q$" + body + "$q$",
			"DO $q$" + body + "$q$",
			"CREATE FUNCTION f(a int) RETURNS int LANGUAGE sql AS $q$" + body + "$q$",
		} {
			fresh, err := Classify(sql)
			if err != nil && !errors.Is(err, ErrUnparseable) {
				t.Fatalf("%q: got error %v, want ErrUnparseable", sql, err)
			}
			cached, err2 := NewClassifier(8).Classify(sql)
			if (err == nil) != (err2 == nil) || !reflect.DeepEqual(fresh, cached) {
				t.Fatalf("%q: cached %+v (%v), fresh %+v (%v)", sql, cached, err2, fresh, err)
			}
		}
	})
}

// deepDo nests n DO blocks, each running the next with EXECUTE.
func deepDo(n int) string {
	sql := "SELECT 1"
	for i := 0; i < n; i++ {
		tag := fmt.Sprintf("$t%d$", i)
		sql = "DO " + tag + "BEGIN EXECUTE " + tag + sql + tag + "; END" + tag
		sql = strings.Replace(sql, "EXECUTE "+tag, "EXECUTE $e"+fmt.Sprint(i)+"$", 1)
		sql = strings.Replace(sql, tag+"; END", "$e"+fmt.Sprint(i)+"$; END", 1)
	}
	return sql
}

// bodyOf extracts a dollar-quoted body.
func bodyOf(sql string) (string, bool) {
	i := strings.Index(sql, "$$")
	j := strings.LastIndex(sql, "$$")
	if i < 0 || j <= i {
		return "", false
	}
	return sql[i+2 : j], true
}
