package pgproxy

import (
	"context"
	"strings"
	"testing"

	"github.com/bastionhq/bastion/internal/testenv"
)

// scsRule is the proxy's own rule refusing standard_conforming_strings changes.
const scsRule = "pgproxy:standard-conforming-strings"

// TestSCSRunTimeChangeRefused: pg_query reads SQL as standard_conforming_strings=on; a
// function's SET clause, or a SET earlier in the same Query, would make the server read a
// body the classifier judged harmless as something else (a string constant becoming a
// string and a DROP). Every such statement is refused with the proxy's own rule, audited,
// and nothing of it reaches the server; setting it on still works.
func TestSCSRunTimeChangeRefused(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app", "other", "priv"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": guardSeed},
	})
	h := startProxy(t, pg, func(c *Config) { c.Judge = guardJudge })
	ctx := context.Background()
	for _, sql := range []string{
		"CREATE TABLE mine1 (id int); INSERT INTO mine1 VALUES (1),(2),(3)",
		"CREATE TABLE mine2 (id int); INSERT INTO mine2 VALUES (1),(2),(3)",
		"CREATE TABLE mine3 (id int); INSERT INTO mine3 VALUES (1),(2),(3)",
		`CREATE FUNCTION benign2() RETURNS text LANGUAGE plpgsql AS $$BEGIN PERFORM 'x\''; TRUNCATE mine3; --';
RETURN 'ok'; END$$`,
	} {
		if r := h.psql(t, "", "-c", sql); r.err != nil {
			t.Fatalf("%s: %v %s", sql, r.err, r.stderr)
		}
	}
	intact := func(t *testing.T, table string) {
		t.Helper()
		if !tableExists(t, pg, table) {
			t.Fatalf("table %s was dropped", table)
		}
		if n := countRows(t, pg, table); n != "3" {
			t.Fatalf("%s has %s rows, want 3", table, n)
		}
	}
	refused := func(t *testing.T, err error, stderr string) {
		t.Helper()
		msg := stderr
		if err != nil {
			msg += err.Error()
		}
		if !strings.Contains(msg, "standard_conforming_strings") || !strings.Contains(msg, "42501") && !strings.Contains(msg, "refused") {
			t.Errorf("not refused for standard_conforming_strings: err=%v stderr=%q", err, stderr)
		}
	}

	t.Run("function SET clause (pgx, extended protocol)", func(t *testing.T) {
		conn := h.connect(t, "app", "shop", nil)
		_, err := conn.Exec(ctx, `CREATE FUNCTION harmless() RETURNS void LANGUAGE sql SET standard_conforming_strings = off AS $$SELECT 'x\''; DROP TABLE mine1; --'$$`)
		refused(t, err, "")
		_, _ = conn.Exec(ctx, "SELECT harmless()")
		intact(t, "mine1")
		if got := pg.QueryStrings(t, "shop", "SELECT count(*) FROM pg_proc WHERE proname = 'harmless'"); got[0] != "0" {
			t.Error("function harmless was created")
		}
	})
	t.Run("SET then DO in one Query (psql)", func(t *testing.T) {
		r := h.psql(t, "", "-c", "SET standard_conforming_strings = off; DO $$BEGIN PERFORM 'x\\''; DROP TABLE mine2; --';\nEND$$")
		refused(t, r.err, r.stderr)
		intact(t, "mine2")
	})
	t.Run("set_config then DO in one Query (psql)", func(t *testing.T) {
		r := h.psql(t, "", "-c", "SELECT set_config('standard_conforming_strings', 'off', false); DO $$BEGIN PERFORM 'x\\''; DROP TABLE mine2; --';\nEND$$")
		refused(t, r.err, r.stderr)
		intact(t, "mine2")
	})
	t.Run("ALTER FUNCTION SET (psql)", func(t *testing.T) {
		r := h.psql(t, "", "-c", "ALTER FUNCTION benign2() SET standard_conforming_strings = off")
		refused(t, r.err, r.stderr)
		h.psql(t, "", "-c", "SELECT benign2()")
		intact(t, "mine3")
		if got := pg.QueryStrings(t, "shop", "SELECT count(*) FROM pg_proc WHERE proname = 'benign2' AND proconfig IS NOT NULL"); got[0] != "0" {
			t.Error("benign2 has a SET clause")
		}
	})
	t.Run("SET then DO SET ROLE (pgx, simple protocol)", func(t *testing.T) {
		conn := h.connect(t, "app", "shop", nil)
		_, err := conn.Exec(ctx, "SET standard_conforming_strings = off; DO $$BEGIN PERFORM 'x\\''; SET ROLE priv; --';\nEND$$; SET standard_conforming_strings = on")
		refused(t, err, "")
		var who string
		if err := conn.QueryRow(ctx, "SELECT current_user").Scan(&who); err != nil || who != "app" {
			t.Errorf("current_user = %q, %v; want app", who, err)
		}
	})
	t.Run("role and database settings (psql)", func(t *testing.T) {
		for _, sql := range []string{
			"ALTER ROLE app SET standard_conforming_strings = off",
			"ALTER ROLE app IN DATABASE shop SET standard_conforming_strings = off",
			"RESET standard_conforming_strings",
		} {
			r := h.psql(t, "", "-c", sql)
			refused(t, r.err, r.stderr)
		}
		if got := pg.QueryStrings(t, "shop", "SELECT count(*) FROM pg_db_role_setting"); got[0] != "0" {
			t.Errorf("a role or database setting was stored: %v", got)
		}
	})
	t.Run("on is allowed", func(t *testing.T) {
		r := h.psql(t, "", "-A", "-t", "-c", "SET standard_conforming_strings = on; SELECT 'a\\b'")
		if r.err != nil || strings.TrimSpace(r.stdout) != `a\b` {
			t.Errorf("got %q, %v %s", r.stdout, r.err, r.stderr)
		}
	})
	var audited int
	for _, ev := range h.Events() {
		if ev.Rule == scsRule && ev.Outcome == OutcomeBlocked {
			audited++
		}
	}
	if audited < 7 {
		t.Errorf("%d refusals audited with rule %s, want at least 7", audited, scsRule)
	}
}

