package mask

import (
	"bytes"
	"encoding/binary"
	"math/rand/v2"
	"strings"
	"testing"
)

// TestClassify checks the word-wide masks against the plain definition
// (the joiners: the separators ' ' and '-', and the bytes that the test
// for them also finds),
// for every byte value at every position among every other kind of byte.
func TestClassify(t *testing.T) {
	for _, fill := range []byte{'a', '0', ' ', '-', 0x1b, 0x00, 0xff, 0x2f, 0x3a, 0x80, 0xb0} {
		for n := 0; n < 256; n++ {
			for pos := 0; pos < 8; pos++ {
				w := bytes.Repeat([]byte{fill}, 8)
				w[pos] = byte(n)
				d, s := classify(binary.LittleEndian.Uint64(w))
				var wd, ws uint64
				for k, b := range w {
					if b >= '0' && b <= '9' {
						wd |= 1 << k
					}
					if strings.IndexByte(" !$%(),-", b) >= 0 {
						ws |= 1 << k
					}
				}
				if d != wd || s != ws {
					t.Fatalf("%q: got digits %08b separators %08b, want %08b %08b", w, d, s, wd, ws)
				}
			}
		}
	}
}

// TestControls checks the word-wide test for invisible bytes against the
// table, for every byte value at every position among other bytes.
func TestControls(t *testing.T) {
	for _, fill := range []byte{'a', '0', ' ', '\n', 0x1b, 0x00, 0xff, 0x7e, 0x80, 0x9b, 0xc2, 0x20, 0x1f} {
		for n := 0; n < 256; n++ {
			for pos := 0; pos < 8; pos++ {
				w := bytes.Repeat([]byte{fill}, 8)
				w[pos] = byte(n)
				var want uint64
				for k, b := range w {
					if invisible[b] || b == 0x1b {
						want |= 0x80 << (8 * k)
					}
				}
				if got := controls(binary.LittleEndian.Uint64(w)); got != want {
					t.Fatalf("%q: got %016x, want %016x", w, got, want)
				}
				if want != 0 && printable(binary.LittleEndian.Uint64(w)) == 0 {
					t.Fatalf("%q: printable misses an invisible byte", w)
				}
			}
		}
	}
}

