package recorder

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/oklog/ulid/v2"
	bolt "go.etcd.io/bbolt"
)

func auditAll(t *testing.T, s *Store, since time.Time) []AuditEvent {
	t.Helper()
	var out []AuditEvent
	must(t, s.AuditEvents(since, func(ev AuditEvent) error {
		out = append(out, ev)
		return nil
	}))
	return out
}

func TestAuditLog(t *testing.T) {
	cfg, clk := testConfig(t)
	s, err := Open(cfg)
	must(t, err)
	var ids []string
	for i, typ := range []string{"cert.issue", "cert.refuse", "session.start", "command.block", "session.end"} {
		clk.Advance(time.Second)
		id, err := s.Audit(AuditEvent{Type: typ, User: "alice", Target: "web1", Outcome: "ok",
			Reason: "line\nbreak \x1b[31m", Fields: map[string]string{"n": fmt.Sprint(i)}})
		must(t, err)
		if _, err := ulid.ParseStrict(id); err != nil {
			t.Errorf("ID %q: %v", id, err)
		}
		ids = append(ids, id)
	}
	if _, err := s.Audit(AuditEvent{}); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty type: got %v, want %v", err, ErrInvalid)
	}
	got := auditAll(t, s, time.Time{})
	if len(got) != 5 || got[0].ID != ids[0] || got[4].Type != "session.end" || got[3].Fields["n"] != "3" || got[1].Reason != "line\nbreak \x1b[31m" {
		t.Fatalf("got %+v", got)
	}
	if got := auditAll(t, s, got[3].Time); len(got) != 2 || got[0].ID != ids[3] {
		t.Errorf("since: got %d events starting %v, want 2 starting %s", len(got), got, ids[3])
	}
	stop := errors.New("stop")
	if err := s.AuditEvents(time.Time{}, func(AuditEvent) error { return stop }); !errors.Is(err, stop) {
		t.Errorf("got %v, want %v", err, stop)
	}
	rep, err := s.VerifyAudit()
	must(t, err)
	if !rep.Intact || rep.Chunks != 5 || rep.BrokenAt != -1 {
		t.Errorf("verify: got %+v", rep)
	}
	must(t, s.Close()) // writes a signed checkpoint

	// The chain continues across restarts.
	s2 := openStore(t, cfg)
	_, err = s2.Audit(AuditEvent{Type: "cert.issue"})
	must(t, err)
	if rep, _ := s2.VerifyAudit(); !rep.Intact || rep.Chunks != 6 {
		t.Errorf("after reopen: got %+v", rep)
	}
}

func TestAuditConcurrent(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	var wg sync.WaitGroup
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if _, err := s.Audit(AuditEvent{Type: "cert.issue", User: fmt.Sprint("u", i)}); err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if rep, _ := s.VerifyAudit(); !rep.Intact || rep.Chunks != 20 {
		t.Errorf("got %+v, want 20 intact records", rep)
	}
}

func TestAuditTamper(t *testing.T) {
	editRecord := func(seq uint64, edit func(*auditRecord)) func(*bolt.Tx) error {
		return func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketAudit)
			var rec auditRecord
			if err := json.Unmarshal(b.Get(u64key(seq)), &rec); err != nil {
				return err
			}
			edit(&rec)
			v, _ := json.Marshal(rec)
			return b.Put(u64key(seq), v)
		}
	}
	tests := []struct {
		name    string
		edit    func(*bolt.Tx) error
		at      int64
		problem string
	}{
		{name: "event changed", edit: editRecord(3, func(r *auditRecord) {
			r.Event = json.RawMessage(strings.Replace(string(r.Event), "alice", "mallo", 1))
		}), at: 3, problem: "does not match its hash"},
		{name: "event rewritten with its hash", edit: func(tx *bolt.Tx) error {
			return editRecord(3, func(r *auditRecord) {
				r.Event = json.RawMessage(strings.Replace(string(r.Event), "alice", "mallo", 1))
				var prev [hashLen]byte
				copy(prev[:], mustHex(r.Prev))
				h := auditHash(3, prev, r.Event)
				r.Hash = fmt.Sprintf("%x", h)
			})(tx)
		}, at: 4, problem: "does not link to record 3"},
		{name: "record removed", edit: func(tx *bolt.Tx) error { return tx.Bucket(bucketAudit).Delete(u64key(2)) },
			at: 2, problem: "audit record 2 is missing"},
		{name: "tail removed", edit: func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketAudit)
			b.Delete(u64key(5))
			return b.Delete(u64key(4))
		}, at: 4, problem: "audit records 4 to 5 were removed"},
		{name: "record unreadable", edit: func(tx *bolt.Tx) error { return tx.Bucket(bucketAudit).Put(u64key(1), []byte("x")) },
			at: 1, problem: "unreadable"},
		{name: "checkpoint forged", edit: func(tx *bolt.Tx) error {
			b := tx.Bucket(bucketCheckpoints)
			k, v := b.Cursor().Last()
			var sg signed
			json.Unmarshal(v, &sg)
			sg.Payload = json.RawMessage(strings.Replace(string(sg.Payload), `"seq":5`, `"seq":4`, 1))
			nv, _ := json.Marshal(sg)
			return b.Put(k, nv)
		}, at: 5, problem: "signature does not verify"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := testConfig(t)
			s, err := Open(cfg)
			must(t, err)
			for range 5 {
				_, err := s.Audit(AuditEvent{Type: "cert.issue", User: "alice"})
				must(t, err)
			}
			must(t, s.Close())
			tamper(t, cfg.Path, tc.edit)
			s2 := openStore(t, cfg)
			rep, err := s2.VerifyAudit()
			must(t, err)
			if rep.Intact || rep.BrokenAt != tc.at || !strings.Contains(rep.Problem, tc.problem) {
				t.Errorf("got intact=%v broken_at=%d %q, want %d %q", rep.Intact, rep.BrokenAt, rep.Problem, tc.at, tc.problem)
			}
			// The log stays appendable.
			_, err = s2.Audit(AuditEvent{Type: "cert.issue"})
			must(t, err)
		})
	}
}

