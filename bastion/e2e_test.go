package bastion_test

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/testenv"
)

func TestExecThroughJump(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.ssh("", "root@web1", "printf out-$((6*7)); printf err-1 >&2; exit 3")
	if r.Code != 3 || r.Stdout != "out-42" || !strings.Contains(r.Stderr, "err-1") {
		t.Fatalf("got %s; want exit 3, stdout out-42, stderr err-1", r)
	}
}

func TestAdminWhoamiAndTargets(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.ssh("", "bastion", "whoami")
	if r.Code != 0 {
		t.Fatalf("whoami: %s", r)
	}
	mustContain(t, "whoami", r.Stdout, "alice", "dev", "https://idp.test")
	r = e.ssh("", "bastion", "targets")
	if r.Code != 0 {
		t.Fatalf("targets: %s", r)
	}
	mustContain(t, "targets", r.Stdout, "web1", "echo")
}

func TestShellUnderPtyWithResize(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := testenv.StartPTY(t, 100, 30, "ssh", "-F", e.cfgPath, "-tt", "root@web1")
	p.Send("PS1='prompt> '; stty size\r")
	p.Expect("30 100", 30*time.Second)
	p.Send("echo hello-$((6*7))\r")
	p.Expect("hello-42", 10*time.Second)
	p.Resize(132, 43)
	// The resize reaches the target's pty: stty there reports it.
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.Send("stty size\r")
		out := p.Expect("prompt> ", 10*time.Second)
		if strings.Contains(out, "43 132") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("window change did not reach the target; last output %q", out)
		}
	}
	p.Send("exit 7\r")
	if code := p.Wait(20 * time.Second); code != 7 {
		t.Fatalf("exit code %d, want 7; output %q", code, p.Output())
	}
}

func TestRouteInUsername(t *testing.T) {
	e := newEnv(t, envOptions{})
	host, _, _ := net.SplitHostPort(e.app.SSHAddr())
	r := e.ssh("", "-p", e.sshPort(), "root@web1@"+host, "echo routed; id -un")
	if r.Code != 0 || r.Stdout != "routed\nroot\n" {
		t.Fatalf("got %s; want routed and root", r)
	}
	// A bare target name uses the identity's own name as the login, which
	// dev does not allow.
	r = e.ssh("", "-p", e.sshPort(), "web1@"+host, "true")
	if r.Code == 0 {
		t.Fatalf("login alice on web1 was allowed: %s", r)
	}
}

func TestSFTPAndSCP(t *testing.T) {
	e := newEnv(t, envOptions{})
	testenv.Require(t, "scp")
	testenv.Require(t, "sftp")
	remote := t.TempDir() // sshd runs on this machine: a local dir is the target's dir
	src := filepath.Join(t.TempDir(), "payload.bin")
	data := make([]byte, 3<<20+123)
	rand.Read(data)
	os.WriteFile(src, data, 0o600)
	want := sha256.Sum256(data)

	r := testenv.Run(t, 60*time.Second, "", "scp", "-F", e.cfgPath, "-q", src, "root@web1:"+remote+"/via-scp.bin")
	if r.Code != 0 {
		t.Fatalf("scp upload: %s", r)
	}
	back := filepath.Join(t.TempDir(), "back.bin")
	r = testenv.Run(t, 60*time.Second, "", "scp", "-F", e.cfgPath, "-q", "root@web1:"+remote+"/via-scp.bin", back)
	if r.Code != 0 {
		t.Fatalf("scp download: %s", r)
	}
	if got, _ := os.ReadFile(back); sha256.Sum256(got) != want {
		t.Fatal("scp round trip changed the file")
	}

	batch := filepath.Join(t.TempDir(), "batch")
	back2 := filepath.Join(t.TempDir(), "back2.bin")
	os.WriteFile(batch, []byte(fmt.Sprintf("put %s %s/via-sftp.bin\nget %s/via-sftp.bin %s\n", src, remote, remote, back2)), 0o600)
	r = testenv.Run(t, 60*time.Second, "", "sftp", "-F", e.cfgPath, "-b", batch, "root@web1")
	if r.Code != 0 {
		t.Fatalf("sftp: %s", r)
	}
	if got, _ := os.ReadFile(back2); sha256.Sum256(got) != want {
		t.Fatal("sftp round trip changed the file")
	}
	if got, _ := os.ReadFile(filepath.Join(remote, "via-sftp.bin")); sha256.Sum256(got) != want {
		t.Fatal("sftp upload changed the file")
	}
}

