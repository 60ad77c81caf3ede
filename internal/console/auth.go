package console

import (
	"context"
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/recorder"
)

// A sign-in is the authorization code flow with PKCE (S256) and a nonce.
// The state, nonce and code verifier travel in a short-lived login cookie
// sealed with a key only this process holds (AES-GCM), so a callback the
// browser did not start (login CSRF) is refused and pending sign-ins take
// no room on the server: nobody can crowd out another's sign-in by
// starting many. A completed sign-in becomes a server-side session named
// by a random cookie; the cookie carries nothing else.

const (
	loginTTL    = 10 * time.Minute
	maxNext     = 2048 // the longest page to return to after sign-in
	maxSessions = 100000
	// maxSessionsPerIdentity bounds one identity's sign-ins: its oldest
	// ends when it makes one more, so nobody scripting sign-ins at the IdP
	// fills the table everyone's sign-ins share.
	maxSessionsPerIdentity = 16
	cookieSession          = "bastion_console"
	cookieLogin            = "bastion_login"
	csrfField              = "csrf"
	discoveryRetry         = 30 * time.Second
)

type websession struct {
	key      string // in auth.sessions
	identity ca.Identity
	csrf     string
	signedIn time.Time
	created  time.Time // when this sign-in was made here
	expires  time.Time
}

// pendingLogin is a sign-in in progress, sealed into the login cookie.
type pendingLogin struct {
	State    string `json:"s"`
	Nonce    string `json:"n"`
	Verifier string `json:"v"`
	Next     string `json:"x"`
	Redirect string `json:"r"`
	Expires  int64  `json:"e"` // Unix seconds
}

type auth struct {
	c        *Console
	mu       sync.Mutex
	sessions map[string]*websession // by sha256 of the cookie value
	seal     cipher.AEAD            // seals pending sign-ins (pendingLogin)
	provider *oidc.Provider
	// discovering serialises fetches of the discovery document; lastErr
	// is when the last one failed (oidcProvider).
	discovering sync.Mutex
	lastErr     time.Time
}

func newAuth(c *Console) *auth {
	key := make([]byte, 32)
	rand.Read(key)
	block, err := aes.NewCipher(key)
	if err != nil {
		panic(err) // a 32-byte key is always valid
	}
	seal, err := cipher.NewGCM(block)
	if err != nil {
		panic(err)
	}
	return &auth{c: c, sessions: map[string]*websession{}, seal: seal}
}

// sealLogin returns the login cookie's value for pl.
func (a *auth) sealLogin(pl pendingLogin) string {
	plain, _ := json.Marshal(pl)
	nonce := make([]byte, a.seal.NonceSize())
	rand.Read(nonce)
	return base64.RawURLEncoding.EncodeToString(a.seal.Seal(nonce, nonce, plain, []byte(cookieLogin)))
}

// openLogin returns the pending sign-in sealed in a login cookie's value.
func (a *auth) openLogin(v string) (pendingLogin, bool) {
	var pl pendingLogin
	b, err := base64.RawURLEncoding.DecodeString(v)
	if err != nil || len(b) < a.seal.NonceSize() {
		return pl, false
	}
	plain, err := a.seal.Open(nil, b[:a.seal.NonceSize()], b[a.seal.NonceSize():], []byte(cookieLogin))
	if err != nil || json.Unmarshal(plain, &pl) != nil {
		return pl, false
	}
	return pl, true
}

