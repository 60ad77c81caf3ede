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
	"github.com/bastionhq/bastion/bastion/mask"
	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/bastion/shellcmd"
)

// How long the guard waits for the echo of the keys typed before a
// submit key, counted from when they were forwarded, and for the output to
// go quiet after it (a redraw can take several packets). A person types
// the Enter well after the echo of the last key has arrived and gone
// quiet, so the guard then judges at once and adds no wait.
const (
	echoWait  = time.Second
	quietWait = 15 * time.Millisecond
	quietMax  = 200 * time.Millisecond
	// stallWait bounds the wait for a shell's output to be passed on to a
	// user who is not reading it before a line is cancelled.
	stallWait = 5 * time.Second
	// maxPendingLine bounds a command (with its continued lines): held
	// back while incomplete on the no-pty path, judged on the pty path.
	maxPendingLine = 64 << 10
)

// shellGuard judges what an interactive shell session is about to run.
//
// With a pty the user's keys go through a linerec.Tracker that reads the
// line twice, off a terminal emulator over the echo (the screen) and from
// the keys alone; the submit key is held until the line is judged, and a
// refused line is cancelled at the target with Ctrl-C. Without a pty the
// shell reads plain lines from stdin, so each complete command is judged
// before any of it is forwarded.
//
// Nothing submits a line without passing here: every key that makes the
// shell run something (Enter, Ctrl-J, Ctrl-O, Ctrl-X Ctrl-E) is held until
// a verdict. Where neither reading can be trusted (keys typed ahead of the
// prompt with history or completion keys, a tracker that failed) the line
// gets the rules' unknowable action, or is refused.
type shellGuard struct {
	p   *proxy
	in  *userInput // the user's input, read on the guard's goroutine
	pty bool
	// interactive: the shell reading a no-pty session's input expands
	// history (bash -i), so lines are judged as typed at a prompt.
	interactive bool
	outCh       chan struct{} // signalled on each output while a line is judged

	mu         sync.Mutex
	tr         *linerec.Tracker
	cols, rows int       // the window, to rebuild the tracker after a failure
	lastOut    time.Time // when output last arrived
	// undelivered counts outputs seen but not yet passed on to the user: a
	// user who does not read (a terminal stopped with Ctrl-S) stops the
	// relay, and the shell then waits in its write, busy, not quiet.
	undelivered int
	failed      string // why the tracker failed since the last line (it was rebuilt)

	// Owned by the goroutine running run.
	lastKeys time.Time // when keys were last forwarded
	// launched names the commands of the last line allowed on the normal
	// screen: what a full-screen program that follows was started by.
	launched []string
}

func newShellGuard(p *proxy, in *userInput, pty bool, cols, rows int) *shellGuard {
	g := &shellGuard{p: p, in: in, pty: pty, outCh: make(chan struct{}, 1), cols: cols, rows: rows}
	if pty {
		g.tr = linerec.New(cols, rows)
	}
	return g
}

// track runs f on the tracker under the lock. A panic in the tracker (a
// bug: it must never panic, and FuzzScreen looks for one) is contained: the
// tracker is rebuilt empty, the session goes on, and the line being typed
// is refused (see segment), with a marker saying why.
func (g *shellGuard) track(f func(tr *linerec.Tracker)) {
	g.mu.Lock()
	defer g.mu.Unlock()
	defer func() {
		if r := recover(); r != nil {
			g.failed = fmt.Sprint(r)
			g.tr = linerec.New(g.cols, g.rows)
		}
	}()
	f(g.tr)
}

// output feeds the target's raw output (before masking) to the tracker.
func (g *shellGuard) output(b []byte) {
	if g.tr == nil {
		return
	}
	g.track(func(tr *linerec.Tracker) {
		g.lastOut = g.p.env.now()
		g.undelivered++
		tr.Output(b)
	})
	select {
	case g.outCh <- struct{}{}:
	default:
	}
}

// delivered tells the guard an output has been passed on to the user.
func (g *shellGuard) delivered() {
	if g.tr == nil {
		return
	}
	g.mu.Lock()
	g.undelivered = max(g.undelivered-1, 0)
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
	g.track(func(tr *linerec.Tracker) {
		g.cols, g.rows = cols, rows
		tr.Resize(cols, rows)
	})
}

// forward sends bytes to the target's stdin.
func (g *shellGuard) forward(b []byte) bool {
	if len(b) == 0 {
		return true
	}
	g.lastKeys = g.p.env.now()
	_, err := g.p.up.Write(b)
	return err == nil
}

// run relays the user's input until it ends.
//
// An idle session's guard waits in the channel's Read for the whole
// session, and its goroutine keeps the largest stack it ever needed: a
// goroutine's first 2 KiB hold about 1,120 bytes of frames (the runtime
// keeps 928 for itself), and x/crypto's Read down to the park takes about
// 460 of them. So the wait is reached through small frames (run, runPTY,
// next) and the work on each chunk is done in frames that are gone while
// the guard waits (keys, lines): a guard that has seen no keys then waits
// within 2 KiB of stack, where one frame of run holding both loops took it
// past, to 4 KiB, in every idle session.
func (g *shellGuard) run() {
	defer g.p.up.CloseWrite()
	if g.pty {
		g.runPTY()
		return
	}
	g.runLines()
}

// runPTY relays a terminal's keys through the tracker.
func (g *shellGuard) runPTY() {
	for {
		chunk, ok := g.in.next()
		if !ok || !g.keys(chunk) {
			return
		}
	}
}

// keys judges and forwards one chunk of a terminal's keys; false ends the
// session's input.
//
//go:noinline
func (g *shellGuard) keys(chunk []byte) bool {
	for len(chunk) > 0 {
		// A key that runs the line without Enter (Alt-#,
		// Ctrl-X e) is judged before the keys after it go.
		var segs []linerec.Segment
		n := len(chunk)
		g.track(func(tr *linerec.Tracker) {
			n = tr.EditCut(chunk)
			segs = tr.Keys(chunk[:n])
		})
		chunk = chunk[n:]
		if why := g.takeFailure(); why != "" {
			// The tracker failed on these keys: they are dropped
			// and the line is refused (the tracker starts afresh).
			g.refuseBroken(why)
			return true
		}
		for _, seg := range segs {
			if !g.segment(seg) {
				return false
			}
		}
	}
	return true
}

