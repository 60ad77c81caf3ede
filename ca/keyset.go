package ca

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/bastionhq/bastion/internal/safetext"
)

// The IdP's key set as the bastion caches it. go-oidc's RemoteKeySet
// refetches the key set whenever a token's signature does not verify with
// a cached key, with no limit, and never otherwise: so anyone could make
// the bastion fetch the IdP's keys once per request (a flood relayed to
// the IdP), and a key the IdP removed stayed trusted until someone sent a
// token naming an unknown key. keySet bounds both.
const (
	// keySetMaxAge is how long a fetched key set is trusted: after it, the
	// next verification fetches the set again, and a key the IdP removed
	// (rotated out) verifies nothing more.
	keySetMaxAge = 5 * time.Minute
	// keySetRefetchEvery is the least time between two fetches caused by
	// tokens (a key ID the cache lacks) or by a failed fetch.
	keySetRefetchEvery = 10 * time.Second
	// keySetFetchTimeout bounds one fetch, whatever the HTTP client's
	// own timeout.
	keySetFetchTimeout = 30 * time.Second
	// keySetUnavailable starts the error of a token refused because the
	// key set could not be fetched (classify: idp_unavailable).
	keySetUnavailable = "the identity provider's key set is unavailable"
	// maxKeySetBytes bounds the key set document.
	maxKeySetBytes = 1 << 20
)

// keySet is an oidc.KeySet over an IdP's jwks_uri.
type keySet struct {
	url    string
	client *http.Client
	now    func() time.Time
	algs   []jose.SignatureAlgorithm

	mu       sync.Mutex
	keys     []jose.JSONWebKey
	fetched  time.Time // when keys were fetched; zero before the first success
	tried    time.Time // the last fetch attempt
	err      error     // the last attempt's error, nil after a success
	inflight chan struct{}
}

func newKeySet(url string, client *http.Client, now func() time.Time, algs []string) *keySet {
	k := &keySet{url: url, client: client, now: now}
	for _, a := range algs {
		k.algs = append(k.algs, jose.SignatureAlgorithm(a))
	}
	return k
}

// VerifySignature implements oidc.KeySet. The verifier has checked the
// algorithm against the allowed ones before calling it.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	jws, err := jose.ParseSigned(raw, k.algs)
	if err != nil {
		return nil, fmt.Errorf("malformed jwt: %v", err)
	}
	if len(jws.Signatures) != 1 {
		return nil, errors.New("want exactly one signature")
	}
	kid := jws.Signatures[0].Header.KeyID
	keys, stale := k.cached()
	if stale {
		var err error
		if keys, err = k.refresh(ctx, keySetRefetchEvery); err != nil {
			// Refused, not verified with keys too old to trust.
			return nil, fmt.Errorf("%s: %w", keySetUnavailable, err)
		}
	} else if !hasKeyID(keys, kid) {
		// A key the IdP may just have published: fetch again, at most
		// once per keySetRefetchEvery whoever asks.
		if fresh, err := k.refresh(ctx, keySetRefetchEvery); err == nil {
			keys = fresh
		}
	}
	for i := range keys {
		if kid == "" || keys[i].KeyID == kid {
			if payload, err := jws.Verify(&keys[i]); err == nil {
				return payload, nil
			}
		}
	}
	if !hasKeyID(keys, kid) {
		return nil, fmt.Errorf("signing key %q is not in the identity provider's key set", safetext.Printable(kid))
	}
	return nil, errors.New("signature does not verify with the identity provider's key")
}

func hasKeyID(keys []jose.JSONWebKey, kid string) bool {
	if kid == "" {
		return len(keys) > 0
	}
	for i := range keys {
		if keys[i].KeyID == kid {
			return true
		}
	}
	return false
}

// cached returns the cached keys and whether they are too old to trust
// (or were never fetched).
func (k *keySet) cached() ([]jose.JSONWebKey, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	now := k.now()
	return k.keys, k.fetched.IsZero() || now.Sub(k.fetched) >= keySetMaxAge || now.Before(k.fetched)
}

