package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/recorder"
)

// TestBackupRefusesPostgresStore: with the store in PostgreSQL (after
// `store migrate`, which leaves the old bastion.db where it was), `bastion
// backup --config` must not back up that stale bbolt file as if it were the
// store, and `restore --config` must not restore one that the replicas
// would never read: both say to use the database's own tools.
func TestBackupRefusesPostgresStore(t *testing.T) {
	dataDir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	st, err := recorder.Open(recorder.Config{Path: filepath.Join(dataDir, app.StoreFile), SealKey: key})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := st.Audit(recorder.AuditEvent{Type: "test.before-migrate"}); err != nil {
		t.Fatal(err)
	}
	st.Close()
	// The CA keys stay files in data_dir/ca (any file will do here).
	os.MkdirAll(filepath.Join(dataDir, "ca"), 0o700)
	os.WriteFile(filepath.Join(dataDir, "ca", "user_ca"), []byte("not a key\n"), 0o600)
	cfgPath := filepath.Join(t.TempDir(), "bastion.yaml")
	os.WriteFile(cfgPath, []byte(fmt.Sprintf("listen: {ssh: \"127.0.0.1:0\", http: \"127.0.0.1:0\"}\ndata_dir: %s\n"+
		"oidc: {issuer: \"https://idp.example.com\", client_id: bastion}\n"+
		"store: {postgres: {dsn: \"host=127.0.0.1 port=1 dbname=bastion user=bastion password=s3cret-pw sslmode=verify-full\"}}\n", dataDir)), 0o600)

	out := filepath.Join(t.TempDir(), "b.tar")
	_, errOut, code := cliRun(t, "backup", "--config", cfgPath, "--out", out)
	if code == 0 || !strings.Contains(errOut, "pg_dump") {
		t.Errorf("backup of a bastion whose store is in PostgreSQL: exit %d, %q; want a refusal naming pg_dump", code, errOut)
	}
	if _, err := os.Stat(out); err == nil {
		t.Error("a backup file was written")
	}
	if strings.Contains(errOut, "s3cret-pw") {
		t.Errorf("the message shows the DSN's password: %q", errOut)
	}

	_, errOut, code = cliRun(t, "restore", "--config", cfgPath, "--from", out)
	if code == 0 || !strings.Contains(errOut, "PostgreSQL") {
		t.Errorf("restore into a bastion whose store is in PostgreSQL: exit %d, %q", code, errOut)
	}
}
