package recorder

import (
	"crypto"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder/asciicast"
)

// BenchmarkFlushManySessions measures one flush of many live sessions that
// each wrote one line since the last: what a bastion with a thousand busy
// terminals pays every FlushInterval, with the seal key in a file and in
// SoftHSM2.
func BenchmarkFlushManySessions(b *testing.B) {
	keys := map[string]func(b *testing.B) crypto.Signer{
		"ed25519-file": func(*testing.B) crypto.Signer { return testKey },
		"softhsm-p256": func(b *testing.B) crypto.Signer {
			h := testenv.SoftHSM(b)
			k, closeKey, err := ca.CreateKey("pkcs11:token=bastion;id=%01;object=seal?module-path="+h.Module+"&pin-value="+h.PIN, ca.PurposeSeal, ca.AlgECDSAP256)
			if err != nil {
				b.Fatal(err)
			}
			b.Cleanup(func() { closeKey() })
			return k
		},
	}
	for _, kn := range []string{"ed25519-file", "softhsm-p256"} {
		for _, n := range []int{100, 1000} {
			b.Run(fmt.Sprintf("%s/%d-sessions", kn, n), func(b *testing.B) {
				key := keys[kn](b)
				s, err := Open(Config{Path: filepath.Join(b.TempDir(), "bench.db"), SealKey: key, FlushInterval: time.Hour})
				if err != nil {
					b.Fatal(err)
				}
				b.Cleanup(func() { s.Close() })
				recs := make([]*Recording, n)
				for i := range recs {
					if recs[i], err = s.Begin(SessionInfo{Kind: "shell", User: "bench", Target: "t"}); err != nil {
						b.Fatal(err)
					}
				}
				line := []byte("2026-12-07T21:00:00Z INFO worker-7 GET /api/v1/items?page=3 200 1834B 12ms\r\n")
				b.ResetTimer()
				for range b.N {
					for _, r := range recs {
						if err := r.Output(line); err != nil {
							b.Fatal(err)
						}
					}
					s.flush(false)
				}
			})
		}
	}
}

// TestQuietSessionBuffers checks how a session's pending buffer is sized:
// by what it wrote in the last flush interval, so a thousand sessions each
// printing a line per interval do not each allocate a smallBuffer per flush
// (most of what a busy bastion allocated), growing by doubling up to
// smallBuffer and then to a pooled buffer; and that what is written
// survives every step.
func TestQuietSessionBuffers(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{})
	capNow := func() int {
		r.mu.Lock()
		defer r.mu.Unlock()
		return cap(r.pending)
	}
	line := []byte(strings.Repeat("x", 98) + "\r\n")
	var want strings.Builder
	write := func(n int) {
		t.Helper()
		for range n {
			must(t, r.Output(line))
			want.Write(line)
		}
	}
	write(1)
	if c := capNow(); c != minBuffer {
		t.Fatalf("a line's first buffer: cap %d, want %d", c, minBuffer)
	}
	s.sync()
	write(1)
	if c := capNow(); c != minBuffer {
		t.Fatalf("a line after a line: cap %d, want %d", c, minBuffer)
	}
	write(9) // about 1.1 KiB: doubles twice
	if c := capNow(); c != 2048 {
		t.Fatalf("ten lines: cap %d, want 2048", c)
	}
	s.sync()
	write(1) // sized by the last interval
	if c := capNow(); c != 2048 {
		t.Fatalf("a line after ten: cap %d, want 2048", c)
	}
	write(60) // past smallBuffer: a pooled buffer
	if c := capNow(); c != s.bigBuffer() {
		t.Fatalf("sixty lines: cap %d, want the pool's %d", c, s.bigBuffer())
	}
	s.sync()
	write(1) // a quiet interval after a busy one: small again
	if c := capNow(); c != smallBuffer {
		t.Fatalf("a line after a busy interval: cap %d, want %d", c, smallBuffer)
	}
	s.sync()
	write(1)
	if c := capNow(); c != minBuffer {
		t.Fatalf("a line after a line again: cap %d, want %d", c, minBuffer)
	}
	must(t, r.End(ExitInfo{}))
	if got := output(events(t, s, r.ID()), asciicast.Output); got != want.String() {
		t.Fatalf("recorded %d bytes, want %d", len(got), want.Len())
	}
}
