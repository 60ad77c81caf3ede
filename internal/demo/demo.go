package demo

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"sync"
	"syscall"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/devidp"
	"github.com/bastionhq/bastion/internal/localsvc"
)

// Sentinel errors. Errors returned by this package wrap one of them where it applies.
var (
	// ErrInvalidConfig is wrapped by the errors Start and NewTarget return for a bad Config.
	ErrInvalidConfig = errors.New("invalid config")
	// ErrBusy means another demo is running in the same directory.
	ErrBusy = errors.New("another bastion demo is running in this directory")
	// ErrRefused is wrapped by the demo target's reasons for refusing a login.
	ErrRefused = errors.New("login refused")
)

// Default loopback addresses. A busy one falls back to a free port on the
// same address, and the demo says so.
const (
	DefaultSSHAddr    = "127.0.0.1:2222"
	DefaultHTTPAddr   = "127.0.0.1:8443"
	DefaultIssuerAddr = "127.0.0.1:8444"
)

// Names the demo config uses.
const (
	TargetName  = "web1"    // the demo SSH target
	TargetLogin = "demo"    // the one login the developers' role allows on it
	DBTarget    = "shop"    // the PostgreSQL target, when PostgreSQL is installed
	ClientID    = "bastion" // the OIDC client `bastion login` uses
	// LocalDBPort is the local end of the `ssh -L` forward the guide shows.
	LocalDBPort = 5433
)

// Users are the demo identity provider's people. Their email's local part
// becomes the bastion username.
var Users = []devidp.User{
	{Subject: "alice", Email: "alice@example.com", EmailVerified: boolp(true), Name: "Alice — developer (group dev)", Groups: []string{"dev"}},
	{Subject: "bob", Email: "bob@example.com", EmailVerified: boolp(true), Name: "Bob — approver and auditor (group sre)", Groups: []string{"sre"}},
}

func boolp(b bool) *bool { return &b }

// Config configures Start. It is checked once, in Start.
type Config struct {
	// Dir holds everything the demo keeps: the generated config, the CA keys
	// and the recordings (data/), the log, the target's host key and home.
	// Created when missing; nothing in it is removed on Close. Required.
	Dir string
	// SSHAddr, HTTPAddr and IssuerAddr are where the bastion's SSH and HTTP
	// listeners and the identity provider should listen: IPv4 loopback
	// addresses only. Empty means the defaults above; a busy address falls back to a
	// free port on the same IP ("…:0" asks for a free port directly).
	SSHAddr, HTTPAddr, IssuerAddr string
	// NoPostgres skips the demo database even when PostgreSQL is installed.
	NoPostgres bool
	// PostgresBinDir holds initdb and postgres; empty means
	// /usr/lib/postgresql/15/bin, else PATH.
	PostgresBinDir string
	// Out receives progress lines while starting (PostgreSQL takes a few
	// seconds); nil discards.
	Out io.Writer
	// Logger receives the logs of the bastion, the identity provider and the
	// target; nil means text lines appended to Dir/bastion.log.
	Logger *slog.Logger
	// Now is the clock; nil means time.Now.
	Now func() time.Time
}

// Demo is a running demo: the development identity provider, the demo SSH
// target, the demo database (when PostgreSQL is installed) and the bastion
// between them, all on loopback.
type Demo struct {
	Dir           string // absolute
	ConfigPath    string // the generated bastion config
	DataDir       string // CA keys and recordings
	LogPath       string // empty when Config.Logger was given
	Home          string // the demo target's home directory
	SSHConfigPath string // where the guide writes `bastion ssh-config`
	BobConfigDir  string // XDG_CONFIG_HOME for the second user

	BastionURL string // http://127.0.0.1:8443
	SSHAddr    string // 127.0.0.1:2222
	IssuerURL  string // http://127.0.0.1:8444
	TargetAddr string // the demo SSH target
	DBAddr     string // the demo PostgreSQL; empty without it
	// PostgresAddr is the bastion's PostgreSQL listener (with the demo
	// database only).
	PostgresAddr string
	DBVersion    string
	DBSkipped    string   // why there is no database, when there is none
	Notes        []string // fallbacks and warnings worth showing

	// App is the bastion, started through internal/app as `bastion serve` does.
	App *app.App
	// Logger is where the demo's parts log.
	Logger *slog.Logger

	closers   []func(context.Context) error
	closeOnce sync.Once
	closeErr  error
}

