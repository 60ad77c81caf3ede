// Package app wires the bastion's parts together from a config: the CA, the
// recorder store, the SSH server and the HTTP API. `bastion serve`, `bastion
// demo` and the end-to-end tests all start the bastion through it, so what
// the tests exercise is what runs in production.
package app

import (
	"context"
	"crypto"
	"crypto/subtle"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/bastion/pgproxy"
	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/auditsink"
	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/console"
	"github.com/bastionhq/bastion/recorder"
)

// StoreFile is the bbolt file inside the data directory.
const StoreFile = "bastion.db"

// Options are what a caller adds to the config.
type Options struct {
	// Logger; nil logs text to stderr at the config's level.
	Logger *slog.Logger
	// SSHListener and HTTPListener, when set, are used instead of
	// listening on the config's addresses (tests pass loopback :0).
	SSHListener  net.Listener
	HTTPListener net.Listener
	// PostgresListener, when set, serves the direct PostgreSQL listener
	// even when listen.postgres is empty.
	PostgresListener net.Listener
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// App is a running bastion.
type App struct {
	Config    *config.Config
	Keys      *ca.Keys
	Store     *recorder.Store
	Authority *ca.Authority
	Verifier  *ca.Verifier
	SSH       *bastion.Server
	Metrics   *bastion.Metrics
	Log       *slog.Logger

	policy  atomic.Pointer[policy.Policy]
	sshLn   net.Listener
	httpLn  net.Listener
	pgLn    net.Listener // nil without listen.postgres
	httpSrv *http.Server
	caSrv   *ca.Server
	console *console.Console // nil when disabled
	// metricsLn and metricsSrv serve /metrics when metrics.listen is set.
	metricsLn  net.Listener
	metricsSrv *http.Server
	now        func() time.Time
	controlLn  net.Listener // the control socket (bastion backup)
	registry   *prometheus.Registry
	stop       chan struct{}
	sinks      *auditsink.Shipper // nil without audit sinks
	wg         sync.WaitGroup
	closed     sync.Once
}

// New builds every part from cfg and opens the store. Nothing listens
// until Start.
func New(cfg *config.Config, opt Options) (_ *App, err error) {
	log := opt.Logger
	if log == nil {
		log = NewLogger(cfg.Log, os.Stderr)
	}
	now := opt.Now
	if now == nil {
		now = time.Now
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, fmt.Errorf("data_dir: %w", err)
	}
	a := &App{Config: cfg, Log: log, stop: make(chan struct{}), registry: prometheus.NewRegistry(), now: now}
	flushes := prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "bastion_recording_flush_seconds", Help: "Duration of each group commit of recordings, by result.",
		Buckets: prometheus.ExponentialBuckets(0.0005, 2, 14),
	}, []string{"result"})
	flushes.WithLabelValues("ok") // at zero from the first scrape
	flushes.WithLabelValues("error")
	a.registry.MustRegister(flushes)
	pol, err := CompilePolicy(cfg)
	if err != nil {
		return nil, err
	}
	a.policy.Store(pol)
	var previousSealKeys []crypto.PublicKey
	if a.Keys, previousSealKeys, err = loadKeys(cfg, log); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			a.Keys.Close()
		}
	}()
	mode, err := recorder.ParseMode(cfg.Recording.Mode)
	if err != nil {
		return nil, err
	}
	rc := recorder.Config{
		Path:              filepath.Join(cfg.DataDir, StoreFile),
		Mode:              mode,
		FlushInterval:     cfg.Recording.FlushInterval.D,
		SessionByteBudget: int64(cfg.Recording.MaxBytes),
		RecordInput:       cfg.Recording.Input,
		Retention:         cfg.Recording.Retention.D,
		SealKey:           a.Keys.SealKey,
		PreviousSealKeys:  previousSealKeys,
		Now:               now,
		Logger:            log.With("component", "recorder"),
		OnFlush: func(d time.Duration, _ int, err error) {
			result := "ok"
			if err != nil {
				result = "error"
			}
			flushes.WithLabelValues(result).Observe(d.Seconds())
		},
	}
	if p := cfg.Store.Postgres; p != nil {
		rc.Path = ""
		rc.Postgres = &recorder.PostgresConfig{DSN: p.ResolveDSN(), Name: p.Name, Lease: p.Lease.D}
	}
	a.Store, err = recorder.Open(rc)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			a.Store.Close()
		}
	}()
	a.Authority, err = ca.New(ca.Config{
		Keys:        a.Keys,
		UserTTL:     cfg.Certs.UserTTL.D,
		MaxUserTTL:  cfg.Certs.MaxUserTTL.D,
		WorkloadTTL: cfg.Certs.WorkloadTTL.D,
		TargetTTL:   cfg.Certs.TargetTTL.D,
		// The store's clock: with replicas, the database's, which a user's
		// revocation on any replica is stamped by too.
		Now: a.Store.Now,
	})
	if err != nil {
		return nil, err
	}
	wl := make([]ca.Workload, len(cfg.OIDC.Workload))
	for i, w := range cfg.OIDC.Workload {
		wl[i] = ca.Workload{Issuer: w.Issuer, Audience: w.Audience, Subject: w.Subject, Name: w.Name, Groups: w.Groups,
			ActorClaim: w.ActorClaim, Actors: w.Actors}
	}
	a.Verifier, err = ca.NewVerifier(ca.OIDCConfig{
		Issuer:        cfg.OIDC.Issuer,
		ClientID:      cfg.OIDC.ClientID,
		UsernameClaim: cfg.OIDC.UsernameClaim,
		GroupsClaim:   cfg.OIDC.GroupsClaim,
		EmailDomains:  cfg.OIDC.EmailDomains,
		Algorithms:    cfg.OIDC.Algorithms,
		Workloads:     wl,
		Now:           now,
	})
	if err != nil {
		return nil, err
	}
	a.Metrics = bastion.NewMetrics()
	a.registry.MustRegister(a.Metrics.Collectors()...)
	a.registry.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	a.SSH, err = bastion.New(bastion.Config{
		Authority:           a.Authority,
		Policy:              a.Policy,
		Recorder:            recorderAdapter{a.Store},
		Auditor:             auditAdapter{a.Store},
		Revocations:         a.Store,
		Pins:                a.Store,
		Names:               hostNames(cfg),
		IdleTimeout:         cfg.Sessions.IdleTimeout.D,
		MaxSessionDuration:  cfg.Sessions.MaxDuration.D,
		StartupTimeout:      cfg.Sessions.StartupTimeout.D,
		EnvAllow:            cfg.Sessions.EnvAllow,
		MaxStartups:         cfg.Sessions.MaxStartups,
		MaxChannels:         cfg.Sessions.MaxChannels,
		DisconnectExpired:   cfg.Sessions.DisconnectExpiredCert,
		MaxSessionsPerUser:  cfg.Sessions.MaxPerUser,
		ApprovalWebhook:     cfg.Approvals.Webhook,
		MaxPendingApprovals: cfg.Approvals.MaxPending,
		ApprovalURL:         approvalURL(cfg),
		Approvals:           approvalBoard(a.Store),
		Admin:               a.adminCommands(),
		Metrics:             a.Metrics,
		Logger:              log.With("component", "ssh"),
		Now:                 now,
		OwnAddrs:            a.ownAddrs,
	})
	if err != nil {
		return nil, err
	}
	a.sshLn, a.httpLn, a.pgLn = opt.SSHListener, opt.HTTPListener, opt.PostgresListener
	return a, nil
}

