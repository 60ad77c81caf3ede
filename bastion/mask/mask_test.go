package mask

import (
	"bytes"
	"errors"
	"fmt"
	"math/rand/v2"
	"regexp"
	"strings"
	"testing"
)

func mustNew(t testing.TB, cfg Config) *Masker {
	t.Helper()
	m, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// luhnComplete appends the check digit that makes s pass the Luhn check.
func luhnComplete(s string) string {
	sum := 0
	for i := len(s) - 1; i >= 0; i-- {
		d := int(s[i] - '0')
		if (len(s)-1-i)%2 == 0 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return s + string(rune('0'+(10-sum%10)%10))
}

// digitsOf keeps only the digits of s: what a reader of the output could
// reassemble a number from.
func digitsOf(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] >= '0' && s[i] <= '9' {
			b.WriteByte(s[i])
		}
	}
	return b.String()
}

var pan19 = luhnComplete("630400000000000000")

var cardCases = []struct {
	name   string
	in     string
	want   string
	masked int
}{
	{"plain", "4111111111111111", "************1111", 1},
	{"spaced", "4111 1111 1111 1111", "**** **** **** 1111", 1},
	{"dashed", "5555-5555-5555-4444", "****-****-****-4444", 1},
	{"amex 4-6-5", "3782 822463 10005", "**** ****** *0005", 1},
	{"13 digits", "4222222222222", "*********2222", 1},
	{"19 digits", pan19, strings.Repeat("*", 15) + pan19[15:], 1},
	{"in a sentence", "card: 6011111111111117, exp 12/25\r\n", "card: ************1117, exp 12/25\r\n", 1},
	{"two cards", "4111111111111111 and 5555555555554444\n", "************1111 and ************4444\n", 2},
	{"sgr around digits", "\x1b[31m4111\x1b[0m 1111 1111 1111", "\x1b[31m****\x1b[0m **** **** 1111", 1},
	{"sgr between digits", "4\x1b[1m1\x1b[22m11111111111111", "*\x1b[1m*\x1b[22m**********1111", 1},
	{"osc between digits", "4111\x1b]0;title 42\x07111111111111", "****\x1b]0;title 42\x07********1111", 1},
	{"osc with ST", "4111\x1b]8;;http://x/1\x1b\\111111111111", "****\x1b]8;;http://x/1\x1b\\********1111", 1},
	{"charset designation", "4111\x1b(B111111111111", "****\x1b(B********1111", 1},
	{"separator then sgr", "4111 \x1b[0m1111 1111 1111", "**** \x1b[0m**** **** 1111", 1},
	{"cursor move", "4111\x1b[1C1111\x1b[1C1111\x1b[1C1111", "****\x1b[1C****\x1b[1C****\x1b[1C1111", 1},
	{"followed by a date", "4111 1111 1111 1111 12/25", "**** **** **** 1111 12/25", 1},
	{"group after card", "4111 1111 1111 1111 12", "**** **** **** 1111 12", 1},
	{"letters around", "id=4111111111111111;", "id=************1111;", 1},
	{"csi digits untouched", "\x1b[38;5;196m\x1b[4111111111111111m", "\x1b[38;5;196m\x1b[4111111111111111m", 0},

	// bytes a terminal does not draw are transparent, like escapes
	{"utf-16le", utf16le("Ada,4111111111111111\r\n"), utf16le("Ada,************1111\r\n"), 1},
	{"utf-16le spaced", utf16le("4111 1111 1111 1111\r\n"), utf16le("**** **** **** 1111\r\n"), 1},
	{"utf-16le with bom", "\xff\xfe" + utf16le("id,card\r\n1,5555555555554444\r\n"), "\xff\xfe" + utf16le("id,card\r\n1,************4444\r\n"), 1},
	{"nul between digits", "4\x001\x001\x001\x00111111111111", "*\x00*\x00*\x00*\x00********1111", 1},
	{"si between groups", "4111\x0f1111\x0f1111\x0f1111\n", "****\x0f****\x0f****\x0f1111\n", 1},
	{"so and si", "4111\x0e1111\x0f11111111", "****\x0e****\x0f****1111", 1},
	{"del between groups", "4111\x7f1111\x7f1111\x7f1111\n", "****\x7f****\x7f****\x7f1111\n", 1},
	{"bel and others", "4111\x071111\x011111\x1f1111", "****\x07****\x01****\x1f1111", 1},
	{"invisible next to a separator", "4111\x00 \x001111 1111 1111", "****\x00 \x00**** **** 1111", 1},
	{"zero-width space", "4111\u200b1111\u200b1111\u200b1111\n", "****\u200b****\u200b****\u200b1111\n", 1},
	{"zero-width joiners", "4111\u200c1111\u200d1111\u20601111", "****\u200c****\u200d****\u20601111", 1},
	{"bom between digits", "4111\ufeff111111111111", "****\ufeff********1111", 1},
	{"direction marks", "\u202e4111\u200e1111\u20661111\u20691111", "\u202e****\u200e****\u2066****\u20691111", 1},
	{"soft hyphen is a dash", "4111\u00ad1111\u00ad1111\u00ad1111", "****\u00ad****\u00ad****\u00ad1111", 1},
	{"no-break space is a space", "4111\u00a01111\u00a01111\u00a01111", "****\u00a0****\u00a0****\u00a01111", 1},
	{"narrow no-break space (fr thousands)", "4111\u202f1111\u202f1111\u202f1111", "****\u202f****\u202f****\u202f1111", 1},
	{"figure and thin spaces", "4111\u20071111\u20091111\u200a1111", "****\u2007****\u2009****\u200a1111", 1},
	{"en dash (word processors' hyphen)", "4111\u20131111\u20131111\u20131111", "****\u2013****\u2013****\u20131111", 1},
	{"hyphen, non-breaking hyphen, figure dash", "4111\u20111111\u20101111\u20121111", "****\u2011****\u2010****\u20121111", 1},
	{"medium mathematical space", "4111\u205f1111\u205f1111\u205f1111", "****\u205f****\u205f****\u205f1111", 1},
	{"no-break space not between groups", "1\u00a0234 is no card", "1\u00a0234 is no card", 0},
	{"utf-8 c1 csi", "4111\xc2\x9b0m1111\xc2\x9b0m1111\xc2\x9b0m1111\n", "****\xc2\x9b0m****\xc2\x9b0m****\xc2\x9b0m1111\n", 1},
	{"8-bit csi", "4111\x9b31m1111\x9b0m1111\x9b1C1111", "****\x9b31m****\x9b0m****\x9b1C1111", 1},
	{"8-bit csi holding a card", "\x9b4111111111111111m", "\x9b************1111m", 1},
	{"c1 csi holding a card", "\xc2\x9b4111111111111111m", "\xc2\x9b************1111m", 1},
	{"c1 csi unfinished", "4111 \xc2\x9b1\x001111 1111 1111", "**** \xc2\x9b1\x00**** **** 1111", 1},
	{"after a 7-bit sequence", "\x1b[\xc2\x9b0m4111\u200b111111111111", "\x1b[\xc2\x9b0m****\u200b********1111", 1},
	{"nul inside a csi", "4111\x1b[0\x00m111111111111", "****\x1b[0\x00m********1111", 1},

	// false positives
	{"not luhn", "4111111111111112", "4111111111111112", 0},
	{"not luhn spaced", "4111 1111 1111 1112", "4111 1111 1111 1112", 0},
	{"date", "2026-11-27 07:55:56", "2026-11-27 07:55:56", 0},
	{"phone", "+1 555-123-4567", "+1 555-123-4567", 0},
	{"short", "411111111111", "411111111111", 0},
	{"longer run 20", "41111111111111111111", "41111111111111111111", 0},
	{"card inside longer run", "9" + "4111111111111111" + "999", "9" + "4111111111111111" + "999", 0},
	{"long run then card", strings.Repeat("7", 30) + " 4111111111111111", strings.Repeat("7", 30) + " ************1111", 1},
	{"double space splits", "4111  1111  1111  1111", "4111  1111  1111  1111", 0},
	{"groups too long to join", "4111111 111111111", "4111111 111111111", 0},
	{"ip address", "10.20.30.40", "10.20.30.40", 0},
	{"newline splits", "4111\n1111\n1111\n1111", "4111\n1111\n1111\n1111", 0},
	{"single digits", "1 2 3 4 5 6 7 8 9 1 2 3 4 5 6", "1 2 3 4 5 6 7 8 9 1 2 3 4 5 6", 0},
	{"drawn characters split", "4111\u00b71111\u20221111\u20141111\u00b71111", "4111\u00b71111\u20221111\u20141111\u00b71111", 0},
	{"cursor controls split", "4111\b1111\t1111\r1111\v1111\f1111", "4111\b1111\t1111\r1111\v1111\f1111", 0},
	{"invisible joins a longer run", "4111111111111111\x00999", "4111111111111111\x00999", 0},
	{"8-bit csi final is drawn", "\x9b4111111111111111", "\x9b4111111111111111", 0},
}

