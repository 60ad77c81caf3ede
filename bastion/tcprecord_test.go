package bastion_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// startCmd runs a server process for the test's lifetime.
func startCmd(t *testing.T, name string, args ...string) {
	t.Helper()
	cmd := exec.Command(name, args...)
	cmd.Stdout, cmd.Stderr = os.Stderr, os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatalf("%s: %v", name, err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
}

func waitListen(t *testing.T, addr string) {
	t.Helper()
	c := dialRetry(t, addr)
	c.Close()
}

// forwardTo runs `ssh -N -L` to a target through the bastion and returns
// the local address.
func (e *env) forwardTo(t *testing.T, target string, port int) string {
	t.Helper()
	lport := testenv.FreePort(t)
	testenv.StartPTY(t, 80, 24, "ssh", "-F", e.cfgPath, "-N", "-o", "ExitOnForwardFailure=yes",
		"-L", fmt.Sprintf("127.0.0.1:%d:%s:%d", lport, target, port), "bastion")
	waitListenNoConsume(t, lport) // a probe would be a session of its own
	return fmt.Sprintf("127.0.0.1:%d", lport)
}

// tcpSession returns the ID of the newest tcp session to target.
func (e *env) tcpSession(t *testing.T, target string) string {
	t.Helper()
	return e.endedSession(t, "tcp", target)
}

// endedSession waits until the newest session of the kind to the target
// has ended and returns its ID. The newest, not any ended one: an earlier
// session (forwardPG's probe of its port is a postgres session of its own)
// is ended while the one the test made may not be yet, as the client sees
// its connection close before the bastion commits the session's end.
func (e *env) endedSession(t *testing.T, kind, target string) string {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		out := e.ssh("", "bastion", "sessions", "--json", "--kind", kind, "--target", target)
		var newest recorder.SessionInfo
		for _, line := range strings.Split(out.Stdout, "\n") {
			var s recorder.SessionInfo
			if json.Unmarshal([]byte(line), &s) == nil && s.ID != "" && (newest.ID == "" || s.Start.After(newest.Start)) {
				newest = s
			}
		}
		if newest.Status == recorder.StatusEnded {
			return newest.ID
		}
	}
	t.Fatalf("no ended %s session to %s", kind, target)
	return ""
}

// waitEnded waits until the session is no longer live: the client can see
// its exit before the bastion has committed the end of its recording.
func (e *env) waitEnded(t *testing.T, id string) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); time.Now().Before(deadline); time.Sleep(100 * time.Millisecond) {
		out := e.ssh("", "bastion", "sessions", "--json")
		for _, line := range strings.Split(out.Stdout, "\n") {
			if strings.Contains(line, `"id":"`+id+`"`) && !strings.Contains(line, `"status":"live"`) {
				return
			}
		}
	}
	t.Fatalf("session %s still live after 30s", id)
}

func tshark(t *testing.T, pcap string, args ...string) string {
	t.Helper()
	cmd := exec.Command("tshark", append([]string{"-r", pcap}, args...)...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("tshark %v: %v\n%s", args, err, stderr.String())
	}
	return string(out)
}

// followRaw reassembles both directions of stream 0 from tshark's
// `follow,tcp,raw` (server-to-client lines are indented).
func followRaw(t *testing.T, out string) (client, server []byte) {
	t.Helper()
	started := false
	for _, line := range strings.Split(out, "\n") {
		if strings.HasPrefix(line, "Node 1:") {
			started = true
			continue
		}
		if !started || strings.HasPrefix(line, "====") || strings.TrimSpace(line) == "" {
			continue
		}
		b, err := hex.DecodeString(strings.TrimSpace(line))
		if err != nil {
			t.Fatalf("follow line %q: %v", line, err)
		}
		if strings.HasPrefix(line, "\t") {
			server = append(server, b...)
		} else {
			client = append(client, b...)
		}
	}
	return client, server
}

