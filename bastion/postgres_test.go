package bastion_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bastionhq/bastion/internal/testenv"
)

const pgSeed = `
CREATE TABLE t (id serial PRIMARY KEY, x text);
INSERT INTO t (x) VALUES ('one'), ('two');
CREATE TABLE orders (id int, customer text, card text);
INSERT INTO orders VALUES (1, 'ann', '4111 1111 1111 1111'), (2, 'bo', '5500-0000-0000-0004'), (3, 'cy', 'none');
CREATE TABLE secret_keys (name text, value text);
INSERT INTO secret_keys VALUES ('api', 'k-123');
GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON ALL TABLES IN SCHEMA public TO app;
GRANT USAGE ON ALL SEQUENCES IN SCHEMA public TO app;
GRANT CREATE ON SCHEMA public TO app;
CREATE ROLE priv;
GRANT priv TO app;
CREATE TABLE patients (id int PRIMARY KEY, name text, diagnosis text);
INSERT INTO patients VALUES (1, 'pat', 'hypochondria-secret'), (2, 'sam', 'insomnia-secret');
CREATE VIEW patient_view AS SELECT id, diagnosis AS d FROM patients;
GRANT SELECT, INSERT, UPDATE ON patients, patient_view TO app;
`

const pgRules = `
rules:
  - {name: no-drop, on: sql, match: {statement: drop_table}, action: block}
  - {name: secrets, on: sql, match: {tables: ["secret*"]}, action: approve, approvers: [approvers], timeout: 60s}
  - {name: cards, on: output, match: {detector: credit_card}, action: mask}
  - {name: no-privilege-change, on: sql, match: {statements: [role_change]}, action: block, unknowable: block}
  - {name: no-server-access, on: sql, match: {statements: [file_read, file_write, server_program, remote_connection, server_admin]}, action: block}
  - {name: no-unbounded-update, on: sql, match: {regex: "^UPDATE [a-z_]+ SET [^W]*$"}, action: block}
  - {name: diagnoses, on: sql_result, match: {columns: ["patients.diagnosis"]}, action: mask}
  - {name: no-orders-delete, on: sql, match: {statements: [delete, truncate], tables: ["orders"]}, action: block}
`

// pgEnv is the bastion env plus a real PostgreSQL 15 that trusts only the
// bastion's database CA (hostssl ... cert, no passwords anywhere), reached
// with the stock ssh -L and psql.
type pgEnv struct {
	*env
	pg    *testenv.Postgres
	lport int
}

func newPGEnv(t *testing.T) *pgEnv {
	t.Helper()
	testenv.RequirePostgres(t)
	e := newEnv(t, envOptions{extraYAML: pgRules, pgTarget: true})
	return &pgEnv{env: e, pg: e.pg, lport: e.forwardPG(t)}
}

// forwardPG starts ssh -N -L to pg1 and returns the local port.
func (e *env) forwardPG(t *testing.T) int {
	lport := testenv.FreePort(t)
	testenv.StartPTY(t, 80, 24, "ssh", "-F", e.cfgPath, "-N", "-o", "ExitOnForwardFailure=yes",
		"-L", fmt.Sprintf("127.0.0.1:%d:pg1:5432", lport), "bastion")
	dialRetry(t, fmt.Sprintf("127.0.0.1:%d", lport)).Close()
	return lport
}

func (p *pgEnv) dsn(extra string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=app dbname=shop sslmode=disable connect_timeout=20 %s", p.lport, extra)
}

func (p *pgEnv) psql(t *testing.T, stdin string, args ...string) testenv.Result {
	t.Helper()
	return testenv.Run(t, 60*time.Second, stdin, p.pg.Tool(t, "psql"), append([]string{"-X", "-v", "ON_ERROR_STOP=1", p.dsn("")}, args...)...)
}

func (p *pgEnv) tableExists(t *testing.T, name string) bool {
	t.Helper()
	rows := p.pg.QueryStrings(t, "shop", fmt.Sprintf("SELECT count(*) FROM pg_tables WHERE tablename = '%s'", name))
	return len(rows) == 1 && rows[0] == "1"
}

