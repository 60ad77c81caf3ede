package main

import (
	"bufio"
	"context"
	"net"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/demo"
	"github.com/bastionhq/bastion/internal/devidp"
	"github.com/bastionhq/bastion/internal/testenv"
)

// TestDemo runs the quick start of the README headless, exactly as printed:
// `bastion demo` as a process, then each command the demo prints, run by a
// POSIX shell with `bastion` on PATH. The browser is played over HTTP at the
// demo's identity provider (device flow), as the person would click.
func TestDemo(t *testing.T) {
	testenv.Require(t, "ssh")
	h := newDemoHarness(t)
	cmds := h.start()

	// 1. Log in as alice with the device flow.
	h.deviceLogin(find(t, cmds, func(c string) bool {
		return strings.Contains(c, " login ") && strings.HasSuffix(c, "--device") && !strings.HasPrefix(c, "XDG_CONFIG_HOME=")
	}), "alice")

	// 2. The ssh_config for the stock client.
	sshConfigCmd := find(t, cmds, func(c string) bool { return strings.Contains(c, " ssh-config") })
	if r := h.sh(sshConfigCmd); r.code != 0 {
		t.Fatalf("ssh-config: %s", r)
	}

	// scp works on the demo target (OpenSSH's scp speaks sftp).
	if _, err := exec.LookPath("scp"); err == nil && demo.FindSFTPServer() != "" {
		_, cfgFile, _ := strings.Cut(sshConfigCmd, "> ")
		if r := h.sh("scp -F " + cfgFile + " demo@" + demo.TargetName + ":cards.txt copied.txt"); r.code != 0 {
			t.Errorf("scp from the demo target: %s", r)
		} else if b, err := os.ReadFile(filepath.Join(h.work, "copied.txt")); err != nil || !strings.Contains(string(b), "Test card numbers") {
			t.Errorf("scp copied %q, %v", b, err)
		}
	}

	// 3. An exec through ssh -J: it runs, and the card numbers come back masked.
	r := h.sh(find(t, cmds, func(c string) bool { return strings.Contains(c, " -J ") }))
	if r.code != 0 || !strings.Contains(r.out, "deploy.sh") || !strings.Contains(r.out, "Test card numbers") {
		t.Fatalf("ssh -J exec: %s", r)
	}
	if strings.Contains(r.out, "4111 1111 1111 1111") || !strings.Contains(r.out, "1111") {
		t.Errorf("the card numbers were not masked (rule cards): %s", r)
	}

	// 4. A blocked command: exit status 126, the rule named, the files still there.
	r = h.sh(find(t, cmds, func(c string) bool { return strings.Contains(c, "rm -rf") }))
	if r.code != 126 || !strings.Contains(r.out, "no-rm-rf") {
		t.Errorf("blocked command: got exit %d, want 126 and a message naming rule no-rm-rf: %s", r.code, r)
	}
	if _, err := os.Stat(filepath.Join(h.dir, demo.TargetName, "home", "important", "keep-me.txt")); err != nil {
		t.Errorf("the blocked rm reached the target: %v", err)
	}

	// An interactive shell on a pty, as printed.
	shell := find(t, cmds, func(c string) bool {
		return strings.HasPrefix(c, "ssh ") && strings.HasSuffix(c, "demo@"+demo.TargetName)
	})
	p := testenv.StartPTY(t, 100, 30, "env", append(h.env, "sh", "-c", shell)...)
	p.Expect(demo.TargetLogin+"@"+demo.TargetName+":", 30*time.Second)
	p.Send("echo shell-$((6*7))\r")
	p.Expect("shell-42", 30*time.Second)
	p.Send("exit\r")
	if code := p.Wait(30 * time.Second); code != 0 {
		t.Errorf("interactive shell exited %d:\n%s", code, p.Output())
	}

	// 5. The database through ssh -L, when the demo started one.
	if fwd := findOpt(cmds, func(c string) bool { return strings.Contains(c, " -L ") }); fwd != "" {
		h.database(fwd, cmds)
	}

	// 6. Approval: the deploy waits for bob, who logs in with his own config
	// directory, lists the requests and approves.
	deploy := h.shStart(find(t, cmds, func(c string) bool { return strings.Contains(c, "deploy.sh") }))
	m := deploy.waitFor(t, regexp.MustCompile(`request ([0-9a-f]+)`))
	h.deviceLogin(find(t, cmds, func(c string) bool {
		return strings.HasPrefix(c, "XDG_CONFIG_HOME=") && strings.HasSuffix(c, "--device")
	}), "bob")
	r = h.sh(find(t, cmds, func(c string) bool { return strings.HasSuffix(c, " requests") }))
	if r.code != 0 || !strings.Contains(r.out, m[1]) || !strings.Contains(r.out, "deploys") {
		t.Errorf("requests: want request %s of rule deploys: %s", m[1], r)
	}
	approve := find(t, cmds, func(c string) bool { return strings.Contains(c, " approve "+demo.PlaceholderRequest) })
	if r := h.sh(strings.Replace(approve, demo.PlaceholderRequest, m[1], 1)); r.code != 0 {
		t.Errorf("approve: %s", r)
	}
	if r := deploy.wait(t); r.code != 0 || !strings.Contains(r.out, "deploying v2") {
		t.Errorf("the approved deploy: %s", r)
	}

	// 7. Replay: sessions lists the exec, replay shows it (masked), verify checks it.
	r = h.sh(find(t, cmds, func(c string) bool { return strings.Contains(c, " sessions") }))
	var id string
	for _, line := range strings.Split(r.out, "\n") {
		if f := strings.Fields(line); len(f) > 0 && strings.Contains(line, "ls; cat cards.txt") {
			id = f[0]
		}
	}
	if r.code != 0 || id == "" {
		t.Fatalf("sessions does not list the exec: %s", r)
	}
	replay := find(t, cmds, func(c string) bool { return strings.Contains(c, " replay "+demo.PlaceholderSession) })
	r = h.sh(strings.Replace(replay, demo.PlaceholderSession, id, 1))
	if r.code != 0 || !strings.Contains(r.out, "Test card numbers") || strings.Contains(r.out, "4111 1111 1111 1111") {
		t.Errorf("replay: want the session's output, masked: %s", r)
	}
	verify := find(t, cmds, func(c string) bool { return strings.Contains(c, " verify "+demo.PlaceholderSession) })
	if r := h.sh(strings.Replace(verify, demo.PlaceholderSession, id, 1)); r.code != 0 || !strings.Contains(r.out, "intact") {
		t.Errorf("verify: %s", r)
	}

	// Ctrl-C stops everything and keeps the recordings.
	h.stop()
	for _, p := range []string{filepath.Join(h.dir, "data", "bastion.db"), filepath.Join(h.dir, "bastion.yaml"), filepath.Join(h.dir, "bastion.log")} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("after Ctrl-C: %v", err)
		}
	}
}