// TestSpecialFinder checks specialFinder against the byte-by-byte
// definition, asked at increasing indexes as the state machine asks.
func TestSpecialFinder(t *testing.T) {
	rng := rand.New(rand.NewPCG(9, 9))
	alphabet := []byte{0x1b, 0x9b, 0xc2, 0xe2, 0xef, 0xad, 0x80, 0x81, 0xbb, 'a', '1'}
	for range 2000 {
		in := make([]byte, rng.IntN(100))
		for i := range in {
			if rng.IntN(3) == 0 {
				in[i] = byte(rng.IntN(256))
			} else {
				in[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		sf := newSpecialFinder()
		for i := 0; i <= len(in); i += 1 + rng.IntN(3) {
			if got, want := sf.next(in, i), indexSpecial(in, i); got != want {
				t.Fatalf("%q at %d: got %d, want %d", in, i, got, want)
			}
		}
	}
}

// indexSpecial returns the index of the first special byte at or after i,
// or len(p), byte by byte: where cleanPrefix's end is (a lead byte that
// begins a character the terminal draws is not one).
func indexSpecial(p []byte, i int) int {
	for ; i < len(p); i++ {
		if special[p[i]] && !drawnChar(p[i:]) {
			return i
		}
	}
	return len(p)
}

// cleanPrefixRef is cleanPrefix byte by byte, from its definition.
func cleanPrefixRef(p []byte, i, end int, bin bool) int {
	// digit or invisible; past end: unknown
	digit := func(k int) bool { return k >= end || dOrInv(p[k], bin) == 1 }
	in := func(k int) bool {
		if dOrInv(p[k], bin) == 1 {
			return true
		}
		return strings.IndexByte(" !$%(),-", p[k]) >= 0 && k > i && digit(k-1) && digit(k+1)
	}
	for k := i; k < end; {
		if !in(k) {
			k++
			continue
		}
		a, digits := k, 0
		for k < end && in(k) {
			if isDigit(p[k]) {
				digits++
			}
			k++
		}
		if digits >= 13 || k == end {
			for a < end && transparent(p[a], bin) {
				a++
			}
			return a
		}
	}
	return end
}

var cleanCases = []struct {
	name string
	in   string
	want int // -1: len(in)
}{
	{"empty", "", 0},
	{"text", "hello world\n", -1},
	{"short runs", "2026-01-10T00:00:00.123Z status=200 bytes=51234\n", -1},
	{"run at the end", "bytes=51234", 6},
	{"separator at the end", "page 12 ", 5},
	{"card", "pay 4111111111111111 now", 4},
	{"spaced card", "pay 4111 1111 1111 1111 now", 4},
	{"12 bytes", "x 123456789012 y", -1},
	{"13 bytes", "x 1234567890123 y", 2},
	{"13 bytes, 9 digits", "x 12-34-56-78-9 y", -1},
	{"13 digits with separators", "x 12-34-56-78-90-12-3 y", 2},
	{"double separator splits", "x 1234567  123456 y", -1},
	{"other joiners", "x 12,345,678(9012)345 y", 2},
	{"not joiners", "x 12.345.678:90:1 y", -1},
	{"escape ends the prefix", "abc\x1b[0m", 3},
	{"nul does not end the prefix", "abc\x00def", -1},
	{"nuls with few digits", strings.Repeat("\x00", 100) + "12" + strings.Repeat("\x00\x7f", 50) + "x", -1},
	{"digits spread out by nuls", "x" + strings.Repeat("1\x00\x00\x00\x00\x00", 13) + "y", 1},
	{"del ends the prefix", "abc 12\x7f", 4},
	{"utf-16 digits at the end, from the first digit", "a\x00b\x004\x001\x00", 4},
	{"utf-16 card, from its first digit", "a\x00b\x00" + strings.Repeat("4\x001\x00", 7) + "x\x00", 4},
	{"zero-width space ends the prefix", "ab 41\u200b11", 3},
	{"8-bit csi ends the prefix", "abc\x9b0m", 3},
	{"drawn c2 does not end the prefix", "abc\u00b0 x", -1},
	{"soft hyphen joins", "x 4111\u00ad1111\u00ad1111\u00ad1111 y", 2},
	{"c2 9b ends the prefix at its c2", "abc\xc2\x9b0m", 3},
	{"c2 at the end ends the prefix", "abc\xc2", 3},
	{"zero-width space joins", "x 4111\u200b111111111111 y", 2},
	{"binary with few digits", "\x80\xff1\xc3\x00" + strings.Repeat("\xfe7\x01a", 30) + "a", -1},
	{"utf-8 text with few digits", "caf\u00e9 \u4e2d 12 \u00e9x", -1},
	{"newline and tab do not", "a\tb 12\r\nc\v\f", -1},
	{"invisible at the end after 64 bytes", strings.Repeat("a", 70) + "\x0f", -1},
	{"special after 64 bytes", strings.Repeat("a", 70) + "\x9b", 70},
	{"drawn e2 does not end the prefix", "\u201cquoted\u201d \u2014 12 \u2026 x", -1},
	{"e2 80 at the end ends the prefix", "abc\xe2\x80", 3},
	{"special on a block edge after a separator", strings.Repeat("a", 59) + "4111 \x001111 1111 1111 x", 59},
	{"special on a block edge after digits", strings.Repeat("a", 60) + "4111\x0f111111111111 x", 60},
	{"special on a block edge after text", strings.Repeat("a", 64) + "\x9b4111 x", 64},
	{"run before an escape", "a 4111\x1b[0m1111", 2},
	{"separator before an escape", "a 4111 \x1b[0m1111 1111 1111", 2},
	{"separator after text", "a - 1 -", -1},
	{"leading separator", " 41 x", -1},
	{"run across blocks", strings.Repeat("a", 60) + "4111111111111111 x", 60},
	{"short run across blocks", strings.Repeat("a", 60) + "41111111 x" + strings.Repeat("b", 70), -1},
	{"whole block of digits", strings.Repeat("a", 10) + strings.Repeat("1", 200) + "x", 10},
	{"separator on a block edge", strings.Repeat("a", 59) + "41111 11111111 x", 59},
	{"late card joins the run before it", strings.Repeat("ab 12 ", 40) + "4111111111111111 x", 237},
}

func TestCleanPrefix(t *testing.T) {
	for _, tc := range cleanCases {
		t.Run(tc.name, func(t *testing.T) {
			p := []byte(tc.in)
			want := tc.want
			if want < 0 {
				want = len(p)
			}
			end := indexSpecial(p, 0)
			if got, _ := cleanPrefix(p, 0, end, false); got != want {
				t.Errorf("got %d, want %d", got, want)
			}
			if got := cleanPrefixRef(p, 0, end, false); got != want {
				t.Errorf("reference: got %d, want %d", got, want)
			}
		})
	}
}

// outputOf masks in one write and a flush, with the fast path or without.
func outputOf(t testing.TB, in []byte, slow bool, step int) string {
	return outputOfCfg(t, Config{Cards: true, MaxHold: 1 << 20}, in, slow, step)
}

// outputOfCfg is outputOf with cfg.
func outputOfCfg(t testing.TB, cfg Config, in []byte, slow bool, step int) string {
	m := mustNew(t, cfg)
	m.slow = slow
	var out []byte
	for i := 0; i < len(in); i += step {
		out = append(out, m.Write(in[i:min(i+step, len(in))])...)
	}
	return string(append(out, m.Flush()...))
}

// randomText is output made of the pieces card numbers and their near
// misses are made of.
func randomText(rng *rand.Rand, n int) []byte {
	pieces := []string{"4111", "1111", "5555", "4444", "0", "12", "999999", " ", "-", "  ", "x", "\n", "\x1b[0m", "\x1b[31m", "\x1b]0;1\x07", "\x1b", "[", "m", "4111111111111111", "411111111111111",
		"\x00", "\x0f", "\x7f", "\r", "\b", "\u200b", "\ufeff", "\u00ad", "\u00e9", "\xe2\x80", "\xc2", "\x9b", "\xc2\x9b0m", "\x9b1C", "\xc2\x9b", ";"}
	var b []byte
	for len(b) < n {
		b = append(b, pieces[rng.IntN(len(pieces))]...)
	}
	return b
}

// TestFastMatchesReference compares the fast path with the byte-by-byte
// state machine on random text of the pieces cards are made of.
func TestFastMatchesReference(t *testing.T) {
	rng := rand.New(rand.NewPCG(7, 11))
	for range 3000 {
		in := randomText(rng, 1+rng.IntN(300))
		want := outputOf(t, in, true, len(in))
		for _, step := range []int{len(in), 1 + rng.IntN(70)} {
			if got := outputOf(t, in, false, step); got != want {
				t.Fatalf("%q in writes of %d:\ngot  %q\nwant %q", in, step, got, want)
			}
		}
	}
}

// TestFastMatchesReferenceBytes compares them on random bytes, most of them
// those that begin, continue or end escapes and sequences that are not
// drawn.
func TestFastMatchesReferenceBytes(t *testing.T) {
	rng := rand.New(rand.NewPCG(5, 3))
	alphabet := []byte{0, 0x0f, 0x7f, 0x1b, '[', ']', 'm', '0', '1', '4', ' ', '-', 0x9b, 0xc2, 0xe2, 0xef,
		0x80, 0x81, 0x8b, 0xbb, 0xbf, 0xad, 0xa0, '\n', '\r', 0x07, '\\', 'P', ';'}
	for range 5000 {
		in := make([]byte, rng.IntN(200))
		for i := range in {
			if rng.IntN(4) == 0 {
				in[i] = byte(rng.IntN(256))
			} else {
				in[i] = alphabet[rng.IntN(len(alphabet))]
			}
		}
		want := outputOf(t, in, true, len(in))
		for _, step := range []int{len(in), 1 + rng.IntN(23)} {
			if got := outputOf(t, in, false, step); got != want {
				t.Fatalf("%q in writes of %d:\ngot  %q\nwant %q", in, step, got, want)
			}
		}
	}
}

func FuzzCleanPrefix(f *testing.F) {
	for _, tc := range cleanCases {
		f.Add([]byte(tc.in))
	}
	for _, tc := range cardCases {
		f.Add([]byte(tc.in))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		end := indexSpecial(in, 0)
		sf := newSpecialFinder()
		if got := sf.next(in, 0); got != end {
			t.Fatalf("%q: specialFinder: got %d, want %d", in, got, end)
		}
		got, seen := cleanPrefix(in, 0, end, false)
		if want := cleanPrefixRef(in, 0, end, false); got != want || seen < got || seen > end {
			t.Fatalf("%q: got %d (seen %d), want %d", in, got, seen, want)
		}
		got, _ = cleanPrefix(in, 0, len(in), true)
		if want := cleanPrefixRef(in, 0, len(in), true); got != want {
			t.Fatalf("%q, binary: got %d, want %d", in, got, want)
		}
		bin := Config{Cards: true, MaxHold: 1 << 20, Binary: true}
		if outputOfCfg(t, bin, in, false, len(in)) != outputOfCfg(t, bin, in, true, len(in)) {
			t.Fatalf("%q, binary: the fast path's output differs from the state machine's", in)
		}
		ref := outputOf(t, in, true, len(in))
		if out := outputOf(t, in, false, len(in)); out != ref {
			t.Fatalf("%q: the fast path's output differs from the state machine's", in)
		}
		if len(in) > 0 {
			step := 1 + int(in[0])%23
			if out := outputOf(t, in, false, step); out != ref {
				t.Fatalf("%q in writes of %d: the fast path's output differs from the state machine's", in, step)
			}
		}
	})
}

// TestFastMatchesReferenceRandom compares the fast path with the state
// machine on uniformly random bytes (what a tcp forward of compressed or
// encrypted data carries) with card numbers spliced in, in both modes; in
// binary mode it also checks that every spliced card is masked: plain,
// grouped, in UTF-16 (either byte order) and next to binary framing.
func TestFastMatchesReferenceRandom(t *testing.T) {
	rng := rand.New(rand.NewPCG(4, 4))
	utf16 := func(s string, be bool) string {
		var b []byte
		for _, c := range []byte(s) {
			if be {
				b = append(b, 0, c)
			} else {
				b = append(b, c, 0)
			}
		}
		return string(b)
	}
	cards := []string{"4111111111111111", "4111-1111-1111-1111", "4111 1111 1111 1111",
		utf16("4111111111111111", false), utf16("4111111111111111", true),
		"\x00\x00\x00\x104111111111111111\x00\x00\x00\x041234"}
	for _, bin := range []bool{false, true} {
		cfg := Config{Cards: true, MaxHold: 1 << 20, Binary: bin}
		for range 200 {
			var in []byte
			for len(in) < 4000 {
				if rng.IntN(300) == 0 {
					in = append(in, 'x')
					in = append(in, cards[rng.IntN(len(cards))]...)
					in = append(in, 'x')
					continue
				}
				in = append(in, byte(rng.Uint32()))
			}
			want := outputOfCfg(t, cfg, in, true, len(in))
			for _, step := range []int{len(in), 1 + rng.IntN(700)} {
				if got := outputOfCfg(t, cfg, in, false, step); got != want {
					t.Fatalf("binary %v, %q in writes of %d: the fast path's output differs from the state machine's", bin, in, step)
				}
			}
			if !bin {
				continue // an escape sequence in the random bytes may hide one
			}
			for _, c := range []string{"411111111111", utf16("411111111111", false), utf16("411111111111", true), "4111-1111-1111", "4111 1111 1111"} {
				if strings.Contains(want, c) {
					t.Fatalf("a spliced card went out unmasked:\n%q", want)
				}
			}
		}
	}
}

// TestFastPathLinear checks that the fast path reads each byte a bounded
// number of times on inputs where the state machine and it see runs
// differently: a run it hands over with 13 digits far away (after a long
// stretch of NULs, or of NULs and spaces) was read again from the next
// byte after each one the state machine took, quadratic in the stretch.
func TestFastPathLinear(t *testing.T) {
	const n = 300_000
	inputs := map[string][]byte{
		"nuls then a card":            append(bytes.Repeat([]byte{0}, n), "4111111111111111x"...),
		"nuls and spaces then a card": append(bytes.Repeat([]byte("\x00 "), n/2), "4111111111111111x"...),
		"digits and commas":           bytes.Repeat([]byte("1,"), n/2),
		"digits and accents":          bytes.Repeat([]byte("1\u00e9"), n/3),
		"spread-out digits":           bytes.Repeat([]byte("1\x00\x00\x00\x00\x00\x00\x00\x00\x00"), n/10),
	}
	for name, in := range inputs {
		for _, bin := range []bool{false, true} {
			for _, step := range []int{128 << 10, 4096, 7} {
				m := mustNew(t, Config{Cards: true, Binary: bin})
				for i := 0; i < len(in); i += step {
					m.Write(in[i:min(i+step, len(in))])
				}
				m.Flush()
				if m.scanned > 2*int64(len(in)) {
					t.Errorf("%s, binary %v, writes of %d: the fast path read %d bytes of %d", name, bin, step, m.scanned, len(in))
				}
			}
		}
	}
}
