package pgproxy

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/jackc/pgx/v5"
)

const seedSQL = `
CREATE TABLE t (id int PRIMARY KEY, name text);
INSERT INTO t VALUES (1, 'one'), (2, 'two'), (3, 'three');
CREATE TABLE orders (id int PRIMARY KEY, customer text, card text, card_num bigint, secret text);
INSERT INTO orders VALUES
  (1, 'alice', '4111 1111 1111 1111', 4111111111111111, 'alice-secret'),
  (2, 'bob', 'no card on file', 42, 'bob-secret');
CREATE TABLE copied (id int, name text);
CREATE TABLE accounts (id int PRIMARY KEY, balance int);
INSERT INTO accounts SELECT g, 100 FROM generate_series(1, 10) g;
GRANT ALL ON ALL TABLES IN SCHEMA public TO app;
GRANT CREATE ON SCHEMA public TO app;
`

// startCluster starts the cluster the end-to-end tests share (one per top-level test).
func startCluster(t testing.TB) *testenv.Postgres {
	t.Helper()
	return testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app", "other"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": seedSQL},
	})
}

// harness is a proxy listening on loopback in front of the shared cluster.
type harness struct {
	t          testing.TB
	pg         *testenv.Postgres
	addr       string
	port       int
	cancels    *CancelRegistry
	transcript *testenv.SyncBuffer

	mu     sync.Mutex
	events []Event
	errs   []error
}

// testJudge is the policy the end-to-end tests run under.
func testJudge(ctx context.Context, st Statement) Verdict {
	switch {
	case st.Has("drop_table"):
		return Verdict{Action: Block, Rule: "no-drop", Message: "dropping tables is not allowed"}
	case st.Has("truncate"):
		return Verdict{Action: Block, Rule: "no-truncate"}
	case st.Has("delete_without_where"):
		return Verdict{Action: Block, Rule: "no-mass-delete"}
	case st.Unknowable != "":
		return Verdict{Action: Block, Rule: "unknowable", Message: st.Unknowable}
	}
	return Verdict{Action: Allow}
}

// luhnMask is a small card-number detector: runs of 13-19 digits (spaces and dashes
// allowed between) that pass the Luhn check keep their last four digits.
func luhnMask(v []byte) ([]byte, bool) {
	out := []byte(nil)
	for i := 0; i < len(v); {
		if v[i] < '0' || v[i] > '9' {
			i++
			continue
		}
		j, digits := i, 0
		end := i
		for j < len(v) && (v[j] >= '0' && v[j] <= '9' || v[j] == ' ' || v[j] == '-') {
			if v[j] >= '0' && v[j] <= '9' {
				digits++
				end = j + 1
			}
			j++
		}
		if digits >= 13 && digits <= 19 && luhn(v[i:end]) {
			if out == nil {
				out = append([]byte(nil), v...)
			}
			seen := 0
			for k := end - 1; k >= i; k-- {
				if v[k] >= '0' && v[k] <= '9' {
					seen++
					if seen > 4 {
						out[k] = '*'
					}
				}
			}
		}
		i = j
	}
	return out, out != nil
}

func luhn(b []byte) bool {
	sum, double := 0, false
	for k := len(b) - 1; k >= 0; k-- {
		if b[k] < '0' || b[k] > '9' {
			continue
		}
		d := int(b[k] - '0')
		if double {
			if d *= 2; d > 9 {
				d -= 9
			}
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

// startProxy runs a proxy in front of pg with the test policy; mod adjusts the Config.
func startProxy(t testing.TB, pg *testenv.Postgres, mod func(*Config)) *harness {
	t.Helper()
	h := &harness{t: t, pg: pg, cancels: NewCancelRegistry(), transcript: &testenv.SyncBuffer{}}
	cfg := h.baseConfig(t)
	if mod != nil {
		mod(&cfg)
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	addr := acceptLoop(t, func(c net.Conn) {
		if err := p.Serve(ctx, c); err != nil {
			h.mu.Lock()
			h.errs = append(h.errs, err)
			h.mu.Unlock()
		}
	})
	t.Cleanup(cancel)
	h.addr = addr.String()
	h.port = addr.(*net.TCPAddr).Port
	return h
}

// acceptLoop listens on a loopback port and runs handle for each
// connection on its own goroutine, until the test ends; the cleanup closes
// the listener and waits for every handler.
func acceptLoop(tb testing.TB, handle func(net.Conn)) net.Addr {
	tb.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				handle(c)
			}()
		}
	}()
	tb.Cleanup(func() { l.Close(); wg.Wait() })
	return l.Addr()
}

func (h *harness) Events() []Event {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]Event(nil), h.events...)
}

