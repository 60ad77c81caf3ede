package linerec

import (
	"bytes"
	"regexp"
	"strings"
)

// Segment is a run of user input. Concatenating the Data of all segments
// returned by one Keys call gives back its input.
type Segment struct {
	// Data is the bytes to forward, in order.
	Data []byte
	// Submit is set when Data ends with a key that submits the line
	// (CR, LF, Ctrl-O): the caller judges the line before forwarding that
	// last key.
	Submit bool
	// Paste is set for a multi-line paste (bracketed or not): every complete
	// line it would submit, the first one including what was already typed
	// on the current line. The lines are rebuilt from the keys alone (see
	// the package documentation), so the caller can judge all of them
	// before forwarding any byte of Data.
	Paste []string
	// PasteKeys is Paste read from the keys alone, the first line starting
	// with the key model's reading of what was already typed; nil when that
	// reading is not known (see Line.KeysOK). A caller judges both.
	PasteKeys []string
	// Edit is set when the last key of Data is not Enter but a key that
	// makes the shell run what an editor saves (Ctrl-X Ctrl-E,
	// edit-and-execute-command) or re-read its key bindings (Ctrl-X
	// Ctrl-R), or that runs something without accepting the line as typed
	// (see editKeyName): what will run cannot be read from the line.
	// Submit is set too, and EditKey names the key.
	Edit    bool
	EditKey string
	// KeyLen is how many bytes at the end of Data make the submit key
	// (the caller holds them back until the line is judged): 1, or more
	// for a character with the eighth bit set read as a Meta key.
	KeyLen int
	// Keep: the key, allowed, leaves the line being edited (it may also be
	// an ordinary character: an eight-bit Meta key in a UTF-8 locale), so
	// the caller does not commit the line.
	Keep bool
}

// Line is the tracker's view of the line the shell will run.
type Line struct {
	// Text is the line as the echo shows it; lines joined by Continue are
	// separated by "\n".
	Text string
	// Judge is false when the input is not a shell command line: a
	// full-screen program (alternate screen) or input that is not echoed
	// (a password prompt). Text is empty then.
	Judge bool
	// Why explains Judge=false, or notes where the reconstruction is less
	// certain than usual (empty when there is nothing to say).
	Why string
	// Early is true when the first key of the line came before the
	// previous output had settled or before the shell drew its next prompt
	// (type-ahead): the anchor, and so the line, cannot be trusted. A
	// caller enforcing rules should refuse it.
	Early bool
	// Keys is the line as the typed keys make it under readline's default
	// bindings, independent of the screen; KeysOK is false when a key was
	// typed whose effect the model cannot know (history, search, yank) or
	// the line continues earlier ones. A caller enforcing rules judges both
	// readings and keeps the stricter verdict. Lines joined by Continue
	// are separated by "\n", as in Text.
	Keys   string
	KeysOK bool
	// KeysMoved is set when the keys moved the cursor off the end of the
	// line (Ctrl-A, Left, Home): the line is then not built at its end
	// alone, so what a shell makes of its keys without the first few (a
	// program read them) need not be a tail of Keys.
	KeysMoved bool
	// Arg is a third reading, set when a numeric argument was typed
	// (Alt-digit) and readline shows "(arg: N) " in place of the prompt,
	// where the text after the anchor is not the line: the line as it
	// follows that label (continued lines included). A prompt can imitate
	// the label, so the caller judges Arg beside Text, never instead.
	Arg string
	// Unanswered is set when a key whose effect the key model cannot know
	// (completion, history, search, yank, an Alt-key) had no output after
	// it: the shell has not shown what it did and may still change the
	// line (a slow completion), so neither reading can be trusted.
	Unanswered bool
	// Hidden is set when keys were typed but nothing was echoed: a password
	// prompt, or a shell whose echo was turned off. Judge is false and Text
	// empty; Keys holds what was typed, which may be a secret.
	Hidden bool
	// Alt is set when a full-screen program (the alternate screen) is
	// showing. Judge is false and Text empty.
	Alt bool
	// AfterEarly is set when a line joined by Continue (or ContinueWith)
	// was typed ahead: a program still running may have read it instead of
	// the shell, which then reads the lines after it as a command of their
	// own.
	AfterEarly bool
	// QuotedCancel is set when a Ctrl-C came right after Ctrl-V or Ctrl-Q
	// since the line was last submitted or cancelled by the caller: bash
	// (whose quoted-insert turns the terminal's signals off for that key)
	// and dash (the terminal's literal-next) put it into the line, which
	// goes on, while zsh drops the line. The line is read from after the
	// Ctrl-C, which is only one of them.
	QuotedCancel bool
	// Uncancelled is set when the caller cancelled a line (Cancel) and
	// the shell has not answered since: a shell that ignores SIGINT (bash
	// after trap '' INT) keeps the line the Ctrl-C was to drop, and an
	// Enter would run it with whatever is typed after it. So does bash 5.2
	// when the SIGINT comes while readline is busy drawing: it echoes "^C",
	// turns bracketed paste off and on, and then waits with the interrupt
	// pending and the line kept, and an Enter runs the line (seen: "echo
	// RAN …" so cancelled, then Enter ran it less its first letter). Output
	// that is only that is no answer.
	Uncancelled bool
}

