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
	"os"
	"path/filepath"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"
)

func mustECDSA(t testing.TB, c elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	k, err := ecdsa.GenerateKey(c, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// opaqueSigner hides the concrete key type, as an HSM's crypto.Signer does.
type opaqueSigner struct{ crypto.Signer }

// A store sealed with an ECDSA P-256 key (what a PKCS#11 token holds)
// verifies its sessions and audit log, and its seals verify with the
// public key alone.
func TestECDSASealKey(t *testing.T) {
	cfg, _ := testConfig(t)
	key := mustECDSA(t, elliptic.P256())
	cfg.SealKey = opaqueSigner{key}
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{ID: "ecdsa"})
	must(t, r.Output([]byte("hello\r\n")))
	s.sync()
	must(t, r.Output([]byte("world\r\n")))
	must(t, r.End(ExitInfo{}))
	if rep := verify(t, s, "ecdsa"); !rep.Intact || !rep.Sealed {
		t.Fatalf("verify: %+v", rep)
	}
	if _, err := s.Audit(AuditEvent{Type: "test", Outcome: "ok"}); err != nil {
		t.Fatal(err)
	}
	s.sync()
	if rep, err := s.VerifyAudit(); err != nil || !rep.Intact {
		t.Fatalf("audit: %+v %v", rep, err)
	}
	sealed, err := s.SignedSeal("ecdsa")
	must(t, err)
	if se, err := VerifySeal(&key.PublicKey, sealed); err != nil || se.SessionID != "ecdsa" {
		t.Errorf("VerifySeal: %+v %v", se, err)
	}
	if _, err := VerifySeal(&mustECDSA(t, elliptic.P256()).PublicKey, sealed); err == nil {
		t.Error("a seal verified with another key")
	}
	if !s.SealPublicKey().(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Error("SealPublicKey is not the seal key's")
	}
}

// An ECDSA checkpoint is a c2sp.org/signed-note with signature type 0x02:
// checked here by hand from the spec, without this package's verifier, as
// an auditor's tool (transparency-dev/formats/note) checks it.
func TestECDSACheckpointIsASignedNote(t *testing.T) {
	cfg, _ := testConfig(t)
	key := mustECDSA(t, elliptic.P256())
	cfg.SealKey = key
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{ID: "noted"})
	must(t, r.Output([]byte("hello")))
	s.sync()
	var msg []byte
	must(t, s.boltDB().View(func(tx *bolt.Tx) error {
		msg = bytes.Clone(tx.Bucket(bucketSessionCPs).Get([]byte("noted")))
		return nil
	}))
	text, sigs, ok := strings.Cut(string(msg), "\n\n")
	if !ok {
		t.Fatalf("no blank line in %q", msg)
	}
	text += "\n"
	name, b64, _ := strings.Cut(strings.TrimPrefix(strings.TrimSuffix(sigs, "\n"), "— "), " ")
	sig, err := base64.StdEncoding.DecodeString(b64)
	if err != nil || name != noteKeyName || len(sig) < 5 {
		t.Fatalf("signature line %q", sigs)
	}
	der, _ := x509.MarshalPKIXPublicKey(&key.PublicKey)
	id := sha256.Sum256(der)
	if got, want := binary.BigEndian.Uint32(sig[:4]), binary.BigEndian.Uint32(id[:4]); got != want {
		t.Errorf("key ID %08x, want %08x (SHA-256 of the DER public key)", got, want)
	}
	digest := sha256.Sum256([]byte(text))
	if !ecdsa.VerifyASN1(&key.PublicKey, digest[:], sig[4:]) {
		t.Error("the note's signature does not verify as ECDSA over SHA-256 of the text")
	}
	vk := NoteVerifierKey(&key.PublicKey)
	if !strings.HasPrefix(vk, "bastion-seal+") {
		t.Errorf("verifier key %q", vk)
	}
	raw, _ := base64.StdEncoding.DecodeString(strings.SplitN(vk, "+", 3)[2]) // base64 may hold "+" too
	if raw[0] != 0x02 || !bytes.Equal(raw[1:], der) {
		t.Errorf("verifier key %q: want 0x02 and the DER public key", vk)
	}
	pub, err := ParseNoteVerifierKey(vk)
	if err != nil || !pub.(*ecdsa.PublicKey).Equal(&key.PublicKey) {
		t.Errorf("ParseNoteVerifierKey: %v %v", pub, err)
	}
	if cp, err := OpenCheckpoint(&key.PublicKey, msg); err != nil || cp.SessionID != "noted" {
		t.Errorf("OpenCheckpoint: %+v %v", cp, err)
	}
}

func TestParseNoteVerifierKey(t *testing.T) {
	ed := NoteVerifierKey(testKey.Public())
	pub, err := ParseNoteVerifierKey(ed)
	if err != nil || !testKey.Public().(interface{ Equal(crypto.PublicKey) bool }).Equal(pub) {
		t.Fatalf("round trip: %v %v", pub, err)
	}
	for _, bad := range []string{"", "a+b", "bastion-seal+00000000+AQ==", strings.Replace(ed, "bastion-seal", "other", 1), ed[:len(ed)-4] + "AAA=", "bastion-seal+00000000+" + base64.StdEncoding.EncodeToString([]byte{9, 1, 2})} {
		if _, err := ParseNoteVerifierKey(bad); err == nil {
			t.Errorf("accepted %q", bad)
		}
	}
	if NoteVerifierKey(&mustECDSA(t, elliptic.P384()).PublicKey) != "" {
		t.Error("a P-384 key got a verifier key")
	}
}

// Moving the seal key into an HSM: a store sealed with the old Ed25519 key
// (testdata/v1.db, format 1) opened with a new ECDSA key reports the old
// seals as signed by a different key, until the old public key is listed in
// PreviousSealKeys; then old and new sessions verify.
func TestSealKeyMovedToHSM(t *testing.T) {
	src, err := os.ReadFile("testdata/v1.db")
	must(t, err)
	seed := make([]byte, 32)
	for i := range seed {
		seed[i] = byte(i)
	}
	old := ed25519.NewKeyFromSeed(seed)
	cfg, _ := testConfig(t)
	cfg.Path = filepath.Join(t.TempDir(), "v1.db")
	must(t, os.WriteFile(cfg.Path, src, 0o600))
	cfg.SealKey = opaqueSigner{mustECDSA(t, elliptic.P256())}
	s := openStore(t, cfg)
	const oldID = "01JV1SEALEDSESSION00000000"
	if rep := verify(t, s, oldID); rep.Intact || !strings.Contains(rep.Problem, "different key") {
		t.Errorf("without the previous key: %+v, want signed by a different key", rep)
	}
	must(t, s.Close())

	cfg.PreviousSealKeys = []crypto.PublicKey{old.Public()}
	s = openStore(t, cfg)
	if rep := verify(t, s, oldID); !rep.Intact || !rep.Sealed {
		t.Errorf("with the previous key: %+v", rep)
	}
	if rep, err := s.VerifyAudit(); err != nil || !rep.Intact {
		t.Errorf("audit: %+v %v", rep, err)
	}
	r := begin(t, s, SessionInfo{ID: "new"})
	must(t, r.Output([]byte("new key\r\n")))
	must(t, r.End(ExitInfo{}))
	if rep := verify(t, s, "new"); !rep.Intact || !rep.Sealed {
		t.Errorf("new session: %+v", rep)
	}
}