// runLines relays the lines of a session without a terminal.
func (g *shellGuard) runLines() {
	var pending []byte
	for {
		chunk, ok := g.in.next()
		if !ok {
			break
		}
		if pending, ok = g.line(pending, chunk); !ok {
			return
		}
	}
	if len(pending) > 0 {
		g.drain(append(pending, '\n'))
	}
}

// line takes one chunk of a session's input without a terminal and
// returns what is held back; false ends the session's input.
//
//go:noinline
func (g *shellGuard) line(pending, chunk []byte) ([]byte, bool) {
	if !g.watched() {
		// No command rule applies (now): input flows as it comes.
		if !g.forward(append(pending, chunk...)) {
			return nil, false
		}
		return pending[:0], true
	}
	pending, ok := g.drain(append(pending, chunk...))
	if !ok {
		return nil, false
	}
	if len(pending) > maxPendingLine {
		g.p.tell("an unfinished command line longer than %d bytes was discarded", maxPendingLine)
		pending = pending[:0]
	}
	return pending, true
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
		if strings.TrimSpace(text) == "" || g.p.enforce(g.decideFresh(text), text, nil) == policy.ActionAllow {
			if !g.forward(pending[:end]) {
				return nil, false
			}
		}
		pending, scan = pending[end:], 0
	}
}

// decide judges one complete text read from the user.
func (g *shellGuard) decide(text string) policy.Decision {
	pol := g.p.env.policy()
	pid := g.p.ss.pid
	if g.pty || g.interactive {
		return pol.JudgeShellLine(pid, g.p.ss.target, text)
	}
	return pol.JudgeCommand(pid, g.p.ss.target, text)
}

// typedFreshFrom is where freshReadings starts for a line typed at a pty:
// after a line joined while a command still ran (a program may have read
// it), or after a line that ends in a pattern bash rejects as a syntax
// error without extglob (`echo @(`), which this parser reads as
// unfinished; otherwise nowhere.
func typedFreshFrom(mode readMode, line linerec.Line) int {
	if line.AfterEarly || mode == modeKeys {
		return 1
	}
	text := line.Text
	if i := strings.LastIndexByte(text, '\n'); i >= 0 {
		for _, open := range []string{"@(", "!(", "+(", "?(", "*("} {
			if strings.Contains(text[:i], open) {
				return 1
			}
		}
	}
	return 0
}

// decideFresh judges a complete text read from a no-pty session's input as
// decide does, and as bash would run it had a program read its first lines
// (freshReadings): the strictest verdict.
func (g *shellGuard) decideFresh(text string) policy.Decision {
	best := g.decide(text)
	budget := freshBudget
	texts, ok := freshReadings(text, &budget, 1)
	if !ok {
		return g.p.env.policy().JudgeUnreadable(g.p.ss.pid, g.p.ss.target, "a command of more lines than the bastion can judge as bash might read them (a program reading some of them)")
	}
	for _, t := range texts {
		if d := g.decide(t); strictness(d.Action) > strictness(best.Action) {
			best = d
		}
	}
	return best
}

// freshBudget bounds the text freshReadings parses for one line: a few
// hundred lines of a paste or a here-document.
const freshBudget = 16 << 20

// freshReadings returns what bash would run of text (lines the guard joined
// because they continue a command) had a program, not bash, read its first
// lines: a `read`, a `cat` or any command still running takes lines that
// were typed or pasted for the shell, and bash then parses the rest afresh.
// The same happens when bash rejects a line the guard's parser reads as
// unfinished (`echo @(` without extglob). For each line after the first,
// the longest complete command text starting there (trailing lines that do
// not finish it dropped: bash has run what they follow) is a reading, for
// the lines from index from on (0: none); ok is false when that would parse
// more than *budget bytes in all.
//
// Where nothing can have read the lines before (a construct typed at the
// shell's prompts, a paste before its first command runs) they are not
// asked for: a here-document's lines are text, not commands.
func freshReadings(text string, budget *int, from int) (texts []string, ok bool) {
	if from < 1 || !strings.Contains(text, "\n") {
		return nil, true
	}
	lines := strings.Split(text, "\n")
	for j := from; j < len(lines); j++ {
		for m := len(lines); m > j; m-- {
			t := strings.Join(lines[j:m], "\n")
			if strings.TrimSpace(t) == "" {
				break
			}
			if *budget -= len(t) + 1; *budget < 0 {
				return nil, false
			}
			a, err := shellcmd.Analyze(t)
			if err != nil || a.Incomplete {
				continue
			}
			if len(a.Commands) > 0 || len(a.Unknowable) > 0 {
				texts = append(texts, t)
			}
			break
		}
	}
	return texts, true
}

// suffixReadings returns each complete command that text becomes with the
// first keys of its first line taken away (by a program that read them one
// at a time before bash, or the shell it started, read the rest: `read -n
// 1` takes the x of `xrm -rf /srv`). ok is false when that would parse
// more than *budget bytes in all.
func suffixReadings(text string, budget *int) (texts []string, ok bool) {
	first, _, _ := strings.Cut(text, "\n")
	for i := range first {
		if i == 0 {
			continue
		}
		t := text[i:]
		if strings.TrimSpace(t) == "" {
			break
		}
		if *budget -= len(t) + 1; *budget < 0 {
			return nil, false
		}
		a, err := shellcmd.Analyze(t)
		if err != nil || a.Incomplete || len(a.Commands) == 0 {
			continue
		}
		texts = append(texts, t)
	}
	return texts, true
}

// watched reports whether any command rule applies to the session now. The
// guard runs for every shell, so that a reload that adds rules reaches
// live sessions at their next command; until then it only keeps its
// terminal emulator current and holds nothing back.
func (g *shellGuard) watched() bool {
	return g.p.env.policy().CommandRulesApply(g.p.ss.pid, g.p.ss.target)
}