func TestLocalForwardHalfClose(t *testing.T) {
	e := newEnv(t, envOptions{})
	lport := testenv.FreePort(t)
	p := testenv.StartPTY(t, 80, 24, "ssh", "-F", e.cfgPath, "-N", "-o", "ExitOnForwardFailure=yes",
		"-L", fmt.Sprintf("127.0.0.1:%d:echo:%s", lport, portOf(e.echo)), "bastion")
	_ = p
	conn := dialRetry(t, fmt.Sprintf("127.0.0.1:%d", lport))
	payload := bytes.Repeat([]byte("0123456789abcdef"), 64<<10) // 1 MiB
	go func() {
		conn.Write(payload)
		conn.(*net.TCPConn).CloseWrite()
	}()
	got, err := io.ReadAll(conn)
	if err != nil {
		t.Fatal(err)
	}
	want := append(payload, "<tail>"...)
	if !bytes.Equal(got, want) {
		t.Fatalf("got %d bytes ending %q, want %d bytes ending <tail>", len(got), tail(got), len(want))
	}
}

func TestRefusals(t *testing.T) {
	e := newEnv(t, envOptions{})
	host, _, _ := net.SplitHostPort(e.app.SSHAddr())

	t.Run("expired certificate", func(t *testing.T) {
		past, _ := ca.New(ca.Config{Keys: e.app.Keys, Now: func() time.Time { return time.Now().Add(-3 * time.Hour) }})
		k := testenv.NewUserKey(t, e.dir, "expired", func(pub ssh.PublicKey) (*ssh.Certificate, error) {
			c, _, err := past.SignUser(ca.Identity{User: "alice", Issuer: "https://idp.test", Subject: "u-alice", Groups: []string{"dev"}}, pub, time.Hour)
			return c, err
		})
		e.expectAuthRefused(t, k, "expired")
		cfg := e.writeSSHConfig("alice", k)
		defer e.writeSSHConfig("alice", e.alice)
		r := testenv.Run(t, 30*time.Second, "", "ssh", "-F", cfg, "bastion", "whoami")
		if r.Code == 0 || !strings.Contains(r.Stderr, "expired") || !strings.Contains(r.Stderr, "run `bastion login`") {
			t.Errorf("ssh with an expired certificate does not say why: %s", r)
		}
	})
	t.Run("certificate from another CA", func(t *testing.T) {
		other, _ := ca.LoadOrCreateKeys(t.TempDir())
		oa, _ := ca.New(ca.Config{Keys: other})
		k := testenv.NewUserKey(t, e.dir, "otherca", func(pub ssh.PublicKey) (*ssh.Certificate, error) {
			c, _, err := oa.SignUser(ca.Identity{User: "alice", Issuer: "https://idp.test", Subject: "u-alice", Groups: []string{"dev"}}, pub, 0)
			return c, err
		})
		e.expectAuthRefused(t, k, "unknown_ca")
	})
	t.Run("host certificate as user certificate", func(t *testing.T) {
		k := testenv.NewUserKey(t, e.dir, "hostcert", func(pub ssh.PublicKey) (*ssh.Certificate, error) {
			return e.app.Authority.SignHost(pub, "alice", []string{"alice"}, time.Hour)
		})
		e.expectAuthRefused(t, k, "")
	})
	t.Run("target CA certificate", func(t *testing.T) {
		k := testenv.NewUserKey(t, e.dir, "targetcert", func(pub ssh.PublicKey) (*ssh.Certificate, error) {
			return e.app.Authority.SignTarget(pub, ca.TargetCert{Login: "alice", KeyID: "forged"})
		})
		e.expectAuthRefused(t, k, "unknown_ca")
	})
	t.Run("plain key", func(t *testing.T) {
		e.expectAuthRefused(t, testenv.NewUserKey(t, e.dir, "plain", nil), "not_certificate")
	})
	t.Run("revoked serial", func(t *testing.T) {
		k := e.userKey("torevoke", ca.Identity{User: "alice", Issuer: "https://idp.test", Subject: "u-alice", Groups: []string{"dev"}}, 0)
		cfg := e.writeSSHConfig("alice", k)
		r := testenv.Run(t, 30*time.Second, "", "ssh", "-F", cfg, "bastion", "whoami")
		if r.Code != 0 {
			t.Fatalf("before revocation: %s", r)
		}
		r = testenv.Run(t, 30*time.Second, "", "ssh", "-F", cfg, "bastion", "revoke", fmt.Sprint(k.Cert.Serial), "--reason", "'laptop lost'")
		if r.Code != 0 {
			t.Fatalf("revoke: %s", r)
		}
		e.expectAuthRefused(t, k, "revoked")
		// The stock client shows why, in the banner sent once it has
		// signed with the certificate's key.
		cfg = e.writeSSHConfig("alice", k)
		r = testenv.Run(t, 30*time.Second, "", "ssh", "-F", cfg, "bastion", "whoami")
		if r.Code == 0 || !strings.Contains(r.Stderr, fmt.Sprintf("bastion: certificate serial %d has been revoked: run `bastion login`", k.Cert.Serial)) {
			t.Errorf("ssh with a revoked certificate: %s", r)
		}
		e.writeSSHConfig("alice", e.alice) // restore the shared config
	})
	t.Run("login the role does not allow", func(t *testing.T) {
		r := e.ssh("", "deploy@web1", "true")
		if r.Code == 0 {
			t.Fatalf("deploy login allowed: %s", r)
		}
		mustContain(t, "stderr", r.Stderr, `login "deploy" on web1 is not allowed`)
	})
	t.Run("target not in the config", func(t *testing.T) {
		r := e.ssh("", "root@web9", "true")
		if r.Code == 0 {
			t.Fatalf("web9 reached: %s", r)
		}
		mustContain(t, "stderr", r.Stderr, "not a configured target")
	})
	for _, dest := range []string{"127.0.0.1:" + portOf(e.sshd.Addr), "169.254.169.254:80", "localhost:22", "lo:" + e.sshPort()} {
		t.Run("forward to "+dest, func(t *testing.T) {
			lport := testenv.FreePort(t)
			r := testenv.Run(t, 30*time.Second, "", "ssh", "-F", e.cfgPath, "-o", "ExitOnForwardFailure=yes",
				"-L", fmt.Sprintf("127.0.0.1:%d:%s", lport, dest), "bastion", "sleep 0; true")
			// The -L listener opens, but connecting through it must fail.
			_ = r
			e.expectForwardRefused(t, dest)
		})
	}
	t.Run("remote forward", func(t *testing.T) {
		r := testenv.Run(t, 30*time.Second, "", "ssh", "-F", e.cfgPath, "-o", "ExitOnForwardFailure=yes",
			"-R", fmt.Sprintf("127.0.0.1:%d:127.0.0.1:22", testenv.FreePort(t)), "bastion", "whoami")
		if r.Code == 0 {
			t.Fatalf("-R was accepted: %s", r)
		}
	})
	t.Run("agent forwarding", func(t *testing.T) {
		testenv.Require(t, "ssh-agent")
		agent := testenv.Run(t, 10*time.Second, "", "ssh-agent", "-s")
		sock := between(agent.Stdout, "SSH_AUTH_SOCK=", ";")
		pid := between(agent.Stdout, "SSH_AGENT_PID=", ";")
		defer testenv.Run(t, 10*time.Second, "", "kill", pid)
		cmd := exec.Command("ssh", "-F", e.cfgPath, "-A", "root@web1", "echo sock=${SSH_AUTH_SOCK:-none}")
		cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
		out, _ := cmd.Output()
		if !strings.Contains(string(out), "sock=none") {
			t.Fatalf("agent forwarding reached the target: %q", out)
		}
	})
	t.Run("user certificate straight to the target", func(t *testing.T) {
		r := testenv.Run(t, 30*time.Second, "", "ssh", "-F", e.cfgPath, "-o", "UserKnownHostsFile=/dev/null",
			"-o", "StrictHostKeyChecking=no", "-p", portOf(e.sshd.Addr), "root@"+host, "true")
		if r.Code == 0 {
			t.Fatalf("the target accepted a user certificate: %s", r)
		}
		if !strings.Contains(e.sshd.Log(), "not signed by a trusted CA") && !strings.Contains(e.sshd.Log(), "Certificate invalid") &&
			!strings.Contains(e.sshd.Log(), "CA") {
			t.Logf("sshd log: %s", e.sshd.Log())
		}
	})
}

