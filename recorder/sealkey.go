package recorder

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
)

// The seal key is an Ed25519 key (the default, a file) or an ECDSA P-256
// key (in an HSM or a cloud KMS, most of which have no Ed25519). The
// algorithm follows the key. Both sign the same two things:
//
//   - seals and audit checkpoints, a JSON record holding the payload, the
//     public key and the signature over a domain string and the payload.
//     The key is stored as the Ed25519 key's 32 bytes (as it always was, so
//     existing stores read unchanged) or as the ECDSA key's DER
//     SubjectPublicKeyInfo; an ECDSA signature is ASN.1 DER over SHA-256.
//   - session checkpoints, signed notes (c2sp.org/signed-note) with
//     signature type 0x01 (Ed25519, what golang.org/x/mod/sumdb/note
//     verifies) or 0x02 (ECDSA over SHA-256 with the key ID taken from the
//     DER public key, what github.com/transparency-dev/formats/note
//     verifies), so an auditor's own tool checks them either way.

// Note signature types (c2sp.org/signed-note).
const (
	algEd25519 = 0x01
	algECDSA   = 0x02
)

// errSealKey says a key cannot be a seal key.
var errSealKey = errors.New("the seal key must be Ed25519 or ECDSA P-256")

// sealPublic is one seal public key, current or previous: it verifies
// seals, audit checkpoints and (as a note.Verifier) session checkpoints.
type sealPublic struct {
	pub   crypto.PublicKey
	raw   []byte // as stored in a seal's "key": 32 bytes, or DER SPKI
	alg   byte
	hash  uint32 // the note key ID
	ecdsa *ecdsa.PublicKey
}

func newSealPublic(pub crypto.PublicKey) (*sealPublic, error) {
	switch k := pub.(type) {
	case ed25519.PublicKey:
		if len(k) != ed25519.PublicKeySize {
			return nil, errSealKey
		}
		h := sha256.New()
		h.Write([]byte(noteKeyName + "\n"))
		h.Write([]byte{algEd25519})
		h.Write(k)
		return &sealPublic{pub: k, raw: bytes.Clone(k), alg: algEd25519, hash: binary.BigEndian.Uint32(h.Sum(nil))}, nil
	case *ecdsa.PublicKey:
		if k == nil || k.Curve != elliptic.P256() {
			return nil, errSealKey
		}
		der, err := x509.MarshalPKIXPublicKey(k)
		if err != nil {
			return nil, fmt.Errorf("%w: %v", errSealKey, err)
		}
		sum := sha256.Sum256(der)
		return &sealPublic{pub: k, raw: der, alg: algECDSA, hash: binary.BigEndian.Uint32(sum[:]), ecdsa: k}, nil
	}
	return nil, fmt.Errorf("%w, not %T", errSealKey, pub)
}

// verify checks sig over msg.
func (p *sealPublic) verify(msg, sig []byte) bool {
	if p.alg == algEd25519 {
		return ed25519.Verify(p.pub.(ed25519.PublicKey), msg, sig)
	}
	sum := sha256.Sum256(msg)
	return ecdsa.VerifyASN1(p.ecdsa, sum[:], sig)
}

// note.Verifier.
func (p *sealPublic) Name() string                { return noteKeyName }
func (p *sealPublic) KeyHash() uint32             { return p.hash }
func (p *sealPublic) Verify(msg, sig []byte) bool { return p.verify(msg, sig) }
func (p *sealPublic) verifierKey() string {
	return fmt.Sprintf("%s+%08x+%s", noteKeyName, p.hash, base64.StdEncoding.EncodeToString(append([]byte{p.alg}, p.raw...)))
}

// sealSigner signs with the seal key; as a note.Signer it signs session
// checkpoints.
type sealSigner struct {
	*sealPublic
	key crypto.Signer
}

func newSealSigner(key crypto.Signer) (*sealSigner, error) {
	if key == nil {
		return nil, errSealKey
	}
	if k, ok := key.(ed25519.PrivateKey); ok && len(k) != ed25519.PrivateKeySize {
		return nil, errSealKey
	}
	p, err := newSealPublic(key.Public())
	if err != nil {
		return nil, err
	}
	return &sealSigner{sealPublic: p, key: key}, nil
}

// Sign signs msg: Ed25519 over the message, ECDSA over its SHA-256.
func (s *sealSigner) Sign(msg []byte) ([]byte, error) {
	if s.alg == algEd25519 {
		if k, ok := s.key.(ed25519.PrivateKey); ok {
			return ed25519.Sign(k, msg), nil
		}
		return s.key.Sign(rand.Reader, msg, crypto.Hash(0))
	}
	sum := sha256.Sum256(msg)
	return s.key.Sign(rand.Reader, sum[:], crypto.SHA256)
}

// sealKeys are the keys a store accepts signatures from: the current seal
// key first, then the previous ones (Config.PreviousSealKeys).
type sealKeys []*sealPublic

// verify finds a key that verifies sig over msg. stored is the key the
// record names; when none verifies, differentKey says the record names a
// key that is none of ours (a key change, or a forgery).
func (ks sealKeys) verify(stored, msg, sig []byte) (ok, differentKey bool) {
	named := false
	for _, k := range ks {
		if k.verify(msg, sig) {
			return true, false
		}
		named = named || bytes.Equal(k.raw, stored)
	}
	return false, !named
}

// NoteVerifierKey returns a seal public key as a signed-note verifier key
// ("bastion-seal+KEYID+KEY"), for checking session checkpoints with
// golang.org/x/mod/sumdb/note (Ed25519) or
// github.com/transparency-dev/formats/note (ECDSA P-256). It returns ""
// for a key that cannot be a seal key.
func NoteVerifierKey(pub crypto.PublicKey) string {
	p, err := newSealPublic(pub)
	if err != nil {
		return ""
	}
	return p.verifierKey()
}

// ParseNoteVerifierKey reads a verifier key NoteVerifierKey wrote back
// into the public key (ed25519.PublicKey or *ecdsa.PublicKey), checking its
// name and key ID.
func ParseNoteVerifierKey(s string) (crypto.PublicKey, error) {
	var name, hash, b64 string
	parts := bytes.SplitN([]byte(s), []byte("+"), 3)
	if len(parts) != 3 {
		return nil, fmt.Errorf("recorder: verifier key: want NAME+KEYID+KEY")
	}
	name, hash, b64 = string(parts[0]), string(parts[1]), string(parts[2])
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || len(raw) < 2 {
		return nil, fmt.Errorf("recorder: verifier key: bad base64")
	}
	var pub crypto.PublicKey
	switch raw[0] {
	case algEd25519:
		if len(raw) != 1+ed25519.PublicKeySize {
			return nil, fmt.Errorf("recorder: verifier key: bad Ed25519 key")
		}
		pub = ed25519.PublicKey(raw[1:])
	case algECDSA:
		k, err := x509.ParsePKIXPublicKey(raw[1:])
		if err != nil {
			return nil, fmt.Errorf("recorder: verifier key: bad ECDSA key: %v", err)
		}
		pub = k
	default:
		return nil, fmt.Errorf("recorder: verifier key: unknown signature type %#x", raw[0])
	}
	p, err := newSealPublic(pub)
	if err != nil {
		return nil, fmt.Errorf("recorder: verifier key: %w", err)
	}
	if name != noteKeyName || fmt.Sprintf("%08x", p.hash) != hash {
		return nil, fmt.Errorf("recorder: verifier key: name or key ID does not match the key")
	}
	return pub, nil
}
