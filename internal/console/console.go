package console

import (
	"context"
	"embed"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/safetext"
	"github.com/bastionhq/bastion/recorder"
	"github.com/bastionhq/bastion/recorder/asciicast"
)

// Store is what the console reads from the recorder, and the audit records
// it writes for those reads. *recorder.Store implements it.
type Store interface {
	Session(id string) (recorder.SessionInfo, error)
	Sessions(f recorder.SessionFilter) ([]recorder.SessionInfo, error)
	Export(id string, w io.Writer) error
	ExportPcap(id string, w io.Writer) error
	Events(id string, fn func(asciicast.Event) error) error
	EventsSeek(id string, from recorder.Seek, fn func(at recorder.Seek, ev asciicast.Event, data []byte) error) error
	Follow(ctx context.Context, id string, fn func(asciicast.Event) error, caughtUp func() error) error
	AuditEvents(since time.Time, fn func(recorder.AuditEvent) error) error
	Audit(ev recorder.AuditEvent) (string, error)
	// UserRevoked reports up to when everything user held was revoked
	// (bastion ca revoke --user): their sign-ins before it end.
	UserRevoked(user string) (time.Time, bool)
}

// Approvals lists and decides the pending approval requests.
// *bastion.Server implements it.
type Approvals interface {
	Requests(c bastion.Caller) []bastion.Request
	// DecideShown decides request id as the page showed it (shown:
	// bastion.Request.Shown), refusing a request changed since.
	DecideShown(c bastion.Caller, id string, approve bool, note, shown string) (bastion.Request, error)
	RequestsChanged() <-chan struct{}
}

