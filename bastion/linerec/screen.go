package linerec

import (
	"slices"
	"strings"
)

// Bounds that keep every operation of the screen model cheap whatever the
// target sends and whatever window size the user claims.
const (
	maxCols   = 1000 // wider windows are clamped
	maxRows   = 500  // taller windows are clamped
	maxParam  = 9999 // CSI numeric parameters are clamped to this
	maxParams = 16   // CSI parameters past this are ignored
	maxOff    = 256  // rows of the current line kept after they scroll off the top
)

// MaxCols and MaxRows bound the window a Tracker models: a wider or taller
// one is clamped. The shell must be given no larger a window, or it wraps
// the line where the model does not and its redraws land elsewhere.
const (
	MaxCols = maxCols
	MaxRows = maxRows
)

// wideTail marks the right half of a double-width character.
const wideTail rune = -1

// row is one screen row. Cells past len(c) are blank; cap(c) is the width,
// so clearing a row is O(1). A zero rune is a blank cell.
type row struct {
	c       []rune
	wrapped bool // the cursor auto-wrapped from this row onto the next (soft line break)
}

func (r *row) at(x int) rune {
	if x < len(r.c) {
		return r.c[x]
	}
	return 0
}

func (r *row) set(x int, v rune) {
	if x >= len(r.c) {
		if v == 0 {
			return
		}
		r.extend(x + 1)
	}
	r.c[x] = v
}

// extend lengthens the row to n cells, the new ones blank. A row's buffer
// is allocated on its first write, so the rows an idle session never draws
// cost nothing (a thousand idle sessions would otherwise hold a screen of
// runes each).
func (r *row) extend(n int) {
	old := len(r.c)
	if n <= old {
		return
	}
	if n > cap(r.c) {
		r.c = slices.Grow(r.c, n-old)
	}
	r.c = r.c[:n]
	clear(r.c[old:])
}

func (r *row) reset() {
	r.c = r.c[:0]
	r.wrapped = false
}

// blank reports whether the row has no visible cell at or after column from.
func (r *row) blank(from int) bool {
	for x := from; x < len(r.c); x++ {
		if r.c[x] != 0 {
			return false
		}
	}
	return true
}

// text returns the cells [from, to) as a string, blanks as spaces.
func (r *row) text(from, to int) string {
	var b strings.Builder
	for x := from; x < to; x++ {
		switch v := r.at(x); v {
		case wideTail:
		case 0:
			b.WriteByte(' ')
		default:
			b.WriteRune(v)
		}
	}
	return b.String()
}

// parser states
const (
	stGround = iota
	stEsc
	stEscInter
	stCSI
	stCSIIgnore
	stString    // OSC, DCS, SOS, PM, APC: skipped up to BEL or ST
	stStringEsc // ESC seen inside a string
)

type savedCursor struct {
	x, y    int
	pending bool
	origin  bool
}

// screen is a small terminal emulator: the subset of xterm that shells and
// line editors use to draw a command line (printing with auto-wrap, cursor
// motion, erase, insert/delete characters and lines, scroll regions, the
// alternate screen), with O(1) work per input byte apart from scrolls and
// erases, which cost O(rows) and O(cols). It answers no queries and keeps no
// colours: only the characters matter here. It also follows one mark (the
// start of the line being typed) through scrolls and clears.
type screen struct {
	cols, rows int
	ring       []row
	spare      []row // the ring before the last resize, reused by the next
	base       int   // ring index of screen row 0
	x, y       int
	pending    bool // the cursor is past the last column, the next glyph wraps
	top, bot   int  // scroll region, inclusive
	autowrap   bool
	insert     bool
	lnm        bool
	origin     bool
	alt        bool // the alternate screen is active: nothing is drawn
	bracketed  bool // the target enabled bracketed paste
	saved      savedCursor
	altSaved   savedCursor

	// parser
	st      int
	params  [maxParams]int // -1 is a missing parameter
	np      int
	prefix  byte // '?', '>', '<', '=' or 0
	inter   byte // last intermediate byte or 0
	utf     [4]byte
	un      int // bytes of a UTF-8 sequence collected
	uneed   int // bytes it needs
	lastRun rune

	// mark: where the line being typed starts
	mark    bool
	mx, my  int   // my < 0: the mark row is off[len(off)+my]
	off     []row // rows at or after the mark that scrolled off the top (a ring)
	offHead int   // index of the oldest row in off once it is full
	offLost bool  // more than maxOff rows scrolled off
	moved   bool  // the mark row was destroyed; the mark was moved to a guess
	cleared bool  // the whole screen was erased while marked; the mark is (0,0)
	drawn   int   // glyphs drawn while marked
}

