package recorder

import (
	"bytes"
	"errors"
	"path/filepath"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
)

func TestRevocations(t *testing.T) {
	cfg, _ := testConfig(t)
	s, err := Open(cfg)
	must(t, err)
	if s.IsRevoked(42) {
		t.Fatalf("serial 42 revoked in a new store")
	}
	must(t, s.Revoke(42, "admin", "laptop stolen"))
	must(t, s.Revoke(42, "other", "again")) // keeps the first
	must(t, s.Revoke(7, "admin", "left"))
	if !s.IsRevoked(42) || s.IsRevoked(43) {
		t.Errorf("IsRevoked: got 42=%v 43=%v, want true false", s.IsRevoked(42), s.IsRevoked(43))
	}
	must(t, s.Close())

	s2 := openStore(t, cfg)
	if !s2.IsRevoked(42) || !s2.IsRevoked(7) {
		t.Errorf("revocations not loaded at Open")
	}
	revs, err := s2.Revocations()
	must(t, err)
	if len(revs) != 2 || revs[0].Serial != 7 || revs[1].Serial != 42 || revs[1].By != "admin" || revs[1].Reason != "laptop stolen" {
		t.Errorf("got %+v", revs)
	}
	var n int
	for _, ev := range auditAll(t, s2, time.Time{}) {
		if ev.Type == "cert.revoke" {
			n++
		}
	}
	if n != 2 {
		t.Errorf("got %d cert.revoke audit events, want 2", n)
	}
}

func TestHostKeyPins(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	key, ok, err := s.PinnedHostKey("web1")
	if err != nil || ok || key != nil {
		t.Fatalf("got %q, %v, %v, want no pin", key, ok, err)
	}
	k1 := []byte("ssh-ed25519 key one")
	must(t, s.PinHostKey("web1", k1))
	k1[0] = 'X' // the store kept its own copy
	must(t, s.PinHostKey("web1", []byte("ssh-ed25519 key one")))
	if err := s.PinHostKey("web1", []byte("ssh-ed25519 key two")); !errors.Is(err, ErrPinMismatch) {
		t.Errorf("different key: got %v, want %v", err, ErrPinMismatch)
	}
	key, ok, err = s.PinnedHostKey("web1")
	if err != nil || !ok || string(key) != "ssh-ed25519 key one" {
		t.Errorf("got %q, %v, %v, want the first key", key, ok, err)
	}
	for _, target := range []string{"", string(bytes.Repeat([]byte("t"), 256)), "bad\xff"} {
		if err := s.PinHostKey(target, k1); !errors.Is(err, ErrInvalid) {
			t.Errorf("PinHostKey(%q): got %v, want %v", target, err, ErrInvalid)
		}
	}
	if err := s.PinHostKey("web2", nil); !errors.Is(err, ErrInvalid) {
		t.Errorf("empty key: got %v, want %v", err, ErrInvalid)
	}
}

func TestPurgeAndCompact(t *testing.T) {
	cfg, clk := testConfig(t)
	cfg.Retention = 24 * time.Hour
	s, err := Open(cfg)
	must(t, err)
	old := begin(t, s, SessionInfo{ID: "old"})
	must(t, old.Output(bytes.Repeat([]byte("o"), 100<<10)))
	longLived := begin(t, s, SessionInfo{ID: "long"}) // started long ago, ends recently
	stillLive := begin(t, s, SessionInfo{ID: "live"})
	clk.Advance(time.Hour)
	must(t, old.End(ExitInfo{}))
	clk.Advance(47 * time.Hour)
	must(t, longLived.End(ExitInfo{}))
	recent := begin(t, s, SessionInfo{ID: "recent"})
	must(t, recent.End(ExitInfo{}))

	n, err := s.Purge()
	must(t, err)
	if n != 1 {
		t.Errorf("purged %d sessions, want 1", n)
	}
	if _, err := s.Session("old"); !errors.Is(err, ErrNotFound) {
		t.Errorf("old session: got %v, want %v", err, ErrNotFound)
	}
	for _, id := range []string{"long", "live", "recent"} {
		if _, err := s.Session(id); err != nil {
			t.Errorf("%s: %v", id, err)
		}
	}
	list, _ := s.Sessions(SessionFilter{})
	if len(list) != 3 {
		t.Errorf("got %d sessions listed, want 3", len(list))
	}
	var purges int
	for _, ev := range auditAll(t, s, time.Time{}) {
		if ev.Type == "session.purge" && ev.SessionID == "old" {
			purges++
		}
	}
	if purges != 1 {
		t.Errorf("got %d session.purge audit events, want 1", purges)
	}
	must(t, stillLive.End(ExitInfo{}))
	must(t, s.Close())

	db, err := bolt.Open(cfg.Path, 0o600, nil)
	must(t, err)
	must(t, db.View(func(tx *bolt.Tx) error {
		c := tx.Bucket(bucketChunks).Cursor()
		if k, _ := c.Seek(chunkPrefix("old")); k != nil && bytes.HasPrefix(k, chunkPrefix("old")) {
			t.Errorf("chunks of the purged session remain")
		}
		if tx.Bucket(bucketSeals).Get([]byte("old")) != nil {
			t.Errorf("seal of the purged session remains")
		}
		return nil
	}))
	must(t, db.Close())

	compacted := filepath.Join(t.TempDir(), "compact.db")
	must(t, Compact(compacted, cfg.Path))
	cfg.Path = compacted
	s2 := openStore(t, cfg)
	for _, id := range []string{"long", "live", "recent"} {
		if rep := verify(t, s2, id); !rep.Intact || !rep.Sealed {
			t.Errorf("%s after compaction: %+v", id, rep)
		}
	}
	if rep, _ := s2.VerifyAudit(); !rep.Intact {
		t.Errorf("audit after compaction: %+v", rep)
	}
}

func TestPurgeWithoutRetention(t *testing.T) {
	cfg, clk := testConfig(t)
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{})
	must(t, r.End(ExitInfo{}))
	clk.Advance(10000 * time.Hour)
	if n, err := s.Purge(); n != 0 || err != nil {
		t.Errorf("got %d, %v, want 0, nil", n, err)
	}
}
