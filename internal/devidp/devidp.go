package devidp

import (
	"crypto/rand"
	"crypto/rsa"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/zitadel/oidc/v3/pkg/op"
)

// Sentinel errors. Errors returned by this package wrap one of them where it applies.
var (
	// ErrInvalidConfig is wrapped by every error New and Start return for a bad Config.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrUnknownUser means a subject is not one of Config.Users.
	ErrUnknownUser = errors.New("unknown user")
	// ErrUnknownUserCode means a device user code is unknown, expired or already used.
	ErrUnknownUserCode = errors.New("unknown, expired or already used user code")
	// ErrUnknownLoginRequest means a login request is unknown, expired or already completed.
	ErrUnknownLoginRequest = errors.New("unknown, expired or already completed login request")
	// ErrRefused means the provider refused a request; the message says what it answered.
	ErrRefused = errors.New("refused by the provider")
	// ErrClosed means the provider was closed.
	ErrClosed = errors.New("provider closed")
)

// Defaults and limits.
const (
	defaultIDTokenLifetime = 5 * time.Minute
	// loginRequestTTL is how long an authorization request waits for the login page.
	loginRequestTTL = 10 * time.Minute
	// deviceCodeLifetime is how long a device authorization waits for approval.
	deviceCodeLifetime = 5 * time.Minute
	// devicePollInterval is the poll interval announced to device clients.
	devicePollInterval = time.Second
	// maxPending bounds the pending login requests, device authorizations and access
	// tokens kept in memory, so a flood of unauthenticated requests cannot grow it
	// without bound.
	maxPending = 4096
	// maxNameLen bounds subjects and client IDs.
	maxNameLen = 256
	// maxRequestBytes bounds request bodies to zitadel's endpoints.
	maxRequestBytes = 64 << 10
)

// Paths of the pages this package serves next to zitadel's endpoints.
const (
	pathLogin  = "/login"
	pathDevice = "/device"
)

// User is a person who can log in at the provider.
type User struct {
	Subject       string         // `sub`; required, unique
	Email         string         // `email` claim when non-empty
	EmailVerified *bool          // `email_verified`; nil = claim absent
	Name          string         // display name on the login page (not a claim)
	Groups        []string       // emitted as the "groups" claim when non-nil
	Claims        map[string]any // extra claims added to the ID token verbatim; must not name a claim the provider sets
}

// Client is a registered OAuth client (relying party).
type Client struct {
	ID     string // client_id; required, unique
	Secret string // empty = public client (auth method none, PKCE S256 required)
	// Native marks a client with a Secret as a native app all the same, as
	// Google's "Desktop app" clients are: the secret is published with the
	// app (not confidential) yet required at the token endpoint, and
	// loopback redirect URIs match on any port.
	Native bool
	// RedirectURIs are the registered redirect URIs, matched exactly, except that for
	// public clients an http loopback URI matches on any port (RFC 8252 §7.3).
	RedirectURIs []string
	Device       bool // allow the device authorization grant
}

// Config configures a Provider. It is checked once, in New.
type Config struct {
	// Issuer is the issuer URL, e.g. "http://127.0.0.1:34567"; required. http is allowed
	// (development only). It must have no path, query or fragment. Start sets it.
	Issuer string
	// Users are the people listed on the login pages, in this order.
	Users []User
	// Clients are the registered clients.
	Clients []Client
	// IDTokenLifetime is the lifetime of issued ID tokens; zero means 5m.
	IDTokenLifetime time.Duration
	// Now is the clock for the times this package sets: auth_time, access token expiry,
	// login request expiry and IDTokenClaims. zitadel stamps iat/exp of the ID tokens it
	// issues with the wall clock. nil means time.Now.
	Now func() time.Time
	// Logger receives one line per login and device decision; nil discards.
	Logger *slog.Logger
}

// Provider is a running development OpenID provider. Its methods are safe for
// concurrent use.
type Provider struct {
	issuer string
	now    func() time.Time
	log    *slog.Logger
	store  *storage
	op     *op.Provider
	mux    *http.ServeMux
	pages  *pages

	// browser drives the pages for CompleteBrowserLogin and ApproveDevice.
	browser *http.Client

	srv       *http.Server // set by Start
	served    chan struct{}
	closeOnce sync.Once
	closed    chan struct{}
	closeErr  error
}