// utf16le encodes ASCII s as UTF-16LE, as Windows PowerShell 5.1's `>` writes.
func utf16le(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		b.WriteByte(s[i])
		b.WriteByte(0)
	}
	return b.String()
}

func TestCards(t *testing.T) {
	for _, tc := range cardCases {
		t.Run(tc.name, func(t *testing.T) {
			m := mustNew(t, Config{Cards: true})
			got := string(m.Write([]byte(tc.in)))
			got += string(m.Flush())
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if m.Masked() != tc.masked {
				t.Errorf("Masked: got %d, want %d", m.Masked(), tc.masked)
			}
			if m.Pending() != 0 {
				t.Errorf("Pending after Flush: got %d, want 0", m.Pending())
			}
		})
	}
}

// binaryCases are masked with Config.Binary: a stream no terminal draws.
var binaryCases = []struct {
	name, in, want string
	masked         int
}{
	{"plain", "card=4111111111111111;", "card=************1111;", 1},
	{"grouped", "4111 1111 1111 1111\n", "**** **** **** 1111\n", 1},
	{"utf-16le", utf16le("4111111111111111"), utf16le("************1111"), 1},
	{"utf-16be", "\x00" + utf16le("4111111111111111")[:31], "\x00" + utf16le("************1111")[:31], 1},
	{"framing next to it", "\x00\x00\x00\x104111111111111111\x00\x00\x00\x041234", "\x00\x00\x00\x10************1111\x00\x00\x00\x041234", 1},
	{"a length byte that is a digit", "\x104111111111111111\x05", "\x10************1111\x05", 1},
	{"no escape sequences", "4111\x1b[0m111111111111", "4111\x1b[0m111111111111", 0},
	{"controls end a run", "4111\x0f111111111111", "4111\x0f111111111111", 0},
	{"high bytes end a run", "4111\xe2\x80\x8b111111111111", "4111\xe2\x80\x8b111111111111", 0},
	{"csv lines", "4111111111111111\n4222222222222\n", "************1111\n*********2222\n", 2},
	{"too long", "41111111111111111234", "41111111111111111234", 0},
	// The byte after a field is the next one's framing: a MySQL row's
	// card column last, then the next packet's length (53 bytes, 0x35);
	// a PostgreSQL DataRow's card column, then the next column's length
	// (00 00 00 35, after NULs, which are transparent).
	{"a length byte after it", "\x104111111111111111" + "5\x00\x00\x03", "\x10************1111" + "5\x00\x00\x03", 1},
	{"a four-byte length after it", "\x00\x00\x00\x104111111111111111\x00\x00\x005", "\x00\x00\x00\x10************1111\x00\x00\x005", 1},
	{"grouped, a length byte after it", "\x134111 1111 1111 11118", "\x13**** **** **** 11118", 1},
	{"amex, a length byte after it", "\x0f3782822463100050", "\x0f***********00050", 1},
	{"utf-16, a two-byte length after it", utf16le("4111111111111111") + "4\x00", utf16le("************1111") + "4\x00", 1},
	{"a 17-digit number whose first 16 fail", "41111111111111122", "41111111111111122", 0},
	{"a length byte before it", "\x051" + "4111111111111111x", "\x051************1111x", 1},
	{"a four-byte length before it", "\x00\x00\x003" + "5105105105105100\x00", "\x00\x00\x003************5100\x00", 1},
	{"length bytes before and after it", "\x057" + "4111111111111111" + "2\x00", "\x057************1111" + "2\x00", 1},
	{"an 18-digit number whose inner 16 fail", "741111111111111122", "741111111111111122", 0},
}