// Start checks cfg, prepares Dir and starts every part. On error, whatever
// was started is stopped again.
func Start(ctx context.Context, cfg Config) (_ *Demo, err error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("demo: %w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	if cfg.Dir == "" {
		return nil, bad("a directory is required")
	}
	dir, err := filepath.Abs(cfg.Dir)
	if err != nil {
		return nil, bad("directory %q: %v", cfg.Dir, err)
	}
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&cfg.SSHAddr, DefaultSSHAddr)
	def(&cfg.HTTPAddr, DefaultHTTPAddr)
	def(&cfg.IssuerAddr, DefaultIssuerAddr)
	for name, a := range map[string]string{"ssh": cfg.SSHAddr, "http": cfg.HTTPAddr, "issuer": cfg.IssuerAddr} {
		if err := checkLoopback(a); err != nil {
			return nil, bad("%s address: %v", name, err)
		}
	}
	if cfg.Out == nil {
		cfg.Out = io.Discard
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}

	d := &Demo{
		Dir:           dir,
		ConfigPath:    filepath.Join(dir, "bastion.yaml"),
		DataDir:       filepath.Join(dir, "data"),
		Home:          filepath.Join(dir, TargetName, "home"),
		SSHConfigPath: filepath.Join(dir, "ssh_config"),
		BobConfigDir:  filepath.Join(dir, "bob"),
	}
	defer func() {
		if err != nil {
			d.Close(context.Background())
		}
	}()
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := d.lock(); err != nil {
		return nil, err
	}
	d.Logger = cfg.Logger
	if d.Logger == nil {
		d.LogPath = filepath.Join(dir, "bastion.log")
		f, err := os.OpenFile(d.LogPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
		if err != nil {
			return nil, fmt.Errorf("demo: log: %w", err)
		}
		d.onClose(func(context.Context) error { return f.Close() })
		d.Logger = slog.New(slog.NewTextHandler(f, nil))
	}

	keys, err := ca.LoadOrCreateKeys(d.DataDir)
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	auth, err := ca.New(ca.Config{Keys: keys, Now: cfg.Now})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}

	// Listeners first, so the config names the ports actually in use.
	sshLn, err := d.listen("bastion SSH", cfg.SSHAddr)
	if err != nil {
		return nil, err
	}
	httpLn, err := d.listen("bastion HTTP", cfg.HTTPAddr)
	if err != nil {
		return nil, err
	}
	idpLn, err := d.listen("identity provider", cfg.IssuerAddr)
	if err != nil {
		return nil, err
	}
	targetLn, err := d.listen("demo target", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	d.SSHAddr = sshLn.Addr().String()
	d.BastionURL = "http://" + httpLn.Addr().String()
	d.IssuerURL = "http://" + idpLn.Addr().String()
	d.TargetAddr = targetLn.Addr().String()

	if err := d.startIssuer(idpLn, cfg.Now); err != nil {
		return nil, err
	}
	hostKeyLine, err := d.startTarget(targetLn, keys.TargetCA.PublicKey(), cfg.Now)
	if err != nil {
		return nil, err
	}
	if cfg.NoPostgres {
		d.DBSkipped = "skipped (--no-postgres)"
	} else if bin, err := findPostgres(cfg.PostgresBinDir); err != nil {
		d.DBSkipped = err.Error()
	} else {
		fmt.Fprintf(cfg.Out, "Starting a demo PostgreSQL (%s)…\n", bin)
		var pg *localsvc.Postgres
		pgCfg, err := postgresConfig(bin, auth)
		if err == nil {
			pg, err = localsvc.StartPostgres(ctx, pgCfg)
		}
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			// The rest of the demo still works; say why there is no database.
			d.DBSkipped = "PostgreSQL did not start: " + firstLine(err.Error())
			d.Logger.Warn("demo database not started", "err", err)
		} else {
			d.onClose(func(context.Context) error { pg.Stop(); return nil })
			d.DBAddr, d.DBVersion = pg.Addr, postgresVersion(bin)
			if want := net.JoinHostPort("127.0.0.1", strconv.Itoa(defaultDBPort)); pg.Addr != want {
				d.Notes = append(d.Notes, fmt.Sprintf("demo database: %s is busy; using %s instead", want, pg.Addr))
			}
		}
	}

	var pgLn net.Listener
	if d.DBAddr != "" {
		// The bastion's own PostgreSQL listener, for programs (no ssh -L).
		if pgLn, err = d.listen("bastion PostgreSQL", "127.0.0.1:0"); err != nil {
			return nil, err
		}
		d.PostgresAddr = pgLn.Addr().String()
	}
	if err := d.writeConfig(hostKeyLine); err != nil {
		return nil, err
	}
	bcfg, err := config.Load(d.ConfigPath)
	if err != nil {
		return nil, fmt.Errorf("demo: the generated config does not load: %w", err)
	}
	d.App, err = app.New(bcfg, app.Options{Logger: d.Logger, SSHListener: sshLn, HTTPListener: httpLn, PostgresListener: pgLn, Now: cfg.Now})
	if err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	d.onClose(d.App.Shutdown)
	if err := d.App.Start(); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	return d, nil
}

// Close stops every part, newest first: the bastion (sessions get until
// ctx is done to finish), the database, the target, the identity provider.
// It removes nothing from Dir. It is safe to call more than once.
func (d *Demo) Close(ctx context.Context) error {
	d.closeOnce.Do(func() {
		for i := len(d.closers) - 1; i >= 0; i-- {
			if err := d.closers[i](ctx); err != nil && d.closeErr == nil {
				d.closeErr = err
			}
		}
	})
	return d.closeErr
}

func (d *Demo) onClose(f func(context.Context) error) { d.closers = append(d.closers, f) }

