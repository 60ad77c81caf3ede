package recorder

import (
	"bytes"
	"crypto/ed25519"
	"crypto/elliptic"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// batchOf signs n checkpoints of distinct sessions in one batch.
func batchOf(t testing.TB, n int) ([]Checkpoint, [][]byte) {
	t.Helper()
	at := time.Date(2026, 12, 7, 21, 30, 0, 123456789, time.UTC)
	cps := make([]Checkpoint, n)
	for i := range cps {
		cps[i] = Checkpoint{SessionID: fmt.Sprintf("s%03d", i), Chunks: int64(i + 1), Events: int64(10 * i), Time: at}
		cps[i].Head[0], cps[i].Meta[0] = byte(i), byte(i+1)
	}
	cps[0].Meta = [hashLen]byte{} // a v1 text among them
	signer, err := newSealSigner(testKey)
	must(t, err)
	vs, err := signCheckpoints(signer, cps)
	must(t, err)
	if len(vs) != n {
		t.Fatalf("%d values for %d checkpoints", len(vs), n)
	}
	return cps, vs
}

// One signature covers a flush's checkpoints; each stored value opens to
// its own checkpoint, and an auditor checks it with the note and tlog
// packages alone.
func TestCheckpointBatch(t *testing.T) {
	pub := testKey.Public().(ed25519.PublicKey)
	for _, n := range []int{1, 2, 3, 5, 8, 13, 100} {
		cps, vs := batchOf(t, n)
		for i, v := range vs {
			if batched := bytes.HasPrefix(v, []byte(batchedMagic+"\n")); batched != (n > 1) {
				t.Fatalf("n=%d: batched %v", n, batched)
			}
			got, err := OpenCheckpoint(pub, v)
			if err != nil || got != cps[i] {
				t.Fatalf("n=%d, #%d: got %+v, %v, want %+v", n, i, got, err, cps[i])
			}
			if n > 1 {
				auditorCheck(t, v)
			}
		}
	}
}

// With an ECDSA P-256 key behind an opaque crypto.Signer (what an HSM
// gives), a batch signs and opens the same way.
func TestCheckpointBatchECDSA(t *testing.T) {
	key := mustECDSA(t, elliptic.P256())
	signer, err := newSealSigner(opaqueSigner{key})
	must(t, err)
	cps, _ := batchOf(t, 5)
	vs, err := signCheckpoints(signer, cps)
	must(t, err)
	for i, v := range vs {
		if got, err := OpenCheckpoint(&key.PublicKey, v); err != nil || got != cps[i] {
			t.Fatalf("#%d: got %+v, %v", i, got, err)
		}
		if _, err := OpenCheckpoint(testKey.Public(), v); !errors.Is(err, errSignature) {
			t.Fatalf("#%d opened with another key: %v", i, err)
		}
	}
}

// auditorCheck opens a batched checkpoint as the README tells an auditor:
// the batch with golang.org/x/mod/sumdb/note, the record with tlog.
func auditorCheck(t *testing.T, v []byte) {
	t.Helper()
	lines := strings.SplitAfter(string(v), "\n")
	var idx, size, k int64
	if _, err := fmt.Sscanf(lines[1], "%d %d %d\n", &idx, &size, &k); err != nil {
		t.Fatal(err)
	}
	proof := make(tlog.RecordProof, k)
	for i := range proof {
		h, err := tlog.ParseHash(strings.TrimSuffix(lines[2+i], "\n"))
		must(t, err)
		proof[i] = h
	}
	n := 7
	if strings.HasPrefix(lines[2+k], checkpointOriginV2) {
		n = 8
	}
	record := strings.Join(lines[2+k:2+k+int64(n)-1], "")
	verifier, err := note.NewVerifier(NoteVerifierKey(testKey.Public().(ed25519.PublicKey)))
	must(t, err)
	batch, err := note.Open([]byte(strings.Join(lines[2+k+int64(n)-1:], "")), note.VerifierList(verifier))
	must(t, err)
	root, err := tlog.ParseHash(strings.Split(batch.Text, "\n")[3])
	must(t, err)
	if err := tlog.CheckRecord(proof, size, root, idx, tlog.RecordHash([]byte(record))); err != nil {
		t.Fatalf("auditor's check: %v", err)
	}
}

// malformedBatched returns edits of a good batched checkpoint (the second
// of three) that must not open.
func malformedBatched(t testing.TB) (good []byte, bad map[string][]byte) {
	cps, vs := batchOf(t, 3)
	cps[2].Chunks = 99 // another flush's batch, of the same sessions
	signer, err := newSealSigner(testKey)
	must(t, err)
	other, err := signCheckpoints(signer, cps)
	must(t, err)
	good = vs[1]
	s := string(good)
	lines := strings.SplitAfter(s, "\n")
	hdr := lines[1]
	repl := func(old, new string) []byte { return []byte(strings.Replace(s, old, new, 1)) }
	otherKey := func() []byte {
		_, priv, _ := ed25519.GenerateKey(nil)
		signer, err := newSealSigner(priv)
		must(t, err)
		cps, _ := batchOf(t, 3)
		vs, err := signCheckpoints(signer, cps)
		must(t, err)
		return vs[1]
	}()
	bad = map[string][]byte{
		"empty":                     nil,
		"magic only":                []byte(batchedMagic + "\n"),
		"no header":                 []byte(batchedMagic + "\n" + checkpointOriginV2 + "\n"),
		"header of two fields":      repl(hdr, "1 3\n"),
		"header of four fields":     repl(hdr, "1 3 2 0\n"),
		"index out of the tree":     repl(hdr, "3 3 2\n"),
		"other index":               repl(hdr, "0 3 2\n"),
		"negative index":            repl(hdr, "-1 3 2\n"),
		"leading zero":              repl(hdr, "01 3 2\n"),
		"plus sign":                 repl(hdr, "+1 3 2\n"),
		"tree of one":               repl(hdr, "0 1 2\n"),
		"other size":                repl(hdr, "1 4 2\n"),
		"huge size":                 repl(hdr, "1 99999999999 2\n"),
		"too many proof hashes":     repl(hdr, "1 3 65\n"),
		"one proof hash less":       repl(hdr, "1 3 1\n"),
		"proof hash edited":         repl(lines[2], strings.Repeat("A", 43)+"=\n"),
		"proof hash not base64":     repl(lines[2], "!!!\n"),
		"proof hash short":          repl(lines[2], "AAAA\n"),
		"chunks edited":             repl("\ns001\n2\n", "\ns001\n9\n"),
		"session edited":            repl("\ns001\n", "\ns002\n"),
		"time edited":               repl("\n2026-12-07T21:30:00.123456789Z\nAg", "\n2026-12-07T21:30:01.123456789Z\nAg"),
		"unknown origin":            repl(checkpointOriginV2, "bastion session checkpoint v9"),
		"text cut":                  []byte(strings.Join(lines[:6], "")),
		"batch signed by other key": otherKey,
		"another batch's note":      []byte(strings.Join(lines[:10], "") + strings.Join(strings.SplitAfter(string(other[1]), "\n")[10:], "")),
		"batch note edited":         repl(batchOrigin+"\n", batchOrigin+"\n\n"),
		"batch size edited":         repl("\n3\n", "\n4\n"),
	}
	return good, bad
}

func TestBatchedCheckpointMalformed(t *testing.T) {
	good, bad := malformedBatched(t)
	pub := testKey.Public().(ed25519.PublicKey)
	if _, err := OpenCheckpoint(pub, good); err != nil {
		t.Fatal(err)
	}
	for name, v := range bad {
		if bytes.Equal(v, good) {
			t.Errorf("%s: the edit did not apply", name)
			continue
		}
		cp, err := OpenCheckpoint(pub, v)
		if err == nil {
			t.Errorf("%s: opened as %+v", name, cp)
		} else if !errors.Is(err, errCheckpoint) && !errors.Is(err, errSignature) {
			t.Errorf("%s: %v is neither malformed nor a bad signature", name, err)
		}
	}
}

// FuzzOpenCheckpoint: a stored checkpoint is bytes from the store, which
// its writer can edit; opening never panics, and nothing but what the key
// signed opens.
func FuzzOpenCheckpoint(f *testing.F) {
	good, bad := malformedBatched(f)
	f.Add(good)
	for _, v := range bad {
		f.Add(v)
	}
	signer, err := newSealSigner(testKey)
	if err != nil {
		f.Fatal(err)
	}
	single, err := signCheckpoint(signer, Checkpoint{SessionID: "one", Chunks: 1, Time: time.Unix(0, 0)})
	if err != nil {
		f.Fatal(err)
	}
	f.Add(single)
	pub := testKey.Public().(ed25519.PublicKey)
	f.Fuzz(func(t *testing.T, v []byte) {
		cp, err := OpenCheckpoint(pub, v)
		if err == nil && !bytes.Equal(v, good) && !bytes.Equal(v, single) && !strings.HasPrefix(cp.SessionID, "s00") {
			t.Fatalf("opened %q as %+v", v, cp)
		}
	})
}

// TestMerkleTreeMatchesTlog: the in-memory tree the batch is built with
// gives tlog's root and tlog's proof for every leaf of trees of 1 to 300
// records, so auditors checking with tlog.CheckRecord accept what it signs.
func TestMerkleTreeMatchesTlog(t *testing.T) {
	var stored []tlog.Hash
	r := tlog.HashReaderFunc(func(idx []int64) ([]tlog.Hash, error) {
		hs := make([]tlog.Hash, len(idx))
		for i, x := range idx {
			hs[i] = stored[x]
		}
		return hs, nil
	})
	var leaves []tlog.Hash
	for n := 1; n <= 300; n++ {
		rec := []byte(fmt.Sprintf("record %d\n", n-1))
		hs, err := tlog.StoredHashes(int64(n-1), rec, r)
		must(t, err)
		stored = append(stored, hs...)
		leaves = append(leaves, tlog.RecordHash(rec))
		tree := newMerkleTree(leaves)
		want, err := tlog.TreeHash(int64(n), r)
		must(t, err)
		if got := tree.hash(0, n); got != want {
			t.Fatalf("size %d: root %v, tlog's %v", n, got, want)
		}
		for i := range n {
			want, err := tlog.ProveRecord(int64(n), int64(i), r)
			must(t, err)
			got := tree.proof(nil, i, 0, n)
			if len(got) != len(want) {
				t.Fatalf("size %d, leaf %d: %d proof hashes, tlog's %d", n, i, len(got), len(want))
			}
			for j := range got {
				if got[j] != want[j] {
					t.Fatalf("size %d, leaf %d: proof hash %d differs from tlog's", n, i, j)
				}
			}
		}
	}
}
