// Package login is the user side of a bastion login: it asks the bastion
// what it needs (GET /v1/info), gets an ID token from the identity
// provider (a browser with authorization code and PKCE on a loopback
// redirect, the device authorization grant, or a token the caller already
// has, for CI), exchanges it with a fresh in-memory key for a certificate
// (POST /v1/certificate), and installs both: in the running ssh-agent with
// the certificate's lifetime, or in the config directory with 0600
// permissions, beside a known_hosts file with the host CA line. [SSHConfig]
// writes the stanza the stock OpenSSH client needs.
//
// It is a client of package ca's HTTP API and shares only its wire types.
package login

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/subtle"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"html"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/oauth2"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/safetext"
)

// Login methods.
const (
	MethodBrowser = "browser" // authorization code + PKCE with a loopback redirect
	MethodDevice  = "device"  // device authorization grant, for headless machines
	MethodToken   = "token"   // an ID token the caller already has (CI)
)

// LoginConfig configures Login.
type LoginConfig struct {
	// BastionURL is the bastion's HTTP base URL. Required.
	BastionURL string
	// Method is MethodBrowser (default), MethodDevice or MethodToken.
	Method string
	// IDToken is the token for MethodToken.
	IDToken string
	// TTL asks for a shorter certificate than the default; 0 = default.
	TTL time.Duration
	// Dir is where key, certificate, known_hosts and state are written:
	// this bastion's own directory (see Dir), so that logins to other
	// bastions are left alone. Required.
	Dir string
	// AgentSocket is the ssh-agent to load the key into; empty means
	// $SSH_AUTH_SOCK. When no agent answers, the key is written to Dir.
	AgentSocket string
	// NoAgent forces writing the key to Dir even when an agent runs.
	NoAgent bool
	// OpenBrowser opens a URL for MethodBrowser; nil tries the platform's
	// opener when a display is available. The URL is always printed too.
	OpenBrowser func(url string) error
	// Out receives the prompts (login URL, device code). nil = os.Stderr.
	Out io.Writer
	// HTTPClient talks to the bastion and the IdP; nil = 30s timeout client.
	HTTPClient *http.Client
	// CallbackTimeout bounds the wait for a browser or device login; default 5m.
	CallbackTimeout time.Duration
}

// State is what `bastion login` remembers so later client commands need no
// flags. It is stored as JSON in Dir/state.json.
type State struct {
	BastionURL     string    `json:"bastion_url"`
	SSHAddress     string    `json:"ssh_address"`
	User           string    `json:"user"`
	KeyPath        string    `json:"key_path,omitempty"` // empty when the key lives only in the agent
	CertPath       string    `json:"cert_path"`
	KnownHostsPath string    `json:"known_hosts_path"`
	InAgent        bool      `json:"in_agent"`
	Serial         string    `json:"serial"`
	ValidBefore    time.Time `json:"valid_before"`
	// PostgresAddress is the bastion's direct PostgreSQL listener
	// (host:port), and the DB paths the login's client certificate, its
	// key and the CA that verifies the listener; empty without a listener.
	PostgresAddress string `json:"postgres_address,omitempty"`
	DBCertPath      string `json:"db_cert_path,omitempty"`
	DBKeyPath       string `json:"db_key_path,omitempty"`
	DBCAPath        string `json:"db_ca_path,omitempty"`
	// DBKeyDERPath is the same key as PKCS#8 DER, the only form JDBC's
	// driver (pgjdbc) reads.
	DBKeyDERPath string `json:"db_key_der_path,omitempty"`
	// AccessTokenPath holds the SQL API's bearer token (POST /v1/sql),
	// valid as long as the login; empty when the bastion has no SQL API.
	AccessTokenPath string `json:"access_token_path,omitempty"`
}

// File names inside the client directory.
const (
	clientKeyFile   = "id_ed25519"
	clientCertFile  = "id_ed25519-cert.pub"
	knownHostsFile  = "known_hosts"
	clientStateFile = "state.json"
	// The direct PostgreSQL listener's credentials (libpq's sslcert,
	// sslkey and sslrootcert).
	dbCertFile = "postgres.crt"
	dbKeyFile  = "postgres.key"
	dbKeyDER   = "postgres.pk8"
	dbCAFile   = "postgres-ca.pem"
	// accessTokenFile is the SQL API's bearer token.
	accessTokenFile = "access_token"
)

