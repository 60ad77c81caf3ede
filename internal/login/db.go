package login

import (
	"errors"
	"fmt"
	"net"
	"net/url"
	"strings"
)

// PGEnv is the libpq environment (PGHOST, PGPORT, PGSSLMODE, PGSSLCERT,
// PGSSLKEY, PGSSLROOTCERT, PGUSER, PGDATABASE) that reaches target's
// database through the bastion's direct PostgreSQL listener with the
// login's client certificate: sslmode=verify-full against the CA the login
// wrote, and the database named "TARGET/DATABASE", which is how the
// listener picks the target. user defaults to the login's name, database
// to user (as PostgreSQL does).
func PGEnv(st *State, target, database, user string) ([][2]string, error) {
	if st.PostgresAddress == "" || st.DBCertPath == "" {
		return nil, errors.New("this bastion has no PostgreSQL listener (listen.postgres), or the login predates it: run `bastion login` again")
	}
	if target == "" || strings.ContainsAny(target, "/ \t\n") {
		return nil, fmt.Errorf("target %q: want a target name", target)
	}
	host, port, err := net.SplitHostPort(st.PostgresAddress)
	if err != nil {
		return nil, fmt.Errorf("postgres address %q: %w", st.PostgresAddress, err)
	}
	if user == "" {
		user = st.User
	}
	if database == "" {
		database = user
	}
	return [][2]string{
		{"PGHOST", host}, {"PGPORT", port}, {"PGSSLMODE", "verify-full"},
		{"PGSSLCERT", st.DBCertPath}, {"PGSSLKEY", st.DBKeyPath}, {"PGSSLROOTCERT", st.DBCAPath},
		{"PGUSER", user}, {"PGDATABASE", target + "/" + database},
	}, nil
}

// PGURL is PGEnv as a connection URI (postgres://user@host:port/db?...),
// for drivers that take one.
func PGURL(st *State, target, database, user string) (string, error) {
	v, q, err := pgQuery(st, target, database, user)
	if err != nil {
		return "", err
	}
	q.Set("sslkey", v["PGSSLKEY"])
	u := url.URL{Scheme: "postgres", User: url.User(v["PGUSER"]), Host: net.JoinHostPort(v["PGHOST"], v["PGPORT"]),
		Path: "/" + v["PGDATABASE"], RawQuery: q.Encode()}
	// The database contains '/', which a URI path must escape.
	u.RawPath = "/" + url.PathEscape(v["PGDATABASE"])
	return u.String(), nil
}

// JDBCURL is PGEnv as a JDBC URL for pgjdbc
// (jdbc:postgresql://host:port/TARGET%2FDATABASE?user=…&sslmode=verify-full&…),
// with the key in the PKCS#8 DER file pgjdbc reads.
func JDBCURL(st *State, target, database, user string) (string, error) {
	v, q, err := pgQuery(st, target, database, user)
	if err != nil {
		return "", err
	}
	if st.DBKeyDERPath == "" {
		return "", errors.New("the login predates JDBC support (no postgres.pk8): run `bastion login` again")
	}
	q.Set("user", v["PGUSER"])
	q.Set("sslkey", st.DBKeyDERPath)
	return "jdbc:postgresql://" + net.JoinHostPort(v["PGHOST"], v["PGPORT"]) + "/" + url.PathEscape(v["PGDATABASE"]) + "?" + q.Encode(), nil
}

// pgQuery is PGEnv by name, and the TLS settings as URL parameters (but
// the key, which differs by driver).
func pgQuery(st *State, target, database, user string) (map[string]string, url.Values, error) {
	env, err := PGEnv(st, target, database, user)
	if err != nil {
		return nil, nil, err
	}
	v := map[string]string{}
	for _, kv := range env {
		v[kv[0]] = kv[1]
	}
	q := url.Values{}
	q.Set("sslmode", v["PGSSLMODE"])
	q.Set("sslcert", v["PGSSLCERT"])
	q.Set("sslrootcert", v["PGSSLROOTCERT"])
	return v, q, nil
}
