package pgproxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// memCatalog is a catalog in memory for the analysis's table tests and fuzzing (the
// end-to-end tests read a real server's catalog).
type memCatalog struct {
	rels  []*relInfo
	funcs []*funcInfo
	fail  bool
	mu    sync.Mutex
	views map[uint32][]taint
}

func (m *memCatalog) relations(_ context.Context, schema string, names []string) ([]*relInfo, error) {
	if m.fail {
		return nil, errors.New("catalog down")
	}
	var out []*relInfo
	for _, r := range m.rels {
		if contains(names, r.Name) && (schema == "" || schema == r.Schema) {
			out = append(out, r)
		}
	}
	return out, nil
}

func (m *memCatalog) relationByOID(_ context.Context, oid uint32) (*relInfo, error) {
	for _, r := range m.rels {
		if r.OID == oid {
			return r, nil
		}
	}
	return nil, nil
}

func (m *memCatalog) functions(_ context.Context, names []string) ([]*funcInfo, error) {
	if m.fail {
		return nil, errors.New("catalog down")
	}
	var out []*funcInfo
	for _, f := range m.funcs {
		if contains(names, f.Name) {
			out = append(out, f)
		}
	}
	return out, nil
}

func (m *memCatalog) viewTaints(r *relInfo) ([]taint, bool) {
	m.mu.Lock()
	defer m.mu.Unlock()
	t, ok := m.views[r.OID]
	return t, ok
}

func (m *memCatalog) setViewTaints(r *relInfo, t []taint) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.views == nil {
		m.views = map[uint32][]taint{}
	}
	m.views[r.OID] = t
}

type fixedMasks struct{ block bool }

func (f fixedMasks) source(schema, table, column string) bool {
	return table == "customers" && column == "name"
}
func (f fixedMasks) blockUnknowable() bool { return f.block }

func testCatalog() *memCatalog {
	return &memCatalog{
		rels: []*relInfo{
			{OID: 1, Schema: "public", Name: "customers", Kind: "r", Cols: []string{"id", "name", "", "city"}},
			{OID: 2, Schema: "public", Name: "staff", Kind: "r", Cols: []string{"id", "name"}},
			{OID: 3, Schema: "public", Name: "v", Kind: "v", Cols: []string{"i", "who"}, Def: " SELECT customers.id AS i, customers.name AS who FROM public.customers;"},
			{OID: 4, Schema: "public", Name: "broken_view", Kind: "v", Cols: []string{"x"}, Def: "SELEC nonsense"},
			{OID: 5, Schema: "other", Name: "staff", Kind: "r", Cols: []string{"id", "name", "extra"}},
			{OID: 6, Schema: "public", Name: "remote", Kind: "f", Cols: []string{"id"}},
			{OID: 7, Schema: "public", Name: "parent", Kind: "p", Cols: []string{"id", "name"}, Descendants: [][2]string{{"public", "customers"}}},
		},
		funcs: []*funcInfo{
			{Schema: "pg_catalog", Name: "upper", Lang: "internal"},
			{Schema: "pg_catalog", Name: "count", Lang: "internal", Kind: "a"},
			{Schema: "pg_catalog", Name: "row_to_json", Lang: "internal"},
			{Schema: "pg_catalog", Name: "ts_rewrite", Lang: "internal"},
			{Schema: "public", Name: "get_name", Lang: "sql", Def: "CREATE FUNCTION public.get_name(i int) RETURNS text LANGUAGE sql AS $f$SELECT name FROM public.customers WHERE id = i$f$"},
			{Schema: "public", Name: "twice", Lang: "sql", Def: "CREATE FUNCTION public.twice(i int) RETURNS int LANGUAGE sql AS $f$SELECT i * 2$f$"},
			{Schema: "public", Name: "native", Lang: "c"},
		},
	}
}