// segment handles one segment of keys in a pty session.
func (g *shellGuard) segment(seg linerec.Segment) bool {
	if !g.watched() {
		if seg.Submit && !seg.Keep {
			g.track(func(tr *linerec.Tracker) { tr.Commit() })
		}
		return g.forward(seg.Data)
	}
	if len(seg.Paste) > 0 {
		return g.paste(seg)
	}
	if !seg.Submit {
		return g.forward(seg.Data)
	}
	kl := max(seg.KeyLen, 1)
	key := seg.Data[len(seg.Data)-kl:]
	if !g.forward(seg.Data[:len(seg.Data)-kl]) {
		return false
	}
	g.waitEcho()
	var line linerec.Line
	g.track(func(tr *linerec.Tracker) { line = tr.Line() })
	if why := g.takeFailure(); why != "" {
		g.refuseBroken(why)
		return true
	}
	if seg.Edit {
		return g.editKey(key, seg, line)
	}
	// A line typed ahead with keys the model cannot follow (completion,
	// history) is not read off the shell's redraw after its prompt: the
	// shell reads the held Enter only after every key before it, and
	// nothing tells when it has, so a redraw read early (the prompt alone,
	// or the line before a slow completion) is not what it runs. Found
	// under load: "sleep 1", then "rm -rf vict", Tab, Enter typed while it
	// ran, judged as the bare prompt and run as rm -rf victim/. Such a line
	// gets the rules' unknowable action (readings, modeUnreadable).
	mode, texts := g.readings(line)
	v := g.judgeLines(mode, texts, g.in, typedFreshFrom(mode, line))
	switch {
	case v.action != policy.ActionAllow:
		g.cancelLine()
	case v.cont:
		g.track(func(tr *linerec.Tracker) { tr.Continue() })
		return g.forward(key)
	default:
		if (mode == modeScreen || mode == modeKeys) && len(v.names) > 0 {
			g.launched = v.names
		}
		g.track(func(tr *linerec.Tracker) { tr.Commit() })
		return g.forward(key)
	}
	return true
}

// takeFailure returns, and forgets, why the tracker failed since the last
// call.
func (g *shellGuard) takeFailure() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	why := g.failed
	g.failed = ""
	return why
}

// refuseBroken fails closed for a line the tracker could not follow.
func (g *shellGuard) refuseBroken(why string) {
	g.p.env.metrics.Decisions.WithLabelValues(policy.OnCommand, "unreadable").Inc()
	g.p.log.Error("line reader failed; line refused", "err", why)
	g.p.ss.marker("bastion: the line reader failed, so the line was refused: " + why)
	g.p.tell("this line could not be read, so it was not run (the bastion's line reader failed; it has been reset): type it again")
	g.cancelLine()
}

// editKey handles the keys that make the shell run something other than
// the line as shown (Segment.EditKey names it: Ctrl-X Ctrl-E runs what an
// editor saves, Ctrl-X Ctrl-R re-reads the key bindings, Ctrl-X e replays
// a keyboard macro, Alt-Ctrl-E runs the line's substitutions, Alt-# runs
// the line uncommented): what runs cannot be read from the line, so they
// follow the rules' unknowable option. Refused, the key is replaced by
// Ctrl-G, which aborts the Ctrl-X or ESC prefix.
func (g *shellGuard) editKey(key []byte, seg linerec.Segment, line linerec.Line) bool {
	what := seg.EditKey
	if what == "" {
		what = "a key that makes the shell run what the line does not show"
	}
	if what == linerec.KeyExpandLine || what == linerec.KeyComment {
		return g.lineKey(key, seg, line)
	}
	d := g.p.env.policy().JudgeUnreadable(g.p.ss.pid, g.p.ss.target, what)
	text := what
	if line.Judge && strings.TrimSpace(line.Text) != "" {
		text = line.Text + " [" + what + "]"
	}
	if g.p.enforce(d, text, g.in) != policy.ActionAllow {
		if what == linerec.KeyQuoted {
			return g.cancelQuoted()
		}
		return g.abortLine()
	}
	if !seg.Keep {
		// The line is gone (run, or handed to an editor).
		g.track(func(tr *linerec.Tracker) { tr.Commit() })
	}
	return g.forward(key)
}

// lineKey handles Alt-Ctrl-E and Alt-# (also as eight-bit Meta bytes,
// which in a UTF-8 locale are parts of ordinary characters): what they run
// is the line itself, its substitutions expanded in place or the line
// (un)commented and accepted. The line is judged as a command, its
// readings with a leading "#" removed too, silently when allowed (it may
// be a character being typed); a line that cannot be judged gets the
// unknowable action.
func (g *shellGuard) lineKey(key []byte, seg linerec.Segment, line linerec.Line) bool {
	pol := g.p.env.policy()
	pid, target := g.p.ss.pid, g.p.ss.target
	mode, texts := g.readings(line)
	var d policy.Decision
	var shown string
	switch mode {
	case modeNone, modeFullScreen, modeHidden:
		// Not the shell's line editor reading (a full-screen program, a
		// password prompt): the key is a character.
		d = policy.Decision{Action: policy.ActionAllow}
	case modeScreen, modeKeys:
		for _, t := range texts {
			if u := strings.TrimLeft(t, " \t"); strings.HasPrefix(u, "#") {
				texts = append(texts, u[1:])
			}
		}
		for _, t := range texts {
			var td policy.Decision
			if a, err := shellcmd.Analyze(t); err != nil || a.Incomplete {
				// An unfinished line (an open quote) runs nothing when
				// it holds no substitution and is not uncommented.
				if err != nil || strings.HasPrefix(strings.TrimLeft(t, " \t"), "#") || strings.Contains(t, "$") || strings.ContainsAny(t, "`<>") {
					td = pol.JudgeUnreadable(pid, target, seg.EditKey+" on a line that is not a complete command")
				} else {
					td = policy.Decision{Action: policy.ActionAllow}
				}
			} else {
				td = pol.JudgeShellLine(pid, target, t)
			}
			if shown == "" || strictness(td.Action) > strictness(d.Action) {
				d, shown = td, t
			}
		}
		if shown == "" {
			d = policy.Decision{Action: policy.ActionAllow}
		}
	default:
		d = pol.JudgeUnreadable(pid, target, seg.EditKey)
		shown = "(a line typed ahead of the prompt)"
	}
	if d.Action != policy.ActionAllow && g.p.enforce(d, shown+" ["+seg.EditKey+"]", g.in) != policy.ActionAllow {
		return g.abortLine()
	}
	if !seg.Keep {
		g.track(func(tr *linerec.Tracker) { tr.Commit() })
	}
	return g.forward(key)
}