func newScreen(cols, rows int) *screen {
	s := &screen{}
	s.resize(cols, rows)
	s.autowrap = true
	return s
}

func clampSize(cols, rows int) (int, int) {
	return min(max(cols, 2), maxCols), min(max(rows, 1), maxRows)
}

func (s *screen) line(y int) *row {
	i := s.base + y
	if i >= s.rows {
		i -= s.rows
	}
	return &s.ring[i]
}

// resize changes the window size without reflowing, as xterm does: rows
// below the cursor are dropped first, then rows at the top scroll away.
func (s *screen) resize(cols, rows int) {
	cols, rows = clampSize(cols, rows)
	if s.rows > 0 {
		if over := s.y - (rows - 1); over > 0 {
			s.scrollUp(0, s.rows-1, over)
			s.y -= over
		}
	}
	// Rows keep their buffers (cut to the new width; cells past len are
	// blank whatever the buffer holds), and the ring is rebuilt in the
	// spare one: O(rows) per resize, never O(rows × cols), since a client
	// can send window changes as fast as it likes.
	ring := s.spare[:0]
	if cap(ring) < rows {
		ring = make([]row, 0, rows)
	}
	ring = ring[:rows]
	for y := range ring {
		ring[y] = row{}
		if y < s.rows {
			old := s.line(y)
			n := min(len(old.c), cols)
			if n > 0 {
				ring[y].c = old.c[:n]
			}
			if n > 0 && ring[y].c[n-1] != wideTail && n < len(old.c) && old.c[n] == wideTail {
				ring[y].c[n-1] = 0 // a wide glyph cut in half
			}
			ring[y].wrapped = old.wrapped && len(old.c) <= cols
		}
	}
	clear(s.ring) // its rows' buffers now belong to ring, or are dropped
	s.spare = s.ring
	s.ring, s.base, s.cols, s.rows = ring, 0, cols, rows
	s.top, s.bot = 0, rows-1
	s.x, s.y = min(s.x, cols-1), min(s.y, rows-1)
	s.pending = false
	if s.mark {
		if s.my >= rows {
			s.my, s.mx, s.moved = rows-1, 0, true
		}
		s.mx = min(s.mx, cols)
	}
}

// write feeds output bytes from the target.
func (s *screen) write(p []byte) {
	for i := 0; i < len(p); {
		if s.st == stGround && s.un == 0 && !s.alt && !s.insert && p[i] >= 0x20 && p[i] < 0x7f {
			if j := s.printASCII(p, i); j > i {
				i = j
				continue
			}
		}
		s.step(p[i])
		i++
	}
}

// printASCII draws a run of printable ASCII from p[i] on, the common case,
// without the general glyph path; it returns the index after the run.
func (s *screen) printASCII(p []byte, i int) int {
	for i < len(p) {
		b := p[i]
		if b < 0x20 || b >= 0x7f {
			return i
		}
		if s.pending {
			if !s.autowrap {
				return i
			}
			s.line(s.y).wrapped = true
			s.index()
			s.x = 0
		}
		ln := s.line(s.y)
		if s.x < len(ln.c) && (ln.c[s.x] == wideTail || s.x+1 < len(ln.c) && ln.c[s.x+1] == wideTail) {
			return i // splits a wide glyph: the general path
		}
		ln.set(s.x, rune(b))
		s.lastRun = rune(b)
		if s.mark {
			s.drawn++
		}
		if s.x++; s.x >= s.cols {
			s.x = s.cols - 1
			s.pending = s.autowrap
		}
		i++
	}
	return i
}

