package pgproxy

import (
	"context"
	"testing"
)

// hookCatalog is memCatalog with hooks.
type hookCatalog struct {
	*memCatalog
	hs []*hookInfo
}

func (h *hookCatalog) hooks(context.Context) ([]*hookInfo, error) { return h.hs, nil }

func analyzeHooked(t *testing.T, cat catalogReader, views viewCache, sql, suspect string) *lineage {
	t.Helper()
	sts, err := Classify(sql)
	if err != nil || len(sts) != 1 {
		t.Fatalf("%q: %v", sql, err)
	}
	res, err := pgParse(sql)
	if err != nil {
		t.Fatal(err)
	}
	a := &analyzer{ctx: context.Background(), cat: cat, views: views, masks: fixedMasks{false}, state: newLineageState(),
		funcMemo: map[string]funcLineage{}, stmt: &sts[0], suspect: suspect}
	return a.analyzeStatement(res.Stmts[0].Stmt)
}

func TestLineageHooks(t *testing.T) {
	mc := testCatalog()
	mc.funcs = append(mc.funcs,
		&funcInfo{Schema: "public", Name: "opn", Lang: "sql", Def: "CREATE FUNCTION public.opn(a int, b int) RETURNS text LANGUAGE sql AS $f$SELECT name FROM public.customers WHERE id = a$f$"},
		&funcInfo{Schema: "public", Name: "towrap", Lang: "sql", Def: "CREATE FUNCTION public.towrap(i int) RETURNS text LANGUAGE sql AS $f$SELECT name FROM public.customers WHERE id = i$f$"},
		&funcInfo{Schema: "public", Name: "leakname", Lang: "sql", Def: "CREATE FUNCTION public.leakname(o public.staff) RETURNS text LANGUAGE sql AS $f$SELECT name FROM public.customers WHERE id = o.id$f$"},
	)
	explicit := &hookCatalog{mc, []*hookInfo{
		{Kind: "o", Key: "###", Schema: "public", Name: "opn"},
		{Kind: "c", Key: "wrap", Ctx: "e", Schema: "public", Name: "towrap"},
		{Kind: "c", Key: "wrapd", Ctx: "e", Schema: "public", Name: "towrap"}, // a domain over wrap
		{Kind: "o", Key: "+++", Schema: "public", Name: "twice"},
	}}
	for _, tc := range []struct{ sql, cols string }{
		{"SELECT 1 ### 1, 1 +++ 1, 1 + 1", "m--"},
		{"SELECT 1 OPERATOR(public.###) 1", "m"},
		{"SELECT 1 ### ANY (SELECT 1)", "m"},
		{"SELECT 1 = ANY (SELECT 1)", "-"},
		{"SELECT (1::wrap).v, CAST(1 AS wrapd), 1::int", "mm-"},
		{"SELECT s.leakname, s.id FROM public.staff s", "m-"},
		{"SELECT (s).leakname FROM public.staff s", "m"},
		{"SELECT s.nosuchfunc FROM public.staff s", "-"},
		{"SELECT city FROM customers", "-"},
	} {
		if got := letters(analyzeHooked(t, explicit, mc, tc.sql, "")); got != tc.cols {
			t.Errorf("%s: got %q, want %q", tc.sql, got, tc.cols)
		}
	}
	if lin := analyzeHooked(t, explicit, mc, "SELECT id FROM customers ORDER BY id USING ###", ""); !lin.touched.masked {
		t.Errorf("ORDER BY USING ###: touched %+v, want masked (its messages withheld)", lin.touched)
	}
	// An implicit hook that reads masked columns taints everything, and refuses copies.
	implicit := &hookCatalog{mc, []*hookInfo{{Kind: "c", Key: "wrap2", Ctx: "i", Schema: "public", Name: "towrap"}}}
	if lin := analyzeHooked(t, implicit, mc, "SELECT city, 1 FROM customers", ""); letters(lin) != "mm" || !lin.touched.masked {
		t.Errorf("implicit cast: got %q (touched %+v), want every column masked", letters(lin), lin.touched)
	}
	if lin := analyzeHooked(t, implicit, mc, "INSERT INTO public.staff VALUES (1, 'x')", ""); lin.leak == "" {
		t.Error("implicit cast: an INSERT was not refused")
	}
	// Defining one through the bastion is refused.
	for _, sql := range []string{
		"CREATE CAST (int AS wrap2) WITH FUNCTION get_name(int) AS IMPLICIT",
		"CREATE CAST (int AS wrap2) WITH FUNCTION get_name(int) AS ASSIGNMENT",
		"CREATE DOMAIN dd AS int CHECK (get_name(VALUE) IS NOT NULL)",
		"CREATE OPERATOR = (LEFTARG = int, RIGHTARG = int, FUNCTION = get_name)",
	} {
		if lin := analyzeHooked(t, explicit, mc, sql, ""); lin.leak == "" {
			t.Errorf("%s: not refused", sql)
		}
	}
	for _, sql := range []string{
		"CREATE CAST (int AS wrap2) WITH FUNCTION get_name(int)",
		"CREATE OPERATOR ### (LEFTARG = int, RIGHTARG = int, FUNCTION = get_name)",
		"CREATE DOMAIN dd AS int CHECK (twice(VALUE) > 0)",
	} {
		if lin := analyzeHooked(t, explicit, mc, sql, ""); lin.leak != "" {
			t.Errorf("%s: refused: %s", sql, lin.leak)
		}
	}
	// Replacing a function the server applies implicitly with one that reads masked
	// columns is refused.
	check := &hookCatalog{mc, []*hookInfo{{Kind: "i", Schema: "public", Name: "twice"}}}
	if lin := analyzeHooked(t, check, mc, "CREATE OR REPLACE FUNCTION public.twice(i int) RETURNS text LANGUAGE sql AS 'SELECT name FROM customers WHERE id = i'", ""); lin.leak == "" {
		t.Error("replacing an implicitly applied function: not refused")
	}
}

