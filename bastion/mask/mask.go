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
	// "3782-822463-10005"), with terminal escape sequences anywhere between
	// the digits. A run of more than 19 consecutive digits is not a card.
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
)

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

	es int // escape parser state

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
	m := &Masker{cards: cfg.Cards, keep: cfg.KeepLast, maxHold: cfg.MaxHold}
	switch {
	case cfg.KeepLast == 0:
		m.keep = defaultKeep
	case cfg.KeepLast == -1:
		m.keep = 0
	case cfg.KeepLast < -1 || cfg.KeepLast > 6:
		return nil, fmt.Errorf("%w: got %d", ErrKeepLast, cfg.KeepLast)
	}
	switch {
	case cfg.MaxHold == 0:
		m.maxHold = defaultHold
	case cfg.MaxHold < minHold:
		return nil, fmt.Errorf("%w: got %d", ErrMaxHold, cfg.MaxHold)
	}
	for i, p := range cfg.Patterns {
		if p == nil {
			return nil, fmt.Errorf("%w: Patterns[%d]", ErrNilPattern, i)
		}
	}
	m.pats = append([]*regexp.Regexp(nil), cfg.Patterns...)
	return m, nil
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
		j := cleanPrefix(p, 0, indexEsc(p, 0))
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
	esc := -1 // the next ESC at or after i, once looked for
	for i < len(p) {
		if m.es == eGround {
			if m.fast() {
				// Fast path: skip what cannot be part of a number.
				if esc < i {
					esc = indexEsc(p, i)
				}
				if i = cleanPrefix(p, i, esc); i == len(p) {
					return
				}
			}
			b := p[i]
			if b == 0x1b {
				m.es = eEsc
				m.setKind(i, kEsc)
			} else {
				m.textByte(b, i)
			}
			i++
			continue
		}
		b := p[i]
		switch m.es {
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
				m.ctlInSeq(b, i)
				i++
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
				m.ctlInSeq(b, i)
				i++
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
				m.ctlInSeq(b, i)
				i++
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

// ctlInSeq handles a byte that cannot continue an escape sequence: a control
// character acts on its own (and leaves the sequence going, as terminals
// do, except CAN and SUB, which end it); a byte >= 0x80 ends the sequence
// and is text.
func (m *Masker) ctlInSeq(b byte, i int) {
	if b >= 0x80 || b == 0x18 || b == 0x1a {
		m.es = eGround
	}
	m.textByte(b, i)
}

func (m *Masker) setKind(i int, k byte) {
	if m.pats != nil {
		m.kind[i] = k
	}
}

// textByte handles a byte of text (not part of an escape sequence).
func (m *Masker) textByte(b byte, i int) {
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
func (m *Masker) evaluate() {
	if m.nrun < minDigits {
		return
	}
	n := len(m.digits)
	sum, k := 0, 0
	multiOK := true
	for gi := len(m.groups) - 1; gi >= 0; gi-- {
		g := m.groups[gi]
		if k+g > maxDigits || k+g > n {
			return
		}
		for range g {
			d := int(m.digits[n-1-k].v)
			if k%2 == 1 {
				d *= 2
				if d > 9 {
					d -= 9
				}
			}
			sum += d
			k++
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
