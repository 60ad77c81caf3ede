package bastion

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/bastion/mask"
	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/ca"
)

// Unit tests of the server's middle, each of one part, without a network.

// halfCloser records writes and whether CloseWrite was called.
type halfCloser struct {
	bytes.Buffer
	closed  bool
	failAt  int // fail a write once this many bytes are written (0: never)
	written int
}

func (h *halfCloser) Write(p []byte) (int, error) {
	if h.failAt > 0 && h.written+len(p) > h.failAt {
		return 0, errors.New("broken pipe")
	}
	h.written += len(p)
	return h.Buffer.Write(p)
}

func (h *halfCloser) CloseWrite() error { h.closed = true; return nil }

// oneByte is a reader that returns at most n bytes per call.
type chunked struct {
	r io.Reader
	n int
}

func (c chunked) Read(p []byte) (int, error) { return c.r.Read(p[:min(len(p), c.n)]) }

func TestRelay(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789"), 10_000)
	for _, tc := range []struct {
		name  string
		src   io.Reader
		dst   *halfCloser
		want  int64
		err   bool
		whole bool
	}{
		{name: "everything, then a half-close", src: bytes.NewReader(data), dst: &halfCloser{}, want: int64(len(data)), whole: true},
		{name: "small reads grow the buffer and back", src: chunked{bytes.NewReader(data), 7}, dst: &halfCloser{}, want: int64(len(data)), whole: true},
		{name: "a failing destination stops it", src: bytes.NewReader(data), dst: &halfCloser{failAt: 40_000}, err: true},
		{name: "a failing source", src: io.MultiReader(bytes.NewReader(data[:100]), errReader{}), dst: &halfCloser{}, want: 100, err: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var counted int64
			var act activity
			n, err := relay(tc.dst, tc.src, func(k int) { counted += int64(k) }, &act, time.Now)
			if (err != nil) != tc.err {
				t.Fatalf("err = %v, want error %v", err, tc.err)
			}
			if !tc.dst.closed {
				t.Error("the destination was not half-closed")
			}
			if counted != n {
				t.Errorf("counted %d, copied %d", counted, n)
			}
			if tc.whole && (n != tc.want || !bytes.Equal(tc.dst.Bytes(), data)) {
				t.Errorf("copied %d bytes, want %d, intact", n, tc.want)
			}
			if act.since(time.Now()) > time.Minute {
				t.Error("activity not touched")
			}
		})
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

// fakeRecording is a Recording in memory; failAfter makes it fail like a
// strict recording whose store broke.
type fakeRecording struct {
	mu      sync.Mutex
	out     bytes.Buffer
	markers []string
	failed  chan struct{}
	err     error
}

func newFakeRecording() *fakeRecording { return &fakeRecording{failed: make(chan struct{})} }

func (r *fakeRecording) Output(p []byte) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.err != nil {
		return r.err
	}
	r.out.Write(p)
	return nil
}
func (r *fakeRecording) Input([]byte) error      { return nil }
func (r *fakeRecording) FromClient([]byte) error { return nil }
func (r *fakeRecording) FromServer([]byte) error { return nil }
func (r *fakeRecording) ConnEvent(string) error  { return nil }
func (r *fakeRecording) Resize(int, int) error   { return nil }
func (r *fakeRecording) AddBytes(int64, int64)   {}
func (r *fakeRecording) Failed() <-chan struct{} { return r.failed }
func (r *fakeRecording) End(Exit) error          { return nil }
func (r *fakeRecording) Marker(label string) error {
	r.mu.Lock()
	r.markers = append(r.markers, label)
	r.mu.Unlock()
	return nil
}
func (r *fakeRecording) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}
func (r *fakeRecording) fail(err error) {
	r.mu.Lock()
	r.err = err
	r.mu.Unlock()
	close(r.failed)
}
func (r *fakeRecording) text() string { r.mu.Lock(); defer r.mu.Unlock(); return r.out.String() }