// ALTER COLUMN TYPE … USING stores its expression in every row, as a default would.
func TestLineageAlterTypeUsing(t *testing.T) {
	mc := testCatalog()
	if lin := analyzeHooked(t, mc, mc, "ALTER TABLE public.staff ALTER COLUMN name TYPE text USING get_name(id)", ""); lin.leak == "" {
		t.Error("ALTER COLUMN TYPE USING a masked value: not refused")
	}
	if lin := analyzeHooked(t, mc, mc, "ALTER TABLE public.staff ALTER COLUMN name TYPE varchar USING upper(name)", ""); lin.leak != "" {
		t.Errorf("ALTER COLUMN TYPE USING its own column: refused: %s", lin.leak)
	}
}

// TestLineageSuspect: while the catalog is suspect, everything it says is unknowable and
// values of unknowable origin are not copied.
func TestLineageSuspect(t *testing.T) {
	mc := testCatalog()
	why := "an earlier statement changed definitions"
	for _, tc := range []struct{ sql, cols string }{
		{"SELECT city, twice(1), 1 FROM customers", "???"},
		{"SELECT 1 + 1", "?"},
	} {
		lin := analyzeHooked(t, mc, mc, tc.sql, why)
		if got := letters(lin); got != tc.cols {
			t.Errorf("%s: got %q, want %q", tc.sql, got, tc.cols)
		}
		if lin.touched.unknown == "" {
			t.Errorf("%s: messages not withheld", tc.sql)
		}
	}
	for _, sql := range []string{"INSERT INTO public.staff SELECT id, city FROM customers", "INSERT INTO public.staff VALUES (1, 'x')", "UPDATE public.staff SET name = 'x'"} {
		if lin := analyzeHooked(t, mc, mc, sql, why); lin.leak == "" {
			t.Errorf("%s: not refused while suspect", sql)
		}
	}
	if lin := analyzeHooked(t, mc, mc, "SELECT city FROM customers", ""); letters(lin) != "-" {
		t.Errorf("not suspect: got %q", letters(lin))
	}
}
