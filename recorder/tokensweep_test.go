package recorder

import (
	"encoding/binary"
	"fmt"
	"testing"
	"time"
)

// lowerSweepBatch makes a sweep forget at most n keys for one test.
func lowerSweepBatch(t *testing.T, n int) {
	old := tokenSweepBatch
	tokenSweepBatch = n
	t.Cleanup(func() { tokenSweepBatch = old })
}

// TestTokenSweepCatchesUp: spent tokens expire faster than one sweep a
// minute of a bounded batch forgets them when issuance is busy (at 3,000
// certificates a second, 180,000 a minute), so a sweep that forgets a full
// batch is followed by another at the next commit until none is left, each
// commit forgetting at most a batch; the in-memory set shrinks with them.
func TestTokenSweepCatchesUp(t *testing.T) {
	lowerSweepBatch(t, 10)
	cfg, clk := testConfig(t)
	s := openStore(t, cfg)
	bb := s.b.(*boltBackend)
	exp := clk.Now().Add(time.Minute)
	for i := range 25 {
		if _, err := s.AuditOnce(AuditEvent{Type: "cert.issue"}, fmt.Appendf(nil, "old-%d", i), exp); err != nil {
			t.Fatal(err)
		}
	}
	must(t, s.syncAudit())
	clk.Advance(2 * time.Minute) // expired, and a minute since the last sweep

	expired := func() (stored, inMemory int) {
		now := clk.Now().UnixNano()
		must(t, s.b.View(func(tx Tx) error {
			return tx.(*boltTx).tx.Bucket(bucketTokensByExp).ForEach(func(k, _ []byte) error {
				if int64(binary.BigEndian.Uint64(k)) <= now {
					stored++
				}
				return nil
			})
		}))
		bb.tokMu.Lock()
		for _, e := range bb.used {
			if e <= now {
				inMemory++
			}
		}
		bb.tokMu.Unlock()
		return stored, inMemory
	}
	for i, want := range []int{15, 5, 0, 0} {
		// Each call journals one record and waits for the apply that
		// writes it: one commit, one sweep if one is due.
		if _, err := s.AuditOnce(AuditEvent{Type: "cert.issue"}, fmt.Appendf(nil, "new-%d", i), clk.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		must(t, s.syncAudit())
		stored, inMemory := expired()
		if stored != want || inMemory != want {
			t.Fatalf("after commit %d: %d expired keys stored and %d in memory, want %d", i+1, stored, inMemory, want)
		}
	}
	// Keys not yet expired stay spent.
	if _, err := s.AuditOnce(AuditEvent{Type: "cert.issue"}, []byte("new-0"), clk.Now().Add(time.Hour)); err == nil {
		t.Fatal("a spent token that has not expired was accepted again")
	}
}

// TestBoltForgetTokensReportsFull: ForgetTokens forgets at most a batch of
// expired keys, the oldest first, and says when it forgot a full one.
func TestBoltForgetTokensReportsFull(t *testing.T) {
	lowerSweepBatch(t, 4)
	cfg, _ := testConfig(t)
	b, err := openBolt(cfg.Path, time.Second, time.Now)
	must(t, err)
	defer b.Close()
	t0 := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	must(t, b.Update(func(tx Tx) error {
		for i := range 6 {
			if _, err := tx.SpendToken(fmt.Appendf(nil, "k-%d", i), t0.Add(time.Duration(i)*time.Second), t0); err != nil {
				return err
			}
		}
		_, err := tx.SpendToken([]byte("later"), t0.Add(time.Hour), t0)
		return err
	}))
	for i, want := range []bool{true, false, false} {
		var full bool
		must(t, b.Update(func(tx Tx) error { return tx.ForgetTokens(t0.Add(time.Minute), &full) }))
		if full != want {
			t.Fatalf("sweep %d: full = %v, want %v", i+1, full, want)
		}
	}
	must(t, b.View(func(tx Tx) error {
		n := tx.(*boltTx).tx.Bucket(bucketTokensByExp).Stats().KeyN
		if n != 1 {
			return fmt.Errorf("%d keys left, want 1 (the one not expired)", n)
		}
		return nil
	}))
}
