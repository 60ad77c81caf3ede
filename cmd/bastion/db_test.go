package main

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/modelcontextprotocol/go-sdk/mcp"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/login"
	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
	"github.com/bastionhq/bastion/recorder/asciicast"
)

// dbWorldYAML gives the CI workload (group etl) the database pg1 as app,
// blocks DROP and masks the card column. The SQL API's burst covers the
// test's requests and its rate refills a token every 100 s, so the test
// meets the limit when it means to; its time limit ends a pg_sleep.
const dbWorldYAML = `  - {name: etl-db, groups: [etl], targets: [pg1], db_users: [app], databases: [shop]}
  - {name: db-approvers, groups: [sec], approve: [pg1]}
rules:
  - {name: no-drop, on: sql, match: {statements: [drop]}, action: block}
  - {name: hold-updates, on: sql, match: {statements: [update]}, action: approve, approvers: [db-approvers], timeout: 5m}
  - {name: card-columns, on: sql_result, match: {columns: ["card"]}, action: mask}
sql_api: {enabled: true, rate: 0.01, burst: 100, timeout: 20s}
`

// startShopPostgres starts PostgreSQL trusting the bastion's database CA,
// with the shop database seeded, and returns it with the config line of
// the pg1 target that reaches it.
func startShopPostgres(t *testing.T, k *ca.Keys) (*testenv.Postgres, string) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		ClientCA:  &testenv.PostgresCA{Cert: k.DBCA.Cert, Key: k.DBCA.Key, PEM: k.DBCA.PEM},
		Roles:     []string{"app"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": dbSeed},
	})
	pgCA := filepath.Join(t.TempDir(), "pg-ca.pem")
	if err := os.WriteFile(pgCA, pg.ServerCA.PEM, 0o600); err != nil {
		t.Fatal(err)
	}
	return pg, fmt.Sprintf(`{name: pg1, kind: postgres, address: "%s", tls: {ca_file: "%s", server_name: localhost}}`, pg.Addr, pgCA)
}

const dbSeed = `CREATE TABLE customers (id int, name text, card text);
INSERT INTO customers VALUES (1, 'Ada', '4111 1111 1111 1111'), (2, 'Bob', '5500 0000 0000 0004');
ALTER TABLE customers OWNER TO app;`