func (s *screen) step(b byte) {
	// C0 controls act in every state but inside strings.
	if b < 0x20 && s.st != stString && s.st != stStringEsc {
		switch b {
		case 0x1b:
			s.flushUTF8()
			s.st = stEsc
			s.inter = 0
		case 0x18, 0x1a: // CAN, SUB abort a sequence
			s.flushUTF8()
			s.st = stGround
		default:
			s.flushUTF8()
			s.control(b)
		}
		return
	}
	switch s.st {
	case stGround:
		s.ground(b)
	case stEsc:
		switch {
		case b >= 0x20 && b <= 0x2f:
			s.inter = b
			s.st = stEscInter
		case b == '[':
			s.st = stCSI
			s.np, s.prefix, s.inter = 0, 0, 0
		case b == ']' || b == 'P' || b == 'X' || b == '^' || b == '_':
			s.st = stString
		default:
			s.st = stGround
			s.esc(b)
		}
	case stEscInter:
		switch {
		case b >= 0x20 && b <= 0x2f:
			s.inter = b
		case b >= 0x30 && b <= 0x7e:
			s.st = stGround // charset designations and the like: nothing to draw
		default:
			s.st = stGround
		}
	case stCSI:
		s.csiByte(b)
	case stCSIIgnore:
		if b >= 0x40 && b <= 0x7e {
			s.st = stGround
		}
	case stString:
		switch b {
		case 0x07:
			s.st = stGround
		case 0x1b:
			s.st = stStringEsc
		case 0x18, 0x1a:
			s.st = stGround
		}
	case stStringEsc:
		if b == '\\' {
			s.st = stGround
			return
		}
		// ESC then anything else ends the string and starts a new sequence.
		s.st = stEsc
		s.inter = 0
		s.step(b)
	}
}

func (s *screen) csiByte(b byte) {
	switch {
	case b >= '0' && b <= '9':
		if s.np == 0 {
			s.np = 1
			s.params[0] = -1
		}
		if i := s.np - 1; i < maxParams {
			v := s.params[i]
			if v < 0 {
				v = 0
			}
			s.params[i] = min(v*10+int(b-'0'), maxParam)
		}
	case b == ';' || b == ':':
		if s.np == 0 {
			s.np = 1
			s.params[0] = -1
		}
		if s.np < maxParams {
			s.params[s.np] = -1
		}
		s.np++
	case b >= '<' && b <= '?':
		if s.np != 0 || s.prefix != 0 || s.inter != 0 {
			s.st = stCSIIgnore
			return
		}
		s.prefix = b
	case b >= 0x20 && b <= 0x2f:
		s.inter = b
	case b >= 0x40 && b <= 0x7e:
		s.st = stGround
		s.csi(b)
	case b == 0x7f:
	default:
		s.st = stCSIIgnore
	}
}

// param returns parameter i, or def when it is missing.
func (s *screen) param(i, def int) int {
	if i >= s.np || i >= maxParams || s.params[i] < 0 {
		return def
	}
	return s.params[i]
}

// count returns parameter i as a repeat count: missing or zero means 1.
func (s *screen) count(i int) int { return max(s.param(i, 1), 1) }

func (s *screen) ground(b byte) {
	if b < 0x80 {
		s.flushUTF8()
		if b == 0x7f {
			return
		}
		s.print(rune(b))
		return
	}
	if s.un > 0 {
		if b&0xc0 != 0x80 {
			s.flushUTF8()
			s.ground(b)
			return
		}
		s.utf[s.un] = b
		s.un++
		if s.un == s.uneed {
			r := decodeRune(s.utf[:s.un])
			s.un = 0
			s.print(r)
		}
		return
	}
	switch {
	case b&0xe0 == 0xc0 && b >= 0xc2:
		s.uneed = 2
	case b&0xf0 == 0xe0:
		s.uneed = 3
	case b&0xf8 == 0xf0 && b <= 0xf4:
		s.uneed = 4
	default:
		s.print(0xfffd)
		return
	}
	s.utf[0] = b
	s.un = 1
}