func testSession(t *testing.T, rec Recording) *session {
	t.Helper()
	ctx, cancel := context.WithCancelCause(context.Background())
	t.Cleanup(func() { cancel(nil) })
	env := &sessionEnv{now: time.Now, log: slog.New(slog.DiscardHandler), metrics: NewMetrics(), untrack: func(*session) {}}
	return &session{env: env, id: "s1", ctx: ctx, cancel: cancel, rec: rec, start: time.Now()}
}

// Output goes through masking to the recording and the user alike; a
// possible card number split across reads is held, then released.
func TestOutputPipeline(t *testing.T) {
	rec := newFakeRecording()
	ss := testSession(t, rec)
	m, err := mask.New(mask.Config{Cards: true})
	if err != nil {
		t.Fatal(err)
	}
	var user bytes.Buffer
	var mu sync.Mutex
	dst := writerFunc(func(p []byte) (int, error) { mu.Lock(); defer mu.Unlock(); return user.Write(p) })
	var seen bytes.Buffer
	o := &outputPipeline{ss: ss, dst: dst, masker: m, hold: 5 * time.Millisecond, rules: "cards",
		observe: func(b []byte) { seen.Write(b) }}
	for _, part := range []string{"card 4111 1111 ", "1111 1111 ok\n", "tail 4111"} {
		if _, err := o.Write([]byte(part)); err != nil {
			t.Fatal(err)
		}
	}
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(time.Millisecond) {
		mu.Lock()
		got := user.String()
		mu.Unlock()
		if strings.HasSuffix(got, "tail 4111") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the held tail was not released: %q", got)
		}
	}
	o.close()
	if got, want := user.String(), "card **** **** **** 1111 ok\ntail 4111"; got != want {
		t.Errorf("user saw %q, want %q", got, want)
	}
	if rec.text() != user.String() {
		t.Errorf("the recording holds %q, the user saw %q", rec.text(), user.String())
	}
	if !strings.Contains(seen.String(), "4111 1111 1111 1111") {
		t.Error("the observer (the shell guard's emulator) must see the raw output")
	}
	if len(rec.markers) != 1 || !strings.Contains(rec.markers[0], "masked 1 value(s) (rule cards)") {
		t.Errorf("markers: %q", rec.markers)
	}

	// A strict recording that fails: nothing more reaches the user.
	rec2 := newFakeRecording()
	ss2 := testSession(t, rec2)
	var user2 bytes.Buffer
	o2 := &outputPipeline{ss: ss2, dst: &user2}
	o2.Write([]byte("before\n"))
	rec2.fail(errors.New("disk full"))
	if _, err := o2.Write([]byte("after\n")); err == nil || strings.Contains(user2.String(), "after") {
		t.Fatalf("output went on after the recording failed: %v %q", err, user2.String())
	}
	<-ss2.ctx.Done()
	if cause := context.Cause(ss2.ctx); cause == nil || !strings.Contains(cause.Error(), "disk full") {
		t.Errorf("the session ended with %v", cause)
	}
}

type writerFunc func([]byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

// Approvals: single use, nobody approves their own, no decision means
// denied, and an approval the audit log cannot record is a denial; in
// memory, and on a shared board (as replicas of one store use it; the
// PostgreSQL board itself is tested in recorder and end to end in
// cmd/bastion).
func TestApprovals(t *testing.T) {
	t.Run("memory", func(t *testing.T) { testApprovals(t, nil) })
	t.Run("shared board", func(t *testing.T) { testApprovals(t, &fakeBoard{m: map[string]*fakeRequest{}}) })
}

// fakeBoard is an ApprovalBoard in memory with the PostgreSQL board's
// rules: one decision, a claim excludes other deciders and timeouts.
type fakeBoard struct {
	mu sync.Mutex
	m  map[string]*fakeRequest
}

type fakeRequest struct {
	SharedApproval
	expires, claimUntil time.Time
	claim               string
}

func (b *fakeBoard) Put(id string, request []byte, created, expires time.Time, _ string, admit func([][]byte) bool) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.m[id] != nil {
		return false, nil
	}
	if admit != nil {
		var pending [][]byte
		for _, r := range b.m {
			if r.Outcome == "" && created.Before(r.expires) {
				pending = append(pending, r.Request)
			}
		}
		if !admit(pending) {
			return false, ErrNotAdmitted
		}
	}
	b.m[id] = &fakeRequest{SharedApproval: SharedApproval{Request: request}, expires: expires}
	return true, nil
}

