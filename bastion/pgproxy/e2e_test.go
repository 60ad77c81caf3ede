package pgproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"
)

// TestEndToEnd drives the real psql and pgx through the proxy to a real PostgreSQL 15
// that accepts only client certificates.
func TestEndToEnd(t *testing.T) {
	pg := startCluster(t)
	h := startProxy(t, pg, nil)
	ctx := context.Background()

	t.Run("psql select", func(t *testing.T) {
		r := h.psql(t, "", "-A", "-t", "-c", "SELECT name FROM t ORDER BY id")
		if r.err != nil {
			t.Fatalf("psql: %v\n%s", r.err, r.stderr)
		}
		if got, want := strings.TrimSpace(r.stdout), "one\ntwo\nthree"; got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		ev := findEvent(t, h, "SELECT name FROM t ORDER BY id")
		if ev.Outcome != OutcomeOK || ev.Rows != 3 || ev.Tag != "SELECT 3" || ev.User != "app" || ev.Database != "shop" {
			t.Errorf("got event %+v, want ok, 3 rows, tag SELECT 3, user app, database shop", ev)
		}
		if !strings.Contains(h.transcript.String(), "shop=> SELECT name FROM t ORDER BY id\r\n") {
			t.Errorf("transcript lacks the statement:\n%s", h.transcript.String())
		}
	})

	t.Run("psql meta-commands pass the classifier", func(t *testing.T) {
		for _, m := range []string{`\dt`, `\d t`, `\l`, `\du`, `\df`, `\dn`} {
			if r := h.psql(t, "", "-c", m); r.err != nil {
				t.Errorf("%s: %v\n%s", m, r.err, r.stderr)
			}
		}
	})

	t.Run("transcript neutralises escape sequences", func(t *testing.T) {
		if r := h.psql(t, "", "-c", `SELECT E'\x1b[2J\x1b]0;pwned\x07' AS "evil\x1b"`); r.err != nil {
			t.Fatalf("psql: %v\n%s", r.err, r.stderr)
		}
		tr := h.transcript.String()
		if strings.ContainsRune(tr, 0x1b) || strings.ContainsRune(tr, 0x07) {
			t.Errorf("transcript holds raw control characters: %q", tr)
		}
		if !strings.Contains(tr, `\x1b[2J\x1b]0;pwned\x07`) {
			t.Errorf("transcript lacks the escaped value")
		}
		if strings.Contains(strings.ReplaceAll(tr, "\r\n", ""), "\n") {
			t.Errorf("transcript has a bare LF")
		}
	})

	blocked := []string{
		"DROP TABLE t",
		"DrOp/**/TABLE t",
		"SELECT 1; DROP TABLE t",
		"drop table if exists public.t cascade",
		"/* hello */ DROP\nTABLE\tt",
	}
	for _, sql := range blocked {
		t.Run("psql blocked: "+sql, func(t *testing.T) {
			r := h.psql(t, "", "-A", "-t", "-c", sql)
			if r.err == nil {
				t.Fatalf("psql succeeded; stdout %q", r.stdout)
			}
			if !strings.Contains(r.stderr, "42501") || !strings.Contains(r.stderr, `rule "no-drop"`) {
				t.Errorf("got stderr %q, want SQLSTATE 42501 naming rule no-drop", r.stderr)
			}
			if strings.TrimSpace(r.stdout) != "" {
				t.Errorf("got stdout %q, want nothing (no statement of the query may run)", r.stdout)
			}
			if !tableExists(t, pg, "t") {
				t.Fatal("table t was dropped")
			}
		})
	}

	t.Run("connection usable after a block", func(t *testing.T) {
		r := h.psql(t, "DROP TABLE t;\nSELECT 'still here';\n", "-A", "-t", "-v", "ON_ERROR_STOP=0")
		if !strings.Contains(r.stdout, "still here") || !strings.Contains(r.stderr, "42501") {
			t.Errorf("got stdout %q stderr %q, want the block then the SELECT", r.stdout, r.stderr)
		}
	})

	t.Run("block inside a transaction aborts it, like a server error", func(t *testing.T) {
		script := "BEGIN;\nINSERT INTO t VALUES (10, 'ten');\nDROP TABLE t;\nSELECT 'after';\nROLLBACK;\n"
		r := h.psql(t, script, "-A", "-t", "-v", "ON_ERROR_STOP=0")
		if !strings.Contains(r.stderr, "42501") || !strings.Contains(r.stderr, "25P02") {
			t.Errorf("got stderr %q, want the block (42501) then an aborted transaction (25P02)", r.stderr)
		}
		if got := countRows(t, pg, "t WHERE id = 10"); got != "0" {
			t.Errorf("got %s rows with id 10, want 0", got)
		}
	})

	t.Run("unparseable SQL fails closed", func(t *testing.T) {
		r := h.psql(t, "SELEC 1;\nSELECT 'usable';\n", "-A", "-t", "-v", "ON_ERROR_STOP=0")
		if !strings.Contains(r.stderr, "42601") || !strings.Contains(r.stderr, "cannot be parsed") {
			t.Errorf("got stderr %q, want 42601 and a clear message", r.stderr)
		}
		if !strings.Contains(r.stdout, "usable") {
			t.Errorf("got stdout %q, want the connection still usable", r.stdout)
		}
	})

	t.Run("pgx prepared DROP is blocked at Parse", func(t *testing.T) {
		conn := h.connect(t, "app", "shop", nil)
		_, err := conn.Prepare(ctx, "dropper", "DROP TABLE t")
		wantPgError(t, err, "42501", `rule "no-drop"`)
		_, err = conn.Exec(ctx, "DROP TABLE t")
		wantPgError(t, err, "42501", `rule "no-drop"`)
		var n int
		if err := conn.QueryRow(ctx, "SELECT count(*) FROM t WHERE id < $1", 100).Scan(&n); err != nil {
			t.Fatalf("connection unusable after the block: %v", err)
		}
		if n != 3 {
			t.Errorf("got %d rows, want 3", n)
		}
		if !tableExists(t, pg, "t") {
			t.Fatal("table t was dropped")
		}
	})

	t.Run("extended protocol: messages after a blocked Parse are skipped until Sync", func(t *testing.T) {
		c := h.raw(t, "app", "shop")
		c.send(t,
			&pgproto3.Parse{Query: "INSERT INTO t VALUES (20, 'twenty')"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Name: "d", Query: "DROP TABLE t"}, &pgproto3.Bind{PreparedStatement: "d"},
			&pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: "SELECT 1"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Sync{})
		got := c.untilReady(t)
		if want := "ParseComplete BindComplete CommandComplete(INSERT 0 1) ErrorResponse(42501) ReadyForQuery(I)"; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
		// The implicit transaction was aborted, as after any error.
		if n := countRows(t, pg, "t WHERE id = 20"); n != "0" {
			t.Errorf("got %s rows with id 20, want 0", n)
		}
		// And the connection is in step: the next batch works, "d" was never prepared.
		c.send(t, &pgproto3.Bind{PreparedStatement: "d"}, &pgproto3.Execute{}, &pgproto3.Sync{})
		if got, want := c.untilReady(t), "ErrorResponse(26000) ReadyForQuery(I)"; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
		c.send(t, &pgproto3.Query{String: "SELECT 'ok'"})
		if got, want := c.untilReady(t), "RowDescription DataRow CommandComplete(SELECT 1) ReadyForQuery(I)"; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	})

	t.Run("extended protocol: an error before the client sends Sync", func(t *testing.T) {
		c := h.raw(t, "app", "shop")
		c.send(t, &pgproto3.Parse{Query: "SELECT * FROM no_such_table"}, &pgproto3.Flush{})
		c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
		m, err := c.fe.Receive()
		if e, ok := m.(*pgproto3.ErrorResponse); err != nil || !ok || e.Code != "42P01" {
			t.Fatalf("got %T %v, want ErrorResponse 42P01", m, err)
		}
		// The server now ignores these until Sync; the proxy must expect nothing for them.
		c.send(t, &pgproto3.Bind{}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{},
			&pgproto3.Parse{Name: "d", Query: "DROP TABLE t"}, &pgproto3.Query{String: "SELECT 1"}, &pgproto3.Sync{})
		if got, want := c.untilReady(t), "ReadyForQuery(I)"; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
		c.send(t, &pgproto3.Query{String: "SELECT 'in step'"})
		if got, want := c.untilReady(t), "RowDescription DataRow CommandComplete(SELECT 1) ReadyForQuery(I)"; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
	})

	t.Run("masking in psql and the transcript", func(t *testing.T) {
		r := h.psql(t, "", "-A", "-t", "-c", "SELECT id, customer, card, secret FROM orders ORDER BY id")
		if r.err != nil {
			t.Fatalf("psql: %v\n%s", r.err, r.stderr)
		}
		want := "1|alice|**** **** **** 1111|********\n2|bob|no card on file|********"
		if got := strings.TrimSpace(r.stdout); got != want {
			t.Errorf("got %q, want %q", got, want)
		}
		tr := h.transcript.String()
		if strings.Contains(tr, "4111 1111 1111 1111") || strings.Contains(tr, "alice-secret") {
			t.Errorf("transcript leaks a masked value:\n%s", tr)
		}
		if !strings.Contains(tr, "1 | alice | **** **** **** 1111 | ********") {
			t.Errorf("transcript lacks the masked row:\n%s", tr)
		}
	})

	t.Run("masking in error messages", func(t *testing.T) {
		r := h.psql(t, "", "-c", "SELECT '4111 1111 1111 1111'::int")
		// psql echoes the statement it sent itself ("LINE 1: ..."); the server's message
		// is the ERROR line.
		errLine, _, _ := strings.Cut(r.stderr, "\n")
		if !strings.HasPrefix(errLine, "ERROR:") || strings.Contains(errLine, "4111 1111 1111 1111") || !strings.Contains(errLine, "**** **** **** 1111") {
			t.Errorf("got error line %q, want the card number masked", errLine)
		}
	})

	t.Run("pgx binary cells that must be masked become NULL with a notice", func(t *testing.T) {
		var notices []string
		var mu sync.Mutex
		conn := h.connect(t, "app", "shop", func(c *pgx.ConnConfig) {
			c.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
				mu.Lock()
				notices = append(notices, n.Message)
				mu.Unlock()
			}
		})
		var num *int64
		var secret string
		if err := conn.QueryRow(ctx, "SELECT card_num, secret FROM orders WHERE id = $1", 1).Scan(&num, &secret); err != nil {
			t.Fatal(err)
		}
		if num != nil {
			t.Errorf("got card_num %d, want NULL", *num)
		}
		if secret != ColumnMask {
			t.Errorf("got secret %q, want %q", secret, ColumnMask)
		}
		mu.Lock()
		defer mu.Unlock()
		if len(notices) != 1 || !strings.Contains(notices[0], "sent as NULL") {
			t.Errorf("got notices %q, want one about NULL", notices)
		}
		// A value that is not a card number passes.
		if err := conn.QueryRow(ctx, "SELECT card_num FROM orders WHERE id = 2").Scan(&num); err != nil || num == nil || *num != 42 {
			t.Errorf("got %v, %v, want 42", num, err)
		}
	})

	t.Run("COPY FROM STDIN works and its data is never parsed", func(t *testing.T) {
		data := "1\tDROP TABLE t;\n2\tsecond\n\\.\n"
		r := h.psql(t, data, "-c", "COPY copied FROM STDIN")
		if r.err != nil {
			t.Fatalf("psql: %v\n%s", r.err, r.stderr)
		}
		conn := h.connect(t, "app", "shop", nil)
		n, err := conn.CopyFrom(ctx, pgx.Identifier{"copied"}, []string{"id", "name"},
			pgx.CopyFromRows([][]any{{3, "DELETE FROM t"}, {4, "x"}}))
		if err != nil || n != 2 {
			t.Fatalf("CopyFrom: got %d, %v", n, err)
		}
		if got := countRows(t, pg, "copied"); got != "4" {
			t.Errorf("got %s copied rows, want 4", got)
		}
		if !tableExists(t, pg, "t") || countRows(t, pg, "t") != "3" {
			t.Error("COPY data was executed")
		}
	})

	t.Run("COPY TO STDOUT is refused while columns are masked", func(t *testing.T) {
		r := h.psql(t, "", "-c", "COPY orders TO STDOUT")
		if r.err == nil || !strings.Contains(r.stderr, "pgproxy:copy-masking") && !strings.Contains(r.stderr, "COPY TO STDOUT cannot be masked") {
			t.Errorf("got %v, stdout %q stderr %q, want a refusal", r.err, r.stdout, r.stderr)
		}
	})

	t.Run("pgx cancel reaches the upstream", func(t *testing.T) {
		conn := h.connect(t, "app", "shop", func(c *pgx.ConnConfig) { c.RuntimeParams["application_name"] = "cancel-pgx" })
		errc := make(chan error, 1)
		go func() {
			_, err := conn.Exec(ctx, "SELECT pg_sleep(30)")
			errc <- err
		}()
		waitActive(t, pg, "cancel-pgx")
		cctx, cancel := context.WithTimeout(ctx, 10*time.Second)
		defer cancel()
		if err := conn.PgConn().CancelRequest(cctx); err != nil {
			t.Fatalf("CancelRequest: %v", err)
		}
		wantPgError(t, <-errc, "57014", "canceling statement due to user request")
	})

	t.Run("psql Ctrl-C cancels pg_sleep", func(t *testing.T) {
		cmd := h.psqlCmd(t, "", "-c", "SELECT pg_sleep(30)")
		cmd.Env = append(cmd.Env, "PGAPPNAME=cancel-psql")
		var stderr strings.Builder
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		waitActive(t, pg, "cancel-psql")
		if err := cmd.Process.Signal(syscall.SIGINT); err != nil {
			t.Fatal(err)
		}
		err := cmd.Wait()
		if err == nil || !strings.Contains(stderr.String(), "canceling statement due to user request") {
			t.Errorf("got %v, stderr %q, want the statement cancelled", err, stderr.String())
		}
	})

	t.Run("forged cancel key is dropped", func(t *testing.T) {
		conn := h.connect(t, "app", "shop", nil)
		errc := make(chan error, 1)
		var got string
		go func() { errc <- conn.QueryRow(ctx, "SELECT 'survived' FROM pg_sleep(1)").Scan(&got) }()
		for _, key := range []cancelKey{{1, 1}, {uint32(conn.PgConn().PID()), 12345}} {
			c, err := net.Dial("tcp", h.addr)
			if err != nil {
				t.Fatal(err)
			}
			c.Write(appendCancelRequest(nil, key.pid, key.secret))
			c.SetReadDeadline(time.Now().Add(10 * time.Second))
			var b [1]byte
			if n, _ := c.Read(b[:]); n != 0 {
				t.Errorf("got %d bytes in answer to a forged cancel, want none", n)
			}
			c.Close()
		}
		if err := <-errc; err != nil || got != "survived" {
			t.Errorf("got %q, %v; want the query to survive", got, err)
		}
	})

	t.Run("held statement runs after approval", func(t *testing.T) {
		approve := make(chan struct{})
		var once sync.Once
		hh := startProxy(t, pg, func(c *Config) {
			c.Judge = func(ctx context.Context, st Statement) Verdict {
				if !st.Has("update") {
					return testJudge(ctx, st)
				}
				return Verdict{Action: Hold, Rule: "updates-need-approval", RequestID: "7f3a", Message: "an SRE must approve",
					Wait: func(ctx context.Context) (Verdict, error) {
						select {
						case <-approve: // only after the client saw the notice
							return Verdict{Action: Allow, Rule: "updates-need-approval"}, nil
						case <-ctx.Done():
							return Verdict{}, ctx.Err()
						}
					}}
			}
		})
		conn := hh.connect(t, "app", "shop", func(c *pgx.ConnConfig) {
			c.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) {
				if strings.Contains(n.Message, "request 7f3a") {
					once.Do(func() { close(approve) })
				}
			}
		})
		if _, err := conn.Exec(ctx, "UPDATE accounts SET balance = 250 WHERE id = 1"); err != nil {
			t.Fatalf("held update: %v", err)
		}
		if got := pg.QueryStrings(t, "shop", "SELECT balance FROM accounts WHERE id = 1"); len(got) != 1 || got[0] != "250" {
			t.Errorf("got balance %v, want 250", got)
		}
		ev := findEvent(t, hh, "UPDATE accounts SET balance = 250 WHERE id = 1")
		if ev.Outcome != OutcomeOK || ev.RequestID != "7f3a" || ev.Rule != "updates-need-approval" {
			t.Errorf("got event %+v, want ok with request 7f3a", ev)
		}
		tr := hh.transcript.String()
		if !strings.Contains(tr, "HELD for approval") || !strings.Contains(tr, "APPROVED request 7f3a") {
			t.Errorf("transcript lacks the hold:\n%s", tr)
		}
	})

	t.Run("a cancel request ends an approval wait", func(t *testing.T) {
		hh := startProxy(t, pg, func(c *Config) {
			c.Judge = func(ctx context.Context, st Statement) Verdict {
				return Verdict{Action: Hold, Rule: "r", RequestID: "c4", Wait: func(ctx context.Context) (Verdict, error) {
					<-ctx.Done() // nobody approves
					return Verdict{}, ctx.Err()
				}}
			}
		})
		held := make(chan struct{})
		var once sync.Once
		conn := hh.connect(t, "app", "shop", func(c *pgx.ConnConfig) {
			c.OnNotice = func(*pgconn.PgConn, *pgconn.Notice) { once.Do(func() { close(held) }) }
		})
		errc := make(chan error, 1)
		go func() {
			_, err := conn.Exec(ctx, "UPDATE accounts SET balance = 1 WHERE id = 3")
			errc <- err
		}()
		<-held
		if err := conn.PgConn().CancelRequest(ctx); err != nil {
			t.Fatal(err)
		}
		wantPgError(t, <-errc, "57014", "cancelled by the client while held")
		if got := pg.QueryStrings(t, "shop", "SELECT balance FROM accounts WHERE id = 3"); got[0] != "100" {
			t.Errorf("got balance %v, want 100", got)
		}
	})

	t.Run("held statement denied", func(t *testing.T) {
		hh := startProxy(t, pg, func(c *Config) {
			c.Judge = func(ctx context.Context, st Statement) Verdict {
				return Verdict{Action: Hold, Rule: "r", RequestID: "9b", Wait: func(context.Context) (Verdict, error) {
					return Verdict{Action: Block, Message: "nobody approved"}, nil
				}}
			}
		})
		r := hh.psql(t, "", "-c", "UPDATE accounts SET balance = 0 WHERE id = 2")
		if r.err == nil || !strings.Contains(r.stderr, "42501") || !strings.Contains(r.stderr, "denied") || !strings.Contains(r.stderr, "request 9b") {
			t.Errorf("got %v, stderr %q, want a denial", r.err, r.stderr)
		}
		if got := pg.QueryStrings(t, "shop", "SELECT balance FROM accounts WHERE id = 2"); got[0] != "100" {
			t.Errorf("got balance %v, want 100", got)
		}
	})

	t.Run("client TLS on SSLRequest", func(t *testing.T) {
		ca := testenv.NewPostgresCA(t, "bastion-db-ca")
		cert := ca.IssueServer(t, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
		hh := startProxy(t, pg, func(c *Config) {
			c.ServerTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		})
		root := writeFile(t, t.TempDir(), "ca.crt", string(ca.PEM))
		cmd := exec.Command(pg.Tool(t, "psql"), "-X", "-A", "-t", "-c", "SELECT 'over tls'",
			fmt.Sprintf("host=127.0.0.1 port=%d user=app dbname=shop sslmode=verify-full sslrootcert=%s", hh.port, root))
		out, err := cmd.CombinedOutput()
		if err != nil || strings.TrimSpace(string(out)) != "over tls" {
			t.Errorf("got %q, %v", out, err)
		}
	})

	t.Run("startup refusals", func(t *testing.T) {
		for _, tc := range []struct{ name, conn, want string }{
			{"user not allowed", fmt.Sprintf("host=127.0.0.1 port=%d user=other dbname=shop sslmode=disable", h.port), `user "other" may not connect`},
			{"replication", fmt.Sprintf("host=127.0.0.1 port=%d user=app dbname=shop sslmode=disable replication=database", h.port), "replication connections are not allowed"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				cmd := exec.Command(pg.Tool(t, "psql"), "-X", "-c", "SELECT 1", tc.conn)
				out, err := cmd.CombinedOutput()
				if err == nil || !strings.Contains(string(out), tc.want) {
					t.Errorf("got %q, %v, want refusal %q", out, err, tc.want)
				}
			})
		}
	})

	t.Run("the server refuses a direct connection without a client certificate", func(t *testing.T) {
		cfg, err := pgx.ParseConfig(fmt.Sprintf("host=127.0.0.1 port=%d user=app dbname=shop sslmode=disable", pg.Port))
		if err != nil {
			t.Fatal(err)
		}
		cfg.TLSConfig, cfg.Fallbacks = pg.ServerTLS(), nil
		c, err := pgx.ConnectConfig(ctx, cfg)
		if err == nil {
			c.Close(ctx)
			t.Fatal("direct connection without a certificate succeeded")
		}
		wantPgError(t, err, "28000", "certificate")
	})

	t.Run("audit trail", func(t *testing.T) {
		ev := findEvent(t, h, "DrOp/**/TABLE t")
		if ev.Outcome != OutcomeBlocked || ev.Rule != "no-drop" || !ev.Statement.Has("drop_table") || ev.Statement.Protocol != "simple" {
			t.Errorf("got %+v, want a simple-protocol drop_table blocked by no-drop", ev)
		}
		ev = findEvent(t, h, "DROP TABLE t")
		if ev.Statement.Normalized != "DROP TABLE t" {
			t.Errorf("got normalized %q, want %q", ev.Statement.Normalized, "DROP TABLE t")
		}
	})

	t.Run("robustness", func(t *testing.T) { robustnessTests(t, pg) })

	if testing.Verbose() {
		t.Logf("transcript:\n%s", h.transcript.String())
	}
	if errs := h.Errors(); len(errs) > 0 {
		t.Logf("proxy errors (informational): %v", errs)
	}
}

