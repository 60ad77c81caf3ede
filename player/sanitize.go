package player

import (
	"io"
	"unicode/utf8"
)

// Bounds on how much of one escape sequence the Sanitizer will consume before it
// gives up on the sequence and goes back to showing bytes as text. They keep memory
// constant and limit how much session output one unterminated sequence can hide
// from an auditor.
const (
	// maxString bounds the payload of an OSC, DCS, SOS, PM or APC string. Strings are
	// never buffered (none is passed through), so this limits hiding, not memory.
	maxString = 4096
	// maxCSI bounds a control sequence (ESC [ ... final), which is buffered so that
	// it can be checked against the allowlist before any of it is written.
	maxCSI = 256
	// maxRepeat bounds the count of REP (CSI n b); no screen needs more.
	maxRepeat = 65535
	// maxEscInter bounds the intermediate bytes of an ESC sequence (ESC ( B).
	maxEscInter = 4
)

// Parser states. The machine follows the ECMA-48 / DEC VT parser closely enough to
// consume the same bytes a terminal would, but it never passes a sequence through
// unless the whole sequence has been read and found on the allowlist, so the
// viewer's terminal only ever sees complete, known sequences.
const (
	stGround    = iota
	stUTF8      // inside a multi-byte UTF-8 rune (s.rune holds the bytes so far)
	stEsc       // after ESC
	stEscInter  // after ESC and intermediate bytes (0x20-0x2f)
	stCSI       // inside ESC [ ... (s.seq holds the bytes so far)
	stString    // inside an OSC, DCS, SOS, PM or APC payload (dropped)
	stStringEsc // ESC inside a string: ST (ESC \) or the start of a new sequence
)

// Sanitizer is a streaming io.Writer filter that neutralises the escape sequences
// in a recorded terminal stream that could attack the terminal of whoever replays
// it, and passes through what is needed to show the session: text, colours, cursor
// movement, erasing, scrolling and the alternate screen. See the package
// documentation for the exact policy.
//
// A Sanitizer is not safe for concurrent use.
type Sanitizer struct {
	w   io.Writer
	err error // sticky write error
	out []byte

	state int
	// rune holds a partial multi-byte UTF-8 rune; runeNeed is its full length.
	rune     [utf8.UTFMax]byte
	runeLen  int
	runeNeed int
	// seq holds a partial ESC sequence or control sequence.
	seq    []byte
	strLen int // payload bytes consumed in stString

	modes modes
}

// modes records the terminal modes the stream has turned on, so that Close can
// turn them off again and leave the viewer's terminal as it found it.
type modes struct {
	sgr          bool // an SGR sequence was passed
	lineDrawing  bool // G0 is the DEC special graphics set (ESC ( 0)
	insert       bool // IRM (CSI 4 h)
	origin       bool // DECOM (CSI ? 6 h)
	noWrap       bool // DECAWM off (CSI ? 7 l)
	hiddenCursor bool // DECTCEM off (CSI ? 25 l)
	scrollRegion bool // DECSTBM with margins
	altScreen    int  // the private mode that entered the alternate screen, or 0
}

// NewSanitizer returns a Sanitizer that writes the neutralised stream to w.
func NewSanitizer(w io.Writer) *Sanitizer {
	return &Sanitizer{w: w, seq: make([]byte, 0, 32)}
}

// Write filters p and writes the result to the underlying writer. A sequence or
// UTF-8 rune split across calls is carried to the next call. Write reports len(p)
// on success, whatever number of bytes the filter produced. After a write error
// every call returns that error.
func (s *Sanitizer) Write(p []byte) (int, error) {
	if s.err != nil {
		return 0, s.err
	}
	s.out = s.out[:0]
	for i := 0; i < len(p); {
		// Fast path: a run of printable ASCII in the ground state.
		if s.state == stGround {
			j := i
			for j < len(p) && p[j] >= 0x20 && p[j] < 0x7f {
				j++
			}
			if j > i {
				s.out = append(s.out, p[i:j]...)
				i = j
				continue
			}
		}
		if s.step(p[i]) {
			i++
		}
	}
	return len(p), s.flushOut()
}

// Flush drops a sequence left unfinished by the writes so far (an unfinished rune
// is shown as '?'), so that the next write starts from the ground state.
func (s *Sanitizer) Flush() error {
	if s.err != nil {
		return s.err
	}
	s.out = s.out[:0]
	s.finish()
	return s.flushOut()
}

