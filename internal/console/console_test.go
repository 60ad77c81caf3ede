package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/recorder"
	"github.com/bastionhq/bastion/recorder/asciicast"
)

// The end-to-end tests (cmd/bastion TestConsole) drive all of this in
// Chromium against a real bastion; these pin the refusals one by one.

type fakeStore struct {
	sessions map[string]recorder.SessionInfo
	events   []asciicast.Event // what Follow delivers
	auditErr error
	audited  []recorder.AuditEvent
	pcap     func(w io.Writer) error // ExportPcap; nil writes "pcap"
	auditLog []recorder.AuditEvent   // what AuditEvents reads
	revoked  map[string]time.Time    // UserRevoked
	live     bool                    // Follow waits for its context after the events
	mu       sync.Mutex              // guards revoked
	list     []recorder.SessionInfo  // what Sessions returns
	// scanning, when set, is told of each AuditEvents, which then waits
	// for scanDone.
	scanning, scanDone chan struct{}
}

func (f *fakeStore) Session(id string) (recorder.SessionInfo, error) {
	s, ok := f.sessions[id]
	if !ok {
		return s, errors.New("no such session")
	}
	return s, nil
}
func (f *fakeStore) Sessions(recorder.SessionFilter) ([]recorder.SessionInfo, error) {
	return f.list, nil
}
func (f *fakeStore) Export(id string, w io.Writer) error {
	_, err := io.WriteString(w, `{"version":2,"width":80,"height":24}`+"\n")
	return err
}
func (f *fakeStore) ExportPcap(id string, w io.Writer) error {
	if f.pcap != nil {
		return f.pcap(w)
	}
	_, err := io.WriteString(w, "pcap")
	return err
}
func (f *fakeStore) Events(_ string, fn func(asciicast.Event) error) error {
	for _, ev := range f.events {
		if err := fn(ev); err != nil {
			return err
		}
	}
	return nil
}
func (f *fakeStore) EventsSeek(_ string, from recorder.Seek, fn func(recorder.Seek, asciicast.Event, []byte) error) error {
	for i, ev := range f.events {
		if at := (recorder.Seek{Chunk: uint64(i)}); at.Chunk >= from.Chunk {
			data := []byte(ev.Data)
			ev.Data = ""
			if err := fn(at, ev, data); err != nil {
				return err
			}
		}
	}
	return nil
}
func (f *fakeStore) Follow(ctx context.Context, _ string, fn func(asciicast.Event) error, caughtUp func() error) error {
	for _, ev := range f.events {
		if err := fn(ev); err != nil {
			return err
		}
	}
	if caughtUp != nil {
		if err := caughtUp(); err != nil {
			return err
		}
	}
	if f.live { // the session goes on until the view is cancelled
		<-ctx.Done()
		return ctx.Err()
	}
	return nil
}
func (f *fakeStore) AuditEvents(_ time.Time, fn func(recorder.AuditEvent) error) error {
	if f.scanning != nil {
		f.scanning <- struct{}{}
		<-f.scanDone
	}
	for _, ev := range f.auditLog {
		if err := fn(ev); err != nil {
			return err
		}
	}
	return nil
}
func (f *fakeStore) Audit(ev recorder.AuditEvent) (string, error) {
	if f.auditErr != nil {
		return "", f.auditErr
	}
	f.audited = append(f.audited, ev)
	return "id", nil
}

func (f *fakeStore) UserRevoked(user string) (time.Time, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	t, ok := f.revoked[user]
	return t, ok
}

type fakeApprovals struct{ err error }

func (f *fakeApprovals) Requests(bastion.Caller) []bastion.Request { return nil }
func (f *fakeApprovals) DecideShown(c bastion.Caller, id string, approve bool, note, shown string) (bastion.Request, error) {
	return bastion.Request{ID: id}, f.err
}
func (f *fakeApprovals) RequestsChanged() <-chan struct{} { return make(chan struct{}) }

const issuer = "https://idp.example.com"

func newTestConsole(t *testing.T, tls bool) (*Console, *fakeStore, *fakeApprovals) {
	t.Helper()
	v, err := ca.NewVerifier(ca.OIDCConfig{Issuer: issuer, ClientID: "bastion"})
	if err != nil {
		t.Fatal(err)
	}
	st := &fakeStore{sessions: map[string]recorder.SessionInfo{
		"s-alice": {ID: "s-alice", User: "alice", Issuer: issuer, Target: "web1"},
	}}
	ap := &fakeApprovals{}
	c, err := New(Config{Store: st, Approvals: ap, Verifier: v, Issuer: issuer, ClientID: "bastion", TLS: tls, SessionTTL: time.Hour,
		Caller: func(id ca.Identity, addr string) bastion.Caller {
			return bastion.Caller{Identity: id, RemoteAddr: addr}
		}})
	if err != nil {
		t.Fatal(err)
	}
	return c, st, ap
}