// How a line's readings are judged.
type readMode int

const (
	// modeScreen: the line was typed at a prompt on the normal screen;
	// the screen and, when known, the keys are judged.
	modeScreen readMode = iota
	// modeKeys: the line was typed ahead of the prompt (while the last
	// command still ran): the screen holds output, so only the keys are
	// judged.
	modeKeys
	// modeFullScreen: a full-screen program not known to be an editor
	// shows (or a shell was moved onto the alternate screen): the keys are
	// judged, and input that is not shell syntax is let through.
	modeFullScreen
	// modeHidden: the keys were not echoed: a password prompt, or echo
	// turned off. The keys are judged but never shown or stored; input
	// that is not shell syntax is let through.
	modeHidden
	// modeNone: no reading is usable (nothing judged; for full-screen
	// editors) and modeUnreadable: no reading can be trusted.
	modeNone
	modeUnreadable
)

// readings returns how to judge a submitted line and the texts to judge.
func (g *shellGuard) readings(line linerec.Line) (readMode, []string) {
	switch {
	case line.Alt:
		if launchedEditor(g.launched) || !line.KeysOK {
			return modeNone, nil
		}
		return modeFullScreen, []string{line.Keys}
	case line.Hidden:
		if !line.KeysOK {
			return modeUnreadable, nil
		}
		return modeHidden, []string{line.Keys}
	case !line.Judge:
		return modeNone, nil
	case line.QuotedCancel, line.Uncancelled, line.Unanswered:
		// QuotedCancel: a Ctrl-C after Ctrl-V went into the line (bash,
		// dash) or dropped it (zsh); Uncancelled: the shell did not answer
		// the Ctrl-C that was to drop a refused line (it may ignore
		// SIGINT and still hold it): what the shell holds is not known.
		// Enter came before the shell showed what a completion or history
		// key did, which it may still be doing: the screen is stale, and
		// the keys alone cannot say.
		return modeUnreadable, nil
	case line.Early:
		if !line.KeysOK || line.KeysMoved {
			// KeysMoved: a program may have read the line's first keys
			// (read -n 1), and the line bash builds from the rest after
			// Ctrl-A or Left is no tail of the keys' reading, which is
			// all judgeLines judges besides it (suffixReadings).
			return modeUnreadable, nil
		}
		return modeKeys, []string{line.Keys}
	}
	texts := []string{line.Text}
	if line.KeysOK && strings.TrimSpace(line.Keys) != strings.TrimSpace(line.Text) {
		texts = append(texts, line.Keys)
	}
	if line.Arg != "" {
		texts = append(texts, line.Arg)
	}
	return modeScreen, texts
}

// lineVerdict is the outcome of judging a line's readings.
type lineVerdict struct {
	action string   // policy.ActionAllow, or a refusal
	cont   bool     // allowed, and the shell will ask for more (PS2)
	names  []string // the commands of the judged text
}