// lineageCases: each statement's result columns, masked (m), clear (-) or
// unknowable (?), or the refusal ("leak").
var lineageCases = []struct {
	sql  string
	cols string // one letter per column; "" for no result
	leak bool
}{
	{"SELECT id, name, city FROM customers", "-m-", false},
	{"SELECT name AS n FROM customers", "m", false},
	{"SELECT upper(name), count(*) FROM customers GROUP BY 1", "m-", false},
	{"SELECT c FROM customers c", "m", false},
	{"SELECT row_to_json(c), c.id FROM customers c", "m-", false},
	{"SELECT c.row_to_json FROM customers c", "m", false},
	{"SELECT * FROM customers", "-m-", false},
	{"SELECT c.*, s.* FROM customers c, public.staff s", "-m---", false},
	{"SELECT s.* FROM staff s", "?", false}, // two relations named staff, of different widths
	{"SELECT * FROM (SELECT name AS x, id FROM customers) s", "m-", false},
	{"SELECT s.x FROM (SELECT name AS x FROM customers) s", "m", false},
	{"WITH a AS (SELECT name FROM customers) SELECT name FROM a", "m", false},
	{"WITH RECURSIVE r(n) AS (SELECT 'x' UNION ALL SELECT name FROM customers, r) SELECT n FROM r", "m", false},
	{"SELECT who, i FROM v", "m-", false},
	{"SELECT x FROM broken_view", "?", false},
	{"SELECT name FROM staff", "-", false}, // either staff: clear
	{"SELECT name FROM public.staff", "-", false},
	{"SELECT get_name(1), twice(2)", "m-", false},
	{"SELECT native()", "?", false},
	{"SELECT name FROM nowhere", "?", false},
	{"SELECT (SELECT name FROM customers LIMIT 1), 1", "m-", false},
	{"SELECT exists(SELECT * FROM customers)", "-", false},
	{"SELECT name FROM customers UNION SELECT 'x'", "m", false},
	{"VALUES (1, (SELECT name FROM customers))", "-m", false},
	{"SELECT CASE WHEN name = 'x' THEN 1 END FROM customers", "m", false},
	{"SELECT a.id FROM customers a JOIN staff b USING (id) WHERE a.name = 'x'", "-", false},
	{"SELECT * FROM customers JOIN public.staff USING (id)", "-m--", false},
	{"INSERT INTO staff SELECT id, name FROM customers", "", true},
	{"INSERT INTO customers (id, name) SELECT id, name FROM customers RETURNING name", "m", false},
	{"UPDATE public.staff SET name = c.name FROM customers c WHERE c.id = staff.id", "", true},
	{"UPDATE customers SET city = 'x' WHERE id = 1 RETURNING city, name", "-m", false},
	{"DELETE FROM customers RETURNING *", "-m-", false},
	{"CREATE TABLE t AS SELECT name FROM customers", "", true},
	{"SELECT pg_notify('c', name) FROM customers", "m", true},
	{"ALTER TABLE customers RENAME COLUMN name TO n", "", true},
	{"ALTER TABLE customers RENAME TO c2", "", true},
	{"ALTER TABLE customers RENAME COLUMN city TO town", "", false},
	{"COPY customers TO '/tmp/x'", "", true},
	{"COPY (SELECT id FROM customers) TO '/tmp/x'", "", false},
	{"EXPLAIN SELECT name FROM customers", "-", false},
	{"FETCH ALL FROM nocursor", "?", false},
	{"EXECUTE noprepared", "?", false},
	{"PREPARE ins AS INSERT INTO customers (id) VALUES (1)", "", false},
	{"SELECT * FROM pg_stats", "?", false},
	{"SELECT query_to_xml('select 1', true, true, '')", "?", false},
	{"SELECT ts_rewrite('a'::tsquery, 'SELECT ''a''::tsquery, quote_literal(string_agg(name, '' ''))::tsquery FROM customers')", "?", false},
	{"SELECT pg_catalog.ts_rewrite('a'::tsquery, 'a'::tsquery, 'b'::tsquery)", "-", false},
	{"SELECT table_to_xml('customers', true, true, '')", "?", false},
	{"SELECT id FROM remote", "?", false},
	{"SELECT id, name FROM parent", "-m", false},
	{"CREATE TABLE d (a text DEFAULT get_name(1))", "", true},
	{"CREATE TABLE d (a int DEFAULT twice(1))", "", false},
	{"ALTER TABLE public.staff ALTER COLUMN name SET DEFAULT get_name(1)", "", true},
	{"CREATE DOMAIN dn AS text DEFAULT get_name(1)", "", true},
	{"CREATE FUNCTION fill() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.x := (SELECT name FROM customers LIMIT 1); RETURN NEW; END$$", "", true},
	{"CREATE FUNCTION reader() RETURNS text LANGUAGE sql AS 'SELECT name FROM customers LIMIT 1'", "", false},
	{"DO $$BEGIN RAISE NOTICE '%', (SELECT name FROM customers LIMIT 1); END$$", "", false},
	{"DO $$BEGIN INSERT INTO staff SELECT id, name FROM customers; END$$", "", true},
}

