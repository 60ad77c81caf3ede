package bastion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"strings"
	"sync"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/bastion/linerec"
	"github.com/bastionhq/bastion/bastion/mask"
	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/ca"
)

var (
	errIdle        = errors.New("idle timeout")
	errMaxDuration = errors.New("maximum session duration reached")
)

// session is one recorded unit: a shell, exec or subsystem channel, or a
// TCP forward. It owns the session's context (cancelled with a cause when
// the session must end), its recording and its teardown.
type session struct {
	env      *sessionEnv
	id       string
	kind     string
	identity ca.Identity
	pid      policy.Identity // identity, as the policy sees it
	target   string
	login    string
	remote   net.Addr
	start    time.Time
	ctx      context.Context
	cancel   context.CancelCauseFunc
	act      activity

	// stderr, when set, receives the reason the bastion ends the session.
	stderr io.Writer
	// onHold, when set, learns the approval request a statement waits for
	// (the SQL API answers 202 with it, and stops its clock).
	onHold func(requestID string)
	// onDecided, when set, learns that the wait onHold announced is over,
	// whatever the decision (the SQL API's clock runs again).
	onDecided func()

	recMu sync.Mutex
	rec   Recording
	pre   []byte // output before the recording began (bounded)

	mu        sync.Mutex
	stopped   bool
	closers   []func() error
	exit      Exit
	endReason string
	command   string
	masked    int
	idleTimer *time.Timer
	maxTimer  *time.Timer
	width     int
	height    int
	term      string
	// pol is the policy the session was last found allowed under, and
	// recheck asks whether a new one still allows it as it runs (access to
	// the target, the login, a shell, a PostgreSQL session's masks): a reload
	// ends what it would no longer allow (Server.checkPolicy).
	pol     *policy.Policy
	recheck func(*policy.Policy) error
	// What happened, for `sessions` (see decided).
	database                  string
	statements                int64
	blocked, approved, denied int
}

// maxPreRecording bounds output buffered before a shell/exec request
// starts the recording (normally none arrives).
const maxPreRecording = 64 << 10

// newSession registers a session; it returns an error when the server is
// shutting down and takes no new sessions (errShutdown), or when the
// identity holds as many sessions as it may.
func (s *Server) newSession(ctx context.Context, id, kind string, identity ca.Identity, target, login string, remote net.Addr) (*session, error) {
	cctx, cancel := context.WithCancelCause(ctx)
	ss := &session{
		env: s.env, id: id, kind: kind, identity: identity, pid: policyIdentity(identity), target: target, login: login,
		remote: remote, start: s.now(), ctx: cctx, cancel: cancel, exit: Exit{Status: -1},
	}
	ss.act.touch(ss.start)
	if err := s.track(ss); err != nil {
		cancel(err)
		return nil, err
	}
	return ss, nil
}

func (ss *session) meta(command string) SessionMeta {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	remote := ""
	if ss.remote != nil {
		remote = ss.remote.String()
	}
	return SessionMeta{
		ID: ss.id, Kind: ss.kind, Identity: ss.identity, Target: ss.target, Login: ss.login,
		Command: command, ClientAddr: remote, Width: ss.width, Height: ss.height, Term: ss.term, Start: ss.start,
	}
}

// setRecording attaches the recording and hands it what was buffered.
func (ss *session) setRecording(r Recording) {
	ss.recMu.Lock()
	defer ss.recMu.Unlock()
	ss.rec = r
	if len(ss.pre) > 0 {
		r.Output(ss.pre)
		ss.pre = nil
	}
}

// record stores output; before the recording exists it buffers a little.
func (ss *session) record(p []byte) error {
	ss.recMu.Lock()
	defer ss.recMu.Unlock()
	if ss.rec == nil {
		if len(ss.pre)+len(p) <= maxPreRecording {
			ss.pre = append(ss.pre, p...)
		}
		return nil
	}
	return ss.rec.Output(p)
}

