package bastion_test

import (
	"bytes"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// startMaster starts an OpenSSH ControlMaster connection to the bastion as
// user and returns its control socket: later `ssh -S SOCK` commands open
// their channels on that connection without authenticating again.
func (e *env) startMaster(t *testing.T, cfg, user string) string {
	t.Helper()
	dir, err := os.MkdirTemp("", "cm")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	sock := filepath.Join(dir, "s")
	cmd := exec.Command("ssh", "-F", cfg, "-M", "-S", sock, "-N", "-l", user, "bastion")
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	testenv.WaitFor(t, 20*time.Second, "control socket", func() bool {
		return testenv.Run(t, 10*time.Second, "", "ssh", "-F", cfg, "-S", sock, "-O", "check", "-l", user, "bastion").Code == 0
	})
	return sock
}

// A connection authenticated once opens new sessions and forwards for as
// long as it stays up (ssh ControlMaster/ControlPersist keeps it up for
// hours): each new channel is a new use of the certificate, and a revoked
// or expired certificate must not open one.
func TestConnectionOutlivesCertificate(t *testing.T) {
	// The bastion's clock, moved past a certificate's expiry by the test
	// rather than waited for: a certificate short enough to wait out could
	// expire before a loaded machine has used it once.
	var ahead atomic.Int64
	e := newEnv(t, envOptions{now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }})
	id := ca.Identity{User: "carol", Issuer: "https://idp.test", Subject: "u-carol", Groups: []string{"dev"}}

	t.Run("revoked", func(t *testing.T) {
		k := e.userKey("carol-revoked", id, 0)
		cfg := e.writeSSHConfig("carol", k)
		sock := e.startMaster(t, cfg, "root@web1")
		run := func() testenv.Result {
			return testenv.Run(t, 30*time.Second, "", "ssh", "-F", cfg, "-S", sock, "-l", "root@web1", "bastion", "echo reached")
		}
		if r := run(); r.Code != 0 || !strings.Contains(r.Stdout, "reached") {
			t.Fatalf("before revocation: %s", r)
		}
		if err := e.app.Store.Revoke(k.Cert.Serial, "test", "laptop lost"); err != nil {
			t.Fatal(err)
		}
		if r := run(); r.Code == 0 || strings.Contains(r.Stdout, "reached") {
			t.Fatalf("a revoked certificate's connection opened a new session on web1: %s", r)
		}
		// The mux client exits 255; the master shows the reason.
		mustContain(t, "bastion log", e.logs.String(), "has been revoked")
	})

	t.Run("expired", func(t *testing.T) {
		k := e.userKey("carol-short", id, 10*time.Minute)
		cfg := e.writeSSHConfig("carol", k)
		sock := e.startMaster(t, cfg, "carol")
		whoami := func() testenv.Result {
			return testenv.Run(t, 30*time.Second, "", "ssh", "-F", cfg, "-S", sock, "-l", "carol", "bastion", "whoami")
		}
		if r := whoami(); r.Code != 0 {
			t.Fatalf("before expiry: %s", r)
		}
		ahead.Store(int64(time.Until(time.Unix(int64(k.Cert.ValidBefore), 0)) + time.Second))
		if r := whoami(); r.Code == 0 {
			t.Errorf("an expired certificate's connection opened a new admin session: %s", r)
		}
		mustContain(t, "bastion log", e.logs.String(), "expired at")
		// A forward (a new direct-tcpip channel on the same connection).
		lport := testenv.FreePort(t)
		fwd := testenv.Run(t, 30*time.Second, "", "ssh", "-F", cfg, "-S", sock, "-l", "carol", "-O", "forward",
			"-L", "127.0.0.1:"+strconv.Itoa(lport)+":echo:"+portOf(e.echo), "bastion")
		if fwd.Code != 0 {
			t.Fatalf("ssh -O forward: %s", fwd)
		}
		c := dialRetry(t, "127.0.0.1:"+strconv.Itoa(lport))
		defer c.Close()
		c.Write([]byte("ping"))
		c.(interface{ CloseWrite() error }).CloseWrite()
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		b := make([]byte, 64)
		n, _ := c.Read(b)
		if strings.Contains(string(b[:n]), "ping") {
			t.Fatalf("an expired certificate's connection forwarded to echo: %q", b[:n])
		}
	})
}