func analyzeForTest(t testing.TB, cat *memCatalog, sql string, block bool) *lineage {
	t.Helper()
	sts, err := Classify(sql)
	if err != nil || len(sts) != 1 {
		t.Fatalf("%q: %v", sql, err)
	}
	res, err := pgParse(sql)
	if err != nil {
		t.Fatal(err)
	}
	a := &analyzer{ctx: context.Background(), cat: cat, views: cat, masks: fixedMasks{block}, state: newLineageState(),
		funcMemo: map[string]funcLineage{}, stmt: &sts[0]}
	return a.analyzeStatement(res.Stmts[0].Stmt)
}

func letters(lin *lineage) string {
	if lin.out == nil {
		return ""
	}
	cols, ok := lin.out.flat()
	if !ok {
		return "?"
	}
	var b strings.Builder
	for _, c := range cols {
		switch {
		case c.t.masked:
			b.WriteByte('m')
		case c.t.unknown != "":
			b.WriteByte('?')
		default:
			b.WriteByte('-')
		}
	}
	return b.String()
}

func TestLineage(t *testing.T) {
	cat := testCatalog()
	for _, tc := range lineageCases {
		lin := analyzeForTest(t, cat, tc.sql, false)
		if got := letters(lin); got != tc.cols && !(tc.cols == "?" && lin.out != nil && lin.out.all().unknown != "") {
			t.Errorf("%s: got columns %q, want %q", tc.sql, got, tc.cols)
		}
		if (lin.leak != "") != tc.leak {
			t.Errorf("%s: got leak %q, want %v", tc.sql, lin.leak, tc.leak)
		}
	}
}

// A prepared statement that returns no rows is known, not unknowable.
func TestLineagePreparedWithoutRows(t *testing.T) {
	cat := testCatalog()
	st := newLineageState()
	for _, sql := range []string{"PREPARE ins AS INSERT INTO customers (id) VALUES (1)", "EXECUTE ins"} {
		sts, _ := Classify(sql)
		res, _ := pgParse(sql)
		a := &analyzer{ctx: context.Background(), cat: cat, views: cat, masks: fixedMasks{true}, state: st, funcMemo: map[string]funcLineage{}, stmt: &sts[0]}
		lin := a.analyzeStatement(res.Stmts[0].Stmt)
		if lin.define != nil {
			lin.define(st)
		}
		if lin.out != nil && lin.out.all().dirty() {
			t.Errorf("%s: got %+v, want a clean result", sql, lin.out.all())
		}
	}
}

func TestLineageCatalogDown(t *testing.T) {
	cat := testCatalog()
	cat.fail = true
	lin := analyzeForTest(t, cat, "SELECT id FROM customers", false)
	if lin.out == nil || lin.out.all().unknown == "" || !lin.touched.dirty() {
		t.Errorf("got %+v; want every column unknowable when the catalog cannot be read", lin)
	}
}

func TestResultTaints(t *testing.T) {
	m := taint{masked: true}
	u := unknownTaint("x")
	r := &result{items: []resultItem{{cols: []outCol{{name: "a"}}}, {open: true, openT: m}, {cols: []outCol{{name: "z"}}}}}
	got := r.taints(5)
	if len(got) != 5 || got[0].dirty() || !got[1].masked || !got[3].masked || got[4].dirty() {
		t.Errorf("one open item: got %+v", got)
	}
	r = &result{items: []resultItem{{cols: []outCol{{name: "a"}, {name: "b", t: u}}}}}
	if got := r.taints(3); len(got) != 3 || got[0].unknown == "" || got[2].unknown == "" {
		t.Errorf("count mismatch: got %+v, want every column unknowable", got)
	}
	r = &result{items: []resultItem{{cols: []outCol{{name: "a"}}}}}
	if got := r.taints(2); got[0].unknown == "" || got[1].unknown == "" {
		t.Errorf("a clear result with the wrong number of columns: got %+v, want unknowable", got)
	}
}

