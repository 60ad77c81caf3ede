package auditsink

import (
	"crypto/ed25519"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// A sink's cursor is kept in the store, beside the log: moved past the
// log's head by someone who can write the store (a replica's database user,
// or the file at rest), it made the shipper wait for records that did not
// exist yet and ship nothing while everything written meanwhile stayed on
// the box. A cursor past the head is not believed: the sink is told, and
// receives the records.
func TestSinkCursorPastTheHead(t *testing.T) {
	s := openStore(t)
	for i := range 3 {
		if _, err := s.Audit(recorder.AuditEvent{Type: "before", Reason: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.SetSinkCursor("webhook", 1<<40); err != nil {
		t.Fatal(err)
	}
	rcv := newReceiver(t)
	startShipper(t, s, rcv)
	for i := range 5 {
		if _, err := s.Audit(recorder.AuditEvent{Type: "after", Reason: fmt.Sprint(i)}); err != nil {
			t.Fatal(err)
		}
	}
	waitFor(t, "the records written after the cursor was moved", func() bool {
		seqs := rcv.seqs()
		return len(seqs) > 0 && seqs[len(seqs)-1] == 8
	})
	rcv.mu.Lock()
	all := strings.Join(rcv.lines, "\n")
	rcv.mu.Unlock()
	if !strings.Contains(all, `"cursor_ahead"`) {
		t.Errorf("the sink was not told its cursor was past the log: %s", all)
	}
}

// The same on a PostgreSQL store, where the database user every replica
// logs in as moves the cursor while a replica ships.
func TestSharedSinkCursorPastTheHead(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	dsn := pg.StoreDSN(t, "cursor")
	_, key, _ := ed25519.GenerateKey(nil)
	s, err := recorder.Open(recorder.Config{
		Postgres: &recorder.PostgresConfig{DSN: dsn, Name: "a", Lease: time.Second, Poll: 100 * time.Millisecond},
		SealKey:  key, FlushInterval: 20 * time.Millisecond,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	rcv := newReceiver(t)
	startShipper(t, s, rcv)
	audit := func(n int) {
		for i := range n {
			if _, err := s.Audit(recorder.AuditEvent{Type: "test", Reason: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	audit(3)
	waitFor(t, "the first records", func() bool { return len(rcv.seqs()) >= 3 })
	pg.ExecIn(t, "cursor", `UPDATE bastion_sinks SET delivered = 1000000000`)
	audit(5)
	waitFor(t, "the records written after the cursor was moved", func() bool {
		seqs := rcv.seqs()
		return len(seqs) > 0 && seqs[len(seqs)-1] == 8
	})
}
