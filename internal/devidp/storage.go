package devidp

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	jose "github.com/go-jose/go-jose/v4"
	"github.com/zitadel/oidc/v3/pkg/oidc"
	"github.com/zitadel/oidc/v3/pkg/op"
)

// storage is the in-memory op.Storage behind the provider. The users, clients and
// key are fixed at New; the mutable state is guarded by mu. Everything handed to
// zitadel is a copy, so zitadel never reads state a page handler is changing.
type storage struct {
	issuer          string
	now             func() time.Time
	idTokenLifetime time.Duration
	users           []User // in Config order, for the pages
	usersBySub      map[string]*User
	clients         map[string]*client
	key             signingKey

	mu          sync.Mutex
	logins      map[string]*authRequest // by ID
	codes       map[string]string       // authorization code -> login request ID
	tokens      map[string]accessToken  // by token ID
	devices     map[string]*deviceEntry // by device code
	deviceUsers map[string]string       // normalized user code -> device code
}

var (
	_ op.Storage                    = (*storage)(nil)
	_ op.CanSetUserinfoFromRequest  = (*storage)(nil)
	_ op.DeviceAuthorizationStorage = (*storage)(nil)
)

type accessToken struct {
	subject, clientID string
	scopes            []string
	expires           time.Time
}

type deviceEntry struct {
	clientID string
	scopes   []string
	expires  time.Time // set by zitadel from the wall clock
	userCode string
	subject  string
	authTime time.Time
	done     bool
	denied   bool
}

func newStorage(cfg Config, issuer string, key *rsa.PrivateKey, kid string) (*storage, error) {
	s := &storage{
		issuer:          issuer,
		now:             cfg.Now,
		idTokenLifetime: cfg.IDTokenLifetime,
		usersBySub:      make(map[string]*User, len(cfg.Users)),
		clients:         make(map[string]*client, len(cfg.Clients)),
		key:             signingKey{id: kid, key: key},
		logins:          make(map[string]*authRequest),
		codes:           make(map[string]string),
		tokens:          make(map[string]accessToken),
		devices:         make(map[string]*deviceEntry),
		deviceUsers:     make(map[string]string),
	}
	for _, u := range cfg.Users {
		u.Groups = slices.Clone(u.Groups)
		claims, err := normalizeClaims(u.Claims)
		if err != nil {
			return nil, fmt.Errorf("devidp: %w: user %q: claims: %v", ErrInvalidConfig, u.Subject, err)
		}
		u.Claims = claims
		if u.EmailVerified != nil {
			v := *u.EmailVerified
			u.EmailVerified = &v
		}
		s.users = append(s.users, u)
	}
	for i := range s.users {
		s.usersBySub[s.users[i].Subject] = &s.users[i]
	}
	for _, c := range cfg.Clients {
		s.clients[c.ID] = &client{
			id:           c.ID,
			secret:       c.Secret,
			native:       c.Native && c.Secret != "",
			redirectURIs: slices.Clone(c.RedirectURIs),
			device:       c.Device,
			lifetime:     cfg.IDTokenLifetime,
			loginURL:     issuer + pathLogin + "?authRequestID=",
		}
	}
	return s, nil
}

// newID returns 128 random bits, URL-safe.
func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return base64.RawURLEncoding.EncodeToString(b[:])
}

// purgeLocked drops expired login requests, device authorizations and tokens.
func (s *storage) purgeLocked() {
	now, wall := s.now(), time.Now()
	for id, r := range s.logins {
		if now.Sub(r.created) > loginRequestTTL {
			s.deleteLoginLocked(id)
		}
	}
	for code, d := range s.devices {
		if wall.After(d.expires) {
			delete(s.devices, code)
			delete(s.deviceUsers, normalizeUserCode(d.userCode))
		}
	}
	for id, t := range s.tokens {
		if now.After(t.expires) {
			delete(s.tokens, id)
		}
	}
}