// Tracker follows one interactive terminal session. It is not safe for
// concurrent use.
type Tracker struct {
	s      *screen
	ks     keyScanner
	active bool     // a line is in progress: the mark is set
	acc    []string // lines accumulated by Continue
	prompt string   // the cells left of the mark on its row when it was set
	known  []string // prompt tails seen at settled anchors, newest first
	early  bool     // the anchor was taken before the previous keys were echoed
	// accEarly: a line in acc was typed ahead (Line.AfterEarly).
	accEarly bool
	typed    int // printable keys typed since the mark
	keysSeq  uint64
	echoSeq  uint64
	// blindSeq is keysSeq when a key whose effect the key model cannot
	// know (completion, history, search, yank, Alt-keys) was last typed:
	// until output comes after it, the screen does not show its effect.
	blindSeq uint64
	carry    string // the incomplete last line of a paste, typed ahead
	last     string // the text of the last Line call since the mark
	markAlt  bool   // the mark was set on the alternate screen
	simple   bool   // only keys that cannot put a line break into the line since the mark
	listed   bool   // a completion key (Tab, Alt-?, Alt-=) was typed since the mark

	// After a submit or a cancel the shell answers with output and a new
	// prompt; a key typed while the last output still ends a line (the
	// command's output, before the prompt is drawn) is type-ahead.
	answered bool // output arrived since the last submit or cancel ended a line
	pending  bool // a submit or cancel is awaiting the shell's answer

	// km replays the keys typed since the mark through a model of
	// readline's default bindings: a second reading of the line that does
	// not depend on the screen. kmOK is false once a key the model cannot
	// know the effect of (history, search, yank) was typed.
	km   lineModel
	kmOK bool
	// kacc holds the key model's reading of each line joined by Continue;
	// kaccOK is false when one of them was not known.
	kacc   []string
	kaccOK bool
	ctlx   bool // the last key was Ctrl-X (a prefix for Ctrl-E, Ctrl-R)
	argKey bool // a numeric argument key was typed on this line
	// quotedCancel: Line.QuotedCancel.
	quotedCancel bool
	// cancelSent: Cancel was called and the shell has not answered since
	// (Line.Uncancelled).
	cancelSent bool
}

const maxKnownPrompts = 8

// New returns a Tracker for a terminal of the given size.
func New(cols, rows int) *Tracker {
	return &Tracker{s: newScreen(cols, rows), kaccOK: true}
}

// Resize tells the tracker the window size changed.
func (t *Tracker) Resize(cols, rows int) { t.s.resize(cols, rows) }

// Output feeds bytes from the target, in order.
func (t *Tracker) Output(p []byte) {
	if len(p) == 0 {
		return
	}
	t.s.write(p)
	t.echoSeq = t.keysSeq
	if t.cancelSent && !signalReset(p) {
		t.cancelSent = false
	}
	if t.pending {
		t.answered = true
	}
}

// signalReset reports whether p holds only what readline writes when it
// takes a signal and reads on: the "^C" it echoes, carriage returns, and
// bracketed paste turned off and on; or when it takes the Ctrl-G the
// caller sends before a Ctrl-C (shown as "^G" after Ctrl-V, or a bell).
func signalReset(p []byte) bool {
	for len(p) > 0 {
		switch {
		case p[0] == '\r' || p[0] == '\a':
			p = p[1:]
		case bytes.HasPrefix(p, []byte("^C")), bytes.HasPrefix(p, []byte("^G")):
			p = p[2:]
		case bytes.HasPrefix(p, []byte("\x1b[?2004l")), bytes.HasPrefix(p, []byte("\x1b[?2004h")):
			p = p[len("\x1b[?2004l"):]
		default:
			return false
		}
	}
	return true
}

