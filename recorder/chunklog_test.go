package recorder

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

// randomBytes returns n bytes that do not compress (so every chunk of
// them is large and goes to the chunk log).
func randomBytes(seed uint64, n int) []byte {
	rng := rand.New(rand.NewPCG(seed, seed+1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// recordBulk records a TCP session sending data from the server in writes
// of 64 KiB, flushing every flushEvery bytes, and ends it.
func recordBulk(t *testing.T, s *Store, id string, data []byte, flushEvery int) {
	t.Helper()
	r := begin(t, s, SessionInfo{ID: id, Kind: "tcp"})
	must(t, r.ConnEvent("open 127.0.0.1:5000 127.0.0.1:6000"))
	for off := 0; off < len(data); off += 64 << 10 {
		must(t, r.FromServer(data[off:min(off+64<<10, len(data))]))
		if (off+64<<10)%flushEvery == 0 {
			s.sync()
		}
	}
	must(t, r.End(ExitInfo{}))
}

// serverBytes reads back what a TCP session's server sent.
func serverBytes(t *testing.T, s *Store, id string) []byte {
	t.Helper()
	var got []byte
	must(t, s.rawEvents(id, func(e rawEvent) error {
		if e.typ == EventFromServer {
			got = append(got, e.data...)
		}
		return nil
	}))
	return got
}

func segments(t *testing.T, path string) []string {
	t.Helper()
	m, _ := filepath.Glob(filepath.Join(ChunkDir(path), "*.seg"))
	return m
}

func TestChunkLog(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	data := randomBytes(1, 3<<20)
	recordBulk(t, s, "bulk", data, 512<<10)
	small := begin(t, s, SessionInfo{ID: "small"})
	must(t, small.Output([]byte("a quiet shell\r\n")))
	must(t, small.End(ExitInfo{}))

	refs := 0
	for _, v := range chunkValuesOf(t, s, "bulk") {
		if _, ok := parseRef(v); ok {
			refs++
		}
	}
	if refs < 6 {
		t.Errorf("%d of the bulk session's chunks are in the log, want every large one (at least 6)", refs)
	}
	for _, v := range chunkValuesOf(t, s, "small") {
		if _, ok := parseRef(v); ok {
			t.Error("a small chunk went to the log")
		}
	}
	if segs := segments(t, cfg.Path); len(segs) != 1 {
		t.Fatalf("segments: %v", segs)
	}
	if got := serverBytes(t, s, "bulk"); !bytes.Equal(got, data) {
		t.Fatalf("read back %d bytes, want the %d sent", len(got), len(data))
	}
	for _, id := range []string{"bulk", "small"} {
		if rep := verify(t, s, id); !rep.Intact || !rep.Sealed {
			t.Errorf("verify %s: %+v", id, rep)
		}
	}
	must(t, s.Close())

	// Read-only, as an auditor's replay with no bastion running.
	ro, err := OpenReadOnly(cfg.Path, time.Second)
	must(t, err)
	if got := serverBytes(t, ro, "bulk"); !bytes.Equal(got, data) {
		t.Error("read-only: the bytes differ")
	}
	ro.Close()

	// Reopened, it appends after what it wrote.
	s = openStore(t, cfg)
	more := randomBytes(2, 1<<20)
	recordBulk(t, s, "bulk2", more, 1<<20)
	if got := serverBytes(t, s, "bulk2"); !bytes.Equal(got, more) {
		t.Error("after reopening: the bytes differ")
	}
	if got := serverBytes(t, s, "bulk"); !bytes.Equal(got, data) {
		t.Error("after reopening: the first session's bytes differ")
	}
}

// An attacker with file access edits a chunk's bytes in the log, or cuts
// the log short: verify names the chunk, the store still opens.
func TestChunkLogTamper(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		edit       func(t *testing.T, seg string)
	}{
		{"flipped byte", "does not match its hash", func(t *testing.T, seg string) {
			f, err := os.OpenFile(seg, os.O_RDWR, 0)
			must(t, err)
			defer f.Close()
			b := make([]byte, 1)
			f.ReadAt(b, 700<<10)
			b[0] ^= 1
			_, err = f.WriteAt(b, 700<<10)
			must(t, err)
		}},
		{"cut short", "cannot be read", func(t *testing.T, seg string) {
			must(t, os.Truncate(seg, 700<<10))
		}},
		{"removed", "cannot be read", func(t *testing.T, seg string) {
			must(t, os.Remove(seg))
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := testConfig(t)
			s := openStore(t, cfg)
			recordBulk(t, s, "bulk", randomBytes(3, 2<<20), 256<<10)
			must(t, s.Close())
			segs := segments(t, cfg.Path)
			if len(segs) != 1 {
				t.Fatalf("segments: %v", segs)
			}
			tc.edit(t, segs[0])
			s = openStore(t, cfg)
			rep := verify(t, s, "bulk")
			if rep.Intact || rep.BrokenAt < 0 || !strings.Contains(rep.Problem, tc.want) {
				t.Fatalf("verify: %+v, want broken at a chunk with %q", rep, tc.want)
			}
			err := s.Events("bulk", func(asciicast.Event) error { return nil })
			if !errors.Is(err, ErrBroken) {
				t.Errorf("replay: got %v, want ErrBroken", err)
			}
		})
	}
}

// A transaction that wrote to the log and then failed leaves bytes past
// the committed end; the next flush writes over them and a restart cuts
// off any that remain.
func TestChunkLogRollback(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.Mode = BestEffort
	s := openStore(t, cfg)
	data := randomBytes(4, 1<<20)
	r := begin(t, s, SessionInfo{ID: "gap", Kind: "tcp"})
	must(t, r.FromServer(data[:512<<10]))
	s.sync()
	end := s.b.(*boltBackend).log.end
	// Fail the commit after the chunks went to the log.
	bb := s.b.(*boltBackend)
	var failed int
	bb.commitHook = func(tx *boltTx) error {
		if tx.log.started && failed == 0 {
			failed++
			return errors.New("disk on fire")
		}
		return nil
	}
	must(t, r.FromServer(data[512<<10:]))
	s.sync()
	bb.commitHook = nil
	if failed != 1 || bb.log.end != end {
		t.Fatalf("failed %d commits; log end %d, was %d", failed, bb.log.end, end)
	}
	must(t, r.FromServer([]byte("after the gap")))
	must(t, r.End(ExitInfo{}))
	if rep := verify(t, s, "gap"); !rep.Intact || !rep.Sealed {
		t.Fatalf("verify after a failed flush: %+v", rep)
	}
	if got := serverBytes(t, s, "gap"); !bytes.Equal(got, append(bytes.Clone(data[:512<<10]), "after the gap"...)) {
		t.Errorf("read back %d bytes", len(got))
	}
	must(t, s.Close())
	// Bytes past the committed end (as a crash mid-flush leaves them) are
	// cut off at the next start.
	seg := segments(t, cfg.Path)[0]
	f, err := os.OpenFile(seg, os.O_WRONLY|os.O_APPEND, 0)
	must(t, err)
	f.Write(randomBytes(5, 100<<10))
	f.Close()
	s = openStore(t, cfg)
	st, err := os.Stat(seg)
	must(t, err)
	if st.Size() != s.b.(*boltBackend).log.end || st.Size() < end {
		t.Errorf("segment is %d bytes after restart, committed end %d", st.Size(), s.b.(*boltBackend).log.end)
	}
	if rep := verify(t, s, "gap"); !rep.Intact {
		t.Errorf("verify after restart: %+v", rep)
	}
}

// Segments roll over at segmentSize; retention removes a segment once no
// session's chunks are in it, and never the current one.
func TestChunkLogRetention(t *testing.T) {
	old := segmentSize
	segmentSize = 2 << 20
	t.Cleanup(func() { segmentSize = old })
	cfg, clk := testConfig(t)
	cfg.Retention = time.Hour
	s := openStore(t, cfg)
	var want [][]byte
	for i := range 4 {
		data := randomBytes(uint64(10+i), 1536<<10)
		want = append(want, data)
		recordBulk(t, s, fmt.Sprint("s", i), data, 512<<10)
		clk.Advance(40 * time.Minute)
	}
	segs := segments(t, cfg.Path)
	if len(segs) < 3 {
		t.Fatalf("segments after 6 MiB at 2 MiB each: %v", segs)
	}
	n, err := s.Purge()
	must(t, err)
	if n < 2 {
		t.Fatalf("purged %d sessions", n)
	}
	after := segments(t, cfg.Path)
	if len(after) >= len(segs) {
		t.Errorf("no segment removed: before %v, after %v", segs, after)
	}
	for i := n; i < 4; i++ {
		id := fmt.Sprint("s", i)
		if got := serverBytes(t, s, id); !bytes.Equal(got, want[i]) {
			t.Errorf("%s: the bytes differ after the purge", id)
		}
		if rep := verify(t, s, id); !rep.Intact {
			t.Errorf("verify %s: %+v", id, rep)
		}
	}
	// Everything ends and goes: the current segment stays.
	clk.Advance(10 * time.Hour)
	_, err = s.Purge()
	must(t, err)
	if left := segments(t, cfg.Path); len(left) != 1 {
		t.Errorf("after purging everything: %v", left)
	}
	recordBulk(t, s, "later", randomBytes(20, 1<<20), 512<<10)
	if rep := verify(t, s, "later"); !rep.Intact {
		t.Errorf("verify a session after the purge: %+v", rep)
	}
}

// A backup is one file: the chunks in the log are copied into it, and it
// opens, replays and verifies with no log beside it.
func TestChunkLogBackup(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	data := randomBytes(6, 3<<20)
	recordBulk(t, s, "bulk", data, 256<<10)
	var buf bytes.Buffer
	var told int64
	n, err := s.Backup(&buf, func(n int64) error { told = n; return nil })
	must(t, err)
	if n != told || n != int64(buf.Len()) {
		t.Fatalf("backup wrote %d bytes, told %d, got %d", n, told, buf.Len())
	}
	copyPath := filepath.Join(t.TempDir(), "bastion.db")
	must(t, os.WriteFile(copyPath, buf.Bytes(), 0o600))
	ccfg := cfg
	ccfg.Path = copyPath
	cs := openStore(t, ccfg)
	for _, v := range chunkValuesOf(t, cs, "bulk") {
		if _, ok := parseRef(v); ok {
			t.Fatal("the backup holds a reference into the log")
		}
	}
	if got := serverBytes(t, cs, "bulk"); !bytes.Equal(got, data) {
		t.Error("the backup's bytes differ")
	}
	if rep := verify(t, cs, "bulk"); !rep.Intact || !rep.Sealed {
		t.Errorf("verify the backup: %+v", rep)
	}
	if _, err := os.Stat(ChunkDir(copyPath)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the backup's store has a chunk log: %v", err)
	}
}

// chunkValuesOf returns the stored values of a session's chunks, as bbolt
// holds them (references or chunks).
func chunkValuesOf(t *testing.T, s *Store, id string) [][]byte {
	t.Helper()
	var out [][]byte
	must(t, s.boltDB().View(func(tx *bolt.Tx) error {
		prefix := chunkPrefix(id)
		c := tx.Bucket(bucketChunks).Cursor()
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			out = append(out, bytes.Clone(v))
		}
		return nil
	}))
	return out
}

// Killed mid-forward: what was committed is there and verifies, sealed as
// interrupted, and is a prefix of what was sent.
func TestCrashWhileForwarding(t *testing.T) {
	cfg, _ := testConfig(t)
	last := runCrashChild(t, "bulk", cfg.Path, func(line string) bool { return line == "COMMITTED 40" })
	committed, err := strconv.Atoi(strings.TrimPrefix(last, "COMMITTED "))
	must(t, err)
	s := openStore(t, cfg)
	if rep := verify(t, s, "bulk"); !rep.Intact || !rep.Sealed || rep.Status != StatusInterrupted {
		t.Fatalf("verify: %+v", rep)
	}
	got := serverBytes(t, s, "bulk")
	stream := randomBytes(7, len(got)+1)
	if !bytes.Equal(got, stream[:len(got)]) {
		t.Fatalf("the recording (%d bytes) is not a prefix of the stream", len(got))
	}
	if len(got) < (committed+1)*(64<<10) {
		t.Errorf("got %d bytes, want at least the %d committed writes", len(got), committed+1)
	}
}

// unreadRefs covers parseRef and the unreadable value against malformed
// references.
func TestParseRef(t *testing.T) {
	good := chunkRef{seg: 3, off: 1 << 20, n: 4096}.encode()
	if r, ok := parseRef(good); !ok || r.seg != 3 || r.off != 1<<20 || r.n != 4096 {
		t.Fatalf("parseRef(good) = %+v, %v", r, ok)
	}
	for _, tc := range []struct {
		name string
		v    []byte
	}{
		{"empty", nil},
		{"short", good[:refLen-1]},
		{"long", append(bytes.Clone(good), 0)},
		{"other magic", append([]byte("BRC2"), good[4:]...)},
		{"huge offset", func() []byte { v := bytes.Clone(good); v[8] = 0xff; return v }()},
		{"huge length", func() []byte { v := bytes.Clone(good); v[16] = 0xff; return v }()},
	} {
		if _, ok := parseRef(tc.v); ok {
			t.Errorf("%s: parsed as a reference", tc.name)
		}
	}
	_, err := parseChunk(unreadRef(errors.New("x.seg at 5: \x1b[2Jgone")), 0, nil)
	if !errors.Is(err, errChunkUnread) || strings.Contains(err.Error(), "\x1b") {
		t.Errorf("unreadable reference: %v", err)
	}
}

func FuzzParseRef(f *testing.F) {
	good := chunkRef{seg: 3, off: 1 << 20, n: 4096}.encode()
	f.Add(good)
	f.Add([]byte(refMagic))
	f.Add(append(bytes.Clone(good), 0))
	f.Add(unreadRef(errors.New("gone")))
	f.Fuzz(func(t *testing.T, v []byte) {
		if r, ok := parseRef(v); ok {
			if !bytes.Equal(r.encode(), v) {
				t.Fatalf("%x parsed as %+v, which encodes differently", v, r)
			}
			if r.n > maxRefValue || r.off < 0 {
				t.Fatalf("out of bounds: %+v", r)
			}
		}
		if _, err := parseChunk(v, 0, nil); err == nil && len(v) >= 4 && string(v[:4]) == refMagic {
			t.Fatal("a reference parsed as a chunk")
		}
	})
}

// A reference edited in the bbolt file (malformed, or pointing at the
// wrong bytes) is reported at its chunk.
func TestChunkLogEditedReference(t *testing.T) {
	for _, tc := range []struct {
		name, want string
		edit       func(v []byte) []byte
	}{
		{"malformed", "malformed reference", func(v []byte) []byte { return v[:refLen-2] }},
		{"huge", "malformed reference", func(v []byte) []byte { v[16] = 0xff; return v }},
		{"shifted", "no valid header", func(v []byte) []byte { v[15]++; v[19]--; return v }},
		{"past the end", "cannot be read", func(v []byte) []byte { v[10] = 0x7f; return v }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := testConfig(t)
			s := openStore(t, cfg)
			recordBulk(t, s, "bulk", randomBytes(8, 1<<20), 256<<10)
			must(t, s.Close())
			tamper(t, cfg.Path, editChunk("bulk", 1, tc.edit))
			s = openStore(t, cfg)
			rep := verify(t, s, "bulk")
			if rep.Intact || rep.BrokenAt != 1 || !strings.Contains(rep.Problem, tc.want) {
				t.Fatalf("verify: %+v, want broken at chunk 1 with %q", rep, tc.want)
			}
		})
	}
}