// A rule that names the file-transfer commands holds for every way of
// transferring: scp in its legacy mode runs `scp -t` (an exec, judged), but
// scp by default since OpenSSH 9.0, and sftp, open the sftp subsystem,
// which reads and writes any file the login can (a cron job, ~/.bashrc)
// and must not pass unjudged.
func TestSubsystemJudgedByCommandRules(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: `
rules:
  - {name: no-transfer, on: command, match: {commands: [scp, sftp]}, action: block}
`})
	testenv.Require(t, "scp")
	testenv.Require(t, "sftp")
	remote := t.TempDir()
	src := filepath.Join(t.TempDir(), "payload")
	os.WriteFile(src, []byte("* * * * * root rm -rf /srv\n"), 0o600)

	r := testenv.Run(t, 60*time.Second, "", "scp", "-F", e.cfgPath, "-O", src, "root@web1:"+remote+"/legacy")
	if exists(filepath.Join(remote, "legacy")) {
		t.Fatalf("legacy scp wrote the file: %s", r)
	}
	r = testenv.Run(t, 60*time.Second, "", "scp", "-F", e.cfgPath, src, "root@web1:"+remote+"/modern")
	if exists(filepath.Join(remote, "modern")) {
		t.Errorf("scp (sftp mode) wrote the file past rule no-transfer: %s", r)
	}
	mustContain(t, "scp stderr", r.Stderr, "blocked by rule no-transfer")
	batch := filepath.Join(t.TempDir(), "batch")
	os.WriteFile(batch, []byte(fmt.Sprintf("put %s %s/via-sftp\n", src, remote)), 0o600)
	r = testenv.Run(t, 60*time.Second, "", "sftp", "-F", e.cfgPath, "-b", batch, "root@web1")
	if exists(filepath.Join(remote, "via-sftp")) {
		t.Errorf("sftp wrote the file past rule no-transfer: %s", r)
	}
	if r.Code == 0 {
		t.Errorf("sftp succeeded: %s", r)
	}
	// Without a rule naming it, sftp works as before (TestSFTPAndSCP).
}

// Forwards reach configured targets by their exact name and port only:
// no other spelling of a name or an address, and no other port.
func TestForwardSpellings(t *testing.T) {
	e := newEnv(t, envOptions{})
	echoPort := portOf(e.echo)
	for _, dest := range []string{
		"ECHO:" + echoPort, "echo.:" + echoPort, " echo:" + echoPort, "echo\x00:" + echoPort, "echo:22", "echo:" + e.sshPort(),
		"127.0.0.1:" + echoPort, "127.1:" + echoPort, "0x7f000001:" + echoPort, "2130706433:" + echoPort, "0177.0.0.1:" + echoPort,
		"[::1]:" + echoPort, "[::ffff:127.0.0.1]:" + echoPort, "localhost:" + echoPort, "localhost.:" + echoPort,
		"web1:2222", "WEB1:22", "web1.:22", "lo:" + e.sshPort(), "pg1:5432",
	} {
		e.expectForwardRefused(t, dest)
	}
}

