package login

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/ca"
)

func TestName(t *testing.T) {
	tests := []struct{ url, want, wantErr string }{
		{"https://bastion.example.com", "bastion.example.com", ""},
		{"https://Bastion.Example.COM/", "bastion.example.com", ""},
		{"http://127.0.0.1:8443", "127.0.0.1_8443", ""},
		{"https://[::1]:8443", "__1_8443", ""},
		{"https://b.example.com/login/", "b.example.com__login", ""},
		{"https://b.example.com/../../etc", "b.example.com__.._.._etc", ""},
		{"ftp://b.example.com", "", "must be http(s)"},
		{"https://user@b.example.com", "", "must be http(s)"},
		{"https://b.example.com?x=1", "", "must be http(s)"},
		{"b.example.com", "", "must be http(s)"},
		{"", "", "must be http(s)"},
	}
	for _, tc := range tests {
		got, err := Name(tc.url)
		switch {
		case tc.wantErr != "" && (err == nil || !strings.Contains(err.Error(), tc.wantErr)):
			t.Errorf("Name(%q): got %q, %v; want error %q", tc.url, got, err, tc.wantErr)
		case tc.wantErr == "" && (err != nil || got != tc.want):
			t.Errorf("Name(%q): got %q, %v; want %q", tc.url, got, err, tc.want)
		}
	}
}

func TestMatches(t *testing.T) {
	tests := []struct {
		url, sel string
		want     bool
	}{
		{"https://b.example.com", "https://b.example.com/", true},
		{"https://b.example.com", "https://B.example.com", true},
		{"https://b.example.com", "b.example.com", true},
		{"https://b.example.com", "http://b.example.com", false},
		{"http://127.0.0.1:8443", "127.0.0.1:8443", true},
		{"http://127.0.0.1:8443", "127.0.0.1_8443", true},
		{"http://127.0.0.1:8443", "127.0.0.1:9443", false},
		{"http://127.0.0.1:8443", "http://127.0.0.1:9443", false},
		{"https://staging.example.com", "production.example.com", false},
	}
	for _, tc := range tests {
		if got := Matches(tc.url, tc.sel); got != tc.want {
			t.Errorf("Matches(%q, %q): got %v, want %v", tc.url, tc.sel, got, tc.want)
		}
	}
}

// writeState fakes a login to url under base.
func writeState(t *testing.T, base, url string, legacy bool) *State {
	t.Helper()
	dir := base
	if !legacy {
		var err error
		if dir, err = Dir(base, url); err != nil {
			t.Fatal(err)
		}
	}
	st := &State{BastionURL: url, User: "alice", CertPath: filepath.Join(dir, clientCertFile), ValidBefore: time.Now().Add(time.Hour)}
	b, _ := json.Marshal(st)
	os.MkdirAll(dir, 0o700)
	if err := os.WriteFile(filepath.Join(dir, clientStateFile), b, 0o600); err != nil {
		t.Fatal(err)
	}
	return st
}

func TestResolve(t *testing.T) {
	base := t.TempDir()
	if _, err := Resolve(base, ""); err == nil || !strings.Contains(err.Error(), "not logged in") {
		t.Fatalf("no logins: got %v", err)
	}
	writeState(t, base, "https://staging.example.com", false)
	writeState(t, base, "https://production.example.com", false)
	writeState(t, base, "https://old.example.com", true)
	// Without a current one, the login from before per-bastion logins.
	if st, err := Resolve(base, ""); err != nil || st.BastionURL != "https://old.example.com" {
		t.Fatalf("legacy default: got %v, %v", st, err)
	}
	if err := SetCurrent(base, "https://staging.example.com/"); err != nil {
		t.Fatal(err)
	}
	for sel, want := range map[string]string{
		"":                               "https://staging.example.com",
		"production.example.com":         "https://production.example.com",
		"https://production.example.com": "https://production.example.com",
		"old.example.com":                "https://old.example.com",
	} {
		st, err := Resolve(base, sel)
		if err != nil || st.BastionURL != want {
			t.Errorf("Resolve(%q): got %v, %v; want %s", sel, st, err, want)
		}
	}
	if _, err := Resolve(base, "https://qa.example.com"); err == nil || !strings.Contains(err.Error(), "not logged in to https://qa.example.com: run `bastion login --bastion https://qa.example.com`") {
		t.Errorf("unknown bastion: got %v", err)
	}
	list, err := States(base)
	if err != nil || len(list) != 3 {
		t.Errorf("States: got %d, %v; want 3", len(list), err)
	}
}

