package recorder

import (
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

// AuditLater records go out with the next group commit, chained in order
// with synchronous ones, and a Close commits what is still waiting.
func TestAuditLater(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	id1, err := s.AuditLater(AuditEvent{Type: "sql.statement", Outcome: "ok"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Audit(AuditEvent{Type: "command.block", Outcome: "blocked"}); err != nil {
		t.Fatal(err)
	}
	s.sync()
	var types []string
	s.AuditEvents(time.Time{}, func(ev AuditEvent) error { types = append(types, ev.Type+"/"+ev.ID[:4]); return nil })
	if len(types) != 2 {
		t.Fatalf("got %v, want both records", types)
	}
	if _, err := s.AuditLater(AuditEvent{}); err == nil {
		t.Error("an event without a type was accepted")
	}
	id3, _ := s.AuditLater(AuditEvent{Type: "command.allow"})
	s.Close()
	s2 := openStore(t, cfg)
	found := map[string]bool{}
	s2.AuditEvents(time.Time{}, func(ev AuditEvent) error { found[ev.ID] = true; return nil })
	if !found[id1] || !found[id3] {
		t.Fatalf("deferred records lost: %v", found)
	}
	if rep, err := s2.VerifyAudit(); err != nil || !rep.Intact {
		t.Fatalf("chain: %+v %v", rep, err)
	}
}

// Concurrent synchronous audits are committed in batches by the commit
// loop and every caller gets its answer.
func TestAuditCommitLoop(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	var wg sync.WaitGroup
	for i := 0; i < 64; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for j := 0; j < 20; j++ {
				if _, err := s.Audit(AuditEvent{Type: "cert.issue"}); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	wg.Wait()
	n := 0
	s.AuditEvents(time.Time{}, func(AuditEvent) error { n++; return nil })
	if n != 64*20 {
		t.Fatalf("got %d records, want %d", n, 64*20)
	}
	if rep, err := s.VerifyAudit(); err != nil || !rep.Intact {
		t.Fatalf("chain: %+v %v", rep, err)
	}
}

func BenchmarkAuditSync(b *testing.B) {
	cfg, _ := testConfig(b)
	s := openStore(b, cfg)
	b.SetParallelism(8)
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			if _, err := s.Audit(AuditEvent{Type: "cert.issue", User: "alice", Fields: map[string]string{"serial": "123"}}); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "records/s")
}

// BenchmarkAuditOnce: 16 writers spending one-time tokens, as certificate
// issuance does, with the audit journal and without it (two bbolt fsyncs
// per batch), side by side in one run.
func BenchmarkAuditOnce(b *testing.B) {
	for _, mode := range []string{"journal", "bbolt"} {
		b.Run(mode, func(b *testing.B) {
			cfg, clk := testConfig(b)
			cfg.noJournal = mode == "bbolt"
			benchSpend(b, openStore(b, cfg), clk.Now().Add(5*time.Minute))
		})
	}
}

// benchSpend runs 16 writers auditing issuances, each with a token of its
// own, and reports the rate.
func benchSpend(b *testing.B, s *Store, exp time.Time) {
	var n atomic.Int64
	b.SetParallelism(8)
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			key := fmt.Appendf(nil, "tok-%d", n.Add(1))
			if _, err := s.AuditOnce(AuditEvent{Type: "cert.issue", User: "alice", Fields: map[string]string{"serial": "123"}}, key, exp); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "issuances/s")
}

// The hand-built audit record is byte for byte what json.Marshal of
// auditRecord gives (older stores and the verifier read that form).
func TestAuditRecordEncoding(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	if _, err := s.Audit(AuditEvent{Type: "cert.issue", User: "al\"ice", Fields: map[string]string{"b": "2", "a": "<1>"}}); err != nil {
		t.Fatal(err)
	}
	must(t, s.syncAudit())
	s.boltDB().View(func(tx *bolt.Tx) error {
		k, v := tx.Bucket(bucketAudit).Cursor().Last()
		var rec auditRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			t.Fatal(err)
		}
		want, _ := json.Marshal(rec)
		if string(v) != string(want) {
			t.Errorf("record %x:\n got %s\nwant %s", k, v, want)
		}
		return nil
	})
}

// A one-time token buys one audited action: of many concurrent uses exactly
// one succeeds; the key is forgotten once it has expired.
func TestAuditOnce(t *testing.T) {
	cfg, clk := testConfig(t)
	s := openStore(t, cfg)
	key := []byte("token-key")
	exp := clk.Now().Add(5 * time.Minute)
	var ok, replay atomic.Int32
	var wg sync.WaitGroup
	for range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.AuditOnce(AuditEvent{Type: "cert.issue", User: "ci"}, key, exp)
			switch {
			case err == nil:
				ok.Add(1)
			case errors.Is(err, ErrReplay):
				replay.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 1 || replay.Load() != 19 {
		t.Fatalf("%d succeeded, %d refused; want 1 and 19", ok.Load(), replay.Load())
	}
	if _, err := s.AuditOnce(AuditEvent{Type: "cert.issue"}, []byte("other"), exp); err != nil {
		t.Fatalf("another token: %v", err)
	}
	if _, err := s.AuditOnce(AuditEvent{Type: "cert.issue"}, nil, exp); !errors.Is(err, ErrInvalid) {
		t.Fatalf("no key: %v", err)
	}
	// A reopened store still remembers the keys.
	must(t, s.Close())
	s = openStore(t, cfg)
	if _, err := s.AuditOnce(AuditEvent{Type: "cert.issue"}, key, exp); !errors.Is(err, ErrReplay) {
		t.Fatalf("after reopening: %v", err)
	}
	// After expiry (and a sweep), the key is gone from the store.
	clk.Advance(10 * time.Minute)
	if _, err := s.Audit(AuditEvent{Type: "tick"}); err != nil {
		t.Fatal(err)
	}
	must(t, s.syncAudit()) // the journaled record and the sweep are applied
	must(t, s.boltDB().View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketTokensByExp).Stats().KeyN != 0 {
			t.Error("expired token keys are still stored")
		}
		return nil
	}))
}
