package demo

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/localsvc"
)

// The demo database: a database, its owner (the login people use through
// the bastion) and the bootstrap superuser the demo seeds it with.
const (
	DBName      = "shop"
	DBUser      = "app"
	dbSuperuser = localsvc.PostgresSuperuser
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
		if err := localsvc.CheckPostgresBinDir(dir); err != nil {
			return "", err
		}
		return dir, nil
	}
	if d, err := findPostgres(localsvc.PostgresBinDir); err == nil {
		return d, nil
	}
	initdb, err := exec.LookPath("initdb")
	if err != nil {
		return "", fmt.Errorf("PostgreSQL not found (no %s/initdb and no initdb on PATH)", localsvc.PostgresBinDir)
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

// postgresConfig describes the demo's PostgreSQL cluster: a throwaway one
// per run that accepts only TLS connections with a client certificate from
// the bastion's database CA, so no password exists anywhere. auth signs
// the server certificate and the superuser's client certificate with the
// database CA. Its seed is the demo role (a login without a password),
// the demo database it owns and the demo table.
func postgresConfig(binDir string, auth *ca.Authority) (localsvc.PostgresConfig, error) {
	srvCert, srvKey, err := issueX509(auth, "server", "")
	if err != nil {
		return localsvc.PostgresConfig{}, err
	}
	srv, err := tls.X509KeyPair(srvCert, srvKey)
	if err != nil {
		return localsvc.PostgresConfig{}, err
	}
	suCert, suKey, err := issueX509(auth, "client", dbSuperuser)
	if err != nil {
		return localsvc.PostgresConfig{}, err
	}
	su, err := tls.X509KeyPair(suCert, suKey)
	if err != nil {
		return localsvc.PostgresConfig{}, err
	}
	pool := x509.NewCertPool()
	pool.AddCert(auth.Keys().DBCA.Cert)
	return localsvc.PostgresConfig{
		BinDir:       binDir,
		Name:         "bastion-demo-pg",
		ServerCert:   srv,
		ClientCA:     auth.Keys().DBCA.PEM,
		SuperuserTLS: &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: []tls.Certificate{su}, MinVersion: tls.VersionTLS12},
		// PostgreSQL's own port when it is free, so the guide's ssh -L line
		// reads as usual (and as the README shows it); a free one otherwise.
		Port:         defaultDBPort,
		Settings:     map[string]string{"max_connections": "40"},
		Roles:        []string{DBUser},
		Seed:         []localsvc.SeedSQL{{DB: "postgres", SQL: "CREATE DATABASE " + DBName + " OWNER " + DBUser}, {DB: DBName, SQL: seedSQL}},
		ReadyTimeout: 60 * time.Second,
	}, nil
}

// postgresVersion reads the server's version from `postgres --version`;
// empty when it cannot.
func postgresVersion(binDir string) string {
	out, err := exec.Command(filepath.Join(binDir, "postgres"), "--version").Output()
	if err != nil {
		return ""
	}
	return parseVersion(string(out))
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
