package main

import (
	"crypto/ed25519"
	"crypto/rand"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/recorder"
)

// TestOfflineExportAndReplay: with --data-dir, export and replay read a
// data directory's store while no bastion runs, and say clearly when one
// holds it.
func TestOfflineExportAndReplay(t *testing.T) {
	dir := t.TempDir()
	_, key, _ := ed25519.GenerateKey(rand.Reader)
	cfg := recorder.Config{Path: filepath.Join(dir, app.StoreFile), SealKey: key}
	st, err := recorder.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := st.Begin(recorder.SessionInfo{Kind: "exec", User: "alice", Target: "web1", Command: "ls"})
	if err != nil {
		t.Fatal(err)
	}
	r.Output([]byte("offline-evidence\r\n"))
	if err := r.End(recorder.ExitInfo{}); err != nil {
		t.Fatal(err)
	}
	id := r.ID()

	_, errOut, code := cliRun(t, "export", "--data-dir", dir, id)
	if code != 1 || !strings.Contains(errOut, "in use by a running bastion") {
		t.Errorf("while the bastion holds the store: exit %d, %q", code, errOut)
	}
	st.Close()

	out, errOut, code := cliRun(t, "export", "--data-dir", dir, id)
	if code != 0 || !strings.Contains(out, `"offline-evidence\r\n"`) || !strings.HasPrefix(out, `{"version":2`) {
		t.Errorf("export --data-dir: exit %d, %q, %q", code, out, errOut)
	}
	out, errOut, code = cliRun(t, "replay", id, "--data-dir", dir, "--speed", "100")
	if code != 0 || !strings.Contains(out, "offline-evidence") {
		t.Errorf("replay --data-dir: exit %d, %q, %q", code, out, errOut)
	}
	if _, errOut, code := cliRun(t, "export", "--data-dir", dir, "01NOPE"); code != 1 || !strings.Contains(errOut, "not found") {
		t.Errorf("an unknown session: exit %d, %q", code, errOut)
	}
	if _, errOut, code := cliRun(t, "export", "--data-dir", t.TempDir(), id); code != 1 || !strings.Contains(errOut, "does not exist") {
		t.Errorf("a directory without a store: exit %d, %q", code, errOut)
	}
}
