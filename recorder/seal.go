package recorder

import (
	"crypto"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"
)

// Seal closes a session's chunk chain: it names the last chunk's hash, the
// counts and the session's metadata, and is signed with the store's SealKey.
type Seal struct {
	SessionID  string    `json:"session_id"`
	Status     string    `json:"status"`
	Kind       string    `json:"kind"`
	User       string    `json:"user"`
	Issuer     string    `json:"issuer,omitempty"`
	Subject    string    `json:"subject,omitempty"`
	Actor      string    `json:"actor,omitempty"` // a CI run's; left out without one (every older seal), which compares as before
	Target     string    `json:"target"`
	Login      string    `json:"login,omitempty"`
	Command    string    `json:"command,omitempty"`
	ClientAddr string    `json:"client_addr,omitempty"`
	CertSerial uint64    `json:"cert_serial,omitempty"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end"`
	ExitStatus int       `json:"exit_status"`
	BytesIn    int64     `json:"bytes_in"`
	BytesOut   int64     `json:"bytes_out"`
	Chunks     int64     `json:"chunks"`
	Events     int64     `json:"events"`
	Truncated  bool      `json:"truncated,omitempty"`
	Head       string    `json:"head"` // hex SHA-256 of the last chunk, or of the chain's genesis
	SealedAt   time.Time `json:"sealed_at"`
	// Version 2 seals cover what the session did, as the record lists it
	// (seals written before have no "v" and do not: only these fields are
	// compared for them).
	Version    int    `json:"v,omitempty"`
	ExitSignal string `json:"exit_signal,omitempty"`
	Reason     string `json:"reason,omitempty"`
	Error      string `json:"error,omitempty"`
	Database   string `json:"database,omitempty"`
	Statements int64  `json:"statements,omitempty"`
	Blocked    int    `json:"blocked,omitempty"`
	Approved   int    `json:"approved,omitempty"`
	Denied     int    `json:"denied,omitempty"`
	// Version 3 seals also cover the terminal at the start: the export's
	// header and the screen a player draws on.
	Width  int    `json:"width,omitempty"`
	Height int    `json:"height,omitempty"`
	Term   string `json:"term,omitempty"`
}

// signed is the stored form of a seal or audit checkpoint: the exact JSON
// that was signed, and the signature over a domain string and that JSON.
type signed struct {
	Payload json.RawMessage `json:"payload"`
	Key     []byte          `json:"key"` // the public key, to tell a key change from forgery
	Sig     []byte          `json:"sig"`
}

const (
	sealDomain       = "bastion-seal-v1\n"
	checkpointDomain = "bastion-audit-checkpoint-v1\n"
)

var errSignature = errors.New("signature does not verify")

func sign(key *sealSigner, domain string, v any) ([]byte, error) {
	payload, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	sig, err := key.Sign(append([]byte(domain), payload...))
	if err != nil {
		return nil, fmt.Errorf("seal key: %w", err)
	}
	return json.Marshal(signed{Payload: payload, Key: key.raw, Sig: sig})
}

func openSigned(keys sealKeys, domain string, data []byte, v any) error {
	var s signed
	if err := json.Unmarshal(data, &s); err != nil {
		return fmt.Errorf("unreadable: %v", err)
	}
	if ok, different := keys.verify(s.Key, append([]byte(domain), s.Payload...), s.Sig); !ok {
		if different {
			return fmt.Errorf("%w: signed by a different key", errSignature)
		}
		return errSignature
	}
	if err := json.Unmarshal(s.Payload, v); err != nil {
		return fmt.Errorf("unreadable payload: %v", err)
	}
	return nil
}

// VerifySeal checks a stored seal's signature with pub (ed25519.PublicKey
// or a P-256 *ecdsa.PublicKey) and returns it. It lets tools holding only
// the public key check an exported seal.
func VerifySeal(pub crypto.PublicKey, data []byte) (Seal, error) {
	p, err := newSealPublic(pub)
	if err != nil {
		return Seal{}, fmt.Errorf("recorder: seal: %w", err)
	}
	var s Seal
	if err := openSigned(sealKeys{p}, sealDomain, data, &s); err != nil {
		return Seal{}, fmt.Errorf("recorder: seal: %w", err)
	}
	return s, nil
}

