package devidp

import (
	"context"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

const banner = "Development identity provider — for local use only"

func get(t *testing.T, c *http.Client, u string) (int, string) {
	t.Helper()
	res, err := c.Get(u)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b)
}

// loginPageURL starts an authorization request and returns the login page URL it
// redirects to, as a browser sees it.
func loginPageURL(t *testing.T, e *env) string {
	t.Helper()
	conf := e.oauth2(publicID, "", e.callback)
	c := &http.Client{Transport: e.client.Transport, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	res, err := c.Get(conf.AuthCodeURL("s", oauth2.S256ChallengeOption(oauth2.GenerateVerifier())))
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc := res.Header.Get("Location")
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(loc, e.idp.Issuer()+"/login?") {
		t.Fatalf("authorize: got %d %q, want 302 to the login page", res.StatusCode, loc)
	}
	return loc
}

func TestPages(t *testing.T) {
	e := newEnv(t, Config{})
	iss := e.idp.Issuer()
	da, err := e.oauth2(publicID, "", "").DeviceAuth(e.ctx)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name   string
		url    string
		status int
		want   []string
	}{
		{"index", iss + "/", 200, []string{`href="/device"`}},
		{"login", loginPageURL(t, e), 200, []string{`name="authRequestID"`, `value="alice"`, "Alice Developer", "alice@example.com", "groups: sre, dba"}},
		{"login unknown request", iss + "/login?authRequestID=nope", 400, []string{`data-error="unknown_login_request"`}},
		{"device", iss + "/device", 200, []string{`name="user_code"`, `method="get"`}},
		{"device with code", da.VerificationURIComplete, 200, []string{`value="` + da.UserCode + `"`, `value="bob"`, `value="deny"`, publicID}},
		{"device unknown code", iss + "/device?user_code=XXXX-XXXX", 400, []string{`data-error="unknown_user_code"`}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			status, body := get(t, e.client, tt.url)
			if status != tt.status {
				t.Errorf("status: got %d, want %d", status, tt.status)
			}
			for _, w := range append(tt.want, banner) {
				if !strings.Contains(body, w) {
					t.Errorf("page lacks %q:\n%s", w, body)
				}
			}
			// Names are escaped, never markup.
			if strings.Contains(body, "<script>") || strings.Contains(body, `carol <"x">`) {
				t.Errorf("page carries an unescaped name:\n%s", body)
			}
		})
	}
}

// TestLoginByHand walks the login the way a person does, with a plain HTTP client
// that follows redirects, to make sure the pages work without the stand-in.
func TestLoginByHand(t *testing.T) {
	e := newEnv(t, Config{})
	loc := loginPageURL(t, e)
	id := must(url.Parse(loc)).Query().Get("authRequestID")
	c := &http.Client{Transport: e.client.Transport, CheckRedirect: func(r *http.Request, _ []*http.Request) error {
		if r.URL.Host != must(url.Parse(e.idp.Issuer())).Host {
			return http.ErrUseLastResponse // stop at the client
		}
		return nil
	}}
	res, err := c.PostForm(e.idp.Issuer()+"/login", url.Values{"authRequestID": {id}, "subject": {"alice"}})
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	loc = res.Header.Get("Location")
	if res.StatusCode != http.StatusFound || !strings.HasPrefix(loc, e.callback+"?code=") {
		t.Fatalf("got %d %q, want 302 to %s?code=...", res.StatusCode, loc, e.callback)
	}
	// The login request is complete: posting again is refused.
	res, err = c.PostForm(e.idp.Issuer()+"/login", url.Values{"authRequestID": {id}, "subject": {"bob"}})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(res.Body)
	res.Body.Close()
	if res.StatusCode != http.StatusBadRequest || !strings.Contains(string(b), codeUnknownLogin) {
		t.Fatalf("second post: got %d, want 400 with %q", res.StatusCode, codeUnknownLogin)
	}
}

func must[T any](v T, err error) T {
	if err != nil {
		panic(err)
	}
	return v
}

// TestLoginExpiry checks a login request left on the page expires on Config.Now.
func TestLoginExpiry(t *testing.T) {
	var now atomic.Int64
	now.Store(time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC).UnixNano())
	e := newEnv(t, Config{Now: func() time.Time { return time.Unix(0, now.Load()) }})
	loc := loginPageURL(t, e)
	now.Add(int64(loginRequestTTL + time.Second))
	status, body := get(t, e.client, loc)
	if status != http.StatusBadRequest || !strings.Contains(body, codeUnknownLogin) {
		t.Fatalf("expired login page: got %d, want 400 with %q", status, codeUnknownLogin)
	}
}

