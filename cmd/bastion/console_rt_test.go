package main

import (
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// TestConsoleCookiesBehindTLSProxy: a bastion behind a reverse proxy that
// terminates TLS (console.url is https, the bastion's own listener is
// plain HTTP) must still give its cookies the Secure attribute and the
// __Host- prefix, and send HSTS: the browser reaches the console over
// https, and a cookie without Secure is sent to http://the same host on
// any port, where a network attacker reads it.
func TestConsoleCookiesBehindTLSProxy(t *testing.T) {
	w := newWorldWith(t, "console: {url: \"https://bastion.example.com\"}\n")
	c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	resp, err := c.Get(w.url() + "/login?next=/approvals")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("/login: %d", resp.StatusCode)
	}
	cks := resp.Cookies()
	if len(cks) != 1 {
		t.Fatalf("/login set %d cookies: %v", len(cks), resp.Header["Set-Cookie"])
	}
	if ck := cks[0]; !ck.Secure || !strings.HasPrefix(ck.Name, "__Host-") || !ck.HttpOnly {
		t.Errorf("behind an https console.url the login cookie is %q", resp.Header.Get("Set-Cookie"))
	}
	if resp.Header.Get("Strict-Transport-Security") == "" {
		t.Errorf("behind an https console.url there is no HSTS header")
	}
	if loc := resp.Header.Get("Location"); !strings.Contains(loc, "redirect_uri=https%3A%2F%2Fbastion.example.com%2Fauth%2Fcallback") {
		t.Errorf("redirect to the IdP: %s", loc)
	}
}

// TestConsoleCrossSiteReplayNotAudited: a page of another site (a link,
// window.open, an <img> on a sibling subdomain, which gets SameSite=Lax
// cookies) makes the signed-in auditor's browser GET a replay, a
// recording or a capture: each is a session.replay or session.export
// audit record in the auditor's name that they never chose. The browser
// says where a request comes from (Sec-Fetch-Site): from another site,
// the page asks first (a same-origin link) and the data endpoints refuse,
// without an audit record.
func TestConsoleCrossSiteReplayNotAudited(t *testing.T) {
	w := newWorld(t)
	sshCfg := w.loginAlice(t)
	if out, err := exec.Command("ssh", "-F", sshCfg, "root@web1", "echo cross-site-$((6*7))").CombinedOutput(); err != nil {
		t.Fatalf("ssh: %v\n%s", err, out)
	}
	var id string
	testenv.WaitFor(t, 20*time.Second, "the session ended", func() bool {
		list, _ := w.app.Store.Sessions(recorder.SessionFilter{})
		for _, s := range list {
			if s.Status == recorder.StatusEnded && strings.Contains(s.Command, "cross-site") {
				id = s.ID
			}
		}
		return id != ""
	})
	p := w.consolePage(t, "u-alice") // an auditor (group sec)
	replays := func() int {
		n := 0
		w.app.Store.AuditEvents(time.Time{}, func(ev recorder.AuditEvent) error {
			if (ev.Type == "session.replay" || ev.Type == "session.export") && ev.SessionID == id {
				n++
			}
			return nil
		})
		return n
	}
	get := func(path, site, mode string) (*http.Response, string) {
		req, _ := http.NewRequest("GET", p.base+path, nil)
		req.Header.Set("Sec-Fetch-Site", site)
		req.Header.Set("Sec-Fetch-Mode", mode)
		resp, err := p.c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp, string(b)
	}
	before := replays()
	for _, c := range []struct{ path, site, mode string }{
		{"/sessions/" + id, "cross-site", "navigate"},
		{"/sessions/" + id, "same-site", "navigate"},
		{"/api/sessions/" + id + "/cast", "same-site", "no-cors"},
		{"/api/sessions/" + id + "/cast", "cross-site", "navigate"},
		{"/api/sessions/" + id + "/live", "cross-site", "no-cors"},
	} {
		resp, body := get(c.path, c.site, c.mode)
		if n := replays(); n != before {
			t.Errorf("GET %s from a %s page (%d) wrote %d audit records in alice's name", c.path, c.site, resp.StatusCode, n-before)
			before = n
		}
		if strings.Contains(body, "cross-site-42") {
			t.Errorf("GET %s from a %s page sent the recording", c.path, c.site)
		}
		if c.path == "/sessions/"+id && (resp.StatusCode != http.StatusOK || !strings.Contains(body, `href="/sessions/`+id+`"`)) {
			t.Errorf("GET %s from a %s page: %d, no link to open it:\n%s", c.path, c.site, resp.StatusCode, body)
		}
	}
	// From the console itself (its own link, a bookmark, the address bar):
	// the replay, audited once.
	resp, body := get("/sessions/"+id, "same-origin", "navigate")
	if resp.StatusCode != http.StatusOK || !strings.Contains(body, "data-cast=") || replays() != before+1 {
		t.Fatalf("same-origin replay page: %d, %d audit records:\n%s", resp.StatusCode, replays()-before, body)
	}
	if resp, body := get("/sessions/"+id, "none", "navigate"); resp.StatusCode != http.StatusOK || !strings.Contains(body, "data-cast=") {
		t.Fatalf("typed replay page: %d\n%s", resp.StatusCode, body)
	}
}

