package login

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/ca"
)

// A bastion that is not what it claims (a phishing URL, a compromised
// replica) must not get its own ssh options into the ssh_config stanza or
// the known_hosts file login writes: a ProxyCommand there would run on the
// user's machine at the next ssh.
func TestLoginRefusesHostileAnswers(t *testing.T) {
	_, caPriv, _ := ed25519.GenerateKey(rand.Reader)
	signer, err := ssh.NewSignerFromKey(caPriv)
	if err != nil {
		t.Fatal(err)
	}
	hostCA := "@cert-authority * " + strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	inject := "\n    ProxyCommand sh -c 'touch /tmp/pwned'\n#"
	for _, tc := range []struct {
		name                         string
		principal, certUser, address string
		hostCA                       string
		want                         string
	}{
		{"login name with ssh options", "alice" + inject, "alice", "127.0.0.1:2222", hostCA, "named the login"},
		{"certificate for another name", "alice", "bob", "127.0.0.1:2222", hostCA, "named the login"},
		{"both injected alike", "alice" + inject, "alice" + inject, "127.0.0.1:2222", hostCA, "login name"},
		{"SSH address with ssh options", "alice", "alice", "b.example" + inject + ":2222", hostCA, "SSH address"},
		{"SSH port out of range", "alice", "alice", "b.example:70000", hostCA, "SSH port"},
		{"host CA of two lines", "alice", "alice", "127.0.0.1:2222", hostCA + "\n@cert-authority * " + hostCA[len("@cert-authority * "):], "host CA"},
		{"host CA unreadable", "alice", "alice", "127.0.0.1:2222", "@cert-authority * nonsense", "host CA"},
		{"a fair bastion", "alice", "alice", "[::1]:2222", hostCA, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			mux := http.NewServeMux()
			mux.HandleFunc("GET "+ca.PathInfo, func(w http.ResponseWriter, r *http.Request) {
				json.NewEncoder(w).Encode(ca.Info{Issuer: "https://idp.example", ClientID: "bastion", SSHAddress: tc.address, HostCA: tc.hostCA})
			})
			mux.HandleFunc("POST "+ca.PathCertificate, func(w http.ResponseWriter, r *http.Request) {
				var req ca.CertRequest
				if err := json.NewDecoder(r.Body).Decode(&req); err != nil {
					t.Error(err)
					return
				}
				pub, _, _, _, err := ssh.ParseAuthorizedKey([]byte(req.PublicKey))
				if err != nil {
					t.Error(err)
					return
				}
				valid := time.Now().Add(time.Hour)
				c := &ssh.Certificate{Key: pub, CertType: ssh.UserCert, ValidPrincipals: []string{tc.certUser}, ValidBefore: uint64(valid.Unix())}
				if err := c.SignCert(rand.Reader, signer); err != nil {
					t.Error(err)
					return
				}
				json.NewEncoder(w).Encode(ca.CertResponse{Certificate: string(ssh.MarshalAuthorizedKey(c)), Principal: tc.principal, Serial: "1", ValidBefore: valid})
			})
			srv := httptest.NewServer(mux)
			defer srv.Close()
			st, err := Login(context.Background(), LoginConfig{BastionURL: srv.URL, Dir: t.TempDir(), Method: MethodToken, IDToken: "a.b.c", NoAgent: true})
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				conf, err := SSHConfig(st, []string{"web1"}, "")
				if err != nil || !strings.Contains(conf, "Host ::1\n") || !strings.Contains(conf, "User alice\n") {
					t.Fatalf("ssh-config: %v\n%s", err, conf)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("login: got %v, want an error about %q", err, tc.want)
			}
		})
	}
	// A login written before these checks is not written into a config.
	for _, st := range []*State{
		{SSHAddress: "127.0.0.1:2222", User: "alice" + inject},
		{SSHAddress: "b.example" + inject + ":2222", User: "alice"},
	} {
		if conf, err := SSHConfig(st, nil, ""); err == nil {
			t.Errorf("ssh-config of %+v:\n%s", st, conf)
		}
	}
}
