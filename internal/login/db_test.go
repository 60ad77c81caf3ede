package login

import (
	"net/url"
	"strings"
	"testing"
)

func TestPGEnv(t *testing.T) {
	st := &State{User: "ci-etl", PostgresAddress: "bastion.example.com:5432", DBCertPath: "/h/postgres.crt", DBKeyPath: "/h/postgres.key", DBCAPath: "/h/postgres-ca.pem"}
	env, err := PGEnv(st, "pg1", "shop", "app")
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, kv := range env {
		got[kv[0]] = kv[1]
	}
	want := map[string]string{"PGHOST": "bastion.example.com", "PGPORT": "5432", "PGSSLMODE": "verify-full", "PGSSLCERT": "/h/postgres.crt",
		"PGSSLKEY": "/h/postgres.key", "PGSSLROOTCERT": "/h/postgres-ca.pem", "PGUSER": "app", "PGDATABASE": "pg1/shop"}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s=%q, want %q", k, got[k], v)
		}
	}
	// Defaults: the login's name, and the database named after the user.
	env, _ = PGEnv(st, "pg1", "", "")
	if env[6][1] != "ci-etl" || env[7][1] != "pg1/ci-etl" {
		t.Errorf("defaults: %v", env)
	}
	u, err := PGURL(st, "pg1", "shop", "app")
	if err != nil {
		t.Fatal(err)
	}
	pu, err := url.Parse(u)
	if err != nil || pu.Scheme != "postgres" || pu.User.Username() != "app" || pu.Host != "bastion.example.com:5432" || strings.TrimPrefix(pu.Path, "/") != "pg1/shop" ||
		!strings.Contains(u, "/pg1%2Fshop?") || pu.Query().Get("sslmode") != "verify-full" || pu.Query().Get("sslrootcert") != "/h/postgres-ca.pem" {
		t.Errorf("url %s", u)
	}
	if _, err := JDBCURL(st, "pg1", "shop", "app"); err == nil || !strings.Contains(err.Error(), "postgres.pk8") {
		t.Errorf("JDBC URL without the DER key: %v", err)
	}
	st.DBKeyDERPath = "/h/postgres.pk8"
	j, err := JDBCURL(st, "pg1", "shop", "app")
	if err != nil || j != "jdbc:postgresql://bastion.example.com:5432/pg1%2Fshop?sslcert=%2Fh%2Fpostgres.crt&sslkey=%2Fh%2Fpostgres.pk8&sslmode=verify-full&sslrootcert=%2Fh%2Fpostgres-ca.pem&user=app" {
		t.Errorf("JDBC URL %s, %v", j, err)
	}
	for _, bad := range []struct {
		st     *State
		target string
		want   string
	}{
		{&State{User: "x"}, "pg1", "no PostgreSQL listener"},
		{st, "", "want a target name"},
		{st, "pg1/shop", "want a target name"},
		{&State{PostgresAddress: "nohost", DBCertPath: "c"}, "pg1", "postgres address"},
	} {
		if _, err := PGEnv(bad.st, bad.target, "", ""); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%+v %q: %v, want %q", bad.st, bad.target, err, bad.want)
		}
	}
}