func randomToken() string {
	b := make([]byte, 32)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

func sessionKey(token string) string {
	h := sha256.Sum256([]byte(token))
	return string(h[:])
}

func (a *auth) cookieName(base string) string {
	if a.c.https {
		return "__Host-" + base
	}
	return base
}

func (a *auth) setCookie(w http.ResponseWriter, name, value string, maxAge time.Duration) {
	http.SetCookie(w, &http.Cookie{
		Name: a.cookieName(name), Value: value, Path: "/", HttpOnly: true, Secure: a.c.https,
		// Lax, not Strict: the IdP's redirect back and a link from chat to an
		// approval are top-level navigations from another site. Every
		// state-changing request is a POST with a CSRF token besides.
		SameSite: http.SameSiteLaxMode, MaxAge: int(maxAge / time.Second),
	})
}

func (a *auth) clearCookie(w http.ResponseWriter, name string) {
	http.SetCookie(w, &http.Cookie{Name: a.cookieName(name), Value: "", Path: "/", HttpOnly: true, Secure: a.c.https,
		SameSite: http.SameSiteLaxMode, MaxAge: -1})
}

// session returns the signed-in session of r, if any.
func (a *auth) session(r *http.Request) (*websession, bool) {
	ck, err := r.Cookie(a.cookieName(cookieSession))
	if err != nil || ck.Value == "" {
		return nil, false
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	k := sessionKey(ck.Value)
	s, ok := a.sessions[k]
	if !ok {
		return nil, false
	}
	if !a.alive(s) {
		delete(a.sessions, k)
		return nil, false
	}
	return s, true
}

// alive reports whether s has neither expired nor been revoked (bastion
// ca revoke --user, on any replica, after it signed in). Streams that
// outlast their request (live views, approval updates) ask it every
// second.
func (a *auth) alive(s *websession) bool {
	if !a.c.now().Before(s.expires) {
		return false
	}
	at, revoked := a.c.cfg.Store.UserRevoked(s.identity.User)
	return !revoked || s.signedIn.After(at)
}

// stillSignedIn reports whether s is still a session of this console,
// signed in and alive: not signed out, expired or revoked since.
func (a *auth) stillSignedIn(s *websession) bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.sessions[s.key] == s && a.alive(s)
}

// checkCSRF reports whether r carries s's CSRF token in its form.
func checkCSRF(r *http.Request, s *websession) bool {
	got := r.PostFormValue(csrfField)
	return got != "" && subtle.ConstantTimeCompare([]byte(got), []byte(s.csrf)) == 1
}

// oidcProvider returns the IdP's provider, fetching its discovery
// document the first time. Anyone can ask (GET /login needs no sign-in),
// so while the IdP cannot be reached one fetch is made at a time, the
// others waiting for its answer, and after a failure none for
// discoveryRetry: a flood of sign-ins is not a flood of requests to the
// IdP, each held up to the client's timeout.
func (a *auth) oidcProvider(ctx context.Context) (*oidc.Provider, error) {
	a.mu.Lock()
	p := a.provider
	a.mu.Unlock()
	if p != nil {
		return p, nil
	}
	a.discovering.Lock()
	defer a.discovering.Unlock()
	a.mu.Lock()
	p, lastErr := a.provider, a.lastErr
	a.mu.Unlock()
	if p != nil {
		return p, nil
	}
	if !lastErr.IsZero() && a.c.now().Sub(lastErr) < discoveryRetry {
		return nil, errors.New("the identity provider's discovery failed moments ago")
	}
	// Not the request's context: one client going away does not fail the
	// fetch the others wait for (the HTTP client's timeout bounds it).
	p, err := oidc.NewProvider(oidc.ClientContext(context.WithoutCancel(ctx), a.c.cfg.HTTPClient), a.c.cfg.Issuer)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.lastErr = a.c.now()
		return nil, err
	}
	a.provider = p
	return p, nil
}

// baseURL is the console's URL as the browser sees it.
func (a *auth) baseURL(r *http.Request) string {
	if a.c.cfg.PublicURL != "" {
		return a.c.cfg.PublicURL
	}
	scheme := "http"
	if r.TLS != nil {
		scheme = "https"
	}
	return scheme + "://" + r.Host
}

func (a *auth) oauth(p *oidc.Provider, redirect string) *oauth2.Config {
	return &oauth2.Config{ClientID: a.c.cfg.ClientID, ClientSecret: a.c.cfg.ClientSecret, Endpoint: p.Endpoint(),
		RedirectURL: redirect, Scopes: a.c.cfg.Scopes}
}

// safeNext keeps a post-sign-in destination on this site: a path, not
// "//host" or a scheme. It returns the path cleaned as http.Redirect would
// clean it, and refuses a backslash anywhere (browsers read "/\\host" as
// "//host", and "/x/../\\host" cleans to it) and control characters.
func safeNext(next string) string {
	const home = "/sessions"
	if next == "" || !strings.HasPrefix(next, "/") || strings.ContainsRune(next, '\\') ||
		strings.IndexFunc(next, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0 {
		return home
	}
	u, err := url.Parse(next)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" ||
		!strings.HasPrefix(u.Path, "/") || strings.ContainsRune(u.Path, '\\') {
		return home
	}
	p := path.Clean(u.EscapedPath())
	if strings.HasPrefix(p, "//") {
		return home
	}
	if u.RawQuery != "" {
		p += "?" + u.RawQuery
	}
	return p
}

// login starts a sign-in at the IdP.
func (a *auth) login(w http.ResponseWriter, r *http.Request) {
	p, err := a.oidcProvider(r.Context())
	if err != nil {
		a.c.log.Error("console: OIDC discovery", "issuer", a.c.cfg.Issuer, "err", err)
		a.c.fail(w, r, nil, http.StatusBadGateway, "Sign-in unavailable", "The identity provider cannot be reached. Try again later.")
		return
	}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	redirect := a.baseURL(r) + PathCallback
	next := safeNext(r.URL.Query().Get("next"))
	if len(next) > maxNext {
		next = "/sessions"
	}
	pl := pendingLogin{State: state, Nonce: nonce, Verifier: verifier, Next: next, Redirect: redirect, Expires: a.c.now().Add(loginTTL).Unix()}
	a.setCookie(w, cookieLogin, a.sealLogin(pl), loginTTL)
	http.Redirect(w, r, a.oauth(p, redirect).AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier)), http.StatusSeeOther)
}

