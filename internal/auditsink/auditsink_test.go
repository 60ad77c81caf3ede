package auditsink

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

func openStore(t *testing.T) *recorder.Store {
	t.Helper()
	_, key, _ := ed25519.GenerateKey(nil)
	s, err := recorder.Open(recorder.Config{Path: filepath.Join(t.TempDir(), "b.db"), SealKey: key, FlushInterval: 20 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// receiver is an HTTP endpoint that takes JSON lines, or refuses them while
// down.
type receiver struct {
	mu    sync.Mutex
	lines []string
	down  atomic.Bool
	srv   *httptest.Server
}

func newReceiver(t *testing.T) *receiver {
	r := &receiver{}
	r.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		if r.down.Load() {
			http.Error(w, "down", http.StatusServiceUnavailable)
			return
		}
		if req.Header.Get("Content-Type") != "application/x-ndjson" || req.Header.Get("Authorization") != "Bearer s3cret" {
			http.Error(w, "bad request", http.StatusBadRequest)
			return
		}
		sc := bufio.NewScanner(req.Body)
		sc.Buffer(nil, 1<<20)
		r.mu.Lock()
		for sc.Scan() {
			r.lines = append(r.lines, sc.Text())
		}
		r.mu.Unlock()
	}))
	t.Cleanup(r.srv.Close)
	return r
}

func (r *receiver) seqs() []uint64 {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []uint64
	for _, l := range r.lines {
		var v struct{ Seq uint64 }
		if json.Unmarshal([]byte(l), &v) == nil && v.Seq > 0 {
			out = append(out, v.Seq)
		}
	}
	return out
}