// DefaultDir is $XDG_CONFIG_HOME/bastion, else ~/.config/bastion.
func DefaultDir() (string, error) {
	if x := os.Getenv("XDG_CONFIG_HOME"); x != "" {
		return filepath.Join(x, "bastion"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("login: no config directory: %w", err)
	}
	return filepath.Join(home, ".config", "bastion"), nil
}

// LoadState reads the state a previous Login wrote to dir.
func LoadState(dir string) (*State, error) {
	b, err := os.ReadFile(filepath.Join(dir, clientStateFile))
	if err != nil {
		if errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("%w: run `bastion login --bastion URL` first", ErrNotLoggedIn)
		}
		return nil, fmt.Errorf("login state: %w", err)
	}
	var st State
	if err := json.Unmarshal(b, &st); err != nil {
		return nil, fmt.Errorf("login state %s: %w", filepath.Join(dir, clientStateFile), err)
	}
	return &st, nil
}

// Login obtains an ID token, exchanges it for a certificate and installs
// key and certificate for OpenSSH.
func Login(ctx context.Context, cfg LoginConfig) (*State, error) {
	if cfg.BastionURL == "" || cfg.Dir == "" {
		return nil, errors.New("login: bastion URL and directory are required")
	}
	norm, err := NormalizeURL(cfg.BastionURL)
	if err != nil {
		return nil, err
	}
	base, _ := url.Parse(norm)
	if base.Scheme == "http" && !isLoopbackHost(base.Hostname()) {
		return nil, fmt.Errorf("login: refusing to send an ID token over plain http to %s; use https", base.Host)
	}
	if cfg.HTTPClient == nil {
		cfg.HTTPClient = &http.Client{Timeout: 30 * time.Second}
	}
	if cfg.Out == nil {
		cfg.Out = os.Stderr
	}
	if cfg.CallbackTimeout == 0 {
		cfg.CallbackTimeout = 5 * time.Minute
	}
	var info ca.Info
	if err := getJSON(ctx, cfg.HTTPClient, base.String()+ca.PathInfo, &info); err != nil {
		return nil, fmt.Errorf("login: %w", notABastion(ctx, cfg.HTTPClient, base.String(), err))
	}
	// Refuse a lifetime the bastion will refuse before the person goes
	// through the identity provider's login for nothing.
	if max, err := time.ParseDuration(info.MaxUserTTL); err == nil && max > 0 && cfg.TTL > max {
		return nil, fmt.Errorf("login: --ttl %s is longer than this bastion allows (max_user_ttl %s): ask for %s or less", cfg.TTL, max, max)
	}
	ctx = oidc.ClientContext(ctx, cfg.HTTPClient)
	var token string
	switch cfg.Method {
	case "", MethodBrowser:
		token, err = browserLogin(ctx, cfg, info)
	case MethodDevice:
		token, err = deviceLogin(ctx, cfg, info)
	case MethodToken:
		token = strings.TrimSpace(cfg.IDToken)
		if token == "" {
			err = errors.New("the ID token is empty")
		}
	default:
		err = fmt.Errorf("unknown method %q", cfg.Method)
	}
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}

	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("login: generate key: %w", err)
	}
	sshPub, err := ssh.NewPublicKey(pub)
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	req := ca.CertRequest{IDToken: token, PublicKey: string(ssh.MarshalAuthorizedKey(sshPub))}
	var db *dbCreds
	if info.PostgresAddress != "" {
		if db, err = newDBKey(); err != nil {
			return nil, fmt.Errorf("login: %w", err)
		}
		req.DBPublicKey = string(db.pubPEM)
	}
	req.AccessToken = info.SQLAPI
	if cfg.TTL > 0 {
		req.TTL = cfg.TTL.String()
	}
	var resp ca.CertResponse
	if err := postJSON(ctx, cfg.HTTPClient, base.String()+ca.PathCertificate, req, &resp); err != nil {
		return nil, fmt.Errorf("login: certificate: %w", err)
	}
	certKey, _, _, _, err := ssh.ParseAuthorizedKey([]byte(resp.Certificate))
	if err != nil {
		return nil, fmt.Errorf("login: the bastion sent an unreadable certificate: %w", err)
	}
	cert, ok := certKey.(*ssh.Certificate)
	if !ok || !bytes.Equal(cert.Key.Marshal(), sshPub.Marshal()) {
		return nil, errors.New("login: the bastion's certificate is not for the key we sent")
	}
	// What the bastion sends ends up in ssh_config and known_hosts lines
	// (SSHConfig): a bastion that is not what it claims must not write
	// ssh options of its own into them.
	if len(cert.ValidPrincipals) != 1 || resp.Principal != cert.ValidPrincipals[0] {
		return nil, fmt.Errorf("login: the bastion named the login %q, its certificate %q", safetext.Printable(resp.Principal), cert.ValidPrincipals)
	}
	if err := ca.ValidateUsername(resp.Principal); err != nil {
		return nil, fmt.Errorf("login: the bastion's login name: %w", err)
	}
	if err := checkInfo(info); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	if db != nil {
		if err := db.check(resp); err != nil {
			return nil, fmt.Errorf("login: %w", err)
		}
	}
	if info.SQLAPI && resp.AccessToken == "" {
		return nil, errors.New("login: the bastion has a SQL API but sent no access token")
	}
	return install(cfg, info, base.String(), priv, cert, resp, db)
}