// bash parses a command in the session's locale: in BIG5, GBK or
// Shift_JIS a byte of 0x81 or more takes the next byte with it, so a
// backslash or a quote after it is not one, where the bastion's parser sees
// an escape. A client's env request (LC_* and LANG are in the default
// env_allow) must not pick such a locale on a target that has one (here
// installed for sshd with LOCPATH, as a system locale would be).
func TestDoubleByteLocale(t *testing.T) {
	testenv.Require(t, "localedef")
	loc := t.TempDir()
	out, err := exec.Command("localedef", "-f", "BIG5", "-i", "zh_TW", filepath.Join(loc, "zh_TW.BIG5")).CombinedOutput()
	if _, serr := os.Stat(filepath.Join(loc, "zh_TW.BIG5", "LC_CTYPE")); serr != nil {
		t.Fatalf("localedef: %v %s", err, out)
	}
	e := newEnv(t, envOptions{extraYAML: controlRules, sshdExtra: []string{"SetEnv LOCPATH=" + loc}})
	victim := filepath.Join(t.TempDir(), "victim")
	os.MkdirAll(victim, 0o755)
	// U+4E2D is e4 b8 ad in UTF-8, which BIG5 reads as the character e4 b8
	// and the character ad 5c: the backslash after it is no backslash.
	// The bastion reads: echo "\u4e2d\" ; rm -rf victim #" (one argument).
	// bash in BIG5 reads: echo "\xe4\xb8\xad\x5c" ; rm -rf victim #"
	command := "echo \"\u4e2d\x5c\" ; rm -rf " + victim + " #\""
	for _, v := range []string{"LC_ALL=zh_TW.BIG5", "LANG=zh_TW.BIG5", "LC_CTYPE=zh_TW.BIG5", "LC_ALL=zh_TW.big5", "LC_ALL=zh_TW"} {
		name := strings.SplitN(v, "=", 2)[0]
		cmd := exec.Command("ssh", "-F", e.cfgPath, "-o", "SendEnv="+name, "root@web1", command)
		cmd.Env = append(os.Environ(), v)
		out, _ := cmd.CombinedOutput()
		if !exists(victim) {
			t.Fatalf("%s: the victim was deleted past rule no-rm-rf: %q", v, out)
		}
	}
	// An allowed name with a value bash runs when the variable is used in
	// arithmetic: $((LC_X)) evaluates the subscript's substitution.
	{
		cmd := exec.Command("ssh", "-F", e.cfgPath, "-o", "SendEnv=LC_X", "root@web1", "echo $((LC_X))")
		cmd.Env = append(os.Environ(), "LC_X=a[$(rm -rf "+victim+")]")
		out, _ := cmd.CombinedOutput()
		if !exists(victim) {
			t.Fatalf("LC_X holding a subscript: the victim was deleted past rule no-rm-rf: %q", out)
		}
	}
	// The command itself, or an earlier line of a shell, may set the locale
	// too: what bash would run reading in BIG5 is judged as well.
	r := e.ssh("", "root@web1", "LC_ALL=zh_TW.BIG5 bash -c '"+command+"'")
	if !exists(victim) {
		t.Fatalf("LC_ALL=zh_TW.BIG5 bash -c: the victim was deleted past rule no-rm-rf: %s", r)
	}
	mustContain(t, "stderr", r.Stderr, "blocked by rule no-rm-rf")
	p := e.shell(t)
	ran(t, p, "export LC_ALL=zh_TW.BIG5\r", "P> ")
	seen := stopped(t, p, command+"\r")
	if !exists(victim) {
		t.Fatalf("interactive shell in BIG5: the victim was deleted past rule no-rm-rf:\n%s", seen)
	}
	// A line that continues to a UTF-8 reader (a trailing backslash) and
	// that BIG5 runs at once.
	seen = stopped(t, p, "rm -rf "+victim+" \u4e2d\\\r")
	if !exists(victim) {
		t.Fatalf("interactive shell in BIG5, continued line: the victim was deleted past rule no-rm-rf:\n%s", seen)
	}
	// A UTF-8 locale passes, and the client learns nothing it did not ask.
	cmd := exec.Command("ssh", "-F", e.cfgPath, "-o", "SendEnv=LC_ALL", "root@web1", "echo lc=$LC_ALL")
	cmd.Env = append(os.Environ(), "LC_ALL=C.UTF-8")
	if out, err := cmd.Output(); err != nil || !strings.Contains(string(out), "lc=C.UTF-8") {
		t.Fatalf("LC_ALL=C.UTF-8: %v %q", err, out)
	}
}