// Settled reports whether output has arrived since the last keys were
// typed, that is, whether their echo had a chance to be drawn.
func (t *Tracker) Settled() bool { return t.echoSeq == t.keysSeq }

// Unanswered reports whether a key whose effect the key model cannot know
// (Tab's completion, history, search, yank, an Alt-key) was typed and no
// output has come since: the shell has not yet shown what it did, and may
// still change the line (a completion that takes its time), so neither
// the screen nor the keys say what a submit would run.
func (t *Tracker) Unanswered() bool { return t.blindSeq > t.echoSeq }

// start anchors a new line at the cursor.
func (t *Tracker) start() {
	s := t.s
	t.active = true
	t.typed = 0
	t.simple, t.listed, t.last, t.argKey = true, false, "", false
	t.markAlt = t.s.alt
	// The shell's answer to a submit ends with its prompt, which leaves the
	// cursor after it; a command's output (and bash's own "\r" after
	// accepting a line) leaves it at the start of a row.
	t.early = !t.Settled() || t.pending && (!t.answered || t.s.x == 0 && !t.s.pending)
	t.pending, t.answered = false, false
	t.km = lineModel{buf: []rune(t.carry)}
	t.km.cur = len(t.km.buf)
	t.kmOK = true
	if s.pending {
		t.prompt = s.line(s.y).text(0, s.cols)
	} else {
		t.prompt = s.line(s.y).text(0, s.x)
	}
	s.setMark()
	if !t.early && strings.TrimSpace(t.prompt) != "" && !s.alt {
		t.learnPrompt(t.prompt)
	}
}

func (t *Tracker) learnPrompt(p string) {
	for i, k := range t.known {
		if k == p {
			copy(t.known[1:i+1], t.known[:i])
			t.known[0] = p
			return
		}
	}
	if len(t.known) < maxKnownPrompts {
		t.known = append(t.known, "")
	}
	copy(t.known[1:], t.known)
	t.known[0] = p
}

// maxKeyLine bounds the line the key model follows, in characters: the
// longest the screen can hold from its mark. Past it the keys' reading is
// not known (KeysOK false), so the model's memory stays bounded whatever
// is typed without Enter.
const maxKeyLine = (maxRows + maxOff) * maxCols

