package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// loginAlice logs alice in with a token (the login paths have their own
// tests) and returns the env and an ssh_config for the stock client.
func (w *world) loginAlice(t *testing.T) string {
	t.Helper()
	return w.loginAs(t, "u-alice")
}

// loginAs is loginAlice for the user with that IdP subject.
func (w *world) loginAs(t *testing.T, subject string) string {
	t.Helper()
	return w.loginAt(t, w.url(), subject)
}

// loginAt is loginAs at the bastion with that URL (another replica, or
// the load balancer in front of them).
func (w *world) loginAt(t *testing.T, url, subject string) string {
	t.Helper()
	claims, _ := w.idp.IDTokenClaims(subject, "bastion")
	tok, _ := w.idp.MintIDToken(claims)
	if r := w.run([]string{"T=" + tok}, "login", "--bastion", url, "--id-token-env", "T"); r.Code != 0 {
		t.Fatalf("login: %s", r)
	}
	r := w.run(nil, "ssh-config")
	if r.Code != 0 {
		t.Fatalf("ssh-config: %s", r)
	}
	p := filepath.Join(w.home, "ssh_config")
	os.WriteFile(p, []byte(r.Stdout+"\nHost *\n    BatchMode yes\n"), 0o600)
	return p
}

// TestRecordedShell is the recording story end to end: a real ssh -J shell
// with typed commands, a multi-byte character split across writes and a
// resize; then sessions lists it, export passes asciinema cat with the same
// text, verify says intact, and one flipped byte makes it say broken.
func TestRecordedShell(t *testing.T) {
	w := newWorld(t)
	sshCfg := w.loginAlice(t)
	p := testenv.StartPTY(t, 100, 30, "ssh", "-F", sshCfg, "-tt", "root@web1")
	p.Send("PS1='$ '; export LANG=C.UTF-8\r")
	p.Send("printf 'price: \\342\\202'; sleep 0.3; printf '\\254 42\\n'\r")
	p.Expect("price: € 42", 20*time.Second)
	p.Resize(120, 40)
	// ssh sends the window-change when it handles its SIGWINCH, apart from
	// the keys typed: a stty typed at once can run before the resize
	// reaches the target. Ask until it has.
	for i := 0; ; i++ {
		p.Send("stty size\r")
		if _, k := p.ExpectAny(20*time.Second, "40 120", "30 100"); k == 0 {
			break
		}
		if i == 100 {
			t.Fatal("the resize never reached the target")
		}
		time.Sleep(100 * time.Millisecond)
	}
	p.Send("echo done-$((40+2))\r")
	p.Expect("done-42", 20*time.Second)
	p.Send("exit\r")
	p.Wait(20 * time.Second)

	// ssh exits on the channel's close, which comes before the bastion
	// has committed the end of the recording: list once it is no longer
	// live.
	var r testenv.Result
	var info recorder.SessionInfo
	testenv.WaitFor(t, 30*time.Second, "the shell session no longer live", func() bool {
		r = w.run(nil, "sessions", "--json")
		if r.Code != 0 {
			t.Fatalf("sessions: %s", r)
		}
		info = recorder.SessionInfo{}
		for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
			var s recorder.SessionInfo
			if json.Unmarshal([]byte(line), &s) == nil && s.Kind == "shell" {
				info = s
			}
		}
		return info.ID != "" && info.Status != recorder.StatusLive
	})
	if info.ID == "" || info.User != "alice" || info.Target != "web1" || info.Login != "root" || info.Status != "ended" {
		t.Fatalf("sessions lists %+v\n%s", info, r.Stdout)
	}
	if r := w.run(nil, "sessions", "--user", "alice", "--target", "web1"); r.Code != 0 || !strings.Contains(r.Stdout, info.ID) {
		t.Fatalf("sessions table: %s", r)
	}

	r = w.run(nil, "export", info.ID)
	if r.Code != 0 {
		t.Fatalf("export: %s", r)
	}
	if strings.Contains(r.Stdout, "\\ufffd") || strings.Contains(r.Stdout, "\ufffd") {
		t.Error("the split character was recorded as U+FFFD")
	}
	if !strings.Contains(r.Stdout, `"r", "120x40"`) {
		t.Errorf("the resize is not in the recording:\n%s", r.Stdout)
	}
	cast := filepath.Join(t.TempDir(), "s.cast")
	os.WriteFile(cast, []byte(r.Stdout), 0o600)
	text := asciinemaCat(t, cast)
	for _, want := range []string{"price: € 42", "40 120", "done-42"} {
		if !strings.Contains(text, want) {
			t.Errorf("asciinema cat output lacks %q:\n%s", want, text)
		}
	}
	if r := w.run(nil, "verify", info.ID); r.Code != 0 || !strings.Contains(r.Stdout, "intact") {
		t.Fatalf("verify: %s", r)
	}
	// A local replay of the export, at high speed, shows the same text.
	if r := w.run(nil, "replay", "--file", cast, "--speed", "100"); r.Code != 0 || !strings.Contains(r.Stdout, "done-42") {
		t.Fatalf("replay --file: %s", r)
	}
	if r := w.run(nil, "replay", info.ID, "--speed", "100"); r.Code != 0 || !strings.Contains(r.Stdout, "price: € 42") {
		t.Fatalf("replay: %s", r)
	}

	// Tamper: stop the bastion, flip one byte of a stored chunk, restart.
	dataDir := w.app.Config.DataDir
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	w.app.Shutdown(ctx)
	cancel()
	flipChunkByte(t, filepath.Join(dataDir, app.StoreFile), info.ID)
	cfg := *w.app.Config
	a, err := app.New(&cfg, app.Options{})
	if err != nil {
		t.Fatal(err)
	}
	rep, err := a.Store.Verify(info.ID)
	a.Store.Close()
	if rep.Intact || rep.BrokenAt < 0 || rep.Problem == "" {
		t.Fatalf("verify after tampering: %+v, %v", rep, err)
	}
}