// SealPublicKey returns the public half of the key that signs seals and
// audit checkpoints: ed25519.PublicKey or a P-256 *ecdsa.PublicKey.
func (s *Store) SealPublicKey() crypto.PublicKey { return s.signer.pub }

func newSeal(info SessionInfo, head [hashLen]byte, sealedAt time.Time) Seal {
	return Seal{
		SessionID: info.ID, Status: info.Status, Kind: info.Kind, User: info.User,
		Issuer: info.Issuer, Subject: info.Subject, Actor: info.Actor, Target: info.Target, Login: info.Login,
		Command: info.Command, ClientAddr: info.ClientAddr, CertSerial: info.CertSerial,
		Start: info.Start, End: info.End, ExitStatus: info.ExitStatus,
		BytesIn: info.BytesIn, BytesOut: info.BytesOut, Chunks: info.Chunks, Events: info.Events,
		Truncated: info.Truncated, Head: hex.EncodeToString(head[:]), SealedAt: sealedAt.UTC(),
		Version: 3, ExitSignal: info.ExitSignal, Reason: info.Reason, Error: info.Error,
		Database: info.Database, Statements: info.Statements,
		Blocked: info.Blocked, Approved: info.Approved, Denied: info.Denied,
		Width: info.Width, Height: info.Height, Term: info.Term,
	}
}

// mismatch compares a seal with the stored session record and returns the
// first field that differs, or "".
func (se Seal) mismatch(info SessionInfo) string {
	want := newSeal(info, [hashLen]byte{}, time.Time{})
	switch {
	case se.SessionID != want.SessionID:
		return "session_id"
	case se.Status != want.Status:
		return "status"
	case se.Kind != want.Kind || se.User != want.User || se.Issuer != want.Issuer || se.Subject != want.Subject || se.Actor != want.Actor:
		return "identity"
	case se.Target != want.Target || se.Login != want.Login || se.Command != want.Command:
		return "target"
	case se.ClientAddr != want.ClientAddr || se.CertSerial != want.CertSerial:
		return "client"
	case !se.Start.Equal(want.Start) || !se.End.Equal(want.End):
		return "times"
	case se.ExitStatus != want.ExitStatus:
		return "exit_status"
	case se.BytesIn != want.BytesIn || se.BytesOut != want.BytesOut:
		return "bytes"
	case se.Chunks != want.Chunks || se.Events != want.Events:
		return "counts"
	case se.Truncated != want.Truncated:
		return "truncated"
	case se.Version < 2:
	case se.ExitSignal != want.ExitSignal || se.Reason != want.Reason || se.Error != want.Error:
		return "ending"
	case se.Database != want.Database || se.Statements != want.Statements:
		return "database"
	case se.Blocked != want.Blocked || se.Approved != want.Approved || se.Denied != want.Denied:
		return "rule outcomes"
	case se.Version < 3:
	case se.Width != want.Width || se.Height != want.Height || se.Term != want.Term:
		return "terminal"
	}
	return ""
}

// SignedSeal returns a session's seal as stored (signed JSON), for checking
// elsewhere with VerifySeal and the public key. A session that is live, or
// whose seal is missing, gives an error wrapping ErrNotFound.
func (s *Store) SignedSeal(id string) ([]byte, error) {
	if !validID(id) {
		return nil, fmt.Errorf("recorder: seal %s: %w", quoteID(id), ErrNotFound)
	}
	var v []byte
	err := s.view(func(tx Tx) error {
		var err error
		v, err = tx.Seal(id)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("recorder: seal %s: %w", id, err)
	}
	if v == nil {
		return nil, fmt.Errorf("recorder: seal %s: %w", id, ErrNotFound)
	}
	return v, nil
}
