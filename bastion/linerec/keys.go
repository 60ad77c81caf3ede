package linerec

import "unicode/utf8"

// key token kinds
const (
	kRune     = iota // a printable character
	kCtrl            // a C0 control byte or DEL
	kSeq             // a CSI or SS3 key sequence (arrows, Home, Delete ...)
	kMeta            // ESC followed by one byte (Alt-key)
	kPasteOn         // ESC [ 200 ~
	kPasteOff        // ESC [ 201 ~
)

type keyTok struct {
	kind  int
	r     rune // kRune: the character; kCtrl, kMeta: the byte; kSeq: the final byte
	p0    int  // kSeq: the first parameter (0 when missing)
	ss3   bool // kSeq: ESC O rather than ESC [
	paste bool // the token is inside a bracketed paste
	edit  bool // a key editKeyName names
	end   int  // offset just past the token's last byte in the chunk
	// start is the offset of the token's first byte in the chunk (0 when
	// it began in an earlier chunk), for kRune tokens of bytes >= 0x80.
	start int
	// meta8 is the 7-bit key a byte of a kRune token stands for where
	// readline reads a byte with the eighth bit set as Meta (convert-meta,
	// bash in the C locale), when that key is one editKeyName names
	// (0x85 is Alt-Ctrl-E, 0xa3 Alt-#); 0 otherwise.
	meta8 byte
	// arg8: a byte of a kRune token is an eight-bit Meta digit or minus
	// (a numeric argument where readline reads such bytes as Meta).
	arg8 bool
	// quoted: the key came right after Ctrl-V or Ctrl-Q (quoted-insert),
	// which makes the shell put it into the line as a character.
	quoted bool
}

// keyScanner splits user input into key tokens. Its state carries over from
// one chunk to the next, so a sequence split across reads is still one key.
type keyScanner struct {
	st     int // 0 ground, 1 ESC, 2 CSI, 3 SS3, 4 UTF-8
	p0     int
	np     int
	u      [4]byte
	un     int
	uneed  int
	ustart int // offset of the first byte of the UTF-8 sequence in the chunk
	paste  bool
	// quote: the last key was Ctrl-V or Ctrl-Q (quoted-insert): the next
	// one is a character, an ESC included (not the start of a sequence).
	quote bool
}

// meta8Of returns the key that one of the bytes b stands for as an
// eight-bit Meta key, when editKeyName names it; 0 otherwise.
func arg8Of(b []byte) bool {
	for _, c := range b {
		if c >= 0xb0 && c <= 0xb9 || c == 0xad {
			return true
		}
	}
	return false
}

func meta8Of(b []byte) byte {
	for _, c := range b {
		if c >= 0x80 && (c&0x7f == 0x05 || c&0x7f == '#') {
			return c & 0x7f
		}
	}
	return 0
}

