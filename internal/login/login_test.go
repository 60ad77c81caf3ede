package login

import (
	"context"
	"strings"
	"testing"
)

// An ID token is a bearer credential: login refuses to send one over plain
// HTTP except to loopback, and refuses malformed bastion URLs.
func TestLoginRefusesPlainHTTP(t *testing.T) {
	for _, tc := range []struct{ url, want string }{
		{"http://bastion.example.com", "plain http"},
		{"ftp://bastion.example.com", "must be http(s)"},
		{"bastion.example.com", "must be http(s)"},
		{"", "required"},
	} {
		_, err := Login(context.Background(), LoginConfig{BastionURL: tc.url, Dir: t.TempDir(), Method: MethodToken, IDToken: "x.y.z"})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: got %v, want %q", tc.url, err, tc.want)
		}
	}
}
