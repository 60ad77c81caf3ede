package recorder

import (
	"crypto"
	"fmt"
	"path/filepath"
	"testing"
	"time"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/testenv"
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
