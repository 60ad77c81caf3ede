package recorder

import (
	"bytes"
	"os"
	"testing"
)

// A power loss can leave the chunk log's current segment shorter than its
// committed end (a disk that acknowledged a sync it had not done, a
// restore of a torn copy). The bastion must still record new sessions
// intact after a restart, and verify must name the damaged session's chunk.
func TestChunkLogTornTailThenRecord(t *testing.T) {
	for _, cut := range []int64{-1, 0, 1, 4095, 4096, 700 << 10, (2 << 20) - 1} {
		t.Run("", func(t *testing.T) {
			cfg, _ := testConfig(t)
			s := openStore(t, cfg)
			recordBulk(t, s, "bulk", randomBytes(3, 2<<20), 256<<10)
			must(t, s.Close())
			seg := segments(t, cfg.Path)[0]
			st, err := os.Stat(seg)
			must(t, err)
			if cut >= st.Size() {
				t.Fatalf("cut %d, segment %d", cut, st.Size())
			}
			if cut < 0 {
				must(t, os.Remove(seg))
			} else {
				must(t, os.Truncate(seg, cut))
			}
			for round := range 2 { // two restarts in a row
				s = openStore(t, cfg)
				if rep := verify(t, s, "bulk"); rep.Intact || rep.BrokenAt < 0 {
					t.Fatalf("round %d: verify of the cut session: %+v", round, rep)
				}
				id := []string{"after", "after2"}[round]
				data := randomBytes(uint64(9+round), 1<<20)
				r, err := s.Begin(SessionInfo{ID: id, Kind: "tcp", User: "alice", Target: "web1"})
				must(t, err)
				for off := 0; off < len(data); off += 64 << 10 {
					if err := r.FromServer(data[off : off+64<<10]); err != nil {
						t.Fatalf("round %d: recording after the restart: %v", round, err)
					}
					s.sync()
				}
				if err := r.End(ExitInfo{}); err != nil {
					t.Fatalf("round %d: end: %v", round, err)
				}
				if rep := verify(t, s, id); !rep.Intact || !rep.Sealed {
					t.Fatalf("round %d: verify of a session recorded after the restart: %+v", round, rep)
				}
				if got := serverBytes(t, s, id); !bytes.Equal(got, data) {
					t.Fatalf("round %d: read back %d bytes, want %d", round, len(got), len(data))
				}
				must(t, s.Close())
			}
		})
	}
}