// judgeLines judges the readings of one submitted line (each the whole
// command so far, continued lines included): a reading that does not parse
// is dropped when another one parses; a line every reading of which is
// unfinished continues; otherwise every finished reading is judged and the
// strictest verdict is enforced.
func (g *shellGuard) judgeLines(mode readMode, texts []string, keys *userInput, freshFrom int) lineVerdict {
	pol := g.p.env.policy()
	pid := g.p.ss.pid
	target := g.p.ss.target
	switch mode {
	case modeNone:
		return lineVerdict{action: policy.ActionAllow}
	case modeUnreadable:
		d := pol.JudgeUnreadable(pid, target, "the line holds keys (completion, history, a Ctrl-C after Ctrl-V) whose effect the shell had not shown when it was submitted (typed before its prompt, or not yet answered) or that shells take differently, and that cannot be known from the keys alone")
		return lineVerdict{action: g.p.enforce(d, "(a line typed ahead of the prompt)", keys)}
	}
	for _, t := range texts {
		if len(t) > maxPendingLine {
			// Every Enter of a continued command judges all its lines
			// again: unbounded, one more line (a byte) would buy a parse
			// of everything typed so far. Nothing longer is parsed, as on
			// the no-pty path.
			d := pol.JudgeUnreadable(pid, target, fmt.Sprintf("a command longer than %d KiB with its continued lines, which the bastion does not parse; run it as a script instead", maxPendingLine>>10))
			if d.Action == policy.ActionApprove {
				d.Action = policy.ActionBlock // no approver reads it
			}
			return lineVerdict{action: g.p.enforce(d, fmt.Sprintf("(a command of %d bytes)", len(t)), keys)}
		}
	}
	lenient := mode == modeFullScreen || mode == modeHidden
	shown := func(text string) string {
		if mode == modeHidden {
			return "(input that was not echoed)"
		}
		return text
	}
	// A line typed while a program ran (modeKeys), or typed to a
	// full-screen program, may have had its first keys read by that
	// program (`read -n 1`, less's `|` or `!` prompt, a pager's `q`), and
	// the rest by bash or by the shell the program starts: each suffix of
	// its first line is judged too, on the commands it names.
	var named []string
	budget := freshBudget
	if mode == modeKeys || mode == modeFullScreen {
		for _, t := range texts {
			nt, ok := suffixReadings(t, &budget)
			if !ok {
				d := pol.JudgeUnreadable(pid, target, "a line typed while a program ran, too long to judge as it would run had the program read some of its first keys")
				return lineVerdict{action: g.p.enforce(d, shown(withReadings(t, texts)), keys)}
			}
			named = append(named, nt...)
		}
	}
	type parsed struct {
		text       string
		ok         bool // parses
		incomplete bool
		names      []string
	}
	var ps []parsed
	anyOK := false
	for _, t := range texts {
		if strings.TrimSpace(t) == "" {
			continue
		}
		a, err := shellcmd.Analyze(t)
		p := parsed{text: t, ok: err == nil}
		if err == nil {
			p.incomplete = a.Incomplete
			p.names = a.Names()
		}
		anyOK = anyOK || p.ok
		ps = append(ps, p)
	}
	if len(ps) == 0 {
		return g.judgeNamed(named, texts, shown, keys)
	}
	if anyOK || lenient {
		// A reading that does not parse, beside one that does, is a
		// misreading (output mixed into the screen); in a full-screen
		// program or at a password prompt it is not shell input at all.
		kept := ps[:0]
		for _, p := range ps {
			if p.ok {
				kept = append(kept, p)
			}
		}
		ps = kept
		if len(ps) == 0 {
			return g.judgeNamed(named, texts, shown, keys)
		}
	}
	cont := false
	var finished []parsed
	for _, p := range ps {
		if p.incomplete {
			cont = true
		} else {
			finished = append(finished, p)
		}
	}
	// What bash runs if a program, not bash, read the first lines (see
	// freshReadings): judged beside the readings, never continued.
	var fresh []parsed
	budget = freshBudget
	for _, p := range ps {
		from := freshFrom
		heredoc := strings.Contains(p.text, "<<")
		if heredoc && from != 1 {
			// bash may end a here-document at a line this parser reads
			// as part of it (see shellcmd.CloseHereDocs): every line
			// after the first is also judged as the start of a command.
			from = 1
		}
		ft, ok := freshReadings(p.text, &budget, from)
		if !ok {
			d := pol.JudgeUnreadable(pid, target, "a command of more lines than the bastion can judge as bash might read them (a program reading some of them); split it, or run it as a script")
			return lineVerdict{action: g.p.enforce(d, shown(withReadings(p.text, texts)), keys)}
		}
		for _, t := range ft {
			fresh = append(fresh, parsed{text: t, ok: true})
		}
		if heredoc && p.incomplete {
			// ... and run what it holds at once, the commands before the
			// here-document included.
			closed, open, ok := shellcmd.CloseHereDocs(p.text)
			if open && !ok {
				d := pol.JudgeUnreadable(pid, target, "a here-document whose end bash may find where the bastion cannot (an empty delimiter, or one inside a construct it cannot close)")
				return lineVerdict{action: g.p.enforce(d, shown(withReadings(p.text, texts)), keys)}
			}
			if ok {
				fresh = append(fresh, parsed{text: closed, ok: true})
			}
		}
	}
	if len(finished) == 0 && mode == modeHidden {
		// An unfinished line the user cannot see: the shell would
		// join it with the next one, which could not be judged with it.
		d := pol.JudgeUnreadable(pid, target, "an unfinished command typed without echo")
		return lineVerdict{action: g.p.enforce(d, shown(""), keys)}
	}
	best := policy.Decision{Action: policy.ActionAllow}
	var bestText string
	for i, p := range append(finished, fresh...) {
		d := pol.JudgeShellLine(pid, target, p.text)
		if i == 0 || strictness(d.Action) > strictness(best.Action) {
			best, bestText = d, p.text
		}
	}
	for _, t := range named {
		if d := pol.JudgeShellLineNamed(pid, target, t); strictness(d.Action) > strictness(best.Action) {
			best, bestText = d, t
		}
	}
	if len(finished) == 0 && (len(fresh) == 0 && len(named) == 0 || best.Action == policy.ActionAllow) {
		// Nothing runs yet as the guard reads it, and nothing refused
		// would if a program had taken the first lines.
		return lineVerdict{action: policy.ActionAllow, cont: true}
	}
	var names []string
	if len(finished) > 0 {
		names = finished[0].names
	}
	if best.Action == policy.ActionAllow && mode == modeHidden {
		// Not audited: it may be a password.
		return lineVerdict{action: policy.ActionAllow, cont: cont}
	}
	return lineVerdict{action: g.p.enforce(best, shown(withReadings(bestText, texts)), keys), cont: cont, names: names}
}

// judgeNamed judges a line none of whose readings is a command (nothing
// typed, or, in a full-screen program, no shell syntax) on its suffix
// readings alone (see suffixReadings).
func (g *shellGuard) judgeNamed(named, texts []string, shown func(string) string, keys *userInput) lineVerdict {
	best := policy.Decision{Action: policy.ActionAllow}
	var bestText string
	for _, t := range named {
		if d := g.p.env.policy().JudgeShellLineNamed(g.p.ss.pid, g.p.ss.target, t); strictness(d.Action) > strictness(best.Action) {
			best, bestText = d, t
		}
	}
	if best.Action == policy.ActionAllow {
		return lineVerdict{action: policy.ActionAllow}
	}
	return lineVerdict{action: g.p.enforce(best, shown(withReadings(bestText, texts)), keys)}
}

// withReadings is the text shown for a line (to an approver, in the audit log
// and the recording): the reading the verdict came from, then every other
// reading of the line (the screen's, the keys') that differs from it. The
// screen is drawn by the target, so output can make the line it shows differ
// from the keys bash has (a background job redrawing it): an approver shown
// only the strictest reading, when both are equally strict, approved the
// screen's text while bash ran the keys'.
func withReadings(text string, readings []string) string {
	seen := []string{strings.TrimSpace(text)}
	for _, r := range readings {
		t := strings.TrimSpace(r)
		if t == "" || slices.Contains(seen, t) {
			continue
		}
		seen = append(seen, t)
		text += "\n-- the same line also reads as (bash runs one of these): " + r
	}
	return text
}