// findEvent returns the last audit event for sql.
func findEvent(t *testing.T, h *harness, sql string) Event {
	t.Helper()
	evs := h.Events()
	for i := len(evs) - 1; i >= 0; i-- {
		if evs[i].Statement.SQL == sql {
			return evs[i]
		}
	}
	t.Fatalf("no audit event for %q", sql)
	return Event{}
}

func wantPgError(t *testing.T, err error, code, contains string) {
	t.Helper()
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("got error %v, want a PostgreSQL error %s", err, code)
	}
	if pe.Code != code || !strings.Contains(pe.Message+" "+pe.Detail, contains) {
		t.Errorf("got %s %q, want %s containing %q", pe.Code, pe.Message, code, contains)
	}
}

// waitActive waits until a backend with application_name app runs a statement.
func waitActive(t *testing.T, pg *testenv.Postgres, app string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		got := pg.QueryStrings(t, "postgres", fmt.Sprintf(
			"SELECT count(*) FROM pg_stat_activity WHERE application_name = '%s' AND state = 'active' AND query LIKE '%%pg_sleep%%'", app))
		if len(got) == 1 && got[0] == "1" {
			return
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("no active statement from %s", app)
}

// rawConn is a protocol-level client for exact message sequences.
type rawConn struct {
	conn net.Conn
	fe   *pgproto3.Frontend
}

func (h *harness) raw(t *testing.T, user, db string) *rawConn {
	t.Helper()
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	c := &rawConn{conn: conn, fe: pgproto3.NewFrontend(conn, conn)}
	c.send(t, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30, Parameters: map[string]string{"user": user, "database": db}})
	if got := c.untilReady(t); !strings.HasPrefix(got, "AuthenticationOk") {
		t.Fatalf("startup: got %s", got)
	}
	return c
}

func (c *rawConn) send(t *testing.T, msgs ...pgproto3.FrontendMessage) {
	t.Helper()
	for _, m := range msgs {
		c.fe.Send(m)
	}
	if err := c.fe.Flush(); err != nil {
		t.Fatal(err)
	}
}

// untilReady reads up to ReadyForQuery and summarises what came (notices and parameter
// statuses left out).
func (c *rawConn) untilReady(t *testing.T) string {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var got []string
	for {
		m, err := c.fe.Receive()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		switch m := m.(type) {
		case *pgproto3.ParameterStatus, *pgproto3.NoticeResponse, *pgproto3.BackendKeyData:
		case *pgproto3.CommandComplete:
			got = append(got, fmt.Sprintf("CommandComplete(%s)", m.CommandTag))
		case *pgproto3.ErrorResponse:
			got = append(got, fmt.Sprintf("ErrorResponse(%s)", m.Code))
		case *pgproto3.ReadyForQuery:
			got = append(got, fmt.Sprintf("ReadyForQuery(%c)", m.TxStatus))
			return strings.Join(got, " ")
		default:
			got = append(got, strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3."))
		}
	}
}
