// Package testenv starts the real components end-to-end tests need (OpenSSH
// sshd, PostgreSQL, the development OIDC provider) on loopback, in temp
// directories, and cleans them up. It is imported only by tests.
//
// In CI (the CI environment variable is set) a missing tool is a test
// failure, never a skip: a skipped end-to-end test proves nothing.
package testenv

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"github.com/bastionhq/bastion/internal/localsvc"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// Require returns the path of an installed tool; without it the test is
// skipped locally and fails in CI.
func Require(t testing.TB, name string, alternatives ...string) string {
	t.Helper()
	for _, n := range append([]string{name}, alternatives...) {
		if filepath.IsAbs(n) {
			if _, err := os.Stat(n); err == nil {
				return n
			}
			continue
		}
		if p, err := exec.LookPath(n); err == nil {
			return p
		}
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
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
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

// SSHD is a running OpenSSH server.
type SSHD struct {
	Addr        string        // 127.0.0.1:port
	Port        int           // the port
	HostKey     ssh.PublicKey // its host key
	HostKeyLine string        // the host key in authorized_keys format
	Dir         string        // its config directory
	LogPath     string        // its log (-E)
	cmd         *exec.Cmd
}

// Log returns what sshd has logged so far.
func (s *SSHD) Log() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

// StartSSHD starts the real OpenSSH sshd on a free loopback port, trusting
// only opts.TrustedUserCAKeys, with password and keyboard-interactive
// authentication off, and stops it when the test ends.
func StartSSHD(t testing.TB, opts SSHDOptions) *SSHD {
	t.Helper()
	sshd := Require(t, "/usr/sbin/sshd", "sshd")
	if opts.TrustedUserCAKeys == "" {
		t.Fatal("testenv: StartSSHD needs TrustedUserCAKeys")
	}
	// sshd's privilege separation directory.
	if os.Geteuid() == 0 {
		os.MkdirAll("/run/sshd", 0o755)
	}
	dir := t.TempDir()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "testenv sshd")
	if err != nil {
		t.Fatal(err)
	}
	hostKeyPath := filepath.Join(dir, "ssh_host_ed25519_key")
	if err := os.WriteFile(hostKeyPath, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	caPath := filepath.Join(dir, "trusted_user_ca_keys")
	if err := os.WriteFile(caPath, []byte(opts.TrustedUserCAKeys+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	sftp := "internal-sftp"
	for _, p := range []string{"/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server"} {
		if _, err := os.Stat(p); err == nil {
			sftp = p
			break
		}
	}
	lines := []string{
		"ListenAddress 127.0.0.1",
		"HostKey " + hostKeyPath,
		"TrustedUserCAKeys " + caPath,
		"AuthorizedKeysFile none",
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"HostbasedAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"PermitRootLogin yes",
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"Subsystem sftp " + sftp,
		"AcceptEnv LANG LC_*",
		"LogLevel VERBOSE",
		"MaxStartups 100:30:200",
		"PerSourceMaxStartups none",
		"PerSourcePenalties no",
	}
	if opts.HostCertificate != nil {
		cert, err := opts.HostCertificate(signer.PublicKey())
		if err != nil {
			t.Fatal(err)
		}
		cp := hostKeyPath + "-cert.pub"
		if err := os.WriteFile(cp, ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
			t.Fatal(err)
		}
		lines = append(lines, "HostCertificate "+cp)
	}
	lines = append(lines, opts.Extra...)
	s := &SSHD{Dir: dir, LogPath: filepath.Join(dir, "sshd.log"), HostKey: signer.PublicKey()}
	s.HostKeyLine = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	for attempt := 0; attempt < 5; attempt++ {
		s.Port = FreePort(t)
		s.Addr = fmt.Sprintf("127.0.0.1:%d", s.Port)
		cfg := append([]string{fmt.Sprintf("Port %d", s.Port)}, lines...)
		cfgPath := filepath.Join(dir, "sshd_config")
		if err := localsvc.WriteSSHDConfig(sshd, cfgPath, cfg); err != nil {
			t.Fatal(err)
		}
		cmd := exec.Command(sshd, "-D", "-e", "-f", cfgPath, "-E", s.LogPath)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatalf("start sshd: %v", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if localsvc.WaitListening(s.Addr, exited, 10*time.Second) {
			s.cmd = cmd
			t.Cleanup(func() {
				cmd.Process.Kill()
				<-exited
				if t.Failed() {
					t.Logf("sshd log:\n%s", s.Log())
				}
			})
			return s
		}
		cmd.Process.Kill()
		<-exited
		if !strings.Contains(s.Log()+stderr.String(), "Address already in use") {
			t.Fatalf("sshd did not start: %s\n%s", stderr.String(), s.Log())
		}
	}
	t.Fatal("sshd: no free port after 5 attempts")
	return nil
}