func TestConcurrentLogins(t *testing.T) {
	e := newEnv(t, Config{})
	conf := e.oauth2(publicID, "", e.callback)
	var wg sync.WaitGroup
	errs := make(chan error, 16)
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			v := oauth2.GenerateVerifier()
			subject := []string{"alice", "bob"}[i%2]
			redirect, err := e.idp.CompleteBrowserLogin(e.ctx, conf.AuthCodeURL("s", oauth2.S256ChallengeOption(v)), subject)
			if err != nil {
				errs <- err
				return
			}
			if _, err := conf.Exchange(e.ctx, redirect.Query().Get("code"), oauth2.VerifierOption(v)); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// formCase is a malformed or hostile submission to one of the pages.
type formCase struct {
	name, path, body string
	status           int
	code             string // data-error
}

var malformedForms = []formCase{
	{"login empty", "/login", "", 400, codeUnknownLogin},
	{"login no id", "/login", "subject=alice", 400, codeUnknownLogin},
	{"login unknown id", "/login", "authRequestID=nope&subject=alice", 400, codeUnknownLogin},
	{"login no subject", "/login", "authRequestID=nope", 400, codeUnknownLogin},
	{"login repeated field", "/login", "authRequestID=a&authRequestID=b&subject=alice", 400, codeBadRequest},
	{"login bad escape", "/login", "authRequestID=%zz", 400, codeBadRequest},
	{"login huge body", "/login", "subject=" + strings.Repeat("a", maxFormBytes+1), 400, codeBadRequest},
	{"login NUL", "/login", "authRequestID=%00&subject=%00", 400, codeUnknownLogin},
	{"device empty", "/device", "", 400, codeBadRequest},
	{"device no subject", "/device", "user_code=BCDF-GHJK", 400, codeBadRequest},
	{"device unknown code", "/device", "user_code=BCDF-GHJK&subject=alice", 400, codeUnknownUserCode},
	{"device unknown user", "/device", "user_code=BCDF-GHJK&subject=mallory", 400, codeUnknownUser},
	{"device deny unknown code", "/device", "user_code=BCDF-GHJK&action=deny", 400, codeUnknownUserCode},
	{"device bad action", "/device", "user_code=BCDF-GHJK&subject=alice&action=steal", 400, codeBadRequest},
	{"device repeated code", "/device", "user_code=A&user_code=B&subject=alice", 400, codeBadRequest},
	{"device huge code", "/device", "subject=alice&user_code=" + strings.Repeat("B", 10000), 400, codeUnknownUserCode},
	{"device bad escape", "/device", "user_code=%", 400, codeBadRequest},
}

func TestMalformedForms(t *testing.T) {
	e := newEnv(t, Config{})
	for _, tt := range malformedForms {
		t.Run(tt.name, func(t *testing.T) {
			res, err := e.client.Post(e.idp.Issuer()+tt.path, "application/x-www-form-urlencoded", strings.NewReader(tt.body))
			if err != nil {
				t.Fatal(err)
			}
			b, _ := io.ReadAll(res.Body)
			res.Body.Close()
			if res.StatusCode != tt.status {
				t.Errorf("status: got %d, want %d", res.StatusCode, tt.status)
			}
			if pg := parsePage(b); pg.errCode != tt.code {
				t.Errorf("error code: got %q, want %q", pg.errCode, tt.code)
			}
		})
	}
}

// fuzzProvider is a provider served without a listener, for the fuzz targets.
func fuzzProvider(f *testing.F) *Provider {
	f.Helper()
	p, err := New(Config{Issuer: "http://127.0.0.1:9", Users: testUsers(), Clients: testClients()})
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { p.Close() })
	return p
}