// signIn puts a session for user into the console's table, as a completed
// sign-in does, and returns its cookie and CSRF token.
func signIn(c *Console, user string) (*http.Cookie, string) {
	tok := randomToken()
	k := sessionKey(tok)
	s := &websession{key: k, identity: ca.Identity{User: user, Issuer: issuer, Subject: "u-" + user}, csrf: randomToken(),
		signedIn: time.Now(), expires: time.Now().Add(time.Hour)}
	c.auth.sessions[k] = s
	return &http.Cookie{Name: c.auth.cookieName(cookieSession), Value: tok}, s.csrf
}

func serve(c *Console, req *http.Request) *httptest.ResponseRecorder {
	mux := http.NewServeMux()
	c.Register(mux)
	rec := httptest.NewRecorder()
	mux.ServeHTTP(rec, req)
	return rec
}

func TestRefusals(t *testing.T) {
	c, st, ap := newTestConsole(t, false)
	ck, csrf := signIn(c, "carol")
	post := func(path string, form url.Values, cookie *http.Cookie, hdr map[string]string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("POST", path, strings.NewReader(form.Encode()))
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		if cookie != nil {
			req.AddCookie(cookie)
		}
		return serve(c, req)
	}
	get := func(path string, cookie *http.Cookie) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		if cookie != nil {
			req.AddCookie(cookie)
		}
		return serve(c, req)
	}

	if r := get("/sessions", nil); r.Code != http.StatusSeeOther || r.Header().Get("Location") != "/login?next=%2Fsessions" {
		t.Errorf("a page without a cookie: %d %q", r.Code, r.Header().Get("Location"))
	}
	if r := get("/api/sessions/s-alice/cast", nil); r.Code != http.StatusUnauthorized {
		t.Errorf("the API without a cookie: %d", r.Code)
	}
	if r := get("/sessions", &http.Cookie{Name: ck.Name, Value: "forged"}); r.Code != http.StatusSeeOther {
		t.Errorf("a forged cookie: %d", r.Code)
	}
	if r := get("/api/sessions/s-alice/cast", ck); r.Code != http.StatusNotFound {
		t.Errorf("carol reading alice's recording: %d", r.Code)
	}
	if r := get("/audit", ck); r.Code != http.StatusForbidden {
		t.Errorf("a non-auditor on the audit page: %d", r.Code)
	}
	if r := post("/approvals/r1/approve", url.Values{}, nil, nil); r.Code != http.StatusUnauthorized {
		t.Errorf("a POST without a cookie: %d", r.Code)
	}
	if r := post("/approvals/r1/approve", url.Values{}, ck, nil); r.Code != http.StatusForbidden {
		t.Errorf("a POST without the CSRF token: %d", r.Code)
	}
	if r := post("/approvals/r1/approve", url.Values{"csrf": {"wrong"}}, ck, nil); r.Code != http.StatusForbidden {
		t.Errorf("a POST with another CSRF token: %d", r.Code)
	}
	if r := post("/approvals/r1/approve", url.Values{"csrf": {csrf}}, ck, map[string]string{"Sec-Fetch-Site": "cross-site"}); r.Code != http.StatusForbidden {
		t.Errorf("a cross-site POST with the token: %d", r.Code)
	}
	ap.err = bastion.ErrNotApprover
	if r := post("/approvals/r1/approve", url.Values{"csrf": {csrf}}, ck, nil); r.Code != http.StatusForbidden {
		t.Errorf("a non-approver: %d", r.Code)
	}
	ap.err = bastion.ErrSelfApprove
	if r := post("/approvals/r1/approve", url.Values{"csrf": {csrf}}, ck, nil); r.Code != http.StatusForbidden {
		t.Errorf("self-approval: %d", r.Code)
	}
	ap.err = nil
	if r := post("/approvals/r1/approve", url.Values{"csrf": {csrf}}, ck, nil); r.Code != http.StatusSeeOther {
		t.Errorf("a good decision: %d %s", r.Code, r.Body)
	}

	// A replay the audit log cannot record is refused.
	ack, _ := signIn(c, "alice")
	if r := get("/api/sessions/s-alice/cast", ack); r.Code != http.StatusOK || len(st.audited) != 1 || st.audited[0].Type != "session.replay" {
		t.Errorf("alice's replay: %d, audited %+v", r.Code, st.audited)
	}
	st.auditErr = errors.New("disk full")
	if r := get("/api/sessions/s-alice/cast", ack); r.Code != http.StatusServiceUnavailable {
		t.Errorf("a replay the audit cannot record: %d", r.Code)
	}
	if r := get("/api/sessions/s-alice/live", ack); r.Code != http.StatusServiceUnavailable {
		t.Errorf("a live view the audit cannot record: %d", r.Code)
	}

	// Sign-out needs the token too, and ends the session.
	if r := post("/logout", url.Values{}, ck, nil); r.Code != http.StatusForbidden {
		t.Errorf("sign-out without the token: %d", r.Code)
	}
	if r := post("/logout", url.Values{"csrf": {csrf}}, ck, nil); r.Code != http.StatusSeeOther {
		t.Errorf("sign-out: %d", r.Code)
	}
	if r := get("/sessions", ck); r.Code != http.StatusSeeOther {
		t.Errorf("after sign-out: %d", r.Code)
	}
}