// TestDirectPostgresListener is issue 15's direct listener end to end: a
// CI job logs in with its workload token, `bastion db env` gives stock psql
// (and pgx, and psycopg) everything for sslmode=verify-full, and the
// connection goes through the same guardrails as ssh -L: masked rows, DROP
// refused with 42501 before it reaches PostgreSQL, a recorded session. The
// login's client certificate is refused by PostgreSQL itself, and an
// expired one, none, or a plaintext connection by the bastion, each with
// a reason.
func TestDirectPostgresListener(t *testing.T) {
	testenv.RequirePostgres(t)
	var pg *testenv.Postgres
	var keys *ca.Keys
	w := newWorldListen(t, `, postgres: "127.0.0.1:0"`, func(k *ca.Keys) []string {
		keys = k
		var target string
		pg, target = startShopPostgres(t, k)
		return []string{target}
	}, dbWorldYAML)
	psql := pg.Tool(t, "psql")

	claims, _ := w.ci.IDTokenClaims("repo:acme/etl:ref:refs/heads/main", "bastion-ci")
	tok, err := w.ci.MintIDToken(claims)
	if err != nil {
		t.Fatal(err)
	}
	if r := w.run([]string{"CI_OIDC_TOKEN=" + tok}, "login", "--bastion", w.url(), "--id-token-env", "CI_OIDC_TOKEN"); r.Code != 0 || !strings.Contains(r.Stderr, "bastion db env") {
		t.Fatalf("login: %s", r)
	}
	dir := filepath.Join(w.home, ".config", "bastion")
	st, err := login.Resolve(dir, "")
	if err != nil || st.PostgresAddress != w.app.PostgresAddr() {
		t.Fatalf("login state: %+v, %v (listener %s)", st, err, w.app.PostgresAddr())
	}

	// The shell a CI step runs: eval the environment, then plain psql.
	shell := func(t *testing.T, script string) testenv.Result {
		t.Helper()
		cmd := w.cli([]string{"BIN=" + os.Args[0], "PSQL=" + psql, "PSQLRC=/dev/null"}, "")
		env := cmd.Env
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		c := exec.CommandContext(ctx, "bash", "-c", `bastion() { "$BIN" "$@"; }; psql() { "$PSQL" -X "$@"; }; `+script)
		c.Env = env
		var out, errb bytes.Buffer
		c.Stdout, c.Stderr = &out, &errb
		err := c.Run()
		r := testenv.Result{Stdout: out.String(), Stderr: errb.String(), Err: err}
		if ee, ok := err.(*exec.ExitError); ok {
			r.Code = ee.ExitCode()
		}
		return r
	}
	env := `eval "$(bastion db env pg1 --db shop --user app)" && `

	t.Run("masked rows", func(t *testing.T) {
		r := shell(t, env+`psql -At -v ON_ERROR_STOP=1 -c 'SELECT name, card FROM customers ORDER BY id'`)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != "Ada|********\nBob|********" {
			t.Fatalf("psql SELECT: %s", r)
		}
	})
	t.Run("db psql", func(t *testing.T) {
		r := shell(t, `PATH="$(dirname "$PSQL"):$PATH" bastion db psql pg1 --db shop --user app -- -X -At -c 'SELECT count(*) FROM customers'`)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != "2" {
			t.Fatalf("bastion db psql: %s", r)
		}
	})
	t.Run("drop refused", func(t *testing.T) {
		r := shell(t, env+`psql -At -v VERBOSITY=verbose -c 'DROP TABLE customers'`)
		if r.Code == 0 || !strings.Contains(r.Stderr, "42501") || !strings.Contains(r.Stderr, "no-drop") {
			t.Fatalf("DROP TABLE: want 42501 naming the rule: %s", r)
		}
		if got := pg.QueryStrings(t, "shop", "SELECT count(*) FROM customers"); len(got) != 1 || got[0] != "2" {
			t.Fatalf("the table after a refused DROP: %v", got)
		}
	})
	t.Run("pgx verify-full", func(t *testing.T) {
		r := w.run(nil, "db", "url", "pg1", "--db", "shop", "--user", "app")
		if r.Code != 0 {
			t.Fatalf("db url: %s", r)
		}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		conn, err := pgx.Connect(ctx, strings.TrimSpace(r.Stdout))
		if err != nil {
			t.Fatalf("pgx: %v", err)
		}
		defer conn.Close(ctx)
		var card string
		if err := conn.QueryRow(ctx, "SELECT card FROM customers WHERE id = 1").Scan(&card); err != nil || card != "********" {
			t.Fatalf("pgx: card %q, %v", card, err)
		}
		// A CancelRequest (sent in the clear, on a connection of its own)
		// reaches the backend running the statement.
		done := make(chan error, 1)
		go func() {
			_, err := conn.Exec(ctx, "SELECT pg_sleep(60)")
			done <- err
		}()
		testenv.WaitFor(t, 20*time.Second, "pg_sleep running", func() bool {
			got := pg.QueryStrings(t, "shop", "SELECT count(*) FROM pg_stat_activity WHERE query = 'SELECT pg_sleep(60)' AND state = 'active'")
			return len(got) == 1 && got[0] == "1"
		})
		if err := conn.PgConn().CancelRequest(ctx); err != nil {
			t.Fatal(err)
		}
		if err := <-done; err == nil || !strings.Contains(err.Error(), "57014") {
			t.Fatalf("cancelled statement: %v, want 57014", err)
		}
	})
	t.Run("psycopg verify-full", func(t *testing.T) {
		if exec.Command("/usr/bin/python3", "-c", "import psycopg").Run() != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("python3-psycopg is not installed (.ci/run installs it)")
			}
			t.Skip("python3-psycopg is not installed")
		}
		r := shell(t, env+`/usr/bin/python3 -c 'import psycopg
with psycopg.connect("") as c:
    print(c.execute("SELECT name, card FROM customers WHERE id = 2").fetchone())'`)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != "('Bob', '********')" {
			t.Fatalf("psycopg: %s", r)
		}
	})

	// pgjdbc (Debian's libpostgresql-jdbc-java) with sslmode=verify-full and
	// the URL `bastion db url --jdbc` prints.
	t.Run("JDBC verify-full", func(t *testing.T) {
		const jar = "/usr/share/java/postgresql.jar"
		java, err := exec.LookPath("java")
		if _, jerr := os.Stat(jar); err != nil || jerr != nil {
			if os.Getenv("CI") != "" {
				t.Fatal("java or pgjdbc is not installed (.ci/run installs default-jdk-headless and libpostgresql-jdbc-java)")
			}
			t.Skip("java or pgjdbc is not installed")
		}
		r := w.run(nil, "db", "url", "pg1", "--db", "shop", "--user", "app", "--jdbc")
		if r.Code != 0 || !strings.HasPrefix(r.Stdout, "jdbc:postgresql://") {
			t.Fatalf("db url --jdbc: %s", r)
		}
		// java runs the one-file program from source (JDK 11+).
		r = testenv.Run(t, 2*time.Minute, "", java, "-cp", jar, filepath.Join("testdata", "JdbcQuery.java"), strings.TrimSpace(r.Stdout),
			"SELECT name, card FROM customers ORDER BY id")
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != "Ada|********\nBob|********" {
			t.Fatalf("JDBC: %s", r)
		}
	})

	// Presented to PostgreSQL itself, the login's certificate is worth
	// nothing: PostgreSQL trusts only the database CA.
	t.Run("certificate refused by PostgreSQL", func(t *testing.T) {
		root := filepath.Join(t.TempDir(), "pg-ca.pem")
		os.WriteFile(root, pg.ServerCA.PEM, 0o600)
		r := testenv.Run(t, 60*time.Second, "", psql, "-X", "-At", "-c", "SELECT 1", fmt.Sprintf(
			"host=%s port=%d user=app dbname=shop sslmode=verify-full sslcert=%s sslkey=%s sslrootcert=%s connect_timeout=20",
			pg.Host, pg.Port, st.DBCertPath, st.DBKeyPath, root))
		if r.Code == 0 || !strings.Contains(r.Stderr, "unknown ca") {
			t.Fatalf("PostgreSQL accepted the bastion client certificate: %s", r)
		}
	})

	// Refusals by the bastion say why.
	host, port := hostOf(st.PostgresAddress), strings.TrimPrefix(st.PostgresAddress, hostOf(st.PostgresAddress)+":")
	connect := func(t *testing.T, extra string) testenv.Result {
		return testenv.Run(t, 60*time.Second, "", psql, "-X", "-At", "-c", "SELECT 1", fmt.Sprintf(
			"host=%s port=%s user=app dbname=pg1/shop sslrootcert=%s connect_timeout=20 %s", host, port, st.DBCAPath, extra))
	}
	t.Run("expired certificate refused", func(t *testing.T) {
		past := time.Now().Add(-2 * time.Hour)
		a, err := ca.New(ca.Config{Keys: keys, Now: func() time.Time { return past }})
		if err != nil {
			t.Fatal(err)
		}
		id, err := a.Stamp(ca.Identity{User: "ci-etl", Issuer: w.ci.Issuer(), Subject: "repo:acme/etl:ref:refs/heads/main", Groups: []string{"etl"}, Workload: true}, 0)
		if err != nil {
			t.Fatal(err)
		}
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		c, err := a.SignDBAccess(id, key.Public())
		if err != nil {
			t.Fatal(err)
		}
		d := t.TempDir()
		der, _ := x509.MarshalPKCS8PrivateKey(key)
		os.WriteFile(filepath.Join(d, "k"), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
		os.WriteFile(filepath.Join(d, "c"), pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: c.Raw}), 0o600)
		r := connect(t, fmt.Sprintf("sslmode=verify-full sslcert=%s sslkey=%s", filepath.Join(d, "c"), filepath.Join(d, "k")))
		if r.Code == 0 || !strings.Contains(r.Stderr, "expired") || !strings.Contains(r.Stderr, "bastion login") {
			t.Fatalf("expired certificate: %s", r)
		}
	})
	t.Run("SQL API", func(t *testing.T) { testSQLAPI(t, w, st, pg) })
	t.Run("MCP", func(t *testing.T) { testMCP(t, w, st) })
	t.Run("SQL API rate limit", func(t *testing.T) { testSQLRate(t, w, st) })
	t.Run("revoked certificate refused", func(t *testing.T) {
		serial, _ := strconv.ParseUint(st.Serial, 10, 64)
		if err := w.app.Store.Revoke(serial, "test", "leaked"); err != nil {
			t.Fatal(err)
		}
		r := shell(t, env+`psql -At -c 'SELECT 1'`)
		if r.Code == 0 || !strings.Contains(r.Stderr, "has been revoked") {
			t.Fatalf("revoked certificate: %s", r)
		}
	})
	t.Run("no certificate refused", func(t *testing.T) {
		r := connect(t, "sslmode=verify-full sslcert=/nonexistent sslkey=/nonexistent")
		if r.Code == 0 || !strings.Contains(r.Stderr, "no client certificate") {
			t.Fatalf("no certificate: %s", r)
		}
	})
	t.Run("plaintext refused", func(t *testing.T) {
		r := connect(t, "sslmode=disable")
		if r.Code == 0 || !strings.Contains(r.Stderr, "TLS connections only") {
			t.Fatalf("plaintext: %s", r)
		}
	})

	// Every connection was a recorded session of the workload on pg1, with
	// the statements in its transcript and the refusal marked.
	t.Run("recorded", func(t *testing.T) {
		var transcript strings.Builder
		testenv.WaitFor(t, 30*time.Second, "four ended sessions of ci-etl on pg1", func() bool {
			transcript.Reset()
			sessions, err := w.app.Store.Sessions(recorder.SessionFilter{Target: "pg1", User: "ci-etl"})
			if err != nil {
				t.Fatal(err)
			}
			ended := 0
			for _, s := range sessions {
				if s.Status == recorder.StatusEnded {
					ended++
					w.app.Store.Events(s.ID, func(ev asciicast.Event) error {
						transcript.WriteString(ev.Data)
						return nil
					})
				}
			}
			return ended >= 4
		})
		for _, want := range []string{"SELECT name, card FROM customers", "blocked by rule no-drop", "********"} {
			if !strings.Contains(transcript.String(), want) {
				t.Errorf("the recordings lack %q:\n%s", want, transcript.String())
			}
		}
		// The transcripts hold upstream certificate serials (random decimal
		// numbers, from the SQL API's loop), so look for the cards as
		// written, not for a four-digit prefix a serial can contain.
		for _, card := range []string{"4111 1111 1111 1111", "5500 0000 0000 0004", "1111 1111"} {
			if strings.Contains(transcript.String(), card) {
				t.Errorf("a card number (%s) reached the recording", card)
			}
		}
		var direct int
		w.app.Store.AuditEvents(time.Time{}, func(ev recorder.AuditEvent) error {
			if ev.Type == "forward.start" && ev.Fields["via"] == "postgres listener" && ev.Target == "pg1" {
				direct++
			}
			return nil
		})
		if direct < 4 {
			t.Errorf("%d audited listener sessions, want at least 4", direct)
		}
	})
}

