package devidp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"go.uber.org/goleak"
	"golang.org/x/oauth2"
)

func TestMain(m *testing.M) {
	// zitadel logs every refused request through slog's default logger; the tests
	// refuse many on purpose. Keep the errors only.
	slog.SetDefault(slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelError})))
	goleak.VerifyTestMain(m)
}

const (
	publicID       = "bastion-cli"
	confidentialID = "bastion-web"
	secret         = "s3cret-for-tests"
)

func ptr[T any](v T) *T { return &v }

func testUsers() []User {
	return []User{
		{Subject: "alice", Email: "alice@example.com", EmailVerified: ptr(true), Name: "Alice Developer",
			Groups: []string{"dev"}, Claims: map[string]any{"preferred_username": "alice", "dept": map[string]any{"id": 7}}},
		{Subject: "bob", Email: "bob@example.com", EmailVerified: ptr(false), Name: "Bob Approver", Groups: []string{"sre", "dba"}},
		{Subject: "carol <\"x\">&", Name: "Carol <script>alert(1)</script>"}, // no email, groups nil; markup in names
	}
}

func testClients() []Client {
	return []Client{
		{ID: publicID, RedirectURIs: []string{"http://127.0.0.1/callback"}, Device: true},
		{ID: confidentialID, Secret: secret, RedirectURIs: []string{"http://127.0.0.1:1/cb"}},
	}
}

// env is a started provider with a relying party set up against it.
type env struct {
	idp      *Provider
	ctx      context.Context // carries the test HTTP client for oauth2 and go-oidc
	rp       *oidc.Provider
	client   *http.Client
	callback string // a loopback redirect URI on a random port, served by the test
	got      chan url.Values
}

func newEnv(t testing.TB, cfg Config) *env {
	t.Helper()
	if cfg.Users == nil {
		cfg.Users = testUsers()
	}
	if cfg.Clients == nil {
		cfg.Clients = testClients()
	}
	idp, err := Start(cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() {
		if err := idp.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	tr := &http.Transport{}
	t.Cleanup(tr.CloseIdleConnections)
	e := &env{idp: idp, client: &http.Client{Transport: tr}, got: make(chan url.Values, 4)}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	e.ctx = oidc.ClientContext(ctx, e.client)
	e.rp, err = oidc.NewProvider(e.ctx, idp.Issuer())
	if err != nil {
		t.Fatalf("discovery: %v", err)
	}

	// The client's loopback listener, as `bastion login` runs it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/callback" {
			e.got <- r.URL.Query()
		}
		w.Write([]byte("ok"))
	})}
	go srv.Serve(ln)
	t.Cleanup(func() { srv.Close() })
	e.callback = "http://" + ln.Addr().String() + "/callback"
	return e
}

func (e *env) oauth2(clientID, clientSecret, redirect string) *oauth2.Config {
	return &oauth2.Config{
		ClientID:     clientID,
		ClientSecret: clientSecret,
		Endpoint:     e.rp.Endpoint(),
		RedirectURL:  redirect,
		Scopes:       []string{oidc.ScopeOpenID, "email", "groups"},
	}
}

func randomString(t testing.TB) string {
	t.Helper()
	b := make([]byte, 12)
	rand.Read(b)
	return hex.EncodeToString(b)
}

// tokenClaims is what bastion reads from an ID token.
type tokenClaims struct {
	Email             string         `json:"email"`
	EmailVerified     *bool          `json:"email_verified"`
	Groups            []string       `json:"groups"`
	PreferredUsername string         `json:"preferred_username"`
	Dept              map[string]any `json:"dept"`
	AZP               string         `json:"azp"`
}

