package main

import (
	"archive/tar"
	"bytes"
	"encoding/binary"
	"encoding/json"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bastionhq/bastion/internal/app"
)

// An insider with the data directory (the seal key in an HSM: not theirs)
// takes a backup while a session runs, and once it ended rolls it back
// to what the backup holds: the seal deleted, the record set live, the
// backup's signed checkpoint put back and the chunks after it deleted.
// The restarted bastion must not seal the shortened recording, and verify
// must not call it intact: the audit log has the session's end.
func TestRollbackToABackupsCheckpointIsNotSealed(t *testing.T) {
	w := newWorld(t)
	sshCfg := w.loginAlice(t)
	type result struct {
		out []byte
		err error
	}
	done := make(chan result, 1)
	go func() {
		out, err := exec.Command("ssh", "-F", sshCfg, "root@web1", "echo harmless-$((6*7)); sleep 3; echo evidence-$((6*7))").CombinedOutput()
		done <- result{out, err}
	}()
	time.Sleep(1500 * time.Millisecond)
	mid := filepath.Join(t.TempDir(), "mid.tar")
	if _, errOut, code := cliRun(t, "backup", "--config", w.cfgPath, "--out", mid); code != 0 {
		t.Fatalf("backup: exit %d, %q", code, errOut)
	}
	r := <-done
	m := regexp.MustCompile(`session (\S+) is recorded`).FindSubmatch(r.out)
	if r.err != nil || m == nil || !strings.Contains(string(r.out), "evidence-42") {
		t.Fatalf("session: %v %q", r.err, r.out)
	}
	id := string(m[1])
	if rep := w.run(nil, "verify", id); rep.Code != 0 || !strings.Contains(rep.Stdout, "intact") {
		t.Fatalf("verify before: %s", rep)
	}

	// The backup's checkpoint of the session, while it ran.
	f, err := os.Open(mid)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	tr := tar.NewReader(f)
	backupDB := filepath.Join(t.TempDir(), "backup.db")
	for {
		h, err := tr.Next()
		if err != nil {
			t.Fatalf("no %s in the backup: %v", app.StoreFile, err)
		}
		if filepath.Base(h.Name) == app.StoreFile {
			b, _ := io.ReadAll(tr)
			os.WriteFile(backupDB, b, 0o600)
			break
		}
	}
	db, err := bolt.Open(backupDB, 0o600, &bolt.Options{ReadOnly: true, Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	var oldCP []byte
	db.View(func(tx *bolt.Tx) error {
		oldCP = bytes.Clone(tx.Bucket([]byte("session_checkpoints")).Get([]byte(id)))
		return nil
	})
	db.Close()
	lines := strings.Split(string(oldCP), "\n")
	if len(lines) < 3 {
		t.Fatalf("the backup has no checkpoint of %s: %q", id, oldCP)
	}
	keep, _ := strconv.ParseUint(lines[2], 10, 64)

	serve, _ := w.serveProcess(t) // stops the bastion
	db, err = bolt.Open(filepath.Join(w.app.Config.DataDir, app.StoreFile), 0o600, &bolt.Options{Timeout: 5 * time.Second})
	if err != nil {
		t.Fatal(err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket([]byte("seals")).Delete([]byte(id)); err != nil {
			return err
		}
		if err := tx.Bucket([]byte("session_checkpoints")).Put([]byte(id), oldCP); err != nil {
			return err
		}
		prefix := append([]byte(id), 0)
		c := tx.Bucket([]byte("chunks")).Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if binary.BigEndian.Uint64(k[len(prefix):]) >= keep {
				if err := c.Delete(); err != nil {
					return err
				}
			}
		}
		sb := tx.Bucket([]byte("sessions"))
		var rec map[string]any
		dec := json.NewDecoder(bytes.NewReader(sb.Get([]byte(id))))
		dec.UseNumber() // a certificate serial is beyond a float's precision
		if err := dec.Decode(&rec); err != nil {
			return err
		}
		rec["status"] = "live"
		v, _ := json.Marshal(rec)
		return sb.Put([]byte(id), v)
	})
	db.Close()
	if err != nil {
		t.Fatal(err)
	}
	proc := serve()
	defer proc.Process.Kill()
	rep := w.run(nil, "verify", id)
	if rep.Code == 0 || strings.Contains(rep.Stdout, "intact") {
		t.Errorf("verify of the rolled-back session (%d chunks kept): %s", keep, rep)
	}
	if rep := w.run(nil, "sessions", "--json"); !strings.Contains(rep.Stdout, "the audit log says the session already ended (session.end") {
		t.Errorf("the session's record does not say why it was not sealed: %s", rep)
	}
	if rep := w.run(nil, "verify", "--audit"); rep.Code != 0 {
		t.Errorf("verify --audit: %s", rep)
	}
}
