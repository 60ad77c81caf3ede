package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/internal/login"
	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// cluster is TestReplicasSharePostgres's environment: replicas a and b
// (in-process, on one PostgreSQL store) behind HAProxy.
type cluster struct {
	a, b *world
	// adminA and adminB are alice logged in to a and to b directly.
	adminA, adminB *world
	lbSSH          string // HAProxy's SSH frontend, the replicas' public.ssh
	lbURL          string // HAProxy's HTTP frontend
}

// requireHAProxy returns the path of Debian's haproxy. The replicas'
// end-to-end test is about running them behind it, so without it the
// test fails rather than skips.
func requireHAProxy(t *testing.T) string {
	t.Helper()
	if p, err := exec.LookPath("haproxy"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/haproxy"); err == nil {
		return "/usr/sbin/haproxy"
	}
	t.Fatal("haproxy is not installed: the replicas run behind it in this test (apt-get install haproxy; .ci/run installs it)")
	return ""
}

// freeAddrs returns two distinct loopback addresses that were free a
// moment ago.
func freeAddrs(t *testing.T) (string, string) {
	t.Helper()
	p1 := testenv.FreePort(t)
	p2 := testenv.FreePort(t)
	for p2 == p1 {
		p2 = testenv.FreePort(t)
	}
	return "127.0.0.1:" + itoa(p1), "127.0.0.1:" + itoa(p2)
}

// haproxyConfig is the HAProxy configuration the README's HA section
// shows, for replicas named names: layer 4 (mode tcp), round robin, with
// TCP health checks, in front of their SSH and HTTP listeners. The long
// client and server timeouts let idle SSH sessions live.
func haproxyConfig(sshBind, httpBind string, names, sshAddrs, httpAddrs []string) string {
	var b strings.Builder
	b.WriteString("defaults\n    mode tcp\n    balance roundrobin\n    timeout connect 5s\n    timeout client 12h\n    timeout server 12h\n")
	backend := func(name, bind string, addrs []string) {
		fmt.Fprintf(&b, "\nfrontend %s\n    bind %s\n    default_backend %s\n\nbackend %s\n", name, bind, name, name)
		for i, n := range names {
			fmt.Fprintf(&b, "    server %s %s check\n", n, addrs[i])
		}
	}
	backend("bastion_ssh", sshBind, sshAddrs)
	backend("bastion_http", httpBind, httpAddrs)
	return b.String()
}

// The README shows the configuration the test runs.
func TestReplicasHAProxyConfigInREADME(t *testing.T) {
	readme, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	want := haproxyConfig(":22", ":443", []string{"bastion-a", "bastion-b"},
		[]string{"10.0.0.11:2222", "10.0.0.12:2222"}, []string{"10.0.0.11:8443", "10.0.0.12:8443"})
	if !bytes.Contains(readme, []byte("```\n"+want+"```\n")) {
		t.Fatalf("README.md lacks the HAProxy configuration the test runs:\n%s", want)
	}
}

// startHAProxy runs haproxy in the foreground (-db) with haproxyConfig for
// the replicas, on sshBind and httpBind, until the test ends.
func startHAProxy(t *testing.T, bin, sshBind, httpBind string, replicas ...*world) {
	t.Helper()
	var names, sshAddrs, httpAddrs []string
	for _, r := range replicas {
		names = append(names, r.app.Config.Store.Postgres.Name)
		sshAddrs = append(sshAddrs, r.app.SSHAddr())
		httpAddrs = append(httpAddrs, r.app.HTTPAddr())
	}
	cfg := filepath.Join(t.TempDir(), "haproxy.cfg")
	if err := os.WriteFile(cfg, []byte(haproxyConfig(sshBind, httpBind, names, sshAddrs, httpAddrs)), 0o600); err != nil {
		t.Fatal(err)
	}
	logs := &testenv.SyncBuffer{}
	cmd := exec.Command(bin, "-f", cfg, "-db")
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		cmd.Process.Kill()
		<-exited
		if t.Failed() {
			t.Logf("haproxy log:\n%s", logs.String())
		}
	})
	testenv.WaitFor(t, 30*time.Second, "haproxy to listen", func() bool {
		select {
		case <-exited:
			t.Fatalf("haproxy exited at start:\n%s", logs.String())
		default:
		}
		for _, addr := range []string{sshBind, httpBind} {
			c, err := net.Dial("tcp", addr)
			if err != nil {
				return false
			}
			c.Close()
		}
		return true
	})
}

