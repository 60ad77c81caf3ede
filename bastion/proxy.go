package bastion

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"

	gliderssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/bastion/mask"
	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/bastion/shellcmd"
	"github.com/bastionhq/bastion/internal/safetext"
)

// localeVars choose the character set the target's shell reads commands
// in (LC_ALL over LC_CTYPE over LANG).
var localeVars = map[string]bool{"LANG": true, "LC_ALL": true, "LC_CTYPE": true}

// safeLocale accepts a locale in which bash reads a command the way the
// bastion's parser does: C, POSIX, or a UTF-8 locale ("en_US.UTF-8",
// "C.utf8", "de_DE.UTF-8@euro"). In BIG5, GBK, GB18030, Shift_JIS or JOHAB a byte
// of 0x81 or more takes the next byte with it, so a backslash or quote
// after it is not one (even in text that is valid UTF-8: U+4E2D is e4 b8
// ad, and BIG5 reads ad 5c as one character); a locale without a codeset
// may be one of those (zh_TW is BIG5), and a name with a slash is a path.
func safeLocale(v string) bool {
	if v == "" || v == "C" || v == "POSIX" {
		return true
	}
	name, codeset, ok := strings.Cut(v, ".")
	if !ok {
		return false
	}
	codeset, modifier, _ := strings.Cut(codeset, "@")
	if name != "C" && !isLocaleName(name) || !isLocaleWord(modifier, true) {
		return false
	}
	// glibc compares codesets lowercased, without punctuation.
	return strings.EqualFold(strings.ReplaceAll(codeset, "-", ""), "utf8")
}

// isLocaleName accepts language[_TERRITORY]: ASCII letters, digits and one
// underscore.
func isLocaleName(s string) bool {
	lang, territory, ok := strings.Cut(s, "_")
	return isLocaleWord(lang, false) && (!ok || isLocaleWord(territory, false))
}

