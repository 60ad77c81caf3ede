package mask

import (
	"errors"
	"fmt"
	"regexp"
)

// Config says what a Masker masks. The zero value masks nothing.
type Config struct {
	// Cards masks payment card numbers (PANs): 13 to 19 digits passing the
	// Luhn check, written plain ("4111111111111111"), in groups of 3 to 6
	// digits separated by single spaces or dashes ("4111 1111 1111 1111",
	// "3782-822463-10005"; also no-break, narrow and fixed-width spaces, en
	// dashes and Unicode hyphens), with terminal escape sequences and bytes a
	// terminal does not draw (NUL, SI, DEL, U+200B, …) anywhere between the
	// digits. A run of more than 19 consecutive digits is not a card.
	Cards bool
	// Patterns are custom detectors (RE2, linear time), matched within one
	// line of text with escape sequences removed; every byte of a match is
	// replaced by '*'. A match is only seen whole when it lies within the
	// last MaxHold bytes of its line (and whole lines are, when they end
	// before the hold fills up).
	Patterns []*regexp.Regexp
	// KeepLast is how many digits of a card number stay visible at its end:
	// 0 means the default, 4; -1 keeps none; at most 6.
	KeepLast int
	// MaxHold bounds how many bytes Write holds back waiting to see whether
	// they are part of a card number or a match; 0 means the default, 64.
	// It must be at least 32 (a spaced 19-digit number and some colour).
	MaxHold int
	// Binary says the stream is not drawn by a terminal (a tcp forward's
	// content: a protocol, shown as a capture or a hex dump). It has no
	// escape sequences, and only NUL is transparent between digits (text
	// in UTF-16); every other byte but a digit or a card separator ends a
	// run, so a card number that a binary framing puts next to other
	// digits (a length, the next field) is still seen whole; and a card
	// number with one digit of framing before or after it (a length of 48
	// to 57) is masked, that digit not.
	Binary bool
}

// Errors from New.
var (
	// ErrKeepLast is returned for a KeepLast below -1 or above 6.
	ErrKeepLast = errors.New("mask: KeepLast must be -1 (none), 0 (default 4) or 1 to 6")
	// ErrMaxHold is returned for a MaxHold below 32 (other than 0).
	ErrMaxHold = errors.New("mask: MaxHold must be 0 (default 64) or at least 32")
	// ErrNilPattern is returned for a nil entry in Patterns.
	ErrNilPattern = errors.New("mask: nil pattern")
)

const (
	defaultKeep = 4
	defaultHold = 64
	minHold     = 32
	maxDigits   = 19 // longest card number
	minDigits   = 13 // shortest card number
)

// byte kinds in the pending buffer (kept only when there are patterns)
const (
	kText = iota
	kEsc
	kMasked
)

// escape parser states
const (
	eGround = iota
	eEsc
	eEscInter
	eCSI
	eStr    // OSC, DCS, SOS, PM, APC body
	eStrEsc // ESC inside a string: ST or a new sequence
	eU8     // a UTF-8 sequence that may not be drawn (m.seq holds it)
	eC1     // a CSI opened by 0x9b or its UTF-8 form c2 9b (m.seq holds it)
)

// maxC1 bounds the bytes of an 8-bit CSI judged at its end (held until
// then): a longer one is text. It is below minHold, so the hold never
// releases part of one.
const maxC1 = 24

type digit struct {
	v      byte
	off    int64 // stream offset
	hidden bool  // emitted masked
}