// testSQLAPI is the CI job's loop over POST /v1/sql with the access token
// login wrote: 50 chunked requests, each its own session, audit record and
// upstream certificate (the serial PostgreSQL itself saw, from pg_stat_ssl),
// cards masked; a DROP refused; an UPDATE held (202), approved by alice,
// then answered at the status URL; a statement past sql_api.timeout
// answered 504 and cancelled in PostgreSQL.
func testSQLAPI(t *testing.T, w *world, st *login.State, pg *testenv.Postgres) {
	token := readAccessToken(t, st)
	call := func(method, path, token string, req any) (int, bastion.SQLResponse) {
		t.Helper()
		code, _, r, err := sqlCall(w, method, path, token, req)
		if err != nil {
			t.Fatalf("%s %s: %v", method, path, err)
		}
		return code, r
	}
	q := func(sql string) bastion.SQLRequest {
		return bastion.SQLRequest{Target: "pg1", Database: "shop", User: "app", SQL: sql, MaxRows: 1}
	}

	// A statement past the time limit, beside the rest: PostgreSQL runs it
	// until the limit, then the bastion cancels it there and answers 504.
	const sleep = "SELECT pg_sleep(3600)"
	sleeping := func() string {
		got := pg.QueryStrings(t, "shop", "SELECT count(*) FROM pg_stat_activity WHERE query = '"+sleep+"' AND state = 'active'")
		if len(got) != 1 {
			t.Fatalf("pg_stat_activity: %v", got)
		}
		return got[0]
	}
	type answer struct {
		code int
		r    bastion.SQLResponse
		err  error
	}
	slow := make(chan answer, 1)
	go func() {
		code, _, r, err := sqlCall(w, "POST", bastion.PathSQL, token, q(sleep))
		slow <- answer{code, r, err}
	}()
	testenv.WaitFor(t, 30*time.Second, "the SQL API's pg_sleep running in PostgreSQL", func() bool { return sleeping() == "1" })

	sessions, serials := map[string]bool{}, map[string]bool{}
	for i := range 50 {
		code, r := call("POST", bastion.PathSQL, token, q(fmt.Sprintf(
			"SELECT id, name, card, (SELECT client_serial FROM pg_stat_ssl WHERE pid = pg_backend_pid())::text AS upstream_serial FROM customers ORDER BY id OFFSET %d", i%2)))
		if code != 200 || r.Status != "ok" || len(r.Rows) != 1 || len(r.Rows[0]) != 4 || *r.Rows[0][2] != "********" || r.Truncated != (i%2 == 0) {
			t.Fatalf("request %d: %d %+v", i, code, r)
		}
		sessions[r.SessionID] = true
		if serial := r.Rows[0][3]; serial != nil && *serial != "" {
			serials[*serial] = true
		}
	}
	if len(sessions) != 50 {
		t.Errorf("%d sessions for 50 requests", len(sessions))
	}
	// What PostgreSQL saw: 50 connections, each with a client certificate
	// of its own.
	if len(serials) != 50 {
		t.Errorf("PostgreSQL saw %d distinct client certificate serials for 50 requests: %v", len(serials), serials)
	}
	code, r := call("POST", bastion.PathSQL, token, q("DROP TABLE customers"))
	if code != 422 || r.Error == nil || r.Error.SQLState != "42501" || !strings.Contains(r.Error.Message, "no-drop") {
		t.Fatalf("DROP: %d %+v", code, r)
	}
	if code, r := call("POST", bastion.PathSQL, "bat1.forged.x", q("SELECT 1")); code != 401 || !strings.Contains(r.Error.Message, "access token refused") {
		t.Fatalf("forged token: %d %+v", code, r)
	}

	code, r = call("POST", bastion.PathSQL, token, q("UPDATE customers SET name = 'Ada L.' WHERE id = 1"))
	if code != 202 || r.Status != "held" || r.RequestID == "" || r.StatusURL == "" {
		t.Fatalf("UPDATE: want 202 held: %d %+v", code, r)
	}
	if code, _ := call("GET", r.StatusURL, token, nil); code != 202 {
		t.Fatalf("status before the decision: %d", code)
	}
	// alice, an approver, decides from her own login.
	claims, _ := w.idp.IDTokenClaims("u-alice", "bastion")
	atok, _ := w.idp.MintIDToken(claims)
	alice := []string{"XDG_CONFIG_HOME=" + filepath.Join(w.home, "alice"), "T=" + atok}
	if lr := w.run(alice, "login", "--bastion", w.url(), "--id-token-env", "T"); lr.Code != 0 {
		t.Fatalf("alice login: %s", lr)
	}
	if ar := w.run(alice, "approve", r.RequestID); ar.Code != 0 {
		t.Fatalf("approve: %s", ar)
	}
	var final bastion.SQLResponse
	testenv.WaitFor(t, 30*time.Second, "the held UPDATE's answer", func() bool {
		var code int
		code, final = call("GET", r.StatusURL, token, nil)
		return code != 202
	})
	if final.Status != "ok" || len(final.Tags) != 1 || final.Tags[0] != "UPDATE 1" {
		t.Fatalf("the approved UPDATE: %+v", final)
	}
	if got := pg.QueryStrings(t, "shop", "SELECT name FROM customers WHERE id = 1"); len(got) != 1 || got[0] != "Ada L." {
		t.Fatalf("after the approved UPDATE: %v", got)
	}

	a := <-slow
	if a.err != nil || a.code != http.StatusGatewayTimeout || a.r.Status != "error" || a.r.Error == nil || a.r.Error.SQLState != "57014" ||
		!strings.Contains(a.r.Error.Message, "sql_api.timeout") || a.r.SessionID == "" {
		t.Fatalf("a statement past the time limit: want 504 naming sql_api.timeout: %d %+v %v", a.code, a.r, a.err)
	}
	testenv.WaitFor(t, 30*time.Second, "PostgreSQL to stop the timed-out pg_sleep", func() bool { return sleeping() == "0" })

	// Each of the 50 requests is a recorded session of the workload and
	// has its own audit record; the DROP, the UPDATE and the pg_sleep are
	// sessions too.
	// Recordings are committed in groups: wait for the 50.
	recorded, audited := map[string]bool{}, map[string]int{}
	testenv.WaitFor(t, 30*time.Second, "the 50 sessions in the store", func() bool {
		all, err := w.app.Store.Sessions(recorder.SessionFilter{Target: "pg1", User: "ci-etl"})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range all {
			recorded[s.ID] = true
		}
		for sid := range sessions {
			if !recorded[sid] {
				return false
			}
		}
		return true
	})
	w.app.Store.AuditEvents(time.Time{}, func(ev recorder.AuditEvent) error {
		if ev.Type == "forward.start" && ev.Fields["via"] == "sql api" {
			audited[ev.SessionID]++
		}
		return nil
	})
	for sid := range sessions {
		if audited[sid] != 1 {
			t.Errorf("session %s: %d audit records, want 1", sid, audited[sid])
		}
	}
	if len(audited) != 53 {
		t.Errorf("%d audited SQL API sessions, want 53", len(audited))
	}
}

