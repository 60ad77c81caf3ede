package app

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/recorder"
)

// A sink's copy larger than verify --audit --against reads is refused, not
// compared in part: the newest records, the ones that show a store rolled
// back or its tail deleted, are at its end, and comparing only its start
// said intact.
func TestVerifyAgainstACopyTooLargeToRead(t *testing.T) {
	_, key, _ := ed25519.GenerateKey(nil)
	cfg := recorder.Config{Path: filepath.Join(t.TempDir(), "bastion.db"), SealKey: key}
	audit := func(s *recorder.Store, from, to int) {
		for i := from; i <= to; i++ {
			if _, err := s.Audit(recorder.AuditEvent{Type: "cert.issue", User: "alice", Reason: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	s, err := recorder.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	audit(s, 1, 10)
	s.Close()
	old, err := os.ReadFile(cfg.Path)
	if err != nil {
		t.Fatal(err)
	}
	s, err = recorder.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	audit(s, 11, 20)
	var sink bytes.Buffer // what the sink received: every record
	if _, err := s.AuditLines(0, 1<<20, func(l []byte) error { sink.Write(l); sink.WriteByte('\n'); return nil }); err != nil {
		t.Fatal(err)
	}
	s.Close()
	// The store is rolled back to its earlier copy (with its journal gone).
	if err := os.WriteFile(cfg.Path, old, 0o600); err != nil {
		t.Fatal(err)
	}
	os.Remove(recorder.JournalPath(cfg.Path))
	s, err = recorder.Open(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	a := &App{Store: s, Log: slog.New(slog.DiscardHandler)}
	verify := func() (int, string) {
		var out bytes.Buffer
		st := a.cmdVerify(context.Background(), bastion.Caller{Auditor: true}, []string{"--audit", "--against", "-"},
			bastion.AdminIO{Stdin: bytes.NewReader(sink.Bytes()), Stdout: &out, Stderr: &out})
		return st, out.String()
	}
	if st, out := verify(); st == 0 || !strings.Contains(out, "truncated") {
		t.Fatalf("the whole copy: exit %d: %s", st, out)
	}
	defer func(n int64) { maxAgainstBytes = n }(maxAgainstBytes)
	maxAgainstBytes = int64(bytes.Index(sink.Bytes(), []byte(`{"seq":11,`))) // the copy is too long by records 11 to 20
	if st, out := verify(); st == 0 || !strings.Contains(out, "larger than") {
		t.Fatalf("a copy over the limit: exit %d: %s", st, out)
	}
}
