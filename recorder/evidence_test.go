package recorder

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"strconv"
	"strings"
	"testing"

	"github.com/bastionhq/bastion/recorder/asciicast"
	bolt "go.etcd.io/bbolt"
)

// A sink's copy of the audit log agrees with the local one only when the
// local records are what their hashes say: a record whose event was edited in
// the store, its stored hash left as it was, is not "intact" against a sink
// (the comparison used the stored hash field and never the content).
func TestCompareAuditSeesAnEditedLocalRecord(t *testing.T) {
	cfg, _ := testConfig(t)
	s, err := Open(cfg)
	must(t, err)
	for range 5 {
		_, err := s.Audit(AuditEvent{Type: "session.exec", User: "alice", Reason: "rm -rf /srv/data"})
		must(t, err)
	}
	var lines []string
	_, err = s.AuditLines(0, 1<<20, func(l []byte) error { lines = append(lines, string(l)); return nil })
	must(t, err)
	must(t, s.Close())
	tamper(t, cfg.Path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketAudit)
		var rec auditRecord
		if err := json.Unmarshal(b.Get(u64key(3)), &rec); err != nil {
			return err
		}
		rec.Event = json.RawMessage(strings.Replace(string(rec.Event), "rm -rf /srv/data", "ls -l /srv/data", 1))
		v, _ := json.Marshal(rec)
		return b.Put(u64key(3), v)
	})
	s2 := openStore(t, cfg)
	cmp, err := s2.CompareAudit(strings.NewReader(strings.Join(lines, "\n")))
	must(t, err)
	if cmp.Intact || cmp.BrokenAt != 3 {
		t.Fatalf("got intact=%v broken_at=%d %q, want broken at record 3", cmp.Intact, cmp.BrokenAt, cmp.Problem)
	}
}

// A live session's metadata (who, where, when) is covered by its signed
// checkpoints, not only by the seal at its end: after a crash, someone with
// the file who edits the interrupted session's user, target or start before
// the restart must not get the edit sealed as intact.
func TestRecoveryDoesNotSealEditedMetadata(t *testing.T) {
	for _, field := range []struct{ key, value string }{
		{"user", "bob"}, {"target", "db1"}, {"start", "2020-01-01T00:00:00Z"}, {"client_addr", "10.9.9.9:1"},
	} {
		for _, chunks := range []int{0, 3} { // 0: the session never produced output
			t.Run(field.key+"/"+strconv.Itoa(chunks), func(t *testing.T) {
				cfg := crashLive(t, chunks)
				tamper(t, cfg.Path, editJSON(bucketSessions, "live", func(m map[string]any) { m[field.key] = field.value }))
				s := openStore(t, cfg)
				info, err := s.Session("live")
				must(t, err)
				if !strings.Contains(info.Error, "differs from the signed checkpoint") {
					t.Errorf("recovered: %+v", info)
				}
				if rep := verify(t, s, "live"); rep.Intact {
					t.Fatalf("verify after %s was edited: %+v", field.key, rep)
				}
			})
		}
	}
}

// The same edit on a session that is still live fails verify at once.
func TestLiveMetadataEditIsDetected(t *testing.T) {
	cfg, clk := testConfig(t)
	s, err := Open(cfg)
	must(t, err)
	r := begin(t, s, SessionInfo{ID: "live"})
	clk.Advance(1000)
	must(t, r.Output([]byte("hello")))
	s.sync()
	must(t, s.boltDB().Update(editJSON(bucketSessions, "live", func(m map[string]any) { m["user"] = "bob" })))
	if rep := verify(t, s, "live"); rep.Intact {
		t.Fatalf("verify: %+v", rep)
	}
	must(t, r.End(ExitInfo{}))
	must(t, s.Close())
}

// Without the edit, a crashed session of no output, or of some, is sealed
// and intact.
func TestRecoverySealsTheUneditedMetadata(t *testing.T) {
	for _, chunks := range []int{0, 2} {
		cfg := crashLive(t, chunks)
		s := openStore(t, cfg)
		if rep := verify(t, s, "live"); !rep.Intact || !rep.Sealed || rep.Chunks != int64(chunks) {
			t.Fatalf("%d chunks: verify: %+v", chunks, rep)
		}
	}
}