// A target the config points at one of the bastion's own listeners (here
// its separate /metrics listener) is refused like its SSH and HTTP ones:
// the bastion never forwards to itself.
func TestForwardNeverReachesOwnListeners(t *testing.T) {
	port := testenv.FreePort(t)
	e := newEnv(t, envOptions{
		targets:   []string{fmt.Sprintf(`{name: webself, kind: tcp, address: "127.0.0.1:%d"}`, port)},
		extraYAML: fmt.Sprintf("metrics: {listen: \"127.0.0.1:%d\"}\n", port),
	})
	if e.app.MetricsAddr() == "" {
		t.Fatal("no metrics listener")
	}
	c := e.dialBastion(t, e.alice)
	defer c.Close()
	conn, err := c.Dial("tcp", fmt.Sprintf("webself:%d", port))
	if err == nil {
		conn.Write([]byte("GET /metrics HTTP/1.0\r\n\r\n"))
		conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		b := make([]byte, 200)
		n, _ := conn.Read(b)
		conn.Close()
		t.Fatalf("a forward reached the bastion's own metrics listener: %q", b[:n])
	}
	mustContain(t, "refusal", err.Error(), "own listener")
}

// A session channel can be opened long before it starts anything (the
// bastion starts no timer until then): the certificate is checked again
// when it starts, on a target and for admin commands alike.
func TestChannelOpenedBeforeRevocation(t *testing.T) {
	e := newEnv(t, envOptions{})
	k := e.userKey("dora", ca.Identity{User: "dora", Issuer: "https://idp.test", Subject: "u-dora", Groups: []string{"dev"}}, 0)
	hostCA := e.app.Keys.HostCA.PublicKey().Marshal()
	checker := &ssh.CertChecker{IsHostAuthority: func(a ssh.PublicKey, _ string) bool { return bytes.Equal(a.Marshal(), hostCA) }}
	var chans []ssh.Channel
	for _, user := range []string{"root@web1", "dora"} {
		c, err := ssh.Dial("tcp", e.app.SSHAddr(), &ssh.ClientConfig{User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(k.CertSigner(t))},
			HostKeyCallback: checker.CheckHostKey, Timeout: 10 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		ch, reqs, err := c.OpenChannel("session", nil)
		if err != nil {
			t.Fatal(err)
		}
		go ssh.DiscardRequests(reqs)
		chans = append(chans, ch)
	}
	if err := e.app.Store.Revoke(k.Cert.Serial, "test", "laptop lost"); err != nil {
		t.Fatal(err)
	}
	for i, cmd := range []string{"echo reached", "whoami"} {
		ch := chans[i]
		ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{cmd}))
		var out, errOut bytes.Buffer
		if ok && err == nil {
			ch.CloseWrite()
			done := make(chan struct{})
			go func() { io.Copy(&errOut, ch.Stderr()); close(done) }()
			io.Copy(&out, ch)
			<-done
		}
		if strings.Contains(out.String(), "reached") || strings.Contains(out.String(), "dora") {
			t.Errorf("%s ran on a channel opened before the certificate was revoked: %q", cmd, out.String())
		}
	}
}

// Revoking a certificate (a lost laptop) ends the sessions it has open,
// not only the next login.
func TestRevocationEndsLiveSessions(t *testing.T) {
	e := newEnv(t, envOptions{})
	k := e.userKey("erin", ca.Identity{User: "erin", Issuer: "https://idp.test", Subject: "u-erin", Groups: []string{"dev"}}, 0)
	cfg := e.writeSSHConfig("erin", k)
	p := testenv.StartPTY(t, 120, 30, "ssh", "-F", cfg, "-tt", "root@web1")
	p.Expect("# ", 30*time.Second)
	p.Send("echo before-$((6*7))\r")
	p.Expect("before-42", 20*time.Second)
	if err := e.app.Store.Revoke(k.Cert.Serial, "test", "laptop lost"); err != nil {
		t.Fatal(err)
	}
	p.Expect("has been revoked", 10*time.Second)
	if code := p.Wait(10 * time.Second); code == 0 {
		t.Errorf("the session ended with status 0")
	}
	p.Send("echo after-$((6*7))\r")
	time.Sleep(500 * time.Millisecond)
	if strings.Contains(p.Output(), "after-42") {
		t.Fatalf("a command ran after the revocation:\n%s", p.Output())
	}
}