func TestPostgresThroughBastion(t *testing.T) {
	p := newPGEnv(t)

	r := p.psql(t, "", "-At", "-c", "SELECT count(*) FROM t")
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != "2" {
		t.Fatalf("select: %s", r)
	}

	for _, sql := range []string{"DROP TABLE t", "DrOp/**/TABLE t", "SELECT 1; DROP TABLE t", "drop table if exists public.t cascade"} {
		r := p.psql(t, "", "-c", sql)
		if r.Code == 0 || !strings.Contains(r.Stderr, "no-drop") {
			t.Errorf("%q was not blocked: %s", sql, r)
		}
		if !p.tableExists(t, "t") {
			t.Fatalf("%q dropped the table", sql)
		}
	}
	// The connection stays usable after a block.
	r = p.psql(t, "DROP TABLE t;\n", "-v", "ON_ERROR_STOP=0", "-At", "-c", "SELECT 'still-usable'", "-f", "-")
	if !strings.Contains(r.Stdout, "still-usable") {
		t.Errorf("after a block: %s", r)
	}

	// A prepared DROP through the extended protocol (pgx) is refused at Parse.
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app@127.0.0.1:%d/shop?sslmode=disable", p.lport))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(ctx)
	if _, err := conn.Prepare(ctx, "dropper", "DROP TABLE t"); err == nil || !strings.Contains(err.Error(), "42501") {
		t.Errorf("prepared DROP: %v", err)
	}
	var n int
	if err := conn.QueryRow(ctx, "SELECT count(*) FROM t WHERE id > $1", 0).Scan(&n); err != nil || n != 2 {
		t.Errorf("extended query after the block: %d, %v", n, err)
	}
	if !p.tableExists(t, "t") {
		t.Fatal("the prepared DROP dropped the table")
	}

	// Card numbers in results are masked on screen.
	r = p.psql(t, "", "-At", "-c", "SELECT customer, card FROM orders ORDER BY id")
	if r.Code != 0 || strings.Contains(r.Stdout, "4111 1111 1111 1111") || strings.Contains(r.Stdout, "5500-0000-0000-0004") ||
		!strings.Contains(r.Stdout, "**** **** **** 1111") || !strings.Contains(r.Stdout, "cy|none") {
		t.Fatalf("masking: %s", r)
	}

	// COPY FROM STDIN works (and its data is not parsed as SQL).
	r = p.psql(t, "three\nDROP TABLE t\n", "-c", `\copy t(x) from stdin`)
	if r.Code != 0 {
		t.Fatalf("copy from stdin: %s", r)
	}
	if rows := p.pg.QueryStrings(t, "shop", "SELECT count(*) FROM t"); rows[0] != "4" {
		t.Fatalf("copy: %v rows", rows)
	}

	// Straight to the database without the bastion's certificate: refused.
	direct := testenv.Run(t, 30*time.Second, "", p.pg.Tool(t, "psql"), "-X",
		fmt.Sprintf("host=127.0.0.1 port=%d user=app dbname=shop sslmode=require connect_timeout=10", p.pg.Port), "-c", "SELECT 1")
	if direct.Code == 0 {
		t.Fatalf("the database accepted a connection without a certificate: %s", direct)
	}

	// The session is recorded as a transcript without card numbers.
	list := p.ssh("", "bastion", "sessions", "--json", "--kind", "postgres")
	var ids []string
	for _, line := range strings.Split(strings.TrimSpace(list.Stdout), "\n") {
		if i := strings.Index(line, `"id":"`); i >= 0 {
			ids = append(ids, line[i+6:i+6+26])
		}
	}
	if len(ids) == 0 {
		t.Fatalf("no postgres sessions listed: %s", list)
	}
	var all strings.Builder
	for _, id := range ids {
		all.WriteString(p.ssh("", "bastion", "export", id).Stdout)
	}
	exp := all.String()
	mustContain(t, "transcript", exp, "SELECT count(*) FROM t", "no-drop", "**** **** **** 1111")
	if strings.Contains(exp, "4111 1111 1111 1111") || strings.Contains(exp, "5500-0000-0000-0004") {
		t.Error("the recording holds a card number")
	}
}

