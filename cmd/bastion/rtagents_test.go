package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/login"
	"github.com/bastionhq/bastion/internal/testenv"
)

// TestSQLAPIProgramDoors: the SQL API as programs and agents (bastion mcp
// rides on it) use it, one world for all of it.
//
// What one identity makes the bastion hold is bounded, not only what one
// answer holds. sql_api.max_bytes bounds an answer (16 MiB) and the rate
// limit how often an identity asks, but not how many answers it has in
// flight: the bastion holds an answer whole until it is written, and a
// client that reads it slowly keeps it there for up to sql_api.timeout +
// 30 s. A client at its rate limit (10 a second) that never read had some
// 900 answers of 16 MiB in memory at once; the session behind each had
// ended, so neither sessions.max_per_user nor the database's connection
// limit counted them. An identity's requests now run at most
// sql_api.max_concurrent (4) at a time, to the last byte of their answers;
// past that, 429. And a client that goes away has its statement cancelled.
//
// A held statement's answer is given to the CI run that asked, not to
// another run of the same workload that someone else triggered: with
// oidc.workload actor_claim, runs of one job share the workload's issuer
// and subject (every push to main is repo:acme/etl:ref:refs/heads/main) but
// not the person who triggered them, and the bastion tells them apart for
// approvals. The status URL compared only issuer and subject, so a run
// mallory triggered fetched the rows an approver let out for carol's run.
// A person gets an answer only under the groups of the login that fetches
// it; and while it waits, the status URL names the request it waits on now
// (it named the first, already approved, while a second statement of the
// text waited on another).
func TestSQLAPIProgramDoors(t *testing.T) {
	testenv.RequirePostgres(t)
	cfg := actorWorldConfig(t)
	var pg *testenv.Postgres
	w := newWorldConfig(t, cfg, "", func(k *ca.Keys) []string {
		var target string
		pg, target = startShopPostgres(t, k)
		return []string{target}
	}, dbWorldYAML)
	runBy := func(actor string) string {
		t.Helper()
		run := w.another()
		if r := w.ciRunLogin(t, run, actor); r.Code != 0 {
			t.Fatalf("CI login (%s): %s", actor, r)
		}
		st, err := login.Resolve(filepath.Join(run.home, ".config", "bastion"), "")
		if err != nil {
			t.Fatal(err)
		}
		return readAccessToken(t, st)
	}
	token := runBy("dave")

	// slowReader asks for a 15 MiB answer with a receive buffer of 4 KiB and
	// reads only the status line: the answer is bigger than the socket's
	// buffers, so the bastion is still writing it.
	slowReader := func(t *testing.T) (status string, rest func()) {
		d := net.Dialer{Control: func(_, _ string, c syscall.RawConn) error {
			var serr error
			c.Control(func(fd uintptr) { serr = syscall.SetsockoptInt(int(fd), syscall.SOL_SOCKET, syscall.SO_RCVBUF, 4096) })
			return serr
		}}
		c, err := d.Dial("tcp", strings.TrimPrefix(w.url(), "http://"))
		if err != nil {
			t.Fatal(err)
		}
		body, _ := json.Marshal(bastion.SQLRequest{Target: "pg1", Database: "shop", User: "app",
			SQL: "SELECT g, repeat('x', 1048576) AS big FROM generate_series(1, 15) g"})
		fmt.Fprintf(c, "POST %s HTTP/1.1\r\nHost: bastion\r\nAuthorization: Bearer %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\nConnection: close\r\n\r\n%s",
			bastion.PathSQL, token, len(body), body)
		c.SetReadDeadline(time.Now().Add(20 * time.Second))
		br := bufio.NewReaderSize(c, 64)
		line, err := br.ReadString('\n')
		if err != nil {
			c.Close()
			t.Fatalf("slow reader: %v", err)
		}
		return strings.TrimSpace(line), func() {
			c.SetReadDeadline(time.Now().Add(30 * time.Second))
			io.Copy(io.Discard, br)
			c.Close()
		}
	}

	t.Run("requests in flight per identity", func(t *testing.T) {
		// A slow reader, and three requests that take five seconds.
		status, rest := slowReader(t)
		if !strings.Contains(status, " 200 ") {
			rest()
			t.Fatalf("slow reader: %s", status)
		}
		var wg sync.WaitGroup
		codes := make(chan int, 3)
		for range 3 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				code, _, _, err := sqlCall(w, "POST", bastion.PathSQL, token, bastion.SQLRequest{Target: "pg1", Database: "shop", User: "app", SQL: "SELECT pg_sleep(5) AS in_flight"})
				if err != nil {
					t.Errorf("pg_sleep: %v", err)
				}
				codes <- code
			}()
		}
		testenv.WaitFor(t, 20*time.Second, "the three pg_sleep running", func() bool {
			got := pg.QueryStrings(t, "shop", "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(5) AS in_flight%' AND state = 'active' AND pid <> pg_backend_pid()")
			return len(got) == 1 && got[0] == "3"
		})
		code, hdr, r, err := sqlCall(w, "POST", bastion.PathSQL, token, bastion.SQLRequest{Target: "pg1", Database: "shop", User: "app", SQL: "SELECT 1"})
		if err != nil || code != http.StatusTooManyRequests || r.Error == nil || !strings.Contains(r.Error.Message, "sql_api.max_concurrent") || hdr.Get("Retry-After") == "" {
			t.Errorf("a fifth request in flight: want 429 naming sql_api.max_concurrent: %d %+v %v", code, r.Error, err)
		}
		rest()
		wg.Wait()
		close(codes)
		for c := range codes {
			if c != http.StatusOK {
				t.Errorf("pg_sleep answered %d", c)
			}
		}
		// Once they are answered, the identity may ask again.
		if code, _, r, err := sqlCall(w, "POST", bastion.PathSQL, token, bastion.SQLRequest{Target: "pg1", Database: "shop", User: "app", SQL: "SELECT 1"}); err != nil || code != http.StatusOK {
			t.Errorf("after the answers: %d %+v %v", code, r.Error, err)
		}
	})

	// A client that goes away before its answer has its statement cancelled
	// in PostgreSQL, as psql's does when it closes its connection: it ran on
	// until sql_api.timeout (and committed), holding a database connection
	// and one of the identity's requests in flight, for a client that had
	// given up on it and might send it again.
	t.Run("a client that goes away", func(t *testing.T) {
		body, _ := json.Marshal(bastion.SQLRequest{Target: "pg1", Database: "shop", User: "app", SQL: "SELECT pg_sleep(15) AS gone"})
		ctx, cancel := context.WithCancel(context.Background())
		hr, _ := http.NewRequestWithContext(ctx, "POST", w.url()+bastion.PathSQL, bytes.NewReader(body))
		hr.Header.Set("Authorization", "Bearer "+token)
		errc := make(chan error, 1)
		go func() {
			resp, err := http.DefaultClient.Do(hr)
			if err == nil {
				resp.Body.Close()
			}
			errc <- err
		}()
		sleeping := func() bool {
			got := pg.QueryStrings(t, "shop", "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_sleep(15) AS gone%' AND state = 'active' AND pid <> pg_backend_pid()")
			return len(got) == 1 && got[0] == "1"
		}
		testenv.WaitFor(t, 10*time.Second, "the pg_sleep running", sleeping)
		cancel()
		<-errc
		testenv.WaitFor(t, 5*time.Second, "PostgreSQL to stop the pg_sleep of a client that went away", func() bool { return !sleeping() })
	})

	// A body that reads two ways is refused: encoding/json matches names
	// in any case and keeps the last, so this ran SELECT 2 while a reader
	// matching names as written (a gateway's log, a review of an agent's
	// tool call) saw SELECT 1.
	t.Run("a body that reads two ways", func(t *testing.T) {
		for _, body := range []string{
			`{"target":"pg1","database":"shop","user":"app","sql":"SELECT 1","SQL":"SELECT 2"}`,
			`{"target":"pg1","database":"shop","user":"app","sql":"SELECT 1","sql":"SELECT 2"}`,
			`{"target":"pg1","database":"shop","user":"app","sql":"SELECT 1"} {"sql":"SELECT 2"}`,
		} {
			hr, _ := http.NewRequest("POST", w.url()+bastion.PathSQL, strings.NewReader(body))
			hr.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(hr)
			if err != nil {
				t.Fatal(err)
			}
			var r bastion.SQLResponse
			json.NewDecoder(resp.Body).Decode(&r)
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest || len(r.Rows) > 0 {
				t.Errorf("%s: want 400: %d %+v", body, resp.StatusCode, flatRows(r))
			}
		}
	})

	t.Run("another run", func(t *testing.T) {
		carols, mallorys := runBy("carol"), runBy("mallory")

		req := bastion.SQLRequest{Target: "pg1", Database: "shop", User: "app", SQL: "UPDATE customers SET name = name WHERE id = 1 RETURNING id, name"}
		code, _, held, err := sqlCall(w, "POST", bastion.PathSQL, carols, req)
		if err != nil || code != http.StatusAccepted || held.StatusURL == "" {
			t.Fatalf("want 202 held: %d %+v %v", code, held, err)
		}
		alice := w.another()
		alice.loginAlice(t)
		if r := alice.run(nil, "approve", held.RequestID); r.Code != 0 {
			t.Fatalf("approve: %s", r)
		}
		// Mallory's run, polling carol's run's status URL, gets nothing of it.
		deadline := time.Now().Add(30 * time.Second)
		for time.Now().Before(deadline) {
			code, _, r, err := sqlCall(w, "GET", held.StatusURL, mallorys, nil)
			if err != nil || code != http.StatusNotFound || len(r.Rows) > 0 {
				t.Fatalf("another run's answer: %d %+v %v", code, r, err)
			}
			// Carol's run's answer is there (then it is given once).
			if code, _, r, err := sqlCall(w, "GET", held.StatusURL, carols, nil); err == nil && code == http.StatusOK {
				if len(r.Rows) != 1 {
					t.Fatalf("carol's answer: %+v", r)
				}
				return
			}
			time.Sleep(100 * time.Millisecond)
		}
		t.Fatal("carol's run never got its answer")
	})

	// A person's answer is given under the groups of the login that
	// fetches it: alice, in group etl when she asked, out of it (and logged
	// in again) when the answer is ready, does not get rows her login may
	// no longer read.
	t.Run("the fetching login's groups", func(t *testing.T) {
		person := func(sub string, groups ...string) (token, home string) {
			t.Helper()
			claims, _ := w.idp.IDTokenClaims(sub, "bastion")
			claims["groups"] = groups
			tok, err := w.idp.MintIDToken(claims)
			if err != nil {
				t.Fatal(err)
			}
			p := w.another()
			if r := p.run([]string{"T=" + tok}, "login", "--bastion", w.url(), "--id-token-env", "T"); r.Code != 0 {
				t.Fatalf("login %s: %s", sub, r)
			}
			st, err := login.Resolve(filepath.Join(p.home, ".config", "bastion"), "")
			if err != nil {
				t.Fatal(err)
			}
			return readAccessToken(t, st), p.home
		}
		aliceETL, _ := person("u-alice", "etl")
		_, carolHome := person("u-carol", "sec")
		req := bastion.SQLRequest{Target: "pg1", Database: "shop", User: "app", SQL: "UPDATE customers SET name = 'held-by-alice' WHERE id = 2 RETURNING id, name"}
		code, _, held, err := sqlCall(w, "POST", bastion.PathSQL, aliceETL, req)
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("want 202 held: %d %+v %v", code, held, err)
		}
		carol := w.another()
		carol.home = carolHome
		if r := carol.run(nil, "approve", held.RequestID); r.Code != 0 {
			t.Fatalf("approve: %s", r)
		}
		testenv.WaitFor(t, 20*time.Second, "the approved UPDATE to run", func() bool {
			got := pg.QueryStrings(t, "shop", "SELECT name FROM customers WHERE id = 2")
			return len(got) == 1 && got[0] == "held-by-alice"
		})
		aliceDev, _ := person("u-alice", "dev")
		var r bastion.SQLResponse
		testenv.WaitFor(t, 20*time.Second, "the answer to be kept", func() bool {
			code, _, r, err = sqlCall(w, "GET", held.StatusURL, aliceDev, nil)
			return err != nil || code != http.StatusAccepted
		})
		if err != nil || code != http.StatusForbidden || len(r.Rows) > 0 {
			t.Fatalf("a login out of the group fetched the answer: %d %+v %v", code, r, err)
		}
	})

	// A text holding two held statements waits on one request, then on
	// the other: the status URL names the one it waits on now.
	t.Run("the request it waits on", func(t *testing.T) {
		tok := runBy("carol")
		req := bastion.SQLRequest{Target: "pg1", Database: "shop", User: "app",
			SQL: "UPDATE customers SET name = name WHERE id = 1; SELECT 1; UPDATE customers SET name = name WHERE id = 2"}
		code, _, held, err := sqlCall(w, "POST", bastion.PathSQL, tok, req)
		if err != nil || code != http.StatusAccepted {
			t.Fatalf("want 202 held: %d %+v %v", code, held, err)
		}
		alice := w.another()
		alice.loginAlice(t)
		if r := alice.run(nil, "approve", held.RequestID); r.Code != 0 {
			t.Fatalf("approve: %s", r)
		}
		var r bastion.SQLResponse
		testenv.WaitFor(t, 20*time.Second, "the status to name another request, or the answer", func() bool {
			var code int
			code, _, r, err = sqlCall(w, "GET", held.StatusURL, tok, nil)
			return err != nil || code != http.StatusAccepted || r.RequestID != held.RequestID
		})
		if err != nil || r.Status != "held" || r.RequestID == "" {
			t.Fatalf("want the second request named: %+v %v", r, err)
		}
		if r2 := alice.run(nil, "approve", r.RequestID); r2.Code != 0 {
			t.Fatalf("approve the second: %s", r2)
		}
		testenv.WaitFor(t, 20*time.Second, "the answer", func() bool {
			var code int
			code, _, r, err = sqlCall(w, "GET", held.StatusURL, tok, nil)
			return err != nil || code != http.StatusAccepted
		})
		if err != nil || r.Status != "ok" || len(r.Tags) != 3 {
			t.Fatalf("the answer: %+v %v", r, err)
		}
	})
}