// New checks cfg and builds a Provider with a fresh RS256 signing key. Serve its
// Handler at the issuer's root, or use Start.
func New(cfg Config) (*Provider, error) {
	issuer, err := checkConfig(&cfg)
	if err != nil {
		return nil, err
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.IDTokenLifetime == 0 {
		cfg.IDTokenLifetime = defaultIDTokenLifetime
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return nil, fmt.Errorf("devidp: generate signing key: %w", err)
	}
	var kid [8]byte
	rand.Read(kid[:])
	var cryptoKey [32]byte
	rand.Read(cryptoKey[:])

	p := &Provider{
		issuer: issuer,
		now:    cfg.Now,
		log:    cfg.Logger,
		closed: make(chan struct{}),
	}
	p.store, err = newStorage(cfg, issuer, key, hex.EncodeToString(kid[:]))
	if err != nil {
		return nil, err
	}

	opts := []op.Option{}
	if strings.HasPrefix(issuer, "http://") {
		opts = append(opts, op.WithAllowInsecure())
	}
	p.op, err = op.NewProvider(&op.Config{
		CryptoKey:      cryptoKey,
		CryptoKeyId:    "devidp",
		CodeMethodS256: true,
		AuthMethodPost: true,
		DeviceAuthorization: op.DeviceAuthorizationConfig{
			Lifetime:     deviceCodeLifetime,
			PollInterval: devicePollInterval,
			UserFormPath: pathDevice,
			UserCode:     op.UserCodeBase20,
		},
	}, p.store, op.StaticIssuer(issuer), opts...)
	if err != nil {
		return nil, fmt.Errorf("devidp: %w: issuer: %w", ErrInvalidConfig, err)
	}
	p.pages = &pages{p: p, callback: op.AuthCallbackURL(p.op)}
	p.mux = http.NewServeMux()
	p.mux.HandleFunc("GET /{$}", p.pages.index)
	p.mux.HandleFunc("GET "+pathLogin, p.pages.loginForm)
	p.mux.HandleFunc("POST "+pathLogin, p.pages.loginSubmit)
	p.mux.HandleFunc("GET "+pathDevice, p.pages.deviceForm)
	p.mux.HandleFunc("POST "+pathDevice, p.pages.deviceSubmit)
	// zitadel parses forms with net/http's 10 MB default; no OIDC request needs more than a few KB.
	p.mux.Handle("/", http.MaxBytesHandler(p.op, maxRequestBytes))

	p.browser = &http.Client{
		// Never proxy: the provider is local and the pages carry login secrets.
		Transport: &http.Transport{Proxy: nil, MaxIdleConnsPerHost: 4, IdleConnTimeout: 30 * time.Second},
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse
		},
	}
	return p, nil
}

// Start listens on 127.0.0.1:0, sets cfg.Issuer to that address (any value given is
// replaced), and serves the provider until Close.
func Start(cfg Config) (*Provider, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("devidp: listen: %w", err)
	}
	cfg.Issuer = "http://" + ln.Addr().String()
	p, err := New(cfg)
	if err != nil {
		ln.Close()
		return nil, err
	}
	p.srv = &http.Server{
		Handler:           p.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(p.log.Handler(), slog.LevelDebug),
	}
	p.served = make(chan struct{})
	go func() {
		defer close(p.served)
		p.srv.Serve(ln) // returns http.ErrServerClosed after Close
	}()
	return p, nil
}

// Handler returns the provider's HTTP handler: zitadel's OIDC endpoints (discovery,
// JWKS, authorize, token, userinfo, device authorization) and the login and device
// pages. Mount it at the issuer's root.
func (p *Provider) Handler() http.Handler { return p.mux }

// Issuer returns the issuer URL.
func (p *Provider) Issuer() string { return p.issuer }

// Close stops the server started by Start, if any, and releases idle connections.
// It is safe to call more than once.
func (p *Provider) Close() error {
	p.closeOnce.Do(func() {
		close(p.closed)
		if p.srv != nil {
			if err := p.srv.Close(); err != nil {
				p.closeErr = fmt.Errorf("devidp: close: %w", err)
			}
			<-p.served
		}
		p.browser.CloseIdleConnections()
	})
	return p.closeErr
}