func (ss *session) recordInput(p []byte) {
	ss.recMu.Lock()
	defer ss.recMu.Unlock()
	if ss.rec != nil {
		ss.rec.Input(p)
	}
}

func (ss *session) marker(label string) {
	ss.recMu.Lock()
	defer ss.recMu.Unlock()
	if ss.rec != nil {
		ss.rec.Marker(label)
	}
}

// wasStopped reports whether the bastion ended the session (stop: idle
// timeout, a withdrawn grant, shutdown...), rather than its peers.
func (ss *session) wasStopped() bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return ss.stopped
}

// recordingFailed reports, without blocking, whether a strict recording has
// failed (output must then no longer reach the user).
func (ss *session) recordingFailed() bool {
	ss.recMu.Lock()
	r := ss.rec
	ss.recMu.Unlock()
	if r == nil {
		return false
	}
	select {
	case <-r.Failed():
		return true
	default:
		return false
	}
}

// recordingErr says why the recording failed.
func (ss *session) recordingErr() error {
	ss.recMu.Lock()
	defer ss.recMu.Unlock()
	if ss.rec == nil {
		return nil
	}
	return ss.rec.Err()
}

// watch ends the session on idle timeout or maximum duration, with timers
// rather than a goroutine per session. (A failed strict recording ends the
// session from the output pipeline, on the first write that finds it.)
func (ss *session) watch() {
	env := ss.env
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if env.idleTimeout > 0 && ss.idleTimer == nil {
		var check func()
		check = func() {
			if ss.ctx.Err() != nil {
				return
			}
			idle := ss.act.since(ss.env.now())
			if idle >= env.idleTimeout {
				ss.stop(fmt.Errorf("%w after %s without activity", errIdle, env.idleTimeout))
				return
			}
			ss.mu.Lock()
			if ss.idleTimer != nil {
				ss.idleTimer.Reset(env.idleTimeout - idle)
			}
			ss.mu.Unlock()
		}
		ss.idleTimer = time.AfterFunc(env.idleTimeout, check)
	}
	if env.maxDuration > 0 && ss.maxTimer == nil {
		ss.maxTimer = time.AfterFunc(env.maxDuration-env.now().Sub(ss.start), func() { ss.stop(errMaxDuration) })
	}
}

// unwatch stops the timers.
func (ss *session) unwatch() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.idleTimer != nil {
		ss.idleTimer.Stop()
		ss.idleTimer = nil
	}
	if ss.maxTimer != nil {
		ss.maxTimer.Stop()
		ss.maxTimer = nil
	}
}

// stop ends the session now: it tells the user why, cancels the context
// with the cause and closes both sides.
func (ss *session) stop(cause error) {
	ss.mu.Lock()
	if ss.stopped {
		ss.mu.Unlock()
		return
	}
	ss.stopped = true
	ss.endReason = cause.Error()
	closers := ss.closers
	stderr := ss.stderr
	ss.mu.Unlock()
	ss.marker("bastion: session ended: " + cause.Error())
	if stderr != nil {
		// The client may have stopped reading: do not let the message
		// hold up the teardown.
		done := make(chan struct{})
		msg := fmt.Sprintf("\r\nbastion: %v\r\n", cause)
		ss.record([]byte(msg)) // what the user saw, for the replay (best effort)
		go func() {
			io.WriteString(stderr, msg)
			close(done)
		}()
		select {
		case <-done:
		case <-time.After(time.Second):
		}
	}
	ss.cancel(cause)
	closeAll := func() {
		for _, c := range closers {
			c()
		}
	}
	if ss.kind == policy.KindPostgres {
		// The PostgreSQL proxy sees the context end, tells the client why
		// (a FATAL error naming the cause) and closes both connections,
		// giving a client that does not read two seconds: closing them here
		// at once would cut that message off. This is the backstop.
		time.AfterFunc(3*time.Second, closeAll)
		return
	}
	closeAll()
}