// TestSCSMaskedFunction: the same change would hide a masked column's read from the
// lineage analysis; a function created outside the proxy with the setting in its SET
// clause (pg_proc.proconfig) is not read as pg_query reads it, so its result is
// unknowable (masked) rather than traced from a misread body.
func TestSCSMaskedFunction(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": lineageSeed + `
CREATE FUNCTION leak_pre() RETURNS text LANGUAGE sql STABLE SET standard_conforming_strings = off
  AS $$SELECT 'x\'' || (SELECT name FROM customers ORDER BY id LIMIT 1) --'$$;
`},
	})
	h := startProxy(t, pg, func(c *Config) {
		c.Judge = allowAll
		c.MaskColumn = nil
		c.Masks = lineageMasks(false)
	})
	ctx := context.Background()
	t.Run("created through the proxy (pgx)", func(t *testing.T) {
		conn := h.connect(t, "app", "shop", nil)
		_, err := conn.Exec(ctx, `CREATE FUNCTION leak() RETURNS text LANGUAGE sql STABLE SET standard_conforming_strings = off AS $$SELECT 'x\'' || (SELECT name FROM customers ORDER BY id LIMIT 1) --'$$`)
		if err == nil || !strings.Contains(err.Error(), "standard_conforming_strings") {
			t.Errorf("CREATE FUNCTION: %v; want refused", err)
		}
	})
	t.Run("created outside the proxy", func(t *testing.T) {
		r := h.psql(t, "", "-A", "-t", "-c", "SELECT leak_pre()")
		if r.err != nil || leaksName(r.stdout+r.stderr) || strings.TrimSpace(r.stdout) == "" {
			t.Errorf("SELECT leak_pre(): %q %q %v; want the mask", r.stdout, r.stderr, r.err)
		}
	})
	t.Run("SET then DO RAISE NOTICE (psql)", func(t *testing.T) {
		r := h.psql(t, "", "-c", "SET standard_conforming_strings = off; DO $$BEGIN RAISE NOTICE '%', 'x\\''; RAISE NOTICE '%', (SELECT name FROM customers ORDER BY id LIMIT 1); --';\nEND$$")
		if leaksName(r.stdout+r.stderr) || !strings.Contains(r.stderr, "standard_conforming_strings") {
			t.Errorf("got %q %q; want refused", r.stdout, r.stderr)
		}
	})
}