func (h *harness) Errors() []error {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]error(nil), h.errs...)
}

// connString is a libpq/pgx connection string to the proxy.
func (h *harness) connString(user, db string) string {
	return fmt.Sprintf("host=127.0.0.1 port=%d user=%s dbname=%s sslmode=disable", h.port, user, db)
}

// connect opens a pgx connection through the proxy.
func (h *harness) connect(t *testing.T, user, db string, mod func(*pgx.ConnConfig)) *pgx.Conn {
	t.Helper()
	cfg, err := pgx.ParseConfig(h.connString(user, db))
	if err != nil {
		t.Fatal(err)
	}
	if mod != nil {
		mod(cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	conn, err := pgx.ConnectConfig(ctx, cfg)
	if err != nil {
		t.Fatalf("connect through the proxy: %v", err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

type psqlResult struct {
	stdout, stderr string
	err            error
}

// psql runs the real psql against the proxy with extra args (and optional stdin).
func (h *harness) psql(t *testing.T, stdin string, args ...string) psqlResult {
	t.Helper()
	cmd := h.psqlCmd(t, stdin, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	return psqlResult{out.String(), errb.String(), err}
}

func (h *harness) psqlCmd(t *testing.T, stdin string, args ...string) *exec.Cmd {
	t.Helper()
	base := []string{"-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-d", h.connString("app", "shop")}
	cmd := exec.Command(h.pg.Tool(t, "psql"), append(base, args...)...)
	cmd.Env = append(os.Environ(), "PGCONNECT_TIMEOUT=20", "PAGER=", "PSQL_HISTORY=/dev/null", "PGAPPNAME=pgproxy-test")
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	return cmd
}

// countRows counts a table's rows straight from the server.
func countRows(t *testing.T, pg *testenv.Postgres, table string) string {
	t.Helper()
	got := pg.QueryStrings(t, "shop", "SELECT count(*) FROM "+table)
	if len(got) != 1 {
		t.Fatalf("count(*) FROM %s: got %v", table, got)
	}
	return got[0]
}

func tableExists(t *testing.T, pg *testenv.Postgres, table string) bool {
	t.Helper()
	got := pg.QueryStrings(t, "shop", fmt.Sprintf("SELECT to_regclass('public.%s') IS NOT NULL", table))
	return len(got) == 1 && got[0] == "true"
}

func writeFile(t *testing.T, dir, name, body string) string {
	t.Helper()
	p := filepath.Join(dir, name)
	if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
		t.Fatal(err)
	}
	return p
}

// baseConfig is the end-to-end tests' Config: the test policy, card masking, the
// harness's transcript, audit log and cancel registry.
func (h *harness) baseConfig(t testing.TB) Config {
	pg := h.pg
	cfg := Config{
		DialUpstream: func(ctx context.Context) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "tcp", pg.Addr)
		},
		UpstreamTLS: pg.ServerTLS(),
		ClientCert: func(ctx context.Context, user string) (*tls.Certificate, error) {
			c := pg.ClientCA.IssueClient(t, user, 2*time.Minute)
			return &c, nil
		},
		Authorize: func(ctx context.Context, s Startup) error {
			if s.Replication {
				return errors.New("replication connections are not allowed")
			}
			if s.User != "app" && s.User != "postgres" {
				return fmt.Errorf("user %q may not connect", s.User)
			}
			return nil
		},
		Judge:      testJudge,
		MaskColumn: func(c string) bool { return c == "secret" },
		MaskValue:  luhnMask,
		Transcript: h.transcript,
		Audit: func(ev Event) {
			h.mu.Lock()
			h.events = append(h.events, ev)
			h.mu.Unlock()
		},
		Cancels: h.cancels,
	}
	return cfg
}
