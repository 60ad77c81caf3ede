package demo

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// newSigner makes a fresh ed25519 signer.
func newSigner(t testing.TB) gossh.Signer {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	s, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// certFor certifies key for principals with ca; edit adjusts the
// certificate before it is signed.
func certFor(t testing.TB, ca gossh.Signer, key gossh.PublicKey, principals []string, edit func(*gossh.Certificate)) *gossh.Certificate {
	t.Helper()
	now := time.Now()
	c := &gossh.Certificate{
		Key: key, Serial: 1, CertType: gossh.UserCert, KeyId: "test",
		ValidPrincipals: principals,
		ValidAfter:      uint64(now.Add(-time.Minute).Unix()),
		ValidBefore:     uint64(now.Add(time.Minute).Unix()),
		Permissions:     gossh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
	}
	if edit != nil {
		edit(c)
	}
	if err := c.SignCert(rand.Reader, ca); err != nil {
		t.Fatal(err)
	}
	return c
}

// testTarget is a served Target with its CA.
type testTarget struct {
	*Target
	ca   gossh.Signer
	addr string
	home string
}

func startTarget(t *testing.T) *testTarget {
	t.Helper()
	ca := newSigner(t)
	home := t.TempDir()
	if err := writeHome(home); err != nil {
		t.Fatal(err)
	}
	tg, err := NewTarget(TargetConfig{Name: "web1", TrustedCA: ca.PublicKey(), HostKey: newSigner(t), Home: home})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- tg.Serve(ln) }()
	t.Cleanup(func() {
		tg.Close()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	})
	return &testTarget{Target: tg, ca: ca, addr: ln.Addr().String(), home: home}
}

