package ca

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/bastionhq/bastion/internal/devidp"
)

// jwksIdP is the development IdP behind a handler that counts key set
// fetches and can publish an extra signing key next to the IdP's own: an
// old key the IdP rotates out by dropping it from its key set.
type jwksIdP struct {
	idp     *devidp.Provider
	fetches atomic.Int64
	mu      sync.Mutex
	extra   *jose.JSONWebKey // published while non-nil
	down    atomic.Bool      // the key set answers 503
}

func startJWKSIdP(t *testing.T) *jwksIdP {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	idp, err := devidp.New(devidp.Config{
		Issuer: "http://" + ln.Addr().String(),
		Users:  []devidp.User{{Subject: "u-alice", Email: "alice@example.com", EmailVerified: boolp(true), Groups: []string{"dev"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	j := &jwksIdP{idp: idp}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !strings.Contains(r.URL.Path, "keys") && !strings.Contains(r.URL.Path, "jwks") {
			idp.Handler().ServeHTTP(w, r)
			return
		}
		j.fetches.Add(1)
		if j.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		rec := httptest.NewRecorder()
		idp.Handler().ServeHTTP(rec, r)
		var set jose.JSONWebKeySet
		if err := json.Unmarshal(rec.Body.Bytes(), &set); err != nil {
			http.Error(w, err.Error(), 500)
			return
		}
		j.mu.Lock()
		if j.extra != nil {
			set.Keys = append(set.Keys, *j.extra)
		}
		j.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(set)
	})}}
	srv.Start()
	t.Cleanup(srv.Close)
	return j
}

// sign signs the IdP's claims for alice (iat and exp around now) with key
// under kid: a token the IdP would issue if key were its signing key.
func (j *jwksIdP) sign(t *testing.T, key *rsa.PrivateKey, kid string, now time.Time) string {
	t.Helper()
	c, err := j.idp.IDTokenClaims("u-alice", "bastion")
	if err != nil {
		t.Fatal(err)
	}
	c["iat"], c["auth_time"], c["exp"] = now.Unix(), now.Unix(), now.Add(5*time.Minute).Unix()
	s, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.RS256, Key: jose.JSONWebKey{Key: key, KeyID: kid}}, (&jose.SignerOptions{}).WithType("JWT"))
	if err != nil {
		t.Fatal(err)
	}
	payload, _ := json.Marshal(c)
	jws, err := s.Sign(payload)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := jws.CompactSerialize()
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

// An unauthenticated client must not make the bastion fetch the IdP's key
// set at will: every token naming a key ID the bastion does not hold made
// go-oidc fetch the key set again (with Cache-Control: no-cache), one
// fetch per POST /v1/certificate, so the bastion relayed a request flood
// to the IdP. A refetch for an unknown key is now at most one per
// keySetRefetchEvery.
func TestKeySetRefetchIsRateLimited(t *testing.T) {
	j := startJWKSIdP(t)
	v, err := NewVerifier(OIDCConfig{Issuer: j.idp.Issuer(), ClientID: "bastion"})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := j.idp.IDTokenClaims("u-alice", "bastion")
	good, _ := j.idp.MintIDToken(c)
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	rogue, _ := rsa.GenerateKey(rand.Reader, 2048)
	for i := 0; i < 50; i++ {
		tok := j.sign(t, rogue, "kid-"+rand.Text(), time.Now())
		_, err := v.Verify(context.Background(), tok)
		var te *TokenError
		if err == nil || !errors.As(err, &te) || te.Reason != ReasonSignature {
			t.Fatalf("token %d signed by an unknown key: %v, want a signature refusal", i, err)
		}
	}
	if n := j.fetches.Load(); n > 2 {
		t.Fatalf("50 tokens naming unknown key IDs made the bastion fetch the IdP's key set %d times; want at most one refetch", n)
	}
	// The real key still works, from the cache.
	c, _ = j.idp.IDTokenClaims("u-alice", "bastion")
	good, _ = j.idp.MintIDToken(c)
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatal(err)
	}
}