// demoHarness runs `bastion demo` and the commands it prints as a user
// would: a home of their own, and `bastion` on PATH (a link to this test
// binary, which runs the CLI with BASTION_TEST_AS_CLI set).
type demoHarness struct {
	t    *testing.T
	env  []string // KEY=VALUE for every command
	bin  string   // holds bastion, first on PATH
	work string   // where the demo was started
	dir  string   // the demo's directory (the default, under work)
	proc *exec.Cmd
	out  *demoOutput
}

func newDemoHarness(t *testing.T) *demoHarness {
	t.Helper()
	exe, err := filepath.Abs(os.Args[0])
	if err != nil {
		t.Fatal(err)
	}
	bin := t.TempDir()
	if err := os.Symlink(exe, filepath.Join(bin, "bastion")); err != nil {
		t.Fatal(err)
	}
	home, work := t.TempDir(), t.TempDir()
	env := []string{
		"BASTION_TEST_AS_CLI=1", "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"),
		"SSH_AUTH_SOCK=", "BROWSER=", "DISPLAY=", "WAYLAND_DISPLAY=", "PATH=" + bin + ":" + os.Getenv("PATH"),
	}
	return &demoHarness{t: t, env: env, bin: bin, work: work, dir: filepath.Join(work, "bastion-demo")}
}

