package recorder

import (
	"bytes"
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
	"golang.org/x/mod/sumdb/tlog"
)

// A session checkpoint is a signed statement of how far a session's chunk
// chain went at a flush: its chunk count, event count and head hash. The
// flusher writes one in the same transaction as the chunks it covers, so
// every committed chunk is covered by a signature the moment it exists, and
// a chain rebuilt by someone without the seal key no longer matches it.
//
// Checkpoints are signed notes in the format of golang.org/x/mod/sumdb/note
// (the Go checksum database's), so an auditor can check one with that
// package or any implementation of the format, given the verifier key that
// [NoteVerifierKey] returns (signature type 0x01 for an Ed25519 seal key,
// 0x02 for ECDSA P-256: see sealkey.go). The text is:
//
//	bastion session checkpoint v1
//	SESSION_ID
//	CHUNKS
//	EVENTS
//	HEAD (base64 of the SHA-256 chain head)
//	TIME (RFC 3339, UTC)
//	META (base64 of the SHA-256 of the session's metadata; v2 only)
//
// followed by the note's blank line and signature line. Version 2 (the
// origin line says "v2") adds META, which covers who recorded what where
// and when (see [MetaHash]): a session record edited in the store while
// the session is live, or after a crash and before the recovery seals it,
// no longer matches its checkpoint. Begin writes the first checkpoint, of
// no chunks, with the session record, so a session that never produced
// output is covered too. Stores written before keep v1 checkpoints, which
// verify as they did.
type Checkpoint struct {
	SessionID string
	Chunks    int64
	Events    int64
	Head      [hashLen]byte
	Time      time.Time
	Meta      [hashLen]byte // zero in a v1 checkpoint
}

const (
	checkpointOrigin   = "bastion session checkpoint v1"
	checkpointOriginV2 = "bastion session checkpoint v2"
	// noteKeyName names the seal key in signed notes.
	noteKeyName = "bastion-seal"
)

var errCheckpoint = errors.New("checkpoint is malformed")

// text is the checkpoint's note text.
func (c Checkpoint) text() string { return string(c.appendText(nil)) }

// appendText appends the checkpoint's text to dst.
func (c Checkpoint) appendText(dst []byte) []byte {
	v2 := c.Meta != ([hashLen]byte{})
	if v2 {
		dst = append(dst, checkpointOriginV2...)
	} else {
		dst = append(dst, checkpointOrigin...)
	}
	dst = append(dst, '\n')
	dst = append(dst, c.SessionID...)
	dst = append(dst, '\n')
	dst = strconv.AppendInt(dst, c.Chunks, 10)
	dst = append(dst, '\n')
	dst = strconv.AppendInt(dst, c.Events, 10)
	dst = append(dst, '\n')
	dst = base64.StdEncoding.AppendEncode(dst, c.Head[:])
	dst = append(dst, '\n')
	dst = c.Time.UTC().AppendFormat(dst, time.RFC3339Nano)
	dst = append(dst, '\n')
	if v2 {
		dst = base64.StdEncoding.AppendEncode(dst, c.Meta[:])
		dst = append(dst, '\n')
	}
	return dst
}

// MetaHash is what a v2 checkpoint's META line holds: the SHA-256 of the
// JSON of the session's ID, kind, user, issuer, subject, target, command,
// client address, certificate serial and start (RFC 3339, UTC), in that
// order, the fields Begin stores and nothing changes later.
func MetaHash(info SessionInfo) [hashLen]byte {
	v, _ := json.Marshal(struct {
		ID         string `json:"id"`
		Kind       string `json:"kind"`
		User       string `json:"user"`
		Issuer     string `json:"issuer"`
		Subject    string `json:"subject"`
		Target     string `json:"target"`
		Command    string `json:"command"`
		ClientAddr string `json:"client_addr"`
		CertSerial uint64 `json:"cert_serial"`
		Start      string `json:"start"`
	}{info.ID, info.Kind, info.User, info.Issuer, info.Subject, info.Target, info.Command,
		info.ClientAddr, info.CertSerial, info.Start.UTC().Format(time.RFC3339Nano)})
	return sha256.Sum256(v)
}