func TestBinary(t *testing.T) {
	for _, tc := range binaryCases {
		t.Run(tc.name, func(t *testing.T) {
			for _, slow := range []bool{false, true} {
				for _, step := range []int{len(tc.in), 1, 7} {
					m := mustNew(t, Config{Cards: true, Binary: true})
					m.slow = slow
					var got []byte
					for i := 0; i < len(tc.in); i += step {
						got = append(got, m.Write([]byte(tc.in[i:min(i+step, len(tc.in))]))...)
					}
					got = append(got, m.Flush()...)
					if string(got) != tc.want {
						t.Fatalf("slow %v, writes of %d: got %q, want %q", slow, step, got, tc.want)
					}
					if m.Masked() != tc.masked {
						t.Fatalf("Masked: got %d, want %d", m.Masked(), tc.masked)
					}
				}
			}
		})
	}
}

// TestSplits writes every case cut at every position, and byte by byte: the
// output is the same as in one write.
func TestSplits(t *testing.T) {
	for _, tc := range cardCases {
		t.Run(tc.name, func(t *testing.T) {
			in := []byte(tc.in + " tail\n")
			want := oneShot(t, Config{Cards: true}, in)
			for cut := 1; cut < len(in); cut++ {
				m := mustNew(t, Config{Cards: true})
				got := string(m.Write(in[:cut]))
				got += string(m.Write(in[cut:]))
				got += string(m.Flush())
				if got != want {
					t.Fatalf("cut at %d: got %q, want %q", cut, got, want)
				}
			}
			m := mustNew(t, Config{Cards: true})
			var got []byte
			for i := range in {
				got = append(got, m.Write(in[i:i+1])...)
			}
			got = append(got, m.Flush()...)
			if string(got) != want {
				t.Fatalf("byte by byte: got %q, want %q", got, want)
			}
		})
	}
}