// flipChunkByte flips one byte inside a stored chunk of the session, in the
// file on disk, the way an attacker with file access would.
func flipChunkByte(t *testing.T, path, id string) {
	t.Helper()
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: time.Second, ReadOnly: true})
	if err != nil {
		t.Fatal(err)
	}
	var needle []byte
	db.View(func(tx *bolt.Tx) error {
		return tx.ForEach(func(name []byte, b *bolt.Bucket) error {
			return b.ForEach(func(k, v []byte) error {
				if needle == nil && bytes.HasPrefix(k, []byte(id)) && len(v) > 64 && bytes.Contains(v, []byte("done-")) {
					needle = append([]byte(nil), v[len(v)/2:len(v)/2+32]...)
				}
				return nil
			})
		})
	})
	db.Close()
	if needle == nil {
		t.Fatal("no chunk of the session found in the store")
	}
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	// bbolt copies a page on write, so the file can also hold stale copies
	// of the chunk in freed pages, and the first match need not be the live
	// one: flip the byte in every copy.
	n := 0
	for off := 0; ; {
		i := bytes.Index(raw[off:], needle)
		if i < 0 {
			break
		}
		raw[off+i+8] ^= 0x01
		off += i + len(needle)
		n++
	}
	if n == 0 {
		t.Fatal("chunk bytes not found in the file")
	}
	if err := os.WriteFile(path, raw, 0o600); err != nil {
		t.Fatal(err)
	}
}

func asciinemaCat(t *testing.T, cast string) string {
	t.Helper()
	testenv.Require(t, "asciinema")
	// asciinema cat reads /dev/tty; give it a terminal.
	p := testenv.StartPTY(t, 120, 40, "asciinema", "cat", cast)
	if code := p.Wait(30 * time.Second); code != 0 {
		t.Fatalf("asciinema cat exited %d:\n%s", code, p.Output())
	}
	return p.Output()
}