func isLocaleWord(s string, mayBeEmpty bool) bool {
	if s == "" {
		return mayBeEmpty
	}
	if len(s) > 16 {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// allowedSubsystems pass through to targets.
var allowedSubsystems = map[string]bool{"sftp": true}

// proxySession relays one session channel to a login on an SSH target. The
// upstream connection is opened first, so a target's refusal reaches the
// user as the reason the channel was rejected.
func (s *Server) proxySession(ctx gliderssh.Context, r *route, nc gossh.NewChannel) {
	pid := policyIdentity(r.id)
	pol := s.cfg.Policy()
	acc, err := pol.CheckSSH(pid, r.target, r.login)
	if err != nil {
		s.refuseChannel(nc, "session", r.id, r.target, err.Error())
		return
	}
	if err := s.sessionLimit(r.id); err != nil {
		s.refuseChannel(nc, "session", r.id, r.target, err.Error())
		return
	}
	sid := newSessionID()
	client, err := s.dialSSH(ctx, acc.Target, r.login, sid, r.id)
	if err != nil {
		s.log.Warn("upstream failed", "session_id", sid, "user", r.id.User, "target", r.target, "err", err)
		s.audit(Event{Type: "session.start", Identity: r.id, SessionID: sid, Target: r.target, Outcome: "failed", Reason: err.Error(), Fields: map[string]string{"login": r.login}})
		nc.Reject(gossh.ConnectionFailed, "bastion: "+err.Error())
		return
	}
	up, upReqs, err := client.OpenChannel("session", nil)
	if err != nil {
		client.closeDrain()
		var oce *gossh.OpenChannelError
		if errors.As(err, &oce) {
			nc.Reject(oce.Reason, "target "+r.target+": "+oce.Message)
		} else {
			nc.Reject(gossh.ConnectionFailed, "target "+r.target+": "+err.Error())
		}
		return
	}
	down, downReqs, err := nc.Accept()
	if err != nil {
		up.Close()
		client.closeDrain()
		return
	}
	ss, err := s.newSession(ctx, sid, "session", r.id, r.target, r.login, r.remote)
	if err != nil {
		fmt.Fprintf(down.Stderr(), "bastion: %v\r\n", err)
		down.Close()
		up.Close()
		client.closeDrain()
		return
	}
	// A reload ends the session when the new policy would refuse it, or
	// points its target elsewhere (another address, another host key).
	live := acc.Target
	ss.policyCheck(pol, func(p *policy.Policy) error {
		acc, err := p.CheckSSH(pid, r.target, r.login)
		if err != nil {
			return err
		}
		if why := live.Changed(acc.Target); why != "" {
			return errors.New(why)
		}
		ss.mu.Lock()
		shell := ss.kind == "shell"
		ss.mu.Unlock()
		if shell && !acc.Shell {
			return fmt.Errorf("your roles (%s) allow only commands on %s, not an interactive shell", strings.Join(acc.Roles, ", "), r.target)
		}
		return nil
	})
	ss.stderr = down.Stderr()
	ss.addCloser(down.Close)
	ss.addCloser(up.Close)
	ss.addCloser(client.Close)
	log := s.log.With("session_id", sid, "user", r.id.User, "target", r.target, "login", r.login)
	log.Info("session opened", "remote", r.remote.String())
	p := &proxy{env: ss.env, ss: ss, acc: acc, down: down, up: up, client: client, log: log}
	// The session is relayed on a goroutine of its own, and this one ends:
	// its stack grew while dialling the target (key, certificate,
	// handshake) and an idle session would hold it for its whole life
	// (about 5 KiB of stack per session in the idle bench).
	conn, _ := ctx.Value(gliderssh.ContextKeyConn).(gossh.Conn)
	if conn != nil {
		p.panicked = func(v any) { s.panicked(conn, v) }
	}
	go func() {
		if conn != nil {
			defer s.containPanic(conn)
		}
		p.run(downReqs, upReqs)
	}()
}

type proxy struct {
	env     *sessionEnv
	ss      *session
	acc     *policy.SSHAccess
	down    gossh.Channel
	up      gossh.Channel
	client  *upstreamConn
	log     *slog.Logger
	started bool
	pty     bool
	in      *userInput // the user's input, read by its consumer
	// panicked handles a panic recovered in a request handler (it closes
	// the connection); nil where there is no connection to close.
	panicked func(v any)
	guard    atomic.Pointer[shellGuard] // set for watched shells
	stdout   *outputPipeline
}

// run relays until both sides are done. Teardown order toward the user:
// exit-status as soon as the target sends it, the remaining output, EOF,
// then close (RFC 4254 §6.10). The stdin copier is not waited for: many
// clients never half-close their side.
func (p *proxy) run(downReqs, upReqs <-chan *gossh.Request) {
	defer p.ss.finish()
	defer p.client.Close()
	kind := func() string { return p.ss.kind }
	count := func(n int) { p.env.metrics.Bytes.WithLabelValues("down", kind()).Add(float64(n)) }
	pol := p.env.policy()
	masksFor := func(pol *policy.Policy) policy.OutputMask { return pol.OutputMasks(p.ss.pid, p.ss.target) }
	masks := masksFor(pol)
	pipe := func(dst io.Writer) *outputPipeline {
		o := &outputPipeline{ss: p.ss, dst: dst, down: count, hold: p.env.maskHold,
			pol: pol, current: p.env.policy, masksFor: masksFor}
		if err := o.setMasks(masks); err != nil {
			// Fail closed: a masking rule that cannot run ends the
			// session rather than showing what it should hide.
			p.log.Error("masking", "err", err)
			p.ss.stop(err)
		}
		return o
	}
	p.stdout = pipe(p.down)
	p.stdout.observe = func(b []byte) {
		if g := p.guard.Load(); g != nil {
			g.output(b)
		}
	}
	p.stdout.delivered = func() {
		if g := p.guard.Load(); g != nil {
			g.delivered()
		}
	}
	stderr := pipe(p.down.Stderr())
	var out sync.WaitGroup
	out.Add(1)
	go func() {
		defer out.Done()
		relay(stderr, p.up.Stderr(), nil, &p.ss.act, p.env.now)
		stderr.close()
	}()
	p.in = &userInput{p: p}
	upDone := make(chan struct{})
	go p.requests(downReqs, upReqs, upDone)
	// Stdout is relayed on this goroutine (one fewer per session).
	relay(p.stdout, p.up, nil, &p.ss.act, p.env.now)
	p.stdout.close()
	out.Wait()
	// The target's requests end when its channel closes, after its
	// exit-status: only then EOF and close, so the user gets exit-status,
	// the remaining output, EOF, close, in that order (RFC 4254 §6.10),
	// however the target ordered its EOF and exit-status.
	<-upDone
	p.down.CloseWrite()
	p.down.Close()
}

// pumpStdin forwards input unjudged (exec, subsystems).
func (p *proxy) pumpStdin() {
	p.in.copyTo(func(b []byte) error {
		if _, err := p.up.Write(b); err != nil {
			return err
		}
		p.env.metrics.Bytes.WithLabelValues("up", p.ss.kind).Add(float64(len(b)))
		return nil
	})
	p.up.CloseWrite()
}

// requests carries both sides' channel requests, each side's in order on
// a requestQueue, and closes upDone once the target's have ended (after
// its exit-status). The same goroutine answers what the target sends on
// the connection itself (upstreamConn.serve) until the connection closes,
// which run's deferred Close brings about after upDone.
func (p *proxy) requests(downReqs, upReqs <-chan *gossh.Request, upDone chan<- struct{}) {
	down := &requestQueue{handle: p.downstreamRequest, onPanic: p.panicked}
	up := &requestQueue{handle: p.upstreamRequest, onPanic: p.panicked}
	p.client.serve(downReqs, upReqs, down, up, func() {
		// The user closed the channel or went away: drop the upstream
		// connection, as the target would see a client's connection drop
		// (closing only the channel leaves sshd waiting for the command).
		p.client.Close()
	}, func() { close(upDone) })
}

// upstreamRequest forwards one of the target's channel requests.
func (p *proxy) upstreamRequest(req *gossh.Request) {
	switch req.Type {
	case "exit-status":
		var m exitStatusMsg
		if gossh.Unmarshal(req.Payload, &m) == nil {
			p.ss.mu.Lock()
			p.ss.exit.Status = int(m.Status)
			p.ss.mu.Unlock()
		}
	case "exit-signal":
		var m exitSignalMsg
		if gossh.Unmarshal(req.Payload, &m) == nil {
			p.ss.mu.Lock()
			p.ss.exit.Signal = m.Signal
			p.ss.mu.Unlock()
		}
	}
	ok, err := p.down.SendRequest(req.Type, req.WantReply, req.Payload)
	if req.WantReply {
		if err != nil {
			ok = false
		}
		req.Reply(ok, nil)
	}
}

// downstreamRequest handles one of the user's channel requests.
func (p *proxy) downstreamRequest(req *gossh.Request) {
	if req.Type == "exec" || req.Type == "shell" || req.Type == "subsystem" {
		p.start(req)
		return
	}
	ok := p.handle(req)
	if req.WantReply {
		req.Reply(ok, nil)
	}
}

// forward sends a request to the target and returns its answer.
func (p *proxy) forward(req *gossh.Request) bool {
	ok, err := p.up.SendRequest(req.Type, req.WantReply, req.Payload)
	return err == nil && (ok || !req.WantReply)
}

func (p *proxy) refuse(req *gossh.Request, why string) bool {
	p.env.metrics.ChannelsRefused.WithLabelValues(refusalLabel(req.Type)).Inc()
	p.log.Info("request refused", "request", typeName(req.Type), "reason", why)
	return false
}

func (p *proxy) handle(req *gossh.Request) bool {
	ss := p.ss
	switch req.Type {
	case "pty-req":
		var m ptyRequestMsg
		if err := gossh.Unmarshal(req.Payload, &m); err != nil || !validPtySize(m.Columns, m.Rows) || len(m.Term) > 64 {
			return p.refuse(req, "malformed pty-req")
		}
		// 0x0 means unknown (ssh -tt without a local terminal, as in cron
		// or CI). The target gets the size the bastion's own view of the
		// screen (recording, line reader) takes: 80x24 for 0x0 (readline
		// would take another from COLUMNS), and no wider or taller than
		// the line reader's model.
		cols, rows := termSize(m.Columns, m.Rows)
		m.Columns, m.Rows = uint32(cols), uint32(rows)
		// A terminal type or modes the guard cannot follow (case folding,
		// control characters moved to other keys, a type drawn with other
		// sequences than xterm's) never reach the target: ptymodes.go.
		if term := screenTerm(m.Term); term != m.Term {
			p.log.Info("pty-req terminal type replaced", "term", safetext.Printable(m.Term), "with", term)
			m.Term = term
		}
		modes, dropped := normalizePtyModes(m.Modelist)
		if len(dropped) > 0 {
			p.log.Info("pty-req terminal modes left out", "modes", strings.Join(dropped, " "))
		}
		m.Modelist = modes
		ss.mu.Lock()
		ss.width, ss.height, ss.term = cols, rows, m.Term
		ss.mu.Unlock()
		p.pty = true
		ok, err := p.up.SendRequest(req.Type, req.WantReply, gossh.Marshal(m))
		return err == nil && (ok || !req.WantReply)
	case "env":
		var m envMsg
		if err := gossh.Unmarshal(req.Payload, &m); err != nil {
			return p.refuse(req, "malformed env")
		}
		if !p.env.envAllowed(m.Name) {
			return p.refuse(req, fmt.Sprintf("environment variable %q is not in env_allow", safetext.Printable(m.Name)))
		}
		if m.Name == "TERM" && screenTerm(m.Value) != m.Value {
			return p.refuse(req, fmt.Sprintf("TERM=%q: the terminal type is set by the pty request, and only xterm-compatible types pass", safetext.Printable(m.Value)))
		}
		if shellcmd.ArithmeticCode(m.Value) {
			// LC_X='a[$(cmd)]': bash runs cmd when a line uses the
			// variable in arithmetic, $((LC_X)), which no rule sees.
			return p.refuse(req, fmt.Sprintf("%s=%q: a value holding an array subscript with a substitution runs code in the shell's arithmetic", m.Name, safetext.Printable(m.Value)))
		}
		if localeVars[m.Name] && !safeLocale(m.Value) {
			return p.refuse(req, fmt.Sprintf("%s=%q: only UTF-8 locales (or C, POSIX) are passed to targets", m.Name, safetext.Printable(m.Value)))
		}
		return p.forward(req)
	case "window-change":
		var m windowChangeMsg
		if err := gossh.Unmarshal(req.Payload, &m); err != nil || !validPtySize(m.Columns, m.Rows) {
			return p.refuse(req, "malformed window-change")
		}
		cols, rows := termSize(m.Columns, m.Rows) // as for pty-req
		ss.mu.Lock()
		ss.width, ss.height = cols, rows
		ss.mu.Unlock()
		ss.recMu.Lock()
		if ss.rec != nil {
			ss.rec.Resize(cols, rows)
		}
		ss.recMu.Unlock()
		if g := p.guard.Load(); g != nil {
			g.resize(cols, rows)
		}
		m.Columns, m.Rows = uint32(cols), uint32(rows)
		ok, err := p.up.SendRequest(req.Type, req.WantReply, gossh.Marshal(m))
		return err == nil && (ok || !req.WantReply)
	case "signal", "break", "keepalive@openssh.com":
		return p.forward(req)
	case "auth-agent-req@openssh.com":
		return p.refuse(req, "agent forwarding is not allowed through the bastion")
	case "x11-req":
		return p.refuse(req, "X11 forwarding is not allowed through the bastion")
	}
	return p.refuse(req, "unsupported request")
}

// start handles the one shell, exec or subsystem request of a session,
// replying to it itself: a blocked or refused exec is accepted and then
// ended with exit status 126, so the user sees why instead of a bare
// "exec request failed".
func (p *proxy) start(req *gossh.Request) {
	reply := func(ok bool) {
		if req.WantReply {
			req.Reply(ok, nil)
		}
	}
	if p.started {
		reply(p.refuse(req, "session already started"))
		return
	}
	// A channel may be opened long before it starts anything.
	if err := p.env.stillValid(p.ss.identity); err != nil {
		p.tell("%v", err)
		reply(p.refuse(req, err.Error()))
		return
	}
	var kind, command string
	switch req.Type {
	case "shell":
		kind = "shell"
		if !p.acc.Shell {
			p.tell("your roles (%s) allow only commands on %s, not an interactive shell: run `ssh ... %s@%s COMMAND`", strings.Join(p.acc.Roles, ", "), p.ss.target, p.ss.login, p.ss.target)
			reply(p.refuse(req, "shell not allowed (exec-only role)"))
			return
		}
	case "exec":
		var m execMsg
		if err := gossh.Unmarshal(req.Payload, &m); err != nil {
			reply(p.refuse(req, "malformed exec"))
			return
		}
		kind, command = "exec", m.Command
	case "subsystem":
		var m subsystemMsg
		if err := gossh.Unmarshal(req.Payload, &m); err != nil {
			reply(p.refuse(req, "malformed subsystem"))
			return
		}
		if !allowedSubsystems[m.Name] {
			p.tell("subsystem %q is not allowed through the bastion", safetext.Printable(m.Name))
			reply(p.refuse(req, "subsystem not allowed"))
			return
		}
		kind, command = "subsystem", m.Name
	}
	// The recording starts first, so every decision lands in it; no
	// recording, no session.
	if err := p.ss.begin(kind, p.redact(command)); err != nil {
		p.tell("cannot record this session, so it does not start: %v", err)
		p.log.Warn("recording failed to start", "err", err)
		reply(p.refuse(req, "recording unavailable"))
		return
	}
	// Announced once the recording exists, so the ID always names a
	// session that `sessions` lists and `replay` plays (a connection the
	// bastion refuses gets no ID).
	fmt.Fprintf(p.down.Stderr(), "bastion: session %s is recorded\r\n", p.ss.id)
	if err := p.env.audit(Event{Type: "session.start", Identity: p.ss.identity, SessionID: p.ss.id, Target: p.ss.target, Outcome: "allowed",
		Fields: map[string]string{"kind": kind, "login": p.ss.login, "command": p.redact(command), "client": p.ss.remote.String()}}); err != nil {
		// Accepted, then ended with the reason: a refused request would
		// leave the user a bare "request failed".
		reply(true)
		p.started = true
		p.tell("the audit log cannot record this session, so it does not start")
		p.log.Warn("session refused: audit unavailable", "err", err)
		p.endLocally(126)
		return
	}
	p.started = true
	pid := p.ss.pid
	if kind == "exec" {
		// Accept the request, then judge: a refused command ends with a
		// message and exit status 126, and never reaches the target.
		reply(true)
		if !p.acc.Shell && readsShellFromStdin(command) {
			// An exec-only role runs commands judged as written; a shell
			// reading its commands from the session's input is an
			// interactive shell in disguise.
			p.tell("your roles (%s) allow only commands on %s, not a shell reading its commands from your input (%s): pass the commands to run as the ssh command", strings.Join(p.acc.Roles, ", "), p.ss.target, safetext.Printable(p.redact(command)))
			p.env.audit(Event{Type: "command.block", Identity: p.ss.identity, SessionID: p.ss.id, Target: p.ss.target, Outcome: "blocked",
				Reason: "a shell reading its input, for an exec-only role", Fields: map[string]string{"command": p.redact(command), "kind": kind}})
			p.endLocally(126)
			return
		}
		d := p.env.policy().JudgeCommand(pid, p.ss.target, command)
		var keys *userInput
		if p.pty {
			keys = p.in // a terminal: typed keys are dropped, Ctrl-C cancels
		}
		if p.enforce(d, command, keys) != policy.ActionAllow {
			p.endLocally(126)
			return
		}
		if ok, err := p.up.SendRequest("exec", true, req.Payload); err != nil || !ok {
			p.tell("the target refused to run the command")
			p.endLocally(255)
			return
		}
		if readsShellFromStdin(command) {
			// `ssh host bash`: the shell's commands come from stdin.
			p.startGuard(interactiveShell(command))
			return
		}
		go p.pumpStdin()
		return
	}
	if kind == "subsystem" {
		// What an sftp session does (read, write, rename, delete any file
		// the login can) cannot be judged request by request, and scp
		// comes this way too since OpenSSH 9.0: the session is judged as
		// the command named after the subsystem (`sftp`), so a rule
		// naming it, or matching every command, holds it as it holds
		// `scp -t`. A refusal is accepted and then ended with exit status
		// 126 and the reason, as for exec.
		judged := command
		if command == "sftp" {
			// scp speaks sftp by default since OpenSSH 9.0, and its
			// session cannot be told from sftp's: a rule naming scp
			// holds it too, as it holds scp -O (an exec of scp -t).
			judged = "sftp; scp"
		}
		if p.enforce(p.env.policy().JudgeCommand(pid, p.ss.target, judged), command, nil) != policy.ActionAllow {
			reply(true)
			p.endLocally(126)
			return
		}
	}
	if !p.forward(req) {
		reply(false)
		return
	}
	reply(true)
	if kind == "shell" {
		// Watched whether or not rules apply now: a reload may add them.
		p.startGuard(false)
		return
	}
	go p.pumpStdin()
}

// startGuard judges the session's input as shell command lines;
// interactive is set when the shell reading a no-pty session's input was
// asked to be interactive (bash -i), which turns history expansion on.
func (p *proxy) startGuard(interactive bool) {
	p.ss.mu.Lock()
	cols, rows := p.ss.width, p.ss.height
	p.ss.mu.Unlock()
	g := newShellGuard(p, p.in, p.pty, max(cols, 1), max(rows, 1))
	g.interactive = interactive
	p.guard.Store(g)
	go g.run()
}

// redact masks what output rules mask (card numbers) in text the bastion
// stores itself: the command in the recording header, markers, the audit
// log and approval requests. Recordings at rest hold no card numbers.
func (p *proxy) redact(text string) string {
	m := p.env.policy().OutputMasks(p.ss.pid, p.ss.target)
	if !m.Cards && len(m.Patterns) == 0 {
		return text
	}
	out, _ := mask.MaskString(mask.Config{Cards: m.Cards, Patterns: m.Patterns}, text)
	return out
}

// endLocally ends a session whose command never ran: exit status, EOF,
// close, and the upstream channel (which never started anything) closes.
func (p *proxy) endLocally(status int) {
	p.ss.mu.Lock()
	p.ss.exit.Status = status
	p.ss.mu.Unlock()
	p.down.SendRequest("exit-status", false, gossh.Marshal(exitStatusMsg{Status: uint32(status)}))
	p.up.Close()
}

// tell writes a bastion message to the user: under a pty into the output
// stream (on a new line, as the cursor may be mid-line; recorded, so a
// replay shows why a command did not run), otherwise to stderr, and into
// the recording's output as the user saw it (masked like the rest).
func (p *proxy) tell(format string, args ...any) {
	if p.pty && p.stdout != nil {
		// A terminal: in the output stream, in order with the shell's.
		p.stdout.notice([]byte(p.redact(fmt.Sprintf("\r\nbastion: "+format+"\r\n", args...))))
		return
	}
	// Without a terminal, on stderr; recorded as output too, so a replay
	// or an exported cast shows why a command did not run (players ignore
	// markers).
	msg := fmt.Sprintf("bastion: "+format+"\r\n", args...)
	p.down.Stderr().Write([]byte(msg))
	p.ss.record([]byte(p.redact(msg)))
}