func oneShot(t testing.TB, cfg Config, in []byte) string {
	t.Helper()
	m := mustNew(t, cfg)
	out := string(m.Write(in))
	return out + string(m.Flush())
}

func TestKeepLast(t *testing.T) {
	for _, tc := range []struct {
		keep int
		want string
	}{
		{0, "**** **** **** 1111"},
		{-1, "**** **** **** ****"},
		{1, "**** **** **** ***1"},
		{6, "**** **** **11 1111"},
	} {
		got, n := MaskString(Config{Cards: true, KeepLast: tc.keep}, "4111 1111 1111 1111")
		if got != tc.want || n != 1 {
			t.Errorf("KeepLast %d: got %q %d, want %q 1", tc.keep, got, n, tc.want)
		}
	}
}

// TestFlushKeepsContext flushes in the middle of a number: the leading
// digits go out as they are, and when the rest arrives it is masked, the
// last digits included, so the output never holds the whole number.
func TestFlushKeepsContext(t *testing.T) {
	const pan = "4111111111111111"
	for cut := 1; cut < len(pan); cut++ {
		m := mustNew(t, Config{Cards: true})
		out := string(m.Write([]byte("pay " + pan[:cut])))
		out += string(m.Flush())
		out += string(m.Write([]byte(pan[cut:] + " now\n")))
		out += string(m.Flush())
		if strings.Contains(digitsOf(out), pan) {
			t.Errorf("cut %d: the whole number went out: %q", cut, out)
		}
		if len(out) != len("pay "+pan+" now\n") {
			t.Errorf("cut %d: length changed: %q", cut, out)
		}
	}
}