// approvalURL links approval requests to their console page, when the
// console has a public URL.
func approvalURL(cfg *config.Config) func(string) string {
	if cfg.Console.Disabled || cfg.Console.URL == "" {
		return nil
	}
	base := strings.TrimRight(cfg.Console.URL, "/")
	return func(id string) string { return base + "/approvals/" + id }
}

// newConsole builds the web console from the config.
func (a *App) newConsole() (*console.Console, error) {
	cc := a.Config.Console
	clientID := cc.ClientID
	if clientID == "" {
		clientID = a.Config.OIDC.ClientID
	}
	var secret string
	if cc.ClientSecretEnv != "" {
		if secret = os.Getenv(cc.ClientSecretEnv); secret == "" {
			return nil, fmt.Errorf("console.client_secret_env: $%s is empty", cc.ClientSecretEnv)
		}
	}
	return console.New(console.Config{
		Store: a.Store, Approvals: a.SSH, Caller: a.SSH.Caller, Verifier: a.Verifier,
		Issuer: a.Config.OIDC.Issuer, ClientID: clientID, ClientSecret: secret, Scopes: a.Config.OIDC.Scopes,
		PublicURL: cc.URL, TLS: a.Config.TLS != nil, SessionTTL: a.Config.Certs.UserTTL.D,
		Logger: a.Log.With("component", "console"), Now: a.now,
	})
}

