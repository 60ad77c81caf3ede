package main

import (
	"bufio"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bastionhq/bastion/bastion"
)

// TestSQLAPIConcurrencyBounded: what one identity can make the bastion hold
// through the SQL API is bounded, not only what one answer holds.
//
// sql_api.max_bytes bounds one answer (16 MiB), and the rate limit how
// often an identity may ask, but not how many answers it has in flight: the
// bastion holds an answer whole until it is written, and a client that
// reads it slowly keeps it there for up to sql_api.timeout + 30 s. A client
// at its rate limit (10 a second) that never reads had some 900 answers of
// 16 MiB in the bastion's memory at once; the session behind each had ended,
// so neither sessions.max_per_user nor the database's connection limit
// counted them. Requests of one identity now run at most
// sql_api.max_concurrent (4) at a time, from the request to the last byte
// of its answer; past that, 429.
func TestSQLAPIConcurrencyBounded(t *testing.T) {
	w, _, token := sqlAPIWorld(t, dbWorldYAML)

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
		// A slow reader, and three requests that take three seconds.
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
				code, _, _, err := sqlCall(w, "POST", bastion.PathSQL, token, bastion.SQLRequest{Target: "pg1", Database: "shop", User: "app", SQL: "SELECT pg_sleep(3)"})
				if err != nil {
					t.Errorf("pg_sleep: %v", err)
				}
				codes <- code
			}()
		}
		time.Sleep(time.Second) // the three are running
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
}
