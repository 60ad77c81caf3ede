package recorder

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"math/rand/v2"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/recorder/asciicast"
	bolt "go.etcd.io/bbolt"
)

// Following an ended session (replay/export --follow, the console's live
// view) reads the recording as Events does, so a chain rebuilt without the
// seal key must end in an error there too, not in a clean end.
func TestFollowRefusesARebuiltChain(t *testing.T) {
	cfg, id, _ := recordChunks(t, 4)
	tamper(t, cfg.Path, rebuild(id, 2, forge))
	s := openStore(t, cfg)
	var out strings.Builder
	err := s.Follow(context.Background(), id, func(ev asciicast.Event) error { out.WriteString(ev.Data); return nil }, nil)
	if !errors.Is(err, ErrBroken) {
		t.Errorf("Follow: got %v, want %v (it showed %q)", err, ErrBroken, out.String())
	}
	var cast bytes.Buffer
	if err := s.ExportFollow(context.Background(), id, &cast, false); !errors.Is(err, ErrBroken) {
		t.Errorf("ExportFollow: got %v, want %v", err, ErrBroken)
	}
	// The unedited session still follows to a clean end.
	cfg2, id2, _ := recordChunks(t, 3)
	s2 := openStore(t, cfg2)
	if err := s2.Follow(context.Background(), id2, func(asciicast.Event) error { return nil }, nil); err != nil {
		t.Errorf("Follow of an intact session: %v", err)
	}
}

// A session followed from while it is live is checked against its seal
// once it ends.
func TestFollowOfALiveSessionEndsCheckedAgainstTheSeal(t *testing.T) {
	cfg, clk := testConfig(t)
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{ID: "followed"})
	must(t, r.Output([]byte("first\r\n")))
	s.sync()
	errc := make(chan error, 1)
	caught := make(chan struct{})
	go func() {
		errc <- s.Follow(context.Background(), r.ID(), func(asciicast.Event) error { return nil }, func() error { close(caught); return nil })
	}()
	<-caught
	clk.Advance(1000)
	must(t, r.Output([]byte("second\r\n")))
	must(t, r.End(ExitInfo{}))
	if err := <-errc; err != nil {
		t.Errorf("Follow of an intact live session: %v", err)
	}
}

// A PostgreSQL session's wire messages are for its capture: followed, it
// shows its transcript as Export does, rather than failing on (or showing)
// the wire bytes.
func TestFollowOfAPostgresSessionShowsTheTranscript(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{ID: "pg", Kind: "postgres"})
	must(t, r.ConnEvent("open 192.0.2.1:4000 198.51.100.1:5432"))
	must(t, r.FromClient([]byte{'Q', 0, 0, 0, 13, 'S', 'E', 'L', 'E', 'C', 'T', ' ', '1', 0}))
	must(t, r.Output([]byte("db=> SELECT 1\r\n")))
	must(t, r.FromServer([]byte{'Z', 0, 0, 0, 5, 'I'}))
	must(t, r.End(ExitInfo{}))
	var want bytes.Buffer
	must(t, s.Export(r.ID(), &want))
	var got bytes.Buffer
	if err := s.ExportFollow(context.Background(), r.ID(), &got, false); err != nil {
		t.Fatalf("ExportFollow: %v (wrote %q)", err, got.String())
	}
	if got.String() != want.String() {
		t.Errorf("ExportFollow wrote\n%s\nExport wrote\n%s", got.String(), want.String())
	}
}

