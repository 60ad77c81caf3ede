package bastion_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// defaultMaxStartups is sessions.max_startups when the config leaves it out.
const defaultMaxStartups = 256

// stalledSSH connects to addr, sends an SSH version line and reads the
// bastion's, then stalls: a connection that never authenticates.
func stalledSSH(t *testing.T, addr string) net.Conn {
	t.Helper()
	return stalledSSHFrom(t, addr, "127.0.0.1")
}

// dialFrom connects to addr from the loopback address src (any 127/8
// address is the machine's own: a client from another source).
func dialFrom(t *testing.T, addr, src string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(src)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// stalledSSHFrom is stalledSSH from the loopback address src.
func stalledSSHFrom(t *testing.T, addr, src string) net.Conn {
	t.Helper()
	c := dialFrom(t, addr, src)
	t.Cleanup(func() { c.Close() })
	if _, err := c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n")); err != nil {
		t.Fatal(err)
	}
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	line, err := bufio.NewReader(c).ReadString('\n')
	if err != nil || !strings.HasPrefix(line, "SSH-2.0-") {
		t.Fatalf("a connection under sessions.max_startups got %q, %v; want the bastion's version line", line, err)
	}
	return c
}

// droppedAtOnce reports whether the server closes c without a word. The
// handshake timeout is far longer than the read deadline, so a connection
// the server holds times out here instead.
func droppedAtOnce(c net.Conn) (bool, string) {
	c.SetReadDeadline(time.Now().Add(30 * time.Second))
	b, err := io.ReadAll(c)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false, string(b)
	}
	return true, string(b)
}

// An unauthenticated client cannot make the bastion hold connections
// without bound (a few dozen KiB of memory, goroutines and a file
// descriptor each, until the handshake timeout): it holds at most
// sessions.max_startups, a quarter of them from one source, and a slot is
// given back when a connection authenticates or closes. Found: the bastion
// held every stalled connection until the handshake timeout, so one client
// opening connections faster than they time out grew it until it ran out
// of file descriptors or memory, taking every session with it. And a
// flood from four sources, each at its share, then kept every user out:
// now, with every slot taken, a connection from a source holding fewer
// takes the oldest slot of the source holding the most, so a user logs
// in while the flood goes on.
func TestMaxStartupsBoundsUnauthenticatedSSH(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.app.SSH.SetHandshakeTimeoutForTest(10 * time.Minute)
	held := make([]net.Conn, 0, defaultMaxStartups)
	for i := range defaultMaxStartups {
		// Four sources, each at its share (a quarter).
		held = append(held, stalledSSHFrom(t, e.app.SSHAddr(), fmt.Sprintf("127.0.0.%d", 2+i%4)))
	}
	extra := dialFrom(t, e.app.SSHAddr(), "127.0.0.3")
	defer extra.Close()
	extra.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
	if dropped, got := droppedAtOnce(extra); !dropped || got != "" {
		t.Fatalf("connection %d from a source at its share: dropped %v, got %q; want it closed before the handshake", defaultMaxStartups+1, dropped, got)
	}
	// The listener is full: a user from another source logs in, taking
	// the oldest stalled connection's slot, which is closed.
	client := e.dialBastionFrom(t, e.alice, "127.0.0.1")
	defer client.Close()
	if out, err := runOn(client, "whoami"); err != nil || !strings.Contains(out, "alice") {
		t.Fatalf("whoami: %q %v", out, err)
	}
	if dropped, _ := droppedAtOnce(held[0]); !dropped {
		t.Fatal("the oldest stalled connection is still open")
	}
	// Only that one: the next oldest (of the same source) is held. The
	// bastion's KEXINIT may still be unread on it (stalledSSH reads only
	// the version line), so read what is there until the deadline: a held
	// connection times out, a closed one ends (io.Copy's nil error).
	held[4].SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := io.Copy(io.Discard, held[4]); !isTimeout(err) {
		t.Fatalf("the next oldest stalled connection: %v, want it still held", err)
	}
	// An authenticated connection holds no slot: with 255 stalled and one
	// authenticated, one more stalled connection gets in.
	stalledSSHFrom(t, e.app.SSHAddr(), "127.0.0.1")
	if m := scrape(t, e); !strings.Contains(m, `bastion_startups_dropped_total{listener="ssh"} 2`) {
		t.Fatalf("the refused and the closed connection are not counted in bastion_startups_dropped_total:\n%s", grepLines(m, "startups"))
	}
}

