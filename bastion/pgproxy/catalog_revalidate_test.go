package pgproxy

import (
	"context"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/jackc/pgx/v5/pgconn"
)

// TestCatalogRevalidate: against a real server, the digests revalidate compares are
// stable while nothing changes (the cache, and analyses memoized on it, survive), and
// differ after another connection's CREATE OR REPLACE, a rename, or a new hook.
func TestCatalogRevalidate(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": lineageSeed + `
CREATE FUNCTION chk_ok(v int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT v > 0';
CREATE DOMAIN dok AS int CHECK (chk_ok(VALUE));`},
	})
	conn := pg.Connect(t, "app", "shop")
	cat := newSideCatalog(func(context.Context) (*pgconn.PgConn, error) { return conn.PgConn(), nil }, time.Now)
	ctx := context.Background()
	lookups := func() {
		t.Helper()
		if _, err := cat.relations(ctx, "", []string{"customers", "cust_view", "people", "nowhere"}); err != nil {
			t.Fatal(err)
		}
		if _, err := cat.relationByOID(ctx, 1); err != nil {
			t.Fatal(err)
		}
		if _, err := cat.functions(ctx, []string{"get_name", "upper", "nosuch", "chk_ok"}); err != nil {
			t.Fatal(err)
		}
		hs, err := cat.hooks(ctx)
		if err != nil {
			t.Fatal(err)
		}
		found := false
		for _, h := range hs {
			found = found || h.Kind == "i" && h.Name == "chk_ok"
		}
		if !found {
			t.Fatalf("hooks: the domain check's function is missing: %+v", hs)
		}
	}
	lookups()
	gen, _ := cat.generation(false)
	// Without a change through this process, the server is not asked again
	// before revalidateEvery.
	cat.revalidate(ctx)
	before := cat.validated
	cat.revalidate(ctx)
	if !cat.validated.Equal(before) {
		t.Fatal("revalidate asked the server again with nothing changed")
	}
	for i := 0; i < 3; i++ {
		definitionsEpoch.Add(1) // as a proxied session's DDL would: ask the server
		cat.revalidate(ctx)
		if g, _ := cat.generation(false); g != gen {
			t.Fatalf("revalidate dropped an unchanged cache (round %d)", i)
		}
	}
	for _, change := range []string{
		"CREATE OR REPLACE FUNCTION get_name(i int) RETURNS text LANGUAGE sql STABLE AS 'SELECT city FROM customers WHERE id = i'",
		"CREATE OR REPLACE VIEW cust_view AS SELECT id, city AS who, city FROM customers",
		"CREATE FUNCTION public.nosuch() RETURNS int LANGUAGE sql AS 'SELECT 1'",
		"ALTER TABLE customers RENAME COLUMN city TO town",
		"CREATE OR REPLACE FUNCTION chk_ok(v int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT v > 1'",
		"CREATE FUNCTION other_chk(v int) RETURNS boolean LANGUAGE sql IMMUTABLE AS 'SELECT true'; CREATE DOMAIN d2 AS int CHECK (other_chk(VALUE))",
	} {
		lookups()
		gen, _ := cat.generation(false)
		pg.ExecIn(t, "shop", change)
		definitionsEpoch.Add(1)
		cat.revalidate(ctx)
		if g, _ := cat.generation(false); g == gen {
			t.Fatalf("after %q: the cache was kept", change)
		}
	}
}