// callback completes a sign-in: the state must be the one this browser
// started, the code is exchanged with the verifier, and the ID token must
// carry the nonce.
func (a *auth) callback(w http.ResponseWriter, r *http.Request) {
	q := r.URL.Query()
	state := q.Get("state")
	ck, err := r.Cookie(a.cookieName(cookieLogin))
	a.clearCookie(w, cookieLogin)
	var pl pendingLogin
	ok := err == nil
	if ok {
		pl, ok = a.openLogin(ck.Value)
	}
	if !ok || state == "" || subtle.ConstantTimeCompare([]byte(pl.State), []byte(state)) != 1 {
		a.c.fail(w, r, nil, http.StatusBadRequest, "Sign-in failed", "This sign-in was not started from this browser, or it expired. Sign in again.")
		return
	}
	if a.c.now().Unix() > pl.Expires {
		a.c.fail(w, r, nil, http.StatusBadRequest, "Sign-in failed", "This sign-in expired. Sign in again.")
		return
	}
	if e := q.Get("error"); e != "" {
		a.c.fail(w, r, nil, http.StatusForbidden, "Sign-in refused", "The identity provider said: %s", shorten(e+" "+q.Get("error_description"), 200))
		return
	}
	p, err := a.oidcProvider(r.Context())
	if err != nil {
		a.c.fail(w, r, nil, http.StatusBadGateway, "Sign-in unavailable", "The identity provider cannot be reached.")
		return
	}
	ctx := oidc.ClientContext(r.Context(), a.c.cfg.HTTPClient)
	tok, err := a.oauth(p, pl.Redirect).Exchange(ctx, q.Get("code"), oauth2.VerifierOption(pl.Verifier))
	if err != nil {
		a.c.log.Warn("console: code exchange", "err", err)
		a.c.fail(w, r, nil, http.StatusForbidden, "Sign-in failed", "The identity provider refused the sign-in.")
		return
	}
	raw, _ := tok.Extra("id_token").(string)
	id, iat, exp, err := a.c.cfg.Verifier.VerifyLogin(r.Context(), raw, a.c.cfg.ClientID, pl.Nonce)
	if err != nil {
		a.c.cfg.Store.Audit(recorder.AuditEvent{Type: "console.signin", Outcome: "refused", Reason: err.Error(),
			Fields: map[string]string{"client_addr": r.RemoteAddr}})
		a.c.fail(w, r, nil, http.StatusForbidden, "Sign-in refused", "%v", err)
		return
	}
	// The session lasts no longer than a user certificate, and no longer
	// than the ID token it stands on.
	expires := a.c.now().Add(a.c.cfg.SessionTTL)
	if !exp.IsZero() && exp.Before(expires) {
		expires = exp
	}
	if _, err := a.c.cfg.Store.Audit(recorder.AuditEvent{Type: "console.signin", User: id.User, Issuer: id.Issuer, Subject: id.Subject,
		Outcome: "allowed", Fields: map[string]string{"client_addr": r.RemoteAddr}}); err != nil {
		a.c.fail(w, r, nil, http.StatusServiceUnavailable, "Sign-in refused", "The audit log cannot be written.")
		return
	}
	token := randomToken()
	a.mu.Lock()
	now := a.c.now()
	// A sign-in stands on its ID token: if its user's credentials were
	// revoked after the token was issued and before it came back here,
	// the sign-in is revoked with them (alive).
	signedIn := now
	if !iat.IsZero() && iat.Before(now) {
		signedIn = iat
	}
	for k, s := range a.sessions {
		if !now.Before(s.expires) {
			delete(a.sessions, k)
		}
	}
	var mine []*websession
	for _, s := range a.sessions {
		if s.identity.Issuer == id.Issuer && s.identity.Subject == id.Subject {
			mine = append(mine, s)
		}
	}
	if len(mine) >= maxSessionsPerIdentity {
		slices.SortFunc(mine, func(x, y *websession) int { return x.created.Compare(y.created) })
		for _, s := range mine[:len(mine)-maxSessionsPerIdentity+1] {
			delete(a.sessions, s.key)
		}
	}
	if len(a.sessions) >= maxSessions {
		a.mu.Unlock()
		a.c.fail(w, r, nil, http.StatusServiceUnavailable, "Sign-in refused", "Too many console sessions.")
		return
	}
	k := sessionKey(token)
	a.sessions[k] = &websession{key: k, identity: id, csrf: randomToken(), signedIn: signedIn, created: now, expires: expires}
	a.mu.Unlock()
	a.setCookie(w, cookieSession, token, expires.Sub(now))
	http.Redirect(w, r, pl.Next, http.StatusSeeOther)
}

// logout ends the session.
func (a *auth) logout(w http.ResponseWriter, r *http.Request, s *websession) {
	a.mu.Lock()
	for k, v := range a.sessions {
		if v == s {
			delete(a.sessions, k)
		}
	}
	a.mu.Unlock()
	a.clearCookie(w, cookieSession)
	http.Redirect(w, r, "/", http.StatusSeeOther)
}
