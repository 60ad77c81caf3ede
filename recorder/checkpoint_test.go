package recorder

import (
	"bytes"
	"crypto/ed25519"
	"encoding/base64"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	"golang.org/x/mod/sumdb/note"
)

// crashLive records a session of n flushed chunks and stops the store as a
// crash would, leaving the session live in the file.
func crashLive(t *testing.T, n int) Config {
	t.Helper()
	cfg, clk := testConfig(t)
	s, err := Open(cfg)
	must(t, err)
	r := begin(t, s, SessionInfo{ID: "live"})
	// Another session writes in the same flushes, so their checkpoints
	// are signed in one batch (the form a busy bastion stores).
	other := begin(t, s, SessionInfo{ID: "other"})
	for i := range n {
		clk.Advance(1000)
		must(t, r.Output([]byte(strings.Repeat(string(rune('a'+i)), 10)+"\r\n")))
		must(t, other.Output([]byte("beside\r\n")))
		s.sync()
	}
	if rep := verify(t, s, "live"); !rep.Intact || rep.Chunks != int64(n) {
		t.Fatalf("live session before the crash: %+v", rep)
	}
	must(t, s.boltDB().View(func(tx *bolt.Tx) error {
		if cp := tx.Bucket(bucketSessionCPs).Get([]byte("live")); n > 0 && !bytes.HasPrefix(cp, []byte(batchedMagic+"\n")) {
			t.Fatalf("the checkpoint is not batched: %q", cp)
		}
		return nil
	}))
	s.mu.Lock()
	delete(s.active, r.id)
	s.mu.Unlock()
	must(t, s.Close())
	tamper(t, cfg.Path, editJSON(bucketSessions, "live", func(m map[string]any) { m["status"] = StatusLive }))
	return cfg
}

// rebuild rewrites every chunk of a session from seq on with edit applied to
// its events, relinking the chain with fresh hashes: what an attacker with
// the file but not the seal key can do.
func rebuild(id string, from uint64, edit func([]byte) []byte) func(*bolt.Tx) error {
	return func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketChunks)
		prev := genesis(id)
		for seq := uint64(0); ; seq++ {
			v := b.Get(chunkKey(id, seq))
			if v == nil {
				return nil
			}
			c, err := parseChunk(v, seq, nil)
			if err != nil {
				return err
			}
			payload := bytes.Clone(c.payload)
			if seq >= from {
				payload = edit(payload)
			}
			nv, h := newChunk(payload, seq, prev, c.events)
			if err := b.Put(chunkKey(id, seq), nv); err != nil {
				return err
			}
			prev = h
		}
	}
}

func forge(p []byte) []byte { return bytes.ReplaceAll(p, []byte("cccccccccc"), []byte("FORGED!!!!")) }

func TestCheckpointIsAStandardSignedNote(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{ID: "noted"})
	must(t, r.Output([]byte("hello")))
	s.sync()
	var msg []byte
	must(t, s.boltDB().View(func(tx *bolt.Tx) error {
		msg = bytes.Clone(tx.Bucket(bucketSessionCPs).Get([]byte("noted")))
		return nil
	}))
	v, err := note.NewVerifier(NoteVerifierKey(testKey.Public().(ed25519.PublicKey)))
	must(t, err)
	n, err := note.Open(msg, note.VerifierList(v))
	must(t, err)
	if !strings.HasPrefix(n.Text, "bastion session checkpoint v2\nnoted\n1\n1\n") {
		t.Fatalf("note text: %q", n.Text)
	}
	info, err := s.Session("noted")
	must(t, err)
	cp, err := OpenCheckpoint(testKey.Public().(ed25519.PublicKey), msg)
	if err != nil || cp.Chunks != 1 || cp.SessionID != "noted" || cp.Meta != MetaHash(info) {
		t.Fatalf("got %+v, %v", cp, err)
	}
	_, other, _ := ed25519.GenerateKey(nil)
	if _, err := OpenCheckpoint(other.Public().(ed25519.PublicKey), msg); err == nil {
		t.Fatal("a checkpoint verified with another key")
	}
	for _, bad := range []string{"", "x", strings.Replace(string(msg), "noted", "other", 1), strings.Replace(string(msg), "\n1\n", "\n9\n", 1)} {
		if _, err := OpenCheckpoint(testKey.Public().(ed25519.PublicKey), []byte(bad)); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
}

// The attack of issue 12: edit a live session's content, rebuild the chain,
// leave it live and restart. Recovery must not seal the forgery, and verify
// must never say intact.
func TestRecoveryDoesNotSealAForgery(t *testing.T) {
	cfg := crashLive(t, 4)
	tamper(t, cfg.Path, rebuild("live", 2, forge))
	s := openStore(t, cfg)
	info, err := s.Session("live")
	must(t, err)
	if info.Status != StatusInterrupted || !strings.Contains(info.Error, "does not match the signed checkpoint") {
		t.Fatalf("recovered: %+v", info)
	}
	rep := verify(t, s, "live")
	if rep.Intact || rep.BrokenAt != 3 || !strings.Contains(rep.Problem, "does not match the signed checkpoint") {
		t.Fatalf("verify: %+v", rep)
	}
}

// Without the forgery, recovery seals everything committed: the flusher
// wrote a checkpoint with every chunk.
func TestRecoverySealsUpToTheCheckpoint(t *testing.T) {
	cfg := crashLive(t, 3)
	s := openStore(t, cfg)
	if rep := verify(t, s, "live"); !rep.Intact || !rep.Sealed || rep.Chunks != 3 {
		t.Fatalf("verify: %+v", rep)
	}
}

