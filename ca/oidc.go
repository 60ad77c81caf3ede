package ca

import (
	"context"
	"crypto/subtle"
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
	ReasonReplay          = "replay"  // the token was already exchanged for a certificate
	ReasonRevoked         = "revoked" // the token was issued before its user was revoked (ca revoke --user)
	ReasonActor           = "actor"   // a workload token without a usable actor claim (oidc.workload actor_claim)
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
	// ActorClaim, when set, names the claim that says who triggered the
	// run (GitHub Actions: actor; GitLab: user_login). A token without it
	// is refused; its value becomes Identity.Actor, so that person does
	// not approve the run's requests.
	ActorClaim string
	// Actors, when not empty, maps the claim's values (compared without
	// regard to ASCII case) to bastion usernames, and a value it lacks is
	// refused. Without it the value is normalised as a username is (an
	// email's local part when it holds an @, lower-cased).
	Actors map[string]string
}

// actorOf reads the person who triggered a run from the token's claims;
// emailDomains are oidc.email_domains (lower-cased), which an email's
// domain must be one of when there are any.
func (w *Workload) actorOf(c *idClaims, emailDomains []string) (string, error) {
	raw, ok := c.claim(w.ActorClaim)
	var val string
	if !ok || len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &val) != nil || val == "" {
		return "", tokenErr(ReasonActor, "workload %s needs the claim %q (who triggered the run; oidc.workload actor_claim), and the token has none or not a string", w.Name, w.ActorClaim)
	}
	if len(val) > 255 {
		return "", tokenErr(ReasonActor, "claim %q is %d bytes long", w.ActorClaim, len(val))
	}
	if len(w.Actors) > 0 {
		for k, u := range w.Actors {
			if asciiLower(k) == asciiLower(val) {
				return u, nil
			}
		}
		return "", tokenErr(ReasonActor, "%s %q is not in the actors map of workload %s: add it (actors: {%q: USERNAME})", w.ActorClaim, safetext.Printable(val), w.Name, safetext.Printable(val))
	}
	u, err := SanitizeUsername(val, strings.Contains(val, "@"))
	if err != nil {
		return "", &TokenError{Reason: ReasonActor, Err: fmt.Errorf("claim %q of workload %s is not a username (map it with actors): %w", w.ActorClaim, w.Name, err)}
	}
	if at := strings.LastIndexByte(val, '@'); at >= 0 && len(emailDomains) > 0 {
		// As for a person's login, the domain says whose the name is:
		// a CI account's email is its owner's to set (bob's as
		// alice@bob.example), and alice would be named for bob's run.
		if domain := asciiLower(val[at+1:]); !slices.Contains(emailDomains, domain) {
			return "", tokenErr(ReasonActor, "claim %q of workload %s: email domain %q is not one of oidc.email_domains (map it with actors)", w.ActorClaim, w.Name, safetext.Printable(domain))
		}
	}
	return u, nil
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
	// EmailDomains, when not empty, are the only email domains whose
	// people may log in when the username comes from the email (compared
	// without regard to ASCII case; a subdomain is another domain).
	EmailDomains []string
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
	if slices.Contains(reservedClaims, cfg.UsernameClaim) || slices.Contains(reservedClaims, cfg.GroupsClaim) {
		return nil, fmt.Errorf("ca: oidc username and groups claims cannot be one of %v", reservedClaims)
	}
	if err := CheckEmailDomains(cfg.Issuer, cfg.UsernameClaim, cfg.EmailDomains); err != nil {
		return nil, fmt.Errorf("ca: %w", err)
	}
	cfg.EmailDomains = slices.Clone(cfg.EmailDomains)
	for i, d := range cfg.EmailDomains {
		cfg.EmailDomains[i] = asciiLower(d)
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
		if len(w.Actors) > 0 && w.ActorClaim == "" {
			return nil, fmt.Errorf("ca: workload %d: actors without actor_claim", i)
		}
		if err := CheckWorkloadAudience(cfg.Issuer, cfg.ClientID, w.Issuer, w.Audience); err != nil {
			return nil, fmt.Errorf("ca: workload %d audience: %w", i, err)
		}
		if err := CheckWorkloadActors(w.Issuer, w.ActorClaim, len(w.Actors)); err != nil {
			return nil, fmt.Errorf("ca: workload %d actors: %w", i, err)
		}
		seen := map[string]bool{}
		for k, u := range w.Actors {
			if k == "" || seen[asciiLower(k)] {
				return nil, fmt.Errorf("ca: workload %d actors: %q is empty or named twice (values are compared without regard to case)", i, k)
			}
			seen[asciiLower(k)] = true
			if err := ValidateUsername(u); err != nil {
				return nil, fmt.Errorf("ca: workload %d actors[%q]: %w", i, k, err)
			}
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

// Verify checks raw and returns the identity it proves.
func (v *Verifier) Verify(ctx context.Context, raw string) (Identity, error) {
	id, _, err := v.verifyToken(ctx, raw)
	if err != nil {
		return Identity{}, err // verifyToken names the workload of a refused actor, for the audit record
	}
	return id, nil
}

// verifyToken checks raw and returns the identity it proves and what names
// the token for the single-use check. The token's JSON is decoded once
// here (parseToken), besides go-oidc's own reading of it.
func (v *Verifier) verifyToken(ctx context.Context, raw string) (Identity, tokenSpent, error) {
	if raw == "" {
		return Identity{}, tokenSpent{}, tokenErr(ReasonMalformed, "empty token")
	}
	if len(raw) > maxTokenBytes {
		return Identity{}, tokenSpent{}, tokenErr(ReasonMalformed, "token of %d bytes exceeds %d", len(raw), maxTokenBytes)
	}
	c, err := parseToken(raw, v.cfg.UsernameClaim, v.cfg.GroupsClaim)
	if err != nil {
		return Identity{}, tokenSpent{}, err
	}
	if !slices.Contains(v.cfg.Algorithms, c.alg) {
		return Identity{}, tokenSpent{}, tokenErr(ReasonAlgorithm, "alg %q is not one of %v", safetext.Printable(c.alg), v.cfg.Algorithms)
	}
	if c.iss == v.cfg.Issuer && slices.Contains(c.aud, v.cfg.ClientID) {
		id, tok, err := v.verifyPersonFor(ctx, raw, &c, v.cfg.ClientID)
		if err != nil {
			return Identity{}, tokenSpent{}, err
		}
		return id, spentBy(raw, tok.Issuer, c.jti, tok.IssuedAt, tok.Expiry), nil
	}
	known := c.iss == v.cfg.Issuer
	var mismatch error
	for i := range v.cfg.Workloads {
		w := &v.cfg.Workloads[i]
		if w.Issuer != c.iss {
			continue
		}
		known = true
		if slices.Contains(c.aud, w.Audience) {
			id, tok, err := v.verifyWorkload(ctx, raw, &c, w)
			if err == nil {
				return id, spentBy(raw, tok.Issuer, c.jti, tok.IssuedAt, tok.Expiry), nil
			}
			if !errors.Is(err, errSubjectMismatch) {
				// id names the workload when only its actor was
				// refused, for the refusal's audit record.
				return id, tokenSpent{}, err
			}
			mismatch = err // another workload of this issuer may match
		}
	}
	if mismatch != nil {
		return Identity{}, tokenSpent{}, mismatch
	}
	if !known {
		return Identity{}, tokenSpent{}, tokenErr(ReasonUnknownIssuer, "issuer %q is not configured", safetext.Printable(c.iss))
	}
	return Identity{}, tokenSpent{}, tokenErr(ReasonAudience, "audience %q is not accepted for issuer %q", safetext.Printable(strings.Join(c.aud, ",")), safetext.Printable(c.iss))
}

// verify has go-oidc check raw's signature, issuer, audience and expiry,
// then checks what it read against c, the bastion's own reading of the same
// bytes, and the authorized party.
func (v *Verifier) verify(ctx context.Context, raw string, c *idClaims, issuer, clientID string) (*oidc.IDToken, error) {
	lp := v.provider(issuer)
	verifier, err := lp.verifier(clientID)
	if err != nil {
		return nil, &TokenError{Reason: ReasonIdPUnavailable, Err: err}
	}
	tok, err := verifier.Verify(ctx, raw)
	if err != nil {
		return nil, classify(err)
	}
	// Both read the same signed bytes; a difference means a JSON quirk
	// (encoding/json matches names without regard to case) and is refused.
	if tok.Issuer != c.iss || !slices.Equal(tok.Audience, c.aud) {
		return nil, tokenErr(ReasonMalformed, "the claims read ambiguously")
	}
	// go-oidc checks iss, aud, exp and the signature. OIDC Core 3.1.3.7:
	// with several audiences azp must be present; when present it must be us.
	if len(tok.Audience) > 1 && c.azp == "" {
		return nil, tokenErr(ReasonAuthorizedParty, "several audiences and no azp")
	}
	if c.azp != "" && c.azp != clientID {
		return nil, tokenErr(ReasonAuthorizedParty, "azp %q is not %q", safetext.Printable(c.azp), clientID)
	}
	if err := checkSubject(tok.Subject); err != nil {
		return nil, err
	}
	// go-oidc does not look at iat. The bastion compares it with a
	// revocation by user (ca revoke --user): a token the IdP minted before
	// one, with its clock ahead, would pass as issued after it.
	if now := v.now(); tok.IssuedAt.After(now.Add(maxIssuedAhead)) {
		return nil, tokenErr(ReasonInvalid, "issued at %s, %s ahead of the bastion's clock (more than %s): is the identity provider's clock right?", tok.IssuedAt.UTC().Format(time.RFC3339), tok.IssuedAt.Sub(now).Round(time.Second), maxIssuedAhead)
	}
	return tok, nil
}

// maxIssuedAhead is how far ahead of the bastion's clock a token's iat may
// be (go-oidc allows an nbf as far ahead).
const maxIssuedAhead = 5 * time.Minute

// VerifyLogin checks an ID token that a web sign-in (authorization code
// flow) obtained for clientID, which may be another client of the people
// IdP than ClientID, and that must carry nonce, the value the sign-in sent.
// It returns the identity as Verify does (without serial or validity) and
// the token's expiry and issue time (iat; zero when it has none). Workload
// tokens are refused: machines do not sign in to pages.
func (v *Verifier) VerifyLogin(ctx context.Context, raw, clientID, nonce string) (id Identity, issued, expires time.Time, err error) {
	if raw == "" || len(raw) > maxTokenBytes {
		return Identity{}, time.Time{}, time.Time{}, tokenErr(ReasonMalformed, "token of %d bytes", len(raw))
	}
	c, err := parseToken(raw, v.cfg.UsernameClaim, v.cfg.GroupsClaim)
	if err != nil {
		return Identity{}, time.Time{}, time.Time{}, err
	}
	if !slices.Contains(v.cfg.Algorithms, c.alg) {
		return Identity{}, time.Time{}, time.Time{}, tokenErr(ReasonAlgorithm, "alg %q is not one of %v", safetext.Printable(c.alg), v.cfg.Algorithms)
	}
	if c.iss != v.cfg.Issuer {
		return Identity{}, time.Time{}, time.Time{}, tokenErr(ReasonUnknownIssuer, "issuer %q is not the people IdP", safetext.Printable(c.iss))
	}
	id, tok, err := v.verifyPersonFor(ctx, raw, &c, clientID)
	if err != nil {
		return Identity{}, time.Time{}, time.Time{}, err
	}
	if nonce == "" || subtle.ConstantTimeCompare([]byte(tok.Nonce), []byte(nonce)) != 1 {
		return Identity{}, time.Time{}, time.Time{}, tokenErr(ReasonInvalid, "nonce does not match the sign-in")
	}
	return id, tok.IssuedAt, tok.Expiry, nil
}

func (v *Verifier) verifyPersonFor(ctx context.Context, raw string, c *idClaims, clientID string) (Identity, *oidc.IDToken, error) {
	tok, err := v.verify(ctx, raw, c, v.cfg.Issuer, clientID)
	if err != nil {
		return Identity{}, nil, err
	}
	id := Identity{Issuer: tok.Issuer, Subject: tok.Subject}
	claim := v.cfg.UsernameClaim
	if !c.userIsString || c.user == "" {
		return Identity{}, nil, tokenErr(ReasonUsername, "claim %q missing or not a string", claim)
	}
	if claim == "email" && !c.verified {
		return Identity{}, nil, tokenErr(ReasonEmailUnverified, "email_verified is false or missing")
	}
	if id.User, err = SanitizeUsername(c.user, claim == "email"); err != nil {
		return Identity{}, nil, &TokenError{Reason: ReasonUsername, Err: err}
	}
	if claim == "email" && len(v.cfg.EmailDomains) > 0 {
		// The name is the local part: the domain says whose it is.
		domain := asciiLower(c.user[strings.LastIndexByte(c.user, '@')+1:])
		if !slices.Contains(v.cfg.EmailDomains, domain) {
			return Identity{}, nil, tokenErr(ReasonUsername, "email domain %q is not one of oidc.email_domains", safetext.Printable(domain))
		}
	}
	// The policy knows identities by name (roles' users, the sessions one
	// may see): a person never takes a workload identity's.
	for i := range v.cfg.Workloads {
		if v.cfg.Workloads[i].Name == id.User {
			return Identity{}, nil, tokenErr(ReasonUsername, "%q is the name of a workload identity (oidc.workload), not a person's", id.User)
		}
	}
	if c.groupsErr != nil {
		return Identity{}, nil, &TokenError{Reason: ReasonGroups, Err: c.groupsErr}
	}
	id.Groups = c.groups
	return id, tok, nil
}

// openIssuers are people IdPs where anyone may have an account, so that an
// email's local part names nobody in particular: GitLab.com, Google (an
// External app takes any Google account, alice@gmail.com too, and the
// bastion cannot see how the app is set up) and Apple.
var openIssuers = []string{"https://gitlab.com", "https://accounts.google.com", "https://appleid.apple.com"}

// CheckEmailDomains checks oidc.email_domains: each a domain name, and
// some when the username is the email's local part at an issuer where
// anyone may have an account (a verified alice@anywhere would be alice).
func CheckEmailDomains(issuer, usernameClaim string, domains []string) error {
	for _, d := range domains {
		if d == "" || strings.ContainsAny(d, "@ \t\r\n,") {
			return fmt.Errorf("oidc email domain %q is not a domain name", d)
		}
	}
	if (usernameClaim == "" || usernameClaim == "email") && len(domains) == 0 && slices.Contains(openIssuers, asciiLower(strings.TrimSuffix(issuer, "/"))) {
		return fmt.Errorf("at %s anyone can have an account, and a verified alice@anywhere would log in as alice: set oidc.email_domains to your organisation's, or a username_claim the provider keeps unique", issuer)
	}
	return nil
}

// CheckWorkloadAudience refuses a workload whose tokens would be the
// people's: of the people IdP, for the people's client. Such a token is
// read as a person's (Verify tries that first), so the entry would never
// match: the job's tokens would be refused, or, where they carry the
// username claim, taken for a person's.
func CheckWorkloadAudience(issuer, clientID, wIssuer, wAudience string) error {
	if strings.TrimSuffix(issuer, "/") == strings.TrimSuffix(wIssuer, "/") && wAudience == clientID {
		return fmt.Errorf("%q is the people's client_id at the same issuer: tokens for it are people's; give the workload an audience of its own", wAudience)
	}
	return nil
}

// openCIIssuers are CI token issuers where anyone has an account and
// picks, and may change, its login: the claim that names who triggered a
// run there is no bastion username of anyone's in particular.
var openCIIssuers = []string{"https://token.actions.githubusercontent.com", "https://gitlab.com"}

// CheckWorkloadActors checks that a workload of issuer whose actor_claim
// is set maps the claim's values (actors, nActors of them) where the
// values are logins anyone picks: without the map, bob's run under the
// login bob-gh (or asmith, when free) would name someone other than bob,
// and bob would approve what it is held on.
func CheckWorkloadActors(issuer, actorClaim string, nActors int) error {
	if actorClaim != "" && nActors == 0 && slices.Contains(openCIIssuers, asciiLower(strings.TrimSuffix(issuer, "/"))) {
		return fmt.Errorf("required with actor_claim at %s: anyone has an account there and picks its login, so the claim names no bastion user until actors maps each login to one (actors: {LOGIN: USERNAME})", issuer)
	}
	return nil
}

func asciiLower(s string) string {
	return strings.Map(func(r rune) rune {
		if 'A' <= r && r <= 'Z' {
			return r + ('a' - 'A')
		}
		return r
	}, s)
}

var errSubjectMismatch = errors.New("subject does not match")

func (v *Verifier) verifyWorkload(ctx context.Context, raw string, c *idClaims, w *Workload) (Identity, *oidc.IDToken, error) {
	tok, err := v.verify(ctx, raw, c, w.Issuer, w.Audience)
	if err != nil {
		return Identity{}, nil, err
	}
	if !globMatch(w.Subject, tok.Subject) {
		return Identity{}, nil, &TokenError{Reason: ReasonSubject, Err: fmt.Errorf("%w: %q against %q", errSubjectMismatch, safetext.Printable(tok.Subject), w.Subject)}
	}
	id := Identity{
		User:     w.Name,
		Issuer:   tok.Issuer,
		Subject:  tok.Subject,
		Groups:   slices.Clone(w.Groups),
		Workload: true,
	}
	if w.ActorClaim != "" {
		// Fail closed: a run that does not say who triggered it could be
		// anyone's, its approver's included.
		if id.Actor, err = w.actorOf(c, v.cfg.EmailDomains); err != nil {
			return Identity{User: id.User, Issuer: id.Issuer, Subject: id.Subject, Workload: true}, nil, err
		}
		// An actor is a person: a CI login that is a workload's name
		// (renamed ci-deploy, or the run's own) names no one who could
		// be kept from approving the run.
		for i := range v.cfg.Workloads {
			if v.cfg.Workloads[i].Name == id.Actor {
				return Identity{User: id.User, Issuer: id.Issuer, Subject: id.Subject, Workload: true}, nil,
					tokenErr(ReasonActor, "claim %q of workload %s names %q, a workload identity (oidc.workload), not a person", w.ActorClaim, w.Name, id.Actor)
			}
		}
	}
	return id, tok, nil
}

func classify(err error) error {
	var exp *oidc.TokenExpiredError
	if errors.As(err, &exp) {
		return &TokenError{Reason: ReasonExpired, Err: err}
	}
	msg := err.Error()
	switch {
	case strings.Contains(msg, keySetUnavailable):
		return &TokenError{Reason: ReasonIdPUnavailable, Err: err}
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
	keys      *keySet                          // the IdP's keys, shared by its verifiers
	verifiers map[string]*oidc.IDTokenVerifier // by client ID (audience)
}

// verifier returns the ID token verifier for an audience, built once. All
// the verifiers of an IdP share its keySet, which caches the IdP's keys for
// at most keySetMaxAge and refetches them for an unknown key ID at most
// every keySetRefetchEvery (go-oidc's own key set refetches for every
// token whose signature fails, and never drops a key the IdP removed).
func (l *lazyProvider) verifier(clientID string) (*oidc.IDTokenVerifier, error) {
	if _, err := l.get(); err != nil {
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
	v := oidc.NewVerifier(l.issuer, l.keys, &oidc.Config{
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
	var disc struct {
		JWKS string `json:"jwks_uri"`
	}
	if err := p.Claims(&disc); err != nil || disc.JWKS == "" {
		l.err = fmt.Errorf("discovery for %s: no jwks_uri", l.issuer)
		return nil, l.err
	}
	l.keys = newKeySet(disc.JWKS, l.v.cfg.HTTPClient, l.v.now, l.v.cfg.Algorithms)
	l.p, l.err = p, nil
	return p, nil
}