// parseCheckpointText reads a checkpoint's note text.
func parseCheckpointText(text string) (Checkpoint, error) {
	var c Checkpoint
	lines := strings.Split(text, "\n")
	switch {
	case len(lines) == 7 && lines[0] == checkpointOrigin && lines[6] == "":
	case len(lines) == 8 && lines[0] == checkpointOriginV2 && lines[7] == "":
		meta, err := base64.StdEncoding.DecodeString(lines[6])
		if err != nil || len(meta) != hashLen || [hashLen]byte(meta) == ([hashLen]byte{}) {
			return c, errCheckpoint
		}
		copy(c.Meta[:], meta)
	default:
		return c, errCheckpoint
	}
	c.SessionID = lines[1]
	var err1, err2, err3, err4 error
	c.Chunks, err1 = strconv.ParseInt(lines[2], 10, 64)
	c.Events, err2 = strconv.ParseInt(lines[3], 10, 64)
	head, err3 := base64.StdEncoding.DecodeString(lines[4])
	c.Time, err4 = time.Parse(time.RFC3339Nano, lines[5])
	if err1 != nil || err2 != nil || err3 != nil || err4 != nil || len(head) != hashLen || c.Chunks < 0 || c.Events < 0 || !validID(c.SessionID) {
		return c, errCheckpoint
	}
	copy(c.Head[:], head)
	return c, nil
}

// signCheckpoint returns c as a signed note.
func signCheckpoint(s *sealSigner, c Checkpoint) ([]byte, error) {
	return note.Sign(&note.Note{Text: c.text()}, s)
}

// A flush that moves several sessions signs their checkpoints with one
// signature: a signature per session per flush made the flusher of a
// thousand busy terminals spend most of its time signing (about 25 ms a
// flush with an ed25519 key, 90 ms with the key in SoftHSM2, and a network
// HSM's round trip per session would be seconds). The checkpoints' texts,
// exactly as a lone checkpoint's note would hold them, are the records of
// a Merkle tree (RFC 6962's, as golang.org/x/mod/sumdb/tlog computes it),
// and a signed note, the batch, holds its root:
//
//	bastion checkpoint batch v1
//	TIME (RFC 3339, UTC: the checkpoints' time)
//	SIZE (how many checkpoints)
//	ROOT (base64 of the tree's hash)
//
// What is stored for each session is then
//
//	bastion batched checkpoint v1
//	INDEX SIZE PROOF (the checkpoint's record number, the tree's size, and how many proof hashes follow)
//	PROOF hashes, base64, one a line (tlog's RecordProof)
//	the checkpoint's text (v1 or v2, as above)
//	the batch's signed note
//
// which an auditor checks with the note package (the batch) and
// tlog.CheckRecord (the checkpoint's record hash against the root). A
// flush that moves one session writes the plain note, as before batching.
const (
	batchOrigin  = "bastion checkpoint batch v1"
	batchedMagic = "bastion batched checkpoint v1"
	// maxBatch bounds a batch a reader accepts (a flush of more sessions
	// than that is split); with it, a proof has at most 20 hashes.
	maxBatch = 1 << 20
)

// signCheckpoints signs cps, checkpoints of distinct sessions at one time,
// returning what to store for each: with one signature for all of them
// when there are several.
func signCheckpoints(s *sealSigner, cps []Checkpoint) ([][]byte, error) {
	out := make([][]byte, 0, len(cps))
	for len(cps) > maxBatch {
		vs, err := signCheckpoints(s, cps[:maxBatch])
		if err != nil {
			return nil, err
		}
		out, cps = append(out, vs...), cps[maxBatch:]
	}
	switch len(cps) {
	case 0:
		return out, nil
	case 1:
		v, err := signCheckpoint(s, cps[0])
		return append(out, v), err
	}
	n := int64(len(cps))
	texts := make([][]byte, n)
	leaves := make([]tlog.Hash, n)
	for i, c := range cps {
		if !c.Time.Equal(cps[0].Time) {
			return nil, errors.New("recorder: checkpoint batch: checkpoints of different times")
		}
		texts[i] = c.appendText(make([]byte, 0, 256))
		leaves[i] = tlog.RecordHash(texts[i])
	}
	tree := newMerkleTree(leaves)
	root := tree.hash(0, len(leaves))
	batch, err := note.Sign(&note.Note{Text: fmt.Sprintf("%s\n%s\n%d\n%s\n", batchOrigin,
		cps[0].Time.UTC().Format(time.RFC3339Nano), n, base64.StdEncoding.EncodeToString(root[:]))}, s)
	if err != nil {
		return nil, err
	}
	var proof [64]tlog.Hash
	for i := range cps {
		p := tree.proof(proof[:0], i, 0, len(leaves))
		v := make([]byte, 0, len(batchedMagic)+24+len(p)*45+len(texts[i])+len(batch))
		v = fmt.Appendf(v, "%s\n%d %d %d\n", batchedMagic, i, n, len(p))
		for _, h := range p {
			v = base64.StdEncoding.AppendEncode(v, h[:])
			v = append(v, '\n')
		}
		v = append(v, texts[i]...)
		out = append(out, append(v, batch...))
	}
	return out, nil
}