func (s *storage) deleteLoginLocked(id string) {
	if r, ok := s.logins[id]; ok {
		delete(s.codes, r.code)
		delete(s.logins, id)
	}
}

// errFull is returned when maxPending entries are waiting. (A new value each time:
// zitadel sets fields on the errors it is handed.)
func errFull() error {
	return oidc.ErrServerError().WithDescription("too many pending requests; try again later")
}

// --- authorization code flow ---

// CreateAuthRequest stores a validated authorization request. Public clients must
// use PKCE with S256, and a code challenge, when sent, must use S256.
func (s *storage) CreateAuthRequest(ctx context.Context, req *oidc.AuthRequest, _ string) (op.AuthRequest, error) {
	c, ok := s.clients[req.ClientID]
	if !ok {
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	if slices.Contains(req.Prompt, oidc.PromptNone) {
		return nil, oidc.ErrLoginRequired().WithDescription("the development provider keeps no sessions: prompt=none cannot succeed")
	}
	if req.CodeChallenge == "" && c.public() {
		return nil, oidc.ErrInvalidRequest().WithDescription("PKCE with code_challenge_method S256 is required for public clients")
	}
	if req.CodeChallenge != "" && req.CodeChallengeMethod != oidc.CodeChallengeMethodS256 {
		return nil, oidc.ErrInvalidRequest().WithDescription("code_challenge_method must be S256")
	}
	r := &authRequest{
		id:           newID(),
		created:      s.now(),
		clientID:     req.ClientID,
		redirectURI:  req.RedirectURI,
		state:        req.State,
		nonce:        req.Nonce,
		scopes:       slices.Clone([]string(req.Scopes)),
		responseType: req.ResponseType,
		responseMode: req.ResponseMode,
	}
	if req.CodeChallenge != "" {
		r.challenge = &oidc.CodeChallenge{Challenge: req.CodeChallenge, Method: req.CodeChallengeMethod}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purgeLocked()
	if len(s.logins) >= maxPending {
		return nil, errFull()
	}
	s.logins[r.id] = r
	return r.clone(), nil
}

func (s *storage) AuthRequestByID(_ context.Context, id string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.logins[id]
	if !ok {
		return nil, fmt.Errorf("devidp: login request: %w", ErrUnknownLoginRequest)
	}
	return r.clone(), nil
}

func (s *storage) AuthRequestByCode(_ context.Context, code string) (op.AuthRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.logins[s.codes[code]]
	if !ok || !r.done {
		return nil, errors.New("devidp: authorization code unknown, expired or used")
	}
	return r.clone(), nil
}

func (s *storage) SaveAuthCode(_ context.Context, id, code string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	r, ok := s.logins[id]
	if !ok {
		return fmt.Errorf("devidp: save code: %w", ErrUnknownLoginRequest)
	}
	delete(s.codes, r.code)
	r.code = code
	s.codes[code] = id
	return nil
}

// DeleteAuthRequest is called once the code was exchanged, which makes codes single-use.
func (s *storage) DeleteAuthRequest(_ context.Context, id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.deleteLoginLocked(id)
	return nil
}

// pendingLogin returns a copy of a login request that still waits for a user.
func (s *storage) pendingLogin(id string) (*authRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purgeLocked()
	r, ok := s.logins[id]
	if !ok || r.done {
		return nil, ErrUnknownLoginRequest
	}
	return r.clone(), nil
}

// completeLogin marks a pending login request as done by subject.
func (s *storage) completeLogin(id, subject string) (*authRequest, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purgeLocked()
	r, ok := s.logins[id]
	if !ok || r.done {
		return nil, ErrUnknownLoginRequest
	}
	if _, ok := s.usersBySub[subject]; !ok {
		return nil, ErrUnknownUser
	}
	r.subject, r.authTime, r.done = subject, s.now(), true
	return r.clone(), nil
}

// --- tokens ---

func clientIDOf(req op.TokenRequest) string {
	if c, ok := req.(interface{ GetClientID() string }); ok {
		return c.GetClientID()
	}
	return ""
}

func (s *storage) CreateAccessToken(_ context.Context, req op.TokenRequest) (string, time.Time, error) {
	t := accessToken{
		subject:  req.GetSubject(),
		clientID: clientIDOf(req),
		scopes:   slices.Clone(req.GetScopes()),
		expires:  s.now().Add(s.idTokenLifetime),
	}
	id := newID()
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purgeLocked()
	if len(s.tokens) >= maxPending {
		return "", time.Time{}, errFull()
	}
	s.tokens[id] = t
	return id, t.expires, nil
}

var errNoRefresh = errors.New("devidp: refresh tokens are not supported")

func (s *storage) CreateAccessAndRefreshTokens(context.Context, op.TokenRequest, string) (string, string, time.Time, error) {
	return "", "", time.Time{}, errNoRefresh
}

func (s *storage) TokenRequestByRefreshToken(context.Context, string) (op.RefreshTokenRequest, error) {
	return nil, errNoRefresh
}

func (s *storage) GetRefreshTokenInfo(context.Context, string, string) (string, string, error) {
	return "", "", op.ErrInvalidRefreshToken
}

func (s *storage) TerminateSession(_ context.Context, userID, clientID string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id, t := range s.tokens {
		if t.subject == userID && t.clientID == clientID {
			delete(s.tokens, id)
		}
	}
	return nil
}

func (s *storage) RevokeToken(_ context.Context, tokenOrID, _, clientID string) *oidc.Error {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[tokenOrID]
	if !ok {
		return nil // unknown tokens are as good as revoked (RFC 7009 §2.2)
	}
	if t.clientID != clientID {
		return oidc.ErrInvalidClient().WithDescription("token was not issued to this client")
	}
	delete(s.tokens, tokenOrID)
	return nil
}

// token returns a live access token.
func (s *storage) token(id string) (accessToken, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	t, ok := s.tokens[id]
	if !ok || s.now().After(t.expires) {
		return accessToken{}, errors.New("devidp: access token unknown or expired")
	}
	return t, nil
}

// --- keys ---

type signingKey struct {
	id  string
	key *rsa.PrivateKey
}

func (k signingKey) SignatureAlgorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k signingKey) Key() any                                    { return k.key }
func (k signingKey) ID() string                                  { return k.id }

type publicKey struct{ signingKey }

func (k publicKey) Algorithm() jose.SignatureAlgorithm { return jose.RS256 }
func (k publicKey) Use() string                        { return "sig" }
func (k publicKey) Key() any                           { return &k.key.PublicKey }

func (s *storage) SigningKey(context.Context) (op.SigningKey, error) { return s.key, nil }

func (s *storage) SignatureAlgorithms(context.Context) ([]jose.SignatureAlgorithm, error) {
	return []jose.SignatureAlgorithm{jose.RS256}, nil
}

func (s *storage) KeySet(context.Context) ([]op.Key, error) {
	return []op.Key{publicKey{s.key}}, nil
}

// --- clients ---

func (s *storage) GetClientByClientID(_ context.Context, id string) (op.Client, error) {
	c, ok := s.clients[id]
	if !ok {
		// An OAuth error, not a plain one: zitadel's device endpoint passes it on
		// as is, and would answer a plain error with 500.
		return nil, oidc.ErrInvalidClient().WithDescription("unknown client")
	}
	return c, nil
}

// AuthorizeClientIDSecret authenticates a confidential client. Public clients have no
// secret, so any attempt to authenticate one with a secret fails.
func (s *storage) AuthorizeClientIDSecret(_ context.Context, id, secret string) error {
	c, ok := s.clients[id]
	if !ok || c.public() || subtle.ConstantTimeCompare([]byte(secret), []byte(c.secret)) != 1 {
		return errors.New("devidp: client authentication failed")
	}
	return nil
}

// --- claims ---

// SetUserinfoFromScopes is deprecated in zitadel; SetUserinfoFromRequest does the work.
func (s *storage) SetUserinfoFromScopes(context.Context, *oidc.UserInfo, string, string, []string) error {
	return nil
}

// SetUserinfoFromRequest puts the user's claims into the ID token, whatever the
// scopes: a development provider should hand the relying party everything it may
// want to map.
func (s *storage) SetUserinfoFromRequest(_ context.Context, info *oidc.UserInfo, req op.IDTokenRequest, _ []string) error {
	return s.setUserinfo(info, req.GetSubject())
}

func (s *storage) SetUserinfoFromToken(_ context.Context, info *oidc.UserInfo, tokenID, _, _ string) error {
	t, err := s.token(tokenID)
	if err != nil {
		return err
	}
	return s.setUserinfo(info, t.subject)
}

func (s *storage) SetIntrospectionFromToken(_ context.Context, resp *oidc.IntrospectionResponse, tokenID, _, clientID string) error {
	t, err := s.token(tokenID)
	if err != nil {
		return err
	}
	if t.clientID != clientID {
		return errors.New("devidp: token was not issued to this client")
	}
	info := new(oidc.UserInfo)
	if err := s.setUserinfo(info, t.subject); err != nil {
		return err
	}
	resp.SetUserInfo(info)
	resp.Scope = t.scopes
	resp.ClientID = t.clientID
	resp.Expiration = oidc.FromTime(t.expires)
	return nil
}

// setUserinfo fills info with the claims of subject. Everything but sub goes into
// the Claims map: zitadel's typed email_verified field is omitempty and would drop
// an explicit false.
func (s *storage) setUserinfo(info *oidc.UserInfo, subject string) error {
	u, ok := s.usersBySub[subject]
	if !ok {
		return fmt.Errorf("devidp: %w", ErrUnknownUser)
	}
	info.Subject = u.Subject
	for k, v := range userClaims(u) {
		info.AppendClaims(k, v)
	}
	return nil
}

// userClaims returns the claims of u other than sub.
func userClaims(u *User) map[string]any {
	m := make(map[string]any, len(u.Claims)+3)
	for k, v := range u.Claims {
		m[k] = deepCopy(v)
	}
	if u.Email != "" {
		m["email"] = u.Email
	}
	if u.EmailVerified != nil {
		m["email_verified"] = *u.EmailVerified
	}
	if u.Groups != nil {
		m["groups"] = slices.Clone(u.Groups)
	}
	return m
}

// normalizeClaims returns claims as they read back from JSON (numbers as float64,
// objects as map[string]any, arrays as []any), sharing nothing with the caller.
func normalizeClaims(claims map[string]any) (map[string]any, error) {
	if claims == nil {
		return nil, nil
	}
	b, err := json.Marshal(claims)
	if err != nil {
		return nil, err
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		return nil, err
	}
	return out, nil
}

// deepCopy copies a JSON value as produced by normalizeClaims.
func deepCopy(v any) any {
	switch v := v.(type) {
	case map[string]any:
		m := make(map[string]any, len(v))
		for k, e := range v {
			m[k] = deepCopy(e)
		}
		return m
	case []any:
		s := make([]any, len(v))
		for i, e := range v {
			s[i] = deepCopy(e)
		}
		return s
	}
	return v
}

func (s *storage) GetPrivateClaimsFromScopes(context.Context, string, string, []string) (map[string]any, error) {
	return nil, nil
}

func (s *storage) GetKeyByIDAndClientID(context.Context, string, string) (*jose.JSONWebKey, error) {
	return nil, errors.New("devidp: JWT client authentication is not supported")
}

func (s *storage) ValidateJWTProfileScopes(context.Context, string, []string) ([]string, error) {
	return nil, errors.New("devidp: the JWT profile grant is not supported")
}

func (s *storage) Health(context.Context) error { return nil }

// --- device authorization ---

// normalizeUserCode maps what a person types to the stored form: letters upper-cased,
// dashes and spaces dropped. Anything else stays and so fails to match; overlong or
// invalid UTF-8 input maps to "", which matches nothing.
func normalizeUserCode(code string) string {
	if len(code) > 64 || !utf8.ValidString(code) {
		return ""
	}
	var b strings.Builder
	for _, r := range code {
		switch {
		case r == '-' || r == ' ' || r == '\t':
		case r >= 'a' && r <= 'z':
			b.WriteRune(r - 'a' + 'A')
		default:
			b.WriteRune(r)
		}
	}
	return b.String()
}

// allowedScopes keeps the scopes zitadel keeps in an authorization request (it does
// not filter those of a device authorization request), without duplicates.
func allowedScopes(c *client, scopes []string) []string {
	var out []string
	for _, sc := range scopes {
		switch sc {
		case oidc.ScopeOpenID, oidc.ScopeProfile, oidc.ScopeEmail, oidc.ScopePhone, oidc.ScopeAddress, oidc.ScopeOfflineAccess:
		default:
			if !c.IsScopeAllowed(sc) {
				continue
			}
		}
		if !slices.Contains(out, sc) {
			out = append(out, sc)
		}
	}
	return out
}

func (s *storage) StoreDeviceAuthorization(_ context.Context, clientID, deviceCode, userCode string, expires time.Time, scopes []string) error {
	c, ok := s.clients[clientID]
	if !ok || !c.device {
		return errors.New("devidp: client may not use the device grant")
	}
	norm := normalizeUserCode(userCode)
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purgeLocked()
	if _, dup := s.deviceUsers[norm]; dup {
		return op.ErrDuplicateUserCode
	}
	if len(s.devices) >= maxPending {
		return errFull()
	}
	s.devices[deviceCode] = &deviceEntry{
		clientID: clientID,
		scopes:   allowedScopes(c, scopes),
		expires:  expires,
		userCode: userCode,
	}
	s.deviceUsers[norm] = deviceCode
	return nil
}

// GetDeviceAuthorizatonState reports the state of a device authorization. A completed
// one is removed as it is reported, so its device code yields tokens only once.
func (s *storage) GetDeviceAuthorizatonState(ctx context.Context, clientID, deviceCode string) (*op.DeviceAuthorizationState, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	d, ok := s.devices[deviceCode]
	if !ok || d.clientID != clientID {
		return nil, errors.New("devidp: device code unknown, expired or used")
	}
	st := &op.DeviceAuthorizationState{
		ClientID: d.clientID,
		Scopes:   slices.Clone(d.scopes),
		Expires:  d.expires,
		Done:     d.done,
		Denied:   d.denied,
		Subject:  d.subject,
		AuthTime: d.authTime,
	}
	if d.done || d.denied {
		delete(s.devices, deviceCode)
		delete(s.deviceUsers, normalizeUserCode(d.userCode))
	}
	return st, nil
}

// pendingDevice returns the client and scopes of a device authorization waiting for
// a decision.
func (s *storage) pendingDevice(userCode string) (clientID string, scopes []string, err error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purgeLocked()
	d, ok := s.devices[s.deviceUsers[normalizeUserCode(userCode)]]
	if !ok || d.done || d.denied {
		return "", nil, ErrUnknownUserCode
	}
	return d.clientID, slices.Clone(d.scopes), nil
}

// decideDevice approves (as subject) or denies a pending device authorization.
func (s *storage) decideDevice(userCode, subject string, approve bool) (clientID string, err error) {
	if approve {
		if _, ok := s.usersBySub[subject]; !ok {
			return "", ErrUnknownUser
		}
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	s.purgeLocked()
	d, ok := s.devices[s.deviceUsers[normalizeUserCode(userCode)]]
	if !ok || d.done || d.denied {
		return "", ErrUnknownUserCode
	}
	if approve {
		d.subject, d.authTime, d.done = subject, s.now(), true
	} else {
		d.denied = true
	}
	return d.clientID, nil
}