// expectAuthRefused checks that k cannot log in to the bastion, with the
// given reason counted (when not empty).
func (e *env) expectAuthRefused(t *testing.T, k *testenv.UserKey, reason string) {
	t.Helper()
	cfg := e.writeSSHConfig("alice", k)
	defer e.writeSSHConfig("alice", e.alice)
	r := testenv.Run(t, 30*time.Second, "", "ssh", "-F", cfg, "bastion", "whoami")
	if r.Code == 0 {
		t.Fatalf("logged in: %s", r)
	}
	if reason != "" {
		if !strings.Contains(e.logs.String(), "reason="+reason) {
			t.Errorf("bastion log does not show reason=%s", reason)
		}
	}
}

// expectForwardRefused opens a direct-tcpip channel with x/crypto (what
// ssh -L does for each connection) and checks the bastion refuses it.
func (e *env) expectForwardRefused(t *testing.T, dest string) {
	t.Helper()
	c := e.dialBastion(t, e.alice)
	defer c.Close()
	conn, err := c.Dial("tcp", dest)
	if err == nil {
		conn.Close()
		t.Fatalf("forward to %s was opened", dest)
	}
	if !strings.Contains(err.Error(), "bastion:") {
		t.Errorf("refusal %q does not come from the bastion", err)
	}
}