// Config configures a Console. It is checked once, in New.
type Config struct {
	// Store holds the sessions and the audit log. Required.
	Store Store
	// Approvals holds the pending approval requests. Required.
	Approvals Approvals
	// Caller gives a signed-in identity's rights under the policy in force
	// (bastion.Server.Caller), so the console decides as the SSH admin
	// commands do. Required.
	Caller func(id ca.Identity, remoteAddr string) bastion.Caller
	// Verifier checks the ID tokens of sign-ins. Required.
	Verifier *ca.Verifier
	// Issuer is the people IdP's issuer URL (oidc.issuer). Required.
	Issuer string
	// ClientID is the OAuth client the console signs in with. Required.
	ClientID string
	// ClientSecret is that client's secret; empty for a public client.
	// PKCE is used either way.
	ClientSecret string
	// Scopes are asked for at sign-in; default openid, email, profile.
	Scopes []string
	// PublicURL is the console's base URL ("https://bastion.example.com");
	// empty means the scheme and host the request came with.
	PublicURL string
	// TLS says the listener serves HTTPS. Cookies are then Secure and
	// carry the __Host- prefix, and HSTS is sent; so they are when
	// PublicURL is https (TLS ends at a proxy in front).
	TLS bool
	// SessionTTL bounds a sign-in; it should be the user certificate
	// lifetime. Required.
	SessionTTL time.Duration
	// HTTPClient talks to the IdP (discovery, token endpoint); nil means a
	// client with a 10s timeout.
	HTTPClient *http.Client
	// Logger; nil discards.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Console serves the web console.
type Console struct {
	cfg Config
	// https: browsers reach the console over HTTPS (Config.TLS, or an
	// https PublicURL behind a proxy that ends TLS).
	https bool
	log   *slog.Logger
	now   func() time.Time
	pages map[string]*template.Template
	auth  *auth
	// inflight tracks streams (live views, approval updates) so Close can
	// end them before the store closes.
	inflight sync.WaitGroup
	done     chan struct{}
	doneOnce sync.Once
	// grants are replays a page view has audited, each for one download
	// of the recording by the same sign-in (replayGrant).
	grantsMu sync.Mutex
	grants   map[string]replayGrant
	// long counts each identity's long responses in progress (streams.go).
	// auditReads counts each identity's audit log reads in progress, and
	// auditTurns holds the console's (auditRead).
	longMu     sync.Mutex
	long       map[string]int
	auditReads map[string]int
	auditTurns chan struct{}
	// indexes of the recordings played in segments (segments.go).
	indexCache
}

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// New checks cfg and returns a Console.
func New(cfg Config) (*Console, error) {
	switch {
	case cfg.Store == nil || cfg.Approvals == nil || cfg.Caller == nil || cfg.Verifier == nil:
		return nil, errors.New("console: Config needs Store, Approvals, Caller and Verifier")
	case cfg.ClientID == "" || cfg.Issuer == "":
		return nil, errors.New("console: Config.ClientID and Config.Issuer are required")
	case cfg.SessionTTL <= 0:
		return nil, errors.New("console: Config.SessionTTL must be positive")
	}
	cfg.PublicURL = strings.TrimRight(cfg.PublicURL, "/")
	if len(cfg.Scopes) == 0 {
		cfg.Scopes = []string{"openid", "email", "profile"}
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 10 * time.Second}
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	c := &Console{cfg: cfg, log: cfg.Logger, now: cfg.Now, done: make(chan struct{}), grants: map[string]replayGrant{}, long: map[string]int{},
		auditReads: map[string]int{}, auditTurns: make(chan struct{}, maxAuditReads)}
	c.indexes = map[string]*indexEntry{}
	c.https = cfg.TLS || strings.HasPrefix(strings.ToLower(cfg.PublicURL), "https://")
	var err error
	if c.pages, err = parsePages(); err != nil {
		return nil, err
	}
	c.auth = newAuth(c)
	return c, nil
}

// Close ends the streams in progress (live views, approval updates) and
// waits for them; call it before closing the store.
func (c *Console) Close() {
	c.doneOnce.Do(func() { close(c.done) })
	c.inflight.Wait()
}

// ApprovalURL is the page of approval request id, or "" without a
// configured public URL.
func (c *Console) ApprovalURL(id string) string {
	if c.cfg.PublicURL == "" {
		return ""
	}
	return c.cfg.PublicURL + "/approvals/" + id
}

// Paths of the console. The redirect URI to register at the IdP is the
// console's URL followed by PathCallback.
const (
	PathCallback = "/auth/callback"
	pathLogin    = "/login"
	pathLogout   = "/logout"
)

// Register adds the console's routes to mux.
func (c *Console) Register(mux *http.ServeMux) {
	handle := func(pattern string, h http.HandlerFunc) { mux.Handle(pattern, c.secure(h)) }
	handle("GET /static/", c.serveStatic)
	handle("GET /{$}", c.index)
	handle("GET "+pathLogin, c.auth.login)
	handle("GET "+PathCallback, c.auth.callback)
	handle("POST "+pathLogout, c.user(c.auth.logout))
	handle("GET /sessions", c.user(c.sessionsPage))
	handle("GET /sessions/{id}", c.user(c.replayPage))
	handle("GET /sessions/{id}/pcap", c.user(c.pcapDownload))
	handle("GET /api/sessions/{id}/cast", c.api(c.castData))
	handle("GET /api/sessions/{id}/live", c.api(c.liveData))
	handle("GET /api/sessions/{id}/segments", c.api(c.segmentsIndex))
	handle("GET /api/sessions/{id}/segments/{n}", c.api(c.segmentData))
	handle("GET /approvals", c.user(c.approvalsPage))
	handle("GET /approvals/{id}", c.user(c.approvalsPage))
	handle("POST /approvals/{id}/{decision}", c.user(c.decide))
	handle("GET /api/approvals/stream", c.api(c.approvalsStream))
	handle("GET /audit", c.user(c.auditPage))
	handle("GET /audit.jsonl", c.user(c.auditDownload))
}

// contentSecurityPolicy allows the console's own scripts and styles only:
// no inline script, no eval (WebAssembly compilation excepted: the player's
// terminal emulator is WebAssembly), nothing from other origins, no
// framing.
const contentSecurityPolicy = "default-src 'none'; script-src 'self' 'wasm-unsafe-eval'; style-src 'self'; " +
	"img-src 'self' data:; font-src 'self' data:; connect-src 'self' blob:; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"

// secure adds the security headers to every response and refuses
// cross-origin state-changing requests (http.CrossOriginProtection); the
// handlers check the CSRF token besides.
func (c *Console) secure(h http.Handler) http.Handler {
	cop := http.NewCrossOriginProtection()
	if c.cfg.PublicURL != "" {
		cop.AddTrustedOrigin(c.cfg.PublicURL) // behind a proxy that rewrites Host
	}
	cop.SetDenyHandler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Error(w, "cross-origin request refused", http.StatusForbidden)
	}))
	h = cop.Handler(h)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", contentSecurityPolicy)
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "same-origin")
		hd.Set("Cross-Origin-Opener-Policy", "same-origin")
		hd.Set("Permissions-Policy", "clipboard-write=(), clipboard-read=(), camera=(), microphone=(), geolocation=()")
		if c.https {
			hd.Set("Strict-Transport-Security", "max-age=31536000")
		}
		h.ServeHTTP(w, r)
	})
}

