package pgproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"
)

// robustnessTests are the end-to-end cases about hostile or unusual clients; they run
// as subtests of TestEndToEnd against its cluster.
func robustnessTests(t *testing.T, pg *testenv.Postgres) {
	h := startProxy(t, pg, nil)

	t.Run("malformed client messages end the connection with an error", func(t *testing.T) {
		for _, tc := range []struct {
			name string
			data []byte
			want string
		}{
			{"unknown type", msg('Y', cs("x")), "unexpected message type"},
			{"length below 4", []byte{'Q', 0, 0, 0, 2}, "invalid length"},
			{"query with trailing bytes", msg('Q', cs("SELECT 1"), cs("DROP TABLE t")), "trailing bytes"},
			{"bind with lying parameter length", msg('B', cs(""), cs(""), u16(0), u16(1), i32(1000), []byte("x"), u16(0)), "truncated parameter"},
			{"password message after startup", msg('p', cs("secret")), "unexpected message type"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := h.raw(t, "app", "shop")
				c.conn.Write(tc.data)
				fatal := c.readFatal(t)
				if fatal.Code != "08P01" || !strings.Contains(fatal.Message, tc.want) {
					t.Errorf("got %s %q, want 08P01 mentioning %q", fatal.Code, fatal.Message, tc.want)
				}
			})
		}
		if !tableExists(t, pg, "t") {
			t.Fatal("table t is gone")
		}
	})

	t.Run("message over the limit", func(t *testing.T) {
		hs := startProxy(t, pg, func(c *Config) { c.Limits.MaxMessage = 1024 })
		c := hs.raw(t, "app", "shop")
		c.send(t, &pgproto3.Query{String: "SELECT '" + strings.Repeat("x", 2000) + "'"})
		if fatal := c.readFatal(t); !strings.Contains(fatal.Message, "exceeds the limit of 1024") {
			t.Errorf("got %q, want the limit named", fatal.Message)
		}
	})

	t.Run("statement over MaxSQL fails closed, connection stays", func(t *testing.T) {
		hs := startProxy(t, pg, func(c *Config) { c.Limits.MaxSQL = 100 })
		c := hs.raw(t, "app", "shop")
		c.send(t, &pgproto3.Query{String: "SELECT '" + strings.Repeat("x", 200) + "'"})
		if got, want := c.untilReady(t), "ErrorResponse(54000) ReadyForQuery(I)"; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
		// SQL far past the limit is not read into memory whole first: a Query or
		// Parse of 1 GiB would otherwise be held before it is refused.
		c.send(t, &pgproto3.Query{String: "SELECT '" + strings.Repeat("x", 100+parseOverhead) + "'"})
		if fatal := c.readFatal(t); !strings.Contains(fatal.Message, "for SQL text") {
			t.Errorf("got %q, want the SQL limit named", fatal.Message)
		}
	})

	t.Run("startup", func(t *testing.T) {
		ca := testenv.NewPostgresCA(t, "proxy-ca")
		cert := ca.IssueServer(t, []string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
		ht := startProxy(t, pg, func(c *Config) {
			c.ServerTLS = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
			c.Limits.MaxStartup = 1024
		})
		startup := appendStartupPacket(nil, protocolVersion30, [][2]string{{"user", "app"}, {"database", "shop"}})

		t.Run("bytes pipelined after SSLRequest are dropped", func(t *testing.T) {
			c := dial(t, ht.addr)
			c.Write(append(appendStartupPacket(nil, sslRequestCode, nil), startup...))
			if b := readAll(t, c); len(b) != 0 {
				t.Errorf("got %q, want the connection dropped without an answer", b)
			}
			waitFor(t, func() bool { return containsErr(ht.Errors(), ErrPipelinedTLS) })
		})
		t.Run("GSSENCRequest is refused, then plain startup works", func(t *testing.T) {
			c := dial(t, h.addr)
			c.Write(appendStartupPacket(nil, gssEncRequestCode, nil))
			var b [1]byte
			if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'N' {
				t.Fatalf("got %q, %v; want N", b, err)
			}
			c.Write(startup)
			if got := untilReady(t, c); !strings.HasPrefix(got, "AuthenticationOk") || !strings.HasSuffix(got, "ReadyForQuery(I)") {
				t.Errorf("got %s", got)
			}
		})
		t.Run("SSLRequest without ServerTLS is answered N", func(t *testing.T) {
			c := dial(t, h.addr)
			c.Write(appendStartupPacket(nil, sslRequestCode, nil))
			var b [1]byte
			if _, err := io.ReadFull(c, b[:]); err != nil || b[0] != 'N' {
				t.Fatalf("got %q, %v; want N", b, err)
			}
		})
		t.Run("protocol 3.2 and _pq_ options are negotiated down", func(t *testing.T) {
			c := dial(t, h.addr)
			c.Write(appendStartupPacket(nil, 3<<16|2, [][2]string{{"user", "app"}, {"database", "shop"}, {"_pq_.extension", "x"}}))
			got := untilReady(t, c)
			if !strings.HasPrefix(got, "NegotiateProtocolVersion AuthenticationOk") {
				t.Errorf("got %s, want NegotiateProtocolVersion first", got)
			}
		})
		for _, tc := range []struct {
			name, code, want string
			packet           []byte
		}{
			{"protocol 2.0", "0A000", "unsupported frontend protocol 2.0", appendStartupPacket(nil, 2<<16, [][2]string{{"user", "app"}})},
			{"no user", "28000", "no PostgreSQL user name", appendStartupPacket(nil, protocolVersion30, [][2]string{{"database", "shop"}})},
			{"bad replication value", "28000", `invalid value for parameter "replication"`, appendStartupPacket(nil, protocolVersion30, [][2]string{{"user", "app"}, {"replication", "maybe"}})},
			{"startup over the limit", "08P01", "startup packet", appendStartupPacket(nil, protocolVersion30, [][2]string{{"user", "app"}, {"application_name", strings.Repeat("x", 2000)}})},
			{"malformed startup", "08P01", "invalid startup packet", []byte{0, 0, 0, 12, 0, 3, 0, 0, 'u', 's', 'e', 'r'}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := dial(t, ht.addr)
				c.Write(tc.packet)
				fe := pgproto3.NewFrontend(c, c)
				m, err := fe.Receive()
				e, ok := m.(*pgproto3.ErrorResponse)
				if err != nil || !ok {
					t.Fatalf("got %T, %v; want ErrorResponse", m, err)
				}
				if e.Severity != "FATAL" || e.Code != tc.code || !strings.Contains(e.Message, tc.want) {
					t.Errorf("got %s %s %q, want FATAL %s mentioning %q", e.Severity, e.Code, e.Message, tc.code, tc.want)
				}
			})
		}
	})

	t.Run("context cancellation ends the session with its cause", func(t *testing.T) {
		p, err := New(h.baseConfig(t))
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		ctx, cancel := context.WithCancelCause(context.Background())
		done := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				done <- err
				return
			}
			done <- p.Serve(ctx, c)
		}()
		c := dial(t, l.Addr().String())
		c.Write(appendStartupPacket(nil, protocolVersion30, [][2]string{{"user", "app"}, {"database", "shop"}}))
		untilReady(t, c)
		cancel(errors.New("approval of request 7f3a timed out"))
		fatal := (&rawConn{conn: c, fe: pgproto3.NewFrontend(c, c)}).readFatal(t)
		if fatal.Code != "57P01" || !strings.Contains(fatal.Message, "approval of request 7f3a timed out") {
			t.Errorf("got %s %q, want 57P01 with the cause", fatal.Code, fatal.Message)
		}
		if err := <-done; err == nil || !strings.Contains(err.Error(), "timed out") {
			t.Errorf("Serve returned %v, want the cause", err)
		}
	})

	t.Run("cancellation during startup", func(t *testing.T) {
		ctx, cancel := context.WithCancelCause(context.Background())
		cfg := h.baseConfig(t)
		cfg.Authorize = func(context.Context, Startup) error {
			cancel(errors.New("bastion shutting down"))
			return nil
		}
		p, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		done := make(chan error, 1)
		go func() {
			c, err := l.Accept()
			if err != nil {
				done <- err
				return
			}
			done <- p.Serve(ctx, c)
		}()
		client := dial(t, l.Addr().String())
		client.Write(appendStartupPacket(nil, protocolVersion30, [][2]string{{"user", "app"}, {"database", "shop"}}))
		fatal := (&rawConn{conn: client, fe: pgproto3.NewFrontend(client, client)}).readFatal(t)
		if fatal.Severity != "FATAL" {
			t.Errorf("got %+v", fatal)
		}
		if err := <-done; err == nil {
			t.Error("Serve returned nil")
		}
	})

	t.Run("a vanished client's statement is cancelled", func(t *testing.T) {
		c := dial(t, h.addr)
		c.Write(appendStartupPacket(nil, protocolVersion30, [][2]string{{"user", "app"}, {"database", "shop"}, {"application_name", "vanisher"}}))
		untilReady(t, c)
		c.Write(appendQuery(nil, "SELECT pg_sleep(30)"))
		waitActive(t, pg, "vanisher")
		c.Close()
		waitFor(t, func() bool {
			got := pg.QueryStrings(t, "postgres", "SELECT count(*) FROM pg_stat_activity WHERE application_name = 'vanisher' AND state = 'active'")
			return len(got) == 1 && got[0] == "0"
		})
	})

	t.Run("backslashes", func(t *testing.T) {
		r := h.psql(t, "", "-A", "-t", "-c", `SELECT 'a\b', E'x\ty'`)
		if r.err != nil || strings.TrimSpace(r.stdout) != "a\\b|x\ty" {
			t.Errorf("got %q, %q, %v; want backslashes to work normally", r.stdout, r.stderr, r.err)
		}
		// With standard_conforming_strings off the server would read 'a\' differently
		// from pg_query: setting it off is refused, so the statement after it is read
		// as pg_query reads it (one string).
		script := "SET standard_conforming_strings = off;\nSELECT '\\'' ; DROP TABLE t; --';\nSELECT 'fine';\n"
		r = h.psql(t, script, "-A", "-t", "-v", "ON_ERROR_STOP=0")
		if !strings.Contains(r.stderr, "standard_conforming_strings can only be set to on") || !strings.Contains(r.stdout, "fine") || !strings.Contains(r.stdout, "DROP TABLE t") {
			t.Errorf("got stdout %q stderr %q, want the SET refused and the rest read with it on", r.stdout, r.stderr)
		}
		// A multibyte client encoding can hide a backslash inside a character.
		cmd := h.psqlCmd(t, "", "-A", "-t", "-v", "ON_ERROR_STOP=0", "-c", `SELECT E'\\'`, "-c", "SELECT 'sjis ok'")
		cmd.Env = append(cmd.Env, "PGCLIENTENCODING=SJIS")
		out, _ := cmd.CombinedOutput()
		if !strings.Contains(string(out), "client_encoding SJIS") || !strings.Contains(string(out), "sjis ok") {
			t.Errorf("got %q, want the backslash refused under SJIS", out)
		}
		// A SET pipelined ahead of the statement (no Sync between) is refused itself; the
		// server skips the rest of the pipeline.
		c := h.raw(t, "app", "shop")
		c.send(t,
			&pgproto3.Parse{Query: "SET standard_conforming_strings = off"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: `SELECT '\'' ; DROP TABLE t; --'`}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Sync{})
		if got, want := c.untilReady(t), "ErrorResponse(42501) ReadyForQuery(I)"; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
		// A client_encoding SET pipelined ahead: refused until the pipeline is synchronised.
		c = h.raw(t, "app", "shop")
		c.send(t,
			&pgproto3.Parse{Query: "SET client_encoding = 'SJIS'"}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Parse{Query: `SELECT E'\\'`}, &pgproto3.Bind{}, &pgproto3.Execute{},
			&pgproto3.Sync{})
		if got, want := c.untilReady(t), "ParseComplete BindComplete CommandComplete(SET) ErrorResponse(42501) ReadyForQuery(I)"; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
		// Simple queries pipelined: the SET is refused, the second runs as pg_query read it.
		c = h.raw(t, "app", "shop")
		c.send(t, &pgproto3.Query{String: "SET standard_conforming_strings = off"}, &pgproto3.Query{String: `SELECT '\'' ; DROP TABLE t; --'`})
		if got, want := c.untilReady(t), "ErrorResponse(42501) ReadyForQuery(I)"; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
		if got, want := c.untilReady(t), "RowDescription DataRow CommandComplete(SELECT 1) ReadyForQuery(I)"; got != want {
			t.Errorf("got %s, want %s", got, want)
		}
		// A session that began with it off (a role's setting made outside the bastion)
		// refuses backslashes throughout, even after SET ... = on: RESET ALL or DISCARD
		// ALL earlier in a Query would bring it back.
		pg.ExecIn(t, "shop", "ALTER ROLE app IN DATABASE shop SET standard_conforming_strings = off")
		c = h.raw(t, "app", "shop")
		pg.ExecIn(t, "shop", "ALTER ROLE app IN DATABASE shop RESET standard_conforming_strings")
		c.send(t, &pgproto3.Query{String: "SET standard_conforming_strings = on"}, &pgproto3.Query{String: `SELECT 'a\b'`})
		c.untilReady(t)
		if got, want := c.untilReady(t), "ErrorResponse(42501) ReadyForQuery(I)"; got != want {
			t.Errorf("began off: got %s, want %s", got, want)
		}
		if !tableExists(t, pg, "t") {
			t.Fatal("table t is gone")
		}
	})

	t.Run("a masking failure withholds the row", func(t *testing.T) {
		hs := startProxy(t, pg, func(c *Config) {
			c.MaskValue = func(v []byte) ([]byte, bool) {
				if bytes.Contains(v, []byte("bob")) {
					panic("detector failed")
				}
				return luhnMask(v)
			}
		})
		r := hs.psql(t, "", "-A", "-t", "-c", "SELECT customer FROM orders ORDER BY id")
		if strings.Contains(r.stdout, "bob") || !strings.Contains(r.stdout, "alice") {
			t.Errorf("got %q, want alice only", r.stdout)
		}
		if !strings.Contains(r.stderr, "1 row(s) withheld") {
			t.Errorf("got stderr %q, want a warning", r.stderr)
		}
		ev := findEvent(t, hs, "SELECT customer FROM orders ORDER BY id")
		if ev.Withheld != 1 || ev.Rows != 2 {
			t.Errorf("got withheld %d rows %d, want 1 and 2", ev.Withheld, ev.Rows)
		}
	})

	t.Run("a Judge panic blocks", func(t *testing.T) {
		hs := startProxy(t, pg, func(c *Config) {
			c.Judge = func(context.Context, Statement) Verdict { panic("policy bug") }
		})
		r := hs.psql(t, "", "-c", "SELECT 1")
		if r.err == nil || !strings.Contains(r.stderr, "pgproxy:judge-failed") {
			t.Errorf("got %v %q, want a block", r.err, r.stderr)
		}
	})

	t.Run("large results stream through masking", func(t *testing.T) {
		conn := h.connect(t, "app", "shop", nil)
		rows, err := conn.Query(context.Background(),
			"SELECT g, '4111 1111 1111 1111' AS card, 'x' AS secret FROM generate_series(1, 50000) g", pgx.QueryExecModeSimpleProtocol)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for rows.Next() {
			var g int
			var card, secret string
			if err := rows.Scan(&g, &card, &secret); err != nil {
				t.Fatal(err)
			}
			if card != "**** **** **** 1111" || secret != ColumnMask {
				t.Fatalf("row %d: got %q %q", g, card, secret)
			}
			n++
		}
		if err := rows.Err(); err != nil || n != 50000 {
			t.Fatalf("got %d rows, %v", n, err)
		}
	})
}