// CompilePolicy compiles cfg's targets, roles and rules, with the checks
// that need the bastion's own parts (the SQL statement kinds pgproxy gives).
func CompilePolicy(cfg *config.Config) (*policy.Policy, error) {
	spec := cfg.PolicySpec()
	spec.KnownSQLKind = pgproxy.KnownKind
	return policy.Compile(spec)
}

// Policy returns the policy in force.
func (a *App) Policy() *policy.Policy { return a.policy.Load() }

// Reload compiles cfg's targets, roles and rules and swaps them in; live
// sessions keep running and their next decision uses the new policy (those it
// no longer allows are ended). Only the policy is reloaded: a change to any
// other section is named in a warning, since it takes effect at a restart.
func (a *App) Reload(cfg *config.Config) error {
	pol, err := CompilePolicy(cfg)
	if err != nil {
		return err
	}
	a.policy.Store(pol)
	a.SSH.PolicyReloaded()
	a.Log.Info("policy reloaded", "targets", len(cfg.Targets), "roles", len(cfg.Roles), "rules", len(cfg.Rules))
	ev := recorder.AuditEvent{Type: "config.reload", Outcome: "applied"}
	if stale := restartOnly(a.Config, cfg); len(stale) > 0 {
		a.Log.Warn("reload: these settings changed but take effect only when the bastion restarts; the running ones stay", "sections", strings.Join(stale, ", "))
		ev.Fields = map[string]string{"not_applied": strings.Join(stale, ",")}
	}
	a.Store.Audit(ev)
	return nil
}

// ReloadFile reloads the policy from the config file at path, as SIGHUP does.
// A file that does not load or compile is refused, logged and audited, and the
// policy in force stays.
func (a *App) ReloadFile(path string) error {
	cfg, err := config.Load(path)
	if err == nil {
		err = a.Reload(cfg)
	}
	if err != nil {
		a.Log.Error("reload refused; the previous policy stays in force", "err", err)
		a.Store.Audit(recorder.AuditEvent{Type: "config.reload", Outcome: "refused", Reason: err.Error()})
	}
	return err
}

// restartOnly names the sections other than targets, roles and rules that
// differ between the running config and next.
func restartOnly(running, next *config.Config) []string {
	var out []string
	for _, s := range []struct {
		name string
		a, b any
	}{
		{"listen", running.Listen, next.Listen}, {"public", running.Public, next.Public},
		{"data_dir", running.DataDir, next.DataDir}, {"store", running.Store, next.Store},
		{"ca", running.CA, next.CA}, {"oidc", running.OIDC, next.OIDC}, {"certs", running.Certs, next.Certs},
		{"sessions", running.Sessions, next.Sessions}, {"recording", running.Recording, next.Recording},
		{"approvals", running.Approvals, next.Approvals}, {"audit", running.Audit, next.Audit},
		{"log", running.Log, next.Log}, {"tls", running.TLS, next.TLS}, {"console", running.Console, next.Console},
		{"sql_api", running.SQLAPI, next.SQLAPI}, {"metrics", running.Metrics, next.Metrics},
	} {
		if !reflect.DeepEqual(s.a, s.b) {
			out = append(out, s.name)
		}
	}
	return out
}