// A tcp target's sessions are recorded in full: an HTTP exchange through
// ssh -L is exported as a capture the real tshark reads, and 10 MiB each
// way over socat comes back from the export byte for byte, verified.
func TestTCPContentRecording(t *testing.T) {
	for _, tool := range []string{"tshark", "python3", "curl", "socat"} {
		testenv.Require(t, tool)
	}
	dir := t.TempDir()
	os.WriteFile(filepath.Join(dir, "hello.txt"), []byte("hello through the bastion\n"), 0o644)
	httpPort := testenv.FreePort(t)
	lineHost, _, _ := net.SplitHostPort("127.0.0.1:0")
	linePort := testenv.FreePort(t)
	e := newEnv(t, envOptions{targets: []string{
		fmt.Sprintf(`{name: webhttp, kind: tcp, address: "127.0.0.1:%d"}`, httpPort),
		fmt.Sprintf(`{name: webline, kind: tcp, address: "%s:%d"}`, lineHost, linePort),
	}})
	startCmd(t, "python3", "-m", "http.server", fmt.Sprint(httpPort), "--bind", "127.0.0.1", "--directory", dir)
	waitListen(t, fmt.Sprintf("127.0.0.1:%d", httpPort))

	t.Run("http", func(t *testing.T) {
		addr := e.forwardTo(t, "webhttp", httpPort)
		out, err := exec.Command("curl", "-sS", "http://"+addr+"/hello.txt?via=bastion").CombinedOutput()
		if err != nil || string(out) != "hello through the bastion\n" {
			t.Fatalf("curl: %v %s", err, out)
		}
		id := e.tcpSession(t, "webhttp")
		pcap := filepath.Join(t.TempDir(), "http.pcap")
		exp := e.ssh("", "bastion", "export", id, "--format", "pcap")
		if exp.Code != 0 {
			t.Fatalf("export: %s", exp)
		}
		os.WriteFile(pcap, []byte(exp.Stdout), 0o600)
		fields := tshark(t, pcap, "-T", "fields", "-e", "http.request.method", "-e", "http.request.uri", "-e", "http.response.code", "-Y", "http")
		if !strings.Contains(fields, "GET\t/hello.txt?via=bastion") || !strings.Contains(fields, "200") {
			t.Errorf("tshark http: %q", fields)
		}
		client, server := followRaw(t, tshark(t, pcap, "-q", "-z", "follow,tcp,raw,0"))
		if !bytes.HasPrefix(client, []byte("GET /hello.txt?via=bastion HTTP/1.1\r\n")) || !bytes.HasSuffix(server, []byte("\r\n\r\nhello through the bastion\n")) {
			t.Errorf("follow: client %q, server %q", client, server)
		}
		// Replay shows a readable timeline.
		tl := e.ssh("", "bastion", "export", id)
		if !strings.Contains(tl.Stdout, "client -> target") || !strings.Contains(tl.Stdout, "|GET /hello.txt?v|") {
			t.Errorf("timeline: %s", tl.Stdout)
		}
		if v := e.ssh("", "bastion", "verify", id); v.Code != 0 || !strings.Contains(v.Stdout, "intact") {
			t.Errorf("verify: %s", v)
		}
	})

	t.Run("10 MiB each way", func(t *testing.T) {
		rng := rand.New(rand.NewPCG(3, 4))
		mk := func(name string) (string, []byte) {
			b := make([]byte, 10<<20)
			for i := range b {
				b[i] = byte(rng.Uint32())
			}
			p := filepath.Join(dir, name)
			os.WriteFile(p, b, 0o600)
			return p, b
		}
		clientFile, clientData := mk("client.bin")
		serverFile, serverData := mk("server.bin")
		received := filepath.Join(dir, "received.bin")
		// -t on both socats: after one direction ends, socat waits only
		// that long (0.5 s by default) for the other before it closes
		// everything; on a loaded machine the 10 MiB back takes longer.
		startCmd(t, "socat", "-t", "300", fmt.Sprintf("TCP-LISTEN:%d,bind=127.0.0.1,reuseaddr", linePort),
			fmt.Sprintf("SYSTEM:exec 3<&0; cat <&3 > %s & cat %s; wait", received, serverFile))
		waitListenNoConsume(t, linePort)
		addr := e.forwardTo(t, "webline", linePort)
		cmd := exec.Command("socat", "-t", "300", "-", "TCP:"+addr)
		f, _ := os.Open(clientFile)
		defer f.Close()
		cmd.Stdin = f
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		got, err := cmd.Output()
		if err != nil {
			t.Fatalf("socat client: %v: %s", err, stderr.String())
		}
		if !bytes.Equal(got, serverData) {
			t.Fatalf("the client got %d bytes, want the server's %d", len(got), len(serverData))
		}
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			if b, _ := os.ReadFile(received); bytes.Equal(b, clientData) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatal("the server did not receive the client's bytes")
			}
		}
		id := e.tcpSession(t, "webline")
		pcap := filepath.Join(t.TempDir(), "line.pcap")
		// 20 MiB of capture: more time than e.ssh's minute on a loaded machine.
		exp := testenv.Run(t, 5*time.Minute, "", "ssh", "-F", e.cfgPath, "bastion", "export", id, "--format", "pcap")
		if exp.Code != 0 {
			t.Fatalf("export: %s", exp)
		}
		os.WriteFile(pcap, []byte(exp.Stdout), 0o600)
		c, s := followRaw(t, tshark(t, pcap, "-q", "-z", "follow,tcp,raw,0"))
		if sha256.Sum256(c) != sha256.Sum256(clientData) || sha256.Sum256(s) != sha256.Sum256(serverData) {
			t.Fatalf("the export's streams differ: client %d bytes, server %d bytes", len(c), len(s))
		}
		if v := e.ssh("", "bastion", "verify", id); v.Code != 0 {
			t.Errorf("verify: %s", v)
		}
	})
}