// Keys splits user input at submit points. The first key after a prompt
// (after New, Commit, Continue or Cancel) anchors the line at the cursor.
func (t *Tracker) Keys(p []byte) []Segment {
	if len(p) == 0 {
		return nil
	}
	if !t.active || (t.markAlt && !t.s.alt) {
		// A line started inside a full-screen program is over when it exits.
		t.start()
	}
	bracketed := t.s.bracketed
	before, kmOKBefore := t.ks, t.kmOK
	// The key model's state before p is needed only when p holds a submit
	// and another line end (a paste). Copying it for every chunk of keys
	// cost O(line) per keystroke, O(n²) over a long line typed a key at a
	// time; a look through p (O(len(p))) decides when the line is longer.
	var kmBefore lineModel
	if kmOKBefore && (len(t.km.buf) <= len(p) || t.pasteIn(p, bracketed)) {
		kmBefore = t.km.clone()
	}

	var submits []int // offsets just past each submit key
	lineEnds, pasteNL, lastCancel, lastPrintable, others := 0, 0, -1, -1, 0
	quotedCancel := false
	edit, editWhat, keyLen, keep := false, "", 1, false
	blind := false
	t.ks.scan(p, func(k keyTok) {
		afterCtlx := t.ctlx
		k.edit = editKeyName(t.ctlx, k) != ""
		if k.edit {
			editWhat, keyLen = editKeyName(t.ctlx, k), 1
			keep = editWhat == KeyExpandLine || k.kind == kRune
			if k.kind == kRune {
				keyLen = k.end - k.start
			}
		}
		t.ctlx = !k.paste && k.kind == kCtrl && k.r == 0x18
		// A character held as an eight-bit Meta key is, where the shell
		// reads UTF-8, typed text: it is counted and modelled as such.
		char := k.edit && k.kind == kRune
		if len(submits) == 0 && lineEnds == 0 && (!isSubmit(k, bracketed) || char) && !isPasteNewline(k, bracketed) {
			// A key the model cannot follow has done what it does once
			// output comes after it. Ctrl-X is a prefix: the key after it
			// is the one that acts, unless it starts or ends a keyboard
			// macro (Ctrl-X ( and Ctrl-X ), which show nothing).
			ctlxKey := !k.paste && k.kind == kCtrl && k.r == 0x18
			macro := afterCtlx && !k.paste && k.kind == kRune && (k.r == '(' || k.r == ')')
			if afterCtlx && !macro && !ctlxKey {
				blind = true
			}
			if simpleKey(k) && !(k.kind == kCtrl && k.r == '\t' && !k.paste) {
				if t.kmOK {
					t.km.key(k)
					if len(t.km.buf) > maxKeyLine {
						// Longer than the screen can hold: the keys'
						// reading is given up (and its memory freed).
						t.kmOK, t.km = false, lineModel{}
					}
				}
			} else {
				t.kmOK = false // completion, history, search, yank, Alt-keys
				blind = blind || !ctlxKey
			}
		}
		if !isSubmit(k, bracketed) || char {
			others++
		}
		switch {
		case isSubmit(k, bracketed):
			submits = append(submits, k.end)
			edit = k.edit
			lineEnds++
			if char {
				t.typed++
				lastPrintable = k.end
			}
		case isPasteNewline(k, bracketed):
			lineEnds++
			pasteNL++
		case k.kind == kRune:
			t.typed++
			lastPrintable = k.end
		case k.kind == kCtrl && k.r == 0x03 && !k.paste:
			lastCancel = k.end
			quotedCancel = k.quoted
		}
		if !k.paste && (k.kind == kMeta && (k.r >= '0' && k.r <= '9' || k.r == '-') || k.kind == kRune && k.arg8) {
			t.argKey = true
		}
		if k.kind == kCtrl && k.r == '\t' && !k.paste || k.kind == kMeta && (k.r == '?' || k.r == '=') {
			t.listed = true
		}
		if !simpleKey(k) && !isSubmit(k, bracketed) {
			t.simple = false
		}
	})

	if others > 0 {
		// Keys the shell will echo are forwarded now; a lone Enter is
		// held, and has nothing of its own to echo.
		t.keysSeq++
		if blind {
			t.blindSeq = t.keysSeq
		}
	}
	var segs []Segment
	switch {
	case lineEnds >= 2 || pasteNL > 0:
		lines, _ := t.replay(before, p, bracketed, nil)
		var keyLines []string
		if kmOKBefore && len(submits) > 0 {
			keyLines, _ = t.replay(before, p, bracketed, &kmBefore)
		}
		cut := len(p)
		if len(submits) > 0 {
			cut = submits[len(submits)-1]
		}
		segs = append(segs, Segment{Data: p[:cut], Submit: len(submits) > 0, Paste: lines, PasteKeys: keyLines, Edit: edit, EditKey: editWhat, KeyLen: keyLen, Keep: keep})
		if cut < len(p) {
			segs = append(segs, Segment{Data: p[cut:]})
		}
	case len(submits) == 1:
		segs = append(segs, Segment{Data: p[:submits[0]], Submit: true, Edit: edit, EditKey: editWhat, KeyLen: keyLen, Keep: keep})
		if submits[0] < len(p) {
			segs = append(segs, Segment{Data: p[submits[0]:]})
		}
	default:
		segs = []Segment{{Data: p}}
	}
	t.carry = ""
	if len(submits) > 0 && submits[len(submits)-1] < len(p) {
		_, rest := t.replay(before, p, bracketed, nil)
		t.carry = rest
	}
	// Ctrl-C as the last key abandons the line: the shell draws a new prompt
	// and the next key anchors there.
	if lastCancel > 0 && lastCancel > lastPrintable && (len(submits) == 0 || lastCancel > submits[len(submits)-1]) {
		t.reset()
		t.quotedCancel = quotedCancel
	}
	return segs
}

