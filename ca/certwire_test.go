package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"io"
	"reflect"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// zeroReader gives the same nonce (and the same randomness to signers that
// read any) to both encoders.
type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) {
	clear(p)
	return len(p), nil
}

func sshSigner(t testing.TB, k crypto.Signer) ssh.Signer {
	t.Helper()
	s, err := ssh.NewSignerFromSigner(k)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// algorithmOnly hides a signer's algorithm list; bareSigner hides its
// SignWithAlgorithm too.
type (
	algorithmOnly struct{ ssh.AlgorithmSigner }
	bareSigner    struct{ ssh.Signer }
)

// testCert is a user certificate as Identity.Certificate makes them, with
// the options and extensions a certificate may carry.
func testCert(t testing.TB, key ssh.PublicKey) *ssh.Certificate {
	t.Helper()
	id := Identity{User: "alice", Issuer: "https://idp.example.com", Subject: "u-1", Groups: []string{"dev", "sec"}, Serial: 42,
		SourceAddress: "10.0.0.0/8,192.0.2.1"}
	c, err := id.Certificate(key)
	if err != nil {
		t.Fatal(err)
	}
	c.ValidAfter, c.ValidBefore = 1_700_000_000, 1_700_003_600
	return c
}

// signCert gives the bytes x/crypto's SignCert and Marshal give, and fills
// the certificate alike, for every kind of authority and key the bastion
// signs with or for: ed25519 and RSA (deterministic signatures: the whole
// certificate compared), ECDSA (randomised: the signed part compared and
// the signature checked), and a signer restricted to one algorithm.
func TestSignCertMatchesXCrypto(t *testing.T) {
	_, edCA, _ := ed25519.GenerateKey(rand.Reader)
	rsaCA, _ := rsa.GenerateKey(rand.Reader, 2048)
	ecCA, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	rsa256, err := ssh.NewSignerWithAlgorithms(sshSigner(t, rsaCA).(ssh.AlgorithmSigner), []string{ssh.KeyAlgoRSASHA256})
	if err != nil {
		t.Fatal(err)
	}
	authorities := map[string]struct {
		s             ssh.Signer
		deterministic bool
		format        string
	}{
		"ed25519":      {sshSigner(t, edCA), true, ssh.KeyAlgoED25519},
		"rsa":          {sshSigner(t, rsaCA), true, ssh.KeyAlgoRSASHA256}, // x/crypto lists SHA-256 first for an RSA key
		"rsa-sha2-256": {rsa256, true, ssh.KeyAlgoRSASHA256},
		// Signers that are not x/crypto's own: one with algorithms but no
		// list (x/crypto then picks SHA-512 for RSA), and a bare Signer.
		"rsa-algorithm-signer": {algorithmOnly{sshSigner(t, rsaCA).(ssh.AlgorithmSigner)}, true, ssh.KeyAlgoRSASHA512},
		"ed25519-bare-signer":  {bareSigner{sshSigner(t, edCA)}, true, ssh.KeyAlgoED25519},
		"ecdsa-p256":           {sshSigner(t, ecCA), false, ssh.KeyAlgoECDSA256},
	}
	edKey, _, _ := ed25519.GenerateKey(rand.Reader)
	ecKey, _ := ecdsa.GenerateKey(elliptic.P384(), rand.Reader)
	rsaKey, _ := rsa.GenerateKey(rand.Reader, 3072)
	var keys []ssh.PublicKey
	for _, k := range []any{edKey, &ecKey.PublicKey, &rsaKey.PublicKey} {
		pk, err := ssh.NewPublicKey(k)
		if err != nil {
			t.Fatal(err)
		}
		keys = append(keys, pk)
	}
	for name, a := range authorities {
		for _, key := range keys {
			t.Run(name+"/"+key.Type(), func(t *testing.T) {
				want, got := testCert(t, key), testCert(t, key)
				if err := want.SignCert(zeroReader{}, a.s); err != nil {
					t.Fatal(err)
				}
				wire, err := signCert(got, zeroReader{}, a.s)
				if err != nil {
					t.Fatal(err)
				}
				if got.Signature.Format != a.format || want.Signature.Format != a.format {
					t.Errorf("signature formats %q and x/crypto's %q, want %q", got.Signature.Format, want.Signature.Format, a.format)
				}
				if !bytes.Equal(wire, got.Marshal()) {
					t.Fatalf("the wire encoding differs from x/crypto's Marshal of the same certificate")
				}
				if a.deterministic {
					if !bytes.Equal(wire, want.Marshal()) || !reflect.DeepEqual(got, want) {
						t.Fatalf("the certificate differs from x/crypto's SignCert")
					}
				} else {
					body, err := appendCertBody(nil, got)
					if err != nil {
						t.Fatal(err)
					}
					if err := a.s.PublicKey().Verify(body, got.Signature); err != nil {
						t.Fatalf("the signature does not verify: %v", err)
					}
					w, g := *want, *got
					w.Signature, g.Signature = nil, nil
					if !bytes.Equal(w.Marshal(), g.Marshal()) {
						t.Fatal("the signed part differs from x/crypto's")
					}
				}
				// And OpenSSH's side of the contract: x/crypto parses it back
				// and its certificate checker accepts it.
				parsed, err := ssh.ParsePublicKey(wire)
				if err != nil {
					t.Fatal(err)
				}
				checker := ssh.CertChecker{SupportedCriticalOptions: []string{"source-address"}, IsUserAuthority: func(k ssh.PublicKey) bool { return bytes.Equal(k.Marshal(), a.s.PublicKey().Marshal()) },
					Clock: func() time.Time { return time.Unix(1_700_000_100, 0) }}
				if err := checker.CheckCert("alice", parsed.(*ssh.Certificate)); err != nil {
					t.Fatalf("CertChecker: %v", err)
				}
			})
		}
	}
}

// signCert refuses what SignCert refuses.
func TestSignCertRefusals(t *testing.T) {
	_, edCA, _ := ed25519.GenerateKey(rand.Reader)
	ca := sshSigner(t, edCA)
	edKey, _, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := ssh.NewPublicKey(edKey)
	for name, mod := range map[string]func(*ssh.Certificate){
		"no principals":   func(c *ssh.Certificate) { c.ValidPrincipals = nil },
		"empty principal": func(c *ssh.Certificate) { c.ValidPrincipals = []string{"alice", ""} },
	} {
		c := testCert(t, key)
		mod(c)
		if _, err := signCert(c, rand.Reader, ca); err == nil {
			t.Errorf("%s: signed", name)
		}
		if err := c.SignCert(rand.Reader, ca); err == nil {
			t.Errorf("%s: x/crypto signed (the test's premise)", name)
		}
	}
	// A certificate as the authority.
	caCert := testCert(t, ca.PublicKey())
	if err := caCert.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	certSigner, err := ssh.NewCertSigner(caCert, ca)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signCert(testCert(t, key), rand.Reader, certSigner); err == nil || !strings.Contains(err.Error(), "cannot be used as authority") {
		t.Errorf("a certificate as authority: %v", err)
	}
	if _, err := signCert(testCert(t, key), io.LimitReader(rand.Reader, 8), ca); err == nil {
		t.Error("a short nonce read: signed")
	}
}

// FuzzCertWire holds appendCertBody and appendSignature to x/crypto's
// Marshal over every field a certificate has.
func FuzzCertWire(f *testing.F) {
	f.Add(uint64(42), uint32(1), "alice@idp", "alice", uint64(1), uint64(2), "source-address=10.0.0.0/8", "permit-pty=;bastion-groups=[\"dev\"]", []byte(nil), "ssh-ed25519", []byte("sig"))
	f.Add(uint64(0), uint32(2), "", "a\x00b\x00", uint64(0), ^uint64(0), "", "=;==;a=b=c", []byte{0, 1}, "", []byte(nil))
	pk, _, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := ssh.NewPublicKey(pk)
	_, caPriv, _ := ed25519.GenerateKey(rand.Reader)
	caKey, _ := ssh.NewPublicKey(caPriv.Public())
	tuples := func(s string) map[string]string {
		if s == "" {
			return nil
		}
		m := map[string]string{}
		for _, kv := range strings.Split(s, ";") {
			k, v, _ := strings.Cut(kv, "=")
			m[k] = v
		}
		return m
	}
	f.Fuzz(func(t *testing.T, serial uint64, typ uint32, keyID, principals string, after, before uint64, opts, exts string, reserved []byte, format string, blob []byte) {
		c := &ssh.Certificate{Key: key, Nonce: []byte(keyID + "nonce"), Serial: serial, CertType: typ, KeyId: keyID,
			ValidAfter: after, ValidBefore: before, Reserved: reserved, SignatureKey: caKey,
			Permissions: ssh.Permissions{CriticalOptions: tuples(opts), Extensions: tuples(exts)},
			Signature:   &ssh.Signature{Format: format, Blob: blob}}
		if principals != "" {
			c.ValidPrincipals = strings.Split(principals, "\x00")
		}
		body, err := appendCertBody(nil, c)
		if err != nil {
			t.Fatal(err)
		}
		if got, want := appendSignature(body, c.Signature), c.Marshal(); !bytes.Equal(got, want) {
			t.Fatalf("got  %x\nwant %x", got, want)
		}
	})
}

func BenchmarkSignCert(b *testing.B) {
	_, edCA, _ := ed25519.GenerateKey(rand.Reader)
	ca := sshSigner(b, edCA)
	edKey, _, _ := ed25519.GenerateKey(rand.Reader)
	key, _ := ssh.NewPublicKey(edKey)
	b.Run("x/crypto", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			c := testCert(b, key)
			if err := c.SignCert(rand.Reader, ca); err != nil {
				b.Fatal(err)
			}
			_ = c.Marshal()
		}
	})
	b.Run("signCert", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := signCert(testCert(b, key), rand.Reader, ca); err != nil {
				b.Fatal(err)
			}
		}
	})
}
