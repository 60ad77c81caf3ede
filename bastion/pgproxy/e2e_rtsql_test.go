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