// Outcomes of a decision, counted for `sessions`.
const (
	outcomeBlocked  = "blocked"
	outcomeApproved = "approved"
	outcomeDenied   = "denied" // denied, timed out or cancelled
)

// decided counts a decision on a command or statement.
func (ss *session) decided(outcome string) {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	switch outcome {
	case outcomeBlocked:
		ss.blocked++
	case outcomeApproved:
		ss.approved++
	case outcomeDenied:
		ss.denied++
	}
}

func (ss *session) setEndReason(r string) {
	ss.mu.Lock()
	if ss.endReason == "" {
		ss.endReason = r
	}
	ss.mu.Unlock()
}

func (ss *session) addMasked(n int) {
	ss.mu.Lock()
	ss.masked += n
	ss.mu.Unlock()
}

func (ss *session) addCloser(c func() error) {
	ss.mu.Lock()
	ss.closers = append(ss.closers, c)
	ss.mu.Unlock()
}

// finish ends the recording, writes the audit record and unregisters.
func (ss *session) finish() {
	ss.unwatch()
	ss.mu.Lock()
	exit := ss.exit
	if exit.Reason == "" {
		exit.Reason = ss.endReason
	}
	if ss.kind == "postgres" {
		exit.Login = ss.login
	}
	exit.Database, exit.Statements = ss.database, ss.statements
	exit.Blocked, exit.Approved, exit.Denied = ss.blocked, ss.approved, ss.denied
	ss.mu.Unlock()
	ss.cancel(errors.New("session ended"))
	ss.recMu.Lock()
	r := ss.rec
	ss.recMu.Unlock()
	if r != nil {
		if err := r.End(exit); err != nil {
			ss.env.log.Error("recording end failed", "session_id", ss.id, "err", err)
		}
		ss.env.metrics.SessionsActive.WithLabelValues(ss.kind).Dec()
	}
	fields := map[string]string{"exit_status": fmt.Sprint(exit.Status), "duration": ss.env.now().Sub(ss.start).Round(time.Millisecond).String()}
	if exit.Signal != "" {
		fields["exit_signal"] = exit.Signal
	}
	ss.mu.Lock()
	masked := ss.masked
	ss.mu.Unlock()
	if masked > 0 {
		fields["masked_values"] = fmt.Sprint(masked)
		ss.env.audit(Event{Type: "output.mask", Identity: ss.identity, SessionID: ss.id, Target: ss.target, Outcome: "masked", Fields: map[string]string{"values": fmt.Sprint(masked)}})
	}
	typ := "session.end"
	if ss.kind == "tcp" || ss.kind == "postgres" {
		typ = "forward.end"
	}
	ss.env.audit(Event{Type: typ, Identity: ss.identity, SessionID: ss.id, Target: ss.target, Outcome: "ended", Reason: exit.Reason, Fields: fields})
	ss.env.untrack(ss)
}

// policyCheck sets how the session is checked against a reloaded policy,
// and the policy it was found allowed under.
func (ss *session) policyCheck(pol *policy.Policy, recheck func(*policy.Policy) error) {
	ss.mu.Lock()
	ss.pol, ss.recheck = pol, recheck
	ss.mu.Unlock()
}

// begin starts the recording once the session's kind and command are known.
func (ss *session) begin(kind, command string) error {
	ss.mu.Lock()
	ss.kind, ss.command = kind, command
	ss.mu.Unlock()
	r, err := ss.env.recorder.Begin(ss.meta(command))
	if err != nil {
		return err
	}
	ss.setRecording(r)
	ss.env.metrics.SessionsTotal.WithLabelValues(kind).Inc()
	ss.env.metrics.SessionsActive.WithLabelValues(kind).Inc()
	ss.watch()
	return nil
}

