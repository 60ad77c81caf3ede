package pgproxy

import (
	"strings"
	"sync"
	"testing"

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