// paste handles a segment that submits several lines (or inserts them, in
// a bracketed paste): every command it completes is judged, as bash would
// read it line by line after the lines already continued, before a byte of
// it is forwarded; one refused command refuses the whole paste.
func (g *shellGuard) paste(seg linerec.Segment) bool {
	var line linerec.Line
	var sacc, kacc []string
	var kaccOK bool
	g.track(func(tr *linerec.Tracker) {
		line = tr.Line()
		sacc, kacc, kaccOK = tr.Continued()
	})
	if why := g.takeFailure(); why != "" {
		g.refuseBroken(why)
		return true
	}
	mode, _ := g.readings(line)
	type variant struct{ lines []string }
	var vs []variant
	switch mode {
	case modeScreen:
		vs = append(vs, variant{append(sacc, seg.Paste...)})
		if kaccOK && seg.PasteKeys != nil {
			vs = append(vs, variant{append(kacc, seg.PasteKeys...)})
		}
	case modeKeys, modeFullScreen, modeHidden:
		if !kaccOK || seg.PasteKeys == nil {
			mode = modeUnreadable
			break
		}
		vs = append(vs, variant{append(kacc, seg.PasteKeys...)})
	}
	// Split each reading where bash would run what it has read: after a
	// line that completes the commands before it.
	var units []string // per reading, the commands bash would run, one per line group
	var tails [][]string
	var whole []string // per reading, every line: for freshReadings when part of it continues
	// Once bash has run the paste's first command, that command may read
	// the lines after it (read, cat): from there on each line is also
	// judged as the start of a command (freshReadings); from the first
	// line if the paste came while a command ran.
	freshFrom := 0
	if line.Early || line.AfterEarly {
		freshFrom = 1
	}
	for vi, v := range vs {
		whole = append(whole, strings.Join(v.lines, "\n"))
		var cur, done []string
		for i, l := range v.lines {
			cur = append(cur, l)
			text := strings.Join(cur, "\n")
			if a, err := shellcmd.Analyze(text); err == nil && a.Incomplete {
				continue
			}
			if vi == 0 && freshFrom == 0 {
				freshFrom = i + 1
			}
			done = append(done, text)
			cur = nil
		}
		if len(done) > 0 {
			units = append(units, strings.Join(done, "\n"))
		}
		tails = append(tails, cur)
	}
	if mode == modeUnreadable || mode == modeNone {
		if g.judgeLines(mode, nil, g.in, 0).action != policy.ActionAllow {
			g.cancelLine()
			return true
		}
	} else if len(units) > 0 || len(whole) > 0 {
		// One verdict for the paste: the strictest over every command of
		// every reading, enforced once (one approval for the paste). The
		// readings whole, continued tail included, add what bash would
		// run had a program read their first lines.
		texts := units
		for i, w := range whole {
			if len(tails[i]) > 0 {
				texts = append(texts, w)
			}
		}
		if g.judgeLines(mode, texts, g.in, freshFrom).action != policy.ActionAllow {
			g.cancelLine()
			return true
		}
	}
	if !g.forward(seg.Data) {
		return false
	}
	if seg.Submit {
		var stail, ktail []string
		if len(tails) > 0 {
			stail = tails[0]
		}
		ok := len(vs) == 2
		if ok {
			ktail = tails[1]
		}
		if mode != modeScreen && len(tails) > 0 {
			stail, ktail, ok = tails[0], tails[0], true
		}
		if len(stail) == 0 && len(ktail) > 0 {
			stail = ktail
		}
		g.track(func(tr *linerec.Tracker) { tr.ContinueWith(stail, ktail, ok) })
	}
	return true
}

// launchedEditor reports whether the commands that started a full-screen
// program were an editor: its typing is text, not commands, and is not
// judged.
func launchedEditor(names []string) bool {
	seen := false
	for _, n := range names {
		switch {
		case editors[n]:
			seen = true
		case editorWrappers[n]:
		default:
			return false
		}
	}
	return seen
}

var editors = map[string]bool{
	"vi": true, "vim": true, "nvim": true, "view": true, "vimdiff": true, "ex": true, "rvim": true,
	"nano": true, "pico": true, "rnano": true, "emacs": true, "emacsclient": true, "mg": true,
	"jed": true, "joe": true, "jmacs": true, "jpico": true, "jstar": true, "micro": true, "ne": true,
	"mcedit": true, "kak": true, "hx": true, "helix": true,
	"sudoedit": true, "visudo": true, "vipw": true, "vigr": true, "crontab": true,
}

var editorWrappers = map[string]bool{"sudo": true, "doas": true, "env": true, "nice": true, "command": true, "exec": true, "time": true, "ionice": true, "nohup": true}

// waitEcho waits until the target has echoed the keys forwarded so far and
// its output has gone quiet, within bounds. When it already has (the user
// typed the Enter after the echo arrived, as a person does), it returns at
// once.
func (g *shellGuard) waitEcho() {
	quiet := func() (bool, time.Duration) {
		g.mu.Lock()
		defer g.mu.Unlock()
		since := g.p.env.now().Sub(g.lastOut)
		return g.tr.Settled(), since
	}
	settled, since := quiet()
	if settled && since >= quietWait {
		return
	}
	deadline := time.NewTimer(max(echoWait-g.p.env.now().Sub(g.lastKeys), 0))
	defer deadline.Stop()
	for !settled {
		select {
		case <-g.outCh:
		case <-deadline.C:
			return
		case <-g.p.ss.ctx.Done():
			return
		}
		settled, _ = quiet()
	}
	g.waitQuiet(quietMax)
}

// waitQuiet waits until the target's output has been quiet for quietWait
// and all of it has been passed on, up to limit, and reports whether it
// was.
func (g *shellGuard) waitQuiet(limit time.Duration) bool {
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		since, pending := g.p.env.now().Sub(g.lastOut), g.undelivered > 0
		g.mu.Unlock()
		if since >= quietWait && !pending {
			return true
		}
		t := time.NewTimer(max(quietWait-since, quietWait/4))
		select {
		case <-g.outCh:
			t.Stop()
		case <-t.C:
		case <-deadline.C:
			t.Stop()
			return false
		case <-g.p.ss.ctx.Done():
			t.Stop()
			return false
		}
	}
}