// Readers replay and verify a session while the flusher appends its large
// chunks to the log (run with -race).
func TestChunkLogConcurrentReaders(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	data := randomBytes(11, 4<<20)
	stop := make(chan struct{})
	errs := make(chan error, 2)
	for range 2 {
		go func() {
			for {
				select {
				case <-stop:
					errs <- nil
					return
				default:
				}
				var n int
				err := s.rawEvents("live", func(e rawEvent) error {
					if e.typ == EventFromServer {
						if !bytes.Equal(e.data, data[n:n+len(e.data)]) {
							return fmt.Errorf("bytes at %d differ", n)
						}
						n += len(e.data)
					}
					return nil
				})
				if err != nil && !errors.Is(err, ErrNotFound) {
					errs <- err
					return
				}
			}
		}()
	}
	recordBulk(t, s, "live", data, 256<<10)
	close(stop)
	for range 2 {
		if err := <-errs; err != nil {
			t.Fatalf("a reader: %v", err)
		}
	}
	if got := serverBytes(t, s, "live"); !bytes.Equal(got, data) {
		t.Fatal("the bytes differ")
	}
}

// The chunk log writes the current segment with O_DIRECT where the
// filesystem takes it, through the page cache where it does not (tmpfs)
// or when told not to: the bytes read back and verify either way, across
// partial last blocks, a restart (the last block's committed bytes read
// back from the file) and read-only opening.
func TestChunkLogDirect(t *testing.T) {
	einval := &os.PathError{Op: "open", Path: "segment", Err: syscall.EINVAL}
	for _, name := range []string{"direct", "page cache", "open refused", "write refused"} {
		t.Run(name, func(t *testing.T) {
			switch name {
			case "page cache":
				directIO = false
				t.Cleanup(func() { directIO = true })
			case "open refused":
				open := openDirect
				openDirect = func(string) (*os.File, error) { return nil, einval }
				t.Cleanup(func() { openDirect = open })
			case "write refused":
				write := writeDirect
				writeDirect = func(*os.File, []byte, int64) (int, error) { return 0, einval }
				t.Cleanup(func() { writeDirect = write })
			}
			cfg, _ := testConfig(t)
			s := openStore(t, cfg)
			a, b := randomBytes(21, 3<<20+12345), randomBytes(22, 1<<20+777)
			recordBulk(t, s, "a", a, 320<<10)
			l := s.b.(*boltBackend).log
			// Whether this filesystem takes a direct write (tmpfs on older
			// kernels refuses the open, some filesystems the write).
			probe, err := os.OpenFile(filepath.Join(filepath.Dir(cfg.Path), "probe"), os.O_CREATE|os.O_WRONLY|syscall.O_DIRECT, 0o600)
			if err == nil {
				_, err = probe.WriteAt(alignedAppend(nil, make([]byte, directAlign), 0), 0)
				probe.Close()
			}
			want := err == nil && name == "direct"
			if used := l.dw != nil && !l.noDirect; used != want {
				t.Errorf("direct writes used: %v, want %v (probe: %v)", used, want, err)
			}
			must(t, s.Close())
			s = openStore(t, cfg) // the last block is read back from the file
			recordBulk(t, s, "b", b, 256<<10)
			for id, want := range map[string][]byte{"a": a, "b": b} {
				if got := serverBytes(t, s, id); !bytes.Equal(got, want) {
					t.Errorf("%s: read back %d bytes, want the %d sent", id, len(got), len(want))
				}
				if rep := verify(t, s, id); !rep.Intact || !rep.Sealed {
					t.Errorf("verify %s: %+v", id, rep)
				}
			}
			must(t, s.Close())
			ro, err := OpenReadOnly(cfg.Path, time.Second)
			must(t, err)
			defer ro.Close()
			if got := serverBytes(t, ro, "a"); !bytes.Equal(got, a) {
				t.Error("read-only: the bytes differ")
			}
		})
	}
}
