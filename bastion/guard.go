package bastion

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/bastionhq/bastion/bastion/linerec"
	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/bastion/shellcmd"
)

// How long the guard waits for the echo of a line before judging it, and
// for the output to go quiet after it (a redraw can take several packets).
const (
	echoWait  = time.Second
	quietWait = 15 * time.Millisecond
	quietMax  = 200 * time.Millisecond
	// maxPendingLine bounds a no-pty command line (with continuations)
	// held back while it is incomplete.
	maxPendingLine = 64 << 10
)

// shellGuard judges what an interactive shell session is about to run.
//
// With a pty the user's keys go through a linerec.Tracker that reads the
// echoed line off a terminal emulator; the submit key is held until the
// line is judged, and a blocked line is cancelled at the target with
// Ctrl-C. Without a pty the shell reads plain lines from stdin, so each
// complete line is judged before any of it is forwarded.
type shellGuard struct {
	p     *proxy
	keys  <-chan []byte // the user's input, from one reader goroutine
	pty   bool
	mu    sync.Mutex
	tr    *linerec.Tracker
	outCh chan struct{} // signalled on each output while a line is judged
}

func newShellGuard(p *proxy, keys <-chan []byte, pty bool, cols, rows int) *shellGuard {
	g := &shellGuard{p: p, keys: keys, pty: pty, outCh: make(chan struct{}, 1)}
	if pty {
		g.tr = linerec.New(cols, rows)
	}
	return g
}

// output feeds the target's raw output (before masking) to the tracker.
func (g *shellGuard) output(b []byte) {
	if g.tr == nil {
		return
	}
	g.mu.Lock()
	g.tr.Output(b)
	g.mu.Unlock()
	select {
	case g.outCh <- struct{}{}:
	default:
	}
}

func (g *shellGuard) resize(cols, rows int) {
	if g.tr == nil {
		return
	}
	g.mu.Lock()
	g.tr.Resize(cols, rows)
	g.mu.Unlock()
}

// forward sends bytes to the target's stdin.
func (g *shellGuard) forward(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	_, err := g.p.up.Write(b)
	return err == nil
}

// run relays the user's input until it ends.
func (g *shellGuard) run() {
	defer g.p.up.CloseWrite()
	if g.pty {
		for chunk := range g.keys {
			g.mu.Lock()
			segs := g.tr.Keys(chunk)
			g.mu.Unlock()
			for _, seg := range segs {
				if !g.segment(seg) {
					return
				}
			}
		}
		return
	}
	var pending []byte
	for chunk := range g.keys {
		if !g.watched() {
			// No command rule applies (now): input flows as it comes.
			if !g.forward(append(pending, chunk...)) {
				return
			}
			pending = pending[:0]
			continue
		}
		var ok bool
		if pending, ok = g.drain(append(pending, chunk...)); !ok {
			return
		}
		if len(pending) > maxPendingLine {
			g.p.tell("an unfinished command line longer than %d bytes was discarded", maxPendingLine)
			pending = pending[:0]
		}
	}
	if len(pending) > 0 {
		g.drain(append(pending, '\n'))
	}
}

// drain judges each complete command at the start of pending (a command
// may span several lines: an open quote, a trailing backslash, an if
// block), forwards those allowed, drops those refused, and returns what is
// left: nothing of a command reaches the target before it is judged whole.
func (g *shellGuard) drain(pending []byte) ([]byte, bool) {
	scan := 0
	for {
		i := bytes.IndexByte(pending[scan:], '\n')
		if i < 0 {
			return pending, true
		}
		end := scan + i + 1
		text := strings.TrimRight(string(pending[:end]), "\n")
		if a, err := shellcmd.Analyze(text); err == nil && a.Incomplete {
			scan = end
			continue
		}
		if strings.TrimSpace(text) == "" || g.judge(text, nil) == policy.ActionAllow {
			if !g.forward(pending[:end]) {
				return nil, false
			}
		}
		pending, scan = pending[end:], 0
	}
}

// watched reports whether any command rule applies to the session now. The
// guard runs for every shell, so that a reload that adds rules reaches
// live sessions at their next command; until then it only keeps its
// terminal emulator current and holds nothing back.
func (g *shellGuard) watched() bool {
	return g.p.s.cfg.Policy().CommandRulesApply(policyIdentity(g.p.ss.identity), g.p.ss.target)
}

