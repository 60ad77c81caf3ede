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

// A user's revocation: the latest moment is kept (a second revocation
// moves it later, an older one replayed from another replica does not move
// it back), it is loaded at Open, and each is audited once.
func TestUserRevocations(t *testing.T) {
	cfg, _ := testConfig(t)
	now := time.Date(2026, 12, 7, 5, 0, 0, 0, time.UTC)
	cfg.Now = func() time.Time { return now }
	s, err := Open(cfg)
	must(t, err)
	if _, ok := s.UserRevoked("carol"); ok {
		t.Fatal("carol revoked in a new store")
	}
	if _, err := s.RevokeUser("", AuditEvent{User: "alice"}); err == nil {
		t.Error("revoked a user with no name")
	}
	at, err := s.RevokeUser("carol", AuditEvent{User: "alice", Issuer: "https://idp", Subject: "u-alice", Reason: "left",
		Fields: map[string]string{"revoked_user": "carol"}})
	must(t, err)
	if !at.Equal(now) {
		t.Errorf("revoked up to %v, want %v", at, now)
	}
	now = now.Add(time.Hour)
	_, err = s.RevokeUser("carol", AuditEvent{User: "alice", Reason: "again"})
	must(t, err)
	// What another replica with a clock behind would write.
	must(t, s.update(func(tx Tx) error {
		return tx.RevokeUser(Revocation{User: "carol", By: "bob", Time: now.Add(-30 * time.Minute)})
	}))
	if got, ok := s.UserRevoked("carol"); !ok || !got.Equal(now) {
		t.Errorf("UserRevoked(carol) = %v, %v; want %v", got, ok, now)
	}
	if _, ok := s.UserRevoked("dave"); ok {
		t.Error("dave revoked")
	}
	must(t, s.Close())

	s2 := openStore(t, cfg)
	if got, ok := s2.UserRevoked("carol"); !ok || !got.Equal(now) {
		t.Errorf("after reopening: UserRevoked(carol) = %v, %v; want %v", got, ok, now)
	}
	revs, err := s2.UserRevocations()
	must(t, err)
	if len(revs) != 1 || revs[0].User != "carol" || revs[0].By != "alice" || revs[0].Reason != "again" || revs[0].Serial != 0 {
		t.Errorf("UserRevocations: %+v", revs)
	}
	var evs []AuditEvent
	for _, ev := range auditAll(t, s2, time.Time{}) {
		if ev.Type == "user.revoke" {
			evs = append(evs, ev)
		}
	}
	if len(evs) != 2 || evs[0].User != "alice" || evs[0].Subject != "u-alice" || evs[0].Fields["revoked_user"] != "carol" || evs[0].Reason != "left" {
		t.Errorf("user.revoke audit events: %+v", evs)
	}
	if rep, err := s2.VerifyAudit(); err != nil || !rep.Intact {
		t.Errorf("VerifyAudit: %+v, %v", rep, err)
	}
}

// A store written before user revocations existed has no bucket for them:
// opened read-only it reads none, opened to write it gains the bucket.
func TestUserRevocationsOldStore(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	must(t, s.Close())
	db, err := bolt.Open(cfg.Path, 0o600, nil)
	must(t, err)
	must(t, db.Update(func(tx *bolt.Tx) error { return tx.DeleteBucket(bucketUserRevocations) }))
	must(t, db.Close())
	ro, err := OpenReadOnly(cfg.Path, 0)
	must(t, err)
	if revs, err := ro.UserRevocations(); err != nil || len(revs) != 0 {
		t.Errorf("read-only: %+v, %v", revs, err)
	}
	must(t, ro.Close())
	s = openStore(t, cfg)
	if _, err := s.RevokeUser("carol", AuditEvent{User: "alice"}); err != nil {
		t.Fatal(err)
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