// An ended session rolled back by someone with the store file (not the
// seal key, which is in an HSM): its seal deleted, its record set live
// again, an earlier signed checkpoint of it put back and the chunks after
// it deleted. The recovery must not sign that as the recording: the audit
// log (chained, shipped off the box) already says the session ended.
func TestRecoveryDoesNotResealARolledBackSession(t *testing.T) {
	for _, tc := range []struct {
		name    string
		ended   string // the audit record that says the session ended
		journal bool   // the bastion crashed with that record in the audit journal only
	}{
		{"ended", "session.end", false},
		{"forward", "forward.end", false},
		{"recovered before", "session.interrupted", false},
		{"end in the journal only", "session.end", true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, clk := testConfig(t)
			s, err := Open(cfg)
			must(t, err)
			r := begin(t, s, SessionInfo{ID: "rolled"})
			must(t, r.Output([]byte("harmless\r\n")))
			s.sync()
			var oldCP []byte
			must(t, s.boltDB().View(func(tx *bolt.Tx) error {
				oldCP = bytes.Clone(tx.Bucket(bucketSessionCPs).Get([]byte(r.ID())))
				return nil
			}))
			clk.Advance(1000)
			must(t, r.Output([]byte("rm -rf /var/lib/important\r\n")))
			s.sync()
			if tc.journal {
				must(t, s.syncAudit())
				s.jr.hold.Store(true) // what follows is in the journal only
			}
			must(t, r.End(ExitInfo{}))
			_, err = s.Audit(AuditEvent{Type: tc.ended, User: "alice", SessionID: r.ID(), Target: "web1", Outcome: "ended"})
			must(t, err)
			_, err = s.Audit(AuditEvent{Type: "cert.issue", User: "bob"}) // later records
			must(t, err)
			if tc.journal {
				s.crashed.Store(true)
				s.Close()
			} else {
				must(t, s.Close())
				s1, err := Open(cfg)
				must(t, err)
				if rep := verify(t, s1, r.ID()); !rep.Intact || rep.Chunks != 2 {
					t.Fatalf("before the rollback: %+v", rep)
				}
				must(t, s1.Close())
			}

			tamper(t, cfg.Path, func(tx *bolt.Tx) error {
				if err := tx.Bucket(bucketSeals).Delete([]byte(r.ID())); err != nil {
					return err
				}
				if err := tx.Bucket(bucketChunks).Delete(chunkKey(r.ID(), 1)); err != nil {
					return err
				}
				if err := tx.Bucket(bucketSessionCPs).Put([]byte(r.ID()), oldCP); err != nil {
					return err
				}
				return editJSON(bucketSessions, r.ID(), func(m map[string]any) {
					m["status"] = StatusLive
					delete(m, "end")
					delete(m, "chunks")
					delete(m, "events")
				})(tx)
			})
			s2 := openStore(t, cfg)
			rep := verify(t, s2, r.ID())
			if rep.Intact || rep.Sealed {
				t.Fatalf("a rolled-back session verifies: %+v", rep)
			}
			info, err := s2.Session(r.ID())
			must(t, err)
			if !strings.Contains(info.Error, "already ended") {
				t.Errorf("the recovery says %q", info.Error)
			}
			if a, _ := s2.VerifyAudit(); !a.Intact {
				t.Errorf("the audit log: %+v", a)
			}
		})
	}
}

// sameSize re-encodes a format 2 chunk value with its events edited and
// its link set to prev, in exactly len(v) bytes: the events compressed and
// padded with a zstd skippable frame (which decompression passes over), so
// it fits in place of the original in a chunk-log segment.
func sameSize(t *testing.T, v []byte, seq uint64, prev [hashLen]byte, edit func([]byte) []byte) ([]byte, [hashLen]byte) {
	t.Helper()
	c, err := parseChunk(v, seq, nil)
	must(t, err)
	raw := edit(bytes.Clone(c.payload))
	comp := newZstdEncoder().EncodeAll(raw, nil)
	room := len(v) - chunkHeaderLenV2 - hashLen
	if len(comp)+8 > room {
		t.Fatalf("chunk %d: %d compressed bytes do not fit in %d", seq, len(comp), room)
	}
	pad := make([]byte, 8, room-len(comp))
	binary.LittleEndian.PutUint32(pad, 0x184D2A50)
	binary.LittleEndian.PutUint32(pad[4:], uint32(room-len(comp)-8))
	pad = pad[:room-len(comp)]
	payload := append(comp, pad...)
	out := append([]byte(chunkMagicV2), make([]byte, chunkHeaderLenV2-4)...)
	binary.BigEndian.PutUint64(out[4:], seq)
	copy(out[12:], prev[:])
	binary.BigEndian.PutUint32(out[44:], uint32(c.events))
	out[48] = codecZstd
	binary.BigEndian.PutUint32(out[49:], uint32(len(raw)))
	binary.BigEndian.PutUint32(out[53:], uint32(len(payload)))
	out = append(out, payload...)
	sum := sha256.Sum256(out)
	return append(out, sum[:]...), sum
}

