package pgproxy

import (
	"context"
	"testing"
	"time"
)

func classifyOne(t *testing.T, sql string) *Statement {
	t.Helper()
	sts, err := Classify(sql)
	if err != nil || len(sts) != 1 {
		t.Fatalf("classify %q: %v", sql, err)
	}
	return &sts[0]
}

// TestLineageSuspectUntilIdle: a statement that may change definitions makes the
// session suspect from its analysis until a ReadyForQuery that answers it (or a later
// message) reports the session outside a transaction.
func TestLineageSuspectUntilIdle(t *testing.T) {
	s := &session{ctx: context.Background(), lineage: newLineageState(), catalog: newSideCatalog(nil, time.Now)}
	if got := s.lineageBegin(); got != "" {
		t.Fatalf("suspect at start: %q", got)
	}
	for _, sql := range []string{"CREATE INDEX i ON t (a)", "GRANT SELECT ON t TO x", "DROP FUNCTION f(int)", "CREATE TABLE t2 (a int)", "SELECT 1", "BEGIN", "SET search_path = public"} {
		s.lineageMark(classifyOne(t, sql), &lineage{})
		if got := s.lineageBegin(); got != "" {
			t.Fatalf("%s made the session suspect: %q", sql, got)
		}
	}
	s.pendingRFQ = 1 // an earlier message is still to be answered
	s.lineageMark(classifyOne(t, "ALTER FUNCTION f(int) RENAME TO g"), &lineage{})
	steps := []struct {
		status  byte
		suspect bool
	}{
		{'I', true},  // the earlier message's answer: the rename is not yet answered
		{'T', true},  // the rename's, in a transaction
		{'T', true},  // a later statement's
		{'I', false}, // COMMIT's
	}
	for i, st := range steps {
		s.lineageReady(st.status)
		if st.status == 'I' && i == 0 {
			s.pendingRFQ = 1 // the earlier one left, the rename's message was sent
		}
		if got := s.lineageBegin(); (got != "") != st.suspect {
			t.Fatalf("step %d: suspect %q, want %v", i, got, st.suspect)
		}
	}
	// A function whose body may define marks too.
	s.pendingRFQ = 0
	s.lineageMark(classifyOne(t, "SELECT f(1)"), &lineage{ddl: true})
	if s.lineageBegin() == "" {
		t.Fatal("a defining function did not make the session suspect")
	}
	s.lineageReady('I')
	if s.lineageBegin() != "" {
		t.Fatal("still suspect after ReadyForQuery idle")
	}
	// A defining statement prepared with the extended protocol: suspect while the server
	// holds it, and after it is closed until a later ReadyForQuery says idle.
	st := classifyOne(t, "CREATE OR REPLACE VIEW v AS SELECT 1")
	st.Protocol = "parse"
	s.lineageMark(st, &lineage{})
	s.lineageParsed("s1", &stmtRun{st: *st})
	s.lineageParsed("s2", &stmtRun{st: *classifyOne(t, "SELECT 1")})
	for i := 0; i < 3; i++ {
		s.lineageReady('I')
	}
	if s.lineageBegin() == "" {
		t.Fatal("a definition prepared with the extended protocol: not suspect")
	}
	s.lineageClosed("s1")
	if s.lineageBegin() == "" {
		t.Fatal("not suspect right after closing a defining statement")
	}
	s.lineageReady('T')
	if s.lineageBegin() == "" {
		t.Fatal("not suspect in the transaction after closing a defining statement")
	}
	s.lineageReady('I')
	if got := s.lineageBegin(); got != "" {
		t.Fatalf("still suspect after idle: %q", got)
	}
}