// TestCallbackRefusesForeignState: a callback this browser did not start
// (no login cookie, or another state) is refused before any code exchange.
func TestCallbackRefusesForeignState(t *testing.T) {
	c, _, _ := newTestConsole(t, false)
	other, _, _ := newTestConsole(t, false)
	pl := pendingLogin{State: "s2", Nonce: "n", Verifier: "v", Next: "/sessions", Expires: time.Now().Add(time.Minute).Unix()}
	expired := pl
	expired.State, expired.Expires = "s1", time.Now().Add(-time.Second).Unix()
	forged := c.auth.sealLogin(pl)
	forged = forged[:len(forged)-2] + "AA"
	for _, ck := range []*http.Cookie{
		nil,
		{Name: cookieLogin, Value: "s1"}, // the state itself, as cookies held before
		{Name: cookieLogin, Value: c.auth.sealLogin(pl)},      // another sign-in of this browser
		{Name: cookieLogin, Value: other.auth.sealLogin(pl)},  // sealed by another process
		{Name: cookieLogin, Value: forged},                    // tampered with
		{Name: cookieLogin, Value: c.auth.sealLogin(expired)}, // expired
		{Name: cookieLogin, Value: strings.Repeat("A", 4000)}, // garbage
	} {
		req := httptest.NewRequest("GET", PathCallback+"?state=s1&code=c", nil)
		if ck != nil {
			req.AddCookie(ck)
		}
		if r := serve(c, req); r.Code != http.StatusBadRequest {
			t.Errorf("cookie %v: %d", ck, r.Code)
		}
	}
}

// TestLoginTakesNoServerRoom: starting sign-ins costs the server nothing
// to keep, so many of them (a flood from anyone) do not crowd out one in
// progress; its sealed cookie still opens.
func TestLoginTakesNoServerRoom(t *testing.T) {
	c, _, _ := newTestConsole(t, false)
	mine := c.auth.sealLogin(pendingLogin{State: "mine", Expires: time.Now().Add(time.Minute).Unix(), Next: "/approvals"})
	for range 20000 {
		c.auth.sealLogin(pendingLogin{State: randomToken(), Expires: time.Now().Add(time.Minute).Unix()})
	}
	if pl, ok := c.auth.openLogin(mine); !ok || pl.State != "mine" || pl.Next != "/approvals" {
		t.Fatalf("the sign-in in progress: %+v %v", pl, ok)
	}
}

func TestCookieAttributes(t *testing.T) {
	for _, tls := range []bool{false, true} {
		c, _, _ := newTestConsole(t, tls)
		rec := httptest.NewRecorder()
		c.auth.setCookie(rec, cookieSession, "v", time.Hour)
		got := rec.Header().Get("Set-Cookie")
		for _, want := range []string{"HttpOnly", "SameSite=Lax", "Path=/", "Max-Age=3600"} {
			if !strings.Contains(got, want) {
				t.Errorf("tls=%v: %q lacks %s", tls, got, want)
			}
		}
		if secure := strings.Contains(got, "Secure") && strings.HasPrefix(got, "__Host-"); secure != tls {
			t.Errorf("tls=%v: %q", tls, got)
		}
	}
}

func TestSecurityHeaders(t *testing.T) {
	c, _, _ := newTestConsole(t, true)
	r := serve(c, httptest.NewRequest("GET", "/", nil))
	h := r.Header()
	if csp := h.Get("Content-Security-Policy"); !strings.Contains(csp, "script-src 'self'") || strings.Contains(csp, "unsafe-inline") {
		t.Errorf("CSP %q", csp)
	}
	if h.Get("X-Frame-Options") != "DENY" || h.Get("Strict-Transport-Security") == "" || h.Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("headers %v", h)
	}
	if !strings.Contains(r.Body.String(), `href="/login"`) {
		t.Errorf("the sign-in page:\n%s", r.Body)
	}
}