// Close ends the stream: it drops an unfinished sequence, as Flush does, and then
// writes the sequences that undo the modes the stream left on (the alternate screen,
// a hidden cursor, a scroll region, line-drawing characters, colours, ...). It does
// not close the underlying writer, and the Sanitizer can be used again afterwards
// for a new stream.
func (s *Sanitizer) Close() error {
	if s.err != nil {
		return s.err
	}
	s.out = s.out[:0]
	s.finish()
	m := s.modes
	if m.sgr {
		s.out = append(s.out, "\x1b[0m"...)
	}
	if m.lineDrawing {
		s.out = append(s.out, "\x1b(B"...)
	}
	if m.insert {
		s.out = append(s.out, "\x1b[4l"...)
	}
	if m.origin {
		s.out = append(s.out, "\x1b[?6l"...)
	}
	if m.scrollRegion {
		// DECSTBM homes the cursor; keep it where the session left it.
		s.out = append(s.out, "\x1b7\x1b[r\x1b8"...)
	}
	switch m.altScreen {
	case 47:
		s.out = append(s.out, "\x1b[?47l"...)
	case 1047:
		s.out = append(s.out, "\x1b[?1047l"...)
	case 1049:
		s.out = append(s.out, "\x1b[?1049l"...)
	}
	if m.noWrap {
		s.out = append(s.out, "\x1b[?7h"...)
	}
	if m.hiddenCursor {
		s.out = append(s.out, "\x1b[?25h"...)
	}
	s.modes = modes{}
	return s.flushOut()
}

func (s *Sanitizer) flushOut() error {
	if len(s.out) == 0 {
		return nil
	}
	if _, err := s.w.Write(s.out); err != nil {
		s.err = err
		return err
	}
	return nil
}

// finish abandons whatever sequence is in progress.
func (s *Sanitizer) finish() {
	if s.state == stUTF8 {
		s.out = append(s.out, '?')
	}
	s.state = stGround
	s.seq = s.seq[:0]
	s.runeLen = 0
}

// step consumes b in the current state. It reports false when b must be
// processed again in the new state (it ended the sequence without belonging to it).
func (s *Sanitizer) step(b byte) bool {
	switch s.state {
	case stGround:
		s.ground(b)
	case stUTF8:
		if b&0xc0 != 0x80 { // not a continuation byte: the rune is broken
			s.out = append(s.out, '?')
			s.state = stGround
			return false
		}
		s.rune[s.runeLen] = b
		s.runeLen++
		if s.runeLen == s.runeNeed {
			s.state = stGround
			s.emitRune(s.rune[:s.runeLen])
		}
	case stEsc:
		return s.esc(b)
	case stEscInter:
		return s.escInter(b)
	case stCSI:
		return s.csi(b)
	case stString:
		switch b {
		case 0x07, 0x18, 0x1a: // BEL ends an OSC; CAN and SUB abort any string
			s.state = stGround
		case 0x1b:
			s.state = stStringEsc
		default:
			s.strLen++
			if s.strLen > maxString {
				// Give up on the string and show the rest as text (sanitised).
				s.state = stGround
				return false
			}
		}
	case stStringEsc:
		if b == '\\' { // ST
			s.state = stGround
			return true
		}
		// ESC ended the string and starts a new sequence.
		s.state = stEsc
		s.seq = append(s.seq[:0], 0x1b)
		return false
	}
	return true
}

func (s *Sanitizer) ground(b byte) {
	switch {
	case b >= 0x20 && b < 0x7f:
		s.out = append(s.out, b)
	case b == 0x1b:
		s.state = stEsc
		s.seq = append(s.seq[:0], 0x1b)
	case b < 0x20:
		s.control(b)
	case b == 0x7f:
		// DEL: ignored by terminals.
	default:
		// A UTF-8 lead byte, or a stray byte such as an 8-bit C1 control (0x9b
		// would be CSI to a terminal not in UTF-8 mode): never pass it raw.
		need := 0
		switch {
		case b >= 0xc2 && b <= 0xdf:
			need = 2
		case b >= 0xe0 && b <= 0xef:
			need = 3
		case b >= 0xf0 && b <= 0xf4:
			need = 4
		}
		if need == 0 {
			s.out = append(s.out, '?')
			return
		}
		s.rune[0] = b
		s.runeLen = 1
		s.runeNeed = need
		s.state = stUTF8
	}
}