// pasteIn reports whether p holds a submit key and, besides it, another
// submit or a pasted newline: the case where Keys replays p from the key
// model's state before it. It scans a copy of the key scanner as Keys does.
func (t *Tracker) pasteIn(p []byte, bracketed bool) bool {
	sc, ctlx := t.ks, t.ctlx
	submits, ends := 0, 0
	sc.scan(p, func(k keyTok) {
		k.edit = editKeyName(ctlx, k) != ""
		ctlx = !k.paste && k.kind == kCtrl && k.r == 0x18
		switch {
		case isSubmit(k, bracketed):
			submits++
			ends++
		case isPasteNewline(k, bracketed):
			ends += 2 // one pasted newline makes a paste
		}
	})
	return submits > 0 && ends >= 2
}

// EditCut returns the length of the prefix of p to pass to Keys first: up
// to and including the first key editKeyName names, when keys follow it,
// or all of p. Such a key must be judged before the keys after it are
// forwarded (Keys treats several submit keys in one chunk as a paste,
// whose lines are read from a model that does not know those keys).
func (t *Tracker) EditCut(p []byte) int {
	sc, ctlx, cut := t.ks, t.ctlx, len(p)
	sc.scan(p, func(k keyTok) {
		if cut == len(p) && editKeyName(ctlx, k) != "" {
			cut = k.end
		}
		ctlx = !k.paste && k.kind == kCtrl && k.r == 0x18
	})
	return cut
}

// replay runs the key model over p, starting from what is already typed,
// and returns the complete lines and the incomplete rest. What is already
// typed is read from the screen, or, when from is set, is the key model's
// state from.
func (t *Tracker) replay(sc keyScanner, p []byte, bracketed bool, from *lineModel) ([]string, string) {
	var m lineModel
	prefix := t.carry
	if from != nil {
		m = from.clone()
		prefix = ""
	} else if prefix == "" {
		prefix = t.current1()
		// Line trims trailing blanks; the cursor may be after some.
		if off := t.s.cursorOffset(); off >= 0 && !strings.Contains(prefix, "\n") {
			if w := cellsOf(prefix); off > w {
				prefix += strings.Repeat(" ", off-w)
			}
		}
	}
	if from == nil {
		m.buf = []rune(prefix)
		m.cur = len(m.buf)
		if off := t.s.cursorOffset(); off >= 0 && t.carry == "" {
			m.cur = runeIndexAtCells(m.buf, off)
		}
	}
	var lines []string
	sc.scan(p, func(k keyTok) {
		if isSubmit(k, bracketed) || isPasteNewline(k, bracketed) {
			lines = append(lines, string(m.buf))
			m = lineModel{}
			return
		}
		m.key(k)
	})
	return lines, string(m.buf)
}

func cellsOf(s string) int {
	n := 0
	for _, r := range s {
		n += runeWidth(r)
	}
	return n
}

// simpleKey reports keys that cannot bring a line break into the line:
// printable text, completion, and the editing keys of the line model.
func simpleKey(k keyTok) bool {
	if k.paste {
		return k.kind == kRune || k.kind == kPasteOff
	}
	switch k.kind {
	case kRune:
		return true
	case kCtrl:
		return strings.ContainsRune("\x01\x02\x04\x05\x06\x07\x08\x0b\x0c\x15\x17\x7f\t", k.r)
	case kSeq:
		return k.r == 'C' || k.r == 'D' || k.r == 'H' || k.r == 'F' || k.r == '~' && k.p0 >= 1 && k.p0 <= 8 && k.p0 != 2
	case kMeta:
		return k.r == '?' || k.r == '='
	}
	return false
}

// runeIndexAtCells maps a cell offset to an index into buf.
func runeIndexAtCells(buf []rune, cells int) int {
	w := 0
	for i, r := range buf {
		if w >= cells {
			return i
		}
		if r == '\n' {
			w = 0
			continue
		}
		w += max(runeWidth(r), 1)
	}
	return len(buf)
}

// Commit tells the tracker the submit key was forwarded: the next line
// starts at the next key.
//
// The submit key the caller forwards makes the shell answer (a newline,
// output, a new prompt): until output arrives, a key that starts the next
// line is type-ahead and that line is marked Early.
func (t *Tracker) Commit() {
	t.reset()
	t.quotedCancel = false
	t.cancelSent = false
	t.keysSeq++
	t.pending, t.answered = true, false
}