// newChunkV1 builds a chunk of format 1 (what stores wrote before
// checkpoints existed).
func newChunkV1(payload []byte, seq uint64, prev [hashLen]byte, events int) ([]byte, [hashLen]byte) {
	v := []byte(chunkMagicV1)
	v = binary.BigEndian.AppendUint64(v, seq)
	v = append(v, prev[:]...)
	v = binary.BigEndian.AppendUint32(v, uint32(events))
	v = binary.BigEndian.AppendUint32(v, uint32(len(payload)))
	v = append(v, payload...)
	h := sha256.Sum256(v)
	return append(v, h[:]...), h
}

// The date from which sessions must have signed checkpoints is kept in the
// store: moved into the future by someone with the file, it made a live
// session rebuilt in chunk format 1, its checkpoint deleted, look like one
// recorded before checkpoints existed, and the recovery sealed the forgery.
func TestCheckpointsSinceMovedForward(t *testing.T) {
	cfg := crashLive(t, 4)
	tamper(t, cfg.Path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketChunks)
		prev := genesis("live")
		for seq := uint64(0); ; seq++ {
			v := b.Get(chunkKey("live", seq))
			if v == nil {
				break
			}
			c, err := parseChunk(v, seq, nil)
			if err != nil {
				return err
			}
			nv, h := newChunkV1(forge(bytes.Clone(c.payload)), seq, prev, c.events)
			if err := b.Put(chunkKey("live", seq), nv); err != nil {
				return err
			}
			prev = h
		}
		if err := tx.Bucket(bucketSessionCPs).Delete([]byte("live")); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put([]byte(metaCheckpointsSince), []byte("2100-01-01T00:00:00Z"))
	})
	s := openStore(t, cfg)
	if out := output(events(t, s, "live"), 'o'); !strings.Contains(out, "FORGED") {
		t.Fatalf("the forgery did not take: %q", out)
	}
	if rep := verify(t, s, "live"); rep.Intact {
		t.Fatalf("verify: %+v", rep)
	}
}

// The seal covers what the session did as the record lists it (the
// database, the statements judged, the commands blocked, approved and
// denied, the exit signal and why it ended), not only who and when: an
// edit of any of them in an ended session's record fails verify.
func TestSealCoversTheOutcome(t *testing.T) {
	for _, field := range []struct {
		key   string
		value any
	}{
		{"database", "test"}, {"statements", 1}, {"blocked", 0}, {"approved", 3}, {"denied", 0},
		{"exit_signal", "KILL"}, {"reason", "idle"}, {"error", "x"},
	} {
		t.Run(field.key, func(t *testing.T) {
			cfg, clk := testConfig(t)
			s, err := Open(cfg)
			must(t, err)
			r := begin(t, s, SessionInfo{ID: "pg", Kind: "postgres"})
			clk.Advance(1000)
			must(t, r.Output([]byte("select * from payroll")))
			must(t, r.End(ExitInfo{Login: "app", Database: "payroll", Statements: 7, Blocked: 2, Approved: 1, Denied: 1}))
			must(t, s.Close())
			tamper(t, cfg.Path, editJSON(bucketSessions, "pg", func(m map[string]any) { m[field.key] = field.value }))
			s = openStore(t, cfg)
			if rep := verify(t, s, "pg"); rep.Intact {
				t.Fatalf("verify after %s was edited: %+v", field.key, rep)
			}
		})
	}
}

// A recording rewritten with its chain rebuilt (content changed, every hash
// recomputed, without the seal key) links chunk to chunk, so Export and
// Events read it through; they must not end as if it were the recording,
// since it no longer matches its seal.
func TestExportRefusesARebuiltChain(t *testing.T) {
	cfg, id, _ := recordChunks(t, 4)
	tamper(t, cfg.Path, rebuild(id, 2, func(p []byte) []byte { return bytes.ReplaceAll(p, []byte("cccccccccc"), []byte("FORGED!!!!")) }))
	s := openStore(t, cfg)
	var out bytes.Buffer
	if err := s.Export(id, &out); !errors.Is(err, ErrBroken) {
		t.Errorf("Export: got %v, want %v (it wrote %q)", err, ErrBroken, out.String())
	}
	if err := s.Events(id, func(asciicast.Event) error { return nil }); !errors.Is(err, ErrBroken) {
		t.Errorf("Events: got %v, want %v", err, ErrBroken)
	}
	if err := s.EventsSeek(id, Seek{}, func(Seek, asciicast.Event, []byte) error { return nil }); !errors.Is(err, ErrBroken) {
		t.Errorf("EventsSeek: got %v, want %v", err, ErrBroken)
	}
}
