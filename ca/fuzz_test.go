package ca

import (
	"bytes"
	"context"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// FuzzVerify feeds arbitrary tokens to the verifier. Whatever the input, it
// must refuse with a *TokenError (no IdP answers here, so nothing can verify)
// and never panic.
func FuzzVerify(f *testing.F) {
	for _, s := range []string{
		"", "a.b.c", "eyJhbGciOiJub25lIn0.e30.", "eyJhbGciOiJIUzI1NiJ9.eyJpc3MiOiJ4In0.sig",
		"eyJhbGciOiJSUzI1NiJ9.eyJpc3MiOiJodHRwOi8vMTI3LjAuMC4xOjEiLCJhdWQiOlsiYmFzdGlvbiJdfQ.c2ln",
		"not.a.jwt.at.all", "eyJ!!!.x.y", "...", "eyJhbGciOiJSUzI1NiJ9.W10.x",
	} {
		f.Add(s)
	}
	v, err := NewVerifier(OIDCConfig{Issuer: "http://127.0.0.1:1", ClientID: "bastion",
		HTTPClient: &http.Client{Timeout: 50 * time.Millisecond},
		Workloads:  []Workload{{Issuer: "http://127.0.0.1:2", Audience: "ci", Subject: "repo:*", Name: "ci"}}})
	if err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		_, err := v.Verify(context.Background(), tok)
		if err == nil {
			t.Fatal("a token verified without an IdP")
		}
		var te *TokenError
		if !asTokenError(err, &te) {
			t.Fatalf("error %v is not a *TokenError", err)
		}
	})
}

func asTokenError(err error, te **TokenError) bool {
	for err != nil {
		if e, ok := err.(*TokenError); ok {
			*te = e
			return true
		}
		u, ok := err.(interface{ Unwrap() error })
		if !ok {
			return false
		}
		err = u.Unwrap()
	}
	return false
}

// FuzzCertificateRequest posts arbitrary bodies to the issuance endpoint:
// nothing may be issued and the server must answer with a JSON error.
func FuzzCertificateRequest(f *testing.F) {
	for _, s := range []string{
		`{"id_token":"a.b.c","public_key":"ssh-ed25519 AAAA"}`, `{}`, `[]`, `null`, `{"ttl":"9h"}`,
		`{"id_token":"x","public_key":"y","admin":true}`, "\x00\xff", `{"id_token":` + "\"" + string(bytes.Repeat([]byte("a"), 1000)) + "\"}",
	} {
		f.Add([]byte(s))
	}
	a, err := New(Config{Keys: testKeys(f)})
	if err != nil {
		f.Fatal(err)
	}
	v, _ := NewVerifier(OIDCConfig{Issuer: "http://127.0.0.1:1", ClientID: "bastion", HTTPClient: &http.Client{Timeout: 50 * time.Millisecond}})
	s, err := NewServer(ServerConfig{Authority: a, Verifier: v, Auditor: &memAuditor{}})
	if err != nil {
		f.Fatal(err)
	}
	mux := http.NewServeMux()
	s.Register(mux)
	f.Fuzz(func(t *testing.T, body []byte) {
		rec := httptest.NewRecorder()
		mux.ServeHTTP(rec, httptest.NewRequest("POST", PathCertificate, bytes.NewReader(body)))
		if rec.Code == 200 {
			t.Fatalf("issued a certificate for %q", body)
		}
		if !bytes.Contains(rec.Body.Bytes(), []byte(`"error"`)) {
			t.Fatalf("answer without a JSON error: %q", rec.Body.String())
		}
	})
}

// FuzzIdentityFromCertificate parses arbitrary certificate bytes: the
// identity reader must refuse what it cannot read, never panic, and only
// accept names that are safe login names.
func FuzzIdentityFromCertificate(f *testing.F) {
	a, err := New(Config{Keys: testKeys(f)})
	if err != nil {
		f.Fatal(err)
	}
	cert, _, err := a.SignUser(Identity{User: "alice", Issuer: "https://idp", Subject: "s", Groups: []string{"dev"}}, newEd25519(f), 0)
	if err != nil {
		f.Fatal(err)
	}
	f.Add(cert.Marshal())
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, b []byte) {
		k, err := ssh.ParsePublicKey(b)
		if err != nil {
			return
		}
		c, ok := k.(*ssh.Certificate)
		if !ok {
			return
		}
		id, err := IdentityFromCertificate(c)
		if err != nil {
			return
		}
		if ValidateUsername(id.User) != nil {
			t.Fatalf("accepted unsafe user %q", id.User)
		}
	})
}
