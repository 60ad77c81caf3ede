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
	"context"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bastionhq/bastion/internal/localsvc"
)

// PostgresBinDir is where Debian's postgresql-15 package installs the server binaries.
const PostgresBinDir = localsvc.PostgresBinDir

// PostgresSuperuser is the bootstrap superuser initdb creates.
const PostgresSuperuser = localsvc.PostgresSuperuser

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

// PostgresCA is a small X.509 CA for tests: server and client certificates for PostgreSQL
// (a localsvc.CA whose methods fail the test instead of returning errors).
type PostgresCA localsvc.CA

// NewPostgresCA makes a self-signed ECDSA P-256 CA valid for a day.
func NewPostgresCA(t testing.TB, name string) *PostgresCA {
	t.Helper()
	ca, err := localsvc.NewCA(name)
	if err != nil {
		t.Fatalf("testenv: postgres %v", err)
	}
	return (*PostgresCA)(ca)
}

// Pool is a pool holding only this CA.
func (ca *PostgresCA) Pool() *x509.CertPool {
	return (*localsvc.CA)(ca).Pool()
}

// IssueClient signs a client certificate with CommonName cn (the database user) valid for ttl.
func (ca *PostgresCA) IssueClient(t testing.TB, cn string, ttl time.Duration) tls.Certificate {
	t.Helper()
	c, err := (*localsvc.CA)(ca).IssueClient(cn, ttl)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return c
}

// IssueServer signs a server certificate for the given names and addresses.
func (ca *PostgresCA) IssueServer(t testing.TB, dnsNames []string, ips []net.IP) tls.Certificate {
	t.Helper()
	c, err := (*localsvc.CA)(ca).IssueServer(dnsNames, ips)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return c
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

	pg    *localsvc.Postgres
	mu    sync.Mutex
	certs map[string]tls.Certificate
}

// PostgresAvailable reports whether the PostgreSQL 15 server binaries are installed.
func PostgresAvailable() bool {
	return localsvc.CheckPostgresBinDir(PostgresBinDir) == nil
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
	p := &Postgres{
		Host: "127.0.0.1", ServerCA: opts.ServerCA, ClientCA: opts.ClientCA,
		BinDir: PostgresBinDir, certs: map[string]tls.Certificate{},
	}
	var seed []localsvc.SeedSQL
	if opts.SeedSQL != "" {
		seed = append(seed, localsvc.SeedSQL{DB: "postgres", SQL: opts.SeedSQL})
	}
	for db, sql := range opts.SeedSQLIn {
		seed = append(seed, localsvc.SeedSQL{DB: db, SQL: sql})
	}
	pg, err := localsvc.StartPostgres(context.Background(), localsvc.PostgresConfig{
		BinDir:       p.BinDir,
		Name:         "pgtest",
		ServerCert:   opts.ServerCA.IssueServer(t, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)}),
		ClientCA:     opts.ClientCA.PEM,
		SuperuserTLS: p.ClientTLS(t, PostgresSuperuser),
		Settings:     opts.Settings,
		Roles:        opts.Roles,
		Databases:    opts.Databases,
		Seed:         seed,
	})
	if err != nil {
		t.Fatalf("testenv: start postgres: %v", err)
	}
	t.Cleanup(pg.Stop)
	p.pg = pg
	p.Port, p.Addr, p.DataDir, p.LogFile = pg.Port, pg.Addr, pg.DataDir, pg.LogFile
	return p
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

// Connect opens a direct pgx connection (TLS, client certificate) as user to db and closes
// it when the test ends.
func (p *Postgres) Connect(t testing.TB, user, db string) *pgx.Conn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := p.pg.Connect(ctx, user, db, p.ClientTLS(t, user))
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
	if err := p.pg.Exec(ctx, db, sql); err != nil {
		t.Fatalf("testenv: %v", err)
	}
}

// QueryStrings runs a query as the superuser in db and returns the first column of each
// row as text.
func (p *Postgres) QueryStrings(t testing.TB, db, sql string) []string {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	conn, err := p.pg.Connect(ctx, PostgresSuperuser, db, p.ClientTLS(t, PostgresSuperuser))
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
	certFile, keyFile, rootFile, err := localsvc.WriteLibpqFiles(dir, user, p.ClientCert(t, user), p.ServerCA.PEM)
	if err != nil {
		t.Fatalf("testenv: %v", err)
	}
	return certFile, keyFile, rootFile
}

// Tool is the path of a PostgreSQL client program (psql, pgbench): the cluster's own
// version when installed, else whatever PATH finds.
func (p *Postgres) Tool(t testing.TB, name string) string {
	t.Helper()
	path, err := localsvc.PostgresTool(p.BinDir, name)
	if err != nil {
		msg := fmt.Sprintf("testenv: %s not installed", name)
		if os.Getenv("CI") != "" {
			t.Fatal(msg + " (required in CI)")
		}
		t.Skip(msg)
	}
	return path
}

// StoreDSN creates database db owned by a role of the same name (both
// without a password) and returns a libpq connection string for it as
// that role: TLS verifying the server, a client certificate whose files
// are written to a temporary directory. It is what a bastion's
// `store.postgres.dsn` looks like against this cluster.
func (p *Postgres) StoreDSN(t testing.TB, db string) string {
	t.Helper()
	p.ExecIn(t, "postgres", fmt.Sprintf(`DO $$ BEGIN
		IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = %[1]s) THEN CREATE ROLE %[2]s LOGIN; END IF;
	END $$;`, quoteLiteral(db), pgx.Identifier{db}.Sanitize()))
	p.ExecIn(t, "postgres", fmt.Sprintf("CREATE DATABASE %[1]s OWNER %[1]s", pgx.Identifier{db}.Sanitize()))
	cert, key, root := p.LibpqFiles(t, t.TempDir(), db)
	return fmt.Sprintf("host=%s port=%d dbname=%s user=%s sslmode=verify-full sslrootcert=%s sslcert=%s sslkey=%s",
		p.Host, p.Port, db, db, root, cert, key)
}

func quoteLiteral(s string) string {
	return "'" + strings.ReplaceAll(s, "'", "''") + "'"
}