// merkleTree is an RFC 6962 Merkle tree's complete subtrees, level by
// level: level 0 the leaves' hashes, level L the hashes of the aligned runs
// of 2^L leaves. tlog computes the same tree from hashes it reads one by
// one through a HashReader, allocating for each; a flush of a thousand
// sessions builds one and proves every leaf, so it is done here in memory.
// TestMerkleTreeMatchesTlog holds it to tlog's ProveRecord and TreeHash.
type merkleTree [][]tlog.Hash

func newMerkleTree(leaves []tlog.Hash) merkleTree {
	t := merkleTree{leaves}
	for lv := leaves; len(lv) > 1; lv = t[len(t)-1] {
		next := make([]tlog.Hash, len(lv)/2)
		for i := range next {
			next[i] = tlog.NodeHash(lv[2*i], lv[2*i+1])
		}
		t = append(t, next)
	}
	return t
}

// hash returns the hash of the subtree of leaves [lo, hi), as RFC 6962's
// MTH defines it.
func (t merkleTree) hash(lo, hi int) tlog.Hash {
	n := hi - lo
	if n&(n-1) == 0 && lo%n == 0 {
		l := bits.TrailingZeros(uint(n))
		return t[l][lo>>l]
	}
	k := 1 << (bits.Len(uint(n-1)) - 1) // the largest power of two below n
	return tlog.NodeHash(t.hash(lo, lo+k), t.hash(lo+k, hi))
}

// proof appends the audit path of leaf i in the subtree [lo, hi) to dst,
// lowest first, as RFC 6962's PATH and tlog's RecordProof order it.
func (t merkleTree) proof(dst []tlog.Hash, i, lo, hi int) []tlog.Hash {
	n := hi - lo
	if n <= 1 {
		return dst
	}
	k := 1 << (bits.Len(uint(n-1)) - 1)
	if i < lo+k {
		return append(t.proof(dst, i, lo, lo+k), t.hash(lo+k, hi))
	}
	return append(t.proof(dst, i, lo+k, hi), t.hash(lo, lo+k))
}

// openBatched checks a batched checkpoint (see signCheckpoints) and
// returns the checkpoint's text and the batch's time.
func openBatched(vs note.Verifiers, msg []byte) (string, time.Time, error) {
	var zero time.Time
	rest := string(msg[len(batchedMagic)+1:])
	line := func() (string, bool) {
		i := strings.IndexByte(rest, '\n')
		if i < 0 {
			return "", false
		}
		l := rest[:i]
		rest = rest[i+1:]
		return l, true
	}
	hdr, ok := line()
	f := strings.Split(hdr, " ")
	if !ok || len(f) != 3 {
		return "", zero, errCheckpoint
	}
	idx, err1 := parseCount(f[0], maxBatch)
	size, err2 := parseCount(f[1], maxBatch)
	k, err3 := parseCount(f[2], 64)
	if err1 != nil || err2 != nil || err3 != nil || size < 2 || idx >= size {
		return "", zero, errCheckpoint
	}
	proof := make(tlog.RecordProof, k)
	for i := range proof {
		l, ok := line()
		h, err := base64.StdEncoding.Strict().DecodeString(l)
		if !ok || err != nil || len(h) != hashLen {
			return "", zero, errCheckpoint
		}
		proof[i] = tlog.Hash(h)
	}
	// The checkpoint's text: its origin line says how many lines follow.
	start := rest
	var lines int
	switch origin, _ := line(); origin {
	case checkpointOrigin:
		lines = 5
	case checkpointOriginV2:
		lines = 6
	default:
		return "", zero, errCheckpoint
	}
	for range lines {
		if _, ok := line(); !ok {
			return "", zero, errCheckpoint
		}
	}
	text := start[:len(start)-len(rest)]
	n, err := note.Open([]byte(rest), vs)
	if err != nil {
		return "", zero, err
	}
	b := strings.Split(n.Text, "\n")
	if len(b) != 5 || b[0] != batchOrigin || b[4] != "" {
		return "", zero, errCheckpoint
	}
	at, err1 := time.Parse(time.RFC3339Nano, b[1])
	bsize, err2 := parseCount(b[2], maxBatch)
	root, err3 := base64.StdEncoding.Strict().DecodeString(b[3])
	if err1 != nil || err2 != nil || err3 != nil || bsize != size || len(root) != hashLen {
		return "", zero, errCheckpoint
	}
	if err := tlog.CheckRecord(proof, size, tlog.Hash(root), idx, tlog.RecordHash([]byte(text))); err != nil {
		return "", zero, fmt.Errorf("%w: the checkpoint is not the one its signed batch holds", errSignature)
	}
	return text, at, nil
}