// A login pointed at the identity provider says so; a --ttl above the
// bastion's maximum is refused before the identity provider is asked.
func TestLoginExplainsWrongURLAndTTL(t *testing.T) {
	var idpHits int
	idp := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		idpHits++
		if r.URL.Path == "/.well-known/openid-configuration" {
			json.NewEncoder(w).Encode(map[string]string{"issuer": "http://" + r.Host})
			return
		}
		http.NotFound(w, r)
	}))
	defer idp.Close()
	other := httptest.NewServer(http.NotFoundHandler())
	defer other.Close()
	bastion := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == ca.PathInfo {
			json.NewEncoder(w).Encode(ca.Info{Issuer: idp.URL, ClientID: "bastion", MaxUserTTL: (8 * time.Hour).String()})
			return
		}
		t.Errorf("the bastion was asked for %s", r.URL.Path)
		http.NotFound(w, r)
	}))
	defer bastion.Close()

	tests := []struct {
		name string
		cfg  LoginConfig
		want string
	}{
		{"identity provider's URL", LoginConfig{BastionURL: idp.URL}, "looks like an identity provider (it serves an OpenID configuration for issuer " + idp.URL + "), not a bastion"},
		{"some other server", LoginConfig{BastionURL: other.URL}, "does not answer as a bastion (HTTP 404 from " + other.URL + "/v1/info)"},
		{"ttl above the maximum", LoginConfig{BastionURL: bastion.URL, TTL: 10 * time.Hour}, "--ttl 10h0m0s is longer than this bastion allows (max_user_ttl 8h0m0s)"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.Dir, tc.cfg.Method, tc.cfg.Out = t.TempDir(), MethodBrowser, &strings.Builder{}
			tc.cfg.OpenBrowser = func(string) error { t.Error("the browser login started"); return nil }
			before := idpHits
			_, err := Login(context.Background(), tc.cfg)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %v, want %q", err, tc.want)
			}
			if tc.cfg.TTL > 0 && idpHits != before {
				t.Error("the identity provider was asked before the --ttl was checked")
			}
		})
	}
}

func TestSSHConfigLoginCheck(t *testing.T) {
	st := &State{BastionURL: "https://b.example.com", SSHAddress: "b.example.com:2222", User: "alice", CertPath: "/h/c", KnownHostsPath: "/h/k", KeyPath: "/h/key"}
	s, err := SSHConfig(st, []string{"web1"}, "test -x '/usr/bin/bastion' && '/usr/bin/bastion' login --check --bastion 'https://b.example.com/%x'")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(s, `Match host b.example.com exec "test -x '/usr/bin/bastion' && '/usr/bin/bastion' login --check --bastion 'https://b.example.com/%%x'"`) {
		t.Errorf("no login check (with %% escaped):\n%s", s)
	}
	if s, _ := SSHConfig(st, nil, `evil" ProxyCommand x`); strings.Contains(s, "Match") {
		t.Errorf("a check command with a quote was written:\n%s", s)
	}
}

func FuzzName(f *testing.F) {
	for _, s := range []string{"https://b.example.com", "http://127.0.0.1:8443", "https://[::1]:1/x/../y", "h", "https://a%2fb", "https://\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		name, err := Name(s)
		if err != nil {
			return
		}
		if name == "" || strings.ContainsAny(name, "/\\\x00") || name == "." || name == ".." || strings.HasPrefix(name, ".") {
			t.Fatalf("Name(%q) = %q: not a safe directory name", s, name)
		}
		if !Matches(mustNormalize(t, s), name) {
			t.Fatalf("Matches(%q, its own name %q) is false", s, name)
		}
	})
}

func mustNormalize(t *testing.T, s string) string {
	n, err := NormalizeURL(s)
	if err != nil {
		t.Fatal(err)
	}
	return n
}