func dial(t *testing.T, addr string) net.Conn {
	t.Helper()
	c, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(30 * time.Second))
	t.Cleanup(func() { c.Close() })
	return c
}

func readAll(t *testing.T, c net.Conn) []byte {
	t.Helper()
	b, _ := io.ReadAll(c)
	return b
}

func untilReady(t *testing.T, c net.Conn) string {
	t.Helper()
	return (&rawConn{conn: c, fe: pgproto3.NewFrontend(c, c)}).untilReady(t)
}

// readFatal reads until an ErrorResponse, which must be followed by the end of the
// connection.
func (c *rawConn) readFatal(t *testing.T) *pgproto3.ErrorResponse {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		m, err := c.fe.Receive()
		if err != nil {
			t.Fatalf("got %v before an ErrorResponse", err)
		}
		if e, ok := m.(*pgproto3.ErrorResponse); ok {
			e = &pgproto3.ErrorResponse{Severity: e.Severity, Code: e.Code, Message: e.Message}
			if _, err := c.fe.Receive(); err == nil {
				t.Errorf("connection still open after %s %q", e.Code, e.Message)
			}
			return e
		}
	}
}

func containsErr(errs []error, target error) bool {
	for _, err := range errs {
		if errors.Is(err, target) {
			return true
		}
	}
	return false
}

func waitFor(t *testing.T, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if cond() {
			return
		}
	}
	t.Fatal("condition not met")
}
