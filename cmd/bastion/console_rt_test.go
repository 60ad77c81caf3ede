package main

import (
	"net/http"
	"strings"
	"testing"
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