// cancelLine discards the line at the target: Ctrl-C makes the shell drop
// it (continued lines included) and draw a new prompt.
func (g *shellGuard) cancelLine() {
	g.interrupt([]byte{0x03})
}

// cancelQuoted discards the line while the shell waits for the key that a
// Ctrl-V or Ctrl-Q quoted. bash turns the terminal's signals off until that
// key comes (and the terminal's literal-next, under dash, takes it as is),
// so a Ctrl-C now would only go into the line: a Ctrl-G is that key, and
// once the shell has shown it, Ctrl-C ends the line. It reports whether
// the writes went.
func (g *shellGuard) cancelQuoted() bool {
	g.mu.Lock()
	sent := g.lastOut
	g.mu.Unlock()
	if !g.forward([]byte{0x07}) {
		return false
	}
	g.waitOutput(func() bool { return g.lastOut.After(sent) })
	return g.interrupt([]byte{0x03})
}

// abortLine discards the line when the shell may be part way through a key
// sequence (a Ctrl-X or ESC prefix, a numeric argument, forwarded before
// the key that was refused): Ctrl-G aborts it, Ctrl-C drops the line. The
// two go in one write. Sent apart, a Ctrl-C that arrives while readline
// is processing the Ctrl-G's abort is lost by bash 5.2, which then shows no
// new prompt until the user presses a key (Ctrl-G and Ctrl-C written 0.2
// ms apart after Ctrl-X or Alt-3: no prompt in 5 of 70 tries; in one
// write: none of 110). In one write
// the terminal takes both at once: the Ctrl-C's SIGINT discards the Ctrl-G
// unless the shell has read it, and the interrupt ends the prefix too. It
// reports whether the write went.
func (g *shellGuard) abortLine() bool {
	return g.interrupt([]byte{0x07, 0x03})
}

// interrupt writes keys that end in the Ctrl-C that makes the shell drop
// its line, and makes sure the shell took it.
//
// bash 5.2 handles a SIGINT that arrives while readline is busy (drawing,
// or waiting in a write) only as far as readline's own cleanup: it echoes
// "^C", turns bracketed paste off and on, and then waits for a key with
// the interrupt pending and the line kept; an Enter then runs the line
// less its first character. Seen in CI after the Ctrl-G of cancelQuoted;
// bash alone in a pty, a Ctrl-C written as the Ctrl-G's echo came was so
// lost 5 to 12 times in 100, and none in 400 written once the output had
// been quiet for quietWait. So the Ctrl-C goes once the output has been
// quiet (within quietMax) and passed on to the user (within stallWait: a
// user who stops reading, Ctrl-S in their terminal, keeps the shell
// blocked in its write, busy).
//
// A shell that answers with no more than readline's reset within
// echoWait (Tracker.CancelAnswered) gets one more Ctrl-C, once its output
// is quiet again: an idle readline takes it (10 of 10 so lost, recovered).
// Only then: a Ctrl-C more than needed can itself come while bash draws
// its new prompt (seen under the full suite's load, 15 ms after the
// prompt), and is then lost the same way, eating the first key of the
// next line. Should the second be lost too, the tracker still holds the
// cancel unanswered and the next line gets the rules' unknowable action
// (Line.Uncancelled). The tracker is told of each cancel just before its
// write, so that what came before is not taken for the answer. It reports
// whether the writes went.
func (g *shellGuard) interrupt(keys []byte) bool {
	if !g.pty {
		g.track(func(tr *linerec.Tracker) { tr.Cancel() })
		return g.forward(keys)
	}
	g.settle()
	g.track(func(tr *linerec.Tracker) { tr.Cancel() })
	if !g.forward(keys) {
		return false
	}
	if g.waitOutput(func() bool { return g.tr.CancelAnswered() }) {
		return true
	}
	g.p.log.Info("the shell did not answer the Ctrl-C that drops a refused line; sending another")
	g.settle()
	g.track(func(tr *linerec.Tracker) { tr.Cancel() })
	return g.forward([]byte{0x03})
}

// settle waits for the target's output to be quiet (up to quietMax) and
// passed on to the user (up to stallWait).
func (g *shellGuard) settle() {
	if g.waitQuiet(quietMax) {
		return
	}
	deadline := time.NewTimer(stallWait)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		pending := g.undelivered > 0
		g.mu.Unlock()
		if !pending {
			return
		}
		select {
		case <-g.outCh:
		case <-deadline.C:
			return
		case <-g.p.ss.ctx.Done():
			return
		}
	}
}

// waitOutput waits, up to echoWait, until done (called under g.mu) holds
// after the target's output, and reports whether it did.
func (g *shellGuard) waitOutput(done func() bool) bool {
	deadline := time.NewTimer(echoWait)
	defer deadline.Stop()
	for {
		g.mu.Lock()
		ok := done()
		g.mu.Unlock()
		if ok {
			return true
		}
		select {
		case <-g.outCh:
		case <-deadline.C:
			return false
		case <-g.p.ss.ctx.Done():
			return false
		}
	}
}