// dbCreds is the key of a login's database client certificate.
type dbCreds struct {
	keyPEM, pubPEM []byte
	keyDER         []byte // PKCS#8, for pgjdbc
	pub            *ecdsa.PublicKey
}

func newDBKey() (*dbCreds, error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	pder, err := x509.MarshalPKIXPublicKey(key.Public())
	if err != nil {
		return nil, err
	}
	return &dbCreds{
		keyPEM: pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}),
		keyDER: der,
		pubPEM: pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: pder}),
		pub:    &key.PublicKey,
	}, nil
}

// check makes sure the bastion answered with a certificate for our key.
func (d *dbCreds) check(resp ca.CertResponse) error {
	blk, _ := pem.Decode([]byte(resp.DBCertificate))
	if blk == nil || resp.DBCA == "" {
		return errors.New("the bastion has a PostgreSQL listener but sent no database certificate")
	}
	c, err := x509.ParseCertificate(blk.Bytes)
	if err != nil {
		return fmt.Errorf("the bastion sent an unreadable database certificate: %w", err)
	}
	if k, ok := c.PublicKey.(*ecdsa.PublicKey); !ok || !k.Equal(d.pub) {
		return errors.New("the bastion's database certificate is not for the key we sent")
	}
	return nil
}

func install(cfg LoginConfig, info ca.Info, baseURL string, priv ed25519.PrivateKey, cert *ssh.Certificate, resp ca.CertResponse, db *dbCreds) (*State, error) {
	if err := os.MkdirAll(cfg.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	st := &State{
		BastionURL:     baseURL,
		SSHAddress:     info.SSHAddress,
		User:           resp.Principal,
		CertPath:       filepath.Join(cfg.Dir, clientCertFile),
		KnownHostsPath: filepath.Join(cfg.Dir, knownHostsFile),
		Serial:         resp.Serial,
		ValidBefore:    resp.ValidBefore,
	}
	if !cfg.NoAgent {
		st.InAgent = addToAgent(cfg.AgentSocket, priv, cert, resp.ValidBefore)
	}
	keyPath := filepath.Join(cfg.Dir, clientKeyFile)
	if st.InAgent {
		// A key from an earlier login without an agent would now be stale.
		os.Remove(keyPath)
	} else {
		block, err := ssh.MarshalPrivateKey(priv, "bastion "+resp.Principal)
		if err != nil {
			return nil, fmt.Errorf("login: %w", err)
		}
		if err := replaceFile(keyPath, pem.EncodeToMemory(block)); err != nil {
			return nil, err
		}
		st.KeyPath = keyPath
	}
	if err := replaceFile(st.CertPath, ssh.MarshalAuthorizedKey(cert)); err != nil {
		return nil, err
	}
	if err := replaceFile(st.KnownHostsPath, []byte(info.HostCA+"\n")); err != nil {
		return nil, err
	}
	if resp.AccessToken != "" {
		st.AccessTokenPath = filepath.Join(cfg.Dir, accessTokenFile)
		if err := replaceFile(st.AccessTokenPath, []byte(resp.AccessToken+"\n")); err != nil {
			return nil, err
		}
	}
	if db != nil {
		st.PostgresAddress = info.PostgresAddress
		st.DBCertPath, st.DBKeyPath, st.DBCAPath = filepath.Join(cfg.Dir, dbCertFile), filepath.Join(cfg.Dir, dbKeyFile), filepath.Join(cfg.Dir, dbCAFile)
		st.DBKeyDERPath = filepath.Join(cfg.Dir, dbKeyDER)
		for _, f := range []struct {
			path string
			data []byte
		}{{st.DBKeyPath, db.keyPEM}, {st.DBKeyDERPath, db.keyDER}, {st.DBCertPath, []byte(resp.DBCertificate)}, {st.DBCAPath, []byte(resp.DBCA)}} {
			if err := replaceFile(f.path, f.data); err != nil {
				return nil, err
			}
		}
	}
	sb, err := json.MarshalIndent(st, "", "  ")
	if err != nil {
		return nil, fmt.Errorf("login: %w", err)
	}
	if err := replaceFile(filepath.Join(cfg.Dir, clientStateFile), append(sb, '\n')); err != nil {
		return nil, err
	}
	return st, nil
}

// replaceFile atomically writes data to path with 0600 permissions.
func replaceFile(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("login: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("login: %w", err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return fmt.Errorf("login: write %s: %w", path, err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("login: write %s: %w", path, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("login: %w", err)
	}
	return nil
}

// addToAgent loads the key and certificate into the agent with a lifetime
// that ends with the certificate. It reports false when no agent answers.
func addToAgent(sock string, priv ed25519.PrivateKey, cert *ssh.Certificate, until time.Time) bool {
	if sock == "" {
		sock = os.Getenv("SSH_AUTH_SOCK")
	}
	if sock == "" {
		return false
	}
	conn, err := net.DialTimeout("unix", sock, 2*time.Second)
	if err != nil {
		return false
	}
	defer conn.Close()
	life := time.Until(until)
	if life <= 0 {
		return false
	}
	err = agent.NewClient(conn).Add(agent.AddedKey{
		PrivateKey:   priv,
		Certificate:  cert,
		Comment:      "bastion " + cert.KeyId,
		LifetimeSecs: uint32(life / time.Second),
	})
	return err == nil
}

func browserLogin(ctx context.Context, cfg LoginConfig, info ca.Info) (string, error) {
	provider, err := oidc.NewProvider(ctx, info.Issuer)
	if err != nil {
		return "", fmt.Errorf("identity provider: %w", err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", fmt.Errorf("loopback listener: %w", err)
	}
	defer ln.Close()
	redirect := "http://" + ln.Addr().String() + "/callback"
	oc := oauth2.Config{ClientID: info.ClientID, ClientSecret: info.ClientSecret, Endpoint: provider.Endpoint(), RedirectURL: redirect, Scopes: info.Scopes}
	state, nonce, verifier := randomToken(), randomToken(), oauth2.GenerateVerifier()
	authURL := oc.AuthCodeURL(state, oidc.Nonce(nonce), oauth2.S256ChallengeOption(verifier))

	type result struct {
		code string
		err  error
	}
	done := make(chan result, 1)
	srv := &http.Server{ReadHeaderTimeout: 10 * time.Second, Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/callback" {
			http.NotFound(w, r)
			return
		}
		q := r.URL.Query()
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		if subtle.ConstantTimeCompare([]byte(q.Get("state")), []byte(state)) != 1 {
			// Not the IdP's answer to this login: any local process or
			// web page can request this URL. Refuse it and go on waiting,
			// so a stray request cannot end the login.
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprint(w, "<p>bastion login: this callback does not carry the login's state; ignored.</p>")
			return
		}
		var res result
		switch {
		case q.Get("error") != "":
			res.err = fmt.Errorf("the identity provider refused: %s %s", safetext.Printable(q.Get("error")), safetext.Printable(q.Get("error_description")))
		case q.Get("code") == "":
			res.err = errors.New("the login callback carries no code")
		default:
			res.code = q.Get("code")
		}
		if res.err != nil {
			w.WriteHeader(http.StatusBadRequest)
			fmt.Fprintf(w, "<p>bastion login failed: %s</p>", html.EscapeString(res.err.Error()))
		} else {
			fmt.Fprint(w, "<p>bastion login complete. You can close this window.</p>")
		}
		if f, ok := w.(http.Flusher); ok {
			f.Flush()
		}
		select {
		case done <- res:
		default:
		}
	})}
	go srv.Serve(ln)
	defer func() {
		// Let the callback's answer reach the browser before closing.
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		srv.Shutdown(ctx)
		cancel()
	}()

	// The IdP is the one the bastion names: what it sent is shown with
	// its control characters escaped (an OSC 52 in it would write the
	// person's clipboard).
	fmt.Fprintf(cfg.Out, "Open this URL in a browser to log in:\n\n  %s\n\n", safetext.Visible(authURL))
	open := cfg.OpenBrowser
	if open == nil {
		open = openBrowser
	}
	if err := open(authURL); err != nil {
		fmt.Fprintf(cfg.Out, "(could not open a browser: %v)\n", err)
	}
	wait, cancel := context.WithTimeout(ctx, cfg.CallbackTimeout)
	defer cancel()
	var res result
	select {
	case res = <-done:
	case <-wait.Done():
		return "", fmt.Errorf("no login callback within %s", cfg.CallbackTimeout)
	}
	if res.err != nil {
		return "", res.err
	}
	tok, err := oc.Exchange(ctx, res.code, oauth2.VerifierOption(verifier))
	if err != nil {
		return "", fmt.Errorf("code exchange: %w%s", err, secretHint(err, info))
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", errors.New("the identity provider returned no id_token")
	}
	idt, err := provider.Verifier(&oidc.Config{ClientID: info.ClientID}).Verify(ctx, raw)
	if err != nil {
		return "", fmt.Errorf("id_token: %w", err)
	}
	if subtle.ConstantTimeCompare([]byte(idt.Nonce), []byte(nonce)) != 1 {
		return "", errors.New("id_token nonce does not match the request (possible replay)")
	}
	return raw, nil
}