// TestMaxHold colours every digit, so a number is longer than the hold: the
// masker releases its head early and still never emits the whole number.
func TestMaxHold(t *testing.T) {
	const pan = "5555555555554444"
	var in strings.Builder
	for _, d := range pan {
		in.WriteString("\x1b[38;5;12m" + string(d) + "\x1b[0m")
	}
	in.WriteString("\n")
	for _, chunk := range []int{1, 3, 7, 64, 1000} {
		m := mustNew(t, Config{Cards: true})
		var out []byte
		s := in.String()
		for i := 0; i < len(s); i += chunk {
			out = append(out, m.Write([]byte(s[i:min(i+chunk, len(s))]))...)
			if m.Pending() > 64 {
				t.Fatalf("chunk %d: Pending: got %d, want at most 64", chunk, m.Pending())
			}
		}
		out = append(out, m.Flush()...)
		if strings.Contains(digitsOf(string(out)), pan) {
			t.Errorf("chunk %d: the whole number went out: %q", chunk, out)
		}
		if stripEsc(string(out)) == stripEsc(s) {
			t.Errorf("chunk %d: nothing was masked: %q", chunk, out)
		}
	}
}

var escRE = regexp.MustCompile(`\x1b\[[0-9;]*m`)

func stripEsc(s string) string { return escRE.ReplaceAllString(s, "") }

func TestPatterns(t *testing.T) {
	ssn := regexp.MustCompile(`\b\d{3}-\d{2}-\d{4}\b`)
	key := regexp.MustCompile(`AKIA[0-9A-Z]{16}`)
	cfg := Config{Patterns: []*regexp.Regexp{ssn, key}}
	for _, tc := range []struct {
		name, in, want string
		masked         int
	}{
		{"ssn", "ssn 123-45-6789 ok\n", "ssn *********** ok\n", 1},
		{"escape inside", "ssn 12\x1b[1m3-45-6789\x1b[0m\n", "ssn **\x1b[1m*********\x1b[0m\n", 1},
		{"two lines", "AKIAABCDEFGHIJKLMNOP\nx 987-65-4321\n", "********************\nx ***********\n", 2},
		{"not across lines", "123-45-\n6789\n", "123-45-\n6789\n", 0},
		{"no newline yet", "id AKIAABCDEFGHIJKLMNOP", "id ********************", 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			want := tc.want
			for cut := 0; cut <= len(tc.in); cut++ {
				m := mustNew(t, cfg)
				got := string(m.Write([]byte(tc.in[:cut])))
				got += string(m.Write([]byte(tc.in[cut:])))
				got += string(m.Flush())
				if got != want {
					t.Fatalf("cut %d: got %q, want %q", cut, got, want)
				}
				if m.Masked() != tc.masked {
					t.Fatalf("cut %d: Masked: got %d, want %d", cut, m.Masked(), tc.masked)
				}
			}
		})
	}
}

func TestCardsAndPatterns(t *testing.T) {
	cfg := Config{Cards: true, Patterns: []*regexp.Regexp{regexp.MustCompile(`secret=\S+`)}}
	got, n := MaskString(cfg, "secret=abc 4111111111111111\n")
	if want := "********** ************1111\n"; got != want || n != 2 {
		t.Errorf("got %q %d, want %q 2", got, n, want)
	}
}

func TestNewErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
		want error
	}{
		{"keep too many", Config{KeepLast: 7}, ErrKeepLast},
		{"keep negative", Config{KeepLast: -2}, ErrKeepLast},
		{"hold too small", Config{MaxHold: 31}, ErrMaxHold},
		{"hold negative", Config{MaxHold: -1}, ErrMaxHold},
		{"nil pattern", Config{Patterns: []*regexp.Regexp{nil}}, ErrNilPattern},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(tc.cfg); !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
	if got, n := MaskString(Config{KeepLast: 9}, "abc"); got != "***" || n != 0 {
		t.Errorf("bad config: got %q %d, want %q 0", got, n, "***")
	}
}

// TestEscapesIntact feeds hostile and malformed escape sequences: whatever
// happens to the text, every escape byte comes out where it went in.
func TestEscapesIntact(t *testing.T) {
	for _, in := range []string{
		"\x1b[" + strings.Repeat("9", 100) + "m4111111111111111",
		"\x1b]0;" + strings.Repeat("4111111111111111", 10),
		"\x1b]0;unterminated 4111111111111111\x1b[31m4111111111111111",
		"\x1b\x1b\x1b[4111111111111111",
		"\x1b[4111\n111111111111m",
		"\x1bP1$r4111111111111111\x1b\\4111111111111111",
		"4111\x181111\x1a1111 1111",
		"\xff\xfe4111111111111111\x80",
		"\x9b" + strings.Repeat("4111", 10) + "m",
		"\xc2\x9b4111\x1b[4111111111111111m\xe2\x80\x8b4111111111111111",
		"4111\xe2\x80\x1b[m4111\xef\xbb\xbf4111\xe2\x81\xa04111\xc2\xad",
	} {
		out, _ := MaskString(Config{Cards: true}, in)
		if len(out) != len(in) {
			t.Fatalf("%q: length: got %d, want %d", in, len(out), len(in))
		}
		for i := range in {
			if in[i] != out[i] && !(out[i] == '*' && isDigit(in[i])) {
				t.Fatalf("%q: byte %d: got %q, want %q or '*'", in, i, out[i], in[i])
			}
		}
	}
}

func FuzzMasker(f *testing.F) {
	for _, tc := range cardCases {
		f.Add([]byte(tc.in), uint8(3))
	}
	f.Add([]byte("\x1b]0;4111111111111111\x07 4111-1111-1111-1111\n"), uint8(1))
	f.Add(bytes.Repeat([]byte("4111 "), 20), uint8(7))
	f.Fuzz(func(t *testing.T, in []byte, step uint8) {
		cfg := Config{Cards: true, MaxHold: 1 << 20}
		want := oneShot(t, cfg, in)
		if len(want) != len(in) {
			t.Fatalf("length: got %d, want %d", len(want), len(in))
		}
		// Escapes are byte-identical: only digits may change, into '*'.
		for i := range in {
			if in[i] != want[i] && !(want[i] == '*' && isDigit(in[i])) {
				t.Fatalf("byte %d: got %q, want %q or '*'", i, want[i], in[i])
			}
		}
		// Arbitrary splits give the one-shot output.
		n := int(step)%17 + 1
		m := mustNew(t, cfg)
		var got []byte
		for i := 0; i < len(in); i += n {
			got = append(got, m.Write(in[i:min(i+n, len(in))])...)
		}
		got = append(got, m.Flush()...)
		if string(got) != want {
			t.Fatalf("split by %d: got %q, want %q", n, got, want)
		}
		// With the default hold and patterns too, nothing panics and
		// nothing is held past MaxHold; in binary mode as well.
		for _, bin := range []bool{false, true} {
			m = mustNew(t, Config{Cards: true, Binary: bin, Patterns: []*regexp.Regexp{regexp.MustCompile(`[a-z]+[0-9]`)}})
			for i := 0; i < len(in); i += n {
				m.Write(in[i:min(i+n, len(in))])
				if m.Pending() > 64 {
					t.Fatalf("Pending: got %d, want at most 64", m.Pending())
				}
			}
			m.Flush()
		}
		// Binary mode: the same length, only digits changed, and splits
		// give the one-shot output.
		bcfg := Config{Cards: true, MaxHold: 1 << 20, Binary: true}
		bwant := oneShot(t, bcfg, in)
		for i := range in {
			if in[i] != bwant[i] && !(bwant[i] == '*' && isDigit(in[i])) {
				t.Fatalf("binary, byte %d: got %q, want %q or '*'", i, bwant[i], in[i])
			}
		}
		m = mustNew(t, bcfg)
		got = got[:0]
		for i := 0; i < len(in); i += n {
			got = append(got, m.Write(in[i:min(i+n, len(in))])...)
		}
		got = append(got, m.Flush()...)
		if string(got) != bwant {
			t.Fatalf("binary, split by %d: got %q, want %q", n, got, bwant)
		}
	})
}