// outputPipeline is the one place every byte of target output passes on
// its way to the user: an observer (the shell guard's terminal emulator)
// sees it raw, then masking rewrites it, then it is recorded, then it goes
// to the downstream channel. Command control and recording attach here and
// nowhere else, so nothing reaches the user or the recording unmasked, and
// nothing reaches the user unrecorded.
type outputPipeline struct {
	ss      *session
	dst     io.Writer
	down    func(int)    // byte counter
	observe func([]byte) // nil: none
	// delivered, when set, is called when a Write that observe saw has
	// been passed on (or failed): until then the relay reads no more of
	// the target's output.
	delivered func()
	masker    *mask.Masker  // nil: no masking, or none made yet (active)
	maskCfg   *mask.Config  // the masking, checked; nil: none
	rules     string        // the masking rules, for markers
	hold      time.Duration // quiet period before a held tail is released
	mu        sync.Mutex    // Write and the flush timer
	timer     *time.Timer   // releases the masker's held tail
	masked    int           // values masked so far
	err       error         // sticky write error

	// The policy the masks came from, what they mask, and how to ask the
	// policy in force: a reload that changes the session's output masks
	// reaches the next output (follow).
	pol      *policy.Policy
	maskKey  string
	current  func() *policy.Policy
	masksFor func(*policy.Policy) policy.OutputMask
}

// setMasks makes m the pipeline's masking; an error leaves it refusing
// output (fail closed).
func (o *outputPipeline) setMasks(m policy.OutputMask) error {
	o.rules, o.maskKey, o.masker, o.maskCfg, o.masked = strings.Join(m.Rules, ","), m.Key(), nil, nil, 0
	if m.Cards || len(m.Patterns) > 0 {
		cfg := mask.Config{Cards: m.Cards, Patterns: m.Patterns}
		if err := mask.Check(cfg); err != nil {
			o.err = fmt.Errorf("masking unavailable: %v", err)
			return o.err
		}
		o.maskCfg = &cfg
	}
	return nil
}

// active returns the masker, made on the first output it has to read
// (nil without masking). A masker that has read nothing holds nothing
// back and has masked nothing, so until then the pipeline goes without:
// an idle session's stderr, which most never write, holds none (about
// 400 bytes). Called with o.mu held.
func (o *outputPipeline) active() *mask.Masker {
	if o.masker == nil && o.maskCfg != nil {
		o.masker, _ = mask.New(*o.maskCfg) // checked by setMasks
	}
	return o.masker
}

// follow applies the masks of the policy in force, when a reload changed
// them since the last output: what the old masker holds back goes through
// the new one, so nothing held escapes the new rules. Called with o.mu held.
func (o *outputPipeline) follow() error {
	if o.current == nil {
		return nil
	}
	cur := o.current()
	if cur == nil || cur == o.pol {
		return nil
	}
	o.pol = cur
	m := o.masksFor(cur)
	if m.Key() == o.maskKey {
		return nil
	}
	var tail []byte
	if o.masker != nil {
		tail = o.masker.Flush()
		o.noteMasked()
	}
	if err := o.setMasks(m); err != nil {
		go o.ss.stop(err)
		return err
	}
	o.ss.marker(fmt.Sprintf("bastion: output masking changed by a reload (rules %s)", o.rules))
	if len(tail) > 0 {
		if mk := o.active(); mk != nil {
			tail = mk.Write(tail)
			o.noteMasked()
		}
	}
	return o.emit(tail)
}

func (o *outputPipeline) Write(p []byte) (int, error) {
	if o.observe != nil {
		o.observe(p)
		if o.delivered != nil {
			defer o.delivered()
		}
	}
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return 0, o.err
	}
	if err := o.follow(); err != nil {
		o.err = err
		return 0, err
	}
	b := p
	if mk := o.active(); mk != nil {
		b = mk.Write(p)
		o.noteMasked()
		if mk.Pending() > 0 {
			// A possible card number may continue in the next read: hold
			// the tail briefly, then release it if nothing follows.
			if o.timer == nil {
				o.timer = time.AfterFunc(o.hold, o.flush)
			} else {
				o.timer.Reset(o.hold)
			}
		}
	}
	if err := o.emit(b); err != nil {
		o.err = err
		return 0, err
	}
	return len(p), nil
}

