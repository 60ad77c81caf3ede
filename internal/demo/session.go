package demo

import (
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/creack/pty"
	gliderssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"
	"golang.org/x/sys/unix"

	"github.com/bastionhq/bastion/internal/safetext"
)

// Wire formats of the session requests (RFC 4254 §6), parsed with
// ssh.Unmarshal into typed structs.
type (
	ptyRequestMsg struct {
		Term     string
		Columns  uint32
		Rows     uint32
		Width    uint32
		Height   uint32
		Modelist string
	}
	windowChangeMsg struct {
		Columns uint32
		Rows    uint32
		Width   uint32
		Height  uint32
	}
	envRequestMsg struct {
		Name  string
		Value string
	}
	execMsg struct {
		Command string
	}
	signalMsg struct {
		Signal string
	}
	exitStatusMsg struct {
		Status uint32
	}
	exitSignalMsg struct {
		Signal     string
		CoreDumped bool
		Error      string
		Lang       string
	}
)

// Limits on what a client may ask of a session.
const (
	maxEnvVars     = 64
	maxCommandLen  = 64 << 10
	maxTermLen     = 64
	maxWindowCells = 10000 // columns or rows
	hangupGrace    = 2 * time.Second
)

// signals maps RFC 4254 signal names to signals, both ways.
var signals = map[string]syscall.Signal{
	"ABRT": syscall.SIGABRT, "ALRM": syscall.SIGALRM, "FPE": syscall.SIGFPE, "HUP": syscall.SIGHUP,
	"ILL": syscall.SIGILL, "INT": syscall.SIGINT, "KILL": syscall.SIGKILL, "PIPE": syscall.SIGPIPE,
	"QUIT": syscall.SIGQUIT, "SEGV": syscall.SIGSEGV, "TERM": syscall.SIGTERM, "USR1": syscall.SIGUSR1,
	"USR2": syscall.SIGUSR2,
}

func signalName(s syscall.Signal) (string, bool) {
	for name, sig := range signals {
		if sig == s {
			return name, true
		}
	}
	return "", false
}

// session is one session channel: its requests, and the process it runs.
type session struct {
	t        *Target
	ch       gossh.Channel
	login    string
	permitPt bool

	mu      sync.Mutex
	pty     *ptyRequestMsg // nil without pty-req
	env     []string       // client-supplied, filtered
	started bool
	cmd     *exec.Cmd
	ptmx    *os.File
	// replied is closed once the shell or exec request has been answered:
	// the exit status must not overtake the reply.
	replied chan struct{}
	done    chan struct{} // closed when the process has exited and its output is drained
}

// handleSession serves one session channel. The request loop runs here; the
// process runs in its own goroutine once shell or exec is accepted.
func (t *Target) handleSession(_ *gliderssh.Server, conn *gossh.ServerConn, nc gossh.NewChannel, ctx gliderssh.Context) {
	t.mu.Lock()
	if t.closing {
		t.mu.Unlock()
		nc.Reject(gossh.ResourceShortage, "the demo target is shutting down")
		return
	}
	t.sessions.Add(1)
	t.mu.Unlock()
	defer t.sessions.Done()
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	permit, _ := ctx.Value(ctxKeyPermitPty).(bool)
	s := &session{t: t, ch: ch, login: conn.User(), permitPt: permit, replied: make(chan struct{}), done: make(chan struct{})}
	for req := range reqs {
		wasStarted := s.isStarted()
		ok := s.request(req)
		if req.WantReply {
			req.Reply(ok, nil)
		}
		if !wasStarted && s.isStarted() {
			close(s.replied)
		}
	}
	// The client closed the channel or went away: hang up what still runs.
	s.hangup()
}

func (s *session) isStarted() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.started
}