func (h *demoHarness) environ() []string { return append(os.Environ(), h.env...) }

// start runs `bastion demo` from the work directory, as `make demo` does
// from the clone, and returns the commands it prints.
func (h *demoHarness) start() []string {
	t := h.t
	t.Helper()
	h.proc = exec.Command(filepath.Join(h.bin, "bastion"), "demo")
	h.proc.Dir = h.work
	h.proc.Env = h.environ()
	h.out = startOutput(t, h.proc)
	t.Cleanup(func() {
		if h.proc.ProcessState == nil {
			h.proc.Process.Kill()
			<-h.out.exited
		}
		if t.Failed() {
			t.Logf("bastion demo output:\n%s", h.out.String())
			if b, err := os.ReadFile(filepath.Join(h.dir, "bastion.log")); err == nil {
				t.Logf("bastion.log:\n%s", b)
			}
		}
	})
	h.out.waitFor(t, regexp.MustCompile(`Ctrl-C here stops the demo`))
	var cmds []string
	for _, line := range strings.Split(h.out.String(), "\n") {
		if c, ok := strings.CutPrefix(line, demo.CommandPrefix); ok {
			cmds = append(cmds, c)
		}
	}
	if strings.Contains(h.out.String(), "export PATH=") {
		t.Errorf("the demo asks to change PATH although bastion on PATH is this binary:\n%s", h.out.String())
	}
	return cmds
}

// stop sends Ctrl-C (SIGINT) and waits for a clean exit.
func (h *demoHarness) stop() {
	t := h.t
	t.Helper()
	h.proc.Process.Signal(os.Interrupt)
	select {
	case <-h.out.exited:
	case <-time.After(60 * time.Second):
		t.Fatalf("bastion demo did not stop after Ctrl-C:\n%s", h.out.String())
	}
	if !h.proc.ProcessState.Success() || !strings.Contains(h.out.String(), "Stopped.") {
		t.Errorf("bastion demo after Ctrl-C: %v\n%s", h.proc.ProcessState, h.out.String())
	}
}

// deviceLogin runs a printed `bastion login ... --device` and approves its
// code at the identity provider as subject, as the person in the browser.
func (h *demoHarness) deviceLogin(line, subject string) {
	t := h.t
	t.Helper()
	login := h.shStart(line)
	m := login.waitFor(t, regexp.MustCompile(`(http://\S+/device)\S*\s+and confirm the code (\S+)`))
	u, err := url.Parse(m[1])
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := devidp.ApproveDeviceAt(ctx, u.Scheme+"://"+u.Host, m[2], subject); err != nil {
		t.Fatalf("approve the device login as %s: %v", subject, err)
	}
	if r := login.wait(t); r.code != 0 || !strings.Contains(r.out, " as "+subject+"; certificate serial") {
		t.Fatalf("%s: %s", line, r)
	}
}