func mustHex(s string) []byte {
	var b []byte
	fmt.Sscanf(s, "%x", &b)
	return b
}

// A transaction that appends several audit records reads the chain's tail
// from the tree once and keeps it as it appends; what it keeps is what the
// tree holds after each append, and a record written out of order (not the
// tail's successor) makes it read the tree again.
func TestBoltAuditTailInTransaction(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	err := s.b.Update(func(tx Tx) error {
		for i := range 5 {
			if _, err := s.appendAudit(tx, AuditEvent{Type: "test.event", User: "alice", Fields: map[string]string{"n": strconv.Itoa(i)}}); err != nil {
				return err
			}
			bt := tx.(*boltTx)
			seq, h, _ := bt.AuditTail()
			treeSeq, treeHash := auditTail(bt.tx.Bucket(bucketAudit))
			if !bt.tail.known || seq != treeSeq || h != treeHash {
				t.Fatalf("after append %d: kept %d %x (known %v), the tree %d %x", i, seq, h, bt.tail.known, treeSeq, treeHash)
			}
		}
		bt := tx.(*boltTx)
		seq, _, _ := bt.AuditTail()
		if err := bt.AppendAudit(seq+5, [hashLen]byte{1}, []byte(`{"seq":0,"hash":"`+strings.Repeat("01", hashLen)+`"}`)); err != nil {
			return err
		}
		if bt.tail.known {
			t.Error("a record that is not the tail's successor left the tail known")
		}
		if got, _, _ := bt.AuditTail(); got != seq+5 {
			t.Errorf("the tail after an out-of-order record: %d, want %d", got, seq+5)
		}
		return errors.New("rolled back") // leave the chain as it was
	})
	if err == nil || err.Error() != "rolled back" {
		t.Fatal(err)
	}
	if rep, err := s.VerifyAudit(); err != nil || !rep.Intact {
		t.Fatalf("verify --audit: %+v %v", rep, err)
	}
}

// A listing from a date starts near it, found by bisection, not by reading
// the log from its first record (the console's pages list from a date on
// every load), and still lists every event dated since then whose time is
// out of order with its neighbours by less than AuditTimeSlack (records
// made by replicas whose clocks differ).
func TestAuditEventsSinceSeeks(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	t0 := time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC)
	const n = 300
	for i := range n {
		at := t0.Add(time.Duration(i) * time.Minute)
		switch i {
		case 150:
			at = at.Add(-30 * time.Minute) // a replica running behind
		case 151:
			at = at.Add(20 * time.Minute) // and one ahead
		}
		if _, err := s.Audit(AuditEvent{Type: "cert.issue", User: "alice", Time: at, Fields: map[string]string{"i": strconv.Itoa(i)}}); err != nil {
			t.Fatal(err)
		}
	}
	all := auditAll(t, s, time.Time{})
	if len(all) != n {
		t.Fatalf("%d events, want %d", len(all), n)
	}
	for _, since := range []time.Duration{-time.Hour, 0, 30 * time.Second, 119 * time.Minute, 125 * time.Minute, 140 * time.Minute, 150 * time.Minute, 165 * time.Minute, 171 * time.Minute, 299 * time.Minute, 300 * time.Minute, 1000 * time.Hour} {
		at := t0.Add(since)
		var want []string
		for _, ev := range all {
			if !ev.Time.Before(at) {
				want = append(want, ev.Fields["i"])
			}
		}
		var got []string
		for _, ev := range auditAll(t, s, at) {
			got = append(got, ev.Fields["i"])
		}
		if strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("since %v: got %v, want %v", since, got, want)
		}
	}
	// The seek lands an hour before the date, not at the log's start.
	from, err := s.auditSeqAfter(t0.Add(250 * time.Minute).Add(-AuditTimeSlack))
	if err != nil || from < 150 || from > 200 {
		t.Errorf("auditSeqAfter: %d, %v; want the record about an hour before (seq 191)", from, err)
	}
}