func TestPostgresApprovalAndCancel(t *testing.T) {
	p := newPGEnv(t)
	bobCfg := p.bobConfig(t)
	p.writeSSHConfig("alice", p.alice)

	// A held statement runs after approval.
	pty := testenv.StartPTY(t, 120, 30, p.pg.Tool(t, "psql"), "-X", p.dsn(""))
	pty.Expect("shop=>", 30*time.Second)
	pty.Send("SELECT value FROM secret_keys;\r")
	m := requestRE.FindStringSubmatch(pty.Expect("waiting up to", 30*time.Second))
	if m == nil {
		t.Fatal("no request ID in the notice")
	}
	if r := p.as(bobCfg, "bastion", "approve", m[1]); r.Code != 0 {
		t.Fatalf("approve: %s", r)
	}
	pty.Expect("k-123", 30*time.Second)
	pty.Expect("shop=>", 30*time.Second)

	// Ctrl-C in psql cancels a running statement through the bastion.
	pty.Send("SELECT pg_sleep(30);\r")
	// Cancel once the statement runs at the server (on a loaded machine,
	// a fixed pause could come before it does).
	for deadline := time.Now().Add(30 * time.Second); ; {
		got := p.pg.QueryStrings(t, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(30)%'")
		if len(got) == 1 && got[0] == "1" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the statement never started")
		}
		time.Sleep(20 * time.Millisecond)
	}
	pty.Send("\x03")
	pty.Expect("canceling statement due to user request", 20*time.Second)
	pty.Expect("shop=>", 30*time.Second)

	// Denied: the statement never runs.
	pty.Send("SELECT value FROM secret_keys WHERE name = 'api';\r")
	m = requestRE.FindStringSubmatch(pty.Expect("waiting up to", 30*time.Second))
	r := p.as(bobCfg, "bastion", "deny", m[1])
	if r.Code != 0 {
		t.Fatalf("deny: %s", r)
	}
	// The approver was shown the statement as sent, constants included, not $1.
	mustContain(t, "deny output", r.Stdout, "SELECT value FROM secret_keys WHERE name = 'api'")
	pty.Expect("denied", 30*time.Second)
	pty.Send("\\q\r")
	pty.Wait(20 * time.Second)
}