func isTimeout(err error) bool {
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// dialBastionFrom is dialBastion from the loopback address src.
func (e *env) dialBastionFrom(t *testing.T, k *testenv.UserKey, src string) *ssh.Client {
	t.Helper()
	conn := dialFrom(t, e.app.SSHAddr(), src)
	cc, chans, reqs, err := ssh.NewClientConn(conn, e.app.SSHAddr(), &ssh.ClientConfig{
		User: "alice", Auth: []ssh.AuthMethod{ssh.PublicKeys(k.CertSigner(t))},
		HostKeyCallback: e.hostKeys(), Timeout: 10 * time.Second,
	})
	if err != nil {
		conn.Close()
		t.Fatal(err)
	}
	return ssh.NewClient(cc, chans, reqs)
}

// The direct PostgreSQL listener is bounded the same way: clients that
// never finish their startup cannot pile up.
func TestMaxStartupsBoundsUnauthenticatedPostgres(t *testing.T) {
	e := newEnv(t, envOptions{pgListen: true, startup: 10 * time.Minute})
	held := make([]net.Conn, 0, defaultMaxStartups)
	for i := range defaultMaxStartups {
		c := dialFrom(t, e.app.PostgresAddr(), fmt.Sprintf("127.0.0.%d", 1+i%4))
		t.Cleanup(func() { c.Close() })
		held = append(held, c)
	}
	extra := dialFrom(t, e.app.PostgresAddr(), "127.0.0.2")
	defer extra.Close()
	if dropped, got := droppedAtOnce(extra); !dropped || got != "" {
		t.Fatalf("connection %d from a source at its share: dropped %v, got %q; want it closed", defaultMaxStartups+1, dropped, got)
	}
	// The listener is full: a client from another source is served,
	// taking the oldest held connection's slot, which is closed.
	other := dialFrom(t, e.app.PostgresAddr(), "127.0.0.5")
	defer other.Close()
	other.Write([]byte{0, 0, 0, 8, 4, 210, 22, 47})
	other.SetReadDeadline(time.Now().Add(30 * time.Second))
	var s [1]byte
	if _, err := io.ReadFull(other, s[:]); err != nil || s[0] != 'S' {
		t.Fatalf("a client from another source on a full listener: got %q, %v; want S", s[:], err)
	}
	if dropped, _ := droppedAtOnce(held[0]); !dropped {
		t.Fatal("the oldest held connection is still open")
	}
	// One held connection sends an SSLRequest and is answered: the held
	// ones are being served, not dropped.
	held[1].Write([]byte{0, 0, 0, 8, 4, 210, 22, 47})
	held[1].SetReadDeadline(time.Now().Add(30 * time.Second))
	var b [1]byte
	if _, err := io.ReadFull(held[1], b[:]); err != nil || b[0] != 'S' {
		t.Fatalf("a held connection's SSLRequest: got %q, %v; want S", b[:], err)
	}
}

// One source cannot take every startup slot: past a quarter of
// sessions.max_startups from one address, its new connections are closed
// at once while another source's still get in. Found: one client opening
// 256 connections that never log in kept every other user from logging in
// for as long as it kept them open (the limit was global only).
func TestMaxStartupsPerSource(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.app.SSH.SetHandshakeTimeoutForTest(10 * time.Minute)
	share := defaultMaxStartups / 4
	held := make([]net.Conn, 0, share)
	for range share {
		held = append(held, stalledSSHFrom(t, e.app.SSHAddr(), "127.0.0.7"))
	}
	extra := dialFrom(t, e.app.SSHAddr(), "127.0.0.7")
	defer extra.Close()
	extra.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
	if dropped, got := droppedAtOnce(extra); !dropped || got != "" {
		t.Fatalf("connection %d from one source: dropped %v, got %q; want it closed before the handshake", share+1, dropped, got)
	}
	// Everyone else still gets in: a stalled client from another source,
	// and a user (from 127.0.0.1) who logs in and runs a command.
	stalledSSHFrom(t, e.app.SSHAddr(), "127.0.0.8")
	client := e.dialBastion(t, e.alice)
	defer client.Close()
	if out, err := runOn(client, "whoami"); err != nil || !strings.Contains(out, "alice") {
		t.Fatalf("whoami: %q %v", out, err)
	}
	// The source's closed connection gives its share back.
	held[0].Close()
	for i := 0; ; i++ {
		c := dialFrom(t, e.app.SSHAddr(), "127.0.0.7")
		c.Write([]byte("SSH-2.0-OpenSSH_9.6\r\n"))
		c.SetReadDeadline(time.Now().Add(10 * time.Second))
		line, _ := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if strings.HasPrefix(line, "SSH-2.0-") {
			break
		}
		if i == 100 {
			t.Fatal("a slot the source gave back was never reused")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (e *env) tryDialBastion(t *testing.T, k *testenv.UserKey) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", e.app.SSHAddr(), &ssh.ClientConfig{
		User: "alice", Auth: []ssh.AuthMethod{ssh.PublicKeys(k.CertSigner(t))},
		HostKeyCallback: e.hostKeys(), Timeout: 10 * time.Second,
	})
	if err != nil {
		return nil
	}
	return c
}

func runOn(c *ssh.Client, cmd string) (string, error) {
	s, err := c.NewSession()
	if err != nil {
		return "", err
	}
	defer s.Close()
	out, err := s.CombinedOutput(cmd)
	return string(out), err
}

// scrape returns the bastion's /metrics.
func scrape(t *testing.T, e *env) string {
	t.Helper()
	resp, err := http.Get("http://" + e.app.HTTPAddr() + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != 200 {
		t.Fatalf("/metrics: HTTP %d %v", resp.StatusCode, err)
	}
	return string(b)
}

// defaultMaxChannels is sessions.max_channels when the config leaves it out.
const defaultMaxChannels = 64

// One SSH connection cannot open channels without bound: each session
// channel to a target costs the bastion an upstream connection (a
// handshake, a target certificate, goroutines and a file descriptor) for
// one CHANNEL_OPEN message from the client, which it can send by the
// thousand without waiting for answers. Past sessions.max_channels a new
// channel is refused with "resource shortage" and a reason, and closing
// one frees its slot. Found: every channel was accepted, so one user could
// exhaust the bastion's file descriptors and the target's MaxStartups,
// locking everyone else out of that target.
func TestMaxChannelsPerConnection(t *testing.T) {
	e := newEnv(t, envOptions{})
	client := e.dialAs(t, "root@web1")
	defer client.Close()
	var open []ssh.Channel
	for i := range defaultMaxChannels {
		ch, reqs, err := client.OpenChannel("session", nil)
		if err != nil {
			t.Fatalf("channel %d of %d: %v", i+1, defaultMaxChannels, err)
		}
		go ssh.DiscardRequests(reqs)
		open = append(open, ch)
	}
	_, _, err := client.OpenChannel("session", nil)
	var oe *ssh.OpenChannelError
	if !errors.As(err, &oe) || oe.Reason != ssh.ResourceShortage || !strings.Contains(oe.Message, "sessions.max_channels") {
		t.Fatalf("channel %d: got %v, want resource shortage naming sessions.max_channels", defaultMaxChannels+1, err)
	}
	// Direct-tcpip channels count too.
	if _, _, err := client.OpenChannel("direct-tcpip", ssh.Marshal(struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}{"echo", 7, "127.0.0.1", 1})); !errors.As(err, &oe) || oe.Reason != ssh.ResourceShortage {
		t.Fatalf("a forward past the limit: got %v, want resource shortage", err)
	}
	// A channel the client closes gives its slot back.
	open[0].Close()
	for i := 0; ; i++ {
		ch, reqs, err := client.OpenChannel("session", nil)
		if err == nil {
			go ssh.DiscardRequests(reqs)
			ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{"echo still-here"}))
			if err != nil || !ok {
				t.Fatalf("exec on the reopened channel: %v %v", ok, err)
			}
			out, _ := io.ReadAll(ch)
			if string(out) != "still-here\n" {
				t.Fatalf("got %q", out)
			}
			break
		}
		if i == 200 {
			t.Fatalf("a closed channel's slot was never given back: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	// A finished session gives its slot back too.
	ch, reqs, err := client.OpenChannel("session", nil)
	for i := 0; err != nil && i < 200; i++ {
		time.Sleep(50 * time.Millisecond)
		ch, reqs, err = client.OpenChannel("session", nil)
	}
	if err != nil {
		t.Fatalf("a finished session's slot was never given back: %v", err)
	}
	go ssh.DiscardRequests(reqs)
	ch.Close()
}

// Inside an intercepted ssh -J hop the nested connection is bounded the
// same way: its channels cost upstream connections as well.
func TestMaxChannelsInsideHop(t *testing.T) {
	e := newEnv(t, envOptions{sessions: ", max_channels: 2"})
	outer := e.dialBastion(t, e.alice)
	defer outer.Close()
	hop, reqs, err := outer.OpenChannel("direct-tcpip", ssh.Marshal(struct {
		Host     string
		Port     uint32
		OrigHost string
		OrigPort uint32
	}{"web1", 22, "127.0.0.1", 1}))
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	a, b := net.Pipe()
	go func() { io.Copy(hop, a); hop.CloseWrite() }()
	go func() { io.Copy(a, hop); a.Close() }()
	cc, chans, greqs, err := ssh.NewClientConn(b, "web1:22", &ssh.ClientConfig{
		User: "root", Auth: []ssh.AuthMethod{ssh.PublicKeys(e.alice.CertSigner(t))},
		HostKeyCallback: e.hostKeys(),
	})
	if err != nil {
		t.Fatal(err)
	}
	inner := ssh.NewClient(cc, chans, greqs)
	defer inner.Close()
	for i := range 2 {
		if _, r, err := inner.OpenChannel("session", nil); err != nil {
			t.Fatalf("inner channel %d: %v", i+1, err)
		} else {
			go ssh.DiscardRequests(r)
		}
	}
	_, _, err = inner.OpenChannel("session", nil)
	var oe *ssh.OpenChannelError
	if !errors.As(err, &oe) || oe.Reason != ssh.ResourceShortage {
		t.Fatalf("inner channel 3: got %v, want resource shortage", err)
	}
}

// dialAs connects to the bastion as user (a route such as root@web1).
func (e *env) dialAs(t *testing.T, user string) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", e.app.SSHAddr(), &ssh.ClientConfig{
		User: user, Auth: []ssh.AuthMethod{ssh.PublicKeys(e.alice.CertSigner(t))},
		HostKeyCallback: e.hostKeys(), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// Channel and request types are named by the client: a refusal must not
// add a metric series per name (each kept for the life of the process,
// and a name can be a quarter MiB). Found: bastion_channels_refused_total
// took the type as its label, so a user sending refused channels or
// requests with fresh names grew the bastion's memory, and every scrape,
// without bound.
func TestRefusedTypesAddNoMetricSeries(t *testing.T) {
	e := newEnv(t, envOptions{})
	client := e.dialAs(t, "root@web1")
	defer client.Close()
	name := func(i int) string { return fmt.Sprintf("x-%d-%s", i, strings.Repeat("z", 4096)) }
	for i := range 20 {
		if _, _, err := client.OpenChannel(name(i), nil); err == nil {
			t.Fatalf("channel type %d was accepted", i)
		}
	}
	ch, reqs, err := client.OpenChannel("session", nil)
	if err != nil {
		t.Fatal(err)
	}
	go ssh.DiscardRequests(reqs)
	for i := range 20 {
		if ok, err := ch.SendRequest(name(100+i), true, nil); ok || err != nil {
			t.Fatalf("request type %d: %v %v", i, ok, err)
		}
	}
	m := scrape(t, e)
	if strings.Contains(m, "x-") || len(m) > 256<<10 {
		t.Fatalf("/metrics holds client-named series (%d bytes)", len(m))
	}
	if !strings.Contains(m, `bastion_channels_refused_total{type="other"} 40`) {
		t.Fatalf("refusals of unknown types are not counted as other:\n%s", grepLines(m, "bastion_channels_refused_total"))
	}
	// Nor does the log or the audit record of a refusal carry the whole name.
	if strings.Contains(e.logs.String(), strings.Repeat("z", 200)) {
		t.Fatal("the log holds a client-named type whole")
	}
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// A command continued over many lines at a pty (a here-document, an open
// quote) is judged whole at every Enter, so its size must be bounded as on
// the no-pty path: past 64 KiB it is refused instead of parsed. Found:
// nothing bounded it, and each further Enter (one byte) re-parsed all of
// it: 13 ms of the bastion's CPU per Enter at 128 KiB, 37 ms at 256 KiB,
// over 20 s for one Enter once a few hundred KiB more had been typed.
func TestContinuedCommandBounded(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	p := e.shell(t)
	p.Send("cat <<'EOF'\r")
	p.Expect("> ", 20*time.Second)
	line := strings.Repeat("a", 2000)
	for range 32 {
		p.Send(line + "\r")
		p.Expect("> ", 60*time.Second)
	}
	p.Send(line + "\r") // past 64 KiB with the lines before it
	p.Expect("longer than 64 KiB", 60*time.Second)
	p.Expect("P> ", 60*time.Second)
	p.Send("echo ok-$((1+1))\r")
	p.Expect("ok-2", 60*time.Second)
}

// A certificate offered at login is audited when refused, and everything
// in it is the client's to choose: an unauthenticated client must not be
// able to write large audit records. Found: the key ID and principal went
// into the record whole, so each key offered (ten per connection, no
// signature needed) wrote as much as the client put in the certificate —
// 100 KB here, a quarter MiB at most — to the hash-chained audit log, which
// nothing prunes: disk filled by anyone who can reach the port.
func TestRefusedCertificateAuditBounded(t *testing.T) {
	e := newEnv(t, envOptions{})
	big := strings.Repeat("k", 100_000)
	var signers []ssh.Signer
	for i := range 5 {
		_, caKey, _ := ed25519.GenerateKey(rand.Reader)
		caSigner, _ := ssh.NewSignerFromKey(caKey)
		_, userKey, _ := ed25519.GenerateKey(rand.Reader)
		userSigner, _ := ssh.NewSignerFromKey(userKey)
		cert := &ssh.Certificate{Key: userSigner.PublicKey(), Serial: uint64(i + 1), CertType: ssh.UserCert, KeyId: big,
			ValidPrincipals: []string{"p" + big}, ValidBefore: ssh.CertTimeInfinity}
		if i%2 == 1 {
			// Claims the bastion's CA, with a signature of another key.
			cert.SignatureKey = e.app.Keys.UserCA.PublicKey()
		}
		if err := cert.SignCert(rand.Reader, caSigner); err != nil {
			t.Fatal(err)
		}
		if i%2 == 1 {
			cert.SignatureKey = e.app.Keys.UserCA.PublicKey()
		}
		cs, err := ssh.NewCertSigner(cert, userSigner)
		if err != nil {
			t.Fatal(err)
		}
		signers = append(signers, cs)
	}
	start := time.Now()
	_, err := ssh.Dial("tcp", e.app.SSHAddr(), &ssh.ClientConfig{User: "alice", Auth: []ssh.AuthMethod{ssh.PublicKeys(signers...)},
		HostKeyCallback: e.hostKeys(), Timeout: 10 * time.Second})
	if err == nil {
		t.Fatal("logged in with forged certificates")
	}
	n, size := 0, 0
	e.app.Store.AuditEvents(start.Add(-time.Second), func(ev recorder.AuditEvent) error {
		if ev.Type == "ssh.login" {
			b, _ := json.Marshal(ev)
			n, size = n+1, size+len(b)
		}
		return nil
	})
	if n == 0 {
		t.Fatal("the refused certificates were not audited")
	}
	if size/n > 4096 {
		t.Fatalf("%d refused certificates wrote %d bytes of audit records (%d each); want each bounded", n, size, size/n)
	}
}

// One user cannot bury the approvers' list (or flood the webhook) with
// held commands: past approvals.max_pending requests waiting, one more is
// denied at once with the reason. Found: every held command opened a
// request, each also holding its session and upstream connection until
// the rule's timeout, so a loop of held commands listed thousands for the
// approvers, among which one that matters is easy to approve by mistake.
func TestPendingApprovalsPerUserBounded(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	dir := t.TempDir()
	client := e.dialAs(t, "root@web1")
	defer client.Close()
	exec := func(i int) ssh.Channel {
		ch, reqs, err := client.OpenChannel("session", nil)
		if err != nil {
			t.Fatal(err)
		}
		go ssh.DiscardRequests(reqs)
		if ok, err := ch.SendRequest("exec", true, ssh.Marshal(struct{ Command string }{fmt.Sprintf("touch %s/approve-%d", dir, i)})); err != nil || !ok {
			t.Fatalf("exec %d: %v %v", i, ok, err)
		}
		return ch
	}
	waiting := func() int {
		n := 0
		alice := ca.Identity{User: "alice", Issuer: "https://idp.test", Subject: "u-alice", Groups: []string{"dev"}}
		for _, r := range e.app.SSH.Requests(e.app.SSH.Caller(alice, "")) {
			if r.User == "alice" {
				n++
			}
		}
		return n
	}
	for i := range 10 {
		ch := exec(i)
		defer ch.Close()
		for j := 0; waiting() < i+1; j++ {
			if j == 400 {
				t.Fatalf("request %d never listed", i+1)
			}
			time.Sleep(25 * time.Millisecond)
		}
	}
	ch := exec(10)
	defer ch.Close()
	stderr, _ := io.ReadAll(ch.Stderr())
	if !strings.Contains(string(stderr), "approvals.max_pending") {
		t.Fatalf("the 11th held command: stderr %q; want a denial naming approvals.max_pending", stderr)
	}
	if n := waiting(); n != 10 {
		t.Fatalf("%d requests listed, want 10", n)
	}
}

// Refused certificates are audited within a bound: a forged certificate
// costs its sender nothing but a connection, so without one a loop of
// them wrote a record each to the hash-chained log (and every sink),
// which nothing prunes. Past the bound they are counted and a summary
// record says how many, why and from where; a refusal of a certificate
// the bastion signed (expired, revoked) has its own bucket, so a flood of
// forgeries does not hide it.
func TestRefusedLoginAuditsRateLimited(t *testing.T) {
	e := newEnv(t, envOptions{})
	e.app.SSH.SetRefusalAuditLimitForTest(5, 0.001, 300*time.Millisecond)
	hostCA := e.app.Keys.HostCA.PublicKey().Marshal()
	checker := &ssh.CertChecker{IsHostAuthority: func(a ssh.PublicKey, _ string) bool { return bytes.Equal(a.Marshal(), hostCA) }}
	certSigner := func(sign ssh.Signer, validBefore uint64, principal string) ssh.Signer {
		_, userKey, _ := ed25519.GenerateKey(rand.Reader)
		userSigner, _ := ssh.NewSignerFromKey(userKey)
		cert := &ssh.Certificate{Key: userSigner.PublicKey(), Serial: 7, CertType: ssh.UserCert, KeyId: "flood",
			ValidPrincipals: []string{principal}, ValidAfter: 1, ValidBefore: validBefore}
		if err := cert.SignCert(rand.Reader, sign); err != nil {
			t.Fatal(err)
		}
		cs, err := ssh.NewCertSigner(cert, userSigner)
		if err != nil {
			t.Fatal(err)
		}
		return cs
	}
	_, caKey, _ := ed25519.GenerateKey(rand.Reader)
	forgerCA, _ := ssh.NewSignerFromKey(caKey)
	forged := certSigner(forgerCA, ssh.CertTimeInfinity, "mallory")
	expired := certSigner(e.app.Keys.UserCA, uint64(time.Now().Add(-time.Hour).Unix()), "alice")
	login := func(s ssh.Signer) {
		c, err := ssh.Dial("tcp", e.app.SSHAddr(), &ssh.ClientConfig{User: "alice", Auth: []ssh.AuthMethod{ssh.PublicKeys(s)},
			HostKeyCallback: checker.CheckHostKey, Timeout: 10 * time.Second})
		if err == nil {
			c.Close()
			t.Fatal("logged in with a refused certificate")
		}
	}
	start := time.Now()
	const flood = 40
	for range flood {
		login(forged)
	}
	login(expired)
	// What is held back is summed up every 300 ms, so a flood that takes
	// longer (a loaded machine) is summed up in more than one record:
	// together they account for every refusal not written one by one.
	var forgedN, ownN, held int
	var summaries []recorder.AuditEvent
	deadline := time.Now().Add(30 * time.Second)
	for held < flood-5 && time.Now().Before(deadline) {
		time.Sleep(100 * time.Millisecond)
		forgedN, ownN, held, summaries = 0, 0, 0, nil
		e.app.Store.AuditEvents(start.Add(-time.Second), func(ev recorder.AuditEvent) error {
			switch {
			case ev.Type == "ssh.login" && ev.Fields["claimed_principal"] == "mallory":
				forgedN++
			case ev.Type == "ssh.login" && ev.User == "alice":
				ownN++
			case ev.Type == "audit.suppressed":
				summaries = append(summaries, ev)
				n, _ := strconv.Atoi(ev.Fields["count"])
				held += n
			}
			return nil
		})
	}
	if forgedN != 5 {
		t.Errorf("%d refusals of forged certificates audited one by one, want the burst of 5", forgedN)
	}
	if ownN != 1 {
		t.Errorf("the refusal of an expired certificate of ours was audited %d times, want 1", ownN)
	}
	if held != flood-5 {
		t.Fatalf("summaries of the refusals held back count %d, want %d: %+v", held, flood-5, summaries)
	}
	for _, summary := range summaries {
		f := summary.Fields
		if f["type"] != "ssh.login" || !strings.HasPrefix(f["last_remote"], "127.0.0.1:") ||
			f["sources"] != "127.0.0.1="+f["count"] || !strings.Contains(f["reasons"], "=") || summary.Outcome != "refused" {
			t.Fatalf("summary: %+v", summary)
		}
	}
	if rep, err := e.app.Store.VerifyAudit(); err != nil || !rep.Intact {
		t.Fatalf("verify audit: %+v %v", rep, err)
	}
}