func deviceLogin(ctx context.Context, cfg LoginConfig, info ca.Info) (string, error) {
	provider, err := oidc.NewProvider(ctx, info.Issuer)
	if err != nil {
		return "", fmt.Errorf("identity provider: %w", err)
	}
	oc := oauth2.Config{ClientID: info.ClientID, ClientSecret: info.ClientSecret, Endpoint: provider.Endpoint(), Scopes: info.Scopes}
	if oc.Endpoint.DeviceAuthURL == "" {
		return "", errors.New("the identity provider does not offer the device authorization grant")
	}
	da, err := oc.DeviceAuth(ctx)
	if err != nil {
		return "", fmt.Errorf("device authorization: %w", err)
	}
	// Shown with control characters escaped, as browserLogin's URL.
	if da.VerificationURIComplete != "" {
		fmt.Fprintf(cfg.Out, "To log in, open\n\n  %s\n\nand confirm the code %s\n", safetext.Visible(da.VerificationURIComplete), safetext.Visible(da.UserCode))
	} else {
		fmt.Fprintf(cfg.Out, "To log in, open\n\n  %s\n\nand enter the code %s\n", safetext.Visible(da.VerificationURI), safetext.Visible(da.UserCode))
	}
	wait, cancel := context.WithTimeout(ctx, cfg.CallbackTimeout)
	defer cancel()
	tok, err := oc.DeviceAccessToken(wait, da)
	if err != nil {
		return "", fmt.Errorf("device login: %w%s", err, secretHint(err, info))
	}
	raw, _ := tok.Extra("id_token").(string)
	if raw == "" {
		return "", errors.New("the identity provider returned no id_token")
	}
	if _, err := provider.Verifier(&oidc.Config{ClientID: info.ClientID}).Verify(ctx, raw); err != nil {
		return "", fmt.Errorf("id_token: %w", err)
	}
	return raw, nil
}

