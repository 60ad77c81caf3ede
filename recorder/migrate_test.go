package recorder

import (
	"bytes"
	"crypto/ed25519"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
)

// TestMigrate copies bbolt stores into PostgreSQL: one written now (an
// ended session, audit records, a revocation, a pin) and the format 1
// fixture (testdata/v1.db); both verify and replay from a PostgreSQL
// replica, and a second migration into the same database is refused.
func TestMigrate(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})

	t.Run("current", func(t *testing.T) {
		cfg, _ := testConfig(t)
		cfg.Now = time.Now
		s := openStore(t, cfg)
		r := begin(t, s, SessionInfo{Start: time.Now()})
		must(t, r.Output(bytes.Repeat([]byte("migrated output\r\n"), 2000)))
		must(t, r.End(ExitInfo{}))
		bulk := randomBytes(9, 1<<20) // chunks kept in the chunk log
		recordBulk(t, s, "bulk", bulk, 256<<10)
		must(t, s.Revoke(77, "alice", "lost"))
		carolAt, err := s.RevokeUser("carol", AuditEvent{User: "alice", Reason: "left"})
		must(t, err)
		must(t, s.PinHostKey("web1", []byte("key-bytes")))
		must(t, s.Close())

		dst := PostgresConfig{DSN: pg.StoreDSN(t, "current")}
		rep, err := Migrate(cfg, dst)
		if err != nil || len(rep.Problems) > 0 || rep.Sessions != 2 || rep.Chunks == 0 || rep.AuditRecords < 2 || rep.Revocations != 2 || rep.HostKeys != 1 {
			t.Fatalf("Migrate: %+v, %v", rep, err)
		}
		pcfg := pgConfig(dst.DSN, "after")
		p := openStore(t, pcfg)
		if rep := verify(t, p, r.ID()); !rep.Intact || !rep.Sealed {
			t.Fatalf("verify the copy: %+v", rep)
		}
		if got := output(events(t, p, r.ID()), 'o'); got != string(bytes.Repeat([]byte("migrated output\r\n"), 2000)) {
			t.Fatalf("the copy replays %d bytes", len(got))
		}
		if rep := verify(t, p, "bulk"); !rep.Intact || !rep.Sealed {
			t.Fatalf("verify the copy of the bulk session: %+v", rep)
		}
		if got := serverBytes(t, p, "bulk"); !bytes.Equal(got, bulk) {
			t.Fatalf("the copy of the bulk session holds %d bytes, want %d", len(got), len(bulk))
		}
		if rep, err := p.VerifyAudit(); err != nil || !rep.Intact {
			t.Fatalf("VerifyAudit of the copy: %+v, %v", rep, err)
		}
		if key, ok, err := p.PinnedHostKey("web1"); !p.IsRevoked(77) || !ok || err != nil || string(key) != "key-bytes" {
			t.Fatalf("revocation or pin lost: %v %q %v", p.IsRevoked(77), key, err)
		}
		if at, ok := p.UserRevoked("carol"); !ok || !at.Equal(carolAt) {
			t.Fatalf("carol's revocation: %v %v, want %v", at, ok, carolAt)
		}
		if _, err := Migrate(cfg, dst); err == nil {
			t.Fatal("a second migration into a database holding a store succeeded")
		}
	})

	t.Run("format 1", func(t *testing.T) {
		src, err := os.ReadFile("testdata/v1.db")
		must(t, err)
		cfg, _ := testConfig(t)
		cfg.Now = time.Now
		cfg.Path = filepath.Join(t.TempDir(), "v1.db")
		must(t, os.WriteFile(cfg.Path, src, 0o600))
		seed := make([]byte, 32)
		for i := range seed {
			seed[i] = byte(i)
		}
		cfg.SealKey = ed25519.NewKeyFromSeed(seed)
		rep, err := Migrate(cfg, PostgresConfig{DSN: pg.StoreDSN(t, "v1")})
		if err != nil || len(rep.Problems) > 0 || rep.Sessions != 2 {
			t.Fatalf("Migrate: %+v, %v", rep, err)
		}
	})
}