// flushUTF8 ends an incomplete UTF-8 sequence with a replacement glyph.
func (s *screen) flushUTF8() {
	if s.un > 0 {
		s.un = 0
		s.print(0xfffd)
	}
}

func decodeRune(p []byte) rune {
	var r rune
	switch len(p) {
	case 2:
		r = rune(p[0]&0x1f)<<6 | rune(p[1]&0x3f)
	case 3:
		r = rune(p[0]&0x0f)<<12 | rune(p[1]&0x3f)<<6 | rune(p[2]&0x3f)
		if r < 0x800 || (r >= 0xd800 && r <= 0xdfff) {
			return 0xfffd
		}
	case 4:
		r = rune(p[0]&0x07)<<18 | rune(p[1]&0x3f)<<12 | rune(p[2]&0x3f)<<6 | rune(p[3]&0x3f)
		if r < 0x10000 || r > 0x10ffff {
			return 0xfffd
		}
	}
	return r
}

func (s *screen) control(b byte) {
	if s.alt {
		return
	}
	switch b {
	case '\b':
		if s.pending {
			s.pending = false
		}
		if s.x > 0 {
			s.x--
		}
	case '\t':
		s.x = min((s.x/8+1)*8, s.cols-1)
		s.pending = false
	case '\n', '\v', '\f':
		s.index()
		if s.lnm {
			s.x = 0
		}
	case '\r':
		s.x = 0
		s.pending = false
	}
}

func (s *screen) esc(b byte) {
	switch b {
	case 'c': // RIS: full reset
		s.alt, s.insert, s.lnm, s.origin, s.bracketed = false, false, false, false, false
		s.autowrap = true
		s.top, s.bot = 0, s.rows-1
		s.saved, s.altSaved = savedCursor{}, savedCursor{}
		s.cursorTo(0, 0)
		s.eraseAll()
		return
	}
	if s.alt {
		return
	}
	switch b {
	case '7':
		s.saved = s.save()
	case '8':
		s.restore(s.saved)
	case 'D':
		s.index()
	case 'E':
		s.index()
		s.x = 0
	case 'M':
		s.pending = false
		if s.y == s.top {
			s.scrollDown(s.top, s.bot, 1)
		} else if s.y > 0 {
			s.y--
		}
	}
}

func (s *screen) save() savedCursor {
	return savedCursor{x: s.x, y: s.y, pending: s.pending, origin: s.origin}
}

func (s *screen) restore(c savedCursor) {
	s.x, s.y = min(c.x, s.cols-1), min(c.y, s.rows-1)
	s.pending, s.origin = c.pending, c.origin
}