func benchMask(b *testing.B, cfg Config, in []byte, chunk int) {
	m := mustNew(b, cfg)
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	for range b.N {
		for i := 0; i < len(in); i += chunk {
			m.Write(in[i:min(i+chunk, len(in))])
		}
		m.Flush()
	}
}

const mib = 1 << 20

func ordinaryText() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < mib; i++ {
		b.WriteString("-rw-r--r-- 1 root root  4096 Nov 27 07:55 \x1b[01;34mvar\x1b[0m/log/syslog.1 some words of text here\r\n")
	}
	return b.Bytes()[:mib]
}

func BenchmarkOrdinaryText(b *testing.B) {
	benchMask(b, Config{Cards: true}, ordinaryText(), 32*1024)
}

// logText is log-like output as `cat` of a web server log shows it:
// timestamps, ids, status codes and sizes, digits on every line.
func logText() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < mib; i++ {
		fmt.Fprintf(&b, "2026-01-%02dT%02d:%02d:%02d.000Z web1 nginx[%d]: GET /api/v1/items?page=%d status=%d bytes=%d user=alice took=0.%03ds\n",
			10+i%18, 10+i%13, 10+i%49, 10+i%47, 1000+i%9000, i%100, 200+(i%4)*100, (i*7919)%100000, 100+i%900)
	}
	return b.Bytes()[:mib]
}

func BenchmarkLogText(b *testing.B) {
	benchMask(b, Config{Cards: true}, logText(), 32*1024)
}

// cjkText is Chinese output with numbers on every line: an order number,
// an amount and a date among words of three-byte UTF-8 characters.
func cjkText() []byte {
	var b bytes.Buffer
	for i := 0; b.Len() < mib; i++ {
		fmt.Fprintf(&b, "订单号 %d 金额 %d 日期 2026-01-%02d 状态 “完成” 客户 张三\r\n", 100000+i, i%1000, 10+i%18)
	}
	return b.Bytes()[:mib]
}

// BenchmarkCJKText: every byte of a CJK character is from 0x80 on, which
// once made each line one long run for the state machine.
func BenchmarkCJKText(b *testing.B) {
	benchMask(b, Config{Cards: true}, cjkText(), 32*1024)
}

// BenchmarkLogText128K writes in the relay's streaming reads (128 KiB).
func BenchmarkLogText128K(b *testing.B) {
	benchMask(b, Config{Cards: true}, bytes.Repeat(logText(), 4), 128*1024)
}

// BenchmarkPlainCopy is the floor the masker is measured against: the same
// input copied into the same output buffer.
func BenchmarkPlainCopy(b *testing.B) {
	in := logText()
	out := make([]byte, 0, 64*1024)
	b.SetBytes(int64(len(in)))
	for range b.N {
		for i := 0; i < len(in); i += 32 * 1024 {
			out = append(out[:0], in[i:min(i+32*1024, len(in))]...)
		}
	}
}