// TestConsoleDamagedRecordingNotPlayedAsWhole: a recording whose chunk
// log is damaged after its first part (a disk error, or someone cutting
// out what was done) must not reach the player as a whole recording that
// just ends early: the download is aborted, as the capture's is, so the
// page says it cannot be played.
func TestConsoleDamagedRecordingNotPlayedAsWhole(t *testing.T) {
	w := newWorld(t)
	cfgText, _ := os.ReadFile(w.cfgPath)
	dataDir := strings.TrimSpace(regexp.MustCompile(`(?m)^data_dir: (.*)$`).FindStringSubmatch(string(cfgText))[1])
	sshCfg := w.loginAlice(t)
	if out, err := exec.Command("ssh", "-F", sshCfg, "root@web1", "head -c 3000000 /dev/urandom | base64 -w 200; echo the-end-$((6*7))").CombinedOutput(); err != nil {
		t.Fatalf("ssh: %v\n%s", err, out[max(0, len(out)-200):])
	}
	var info recorder.SessionInfo
	testenv.WaitFor(t, 20*time.Second, "the session ended", func() bool {
		list, _ := w.app.Store.Sessions(recorder.SessionFilter{})
		for _, s := range list {
			if s.Status == recorder.StatusEnded && strings.Contains(s.Command, "the-end") {
				info = s
			}
		}
		return info.ID != ""
	})
	segs, _ := filepath.Glob(filepath.Join(dataDir, "*.chunks", "*.seg"))
	if len(segs) == 0 {
		t.Fatalf("no chunk log segments under %s", dataDir)
	}
	// Damage the biggest segment in its middle.
	var seg string
	var size int64
	for _, s := range segs {
		if st, err := os.Stat(s); err == nil && st.Size() > size {
			seg, size = s, st.Size()
		}
	}
	f, err := os.OpenFile(seg, os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	junk := make([]byte, 4096)
	for i := range junk {
		junk[i] = 0xA5
	}
	f.WriteAt(junk, size/2)
	f.Close()

	p := w.consolePage(t, "u-alice")
	resp, err := p.c.Get(p.base + "/api/sessions/" + info.ID + "/cast")
	if err != nil {
		t.Fatal(err)
	}
	body, rerr := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode == http.StatusOK && rerr == nil {
		t.Fatalf("a damaged recording (%d of %d stored bytes sent) ended as if whole, status %d; ends %q",
			len(body), info.Stored, resp.StatusCode, body[max(0, len(body)-120):])
	}
	if strings.Contains(string(body), "the-end-42") {
		t.Fatalf("the recording's damage was not read")
	}
}

// TestConsoleSignInsPerIdentityBounded: the console's sign-ins share one
// table (100000 at most; then "Too many console sessions" for everyone
// until they expire). One person scripting sign-ins at the IdP must not
// fill it: an identity holds a bounded number of sign-ins, its oldest
// ending when it makes one more.
func TestConsoleSignInsPerIdentityBounded(t *testing.T) {
	w := newWorld(t)
	signIn := func() *http.Client {
		jar, _ := cookiejar.New(nil)
		c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(w.url() + "/login?next=/sessions")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		callback, err := w.idp.CompleteBrowserLogin(context.Background(), resp.Header.Get("Location"), "u-carol")
		if err != nil {
			t.Fatal(err)
		}
		if resp, err = c.Get(callback.String()); err != nil || resp.StatusCode != http.StatusSeeOther {
			t.Fatalf("callback: %v %v", resp, err)
		}
		resp.Body.Close()
		return c
	}
	signedIn := func(c *http.Client) bool {
		resp, err := c.Get(w.url() + "/sessions")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	}
	first := signIn()
	var last *http.Client
	for range 40 {
		last = signIn()
	}
	if !signedIn(last) {
		t.Fatal("the newest sign-in does not work")
	}
	if signedIn(first) {
		t.Errorf("one identity holds 41 console sign-ins (and so could hold all 100000)")
	}
}
