package recorder

import (
	"bytes"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestOpenReadOnly: a store no bastion holds opens read-only and exports;
// while a bastion holds it, OpenReadOnly says so instead of waiting; a
// backup is a consistent copy that opens as a store of its own.
func TestOpenReadOnly(t *testing.T) {
	cfg, _ := testConfig(t)
	s, err := Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	r, err := s.Begin(SessionInfo{Kind: "exec", User: "alice", Target: "web1", Command: "ls"})
	if err != nil {
		t.Fatal(err)
	}
	must(t, r.Output([]byte("hello\r\n")))
	must(t, r.End(ExitInfo{Status: 0, Blocked: 1}))
	id := r.ID()

	if _, err := OpenReadOnly(cfg.Path, 50*time.Millisecond); !errors.Is(err, ErrLocked) {
		t.Fatalf("while the store is open: got %v, want ErrLocked", err)
	}
	var backup bytes.Buffer
	var announced int64
	n, err := s.Backup(&backup, func(size int64) error { announced = size; return nil })
	if err != nil || n != announced || int64(backup.Len()) != n {
		t.Fatalf("Backup: %d bytes written, %d announced, %d in the buffer, %v", n, announced, backup.Len(), err)
	}
	must(t, s.Close())

	for name, path := range map[string]string{"the store": cfg.Path, "its backup": writeFile(t, backup.Bytes())} {
		t.Run(name, func(t *testing.T) {
			ro, err := OpenReadOnly(path, 0)
			if err != nil {
				t.Fatal(err)
			}
			defer ro.Close()
			info, err := ro.Session(id)
			if err != nil || info.Status != StatusEnded || info.Blocked != 1 {
				t.Fatalf("Session: %+v, %v", info, err)
			}
			var cast bytes.Buffer
			if err := ro.Export(id, &cast); err != nil || !strings.Contains(cast.String(), `"hello\r\n"`) {
				t.Fatalf("Export: %v\n%s", err, cast.String())
			}
			if _, err := ro.Begin(SessionInfo{Kind: "exec", User: "bob", Target: "web1"}); !errors.Is(err, ErrReadOnly) {
				t.Errorf("Begin on a read-only store: got %v, want ErrReadOnly", err)
			}
			if _, err := ro.Audit(AuditEvent{Type: "x", Outcome: "y"}); !errors.Is(err, ErrReadOnly) {
				t.Errorf("Audit on a read-only store: got %v, want ErrReadOnly", err)
			}
		})
	}
	if _, err := OpenReadOnly(filepath.Join(t.TempDir(), "nope.db"), 0); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a missing store: got %v", err)
	}
	if _, err := OpenReadOnly(writeFile(t, []byte("not a bbolt file")), 0); err == nil {
		t.Error("a file that is not a store opened")
	}
}

func writeFile(t *testing.T, b []byte) string {
	t.Helper()
	p := filepath.Join(t.TempDir(), "copy.db")
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}