func BenchmarkOrdinaryTextWithPattern(b *testing.B) {
	benchMask(b, Config{Cards: true, Patterns: []*regexp.Regexp{regexp.MustCompile(`AKIA[0-9A-Z]{16}`)}}, ordinaryText(), 32*1024)
}

func BenchmarkHostileDigits(b *testing.B) {
	benchMask(b, Config{Cards: true}, bytes.Repeat([]byte("4111 "), mib/5), 32*1024)
}

func BenchmarkHostileLongDigits(b *testing.B) {
	benchMask(b, Config{Cards: true}, bytes.Repeat([]byte("4"), mib), 32*1024)
}

func BenchmarkHostileEscapes(b *testing.B) {
	benchMask(b, Config{Cards: true}, bytes.Repeat([]byte("\x1b[1;2;3;4m"), mib/10), 32*1024)
}

func BenchmarkHostileMixed(b *testing.B) {
	benchMask(b, Config{Cards: true, Patterns: []*regexp.Regexp{regexp.MustCompile(`\d{3}-\d{2}-\d{4}`)}},
		bytes.Repeat([]byte("4\x1b[31m1-1\x1b]0;9\x07 "), mib/20), 32*1024)
}

func BenchmarkHostileByteByByte(b *testing.B) {
	benchMask(b, Config{Cards: true}, bytes.Repeat([]byte("4111 \x1b[0m"), mib/10)[:64*1024], 1)
}

// randomBytes is what a tcp forward of compressed or encrypted data carries
// (an HTTPS upstream, a database dump, an image): every byte value alike.
func randomBytes() []byte {
	b := make([]byte, mib)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range b {
		b[i] = byte(rng.Uint32())
	}
	return b
}

// BenchmarkRandomBytes writes random bytes in the relay's streaming reads
// (128 KiB), as a tcp forward's recorded content is masked.
func BenchmarkRandomBytes(b *testing.B) {
	benchMask(b, Config{Cards: true}, randomBytes(), 128*1024)
}

// BenchmarkRandomBytesBinary is BenchmarkRandomBytes in binary mode, the
// mode a tcp forward's content is masked in.
func BenchmarkRandomBytesBinary(b *testing.B) {
	benchMask(b, Config{Cards: true, Binary: true}, randomBytes(), 128*1024)
}

// BenchmarkLogTextBinary is log text in binary mode (an HTTP API's
// responses through a tcp forward).
func BenchmarkLogTextBinary(b *testing.B) {
	benchMask(b, Config{Cards: true, Binary: true}, bytes.Repeat(logText(), 4), 128*1024)
}

// TestBinaryPatterns: custom patterns see a binary stream's text with its
// NULs left out (a secret in UTF-16 is found) and mask it in place, and an
// ESC in the stream is a byte like any other, not the start of a sequence
// that hides what follows.
func TestBinaryPatterns(t *testing.T) {
	cfg := Config{Binary: true, Patterns: []*regexp.Regexp{regexp.MustCompile(`AKIA[0-9A-Z]{16}`)}}
	for _, tc := range []struct{ name, in, want string }{
		{"utf-16", "k=" + utf16le("AKIAIOSFODNN7EXAMPLE") + "\n", "k=" + strings.Repeat("*\x00", 20) + "\n"},
		{"after an osc opener", "\x1b]0;AKIAIOSFODNN7EXAMPLE\n", "\x1b]0;" + strings.Repeat("*", 20) + "\n"},
		{"plain", "AKIAIOSFODNN7EXAMPLE", strings.Repeat("*", 20)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := oneShot(t, cfg, []byte(tc.in)); got != tc.want {
				t.Fatalf("got %q, want %q", got, tc.want)
			}
		})
	}
}