func (s *screen) csi(final byte) {
	if s.inter != 0 {
		if s.inter == '!' && final == 'p' && s.prefix == 0 { // DECSTR soft reset
			s.insert, s.origin, s.autowrap = false, false, true
			s.top, s.bot = 0, s.rows-1
			s.saved = savedCursor{}
		}
		return
	}
	switch s.prefix {
	case '?':
		switch final {
		case 'h', 'l':
			for i := 0; i < min(max(s.np, 1), maxParams); i++ {
				s.decMode(s.param(i, 0), final == 'h')
			}
		case 'J':
			s.ed(s.param(0, 0))
		case 'K':
			s.el(s.param(0, 0))
		}
		return
	case 0:
	default:
		return
	}
	if s.alt {
		return
	}
	switch final {
	case '@':
		s.insertCells(min(s.count(0), s.cols))
	case 'A':
		s.cursorTo(s.x, max(s.y-s.count(0), s.upperLimit()))
	case 'B', 'e':
		s.cursorTo(s.x, min(s.y+s.count(0), s.lowerLimit()))
	case 'C', 'a':
		s.cursorTo(min(s.x+s.count(0), s.cols-1), s.y)
	case 'D':
		s.cursorTo(max(s.x-s.count(0), 0), s.y)
	case 'E':
		s.cursorTo(0, min(s.y+s.count(0), s.lowerLimit()))
	case 'F':
		s.cursorTo(0, max(s.y-s.count(0), s.upperLimit()))
	case 'G', '`':
		s.cursorTo(min(s.count(0)-1, s.cols-1), s.y)
	case 'H', 'f':
		y := s.count(0) - 1
		if s.origin {
			y = min(y+s.top, s.bot)
		}
		s.cursorTo(min(s.count(1)-1, s.cols-1), min(y, s.rows-1))
	case 'I':
		s.cursorTo(min((s.x/8+min(s.count(0), s.cols))*8, s.cols-1), s.y)
	case 'Z':
		n := min(s.count(0), s.cols)
		s.cursorTo(max(((s.x+7)/8-n)*8, 0), s.y)
	case 'J':
		s.ed(s.param(0, 0))
	case 'K':
		s.el(s.param(0, 0))
	case 'L':
		if s.y >= s.top && s.y <= s.bot {
			s.scrollDown(s.y, s.bot, s.count(0))
			s.cursorTo(0, s.y)
		}
	case 'M':
		if s.y >= s.top && s.y <= s.bot {
			s.scrollUp(s.y, s.bot, s.count(0))
			s.cursorTo(0, s.y)
		}
	case 'P':
		s.deleteCells(min(s.count(0), s.cols))
	case 'S':
		if s.np <= 1 {
			s.scrollUp(s.top, s.bot, s.count(0))
		}
	case 'T':
		if s.np <= 1 {
			s.scrollDown(s.top, s.bot, s.count(0))
		}
	case 'X':
		s.pending = false
		r := s.line(s.y)
		s.fixWide(r, s.x)
		end := min(s.x+s.count(0), s.cols)
		s.fixWide(r, end)
		for x := s.x; x < end; x++ {
			r.set(x, 0)
		}
	case 'b':
		if s.lastRun != 0 {
			for range min(s.count(0), s.cols) {
				s.print(s.lastRun)
			}
		}
	case 'd':
		y := s.count(0) - 1
		if s.origin {
			y = min(y+s.top, s.bot)
		}
		s.cursorTo(s.x, min(y, s.rows-1))
	case 'h', 'l':
		for i := 0; i < min(max(s.np, 1), maxParams); i++ {
			switch s.param(i, 0) {
			case 4:
				s.insert = final == 'h'
			case 20:
				s.lnm = final == 'h'
			}
		}
	case 'r':
		top, bot := s.param(0, 1)-1, s.param(1, s.rows)-1
		top = max(top, 0)
		if bot >= s.rows || bot <= 0 {
			bot = s.rows - 1
		}
		if top < bot {
			s.top, s.bot = top, bot
			s.home()
		}
	case 's':
		s.saved = s.save()
	case 'u':
		s.restore(s.saved)
	}
}

func (s *screen) upperLimit() int {
	if s.y >= s.top {
		return s.top
	}
	return 0
}

func (s *screen) lowerLimit() int {
	if s.y <= s.bot {
		return s.bot
	}
	return s.rows - 1
}

// home moves the cursor to the top-left corner (of the region in origin mode).
func (s *screen) home() {
	if s.origin {
		s.cursorTo(0, s.top)
		return
	}
	s.cursorTo(0, 0)
}

func (s *screen) cursorTo(x, y int) {
	s.x, s.y = max(x, 0), max(y, 0)
	s.pending = false
}

func (s *screen) decMode(mode int, on bool) {
	switch mode {
	case 6:
		s.origin = on
		s.home()
	case 7:
		s.autowrap = on
	case 47, 1047, 1049:
		if on == s.alt {
			return
		}
		if on {
			s.altSaved = s.save()
		} else {
			s.restore(s.altSaved)
		}
		s.alt = on
	case 2004:
		s.bracketed = on
	}
}