// dial connects as login with a certificate from the target's CA; edit
// adjusts the certificate.
func (tt *testTarget) dial(t *testing.T, login string, edit func(*gossh.Certificate)) (*gossh.Client, error) {
	t.Helper()
	key := newSigner(t)
	cert := certFor(t, tt.ca, key.PublicKey(), []string{login}, edit)
	signer, err := gossh.NewCertSigner(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	return gossh.Dial("tcp", tt.addr, &gossh.ClientConfig{
		User:            login,
		Auth:            []gossh.AuthMethod{gossh.PublicKeys(signer)},
		HostKeyCallback: gossh.FixedHostKey(tt.cfg.HostKey.PublicKey()),
		Timeout:         10 * time.Second,
	})
}

func (tt *testTarget) client(t *testing.T) *gossh.Client {
	t.Helper()
	c, err := tt.dial(t, "demo", nil)
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

func TestNewTargetConfig(t *testing.T) {
	ca, host := newSigner(t), newSigner(t)
	home := t.TempDir()
	file := filepath.Join(home, "f")
	os.WriteFile(file, nil, 0o600)
	caCert := certFor(t, ca, ca.PublicKey(), []string{"x"}, nil)
	ok := TargetConfig{Name: "web1", TrustedCA: ca.PublicKey(), HostKey: host, Home: home}
	for _, tc := range []struct {
		name string
		edit func(*TargetConfig)
	}{
		{"no name", func(c *TargetConfig) { c.Name = "" }},
		{"no CA", func(c *TargetConfig) { c.TrustedCA = nil }},
		{"CA is a certificate", func(c *TargetConfig) { c.TrustedCA = caCert }},
		{"no host key", func(c *TargetConfig) { c.HostKey = nil }},
		{"no home", func(c *TargetConfig) { c.Home = "" }},
		{"home missing", func(c *TargetConfig) { c.Home = filepath.Join(home, "nope") }},
		{"home is a file", func(c *TargetConfig) { c.Home = file }},
		{"negative drain", func(c *TargetConfig) { c.DrainTimeout = -time.Second }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := ok
			tc.edit(&cfg)
			if _, err := NewTarget(cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("got %v, want %v", err, ErrInvalidConfig)
			}
		})
	}
	if _, err := NewTarget(ok); err != nil {
		t.Fatalf("valid config: %v", err)
	}
}

// TestCheckCert is the target's whole trust decision: only user
// certificates signed by exactly the trusted CA, valid now, for the login.
func TestCheckCert(t *testing.T) {
	ca, other := newSigner(t), newSigner(t)
	tg, err := NewTarget(TargetConfig{Name: "web1", TrustedCA: ca.PublicKey(), HostKey: newSigner(t), Home: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	key := newSigner(t).PublicKey()
	cert := func(edit func(*gossh.Certificate)) gossh.PublicKey {
		return certFor(t, ca, key, []string{"demo"}, edit)
	}
	tampered := certFor(t, ca, key, []string{"demo"}, nil)
	tampered.ValidPrincipals = []string{"root"}
	for _, tc := range []struct {
		name  string
		key   gossh.PublicKey
		login string
		ok    bool
	}{
		{"valid", cert(nil), "demo", true},
		{"several principals including the login", certFor(t, ca, key, []string{"x", "demo"}, nil), "demo", true},
		{"plain key", key, "demo", false},
		{"the CA key itself", ca.PublicKey(), "demo", false},
		{"other CA", certFor(t, other, key, []string{"demo"}, nil), "demo", false},
		{"host certificate", cert(func(c *gossh.Certificate) { c.CertType = gossh.HostCert }), "demo", false},
		{"other principal", cert(nil), "root", false},
		{"empty login", cert(nil), "", false},
		{"expired", cert(func(c *gossh.Certificate) { c.ValidBefore = uint64(time.Now().Add(-time.Second).Unix()) }), "demo", false},
		{"not yet valid", cert(func(c *gossh.Certificate) { c.ValidAfter = uint64(time.Now().Add(time.Hour).Unix()) }), "demo", false},
		{"unknown critical option", cert(func(c *gossh.Certificate) {
			c.CriticalOptions = map[string]string{"force-command": "id"}
		}), "demo", false},
		{"source-address (not enforced here, so refused)", cert(func(c *gossh.Certificate) {
			c.CriticalOptions = map[string]string{"source-address": "127.0.0.1/32"}
		}), "demo", false},
		{"principal changed after signing", tampered, "root", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := tg.checkCert(tc.key, tc.login)
			if tc.ok && err != nil {
				t.Fatalf("got %v, want accepted", err)
			}
			if !tc.ok && !errors.Is(err, ErrRefused) {
				t.Fatalf("got %v, want %v", err, ErrRefused)
			}
		})
	}
}

// TestTargetRefusesLogins checks the refusal over a real SSH handshake.
func TestTargetRefusesLogins(t *testing.T) {
	tt := startTarget(t)
	if _, err := tt.dial(t, "demo", func(c *gossh.Certificate) { c.ValidPrincipals = []string{"root"} }); err == nil {
		t.Fatal("a certificate for another principal logged in")
	}
	// A plain key, even the CA's own.
	_, err := gossh.Dial("tcp", tt.addr, &gossh.ClientConfig{
		User: "demo", Auth: []gossh.AuthMethod{gossh.PublicKeys(tt.ca)},
		HostKeyCallback: gossh.FixedHostKey(tt.cfg.HostKey.PublicKey()), Timeout: 10 * time.Second,
	})
	if err == nil {
		t.Fatal("a plain key logged in")
	}
	// Passwords are not a method at all.
	_, err = gossh.Dial("tcp", tt.addr, &gossh.ClientConfig{
		User: "demo", Auth: []gossh.AuthMethod{gossh.Password("demo")},
		HostKeyCallback: gossh.FixedHostKey(tt.cfg.HostKey.PublicKey()), Timeout: 10 * time.Second,
	})
	if err == nil {
		t.Fatal("a password logged in")
	}
}

func TestTargetExec(t *testing.T) {
	tt := startTarget(t)
	c := tt.client(t)
	for _, tc := range []struct {
		name, cmd, stdin   string
		wantOut, wantErr   string
		wantStatus         int
		wantSignal         string
		wantLinesAtLeastOf int
	}{
		{name: "output and status", cmd: "echo out; echo err >&2; exit 3", wantOut: "out\n", wantErr: "err\n", wantStatus: 3},
		{name: "runs in the home directory", cmd: "pwd; echo $HOME; echo $USER", wantOut: tt.home + "\n" + tt.home + "\ndemo\n"},
		{name: "stdin until EOF", cmd: "tr a-z A-Z", stdin: "hello\n", wantOut: "HELLO\n"},
		{name: "killed by a signal", cmd: "kill -TERM $$", wantSignal: "TERM"},
		{name: "a background child does not hold the session", cmd: "sleep 30 & echo started", wantOut: "started\n"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s, err := c.NewSession()
			if err != nil {
				t.Fatal(err)
			}
			defer s.Close()
			var out, errb bytes.Buffer
			s.Stdout, s.Stderr = &out, &errb
			s.Stdin = strings.NewReader(tc.stdin)
			err = s.Run(tc.cmd)
			var ee *gossh.ExitError
			switch {
			case tc.wantSignal != "":
				if !errors.As(err, &ee) || ee.Signal() != tc.wantSignal {
					t.Fatalf("got %v, want signal %s", err, tc.wantSignal)
				}
			case tc.wantStatus != 0:
				if !errors.As(err, &ee) || ee.ExitStatus() != tc.wantStatus {
					t.Fatalf("got %v, want exit status %d", err, tc.wantStatus)
				}
			case err != nil:
				t.Fatalf("got %v, want success", err)
			}
			if tc.wantSignal == "" && out.String() != tc.wantOut {
				t.Errorf("stdout: got %q, want %q", out.String(), tc.wantOut)
			}
			if errb.String() != tc.wantErr {
				t.Errorf("stderr: got %q, want %q", errb.String(), tc.wantErr)
			}
		})
	}
}

// TestTargetOutputBeforeExit checks that all output arrives before the exit
// status ends the session.
func TestTargetOutputBeforeExit(t *testing.T) {
	tt := startTarget(t)
	s, err := tt.client(t).NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out, err := s.Output("seq 1 50000; exit 4")
	var ee *gossh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 4 {
		t.Fatalf("got %v, want exit status 4", err)
	}
	lines := strings.Split(strings.TrimSpace(string(out)), "\n")
	if len(lines) != 50000 || lines[len(lines)-1] != "50000" {
		t.Fatalf("got %d lines ending %q, want 50000 ending %q", len(lines), lines[len(lines)-1], "50000")
	}
}

func TestTargetPty(t *testing.T) {
	tt := startTarget(t)
	s, err := tt.client(t).NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if err := s.Setenv("LANG", "C.UTF-8"); err != nil {
		t.Fatalf("env LANG: %v", err)
	}
	if err := s.Setenv("EVIL", "1"); err == nil {
		t.Error("env EVIL: accepted, want refused")
	}
	if err := s.RequestPty("xterm", 24, 80, gossh.TerminalModes{}); err != nil {
		t.Fatal(err)
	}
	in, err := s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	s.Stdout = out
	if err := s.Shell(); err != nil {
		t.Fatal(err)
	}
	io.WriteString(in, "echo tty=$(tty | cut -c1-8) term=$TERM lang=$LANG evil=$EVIL; stty size\n")
	out.waitFor(t, "tty=/dev/pts term=xterm lang=C.UTF-8 evil=")
	out.waitFor(t, "24 80")
	if err := s.WindowChange(40, 120); err != nil {
		t.Fatal(err)
	}
	// The window change and the typed line travel separately; ask until
	// the shell sees the new size.
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "40 120") {
		if time.Now().After(deadline) {
			t.Fatalf("got %q, want the new size 40 120", out.String())
		}
		io.WriteString(in, "stty size\n")
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(out.String(), "demo@web1:") {
		t.Errorf("no demo prompt in %q", out.String())
	}
	io.WriteString(in, "exit 7\n")
	err = s.Wait()
	var ee *gossh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 7 {
		t.Fatalf("got %v, want exit status 7", err)
	}
}

// TestTargetPtyNeedsPermit refuses a terminal to a certificate without the
// permit-pty extension; exec still works.
func TestTargetPtyNeedsPermit(t *testing.T) {
	tt := startTarget(t)
	c, err := tt.dial(t, "demo", func(c *gossh.Certificate) { c.Permissions.Extensions = nil })
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	s, _ := c.NewSession()
	if err := s.RequestPty("xterm", 24, 80, nil); err == nil {
		t.Error("pty granted without permit-pty")
	}
	s.Close()
	s, _ = c.NewSession()
	if out, err := s.Output("echo ok"); err != nil || string(out) != "ok\n" {
		t.Errorf("exec: got %q, %v, want %q", out, err, "ok\n")
	}
}

// TestTargetRefusesChannels: no forwarding, no subsystem but sftp (scp and
// sftp work, as the README says), no agent.
func TestTargetRefusesChannels(t *testing.T) {
	tt := startTarget(t)
	c := tt.client(t)
	if _, err := c.Dial("tcp", tt.addr); err == nil {
		t.Error("direct-tcpip accepted")
	}
	if _, err := c.Listen("tcp", "127.0.0.1:0"); err == nil {
		t.Error("tcpip-forward accepted")
	}
	s, _ := c.NewSession()
	if err := s.RequestSubsystem("netconf"); err == nil {
		t.Error("subsystem netconf accepted")
	}
	s.Close()
	s, _ = c.NewSession()
	if ok, _ := s.SendRequest("auth-agent-req@openssh.com", true, nil); ok {
		t.Error("agent forwarding accepted")
	}
	s.Close()
}

// TestTargetSignal delivers a client's signal to the command.
func TestTargetSignal(t *testing.T) {
	tt := startTarget(t)
	s, err := tt.client(t).NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	s.Stdout = out
	if err := s.Start("trap 'echo got-usr1; exit 9' USR1; echo ready; while :; do sleep 0.05; done"); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "ready")
	if err := s.Signal(gossh.SIGUSR1); err != nil {
		t.Fatal(err)
	}
	err = s.Wait()
	var ee *gossh.ExitError
	if !errors.As(err, &ee) || ee.ExitStatus() != 9 || !strings.Contains(out.String(), "got-usr1") {
		t.Fatalf("got %v and %q, want exit status 9 after got-usr1", err, out.String())
	}
}