// loginDirect is loginAs for a client that talks to this replica itself
// rather than through the balancer public.ssh names (an administrator on
// the replica's machine): the login state and ssh_config name the
// replica's own SSH listener. Tests about one particular replica use it.
func (w *world) loginDirect(t *testing.T, subject string) string {
	t.Helper()
	p := w.loginAs(t, subject)
	states, _ := filepath.Glob(filepath.Join(w.home, ".config", "bastion", "bastions", "*", "state.json"))
	if len(states) != 1 {
		t.Fatalf("login states: %v", states)
	}
	b, err := os.ReadFile(states[0])
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	st["ssh_address"] = w.app.SSHAddr()
	b, _ = json.Marshal(st)
	if err := os.WriteFile(states[0], b, 0o600); err != nil {
		t.Fatal(err)
	}
	r := w.run(nil, "ssh-config")
	if r.Code != 0 || !strings.Contains(r.Stdout, w.app.SSHAddr()[strings.LastIndex(w.app.SSHAddr(), ":")+1:]) {
		t.Fatalf("ssh-config: %s", r)
	}
	os.WriteFile(p, []byte(r.Stdout+"\nHost *\n    BatchMode yes\n"), 0o600)
	return p
}

// sshAs prepares the stock ssh client with the ssh_config sshCfg, as the
// user of w runs it (the config's login check reads w's login).
func (w *world) sshAs(sshCfg string, args ...string) *exec.Cmd {
	cmd := exec.Command("ssh", append([]string{"-F", sshCfg}, args...)...)
	cmd.Env = append(os.Environ(), "HOME="+w.home, "XDG_CONFIG_HOME="+filepath.Join(w.home, ".config"), "SSH_AUTH_SOCK=")
	return cmd
}

// sessionsWith returns the sessions in the store (as replica w reads it)
// whose command contains marker, once every one has ended; nil before.
func (w *world) sessionsWith(t *testing.T, marker string) []recorder.SessionInfo {
	t.Helper()
	list, err := w.app.Store.Sessions(recorder.SessionFilter{})
	if err != nil {
		t.Fatal(err)
	}
	var out []recorder.SessionInfo
	for _, s := range list {
		if strings.Contains(s.Command, marker) {
			if s.Status == recorder.StatusLive {
				return nil
			}
			out = append(out, s)
		}
	}
	return out
}