var nextCases = []struct{ in, want string }{
	{"", "/sessions"},
	{"/approvals/abc", "/approvals/abc"},
	{"/sessions?user=a&page=2", "/sessions?user=a&page=2"},
	{"//evil.example.com/x", "/sessions"},
	{"/\\evil.example.com", "/sessions"},
	{"https://evil.example.com/", "/sessions"},
	{"javascript:alert(1)", "/sessions"},
	{"sessions", "/sessions"},
	{"/%zz", "/sessions"},
	{"/x/../\\evil.example/phish", "/sessions"},
	{"/x/..%5Cevil.example", "/sessions"},
	{"/%5C%5Cevil.example", "/sessions"},
	{"/x/..//evil.example", "/evil.example"},
	{"/%2F/evil.example", "/%2F/evil.example"},
	{"/sessions/../approvals", "/approvals"},
	{"/\tevil", "/sessions"},
	{"/ /evil", "/sessions"},
	{"/a#frag", "/a"},
}

// TestSafeNext: the page to return to after sign-in stays on this site.
func TestSafeNext(t *testing.T) {
	for _, tc := range nextCases {
		if got := safeNext(tc.in); got != tc.want {
			t.Errorf("safeNext(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzSafeNext(f *testing.F) {
	for _, tc := range nextCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := safeNext(s)
		u, err := url.Parse(got)
		if err != nil || u.Host != "" || u.Scheme != "" || !strings.HasPrefix(got, "/") || strings.HasPrefix(got, "//") || strings.HasPrefix(got, "/\\") {
			t.Fatalf("safeNext(%q) = %q leaves the site", s, got)
		}
		// Where the browser goes: the Location http.Redirect sends, read
		// with backslashes as slashes, as browsers read them.
		w := httptest.NewRecorder()
		http.Redirect(w, httptest.NewRequest("GET", "https://bastion.example/auth/callback", nil), got, http.StatusSeeOther)
		loc := strings.ReplaceAll(w.Header().Get("Location"), "\\", "/")
		base, _ := url.Parse("https://bastion.example/auth/callback")
		to, err := base.Parse(loc)
		if err != nil || to.Host != "bastion.example" || to.Scheme != "https" {
			t.Fatalf("safeNext(%q) = %q: the redirect goes to %q", s, got, loc)
		}
	})
}

var sizeCases = []struct {
	in         string
	cols, rows int
	ok         bool
}{
	{"80x24", 80, 24, true},
	{"1x1", 1, 1, true},
	{"0x24", 0, 0, false},
	{"80x", 0, 0, false},
	{"x24", 0, 0, false},
	{"80", 0, 0, false},
	{"-1x5", 0, 0, false},
	{"80x24x3", 0, 0, false},
	{"99999999999999999999x1", 0, 0, false},
	{"1001x24", 0, 0, false},
	{" 80x24", 0, 0, false},
}

func TestParseSize(t *testing.T) {
	for _, tc := range sizeCases {
		c, r, ok := parseSize(tc.in)
		if c != tc.cols || r != tc.rows || ok != tc.ok {
			t.Errorf("parseSize(%q) = %d, %d, %v", tc.in, c, r, ok)
		}
	}
}

func FuzzParseSize(f *testing.F) {
	for _, tc := range sizeCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if c, r, ok := parseSize(s); ok && (c < 1 || r < 1 || c > 1000 || r > 1000) {
			t.Fatalf("parseSize(%q) = %d, %d", s, c, r)
		}
	})
}

var dayCases = []struct {
	in string
	ok bool
}{
	{"", true}, {"2026-12-05", true}, {"2026-12-05T10:00:00Z", true},
	{"2026-13-01", false}, {"yesterday", false}, {"2026-12-05 10:00", false}, {"9999999-01-01", false},
}

func TestParseDay(t *testing.T) {
	for _, tc := range dayCases {
		if _, ok := parseDay(tc.in); ok != tc.ok {
			t.Errorf("parseDay(%q) ok=%v", tc.in, ok)
		}
	}
}

func FuzzParseDay(f *testing.F) {
	for _, tc := range dayCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) { parseDay(s) })
}