// reservedClaims are the claims the provider sets itself; User.Claims must not name them.
var reservedClaims = map[string]bool{
	"iss": true, "sub": true, "aud": true, "exp": true, "iat": true, "nbf": true,
	"auth_time": true, "nonce": true, "acr": true, "amr": true, "azp": true,
	"client_id": true, "jti": true, "at_hash": true, "c_hash": true, "sid": true,
	"act": true, "email": true, "email_verified": true, "groups": true,
}

// checkConfig validates cfg and returns the issuer.
func checkConfig(cfg *Config) (string, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("devidp: %w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if cfg.Issuer == "" {
		return "", bad("issuer is required")
	}
	u, err := url.Parse(cfg.Issuer)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err // without the URL, which might carry a password
		}
		return "", bad("issuer: %v", err)
	}
	if u.User != nil {
		return "", bad("issuer must not carry user information")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "", bad("issuer %q: scheme must be http or https", cfg.Issuer)
	}
	if u.Host == "" {
		return "", bad("issuer %q: want scheme://host[:port]", cfg.Issuer)
	}
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.ForceQuery || strings.HasSuffix(cfg.Issuer, "#") {
		return "", bad("issuer %q: must have no path, query or fragment", cfg.Issuer)
	}
	if cfg.IDTokenLifetime < 0 {
		return "", bad("negative IDTokenLifetime %v", cfg.IDTokenLifetime)
	}
	subjects := make(map[string]bool, len(cfg.Users))
	for i, usr := range cfg.Users {
		if err := checkName(usr.Subject); err != nil {
			return "", bad("user %d: subject: %v", i, err)
		}
		if subjects[usr.Subject] {
			return "", bad("user %d: duplicate subject %q", i, usr.Subject)
		}
		subjects[usr.Subject] = true
		for k, v := range usr.Claims {
			if k == "" || reservedClaims[k] {
				return "", bad("user %q: claim %q is set by the provider", usr.Subject, k)
			}
			if _, err := json.Marshal(v); err != nil {
				return "", bad("user %q: claim %q: %v", usr.Subject, k, err)
			}
		}
	}
	ids := make(map[string]bool, len(cfg.Clients))
	for i, c := range cfg.Clients {
		if err := checkName(c.ID); err != nil {
			return "", bad("client %d: id: %v", i, err)
		}
		if ids[c.ID] {
			return "", bad("client %d: duplicate id %q", i, c.ID)
		}
		ids[c.ID] = true
		if len(c.RedirectURIs) == 0 && !c.Device {
			return "", bad("client %q: no redirect URI and no device grant: it could never log in", c.ID)
		}
		for _, ru := range c.RedirectURIs {
			if err := checkRedirectURI(ru, c.Secret == ""); err != nil {
				return "", bad("client %q: redirect URI %q: %v", c.ID, ru, err)
			}
		}
	}
	return cfg.Issuer, nil
}

// checkName checks a subject or client ID: non-empty, bounded, valid UTF-8, printable.
func checkName(s string) error {
	switch {
	case s == "":
		return errors.New("required")
	case len(s) > maxNameLen:
		return fmt.Errorf("longer than %d bytes", maxNameLen)
	case !utf8.ValidString(s):
		return errors.New("not valid UTF-8")
	case strings.ContainsFunc(s, func(r rune) bool { return !unicode.IsPrint(r) }):
		return fmt.Errorf("%q has a non-printable character", s)
	}
	return nil
}

// checkRedirectURI refuses redirect URIs zitadel would refuse at every request.
func checkRedirectURI(raw string, public bool) error {
	u, err := url.Parse(raw)
	if err != nil {
		var ue *url.Error
		if errors.As(err, &ue) {
			return ue.Err // the caller names the URI
		}
		return err
	}
	if u.Scheme == "" || !u.IsAbs() {
		return errors.New("not an absolute URI")
	}
	if u.Fragment != "" {
		return errors.New("has a fragment")
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		if !public {
			return errors.New("a confidential client needs an http or https URI")
		}
		return nil // a native app's custom scheme
	}
	if u.Host == "" {
		return errors.New("no host")
	}
	if public && u.Scheme == "http" && !isLoopbackHost(u.Hostname()) {
		return errors.New("a public client's http URI must be loopback (127.0.0.1, [::1] or localhost)")
	}
	return nil
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}
