package ca

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
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
	remote   *oidc.RemoteKeySet // verifies signatures with keys (verifier)
	remoteOf time.Time          // the fetched time of the keys remote was built on
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
//
// The signature is checked by a go-oidc RemoteKeySet whose "remote" is
// this cache (keySetTransport): go-oidc hands its key sets the token it has
// already parsed, so the token is parsed once per login (a second parse
// was about a third of an RSA verification). That set asks its transport
// again only for a key ID it lacks or a signature that fails, and the
// transport then refetches at most every keySetRefetchEvery.
func (k *keySet) VerifySignature(ctx context.Context, raw string) ([]byte, error) {
	if _, stale := k.cached(); stale {
		if _, err := k.refresh(ctx, keySetRefetchEvery); err != nil {
			// Refused, not verified with keys too old to trust.
			return nil, fmt.Errorf("%s: %w", keySetUnavailable, err)
		}
	}
	r, of := k.verifier()
	payload, err := r.VerifySignature(ctx, raw)
	if err == nil {
		return payload, nil
	}
	// A RemoteKeySet shares one fetch in flight until its goroutine clears
	// it, so a token with a key ID it lacks, checked just after another,
	// can get that earlier fetch's keys without a new one. A failure is
	// checked once more when a refresh (at most every keySetRefetchEvery)
	// brought keys other than those the set was built over.
	if _, rerr := k.refresh(ctx, keySetRefetchEvery); rerr != nil {
		return nil, err
	}
	if r2, of2 := k.verifier(); !of2.Equal(of) {
		return r2.VerifySignature(ctx, raw)
	}
	return nil, err
}

// verifier returns the RemoteKeySet over the keys fetched last, built anew
// when they change, so that a key no longer in the set verifies nothing,
// and when those keys were fetched.
func (k *keySet) verifier() (*oidc.RemoteKeySet, time.Time) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if k.remote == nil || !k.remoteOf.Equal(k.fetched) {
		client := &http.Client{Transport: &keySetTransport{k: k}}
		k.remote = oidc.NewRemoteKeySet(oidc.ClientContext(context.Background(), client), keySetURL)
		k.remoteOf = k.fetched
	}
	return k.remote, k.remoteOf
}

// keySetURL is what a RemoteKeySet over the cache asks its transport for.
const keySetURL = "https://key-set.bastion.invalid/"

// keySetTransport answers a RemoteKeySet's fetches from its keySet: the
// first with the keys cached, which built it; a later one (the set lacks
// a token's key ID, or a signature failed) by fetching the key set again,
// at most every keySetRefetchEvery, or with the keys cached meanwhile.
type keySetTransport struct {
	k      *keySet
	served atomic.Bool
}

func (t *keySetTransport) RoundTrip(req *http.Request) (*http.Response, error) {
	keys, stale := t.k.cached()
	if t.served.Swap(true) || stale {
		fresh, err := t.k.refresh(req.Context(), keySetRefetchEvery)
		switch {
		case err == nil:
			keys = fresh
		case stale:
			return nil, fmt.Errorf("%s: %w", keySetUnavailable, err)
		}
	}
	body, err := json.Marshal(jose.JSONWebKeySet{Keys: keys})
	if err != nil {
		return nil, fmt.Errorf("identity provider key set: %v", err)
	}
	return &http.Response{
		StatusCode: http.StatusOK, Status: "200 OK", Proto: "HTTP/1.1", ProtoMajor: 1, ProtoMinor: 1,
		Header:        http.Header{"Content-Type": {"application/json"}},
		Body:          io.NopCloser(bytes.NewReader(body)),
		ContentLength: int64(len(body)), Request: req,
	}, nil
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