// With sessions.disconnect_expired_cert, what a certificate opened ends when
// it expires: an interactive shell and a forward left open past the
// certificate's end are cut within a second or two, each told why. Without
// it (the default, as OpenSSH) they run on.
func TestDisconnectExpiredCert(t *testing.T) {
	for _, disconnect := range []bool{true, false} {
		t.Run(fmt.Sprintf("disconnect=%v", disconnect), func(t *testing.T) {
			var ahead atomic.Int64
			// A target that echoes as it reads, so the forward is seen
			// carrying data before the expiry.
			l, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { l.Close() })
			go func() {
				for {
					c, err := l.Accept()
					if err != nil {
						return
					}
					go func() { defer c.Close(); io.Copy(c, c) }()
				}
			}()
			opt := envOptions{
				now:     func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) },
				targets: []string{fmt.Sprintf(`{name: webecho, kind: tcp, address: "%s"}`, l.Addr())},
			}
			if disconnect {
				opt.sessions = ", disconnect_expired_cert: true"
			}
			e := newEnv(t, opt)
			id := ca.Identity{User: "carol", Issuer: "https://idp.test", Subject: "u-carol", Groups: []string{"dev"}}
			k := e.userKey("carol", id, 10*time.Minute)
			cfg := e.writeSSHConfig("carol", k)

			sh := testenv.StartPTY(t, 80, 24, "ssh", "-F", cfg, "-tt", "-l", "root@web1", "bastion")
			sh.Send("echo sh$((6*7))\r")
			sh.Expect("sh42", 20*time.Second)

			lport := testenv.FreePort(t)
			fwd := exec.Command("ssh", "-F", cfg, "-N", "-o", "ExitOnForwardFailure=yes", "-l", "carol",
				"-L", "127.0.0.1:"+strconv.Itoa(lport)+":webecho:"+portOf(l.Addr().String()), "bastion")
			if err := fwd.Start(); err != nil {
				t.Fatal(err)
			}
			t.Cleanup(func() { fwd.Process.Kill(); fwd.Wait() })
			c := dialRetry(t, "127.0.0.1:"+strconv.Itoa(lport))
			defer c.Close()
			ping := func() error {
				c.SetDeadline(time.Now().Add(10 * time.Second))
				if _, err := c.Write([]byte("ping")); err != nil {
					return err
				}
				b := make([]byte, 4)
				_, err := io.ReadFull(c, b)
				return err
			}
			if err := ping(); err != nil {
				t.Fatalf("forward before expiry: %v", err)
			}

			ahead.Store(int64(time.Until(time.Unix(int64(k.Cert.ValidBefore), 0)) + time.Second))
			if !disconnect {
				// Two ticks of the watcher that would end them.
				time.Sleep(2500 * time.Millisecond)
				sh.Send("echo still$((6*7))\r")
				sh.Expect("still42", 20*time.Second)
				if err := ping(); err != nil {
					t.Fatalf("without disconnect_expired_cert the forward was cut at expiry: %v", err)
				}
				return
			}
			sh.Expect("expired at", 20*time.Second)
			sh.Wait(20 * time.Second)
			mustContain(t, "shell", sh.Output(), "sessions.disconnect_expired_cert", "run `bastion login`")
			c.SetReadDeadline(time.Now().Add(20 * time.Second))
			if n, err := c.Read(make([]byte, 16)); err == nil {
				t.Fatalf("the forward still carries data after its certificate expired (%d bytes)", n)
			} else if ne, ok := err.(interface{ Timeout() bool }); ok && ne.Timeout() {
				t.Fatal("the forward was not closed when its certificate expired")
			}
			// Both ends audited with the reason (the shell's and the
			// forward's).
			testenv.WaitFor(t, 10*time.Second, "both session ends audited with the reason", func() bool {
				n := 0
				e.app.Store.AuditEvents(time.Time{}, func(ev recorder.AuditEvent) error {
					if strings.HasSuffix(ev.Type, ".end") && strings.Contains(ev.Reason, "disconnect_expired_cert") {
						n++
					}
					return nil
				})
				return n >= 2
			})
		})
	}
}

