package recorder

import (
	"bytes"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"
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

// A crash leaves a live session whose last chunks' bytes in the log are
// gone (the segment cut as a power loss cuts it): recovery marks it
// interrupted without sealing over the loss, verify names the first
// chunk that lacks its bytes, and replay gives exactly the bytes before it.
func TestRecoverLiveSessionWithTornLog(t *testing.T) {
	for _, zero := range []bool{false, true} {
		t.Run(map[bool]string{false: "cut", true: "zeroed"}[zero], func(t *testing.T) { recoverTornLog(t, zero) })
	}
}

func recoverTornLog(t *testing.T, zero bool) {
	cfg, _ := testConfig(t)
	s, err := Open(cfg)
	must(t, err)
	data := randomBytes(11, 1<<20)
	r := begin(t, s, SessionInfo{ID: "live", Kind: "tcp"})
	for off := 0; off < len(data); off += 64 << 10 {
		must(t, r.FromServer(data[off:off+64<<10]))
		s.sync()
	}
	s.mu.Lock()
	delete(s.active, r.id)
	s.mu.Unlock()
	must(t, s.Close())
	seg := segments(t, cfg.Path)[0]
	const cut = 600 << 10
	if zero {
		// The size was written, the data was not (a filesystem that
		// extends a file before its data is on disk).
		f, err := os.OpenFile(seg, os.O_RDWR, 0)
		must(t, err)
		st, err := f.Stat()
		must(t, err)
		_, err = f.WriteAt(make([]byte, st.Size()-cut), cut)
		must(t, err)
		must(t, f.Close())
	} else {
		must(t, os.Truncate(seg, cut))
	}
	for round := range 2 {
		s2 := openStore(t, cfg)
		info, err := s2.Session("live")
		must(t, err)
		if info.Status != StatusInterrupted {
			t.Fatalf("round %d: %+v", round, info)
		}
		rep := verify(t, s2, "live")
		if rep.Intact || rep.Sealed || rep.BrokenAt <= 0 {
			t.Fatalf("round %d: verify: %+v", round, rep)
		}
		var got []byte
		err = s2.rawEvents("live", func(e rawEvent) error {
			if e.typ == EventFromServer {
				got = append(got, e.data...)
			}
			return nil
		})
		if err == nil {
			t.Errorf("round %d: replay of a damaged session gave no error", round)
		}
		if len(got) == 0 || len(got) > cut || !bytes.Equal(got, data[:len(got)]) {
			t.Fatalf("round %d: replay gave %d bytes, not a prefix of what was recorded up to the cut", round, len(got))
		}
		t.Logf("round %d: %+v, %d bytes replayed", round, rep, len(got))
		must(t, s2.Close())
	}
}

// Killed again and again at different points of a forward into the same
// store: every restart recovers, and every session recorded so far
// verifies, sealed as interrupted, and is a prefix of what was sent that
// holds at least what was committed.
func TestCrashRepeatedlyWhileForwarding(t *testing.T) {
	cfg, _ := testConfig(t)
	t.Setenv("RECORDER_CRASH_ID", "")
	committed := map[string]int{}
	for i, at := range []int{0, 8, 24, 16, 40, 8, 32} {
		id := fmt.Sprintf("bulk%d", i)
		os.Setenv("RECORDER_CRASH_ID", id)
		last := runCrashChild(t, "bulk", cfg.Path, func(line string) bool { return line == fmt.Sprintf("COMMITTED %d", at) })
		n, err := strconv.Atoi(strings.TrimPrefix(last, "COMMITTED "))
		must(t, err)
		committed[id] = n
		s := openStore(t, cfg)
		for id, n := range committed {
			if rep := verify(t, s, id); !rep.Intact || !rep.Sealed || rep.Status != StatusInterrupted {
				t.Fatalf("after crash %d: verify %s: %+v", i, id, rep)
			}
			got := serverBytes(t, s, id)
			stream := randomBytes(7, len(got)+1)
			if !bytes.Equal(got, stream[:len(got)]) || len(got) < (n+1)*(64<<10) {
				t.Fatalf("after crash %d: %s has %d bytes, want a prefix of the stream of at least %d", i, id, len(got), (n+1)*(64<<10))
			}
		}
		must(t, s.Close())
	}
}

// The journal's newest entry torn (a power loss on a disk that had not
// written it), after a rewind left older, applied entries behind it: the
// store opens, keeps every entry before the tear, applies nothing stale
// twice, and the chain verifies across two restarts.
func TestAuditJournalTornAfterRewind(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	for i := range 40 {
		_, err := s.Audit(AuditEvent{Type: "old", User: fmt.Sprint("u", i)})
		must(t, err)
	}
	must(t, s.syncAudit())
	s.jr.hold.Store(true)
	var ids []string
	for i := range 3 {
		id, err := s.Audit(AuditEvent{Type: "new", User: fmt.Sprint("n", i)})
		must(t, err)
		ids = append(ids, id)
	}
	s.crashed.Store(true)
	off := s.jr.j.off
	s.Close()
	// Tear the newest entry: zero its last 10 bytes.
	f, err := os.OpenFile(journalPath(cfg.Path), os.O_RDWR, 0)
	must(t, err)
	_, err = f.WriteAt(make([]byte, 10), off-10)
	must(t, err)
	must(t, f.Close())
	for round := range 2 {
		s = openStore(t, cfg)
		var old int
		var got []string
		must(t, s.AuditEvents(time.Time{}, func(ev AuditEvent) error {
			switch ev.Type {
			case "old":
				old++
			case "new":
				got = append(got, ev.ID)
			}
			return nil
		}))
		if old != 40 || fmt.Sprint(got) != fmt.Sprint(ids[:2]) {
			t.Fatalf("round %d: %d old records, new %v, want 40 and %v", round, old, got, ids[:2])
		}
		if rep, err := s.VerifyAudit(); err != nil || !rep.Intact {
			t.Fatalf("round %d: chain: %+v %v", round, rep, err)
		}
		must(t, s.Close())
	}
}