func (k *keyScanner) scan(p []byte, emit0 func(keyTok)) {
	emit := func(t keyTok) {
		t.quoted = k.quote && !t.paste
		k.quote = !t.paste && !t.quoted && t.kind == kCtrl && (t.r == 0x16 || t.r == 0x11)
		emit0(t)
	}
	if k.st == 4 {
		k.ustart = 0 // the sequence began in an earlier chunk
	}
	for i, b := range p {
		end := i + 1
		switch k.st {
		case 4:
			if b&0xc0 == 0x80 {
				k.u[k.un] = b
				k.un++
				if k.un == k.uneed {
					r, _ := utf8.DecodeRune(k.u[:k.un])
					emit(keyTok{kind: kRune, r: r, paste: k.paste, end: end, start: k.ustart, meta8: meta8Of(k.u[:k.un]), arg8: arg8Of(k.u[:k.un])})
					k.st = 0
				}
				continue
			}
			emit(keyTok{kind: kRune, r: utf8.RuneError, paste: k.paste, end: i, start: k.ustart, meta8: meta8Of(k.u[:k.un]), arg8: arg8Of(k.u[:k.un])})
			k.st = 0
		case 1:
			switch b {
			case '[':
				k.st, k.p0, k.np = 2, 0, 0
			case 'O':
				k.st = 3
			case 0x1b:
				emit(keyTok{kind: kCtrl, r: 0x1b, paste: k.paste, end: i})
			default:
				emit(keyTok{kind: kMeta, r: rune(b), paste: k.paste, end: end})
				k.st = 0
			}
			continue
		case 2:
			switch {
			case b >= '0' && b <= '9':
				if k.np == 0 {
					k.p0 = min(k.p0*10+int(b-'0'), maxParam)
				}
			case b == ';':
				k.np++
			case b >= 0x40 && b <= 0x7e:
				k.st = 0
				switch {
				case b == '~' && k.p0 == 200:
					k.paste = true
					emit(keyTok{kind: kPasteOn, paste: true, end: end})
				case b == '~' && k.p0 == 201:
					emit(keyTok{kind: kPasteOff, paste: true, end: end})
					k.paste = false
				default:
					emit(keyTok{kind: kSeq, r: rune(b), p0: k.p0, paste: k.paste, end: end})
				}
			case b < 0x20:
				k.st = 0 // a control byte aborts the sequence and is a key itself
				emit(keyTok{kind: kCtrl, r: rune(b), paste: k.paste, end: end})
			}
			continue
		case 3:
			k.st = 0
			emit(keyTok{kind: kSeq, r: rune(b), ss3: true, paste: k.paste, end: end})
			continue
		}
		switch {
		case b == 0x1b && k.quote && !k.paste:
			// readline's quoted-insert takes the ESC alone: what follows
			// is text, not a key sequence (nor a paste's start).
			emit(keyTok{kind: kCtrl, r: 0x1b, end: end})
		case b == 0x1b:
			k.st = 1
		case b < 0x20 || b == 0x7f:
			emit(keyTok{kind: kCtrl, r: rune(b), paste: k.paste, end: end})
		case b < 0x80:
			emit(keyTok{kind: kRune, r: rune(b), paste: k.paste, end: end})
		default:
			k.u[0], k.un, k.ustart = b, 1, i
			switch {
			case b&0xe0 == 0xc0:
				k.uneed = 2
			case b&0xf0 == 0xe0:
				k.uneed = 3
			case b&0xf8 == 0xf0:
				k.uneed = 4
			default:
				emit(keyTok{kind: kRune, r: utf8.RuneError, paste: k.paste, end: end, start: i, meta8: meta8Of(p[i:end]), arg8: arg8Of(p[i:end])})
				continue
			}
			k.st = 4
		}
	}
}

// lineModel replays keys over a line buffer the way readline's default
// (emacs) bindings would, for the keys whose effect does not depend on the
// shell's state: printable text, Backspace, Delete, Ctrl-A/B/D/E/F/K/U/W,
// the arrows Left/Right, Home and End. Other keys (history, completion,
// search, Alt-keys) are dropped: the model cannot know what they do.
type lineModel struct {
	buf []rune
	cur int
	// moved: the cursor left the end of the line, so the line is not
	// built at its end alone (see Line.KeysMoved).
	moved bool
}

func (m *lineModel) clone() lineModel {
	return lineModel{buf: append([]rune(nil), m.buf...), cur: m.cur, moved: m.moved}
}

func (m *lineModel) insert(r rune) {
	m.buf = append(m.buf, 0)
	copy(m.buf[m.cur+1:], m.buf[m.cur:])
	m.buf[m.cur] = r
	m.cur++
}

func (m *lineModel) cut(from, to int) {
	m.buf = append(m.buf[:from], m.buf[to:]...)
	m.cur = from
}

func (m *lineModel) key(k keyTok) {
	defer func() {
		if m.cur != len(m.buf) {
			m.moved = true
		}
	}()
	if k.paste {
		if k.kind == kRune {
			m.insert(k.r)
		} else if k.kind == kCtrl && k.r == '\t' {
			m.insert('\t')
		}
		return
	}
	switch k.kind {
	case kRune:
		m.insert(k.r)
	case kCtrl:
		switch k.r {
		case 0x7f, '\b':
			if m.cur > 0 {
				m.cut(m.cur-1, m.cur)
			}
		case 0x04:
			if m.cur < len(m.buf) {
				m.buf = append(m.buf[:m.cur], m.buf[m.cur+1:]...)
			}
		case 0x01:
			m.cur = 0
		case 0x05:
			m.cur = len(m.buf)
		case 0x02:
			m.cur = max(m.cur-1, 0)
		case 0x06:
			m.cur = min(m.cur+1, len(m.buf))
		case 0x0b:
			m.buf = m.buf[:m.cur]
		case 0x15:
			m.cut(0, m.cur)
		case 0x17:
			i := m.cur
			for i > 0 && isBlank(m.buf[i-1]) {
				i--
			}
			for i > 0 && !isBlank(m.buf[i-1]) {
				i--
			}
			m.cut(i, m.cur)
		}
	case kSeq:
		switch {
		case k.r == 'D':
			m.cur = max(m.cur-1, 0)
		case k.r == 'C':
			m.cur = min(m.cur+1, len(m.buf))
		case k.r == 'H' || (k.r == '~' && (k.p0 == 1 || k.p0 == 7)):
			m.cur = 0
		case k.r == 'F' || (k.r == '~' && (k.p0 == 4 || k.p0 == 8)):
			m.cur = len(m.buf)
		case k.r == '~' && k.p0 == 3:
			if m.cur < len(m.buf) {
				m.buf = append(m.buf[:m.cur], m.buf[m.cur+1:]...)
			}
		}
	}
}