// CancelAnswered reports whether the shell has answered the last Cancel
// (see Line.Uncancelled); it is true when there was none.
func (t *Tracker) CancelAnswered() bool { return !t.cancelSent }

// Cancel tells the tracker the caller cancelled the line at the target
// (sent Ctrl-C).
func (t *Tracker) Cancel() {
	t.reset()
	t.quotedCancel = false
	t.cancelSent = true
	t.carry = ""
	t.keysSeq++ // the shell answers Ctrl-C with a new prompt
	t.pending, t.answered = true, false
}

// Continue tells the tracker the line was incomplete (an open quote, a
// trailing backslash) and its submit key was forwarded: the shell asks for
// more with its PS2 prompt, and Line now returns the lines so far joined by
// "\n".
func (t *Tracker) Continue() {
	text := t.last
	if text == "" {
		text = t.Line().Text
	}
	t.accEarly = t.accEarly || t.early
	t.acc = append(t.acc, text)
	t.kacc = append(t.kacc, string(t.km.buf))
	t.kaccOK = t.kaccOK && t.kmOK
	t.active = false
	t.s.clearMark()
	t.keysSeq++ // the shell answers with its PS2 prompt
	t.pending, t.answered = true, false
}

func (t *Tracker) reset() {
	t.active = false
	t.acc = nil
	t.accEarly = false
	t.kacc, t.kaccOK = nil, true
	t.typed = 0
	t.s.clearMark()
}

var argRE = regexp.MustCompile(`^\(arg: -?[0-9]+\) `)

var searchRE = regexp.MustCompile("^\\((?:failed )?(?:reverse-)?i-search\\)`[^']*': ")

// Line returns the line as it stands now. Call it after the echo of the
// keys has settled (see Settled).
func (t *Tracker) Line() Line {
	keys, keysOK := t.keysReading()
	if t.s.alt {
		return Line{Why: "full-screen program (alternate screen)", Alt: true, Early: t.active && t.early, Keys: keys, KeysOK: keysOK, AfterEarly: t.accEarly, QuotedCancel: t.quotedCancel, Uncancelled: t.cancelSent}
	}
	if !t.active {
		return Line{Text: strings.Join(t.acc, "\n"), Judge: true, Keys: keys, KeysOK: keysOK, AfterEarly: t.accEarly, QuotedCancel: t.quotedCancel, Uncancelled: t.cancelSent}
	}
	if t.typed > 0 && t.s.drawn == 0 {
		return Line{Why: "typed keys were not echoed (password prompt?)", Early: t.early, Hidden: true, Keys: keys, KeysOK: keysOK, AfterEarly: t.accEarly, QuotedCancel: t.quotedCancel, Uncancelled: t.cancelSent}
	}
	text, why := t.current()
	t.last = text
	var arg string
	if t.argKey {
		// readline shows "(arg: N) " over the prompt while it reads a
		// numeric argument.
		if full := t.join(t.s.markRows(), 0, false); argRE.MatchString(full) {
			arg = strings.Join(append(t.acc[:len(t.acc):len(t.acc)], full[argRE.FindStringIndex(full)[1]:]), "\n")
		}
	}
	return Line{Text: strings.Join(append(t.acc[:len(t.acc):len(t.acc)], text), "\n"), Judge: true, Why: why, Early: t.early, Unanswered: t.Unanswered(),
		Keys: keys, KeysOK: keysOK, KeysMoved: t.km.moved, AfterEarly: t.accEarly, Arg: arg, QuotedCancel: t.quotedCancel, Uncancelled: t.cancelSent}
}

// Continued returns the lines joined by Continue so far: as the screen
// showed them, and as the keys made them (keysOK false when one of those
// is not known).
func (t *Tracker) Continued() (screen, keys []string, keysOK bool) {
	return append([]string(nil), t.acc...), append([]string(nil), t.kacc...), t.kaccOK
}

// ContinueWith tells the tracker that the lines of a paste were forwarded
// and the shell still waits for the rest of a command: screen and keys are
// every line it holds so far, as in Continued. An empty screen means the
// shell holds nothing (the paste completed its commands): as Commit.
func (t *Tracker) ContinueWith(screen, keys []string, keysOK bool) {
	if len(screen) == 0 {
		t.Commit()
		return
	}
	t.accEarly = t.accEarly || t.early
	t.acc = append([]string(nil), screen...)
	t.kacc = append([]string(nil), keys...)
	t.kaccOK = keysOK && len(keys) == len(screen)
	t.active = false
	t.typed = 0
	t.s.clearMark()
	t.keysSeq++
	t.pending, t.answered = true, false
}

