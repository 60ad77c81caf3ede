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
// A run here is a maximal stretch of digits, bytes transparent between
// digits (in a terminal the bytes it does not draw: NUL, SI, DEL, …; in a
// binary stream NUL, for UTF-16), and single joiners between two of those:
// the shape of every card number, plain, grouped or spread out. The
// joiners are the card separators ' ' and '-', and with them "!$%(),",
// which one test finds with the separators (a byte ORed with 0x0d is '-'):
// a longer run only sends more text to the state machine, which knows
// better. A card needs 13 digits in one run, so a run with fewer that ends
// in text, within the input, cannot hold one (a stretch of NULs in binary
// data holds none). A run that reaches a special byte or the end of the
// input (it may go on in the next Write) is left to the state machine
// whatever it holds, from its first byte that is not transparent (those
// change nothing outside a run). In a terminal the special bytes begin an
// escape sequence (ESC, 0x9b, c2 9b: transparent between digits, and what
// follows is not text until they end) or a character that is not drawn
// (U+00AD, U+200B, …: c2 ad, e2 80 8b, …) or a separator other than ' ' and
// '-' (U+00A0, U+2013, …); specialFinder finds them with
// bytes.IndexByte, which is vectorised, passing over the UTF-8 lead bytes
// c2, e2 and ef of characters that are drawn. A binary stream has none.
//
// cleanPrefix also says how far it looked, and the Masker does not ask it
// again before the state machine has passed that point: a run it hands
// over is read once by each, whatever the state machine makes of it (a
// run of NULs before 13 digits far away would otherwise be read again
// after each NUL).

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
	return bitsOf(dig), bitsOf(sep)
}

// bitsOf packs the high bits of w's bytes into bits 0 to 7.
func bitsOf(w uint64) uint64 { return (w >> 7) * pack >> 56 }

// word classifies the eight bytes of w: digits, joiners and bytes not
// drawn (invisible), bit k for byte k. The last are only looked for when w
// has a byte outside printable ASCII.
func word(w uint64, bin bool) (d, s, inv uint64) {
	d, s = classify(w)
	if bin {
		inv = bitsOf(zeroBytes(w))
	} else if printable(w) != 0 {
		inv = bitsOf(controls(w))
	}
	return d, s, inv
}

// masks returns the masks of p (at most 64 bytes): digits, joiners and
// bytes transparent between digits (dOrInv).
func masks(p []byte, bin bool) (d, s, inv uint64) {
	if len(p) == 64 {
		return masks64((*[64]byte)(p), bin)
	}
	k := 0
	for ; k+8 <= len(p); k += 8 {
		wd, ws, wi := word(binary.LittleEndian.Uint64(p[k:k+8:k+8]), bin)
		d |= wd << k
		s |= ws << k
		inv |= wi << k
	}
	for ; k < len(p); k++ {
		switch b := p[k]; {
		case isDigit(b):
			d |= 1 << k
		case isJoiner(b):
			s |= 1 << k
		case transparent(b, bin):
			inv |= 1 << k
		}
	}
	return d, s, inv
}

// isJoiner reports whether b may join digits into a run.
func isJoiner(b byte) bool { return b|0x0d == '-' }

// masks64 is masks of 64 bytes.
func masks64(b *[64]byte, bin bool) (d, s, inv uint64) {
	for k := 0; k < 64; k += 8 {
		w := binary.LittleEndian.Uint64(b[k : k+8 : k+8])
		wd, ws := classify(w) // word, by hand: it is not inlined
		d |= wd << k
		s |= ws << k
		if bin {
			inv |= bitsOf(zeroBytes(w)) << k
		} else if printable(w) != 0 {
			inv |= bitsOf(controls(w)) << k
		}
	}
	return d, s, inv
}

// specialBytes are the bytes specialFinder looks for.
var specialBytes = [...]byte{0x1b, 0x9b, 0xc2, 0xe2, 0xef}

// specialFinder finds the special bytes of one buffer in order, each kind
// with bytes.IndexByte, remembering where it found each: asked again
// further on, it searches again only for the kinds it has passed.
type specialFinder struct {
	at [len(specialBytes)]int // where each kind is next, len(p) if nowhere; -1 not looked for
}

func newSpecialFinder() specialFinder {
	return specialFinder{at: [...]int{-1, -1, -1, -1, -1}}
}