// Masker masks a byte stream. It is not safe for concurrent use.
type Masker struct {
	cards   bool
	pats    []*regexp.Regexp
	keep    int
	maxHold int

	pend []byte // bytes not yet emitted
	kind []byte // with patterns: the kind of each pending byte
	base int64  // stream offset of pend[0]
	out  []byte // what Write or Flush returns, reused
	join []byte // what Write returns when it is a clean prefix and out
	slow bool   // tests: no fast path, the reference to compare it with
	bin  bool   // Config.Binary

	// slowTo is the stream offset up to which cleanPrefix looked last: it
	// is not asked again before the state machine gets there. scanned
	// counts the bytes it looked at (tests: it stays linear).
	slowTo  int64
	scanned int64

	es int // escape parser state

	// eU8, eC1: the bytes of the sequence being read, from its first, and
	// the stream offset of that one; digits counts the digits among them.
	seq       []byte
	seqOff    int64
	seqDigits int

	// the current digit run: groups separated by single separators
	inRun  bool
	digits []digit // the run's recent digits
	groups []int   // the run's recent complete groups
	cur    int     // digits in the group being read
	sep    bool    // a separator followed the last group
	long   bool    // the group being read has more than 19 digits
	nrun   int     // digits in the run so far

	lineStart int64 // stream offset where the current line starts
	masked    int
	text      []byte  // scratch: a line's text without escapes
	textOff   []int32 // scratch: pending index of each text byte
}

// New checks cfg and returns a Masker.
func New(cfg Config) (*Masker, error) {
	if err := Check(cfg); err != nil {
		return nil, err
	}
	m := &Masker{cards: cfg.Cards, keep: cfg.KeepLast, maxHold: cfg.MaxHold, bin: cfg.Binary}
	switch cfg.KeepLast {
	case 0:
		m.keep = defaultKeep
	case -1:
		m.keep = 0
	}
	if cfg.MaxHold == 0 {
		m.maxHold = defaultHold
	}
	m.pats = append([]*regexp.Regexp(nil), cfg.Patterns...)
	return m, nil
}

// Check returns the error New would return for cfg, without making a
// Masker: for a caller that makes one only when there is output to mask.
func Check(cfg Config) error {
	if cfg.KeepLast < -1 || cfg.KeepLast > 6 {
		return fmt.Errorf("%w: got %d", ErrKeepLast, cfg.KeepLast)
	}
	if cfg.MaxHold != 0 && cfg.MaxHold < minHold {
		return fmt.Errorf("%w: got %d", ErrMaxHold, cfg.MaxHold)
	}
	for i, p := range cfg.Patterns {
		if p == nil {
			return fmt.Errorf("%w: Patterns[%d]", ErrNilPattern, i)
		}
	}
	return nil
}

// MaskString masks s in one go (a database cell, a stored string) and
// returns the result and how many values it masked. A Config that New
// rejects masks every byte.
func MaskString(cfg Config, s string) (string, int) {
	cfg.MaxHold = max(len(s)+1, minHold)
	m, err := New(cfg)
	if err != nil {
		b := make([]byte, len(s))
		for i := range b {
			b[i] = '*'
		}
		return string(b), 0
	}
	out := append([]byte(nil), m.Write([]byte(s))...)
	out = append(out, m.Flush()...)
	return string(out), m.Masked()
}

// Pending returns how many bytes are held back.
func (m *Masker) Pending() int { return len(m.pend) }

// Masked returns how many values (card numbers, pattern matches) were masked
// so far.
func (m *Masker) Masked() int { return m.masked }

// Write masks p and returns the bytes that are safe to emit now. It may hold
// back a tail (at most MaxHold bytes) that could still turn out to be part
// of a card number or a match. The returned slice is valid until the next
// Write or Flush, and may be p itself (when nothing in it changes or is
// held): the caller must not change p before it is done with the result.
func (m *Masker) Write(p []byte) []byte {
	m.reuse(len(p))
	if len(p) == 0 {
		return nil
	}
	var clean []byte
	if len(m.pend) == 0 && m.es == eGround && m.fast() {
		// Nothing held: the clean prefix goes out as it is, without
		// passing through the pending buffer.
		end := len(p)
		if !m.bin {
			sf := newSpecialFinder()
			end = sf.next(p, 0)
		}
		j, seen := cleanPrefix(p, 0, end, m.bin)
		m.scanned += int64(seen)
		m.slowTo = m.base + int64(seen)
		m.base += int64(j)
		if j == len(p) {
			return p
		}
		clean, p = p[:j], p[j:]
	}
	start := len(m.pend)
	m.pend = append(m.pend, p...)
	if m.pats != nil {
		for range p {
			m.kind = append(m.kind, kText)
		}
	}
	m.scan(start)
	m.release(false)
	switch {
	case len(clean) == 0:
		return m.out
	case len(m.out) == 0:
		return clean // the rest is held (a run at the end, most often)
	}
	m.join = append(append(m.join[:0], clean...), m.out...)
	return m.join
}

