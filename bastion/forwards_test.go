package bastion_test

import (
	"crypto/rand"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/testenv"
)

// A target trusted through a host CA must present a host certificate: a
// user certificate from the same CA (one CA for users and hosts is a
// common setup, and a user can often choose its principals) whose
// principals name the target's address does not vouch for a host, and
// OpenSSH's client refuses it ("not a host certificate"). Accepting it lets
// whoever holds such a certificate, and can answer on the target's address,
// receive the sessions the bastion relays to that target.
func TestTargetUserCertificateIsNotAHostCertificate(t *testing.T) {
	orgKeys, err := ca.LoadOrCreateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	orgCA := orgKeys.HostCA // the organisation's CA, trusted as the targets' host CA
	e := newEnv(t, envOptions{})
	impostor := testenv.StartSSHD(t, testenv.SSHDOptions{
		TrustedUserCAKeys: e.app.Keys.TargetCALine(),
		HostCertificate: func(pub ssh.PublicKey) (*ssh.Certificate, error) {
			c := &ssh.Certificate{Key: pub, CertType: ssh.UserCert, KeyId: "mallory",
				ValidPrincipals: []string{"127.0.0.1", "web2", "mallory"},
				ValidAfter:      uint64(time.Now().Add(-time.Minute).Unix()), ValidBefore: uint64(time.Now().Add(time.Hour).Unix()),
				Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}}}
			return c, c.SignCert(rand.Reader, orgCA)
		},
	})
	caLine := strings.TrimPrefix(orgKeys.HostCALine("*"), "@cert-authority * ")
	cfg := *e.app.Config
	cfg.Targets = append(cfg.Targets[:len(cfg.Targets):len(cfg.Targets)],
		targetWith("web2", impostor.Addr, func(tg *targetT) { tg.HostCA = caLine }))
	if err := e.app.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	r := e.ssh("", "root@web2", "echo reached-the-impostor")
	if r.Code == 0 || strings.Contains(r.Stdout, "reached-the-impostor") {
		t.Fatalf("a user certificate was accepted as the target's host certificate: %s", r)
	}
	mustContain(t, "refusal", r.Stderr, "not a host certificate")
}