// refresh fetches the key set unless an attempt was made less than
// minAge ago, in which case it returns the result of that one (an error
// when it failed or the keys it got are out of date), waiting for it while
// it runs. Concurrent callers share one fetch.
func (k *keySet) refresh(ctx context.Context, minAge time.Duration) ([]jose.JSONWebKey, error) {
	for {
		k.mu.Lock()
		if ch := k.inflight; ch != nil {
			k.mu.Unlock()
			select {
			case <-ch:
				continue
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		}
		now := k.now()
		if !k.tried.IsZero() && now.Sub(k.tried) < minAge && !now.Before(k.tried) {
			keys, err := k.keys, k.err
			if err == nil && (k.fetched.IsZero() || now.Sub(k.fetched) >= keySetMaxAge) {
				err = errors.New("the identity provider's key set is out of date")
			}
			k.mu.Unlock()
			if err != nil {
				return nil, err
			}
			return keys, nil
		}
		ch := make(chan struct{})
		k.inflight, k.tried = ch, now
		k.mu.Unlock()

		// The fetch is not the caller's: it runs to the HTTP client's
		// timeout even if this request gives up, and its result serves
		// whoever asks next.
		go func() {
			keys, err := k.fetch()
			k.mu.Lock()
			k.err = err
			if err == nil {
				k.keys, k.fetched = keys, k.now()
			}
			k.inflight = nil
			k.mu.Unlock()
			close(ch)
		}()
		select {
		case <-ch:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
		k.mu.Lock()
		keys, err := k.keys, k.err
		k.mu.Unlock()
		if err != nil {
			return nil, err
		}
		return keys, nil
	}
}

// fetch reads the key set. Keys of types go-jose does not know, keys for
// other algorithms than signatures, and keys marked for encryption are
// skipped, as RFC 7517 §5 asks (go-oidc's key set does the same).
func (k *keySet) fetch() ([]jose.JSONWebKey, error) {
	ctx, cancel := context.WithTimeout(context.Background(), keySetFetchTimeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, k.url, nil)
	if err != nil {
		return nil, fmt.Errorf("identity provider key set: %v", err)
	}
	resp, err := k.client.Do(req)
	if err != nil {
		return nil, fmt.Errorf("fetching the identity provider's key set: %w", err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, maxKeySetBytes+1))
	if err != nil {
		return nil, fmt.Errorf("reading the identity provider's key set: %v", err)
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("fetching the identity provider's key set: HTTP %s", resp.Status)
	}
	if len(body) > maxKeySetBytes {
		return nil, fmt.Errorf("the identity provider's key set exceeds %d bytes", maxKeySetBytes)
	}
	var raw struct {
		Keys []json.RawMessage `json:"keys"`
	}
	if err := json.Unmarshal(body, &raw); err != nil {
		return nil, fmt.Errorf("decoding the identity provider's key set: %v", err)
	}
	var keys []jose.JSONWebKey
	for _, r := range raw.Keys {
		var meta struct {
			Alg string `json:"alg"`
		}
		if err := json.Unmarshal(r, &meta); err != nil {
			return nil, fmt.Errorf("decoding the identity provider's key set: %v", err)
		}
		if meta.Alg != "" && !knownAlg(meta.Alg) {
			continue // ES256K, an encryption key (RSA-OAEP), …: not for signatures we verify
		}
		var key jose.JSONWebKey
		if err := json.Unmarshal(r, &key); err != nil {
			if errors.Is(err, jose.ErrUnsupportedKeyType) {
				continue
			}
			return nil, fmt.Errorf("decoding the identity provider's key set: %v", err)
		}
		if key.Use == "enc" {
			continue
		}
		keys = append(keys, key)
	}
	return keys, nil
}

func knownAlg(a string) bool {
	switch jose.SignatureAlgorithm(a) {
	case jose.RS256, jose.RS384, jose.RS512, jose.PS256, jose.PS384, jose.PS512,
		jose.ES256, jose.ES384, jose.ES512, jose.EdDSA:
		return true
	}
	return false
}