// database forwards with the printed ssh -L line, then runs the printed
// psql lines: a SELECT with masked cards, a DROP TABLE blocked by no-drop.
func (h *demoHarness) database(fwd string, cmds []string) {
	t := h.t
	t.Helper()
	if _, err := exec.LookPath("psql"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("psql is required in CI")
		}
		t.Log("psql not installed: the database steps are not tried")
		return
	}
	if ln, err := net.Listen("tcp", "127.0.0.1:5433"); err != nil {
		t.Logf("local port 5433 is busy: the database steps are not tried (%v)", err)
		return
	} else {
		ln.Close()
	}
	if r := h.sh(fwd); r.code != 0 {
		t.Fatalf("ssh -L: %s", r)
	}
	r := h.sh(find(t, cmds, func(c string) bool { return strings.HasPrefix(c, "psql ") && strings.Contains(c, "SELECT") }))
	if r.code != 0 || !strings.Contains(r.out, "Ada Lovelace") || strings.Contains(r.out, "4111 1111 1111 1111") {
		t.Errorf("psql SELECT: want the customers with masked cards: %s", r)
	}
	r = h.sh(find(t, cmds, func(c string) bool { return strings.HasPrefix(c, "psql ") && strings.Contains(c, "DROP") }))
	if r.code == 0 || !strings.Contains(r.out, "no-drop") {
		t.Errorf("psql DROP TABLE: want it blocked by rule no-drop: %s", r)
	}
	r = h.sh(find(t, cmds, func(c string) bool { return strings.HasPrefix(c, "psql ") && strings.Contains(c, "SELECT") }))
	if r.code != 0 || !strings.Contains(r.out, "Ada Lovelace") {
		t.Errorf("the table is gone after the blocked DROP: %s", r)
	}
	// The same through the PostgreSQL listener, with the login's certificate.
	r = h.sh(find(t, cmds, func(c string) bool { return strings.HasPrefix(c, "eval ") && strings.Contains(c, "db env") }))
	if r.code != 0 || !strings.Contains(r.out, "Ada Lovelace") || strings.Contains(r.out, "4111 1111 1111 1111") {
		t.Errorf("psql through the PostgreSQL listener: want the customers with masked cards: %s", r)
	}
}

// shResult is a finished shell command.
type shResult struct {
	line string
	code int
	out  string // stdout and stderr, interleaved
}

func (r shResult) String() string {
	return "$ " + r.line + "\nexit " + itoa(r.code) + "\n" + r.out
}

// sh runs one printed line with a POSIX shell, as typed.
func (h *demoHarness) sh(line string) shResult {
	h.t.Helper()
	return h.shStart(line).wait(h.t)
}

// shProc is a running shell command.
type shProc struct {
	line string
	cmd  *exec.Cmd
	out  *demoOutput
}

func (h *demoHarness) shStart(line string) *shProc {
	h.t.Helper()
	cmd := exec.Command("/bin/sh", "-c", line)
	cmd.Dir = h.work
	cmd.Env = h.environ()
	// Its own process group, so a forward that went to the background
	// (ssh -f) does not hold the test's pipes.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	return &shProc{line: line, cmd: cmd, out: startOutput(h.t, cmd)}
}

func (p *shProc) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	return p.out.waitFor(t, re)
}

func (p *shProc) wait(t *testing.T) shResult {
	t.Helper()
	select {
	case <-p.out.exited:
	case <-time.After(90 * time.Second):
		p.cmd.Process.Kill()
		t.Fatalf("%s: no exit within 90s:\n%s", p.line, p.out.String())
	}
	return shResult{line: p.line, code: p.cmd.ProcessState.ExitCode(), out: p.out.String()}
}

// demoOutput collects a process's stdout and stderr.
type demoOutput struct {
	mu     sync.Mutex
	b      strings.Builder
	exited chan struct{}
}

func startOutput(t *testing.T, cmd *exec.Cmd) *demoOutput {
	t.Helper()
	o := &demoOutput{exited: make(chan struct{})}
	pr, pw, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stdout, cmd.Stderr = pw, pw
	if err := cmd.Start(); err != nil {
		t.Fatalf("start %v: %v", cmd.Args, err)
	}
	pw.Close()
	read := make(chan struct{})
	go func() {
		defer close(read)
		rd := bufio.NewReader(pr)
		buf := make([]byte, 4096)
		for {
			n, err := rd.Read(buf)
			o.mu.Lock()
			o.b.Write(buf[:n])
			o.mu.Unlock()
			if err != nil {
				return
			}
		}
	}()
	go func() {
		cmd.Wait()
		// A child that went to the background may keep the pipe open; the
		// output up to the exit is what counts.
		select {
		case <-read:
		case <-time.After(2 * time.Second):
		}
		pr.Close()
		close(o.exited)
	}()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Kill()
			<-o.exited
		}
	})
	return o
}