// print draws one glyph at the cursor.
func (s *screen) print(r rune) {
	if s.alt {
		return
	}
	w := runeWidth(r)
	if w == 0 {
		return
	}
	s.lastRun = r
	if s.pending && s.autowrap {
		s.line(s.y).wrapped = true
		s.index()
		s.x = 0
	}
	s.pending = false
	if w == 2 && s.x == s.cols-1 {
		if !s.autowrap {
			return
		}
		r0 := s.line(s.y)
		s.fixWide(r0, s.x)
		r0.set(s.x, 0)
		r0.wrapped = true
		s.index()
		s.x = 0
	}
	ln := s.line(s.y)
	if s.insert {
		s.shiftRight(ln, s.x, w)
	}
	s.fixWide(ln, s.x)
	s.fixWide(ln, s.x+w)
	ln.set(s.x, r)
	if w == 2 {
		ln.set(s.x+1, wideTail)
	}
	if s.mark {
		s.drawn++
	}
	s.x += w
	if s.x >= s.cols {
		s.x = s.cols - 1
		s.pending = s.autowrap
	}
}

// fixWide blanks the other half of a wide glyph that a write at x would split.
func (s *screen) fixWide(r *row, x int) {
	if x < s.cols && r.at(x) == wideTail && x > 0 {
		r.set(x-1, 0)
		r.set(x, 0)
	}
}

func (s *screen) shiftRight(r *row, x, n int) {
	s.fixWide(r, x)
	if x >= len(r.c) {
		return
	}
	end := min(len(r.c)+n, s.cols)
	old := len(r.c)
	r.extend(end)
	if x+n < end {
		// Cells pushed past the right margin are lost, as in xterm.
		copy(r.c[x+n:], r.c[x:old])
	}
	for i := x; i < min(x+n, end); i++ {
		r.c[i] = 0
	}
	if len(r.c) == s.cols && r.c[s.cols-1] != wideTail && s.cols >= 2 && runeWidth(r.c[s.cols-1]) == 2 {
		r.c[s.cols-1] = 0
	}
}

func (s *screen) insertCells(n int) {
	s.pending = false
	s.shiftRight(s.line(s.y), s.x, n)
}

func (s *screen) deleteCells(n int) {
	s.pending = false
	r := s.line(s.y)
	s.fixWide(r, s.x)
	if s.x >= len(r.c) {
		return
	}
	s.fixWide(r, min(s.x+n, s.cols))
	if s.x+n >= len(r.c) {
		r.c = r.c[:s.x]
		return
	}
	copy(r.c[s.x:], r.c[s.x+n:])
	r.c = r.c[:len(r.c)-n]
}

// index moves the cursor down, scrolling the region at its bottom margin.
func (s *screen) index() {
	s.pending = false
	switch {
	case s.y == s.bot:
		s.scrollUp(s.top, s.bot, 1)
	case s.y < s.rows-1:
		s.y++
	}
}

// scrollUp moves rows top..bot up by n; blank rows come in at the bottom.
func (s *screen) scrollUp(top, bot, n int) {
	n = min(n, bot-top+1)
	if n <= 0 {
		return
	}
	if top == 0 && bot == s.rows-1 {
		for range n {
			if s.mark && s.my <= 0 {
				s.keepOff(s.line(0))
			}
			if s.mark {
				s.my--
			}
			s.base = (s.base + 1) % s.rows
			s.line(s.rows - 1).reset()
		}
		return
	}
	if s.mark && s.my >= top && s.my <= bot {
		s.my -= n
		if s.my < top {
			s.my, s.mx, s.moved = top, 0, true
		}
	}
	s.rotate(top, bot, n)
	for y := bot - n + 1; y <= bot; y++ {
		s.line(y).reset()
	}
}

// scrollDown moves rows top..bot down by n; blank rows come in at the top.
func (s *screen) scrollDown(top, bot, n int) {
	n = min(n, bot-top+1)
	if n <= 0 {
		return
	}
	if s.mark && s.my >= top && s.my <= bot {
		s.my += n
		if s.my > bot {
			s.my, s.mx, s.moved = bot, 0, true
		}
	}
	s.rotate(top, bot, bot-top+1-n)
	for y := top; y < top+n; y++ {
		s.line(y).reset()
	}
}

// rotate moves rows top..bot up by n, the first n coming round to the bottom.
func (s *screen) rotate(top, bot, n int) {
	m := bot - top + 1
	n %= m
	if n == 0 {
		return
	}
	tmp := make([]row, m)
	for i := range m {
		tmp[i] = *s.line(top + (i+n)%m)
	}
	for i := range m {
		*s.line(top + i) = tmp[i]
	}
}

