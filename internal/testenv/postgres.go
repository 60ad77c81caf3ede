// PostgreSQL 15 for tests: a throwaway cluster on a free loopback port that accepts only
// TLS connections authenticated by a client certificate (`hostssl all all 127.0.0.1/32
// cert`), so no password exists anywhere. The server certificate comes from a CA the test
// passes in (or a fresh one), `ssl_ca_file` is the client CA the test passes in.
//
// When the tests run as root (CI containers), initdb and postgres, which refuse to run as
// root, are started as the `postgres` system user with a data directory that user owns.
//
// Without the binaries the caller's test is skipped, except in CI (the CI environment
// variable is set), where it fails: CI installs them and must run these tests.

package testenv

import (
	"bytes"
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"fmt"
	"github.com/bastionhq/bastion/internal/localsvc"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// PostgresBinDir is where Debian's postgresql-15 package installs the server binaries.
const PostgresBinDir = "/usr/lib/postgresql/15/bin"

// PostgresSuperuser is the bootstrap superuser initdb creates.
const PostgresSuperuser = "postgres"

// PostgresOptions configures StartPostgres. The zero value is a usable cluster.
type PostgresOptions struct {
	// ServerCA signs the server certificate (SANs 127.0.0.1 and localhost).
	// nil: a fresh CA, available as Postgres.ServerCA.
	ServerCA *PostgresCA
	// ClientCA becomes ssl_ca_file: the server accepts client certificates it signed,
	// with the certificate's CN as the database user. nil: a fresh CA. Its key must be
	// set: the harness signs its own superuser certificate with it to seed the cluster.
	ClientCA *PostgresCA
	// Roles are created as LOGIN roles without a password before SeedSQL runs.
	Roles []string
	// Databases are created (owned by the superuser) before SeedSQL runs.
	Databases []string
	// SeedSQL runs as the superuser in the "postgres" database, after Roles and
	// Databases exist. Use SeedSQLIn for other databases.
	SeedSQL string
	// SeedSQLIn runs SQL as the superuser in the named database, after SeedSQL.
	SeedSQLIn map[string]string
	// Settings are extra postgresql.conf lines (name = value, value quoted by the caller
	// when PostgreSQL needs quotes).
	Settings map[string]string
}

// PostgresCA is a small X.509 CA for tests: server and client certificates for PostgreSQL.
type PostgresCA struct {
	Cert *x509.Certificate
	Key  crypto.Signer
	// PEM is Cert in PEM form (for ssl_ca_file / sslrootcert).
	PEM []byte
}

// NewPostgresCA makes a self-signed ECDSA P-256 CA valid for a day.
func NewPostgresCA(t testing.TB, name string) *PostgresCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testenv: postgres CA key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          pgRandSerial(t),
		Subject:               pkix.Name{CommonName: name},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(24 * time.Hour),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true,
		IsCA:                  true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatalf("testenv: postgres CA certificate: %v", err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testenv: postgres CA certificate: %v", err)
	}
	return &PostgresCA{Cert: cert, Key: key, PEM: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})}
}

// Pool is a pool holding only this CA.
func (ca *PostgresCA) Pool() *x509.CertPool {
	p := x509.NewCertPool()
	p.AddCert(ca.Cert)
	return p
}

// IssueClient signs a client certificate with CommonName cn (the database user) valid for ttl.
func (ca *PostgresCA) IssueClient(t testing.TB, cn string, ttl time.Duration) tls.Certificate {
	t.Helper()
	return ca.issue(t, cn, nil, nil, ttl, x509.ExtKeyUsageClientAuth)
}

// IssueServer signs a server certificate for the given names and addresses.
func (ca *PostgresCA) IssueServer(t testing.TB, dnsNames []string, ips []net.IP) tls.Certificate {
	t.Helper()
	return ca.issue(t, "postgres-test-server", dnsNames, ips, 24*time.Hour, x509.ExtKeyUsageServerAuth)
}