func (o *demoOutput) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.b.String()
}

// waitFor waits until the output matches re and returns the submatches.
func (o *demoOutput) waitFor(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.After(90 * time.Second)
	for {
		if m := re.FindStringSubmatch(o.String()); m != nil {
			return m
		}
		select {
		case <-o.exited:
			if m := re.FindStringSubmatch(o.String()); m != nil {
				return m
			}
			t.Fatalf("exited before printing %q:\n%s", re, o.String())
		case <-deadline:
			t.Fatalf("no %q within 90s:\n%s", re, o.String())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func find(t *testing.T, cmds []string, match func(string) bool) string {
	t.Helper()
	if c := findOpt(cmds, match); c != "" {
		return c
	}
	t.Fatalf("the demo printed no such command; it printed:\n%s", strings.Join(cmds, "\n"))
	return ""
}

func findOpt(cmds []string, match func(string) bool) string {
	for _, c := range cmds {
		if match(c) {
			return c
		}
	}
	return ""
}

// TestReadmeQuickStart keeps the README's quick start and the commands the
// demo prints the same: the README's lines, typed from the clone, are the
// guide's lines for a demo in ./bastion-demo on the default ports.
func TestReadmeQuickStart(t *testing.T) {
	b, err := os.ReadFile("../../README.md")
	if err != nil {
		t.Fatal(err)
	}
	_, section, ok := strings.Cut(string(b), "\n## Quick start\n")
	if !ok {
		t.Fatal("README.md has no Quick start section")
	}
	section, _, _ = strings.Cut(section, "\n## ")
	clone := "/home/u/bastion"
	dirRef := regexp.MustCompile(`"\$PWD(/bastion-demo/[^"]*)"`)
	var readme []string
	inCode := false
	for _, line := range strings.Split(section, "\n") {
		switch {
		case strings.HasPrefix(line, "```"):
			inCode = !inCode
			continue
		case !inCode || strings.TrimSpace(line) == "":
			continue
		}
		if i := strings.Index(line, "  #"); i >= 0 {
			line = line[:i]
		}
		line = dirRef.ReplaceAllString(strings.TrimSpace(line), clone+"$1")
		readme = append(readme, strings.ReplaceAll(line, "$PWD", clone))
	}

	dir := clone + "/bastion-demo"
	d := &demo.Demo{
		Dir: dir, ConfigPath: dir + "/bastion.yaml", DataDir: dir + "/data", LogPath: dir + "/bastion.log",
		Home: dir + "/web1/home", SSHConfigPath: dir + "/ssh_config", BobConfigDir: dir + "/bob",
		BastionURL: "http://" + demo.DefaultHTTPAddr, SSHAddr: demo.DefaultSSHAddr, IssuerURL: "http://" + demo.DefaultIssuerAddr,
		TargetAddr: "127.0.0.1:40000", DBAddr: "127.0.0.1:5432", DBVersion: "15",
	}
	var guide []string
	for _, line := range strings.Split(d.Guide(demo.GuideOptions{PathDir: clone + "/bin"}), "\n") {
		if c, ok := strings.CutPrefix(line, demo.CommandPrefix); ok {
			guide = append(guide, c)
		}
	}
	if len(guide) < 15 {
		t.Fatalf("the guide prints only %d commands:\n%s", len(guide), strings.Join(guide, "\n"))
	}
	if strings.Join(readme, "\n") != strings.Join(guide, "\n") {
		t.Errorf("the README's quick start and the demo's guide differ:\nREADME:\n%s\n\nguide:\n%s",
			strings.Join(readme, "\n"), strings.Join(guide, "\n"))
	}
}
