package ca

import (
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode"

	"github.com/coreos/go-oidc/v3/oidc"

	"github.com/bastionhq/bastion/internal/safetext"
)

// Token refusal reasons. They label audit records and metrics; the wrapped
// error carries the detail.
const (
	ReasonMalformed       = "malformed"
	ReasonAlgorithm       = "algorithm"
	ReasonUnknownIssuer   = "unknown_issuer"
	ReasonSignature       = "signature"
	ReasonExpired         = "expired"
	ReasonAudience        = "audience"
	ReasonAuthorizedParty = "azp"
	ReasonEmailUnverified = "email_unverified"
	ReasonUsername        = "username"
	ReasonGroups          = "groups"
	ReasonSubject         = "subject"
	ReasonIdPUnavailable  = "idp_unavailable"
	ReasonInvalid         = "invalid"
	ReasonReplay          = "replay" // the token was already exchanged for a certificate
)

// TokenError is a refused ID token. Reason is one of the Reason constants.
type TokenError struct {
	Reason string
	Err    error
}

func (e *TokenError) Error() string { return "token " + e.Reason + ": " + e.Err.Error() }
func (e *TokenError) Unwrap() error { return e.Err }

func tokenErr(reason string, format string, args ...any) error {
	return &TokenError{Reason: reason, Err: fmt.Errorf(format, args...)}
}

// maxTokenBytes bounds the ID token a client may send: real tokens are a few
// KiB; anything larger is refused before any decoding.
const maxTokenBytes = 16 << 10

// Workload maps tokens from a machine identity provider (a CI system) to a
// named bastion identity with fixed groups.
type Workload struct {
	// Issuer is the workload IdP's issuer URL. Required.
	Issuer string
	// Audience the token must carry. Required.
	Audience string
	// Subject is a glob over the token's sub claim; '*' matches any run of
	// characters, including '/' and ':'. Required.
	Subject string
	// Name is the identity's username. Required.
	Name string
	// Groups are granted to the identity, regardless of token claims.
	Groups []string
}

