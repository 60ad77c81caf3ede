// Package testenv starts the real components end-to-end tests need (OpenSSH
// sshd, PostgreSQL, the development OIDC provider) on loopback, in temp
// directories, and cleans them up. It is imported only by tests.
//
// The servers themselves are started by internal/localsvc, which returns
// errors; this package turns them into t.Fatal, skips and t.Cleanup.
//
// In CI (the CI environment variable is set) a missing tool is a test
// failure, never a skip: a skipped end-to-end test proves nothing.
package testenv

import (
	"os"
	"testing"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/internal/localsvc"
)

// Require returns the path of an installed tool; without it the test is
// skipped locally and fails in CI.
func Require(t testing.TB, name string, alternatives ...string) string {
	t.Helper()
	if p, err := localsvc.LookTool(append([]string{name}, alternatives...)...); err == nil {
		return p
	}
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is required in CI (install it in .ci/run)", name)
	}
	t.Skipf("%s is not installed", name)
	return ""
}

// FreePort returns a loopback TCP port that was free a moment ago.
func FreePort(t testing.TB) int {
	t.Helper()
	port, err := localsvc.FreeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	return port
}

// SSHDOptions configures StartSSHD.
type SSHDOptions struct {
	// TrustedUserCAKeys is the CA line (authorized_keys format) the target
	// trusts for user certificates: the bastion's target CA. Required.
	TrustedUserCAKeys string
	// HostCertificate, when set, certifies the host key: it is called with
	// the host public key and returns the certificate.
	HostCertificate func(ssh.PublicKey) (*ssh.Certificate, error)
	// Extra lines appended to sshd_config.
	Extra []string
}

// SSHD is a running OpenSSH server (Addr, Port, HostKey, HostKeyLine, Dir,
// LogPath, Log).
type SSHD = localsvc.SSHD

// StartSSHD starts the real OpenSSH sshd on a free loopback port, trusting
// only opts.TrustedUserCAKeys, with password and keyboard-interactive
// authentication off, and stops it when the test ends.
func StartSSHD(t testing.TB, opts SSHDOptions) *SSHD {
	t.Helper()
	sshd := Require(t, "/usr/sbin/sshd", "sshd")
	if opts.TrustedUserCAKeys == "" {
		t.Fatal("testenv: StartSSHD needs TrustedUserCAKeys")
	}
	s, err := localsvc.StartSSHD(localsvc.SSHDConfig{
		Dir:               t.TempDir(),
		Binary:            sshd,
		Name:              "testenv sshd",
		TrustedUserCAKeys: opts.TrustedUserCAKeys,
		HostCertificate:   opts.HostCertificate,
		Subsystems:        map[string]string{"sftp": localsvc.SFTPServer()},
		Options: append([]string{
			"AcceptEnv LANG LC_*",
			"LogLevel VERBOSE",
			"MaxStartups 100:30:200",
		}, opts.Extra...),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Stop()
		if t.Failed() {
			t.Logf("sshd log:\n%s", s.Log())
		}
	})
	return s
}