// Flush decides on everything held back and returns it. The caller calls it
// after a short quiet period and at the end of the stream. Digits that come
// later are still judged together with the ones flushed: if they complete a
// card number, what is left of it is masked, the last digits included. The
// returned slice is valid until the next Write or Flush.
func (m *Masker) Flush() []byte {
	m.reuse(0)
	if m.cards && m.inRun && m.cur > 0 && !m.long {
		m.groups = append(m.groups, m.cur)
		m.evaluate()
		m.groups = m.groups[:len(m.groups)-1]
	}
	if m.pats != nil {
		m.matchLine(len(m.pend))
	}
	m.release(true)
	return m.out
}

// reuse empties the output buffer for a call with n input bytes, and lets
// large buffers go when the stream has gone quiet (a write much smaller
// than them), so an idle session does not keep what a burst needed.
func (m *Masker) reuse(n int) {
	const large, quiet = 64 << 10, 4 << 10
	if n < quiet {
		if cap(m.out) > large {
			m.out = nil
		}
		if cap(m.join) > large {
			m.join = nil
		}
		if cap(m.pend) > large && len(m.pend) < quiet {
			m.pend = append([]byte(nil), m.pend...)
			if m.pats != nil {
				m.kind = append([]byte(nil), m.kind...)
			}
		}
	}
	m.out = m.out[:0]
}

// fast reports whether the fast path may run: outside a run of digits and
// without patterns (which see every byte of a line).
func (m *Masker) fast() bool {
	return !m.inRun && !m.long && m.pats == nil && !m.slow
}

func isDigit(b byte) bool { return b-'0' < 10 }

// scan classifies the pending bytes from index i on.
func (m *Masker) scan(i int) {
	p := m.pend
	if m.bin {
		m.scanBinary(i)
		return
	}
	sf := newSpecialFinder()
	for i < len(p) {
		if m.es == eGround {
			if m.fast() {
				// Fast path: skip what cannot be part of a number.
				if m.base+int64(i) >= m.slowTo {
					from := i
					var seen int
					i, seen = cleanPrefix(p, i, sf.next(p, i), false)
					m.scanned += int64(seen - from)
					m.slowTo = m.base + int64(seen)
					if i == len(p) {
						return
					}
				}
			}
			switch b := p[i]; {
			case b == 0x1b:
				m.es = eEsc
				m.setKind(i, kEsc)
			case special[b]:
				m.ground(b, i)
			default:
				m.textByte(b, i)
			}
			i++
			continue
		}
		b := p[i]
		switch m.es {
		case eU8:
			if !m.u8Byte(b, i) {
				continue // the same byte again, in the ground state
			}
		case eC1:
			if !m.c1Byte(b, i) {
				continue
			}
		case eEsc:
			switch {
			case b == '[':
				m.es = eCSI
			case b == ']' || b == 'P' || b == 'X' || b == '^' || b == '_':
				m.es = eStr
			case b >= 0x20 && b <= 0x2f:
				m.es = eEscInter
			case b == 0x1b:
			case b < 0x20 || b >= 0x80:
				if m.ctlInSeq(b, i) {
					i++
				}
				continue
			default:
				m.es = eGround
			}
			m.setKind(i, kEsc)
		case eEscInter:
			switch {
			case b >= 0x20 && b <= 0x2f:
			case b == 0x1b:
				m.es = eEsc
			case b < 0x20 || b >= 0x80:
				if m.ctlInSeq(b, i) {
					i++
				}
				continue
			default:
				m.es = eGround
			}
			m.setKind(i, kEsc)
		case eCSI:
			switch {
			case b >= 0x20 && b <= 0x3f, b == 0x7f:
			case b >= 0x40 && b <= 0x7e:
				m.es = eGround
			case b == 0x1b:
				m.es = eEsc
			default:
				if m.ctlInSeq(b, i) {
					i++
				}
				continue
			}
			m.setKind(i, kEsc)
		case eStr:
			switch b {
			case 0x07:
				m.es = eGround
			case 0x1b:
				m.es = eStrEsc
			case 0x18, 0x1a:
				m.es = eGround
			}
			m.setKind(i, kEsc)
		case eStrEsc:
			if b == '\\' {
				m.es = eGround
				m.setKind(i, kEsc)
			} else {
				m.es = eEsc
				continue // the same byte again, as the start of a new sequence
			}
		}
		i++
	}
}