// pgCAFile writes the test server CA for the target's tls.ca_file.
func pgCAFile(t *testing.T, pem []byte) string {
	p := filepath.Join(t.TempDir(), "pg-ca.pem")
	if err := os.WriteFile(p, pem, 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// TestPostgresGuardrails: through the stock ssh -L and psql, the configured SQL rules
// see into function and DO bodies, role changes through set_config(), the server's files,
// and startup parameters; ordinary work still runs.
func TestPostgresGuardrails(t *testing.T) {
	p := newPGEnv(t)
	for _, tc := range []struct{ sql, rule string }{
		{"CREATE FUNCTION f1() RETURNS void LANGUAGE plpgsql AS $$BEGIN DROP TABLE t; END$$", "no-drop"},
		{"CREATE FUNCTION f2() RETURNS void LANGUAGE sql AS 'DROP TABLE t'; SELECT f2()", "no-drop"},
		{"CREATE PROCEDURE p3() LANGUAGE plpgsql AS $$BEGIN EXECUTE 'DROP TABLE t'; END$$", "no-drop"},
		{"DO $$BEGIN EXECUTE 'DROP TABLE ' || 't'; END$$", "no-privilege-change"}, // unknowable: block
		{"CREATE FUNCTION f4() RETURNS void LANGUAGE sql AS 'UPDATE t SET x = 1'", "no-unbounded-update"},
		{"SELECT set_config('role', 'priv', false)", "no-privilege-change"},
		{"SELECT pg_catalog.set_config('ROLE', 'priv', false)", "no-privilege-change"},
		{"SET ROLE priv", "no-privilege-change"},
		{"SELECT pg_read_file('/etc/passwd')", "no-server-access"},
		{"COPY t TO PROGRAM 'cat'", "no-server-access"},
	} {
		r := p.psql(t, "", "-c", tc.sql)
		if r.Code == 0 || !strings.Contains(r.Stderr, tc.rule) {
			t.Errorf("%q: got %s, want a block by %s", tc.sql, r, tc.rule)
		}
		if !p.tableExists(t, "t") {
			t.Fatalf("%q dropped the table", tc.sql)
		}
	}
	if got := p.pg.QueryStrings(t, "shop", "SELECT count(*) FROM t WHERE x = '1'"); got[0] != "0" {
		t.Errorf("an update ran")
	}

	// Startup parameters outside the allowlist are refused, naming the parameter.
	r := testenv.Run(t, 60*time.Second, "", p.pg.Tool(t, "psql"), "-X", p.dsn("options='-c role=priv'"), "-c", "SELECT current_user")
	if r.Code == 0 || !strings.Contains(r.Stderr, `"options" is not allowed`) {
		t.Errorf("options=-c role=priv: %s", r)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg, err := pgx.ParseConfig(fmt.Sprintf("postgres://app@127.0.0.1:%d/shop?sslmode=disable", p.lport))
	if err != nil {
		t.Fatal(err)
	}
	cfg.RuntimeParams["role"] = "priv"
	if c, err := pgx.ConnectConfig(ctx, cfg); err == nil {
		c.Close(ctx)
		t.Error("connected with the startup parameter role=priv")
	} else if !strings.Contains(err.Error(), `"role" is not allowed`) {
		t.Errorf("role=priv: got %v", err)
	}

	// Ordinary work.
	r = p.psql(t, "CREATE FUNCTION add_ints(a int, b int) RETURNS int LANGUAGE plpgsql AS $$BEGIN RETURN a + b; END$$;\n"+
		"SET search_path = public;\nUPDATE t SET x = 'uno' WHERE id = 1;\nSELECT add_ints(2, 3), current_user;\n", "-At")
	if r.Code != 0 || !strings.Contains(r.Stdout, "5|app") {
		t.Errorf("benign work: %s", r)
	}
	if r := p.psql(t, "", "-c", `\df add_ints`); r.Code != 0 {
		t.Errorf(`\df: %s`, r)
	}
}

// TestPostgresMaskingLineage: a sql_result rule naming patients.diagnosis masks the
// column wherever its values go, through the stock ssh -L and psql, in what the user
// sees and in the recording; copies that would lose the mask are refused.
func TestPostgresMaskingLineage(t *testing.T) {
	p := newPGEnv(t)
	for _, sql := range []string{
		"SELECT diagnosis AS d FROM patients",
		"SELECT upper(diagnosis) FROM patients",
		"SELECT p FROM patients p",
		"SELECT row_to_json(p) FROM patients p",
		"SELECT * FROM (SELECT diagnosis FROM patients) s",
		"WITH x AS (SELECT diagnosis FROM patients) SELECT * FROM x",
		"SELECT d FROM patient_view",
		"SELECT string_agg(diagnosis, ',') FROM patients",
		"UPDATE patients SET name = name WHERE id = 1 RETURNING diagnosis",
	} {
		r := p.psql(t, "", "-At", "-c", sql)
		if r.Code != 0 || strings.Contains(r.Stdout, "secret") || !strings.Contains(r.Stdout, "********") {
			t.Errorf("%q: %s", sql, r)
		}
	}
	if r := p.psql(t, "", "-At", "-c", "SELECT name FROM patients ORDER BY id"); r.Code != 0 || !strings.Contains(r.Stdout, "pat\nsam") {
		t.Errorf("an unmasked column: %s", r)
	}
	for _, sql := range []string{
		"CREATE TABLE copied AS SELECT diagnosis AS x FROM patients",
		"COPY (SELECT diagnosis FROM patients) TO STDOUT",
	} {
		if r := p.psql(t, "", "-c", sql); r.Code == 0 || !strings.Contains(r.Stderr, "diagnoses") || strings.Contains(r.Stdout, "secret") {
			t.Errorf("%q: %s", sql, r)
		}
	}
	if r := p.psql(t, "", "-c", "SELECT diagnosis::int FROM patients"); strings.Contains(r.Stderr, "secret") {
		t.Errorf("an error message quotes a masked value: %s", r)
	}
	// The recording holds no masked value either.
	list := p.ssh("", "bastion", "sessions", "--json", "--kind", "postgres")
	var all strings.Builder
	for _, line := range strings.Split(strings.TrimSpace(list.Stdout), "\n") {
		if i := strings.Index(line, `"id":"`); i >= 0 {
			all.WriteString(p.ssh("", "bastion", "export", line[i+6:i+6+26]).Stdout)
		}
	}
	if exp := all.String(); !strings.Contains(exp, "********") || strings.Contains(exp, "hypochondria") || strings.Contains(exp, "insomnia") {
		t.Errorf("recording: masked %v, leaks %v", strings.Contains(exp, "********"), strings.Contains(exp, "secret"))
	}
}

// connCounter relays TCP connections to a real server and counts the ones
// still open, so a test sees whether the bastion closed its upstream.
type connCounter struct {
	open atomic.Int64
	seen atomic.Int64
}

func (c *connCounter) relay(t *testing.T, to string) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			in, err := l.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", to)
			if err != nil {
				in.Close()
				continue
			}
			c.open.Add(1)
			c.seen.Add(1)
			go func() {
				done := make(chan struct{}, 2)
				go func() { io.Copy(out, in); out.Close(); done <- struct{}{} }()
				go func() { io.Copy(in, out); in.Close(); done <- struct{}{} }()
				<-done
				<-done
				c.open.Add(-1)
			}()
		}
	}()
	return l.Addr().String()
}

