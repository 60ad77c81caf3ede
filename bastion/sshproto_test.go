package bastion_test

import (
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/testenv"
)

// rawShell is an interactive shell on web1 opened by a client written with
// x/crypto/ssh, which sends whatever channel requests a test asks for
// (the terminal modes of its pty-req, in any order), as a custom client can.
type rawShell struct {
	t     *testing.T
	c     *ssh.Client
	s     *ssh.Session
	in    io.WriteCloser
	mu    sync.Mutex
	out   strings.Builder
	seen  int // output consumed by expect
	moved chan struct{}
}

// dialTarget logs in to the bastion as root@web1 (route in the username).
func (e *env) dialTarget(t *testing.T) *ssh.Client {
	t.Helper()
	c, err := ssh.Dial("tcp", e.app.SSHAddr(), &ssh.ClientConfig{
		User: "root@web1", Auth: []ssh.AuthMethod{ssh.PublicKeys(e.alice.CertSigner(t))},
		HostKeyCallback: e.hostKeys(), Timeout: 10 * time.Second,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// rawShellWith opens a session with a pty-req carrying modes and starts a
// shell, waiting for its prompt (root's, ending in "# ").
func (e *env) rawShellWith(t *testing.T, term string, modes ssh.TerminalModes) *rawShell {
	t.Helper()
	c := e.dialTarget(t)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	r := &rawShell{t: t, c: c, s: s, moved: make(chan struct{}, 1)}
	in, err := s.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	r.in = in
	out, _ := s.StdoutPipe()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := out.Read(buf)
			if n > 0 {
				r.mu.Lock()
				r.out.Write(buf[:n])
				r.mu.Unlock()
				select {
				case r.moved <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return
			}
		}
	}()
	if err := s.RequestPty(term, 30, 120, modes); err != nil {
		t.Fatalf("pty-req: %v", err)
	}
	if err := s.Shell(); err != nil {
		t.Fatalf("shell: %v", err)
	}
	r.expect("# ", 30*time.Second)
	return r
}

func (r *rawShell) send(keys string) {
	r.t.Helper()
	if _, err := io.WriteString(r.in, keys); err != nil {
		r.t.Fatalf("send %q: %v", keys, err)
	}
}

// expect waits for want in the output not yet consumed, case-insensitively
// (a test may turn the target's output to upper case).
func (r *rawShell) expect(want string, timeout time.Duration) string {
	r.t.Helper()
	deadline := time.After(timeout)
	for {
		r.mu.Lock()
		all := r.out.String()
		rest := all[r.seen:]
		if i := strings.Index(strings.ToLower(rest), strings.ToLower(want)); i >= 0 {
			r.seen += i + len(want)
			r.mu.Unlock()
			return rest[:i+len(want)]
		}
		r.mu.Unlock()
		select {
		case <-r.moved:
		case <-deadline:
			r.t.Fatalf("timed out waiting for %q; output so far:\n%q", want, all)
		}
	}
}

// hexWord spells s as bash's $'\xNN…', which holds no letter but x, so a
// path survives input that is folded to lower or upper case.
func hexWord(s string) string {
	var b strings.Builder
	b.WriteString("$'")
	for i := 0; i < len(s); i++ {
		fmt.Fprintf(&b, "\\x%02x", s[i])
	}
	b.WriteString("'")
	return b.String()
}

// Terminal modes in a pty-req change how the target's tty turns keys into
// the characters the shell reads, and how its output is drawn, without a
// command the guard would see (stty is judged; a pty-req's modes were
// passed as sent). With IUCLC (and IEXTEN) the tty folds typed upper case
// to lower case, and with OLCUC it shows output in upper case: the user
// types RM -RF, bash reads and runs rm -rf, and the screen, like the keys,
// shows RM -RF, which no rule names. A changed interrupt character (VINTR)
// stops the guard's Ctrl-C from cancelling a refused line, and a printable
// erase or kill character makes the keys read as something else.
func TestPtyModesCannotHideACommand(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")

	t.Run("case folding", func(t *testing.T) {
		os.MkdirAll(victim, 0o755)
		sh := e.rawShellWith(t, "xterm", ssh.TerminalModes{ssh.IUCLC: 1, ssh.IEXTEN: 1, ssh.OLCUC: 1, ssh.OPOST: 1})
		sh.send("RM -RF " + hexWord(victim) + "; ECHO DONE-$((40+2))\r")
		got := sh.expect("# ", 20*time.Second)
		if !exists(victim) {
			t.Fatalf("RM -RF, typed with IUCLC and OLCUC in the pty-req, ran as rm -rf: %q", got)
		}
	})
	t.Run("interrupt character", func(t *testing.T) {
		os.MkdirAll(victim, 0o755)
		sh := e.rawShellWith(t, "xterm", ssh.TerminalModes{ssh.VINTR: 0x14})
		sh.send("rm -rf " + victim + "\r")
		sh.expect("blocked by rule no-rm-rf", 20*time.Second)
		time.Sleep(300 * time.Millisecond)
		sh.send("\r")
		sh.send("echo done-$((40+2))\r")
		got := sh.expect("done-42", 20*time.Second)
		if !exists(victim) {
			t.Fatalf("a refused line that the guard's Ctrl-C did not cancel (VINTR moved) ran at the next Enter: %q", got)
		}
	})
	t.Run("printable erase character, typed ahead", func(t *testing.T) {
		os.MkdirAll(victim, 0o755)
		sh := e.rawShellWith(t, "xterm", ssh.TerminalModes{ssh.VERASE: 'Q'})
		sh.send("sleep 1\r")
		time.Sleep(200 * time.Millisecond)
		sh.send("#Qrm -rf " + victim + "\r")
		sh.send("echo done-$((40+2))\r")
		got := sh.expect("done-42", 20*time.Second)
		if !exists(victim) {
			t.Fatalf("a line typed ahead with a printable erase character (#, then Q, the pty-req's VERASE) ran: %q", got)
		}
	})
	// A shell without a line editor (dash, ssh -t host sh) reads a line
	// the tty cooked: arrow keys are bytes in it, echoed as ^[[D. Without
	// ECHOCTL they are echoed raw and move the cursor, so the screen, like
	// the keys read as readline's, shows "#rm -rf ...", a comment, while
	// dash runs rm -rf; without ECHO nothing is echoed and the keys are
	// the only reading.
	for name, modes := range map[string]ssh.TerminalModes{"ECHOCTL off": {ssh.ECHOCTL: 0}, "ECHO off": {ssh.ECHO: 0}} {
		t.Run("dash "+name, func(t *testing.T) {
			os.MkdirAll(victim, 0o755)
			sh := e.rawExecModes(t, "PS1='D> ' sh", modes)
			sh.expect("D> ", 20*time.Second)
			line := "rm -rf " + victim + " "
			sh.send(line + strings.Repeat("\x1b[D", len(line)) + "#")
			time.Sleep(300 * time.Millisecond)
			sh.send("\r")
			time.Sleep(500 * time.Millisecond)
			sh.send("\x03")
			time.Sleep(200 * time.Millisecond)
			sh.send("echo done-$((40+2))\r")
			got := sh.expect("done-42", 20*time.Second)
			if !exists(victim) {
				t.Fatalf("rm -rf ran in dash with modes %v: %q", modes, got)
			}
		})
	}
	t.Run("stock ssh keeps its modes", func(t *testing.T) {
		const note = "pty-req terminal modes left out"
		before := strings.Count(e.logs.String(), note)
		p := e.shell(t) // OpenSSH's client sends its terminal's modes
		p.Send("exit\r")
		p.Wait(20 * time.Second)
		if strings.Count(e.logs.String(), note) != before {
			t.Errorf("modes of a terminal in its default state were left out:\n%s", e.logs.String())
		}
	})
}

// The terminal type a pty-req names picks the sequences readline draws the
// line with, and the guard reads the screen with an xterm-like emulator.
// With TERM=vt52 readline moves the cursor left with ESC D (to the emulator,
// a line feed) and clears with ESC K (which it ignores), so killing a
// quote (Ctrl-K) leaves it on the screen: the screen reads an unfinished
// line and lets its Enter through, while bash runs rm -rf; a word motion
// (Alt-b, Alt-f) first makes the keys unreadable. With TERM=dumb (or a
// name the target has no terminfo for) readline scrolls a long line
// sideways and the screen shows only its tail.
func TestPtyTermCannotHideACommand(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	for _, tc := range []struct{ term, keys string }{
		{"vt52", "rm -rf " + victim + " 'X\x1bb\x1bf\x1b[D\x1b[D\x0b"},
		{"dumb", "rm -rf " + victim + "; : " + strings.Repeat("x", 300) + "\x1bb\x1bf"},
		{"no-such-terminal", "rm -rf " + victim + "; : " + strings.Repeat("x", 300) + "\x1bb\x1bf"},
	} {
		t.Run(tc.term, func(t *testing.T) {
			os.MkdirAll(victim, 0o755)
			sh := e.rawShellWith(t, tc.term, ssh.TerminalModes{})
			sh.send(tc.keys)
			time.Sleep(300 * time.Millisecond) // the Enter comes after the echo, as a person types it
			sh.send("\r")
			time.Sleep(300 * time.Millisecond)
			sh.send("\x03")
			time.Sleep(200 * time.Millisecond)
			sh.send("echo done-$((40+2))\r")
			got := sh.expect("done-42", 20*time.Second)
			if !exists(victim) {
				t.Fatalf("rm -rf ran under TERM=%s: %q", tc.term, got)
			}
		})
	}
	// The same, with the type changed at the prompt: the assignment is
	// held (the rules' unknowable action), and cancelled here.
	for _, tc := range []struct{ set, keys string }{
		{"export TERM=vt52", "rm -rf " + victim + " 'X\x1bb\x1bf\x1b[D\x1b[D\x0b"},
		{"TERM=dumb", "rm -rf " + victim + "; : " + strings.Repeat("x", 300) + "\x1bb\x1bf"},
	} {
		t.Run(tc.set, func(t *testing.T) {
			os.MkdirAll(victim, 0o755)
			sh := e.rawShellWith(t, "xterm", ssh.TerminalModes{})
			sh.send(tc.set + "\r")
			sh.expect("held for approval", 20*time.Second)
			sh.send("\x03")
			sh.expect("cancelled", 20*time.Second)
			sh.expect("# ", 20*time.Second)
			sh.send(tc.keys)
			time.Sleep(300 * time.Millisecond)
			sh.send("\r")
			time.Sleep(300 * time.Millisecond)
			sh.send("\x03")
			time.Sleep(200 * time.Millisecond)
			sh.send("echo done-$((40+2))\r")
			got := sh.expect("done-42", 20*time.Second)
			if !exists(victim) {
				t.Fatalf("rm -rf ran after %s: %q", tc.set, got)
			}
		})
	}
	t.Run("env TERM", func(t *testing.T) {
		s, err := e.dialTarget(t).NewSession()
		if err != nil {
			t.Fatal(err)
		}
		defer s.Close()
		if err := s.Setenv("TERM", "vt52"); err == nil {
			t.Fatal("env TERM=vt52 was accepted")
		}
		mustContain(t, "log", e.logs.String(), "TERM=")
	})
}

// The guard's screen model is at most linerec.MaxCols wide; a window the
// client claims wider (up to 10000 columns were passed to the target) has
// readline wrap the line elsewhere than the model does, so its redraw lands
// on other rows: a quote deleted after a word motion stays on the modelled
// screen, which reads an unfinished line while bash runs rm -rf. The same
// width set at the prompt (stty cols) is held.
func TestWindowSizeCannotHideACommand(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	victim := filepath.Join(t.TempDir(), "victim")
	attack := func(t *testing.T, sh *rawShell) {
		t.Helper()
		sh.send("rm -rf " + victim + " '" + strings.Repeat("x", 1100))
		time.Sleep(300 * time.Millisecond)
		sh.send("\x1bb") // back a word: the keys are no longer a reading
		time.Sleep(300 * time.Millisecond)
		sh.send("\x7f") // the quote
		time.Sleep(300 * time.Millisecond)
		sh.send("\r")
		time.Sleep(500 * time.Millisecond)
		sh.send("\x03")
		time.Sleep(200 * time.Millisecond)
		sh.send("echo done-$((40+2))\r")
		sh.expect("done-42", 20*time.Second)
		if !exists(victim) {
			t.Fatal("rm -rf ran")
		}
	}
	t.Run("window-change", func(t *testing.T) {
		os.MkdirAll(victim, 0o755)
		sh := e.rawShellWith(t, "xterm", ssh.TerminalModes{})
		if err := sh.s.WindowChange(30, 2000); err != nil {
			t.Fatal(err)
		}
		time.Sleep(300 * time.Millisecond)
		attack(t, sh)
	})
	t.Run("stty cols", func(t *testing.T) {
		os.MkdirAll(victim, 0o755)
		sh := e.rawShellWith(t, "xterm", ssh.TerminalModes{})
		sh.send("stty cols 2000\r")
		sh.expect("held for approval", 20*time.Second)
		sh.send("\x03")
		sh.expect("cancelled", 20*time.Second)
		sh.expect("# ", 20*time.Second)
		attack(t, sh)
	})
}

// rawExecWith opens a session with a pty and runs command as an exec, as
// ssh -t host command does.
func (e *env) rawExecWith(t *testing.T, command string) *rawShell {
	t.Helper()
	return e.rawExecModes(t, command, ssh.TerminalModes{})
}

// rawExecModes is rawExecWith with the pty-req's terminal modes.
func (e *env) rawExecModes(t *testing.T, command string, modes ssh.TerminalModes) *rawShell {
	t.Helper()
	c := e.dialTarget(t)
	s, err := c.NewSession()
	if err != nil {
		t.Fatal(err)
	}
	r := &rawShell{t: t, c: c, s: s, moved: make(chan struct{}, 1)}
	if r.in, err = s.StdinPipe(); err != nil {
		t.Fatal(err)
	}
	out, _ := s.StdoutPipe()
	go func() {
		buf := make([]byte, 4096)
		for {
			n, err := out.Read(buf)
			if n > 0 {
				r.mu.Lock()
				r.out.Write(buf[:n])
				r.mu.Unlock()
				select {
				case r.moved <- struct{}{}:
				default:
				}
			}
			if err != nil {
				return
			}
		}
	}()
	if err := s.RequestPty("xterm", 30, 120, modes); err != nil {
		t.Fatalf("pty-req: %v", err)
	}
	if err := s.Start(command); err != nil {
		t.Fatalf("exec: %v", err)
	}
	return r
}

// An exec that starts an interactive shell reading the session's input
// (ssh -t host bash) has that input judged as the shell's command lines;
// programs that start one without naming a shell (script, and nsenter,
// unshare or chroot without a command, which run $SHELL) did not: what
// was typed into the shell they started went to the target unjudged.
func TestExecOfProgramStartingAShell(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	victim := filepath.Join(t.TempDir(), "victim")
	for _, command := range []string{"script -q /dev/null", "unshare", "nsenter"} {
		t.Run(command, func(t *testing.T) {
			os.MkdirAll(victim, 0o755)
			sh := e.rawExecWith(t, command)
			sh.expect("# ", 30*time.Second)
			sh.send("rm -rf " + victim + "\r")
			time.Sleep(500 * time.Millisecond)
			sh.send("\x03")
			time.Sleep(200 * time.Millisecond)
			sh.send("echo done-$((40+2))\r")
			got := sh.expect("done-42", 20*time.Second)
			if !exists(victim) {
				t.Fatalf("rm -rf typed into the shell %q started ran: %q", command, got)
			}
		})
	}
	t.Run("tmux", func(t *testing.T) {
		testenv.Require(t, "tmux")
		os.MkdirAll(victim, 0o755)
		sock := t.TempDir()
		t.Cleanup(func() {
			kill := exec.Command("tmux", "kill-server")
			kill.Env = append(os.Environ(), "TMUX_TMPDIR="+sock)
			kill.Run()
		})
		sh := e.rawExecWith(t, "TMUX_TMPDIR="+sock+" tmux -f /dev/null")
		sh.expect("# ", 30*time.Second)
		time.Sleep(300 * time.Millisecond)
		sh.send("rm -rf " + victim + "\r")
		sh.expect("blocked by rule no-rm-rf", 20*time.Second)
		sh.send("exit\r")
		if !exists(victim) {
			t.Fatal("rm -rf typed into the shell tmux started ran")
		}
	})
	// An exec-only role gets no shell this way.
	olga := e.userKey("olga", ca.Identity{User: "olga", Issuer: "https://idp.test", Subject: "u-olga", Groups: []string{"ops"}}, 0)
	cfg := e.writeSSHConfig("olga", olga)
	for _, command := range []string{"script -q /dev/null", "unshare", "newgrp", "tmux", "screen -r"} {
		r := testenv.Run(t, 30*time.Second, "rm -rf "+victim+"\n", "ssh", "-F", cfg, "-T", "root@web1", command)
		if r.Code != 126 || !strings.Contains(r.Stderr, "not a shell reading its commands") {
			t.Errorf("exec-only role, %q: want a refusal, got %s", command, r)
		}
	}
	if !exists(victim) {
		t.Fatal("an exec-only role's input ran as a shell's commands")
	}
}