// FuzzPages posts arbitrary form bodies and queries to the pages: they never fail
// with a server error, never approve anything and never echo unescaped markup.
func FuzzPages(f *testing.F) {
	for _, tt := range malformedForms {
		f.Add(tt.path == "/login", tt.body, "")
	}
	f.Add(false, "user_code=BCDF-GHJK&subject=alice", "user_code=BCDF-GHJK")
	f.Add(true, "authRequestID=x&subject=<script>", "authRequestID=<script>")
	p := fuzzProvider(f)
	h := p.Handler()
	f.Fuzz(func(t *testing.T, login bool, body, query string) {
		path := "/device"
		if login {
			path = "/login"
		}
		for _, r := range []*http.Request{
			httptest.NewRequest(http.MethodPost, path, strings.NewReader(body)),
			httptest.NewRequest(http.MethodGet, path+"?"+url.PathEscape(query), nil),
		} {
			if r.Method == http.MethodPost {
				r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code >= 500 {
				t.Fatalf("%s %s: status %d", r.Method, path, w.Code)
			}
			if w.Code == http.StatusSeeOther || parsePage(w.Body.Bytes()).result != "" {
				t.Fatalf("%s %s: a fuzzed request succeeded: %d", r.Method, path, w.Code)
			}
			if strings.Contains(w.Body.String(), "<script") {
				t.Fatalf("%s %s: unescaped markup in the page", r.Method, path)
			}
		}
	})
}

var parsePageCases = []struct {
	name, html string
	want       page
}{
	{"empty", "", page{}},
	{"not html", "\x00\xff garbage", page{}},
	{"error", `<p class="error" data-error="unknown_user">No &lt;such&gt; user</p>`, page{errCode: "unknown_user", errText: "No <such> user"}},
	{"result", `<p class="result" data-result="approved">ok</p>`, page{result: "approved"}},
	{"form", `<form method="post" action="/login"><input type="hidden" name="authRequestID" value="a&amp;b">` +
		`<button type="submit" name="subject" value="carol &lt;&#34;x&#34;&gt;&amp;"></button></form>`,
		page{action: "/login", fields: map[string]string{"authRequestID": "a&b"}, subjects: []string{`carol <"x">&`}}},
	{"unterminated form", `<form method="post" action="/login"><input type="hidden" name="a" value="b">`, page{}},
	{"duplicate hidden keeps first", `<form method="post" action="/x"><input type="hidden" name="a" value="1"><input type="hidden" name="a" value="2"></form>`,
		page{action: "/x", fields: map[string]string{"a": "1"}}},
	{"get form ignored", `<form method="get" action="/device"><input type="hidden" name="a" value="1"></form>`, page{}},
}

func TestParsePage(t *testing.T) {
	for _, tt := range parsePageCases {
		t.Run(tt.name, func(t *testing.T) {
			got := parsePage([]byte(tt.html))
			if got.fields == nil || len(got.fields) == 0 {
				got.fields = nil
			}
			if got.action != tt.want.action || got.errCode != tt.want.errCode || got.errText != tt.want.errText ||
				got.result != tt.want.result || !equalMaps(got.fields, tt.want.fields) || strings.Join(got.subjects, "|") != strings.Join(tt.want.subjects, "|") {
				t.Errorf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func equalMaps(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func FuzzParsePage(f *testing.F) {
	for _, tt := range parsePageCases {
		f.Add([]byte(tt.html))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		pg := parsePage(b)
		if len(pg.action) > len(b) || len(pg.errText) > len(b) {
			t.Fatalf("parsed more than the input: %+v", pg)
		}
	})
}

var userCodeCases = []struct{ in, want string }{
	{"BCDF-GHJK", "BCDFGHJK"},
	{"bcdf ghjk", "BCDFGHJK"},
	{"  bcdfghjk\t", "BCDFGHJK"},
	{"", ""},
	{"é-ß", "éß"},
	{"\x00\xff", ""},
	{"\x00B", "\x00B"},
	{strings.Repeat("B", 65), ""},
}

func TestNormalizeUserCode(t *testing.T) {
	for _, tt := range userCodeCases {
		if got := normalizeUserCode(tt.in); got != tt.want {
			t.Errorf("normalizeUserCode(%q): got %q, want %q", tt.in, got, tt.want)
		}
	}
}

func FuzzNormalizeUserCode(f *testing.F) {
	for _, tt := range userCodeCases {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		n := normalizeUserCode(s)
		if normalizeUserCode(n) != n {
			t.Fatalf("not idempotent: %q -> %q -> %q", s, n, normalizeUserCode(n))
		}
		if strings.ContainsAny(n, "- abcdefghijklmnopqrstuvwxyz") {
			t.Fatalf("normalized %q still holds a dash, space or lower-case letter: %q", s, n)
		}
	})
}

// TestBrowserStandInErrors checks the stand-ins report what the pages say.
func TestBrowserStandInErrors(t *testing.T) {
	e := newEnv(t, Config{})
	ctx, cancel := context.WithCancel(e.ctx)
	cancel()
	if err := e.idp.ApproveDevice(ctx, "BCDF-GHJK", "alice"); !errors.Is(err, context.Canceled) {
		t.Errorf("cancelled context: got %v, want %v", err, context.Canceled)
	}
	if _, err := e.idp.CompleteBrowserLogin(e.ctx, "::bad", "alice"); err == nil {
		t.Error("bad authorize URL: got nil, want an error")
	}
	// A login page URL that is no longer pending.
	_, err := e.idp.CompleteBrowserLogin(e.ctx, e.idp.Issuer()+"/login?authRequestID=gone", "alice")
	if !errors.Is(err, ErrUnknownLoginRequest) {
		t.Errorf("stale login page: got %v, want %v", err, ErrUnknownLoginRequest)
	}
}
