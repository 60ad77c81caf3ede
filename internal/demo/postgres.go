package demo

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"github.com/bastionhq/bastion/internal/localsvc"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bastionhq/bastion/ca"
)

// Where PostgreSQL's server programs are looked for: Debian's postgresql-15
// package first, then PATH.
const postgresBinDir = "/usr/lib/postgresql/15/bin"

// The demo database: a database, its owner (the login people use through
// the bastion) and the bootstrap superuser the demo seeds it with.
const (
	DBName      = "shop"
	DBUser      = "app"
	dbSuperuser = "postgres"
)

// seedSQL is the demo data: test card numbers only (the card networks'
// published test numbers; none is a real card).
const seedSQL = `
CREATE TABLE customers (
    id          integer PRIMARY KEY,
    name        text NOT NULL,
    card_number text NOT NULL
);
INSERT INTO customers VALUES
    (1, 'Ada Lovelace',    '4111 1111 1111 1111'),
    (2, 'Alan Turing',     '5555-5555-5555-4444'),
    (3, 'Grace Hopper',    '378282246310005'),
    (4, 'Edsger Dijkstra', '6011 1111 1111 1117');
ALTER TABLE customers OWNER TO app;
`

// findPostgres returns the directory holding initdb and postgres, or why
// there is none.
func findPostgres(dir string) (string, error) {
	if dir != "" {
		for _, b := range []string{"initdb", "postgres"} {
			if _, err := os.Stat(filepath.Join(dir, b)); err != nil {
				return "", fmt.Errorf("%s has no %s", dir, b)
			}
		}
		return dir, nil
	}
	if d, err := findPostgres(postgresBinDir); err == nil {
		return d, nil
	}
	initdb, err := exec.LookPath("initdb")
	if err != nil {
		return "", fmt.Errorf("PostgreSQL not found (no %s/initdb and no initdb on PATH)", postgresBinDir)
	}
	d := filepath.Dir(initdb)
	if _, err := os.Stat(filepath.Join(d, "postgres")); err != nil {
		if p, err := exec.LookPath("postgres"); err == nil && filepath.Dir(p) != d {
			return "", fmt.Errorf("initdb (%s) and postgres (%s) are in different directories", initdb, p)
		}
		return "", fmt.Errorf("PostgreSQL not found (initdb at %s but no postgres next to it)", initdb)
	}
	return d, nil
}

// postgres is the demo's PostgreSQL cluster: a throwaway one per run, in a
// directory of its own, that accepts only TLS connections with a client
// certificate from the bastion's database CA (`hostssl all all
// 127.0.0.1/32 cert`), so no password exists anywhere.
type postgres struct {
	Addr    string // 127.0.0.1:port
	Version string // e.g. "15.8"
	BinDir  string
	base    string
	cmd     *exec.Cmd
	exited  chan error
}

// startPostgres initialises, starts and seeds the demo cluster. auth signs
// the server certificate and the superuser's client certificate with the
// database CA. The cluster lives in a fresh temporary directory (the
// postgres system user must be able to reach it when we are root) and is
// removed by stop.
func startPostgres(ctx context.Context, binDir string, auth *ca.Authority) (_ *postgres, err error) {
	runAs, err := localsvc.Credential()
	if err != nil {
		return nil, err
	}
	p := &postgres{BinDir: binDir}
	if out, err := exec.Command(filepath.Join(binDir, "postgres"), "--version").Output(); err == nil {
		p.Version = parseVersion(string(out))
	}
	parent := ""
	if runAs != nil && !localsvc.Reachable(os.TempDir()) {
		parent = "/tmp" // TMPDIR is private to root: the postgres user could not reach it
	}
	if p.base, err = os.MkdirTemp(parent, "bastion-demo-pg-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			p.stop()
		}
	}()
	if err := os.Chmod(p.base, 0o711); err != nil {
		return nil, err
	}
	data := filepath.Join(p.base, "data")
	if err := os.Mkdir(data, 0o700); err != nil {
		return nil, err
	}
	chown := func(path string) error {
		if runAs == nil {
			return nil
		}
		return os.Chown(path, int(runAs.Uid), int(runAs.Gid))
	}
	if err := chown(data); err != nil {
		return nil, err
	}
	initdb := exec.CommandContext(ctx, filepath.Join(binDir, "initdb"), "-D", data, "-U", dbSuperuser,
		"-E", "UTF8", "--no-locale", "-N", "--auth=reject")
	initdb.Env = localsvc.Env()
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: runAs}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, tail(out, 2000))
	}

	srvCert, srvKey, err := issueX509(auth, "server", "")
	if err != nil {
		return nil, err
	}
	files := map[string][]byte{
		"server.crt":    srvCert,
		"server.key":    srvKey,
		"client-ca.crt": auth.Keys().DBCA.PEM,
		"pg_hba.conf":   []byte("# bastion demo: certificate authentication only, no passwords\nhostssl all all 127.0.0.1/32 cert\n"),
	}
	for name, body := range files {
		path := filepath.Join(data, name)
		if err := os.WriteFile(path, body, 0o600); err != nil {
			return nil, err
		}
		if err := chown(path); err != nil {
			return nil, err
		}
	}
	conf := "\n# bastion demo\n" +
		"listen_addresses = '127.0.0.1'\nunix_socket_directories = ''\n" +
		"ssl = on\nssl_cert_file = 'server.crt'\nssl_key_file = 'server.key'\nssl_ca_file = 'client-ca.crt'\n" +
		"fsync = off\nsynchronous_commit = off\nfull_page_writes = off\nshared_buffers = 32MB\nmax_connections = 40\n" +
		"log_min_messages = warning\n"
	f, err := os.OpenFile(filepath.Join(data, "postgresql.conf"), os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		return nil, err
	}
	if _, err := f.WriteString(conf); err != nil {
		f.Close()
		return nil, err
	}
	if err := f.Close(); err != nil {
		return nil, err
	}

	suCert, suKey, err := issueX509(auth, "client", dbSuperuser)
	if err != nil {
		return nil, err
	}
	pair, err := tls.X509KeyPair(suCert, suKey)
	if err != nil {
		return nil, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(auth.Keys().DBCA.Cert)
	tlsCfg := &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{pair}, MinVersion: tls.VersionTLS12}

	var lastErr error
	for i := range 3 {
		// PostgreSQL's own port when it is free, so the guide's ssh -L line
		// reads as usual (and as the README shows it); a free one otherwise.
		port := defaultDBPort
		if i > 0 || !portFree(port) {
			if port, err = localsvc.FreeLoopbackPort(); err != nil {
				return nil, err
			}
		}
		if lastErr = p.run(ctx, data, port, runAs, tlsCfg); lastErr == nil {
			break
		}
	}
	if lastErr != nil {
		return nil, lastErr
	}
	if err := p.seed(ctx, tlsCfg); err != nil {
		return nil, err
	}
	return p, nil
}