// scanBinary is scan for a stream no terminal draws: no escape sequences,
// and NUL the only byte transparent between digits.
func (m *Masker) scanBinary(i int) {
	p := m.pend
	for i < len(p) {
		if m.fast() && m.base+int64(i) >= m.slowTo {
			from := i
			var seen int
			i, seen = cleanPrefix(p, i, len(p), true)
			m.scanned += int64(seen - from)
			m.slowTo = m.base + int64(seen)
			if i == len(p) {
				return
			}
		}
		if p[i] == 0 {
			m.setKind(i, kEsc)
		} else {
			m.textByte(p[i], i)
		}
		i++
	}
}

// ctlInSeq handles a byte that cannot continue an escape sequence: a control
// character acts on its own (and leaves the sequence going, as terminals
// do, except CAN and SUB, which end it); a byte >= 0x80 ends the sequence
// and is read again in the ground state (it may begin an 8-bit CSI or a
// character that is not drawn). It reports whether it consumed b.
func (m *Masker) ctlInSeq(b byte, i int) bool {
	if b >= 0x80 {
		m.es = eGround
		return false
	}
	if b == 0x18 || b == 0x1a {
		m.es = eGround
	}
	m.textByte(b, i)
	return true
}

// setKind sets the kind of pending byte i, if it is still pending.
func (m *Masker) setKind(i int, k byte) {
	if m.pats != nil && i >= 0 {
		m.kind[i] = k
	}
}

// invisible says which single bytes a terminal neither draws nor moves the
// cursor for: the C0 controls other than BS, HT, LF, VT, FF, CR (and ESC,
// which begins a sequence), and DEL. They are transparent like escape
// sequences: digits on either side of them are one number.
var invisible = [256]bool{
	0x00: true, 0x01: true, 0x02: true, 0x03: true, 0x04: true, 0x05: true, 0x06: true, 0x07: true,
	0x0e: true, 0x0f: true, 0x10: true, 0x11: true, 0x12: true, 0x13: true, 0x14: true, 0x15: true,
	0x16: true, 0x17: true, 0x18: true, 0x19: true, 0x1a: true, 0x1c: true, 0x1d: true, 0x1e: true,
	0x1f: true, 0x7f: true,
}

// ground handles byte i, b, in the ground state.
func (m *Masker) ground(b byte, i int) {
	switch b {
	case 0x1b:
		m.es = eEsc
		m.setKind(i, kEsc)
	case 0x9b, 0xc2, 0xe2, 0xef:
		// An 8-bit CSI, or the first byte of a character that may not be
		// drawn: judged once its bytes are in.
		m.es = eU8
		if b == 0x9b {
			m.es = eC1
		}
		m.seq = append(m.seq[:0], b)
		m.seqOff = m.base + int64(i)
		m.seqDigits = 0
	default:
		m.textByte(b, i) // invisible
	}
}

// u8 results: what the bytes read so far of a UTF-8 sequence are.
const (
	u8Text = iota // drawn (or not one of those below)
	u8More        // a prefix of one of those below
	u8None        // a format character that is not drawn
	u8Sep         // drawn as a space or a hyphen (U+00AD soft hyphen, U+00A0 no-break space, …)
	u8CSI         // U+009B, CSI
)