// TestLiveStream pins the two live views' streams: from now, a reset that
// draws the present screen and then "done"; from the start, a reset at
// time 0 and every event with its time cut to the idle limit and divided
// by the speed, then "done".
func TestLiveStream(t *testing.T) {
	c, st, _ := newTestConsole(t, false)
	st.events = []asciicast.Event{
		{Time: 0, Type: asciicast.Output, Data: "a"},
		{Time: 100 * time.Millisecond, Type: asciicast.Resize, Data: "90x20"},
		{Time: 5 * time.Second, Type: asciicast.Output, Data: "b"},
		{Time: 5 * time.Second, Type: asciicast.Input, Data: "typed"},
		{Time: 5100 * time.Millisecond, Type: asciicast.Marker, Data: "blocked"},
	}
	cookie, _ := signIn(c, "alice")
	for _, tc := range []struct{ query, want string }{
		{"", `data: {"cols":90,"init":"ab","rows":20,"time":5.1}` + "\n\n" + "event: done\ndata: {}\n\n"},
		{"?from=start&speed=2&idle=1", `data: {"cols":80,"rows":24,"time":0}` + "\n\n" +
			`data: [0,"o","a"]` + "\n\n" + `data: [0.05,"r","90x20"]` + "\n\n" + `data: [0.55,"o","b"]` + "\n\n" +
			`data: [0.6,"m","blocked"]` + "\n\n" + "event: done\ndata: {}\n\n"},
	} {
		req := httptest.NewRequest("GET", "/api/sessions/s-alice/live"+tc.query, nil)
		req.AddCookie(cookie)
		rec := serve(c, req)
		if rec.Code != http.StatusOK || rec.Body.String() != tc.want {
			t.Errorf("live%s: %d\n%s\nwant\n%s", tc.query, rec.Code, rec.Body.String(), tc.want)
		}
	}
	req := httptest.NewRequest("GET", "/api/sessions/s-alice/live?from=yesterday", nil)
	req.AddCookie(cookie)
	if rec := serve(c, req); rec.Code != http.StatusBadRequest {
		t.Errorf("from=yesterday: %d", rec.Code)
	}
	if n := len(st.audited); n != 2 || st.audited[1].Fields["from"] != "start" {
		t.Errorf("audited %+v", st.audited)
	}
}

// A live view, and every page, ends with the sign-in when its user is
// revoked (bastion ca revoke --user) after signing in; a sign-in after
// the revocation is not affected.
func TestRevokedSignInEnds(t *testing.T) {
	c, st, _ := newTestConsole(t, false)
	st.events = []asciicast.Event{{Time: 0, Type: asciicast.Output, Data: "a"}}
	st.live = true
	cookie, _ := signIn(c, "alice")
	req := httptest.NewRequest("GET", "/api/sessions/s-alice/live", nil)
	req.AddCookie(cookie)
	done := make(chan *httptest.ResponseRecorder)
	go func() { done <- serve(c, req) }()
	select {
	case rec := <-done:
		t.Fatalf("the live view ended before the revocation: %d %s", rec.Code, rec.Body)
	case <-time.After(1500 * time.Millisecond):
	}
	st.mu.Lock()
	st.revoked = map[string]time.Time{"alice": time.Now()}
	st.mu.Unlock()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		t.Fatal("the live view is still open after alice was revoked")
	}
	page := httptest.NewRequest("GET", "/sessions", nil)
	page.AddCookie(cookie)
	if rec := serve(c, page); rec.Code != http.StatusSeeOther || !strings.HasPrefix(rec.Header().Get("Location"), "/login") {
		t.Errorf("a page after the revocation: %d %q", rec.Code, rec.Header().Get("Location"))
	}
	time.Sleep(10 * time.Millisecond)
	again, _ := signIn(c, "alice")
	page = httptest.NewRequest("GET", "/sessions", nil)
	page.AddCookie(again)
	if rec := serve(c, page); rec.Code != http.StatusOK {
		t.Errorf("a sign-in after the revocation: %d", rec.Code)
	}
}

var liveOptionCases = []struct {
	query string
	want  liveOptions
	ok    bool
}{
	{"", liveOptions{speed: 1}, true},
	{"from=now", liveOptions{speed: 1}, true},
	{"from=start&speed=4&idle=0.5", liveOptions{fromStart: true, speed: 4, idle: 500 * time.Millisecond}, true},
	{"from=start&idle=0", liveOptions{fromStart: true, speed: 1}, true},
	{"from=START", liveOptions{}, false},
	{"speed=0", liveOptions{}, false},
	{"speed=17", liveOptions{}, false},
	{"speed=NaN", liveOptions{}, false},
	{"speed=1e400", liveOptions{}, false},
	{"idle=-1", liveOptions{}, false},
	{"idle=3601", liveOptions{}, false},
	{"idle=2s", liveOptions{}, false},
	{"idle=Inf", liveOptions{}, false},
}

func TestParseLiveOptions(t *testing.T) {
	for _, tc := range liveOptionCases {
		q, _ := url.ParseQuery(tc.query)
		got, err := parseLiveOptions(q)
		if (err == nil) != tc.ok || tc.ok && got != tc.want {
			t.Errorf("parseLiveOptions(%q) = %+v, %v", tc.query, got, err)
		}
	}
}

func FuzzParseLiveOptions(f *testing.F) {
	for _, tc := range liveOptionCases {
		f.Add(tc.query)
	}
	f.Fuzz(func(t *testing.T, s string) {
		q, err := url.ParseQuery(s)
		if err != nil {
			return
		}
		o, err := parseLiveOptions(q)
		if err == nil && (o.speed < 0.1 || o.speed > 16 || o.idle < 0 || o.idle > time.Hour) {
			t.Fatalf("parseLiveOptions(%q) = %+v", s, o)
		}
	})
}