func (b *fakeBoard) Get(id string, _ time.Time) (SharedApproval, bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if r := b.m[id]; r != nil {
		return r.SharedApproval, true, nil
	}
	return SharedApproval{}, false, nil
}

func (b *fakeBoard) Pending(now time.Time) ([]SharedApproval, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []SharedApproval
	for _, r := range b.m {
		if r.Outcome == "" && r.expires.After(now) {
			out = append(out, r.SharedApproval)
		}
	}
	return out, nil
}

func (b *fakeBoard) Claim(id, claim string, now, until time.Time) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.m[id]
	if r == nil || r.Outcome != "" || !r.expires.After(now) || r.claimUntil.After(now) {
		return false, nil
	}
	r.claim, r.claimUntil = claim, until
	return true, nil
}

func (b *fakeBoard) Decide(id, claim string, request []byte, outcome, by, note string, now time.Time) (bool, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	r := b.m[id]
	if r == nil || r.Outcome != "" || (claim != "" && (claim != r.claim || !r.claimUntil.After(now))) || (claim == "" && r.claimUntil.After(now)) {
		return false, nil
	}
	if claim != "" && !bytes.Equal(request, r.Request) {
		return false, errors.New("the request changed")
	}
	r.Outcome, r.DecidedBy, r.Note, r.claimUntil = outcome, by, note, time.Time{}
	r.Proven = claim != "" // a decider's outcome, signed by the PostgreSQL board
	return true, nil
}

func (b *fakeBoard) Watch(string) (<-chan struct{}, func()) { return nil, func() {} }
func (b *fakeBoard) WatchAll() (<-chan struct{}, func())    { return nil, func() {} }
func (b *fakeBoard) PollInterval() time.Duration            { return 5 * time.Millisecond }