// next returns the index of the first special byte of p at or after i, or
// len(p): a lead byte that begins a character the terminal draws is passed
// over (one whose next bytes p does not have yet is not).
func (f *specialFinder) next(p []byte, i int) int {
	for {
		end, kind := len(p), -1
		for k, b := range specialBytes {
			if f.at[k] < i {
				f.at[k] = len(p)
				if j := bytes.IndexByte(p[i:], b); j >= 0 {
					f.at[k] = i + j
				}
			}
			if f.at[k] < end {
				end, kind = f.at[k], k
			}
		}
		if kind < 2 || !drawnChar(p[end:]) {
			return end
		}
		i = end + 1
	}
}

// drawnChar reports whether p begins with a lead byte c2, e2 or ef and
// the bytes that make it a character the terminal draws, none of those
// the state machine judges (u8Class): c2 9b (CSI), the separators (c2 a0,
// c2 ad, U+2000 to U+200A, U+2010 to U+2013, U+202F, U+205F), U+200B to
// U+200F, U+202A to U+202E, U+2060 to U+2064, U+2066 to U+2069 and U+FEFF.
// It is false when p ends before that is known.
func drawnChar(p []byte) bool {
	if len(p) < 2 {
		return false
	}
	switch b := p[1]; p[0] {
	case 0xc2:
		return u8Class(p[:2]) == u8Text
	case 0xe2:
		if b != 0x80 && b != 0x81 {
			return true
		}
		if len(p) < 3 {
			return false
		}
		return u8Class(p[:3]) == u8Text
	case 0xef:
		if b != 0xbb {
			return true
		}
		if len(p) < 3 {
			return false
		}
		return u8Class(p[:3]) == u8Text
	}
	return false
}

// special says which bytes begin a sequence the state machine judges: ESC,
// 0x9b, and lead bytes of characters that may not be drawn (c2, e2, ef).
var special = func() (t [256]bool) {
	for _, b := range []byte{0x1b, 0x9b, 0xc2, 0xe2, 0xef} {
		t[b] = true
	}
	return t
}()

// printable sets a high bit when w holds a byte below 0x20 or above 0x7e
// (a subtraction borrows, an addition carries, only from such a byte).
func printable(w uint64) uint64 { return ((w-0x20*lo)&^w | (w + lo) | w) & hi }

// controls sets the high bit of each invisible byte of w, exactly, and of
// each ESC (which never reaches cleanPrefix's blocks: it is special).
func controls(w uint64) uint64 {
	low := w & m7f
	ctl := zeroBytes(w & 0xe0e0e0e0e0e0e0e0) // below 0x20
	// BS, HT, LF, VT, FF and CR are drawn or move the cursor: 8 <= b < 14.
	ws := (low + (0x80-0x08)*lo) &^ (low + (0x80-0x0e)*lo) & hi
	return ctl&^ws | zeroBytes(w^0x7f*lo)
}