// run starts postgres on port and waits until it accepts the superuser.
func (p *postgres) run(ctx context.Context, data string, port int, runAs *syscall.Credential, tlsCfg *tls.Config) error {
	logPath := filepath.Join(p.base, "postgres.log")
	logf, err := os.OpenFile(logPath, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return err
	}
	cmd := exec.Command(filepath.Join(p.BinDir, "postgres"), "-D", data, "-p", strconv.Itoa(port))
	cmd.Env = localsvc.Env()
	cmd.Stdout, cmd.Stderr = logf, logf
	// Its own process group: a Ctrl-C at the terminal goes to the demo, which
	// then stops the database in order.
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: runAs, Setpgid: true}
	if err := cmd.Start(); err != nil {
		logf.Close()
		return fmt.Errorf("start postgres: %w", err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait(); logf.Close() }()
	p.Addr = net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(60 * time.Second)
	for {
		select {
		case err := <-exited:
			return fmt.Errorf("postgres exited: %v\n%s", err, localsvc.TailFile(logPath, 2000))
		default:
		}
		cctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := p.connect(cctx, tlsCfg, "postgres")
		cancel()
		if err == nil {
			conn.Close(context.Background())
			p.cmd, p.exited = cmd, exited
			return nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
			return fmt.Errorf("postgres not ready: %v\n%s", err, localsvc.TailFile(logPath, 2000))
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func (p *postgres) connect(ctx context.Context, tlsCfg *tls.Config, db string) (*pgx.Conn, error) {
	host, port, _ := net.SplitHostPort(p.Addr)
	cfg, err := pgx.ParseConfig(fmt.Sprintf("host=%s port=%s user=%s dbname=%s sslmode=disable", host, port, dbSuperuser, db))
	if err != nil {
		return nil, err
	}
	cfg.TLSConfig = tlsCfg
	cfg.Fallbacks = nil
	return pgx.ConnectConfig(ctx, cfg)
}

// seed creates the demo role, database and table.
func (p *postgres) seed(ctx context.Context, tlsCfg *tls.Config) error {
	run := func(db, sql string) error {
		conn, err := p.connect(ctx, tlsCfg, db)
		if err != nil {
			return fmt.Errorf("seed: connect to %s: %w", db, err)
		}
		defer conn.Close(context.Background())
		if _, err := conn.PgConn().Exec(ctx, sql).ReadAll(); err != nil {
			return fmt.Errorf("seed %s: %w", db, err)
		}
		return nil
	}
	if err := run("postgres", "CREATE ROLE "+DBUser+" LOGIN"); err != nil {
		return err
	}
	if err := run("postgres", "CREATE DATABASE "+DBName+" OWNER "+DBUser); err != nil {
		return err
	}
	return run(DBName, seedSQL)
}

// stop shuts the cluster down (fast: roll back, disconnect, exit) and
// removes its directory.
func (p *postgres) stop() {
	if p.cmd != nil {
		p.cmd.Process.Signal(syscall.SIGINT)
		select {
		case <-p.exited:
		case <-time.After(20 * time.Second):
			syscall.Kill(-p.cmd.Process.Pid, syscall.SIGKILL)
			<-p.exited
		}
		p.cmd = nil
	}
	if p.base != "" {
		os.RemoveAll(p.base)
	}
}

// issueX509 makes a key and a certificate from the database CA: a server
// certificate for 127.0.0.1 and localhost, or a client certificate for
// user. It returns both in PEM.
func issueX509(auth *ca.Authority, kind, user string) (certPEM, keyPEM []byte, err error) {
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	var cert *x509.Certificate
	if kind == "server" {
		cert, err = auth.SignDBServer(key.Public(), []string{"127.0.0.1", "localhost"}, 30*24*time.Hour)
	} else {
		cert, err = auth.SignDBClient(key.Public(), user, time.Hour)
	}
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}),
		pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), nil
}

// parseVersion reads the version from `postgres --version`, e.g.
// "postgres (PostgreSQL) 15.18 (Debian 15.18-0+deb12u1)" gives "15.18".
func parseVersion(out string) string {
	f := strings.Fields(out)
	for i, w := range f {
		if w == "(PostgreSQL)" && i+1 < len(f) {
			return f[i+1]
		}
	}
	return ""
}

// defaultDBPort is the demo database's port when it is free.
const defaultDBPort = 5432

func portFree(port int) bool {
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
	if err != nil {
		return false
	}
	l.Close()
	return true
}

func tail(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}