// Start listens and serves SSH and HTTP in the background.
func (a *App) Start() error {
	var err error
	if a.sshLn == nil {
		if a.sshLn, err = net.Listen("tcp", a.Config.Listen.SSH); err != nil {
			return fmt.Errorf("listen.ssh: %w", err)
		}
	}
	if a.httpLn == nil {
		if a.httpLn, err = net.Listen("tcp", a.Config.Listen.HTTP); err != nil {
			a.sshLn.Close()
			return fmt.Errorf("listen.http: %w", err)
		}
	}
	if a.pgLn == nil && a.Config.Listen.Postgres != "" {
		if a.pgLn, err = net.Listen("tcp", a.Config.Listen.Postgres); err != nil {
			a.sshLn.Close()
			a.httpLn.Close()
			return fmt.Errorf("listen.postgres: %w", err)
		}
	}
	info := ca.Info{SSHAddress: a.publicSSH(), PostgresAddress: a.publicPostgres(), SQLAPI: a.Config.SQLAPI.Enabled, Scopes: a.Config.OIDC.Scopes,
		ClientSecret: a.Config.OIDC.PublicClientSecret}
	caSrv, err := ca.NewServer(ca.ServerConfig{
		Authority: a.Authority, Verifier: a.Verifier, Auditor: certAuditor{a},
		Info: info, Logger: a.Log.With("component", "ca"), Revoked: a.Store.UserRevoked,
	})
	if err != nil {
		return err
	}
	a.caSrv = caSrv
	mux := http.NewServeMux()
	caSrv.Register(mux)
	if c := a.Config.SQLAPI; c.Enabled {
		a.SSH.SQLHandler(mux, bastion.SQLAPIConfig{Rate: c.Rate, Burst: c.Burst, MaxRows: c.MaxRows, MaxBytes: int(c.MaxBytes), Timeout: c.Timeout.D, MaxConcurrent: c.MaxConcurrent})
	}
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/plain")
		fmt.Fprintln(w, "ok")
	})
	metrics := a.metricsHandler()
	if a.Config.Metrics.Listen == "" {
		mux.Handle("GET /metrics", metrics)
	} else if err := a.startMetrics(metrics); err != nil {
		return err
	}
	if !a.Config.Console.Disabled {
		if a.console, err = a.newConsole(); err != nil {
			return err
		}
		a.console.Register(mux)
	}
	// The server's own errors (TLS handshakes, malformed requests) go
	// through the configured logger, so log.format: json holds for them.
	errLog := slog.NewLogLogger(a.Log.With("component", "http").Handler(), slog.LevelInfo)
	a.httpSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second, WriteTimeout: 30 * time.Second, ErrorLog: errLog}
	httpLn := a.httpLn
	pgNames := postgresNames(a.Config)
	if t := a.Config.TLS; t != nil {
		cert, err := tls.LoadX509KeyPair(t.CertFile, t.KeyFile)
		if err != nil {
			return fmt.Errorf("tls: %w", err)
		}
		if cert.Leaf != nil {
			// Clients reach the PostgreSQL listener by the login URL's host
			// unless public.postgres says otherwise.
			pgNames = append(pgNames, cert.Leaf.DNSNames...)
		}
		httpLn = tls.NewListener(httpLn, &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12})
	} else if !isLoopback(a.httpLn.Addr()) {
		a.Log.Warn("the HTTP listener serves plain HTTP on a non-loopback address; configure tls: clients refuse to send ID tokens over it", "addr", a.httpLn.Addr().String())
	}
	if err := a.startAuditSinks(); err != nil {
		return err
	}
	a.startControl()
	a.wg.Add(3)
	go func() {
		defer a.wg.Done()
		if err := a.SSH.Serve(a.sshLn); err != nil {
			a.Log.Error("ssh server", "err", err)
		}
	}()
	go func() {
		defer a.wg.Done()
		if err := a.httpSrv.Serve(httpLn); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.Log.Error("http server", "err", err)
		}
	}()
	go func() {
		defer a.wg.Done()
		a.purgeLoop()
	}()
	if a.pgLn != nil {
		a.wg.Add(1)
		go func() {
			defer a.wg.Done()
			if err := a.SSH.ServePostgres(a.pgLn, pgNames); err != nil {
				a.Log.Error("postgres listener", "err", err)
			}
		}()
	}
	a.Log.Info("bastion started", "ssh", a.sshLn.Addr().String(), "http", a.httpLn.Addr().String(), "data_dir", a.Config.DataDir)
	return nil
}