// flush releases what the masker holds back.
func (o *outputPipeline) flush() {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return
	}
	if err := o.follow(); err != nil {
		o.err = err
		return
	}
	if o.masker == nil {
		return
	}
	if err := o.emit(o.masker.Flush()); err != nil {
		o.err = err
	}
}

// close releases everything at the end of the stream.
func (o *outputPipeline) close() {
	o.mu.Lock()
	if o.timer != nil {
		o.timer.Stop()
	}
	o.mu.Unlock()
	o.flush()
}

// notice writes the bastion's own message into the output stream, after
// whatever the masker holds back, so the user's terminal shows the target's
// output and the message in the order they happened. (On stderr, OpenSSH's
// client may write the shell's next prompt before it: it drains its stdout
// buffer first.) It is recorded like the rest of the output.
func (o *outputPipeline) notice(msg []byte) {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.err != nil {
		return
	}
	if err := o.follow(); err != nil {
		o.err = err
		return
	}
	if o.masker != nil {
		if err := o.emit(o.masker.Flush()); err != nil {
			o.err = err
			return
		}
	}
	if err := o.emit(msg); err != nil {
		o.err = err
	}
}

func (o *outputPipeline) noteMasked() {
	if n := o.masker.Masked(); n > o.masked {
		o.ss.marker(fmt.Sprintf("bastion: masked %d value(s) (rule %s)", n-o.masked, o.rules))
		o.ss.addMasked(n - o.masked)
		o.masked = n
	}
}

func (o *outputPipeline) emit(b []byte) error {
	if len(b) == 0 {
		return nil
	}
	if err := o.ss.record(b); err != nil && o.ss.recordingFailed() || o.ss.recordingFailed() {
		// Strict recording failed: nothing more reaches the user, and the
		// session ends saying why.
		err := fmt.Errorf("the session recording failed (%v); strict recording ends the session", o.ss.recordingErr())
		go o.ss.stop(err)
		return err
	}
	if _, err := o.dst.Write(b); err != nil {
		return err
	}
	if o.down != nil {
		o.down(len(b))
	}
	return nil
}

// Wire formats of session channel requests (RFC 4254 §6).
type ptyRequestMsg struct {
	Term     string
	Columns  uint32
	Rows     uint32
	Width    uint32
	Height   uint32
	Modelist string
}

type windowChangeMsg struct {
	Columns uint32
	Rows    uint32
	Width   uint32
	Height  uint32
}

type envMsg struct {
	Name  string
	Value string
}

type execMsg struct {
	Command string
}

type subsystemMsg struct {
	Name string
}

type exitStatusMsg struct {
	Status uint32
}

type exitSignalMsg struct {
	Signal     string
	CoreDumped bool
	Error      string
	Lang       string
}

// maxTermSize bounds terminal geometry accepted from clients.
const maxTermSize = 10000

// validPtySize accepts a pty-req's or window-change's geometry: within
// bounds, or 0x0 (unknown), which OpenSSH's ssh -tt sends without a local
// terminal and its sshd accepts.
func validPtySize(cols, rows uint32) bool {
	return cols <= maxTermSize && rows <= maxTermSize
}

// termSize is the geometry the bastion works with, and the one a target
// gets: 80x24 where a dimension is 0 (unknown), and no larger than the
// shell guard's screen model (linerec.MaxCols by linerec.MaxRows), since a
// shell told of another width wraps its line elsewhere than the model.
func termSize(cols, rows uint32) (int, int) {
	if cols == 0 {
		cols = 80
	}
	if rows == 0 {
		rows = 24
	}
	return int(min(cols, linerec.MaxCols)), int(min(rows, linerec.MaxRows))
}

// gossh.Channel satisfies closeWriter; keep the compiler checking it.
var _ closeWriter = gossh.Channel(nil)