// dialBastion is an x/crypto client login, for what the OpenSSH client
// cannot be made to send.
func (e *env) dialBastion(t *testing.T, k *testenv.UserKey) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", e.app.SSHAddr(), &ssh.ClientConfig{
		User: "alice", Auth: []ssh.AuthMethod{ssh.PublicKeys(k.CertSigner(t))},
		HostKeyCallback: e.hostKeys(), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// hostKeys checks the bastion's host certificate (for itself, and for a
// target it answers as inside an ssh -J hop) against the host CA, as the
// ssh_config `bastion login` writes has ssh do.
func (e *env) hostKeys() ssh.HostKeyCallback {
	hostCA := e.app.Keys.HostCA.PublicKey().Marshal()
	checker := &ssh.CertChecker{IsHostAuthority: func(a ssh.PublicKey, _ string) bool { return bytes.Equal(a.Marshal(), hostCA) }}
	return checker.CheckHostKey
}

func portOf(addr string) string {
	_, p, _ := net.SplitHostPort(addr)
	return p
}

func dialRetry(t *testing.T, addr string) net.Conn {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		c, err := net.Dial("tcp", addr)
		if err == nil {
			return c
		}
		if time.Now().After(deadline) {
			t.Fatalf("dial %s: %v", addr, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func tail(b []byte) string {
	if len(b) > 16 {
		b = b[len(b)-16:]
	}
	return string(b)
}

func between(s, a, b string) string {
	i := strings.Index(s, a)
	if i < 0 {
		return ""
	}
	s = s[i+len(a):]
	if j := strings.Index(s, b); j >= 0 {
		return s[:j]
	}
	return s
}

func TestCertificateOptions(t *testing.T) {
	e := newEnv(t, envOptions{})
	id := ca.Identity{User: "alice", Issuer: "https://idp.test", Subject: "u-alice", Groups: []string{"dev"}}

	t.Run("source-address admits", func(t *testing.T) {
		id := id
		id.SourceAddress = "127.0.0.0/8"
		k := e.userKey("src-ok", id, 0)
		cfg := e.writeSSHConfig("alice", k)
		defer e.writeSSHConfig("alice", e.alice)
		if r := testenv.Run(t, 30*time.Second, "", "ssh", "-F", cfg, "bastion", "whoami"); r.Code != 0 {
			t.Fatalf("source-address 127.0.0.0/8 from loopback: %s", r)
		}
	})
	t.Run("source-address refuses", func(t *testing.T) {
		id := id
		id.SourceAddress = "10.0.0.0/8"
		e.expectAuthRefused(t, e.userKey("src-bad", id, 0), "")
	})
	t.Run("unknown critical option", func(t *testing.T) {
		k := testenv.NewUserKey(t, e.dir, "critical", func(pub ssh.PublicKey) (*ssh.Certificate, error) {
			id := id
			id.Serial = 77
			cert, err := id.Certificate(pub)
			if err != nil {
				return nil, err
			}
			cert.ValidAfter, cert.ValidBefore = uint64(time.Now().Add(-time.Minute).Unix()), uint64(time.Now().Add(time.Hour).Unix())
			cert.CriticalOptions = map[string]string{"force-command": "true"}
			return cert, cert.SignCert(rand.Reader, e.app.Keys.UserCA)
		})
		e.expectAuthRefused(t, k, "critical_option")
	})
}

// The identity is the one of the key that signed the authentication. The
// client first offers alice's certificate without being able to sign with
// it (only the public half is on disk), then authenticates with bob's: the
// session must be bob's.
func TestIdentityFromSigningKey(t *testing.T) {
	e := newEnv(t, envOptions{})
	aliceOnly := e.userKey("alice-pub-only", ca.Identity{User: "alice", Issuer: "https://idp.test", Subject: "u-alice", Groups: []string{"dev", "sec"}}, 0)
	os.Remove(aliceOnly.KeyPath) // the private half is gone: ssh can offer the certificate, not sign with it
	bob := e.userKey("bob-real", ca.Identity{User: "bob", Issuer: "https://idp.test", Subject: "u-bob"}, 0)
	host, port, _ := net.SplitHostPort(e.app.SSHAddr())
	kh := filepath.Join(e.dir, "known_hosts")
	r := testenv.Run(t, 30*time.Second, "", "ssh", "-F", "/dev/null", "-p", port,
		"-o", "IdentitiesOnly=yes", "-o", "BatchMode=yes", "-o", "UserKnownHostsFile="+kh, "-o", "StrictHostKeyChecking=yes",
		"-o", "IdentityFile="+aliceOnly.CertPath, "-o", "IdentityFile="+bob.KeyPath, "-o", "CertificateFile="+bob.CertPath,
		"-l", "bob", host, "whoami")
	if r.Code != 0 {
		t.Fatalf("login: %s", r)
	}
	if !strings.Contains(r.Stdout, "user         bob") || strings.Contains(r.Stdout, "alice") {
		t.Fatalf("the session is not bob's: %s", r)
	}
}