// u8Class classifies seq, the bytes of a UTF-8 sequence read so far. The
// characters terminals do not draw (zero width, format): U+200B to U+200F
// (zero-width space, non-joiner, joiner, direction marks), U+202A to
// U+202E and U+2066 to U+2069 (direction embeddings and isolates), U+2060
// to U+2064 (word joiner, invisible operators) and U+FEFF (zero-width
// no-break space, byte order mark). The separators, drawn as a blank or a dash that
// text puts between digit groups as it does ' ' and '-' (a no-break space or a narrow
// one from a locale's number format or a document, a word processor's en dash): U+00A0,
// U+00AD (soft hyphen), U+2000 to U+200A (spaces of fixed widths: figure, thin, hair
// space), U+2010 to U+2013 (hyphens, figure and en dash), U+202F (narrow no-break space) and
// U+205F (medium mathematical space).
func u8Class(seq []byte) int {
	switch len(seq) {
	case 2:
		switch {
		case seq[0] == 0xc2 && seq[1] == 0x9b:
			return u8CSI
		case seq[0] == 0xc2 && (seq[1] == 0xad || seq[1] == 0xa0):
			return u8Sep
		case seq[0] == 0xe2 && (seq[1] == 0x80 || seq[1] == 0x81), seq[0] == 0xef && seq[1] == 0xbb:
			return u8More
		}
	case 3:
		c := seq[2]
		switch {
		case seq[0] != 0xe2:
			if seq[1] == 0xbb && c == 0xbf {
				return u8None
			}
		case seq[1] == 0x80 && (c >= 0x8b && c <= 0x8f || c >= 0xaa && c <= 0xae),
			seq[1] == 0x81 && (c >= 0xa0 && c <= 0xa4 || c >= 0xa6 && c <= 0xa9):
			return u8None
		case seq[1] == 0x80 && (c >= 0x80 && c <= 0x8a || c >= 0x90 && c <= 0x93 || c == 0xaf),
			seq[1] == 0x81 && c == 0x9f:
			return u8Sep
		}
	}
	return u8Text
}

// u8Byte handles byte i, b, of a UTF-8 sequence that may not be drawn. It
// reports whether it consumed b; if not, b is read again in the ground
// state.
func (m *Masker) u8Byte(b byte, i int) bool {
	m.seq = append(m.seq, b)
	switch u8Class(m.seq) {
	case u8More:
		return true
	case u8None:
		m.seqKind(kEsc)
		m.es = eGround
		return true
	case u8Sep:
		m.es = eGround
		if m.cards {
			m.cardByte('-', m.base+int64(i))
		}
		return true
	case u8CSI:
		m.es = eC1
		return true
	}
	// Drawn: the bytes before b are text, and b starts anew.
	m.seq = m.seq[:len(m.seq)-1]
	m.es = eGround
	m.seqText(0)
	return false
}

// c1Byte handles byte i, b, of an 8-bit CSI (0x9b or c2 9b). Where it is a
// CSI the sequence is not drawn, and transparent like a 7-bit one; but a
// raw 0x9b is not valid UTF-8 and most terminals draw it (as U+FFFD) and
// the bytes after it, and some terminals ignore c2 9b and draw the bytes
// after it. So a sequence whose parameters hold 13 digits or more, or
// that is longer than maxC1 bytes, is taken as text: if its digits make
// a card number, they are masked. c1Byte reports whether it consumed b.
func (m *Masker) c1Byte(b byte, i int) bool {
	switch {
	case b >= 0x20 && b <= 0x3f, b == 0x7f:
		m.seq = append(m.seq, b)
		if isDigit(b) {
			m.seqDigits++
		}
		if len(m.seq) > maxC1 {
			m.es = eGround
			m.seqText(m.c1Drawn())
		}
		return true
	case b >= 0x40 && b <= 0x7e:
		m.seq = append(m.seq, b)
		m.es = eGround
		if m.seqDigits >= minDigits {
			m.seqText(m.c1Drawn())
		} else {
			m.seqKind(kEsc)
		}
		return true
	}
	// A byte that cannot go on: the sequence ends unfinished, and b is read
	// again in the ground state.
	m.es = eGround
	if m.seqDigits >= minDigits {
		m.seqText(m.c1Drawn())
	} else {
		m.seqKind(kEsc)
	}
	return false
}

