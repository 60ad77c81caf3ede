package mask

import (
	"bytes"
	"encoding/binary"
	"math/bits"
)

// The fast path. Most output has nothing a card number can be made of: its
// digits come in short runs ("2026-01-10", "status=200", "bytes=51234")
// that end in text. cleanPrefix finds how far that goes, 64 bytes at a time
// with word-wide masks, so the byte-by-byte state machine (Masker.scan) only
// runs on escapes and on runs that could hold a number.
//
// A run here is a maximal stretch of digits and single joiners between two
// digits: the shape of every card number, plain or grouped. The joiners are
// the card separators ' ' and '-', and with them "!$%(),", which one test
// finds with the separators (a byte ORed with 0x0d is '-'): a longer run
// only sends more text to the state machine, which knows better. A card needs 13 digits in one run, so a run shorter than 13
// bytes that ends in text, within the input, cannot hold one. A run that
// reaches an escape (escapes are transparent between digits) or the end of
// the input (it may go on in the next Write), or a separator at either, is
// left to the state machine whatever its length. So is a run that reaches
// any other special byte: one the terminal does not draw (NUL, SI, DEL, the
// first byte of a zero-width space), which is transparent too, or the
// start of an 8-bit CSI. The caller finds the next ESC (bytes.IndexByte);
// cleanPrefix finds the other special bytes in the words it classifies
// anyway: one test of each word for a byte outside printable ASCII, and a
// closer look only at a word that has one (a line feed, most often).

const (
	lo  = 0x0101010101010101
	hi  = 0x8080808080808080
	m7f = 0x7f7f7f7f7f7f7f7f
	// pack moves the low bit of each byte (0 or 1) into bit k of the top
	// byte, k being the byte's index.
	pack = 0x0102040810204080
)

// zeroBytes sets the high bit of each zero byte of w, exactly: adding 0x7f
// to the low seven bits cannot carry into the next byte.
func zeroBytes(w uint64) uint64 { return ^(((w & m7f) + m7f) | w) & hi }

// classify returns masks of the digits and the joiners among the eight
// bytes of w (little-endian): bit k for byte k.
func classify(w uint64) (d, s uint64) {
	x := w ^ 0x30*lo // digits become 0..9
	dig := ^(((x & m7f) + 0x76*lo) | x) & hi
	sep := zeroBytes((w | 0x0d*lo) ^ 0x2d*lo) // " !$%(),-"
	return (dig >> 7) * pack >> 56, (sep >> 7) * pack >> 56
}

// masks64 returns the digit and joiner masks of 64 bytes, and the index of
// the first special byte among them (64 if none).
func masks64(b *[64]byte) (d, s uint64, first int) {
	first = 64
	for k := 0; k < 64; k += 8 {
		w := binary.LittleEndian.Uint64(b[k : k+8 : k+8])
		wd, ws := classify(w)
		d |= wd << k
		s |= ws << k
		if printable(w) != 0 && first == 64 {
			if sp := specials(w); sp != 0 {
				first = k + bits.TrailingZeros64(sp)/8
			}
		}
	}
	return d, s, first
}

// masks returns the digit and joiner masks of p (at most 64 bytes), and
// the index of the first special byte in it (len(p) if none).
func masks(p []byte) (d, s uint64, first int) {
	if len(p) == 64 {
		return masks64((*[64]byte)(p))
	}
	first = len(p)
	k := 0
	for ; k+8 <= len(p); k += 8 {
		w := binary.LittleEndian.Uint64(p[k:])
		wd, ws := classify(w)
		d |= wd << k
		s |= ws << k
		if printable(w) != 0 && first == len(p) {
			if sp := specials(w); sp != 0 {
				first = k + bits.TrailingZeros64(sp)/8
			}
		}
	}
	for ; k < len(p); k++ {
		switch b := p[k]; {
		case isDigit(b):
			d |= 1 << k
		case isJoiner(b):
			s |= 1 << k
		case special[b] && first == len(p):
			first = k
		}
	}
	return d, s, first
}

// isJoiner reports whether b may join digits into a run.
func isJoiner(b byte) bool { return b|0x0d == '-' }

// special says which bytes the state machine must see: ESC, the bytes a
// terminal does not draw (invisible), and those that begin an 8-bit CSI
// (0x9b, c2 9b) or a character that is not drawn (c2, e2, ef).
var special = func() (t [256]bool) {
	t = invisible
	for _, b := range []byte{0x1b, 0x9b, 0xc2, 0xe2, 0xef} {
		t[b] = true
	}
	return t
}()

// indexEsc returns the index of the first ESC at or after i, or len(p).
func indexEsc(p []byte, i int) int {
	if k := bytes.IndexByte(p[i:], 0x1b); k >= 0 {
		return i + k
	}
	return len(p)
}

// printable sets a high bit when w holds a byte below 0x20 or above 0x7e
// (a subtraction borrows, an addition carries, only from such a byte).
func printable(w uint64) uint64 { return ((w-0x20*lo)&^w | (w + lo) | w) & hi }

// specials sets the high bit of each special byte of w, exactly.
func specials(w uint64) uint64 {
	low := w & m7f
	ctl := zeroBytes(w & 0xe0e0e0e0e0e0e0e0) // below 0x20
	// BS, HT, LF, VT, FF and CR are not special: 8 <= b < 14.
	ws := (low + (0x80-0x08)*lo) &^ (low + (0x80-0x0e)*lo) & hi
	sp := ctl&^ws | zeroBytes(w^0x7f*lo) | zeroBytes(w^0x1b*lo)
	if w&hi != 0 {
		sp |= zeroBytes(w^0x9b*lo) | zeroBytes(w^0xc2*lo) | zeroBytes(w^0xe2*lo) | zeroBytes(w^0xef*lo)
	}
	return sp
}

// cleanPrefix returns the first index j >= i at which the state machine
// must look: the start of the first run that is 13 bytes or longer or
// reaches end, or end itself, where end is the first special byte at or
// after i, or len(p); the caller passes the first ESC (or len(p)) as end,
// and cleanPrefix finds the other special bytes before it. Before j nothing can be masked. The byte before i
// must not be part of a run (the Masker is outside one).
func cleanPrefix(p []byte, i, end int) int {
	var prevD uint64 // whether the byte before the block is a digit
	run := 0         // length of the run reaching the block's start
	for o := i; o < end; o += 64 {
		n := min(64, end-o)
		d, s, first := masks(p[o : o+n])
		if first < n {
			// The first special byte is end.
			end, n = o+first, first
			if n == 0 {
				break // the run reaching the block goes on to end
			}
		}
		full := uint64(1)<<n - 1 // all ones when n is 64
		nextD := uint64(1)       // at end: what follows is not known
		if o+n < end && !isDigit(p[o+n]) && !special[p[o+n]] {
			nextD = 0
		}
		x := (d | s&(d<<1|prevD)&(d>>1|nextD<<(n-1))) & full
		prevD = d >> (n - 1) & 1
		if x == full {
			run += n
			continue
		}
		lead := bits.TrailingZeros64(^x) // the run from the previous block goes on
		if run+lead >= 13 {
			return o - run
		}
		// Runs inside the block: bit k of a is set when bytes k to k+12 are
		// all in a run; the lowest one starts the first long run.
		a := x &^ (1<<lead - 1)
		a &= a >> 1
		a &= a >> 2
		a &= a >> 4
		a &= a >> 5
		if a != 0 {
			return o + bits.TrailingZeros64(a)
		}
		run = bits.LeadingZeros64(^(x << (64 - n)))
	}
	return end - run
}