// TestCrashRecovery kills `bastion serve` with SIGKILL mid-session,
// restarts it, and finds the session there, marked interrupted, with
// everything up to the last flush replayable.
func TestCrashRecovery(t *testing.T) {
	w := newWorld(t)
	// Run a second bastion as a real process on the same data, after the
	// in-process one has stopped.
	serve, sshCfg := w.serveProcess(t)
	proc := serve()

	p := testenv.StartPTY(t, 80, 24, "ssh", "-F", sshCfg, "root@web1", "for i in $(seq 1 400); do echo line-$i; sleep 0.01; done")
	p.Expect("line-150", 30*time.Second)
	proc.Process.Signal(syscall.SIGKILL)
	proc.Wait()
	serve()
	r := w.run(nil, "sessions", "--json")
	if r.Code != 0 {
		t.Fatalf("sessions after restart: %s", r)
	}
	var info recorder.SessionInfo
	json.Unmarshal([]byte(strings.TrimSpace(strings.Split(r.Stdout, "\n")[0])), &info)
	if info.Status != "interrupted" {
		t.Fatalf("session after the crash: %+v", info)
	}
	r = w.run(nil, "export", info.ID)
	if r.Code != 0 {
		t.Fatalf("export after the crash: %s", r)
	}
	// At most one flush interval (200ms, ~20 lines here) may be lost; the
	// check leaves room for a slow flush on a loaded machine.
	if !strings.Contains(r.Stdout, "line-100") {
		t.Fatalf("the recording lost more than one flush interval:\n%s", tailOf(r.Stdout, 400))
	}
	if r := w.run(nil, "verify", info.ID); r.Code != 0 || !strings.Contains(r.Stdout, "intact") {
		t.Fatalf("verify after the crash: %s", r)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func waitPort(t *testing.T, port int) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for time.Now().Before(deadline) {
		if c, err := net.Dial("tcp", "127.0.0.1:"+itoa(port)); err == nil {
			c.Close()
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("nothing listens on port %d", port)
}

func tailOf(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}

// People see their own sessions, auditors see all, every replay and export
// is audited, and replay works with the stock ssh client too.
func TestSessionVisibilityAndReplayOverSSH(t *testing.T) {
	w := newWorld(t)
	carolHome := t.TempDir()
	carolEnv := []string{"XDG_CONFIG_HOME=" + filepath.Join(carolHome, ".config")}
	claims, _ := w.idp.IDTokenClaims("u-carol", "bastion")
	tok, _ := w.idp.MintIDToken(claims)
	if r := w.run(append(carolEnv, "T="+tok), "login", "--bastion", w.url(), "--id-token-env", "T"); r.Code != 0 {
		t.Fatalf("carol login: %s", r)
	}
	r := w.run(carolEnv, "ssh-config")
	carolCfg := filepath.Join(carolHome, "ssh_config")
	os.WriteFile(carolCfg, []byte(r.Stdout+"\nHost *\n    BatchMode yes\n"), 0o600)
	if out, err := exec.Command("ssh", "-F", carolCfg, "root@web1", "echo carol-was-here").CombinedOutput(); err != nil {
		t.Fatalf("carol's session: %v %s", err, out)
	}
	aliceCfg := w.loginAlice(t)
	if out, err := exec.Command("ssh", "-F", aliceCfg, "root@web1", "echo alice-was-here").CombinedOutput(); err != nil {
		t.Fatalf("alice's session: %v %s", err, out)
	}

	ids := func(env []string, args ...string) map[string]string {
		r := w.run(env, append([]string{"sessions", "--json"}, args...)...)
		if r.Code != 0 {
			t.Fatalf("sessions: %s", r)
		}
		m := map[string]string{}
		for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
			var s recorder.SessionInfo
			if json.Unmarshal([]byte(line), &s) == nil && s.ID != "" {
				m[s.User] = s.ID
			}
		}
		return m
	}
	carolSees, aliceSees := ids(carolEnv), ids(nil)
	if len(carolSees) != 1 || carolSees["carol"] == "" {
		t.Fatalf("carol sees %v, want only her own session", carolSees)
	}
	if aliceSees["carol"] == "" || aliceSees["alice"] == "" {
		t.Fatalf("the auditor sees %v, want both", aliceSees)
	}
	if r := w.run(carolEnv, "sessions", "--user", "alice"); r.Code == 0 {
		t.Fatalf("carol listed alice's sessions: %s", r)
	}
	if r := w.run(carolEnv, "export", aliceSees["alice"]); r.Code == 0 || strings.Contains(r.Stdout, "alice-was-here") {
		t.Fatalf("carol exported alice's session: %s", r)
	}

	// The stock client, with a terminal, replays on the bastion.
	p := testenv.StartPTY(t, 100, 30, "ssh", "-F", aliceCfg, "-t", hostOf(w.app.SSHAddr()), "replay", carolSees["carol"], "--speed", "50")
	p.Expect("carol-was-here", 30*time.Second)
	p.Wait(30 * time.Second)

	// The replay was audited before it started (the audit write is
	// synchronous), so the record is there now.
	r = w.run(nil, "audit", "--json")
	if r.Code != 0 {
		t.Fatalf("audit: %s", r)
	}
	if !strings.Contains(r.Stdout, `"type":"session.replay"`) || !strings.Contains(r.Stdout, `"session_id":"`+carolSees["carol"]+`"`) {
		t.Fatalf("the replay is not audited:\n%s", r.Stdout)
	}
}

// serveProcess stops the in-process bastion and returns a function that
// starts `bastion serve` as a real process on the same config and data (on
// fixed free ports), and an ssh_config for alice logged in to it.
func (w *world) serveProcess(t *testing.T) (func() *servedProc, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	w.app.Shutdown(ctx)
	cancel()
	orig, _ := os.ReadFile(w.cfgPath)
	var httpPort int
	choosePorts := func() {
		var sshPort int
		sshPort, httpPort = testenv.FreePort(t), testenv.FreePort(t)
		cfgText := bytes.Replace(orig, []byte(`listen: {ssh: "127.0.0.1:0", http: "127.0.0.1:0"}`),
			[]byte("listen: {ssh: \"127.0.0.1:"+itoa(sshPort)+"\", http: \"127.0.0.1:"+itoa(httpPort)+"\"}"), 1)
		os.WriteFile(w.cfgPath, cfgText, 0o600)
	}
	choosePorts()
	// start starts serve and waits until it listens; false if it exited
	// first (a free port taken meanwhile by another test's process).
	start := func() (*servedProc, bool) {
		cmd := w.cli(nil, "serve", "--config", w.cfgPath)
		cmd.Stderr = w.logs
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		p := &servedProc{Cmd: cmd, exited: make(chan struct{})}
		go func() { cmd.Wait(); close(p.exited) }()
		t.Cleanup(func() { cmd.Process.Kill(); <-p.exited })
		for deadline := time.Now().Add(60 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
			select {
			case <-p.exited:
				return p, false
			default:
			}
			if c, err := net.Dial("tcp", "127.0.0.1:"+itoa(httpPort)); err == nil {
				c.Close()
				return p, true
			}
		}
		t.Fatalf("bastion serve does not listen on port %d", httpPort)
		return nil, false
	}
	serve := func() *servedProc {
		cmd, ok := start()
		if !ok {
			t.Fatal("bastion serve exited at start (its log is below)")
		}
		return cmd
	}
	proc, ok := start()
	for try := 0; !ok && try < 5; try++ {
		choosePorts()
		proc, ok = start()
	}
	if !ok {
		t.Fatal("bastion serve exited at start five times (its log is below)")
	}
	url := "http://127.0.0.1:" + itoa(httpPort)
	claims, _ := w.idp.IDTokenClaims("u-alice", "bastion")
	tok, _ := w.idp.MintIDToken(claims)
	if r := w.run([]string{"T=" + tok}, "login", "--bastion", url, "--id-token-env", "T"); r.Code != 0 {
		t.Fatalf("login: %s", r)
	}
	r := w.run(nil, "ssh-config")
	if r.Code != 0 || !strings.Contains(r.Stdout, "web1") {
		t.Fatalf("ssh-config: %s", r)
	}
	sshCfg := filepath.Join(w.home, "ssh_config")
	os.WriteFile(sshCfg, []byte(r.Stdout+"\nHost *\n    BatchMode yes\n"), 0o600)
	proc.Process.Kill()
	proc.Wait()
	return serve, sshCfg
}

// servedProc is a running `bastion serve`; a goroutine reaps it, and Wait
// waits for that.
type servedProc struct {
	*exec.Cmd
	exited chan struct{}
}

// Wait waits until the process has exited and been reaped.
func (p *servedProc) Wait() { <-p.exited }

// SIGHUP reloads the rules of a running `bastion serve`: the next command
// of a live session uses them; a config that does not validate is refused
// and the rules in force stay.
func TestSIGHUPReload(t *testing.T) {
	w := newWorld(t)
	serve, sshCfg := w.serveProcess(t)
	proc := serve()
	p := testenv.StartPTY(t, 100, 30, "ssh", "-F", sshCfg, "-tt", "root@web1")
	p.Expect("# ", 30*time.Second)
	p.Send("echo before-$((1+1))\r")
	p.Expect("before-2", 20*time.Second)
	p.Expect("# ", 20*time.Second)

	good, _ := os.ReadFile(w.cfgPath)
	os.WriteFile(w.cfgPath, append(good, []byte("rules:\n  - {name: no-echo, on: command, match: {commands: [echo]}, action: block}\n")...), 0o600)
	proc.Process.Signal(syscall.SIGHUP)
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(w.logs.String(), "policy reloaded") {
		if time.Now().After(deadline) {
			t.Fatalf("no reload logged:\n%s", w.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Send("echo after-$((1+1))\r")
	p.Expect("blocked by rule no-echo", 20*time.Second)
	p.Expect("# ", 20*time.Second)

	// A broken config is refused; the rule in force stays.
	os.WriteFile(w.cfgPath, append(good, []byte("rules: [{name: x, on: nonsense}]\n")...), 0o600)
	proc.Process.Signal(syscall.SIGHUP)
	for !strings.Contains(w.logs.String(), "reload refused") {
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatalf("no refusal logged:\n%s", w.logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	p.Send("echo again\r")
	p.Expect("blocked by rule no-echo", 20*time.Second)
	if strings.Contains(p.Output(), "after-2\r\n") {
		t.Fatal("a blocked command ran")
	}
}

// Every access the audit log vouches for is refused when it cannot be
// recorded: a replay, an export, a new session. Nothing happens unaudited.
func TestAuditFailureRefusesAccess(t *testing.T) {
	w := newWorld(t)
	aliceCfg := w.loginAlice(t)
	if out, err := exec.Command("ssh", "-F", aliceCfg, "root@web1", "echo audited-$((20+1))").CombinedOutput(); err != nil || !strings.Contains(string(out), "audited-21") {
		t.Fatalf("session: %v %s", err, out)
	}
	r := w.run(nil, "sessions", "--json")
	id := regexp.MustCompile(`"id":"([0-9A-Z]+)"`).FindStringSubmatch(r.Stdout)
	if id == nil {
		t.Fatalf("no session: %s", r)
	}
	w.app.Store.FailAuditForTest(errors.New("disk on fire"))
	for _, cmd := range []string{"replay", "export"} {
		r := w.run(nil, cmd, id[1])
		if r.Code == 0 || !strings.Contains(r.Stderr, "audit log cannot record") || strings.Contains(r.Stdout, "audited-21") {
			t.Errorf("%s with the audit log down: %s", cmd, r)
		}
	}
	out, err := exec.Command("ssh", "-F", aliceCfg, "root@web1", "echo unaudited").CombinedOutput()
	if err == nil || strings.Contains(string(out), "unaudited\n") || !strings.Contains(string(out), "audit log cannot record this session") {
		t.Errorf("a session started with the audit log down: %v %s", err, out)
	}
	w.app.Store.FailAuditForTest(nil)
	if r := w.run(nil, "export", id[1]); r.Code != 0 || !strings.Contains(r.Stdout, "audited-21") {
		t.Fatalf("export once the audit log is back: %s", r)
	}
}

// A bastion killed (-9) during a TCP forward keeps the content it flushed:
// after the restart the session is interrupted, sealed up to its last
// signed checkpoint, verifies, and its capture holds what was sent.
func TestCrashDuringTCPForward(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	w := newWorldTargets(t, "", fmt.Sprintf(`{name: websink, kind: tcp, address: %q}`, ln.Addr().String()))
	serve, sshCfg := w.serveProcess(t)
	proc := serve()
	lport := testenv.FreePort(t)
	testenv.StartPTY(t, 80, 24, "ssh", "-F", sshCfg, "-N", "-o", "ExitOnForwardFailure=yes",
		"-L", fmt.Sprintf("127.0.0.1:%d:websink:%d", lport, ln.Addr().(*net.TCPAddr).Port), hostOf(w.app.SSHAddr()))
	waitPort(t, lport)
	c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", lport))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	sent := 0
	for i := range 30 {
		n, _ := fmt.Fprintf(c, "SET key:%d value-%d\r\n", i, i)
		sent += n
		time.Sleep(30 * time.Millisecond)
	}
	// Kill only once a flush has committed everything sent.
	testenv.WaitFor(t, 60*time.Second, "the forward's content to be committed", func() bool {
		r := w.run(nil, "sessions", "--json", "--kind", "tcp")
		for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
			var s recorder.SessionInfo
			if json.Unmarshal([]byte(line), &s) == nil && s.Target == "websink" && s.Status == "live" && s.Stored >= int64(sent) {
				return true
			}
		}
		return false
	})
	proc.Process.Signal(syscall.SIGKILL)
	proc.Wait()
	serve()
	r := w.run(nil, "sessions", "--json", "--kind", "tcp")
	// The probe that waited for the forward's port is a session too (it
	// ended at once); the one that was live at the crash is interrupted.
	var info recorder.SessionInfo
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		var s recorder.SessionInfo
		if json.Unmarshal([]byte(line), &s) == nil && s.Target == "websink" && s.Status == "interrupted" {
			info = s
		}
	}
	if info.Status != "interrupted" {
		t.Fatalf("tcp session after the crash: %+v (%s)", info, r)
	}
	if v := w.run(nil, "verify", info.ID); v.Code != 0 || !strings.Contains(v.Stdout, "intact") {
		t.Fatalf("verify after the crash: %s", v)
	}
	exp := w.run(nil, "export", info.ID)
	if !strings.Contains(exp.Stdout, "|SET key:0 value-") {
		t.Fatalf("the capture lost what was sent:\n%s", tailOf(exp.Stdout, 2000))
	}
	// The timeline ends saying the recording was cut, not with nothing.
	if !strings.Contains(exp.Stdout, "the recording ends here: the session was interrupted (the bastion stopped while the session was live)") {
		t.Errorf("the timeline does not say it was cut:\n%s", tailOf(exp.Stdout, 1000))
	}
	// The capture holds what was sent, and shows the connection as cut
	// off, not closed: no FIN, no RST (tcp.completeness: SYN, SYN-ACK,
	// ACK and data, 15).
	pc := w.run(nil, "export", info.ID, "--format", "pcap")
	if pc.Code != 0 {
		t.Fatalf("export --format pcap: %s", pc)
	}
	pcap := filepath.Join(t.TempDir(), "crash.pcap")
	os.WriteFile(pcap, []byte(pc.Stdout), 0o600)
	tr := testenv.Run(t, 60*time.Second, "", testenv.Require(t, "tshark"), "-r", pcap, "-T", "fields", "-e", "tcp.flags.fin", "-e", "tcp.flags.reset", "-e", "tcp.completeness", "-e", "tcp.payload")
	norm := strings.NewReplacer("True", "1", "False", "0").Replace(tr.Stdout)
	lines := strings.Split(strings.TrimSpace(norm), "\n")
	if tr.Code != 0 || len(lines) < 4 || !strings.HasPrefix(lines[len(lines)-1], "0\t0\t15\t") || !strings.Contains(norm, "534554206b65793a30") { // "SET key:0"
		t.Errorf("the capture of the interrupted session (fin, rst, completeness, payload):\n%s", tr.Stdout)
	}
}