func openBrowser(u string) error {
	if b := os.Getenv("BROWSER"); b != "" {
		return exec.Command(b, u).Start()
	}
	switch runtime.GOOS {
	case "darwin":
		return exec.Command("open", u).Start()
	case "linux", "freebsd", "openbsd", "netbsd":
		if os.Getenv("DISPLAY") == "" && os.Getenv("WAYLAND_DISPLAY") == "" {
			return errors.New("no display")
		}
		return exec.Command("xdg-open", u).Start()
	}
	return fmt.Errorf("no browser opener for %s", runtime.GOOS)
}

func randomToken() string {
	var b [24]byte
	if _, err := rand.Read(b[:]); err != nil {
		panic("crypto/rand failed: " + err.Error())
	}
	return base64.RawURLEncoding.EncodeToString(b[:])
}

func isLoopbackHost(h string) bool {
	if h == "localhost" {
		return true
	}
	ip := net.ParseIP(h)
	return ip != nil && ip.IsLoopback()
}

// notABastion explains a failed GET /v1/info: a URL that answers as an
// OpenID provider is the identity provider's, not the bastion's (an easy
// mix-up: both are URLs the person has seen during setup).
func notABastion(ctx context.Context, c *http.Client, base string, infoErr error) error {
	var he *httpError
	if !errors.As(infoErr, &he) && !errors.Is(infoErr, errNotJSON) {
		return fmt.Errorf("ask the bastion at %s: %w", base, infoErr)
	}
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if getJSON(ctx, c, base+"/.well-known/openid-configuration", &doc) == nil && doc.Issuer != "" {
		return fmt.Errorf("%s looks like an identity provider (it serves an OpenID configuration for issuer %s), not a bastion: "+
			"pass the bastion's own URL, its HTTP listener (listen.http), e.g. https://bastion.example.com:8443", base, safetext.Printable(doc.Issuer))
	}
	return fmt.Errorf("%s does not answer as a bastion (%v): is it the bastion's URL, its HTTP listener (listen.http)?", base, infoErr)
}