func TestAuthCodePKCE(t *testing.T) {
	e := newEnv(t, Config{})
	tests := []struct {
		subject string
		want    tokenClaims
		absent  []string
	}{
		{"alice", tokenClaims{Email: "alice@example.com", EmailVerified: ptr(true), Groups: []string{"dev"},
			PreferredUsername: "alice", Dept: map[string]any{"id": float64(7)}, AZP: publicID}, nil},
		{"bob", tokenClaims{Email: "bob@example.com", EmailVerified: ptr(false), Groups: []string{"sre", "dba"}, AZP: publicID}, nil},
		{"carol <\"x\">&", tokenClaims{AZP: publicID}, []string{"email", "email_verified", "groups"}},
	}
	for _, tt := range tests {
		t.Run(tt.subject, func(t *testing.T) {
			conf := e.oauth2(publicID, "", e.callback)
			state, nonce, verifier := randomString(t), randomString(t), oauth2.GenerateVerifier()
			authURL := conf.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))

			redirect, err := e.idp.CompleteBrowserLogin(e.ctx, authURL, tt.subject)
			if err != nil {
				t.Fatalf("CompleteBrowserLogin: %v", err)
			}
			if got, want := redirect.Scheme+"://"+redirect.Host+redirect.Path, e.callback; got != want {
				t.Fatalf("redirect to %q, want %q", got, want)
			}
			// Deliver the redirect to the client's loopback listener, as the browser would.
			res, err := e.client.Get(redirect.String())
			if err != nil {
				t.Fatalf("deliver redirect: %v", err)
			}
			res.Body.Close()
			q := <-e.got
			if got := q.Get("state"); got != state {
				t.Fatalf("state: got %q, want %q", got, state)
			}

			tok, err := conf.Exchange(e.ctx, q.Get("code"), oauth2.VerifierOption(verifier))
			if err != nil {
				t.Fatalf("Exchange: %v", err)
			}
			raw, _ := tok.Extra("id_token").(string)
			idt, err := e.rp.Verifier(&oidc.Config{ClientID: publicID}).Verify(e.ctx, raw)
			if err != nil {
				t.Fatalf("Verify: %v", err)
			}
			if idt.Subject != tt.subject || idt.Nonce != nonce || idt.Issuer != e.idp.Issuer() {
				t.Errorf("sub, nonce, iss: got %q %q %q, want %q %q %q",
					idt.Subject, idt.Nonce, idt.Issuer, tt.subject, nonce, e.idp.Issuer())
			}
			if !reflect.DeepEqual(idt.Audience, []string{publicID}) {
				t.Errorf("aud: got %q, want %q", idt.Audience, []string{publicID})
			}
			if d := idt.Expiry.Sub(idt.IssuedAt); d != defaultIDTokenLifetime {
				t.Errorf("lifetime: got %v, want %v", d, defaultIDTokenLifetime)
			}
			var got tokenClaims
			if err := idt.Claims(&got); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, tt.want) {
				t.Errorf("claims: got %+v, want %+v", got, tt.want)
			}
			var all map[string]any
			idt.Claims(&all)
			for _, k := range tt.absent {
				if v, ok := all[k]; ok {
					t.Errorf("claim %q: got %v, want absent", k, v)
				}
			}

			// The access token works at the userinfo endpoint.
			info, err := e.rp.UserInfo(e.ctx, oauth2.StaticTokenSource(tok))
			if err != nil {
				t.Fatalf("UserInfo: %v", err)
			}
			if info.Subject != tt.subject || info.Email != tt.want.Email {
				t.Errorf("userinfo: got %q %q, want %q %q", info.Subject, info.Email, tt.subject, tt.want.Email)
			}

			// The code is single-use.
			if _, err := conf.Exchange(e.ctx, q.Get("code"), oauth2.VerifierOption(verifier)); err == nil {
				t.Error("second exchange of the same code: got a token, want an error")
			}
		})
	}
}

func TestConfidentialClient(t *testing.T) {
	e := newEnv(t, Config{IDTokenLifetime: time.Minute})
	redirect := "http://127.0.0.1:1/cb"
	for _, style := range []oauth2.AuthStyle{oauth2.AuthStyleInHeader, oauth2.AuthStyleInParams} {
		conf := e.oauth2(confidentialID, secret, redirect)
		conf.Endpoint.AuthStyle = style
		state := randomString(t)
		got, err := e.idp.CompleteBrowserLogin(e.ctx, conf.AuthCodeURL(state), "bob")
		if err != nil {
			t.Fatalf("style %d: CompleteBrowserLogin: %v", style, err)
		}
		if got.Query().Get("state") != state {
			t.Fatalf("style %d: state: got %q, want %q", style, got.Query().Get("state"), state)
		}
		tok, err := conf.Exchange(e.ctx, got.Query().Get("code"))
		if err != nil {
			t.Fatalf("style %d: Exchange: %v", style, err)
		}
		idt, err := e.rp.Verifier(&oidc.Config{ClientID: confidentialID}).Verify(e.ctx, tok.Extra("id_token").(string))
		if err != nil {
			t.Fatalf("style %d: Verify: %v", style, err)
		}
		if d := idt.Expiry.Sub(idt.IssuedAt); d != time.Minute {
			t.Errorf("lifetime: got %v, want %v", d, time.Minute)
		}
	}
}