// keysReading is the key model's reading of the whole line, continued
// lines included.
func (t *Tracker) keysReading() (string, bool) {
	ok := t.kaccOK && t.kmOK
	if !t.active {
		return strings.Join(t.kacc, "\n"), t.kaccOK
	}
	if len(t.kacc) == 0 {
		return string(t.km.buf), ok
	}
	return strings.Join(append(t.kacc[:len(t.kacc):len(t.kacc)], string(t.km.buf)), "\n"), ok
}

// current1 is the screen's reading of the line being typed, without the
// lines joined by Continue.
func (t *Tracker) current1() string {
	if t.s.alt || !t.active {
		return ""
	}
	text, _ := t.current()
	return text
}

// current reads the line from the mark to the last drawn row.
func (t *Tracker) current() (string, string) {
	s := t.s
	rows := s.markRows()
	var notes []string
	if t.early {
		notes = append(notes, "keys were typed before the prompt was drawn")
	}
	if s.offLost {
		notes = append(notes, "the start of the line scrolled out of the tracked history")
	}
	if s.moved {
		notes = append(notes, "the start of the line was scrolled away or deleted")
	}
	if s.cleared {
		notes = append(notes, "the screen was cleared while typing: read from the top")
	}

	// An incremental search (Ctrl-R) overwrites the prompt; the line is what
	// follows its label.
	if len(rows) > 0 {
		full := t.join(rows, 0, false)
		if loc := searchRE.FindStringIndex(full); loc != nil {
			notes = append(notes, "incremental search")
			return full[loc[1]:], strings.Join(notes, "; ")
		}
	}
	// A completion list (Tab Tab) is printed below the line and the prompt
	// and the line are drawn again under it. When the keys typed cannot
	// have put a line break into the line, the last row that starts after
	// a hard break with this line's prompt is that redraw.
	if t.listed && t.simple && strings.TrimSpace(t.prompt) != "" {
		for i := len(rows) - 1; i > 0; i-- {
			prev := rows[i-1]
			if prev.wrapped || (len(prev.c) == s.cols && prev.c[s.cols-1] != 0) {
				continue
			}
			if strings.HasPrefix(rows[i].text(0, len(rows[i].c)), t.prompt) {
				notes = append(notes, "line redrawn below a completion list")
				return t.join(rows[i:], cellsOf(t.prompt), false), strings.Join(notes, "; ")
			}
		}
	}
	return t.join(rows, min(s.mx, s.cols), s.cleared || t.early), strings.Join(notes, "; ")
}

// join reads rows from column from of the first one, soft-wrapped rows
// joined directly and hard line breaks as "\n", and strips a known prompt
// from rows after a hard break (a prompt redrawn below a completion list
// or after Ctrl-C) and, when stripFirst is set, from the first row.
func (t *Tracker) join(rows []*row, from int, stripFirst bool) string {
	s := t.s
	last := -1
	for i, r := range rows {
		f := 0
		if i == 0 {
			f = from
		}
		if !r.blank(f) {
			last = i
		}
	}
	var b strings.Builder
	hard := stripFirst
	for i := 0; i <= last; i++ {
		r := rows[i]
		f := 0
		if i == 0 {
			f = from
		}
		soft := r.wrapped || (len(r.c) == s.cols && r.c[s.cols-1] != 0)
		var txt string
		if soft {
			txt = r.text(f, s.cols)
		} else {
			txt = strings.TrimRight(r.text(f, len(r.c)), " ")
		}
		if hard {
			txt = t.stripPrompt(txt)
		}
		b.WriteString(txt)
		if i < last && !soft {
			b.WriteByte('\n')
		}
		hard = !soft
	}
	return strings.TrimRight(b.String(), " \n")
}

func (t *Tracker) stripPrompt(txt string) string {
	best := ""
	for _, p := range append([]string{t.prompt}, t.known...) {
		if strings.TrimSpace(p) != "" && len(p) > len(best) && strings.HasPrefix(txt, p) {
			best = p
		}
	}
	return txt[len(best):]
}