// A key the IdP removed from its key set (rotated out, perhaps because it
// leaked) must stop verifying tokens once the cached key set is older than
// keySetMaxAge. go-oidc refetches only for an unknown key ID, so a removed
// key stayed trusted for as long as nobody sent an unknown one: forever,
// for whoever holds the leaked key.
func TestKeySetDropsRotatedOutKey(t *testing.T) {
	j := startJWKSIdP(t)
	old, _ := rsa.GenerateKey(rand.Reader, 2048)
	j.extra = &jose.JSONWebKey{Key: &old.PublicKey, KeyID: "old", Algorithm: "RS256", Use: "sig"}
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	v, err := NewVerifier(OIDCConfig{Issuer: j.idp.Issuer(), ClientID: "bastion", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), j.sign(t, old, "old", clock())); err != nil {
		t.Fatalf("a token signed with a published key: %v", err)
	}
	// The IdP rotates the old key out.
	j.mu.Lock()
	j.extra = nil
	j.mu.Unlock()
	mu.Lock()
	now = now.Add(keySetMaxAge + time.Second)
	mu.Unlock()
	_, err = v.Verify(context.Background(), j.sign(t, old, "old", clock()))
	var te *TokenError
	if err == nil || !errors.As(err, &te) || te.Reason != ReasonSignature {
		t.Fatalf("a token signed with a key the IdP removed %s ago: %v, want a signature refusal", keySetMaxAge, err)
	}
	// The IdP's own key is still good.
	c, _ := j.idp.IDTokenClaims("u-alice", "bastion")
	c["iat"], c["exp"] = clock().Unix(), clock().Add(5*time.Minute).Unix()
	good, _ := j.idp.MintIDToken(c)
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatal(err)
	}
}

// The key set keeps the keys it can verify signatures with and skips the
// rest (another algorithm, an encryption key, a curve go-jose does not
// read), as go-oidc's did; a document it cannot read at all is an error.
func TestKeySetFetchSkipsForeignKeys(t *testing.T) {
	rk, _ := rsa.GenerateKey(rand.Reader, 2048)
	sig, _ := json.Marshal(jose.JSONWebKey{Key: &rk.PublicKey, KeyID: "sig", Algorithm: "RS256", Use: "sig"})
	enc, _ := json.Marshal(jose.JSONWebKey{Key: &rk.PublicKey, KeyID: "enc", Use: "enc"})
	oaep, _ := json.Marshal(jose.JSONWebKey{Key: &rk.PublicKey, KeyID: "oaep", Algorithm: "RSA-OAEP"})
	body := `{"keys":[` + string(sig) + `,` + string(enc) + `,` + string(oaep) +
		`,{"kty":"EC","crv":"secp256k1","alg":"ES256K","kid":"k1","x":"AA","y":"AA"}` +
		`,{"kty":"OKP","crv":"Ed448","kid":"ed448","x":"AA"}]}`
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/bad" {
			w.Write([]byte(`{"keys":[{"kty":"RSA","kid":"x","n":"!!"}]}`))
			return
		}
		w.Write([]byte(body))
	}))
	defer srv.Close()
	keys, err := newKeySet(srv.URL, srv.Client(), time.Now, []string{"RS256"}).fetch()
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 1 || keys[0].KeyID != "sig" {
		t.Fatalf("kept %d keys (%v), want only the signing key", len(keys), keys)
	}
	if _, err := newKeySet(srv.URL+"/bad", srv.Client(), time.Now, []string{"RS256"}).fetch(); err == nil {
		t.Fatal("a malformed RSA key was not an error")
	}
}