// OIDCConfig configures a Verifier.
type OIDCConfig struct {
	// Issuer is the people IdP's issuer URL. Required.
	Issuer string
	// ClientID is the audience people's ID tokens must carry. Required.
	ClientID string
	// UsernameClaim names the claim the username comes from. "email"
	// (default) takes the local part of a verified email.
	UsernameClaim string
	// GroupsClaim names the claim with the user's groups; default "groups".
	GroupsClaim string
	// Algorithms are the accepted JWS algorithms; default RS256 and ES256.
	// "none" and HMAC algorithms are always refused.
	Algorithms []string
	// Workloads are the accepted machine identities.
	Workloads []Workload
	// HTTPClient fetches discovery documents and key sets; nil means a
	// client with a 10s timeout.
	HTTPClient *http.Client
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Verifier turns a raw ID token into an Identity (without serial or
// validity, which the Authority assigns).
type Verifier struct {
	cfg       OIDCConfig
	now       func() time.Time
	ctx       context.Context // long-lived: go-oidc key sets fetch with it
	mu        sync.Mutex
	providers map[string]*lazyProvider
}

// NewVerifier checks cfg. It does not contact any IdP: discovery happens on
// first use and is retried, so a bastion can start while its IdP is down.
func NewVerifier(cfg OIDCConfig) (*Verifier, error) {
	if cfg.Issuer == "" || cfg.ClientID == "" {
		return nil, errors.New("ca: oidc issuer and client_id are required")
	}
	if cfg.UsernameClaim == "" {
		cfg.UsernameClaim = "email"
	}
	if cfg.GroupsClaim == "" {
		cfg.GroupsClaim = "groups"
	}
	if len(cfg.Algorithms) == 0 {
		cfg.Algorithms = []string{oidc.RS256, oidc.ES256}
	}
	for _, a := range cfg.Algorithms {
		if a == "none" || strings.HasPrefix(a, "HS") {
			return nil, fmt.Errorf("ca: oidc algorithm %q is not allowed", a)
		}
	}
	for i, w := range cfg.Workloads {
		if w.Issuer == "" || w.Audience == "" || w.Subject == "" || w.Name == "" {
			return nil, fmt.Errorf("ca: workload %d: issuer, audience, subject and name are required", i)
		}
		if err := ValidateUsername(w.Name); err != nil {
			return nil, fmt.Errorf("ca: workload %d name: %w", i, err)
		}
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Verifier{
		cfg:       cfg,
		now:       now,
		ctx:       oidc.ClientContext(context.Background(), cfg.HTTPClient),
		providers: map[string]*lazyProvider{},
	}, nil
}

// Issuer is the people IdP's issuer URL.
func (v *Verifier) Issuer() string { return v.cfg.Issuer }

// ClientID is the OAuth client ID people log in with.
func (v *Verifier) ClientID() string { return v.cfg.ClientID }

// unverified is what is read from a token before its signature is checked,
// only to pick the verifier; every value is checked again afterwards.
type unverified struct {
	Alg string `json:"alg"`
	Iss string `json:"iss"`
	Aud audience
}

type audience []string

func (a *audience) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err == nil {
		*a = []string{s}
		return nil
	}
	var l []string
	if err := json.Unmarshal(b, &l); err != nil {
		return errors.New("aud is neither a string nor a list of strings")
	}
	*a = l
	return nil
}

func peek(raw string) (unverified, error) {
	var u unverified
	parts := strings.Split(raw, ".")
	if len(parts) != 3 {
		return u, tokenErr(ReasonMalformed, "want 3 dot-separated parts, got %d", len(parts))
	}
	hdr, err := base64.RawURLEncoding.DecodeString(parts[0])
	if err != nil {
		return u, tokenErr(ReasonMalformed, "header: %v", err)
	}
	var h struct {
		Alg string `json:"alg"`
	}
	if err := json.Unmarshal(hdr, &h); err != nil {
		return u, tokenErr(ReasonMalformed, "header: %v", err)
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return u, tokenErr(ReasonMalformed, "payload: %v", err)
	}
	var p struct {
		Iss string   `json:"iss"`
		Aud audience `json:"aud"`
	}
	if err := json.Unmarshal(payload, &p); err != nil {
		return u, tokenErr(ReasonMalformed, "payload: %v", err)
	}
	return unverified{Alg: h.Alg, Iss: p.Iss, Aud: p.Aud}, nil
}

// Verify checks raw and returns the identity it proves.
func (v *Verifier) Verify(ctx context.Context, raw string) (Identity, error) {
	if raw == "" {
		return Identity{}, tokenErr(ReasonMalformed, "empty token")
	}
	if len(raw) > maxTokenBytes {
		return Identity{}, tokenErr(ReasonMalformed, "token of %d bytes exceeds %d", len(raw), maxTokenBytes)
	}
	u, err := peek(raw)
	if err != nil {
		return Identity{}, err
	}
	if !slices.Contains(v.cfg.Algorithms, u.Alg) {
		return Identity{}, tokenErr(ReasonAlgorithm, "alg %q is not one of %v", safetext.Printable(u.Alg), v.cfg.Algorithms)
	}
	if u.Iss == v.cfg.Issuer && slices.Contains(u.Aud, v.cfg.ClientID) {
		return v.verifyPerson(ctx, raw)
	}
	known := u.Iss == v.cfg.Issuer
	var mismatch error
	for i := range v.cfg.Workloads {
		w := &v.cfg.Workloads[i]
		if w.Issuer != u.Iss {
			continue
		}
		known = true
		if slices.Contains(u.Aud, w.Audience) {
			id, err := v.verifyWorkload(ctx, raw, w)
			if err == nil || !errors.Is(err, errSubjectMismatch) {
				return id, err
			}
			mismatch = err // another workload of this issuer may match
		}
	}
	if mismatch != nil {
		return Identity{}, mismatch
	}
	if !known {
		return Identity{}, tokenErr(ReasonUnknownIssuer, "issuer %q is not configured", safetext.Printable(u.Iss))
	}
	return Identity{}, tokenErr(ReasonAudience, "audience %q is not accepted for issuer %q", safetext.Printable(strings.Join(u.Aud, ",")), safetext.Printable(u.Iss))
}

func (v *Verifier) verify(ctx context.Context, raw, issuer, clientID string) (*oidc.IDToken, map[string]any, error) {
	lp := v.provider(issuer)
	verifier, err := lp.verifier(clientID)
	if err != nil {
		return nil, nil, &TokenError{Reason: ReasonIdPUnavailable, Err: err}
	}
	tok, err := verifier.Verify(ctx, raw)
	if err != nil {
		return nil, nil, classify(err)
	}
	var claims map[string]any
	if err := tok.Claims(&claims); err != nil {
		return nil, nil, tokenErr(ReasonMalformed, "claims: %v", err)
	}
	// go-oidc checks iss, aud, exp and the signature. OIDC Core 3.1.3.7:
	// with several audiences azp must be present; when present it must be us.
	azp, _ := claims["azp"].(string)
	if len(tok.Audience) > 1 && azp == "" {
		return nil, nil, tokenErr(ReasonAuthorizedParty, "several audiences and no azp")
	}
	if azp != "" && azp != clientID {
		return nil, nil, tokenErr(ReasonAuthorizedParty, "azp %q is not %q", safetext.Printable(azp), clientID)
	}
	if err := checkSubject(tok.Subject); err != nil {
		return nil, nil, err
	}
	return tok, claims, nil
}

func (v *Verifier) verifyPerson(ctx context.Context, raw string) (Identity, error) {
	id, _, err := v.verifyPersonFor(ctx, raw, v.cfg.ClientID)
	return id, err
}

// VerifyLogin checks an ID token that a web sign-in (authorization code
// flow) obtained for clientID, which may be another client of the people
// IdP than ClientID, and that must carry nonce, the value the sign-in sent.
// It returns the identity as Verify does (without serial or validity) and
// the token's expiry. Workload tokens are refused: machines do not sign in
// to pages.
func (v *Verifier) VerifyLogin(ctx context.Context, raw, clientID, nonce string) (Identity, time.Time, error) {
	if raw == "" || len(raw) > maxTokenBytes {
		return Identity{}, time.Time{}, tokenErr(ReasonMalformed, "token of %d bytes", len(raw))
	}
	u, err := peek(raw)
	if err != nil {
		return Identity{}, time.Time{}, err
	}
	if !slices.Contains(v.cfg.Algorithms, u.Alg) {
		return Identity{}, time.Time{}, tokenErr(ReasonAlgorithm, "alg %q is not one of %v", safetext.Printable(u.Alg), v.cfg.Algorithms)
	}
	if u.Iss != v.cfg.Issuer {
		return Identity{}, time.Time{}, tokenErr(ReasonUnknownIssuer, "issuer %q is not the people IdP", safetext.Printable(u.Iss))
	}
	id, tok, err := v.verifyPersonFor(ctx, raw, clientID)
	if err != nil {
		return Identity{}, time.Time{}, err
	}
	if nonce == "" || subtle.ConstantTimeCompare([]byte(tok.Nonce), []byte(nonce)) != 1 {
		return Identity{}, time.Time{}, tokenErr(ReasonInvalid, "nonce does not match the sign-in")
	}
	return id, tok.Expiry, nil
}

func (v *Verifier) verifyPersonFor(ctx context.Context, raw, clientID string) (Identity, *oidc.IDToken, error) {
	tok, claims, err := v.verify(ctx, raw, v.cfg.Issuer, clientID)
	if err != nil {
		return Identity{}, nil, err
	}
	id := Identity{Issuer: tok.Issuer, Subject: tok.Subject}
	claim := v.cfg.UsernameClaim
	val, ok := claims[claim].(string)
	if !ok || val == "" {
		return Identity{}, nil, tokenErr(ReasonUsername, "claim %q missing or not a string", claim)
	}
	if claim == "email" && !truthy(claims["email_verified"]) {
		return Identity{}, nil, tokenErr(ReasonEmailUnverified, "email_verified is false or missing")
	}
	if id.User, err = SanitizeUsername(val, claim == "email"); err != nil {
		return Identity{}, nil, &TokenError{Reason: ReasonUsername, Err: err}
	}
	if id.Groups, err = groupsOf(claims[v.cfg.GroupsClaim]); err != nil {
		return Identity{}, nil, &TokenError{Reason: ReasonGroups, Err: err}
	}
	return id, tok, nil
}

var errSubjectMismatch = errors.New("subject does not match")

func (v *Verifier) verifyWorkload(ctx context.Context, raw string, w *Workload) (Identity, error) {
	tok, _, err := v.verify(ctx, raw, w.Issuer, w.Audience)
	if err != nil {
		return Identity{}, err
	}
	if !globMatch(w.Subject, tok.Subject) {
		return Identity{}, &TokenError{Reason: ReasonSubject, Err: fmt.Errorf("%w: %q against %q", errSubjectMismatch, safetext.Printable(tok.Subject), w.Subject)}
	}
	return Identity{
		User:     w.Name,
		Issuer:   tok.Issuer,
		Subject:  tok.Subject,
		Groups:   slices.Clone(w.Groups),
		Workload: true,
	}, nil
}

func classify(err error) error {
	var exp *oidc.TokenExpiredError
	if errors.As(err, &exp) {
		return &TokenError{Reason: ReasonExpired, Err: err}
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, "audience"):
		return &TokenError{Reason: ReasonAudience, Err: err}
	case strings.Contains(msg, "signature"), strings.Contains(msg, "signing key"), strings.Contains(msg, "key set"):
		return &TokenError{Reason: ReasonSignature, Err: err}
	case strings.Contains(msg, "issuer"):
		return &TokenError{Reason: ReasonUnknownIssuer, Err: err}
	case strings.Contains(msg, "malformed"):
		return &TokenError{Reason: ReasonMalformed, Err: err}
	}
	return &TokenError{Reason: ReasonInvalid, Err: err}
}

func checkSubject(sub string) error {
	if sub == "" || len(sub) > 255 {
		return tokenErr(ReasonSubject, "sub length %d out of range 1..255", len(sub))
	}
	for _, r := range sub {
		if unicode.IsControl(r) {
			return tokenErr(ReasonSubject, "sub contains control characters")
		}
	}
	return nil
}

// truthy accepts the boolean true, and the string "true" some IdPs send.
func truthy(v any) bool {
	switch b := v.(type) {
	case bool:
		return b
	case string:
		return b == "true"
	}
	return false
}

const maxGroups = 256

func groupsOf(v any) ([]string, error) {
	switch g := v.(type) {
	case nil:
		return nil, nil
	case string:
		if err := validateGroup(g); err != nil {
			return nil, err
		}
		return []string{g}, nil
	case []any:
		if len(g) > maxGroups {
			return nil, fmt.Errorf("%d groups exceed the limit of %d", len(g), maxGroups)
		}
		out := make([]string, 0, len(g))
		for _, e := range g {
			s, ok := e.(string)
			if !ok {
				return nil, fmt.Errorf("group %v is not a string", e)
			}
			if err := validateGroup(s); err != nil {
				return nil, err
			}
			out = append(out, s)
		}
		return out, nil
	}
	return nil, fmt.Errorf("groups claim of type %T", v)
}

// globMatch reports whether s matches pattern, where '*' matches any run of
// characters (including '/' and ':', unlike path.Match) and '?' one character.
// It runs in O(len(pattern)*len(s)) time at worst.
func globMatch(pattern, s string) bool {
	p, str := []rune(pattern), []rune(s)
	pi, si, star, mark := 0, 0, -1, 0
	for si < len(str) {
		switch {
		case pi < len(p) && (p[pi] == '?' || p[pi] == str[si]):
			pi++
			si++
		case pi < len(p) && p[pi] == '*':
			star, mark = pi, si
			pi++
		case star >= 0:
			pi = star + 1
			mark++
			si = mark
		default:
			return false
		}
	}
	for pi < len(p) && p[pi] == '*' {
		pi++
	}
	return pi == len(p)
}

// lazyProvider runs OIDC discovery on first use and retries failures at most
// every retryEvery, so a dead IdP does not get a request per login attempt.
type lazyProvider struct {
	issuer    string
	v         *Verifier
	mu        sync.Mutex
	p         *oidc.Provider
	err       error
	tried     time.Time
	verifiers map[string]*oidc.IDTokenVerifier // by client ID (audience)
}

// verifier returns the ID token verifier for an audience, built once: each
// go-oidc verifier owns a remote key set, which caches the IdP's keys and
// refetches them only for an unknown key ID. A verifier per request would
// fetch the key set on every login.
func (l *lazyProvider) verifier(clientID string) (*oidc.IDTokenVerifier, error) {
	p, err := l.get()
	if err != nil {
		return nil, err
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if v, ok := l.verifiers[clientID]; ok {
		return v, nil
	}
	if l.verifiers == nil {
		l.verifiers = map[string]*oidc.IDTokenVerifier{}
	}
	v := p.VerifierContext(l.v.ctx, &oidc.Config{
		ClientID:             clientID,
		SupportedSigningAlgs: l.v.cfg.Algorithms,
		Now:                  l.v.now,
	})
	l.verifiers[clientID] = v
	return v, nil
}

const retryEvery = 5 * time.Second

func (v *Verifier) provider(issuer string) *lazyProvider {
	v.mu.Lock()
	defer v.mu.Unlock()
	lp := v.providers[issuer]
	if lp == nil {
		lp = &lazyProvider{issuer: issuer, v: v}
		v.providers[issuer] = lp
	}
	return lp
}

func (l *lazyProvider) get() (*oidc.Provider, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.p != nil {
		return l.p, nil
	}
	now := l.v.now()
	if l.err != nil && now.Sub(l.tried) < retryEvery {
		return nil, l.err
	}
	l.tried = now
	// The provider keeps the context for later key set fetches, so it must
	// be long-lived; the HTTP client's timeout bounds each request.
	p, err := oidc.NewProvider(l.v.ctx, l.issuer)
	if err != nil {
		l.err = fmt.Errorf("discovery for %s: %w", l.issuer, err)
		return nil, l.err
	}
	l.p, l.err = p, nil
	return p, nil
}