// segment handles one segment of keys in a pty session.
func (g *shellGuard) segment(seg linerec.Segment) bool {
	if !g.watched() {
		if seg.Submit {
			g.mu.Lock()
			g.tr.Commit()
			g.mu.Unlock()
		}
		return g.forward(seg.Data)
	}
	if len(seg.Paste) > 0 {
		// Every line of a paste is judged before any of it is forwarded;
		// one refused line refuses the whole paste.
		text := strings.Join(seg.Paste, "\n")
		if g.judge(text, g.keys) != policy.ActionAllow {
			g.cancelLine()
			return true
		}
		if !g.forward(seg.Data) {
			return false
		}
		if seg.Submit {
			g.mu.Lock()
			g.tr.Commit()
			g.mu.Unlock()
		}
		return true
	}
	if !seg.Submit {
		return g.forward(seg.Data)
	}
	key := seg.Data[len(seg.Data)-1:]
	if !g.forward(seg.Data[:len(seg.Data)-1]) {
		return false
	}
	g.waitEcho()
	g.mu.Lock()
	line := g.tr.Line()
	g.mu.Unlock()
	if line.Early {
		// Typed before the prompt was drawn: where the line starts on the
		// screen is unknown, so it cannot be judged. Fail closed.
		g.p.s.metrics.Decisions.WithLabelValues(policy.OnCommand, "unreadable").Inc()
		g.p.ss.marker("bastion: line typed before the prompt was refused")
		g.p.tell("that line was typed before the prompt appeared, so it could not be checked and was not run; type it again at the prompt")
		g.cancelLine()
		return true
	}
	if !line.Judge || strings.TrimSpace(line.Text) == "" {
		g.mu.Lock()
		g.tr.Commit()
		g.mu.Unlock()
		return g.forward(key)
	}
	if a, err := shellcmd.Analyze(line.Text); err == nil && a.Incomplete {
		// The shell will ask for more (PS2); judge the whole when it ends.
		g.mu.Lock()
		g.tr.Continue()
		g.mu.Unlock()
		return g.forward(key)
	}
	text := line.Text
	if line.KeysOK && strings.TrimSpace(line.Keys) != strings.TrimSpace(line.Text) {
		// Two readings of the line (the screen and the keys) disagree:
		// judge both and keep the stricter verdict.
		pol := g.p.s.cfg.Policy()
		pid := policyIdentity(g.p.ss.identity)
		ds := pol.JudgeCommand(pid, g.p.ss.target, line.Text)
		dk := pol.JudgeCommand(pid, g.p.ss.target, line.Keys)
		if strictness(dk.Action) > strictness(ds.Action) {
			text = line.Keys
		}
	}
	if g.judge(text, g.keys) != policy.ActionAllow {
		g.cancelLine()
		return true
	}
	g.mu.Lock()
	g.tr.Commit()
	g.mu.Unlock()
	return g.forward(key)
}

// waitEcho waits until the target has echoed the keys typed so far, then
// until its output goes quiet, within bounds.
func (g *shellGuard) waitEcho() {
	deadline := time.NewTimer(echoWait)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		settled := g.tr.Settled()
		g.mu.Unlock()
		if settled {
			break
		}
		select {
		case <-g.outCh:
		case <-deadline.C:
			return
		case <-g.p.ss.ctx.Done():
			return
		}
	}
	limit := time.NewTimer(quietMax)
	defer limit.Stop()
	for {
		quiet := time.NewTimer(quietWait)
		select {
		case <-g.outCh:
			quiet.Stop()
			continue
		case <-quiet.C:
			return
		case <-limit.C:
			quiet.Stop()
			return
		}
	}
}

// cancelLine discards the line at the target: Ctrl-C makes the shell drop
// it and draw a new prompt.
func (g *shellGuard) cancelLine() {
	g.mu.Lock()
	g.tr.Cancel()
	g.mu.Unlock()
	g.forward([]byte{0x03})
}

// judge decides text and, for approve rules, holds it until a decision;
// keys typed while waiting are read and dropped (Ctrl-C cancels). It returns
// ActionAllow when the text may run.
func (g *shellGuard) judge(text string, keys <-chan []byte) string {
	d := g.p.s.cfg.Policy().JudgeCommand(policyIdentity(g.p.ss.identity), g.p.ss.target, text)
	return g.p.enforce(d, text, keys)
}