// A reader that starts at a Seek (the console's segmented player, from
// the index a checked walk made) checks every chunk it reads against the
// chain that walk checked against the seal: chunks rewritten since in the
// chunk log, in place, with the chain after them rebuilt, link to each
// other and to the Seek, and must not play as the recording.
func TestSeekReadsChecksAgainstTheCheckedWalk(t *testing.T) {
	cfg, clk := testConfig(t)
	cfg.SessionBuffer = 64 << 10
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{ID: "seeked"})
	rng := rand.New(rand.NewPCG(7, 8))
	const chunks = 6
	for range chunks {
		clk.Advance(time.Second)
		line := make([]byte, 60<<10)
		for i := range line {
			line[i] = byte('a' + rng.IntN(26))
		}
		must(t, r.Output(line))
		s.sync()
	}
	must(t, r.End(ExitInfo{}))

	var seeks []Seek
	must(t, s.EventsSeek(r.ID(), Seek{}, func(at Seek, _ asciicast.Event, _ []byte) error {
		if len(seeks) == 0 || seeks[len(seeks)-1].Chunk != at.Chunk {
			seeks = append(seeks, at)
		}
		return nil
	}))
	if len(seeks) != chunks {
		t.Fatalf("%d seeks", len(seeks))
	}

	// Rewrite chunks 3 on in their segment, in place.
	bb := s.b.(*boltBackend)
	values := chunkValuesOf(t, s, r.ID())
	var prev [hashLen]byte
	for seq := uint64(3); seq < chunks; seq++ {
		ref, ok := parseRef(values[seq])
		if !ok {
			t.Fatalf("chunk %d is not in the chunk log", seq)
		}
		f, err := os.OpenFile(bb.log.segPath(bb.log.readID, ref.seg), os.O_RDWR, 0)
		must(t, err)
		v := make([]byte, ref.n)
		_, err = f.ReadAt(v, ref.off)
		must(t, err)
		if seq == 3 {
			c, err := parseChunk(v, seq, nil)
			must(t, err)
			prev = c.prev
		}
		var nv []byte
		nv, prev = sameSize(t, v, seq, prev, func(p []byte) []byte {
			var out []byte
			var last int64
			err := walkEvents(chunk{format: 2, payload: p, events: -1}, &last, func(e rawEvent) error {
				out = appendEvent(out, e.typ, e.us, bytes.Repeat([]byte("F"), len(e.data)))
				return nil
			})
			if !errors.Is(err, errChunkCount) {
				t.Fatal(err)
			}
			return out
		})
		_, err = f.WriteAt(nv, ref.off)
		must(t, err)
		must(t, f.Close())
	}
	if rep := verify(t, s, r.ID()); rep.Intact || rep.BrokenAt != chunks-1 {
		t.Errorf("verify: %+v", rep)
	}
	for _, from := range []int{0, 2, 3} {
		forged := false
		err := s.EventsSeek(r.ID(), seeks[from], func(_ Seek, _ asciicast.Event, data []byte) error {
			if bytes.Contains(data, []byte("FFFFFFFF")) {
				forged = true
				return errStop // the player's segment ends here
			}
			return nil
		})
		if forged || !errors.Is(err, ErrBroken) {
			t.Errorf("from chunk %d: got %v, showed forged output: %v", from, err, forged)
		}
	}
}

// An ended session's seal deleted and chunks appended after its last
// signed checkpoint, linked to its head (no chain to rebuild): verify says
// they are unverified, and replay and export must not show them as the
// recording's end with a clean exit.
func TestReadersRefuseChunksAfterTheCheckpointOfAnEndedSession(t *testing.T) {
	cfg, id, _ := recordChunks(t, 3)
	tamper(t, cfg.Path, func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketSeals).Delete([]byte(id)); err != nil {
			return err
		}
		c, err := parseChunk(tx.Bucket(bucketChunks).Get(chunkKey(id, 2)), 2, nil)
		if err != nil {
			return err
		}
		v, _ := newChunk(appendEvent(nil, asciicast.Output, 999_000, []byte("FORGED ending\r\n")), 3, c.hash, 1)
		return tx.Bucket(bucketChunks).Put(chunkKey(id, 3), v)
	})
	s := openStore(t, cfg)
	if rep := verify(t, s, id); rep.Intact {
		t.Fatalf("verify: %+v", rep)
	}
	var out bytes.Buffer
	if err := s.Export(id, &out); !errors.Is(err, ErrBroken) {
		t.Errorf("Export: got %v, want %v", err, ErrBroken)
	}
	if err := s.Events(id, func(asciicast.Event) error { return nil }); !errors.Is(err, ErrBroken) {
		t.Errorf("Events: got %v, want %v", err, ErrBroken)
	}
	if err := s.Follow(context.Background(), id, func(asciicast.Event) error { return nil }, nil); !errors.Is(err, ErrBroken) {
		t.Errorf("Follow: got %v, want %v", err, ErrBroken)
	}
	if err := s.EventsSeek(id, Seek{}, func(Seek, asciicast.Event, []byte) error { return nil }); !errors.Is(err, ErrBroken) {
		t.Errorf("EventsSeek: got %v, want %v", err, ErrBroken)
	}
}

