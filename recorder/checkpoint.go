package recorder

import (
	"crypto"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"golang.org/x/mod/sumdb/note"
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
func (c Checkpoint) text() string {
	if c.Meta == ([hashLen]byte{}) {
		return fmt.Sprintf("%s\n%s\n%d\n%d\n%s\n%s\n", checkpointOrigin, c.SessionID, c.Chunks, c.Events,
			base64.StdEncoding.EncodeToString(c.Head[:]), c.Time.UTC().Format(time.RFC3339Nano))
	}
	return fmt.Sprintf("%s\n%s\n%d\n%d\n%s\n%s\n%s\n", checkpointOriginV2, c.SessionID, c.Chunks, c.Events,
		base64.StdEncoding.EncodeToString(c.Head[:]), c.Time.UTC().Format(time.RFC3339Nano),
		base64.StdEncoding.EncodeToString(c.Meta[:]))
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
	n, err := note.Open(msg, note.VerifierList(vs...))
	if err != nil {
		var unknown *note.UnverifiedNoteError
		if errors.As(err, &unknown) {
			return Checkpoint{}, fmt.Errorf("recorder: checkpoint: %w: signed by another key", errSignature)
		}
		return Checkpoint{}, fmt.Errorf("recorder: checkpoint: %w: %v", errSignature, err)
	}
	c, err := parseCheckpointText(n.Text)
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