func isBlank(r rune) bool { return r == ' ' || r == '\t' }

// isSubmit reports whether bash's readline would accept the line on this key:
// Enter (CR), Ctrl-J (LF) and Ctrl-O (operate-and-get-next). A CR or LF after
// ESC counts too: if the shell ignores it, the line is judged early, which
// is the safe way to be wrong. So do the Alt-keys with which zsh's line
// editor runs the line (Alt-a, Alt-x, Alt-z).
func isSubmit(k keyTok, bracketed bool) bool {
	if k.paste && bracketed {
		return false
	}
	if k.edit {
		return true
	}
	switch k.kind {
	case kCtrl:
		return k.r == '\r' || k.r == '\n' || k.r == 0x0f
	case kMeta:
		switch k.r {
		case '\r', '\n':
			return true
		case 'a', 'A', 'x', 'X', 'z', 'Z':
			// zsh's line editor: Alt-a is accept-and-hold, which runs
			// the line and keeps it; Alt-x reads a widget's name to run
			// (accept-and-hold, say), Alt-z runs the last one named
			// again. bash binds none of them.
			return true
		}
	}
	return false
}

// Segment.EditKey of the keys whose effect the line shows: what they run
// is the line's own code (Alt-Ctrl-E, shell-expand-line, runs its
// substitutions; Alt-#, insert-comment, runs it commented or uncommented),
// so the caller judges the line.
const (
	KeyExpandLine = "Alt-Ctrl-E (the shell runs the line's substitutions to expand it)"
	KeyComment    = "Alt-# (the shell toggles the line's comment and runs it)"
)

// KeyQuoted names Enter, Ctrl-J or Ctrl-O typed right after Ctrl-V or
// Ctrl-Q: readline's quoted-insert puts it into the line as a character
// (a CR or a Ctrl-O is part of a word there, and a # after it starts no
// comment), while a shell that binds Ctrl-V otherwise (fish pastes), or a
// terminal that takes Ctrl-Q for flow control, runs the line. Neither the
// line so far nor the one after it alone is what runs.
const KeyQuoted = "Ctrl-V or Ctrl-Q then Enter, Ctrl-J or Ctrl-O (the key goes into the line as a character, or runs it)"

// editKeyName names a key, in readline's default emacs bindings, that makes
// bash run something other than the line as the echo shows it, without
// Enter: what an editor saves (Ctrl-X Ctrl-E), key bindings re-read
// (Ctrl-X Ctrl-R), a keyboard macro replayed (Ctrl-X e: it may hold an
// Enter recorded over another line), the line's own substitutions run to
// expand it in place (Alt-Ctrl-E, shell-expand-line), or the line accepted
// with its comment character toggled (Alt-#, insert-comment: with a numeric
// argument it uncomments the line and runs it). ctlx is whether the key
// before was Ctrl-X. It returns "" for any other key.
func editKeyName(ctlx bool, k keyTok) string {
	if k.paste {
		return ""
	}
	switch {
	case k.quoted && k.kind == kCtrl && (k.r == '\r' || k.r == '\n' || k.r == 0x0f):
		return KeyQuoted
	case ctlx && k.kind == kCtrl && k.r == 0x05:
		return "Ctrl-X Ctrl-E (the shell runs what is saved in an editor)"
	case ctlx && k.kind == kCtrl && k.r == 0x12:
		return "Ctrl-X Ctrl-R (the shell re-reads its key bindings)"
	case ctlx && k.kind == kRune && k.r == 'e':
		return "Ctrl-X e (the shell replays a keyboard macro, which may submit a line)"
	case k.kind == kMeta && k.r == 0x05, k.kind == kRune && k.meta8 == 0x05:
		return KeyExpandLine
	case k.kind == kMeta && k.r == '#', k.kind == kRune && k.meta8 == '#':
		return KeyComment
	}
	return ""
}

// isPasteNewline reports a line break that a bracketed paste inserts into
// the line without submitting it.
func isPasteNewline(k keyTok, bracketed bool) bool {
	return k.paste && bracketed && k.kind == kCtrl && (k.r == '\r' || k.r == '\n')
}
