package bastion_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/testenv"
)

func TestHostKeyTrust(t *testing.T) {
	hostCAKeys, err := ca.LoadOrCreateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	hostCA, _ := ca.New(ca.Config{Keys: hostCAKeys})
	// The target CA line is known only once the bastion's keys exist, so
	// these targets are started with a pre-made data dir in newEnv's place.
	e := newEnv(t, envOptions{})
	certified := testenv.StartSSHD(t, testenv.SSHDOptions{
		TrustedUserCAKeys: e.app.Keys.TargetCALine(),
		HostCertificate: func(pub ssh.PublicKey) (*ssh.Certificate, error) {
			return hostCA.SignHost(pub, "web2", []string{"127.0.0.1"}, time.Hour)
		},
	})
	tofu := testenv.StartSSHD(t, testenv.SSHDOptions{TrustedUserCAKeys: e.app.Keys.TargetCALine()})
	caLine := strings.TrimPrefix(hostCAKeys.HostCALine("*"), "@cert-authority * ")
	otherKeys, _ := ca.LoadOrCreateKeys(t.TempDir())
	otherLine := strings.TrimPrefix(otherKeys.HostCALine("*"), "@cert-authority * ")
	cfg := *e.app.Config
	cfg.Targets = append(cfg.Targets[:len(cfg.Targets):len(cfg.Targets)],
		targetWith("web2", certified.Addr, func(tg *targetT) { tg.HostCA = caLine }),
		targetWith("web3", tofu.Addr, func(tg *targetT) { tg.TrustOnFirstUse = true }),
		targetWith("web4", certified.Addr, func(tg *targetT) { tg.HostCA = otherLine }),
		targetWith("web5", tofu.Addr, func(tg *targetT) { tg.HostKey = certified.HostKeyLine }),
	)
	if err := e.app.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	os.WriteFile(e.cfgPath, []byte(strings.Replace(mustRead(t, e.cfgPath), "Host web1 web2 web9 echo", "Host web1 web2 web3 web4 web5 web9 echo", 1)), 0o600)

	if r := e.ssh("", "root@web2", "echo ok"); r.Code != 0 || r.Stdout != "ok\n" {
		t.Errorf("host CA trust: %s", r)
	}
	if r := e.ssh("", "root@web3", "echo ok"); r.Code != 0 || r.Stdout != "ok\n" {
		t.Errorf("first use: %s", r)
	}
	pinned, ok, err := e.app.Store.PinnedHostKey("web3")
	if err != nil || !ok || string(pinned) != string(tofu.HostKey.Marshal()) {
		t.Fatalf("web3 pin: ok=%v err=%v", ok, err)
	}
	if r := e.ssh("", "root@web3", "echo ok"); r.Code != 0 {
		t.Errorf("second use of a pinned key: %s", r)
	}
	r := e.ssh("", "root@web4", "echo ok")
	if r.Code == 0 {
		t.Errorf("a host certificate from another CA was accepted: %s", r)
	}
	mustContain(t, "web4 refusal", r.Stderr, "not signed by the configured host CA")
	r = e.ssh("", "root@web5", "echo ok")
	if r.Code == 0 {
		t.Errorf("a mismatched pinned key was accepted: %s", r)
	}
	mustContain(t, "web5 refusal", r.Stderr, "host key mismatch")

	// web3's key changes (the same address now answers with another key):
	// the pin refuses it.
	cfg2 := cfg
	cfg2.Targets = append(cfg.Targets[:len(cfg.Targets):len(cfg.Targets)], targetWith("web3x", certified.Addr, nil))
	e.app.Store.PinHostKey("web3x", tofu.HostKey.Marshal())
	cfg2.Targets[len(cfg2.Targets)-1].TrustOnFirstUse = true
	e.app.Reload(&cfg2)
	r = e.ssh("", "-o", "HostKeyAlias=web3x", "-o", "ProxyJump=bastion", "root@web3x", "echo ok")
	if r.Code == 0 {
		t.Errorf("a changed host key was accepted: %s", r)
	}
}

func TestIdleTimeout(t *testing.T) {
	e := newEnv(t, envOptions{idle: 700 * time.Millisecond})
	r := e.ssh("", "root@web1", "sleep 30")
	if r.Code == 0 {
		t.Fatalf("idle session was not ended: %s", r)
	}
	mustContain(t, "stderr", r.Stderr, "idle timeout")
}

