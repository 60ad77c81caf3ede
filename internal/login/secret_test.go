package login

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/devidp"
)

// TestLoginSendsPublishedClientSecret: with a provider that, like Google
// for desktop apps, wants a native client's published secret at its token
// endpoint, the browser login gets an ID token when the bastion hands out
// the secret (oidc.public_client_secret), and fails at the provider
// without it.
func TestLoginSendsPublishedClientSecret(t *testing.T) {
	verified := true
	idp, err := devidp.Start(devidp.Config{
		Users:   []devidp.User{{Subject: "u-alice", Email: "alice@example.com", EmailVerified: &verified, Name: "Alice"}},
		Clients: []devidp.Client{{ID: "desktop", Secret: "published-not-secret", Native: true, RedirectURIs: []string{"http://127.0.0.1/callback"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	for _, tc := range []struct {
		name, secret string
		ok           bool
	}{
		{"with the published secret", "published-not-secret", true},
		{"without it", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tokens := make(chan string, 1)
			bastion := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				switch r.URL.Path {
				case ca.PathInfo:
					json.NewEncoder(w).Encode(ca.Info{Issuer: idp.Issuer(), ClientID: "desktop", ClientSecret: tc.secret, Scopes: []string{"openid", "email", "profile"}, MaxUserTTL: "8h0m0s"})
				case ca.PathCertificate:
					var req ca.CertRequest
					json.NewDecoder(r.Body).Decode(&req)
					tokens <- req.IDToken
					http.Error(w, "the test stops here", http.StatusServiceUnavailable)
				default:
					http.NotFound(w, r)
				}
			}))
			defer bastion.Close()
			ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
			defer cancel()
			cfg := LoginConfig{BastionURL: bastion.URL, Dir: t.TempDir(), Method: MethodBrowser, NoAgent: true, Out: &strings.Builder{}, CallbackTimeout: 30 * time.Second}
			cfg.OpenBrowser = func(u string) error {
				go func() { // the browser: sign in, follow the redirect
					redirect, err := idp.CompleteBrowserLogin(ctx, u, "u-alice")
					if err != nil {
						t.Errorf("browser login: %v", err)
						cancel()
						return
					}
					if resp, err := http.Get(redirect.String()); err == nil {
						resp.Body.Close()
					}
				}()
				return nil
			}
			_, err := Login(ctx, cfg)
			var token string
			select {
			case token = <-tokens:
			default:
			}
			switch {
			case tc.ok && token == "":
				t.Fatalf("no ID token reached the bastion: %v", err)
			case !tc.ok && (token != "" || err == nil || !strings.Contains(err.Error(), "oidc.public_client_secret")):
				t.Fatalf("without the secret: %v; want a refusal naming oidc.public_client_secret", err)
			}
		})
	}
}