func TestTimeline(t *testing.T) {
	tl := &timeline{speed: 2, idle: time.Second}
	for _, tc := range []struct{ in, want time.Duration }{
		{0, 0}, {time.Second, 500 * time.Millisecond}, {4 * time.Second, time.Second},
		{3 * time.Second, time.Second}, // out of order: no step back
		{4500 * time.Millisecond, 1250 * time.Millisecond},
	} {
		if got := tl.at(tc.in); got != tc.want {
			t.Errorf("at(%v) = %v, want %v", tc.in, got, tc.want)
		}
	}
}

// TestReplayPage: the page view is the audited replay; it carries the
// first screen, drawn on the server and escaped, and a grant for one
// download of the recording by the same sign-in without a second record.
// The first screen is laid out by the browser, a terminal's cells are
// not: bidirectional controls in the recorded output do not reach the page
// (the emulator draws nothing for them), and the page draws the cells
// left to right in their order whatever their script (an RTL letter would
// otherwise reorder the text around it: "Trojan source").
func TestFirstScreenBidi(t *testing.T) {
	c, st, _ := newTestConsole(t, false)
	st.events = []asciicast.Event{
		{Time: 0, Type: asciicast.Resize, Data: "40x3"},
		{Time: 0, Type: asciicast.Output, Data: "$ echo \u202egnp.exe\u202c ok\u2066x\u2069\u200f\u061c| \u05d0 1 \u05d1"},
	}
	alice, _ := signIn(c, "alice")
	req := httptest.NewRequest("GET", "/sessions/s-alice", nil)
	req.AddCookie(alice)
	page := serve(c, req)
	body := page.Body.String()
	if page.Code != http.StatusOK || !strings.Contains(body, "$ echo gnp.exe okx| \u05d0 1 \u05d1\n") {
		t.Fatalf("the replay page: %d\n%s", page.Code, body)
	}
	for _, r := range []string{"\u202e", "\u202c", "\u2066", "\u2069", "\u200f", "\u061c"} {
		if strings.Contains(body, r) {
			t.Errorf("the page holds %U", []rune(r)[0])
		}
	}
	css, err := staticFS.ReadFile("static/console.css")
	if err != nil {
		t.Fatal(err)
	}
	if !regexp.MustCompile(`\.first-screen\{[^}]*direction:ltr;unicode-bidi:bidi-override[;}]`).Match(css) {
		t.Error("the first screen is laid out with bidi reordering")
	}
}

func TestReplayPage(t *testing.T) {
	c, st, _ := newTestConsole(t, false)
	st.events = []asciicast.Event{
		{Time: 0, Type: asciicast.Resize, Data: "40x5"},
		{Time: 0, Type: asciicast.Output, Data: "first <script>alert(1)</script>\r\n\x1b]52;c;cHduZWQ=\x07screen"},
		{Time: time.Second, Type: asciicast.Output, Data: "\x1b[2Jlater"},
	}
	alice, _ := signIn(c, "alice")
	other, _ := signIn(c, "alice") // the same person, another sign-in
	get := func(path string, ck *http.Cookie) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		req.AddCookie(ck)
		return serve(c, req)
	}
	page := get("/sessions/s-alice", alice)
	body := page.Body.String()
	if page.Code != http.StatusOK || !strings.Contains(body, "first &lt;script&gt;alert(1)&lt;/script&gt;\nscreen\n</pre>") || strings.Contains(body, "later") || strings.Contains(body, "<script>alert") {
		t.Fatalf("the replay page: %d\n%s", page.Code, body)
	}
	if len(st.audited) != 1 {
		t.Fatalf("the page view audited %d records", len(st.audited))
	}
	i := strings.Index(body, `data-cast="`)
	cast := strings.ReplaceAll(body[i+len(`data-cast="`):i+strings.Index(body[i:], `" `)], "&amp;", "&")
	if !strings.Contains(cast, "?grant=") {
		t.Fatalf("data-cast %q", cast)
	}
	if r := get(cast, other); r.Code != http.StatusOK || len(st.audited) != 2 {
		t.Errorf("another sign-in with the grant: %d, %d records", r.Code, len(st.audited))
	}
	if r := get(cast, alice); r.Code != http.StatusOK || len(st.audited) != 2 {
		t.Errorf("the page's download: %d, %d records", r.Code, len(st.audited))
	}
	if r := get(cast, alice); r.Code != http.StatusOK || len(st.audited) != 3 {
		t.Errorf("the grant used twice: %d, %d records", r.Code, len(st.audited))
	}
	st.auditErr = errors.New("disk full")
	if r := get("/sessions/s-alice", alice); r.Code != http.StatusServiceUnavailable || strings.Contains(r.Body.String(), "first") {
		t.Errorf("a replay page the audit cannot record: %d", r.Code)
	}
}