// emitRune writes a complete candidate rune: valid UTF-8 other than the C1 controls
// U+0080-U+009F (which some terminals obey even when UTF-8 encoded).
func (s *Sanitizer) emitRune(p []byte) {
	r, size := utf8.DecodeRune(p)
	if r == utf8.RuneError && size <= 1 || r >= 0x80 && r <= 0x9f {
		s.out = append(s.out, '?')
		return
	}
	s.out = append(s.out, p...)
}

// control handles a C0 control byte (other than ESC). Controls inside escape
// sequences are executed in place, as terminals do.
func (s *Sanitizer) control(b byte) {
	switch b {
	case '\r', '\n', '\t', '\b', 0x07:
		s.out = append(s.out, b)
	case 0x0b, 0x0c: // VT and FF act as LF; passing LF avoids any other meaning
		s.out = append(s.out, '\n')
	}
	// Everything else is dropped: NUL, ENQ (answerback: the terminal would type
	// into the viewer's input), SO/SI (charset shifts that outlive the replay),
	// CAN/SUB and the rest.
}

func (s *Sanitizer) esc(b byte) bool {
	switch {
	case b == 0x1b:
		s.seq = append(s.seq[:0], 0x1b) // ESC ESC: the first one is abandoned
	case b == 0x18 || b == 0x1a:
		s.state = stGround
	case b < 0x20:
		s.control(b)
	case b < 0x30: // intermediate
		s.seq = append(s.seq, b)
		s.state = stEscInter
	case b == '[':
		s.seq = append(s.seq, b)
		s.state = stCSI
	case b == ']' || b == 'P' || b == 'X' || b == '^' || b == '_':
		// OSC, DCS, SOS, PM, APC: none is passed through.
		s.state = stString
		s.strLen = 0
	case b < 0x7f:
		s.state = stGround
		switch b {
		case '7', '8', // DECSC, DECRC
			'D', 'E', 'M': // IND, NEL, RI
			s.out = append(s.out, 0x1b, b)
		}
		// Dropped: RIS (ESC c), keypad modes (ESC = and ESC >), HTS (ESC H: tab
		// stops outlive the replay), single shifts, ST on its own, and the rest.
	case b == 0x7f:
	default:
		s.state = stGround
		return false
	}
	return true
}

func (s *Sanitizer) escInter(b byte) bool {
	switch {
	case b == 0x1b:
		s.state = stEsc
		s.seq = append(s.seq[:0], 0x1b)
	case b == 0x18 || b == 0x1a:
		s.state = stGround
	case b < 0x20:
		s.control(b)
	case b < 0x30:
		if len(s.seq) > maxEscInter {
			s.state = stGround
			return false
		}
		s.seq = append(s.seq, b)
	case b < 0x7f:
		s.state = stGround
		// Only G0 designations of ASCII and DEC line drawing, which full-screen
		// programs use for borders. Everything else is dropped, notably ESC % @
		// (leave UTF-8 mode) and ESC SP G (8-bit controls in replies).
		if len(s.seq) == 2 && s.seq[1] == '(' && (b == 'B' || b == '0') {
			s.out = append(s.out, 0x1b, '(', b)
			s.modes.lineDrawing = b == '0'
		}
	case b == 0x7f:
	default:
		s.state = stGround
		return false
	}
	return true
}

func (s *Sanitizer) csi(b byte) bool {
	switch {
	case b == 0x1b:
		s.state = stEsc
		s.seq = append(s.seq[:0], 0x1b)
	case b == 0x18 || b == 0x1a:
		s.state = stGround
	case b < 0x20:
		s.control(b)
	case b < 0x40: // parameter (0x30-0x3f) or intermediate (0x20-0x2f) byte
		if len(s.seq) >= maxCSI {
			s.state = stGround
			return false
		}
		s.seq = append(s.seq, b)
	case b < 0x7f:
		s.state = stGround
		s.seq = append(s.seq, b)
		s.finalCSI()
	case b == 0x7f:
	default:
		s.state = stGround
		return false
	}
	return true
}

// DEC private modes that may pass: origin mode, autowrap, cursor visibility, the
// alternate screen and the cursor save that goes with it. Mouse, keyboard, focus,
// bracketed paste, synchronized output, 132 columns and reverse video are dropped.
func allowedPrivateMode(n int) bool {
	switch n {
	case 6, 7, 25, 47, 1047, 1048, 1049:
		return true
	}
	return false
}