func (ca *PostgresCA) issue(t testing.TB, cn string, dnsNames []string, ips []net.IP, ttl time.Duration, usage x509.ExtKeyUsage) tls.Certificate {
	t.Helper()
	if ca.Key == nil {
		t.Fatalf("testenv: postgres CA %q has no key", ca.Cert.Subject.CommonName)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatalf("testenv: certificate key: %v", err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: pgRandSerial(t),
		Subject:      pkix.Name{CommonName: cn},
		DNSNames:     dnsNames,
		IPAddresses:  ips,
		NotBefore:    now.Add(-5 * time.Minute),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, key.Public(), ca.Key)
	if err != nil {
		t.Fatalf("testenv: sign certificate for %q: %v", cn, err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatalf("testenv: parse certificate for %q: %v", cn, err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}
}

func pgRandSerial(t testing.TB) *big.Int {
	t.Helper()
	n, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 120))
	if err != nil {
		t.Fatalf("testenv: serial: %v", err)
	}
	return n
}

// Postgres is a running test cluster.
type Postgres struct {
	// Host is always 127.0.0.1; Port is the TCP port; Addr is host:port.
	Host string
	Port int
	Addr string
	// ServerCA signed the server certificate; ClientCA is the server's ssl_ca_file.
	ServerCA *PostgresCA
	ClientCA *PostgresCA
	// BinDir holds initdb, postgres, psql and pgbench.
	BinDir string
	// DataDir is the cluster's data directory; LogFile the server's stderr.
	DataDir string
	LogFile string

	mu    sync.Mutex
	certs map[string]tls.Certificate
}

// PostgresAvailable reports whether the PostgreSQL 15 server binaries are installed.
func PostgresAvailable() bool {
	for _, b := range []string{"initdb", "postgres"} {
		if _, err := os.Stat(filepath.Join(PostgresBinDir, b)); err != nil {
			return false
		}
	}
	return true
}

// RequirePostgres skips the test (fails it in CI) when the PostgreSQL binaries are missing.
func RequirePostgres(t testing.TB) {
	t.Helper()
	if PostgresAvailable() {
		return
	}
	msg := "testenv: PostgreSQL 15 binaries not found under " + PostgresBinDir
	if os.Getenv("CI") != "" {
		t.Fatal(msg + " (required in CI)")
	}
	t.Skip(msg)
}

// StartPostgres initialises and starts a cluster, seeds it and stops it when the test ends.
func StartPostgres(t testing.TB, opts PostgresOptions) *Postgres {
	t.Helper()
	RequirePostgres(t)
	if opts.ServerCA == nil {
		opts.ServerCA = NewPostgresCA(t, "postgres-test-server-ca")
	}
	if opts.ClientCA == nil {
		opts.ClientCA = NewPostgresCA(t, "postgres-test-client-ca")
	}
	if opts.ClientCA.Key == nil {
		t.Fatal("testenv: PostgresOptions.ClientCA needs its key to seed the cluster")
	}

	runAs, err := localsvc.Credential()
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	parent := ""
	if runAs != nil && !localsvc.Reachable(os.TempDir()) {
		parent = "/tmp" // TMPDIR is private to root: the postgres user could not reach it
	}
	base, err := os.MkdirTemp(parent, "pgtest-")
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	t.Cleanup(func() { _ = os.RemoveAll(base) })
	// The postgres user must be able to reach its data directory below base.
	if err := os.Chmod(base, 0o711); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	data := filepath.Join(base, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	chown := func(path string) {
		if runAs == nil {
			return
		}
		if err := os.Chown(path, int(runAs.Uid), int(runAs.Gid)); err != nil {
			t.Fatalf("testenv: chown %s: %v", path, err)
		}
	}
	chown(data)

	p := &Postgres{
		Host: "127.0.0.1", ServerCA: opts.ServerCA, ClientCA: opts.ClientCA,
		BinDir: PostgresBinDir, DataDir: data, LogFile: filepath.Join(base, "postgres.log"),
		certs: map[string]tls.Certificate{},
	}

	initdb := exec.Command(filepath.Join(p.BinDir, "initdb"), "-D", data, "-U", PostgresSuperuser,
		"-E", "UTF8", "--no-locale", "-N", "--auth=reject")
	initdb.Env = localsvc.Env()
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: runAs}
	if out, err := initdb.CombinedOutput(); err != nil {
		t.Fatalf("testenv: initdb: %v\n%s", err, out)
	}

	// TLS material and the authentication rules: certificates only, TCP on loopback only.
	srv := opts.ServerCA.IssueServer(t, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	keyDER, err := x509.MarshalPKCS8PrivateKey(srv.PrivateKey)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	files := map[string][]byte{
		"server.crt":    pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: srv.Certificate[0]}),
		"server.key":    pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		"client-ca.crt": opts.ClientCA.PEM,
		"pg_hba.conf":   []byte("# testenv: certificate authentication only, no passwords\nhostssl all all 127.0.0.1/32 cert\n"),
	}
	for name, body := range files {
		path := filepath.Join(data, name)
		if err := os.WriteFile(path, body, 0o600); err != nil {
			t.Fatalf("testenv: %v", err)
		}
		chown(path)
	}

	settings := map[string]string{
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
	for k, v := range opts.Settings {
		settings[k] = v
	}
	var conf bytes.Buffer
	conf.WriteString("\n# testenv\n")
	for k, v := range settings {
		fmt.Fprintf(&conf, "%s = %s\n", k, v)
	}
	confPath := filepath.Join(data, "postgresql.conf")
	f, err := os.OpenFile(confPath, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if _, err := f.Write(conf.Bytes()); err != nil {
		t.Fatalf("testenv: %v", err)
	}
	if err := f.Close(); err != nil {
		t.Fatalf("testenv: %v", err)
	}

	var lastErr error
	for attempt := 0; attempt < 3; attempt++ {
		port, err := localsvc.FreeLoopbackPort()
		if err != nil {
			t.Fatalf("testenv: %v", err)
		}
		if lastErr = p.start(t, runAs, port); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		t.Fatalf("testenv: start postgres: %v\n%s", lastErr, localsvc.TailFile(p.LogFile, 4000))
	}

	for _, r := range opts.Roles {
		p.ExecIn(t, "postgres", "CREATE ROLE "+pgx.Identifier{r}.Sanitize()+" LOGIN")
	}
	for _, d := range opts.Databases {
		p.ExecIn(t, "postgres", "CREATE DATABASE "+pgx.Identifier{d}.Sanitize())
	}
	if opts.SeedSQL != "" {
		p.ExecIn(t, "postgres", opts.SeedSQL)
	}
	for db, sql := range opts.SeedSQLIn {
		p.ExecIn(t, db, sql)
	}
	return p
}

// start runs postgres on port and waits until it accepts a TLS connection.
func (p *Postgres) start(t testing.TB, runAs *syscall.Credential, port int) error {
	t.Helper()
	logf, err := os.OpenFile(p.LogFile, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o644)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(p.BinDir, "postgres"), "-D", p.DataDir, "-p", strconv.Itoa(port))
	cmd.Env = localsvc.Env()
	cmd.Stdout = logf
	cmd.Stderr = logf
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: runAs, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return err
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()

	p.Port = port
	p.Addr = net.JoinHostPort(p.Host, strconv.Itoa(port))
	deadline := time.Now().Add(90 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("postgres exited: %v", err)
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		conn, err := p.connect(ctx, t, PostgresSuperuser, "postgres")
		cancel()
		if err == nil {
			_ = conn.Close(context.Background())
			break
		}
		if time.Now().After(deadline) {
			_ = cmd.Process.Kill()
			<-exited
			return fmt.Errorf("postgres not ready: %v", err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Cleanup(func() {
		// Fast shutdown: roll back open transactions, disconnect clients, exit.
		_ = cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-exited:
		case <-time.After(20 * time.Second):
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	return nil
}

// ClientCert returns (and caches) a client certificate for the database user, signed by
// the client CA, valid for an hour.
func (p *Postgres) ClientCert(t testing.TB, user string) tls.Certificate {
	t.Helper()
	p.mu.Lock()
	defer p.mu.Unlock()
	if c, ok := p.certs[user]; ok {
		return c
	}
	c := p.ClientCA.IssueClient(t, user, time.Hour)
	p.certs[user] = c
	return c
}

// ServerTLS is a client-side TLS config that fully verifies the server (ServerName
// 127.0.0.1) and presents no certificate.
func (p *Postgres) ServerTLS() *tls.Config {
	return &tls.Config{RootCAs: p.ServerCA.Pool(), ServerName: p.Host, MinVersion: tls.VersionTLS12}
}

// ClientTLS is ServerTLS presenting a client certificate for user.
func (p *Postgres) ClientTLS(t testing.TB, user string) *tls.Config {
	t.Helper()
	cfg := p.ServerTLS()
	cfg.Certificates = []tls.Certificate{p.ClientCert(t, user)}
	return cfg
}

func (p *Postgres) connect(ctx context.Context, t testing.TB, user, db string) (*pgx.Conn, error) {
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%d user=%s dbname=%s sslmode=disable", p.Host, p.Port, pgQuoteConnValue(user), pgQuoteConnValue(db)))
	if err != nil {
		return nil, err
	}
	cfg.TLSConfig = p.ClientTLS(t, user)
	cfg.Fallbacks = nil
	return pgx.ConnectConfig(ctx, cfg)
}

// Connect opens a direct pgx connection (TLS, client certificate) as user to db and closes
// it when the test ends.
func (p *Postgres) Connect(t testing.TB, user, db string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := p.connect(ctx, t, user, db)
	if err != nil {
		t.Fatalf("testenv: connect to postgres as %q: %v", user, err)
	}
	t.Cleanup(func() { _ = conn.Close(context.Background()) })
	return conn
}

// ExecIn runs sql (one or more statements, simple protocol) as the superuser in db.
func (p *Postgres) ExecIn(t testing.TB, db, sql string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	conn, err := p.connect(ctx, t, PostgresSuperuser, db)
	if err != nil {
		t.Fatalf("testenv: connect to postgres database %q: %v", db, err)
	}
	defer conn.Close(context.Background())
	if _, err := conn.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
		t.Fatalf("testenv: exec in %q: %v\nSQL: %s", db, err, sql)
	}
}

// QueryStrings runs a query as the superuser in db and returns the first column of each
// row as text.
func (p *Postgres) QueryStrings(t testing.TB, db, sql string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := p.connect(ctx, t, PostgresSuperuser, db)
	if err != nil {
		t.Fatalf("testenv: connect to postgres database %q: %v", db, err)
	}
	defer conn.Close(context.Background())
	rows, err := conn.Query(ctx, sql, pgx.QueryExecModeSimpleProtocol)
	if err != nil {
		t.Fatalf("testenv: query %q: %v", sql, err)
	}
	var out []string
	for rows.Next() {
		vals, err := rows.Values()
		if err != nil {
			t.Fatalf("testenv: query %q: %v", sql, err)
		}
		if len(vals) > 0 {
			out = append(out, fmt.Sprint(vals[0]))
		}
	}
	if err := rows.Err(); err != nil {
		t.Fatalf("testenv: query %q: %v", sql, err)
	}
	return out
}

// LibpqFiles writes user's client certificate and key and the server CA to dir (0600), for
// libpq tools (psql, pgbench): sslcert, sslkey and sslrootcert.
func (p *Postgres) LibpqFiles(t testing.TB, dir, user string) (certFile, keyFile, rootFile string) {
	t.Helper()
	c := p.ClientCert(t, user)
	keyDER, err := x509.MarshalPKCS8PrivateKey(c.PrivateKey)
	if err != nil {
		t.Fatalf("testenv: %v", err)
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
	for path, body := range map[string][]byte{
		certFile: pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Certificate[0]}),
		keyFile:  pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}),
		rootFile: p.ServerCA.PEM,
	} {
		if err := os.WriteFile(path, body, 0o600); err != nil {
			t.Fatalf("testenv: %v", err)
		}
	}
	return certFile, keyFile, rootFile
}

// Tool is the path of a PostgreSQL client program (psql, pgbench): the cluster's own
// version when installed, else whatever PATH finds.
func (p *Postgres) Tool(t testing.TB, name string) string {
	t.Helper()
	if path := filepath.Join(p.BinDir, name); pgFileExists(path) {
		return path
	}
	path, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("testenv: %s not installed", name)
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (required in CI)")
		}
		t.Skip(msg)
	}
	return path
}

func pgFileExists(path string) bool {
	_, err := os.Stat(path)
	return err == nil
}

func pgQuoteConnValue(s string) string {
	return "'" + strings.NewReplacer(`\`, `\\`, `'`, `\'`).Replace(s) + "'"
}