// metricsHandler serves the registry, behind the bearer token when
// metrics.token_env names one.
func (a *App) metricsHandler() http.Handler {
	h := promhttp.HandlerFor(a.registry, promhttp.HandlerOpts{ErrorLog: slog.NewLogLogger(a.Log.Handler(), slog.LevelWarn)})
	token := ""
	if a.Config.Metrics.TokenEnv != "" {
		token = os.Getenv(a.Config.Metrics.TokenEnv)
	}
	if token == "" {
		return h
	}
	want := []byte("Bearer " + token)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if subtle.ConstantTimeCompare([]byte(r.Header.Get("Authorization")), want) != 1 {
			w.Header().Set("WWW-Authenticate", `Bearer realm="bastion metrics"`)
			http.Error(w, "a bearer token is required (metrics.token_env)", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// startMetrics serves /metrics alone on metrics.listen.
func (a *App) startMetrics(h http.Handler) error {
	ln, err := net.Listen("tcp", a.Config.Metrics.Listen)
	if err != nil {
		return fmt.Errorf("metrics.listen: %w", err)
	}
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	a.metricsLn = ln
	a.metricsSrv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
		ErrorLog: slog.NewLogLogger(a.Log.With("component", "metrics").Handler(), slog.LevelInfo)}
	a.wg.Add(1)
	go func() {
		defer a.wg.Done()
		if err := a.metricsSrv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			a.Log.Error("metrics server", "err", err)
		}
	}()
	return nil
}

// MetricsAddr is where /metrics is served alone, "" when it is on the
// HTTP listener.
func (a *App) MetricsAddr() string {
	if a.metricsLn == nil {
		return ""
	}
	return a.metricsLn.Addr().String()
}

// SSHAddr and HTTPAddr are the listening addresses after Start.
func (a *App) SSHAddr() string  { return a.sshLn.Addr().String() }
func (a *App) HTTPAddr() string { return a.httpLn.Addr().String() }

// PostgresAddr is the direct PostgreSQL listener's address ("" without one).
func (a *App) PostgresAddr() string {
	if a.pgLn == nil {
		return ""
	}
	return a.pgLn.Addr().String()
}

// ownAddrs are the listeners besides SSH and PostgreSQL that forwards never reach.
func (a *App) ownAddrs() []net.Addr {
	var out []net.Addr
	for _, ln := range []net.Listener{a.httpLn, a.metricsLn} {
		if ln != nil {
			out = append(out, ln.Addr())
		}
	}
	return out
}

// Shutdown stops accepting, lets sessions finish until ctx is done, ends
// the rest with a message, and closes the store.
func (a *App) Shutdown(ctx context.Context) error {
	var err error
	a.closed.Do(func() {
		close(a.stop)
		if a.console != nil {
			a.console.Close() // ends its streams, which Shutdown does not wait for
		}
		for _, srv := range []*http.Server{a.httpSrv, a.metricsSrv} {
			if srv != nil {
				hctx, cancel := context.WithTimeout(ctx, 5*time.Second)
				srv.Shutdown(hctx)
				cancel()
			}
		}
		if a.caSrv != nil {
			a.caSrv.Close() // the summary of refusals held back
		}
		if a.controlLn != nil {
			a.controlLn.Close()
			os.Remove(filepath.Join(a.Config.DataDir, ControlSocket))
		}
		err = a.SSH.Shutdown(ctx)
		a.wg.Wait()
		if a.sinks != nil {
			a.sinks.Close() // what is not delivered yet is delivered at the next start
		}
		if cerr := a.Store.Close(); err == nil {
			err = cerr
		}
		a.Keys.Close() // after the store: the seal key signs the last seals
	})
	return err
}

func (a *App) purgeLoop() {
	if a.Config.Recording.Retention.D <= 0 {
		<-a.stop
		return
	}
	t := time.NewTicker(time.Hour)
	defer t.Stop()
	for {
		if n, err := a.Store.Purge(); err != nil {
			a.Log.Error("retention purge", "err", err)
		} else if n > 0 {
			a.Log.Info("retention purge", "sessions", n)
		}
		select {
		case <-a.stop:
			return
		case <-t.C:
		}
	}
}

// publicSSH is the SSH address clients are told to use.
func (a *App) publicSSH() string {
	if a.Config.Public.SSH != "" {
		return a.Config.Public.SSH
	}
	addr := a.sshLn.Addr().(*net.TCPAddr)
	if addr.IP.IsUnspecified() {
		// Filled in from the Host the client used (see ca.Server).
		return fmt.Sprintf(":%d", addr.Port)
	}
	return addr.String()
}

// publicPostgres is the direct PostgreSQL listener's address clients are
// told to use ("" without one).
func (a *App) publicPostgres() string {
	if a.pgLn == nil {
		return ""
	}
	if a.Config.Public.Postgres != "" {
		return a.Config.Public.Postgres
	}
	addr := a.pgLn.Addr().(*net.TCPAddr)
	if addr.IP.IsUnspecified() {
		return fmt.Sprintf(":%d", addr.Port)
	}
	return addr.String()
}

// postgresNames are the names in the direct PostgreSQL listener's
// certificate: public.postgres's host and the SSH host names (Start adds
// the HTTP certificate's).
func postgresNames(cfg *config.Config) []string {
	names := hostNames(cfg)
	if h, _, err := net.SplitHostPort(cfg.Public.Postgres); err == nil && h != "" {
		names = append([]string{h}, names...)
	}
	return names
}

func hostNames(cfg *config.Config) []string {
	names := []string{"localhost", "127.0.0.1", "::1"}
	if h, err := os.Hostname(); err == nil && h != "" {
		names = append(names, h)
	}
	if cfg.Public.SSH != "" {
		if h, _, err := net.SplitHostPort(cfg.Public.SSH); err == nil && h != "" {
			names = append([]string{h}, names...)
		}
	}
	return names
}

func isLoopback(a net.Addr) bool {
	t, ok := a.(*net.TCPAddr)
	return ok && t.IP.IsLoopback()
}

// NewLogger builds the process logger from the config.
func NewLogger(c config.LogConfig, w *os.File) *slog.Logger {
	var level slog.Level
	level.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// startAuditSinks starts shipping the audit log to the configured sinks.
func (a *App) startAuditSinks() error {
	au := a.Config.Audit
	var sinks []auditsink.Sink
	var spool int64
	if s := au.Syslog; s != nil {
		sink, err := auditsink.NewSyslog(auditsink.SyslogConfig{Address: s.Address, Facility: s.Facility, AppName: s.AppName})
		if err != nil {
			return fmt.Errorf("audit.syslog: %w", err)
		}
		sinks = append(sinks, sink)
		spool = max(spool, int64(s.Spool))
	}
	if w := au.Webhook; w != nil {
		sink, err := auditsink.NewWebhook(auditsink.WebhookConfig{URL: w.URL, CAFile: w.CAFile, Token: os.Getenv(w.TokenEnv)})
		if err != nil {
			return fmt.Errorf("audit.webhook: %w", err)
		}
		sinks = append(sinks, sink)
		spool = max(spool, int64(w.Spool))
	}
	if len(sinks) == 0 {
		return nil
	}
	sh, err := auditsink.New(auditsink.Config{Feed: a.Store, Sinks: sinks, Spool: spool, Logger: a.Log.With("component", "audit-sink")})
	if err != nil {
		return err
	}
	sh.Start()
	a.sinks = sh
	return nil
}