// throughBalancer logs in through HAProxy until both replicas have issued
// a certificate, runs stock ssh -J sessions through it until both have
// recorded one, and reads every such session from both replicas.
func (c *cluster) throughBalancer(t *testing.T) {
	ka, _ := os.ReadFile(filepath.Join(c.a.app.Config.DataDir, "ca", "host_key"))
	kb, _ := os.ReadFile(filepath.Join(c.b.app.Config.DataDir, "ca", "host_key"))
	if len(ka) == 0 || bytes.Equal(ka, kb) {
		t.Fatal("the replicas do not have host keys of their own")
	}
	// Logins: the HTTP frontend sends each to the next replica.
	issued := map[string]int{}
	var users []*world
	var cfgs []string
	for i := 0; i < 8 && (issued["a"] == 0 || issued["b"] == 0 || len(cfgs) < 2); i++ {
		u := c.a.another()
		users, cfgs = append(users, u), append(cfgs, u.loginAt(t, c.lbURL, "u-alice"))
		line := "serial=" + strconv.FormatUint(u.certSerial(t), 10) + " "
		for name, r := range map[string]*world{"a": c.a, "b": c.b} {
			for _, l := range strings.Split(r.logs.String(), "\n") {
				if strings.Contains(l, "certificate issued") && strings.Contains(l, line) {
					issued[name]++
				}
			}
		}
	}
	if issued["a"] == 0 || issued["b"] == 0 {
		t.Fatalf("logins through HAProxy did not land on both replicas: %v", issued)
	}
	t.Logf("%d logins through HAProxy: certificates issued by replica a %d, b %d", len(cfgs), issued["a"], issued["b"])

	// Sessions: stock ssh -J through the SSH frontend, with the replicas'
	// own host keys accepted through the @cert-authority line.
	var recorded map[string]int
	var sessions []recorder.SessionInfo
	for i := 0; i < 8 && (recorded["a"] == 0 || recorded["b"] == 0); i++ {
		marker := fmt.Sprintf("via-lb-%d", i)
		if out, err := users[i%len(users)].sshAs(cfgs[i%len(cfgs)], "root@web1", "echo "+marker).CombinedOutput(); err != nil || !strings.Contains(string(out), marker) {
			t.Fatalf("ssh through HAProxy: %v\n%s", err, out)
		}
		testenv.WaitFor(t, 30*time.Second, "the session to end in the store", func() bool {
			sessions = c.a.sessionsWith(t, "via-lb-")
			return len(sessions) == i+1
		})
		recorded = map[string]int{}
		for _, s := range sessions {
			recorded[s.ReplicaName]++
		}
	}
	if recorded["a"] == 0 || recorded["b"] == 0 || len(recorded) != 2 {
		t.Fatalf("sessions through HAProxy did not land on both replicas: %v", recorded)
	}
	t.Logf("%d sessions through HAProxy: recorded by replica a %d, b %d", len(sessions), recorded["a"], recorded["b"])

	// Each replica lists every one, with the replica that recorded it,
	// and replays and verifies every one.
	for _, r := range []*world{c.adminA, c.adminB} {
		out := r.run(nil, "sessions", "--json")
		listed := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(out.Stdout), "\n") {
			var s recorder.SessionInfo
			if json.Unmarshal([]byte(line), &s) == nil && strings.Contains(s.Command, "via-lb-") {
				listed[s.ID] = s.ReplicaName
			}
		}
		for _, s := range sessions {
			if listed[s.ID] != s.ReplicaName {
				t.Fatalf("replica %s lists %v, want %s recorded by %s:\n%s", r.app.Config.Store.Postgres.Name, listed, s.ID, s.ReplicaName, out)
			}
			marker := s.Command[strings.Index(s.Command, "via-lb-"):]
			if rr := r.run(nil, "replay", s.ID, "--speed", "100"); rr.Code != 0 || !strings.Contains(rr.Stdout, marker) {
				t.Fatalf("replay of %s (recorded by %s) on %s: %s", s.ID, s.ReplicaName, r.app.Config.Store.Postgres.Name, rr)
			}
			if rr := r.run(nil, "verify", s.ID); rr.Code != 0 || !strings.Contains(rr.Stdout, "intact") {
				t.Fatalf("verify of %s (recorded by %s) on %s: %s", s.ID, s.ReplicaName, r.app.Config.Store.Postgres.Name, rr)
			}
		}
	}
}