// keepOff keeps a copy of a row scrolled off the top while a line is being
// typed, in a ring of maxOff rows whose buffers are reused.
func (s *screen) keepOff(r *row) {
	var dst *row
	if n := len(s.off); n < maxOff {
		if n < cap(s.off) {
			s.off = s.off[:n+1]
		} else {
			s.off = append(s.off, row{})
		}
		dst = &s.off[n]
	} else {
		dst = &s.off[s.offHead]
		s.offHead = (s.offHead + 1) % maxOff
		s.offLost = true
	}
	dst.c = append(dst.c[:0], r.c...)
	dst.wrapped = r.wrapped
}

// offRow returns the i-th oldest kept row.
func (s *screen) offRow(i int) *row { return &s.off[(s.offHead+i)%len(s.off)] }

func (s *screen) el(mode int) {
	if s.alt {
		return
	}
	s.pending = false
	r := s.line(s.y)
	switch mode {
	case 0:
		s.fixWide(r, s.x)
		if s.x < len(r.c) {
			r.c = r.c[:s.x]
		}
		r.wrapped = false
	case 1:
		s.fixWide(r, s.x+1)
		for x := 0; x <= s.x && x < len(r.c); x++ {
			r.c[x] = 0
		}
	case 2:
		r.reset()
	}
}

func (s *screen) ed(mode int) {
	if s.alt {
		return
	}
	switch mode {
	case 0:
		if s.x == 0 && s.y == 0 {
			s.eraseAll()
			return
		}
		s.el(0)
		for y := s.y + 1; y < s.rows; y++ {
			s.line(y).reset()
		}
	case 1:
		for y := 0; y < s.y; y++ {
			s.line(y).reset()
		}
		s.el(1)
	case 2, 3:
		s.eraseAll()
	}
}

// eraseAll clears the screen. A line being typed is redrawn from the top by
// whoever cleared it (Ctrl-L), so the mark moves to the top-left corner.
func (s *screen) eraseAll() {
	s.pending = false
	for y := range s.rows {
		s.line(y).reset()
	}
	if s.mark {
		s.mx, s.my, s.off, s.offHead, s.cleared = 0, 0, s.off[:0], 0, true
	}
}

// setMark starts a line at the cursor and forgets what was drawn after it:
// only what is drawn from now on can be part of the line.
func (s *screen) setMark() {
	s.mark = true
	s.mx, s.my = s.x, s.y
	if s.pending {
		s.mx = s.cols
	}
	s.off, s.offHead, s.offLost, s.moved, s.cleared, s.drawn = s.off[:0], 0, false, false, false, 0
	if s.alt {
		return
	}
	r := s.line(s.y)
	s.fixWide(r, s.x)
	if s.mx < len(r.c) {
		r.c = r.c[:s.mx]
	}
	r.wrapped = false
	for y := s.y + 1; y < s.rows; y++ {
		s.line(y).reset()
	}
}

func (s *screen) clearMark() {
	s.mark, s.off, s.offLost, s.moved, s.cleared, s.drawn = false, s.off[:0], false, false, false, 0
	s.offHead = 0
}

// markRows returns the rows from the mark row down to the bottom of the screen.
func (s *screen) markRows() []*row {
	var rows []*row
	y := s.my
	if y < 0 {
		for i := max(len(s.off)+y, 0); i < len(s.off); i++ {
			rows = append(rows, s.offRow(i))
		}
		y = 0
	}
	for ; y < s.rows; y++ {
		rows = append(rows, s.line(y))
	}
	return rows
}

// cursorOffset returns the cursor's distance in cells from the mark, counting
// full rows in between, or -1 when the cursor is before the mark.
func (s *screen) cursorOffset() int {
	if s.y < s.my || (s.y == s.my && s.x < s.mx) {
		return -1
	}
	if s.y == s.my {
		return s.x - s.mx
	}
	return (s.cols - s.mx) + (s.y-s.my-1)*s.cols + s.x
}