// The capture download: offered and served for tcp and PostgreSQL
// sessions only, audited first and refused when the audit cannot be
// written, an export that fails before its first byte answered with an
// error page and one that fails later aborted.
func TestPcapDownload(t *testing.T) {
	c, st, _ := newTestConsole(t, false)
	st.sessions["s-tcp"] = recorder.SessionInfo{ID: "s-tcp", User: "alice", Issuer: issuer, Target: "redis1", Kind: "tcp"}
	st.sessions["s-pg"] = recorder.SessionInfo{ID: "s-pg", User: "alice", Issuer: issuer, Target: "pg1", Kind: "postgres"}
	st.sessions["s-bob"] = recorder.SessionInfo{ID: "s-bob", User: "bob", Issuer: issuer, Target: "redis1", Kind: "tcp"}
	st.sessions["s-alice"] = recorder.SessionInfo{ID: "s-alice", User: "alice", Issuer: issuer, Target: "web1", Kind: "shell"}
	alice, _ := signIn(c, "alice")
	get := func(path string) *httptest.ResponseRecorder {
		req := httptest.NewRequest("GET", path, nil)
		req.AddCookie(alice)
		return serve(c, req)
	}
	for id, want := range map[string]bool{"s-tcp": true, "s-pg": true, "s-alice": false} {
		if page := get("/sessions/" + id); strings.Contains(page.Body.String(), `href="/sessions/`+id+`/pcap"`) != want {
			t.Errorf("%s's page offers a capture: %v, want %v", id, !want, want)
		}
	}
	st.audited = nil

	r := get("/sessions/s-tcp/pcap")
	if r.Code != http.StatusOK || r.Body.String() != "pcap" || r.Header().Get("Content-Type") != "application/vnd.tcpdump.pcap" ||
		r.Header().Get("Content-Disposition") != `attachment; filename="s-tcp.pcap"` || r.Header().Get("Cache-Control") != "no-store" {
		t.Fatalf("the download: %d %v %q", r.Code, r.Header(), r.Body.String())
	}
	if len(st.audited) != 1 || st.audited[0].Type != "session.export" || st.audited[0].SessionID != "s-tcp" ||
		st.audited[0].User != "alice" || st.audited[0].Fields["format"] != "pcap" || st.audited[0].Fields["via"] != "console" {
		t.Fatalf("audited %+v", st.audited)
	}
	for _, id := range []string{"s-bob", "s-alice", "s-none"} {
		if r := get("/sessions/" + id + "/pcap"); r.Code != http.StatusNotFound || r.Body.String() == "pcap" {
			t.Errorf("%s: %d %q", id, r.Code, r.Body.String())
		}
	}
	if len(st.audited) != 1 {
		t.Errorf("refusals audited: %+v", st.audited[1:])
	}
	// A capture the store cannot make: an error page, not an empty file.
	st.pcap = func(io.Writer) error {
		return fmt.Errorf("export: %w: recorded as a transcript only", recorder.ErrNoCapture)
	}
	if r := get("/sessions/s-pg/pcap"); r.Code != http.StatusConflict || r.Header().Get("Content-Disposition") != "" ||
		!strings.Contains(r.Body.String(), "recorded as a transcript only") {
		t.Errorf("a session without a capture: %d %v %q", r.Code, r.Header(), r.Body.String())
	}
	// Any other failure before the first byte: a page without the store's
	// error (paths, its state), which goes to the log.
	st.pcap = func(io.Writer) error { return errors.New("open /var/lib/bastion/chunks/000001: permission denied") }
	if r := get("/sessions/s-pg/pcap"); r.Code != http.StatusInternalServerError || strings.Contains(r.Body.String(), "/var/lib") {
		t.Errorf("an export that fails at once: %d %q", r.Code, r.Body.String())
	}
	// A damaged recording (found before the first byte): says so, names
	// verify, and gives no capture.
	st.pcap = func(io.Writer) error {
		return fmt.Errorf("recorder: export s-pg as pcap: refused, nothing written: %w", recorder.ErrBroken)
	}
	if r := get("/sessions/s-pg/pcap"); r.Code != http.StatusConflict || r.Header().Get("Content-Disposition") != "" ||
		!strings.Contains(r.Body.String(), "damaged") || !strings.Contains(r.Body.String(), "bastion verify s-pg") {
		t.Errorf("a damaged recording: %d %v %q", r.Code, r.Header(), r.Body.String())
	}
	// One that fails midway is aborted, never ended as if whole.
	st.pcap = func(w io.Writer) error {
		io.WriteString(w, "pcap-start")
		return errors.New("chunk 7: hash mismatch")
	}
	func() {
		defer func() {
			if v := recover(); v != http.ErrAbortHandler {
				t.Errorf("an export that fails midway: recovered %v", v)
			}
		}()
		get("/sessions/s-pg/pcap")
	}()
	st.pcap = nil
	st.auditErr = errors.New("disk full")
	if r := get("/sessions/s-tcp/pcap"); r.Code != http.StatusServiceUnavailable || r.Body.String() == "pcap" {
		t.Errorf("an export the audit cannot record: %d %q", r.Code, r.Body.String())
	}
}