// testSQLRate: past its burst, an identity gets 429 with a Retry-After
// and a JSON reason; another identity is not limited by it.
func testSQLRate(t *testing.T, w *world, st *login.State) {
	token := readAccessToken(t, st)
	var code int
	var h http.Header
	var r bastion.SQLResponse
	var err error
	n := 0
	// Each request takes a token before its body is read, so an empty body
	// (400) spends one without reaching PostgreSQL.
	for ; n < 200; n++ {
		if code, h, r, err = sqlCall(w, "POST", bastion.PathSQL, token, struct{}{}); err != nil {
			t.Fatal(err)
		}
		if code != http.StatusBadRequest {
			break
		}
	}
	if code != http.StatusTooManyRequests || r.Status != "error" || r.Error == nil || !strings.Contains(r.Error.Message, "rate limit") || h.Get("Retry-After") != "100" {
		t.Fatalf("after %d requests: want 429 with Retry-After 100: %d %v %+v", n, code, h, r)
	}
	alice, err := login.Resolve(filepath.Join(w.home, "alice", "bastion"), "")
	if err != nil {
		t.Fatal(err)
	}
	if code, _, r, err := sqlCall(w, "POST", bastion.PathSQL, readAccessToken(t, alice), struct{}{}); err != nil || code != http.StatusBadRequest {
		t.Fatalf("another identity: %d %+v %v", code, r, err)
	}
}