// lock takes an exclusive lock on Dir/demo.lock for the demo's lifetime,
// so two demos never share a data directory.
func (d *Demo) lock() error {
	path := filepath.Join(d.Dir, "demo.lock")
	f, err := os.OpenFile(path, os.O_CREATE|os.O_RDWR, 0o600)
	if err != nil {
		return fmt.Errorf("demo: %w", err)
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
		f.Close()
		if errors.Is(err, syscall.EWOULDBLOCK) {
			return fmt.Errorf("demo: %w (%s); stop it first, or use --dir", ErrBusy, d.Dir)
		}
		return fmt.Errorf("demo: lock %s: %w", path, err)
	}
	d.onClose(func(context.Context) error { return f.Close() })
	return nil
}

// listen listens on addr, or, when it is busy, on a free port of the same
// IP, and notes the fallback.
func (d *Demo) listen(what, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		host, _, _ := net.SplitHostPort(addr)
		ln2, err2 := net.Listen("tcp", net.JoinHostPort(host, "0"))
		if err2 != nil {
			return nil, fmt.Errorf("demo: %s: listen on %s: %w", what, addr, err)
		}
		ln = ln2
		d.Notes = append(d.Notes, fmt.Sprintf("%s: %s is busy; using %s instead", what, addr, ln.Addr()))
	}
	d.onClose(func(context.Context) error { ln.Close(); return nil })
	return ln, nil
}

// startIssuer serves the development identity provider on ln.
func (d *Demo) startIssuer(ln net.Listener, now func() time.Time) error {
	idp, err := devidp.New(devidp.Config{
		Issuer:  "http://" + ln.Addr().String(),
		Users:   Users,
		Clients: []devidp.Client{{ID: ClientID, RedirectURIs: []string{"http://127.0.0.1/callback", "http://127.0.0.1/auth/callback"}, Device: true}},
		// People read the device code and click; give them time.
		IDTokenLifetime: 5 * time.Minute,
		Now:             now,
		Logger:          d.Logger.With("component", "devidp"),
	})
	if err != nil {
		return fmt.Errorf("demo: identity provider: %w", err)
	}
	srv := &http.Server{
		Handler:           idp.Handler(),
		ReadHeaderTimeout: 10 * time.Second,
		ErrorLog:          slog.NewLogLogger(d.Logger.Handler(), slog.LevelDebug),
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		srv.Serve(ln)
	}()
	d.onClose(func(context.Context) error {
		srv.Close()
		<-done
		return idp.Close()
	})
	return nil
}

// startTarget prepares the target's home and host key and serves it on ln.
// It returns the host key line the config pins.
func (d *Demo) startTarget(ln net.Listener, targetCA gossh.PublicKey, now func() time.Time) (string, error) {
	if err := writeHome(d.Home); err != nil {
		return "", err
	}
	hostKey, err := loadOrCreateHostKey(filepath.Join(d.Dir, TargetName, "ssh_host_ed25519_key"))
	if err != nil {
		return "", err
	}
	t, err := NewTarget(TargetConfig{
		Name: TargetName, TrustedCA: targetCA, HostKey: hostKey, Home: d.Home, Now: now,
		Logger: d.Logger,
	})
	if err != nil {
		return "", err
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		if err := t.Serve(ln); err != nil {
			d.Logger.Error("demo target", "err", err)
		}
	}()
	d.onClose(func(context.Context) error {
		err := t.Close()
		<-done
		return err
	})
	return t.HostKeyLine(), nil
}

// loadOrCreateHostKey keeps the target's host key across runs, so the
// pinned key in the config stays the same.
func loadOrCreateHostKey(path string) (gossh.Signer, error) {
	if b, err := os.ReadFile(path); err == nil {
		s, err := gossh.ParsePrivateKey(b)
		if err != nil {
			return nil, fmt.Errorf("demo: target host key %s: %w", path, err)
		}
		return s, nil
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("demo: target host key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("demo: target host key: %w", err)
	}
	block, err := gossh.MarshalPrivateKey(priv, "bastion demo target "+TargetName)
	if err != nil {
		return nil, fmt.Errorf("demo: target host key: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("demo: %w", err)
	}
	if err := os.WriteFile(path, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, fmt.Errorf("demo: target host key: %w", err)
	}
	return gossh.NewSignerFromKey(priv)
}

// checkLoopback accepts host:port with a loopback IP.
func checkLoopback(addr string) error {
	host, port, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%q is not host:port", addr)
	}
	// IPv4 only: the guide's ssh -J and ssh_config lines name the host bare.
	if ip := net.ParseIP(host); ip == nil || ip.To4() == nil || !ip.IsLoopback() {
		return fmt.Errorf("%q: the demo listens on IPv4 loopback addresses (127.0.0.0/8) only", addr)
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		return fmt.Errorf("%q: bad port", addr)
	}
	return nil
}

func firstLine(s string) string {
	for i := 0; i < len(s); i++ {
		if s[i] == '\n' {
			return s[:i]
		}
	}
	return s
}