// concurrentSessions holds 200 recorded sessions open at once through
// HAProxy, some from the stock ssh client and the rest from
// x/crypto/ssh doing what ssh -J does, then ends them and verifies every
// one from the replica that did not record it.
func (c *cluster) concurrentSessions(t *testing.T) {
	const total, stock = 200, 10
	u := c.a.another()
	sshCfg := u.loginAt(t, c.lbURL, "u-alice")
	st, cert := u.loginState(t)
	signer, hostKeys := loginSigner(t, st, cert)

	var once sync.Once
	release := make(chan struct{})
	releaseAll := func() { once.Do(func() { close(release) }) }
	defer releaseAll()
	setup := make(chan struct{}, 16) // sessions being set up at once
	live := make(chan struct{}, total)
	errs := make(chan error, total)
	for i := range total {
		go func() {
			marker := fmt.Sprintf("conc-%03d", i)
			command := "echo " + marker + "; cat"
			setup <- struct{}{}
			var stdin io.WriteCloser
			out := &testenv.SyncBuffer{}
			done := make(chan error, 1)
			if i < stock {
				cmd := u.sshAs(sshCfg, "root@web1", command)
				stdin, _ = cmd.StdinPipe()
				cmd.Stdout, cmd.Stderr = out, out
				if err := cmd.Start(); err != nil {
					<-setup
					errs <- err
					return
				}
				go func() { done <- cmd.Wait() }()
				defer cmd.Process.Kill()
			} else {
				client, err := jump(c.lbSSH, st.User, "web1:22", "root", signer, hostKeys)
				if err != nil {
					<-setup
					errs <- fmt.Errorf("%s: %w", marker, err)
					return
				}
				defer client.Close()
				sess, err := client.NewSession()
				if err != nil {
					<-setup
					errs <- fmt.Errorf("%s: %w", marker, err)
					return
				}
				stdin, _ = sess.StdinPipe()
				sess.Stdout, sess.Stderr = out, out
				if err := sess.Start(command); err != nil {
					<-setup
					errs <- fmt.Errorf("%s: %w", marker, err)
					return
				}
				go func() { done <- sess.Wait() }()
			}
			for wait := time.Millisecond; !strings.Contains(out.String(), marker+"\n"); wait = min(2*wait, 100*time.Millisecond) {
				select {
				case err := <-done:
					<-setup
					errs <- fmt.Errorf("%s ended before its output: %v\n%s", marker, err, out)
					return
				case <-time.After(wait):
				}
			}
			<-setup
			live <- struct{}{}
			<-release
			stdin.Close()
			if err := <-done; err != nil {
				errs <- fmt.Errorf("%s: %v\n%s", marker, err, out)
				return
			}
			errs <- nil
		}()
	}
	timeout := time.After(10 * time.Minute)
	for n := 0; n < total; {
		select {
		case <-live:
			n++
		case err := <-errs:
			t.Fatalf("with %d sessions live: %v", n, err)
		case <-timeout:
			t.Fatalf("only %d of %d sessions live after 10 minutes", n, total)
		}
	}
	releaseAll()
	for range total {
		select {
		case err := <-errs:
			if err != nil {
				t.Error(err)
			}
		case <-timeout:
			t.Fatal("the sessions did not end within 10 minutes")
		}
	}
	if t.Failed() {
		return
	}

	var sessions []recorder.SessionInfo
	for deadline := time.Now().Add(2 * time.Minute); ; time.Sleep(100 * time.Millisecond) {
		list, err := c.a.app.Store.Sessions(recorder.SessionFilter{})
		if err != nil {
			t.Fatal(err)
		}
		sessions = sessions[:0]
		status := map[string]int{}
		for _, s := range list {
			if strings.Contains(s.Command, "conc-") {
				sessions = append(sessions, s)
				status[s.Status]++
			}
		}
		if len(sessions) == total && status[recorder.StatusLive] == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after 2 minutes, %d sessions in the store, by status %v", len(sessions), status)
		}
	}
	other := map[string]*world{"a": c.b, "b": c.a}
	byReplica := map[string]int{}
	var stockIDs []string
	for _, s := range sessions {
		byReplica[s.ReplicaName]++
		r := other[s.ReplicaName]
		if r == nil {
			t.Fatalf("session %s recorded by %q", s.ID, s.ReplicaName)
		}
		if s.Status != recorder.StatusEnded {
			t.Errorf("session %s (%s): status %s", s.ID, s.Command, s.Status)
		}
		if rep, err := r.app.Store.Verify(s.ID); err != nil || !rep.Intact || !rep.Sealed || rep.Events == 0 {
			t.Errorf("verify %s (recorded by %s) on the other replica: %+v, %v", s.ID, s.ReplicaName, rep, err)
		}
		if n, _ := strconv.Atoi(strings.TrimSuffix(strings.TrimPrefix(s.Command, "echo conc-"), "; cat")); n < stock {
			stockIDs = append(stockIDs, s.ID)
		}
	}
	if byReplica["a"] == 0 || byReplica["b"] == 0 {
		t.Fatalf("the sessions did not land on both replicas: %v", byReplica)
	}
	t.Logf("%d concurrent sessions through HAProxy: recorded by replica a %d, b %d; all verify", total, byReplica["a"], byReplica["b"])
	// The stock client's sessions also verify with the CLI, through HAProxy.
	if len(stockIDs) != stock {
		t.Fatalf("stock ssh sessions: %v", stockIDs)
	}
	for _, id := range stockIDs {
		if r := u.run(nil, "verify", id); r.Code != 0 || !strings.Contains(r.Stdout, "intact") {
			t.Errorf("verify %s through HAProxy: %s", id, r)
		}
	}
}