// httpError is an HTTP answer other than 200 without a bastion error body.
type httpError struct {
	status int
	url    string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d from %s", e.status, e.url) }

// errNotJSON is an answer that is not the JSON asked for.
var errNotJSON = errors.New("not a JSON answer")

func getJSON(ctx context.Context, c *http.Client, u string, out any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return err
	}
	return doJSON(c, req, out)
}

func postJSON(ctx context.Context, c *http.Client, u string, in, out any) error {
	b, err := json.Marshal(in)
	if err != nil {
		return err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	return doJSON(c, req, out)
}

func doJSON(c *http.Client, req *http.Request, out any) error {
	resp, err := c.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		var er ca.ErrorResponse
		if json.Unmarshal(body, &er) == nil && er.Error != "" {
			return fmt.Errorf("%s (HTTP %d)", er.Error, resp.StatusCode)
		}
		return &httpError{status: resp.StatusCode, url: req.URL.Redacted()}
	}
	if err := json.Unmarshal(body, out); err != nil {
		return fmt.Errorf("unreadable answer from %s: %w (%w)", req.URL.Redacted(), errNotJSON, err)
	}
	return nil
}

// SSHConfig returns the ssh_config stanza that makes `ssh -J` through the
// bastion work with the stock OpenSSH client. targets are the target names
// the user may reach (they share the bastion's known_hosts and identity).
// checkCmd, when not empty, is a shell command that exits 0 while the login
// is valid and otherwise says on stderr what to do (`bastion login --check`):
// the stanza runs it (Match exec) before every connection to the bastion,
// so an expired certificate leads to `bastion login` instead of ssh's bare
// "Permission denied (publickey)".
func SSHConfig(st *State, targets []string, checkCmd string) (string, error) {
	host, port, err := net.SplitHostPort(st.SSHAddress)
	if err != nil {
		return "", fmt.Errorf("ssh-config: bastion SSH address %q: %w", st.SSHAddress, err)
	}
	if _, err := strconv.Atoi(port); err != nil {
		return "", fmt.Errorf("ssh-config: bastion SSH port %q", port)
	}
	// A login written before login checked these (checkInfo) is refused
	// rather than written into the config.
	if !isSafeHost(host) {
		return "", fmt.Errorf("ssh-config: bastion SSH address %q is not a host name or IP address; run bastion login again", safetext.Printable(st.SSHAddress))
	}
	if err := ca.ValidateUsername(st.User); err != nil {
		return "", fmt.Errorf("ssh-config: the login name: %w; run bastion login again", err)
	}
	var b strings.Builder
	identity := func(user bool) {
		if user {
			fmt.Fprintf(&b, "    User %s\n", st.User)
		}
		if st.KeyPath != "" {
			fmt.Fprintf(&b, "    IdentityFile %s\n", quoteSSH(st.KeyPath))
		} else {
			// The private key is in the agent; naming the certificate makes
			// ssh offer exactly that agent key.
			fmt.Fprintf(&b, "    IdentityFile %s\n", quoteSSH(st.CertPath))
		}
		fmt.Fprintf(&b, "    CertificateFile %s\n", quoteSSH(st.CertPath))
		fmt.Fprintf(&b, "    IdentitiesOnly yes\n")
		fmt.Fprintf(&b, "    UserKnownHostsFile %s\n", quoteSSH(st.KnownHostsPath))
		fmt.Fprintf(&b, "    StrictHostKeyChecking yes\n")
		fmt.Fprintf(&b, "    ForwardAgent no\n")
	}
	fmt.Fprintf(&b, "# bastion %s — generated by `bastion ssh-config`\n", st.BastionURL)
	if checkCmd != "" && isSafeHostPattern(host) && !strings.ContainsAny(checkCmd, "\"\n") {
		fmt.Fprintf(&b, "# Before each connection: when the login has expired, say to run `bastion login`\n")
		fmt.Fprintf(&b, "# (ssh alone would only say \"Permission denied (publickey)\").\n")
		fmt.Fprintf(&b, "Match host %s exec \"%s\"\n\n", host, strings.ReplaceAll(checkCmd, "%", "%%"))
	}
	fmt.Fprintf(&b, "Host %s\n    HostName %s\n    Port %s\n", host, host, port)
	identity(true)
	var names []string
	for _, t := range targets {
		if isSafeHostPattern(t) && t != host {
			names = append(names, t)
		}
	}
	if len(names) > 0 {
		// The login on a target comes from the command line (root@web1).
		fmt.Fprintf(&b, "\nHost %s\n    ProxyJump %s\n", strings.Join(names, " "), host)
		identity(false)
	}
	return b.String(), nil
}