// Keys older than keySetMaxAge that cannot be fetched again are not
// trusted: the token is refused as idp_unavailable, and the IdP is asked
// again at most every keySetRefetchEvery meanwhile.
func TestKeySetStaleAndUnreachableRefuses(t *testing.T) {
	j := startJWKSIdP(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	v, err := NewVerifier(OIDCConfig{Issuer: j.idp.Issuer(), ClientID: "bastion", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	mint := func() string {
		c, _ := j.idp.IDTokenClaims("u-alice", "bastion")
		c["iat"], c["exp"] = clock().Unix(), clock().Add(5*time.Minute).Unix()
		tok, _ := j.idp.MintIDToken(c)
		return tok
	}
	if _, err := v.Verify(context.Background(), mint()); err != nil {
		t.Fatal(err)
	}
	j.down.Store(true)
	advance(keySetMaxAge)
	before := j.fetches.Load()
	for i := 0; i < 5; i++ {
		_, err := v.Verify(context.Background(), mint())
		var te *TokenError
		if !errors.As(err, &te) || te.Reason != ReasonIdPUnavailable {
			t.Fatalf("stale keys, key set down: %v, want idp_unavailable", err)
		}
	}
	if n := j.fetches.Load() - before; n != 1 {
		t.Fatalf("%d fetches for 5 tokens within %s, want 1", n, keySetRefetchEvery)
	}
	j.down.Store(false)
	advance(keySetRefetchEvery)
	if _, err := v.Verify(context.Background(), mint()); err != nil {
		t.Fatalf("key set back: %v", err)
	}
}

// Concurrent logins share the key set: good tokens verify, tokens naming
// unknown keys are refused, and together they fetch the key set at most
// twice (the first fetch and one refetch).
func TestKeySetConcurrent(t *testing.T) {
	j := startJWKSIdP(t)
	v, err := NewVerifier(OIDCConfig{Issuer: j.idp.Issuer(), ClientID: "bastion"})
	if err != nil {
		t.Fatal(err)
	}
	rogue, _ := rsa.GenerateKey(rand.Reader, 2048)
	var wg sync.WaitGroup
	for i := 0; i < 16; i++ {
		good := i%2 == 0
		var tok string
		if good {
			c, _ := j.idp.IDTokenClaims("u-alice", "bastion")
			tok, _ = j.idp.MintIDToken(c)
		} else {
			tok = j.sign(t, rogue, "kid-"+rand.Text(), time.Now())
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := v.Verify(context.Background(), tok)
			if good != (err == nil) {
				t.Errorf("good=%v: %v", good, err)
			}
		}()
	}
	wg.Wait()
	if n := j.fetches.Load(); n > 2 {
		t.Fatalf("%d key set fetches, want at most 2", n)
	}
}

// A key the IdP publishes (rotation) verifies once the bastion may fetch
// the key set again: a token naming it is refused within
// keySetRefetchEvery of the last fetch, and verifies after it.
func TestKeySetPicksUpPublishedKey(t *testing.T) {
	j := startJWKSIdP(t)
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	advance := func(d time.Duration) { mu.Lock(); now = now.Add(d); mu.Unlock() }
	v, err := NewVerifier(OIDCConfig{Issuer: j.idp.Issuer(), ClientID: "bastion", Now: clock})
	if err != nil {
		t.Fatal(err)
	}
	c, _ := j.idp.IDTokenClaims("u-alice", "bastion")
	c["iat"], c["exp"] = clock().Unix(), clock().Add(5*time.Minute).Unix()
	good, _ := j.idp.MintIDToken(c)
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatal(err)
	}
	next, _ := rsa.GenerateKey(rand.Reader, 2048)
	j.mu.Lock()
	j.extra = &jose.JSONWebKey{Key: &next.PublicKey, KeyID: "next", Algorithm: "RS256", Use: "sig"}
	j.mu.Unlock()
	var te *TokenError
	if _, err := v.Verify(context.Background(), j.sign(t, next, "next", clock())); !errors.As(err, &te) || te.Reason != ReasonSignature {
		t.Fatalf("a key published just after the last fetch: %v, want a signature refusal", err)
	}
	advance(keySetRefetchEvery)
	if _, err := v.Verify(context.Background(), j.sign(t, next, "next", clock())); err != nil {
		t.Fatalf("a key published %s ago: %v", keySetRefetchEvery, err)
	}
	if _, err := v.Verify(context.Background(), good); err != nil {
		t.Fatalf("the IdP's own key after the refetch: %v", err)
	}
}
