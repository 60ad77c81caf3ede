package recorder

import (
	"bytes"
	"encoding/json"
	"errors"
	"strings"
	"testing"

	"github.com/bastionhq/bastion/recorder/asciicast"
	bolt "go.etcd.io/bbolt"
)

// recordChunks records an ended session of n chunks (and another session)
// and closes the store, returning the config and the session ID.
func recordChunks(t *testing.T, n int) (Config, string, string) {
	t.Helper()
	cfg, clk := testConfig(t)
	s, err := Open(cfg)
	must(t, err)
	r := begin(t, s, SessionInfo{ID: "victim"})
	other := begin(t, s, SessionInfo{ID: "other"})
	for i := range n {
		clk.Advance(1000)
		must(t, r.Output([]byte(strings.Repeat(string(rune('a'+i)), 10))))
		must(t, other.Output([]byte("o")))
		s.sync()
	}
	must(t, r.End(ExitInfo{}))
	must(t, other.End(ExitInfo{}))
	must(t, s.Close())
	return cfg, r.ID(), other.ID()
}

// tamper edits the closed store's file directly.
func tamper(t *testing.T, path string, fn func(tx *bolt.Tx) error) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, nil)
	must(t, err)
	defer db.Close()
	must(t, db.Update(fn))
}

// editChunk replaces the value of chunk seq of id with edit(value).
func editChunk(id string, seq uint64, edit func(v []byte) []byte) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketChunks)
		v := b.Get(chunkKey(id, seq))
		if v == nil {
			return errors.New("no such chunk")
		}
		return b.Put(chunkKey(id, seq), edit(bytes.Clone(v)))
	}
}

func flipAt(off int) func([]byte) []byte {
	return func(v []byte) []byte {
		if off < 0 {
			off += len(v)
		}
		v[off] ^= 0x01
		return v
	}
}

// reseal changes a payload byte and recomputes the chunk's own hash, as an
// attacker who knows the format would.
func reseal(v []byte) []byte {
	c, err := parseChunk(v, uint64(v[11]), nil)
	if err != nil {
		panic(err)
	}
	payload := bytes.Clone(c.payload)
	payload[len(payload)-1] ^= 0x01 // still a letter
	nv, _ := newChunk(payload, c.seq, c.prev, c.events)
	return nv
}

func editJSON(bucket []byte, key string, edit func(m map[string]any)) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b := tx.Bucket(bucket)
		var m map[string]any
		if err := json.Unmarshal(b.Get([]byte(key)), &m); err != nil {
			return err
		}
		edit(m)
		v, _ := json.Marshal(m)
		return b.Put([]byte(key), v)
	}
}

