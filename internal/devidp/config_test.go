package devidp

import (
	"errors"
	"strings"
	"testing"
)

func TestNewConfig(t *testing.T) {
	const iss = "http://127.0.0.1:5556"
	okClient := Client{ID: "c", RedirectURIs: []string{"http://127.0.0.1/cb"}}
	tests := []struct {
		name string
		cfg  Config
		want string // substring of the error; "" = valid
	}{
		{"minimal", Config{Issuer: iss}, ""},
		{"https issuer", Config{Issuer: "https://idp.example.test"}, ""},
		{"full", Config{Issuer: iss, Users: testUsers(), Clients: testClients()}, ""},
		{"custom scheme public redirect", Config{Issuer: iss, Clients: []Client{{ID: "c", RedirectURIs: []string{"com.example.app:/cb"}}}}, ""},
		{"https public redirect", Config{Issuer: iss, Clients: []Client{{ID: "c", RedirectURIs: []string{"https://app.example.test/cb"}}}}, ""},
		{"device only", Config{Issuer: iss, Clients: []Client{{ID: "c", Device: true}}}, ""},

		{"no issuer", Config{}, "issuer is required"},
		{"issuer not a URL", Config{Issuer: "http://[::1"}, "issuer"},
		{"issuer ftp", Config{Issuer: "ftp://127.0.0.1"}, "scheme must be http or https"},
		{"issuer relative", Config{Issuer: "/idp"}, "scheme must be"},
		{"issuer no host", Config{Issuer: "http://"}, "want scheme://host"},
		{"issuer userinfo", Config{Issuer: "http://u:hunter2@127.0.0.1"}, "must not carry user information"},
		{"issuer userinfo unparsable", Config{Issuer: "http://u:hunter2@[::1"}, "missing ']'"},
		{"issuer path", Config{Issuer: iss + "/idp"}, "no path"},
		{"issuer trailing slash", Config{Issuer: iss + "/"}, "no path"},
		{"issuer query", Config{Issuer: iss + "?a=b"}, "no path, query"},
		{"issuer empty query", Config{Issuer: iss + "?"}, "no path, query"},
		{"issuer fragment", Config{Issuer: iss + "#x"}, "fragment"},
		{"issuer empty fragment", Config{Issuer: iss + "#"}, "fragment"},
		{"negative lifetime", Config{Issuer: iss, IDTokenLifetime: -1}, "negative IDTokenLifetime"},

		{"user without subject", Config{Issuer: iss, Users: []User{{Name: "x"}}}, "subject: required"},
		{"duplicate subject", Config{Issuer: iss, Users: []User{{Subject: "a"}, {Subject: "a"}}}, "duplicate subject"},
		{"subject control char", Config{Issuer: iss, Users: []User{{Subject: "a\x1b[2J"}}}, "non-printable"},
		{"subject newline", Config{Issuer: iss, Users: []User{{Subject: "a\nb"}}}, "non-printable"},
		{"subject bad UTF-8", Config{Issuer: iss, Users: []User{{Subject: "a\xff"}}}, "UTF-8"},
		{"subject too long", Config{Issuer: iss, Users: []User{{Subject: strings.Repeat("a", 257)}}}, "longer than"},
		{"reserved claim sub", Config{Issuer: iss, Users: []User{{Subject: "a", Claims: map[string]any{"sub": "b"}}}}, `claim "sub" is set by the provider`},
		{"reserved claim groups", Config{Issuer: iss, Users: []User{{Subject: "a", Claims: map[string]any{"groups": []string{"x"}}}}}, `claim "groups"`},
		{"empty claim name", Config{Issuer: iss, Users: []User{{Subject: "a", Claims: map[string]any{"": 1}}}}, `claim ""`},
		{"unmarshalable claim", Config{Issuer: iss, Users: []User{{Subject: "a", Claims: map[string]any{"f": make(chan int)}}}}, `claim "f"`},

		{"client without id", Config{Issuer: iss, Clients: []Client{{RedirectURIs: okClient.RedirectURIs}}}, "id: required"},
		{"duplicate client", Config{Issuer: iss, Clients: []Client{okClient, okClient}}, "duplicate id"},
		{"client control char", Config{Issuer: iss, Clients: []Client{{ID: "c\x00", Device: true}}}, "non-printable"},
		{"client with no flow", Config{Issuer: iss, Clients: []Client{{ID: "c"}}}, "could never log in"},
		{"relative redirect", Config{Issuer: iss, Clients: []Client{{ID: "c", RedirectURIs: []string{"/cb"}}}}, "not an absolute URI"},
		{"redirect fragment", Config{Issuer: iss, Clients: []Client{{ID: "c", RedirectURIs: []string{"http://127.0.0.1/cb#f"}}}}, "fragment"},
		{"redirect bad URL", Config{Issuer: iss, Clients: []Client{{ID: "c", RedirectURIs: []string{"http://[::1/cb"}}}}, "redirect URI"},
		{"public http non-loopback", Config{Issuer: iss, Clients: []Client{{ID: "c", RedirectURIs: []string{"http://example.com/cb"}}}}, "must be loopback"},
		{"http without host", Config{Issuer: iss, Clients: []Client{{ID: "c", RedirectURIs: []string{"http:///cb"}}}}, "no host"},
		{"confidential custom scheme", Config{Issuer: iss, Clients: []Client{{ID: "c", Secret: "s", RedirectURIs: []string{"app:/cb"}}}}, "confidential client needs"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p, err := New(tt.cfg)
			if tt.want == "" {
				if err != nil {
					t.Fatalf("New: got %v, want nil", err)
				}
				if got := p.Issuer(); got != tt.cfg.Issuer {
					t.Errorf("Issuer: got %q, want %q", got, tt.cfg.Issuer)
				}
				return
			}
			if err == nil {
				t.Fatalf("New: got nil, want an error with %q", tt.want)
			}
			if !errors.Is(err, ErrInvalidConfig) || !strings.Contains(err.Error(), tt.want) {
				t.Fatalf("New: got %q, want ErrInvalidConfig with %q", err, tt.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Errorf("error carries the issuer's password: %q", err)
			}
			if strings.ContainsAny(err.Error(), "\x00\x1b\n") {
				t.Errorf("error carries control characters: %q", err)
			}
		})
	}
}

// TestNewCopiesConfig checks the provider keeps its own copy of the users.
func TestNewCopiesConfig(t *testing.T) {
	users := []User{{Subject: "a", Groups: []string{"g"}, EmailVerified: ptr(true), Claims: map[string]any{"n": map[string]any{"k": "v"}}}}
	p, err := New(Config{Issuer: "http://127.0.0.1:1", Users: users})
	if err != nil {
		t.Fatal(err)
	}
	users[0].Groups[0] = "changed"
	*users[0].EmailVerified = false
	users[0].Claims["n"].(map[string]any)["k"] = "changed"
	c, err := p.IDTokenClaims("a", "x")
	if err != nil {
		t.Fatal(err)
	}
	c["n"].(map[string]any)["k"] = "changed by caller"
	c, _ = p.IDTokenClaims("a", "x")
	if got := c["groups"].([]string)[0]; got != "g" {
		t.Errorf("groups: got %q, want %q", got, "g")
	}
	if got := c["email_verified"]; got != true {
		t.Errorf("email_verified: got %v, want true", got)
	}
	if got := c["n"].(map[string]any)["k"]; got != "v" {
		t.Errorf("nested claim: got %v, want %q", got, "v")
	}
}