func readAccessToken(t *testing.T, st *login.State) string {
	t.Helper()
	tok, err := os.ReadFile(st.AccessTokenPath)
	if err != nil {
		t.Fatalf("access token: %v (state %+v)", err, st)
	}
	return strings.TrimSpace(string(tok))
}

// sqlCall sends one SQL API request and decodes its JSON answer.
func sqlCall(w *world, method, path, token string, req any) (int, http.Header, bastion.SQLResponse, error) {
	var body bytes.Buffer
	var out bastion.SQLResponse
	if req != nil {
		json.NewEncoder(&body).Encode(req)
	}
	hr, err := http.NewRequest(method, w.url()+path, &body)
	if err != nil {
		return 0, nil, out, err
	}
	hr.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(hr)
	if err != nil {
		return 0, nil, out, err
	}
	defer resp.Body.Close()
	if ct := resp.Header.Get("Content-Type"); ct != "application/json" {
		return resp.StatusCode, resp.Header, out, fmt.Errorf("%d with Content-Type %q", resp.StatusCode, ct)
	}
	if err := json.NewDecoder(resp.Body).Decode(&out); err != nil {
		return resp.StatusCode, resp.Header, out, fmt.Errorf("%d: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, resp.Header, out, nil
}

// testMCP: the SDK's own client lists bastion mcp's tools, describes the
// database, queries it (cards masked), and a DROP comes back as a tool
// error naming the rule.
func testMCP(t *testing.T, w *world, st *login.State) {
	t.Setenv("HOME", w.home) // remote() reads the login's files as the CLI would
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	st2 := *st
	st2.BastionURL = w.url()
	st2.SSHAddress = w.app.SSHAddr()
	ct, stt := mcp.NewInMemoryTransports()
	if _, err := newMCPServer(&st2).Connect(ctx, stt, nil); err != nil {
		t.Fatal(err)
	}
	cs, err := mcp.NewClient(&mcp.Implementation{Name: "test-agent", Version: "v0"}, nil).Connect(ctx, ct, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer cs.Close()
	tools, err := cs.ListTools(ctx, nil)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, tl := range tools.Tools {
		names = append(names, tl.Name)
	}
	if strings.Join(names, ",") != "describe,list_targets,query,result" {
		t.Fatalf("tools %v", names)
	}
	text := func(r *mcp.CallToolResult) string {
		var b strings.Builder
		for _, c := range r.Content {
			if tc, ok := c.(*mcp.TextContent); ok {
				b.WriteString(tc.Text)
			}
		}
		return b.String()
	}
	call := func(name string, args map[string]any) *mcp.CallToolResult {
		t.Helper()
		r, err := cs.CallTool(ctx, &mcp.CallToolParams{Name: name, Arguments: args})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		return r
	}
	db := map[string]any{"target": "pg1", "database": "shop", "user": "app"}
	if r := call("list_targets", map[string]any{}); r.IsError || !strings.Contains(text(r), `"pg1"`) {
		t.Errorf("list_targets: %s", text(r))
	}
	if r := call("describe", db); r.IsError || !strings.Contains(text(r), "customers") {
		t.Errorf("describe: %s", text(r))
	}
	q := func(sql string) map[string]any {
		m := map[string]any{"sql": sql}
		for k, v := range db {
			m[k] = v
		}
		return m
	}
	if r := call("query", q("SELECT name, card FROM customers ORDER BY id")); r.IsError || !strings.Contains(text(r), "********") || strings.Contains(text(r), "4111 1111") {
		t.Errorf("query: %s", text(r))
	}
	if r := call("query", q("DROP TABLE customers")); !r.IsError || !strings.Contains(text(r), "no-drop") || !strings.Contains(text(r), "42501") {
		t.Errorf("DROP through MCP: want a tool error naming the rule: %s", text(r))
	}
	// A held statement: the agent asks for its answer later, by the
	// session_id the query returned.
	r := call("query", q("UPDATE customers SET name = 'Ada M.' WHERE id = 1"))
	var held struct {
		Status    string `json:"status"`
		SessionID string `json:"session_id"`
		Message   string `json:"message"`
	}
	if r.IsError || json.Unmarshal([]byte(text(r)), &held) != nil || held.Status != "held" || held.SessionID == "" {
		t.Fatalf("UPDATE through MCP: want held with a session_id: %s", text(r))
	}
	req := regexp.MustCompile(`request ([0-9a-f]{8})`).FindStringSubmatch(held.Message)
	if req == nil {
		t.Fatalf("no request ID in %q", held.Message)
	}
	// Still held: the answer names the request the agent waits on.
	if r := call("result", map[string]any{"session_id": held.SessionID}); r.IsError || !strings.Contains(text(r), `"held"`) || !strings.Contains(text(r), "request "+req[1]) {
		t.Fatalf("result before the decision: %s", text(r))
	}
	if r := call("result", map[string]any{"session_id": "../../v1/certificate"}); !r.IsError {
		t.Errorf("result of a path: %s", text(r))
	}
	claims, _ := w.idp.IDTokenClaims("u-alice", "bastion")
	atok, _ := w.idp.MintIDToken(claims)
	alice := []string{"XDG_CONFIG_HOME=" + filepath.Join(w.home, "alice-mcp"), "T=" + atok}
	if lr := w.run(alice, "login", "--bastion", w.url(), "--id-token-env", "T"); lr.Code != 0 {
		t.Fatalf("alice login: %s", lr)
	}
	if ar := w.run(alice, "approve", req[1]); ar.Code != 0 {
		t.Fatalf("approve: %s", ar)
	}
	var answer string
	testenv.WaitFor(t, 30*time.Second, "the held UPDATE's answer through MCP", func() bool {
		answer = text(call("result", map[string]any{"session_id": held.SessionID}))
		return !strings.Contains(answer, `"held"`)
	})
	if !strings.Contains(answer, "UPDATE 1") {
		t.Fatalf("the approved UPDATE's answer: %s", answer)
	}
	if r := call("result", map[string]any{"session_id": held.SessionID}); !r.IsError {
		t.Errorf("an answer given twice: %s", text(r))
	}
}

// TestSQLAPITimeoutAfterApproval: sql_api.timeout still bounds what a
// request runs after one of its statements was held and approved (the
// wait itself does not count). With a 5 s limit, an UPDATE held and then
// approved, and a pg_sleep(40) after it in the same text: PostgreSQL stops
// the pg_sleep once the time left is spent, and the answer says the limit
// was reached.
func TestSQLAPITimeoutAfterApproval(t *testing.T) {
	yaml := strings.Replace(dbWorldYAML, "timeout: 20s}", "timeout: 5s}", 1)
	if yaml == dbWorldYAML {
		t.Fatal("dbWorldYAML has no sql_api timeout of 20s to replace")
	}
	w, pg, token := sqlAPIWorld(t, yaml)

	// The pg_sleep, as PostgreSQL shows it: the request's whole text.
	sleeping := func() string {
		got := pg.QueryStrings(t, "shop", "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(40)%' AND state = 'active' AND pid <> pg_backend_pid()")
		if len(got) != 1 {
			t.Fatalf("pg_stat_activity: %v", got)
		}
		return got[0]
	}
	req := bastion.SQLRequest{Target: "pg1", Database: "shop", User: "app",
		SQL: "UPDATE customers SET name = 'Ada L.' WHERE id = 1; SELECT pg_sleep(40)"}
	code, _, r, err := sqlCall(w, "POST", bastion.PathSQL, token, req)
	if err != nil || code != http.StatusAccepted || r.Status != "held" || r.RequestID == "" || r.StatusURL == "" {
		t.Fatalf("want 202 held: %d %+v %v", code, r, err)
	}
	// A wait longer than the limit does not count.
	time.Sleep(6 * time.Second)
	if got := sleeping(); got != "0" {
		t.Fatalf("the statement after the held one runs before the decision: %s", got)
	}
	claims, _ := w.idp.IDTokenClaims("u-alice", "bastion")
	atok, _ := w.idp.MintIDToken(claims)
	alice := []string{"XDG_CONFIG_HOME=" + filepath.Join(w.home, "alice"), "T=" + atok}
	if lr := w.run(alice, "login", "--bastion", w.url(), "--id-token-env", "T"); lr.Code != 0 {
		t.Fatalf("alice login: %s", lr)
	}
	if ar := w.run(alice, "approve", r.RequestID); ar.Code != 0 {
		t.Fatalf("approve: %s", ar)
	}
	// The pg_sleep runs, then stops well before its 40 s: at most the 5 s
	// left, and some slack.
	approved := time.Now()
	var final bastion.SQLResponse
	finalCode := http.StatusAccepted
	answer := func() bool { // the answer is given once
		if finalCode == http.StatusAccepted {
			c, _, f, err := sqlCall(w, "GET", r.StatusURL, token, nil)
			if err == nil && c != http.StatusAccepted {
				finalCode, final = c, f
			}
		}
		return finalCode != http.StatusAccepted
	}
	testenv.WaitFor(t, 20*time.Second, "the pg_sleep running in PostgreSQL, or the answer", func() bool {
		return sleeping() == "1" || answer()
	})
	testenv.WaitFor(t, 25*time.Second, "PostgreSQL to stop the pg_sleep past sql_api.timeout", func() bool { return sleeping() == "0" })
	t.Logf("the pg_sleep stopped %s after the approval", time.Since(approved).Round(100*time.Millisecond))
	testenv.WaitFor(t, 20*time.Second, "the held request's answer", answer)
	if finalCode != http.StatusGatewayTimeout || final.Status != "error" || final.Error == nil || final.Error.SQLState != "57014" ||
		!strings.Contains(final.Error.Message, "sql_api.timeout") {
		t.Fatalf("want 504 naming sql_api.timeout: %d %+v", finalCode, final)
	}
}