// loginSigner returns the login's certificate signer and a host key check
// that trusts the bastion's host CA, as the generated ssh_config does.
func loginSigner(t *testing.T, st *login.State, cert *ssh.Certificate) (ssh.Signer, ssh.HostKeyCallback) {
	t.Helper()
	kb, err := os.ReadFile(st.KeyPath)
	if err != nil {
		t.Fatal(err)
	}
	key, err := ssh.ParsePrivateKey(kb)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewCertSigner(cert, key)
	if err != nil {
		t.Fatal(err)
	}
	hostCA, err := hostCAOf(st.KnownHostsPath)
	if err != nil {
		t.Fatal(err)
	}
	checker := &ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool { return bytes.Equal(k.Marshal(), hostCA) }}
	return signer, checker.CheckHostKey
}

// jumpClient is an SSH connection to a target through the bastion.
type jumpClient struct {
	*ssh.Client
	bastion *ssh.Client
}

func (j *jumpClient) Close() error {
	return errors.Join(j.Client.Close(), j.bastion.Close())
}

// jump connects to target as login through the bastion at addr, as
// ssh -J does: a direct-tcpip channel through the bastion, and the
// target's SSH inside it (which the bastion answers and records).
func jump(addr, user, target, loginName string, signer ssh.Signer, hostKeys ssh.HostKeyCallback) (*jumpClient, error) {
	auth := []ssh.AuthMethod{ssh.PublicKeys(signer)}
	b, err := ssh.Dial("tcp", addr, &ssh.ClientConfig{User: user, Auth: auth, HostKeyCallback: hostKeys, Timeout: time.Minute})
	if err != nil {
		return nil, fmt.Errorf("bastion: %w", err)
	}
	conn, err := b.Dial("tcp", target)
	if err != nil {
		b.Close()
		return nil, fmt.Errorf("direct-tcpip to %s: %w", target, err)
	}
	cc, chans, reqs, err := ssh.NewClientConn(conn, target, &ssh.ClientConfig{User: loginName, Auth: auth, HostKeyCallback: hostKeys})
	if err != nil {
		conn.Close()
		b.Close()
		return nil, fmt.Errorf("%s through the bastion: %w", target, err)
	}
	return &jumpClient{Client: ssh.NewClient(cc, chans, reqs), bastion: b}, nil
}

// serveReplica starts another replica of w's store as a real `bastion
// serve` process (so that it can be killed), named name, with its own
// data_dir (the CA keys copied, a host key of its own) and its own
// ports, public.ssh (when w's config sets it) being its own SSH listener,
// and extraYAML appended to the config. It returns the process and its URL.
func (w *world) serveReplica(t *testing.T, name string, extraYAML ...string) (*servedProc, string) {
	t.Helper()
	orig, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	dataDir := t.TempDir()
	w.copyCAKeys(t, dataDir)
	logs := &testenv.SyncBuffer{}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replica %s log:\n%s", name, logs.String())
		}
	})
	for try := 0; try < 5; try++ { // a free port may be taken meanwhile
		sshAddr, httpAddr := freeAddrs(t)
		text := string(orig)
		for _, r := range [][2]string{
			{`listen: {ssh: "127.0.0.1:0", http: "127.0.0.1:0"}`, `listen: {ssh: "` + sshAddr + `", http: "` + httpAddr + `"}`},
			{"data_dir: " + w.app.Config.DataDir + "\n", "data_dir: " + dataDir + "\n"},
			{"name: a,", "name: " + name + ","},
			{`public: {ssh: "` + w.app.Config.Public.SSH + `"}`, `public: {ssh: "` + sshAddr + `"}`},
		} {
			if w.app.Config.Public.SSH == "" && strings.HasPrefix(r[0], "public:") {
				continue
			}
			if strings.Count(text, r[0]) != 1 {
				t.Fatalf("config: %q not once in:\n%s", r[0], text)
			}
			text = strings.Replace(text, r[0], r[1], 1)
		}
		cfgPath := filepath.Join(t.TempDir(), "bastion.yaml")
		os.WriteFile(cfgPath, []byte(text+strings.Join(extraYAML, "")), 0o600)
		cmd := w.cli(nil, "serve", "--config", cfgPath)
		cmd.Stdout, cmd.Stderr = logs, logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &servedProc{Cmd: cmd, exited: make(chan struct{})}
		go func() { cmd.Wait(); close(p.exited) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-p.exited })
		exited := false
		testenv.WaitFor(t, time.Minute, "bastion serve to listen", func() bool {
			select {
			case <-p.exited:
				exited = true
				return true
			default:
			}
			conn, err := net.Dial("tcp", httpAddr)
			if err == nil {
				conn.Close()
			}
			return err == nil
		})
		if !exited {
			return p, "http://" + httpAddr
		}
	}
	t.Fatal("bastion serve exited at start five times (its log is below)")
	return nil, ""
}