func TestGracefulShutdown(t *testing.T) {
	e := newEnv(t, envOptions{})
	p := testenv.StartPTY(t, 80, 24, "ssh", "-F", e.cfgPath, "root@web1", "echo started; sleep 60")
	p.Expect("started", 30*time.Second)
	done := make(chan error, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), 1500*time.Millisecond)
		defer cancel()
		done <- e.app.SSH.Shutdown(ctx)
	}()
	p.Expect("shutting down", 20*time.Second)
	p.Wait(20 * time.Second)
	if err := <-done; err != nil {
		t.Fatalf("shutdown: %v", err)
	}
	if c, err := net.DialTimeout("tcp", e.app.SSHAddr(), time.Second); err == nil {
		c.Close()
		t.Fatal("the bastion still accepts connections after shutdown")
	}
}

func TestHealthAndMetrics(t *testing.T) {
	e := newEnv(t, envOptions{})
	if r := e.ssh("", "root@web1", "echo hi"); r.Code != 0 {
		t.Fatal(r)
	}
	e.expectAuthRefused(t, testenv.NewUserKey(t, e.dir, "plain", nil), "not_certificate")
	get := func(path string) string {
		resp, err := http.Get("http://" + e.app.HTTPAddr() + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != 200 {
			t.Fatalf("%s: HTTP %d", path, resp.StatusCode)
		}
		return string(b)
	}
	mustContain(t, "/healthz", get("/healthz"), "ok")
	// The client sees the channel close before the bastion has ended the
	// session (its recording's last flush, the active gauge): scrape once
	// it has.
	var m string
	testenv.WaitFor(t, 30*time.Second, "the session's end on /metrics", func() bool {
		m = get("/metrics")
		return strings.Contains(m, `bastion_sessions_active{kind="exec"} 0`)
	})
	mustContain(t, "/metrics", m,
		`bastion_sessions_total{kind="exec"} 1`,
		`bastion_auth_failures_total{reason="not_certificate"}`,
		`bastion_bytes_total{direction="down",kind="exec"}`,
		`bastion_upstream_dial_seconds_count{kind="ssh",result="ok"} 1`,
		`bastion_sessions_active{kind="exec"} 0`,
		`bastion_recording_flush_seconds_count{result="ok"}`)
}

// TestNoLeaks runs a few thousand connect-and-abort cycles of several kinds
// and checks, by counting, that goroutines and file descriptors come back.
func TestNoLeaks(t *testing.T) {
	e := newEnv(t, envOptions{})
	// Warm up: one full session so lazily started goroutines exist.
	if r := e.ssh("", "root@web1", "true"); r.Code != 0 {
		t.Fatal(r)
	}
	settle := func() (int, int) {
		var g, f int
		for i := 0; i < 100; i++ {
			runtime.GC()
			g, f = runtime.NumGoroutine(), countFDs(t)
			time.Sleep(50 * time.Millisecond)
			if g2, f2 := runtime.NumGoroutine(), countFDs(t); g2 == g && f2 == f {
				break
			}
		}
		return g, f
	}
	g0, f0 := settle()
	addr := e.app.SSHAddr()
	signer := e.alice.CertSigner(t)
	cfg := &ssh.ClientConfig{User: "alice", Auth: []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: (&ssh.CertChecker{IsHostAuthority: func(ssh.PublicKey, string) bool { return true }}).CheckHostKey, Timeout: 10 * time.Second}
	cycles := 0
	for i := 0; i < 1500; i++ { // connect and drop
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			fmt.Fprintf(c, "SSH-2.0-garbage\r\n\x00\x00\x00\xffjunk")
		}
		c.Close()
		cycles++
	}
	for i := 0; i < 300; i++ { // authenticate, open a channel, abort
		c, err := ssh.Dial("tcp", addr, cfg)
		if err != nil {
			t.Fatal(err)
		}
		switch i % 3 {
		case 0:
			if ch, _, err := c.OpenChannel("session", nil); err == nil {
				ch.Close()
			}
		case 1:
			if conn, err := c.Dial("tcp", "echo:"+portOf(e.echo)); err == nil {
				conn.Write([]byte("x"))
			}
		case 2:
			c.Dial("tcp", "127.0.0.1:1")
		}
		c.Close()
		cycles++
	}
	for i := 0; i < 100; i++ { // a session to the target, aborted mid-way
		c, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: "root@web1", Auth: cfg.Auth, HostKeyCallback: cfg.HostKeyCallback, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		if s, err := c.NewSession(); err == nil {
			s.Start("sleep 10")
		}
		c.Close()
		cycles++
	}
	g1, f1 := settle()
	t.Logf("%d cycles: goroutines %d -> %d, fds %d -> %d", cycles, g0, g1, f0, f1)
	if g1 > g0+20 {
		buf := make([]byte, 1<<20)
		t.Fatalf("goroutines grew from %d to %d after %d cycles:\n%s", g0, g1, cycles, buf[:runtime.Stack(buf, true)])
	}
	if f1 > f0+20 {
		t.Fatalf("file descriptors grew from %d to %d after %d cycles", f0, f1, cycles)
	}
}