// index sends signed-in people to their sessions and others to sign in.
func (c *Console) index(w http.ResponseWriter, r *http.Request) {
	if _, ok := c.auth.session(r); ok {
		http.Redirect(w, r, "/sessions", http.StatusSeeOther)
		return
	}
	c.render(w, r, http.StatusOK, "signin", nil, nil)
}

// page is what every page's template gets.
type page struct {
	Title  string
	Nav    string // which navigation entry is current
	User   string
	Roles  []string
	Audit  bool   // the user is an auditor
	CSRF   string // the session's CSRF token, for forms
	Data   any
	Notice string
}

func parsePages() (map[string]*template.Template, error) {
	funcs := template.FuncMap{
		"time":     func(t time.Time) string { return t.UTC().Format("2006-01-02 15:04:05Z") },
		"duration": formatDuration,
		"join":     strings.Join,
		"short":    func(s string) string { return safetext.Visible(shorten(s, 80)) },
		// visible shows attacker-controlled text (commands, statements)
		// in its own order and without hidden characters: bidirectional
		// controls, zero-width characters and controls as escapes.
		"visible": safetext.Visible,
		"list":    func(v ...string) []string { return v },
		"static":  staticURL,
	}
	base, err := template.New("base").Funcs(funcs).ParseFS(templateFS, "templates/base.html")
	if err != nil {
		return nil, fmt.Errorf("console: templates: %w", err)
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return nil, err
	}
	out := map[string]*template.Template{}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "base" {
			continue
		}
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, fmt.Errorf("console: template %s: %w", name, err)
		}
		out[name] = t
	}
	return out, nil
}

// render writes a page. s is the signed-in session, if any.
func (c *Console) render(w http.ResponseWriter, r *http.Request, status int, name string, s *websession, data any) {
	p := page{Title: name, Nav: name, Data: data}
	if s != nil {
		caller := c.cfg.Caller(s.identity, r.RemoteAddr)
		p.User, p.Roles, p.Audit, p.CSRF = s.identity.User, caller.Roles, caller.Auditor, s.csrf
	}
	t := c.pages[name]
	if t == nil {
		http.Error(w, "no such page", http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	if err := t.ExecuteTemplate(w, "base", p); err != nil {
		c.log.Error("console: render", "page", name, "err", err)
	}
}

// message is the data of the message page.
type message struct {
	Heading, Text string
	// Link, when set, is a page of this console the message offers to
	// open (LinkText), as a same-origin link.
	Link, LinkText string
}

func (c *Console) fail(w http.ResponseWriter, r *http.Request, s *websession, status int, heading, format string, args ...any) {
	c.render(w, r, status, "message", s, message{Heading: heading, Text: fmt.Sprintf(format, args...)})
}

func formatDuration(d time.Duration) string {
	switch {
	case d <= 0:
		return "–"
	case d < time.Minute:
		return d.Round(100 * time.Millisecond).String()
	default:
		return d.Round(time.Second).String()
	}
}

// shorten cuts s to n runes, marking the cut.
func shorten(s string, n int) string {
	i := 0
	for pos := range s {
		if i == n {
			return s[:pos] + "…"
		}
		i++
	}
	return s
}