// c1Drawn is where the bytes of the 8-bit CSI in m.seq begin that a
// terminal draws when it does not take the sequence as one: at a raw 0x9b
// (drawn as U+FFFD), after c2 9b (U+009B is not drawn).
func (m *Masker) c1Drawn() int {
	if m.seq[0] == 0x9b {
		return 0
	}
	return 2
}

// seqKind sets the kind of the bytes of m.seq still pending.
func (m *Masker) seqKind(k byte) {
	for n := range m.seq {
		m.setKind(int(m.seqOff-m.base)+n, k)
	}
}

// seqText handles the bytes of m.seq from index from on as text; those
// before from are not drawn.
func (m *Masker) seqText(from int) {
	m.seqKind(kEsc)
	for n := from; n < len(m.seq); n++ {
		j := int(m.seqOff-m.base) + n
		m.setKind(j, kText)
		m.textByte(m.seq[n], j)
	}
}

// textByte handles byte i of text (not part of an escape sequence); i may
// be negative for a byte already released (of a sequence judged late).
func (m *Masker) textByte(b byte, i int) {
	if (b < 0x20 || b == 0x7f) && !m.bin {
		if invisible[b] {
			m.setKind(i, kEsc)
			return
		}
	}
	off := m.base + int64(i)
	if m.cards {
		m.cardByte(b, off)
	}
	if m.pats != nil && b == '\n' {
		m.matchLine(i + 1)
		m.lineStart = off + 1
	}
}

func (m *Masker) cardByte(b byte, off int64) {
	switch {
	case isDigit(b):
		if m.long {
			return
		}
		if m.cur == 0 && !(m.inRun && m.sep) {
			m.endRun()
			m.inRun = true
		}
		m.sep = false
		m.cur++
		if m.cur > maxDigits {
			// Part of a longer run of digits: none of it is a card.
			m.endRun()
			m.long = true
			return
		}
		if len(m.digits) >= 4*maxDigits {
			n := copy(m.digits, m.digits[len(m.digits)-2*maxDigits:])
			m.digits = m.digits[:n]
		}
		m.digits = append(m.digits, digit{v: b - '0', off: off})
		m.nrun++
	case (b == ' ' || b == '-') && m.inRun && m.cur > 0:
		m.endGroup()
		m.sep = true
	default:
		if m.inRun && m.cur > 0 {
			m.endGroup()
		}
		m.endRun()
		m.long = false
	}
}

func (m *Masker) endGroup() {
	if len(m.groups) >= 4*maxDigits {
		n := copy(m.groups, m.groups[len(m.groups)-2*maxDigits:])
		m.groups = m.groups[:n]
	}
	m.groups = append(m.groups, m.cur)
	m.cur = 0
	m.evaluate()
}

func (m *Masker) endRun() {
	m.inRun, m.sep, m.cur, m.nrun = false, false, 0, 0
	m.digits, m.groups = m.digits[:0], m.groups[:0]
}

// evaluate checks every window of whole groups that ends with the last
// group and masks those that are card numbers. Going backwards from the
// last digit, the Luhn sum of each longer window extends the previous one.
//
// In binary mode the windows that leave out the run's last digit are
// checked too: a field's framing is often a digit right after it (a MySQL
// row's next packet length, a PostgreSQL DataRow's next column length
// after NULs, 48 to 57), which would otherwise hide a card in the last
// column or before a 48 to 57 byte one.
func (m *Masker) evaluate() {
	m.windows(0)
	if m.bin && m.groups[len(m.groups)-1] > 1 {
		m.windows(1)
	}
}

