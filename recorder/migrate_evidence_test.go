package recorder

import (
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
	bolt "go.etcd.io/bbolt"
)

// A migration that stops part way (here a damaged session; as well a kill
// or a lost connection) leaves a database holding part of the store: some
// sessions, no audit log. A replica opened on it must refuse it rather than
// serve an audit log that verifies intact with the records never copied.
func TestInterruptedMigrationIsRefused(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	cfg, _ := testConfig(t)
	cfg.Now = time.Now
	s := openStore(t, cfg)
	broken := begin(t, s, SessionInfo{Start: time.Now().Add(-time.Hour)})
	must(t, broken.Output([]byte("first")))
	s.sync()
	must(t, broken.Output([]byte("second")))
	must(t, broken.End(ExitInfo{}))
	good := begin(t, s, SessionInfo{Start: time.Now()})
	must(t, good.Output([]byte("copied")))
	must(t, good.End(ExitInfo{}))
	for range 5 {
		_, err := s.Audit(AuditEvent{Type: "cert.issue", User: "alice"})
		must(t, err)
	}
	must(t, s.Close())
	tamper(t, cfg.Path, func(tx *bolt.Tx) error { return tx.Bucket(bucketChunks).Delete(chunkKey(broken.ID(), 0)) })

	dst := PostgresConfig{DSN: pg.StoreDSN(t, "partial")}
	if _, err := Migrate(cfg, dst); err == nil {
		t.Fatal("the migration of a damaged store succeeded")
	}
	p, err := Open(pgConfig(dst.DSN, "replica"))
	if err == nil {
		rep, _ := p.VerifyAudit()
		p.Close()
		t.Fatalf("a replica opened the half-migrated store (its audit log: %+v)", rep)
	}
	if !strings.Contains(err.Error(), "migration") {
		t.Errorf("got %v, want it to name the unfinished migration", err)
	}
}