// request handles one channel request and reports success.
func (s *session) request(req *gossh.Request) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch req.Type {
	case "pty-req":
		var m ptyRequestMsg
		if s.started || s.pty != nil || !s.permitPt || gossh.Unmarshal(req.Payload, &m) != nil ||
			len(m.Term) > maxTermLen || m.Columns > maxWindowCells || m.Rows > maxWindowCells {
			return false
		}
		s.pty = &m
		return true
	case "env":
		var m envRequestMsg
		if s.started || gossh.Unmarshal(req.Payload, &m) != nil || len(s.env) >= maxEnvVars || !envAllowed(m.Name) ||
			strings.ContainsAny(m.Value, "\x00") {
			return false
		}
		s.env = append(s.env, m.Name+"="+m.Value)
		return true
	case "window-change":
		var m windowChangeMsg
		if s.pty == nil || gossh.Unmarshal(req.Payload, &m) != nil || m.Columns > maxWindowCells || m.Rows > maxWindowCells {
			return false
		}
		s.pty.Columns, s.pty.Rows = m.Columns, m.Rows
		if s.ptmx != nil {
			setWinsize(s.ptmx, winsize(s.pty))
		}
		return true
	case "shell", "exec":
		if s.started {
			return false
		}
		var command string
		if req.Type == "exec" {
			var m execMsg
			if gossh.Unmarshal(req.Payload, &m) != nil || len(m.Command) > maxCommandLen || strings.ContainsRune(m.Command, 0) {
				return false
			}
			command = m.Command
		}
		if err := s.start(command, req.Type == "exec"); err != nil {
			s.t.log.Warn("session start failed", "login", safetext.Printable(s.login), "err", err)
			return false
		}
		s.started = true
		return true
	case "signal":
		var m signalMsg
		if gossh.Unmarshal(req.Payload, &m) != nil {
			return false
		}
		sig, known := signals[m.Signal]
		if !known || s.cmd == nil || s.cmd.Process == nil {
			return false
		}
		// The shell leads its own process group (its own session on a pty).
		return syscall.Kill(-s.cmd.Process.Pid, sig) == nil
	case "subsystem":
		// sftp, so that scp (which speaks sftp since OpenSSH 9.0) and sftp
		// work as the README says: OpenSSH's own sftp-server, in the home.
		var m subsystemMsg
		if s.started || gossh.Unmarshal(req.Payload, &m) != nil || m.Name != "sftp" {
			return false
		}
		if s.t.cfg.SFTPServer == "" {
			s.t.log.Warn("sftp refused: no sftp-server found (install openssh-sftp-server)", "login", safetext.Printable(s.login))
			return false
		}
		s.pty = nil // sftp speaks its protocol on plain pipes
		if err := s.startArgv(s.t.cfg.SFTPServer, nil, "subsystem sftp"); err != nil {
			s.t.log.Warn("session start failed", "login", safetext.Printable(s.login), "err", err)
			return false
		}
		s.started = true
		return true
	}
	// x11-req, auth-agent-req@openssh.com, port forwarding, ...: refused.
	return false
}

type subsystemMsg struct{ Name string }

// envAllowed is the environment a client may set: the locale and the terminal.
func envAllowed(name string) bool {
	return name == "LANG" || name == "TERM" || strings.HasPrefix(name, "LC_") && len(name) <= 32 &&
		strings.Trim(name[3:], "ABCDEFGHIJKLMNOPQRSTUVWXYZ_") == ""
}

func winsize(m *ptyRequestMsg) *unix.Winsize {
	return &unix.Winsize{Col: uint16(m.Columns), Row: uint16(m.Rows), Xpixel: uint16(m.Width), Ypixel: uint16(m.Height)}
}

// startPty starts cmd as a session leader with a new pty as its
// controlling terminal. Unlike pty.StartWithSize it never calls the
// master's Fd (which would switch it to blocking mode), so the master keeps
// working with read deadlines and a Close that interrupts a pending Read.
func startPty(cmd *exec.Cmd, ws *unix.Winsize) (*os.File, error) {
	ptmx, tty, err := pty.Open()
	if err != nil {
		return nil, err
	}
	defer tty.Close()
	if err := setWinsize(ptmx, ws); err != nil {
		ptmx.Close()
		return nil, err
	}
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, tty, tty
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true}
	if err := cmd.Start(); err != nil {
		ptmx.Close()
		return nil, err
	}
	return ptmx, nil
}

// setWinsize sets a pty's window size through the file's raw connection,
// which is safe against a concurrent Close.
func setWinsize(f *os.File, ws *unix.Winsize) error {
	rc, err := f.SyscallConn()
	if err != nil {
		return err
	}
	var ierr error
	if err := rc.Control(func(fd uintptr) { ierr = unix.IoctlSetWinsize(int(fd), unix.TIOCSWINSZ, ws) }); err != nil {
		return err
	}
	return ierr
}

// start runs the shell (command empty and !exec) or `shell -c command`,
// on a pty when one was requested. Called with s.mu held.
func (s *session) start(command string, isExec bool) error {
	cfg := &s.t.cfg
	var args []string
	switch {
	case isExec:
		args = []string{"-c", command}
	case strings.HasSuffix(cfg.Shell, "bash"):
		args = []string{"--noprofile", "--rcfile", cfg.Home + "/.bashrc", "-i"}
	default:
		args = []string{"-i"}
	}
	return s.startArgv(cfg.Shell, args, command)
}