// TestTargetHangup ends the process when the client goes away.
func TestTargetHangup(t *testing.T) {
	tt := startTarget(t)
	c := tt.client(t)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	s.Stdout = out
	if err := s.Start("echo pid=$$; exec sleep 300"); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(out.String(), "pid=")))
	if err != nil {
		t.Fatalf("pid: %q", out.String())
	}
	c.Close()
	deadline := time.Now().Add(30 * time.Second)
	for syscall.Kill(pid, 0) == nil {
		if time.Now().After(deadline) {
			t.Fatalf("process %d still runs after its client went away", pid)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestTargetWithOpenSSH logs in with the real OpenSSH client and a
// certificate file, as an administrator trying the target directly would.
func TestTargetWithOpenSSH(t *testing.T) {
	if _, err := exec.LookPath("ssh"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("ssh not installed (required in CI)")
		}
		t.Skip("ssh not installed")
	}
	tt := startTarget(t)
	dir := t.TempDir()
	_, priv, _ := ed25519.GenerateKey(rand.Reader)
	block, _ := gossh.MarshalPrivateKey(priv, "test")
	signer, _ := gossh.NewSignerFromKey(priv)
	cert := certFor(t, tt.ca, signer.PublicKey(), []string{"demo"}, nil)
	keyPath := filepath.Join(dir, "id")
	os.WriteFile(keyPath, pemEncode(block), 0o600)
	os.WriteFile(keyPath+"-cert.pub", gossh.MarshalAuthorizedKey(cert), 0o600)
	host, port, _ := net.SplitHostPort(tt.addr)
	kh := filepath.Join(dir, "known_hosts")
	os.WriteFile(kh, []byte(fmt.Sprintf("[%s]:%s %s\n", host, port, tt.HostKeyLine())), 0o600)
	cmd := exec.Command("ssh", "-F", "/dev/null", "-p", port, "-i", keyPath, "-o", "IdentitiesOnly=yes",
		"-o", "UserKnownHostsFile="+kh, "-o", "StrictHostKeyChecking=yes", "-o", "BatchMode=yes",
		"demo@"+host, "echo through-openssh; exit 5")
	out, err := cmd.CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 5 || !strings.Contains(string(out), "through-openssh") {
		t.Fatalf("ssh: %v\n%s", err, out)
	}
}

// TestTargetCloseEndsSessions: Close returns only once the sessions'
// processes are gone, so stopping the demo leaves nothing running.
func TestTargetCloseEndsSessions(t *testing.T) {
	tt := startTarget(t)
	s, err := tt.client(t).NewSession()
	if err != nil {
		t.Fatal(err)
	}
	out := &syncBuffer{}
	s.Stdout = out
	if err := s.Start("trap '' HUP; echo pid=$$; exec sleep 300"); err != nil {
		t.Fatal(err)
	}
	out.waitFor(t, "\n")
	pid, err := strconv.Atoi(strings.TrimSpace(strings.TrimPrefix(out.String(), "pid=")))
	if err != nil {
		t.Fatalf("pid: %q", out.String())
	}
	tt.Close()
	if err := syscall.Kill(pid, 0); err == nil {
		t.Fatalf("process %d (ignoring SIGHUP) still runs after Close", pid)
	}
}

// TestTargetSFTP: the sftp subsystem runs OpenSSH's sftp-server in the
// home, so scp (sftp since OpenSSH 9.0) and sftp work; other subsystems
// are refused.
func TestTargetSFTP(t *testing.T) {
	if FindSFTPServer() == "" {
		if os.Getenv("CI") != "" {
			t.Fatal("no sftp-server (openssh-sftp-server) in CI")
		}
		t.Skip("no sftp-server installed")
	}
	tt := startTarget(t)
	c := tt.client(t)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	in, _ := s.StdinPipe()
	out, _ := s.StdoutPipe()
	if err := s.RequestSubsystem("sftp"); err != nil {
		t.Fatalf("sftp subsystem refused: %v", err)
	}
	// SSH_FXP_INIT, version 3; the answer is SSH_FXP_VERSION.
	if _, err := in.Write([]byte{0, 0, 0, 5, 1, 0, 0, 0, 3}); err != nil {
		t.Fatal(err)
	}
	hdr := make([]byte, 5)
	if _, err := io.ReadFull(out, hdr); err != nil {
		t.Fatalf("no sftp answer: %v", err)
	}
	if hdr[4] != 2 {
		t.Errorf("got sftp packet type %d, want 2 (SSH_FXP_VERSION)", hdr[4])
	}

	s2, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	defer s2.Close()
	if err := s2.RequestSubsystem("netconf"); err == nil {
		t.Error("subsystem netconf accepted")
	}
}