// startShipper ships feed to rcv with short backoffs until the test ends.
func startShipper(t *testing.T, feed Feed, rcv *receiver) (*Shipper, *Webhook) {
	t.Helper()
	wh, err := NewWebhook(WebhookConfig{URL: rcv.srv.URL, Token: "s3cret"})
	if err != nil {
		t.Fatal(err)
	}
	sh, err := New(Config{Feed: feed, Sinks: []Sink{wh}, MinBackoff: 10 * time.Millisecond, MaxBackoff: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	sh.Start()
	t.Cleanup(func() { sh.Close() })
	return sh, wh
}

func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !cond(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
	}
}

// A sink that is down receives, when it is back, every record in order, and
// the records written meanwhile were never held up.
func TestWebhookOutageLosesNothing(t *testing.T) {
	s := openStore(t)
	rcv := newReceiver(t)
	sh, wh := startShipper(t, s, rcv)
	audit := func(n int) {
		for i := range n {
			if _, err := s.Audit(recorder.AuditEvent{Type: "test", Reason: fmt.Sprint(i)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	audit(10)
	waitFor(t, "the first records", func() bool { return len(rcv.seqs()) == 10 })
	rcv.down.Store(true)
	start := time.Now()
	audit(200)
	if d := time.Since(start); d > 10*time.Second {
		t.Errorf("writing during the outage took %s", d)
	}
	waitFor(t, "the sink to be seen failing", func() bool { return sh.Status()["webhook"].Failing })
	rcv.down.Store(false)
	waitFor(t, "every record", func() bool { return len(rcv.seqs()) >= 210 })
	got := rcv.seqs()
	for i, seq := range got {
		if seq != uint64(i+1) {
			t.Fatalf("record %d arrived as %d: out of order or duplicated: %v", i+1, seq, got)
		}
	}
	// A restarted shipper goes on from its cursor.
	sh.Close()
	audit(5)
	sh2, _ := New(Config{Feed: s, Sinks: []Sink{wh}})
	sh2.Start()
	defer sh2.Close()
	waitFor(t, "the records written while stopped", func() bool { return len(rcv.seqs()) >= 215 })
	if got := rcv.seqs(); got[len(got)-1] != 215 {
		t.Fatalf("after a restart: last %d", got[len(got)-1])
	}
	// What the sink received agrees with the local log.
	rcv.mu.Lock()
	received := strings.Join(rcv.lines, "\n")
	rcv.mu.Unlock()
	cmp, err := s.CompareAudit(strings.NewReader(received))
	if err != nil || !cmp.Intact || cmp.Matched < 215 {
		t.Fatalf("compare: %+v %v", cmp, err)
	}
}

// A sink further behind than its spool skips ahead and is told so.
func TestSpoolBound(t *testing.T) {
	s := openStore(t)
	for i := range 100 {
		s.Audit(recorder.AuditEvent{Type: "old", Reason: fmt.Sprint(i)})
	}
	rcv := newReceiver(t)
	wh, _ := NewWebhook(WebhookConfig{URL: rcv.srv.URL, Token: "s3cret"})
	sh, _ := New(Config{Feed: s, Sinks: []Sink{wh}, Spool: 20 * recordBytes})
	sh.Start()
	defer sh.Close()
	waitFor(t, "the newest records", func() bool { s := rcv.seqs(); return len(s) > 0 && s[len(s)-1] == 100 })
	rcv.mu.Lock()
	first := rcv.lines[0]
	rcv.mu.Unlock()
	if first != `{"gap":{"from":1,"to":80}}` {
		t.Fatalf("first line %q, want the gap", first)
	}
	if got := rcv.seqs(); got[0] != 81 {
		t.Fatalf("first record %d, want 81", got[0])
	}
}

func TestConfigChecks(t *testing.T) {
	for _, u := range []string{"ftp://x", "http://example.com/x", "://", "/relative"} {
		if _, err := NewWebhook(WebhookConfig{URL: u}); err == nil {
			t.Errorf("webhook %q accepted", u)
		}
	}
	for _, a := range []string{"", "tcp://nohostport", "http://x:1", "unix://", "udp://h:1:2"} {
		if _, err := NewSyslog(SyslogConfig{Address: a}); err == nil {
			t.Errorf("syslog %q accepted", a)
		}
	}
	if _, err := NewSyslog(SyslogConfig{Address: "tcp://127.0.0.1:514", Facility: 99}); err == nil {
		t.Error("facility 99 accepted")
	}
	s, err := NewSyslog(SyslogConfig{Address: "udp://127.0.0.1:514", Hostname: "h"})
	if err != nil {
		t.Fatal(err)
	}
	msg := s.format([]byte(`{"seq":1}`))
	if !bytes.HasPrefix(msg, []byte("<86>1 ")) || !bytes.HasSuffix(msg, []byte(" h bastion "+fmt.Sprint(os.Getpid())+` audit - {"seq":1}`)) {
		t.Errorf("message %q", msg)
	}
}

// Two replicas on one PostgreSQL store, each with a shipper to the same
// webhook: one ships at a time, every record arrives once and in order
// whichever replica wrote it, and when the shipping replica stops the
// other goes on from where it left off.
func TestReplicasShipOnce(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	dsn := pg.StoreDSN(t, "bastion")
	_, key, _ := ed25519.GenerateKey(nil)
	open := func(name string) *recorder.Store {
		s, err := recorder.Open(recorder.Config{
			Postgres: &recorder.PostgresConfig{DSN: dsn, Name: name, Lease: time.Second, Poll: 100 * time.Millisecond},
			SealKey:  key, FlushInterval: 20 * time.Millisecond,
		})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s
	}
	stores := []*recorder.Store{open("a"), open("b")}
	rcv := newReceiver(t)
	var shippers []*Shipper
	for _, s := range stores {
		sh, _ := startShipper(t, s, rcv)
		shippers = append(shippers, sh)
	}
	n := 0
	audit := func(s *recorder.Store, k int) {
		for range k {
			n++
			if _, err := s.Audit(recorder.AuditEvent{Type: "test", Reason: fmt.Sprint(n)}); err != nil {
				t.Fatal(err)
			}
		}
	}
	once := func() {
		t.Helper()
		waitFor(t, fmt.Sprintf("record %d", n), func() bool { s := rcv.seqs(); return len(s) > 0 && s[len(s)-1] >= uint64(n) })
		got := rcv.seqs()
		for i, seq := range got {
			if seq != uint64(i+1) {
				t.Fatalf("record %d arrived as %d: out of order, lost or repeated: %v", i+1, seq, got)
			}
		}
		if len(got) != n {
			t.Fatalf("received %d records, want %d", len(got), n)
		}
	}
	for range 10 {
		audit(stores[0], 5)
		audit(stores[1], 5)
	}
	once()
	holder := -1
	for i, sh := range shippers {
		if sh.Status()["webhook"].Holding {
			if holder >= 0 {
				t.Fatal("both replicas hold the sink")
			}
			holder = i
		}
	}
	if holder < 0 {
		t.Fatal("no replica holds the sink")
	}
	// The holder stops; the other replica takes over.
	other := 1 - holder
	shippers[holder].Close()
	audit(stores[holder], 10)
	audit(stores[other], 10)
	once()
	if !shippers[other].Status()["webhook"].Holding {
		t.Fatal("the remaining replica does not hold the sink")
	}
	rcv.mu.Lock()
	received := strings.Join(rcv.lines, "\n")
	rcv.mu.Unlock()
	cmp, err := stores[other].CompareAudit(strings.NewReader(received))
	if err != nil || !cmp.Intact || cmp.Matched != int64(n) {
		t.Fatalf("compare: %+v %v", cmp, err)
	}
}