// The same rollback where no recovery runs (a replica of a shared store
// that is alive owns the session, or the store was edited under a running
// bastion): verify of a session whose record says live, while the audit
// log says it ended, is not intact.
func TestVerifyOfALiveSessionTheAuditLogSaysEnded(t *testing.T) {
	cfg, clk := testConfig(t)
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{ID: "relived"})
	must(t, r.Output([]byte("harmless\r\n")))
	s.sync()
	var oldCP []byte
	must(t, s.boltDB().View(func(tx *bolt.Tx) error {
		oldCP = bytes.Clone(tx.Bucket(bucketSessionCPs).Get([]byte(r.ID())))
		return nil
	}))
	clk.Advance(1000)
	must(t, r.Output([]byte("rm -rf /var/lib/important\r\n")))
	must(t, r.End(ExitInfo{}))
	_, err := s.Audit(AuditEvent{Type: "session.end", User: "alice", SessionID: r.ID(), Target: "web1", Outcome: "ended"})
	must(t, err)
	live := begin(t, s, SessionInfo{ID: "reallylive"})
	must(t, live.Output([]byte("still here\r\n")))
	s.sync()
	must(t, s.boltDB().Update(func(tx *bolt.Tx) error {
		if err := tx.Bucket(bucketSeals).Delete([]byte(r.ID())); err != nil {
			return err
		}
		if err := tx.Bucket(bucketChunks).Delete(chunkKey(r.ID(), 1)); err != nil {
			return err
		}
		if err := tx.Bucket(bucketSessionCPs).Put([]byte(r.ID()), oldCP); err != nil {
			return err
		}
		return editJSON(bucketSessions, r.ID(), func(m map[string]any) {
			m["status"] = StatusLive
			delete(m, "end")
		})(tx)
	}))
	if rep := verify(t, s, r.ID()); rep.Intact || !strings.Contains(rep.Problem, "already ended") {
		t.Errorf("verify of the rolled-back session: %+v", rep)
	}
	if rep := verify(t, s, live.ID()); !rep.Intact {
		t.Errorf("verify of a live session: %+v", rep)
	}
}

// The terminal's size and type at the start are the export's header and
// the console player's screen: a full-screen program's output drawn on a
// screen of another size is not what the user saw (a narrower one clips
// what was drawn at the right), so the seal covers them.
func TestSealCoversTheTerminal(t *testing.T) {
	for _, tc := range []struct {
		name string
		edit func(m map[string]any)
	}{
		{"width", func(m map[string]any) { m["width"] = 20 }},
		{"height", func(m map[string]any) { m["height"] = 2 }},
		{"term", func(m map[string]any) { m["term"] = "dumb" }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg, _ := testConfig(t)
			s, err := Open(cfg)
			must(t, err)
			r := begin(t, s, SessionInfo{ID: "screen", Width: 200, Height: 50, Term: "xterm-256color"})
			must(t, r.Output([]byte("\x1b[1;150Hdrawn at column 150")))
			must(t, r.End(ExitInfo{}))
			must(t, s.Close())
			tamper(t, cfg.Path, editJSON(bucketSessions, "screen", tc.edit))
			s = openStore(t, cfg)
			if rep := verify(t, s, "screen"); rep.Intact || !strings.Contains(rep.Problem, "terminal") {
				t.Errorf("verify: %+v", rep)
			}
		})
	}
}

