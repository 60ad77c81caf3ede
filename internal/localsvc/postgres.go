package localsvc

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"maps"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresBinDir is where Debian's postgresql-15 package installs the
// server binaries.
const PostgresBinDir = "/usr/lib/postgresql/15/bin"

// PostgresSuperuser is the bootstrap superuser initdb creates.
const PostgresSuperuser = "postgres"

// CheckPostgresBinDir returns why dir does not hold the server programs
// (initdb and postgres), or nil when it does.
func CheckPostgresBinDir(dir string) error {
	for _, b := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
			return fmt.Errorf("%s has no %s", dir, b)
		}
	}
	return nil
}

// PostgresConfig configures StartPostgres. It is checked once, in
// StartPostgres.
type PostgresConfig struct {
	// BinDir holds initdb and postgres. Empty means PostgresBinDir.
	BinDir string
	// Name prefixes the cluster's temporary directory (Name-*) and labels
	// what is written to pg_hba.conf and postgresql.conf. Empty means
	// "localsvc-pg".
	Name string
	// ServerCert is the server's certificate chain and key (ssl_cert_file,
	// ssl_key_file); it should name 127.0.0.1. Required.
	ServerCert tls.Certificate
	// ClientCA is the PEM of the CA whose client certificates the server
	// accepts (ssl_ca_file), the certificate's CN being the database user.
	// Required.
	ClientCA []byte
	// SuperuserTLS connects as PostgresSuperuser: it verifies the server
	// (ServerName 127.0.0.1) and presents a client certificate for the
	// superuser signed by ClientCA. Required: StartPostgres waits for the
	// server and seeds it through this connection.
	SuperuserTLS *tls.Config
	// Port is tried first when it is free; zero means any free port.
	Port int
	// Settings are extra postgresql.conf lines (name = value, the value
	// quoted by the caller when PostgreSQL needs quotes); they replace the
	// defaults of the same name.
	Settings map[string]string
	// Roles are created as LOGIN roles without a password, then Databases
	// (owned by the superuser), then Seed runs, in that order.
	Roles     []string
	Databases []string
	Seed      []SeedSQL
	// ReadyTimeout bounds the wait for the server to accept the superuser
	// on each attempt; zero means 90s.
	ReadyTimeout time.Duration
}

// SeedSQL is SQL (one or more statements, run with the simple protocol)
// the superuser runs in a database.
type SeedSQL struct {
	DB, SQL string
}

// defaultSettings are the postgresql.conf lines every cluster gets: TLS
// on loopback only, no Unix socket, durability off (the cluster is thrown
// away), a small footprint.
var defaultSettings = map[string]string{
	"listen_addresses":        "'127.0.0.1'",
	"unix_socket_directories": "''",
	"ssl":                     "on",
	"ssl_cert_file":           "'server.crt'",
	"ssl_key_file":            "'server.key'",
	"ssl_ca_file":             "'client-ca.crt'",
	"fsync":                   "off",
	"synchronous_commit":      "off",
	"full_page_writes":        "off",
	"shared_buffers":          "32MB",
	"max_connections":         "60",
	"log_min_messages":        "warning",
	"log_line_prefix":         "'%m [%p] '",
}

// Postgres is a running cluster.
type Postgres struct {
	// Host is always 127.0.0.1; Port is the TCP port; Addr is host:port.
	Host string
	Port int
	Addr string
	// BinDir holds initdb and postgres (and usually psql and pgbench).
	BinDir string
	// DataDir is the cluster's data directory; LogFile the server's output.
	DataDir string
	LogFile string

	base     string // the temporary directory holding DataDir and LogFile
	su       *tls.Config
	cmd      *exec.Cmd
	exited   chan error
	stopOnce sync.Once
}