// TestSharedApprovalLapsedClaim: an approver's replica claims a request,
// audits the approval, then records it; when the audit took longer than
// the claim, the waiting replica may have ended the wait, so the approval
// is not recorded, and the audit log, which already says approved, says
// that approval was void (before, it was recorded late: approved in the
// store and the audit log for a command that never ran).
func TestSharedApprovalLapsedClaim(t *testing.T) {
	pol, err := policy.Compile(policy.Spec{
		Targets: []policy.TargetSpec{{Name: "web1", Kind: "ssh", Address: "h:22", TrustOnFirstUse: true}},
		Roles:   []policy.RoleSpec{{Name: "approvers", Groups: []string{"sre"}, Approve: []string{"web*"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	now := time.Now()
	var events []string
	board := &fakeBoard{m: map[string]*fakeRequest{}}
	a := &approvals{
		audit: func(ev Event) error {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, ev.Type)
			if ev.Type == "command.approve" {
				now = now.Add(claimTTL + time.Second) // a slow audit log
			}
			return nil
		},
		now:    func() time.Time { mu.Lock(); defer mu.Unlock(); return now },
		policy: func() *policy.Policy { return pol }, log: slog.New(slog.DiscardHandler), m: map[string]*approval{},
		board: board,
	}
	alice := ca.Identity{User: "alice", Issuer: "i", Subject: "a"}
	bob := Caller{Identity: ca.Identity{User: "bob", Issuer: "i", Subject: "b", Groups: []string{"sre"}}}
	ap := a.request(&approval{Requester: alice, User: "alice", Target: "web1", Command: "./deploy.sh", Rule: "deploys",
		Approvers: []string{"approvers"}, Created: now, Expires: now.Add(time.Hour)})
	if _, err := a.decide(bob, ap.ID, true, "", ""); err == nil {
		t.Error("an approval recorded after its claim lapsed")
	}
	if sa, _, _ := board.Get(ap.ID, now); sa.Outcome != "" {
		t.Errorf("the store says %q", sa.Outcome)
	}
	mu.Lock()
	defer mu.Unlock()
	if strings.Join(events, " ") != "command.hold command.approve command.approve_void" {
		t.Errorf("audited: %v", events)
	}
}

func testApprovals(t *testing.T, board ApprovalBoard) {
	pol, err := policy.Compile(policy.Spec{
		Targets: []policy.TargetSpec{{Name: "web1", Kind: "ssh", Address: "h:22", TrustOnFirstUse: true}},
		Roles:   []policy.RoleSpec{{Name: "approvers", Groups: []string{"sre"}, Approve: []string{"web*"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	var mu sync.Mutex
	var events []string
	auditErr := error(nil)
	a := &approvals{
		audit: func(ev Event) error {
			mu.Lock()
			defer mu.Unlock()
			events = append(events, ev.Type)
			return auditErr
		},
		policy: func() *policy.Policy { return pol }, log: slog.New(slog.DiscardHandler), m: map[string]*approval{},
		board: board,
	}
	alice := ca.Identity{User: "alice", Issuer: "i", Subject: "a"}
	bob := Caller{Identity: ca.Identity{User: "bob", Issuer: "i", Subject: "b", Groups: []string{"sre"}}}
	carol := Caller{Identity: ca.Identity{User: "carol", Issuer: "i", Subject: "c"}}
	ask := func(timeout time.Duration) *approval {
		return a.request(&approval{Requester: alice, User: "alice", Target: "web1", Command: "./deploy.sh", Rule: "deploys",
			Approvers: []string{"approvers"}, Created: time.Now(), Expires: time.Now().Add(timeout)})
	}

	changed := a.watch()
	ap := ask(time.Minute)
	select {
	case <-changed: // a page watching the list learns of the request
	default:
		t.Error("a new request did not signal a change")
	}
	changed = a.watch()
	if got := (&Server{approvals: a}).Requests(bob); len(got) != 1 || got[0].ID != ap.ID || got[0].Own || got[0].Command != "./deploy.sh" {
		t.Errorf("the approver sees %+v", got)
	}
	if got := (&Server{approvals: a}).Requests(Caller{Identity: alice}); len(got) != 1 || !got[0].Own {
		t.Errorf("the requester sees %+v", got)
	}
	if got := (&Server{approvals: a}).Requests(carol); len(got) != 0 {
		t.Errorf("someone who may not decide sees %+v", got)
	}
	if _, err := a.decide(Caller{Identity: alice}, ap.ID, true, "", ""); !errors.Is(err, ErrSelfApprove) {
		t.Errorf("self-approval: %v", err)
	}
	if _, err := a.decide(carol, ap.ID, true, "", ""); !errors.Is(err, ErrNotApprover) {
		t.Errorf("not an approver: %v", err)
	}
	if _, err := a.decide(bob, ap.ID, true, "", ""); err != nil {
		t.Fatalf("approve: %v", err)
	}
	select {
	case <-changed:
	default:
		t.Error("a decision did not signal a change")
	}
	if _, err := a.decide(bob, ap.ID, false, "", ""); !errors.Is(err, ErrNoRequest) {
		t.Errorf("a second decision: %v", err)
	}
	if outcome, by, _ := a.wait(context.Background(), ap); outcome != Approved || by != "bob" {
		t.Errorf("wait: %s by %s", outcome, by)
	}

	// An approver's note reaches the requester's terminal or database
	// client: it cannot carry escape sequences or draw a line of its own.
	ap = ask(time.Minute)
	if _, err := a.decide(bob, ap.ID, false, "no\x1b]52;c;cm0gLXJmIH4K\x07\r\nbastion: request 1 approved by carol\u202e\u009b"+strings.Repeat("x", 2000), ""); err != nil {
		t.Fatalf("deny: %v", err)
	}
	if _, _, note := a.wait(context.Background(), ap); strings.ContainsAny(note, "\x1b\x07\r\n\u202e\u009b") || !strings.HasPrefix(note, `no\x1b]52;c;cm0gLXJmIH4K\a\r\nbastion: request 1 approved by carol\u202e\u009b`) || len(note) > maxNote+len("…") {
		t.Errorf("the requester is shown the note %q", note)
	}

	ap = ask(20 * time.Millisecond)
	if outcome, _, _ := a.wait(context.Background(), ap); outcome != TimedOut {
		t.Errorf("no decision: %s, want %s", outcome, TimedOut)
	}

	ctx, cancel := context.WithCancel(context.Background())
	ap = ask(time.Minute)
	cancel()
	if outcome, _, _ := a.wait(ctx, ap); outcome != Cancelled {
		t.Errorf("cancelled: %s", outcome)
	}

	ap = ask(time.Minute)
	mu.Lock()
	auditErr = errors.New("audit down")
	mu.Unlock()
	if _, err := a.decide(bob, ap.ID, true, "", ""); err == nil {
		t.Error("an approval the audit log cannot record was accepted")
	}
	if outcome, _, _ := a.wait(context.Background(), ap); outcome != Denied {
		t.Errorf("unaudited approval: %s, want %s", outcome, Denied)
	}
	ap = ask(time.Minute) // the hold itself cannot be audited
	if outcome, _, note := a.wait(context.Background(), ap); outcome != Denied || !strings.Contains(note, "audit log") {
		t.Errorf("unaudited hold: %s (%s)", outcome, note)
	}
}

func TestSplitArgs(t *testing.T) {
	for _, tc := range []struct {
		in   string
		want []string
		err  bool
	}{
		{in: "sessions --user alice", want: []string{"sessions", "--user", "alice"}},
		{in: `deny 7f3a --reason 'not now'`, want: []string{"deny", "7f3a", "--reason", "not now"}},
		{in: `deny 7f3a --reason "it's \"late\""`, want: []string{"deny", "7f3a", "--reason", `it's "late"`}},
		{in: `a\ b c`, want: []string{"a b", "c"}},
		{in: `""`, want: []string{""}},
		{in: "  \t\n ", want: nil},
		{in: `$(rm -rf /) ` + "`id`", want: []string{"$(rm", "-rf", "/)", "`id`"}},
		{in: `'unterminated`, err: true},
		{in: `"unterminated`, err: true},
		{in: `trailing\`, err: true},
		{in: strings.Repeat("a ", 65), err: true},
	} {
		got, err := splitArgs(tc.in)
		if (err != nil) != tc.err || !tc.err && !slicesEqual(got, tc.want) {
			t.Errorf("splitArgs(%q) = %q, %v; want %q, error %v", tc.in, got, err, tc.want, tc.err)
		}
	}
}

func slicesEqual(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i] != b[i] {
			return false
		}
	}
	return true
}

// FuzzSplitArgs: the admin command line comes from the network.
func FuzzSplitArgs(f *testing.F) {
	for _, s := range []string{"sessions --json", `deny x --reason 'a b'`, `"\"\\"`, `a\ b`, `'`, "\x00\xff"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		args, err := splitArgs(s)
		if err != nil {
			return
		}
		if len(args) > 64 {
			t.Fatalf("%d arguments", len(args))
		}
		total := 0
		for _, a := range args {
			total += len(a)
		}
		if total > len(s) {
			t.Fatalf("the arguments (%d bytes) are longer than the line (%d)", total, len(s))
		}
	})
}

// TestApprovalWebhookLink: with a console URL, the webhook's JSON carries
// the request's page, so a chat message can link to it.
func TestApprovalWebhookLink(t *testing.T) {
	got := make(chan map[string]any, 1)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		got <- m
	}))
	defer hook.Close()
	a := &approvals{webhook: hook.URL, link: func(id string) string { return "https://bastion.example.com/approvals/" + id },
		log: slog.New(slog.DiscardHandler), m: map[string]*approval{}}
	a.notify(&approval{ID: "r1", User: "alice", Target: "web1", Command: "./deploy.sh"})
	m := <-got
	if m["url"] != "https://bastion.example.com/approvals/r1" || m["id"] != "r1" || m["approve"] != "bastion approve r1" {
		t.Errorf("webhook got %v", m)
	}
	// A chat client draws bidirectional controls: "command" is the text with them
	// written as escapes, so "# ok" cannot seem to comment out the second command.
	trojan := "touch a \u202e\u2066; touch b \u2069 \u2066# ok\u2069"
	a.notify(&approval{ID: "r2", User: "alice", Target: "web1", Command: trojan})
	m = <-got
	if m["command"] != `touch a \u202e\u2066; touch b \u2069 \u2066# ok\u2069` || m["command_exact"] != trojan {
		t.Errorf("webhook got command %q, command_exact %q", m["command"], m["command_exact"])
	}
}

// upstreamPair connects an upstreamConn to an x/crypto server standing in
// for a target, over loopback.
func upstreamPair(t *testing.T) (*upstreamConn, *gossh.ServerConn) {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	hostKey, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	srvCfg := &gossh.ServerConfig{NoClientAuth: true}
	srvCfg.AddHostKey(hostKey)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type accepted struct {
		conn *gossh.ServerConn
		err  error
	}
	got := make(chan accepted, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- accepted{err: err}
			return
		}
		sc, chans, reqs, err := gossh.NewServerConn(c, srvCfg)
		if err == nil {
			go gossh.DiscardRequests(reqs)
			go func() {
				for nc := range chans {
					nc.Reject(gossh.Prohibited, "no channels here")
				}
			}()
		}
		got <- accepted{sc, err}
	}()
	c, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cc, chans, reqs, err := gossh.NewClientConn(c, "target", &gossh.ClientConfig{User: "root", HostKeyCallback: gossh.FixedHostKey(hostKey.PublicKey())})
	if err != nil {
		t.Fatal(err)
	}
	a := <-got
	if a.err != nil {
		t.Fatal(a.err)
	}
	t.Cleanup(func() { cc.Close(); a.conn.Close() })
	return &upstreamConn{Conn: cc, chans: chans, reqs: reqs}, a.conn
}

// The session's request goroutine answers what a target sends on the
// connection itself as ssh.Client's goroutines did (a global request
// fails, a channel the target opens is rejected), also after the target
// filled x/crypto's queue before anyone served it, and it returns once the
// connection closes. A connection no session serves is drained on close.
func TestUpstreamConnServe(t *testing.T) {
	hangGuard := func(what string, f func()) {
		t.Helper()
		done := make(chan struct{})
		go func() { defer close(done); f() }()
		select {
		case <-done:
		case <-time.After(time.Minute):
			t.Fatalf("%s never returned", what)
		}
	}
	u, target := upstreamPair(t)
	// More than x/crypto queues (16): its mux waits until they are taken.
	for range 40 {
		target.SendRequest("noise@test", false, nil)
	}
	chReqs := make(chan *gossh.Request, 1)
	chReqs <- &gossh.Request{Type: "exit-status"}
	close(chReqs)
	var handled []string
	done := make(chan struct{})
	served := make(chan struct{})
	go func() {
		defer close(served)
		up := &requestQueue{handle: func(r *gossh.Request) { handled = append(handled, r.Type) }}
		u.serve(nil, chReqs, nil, up, nil, func() { close(done) })
	}()
	hangGuard("the channel's requests", func() { <-done })
	ok, _, err := target.SendRequest("keepalive@openssh.com", true, nil)
	if err != nil || ok {
		t.Errorf("global request: ok %v, err %v; want a failure reply", ok, err)
	}
	_, _, err = target.OpenChannel("forwarded-tcpip", nil)
	var oce *gossh.OpenChannelError
	if !errors.As(err, &oce) || oce.Reason != gossh.UnknownChannelType {
		t.Errorf("channel opened by the target: %v; want it rejected as an unknown type", err)
	}
	u.Close()
	hangGuard("serve after the connection closed", func() { <-served })
	if len(handled) != 1 || handled[0] != "exit-status" {
		t.Errorf("handled %q, want the channel's one request", handled)
	}

	u2, target2 := upstreamPair(t)
	for range 40 {
		target2.SendRequest("noise@test", false, nil)
	}
	hangGuard("closeDrain", u2.closeDrain)
}