// Someone with the store file, while a sink is down (or before it caught
// up), moves the sink's place past records it has not received, rewrites
// those records (a chain rebuilt from there, their checkpoints deleted)
// and lets the bastion go on: the sink receives what it wrote before and
// after, and its copy agrees with the local log everywhere it has records.
// The records between were never delivered, and no gap line says they
// were skipped: the comparison must not call that intact.
func TestCompareAuditSeesRecordsTheSinkNeverReceived(t *testing.T) {
	cfg, _ := testConfig(t)
	s, err := Open(cfg)
	must(t, err)
	audit := func(s *Store, n int, reason string) {
		for range n {
			_, err := s.Audit(AuditEvent{Type: "session.exec", User: "alice", Reason: reason})
			must(t, err)
		}
	}
	audit(s, 5, "ls")
	var sink []string
	deliver := func(s *Store, after uint64) {
		_, err := s.AuditLines(after, 1<<20, func(l []byte) error { sink = append(sink, string(l)); return nil })
		must(t, err)
	}
	deliver(s, 0)
	audit(s, 5, "rm -rf /srv/data") // the sink is down
	must(t, s.Close())
	tamper(t, cfg.Path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		var prev [hashLen]byte
		for seq := uint64(1); seq <= 10; seq++ {
			var rec auditRecord
			if err := json.Unmarshal(b.Get(u64key(seq)), &rec); err != nil {
				return err
			}
			if seq > 5 {
				rec.Event = json.RawMessage(strings.Replace(string(rec.Event), "rm -rf /srv/data", "ls -l /srv/data", 1))
				rec.Prev = hex.EncodeToString(prev[:])
				h := auditHash(seq, prev, rec.Event)
				rec.Hash = hex.EncodeToString(h[:])
				v, _ := json.Marshal(rec)
				if err := b.Put(u64key(seq), v); err != nil {
					return err
				}
			}
			h, _ := hex.DecodeString(rec.Hash)
			prev = [hashLen]byte(h)
		}
		c := tx.Bucket(bucketCheckpoints).Cursor()
		for k, _ := c.Seek(u64key(6)); k != nil; k, _ = c.Seek(u64key(6)) {
			if err := c.Delete(); err != nil {
				return err
			}
		}
		return nil
	})
	s2 := openStore(t, cfg)
	audit(s2, 3, "whoami")
	deliver(s2, 10) // the sink's place, moved to 10
	if rep, _ := s2.VerifyAudit(); !rep.Intact {
		t.Fatalf("the rewritten local log does not verify on its own: %+v", rep)
	}
	cmp, err := s2.CompareAudit(strings.NewReader(strings.Join(sink, "\n")))
	must(t, err)
	if cmp.Intact || cmp.BrokenAt != 6 {
		t.Errorf("got intact=%v broken_at=%d %q, want broken at record 6", cmp.Intact, cmp.BrokenAt, cmp.Problem)
	}
	// Records the bastion skipped itself (the sink fell further behind
	// than its spool) come with a gap line, and are not a problem.
	gapped := append(append(append([]string{}, sink[:len(sink)-4]...), `{"gap":{"from":6,"to":10}}`), sink[len(sink)-4:]...)
	cmp, err = s2.CompareAudit(strings.NewReader(strings.Join(gapped, "\n")))
	must(t, err)
	if !cmp.Intact {
		t.Errorf("with a gap line: %+v", cmp)
	}
}

// A record the receiver cut short (rsyslog's 8 KiB default) arrived: it
// is not compared, and is no hole in what the sink received.
func TestCompareAuditWithARecordCutShort(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	for i := range 5 {
		_, err := s.Audit(AuditEvent{Type: "session.exec", User: "alice", Reason: strings.Repeat("x", 1+i*4000)})
		must(t, err)
	}
	var sink []string
	_, err := s.AuditLines(0, 1<<20, func(l []byte) error {
		sink = append(sink, string(l[:min(len(l), 8<<10)]))
		return nil
	})
	must(t, err)
	cmp, err := s.CompareAudit(strings.NewReader(strings.Join(sink, "\n")))
	must(t, err)
	if !cmp.Intact || len(cmp.Notes) == 0 || !strings.Contains(cmp.Notes[0], "cut short") {
		t.Errorf("%+v", cmp)
	}
}

// ... and records cut short still show a deleted tail.
func TestCompareAuditTruncationSeenThroughRecordsCutShort(t *testing.T) {
	cfg, _ := testConfig(t)
	s, err := Open(cfg)
	must(t, err)
	for i := range 5 {
		_, err := s.Audit(AuditEvent{Type: "session.exec", User: "alice", Reason: strings.Repeat("x", 1+i*4000)})
		must(t, err)
	}
	var sink []string
	_, err = s.AuditLines(0, 1<<20, func(l []byte) error {
		if !bytes.HasPrefix(l, []byte(`{"checkpoint"`)) {
			sink = append(sink, string(l[:min(len(l), 8<<10)]))
		}
		return nil
	})
	must(t, err)
	must(t, s.Close())
	tamper(t, cfg.Path, func(tx *bolt.Tx) error {
		for seq := uint64(4); seq <= 5; seq++ {
			if err := tx.Bucket(bucketAudit).Delete(u64key(seq)); err != nil {
				return err
			}
			tx.Bucket(bucketCheckpoints).Delete(u64key(seq))
		}
		return nil
	})
	s2 := openStore(t, cfg)
	cmp, err := s2.CompareAudit(strings.NewReader(strings.Join(sink, "\n")))
	must(t, err)
	if cmp.Intact || cmp.BrokenAt != 4 {
		t.Errorf("%+v", cmp)
	}
}