// windows is evaluate for the windows that end drop digits before the
// run's last digit (drop is less than the last group).
func (m *Masker) windows(drop int) {
	if m.nrun-drop < minDigits {
		return
	}
	n := len(m.digits) - drop
	sum, k := 0, 0
	multiOK := true
	// In binary mode a plain run may also begin with a digit of framing
	// (a field's length before it): the window without its first digit.
	lead := m.bin && len(m.groups) == 1
	for gi := len(m.groups) - 1; gi >= 0; gi-- {
		g := m.groups[gi]
		if gi == len(m.groups)-1 {
			g -= drop
		}
		if k+g > maxDigits || k+g > n {
			return
		}
		for j := range g {
			d := int(m.digits[n-1-k].v)
			if k%2 == 1 {
				d *= 2
				if d > 9 {
					d -= 9
				}
			}
			sum += d
			k++
			if lead && j == g-2 && k >= minDigits && sum%10 == 0 {
				m.maskWindow(n-k, n)
			}
		}

		single := gi == len(m.groups)-1
		if g < 3 || g > 6 {
			multiOK = false
		}
		if k >= minDigits && sum%10 == 0 && (single || multiOK) {
			m.maskWindow(n-k, n)
		}
		if !multiOK {
			return
		}
	}
}

// maskWindow masks the digits [from, to) of the run but the last KeepLast.
// If some of them were already emitted (a Flush or a full hold released
// them before the number was complete), the rest is masked whole, so the
// output never holds every digit of the number.
func (m *Masker) maskWindow(from, to int) {
	keepFrom := to - m.keep
	for i := from; i < keepFrom; i++ {
		if m.digits[i].off < m.base && !m.wasMasked(i) {
			keepFrom = to
			break
		}
	}
	hit := false
	for i := from; i < keepFrom; i++ {
		if j := m.digits[i].off - m.base; j >= 0 && m.pend[j] != '*' {
			m.pend[j] = '*'
			if m.pats != nil {
				m.kind[j] = kMasked
			}
			hit = true
		}
	}
	if hit {
		m.masked++
	}
}

// wasMasked reports whether digit i of the run went out masked.
func (m *Masker) wasMasked(i int) bool { return m.digits[i].hidden }

// matchLine runs the patterns over the pending text from the current line's
// start up to pending index end, and masks every match.
func (m *Masker) matchLine(end int) {
	from := int(max(m.lineStart-m.base, 0))
	m.text, m.textOff = m.text[:0], m.textOff[:0]
	for i := from; i < end; i++ {
		if m.kind[i] != kEsc {
			m.text = append(m.text, m.pend[i])
			m.textOff = append(m.textOff, int32(i))
		}
	}
	if len(m.text) == 0 {
		return
	}
	for _, re := range m.pats {
		for _, loc := range re.FindAllIndex(m.text, -1) {
			hit := false
			for t := loc[0]; t < loc[1]; t++ {
				j := m.textOff[t]
				if m.kind[j] != kMasked {
					m.pend[j], m.kind[j] = '*', kMasked
					hit = true
				}
			}
			if hit {
				m.masked++
			}
		}
	}
}

// release moves the bytes that can no longer change to the output.
func (m *Masker) release(all bool) {
	safe := len(m.pend)
	if !all {
		if m.cards && m.inRun && len(m.digits) > 0 {
			h := m.digits[max(len(m.digits)-maxDigits, 0)].off - m.base
			safe = min(safe, int(max(h, 0)))
		}
		if m.pats != nil {
			safe = min(safe, int(max(m.lineStart-m.base, 0)))
		}
		if m.es == eU8 || m.es == eC1 {
			// Not judged yet; held whole (at most maxC1+1 < minHold bytes).
			safe = min(safe, int(max(m.seqOff-m.base, 0)))
		}
		if len(m.pend)-safe > m.maxHold {
			if m.pats != nil {
				m.matchLine(len(m.pend))
			}
			safe = len(m.pend) - m.maxHold
		}
	}
	if safe == 0 {
		return
	}
	// Remember which emitted digits went out masked.
	for i := range m.digits {
		if j := m.digits[i].off - m.base; j >= 0 && j < int64(safe) && m.pend[j] == '*' {
			m.digits[i].hidden = true
		}
	}
	m.out = append(m.out, m.pend[:safe]...)
	n := copy(m.pend, m.pend[safe:])
	m.pend = m.pend[:n]
	if m.pats != nil {
		copy(m.kind, m.kind[safe:])
		m.kind = m.kind[:n]
	}
	m.base += int64(safe)
}