// startArgv runs program with args in the home, on a pty when one was
// requested; what names it in the log. Called with s.mu held.
func (s *session) startArgv(program string, args []string, command string) error {
	cfg := &s.t.cfg
	cmd := exec.Command(program, args...)
	cmd.Dir = cfg.Home
	cmd.Env = []string{
		"HOME=" + cfg.Home, "USER=" + s.login, "LOGNAME=" + s.login, "SHELL=" + cfg.Shell,
		"PATH=" + cfg.Path, "ENV=" + cfg.Home + "/.shrc", "DEMO_TARGET=" + cfg.Name,
	}
	cmd.Env = append(cmd.Env, s.env...)
	log := s.t.log.With("login", safetext.Printable(s.login))
	if s.pty != nil {
		if s.pty.Term != "" {
			cmd.Env = append(cmd.Env, "TERM="+s.pty.Term)
		}
		ptmx, err := startPty(cmd, winsize(s.pty))
		if err != nil {
			return fmt.Errorf("demo: target: start %s on a pty: %w", cfg.Shell, err)
		}
		s.cmd, s.ptmx = cmd, ptmx
		log.Info("session started", "pty", true, "command", safetext.Printable(command), "pid", cmd.Process.Pid)
		go s.runPty()
		return nil
	}
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		return fmt.Errorf("demo: target: %w", err)
	}
	cmd.Stdout = s.ch
	cmd.Stderr = s.ch.Stderr()
	// A background child holding stdout must not keep the session open forever.
	cmd.WaitDelay = cfg.DrainTimeout
	if err := cmd.Start(); err != nil {
		return fmt.Errorf("demo: target: start %s: %w", cfg.Shell, err)
	}
	s.cmd = cmd
	log.Info("session started", "pty", false, "command", safetext.Printable(command), "pid", cmd.Process.Pid)
	// The stdin copier is not waited for: many clients never send EOF.
	go func() {
		io.Copy(stdin, s.ch)
		stdin.Close()
	}()
	go func() { s.finish(cmd.Wait()) }()
	return nil
}

// runPty copies the terminal both ways, waits for the shell, drains its
// remaining output and ends the session.
func (s *session) runPty() {
	copied := make(chan struct{})
	go func() {
		io.Copy(s.ch, s.ptmx)
		close(copied)
	}()
	go io.Copy(s.ptmx, s.ch) // keys; not waited for
	err := s.cmd.Wait()
	// Everything the shell wrote is in the pty's buffer; read it out, but not
	// forever: a background child may hold the terminal open.
	s.ptmx.SetReadDeadline(time.Now().Add(s.t.cfg.DrainTimeout))
	<-copied
	s.ptmx.Close()
	s.finish(err)
}

// finish sends the exit status or signal, then EOF, then closes the
// channel (RFC 4254 §6.10, OpenSSH's order).
func (s *session) finish(err error) {
	defer close(s.done)
	<-s.replied
	var ee *exec.ExitError
	status, sig := 0, ""
	switch {
	case err == nil:
	case errors.As(err, &ee):
		if ws, ok := ee.Sys().(syscall.WaitStatus); ok && ws.Signaled() {
			if name, ok := signalName(ws.Signal()); ok {
				sig = name
			} else {
				status = 128 + int(ws.Signal())
			}
		} else {
			status = ee.ExitCode()
		}
	case errors.Is(err, exec.ErrWaitDelay):
		// Exited, but a child kept the output open; the status is known.
		status = s.cmd.ProcessState.ExitCode()
	default:
		status = 255
	}
	if sig != "" {
		s.ch.SendRequest("exit-signal", false, gossh.Marshal(&exitSignalMsg{Signal: sig}))
	} else {
		s.ch.SendRequest("exit-status", false, gossh.Marshal(&exitStatusMsg{Status: uint32(status)}))
	}
	s.t.log.Info("session ended", "login", safetext.Printable(s.login), "status", status, "signal", sig)
	s.ch.CloseWrite()
	s.ch.Close()
}

// hangup ends a process whose client went away: SIGHUP to its process
// group, then SIGKILL if it is still there after a grace period.
func (s *session) hangup() {
	s.mu.Lock()
	cmd := s.cmd
	s.mu.Unlock()
	if cmd == nil || cmd.Process == nil {
		s.ch.Close()
		return
	}
	select {
	case <-s.done:
		return
	default:
	}
	pgid := cmd.Process.Pid
	syscall.Kill(-pgid, syscall.SIGHUP)
	select {
	case <-s.done:
	case <-time.After(hangupGrace):
		syscall.Kill(-pgid, syscall.SIGKILL)
		<-s.done // bounded: the drain after exit has its own deadline
	}
}