// TestAuditDownloadEscapesC1: the audit log's JSON lines download is read
// in terminals too (cat, less); a C1 control in a command a user chose is
// written as a JSON escape, not as the bytes a terminal may obey as CSI/OSC.
func TestAuditDownloadEscapesC1(t *testing.T) {
	c, st, _ := newTestConsole(t, false)
	c.cfg.Caller = func(id ca.Identity, addr string) bastion.Caller {
		return bastion.Caller{Identity: id, RemoteAddr: addr, Auditor: true}
	}
	cmd := "echo \u009d52;c;eA==\u009c\u009b31m"
	st.auditLog = []recorder.AuditEvent{{ID: "a1", Type: "command.allow", User: "alice", Fields: map[string]string{"command": cmd}}}
	ck, _ := signIn(c, "audrey")
	req := httptest.NewRequest("GET", "/audit.jsonl", nil)
	req.AddCookie(ck)
	r := serve(c, req)
	if r.Code != http.StatusOK {
		t.Fatalf("%d %s", r.Code, r.Body)
	}
	body := r.Body.String()
	if strings.ContainsAny(body, "\u009b\u009c\u009d") || !strings.Contains(body, `\u009d52;c;`) {
		t.Errorf("the download writes C1 controls raw: %q", body)
	}
	var ev recorder.AuditEvent
	if err := json.Unmarshal([]byte(strings.TrimSpace(body)), &ev); err != nil || ev.Fields["command"] != cmd {
		t.Errorf("the line decodes to %+v (%v)", ev, err)
	}
}

// One sign-in holds at most maxGrantsPerSignIn grants: reloading a replay
// page in a loop (each view audited, each making a grant that a segmented
// replay keeps for hours) cannot grow the table without bound, and the
// grant that goes is the one that expires first; another sign-in's stay.
func TestGrantsPerSignInBounded(t *testing.T) {
	now := time.Now()
	c := &Console{now: func() time.Time { return now }, grants: map[string]replayGrant{}}
	a := &websession{expires: now.Add(time.Hour)}
	b := &websession{expires: now.Add(time.Hour)}
	other := c.viewGrant(b, "s1")
	first := c.grant(a, "s1") // a plain grant: expires first
	var last string
	for range 3 * maxGrantsPerSignIn {
		last = c.viewGrant(a, "s1")
	}
	held := 0
	for _, g := range c.grants {
		if g.s == a {
			held++
		}
	}
	if held != maxGrantsPerSignIn {
		t.Fatalf("a sign-in holds %d grants, want %d", held, maxGrantsPerSignIn)
	}
	if _, ok := c.grants[first]; ok {
		t.Fatal("the grant that expires first was kept")
	}
	if !c.checkView(last, a, "s1") || !c.checkView(other, b, "s1") {
		t.Fatal("the newest grant, or another sign-in's, was dropped")
	}
}

// The sessions list's Newer and Older links lead to the neighbouring
// pages with the filters kept: a query string in an href is not escaped
// into one opaque parameter (html/template's escaping of a string after
// "?"), which sent every Older click back to the first page.
func TestSessionsPager(t *testing.T) {
	c, st, _ := newTestConsole(t, false)
	start := time.Now()
	for i := range pageSize + 5 {
		st.list = append(st.list, recorder.SessionInfo{ID: fmt.Sprintf("s-%03d", i), User: "alice", Issuer: issuer, Target: "web 1",
			Start: start.Add(-time.Duration(i) * time.Minute)})
	}
	alice, _ := signIn(c, "alice")
	get := func(path string) string {
		req := httptest.NewRequest("GET", path, nil)
		req.AddCookie(alice)
		rec := serve(c, req)
		if rec.Code != http.StatusOK {
			t.Fatalf("%s: %d", path, rec.Code)
		}
		return rec.Body.String()
	}
	first := get("/sessions?target=web+1")
	m := regexp.MustCompile(`<a href="([^"]*)">Older</a>`).FindStringSubmatch(first)
	if m == nil {
		t.Fatal("no Older link on the first page")
	}
	next := html.UnescapeString(m[1])
	u, err := url.Parse(next)
	if err != nil || u.Path != "/sessions" || u.Query().Get("page") != "1" || u.Query().Get("target") != "web 1" {
		t.Fatalf("Older link %q: not page 1 of the same filter", next)
	}
	second := get(next)
	if !strings.Contains(second, `data-session="s-054"`) || strings.Contains(second, `data-session="s-000"`) {
		t.Errorf("the Older link's page is not the second page")
	}
	if !strings.Contains(second, `>Newer</a>`) {
		t.Errorf("no Newer link on the second page")
	}
}