// enforce applies a decision on a command: audit, marker, message, and for
// approvals the wait. It returns ActionAllow when the command may run.
func (p *proxy) enforce(d policy.Decision, text string, in *userInput) string {
	ss := p.ss
	pol := p.env.policy() // what d was judged under, for an approval that outlives it
	if d.Action == policy.ActionApprove && p.patternMasked(text) {
		// The approver would see stars where the pattern matched, and a
		// pattern's match can hold anything: "password=x;touch${IFS}b".
		d = policy.Decision{Action: policy.ActionBlock, Rule: d.Rule,
			Reason: "it needs approval, but an output masking pattern hides part of it, so no approver could see what they approve (keep the secret out of the command line)"}
	}
	text = p.redact(text)
	p.env.metrics.Decisions.WithLabelValues(policy.OnCommand, d.Action).Inc()
	fields := map[string]string{"command": text, "kind": ss.kind}
	switch d.Action {
	case policy.ActionAllow:
		if err := p.env.audit(Event{Type: "command.allow", Identity: ss.identity, SessionID: ss.id, Target: ss.target, Outcome: "allowed", Fields: fields, Routine: true}); err != nil {
			p.tell("the audit log cannot record this command, so it was not run")
			return policy.ActionBlock
		}
		return policy.ActionAllow
	case policy.ActionBlock:
		fields["rule"] = d.Rule
		p.env.audit(Event{Type: "command.block", Identity: ss.identity, SessionID: ss.id, Target: ss.target, Outcome: "blocked", Reason: d.Reason, Fields: fields})
		ss.marker(fmt.Sprintf("bastion: blocked by rule %s: %s", d.Rule, text))
		ss.decided(outcomeBlocked)
		p.tell("blocked by rule %s: %s", d.Rule, d.Reason)
		p.log.Info("command blocked", "rule", d.Rule, "command", text)
		return policy.ActionBlock
	}
	// Approval: nothing of the command has reached the target.
	now := p.env.now()
	ap := p.env.approvals.request(&approval{
		SessionID: ss.id, Requester: ss.identity, User: ss.identity.User, Target: ss.target, Login: ss.login,
		Kind: "command", Command: text, Rule: d.Rule, Reason: d.Reason, Approvers: d.Approvers,
		Created: now, Expires: now.Add(d.Timeout),
	})
	if note, ok := p.env.approvals.refusedAtOnce(ap); ok {
		ss.decided(outcomeDenied)
		ss.marker(fmt.Sprintf("bastion: not held for approval (rule %s): %s: %s", d.Rule, note, text))
		p.tell("needs approval by rule %s, but not run: %s", d.Rule, note)
		return policy.ActionBlock
	}
	ss.marker(fmt.Sprintf("bastion: held for approval (request %s, rule %s): %s", ap.ID, d.Rule, text))
	p.tell("held for approval by rule %s (%s).\r\nbastion: request %s: an approver (%s) runs `bastion approve %s`; waiting up to %s. Ctrl-C cancels.",
		d.Rule, d.Reason, ap.ID, strings.Join(d.Approvers, ", "), ap.ID, d.Timeout.Round(time.Second))
	ctx, cancel := context.WithCancel(ss.ctx)
	defer cancel()
	if in != nil {
		// Keys typed while waiting are not forwarded; Ctrl-C cancels.
		keys := in.watch()
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
	outcome, by, note := p.env.approvals.wait(ctx, ap)
	if outcome == Approved {
		ss.decided(outcomeApproved)
	} else {
		ss.decided(outcomeDenied)
	}
	switch outcome {
	case Approved:
		ss.marker(fmt.Sprintf("bastion: request %s approved by %s", ap.ID, by))
		// A revocation (or an expiry, with disconnect_expired_cert) ends
		// the session within a second (endRevoked); an approval in that
		// second must not run the command.
		if p.env.sessionOver != nil {
			if err := p.env.sessionOver(ss.identity); err != nil {
				ss.marker(fmt.Sprintf("bastion: request %s not run: the requester's %v", ap.ID, err))
				p.env.audit(Event{Type: "command.block", Identity: ss.identity, SessionID: ss.id, Target: ss.target, Outcome: "blocked",
					Reason: "approved after the requester's certificate was revoked or expired", Fields: map[string]string{"command": text, "kind": ss.kind, "request": ap.ID}})
				p.tell("request %s approved by %s, but not run: your %v", ap.ID, by, err)
				return policy.ActionBlock
			}
		}
		if p.env.policy() != pol {
			// The rules were reloaded while it waited: they may block it now,
			// or want other approvers. It is judged again when run again.
			ss.marker(fmt.Sprintf("bastion: request %s not run: the rules were reloaded while it waited", ap.ID))
			p.env.audit(Event{Type: "command.block", Identity: ss.identity, SessionID: ss.id, Target: ss.target, Outcome: "blocked",
				Reason: "approved under rules a reload replaced", Fields: map[string]string{"command": text, "kind": ss.kind, "request": ap.ID}})
			p.tell("request %s approved by %s, but the rules were reloaded while it waited, so it was not run: run it again to have it judged by the rules in force", ap.ID, by)
			return policy.ActionBlock
		}
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

// patternMasked reports whether a masking pattern (an output rule's regex
// detector) would hide part of text. Card masking is not asked: it hides
// digits, never what a command does.
func (p *proxy) patternMasked(text string) bool {
	m := p.env.policy().OutputMasks(p.ss.pid, p.ss.target)
	if len(m.Patterns) == 0 {
		return false
	}
	out, n := mask.MaskString(mask.Config{Patterns: m.Patterns}, text)
	return n > 0 && out != text
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

// shellNames are shells, and programs that start one.
var shellNames = map[string]bool{"sh": true, "bash": true, "dash": true, "zsh": true, "ksh": true, "mksh": true, "ash": true, "busybox": true, "su": true}

// readsShellFromStdin reports whether an exec command runs a shell that
// reads its commands from the session's stdin: an interactive shell in
// disguise (`ssh host bash`, `bash -o errexit`, `sh /dev/stdin`, `source
// /dev/stdin`, `sudo -i`). shellcmd follows the shells' own options to
// find out; a command it cannot read counts as one.
func readsShellFromStdin(command string) bool {
	a, err := shellcmd.Analyze(command)
	if err != nil || a.Incomplete {
		return true
	}
	return a.StdinShell
}

// interactiveShell reports whether an exec command starts a shell with -i
// (an interactive shell, which expands history, even without a terminal).
func interactiveShell(command string) bool {
	a, err := shellcmd.Analyze(command)
	if err != nil {
		return true
	}
	for _, c := range a.Commands {
		if !shellNames[c.Name] || c.Name == "su" {
			continue
		}
		for _, arg := range c.Argv[1:] {
			if arg == "--" || !strings.HasPrefix(arg, "-") || strings.HasPrefix(arg, "--") {
				if arg == "--login" || arg == "--rcfile" {
					continue
				}
				break
			}
			if strings.ContainsRune(arg, 'i') {
				return true
			}
		}
	}
	return false
}