// waitListenNoConsume waits until something listens on the loopback port
// without connecting to it (a one-shot server would take the probe as its
// client).
func waitListenNoConsume(t *testing.T, port int) {
	t.Helper()
	want := fmt.Sprintf(":%04X ", port)
	for deadline := time.Now().Add(20 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		b, _ := os.ReadFile("/proc/net/tcp")
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) > 3 && strings.HasSuffix(f[1]+" ", want) && f[3] == "0A" {
				return
			}
		}
	}
	t.Fatalf("nothing listens on port %d", port)
}

// What a TCP session's content can do to whoever reads its recording, and
// how a forward the bastion ends is shown.
func TestTCPRecordingEdges(t *testing.T) {
	testenv.Require(t, "tshark")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(c, c); c.Close() }() // echoes as it reads
		}
	}()
	// A target that answers, then resets the connection.
	rl, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { rl.Close() })
	go func() {
		for {
			c, err := rl.Accept()
			if err != nil {
				return
			}
			go func() {
				b := make([]byte, 5)
				io.ReadFull(c, b)
				c.Write([]byte("bye\n"))
				c.(*net.TCPConn).SetLinger(0)
				c.Close()
			}()
		}
	}()
	testenv.RequirePostgres(t)
	e := newEnv(t, envOptions{idle: 3 * time.Second, pgTarget: true, targets: []string{
		fmt.Sprintf(`{name: webstream, kind: tcp, address: %q}`, ln.Addr().String()),
		fmt.Sprintf(`{name: webreset, kind: tcp, address: %q}`, rl.Addr().String()),
	}})
	c := e.dialBastion(t, e.alice)
	defer c.Close()
	dial := func(t *testing.T) net.Conn {
		conn, err := c.Dial("tcp", "webstream:"+portOf(ln.Addr().String()))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		return conn
	}
	echo := func(t *testing.T, conn net.Conn, msg string) {
		conn.Write([]byte(msg))
		buf := make([]byte, len(msg))
		if _, err := io.ReadFull(conn, buf); err != nil || string(buf) != msg {
			t.Fatalf("echo: %q %v", buf, err)
		}
	}

	// The payload is the attacker's: escape sequences, bidi overrides, NULs,
	// C1 controls and a long line reach the auditor's terminal through
	// replay and export only as hex and dots.
	t.Run("hostile content", func(t *testing.T) {
		conn := dial(t)
		hostile := "\x1b]0;pwned\x07\x1b[2J\u202eevil\x00\x9b31m\x1bP+q\x1b\\" + strings.Repeat("A", 100<<10) + "\r\n"
		echo(t, conn, hostile)
		conn.(interface{ CloseWrite() error }).CloseWrite()
		io.ReadAll(conn)
		id := e.tcpSession(t, "webstream")
		for _, args := range [][]string{{"replay", id, "--speed", "1000"}, {"export", id}, {"export", id, "--raw"}} {
			r := e.ssh("", append([]string{"bastion"}, args...)...)
			if r.Code != 0 {
				t.Fatalf("%v: %s", args, r)
			}
			for _, bad := range []string{"\x1b]", "\x1b[2J", "\x1bP", "\u202e", "\x00", "\x9b", "\\u001b]", "\\u202e", "\\u0000"} {
				if strings.Contains(r.Stdout, bad) {
					t.Errorf("%v prints %q", args, bad)
				}
			}
			mustContain(t, fmt.Sprint(args), r.Stdout, "|.]0;pwned..[2J..|", "bytes elided")
		}
	})

	// The target resets the connection while the client still sends.
	t.Run("target resets", func(t *testing.T) {
		conn, err := c.Dial("tcp", "webreset:"+portOf(rl.Addr().String()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		conn.SetDeadline(time.Now().Add(30 * time.Second))
		conn.Write([]byte("hello"))
		got, _ := io.ReadAll(conn)
		conn.Write([]byte("more"))
		if string(got) != "bye\n" {
			t.Fatalf("got %q", got)
		}
		id := e.tcpSession(t, "webreset")
		mustContain(t, "timeline", e.ssh("", "bastion", "export", id).Stdout, "|bye.|", "connection server rst")
		pcap := filepath.Join(t.TempDir(), "rst.pcap")
		exp := e.ssh("", "bastion", "export", id, "--format", "pcap")
		os.WriteFile(pcap, []byte(exp.Stdout), 0o600)
		closes := tshark(t, pcap, "-Y", "tcp.flags.fin == 1 || tcp.flags.reset == 1", "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.flags.reset")
		closes = strings.NewReplacer("True", "1", "False", "0").Replace(closes)
		if strings.TrimSpace(closes) != portOf(rl.Addr().String())+"\t1" {
			t.Errorf("closing frames (port, rst): %q, want the target's RST alone", closes)
		}
	})

	// The bastion ends the forward (idle past sessions.idle_timeout):
	// neither side closed it, and the recording must not say they did.
	t.Run("cut by the bastion", func(t *testing.T) {
		conn := dial(t)
		echo(t, conn, "hello\n")
		io.ReadAll(conn) // until the idle timeout
		id := e.tcpSession(t, "webstream")
		tl := e.ssh("", "bastion", "export", id)
		mustContain(t, "timeline", tl.Stdout, "session ended: idle timeout", "connection cut by the bastion")
		if strings.Contains(tl.Stdout, " fin") {
			t.Errorf("the timeline shows a side closing:\n%s", tl.Stdout)
		}
		pcap := filepath.Join(t.TempDir(), "cut.pcap")
		exp := e.ssh("", "bastion", "export", id, "--format", "pcap")
		os.WriteFile(pcap, []byte(exp.Stdout), 0o600)
		closes := tshark(t, pcap, "-Y", "tcp.flags.fin == 1 || tcp.flags.reset == 1", "-T", "fields", "-e", "tcp.srcport", "-e", "tcp.flags.fin", "-e", "tcp.flags.reset")
		closes = strings.NewReplacer("True", "1", "False", "0").Replace(closes)
		lines := strings.Split(strings.TrimSpace(closes), "\n")
		if len(lines) != 2 || !strings.HasPrefix(lines[0], portOf(ln.Addr().String())+"\t0\t1") || !strings.HasSuffix(lines[1], "\t0\t1") {
			t.Errorf("closing frames (port, fin, rst): %q, want the target's RST then the client's", lines)
		}
	})

	// A PostgreSQL session the bastion ends (a query quiet past the idle
	// timeout): its capture resets, as a tcp forward's does.
	t.Run("PostgreSQL session cut by the bastion", func(t *testing.T) {
		p := &pgEnv{env: e, pg: e.pg, lport: e.forwardPG(t)}
		if r := p.psql(t, "", "-c", "SELECT pg_sleep(20)"); r.Code == 0 {
			t.Fatalf("the quiet query outlived the idle timeout: %s", r)
		}
		id := e.endedSession(t, "postgres", "pg1")
		pcap := filepath.Join(t.TempDir(), "pg.pcap")
		exp := e.ssh("", "bastion", "export", id, "--format", "pcap")
		if exp.Code != 0 {
			t.Fatalf("export: %s", exp)
		}
		os.WriteFile(pcap, []byte(exp.Stdout), 0o600)
		closes := tshark(t, pcap, "-Y", "tcp.flags.fin == 1 || tcp.flags.reset == 1", "-T", "fields", "-e", "tcp.flags.fin", "-e", "tcp.flags.reset")
		closes = strings.NewReplacer("True", "1", "False", "0").Replace(closes)
		if strings.TrimSpace(closes) != "0\t1\n0\t1" {
			t.Errorf("closing frames (fin, rst): %q, want two RSTs", closes)
		}
	})
}