func TestDeviceFlow(t *testing.T) {
	e := newEnv(t, Config{})
	conf := e.oauth2(publicID, "", "")
	conf.Scopes = append(conf.Scopes, "bogus", "email")
	da, err := conf.DeviceAuth(e.ctx)
	if err != nil {
		t.Fatalf("DeviceAuth: %v", err)
	}
	if da.Interval != 1 {
		t.Errorf("interval: got %d, want 1", da.Interval)
	}
	if want := e.idp.Issuer() + "/device"; da.VerificationURI != want {
		t.Errorf("verification URI: got %q, want %q", da.VerificationURI, want)
	}
	// People type codes in lower case and without the dash.
	typed := strings.ToLower(strings.ReplaceAll(da.UserCode, "-", ""))
	if err := e.idp.ApproveDevice(e.ctx, typed, "bob"); err != nil {
		t.Fatalf("ApproveDevice: %v", err)
	}
	if err := e.idp.ApproveDevice(e.ctx, da.UserCode, "bob"); !errors.Is(err, ErrUnknownUserCode) {
		t.Errorf("second approval: got %v, want %v", err, ErrUnknownUserCode)
	}
	tok, err := conf.DeviceAccessToken(e.ctx, da)
	if err != nil {
		t.Fatalf("DeviceAccessToken: %v", err)
	}
	if got, want := tok.Extra("scope"), "openid email groups"; got != want {
		t.Errorf("scope: got %q, want %q", got, want)
	}
	idt, err := e.rp.Verifier(&oidc.Config{ClientID: publicID}).Verify(e.ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	var got tokenClaims
	idt.Claims(&got)
	want := tokenClaims{Email: "bob@example.com", EmailVerified: ptr(false), Groups: []string{"sre", "dba"}, AZP: publicID}
	if idt.Subject != "bob" || !reflect.DeepEqual(got, want) {
		t.Errorf("got sub %q %+v, want %q %+v", idt.Subject, got, "bob", want)
	}

	// The device code is single-use.
	if _, err := conf.DeviceAccessToken(e.ctx, da); err == nil {
		t.Error("second DeviceAccessToken: got a token, want an error")
	}
}

func TestDeviceDenied(t *testing.T) {
	e := newEnv(t, Config{})
	conf := e.oauth2(publicID, "", "")
	conf.Endpoint.AuthStyle = oauth2.AuthStyleInParams
	da, err := conf.DeviceAuth(e.ctx)
	if err != nil {
		t.Fatalf("DeviceAuth: %v", err)
	}
	res, err := e.client.PostForm(e.idp.Issuer()+"/device", url.Values{"user_code": {da.UserCode}, "action": {"deny"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("deny: got status %d, want 200", res.StatusCode)
	}
	_, err = conf.DeviceAccessToken(e.ctx, da)
	var re *oauth2.RetrieveError
	if !errors.As(err, &re) || re.ErrorCode != "access_denied" {
		t.Fatalf("DeviceAccessToken after deny: got %v, want access_denied", err)
	}
}

func TestDeviceRefused(t *testing.T) {
	e := newEnv(t, Config{Clients: []Client{
		{ID: publicID, RedirectURIs: []string{"http://127.0.0.1/callback"}, Device: true},
		{ID: "no-device", RedirectURIs: []string{"http://127.0.0.1/callback"}},
	}})
	for _, tt := range []struct{ client, want string }{
		{"no-device", "unauthorized_client"},
		{"nobody", "invalid_client"},
	} {
		_, err := e.oauth2(tt.client, "", "").DeviceAuth(e.ctx)
		var re *oauth2.RetrieveError
		if !errors.As(err, &re) || re.ErrorCode != tt.want {
			t.Errorf("DeviceAuth for %q: got %v, want %s", tt.client, err, tt.want)
		}
	}
	if err := e.idp.ApproveDevice(e.ctx, "BCDF-GHJK", "alice"); !errors.Is(err, ErrUnknownUserCode) {
		t.Errorf("unknown user code: got %v, want %v", err, ErrUnknownUserCode)
	}
	da, err := e.oauth2(publicID, "", "").DeviceAuth(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	if err := e.idp.ApproveDevice(e.ctx, da.UserCode, "mallory"); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("unknown user: got %v, want %v", err, ErrUnknownUser)
	}
	// Approval by form post with an unknown subject is refused by the page too.
	res, err := e.client.PostForm(e.idp.Issuer()+"/device", url.Values{"user_code": {da.UserCode}, "subject": {"mallory"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest {
		t.Errorf("POST unknown subject: got status %d, want 400", res.StatusCode)
	}
}

func TestAuthCodeRefused(t *testing.T) {
	e := newEnv(t, Config{})
	good := e.oauth2(publicID, "", e.callback)
	verifier := oauth2.GenerateVerifier()
	pkce := oauth2.S256ChallengeOption(verifier)

	tests := []struct {
		name    string
		url     string
		subject string
		want    error
		toRP    bool // the refusal is an error redirect to the client
	}{
		{"wrong redirect path", e.oauth2(publicID, "", "http://127.0.0.1:9/elsewhere").AuthCodeURL("s", pkce), "alice", ErrRefused, false},
		{"non-loopback redirect", e.oauth2(publicID, "", "http://example.com/callback").AuthCodeURL("s", pkce), "alice", ErrRefused, false},
		{"confidential redirect on another port", e.oauth2(confidentialID, "", "http://127.0.0.1:2/cb").AuthCodeURL("s"), "alice", ErrRefused, false},
		{"unknown client", e.oauth2("nobody", "", e.callback).AuthCodeURL("s", pkce), "alice", ErrRefused, false},
		{"public client without PKCE", good.AuthCodeURL("s"), "alice", ErrRefused, true},
		{"PKCE plain", good.AuthCodeURL("s", oauth2.SetAuthURLParam("code_challenge", verifier),
			oauth2.SetAuthURLParam("code_challenge_method", "plain")), "alice", ErrRefused, true},
		{"prompt none", good.AuthCodeURL("s", pkce, oauth2.SetAuthURLParam("prompt", "none")), "alice", ErrRefused, true},
		{"unknown user", good.AuthCodeURL("s", pkce), "mallory", ErrUnknownUser, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			redirect, err := e.idp.CompleteBrowserLogin(e.ctx, tt.url, tt.subject)
			t.Log(err)
			if !errors.Is(err, tt.want) {
				t.Fatalf("got %v, want %v", err, tt.want)
			}
			if tt.toRP != (redirect != nil) {
				t.Fatalf("redirect: got %v, want one: %v", redirect, tt.toRP)
			}
			if tt.toRP && redirect.Query().Get("error") == "" {
				t.Errorf("redirect %q has no error parameter", redirect)
			}
		})
	}

	t.Run("bad PKCE verifier", func(t *testing.T) {
		redirect, err := e.idp.CompleteBrowserLogin(e.ctx, good.AuthCodeURL("s", pkce), "alice")
		if err != nil {
			t.Fatal(err)
		}
		code := redirect.Query().Get("code")
		if _, err := good.Exchange(e.ctx, code, oauth2.VerifierOption(oauth2.GenerateVerifier())); err == nil {
			t.Fatal("Exchange with a wrong verifier: got a token, want an error")
		}
		if _, err := good.Exchange(e.ctx, code); err == nil {
			t.Fatal("Exchange without a verifier: got a token, want an error")
		}
	})
	t.Run("wrong client secret", func(t *testing.T) {
		conf := e.oauth2(confidentialID, "wrong", "http://127.0.0.1:1/cb")
		redirect, err := e.idp.CompleteBrowserLogin(e.ctx, conf.AuthCodeURL("s"), "alice")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := conf.Exchange(e.ctx, redirect.Query().Get("code")); err == nil {
			t.Fatal("Exchange with a wrong secret: got a token, want an error")
		}
	})
	t.Run("code at another client", func(t *testing.T) {
		redirect, err := e.idp.CompleteBrowserLogin(e.ctx, good.AuthCodeURL("s", pkce), "alice")
		if err != nil {
			t.Fatal(err)
		}
		other := e.oauth2(confidentialID, secret, e.callback)
		if _, err := other.Exchange(e.ctx, redirect.Query().Get("code"), oauth2.VerifierOption(verifier)); err == nil {
			t.Fatal("Exchange by another client: got a token, want an error")
		}
	})
	t.Run("authorize URL elsewhere", func(t *testing.T) {
		if _, err := e.idp.CompleteBrowserLogin(e.ctx, "http://127.0.0.1:1/authorize", "alice"); err == nil {
			t.Fatal("got nil, want an error")
		}
	})
}

func TestMintIDToken(t *testing.T) {
	e := newEnv(t, Config{})
	verifier := e.rp.Verifier(&oidc.Config{ClientID: publicID})
	valid, err := e.idp.IDTokenClaims("alice", publicID)
	if err != nil {
		t.Fatal(err)
	}
	with := func(k string, v any) map[string]any {
		c, _ := e.idp.IDTokenClaims("alice", publicID)
		c[k] = v
		return c
	}
	tests := []struct {
		name   string
		claims map[string]any
		ok     bool
	}{
		{"valid", valid, true},
		{"expired", with("exp", time.Now().Add(-time.Minute).Unix()), false},
		{"wrong audience", with("aud", []string{"someone-else"}), false},
		{"wrong issuer", with("iss", "http://127.0.0.1:1"), false},
		{"empty", nil, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			raw, err := e.idp.MintIDToken(tt.claims)
			if err != nil {
				t.Fatalf("MintIDToken: %v", err)
			}
			idt, err := verifier.Verify(e.ctx, raw)
			if tt.ok != (err == nil) {
				t.Fatalf("Verify: got %v, want ok: %v", err, tt.ok)
			}
			if tt.ok {
				var got tokenClaims
				idt.Claims(&got)
				if idt.Subject != "alice" || got.Email != "alice@example.com" || got.EmailVerified == nil || !*got.EmailVerified {
					t.Errorf("got %q %+v, want alice's claims", idt.Subject, got)
				}
			}
		})
	}
	if _, err := e.idp.MintIDToken(map[string]any{"bad": func() {}}); err == nil {
		t.Error("MintIDToken with an unmarshalable claim: got nil, want an error")
	}
	if _, err := e.idp.IDTokenClaims("mallory", publicID); !errors.Is(err, ErrUnknownUser) {
		t.Errorf("IDTokenClaims for an unknown user: got %v, want %v", err, ErrUnknownUser)
	}
}

// TestNow checks the injected clock reaches the times this package sets.
func TestNow(t *testing.T) {
	at := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	e := newEnv(t, Config{Now: func() time.Time { return at }})
	c, err := e.idp.IDTokenClaims("bob", publicID)
	if err != nil {
		t.Fatal(err)
	}
	if got, want := c["iat"], at.Unix(); got != want {
		t.Errorf("iat: got %v, want %v", got, want)
	}
	if got, want := c["exp"], at.Add(defaultIDTokenLifetime).Unix(); got != want {
		t.Errorf("exp: got %v, want %v", got, want)
	}
	conf := e.oauth2(publicID, "", e.callback)
	v := oauth2.GenerateVerifier()
	redirect, err := e.idp.CompleteBrowserLogin(e.ctx, conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), "bob")
	if err != nil {
		t.Fatal(err)
	}
	tok, err := conf.Exchange(e.ctx, redirect.Query().Get("code"), oauth2.VerifierOption(v))
	if err != nil {
		t.Fatal(err)
	}
	idt, err := e.rp.Verifier(&oidc.Config{ClientID: publicID}).Verify(e.ctx, tok.Extra("id_token").(string))
	if err != nil {
		t.Fatal(err)
	}
	var got struct {
		AuthTime int64 `json:"auth_time"`
	}
	idt.Claims(&got)
	if got.AuthTime != at.Unix() {
		t.Errorf("auth_time: got %d, want %d", got.AuthTime, at.Unix())
	}
}

func TestDiscovery(t *testing.T) {
	e := newEnv(t, Config{})
	var d struct {
		Issuer              string   `json:"issuer"`
		DeviceEndpoint      string   `json:"device_authorization_endpoint"`
		GrantTypes          []string `json:"grant_types_supported"`
		CodeChallengeMethod []string `json:"code_challenge_methods_supported"`
		SigningAlgs         []string `json:"id_token_signing_alg_values_supported"`
	}
	if err := e.rp.Claims(&d); err != nil {
		t.Fatal(err)
	}
	if d.Issuer != e.idp.Issuer() || d.DeviceEndpoint != e.idp.Issuer()+"/device_authorization" {
		t.Errorf("issuer, device endpoint: got %q %q", d.Issuer, d.DeviceEndpoint)
	}
	for _, want := range []struct {
		list []string
		v    string
	}{
		{d.GrantTypes, "urn:ietf:params:oauth:grant-type:device_code"},
		{d.GrantTypes, "authorization_code"},
		{d.CodeChallengeMethod, "S256"},
		{d.SigningAlgs, "RS256"},
	} {
		if !strings.Contains(strings.Join(want.list, " "), want.v) {
			t.Errorf("discovery: got %q, want it to hold %q", want.list, want.v)
		}
	}
}

func TestClose(t *testing.T) {
	idp, err := Start(Config{Users: testUsers(), Clients: testClients()})
	if err != nil {
		t.Fatal(err)
	}
	if err := idp.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := idp.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if err := idp.ApproveDevice(context.Background(), "BCDF-GHJK", "alice"); !errors.Is(err, ErrClosed) {
		t.Errorf("ApproveDevice after Close: got %v, want %v", err, ErrClosed)
	}
	// New without Start serves nothing and closes cleanly.
	p, err := New(Config{Issuer: "https://idp.example.test"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.Close(); err != nil {
		t.Fatalf("Close of an unstarted provider: %v", err)
	}
}