func countFDs(t *testing.T) int {
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

func mustRead(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// A client that connects and stalls before authenticating is dropped.
func TestHandshakeTimeout(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.app.SSH.SetHandshakeTimeoutForTest(300 * time.Millisecond)
	c, err := net.Dial("tcp", e.app.SSHAddr())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetReadDeadline(time.Now().Add(20 * time.Second))
	_, err = io.ReadAll(c) // the server's version line, then EOF when it drops us
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		t.Fatal("a stalled client was not dropped")
	}
	// The same inside an intercepted ssh -J hop: the nested handshake runs
	// over an SSH channel, whose deadlines are timers.
	client := e.dialBastion(t, e.alice)
	defer client.Close()
	ch, reqs, err := client.OpenChannel("direct-tcpip", ssh.Marshal(struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}{"web1", 22, "127.0.0.1", 1}))
	if err != nil {
		t.Fatalf("direct-tcpip: %v", err)
	}
	go ssh.DiscardRequests(reqs)
	done := make(chan error, 1)
	go func() { _, err := io.ReadAll(ch); done <- err }()
	select {
	case <-done: // the bastion's version line, then EOF when the hop is dropped
	case <-time.After(20 * time.Second):
		t.Fatal("a stalled client was not dropped inside the hop")
	}
	// An authenticated session is not cut by the handshake deadline (long
	// enough here for a handshake on a loaded machine, shorter than the
	// session).
	e.app.SSH.SetHandshakeTimeoutForTest(3 * time.Second)
	if r := e.ssh("", "root@web1", "sleep 4; echo survived"); r.Stdout != "survived\n" {
		t.Fatalf("got %s", r)
	}
}

// The teardown order toward the user is a contract (RFC 4254 §6.10, as
// OpenSSH's sshd does it): exit-status, then the remaining output, EOF and
// close. x/crypto's client handles a connection's messages in order, so
// once a read sees EOF, an exit-status sent before it is already waiting.
func TestTeardownFrameOrder(t *testing.T) {
	e := newEnv(t, envOptions{})
	hostCA := e.app.Keys.HostCA.PublicKey().Marshal()
	checker := &ssh.CertChecker{IsHostAuthority: func(a ssh.PublicKey, _ string) bool { return bytes.Equal(a.Marshal(), hostCA) }}
	client, err := ssh.Dial("tcp", e.app.SSHAddr(), &ssh.ClientConfig{
		User: "root@web1", Auth: []ssh.AuthMethod{ssh.PublicKeys(e.alice.CertSigner(t))},
		HostKeyCallback: checker.CheckHostKey, Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	for round := range 5 {
		ch, reqs, err := client.OpenChannel("session", nil)
		if err != nil {
			t.Fatal(err)
		}
		ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{"head -c 300000 /dev/zero; echo; echo done; exit 3"}))
		if err != nil || !ok {
			t.Fatalf("exec: %v %v", ok, err)
		}
		out, err := io.ReadAll(ch) // until EOF
		if err != nil {
			t.Fatal(err)
		}
		if !bytes.HasSuffix(out, []byte("\ndone\n")) || len(out) != 300006 {
			t.Fatalf("round %d: got %d bytes ending %q", round, len(out), tail(out))
		}
		var status *ssh.Request
	drain:
		for {
			select {
			case r, ok := <-reqs:
				if !ok {
					break drain
				}
				if r.Type == "exit-status" {
					status = r
					break drain
				}
			default:
				break drain
			}
		}
		if status == nil {
			t.Fatalf("round %d: EOF came before exit-status", round)
		}
		var code struct{ Status uint32 }
		if ssh.Unmarshal(status.Payload, &code); code.Status != 3 {
			t.Fatalf("exit status %d, want 3", code.Status)
		}
		// Then the close: the request channel ends.
		for r := range reqs {
			t.Fatalf("round %d: request %q after exit-status", round, r.Type)
		}
		ch.Close()
	}
}