// killReplica starts replica c as a process, holds a session open through
// it, kills it with SIGKILL once a signed checkpoint covers the session's
// output, and checks what remains: the client saw the drop, replica a
// marks the session interrupted when c's lease expired, and the session
// verifies and replays from a and b.
func (c *cluster) killReplica(t *testing.T) {
	proc, url := c.a.serveReplica(t, "c")
	u := c.a.another()
	sshCfg := u.loginAt(t, url, "u-alice")
	cmd := u.sshAs(sshCfg, "root@web1", "echo before-the-kill-$((6*7)); cat")
	stdin, _ := cmd.StdinPipe() // held open: the session lives until the replica dies
	defer stdin.Close()
	out := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	defer cmd.Process.Kill()
	testenv.WaitFor(t, time.Minute, "the session's output", func() bool { return strings.Contains(out.String(), "before-the-kill-42") })

	var id string
	testenv.WaitFor(t, time.Minute, "a signed checkpoint over c's live session, as a reads it", func() bool {
		list, err := c.a.app.Store.Sessions(recorder.SessionFilter{})
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range list {
			if s.ReplicaName == "c" && s.Status == recorder.StatusLive && strings.Contains(s.Command, "before-the-kill") {
				id = s.ID
			}
		}
		if id == "" {
			return false
		}
		rep, err := c.a.app.Store.Verify(id)
		return err == nil && rep.Intact && rep.Events > 0
	})

	proc.Process.Kill() // SIGKILL: no shutdown, no seal, the lease is left to expire
	killed := time.Now()
	proc.Wait()
	select {
	case err := <-done:
		var ee *exec.ExitError
		if !errors.As(err, &ee) || ee.ExitCode() != 255 {
			t.Fatalf("ssh through the killed replica: %v, want exit status 255 (connection lost)\n%s", err, out)
		}
	case <-time.After(time.Minute):
		t.Fatalf("ssh did not see its bastion die:\n%s", out)
	}
	t.Logf("the client saw the connection drop: %s", strings.TrimSpace(out.String()))

	testenv.WaitFor(t, 2*time.Minute, "a to mark c's session interrupted", func() bool {
		s, err := c.a.app.Store.Session(id)
		return err == nil && s.Status == recorder.StatusInterrupted
	})
	t.Logf("marked interrupted %v after the kill (lease %v)", time.Since(killed).Round(10*time.Millisecond), c.a.app.Config.Store.Postgres.Lease)

	if r := c.adminA.run(nil, "verify", id); r.Code != 0 || !strings.Contains(r.Stdout, "intact") || !strings.Contains(r.Stdout, "status interrupted") {
		t.Fatalf("verify on a: %s", r)
	}
	if r := c.adminB.run(nil, "replay", id, "--speed", "100"); r.Code != 0 || !strings.Contains(r.Stdout, "before-the-kill-42") {
		t.Fatalf("replay on b: %s", r)
	}
}