// Chunks appended after the last checkpoint are not sealed: verify names
// the first of them as unverified.
func TestContentAfterTheCheckpointIsUnverified(t *testing.T) {
	cfg := crashLive(t, 3)
	tamper(t, cfg.Path, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketChunks)
		c, err := parseChunk(b.Get(chunkKey("live", 2)), 2, nil)
		if err != nil {
			return err
		}
		v, _ := newChunk(appendEvent(nil, 'o', 9e9, []byte("rm -rf / was never typed")), 3, c.hash, 1)
		return b.Put(chunkKey("live", 3), v)
	})
	s := openStore(t, cfg)
	info, _ := s.Session("live")
	if !strings.Contains(info.Error, "after the last signed checkpoint") {
		t.Errorf("recovered: %+v", info)
	}
	rep := verify(t, s, "live")
	if rep.Intact || rep.BrokenAt != 3 || !strings.Contains(rep.Problem, "chunks 3 to 3 come after the seal: unverified") {
		t.Fatalf("verify: %+v", rep)
	}
}

// Deleting the checkpoint as well leaves nothing that vouches for the
// content: not sealed, unverified from chunk 0.
func TestDeletedCheckpoint(t *testing.T) {
	cfg := crashLive(t, 3)
	tamper(t, cfg.Path, func(tx *bolt.Tx) error {
		if err := rebuild("live", 2, forge)(tx); err != nil {
			return err
		}
		return tx.Bucket(bucketSessionCPs).Delete([]byte("live"))
	})
	s := openStore(t, cfg)
	info, _ := s.Session("live")
	if !strings.Contains(info.Error, "no signed checkpoint covers the recording") {
		t.Errorf("recovered: %+v", info)
	}
	if rep := verify(t, s, "live"); rep.Intact || rep.BrokenAt != 0 {
		t.Fatalf("verify: %+v", rep)
	}
}

// A live session rewritten in place (no restart) fails verify too.
func TestLiveRewriteIsDetected(t *testing.T) {
	cfg, clk := testConfig(t)
	s, err := Open(cfg)
	must(t, err)
	r := begin(t, s, SessionInfo{ID: "live"})
	for i := range 4 {
		clk.Advance(1000)
		must(t, r.Output([]byte(strings.Repeat(string(rune('a'+i)), 10))))
		s.sync()
	}
	must(t, s.boltDB().Update(rebuild("live", 1, forge)))
	if rep := verify(t, s, "live"); rep.Intact || !strings.Contains(rep.Problem, "does not match the signed checkpoint") {
		t.Fatalf("verify: %+v", rep)
	}
	must(t, r.End(ExitInfo{}))
	must(t, s.Close())
}

// A store written before format 2 and checkpoints (recorder/testdata/v1.db,
// made by the format 1 code) still verifies, replays and exports, and takes
// new sessions beside the old ones.
func TestStoreWrittenByFormat1(t *testing.T) {
	src, err := os.ReadFile("testdata/v1.db")
	must(t, err)
	cfg, _ := testConfig(t)
	cfg.Path = filepath.Join(t.TempDir(), "v1.db")
	must(t, os.WriteFile(cfg.Path, src, 0o600))
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	cfg.SealKey = ed25519.NewKeyFromSeed(seed)
	s := openStore(t, cfg)
	for _, id := range []string{"01JV1SEALEDSESSION00000000", "01JV1EXECSESSION0000000000"} {
		if rep := verify(t, s, id); !rep.Intact || !rep.Sealed {
			t.Errorf("%s: %+v", id, rep)
		}
	}
	var out bytes.Buffer
	must(t, s.Export("01JV1SEALEDSESSION00000000", &out))
	if !strings.Contains(out.String(), `echo hello\r\nhello`) || !strings.Contains(out.String(), "blocked by rule no-rm-rf") {
		t.Errorf("export: %s", out.String())
	}
	if rep, err := s.VerifyAudit(); err != nil || !rep.Intact {
		t.Errorf("audit: %+v %v", rep, err)
	}
	r := begin(t, s, SessionInfo{ID: "new"})
	must(t, r.Output([]byte(strings.Repeat("new format output\r\n", 100))))
	must(t, r.End(ExitInfo{}))
	if rep := verify(t, s, "new"); !rep.Intact || !rep.Sealed {
		t.Errorf("new: %+v", rep)
	}
	must(t, s.Export("new", io.Discard))
}

// TestCheckpointText: the text a checkpoint is signed as, v1 and v2, line
// by line (verify rebuilds it from the parsed fields, so it must not move).
func TestCheckpointText(t *testing.T) {
	c := Checkpoint{SessionID: "01JSESSION", Chunks: 12, Events: 3456, Time: time.Date(2026, 12, 7, 23, 45, 1, 5000, time.FixedZone("x", 3600))}
	c.Head[0], c.Head[31] = 0xfb, 0x01
	head := base64.StdEncoding.EncodeToString(c.Head[:])
	want := checkpointOrigin + "\n01JSESSION\n12\n3456\n" + head + "\n2026-12-07T22:45:01.000005Z\n"
	if got := c.text(); got != want {
		t.Errorf("v1 text:\n%q\nwant\n%q", got, want)
	}
	c.Meta[5] = 7
	want = checkpointOriginV2 + "\n01JSESSION\n12\n3456\n" + head + "\n2026-12-07T22:45:01.000005Z\n" + base64.StdEncoding.EncodeToString(c.Meta[:]) + "\n"
	if got := c.text(); got != want {
		t.Errorf("v2 text:\n%q\nwant\n%q", got, want)
	}
	if got, err := parseCheckpointText(want); err != nil || got.text() != want || !got.Time.Equal(c.Time) {
		t.Errorf("parse of the v2 text: %+v, %v", got, err)
	}
}