// FuzzLineage analyses arbitrary statements that parse against the test catalog: the
// analysis never panics, and is the same when run twice.
func FuzzLineage(f *testing.F) {
	for _, tc := range lineageCases {
		f.Add(tc.sql)
	}
	for _, tc := range bodyCases {
		f.Add(tc.sql)
	}
	f.Fuzz(func(t *testing.T, sql string) {
		if len(sql) > 2000 {
			return
		}
		sts, err := Classify(sql)
		if err != nil || len(sts) != 1 {
			return
		}
		res, err := pgParse(sql)
		if err != nil || len(res.Stmts) != 1 || res.Stmts[0].Stmt == nil {
			return
		}
		run := func() string {
			cat := testCatalog()
			a := &analyzer{ctx: context.Background(), cat: cat, views: cat, masks: fixedMasks{}, state: newLineageState(),
				funcMemo: map[string]funcLineage{}, stmt: &sts[0]}
			lin := a.analyzeStatement(res.Stmts[0].Stmt)
			return letters(lin) + "|" + lin.leak
		}
		if a, b := run(), run(); a != b {
			t.Fatalf("%q: %q then %q", sql, a, b)
		}
	})
}

// FuzzLineageCachedTree: the lineage analysis of a text on the classifier's cached tree
// of another text with other constants (the tree a session reuses instead of parsing)
// is the analysis of the text's own tree, unless it read a constant's value, when the
// session parses the text after all.
func FuzzLineageCachedTree(f *testing.F) {
	for _, tc := range lineageCases {
		f.Add(tc.sql, "x")
	}
	f.Add("SELECT abalance FROM pgbench_accounts WHERE aid = 48213;", "1")
	f.Add("EXPLAIN (ANALYZE 'false') DELETE FROM customers RETURNING name", "true")
	f.Add("SELECT name, 'a' AS card FROM customers WHERE id = 1", "b")
	f.Fuzz(func(t *testing.T, sql, repl string) {
		if len(sql) > 2000 {
			return
		}
		other, ok := rewriteConstants(sql, repl)
		if !ok {
			return
		}
		c := NewClassifier(8)
		if _, err := c.Classify(sql); err != nil {
			return
		}
		sts, err := c.Classify(other)
		tree := c.lineageTree(other)
		if err != nil || len(sts) != 1 || tree == nil || tree.sql == other {
			return
		}
		res, err := pgParse(other)
		if err != nil || len(res.Stmts) != 1 || res.Stmts[0].Stmt == nil {
			t.Fatalf("%q parses, with a cached tree from %q: %v", other, sql, err)
		}
		run := func(root *pg.Node) (string, bool) {
			cat := testCatalog()
			constRead := false
			a := &analyzer{ctx: context.Background(), cat: cat, views: cat, masks: fixedMasks{}, state: newLineageState(),
				funcMemo: map[string]funcLineage{}, stmt: &sts[0], constRead: &constRead}
			lin := a.analyzeStatement(root)
			out := letters(lin) + "|" + lin.leak + "|" + fmt.Sprint(lin.copyOut, lin.touched.masked, lin.touched.unknown != "")
			if lin.out != nil {
				all := lin.out.all()
				out += fmt.Sprint("|", all.masked, all.unknown != "")
			}
			return out, constRead
		}
		cached, constRead := run(tree.stmt)
		if constRead {
			return // the session parses other itself
		}
		if fresh, _ := run(res.Stmts[0].Stmt); cached != fresh {
			t.Fatalf("%q on the tree of %q: %q, on its own: %q", other, sql, cached, fresh)
		}
	})
}

// BenchmarkLineageSelect is the lineage analysis of pgbench -S's statement on a parsed
// tree (what a session does per statement once the classifier has the tree cached).
func BenchmarkLineageSelect(b *testing.B) {
	const sql = "SELECT abalance FROM pgbench_accounts WHERE aid = 48213;"
	sts, err := Classify(sql)
	if err != nil {
		b.Fatal(err)
	}
	res, err := pgParse(sql)
	if err != nil {
		b.Fatal(err)
	}
	cat := testCatalog()
	for b.Loop() {
		a := &analyzer{ctx: context.Background(), cat: cat, views: cat, masks: fixedMasks{}, state: newLineageState(),
			funcMemo: map[string]funcLineage{}, stmt: &sts[0]}
		a.analyzeStatement(res.Stmts[0].Stmt)
	}
}