// StartPostgres initialises a cluster in a fresh temporary directory (which
// the postgres system user can reach when we are root), starts it on
// loopback, waits until it accepts the superuser over TLS, creates the
// roles and databases and runs the seed SQL. Stop shuts it down and
// removes the directory. On error nothing is left running.
//
// The cluster accepts only TLS connections authenticated by a client
// certificate (`hostssl all all 127.0.0.1/32 cert`), so no password exists
// anywhere.
func StartPostgres(ctx context.Context, cfg PostgresConfig) (_ *Postgres, err error) {
	if cfg.BinDir == "" {
		cfg.BinDir = PostgresBinDir
	}
	if cfg.Name == "" {
		cfg.Name = "localsvc-pg"
	}
	if cfg.ReadyTimeout == 0 {
		cfg.ReadyTimeout = 90 * time.Second
	}
	switch {
	case len(cfg.ServerCert.Certificate) == 0:
		return nil, errors.New("postgres: a server certificate is required")
	case len(cfg.ClientCA) == 0:
		return nil, errors.New("postgres: a client CA is required")
	case cfg.SuperuserTLS == nil:
		return nil, errors.New("postgres: a TLS config for the superuser is required")
	}
	runAs, err := Credential()
	if err != nil {
		return nil, err
	}
	parent := ""
	if runAs != nil && !Reachable(os.TempDir()) {
		parent = "/tmp" // TMPDIR is private to root: the postgres user could not reach it
	}
	p := &Postgres{Host: "127.0.0.1", BinDir: cfg.BinDir, su: cfg.SuperuserTLS}
	if p.base, err = os.MkdirTemp(parent, cfg.Name+"-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.Stop()
		}
	}()
	// The postgres user must be able to reach its data directory below base.
	if err := os.Chmod(p.base, 0o711); err != nil {
		return nil, err
	}
	p.DataDir = filepath.Join(p.base, "data")
	p.LogFile = filepath.Join(p.base, "postgres.log")
	if err := os.Mkdir(p.DataDir, 0o700); err != nil {
		return nil, err
	}
	chown := func(path string) error {
		if runAs == nil {
			return nil
		}
		if err := os.Chown(path, int(runAs.Uid), int(runAs.Gid)); err != nil {
			return fmt.Errorf("chown %s: %w", path, err)
		}
		return nil
	}
	if err := chown(p.DataDir); err != nil {
		return nil, err
	}

	initdb := exec.CommandContext(ctx, filepath.Join(p.BinDir, "initdb"), "-D", p.DataDir, "-U", PostgresSuperuser,
		"-E", "UTF8", "--no-locale", "-N", "--auth=reject")
	initdb.Env = Env()
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: runAs}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, tail(out, 2000))
	}

	// TLS material and the authentication rules: certificates only, TCP on
	// loopback only.
	certPEM, keyPEM, err := pemPair(cfg.ServerCert)
	if err != nil {
		return nil, fmt.Errorf("postgres: server certificate: %w", err)
	}
	files := map[string][]byte{
		"server.crt":    certPEM,
		"server.key":    keyPEM,
		"client-ca.crt": cfg.ClientCA,
		"pg_hba.conf":   []byte("# " + cfg.Name + ": certificate authentication only, no passwords\nhostssl all all 127.0.0.1/32 cert\n"),
	}
	for name, body := range files {
		path := filepath.Join(p.DataDir, name)
		if err := os.WriteFile(path, body, 0o600); err != nil {
			return nil, err
		}
		if err := chown(path); err != nil {
			return nil, err
		}
	}
	if err := appendSettings(filepath.Join(p.DataDir, "postgresql.conf"), cfg.Name, cfg.Settings); err != nil {
		return nil, err
	}

	for attempt := range 3 {
		port := cfg.Port
		if attempt > 0 || port == 0 || !portFree(port) {
			if port, err = FreeLoopbackPort(); err != nil {
				return nil, err
			}
		}
		if err = p.run(ctx, port, runAs, cfg.ReadyTimeout); err == nil || ctx.Err() != nil {
			break
		}
	}
	if err != nil {
		return nil, err
	}

	for _, r := range cfg.Roles {
		if err := p.Exec(ctx, "postgres", "CREATE ROLE "+pgx.Identifier{r}.Sanitize()+" LOGIN"); err != nil {
			return nil, err
		}
	}
	for _, d := range cfg.Databases {
		if err := p.Exec(ctx, "postgres", "CREATE DATABASE "+pgx.Identifier{d}.Sanitize()); err != nil {
			return nil, err
		}
	}
	for _, s := range cfg.Seed {
		if err := p.Exec(ctx, s.DB, s.SQL); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// appendSettings appends the default settings, overridden and extended by
// extra, to postgresql.conf, in name order.
func appendSettings(path, label string, extra map[string]string) error {
	settings := maps.Clone(defaultSettings)
	maps.Copy(settings, extra)
	var b strings.Builder
	b.WriteString("\n# " + label + "\n")
	for _, k := range slices.Sorted(maps.Keys(settings)) {
		fmt.Fprintf(&b, "%s = %s\n", k, settings[k])
	}
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return err
	}
	if _, err := f.WriteString(b.String()); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// run starts postgres on port and waits until it accepts the superuser
// over TLS.
func (p *Postgres) run(ctx context.Context, port int, runAs *syscall.Credential, timeout time.Duration) error {
	logf, err := os.OpenFile(p.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(p.BinDir, "postgres"), "-D", p.DataDir, "-p", strconv.Itoa(port))
	cmd.Env = Env()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C at the terminal goes to our process,
	// which then stops the database in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: runAs, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()

	p.Port = port
	p.Addr = net.JoinHostPort(p.Host, strconv.Itoa(port))
	deadline := time.Now().Add(timeout)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("postgres exited: %v\n%s", err, TailFile(p.LogFile, 4000))
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := p.Connect(cctx, PostgresSuperuser, "postgres", p.su)
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			p.cmd, p.exited = cmd, exited
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			return fmt.Errorf("postgres not ready: %v\n%s", err, TailFile(p.LogFile, 4000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// Stop shuts the cluster down (fast: roll back open transactions,
// disconnect clients, exit; killed after 20s) and removes its directory.
// Calling it again does nothing.
func (p *Postgres) Stop() {
	p.stopOnce.Do(func() {
		if p.cmd != nil {
			_ = p.cmd.Process.Signal(syscall.SIGINT)
			select {
			case <-p.exited:
			case <-time.After(20 * time.Second):
				_ = syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
				<-p.exited
			}
		}
		if p.base != "" {
			_ = os.RemoveAll(p.base)
		}
	})
}

// Connect opens a pgx connection as user to db over TLS with tlsCfg, which
// must present a client certificate for user.
func (p *Postgres) Connect(ctx context.Context, user, db string, tlsCfg *tls.Config) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", p.Host, p.Port, quoteConnValue(user), quoteConnValue(db)))
	if err != nil {
		return nil, err
	}
	cfg.TLSConfig = tlsCfg
	cfg.Fallbacks = nil
	return pgx.ConnectConfig(ctx, cfg)
}

// Exec runs sql (one or more statements, simple protocol) as the superuser
// in db.
func (p *Postgres) Exec(ctx context.Context, db, sql string) error {
	conn, err := p.Connect(ctx, PostgresSuperuser, db, p.su)
	if err != nil {
		return fmt.Errorf("connect to postgres database %q: %w", db, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
		return fmt.Errorf("exec in %q: %w\nSQL: %s", db, err, sql)
	}
	return nil
}

// Tool returns the path of a PostgreSQL client program (psql, pgbench):
// the cluster's own version when installed, else whatever PATH finds.
func (p *Postgres) Tool(name string) (string, error) {
	return PostgresTool(p.BinDir, name)
}

// PostgresTool returns binDir/name when it exists, else name from PATH.
func PostgresTool(binDir, name string) (string, error) {
	if path := filepath.Join(binDir, name); fileExists(path) {
		return path, nil
	}
	path, err := exec.LookPath(name)
	if err != nil {
		return "", fmt.Errorf("%s not installed", name)
	}
	return path, nil
}

// WriteLibpqFiles writes a client certificate and key and the server CA to
// dir (0600), named after user, for libpq tools (psql, pgbench): sslcert,
// sslkey and sslrootcert.
func WriteLibpqFiles(dir, user string, cert tls.Certificate, serverCA []byte) (certFile, keyFile, rootFile string, err error) {
	certPEM, keyPEM, err := pemPair(cert)
	if err != nil {
		return "", "", "", err
	}
	safe := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' {
			return r
		}
		return '_'
	}, user)
	certFile = filepath.Join(dir, safe+".crt")
	keyFile = filepath.Join(dir, safe+".key")
	rootFile = filepath.Join(dir, "server-ca.crt")
	for path, body := range map[string][]byte{certFile: certPEM, keyFile: keyPEM, rootFile: serverCA} {
		if err := os.WriteFile(path, body, 0o600); err != nil {
			return "", "", "", err
		}
	}
	return certFile, keyFile, rootFile, nil
}

func fileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func quoteConnValue(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}

// portFree reports whether port on 127.0.0.1 can be listened on now.
func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}
