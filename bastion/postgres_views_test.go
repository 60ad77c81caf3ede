package bastion_test

import (
	"strings"
	"testing"
)

// TestPostgresTableRuleFollowsViews: through the stock ssh -L and psql, with the real
// policy, a rule scoped to a table (no-orders-delete) stops deletes that reach the
// table through a view, a view of a view, or a view created in the same query; reads
// through the view and writes elsewhere still run.
func TestPostgresTableRuleFollowsViews(t *testing.T) {
	p := newPGEnv(t)
	orders := func() string { return p.pg.QueryStrings(t, "shop", "SELECT count(*) FROM orders")[0] }
	for _, tc := range []struct {
		sql     string
		blocked bool
	}{
		{"DELETE FROM orders WHERE id = 1", true},
		{"CREATE VIEW ov AS SELECT * FROM orders", false},
		{"DELETE FROM ov WHERE id = 1", true},
		{"DELETE FROM ov", true},
		{"CREATE VIEW ovv AS SELECT id, customer FROM ov", false},
		{"DELETE FROM ovv WHERE id = 2", true},
		{"CREATE VIEW o1 AS SELECT * FROM orders; DELETE FROM o1", true},
		{"SELECT count(*) FROM ovv", false},
		{"CREATE VIEW tv AS SELECT * FROM t", false},
		{"DELETE FROM tv WHERE id = 1", false},
	} {
		r := p.psql(t, "", "-c", tc.sql)
		if tc.blocked && (r.Code == 0 || !strings.Contains(r.Stderr, "blocked")) {
			t.Errorf("%q: got %s, want a block", tc.sql, r)
		}
		if !tc.blocked && r.Code != 0 {
			t.Errorf("%q: got %s, want it to run", tc.sql, r)
		}
	}
	if n := orders(); n != "3" {
		t.Errorf("orders has %s rows, want 3", n)
	}
	if got := p.pg.QueryStrings(t, "shop", "SELECT count(*) FROM t"); got[0] != "1" {
		t.Errorf("t has %s rows, want 1 (the delete through tv did not run)", got[0])
	}
}
