package console

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/recorder"
)

// Long responses (approval and live streams, recording, capture and audit
// downloads) outlast the server's write timeout. One identity holds a
// bounded number of them at once, whoever else is refused nothing; and a
// reader that stops taking bytes does not pin its response for ever.
func TestLongResponsesBounded(t *testing.T) {
	c, st, _ := newTestConsole(t, false)
	st.sessions["s-tcp"] = st.sessions["s-alice"]
	info := st.sessions["s-tcp"]
	info.ID, info.Kind = "s-tcp", "tcp"
	st.sessions["s-tcp"] = info
	mux := http.NewServeMux()
	c.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	defer c.Close()
	alice, _ := signIn(c, "alice")
	bob, _ := signIn(c, "bob")
	get := func(path string, ck *http.Cookie) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("GET", srv.URL+path, nil)
		req.AddCookie(ck)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	var open []*http.Response
	for range maxLongResponses {
		resp := get("/api/approvals/stream", alice)
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("stream %d: %d", len(open), resp.StatusCode)
		}
		open = append(open, resp)
	}
	if resp := get("/api/approvals/stream", alice); resp.StatusCode != http.StatusTooManyRequests {
		t.Errorf("alice's stream past the bound: %d, want 429", resp.StatusCode)
		resp.Body.Close()
	}
	resp := get("/api/approvals/stream", bob)
	if resp.StatusCode != http.StatusOK {
		t.Errorf("bob's stream while alice is at her bound: %d", resp.StatusCode)
	}
	resp.Body.Close()
	open[0].Body.Close()
	open = open[1:]
	deadline := time.Now().Add(5 * time.Second)
	for {
		resp := get("/api/approvals/stream", alice)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a closed stream's place is not given back: %d", resp.StatusCode)
		}
		time.Sleep(100 * time.Millisecond)
	}
	for _, r := range open {
		r.Body.Close()
	}
	for held := 1; held > 0; time.Sleep(50 * time.Millisecond) {
		if time.Now().After(deadline.Add(5 * time.Second)) {
			t.Fatalf("alice's closed streams still hold %d places", held)
		}
		c.longMu.Lock()
		held = len(c.long)
		c.longMu.Unlock()
	}

	// A capture download whose reader stops reading ends.
	stallTimeout = 300 * time.Millisecond
	t.Cleanup(func() { stallTimeout = defaultStallTimeout })
	ended := make(chan error, 1)
	chunk := make([]byte, 64<<10)
	st.pcap = func(w io.Writer) error {
		for {
			if _, err := w.Write(chunk); err != nil {
				ended <- err
				return err
			}
		}
	}
	resp = get("/sessions/s-tcp/pcap", bob) // bob may not see it
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("bob's download of alice's capture: %d", resp.StatusCode)
	}
	resp = get("/sessions/s-tcp/pcap", alice)
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("capture: %d", resp.StatusCode)
	}
	bufio.NewReader(resp.Body).Peek(1) // then read no more
	select {
	case <-ended:
	case <-time.After(10 * time.Second):
		t.Fatal("a download nobody reads is still being written after 10s")
	}
}

// While the IdP's discovery document cannot be fetched, anyone's GET
// /login (no sign-in needed) made the bastion fetch it again, each fetch
// up to the client's 10s timeout: a flood of /login became as many
// outbound requests held open to a struggling IdP. A failed discovery now
// holds further attempts back for discoveryRetry, and concurrent ones
// share one fetch.
func TestLoginDiscoveryNotAmplified(t *testing.T) {
	var hits atomic.Int32
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hits.Add(1)
		time.Sleep(200 * time.Millisecond)
		http.Error(w, "down", http.StatusServiceUnavailable)
	}))
	defer idp.Close()
	c, _, _ := newTestConsole(t, false)
	c.cfg.Issuer = idp.URL
	now := time.Now()
	c.now = func() time.Time { return now }
	var wg sync.WaitGroup
	for range 20 {
		wg.Go(func() {
			if r := serve(c, httptest.NewRequest("GET", "/login", nil)); r.Code != http.StatusBadGateway {
				t.Errorf("/login with the IdP down: %d", r.Code)
			}
		})
	}
	wg.Wait()
	if n := hits.Load(); n != 1 {
		t.Errorf("20 sign-ins with the IdP down fetched its discovery document %d times, want 1", n)
	}
	now = now.Add(discoveryRetry + time.Second)
	serve(c, httptest.NewRequest("GET", "/login", nil))
	if n := hits.Load(); n != 2 {
		t.Errorf("after discoveryRetry: %d fetches, want 2", n)
	}
}