// enforce applies a decision on a command: audit, marker, message, and for
// approvals the wait. It returns ActionAllow when the command may run.
func (p *proxy) enforce(d policy.Decision, text string, keys <-chan []byte) string {
	ss := p.ss
	text = p.redact(text)
	p.s.metrics.Decisions.WithLabelValues(policy.OnCommand, d.Action).Inc()
	fields := map[string]string{"command": text, "kind": ss.kind}
	switch d.Action {
	case policy.ActionAllow:
		p.s.audit(Event{Type: "command.allow", Identity: ss.identity, SessionID: ss.id, Target: ss.target, Outcome: "allowed", Fields: fields, Routine: true})
		return policy.ActionAllow
	case policy.ActionBlock:
		fields["rule"] = d.Rule
		p.s.audit(Event{Type: "command.block", Identity: ss.identity, SessionID: ss.id, Target: ss.target, Outcome: "blocked", Reason: d.Reason, Fields: fields})
		ss.marker(fmt.Sprintf("bastion: blocked by rule %s: %s", d.Rule, text))
		p.tell("blocked by rule %s: %s", d.Rule, d.Reason)
		p.log.Info("command blocked", "rule", d.Rule, "command", text)
		return policy.ActionBlock
	}
	// Approval: nothing of the command has reached the target.
	now := p.s.now()
	ap := p.s.approvals.request(&approval{
		SessionID: ss.id, Requester: ss.identity, User: ss.identity.User, Target: ss.target, Login: ss.login,
		Kind: "command", Command: text, Rule: d.Rule, Reason: d.Reason, Approvers: d.Approvers,
		Created: now, Expires: now.Add(d.Timeout),
	})
	ss.marker(fmt.Sprintf("bastion: held for approval (request %s, rule %s): %s", ap.ID, d.Rule, text))
	p.tell("held for approval by rule %s (%s).\r\nbastion: request %s: an approver (%s) runs `bastion approve %s`; waiting up to %s. Ctrl-C cancels.",
		d.Rule, d.Reason, ap.ID, strings.Join(d.Approvers, ", "), ap.ID, d.Timeout.Round(time.Second))
	ctx, cancel := context.WithCancel(ss.ctx)
	defer cancel()
	if keys != nil {
		// Keys typed while waiting are not forwarded; Ctrl-C cancels.
		stop := make(chan struct{})
		defer close(stop)
		go func() {
			for {
				select {
				case <-stop:
					return
				case chunk, ok := <-keys:
					if !ok || bytes.IndexByte(chunk, 0x03) >= 0 {
						cancel()
						return
					}
				}
			}
		}()
	}
	outcome, by, note := p.s.approvals.wait(ctx, ap)
	switch outcome {
	case Approved:
		ss.marker(fmt.Sprintf("bastion: request %s approved by %s", ap.ID, by))
		p.tell("request %s approved by %s", ap.ID, by)
		return policy.ActionAllow
	case Denied:
		ss.marker(fmt.Sprintf("bastion: request %s denied by %s: %s", ap.ID, by, note))
		p.tell("request %s denied by %s%s", ap.ID, by, suffix(": ", note))
	case TimedOut:
		ss.marker(fmt.Sprintf("bastion: request %s timed out", ap.ID))
		p.tell("request %s timed out: %s; not run", ap.ID, note)
	default:
		ss.marker(fmt.Sprintf("bastion: request %s cancelled", ap.ID))
		p.tell("request %s cancelled; not run", ap.ID)
	}
	return policy.ActionBlock
}

// strictness orders verdicts: block over approve over allow.
func strictness(action string) int {
	switch action {
	case policy.ActionBlock:
		return 2
	case policy.ActionApprove:
		return 1
	}
	return 0
}

func suffix(sep, s string) string {
	if s == "" {
		return ""
	}
	return sep + s
}

// shellNames are programs that read shell commands from stdin when given
// no script and no -c: an exec of one of them is an interactive shell in
// disguise (`ssh host bash`, `ssh host sudo -i`), so its input is judged
// like a shell's.
var shellNames = map[string]bool{"sh": true, "bash": true, "dash": true, "zsh": true, "ksh": true, "mksh": true, "ash": true, "busybox": true, "su": true}

// readsShellFromStdin reports whether an exec command ends in a shell that
// reads its commands from the session's stdin.
func readsShellFromStdin(command string) bool {
	a, err := shellcmd.Analyze(command)
	if err != nil || len(a.Commands) == 0 {
		return false
	}
	for _, c := range a.Commands {
		switch {
		case c.Name == "sudo" || c.Name == "doas":
			for _, arg := range c.Argv[1:] {
				if arg == "-i" || arg == "-s" || arg == "--login" || arg == "--shell" {
					return true
				}
			}
		case shellNames[c.Name]:
			script := false
			for _, arg := range c.Argv[1:] {
				if arg == "-c" || !strings.HasPrefix(arg, "-") && c.Name != "su" {
					script = true
				}
				if c.Name == "su" && arg == "-c" {
					script = true
				}
			}
			if !script || slices.Contains(c.Argv[1:], "-s") && c.Name != "su" {
				return true
			}
		}
	}
	return false
}