func quoteSSH(p string) string {
	if strings.ContainsAny(p, " \t\"") {
		return `"` + strings.ReplaceAll(p, `"`, ``) + `"`
	}
	return p
}

// checkInfo refuses a bastion's description whose SSH address or host CA
// would not be one plain word or line where login writes them.
func checkInfo(info ca.Info) error {
	host, port, err := net.SplitHostPort(info.SSHAddress)
	if err != nil {
		return fmt.Errorf("the bastion's SSH address %q: %w", safetext.Printable(info.SSHAddress), err)
	}
	if !isSafeHost(host) {
		return fmt.Errorf("the bastion's SSH address %q is not a host name or IP address", safetext.Printable(info.SSHAddress))
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return fmt.Errorf("the bastion's SSH port %q", safetext.Printable(port))
	}
	if strings.ContainsAny(info.HostCA, "\r\n") {
		return errors.New("the bastion's host CA is not one known_hosts line")
	}
	if _, _, _, _, _, err := ssh.ParseKnownHosts([]byte(info.HostCA)); err != nil {
		return fmt.Errorf("the bastion's host CA: %w", err)
	}
	return nil
}

// isSafeHost is a host name (isSafeHostPattern) or an IP address.
func isSafeHost(s string) bool {
	return isSafeHostPattern(s) || net.ParseIP(s) != nil
}

// isSafeHostPattern keeps target names that cannot inject ssh_config syntax.
func isSafeHostPattern(s string) bool {
	if s == "" || len(s) > 253 {
		return false
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '.' || r == '_') {
			return false
		}
	}
	return true
}

// secretHint explains a token endpoint that wants a client secret the
// bastion does not publish (Google's desktop clients do).
func secretHint(err error, info ca.Info) string {
	var re *oauth2.RetrieveError
	if info.ClientSecret != "" || !errors.As(err, &re) {
		return ""
	}
	if re.ErrorCode == "invalid_client" || strings.Contains(re.ErrorDescription, "client_secret") {
		return " (the identity provider wants a client secret from this client: if it is a desktop app's published secret, the bastion's operator sets oidc.public_client_secret; see docs/IDP.md)"
	}
	return ""
}