// sessions.max_per_user bounds what one identity holds open at once, each
// session holding a connection to a target: one more is refused with the
// reason, before the bastion connects to the target; another identity is
// not affected, and ending a session makes room.
func TestMaxSessionsPerUser(t *testing.T) {
	e := newEnv(t, envOptions{sessions: ", max_per_user: 2"})
	id := ca.Identity{User: "carol", Issuer: "https://idp.test", Subject: "u-carol", Groups: []string{"dev"}}
	k := e.userKey("carol", id, 0)
	cfg := e.writeSSHConfig("carol", k)
	exec1 := func(cfg string) testenv.Result {
		return testenv.Run(t, 30*time.Second, "", "ssh", "-F", cfg, "-l", "root@web1", "bastion", "echo reached")
	}

	sh := testenv.StartPTY(t, 80, 24, "ssh", "-F", cfg, "-tt", "-l", "root@web1", "bastion")
	sh.Send("echo one$((6*7))\r")
	sh.Expect("one42", 20*time.Second)
	sh2 := testenv.StartPTY(t, 80, 24, "ssh", "-F", cfg, "-tt", "-l", "root@web1", "bastion")
	sh2.Send("echo two$((6*7))\r")
	sh2.Expect("two42", 20*time.Second)
	dialsBefore := strings.Count(e.sshd.Log(), "Accepted certificate")

	r := exec1(cfg)
	if r.Code == 0 || strings.Contains(r.Stdout, "reached") {
		t.Fatalf("a third session of carol ran: %s", r)
	}
	mustContain(t, "refusal", r.Stderr, "carol already has 2 sessions open", "sessions.max_per_user")
	// A forward is a session too.
	fwd := testenv.Run(t, 30*time.Second, "", "ssh", "-F", cfg, "-l", "carol", "-W", "echo:"+portOf(e.echo), "bastion")
	if fwd.Code == 0 {
		t.Fatalf("a forward past carol's limit ran: %s", fwd)
	}
	mustContain(t, "forward refusal", fwd.Stderr, "sessions.max_per_user")
	// So is a session through an ssh -J hop (the hop itself holds no
	// target connection; its session does).
	hop := testenv.Run(t, 30*time.Second, "", "ssh", "-F", cfg, "root@web1", "echo reached")
	if hop.Code == 0 || strings.Contains(hop.Stdout, "reached") {
		t.Fatalf("a session through a hop past carol's limit ran: %s", hop)
	}
	mustContain(t, "hop refusal", hop.Stderr, "sessions.max_per_user")
	if n := strings.Count(e.sshd.Log(), "Accepted certificate"); n != dialsBefore {
		t.Errorf("the refused session still connected to the target (%d connections, %d before)", n, dialsBefore)
	}
	// Alice is not carol.
	if r := exec1(e.cfgPath); r.Code != 0 || !strings.Contains(r.Stdout, "reached") {
		t.Fatalf("another identity was refused: %s", r)
	}
	// Ending one makes room.
	sh.Send("exit\r")
	sh.Wait(20 * time.Second)
	testenv.WaitFor(t, 20*time.Second, "a session of carol to run again", func() bool {
		r := exec1(cfg)
		return r.Code == 0 && strings.Contains(r.Stdout, "reached")
	})
}
