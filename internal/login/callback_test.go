package login

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/devidp"
)

// TestLoginIgnoresForgedCallbacks: the browser login's loopback callback
// is reachable by every local process and by any web page the user has
// open (a cross-site GET to http://127.0.0.1:PORT/callback). A request
// that does not carry the login's state is not the IdP's answer: it gets
// an error page, and the login goes on waiting for the real callback. It
// used to end the login ("possible CSRF"), so anyone could make every
// `bastion login` fail.
func TestLoginIgnoresForgedCallbacks(t *testing.T) {
	verified := true
	idp, err := devidp.Start(devidp.Config{
		Users:   []devidp.User{{Subject: "u-alice", Email: "alice@example.com", EmailVerified: &verified, Name: "Alice"}},
		Clients: []devidp.Client{{ID: "bastion", RedirectURIs: []string{"http://127.0.0.1/callback"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer idp.Close()
	tokens := make(chan string, 1)
	bastion := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case ca.PathInfo:
			json.NewEncoder(w).Encode(ca.Info{Issuer: idp.Issuer(), ClientID: "bastion", Scopes: []string{"openid", "email", "profile"}, MaxUserTTL: "8h0m0s"})
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
		au, err := url.Parse(u)
		if err != nil {
			return err
		}
		cb := au.Query().Get("redirect_uri")
		go func() {
			// Someone else first: no state, a wrong one, an error answer.
			for _, q := range []string{"code=stolen", "state=guess&code=x", "state=guess&error=access_denied", "error=access_denied"} {
				resp, err := http.Get(cb + "?" + q)
				if err != nil {
					t.Errorf("forged callback: %v", err)
					return
				}
				resp.Body.Close()
				if resp.StatusCode != http.StatusBadRequest {
					t.Errorf("forged callback ?%s: HTTP %d, want 400", q, resp.StatusCode)
				}
			}
			// Then the browser: sign in, follow the redirect.
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
	_, err = Login(ctx, cfg)
	select {
	case <-tokens:
	default:
		t.Fatalf("forged callbacks ended the login: %v", err)
	}
}