// finalCSI decides what to do with the complete control sequence in s.seq: pass
// it, pass a filtered version, or drop it.
func (s *Sanitizer) finalCSI() {
	seq := s.seq
	final := seq[len(seq)-1]
	params := seq[2 : len(seq)-1]
	var private byte
	if len(params) > 0 && params[0] >= 0x3c {
		private = params[0]
		params = params[1:]
	}
	colon := false
	for _, c := range params {
		switch {
		case c >= '0' && c <= '9' || c == ';':
		case c == ':':
			colon = true
		default:
			// A private marker after the start, or an intermediate byte: none of
			// the sequences with intermediates is on the allowlist (DECSCUSR,
			// DECSTR, DECRQM, ...).
			return
		}
	}
	if colon && final != 'm' {
		return
	}
	if private == '?' {
		if final == 'h' || final == 'l' {
			s.filterModes(params, final, true)
		}
		return // ?J, ?n (DSR), ?u (keyboard query) and other private forms
	}
	if private != 0 {
		return // CSI > c (DA2), CSI > 4 m (modifyOtherKeys), CSI = u, ...
	}
	switch final {
	case 'm': // SGR
		s.modes.sgr = true
	case 'h', 'l': // SM, RM: only IRM (insert mode)
		s.filterModes(params, final, false)
		return
	case 'J': // ED; ED 3 erases the viewer's scrollback
		if n, _ := nextParam(params); n == 3 {
			return
		}
	case 'T': // SD; with more parameters it starts xterm mouse highlight tracking
		if countParams(params) > 1 {
			return
		}
	case 's', 'u': // save and restore cursor; with parameters they mean other things
		if len(params) > 0 {
			return
		}
	case 'b': // REP; a huge count only serves to make a terminal spin
		if n, _ := nextParam(params); n > maxRepeat {
			return
		}
	case 'r': // DECSTBM
		s.modes.scrollRegion = len(params) > 0
	case '@', 'A', 'B', 'C', 'D', 'E', 'F', 'G', 'H', 'I', 'K', 'L', 'M', 'P',
		'S', 'X', 'Z', '`', 'a', 'd', 'e', 'f':
		// Cursor movement, erasing, inserting and deleting, scrolling, repeat.
	default:
		// Queries that make the terminal answer into the viewer's input (DA
		// "CSI c", DSR "CSI 6 n", DECREQTPARM "CSI x", window reports "CSI 14 t"),
		// window manipulation (CSI t), printing (CSI i), tab clearing (CSI g)
		// and everything unknown.
		return
	}
	s.out = append(s.out, seq...)
}

// filterModes passes the allowed modes of a SM/RM (private=false) or DECSET/DECRST
// (private=true) sequence and drops the others, and the whole sequence if none is
// left. params holds only digits and ';'.
func (s *Sanitizer) filterModes(params []byte, final byte, private bool) {
	start := len(s.out)
	s.out = append(s.out, 0x1b, '[')
	if private {
		s.out = append(s.out, '?')
	}
	kept := 0
	set := final == 'h'
	for len(params) > 0 {
		var n int
		n, params = nextParam(params)
		if private {
			if !allowedPrivateMode(n) {
				continue
			}
			switch n {
			case 6:
				s.modes.origin = set
			case 7:
				s.modes.noWrap = !set
			case 25:
				s.modes.hiddenCursor = !set
			case 47, 1047, 1049:
				if set {
					s.modes.altScreen = n
				} else {
					s.modes.altScreen = 0
				}
			}
		} else {
			if n != 4 {
				continue
			}
			s.modes.insert = set
		}
		if kept > 0 {
			s.out = append(s.out, ';')
		}
		s.out = appendInt(s.out, n)
		kept++
	}
	if kept == 0 {
		s.out = s.out[:start]
		return
	}
	s.out = append(s.out, final)
}

// countParams returns the number of ';'-separated parameters.
func countParams(params []byte) int {
	if len(params) == 0 {
		return 0
	}
	n := 1
	for _, c := range params {
		if c == ';' {
			n++
		}
	}
	return n
}

// nextParam parses the first ';'-separated numeric parameter of params (0 when
// empty, capped at 99999) and returns it with the rest of params after the ';'.
func nextParam(params []byte) (int, []byte) {
	n := 0
	for i, c := range params {
		if c == ';' {
			return n, params[i+1:]
		}
		if c >= '0' && c <= '9' {
			n = min(n*10+int(c-'0'), 99999)
		}
	}
	return n, nil
}

func appendInt(b []byte, n int) []byte {
	var buf [8]byte
	i := len(buf)
	for {
		i--
		buf[i] = byte('0' + n%10)
		n /= 10
		if n == 0 {
			break
		}
	}
	return append(b, buf[i:]...)
}