func TestTamperDetection(t *testing.T) {
	tests := []struct {
		name    string
		edit    func(id, other string) func(*bolt.Tx) error
		at      int64
		problem string
	}{
		{name: "flip payload byte", edit: func(id, _ string) func(*bolt.Tx) error { return editChunk(id, 2, flipAt(chunkHeaderLenV2+3)) },
			at: 2, problem: "chunk 2: chunk content does not match its hash"},
		{name: "flip header byte", edit: func(id, _ string) func(*bolt.Tx) error { return editChunk(id, 0, flipAt(20)) },
			at: 0, problem: "chunk 0: chunk content does not match its hash"},
		{name: "flip stored hash", edit: func(id, _ string) func(*bolt.Tx) error { return editChunk(id, 3, flipAt(-1)) },
			at: 3, problem: "does not match its hash"},
		{name: "truncate chunk", edit: func(id, _ string) func(*bolt.Tx) error {
			return editChunk(id, 1, func(v []byte) []byte { return v[:10] })
		}, at: 1, problem: "truncated"},
		{name: "rewrite chunk with a fresh hash", edit: func(id, _ string) func(*bolt.Tx) error { return editChunk(id, 1, reseal) },
			at: 2, problem: "chunk 2 does not link to chunk 1"},
		{name: "rewrite last chunk with a fresh hash", edit: func(id, _ string) func(*bolt.Tx) error { return editChunk(id, 3, reseal) },
			at: 3, problem: "the chain does not end where the seal says"},
		{name: "delete middle chunk", edit: func(id, _ string) func(*bolt.Tx) error {
			return func(tx *bolt.Tx) error { return tx.Bucket(bucketChunks).Delete(chunkKey(id, 1)) }
		}, at: 1, problem: "chunk 1 is missing"},
		{name: "delete last chunk", edit: func(id, _ string) func(*bolt.Tx) error {
			return func(tx *bolt.Tx) error { return tx.Bucket(bucketChunks).Delete(chunkKey(id, 3)) }
		}, at: 3, problem: "chunks 3 to 3 are missing"},
		{name: "append chunk", edit: func(id, _ string) func(*bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketChunks)
				c, _ := parseChunk(b.Get(chunkKey(id, 3)), 3, nil)
				v, _ := newChunk(appendEvent(nil, asciicast.Output, 1e9, []byte("forged")), 4, c.hash, 1)
				return b.Put(chunkKey(id, 4), v)
			}
		}, at: 4, problem: "chunk 4 was added after the seal"},
		{name: "chunk from another session", edit: func(id, other string) func(*bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketChunks)
				return b.Put(chunkKey(id, 0), bytes.Clone(b.Get(chunkKey(other, 0))))
			}
		}, at: 0, problem: "chunk 0 does not link"},
		{name: "session user changed", edit: func(id, _ string) func(*bolt.Tx) error {
			return editJSON(bucketSessions, id, func(m map[string]any) { m["user"] = "mallory" })
		}, at: -1, problem: "identity differs from the seal"},
		{name: "session actor added", edit: func(id, _ string) func(*bolt.Tx) error {
			// The actor decides which CI run may read the recording.
			return editJSON(bucketSessions, id, func(m map[string]any) { m["actor"] = "mallory" })
		}, at: -1, problem: "identity differs from the seal"},
		{name: "session end changed", edit: func(id, _ string) func(*bolt.Tx) error {
			return editJSON(bucketSessions, id, func(m map[string]any) { m["end"] = "2030-01-01T00:00:00Z" })
		}, at: -1, problem: "times differs from the seal"},
		{name: "session record garbage", edit: func(id, _ string) func(*bolt.Tx) error {
			return func(tx *bolt.Tx) error { return tx.Bucket(bucketSessions).Put([]byte(id), []byte("{")) }
		}, at: -1, problem: "session record is unreadable"},
		{name: "seal payload changed", edit: func(id, _ string) func(*bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketSeals)
				var sg signed
				if err := json.Unmarshal(b.Get([]byte(id)), &sg); err != nil {
					return err
				}
				sg.Payload = bytes.Replace(sg.Payload, []byte(`"status":"ended"`), []byte(`"status":"ENDED"`), 1)
				nv, _ := json.Marshal(sg)
				return b.Put([]byte(id), nv)
			}
		}, at: -1, problem: "seal is invalid: signature does not verify"},
		{name: "seal removed", edit: func(id, _ string) func(*bolt.Tx) error {
			return func(tx *bolt.Tx) error { return tx.Bucket(bucketSeals).Delete([]byte(id)) }
		}, at: -1, problem: "the ended session has no seal"},
		{name: "seal of another session", edit: func(id, other string) func(*bolt.Tx) error {
			return func(tx *bolt.Tx) error {
				b := tx.Bucket(bucketSeals)
				return b.Put([]byte(id), bytes.Clone(b.Get([]byte(other))))
			}
		}, at: -1, problem: "the seal belongs to another session"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg, id, other := recordChunks(t, 4)
			tamper(t, cfg.Path, tc.edit(id, other))
			s := openStore(t, cfg)
			rep := verify(t, s, id)
			if rep.Intact || rep.BrokenAt != tc.at || !strings.Contains(rep.Problem, tc.problem) {
				t.Errorf("got intact=%v broken_at=%d %q, want broken at %d with %q", rep.Intact, rep.BrokenAt, rep.Problem, tc.at, tc.problem)
			}
			if rep := verify(t, s, other); !rep.Intact && !strings.Contains(tc.name, "another session") {
				t.Errorf("the other session: got %+v, want intact", rep)
			}
		})
	}
}

// Replay and export refuse a damaged chunk rather than show altered data.
func TestEventsRefuseTamperedChunk(t *testing.T) {
	cfg, id, _ := recordChunks(t, 3)
	tamper(t, cfg.Path, editChunk(id, 1, flipAt(chunkHeaderLen+3)))
	s := openStore(t, cfg)
	var seen int
	err := s.Events(id, func(asciicast.Event) error { seen++; return nil })
	if !errors.Is(err, ErrBroken) || !strings.Contains(err.Error(), "chunk 1") {
		t.Errorf("got %v, want %v naming chunk 1", err, ErrBroken)
	}
	if seen != 1 {
		t.Errorf("got %d events before the damage, want 1", seen)
	}
	if err := s.Export(id, new(bytes.Buffer)); !errors.Is(err, ErrBroken) {
		t.Errorf("Export: got %v, want %v", err, ErrBroken)
	}
	// A callback's own error comes back unchanged.
	stop := errors.New("viewer quit")
	if err := s.Events("other", func(asciicast.Event) error { return stop }); err != stop {
		t.Errorf("got %v, want %v", err, stop)
	}
}

// After a crash, a session whose chunks were damaged is marked interrupted
// but not sealed over the damage.
func TestRecoverDamagedLiveSession(t *testing.T) {
	cfg, _ := testConfig(t)
	s, err := Open(cfg)
	must(t, err)
	r := begin(t, s, SessionInfo{ID: "live"})
	must(t, r.Output([]byte("one")))
	s.sync()
	must(t, r.Output([]byte("two")))
	s.sync()
	// Simulate a crash: stop the flusher without ending the session.
	s.mu.Lock()
	delete(s.active, r.id)
	s.mu.Unlock()
	must(t, s.Close())
	tamper(t, cfg.Path, func(tx *bolt.Tx) error {
		if err := editJSON(bucketSessions, "live", func(m map[string]any) { m["status"] = StatusLive })(tx); err != nil {
			return err
		}
		return editChunk("live", 0, flipAt(chunkHeaderLen+2))(tx)
	})
	s2 := openStore(t, cfg)
	info, err := s2.Session("live")
	must(t, err)
	if info.Status != StatusInterrupted || !strings.Contains(info.Error, "recording damaged at chunk 0") {
		t.Errorf("got %+v, want interrupted and damaged at chunk 0", info)
	}
	if rep := verify(t, s2, "live"); rep.Intact || rep.BrokenAt != 0 {
		t.Errorf("verify: got %+v, want broken at 0", rep)
	}
}