// parseCount parses a decimal count in [0, max] written as strconv writes
// it (no sign, no leading zeros).
func parseCount(s string, max int64) (int64, error) {
	n, err := strconv.ParseInt(s, 10, 64)
	if err != nil || n < 0 || n > max || strconv.FormatInt(n, 10) != s {
		return 0, errCheckpoint
	}
	return n, nil
}

// OpenCheckpoint checks a signed checkpoint with the seal key's public half
// (ed25519.PublicKey or a P-256 *ecdsa.PublicKey) and returns it.
func OpenCheckpoint(pub crypto.PublicKey, msg []byte) (Checkpoint, error) {
	p, err := newSealPublic(pub)
	if err != nil {
		return Checkpoint{}, fmt.Errorf("recorder: checkpoint: %w", err)
	}
	return openCheckpoint(sealKeys{p}, msg)
}

// openCheckpoint checks a signed checkpoint with any of keys.
func openCheckpoint(keys sealKeys, msg []byte) (Checkpoint, error) {
	vs := make([]note.Verifier, len(keys))
	for i, k := range keys {
		vs[i] = k
	}
	var text string
	var batchAt time.Time
	var err error
	batched := bytes.HasPrefix(msg, []byte(batchedMagic+"\n"))
	if batched {
		text, batchAt, err = openBatched(note.VerifierList(vs...), msg)
	} else {
		var n *note.Note
		if n, err = note.Open(msg, note.VerifierList(vs...)); err == nil {
			text = n.Text
		}
	}
	if err != nil {
		var unknown *note.UnverifiedNoteError
		switch {
		case errors.Is(err, errCheckpoint) || errors.Is(err, errSignature):
			return Checkpoint{}, fmt.Errorf("recorder: checkpoint: %w", err)
		case errors.As(err, &unknown):
			return Checkpoint{}, fmt.Errorf("recorder: checkpoint: %w: signed by another key", errSignature)
		}
		return Checkpoint{}, fmt.Errorf("recorder: checkpoint: %w: %v", errSignature, err)
	}
	c, err := parseCheckpointText(text)
	if err == nil && batched && !c.Time.Equal(batchAt) {
		err = fmt.Errorf("%w: its time is not its batch's", errCheckpoint)
	}
	if err != nil {
		return Checkpoint{}, fmt.Errorf("recorder: checkpoint: %w", err)
	}
	return c, nil
}

// openStoredCheckpoint opens the latest checkpoint stored for a session, v:
// ok is false when there is none (v is nil); err says why a stored one
// does not verify.
func (s *Store) openStoredCheckpoint(id string, v []byte) (c Checkpoint, ok bool, err error) {
	if v == nil {
		return c, false, nil
	}
	c, err = openCheckpoint(s.keys, v)
	if err != nil {
		return c, true, err
	}
	if c.SessionID != id {
		return c, true, fmt.Errorf("%w: it names session %s", errCheckpoint, c.SessionID)
	}
	return c, true, nil
}

// metaMismatch says whether a checkpoint covers metadata that the stored
// session record no longer has.
func (c Checkpoint) metaMismatch(info SessionInfo) bool {
	return c.Meta != ([hashLen]byte{}) && c.Meta != MetaHash(info)
}