// A PostgreSQL client that asks for TLS through ssh -L and then says
// nothing is cut at sessions.startup_timeout, and the connection the
// bastion opened to the database for it is closed too: a silent client
// must not hold a database connection.
func TestPostgresSilentClientCutAtStartupDeadline(t *testing.T) {
	testenv.RequirePostgres(t)
	var upstream connCounter
	e := newEnv(t, envOptions{extraYAML: pgRules, pgTarget: true, startup: 2 * time.Second,
		pgVia: func(addr string) string { return upstream.relay(t, addr) }})
	lport := e.forwardPG(t)

	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", lport))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	// SSLRequest: length 8, code 80877103.
	if _, err := c.Write([]byte{0, 0, 0, 8, 0x04, 0xd2, 0x16, 0x2f}); err != nil {
		t.Fatal(err)
	}
	reply := make([]byte, 1)
	if _, err := io.ReadFull(c, reply); err != nil || reply[0] != 'S' {
		t.Fatalf("SSLRequest answer %q, %v; want S", reply, err)
	}
	testenv.WaitFor(t, 10*time.Second, "the bastion to dial the database for the client", func() bool { return upstream.seen.Load() > 0 })

	// Silence. The bastion must close the client's connection on its own;
	// the read deadline only stops the test from hanging if it never does.
	c.SetReadDeadline(time.Now().Add(60 * time.Second))
	start := time.Now()
	n, err := c.Read(make([]byte, 64))
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatalf("the silent client is still connected after %v", time.Since(start).Round(time.Second))
	}
	if err == nil && n > 0 {
		t.Fatalf("the bastion sent %d bytes to a client that never started TLS", n)
	}
	testenv.WaitFor(t, 20*time.Second, "the bastion to close its database connection", func() bool { return upstream.open.Load() == 0 })

	// The forward itself still works for the next, well-behaved client.
	r := testenv.Run(t, 60*time.Second, "", e.pg.Tool(t, "psql"), "-X", "-At",
		fmt.Sprintf("host=127.0.0.1 port=%d user=app dbname=shop sslmode=disable connect_timeout=20", lport), "-c", "SELECT count(*) FROM t")
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != "2" {
		t.Fatalf("psql after the silent client: %s", r)
	}
}

// A PostgreSQL session exports as a capture of the client side of its
// conversation that tshark's pgsql dissector reads: the startup, the query
// and the rows, each masked as the transcript is (a card number in the SQL
// or in a result is stored masked), while the transcript export is unchanged.
func TestPostgresWireCapture(t *testing.T) {
	testenv.Require(t, "tshark")
	p := newPGEnv(t)
	r := p.psql(t, "", "-At", "-c", "SELECT customer, card FROM orders WHERE card <> '4111 1111 1111 1111' OR id = 1 ORDER BY id")
	if r.Code != 0 || !strings.Contains(r.Stdout, "ann|**** **** **** 1111") {
		t.Fatalf("psql: %s", r)
	}
	id := p.endedSession(t, "postgres", "pg1")
	exp := p.ssh("", "bastion", "export", id, "--format", "pcap")
	if exp.Code != 0 {
		t.Fatalf("export: %s", exp)
	}
	if strings.Contains(exp.Stdout, "4111 1111 1111 1111") || strings.Contains(exp.Stdout, "5500-0000-0000-0004") {
		t.Fatal("the capture holds a card number")
	}
	pcap := filepath.Join(t.TempDir(), "pg.pcap")
	os.WriteFile(pcap, []byte(exp.Stdout), 0o600)
	decode := fmt.Sprintf("tcp.port==%d,pgsql", p.pg.Port)
	fields := tshark(t, pcap, "-d", decode, "-Y", "pgsql", "-T", "fields", "-e", "pgsql.parameter_value", "-e", "pgsql.query", "-e", "pgsql.tag")
	mustContain(t, "tshark pgsql", fields,
		"app", "shop", // the StartupMessage's user and database
		"SELECT customer, card FROM orders WHERE card <> '**** **** **** 1111' OR id = 1 ORDER BY id",
		"SELECT 3")
	_, server := followRaw(t, tshark(t, pcap, "-q", "-z", "follow,tcp,raw,0"))
	if !bytes.Contains(server, []byte("**** **** **** 1111")) || !bytes.Contains(server, []byte("cy")) {
		t.Errorf("the rows the client received are not in the capture: %q", server)
	}
	if v := p.ssh("", "bastion", "verify", id); v.Code != 0 || !strings.Contains(v.Stdout, "intact") {
		t.Errorf("verify: %s", v)
	}
	// The terminal view is still the transcript, not the wire bytes.
	tr := p.ssh("", "bastion", "export", id)
	mustContain(t, "transcript", tr.Stdout, "shop=> SELECT customer, card FROM orders WHERE card <> '**** **** **** 1111'", "(3 rows, ")
	if strings.Contains(tr.Stdout, "4111 1111 1111 1111") {
		t.Error("the transcript holds a card number")
	}
}