// cleanPrefix returns the first index j >= i at which the state machine
// must look: the first byte that is not transparent of the first run that
// holds 13 digits or more or reaches end, or end itself, where end is the
// first special byte at or after i (specialFinder.next; len(p) in a binary
// stream). Before j nothing can be masked. It also returns how far it
// looked, seen >= j: the state machine is to read at least up to there
// before cleanPrefix is asked again (see above). The byte before i must
// not be part of a run (the Masker is outside one).
func cleanPrefix(p []byte, i, end int, bin bool) (j, seen int) {
	var prevD uint64  // whether the byte before the block is a digit or invisible
	run, runD := 0, 0 // bytes and digits of the run reaching the block's start
	quick := true     // try counting the block's digits first
	for o := i; o < end; o += 64 {
		n := min(64, end-o)
		nextD := uint64(1) // at end: what follows is not known
		if o+n < end && dOrInv(p[o+n], bin) == 0 {
			nextD = 0
		}
		if quick && o+64 <= len(p) {
			// Binary data has a digit in 25 bytes: when the block and the
			// run reaching it hold fewer than 13, no run that ends in the
			// block can hold a card, and only the run reaching its end
			// (found from the last word back) is needed. p's 64 bytes from
			// o are read even when the block is shorter.
			b := (*[64]byte)(p[o : o+64])
			if nd := digitCount(b, n); runD+nd < minDigits {
				t, td, whole := tailRun(b, n, prevD, nextD, bin)
				if whole {
					run, runD = run+n, runD+nd
				} else {
					run, runD = t, td
				}
				prevD = dOrInv(b[n-1], bin)
				continue
			}
		}
		d, s, inv := masks(p[o:o+n], bin)
		full := uint64(1)<<n - 1 // all ones when n is 64
		dd := d | inv
		x := (dd | s&(dd<<1|prevD)&(dd>>1|nextD<<(n-1))) & full
		d &= full
		prevD = dd >> (n - 1) & 1
		// Text with digits on every line seldom passes the quick test:
		// try it again after a block with hardly any.
		quick = bits.OnesCount64(d) < minDigits/4
		if x == full {
			run += n
			runD += bits.OnesCount64(d)
			continue
		}
		lead := bits.TrailingZeros64(^x) // the run from the previous block goes on
		leadMask := uint64(1)<<lead - 1
		if run+lead >= minDigits && runD+bits.OnesCount64(d&leadMask) >= minDigits {
			return skipTransparent(p, o-run, end, bin), o + n
		}
		// Runs inside the block: those of 13 bytes or more may hold 13
		// digits. Bit k of a is set when bytes k to k+12 are all in a run.
		x &^= leadMask
		a := x
		a &= a >> 1
		a &= a >> 2
		a &= a >> 4
		a &= a >> 5
		for a != 0 {
			k := bits.TrailingZeros64(a) // a run starts here
			e := k + bits.TrailingZeros64(^(x >> k))
			r := (uint64(1)<<e - 1) &^ (uint64(1)<<k - 1)
			if bits.OnesCount64(d&r) >= minDigits {
				return skipTransparent(p, o+k, end, bin), o + n
			}
			a &^= r
		}
		run, runD = bits.LeadingZeros64(^(x << (64 - n))), 0 // the run reaching the block's end
		if run > 0 {
			runD = bits.OnesCount64(d &^ (full >> run))
		}
	}
	return skipTransparent(p, end-run, end, bin), end
}

// skipTransparent returns the index of the first byte of p[j:end] that is
// not transparent, or end.
func skipTransparent(p []byte, j, end int, bin bool) int {
	for j < end && transparent(p[j], bin) {
		j++
	}
	return j
}

// dOrInv is 1 when b is a digit or may be transparent between digits
// (transparent), else 0.
func dOrInv(b byte, bin bool) uint64 {
	if isDigit(b) || transparent(b, bin) {
		return 1
	}
	return 0
}

// transparent reports whether b is transparent between digits: in a
// terminal a byte it does not draw (invisible; the characters that are not
// drawn are special), in a binary stream NUL.
func transparent(b byte, bin bool) bool {
	if bin {
		return b == 0
	}
	return invisible[b]
}

// digitCount counts the digits among b[:n].
func digitCount(b *[64]byte, n int) (c int) {
	for k := 0; k < n; k += 8 {
		x := binary.LittleEndian.Uint64(b[k:k+8:k+8]) ^ 0x30*lo // digits become 0..9
		dig := ^(((x & m7f) + 0x76*lo) | x) & hi
		if n-k < 8 {
			dig &= uint64(1)<<(8*(n-k)) - 1
		}
		c += bits.OnesCount64(dig)
	}
	return c
}

// tailRun returns the bytes and digits of the run that reaches the end of
// b[:n], classifying words from the last back until the run starts, and
// whether it is all of b[:n]; prevD and nextD say whether the bytes before
// and after b[:n] are digits or transparent (1 when not known).
func tailRun(b *[64]byte, n int, prevD, nextD uint64, bin bool) (t, td int, whole bool) {
	k := (n - 1) &^ 7 // the word that holds the block's last byte
	m := n - k        // its bytes in the block
	for ; k >= 0; k, m = k-8, 8 {
		d, s, inv := word(binary.LittleEndian.Uint64(b[k:k+8:k+8]), bin)
		left, right := prevD, nextD
		if k > 0 {
			left = dOrInv(b[k-1], bin)
		}
		if k+m < n {
			right = dOrInv(b[k+8], bin)
		}
		all := uint64(1)<<m - 1
		dd := d | inv
		x := (dd | s&(dd<<1|left)&(dd>>1|right<<(m-1))) & all
		d &= all
		if x == all {
			t, td = t+m, td+bits.OnesCount64(d)
			continue
		}
		l := bits.LeadingZeros64(^(x << (64 - m))) // run bytes at the top
		top := all &^ (all >> l)
		return t + l, td + bits.OnesCount64(d&top), false
	}
	return t, td, true
}