// Reading the audit log is the console's heaviest work: the sessions
// page reads it for the blocked and held marks and the search, the audit
// page and its download for themselves, and the store reads it whole
// whatever the date. One identity reads it at most maxAuditReadsPerIdentity
// times at once (one more is refused with 429) and the console at most
// maxAuditReads times (one more waits its turn), so reloading the
// sessions page in a loop does not take the bastion's CPU.
func TestAuditReadsBounded(t *testing.T) {
	c, st, _ := newTestConsole(t, false)
	st.list = []recorder.SessionInfo{{ID: "s-1", User: "alice", Issuer: issuer, Start: time.Now()}}
	st.scanning, st.scanDone = make(chan struct{}), make(chan struct{})
	alice, _ := signIn(c, "alice")
	bob, _ := signIn(c, "bob")
	codes := make(chan int, 10)
	get := func(ck *http.Cookie) {
		req := httptest.NewRequest("GET", "/sessions", nil)
		req.AddCookie(ck)
		codes <- serve(c, req).Code
	}
	for range maxAuditReadsPerIdentity {
		go get(alice)
		<-st.scanning
	}
	go get(alice)
	select {
	case code := <-codes:
		if code != http.StatusTooManyRequests {
			t.Errorf("alice's sessions page past her bound: %d, want 429", code)
		}
	case <-st.scanning:
		t.Error("alice reads the audit log more than maxAuditReadsPerIdentity times at once")
		go func() { st.scanDone <- struct{}{} }()
	case <-time.After(5 * time.Second):
		t.Fatal("alice's page past her bound neither refused nor reading")
	}
	go get(bob)
	select {
	case <-st.scanning:
	case <-time.After(5 * time.Second):
		t.Fatal("bob's sessions page waits for alice's")
	}
	close(st.scanDone)
	for range maxAuditReadsPerIdentity + 1 {
		if code := <-codes; code != http.StatusOK {
			t.Errorf("a page: %d", code)
		}
	}
}

// The audit page shows the newest auditPageSize events of those since its
// date; it held every one of them in memory first, so an auditor asking
// for a date years back made the bastion hold the whole log.
func TestAuditPageMemoryBounded(t *testing.T) {
	c, st, _ := newTestConsole(t, false)
	c.cfg.Caller = func(id ca.Identity, addr string) bastion.Caller {
		return bastion.Caller{Identity: id, RemoteAddr: addr, Auditor: true}
	}
	const n = 50000
	st.auditLog = make([]recorder.AuditEvent, n)
	for i := range st.auditLog {
		st.auditLog[i] = recorder.AuditEvent{Type: "session.start", User: "alice", SessionID: fmt.Sprintf("s-%06d", i)}
	}
	ck, _ := signIn(c, "alice")
	req := httptest.NewRequest("GET", "/audit?since=2000-01-01", nil)
	req.AddCookie(ck)
	var before, after runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&before)
	rec := serve(c, req)
	runtime.ReadMemStats(&after)
	body := rec.Body.String()
	if rec.Code != http.StatusOK || !strings.Contains(body, fmt.Sprintf("s-%06d", n-1)) || !strings.Contains(body, fmt.Sprintf("s-%06d", n-auditPageSize)) ||
		strings.Contains(body, fmt.Sprintf("s-%06d", n-auditPageSize-1)) {
		t.Fatalf("the audit page does not show the newest %d events: %d", auditPageSize, rec.Code)
	}
	if mb := (after.TotalAlloc - before.TotalAlloc) >> 20; mb > 16 {
		t.Errorf("the audit page allocated %d MiB for %d events it shows %d of", mb, n, auditPageSize)
	}
}

// A download (a recording, a capture, the audit log) ends with the
// sign-in, as a live view does: signed out, expired or revoked (bastion ca
// revoke --user) since it began. It went on to its end before, and a
// reader taking a byte now and then made that as long as it liked.
func TestDownloadEndsWithSignIn(t *testing.T) {
	c, st, _ := newTestConsole(t, false)
	info := st.sessions["s-alice"]
	info.ID, info.Kind = "s-tcp", "tcp"
	st.sessions["s-tcp"] = info
	mux := http.NewServeMux()
	c.Register(mux)
	srv := httptest.NewServer(mux)
	defer srv.Close()
	ended := make(chan error, 1)
	chunk := make([]byte, 4<<10)
	st.pcap = func(w io.Writer) error {
		for {
			if _, err := w.Write(chunk); err != nil {
				ended <- err
				return err
			}
			time.Sleep(10 * time.Millisecond)
		}
	}
	alice, _ := signIn(c, "alice")
	req, _ := http.NewRequest("GET", srv.URL+"/sessions/s-tcp/pcap", nil)
	req.AddCookie(alice)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	go io.Copy(io.Discard, resp.Body)
	select {
	case err := <-ended:
		t.Fatalf("the download ended before the revocation: %v", err)
	case <-time.After(1500 * time.Millisecond):
	}
	st.mu.Lock()
	st.revoked = map[string]time.Time{"alice": time.Now()}
	st.mu.Unlock()
	select {
	case <-ended:
	case <-time.After(5 * time.Second):
		t.Fatal("the download goes on after alice was revoked")
	}
}
