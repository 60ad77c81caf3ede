package shellcmd

// ReasonDoubleByte: in a double-byte locale the text reads as something the
// analysis cannot follow (unfinished, or not bash).
const ReasonDoubleByte = "reads differently in a double-byte locale (BIG5, GBK, Shift_JIS, JOHAB)"

// bash reads its input in the locale's character set. In BIG5, BIG5-HKSCS,
// GBK, GB18030, Shift_JIS and JOHAB a byte of 0x81 or more may take the
// next byte with it as one character, and that byte may be ASCII: a
// backslash, a backquote, |, {, }, [ or ] after it (in JOHAB also ;, <, >,
// ? and =) is then part of a character, not syntax. Even valid UTF-8 is read so (U+4E2D is e4 b8 ad; BIG5 reads e4 b8
// and ad 5c), so `echo "中\" ; rm -rf x #"` is one echo to a UTF-8 reader
// and an rm to bash with LC_ALL=zh_TW.BIG5 (which a session's environment or
// the command itself can set). The analysis therefore also walks each text
// (the input, and every nested string) as these character sets read it,
// when they read it differently: what they would run is reported too.

// doubleByteSet is how one character set pairs bytes.
type doubleByteSet struct {
	lead  func(b byte) bool
	trail func(lead, b byte) bool
	four  bool // GB18030's four-byte sequences: lead, digit, lead, digit
}

func in(b, lo, hi byte) bool { return b >= lo && b <= hi }

var doubleByteSets = []doubleByteSet{
	{ // GBK, GB18030 (and CP936, CP949/UHC, whose pairs GBK's cover)
		lead:  func(b byte) bool { return in(b, 0x81, 0xfe) },
		trail: func(_, b byte) bool { return in(b, 0x40, 0x7e) || in(b, 0x80, 0xfe) },
		four:  true,
	},
	{ // BIG5
		lead:  func(b byte) bool { return in(b, 0xa1, 0xf9) },
		trail: func(_, b byte) bool { return in(b, 0x40, 0x7e) || in(b, 0xa1, 0xfe) },
	},
	{ // BIG5-HKSCS
		lead:  func(b byte) bool { return in(b, 0x87, 0xfe) },
		trail: func(_, b byte) bool { return in(b, 0x40, 0x7e) || in(b, 0xa1, 0xfe) },
	},
	{ // JOHAB: Hangul leads take 0x41-0x7e and 0x81-0xfe; the leads of
		// symbols and Hanja take 0x31-0x7e and 0x91-0xfe, digits and ; < > too
		lead: func(b byte) bool { return in(b, 0x84, 0xd3) || in(b, 0xd8, 0xde) || in(b, 0xe0, 0xf9) },
		trail: func(lead, b byte) bool {
			if lead <= 0xd3 {
				return in(b, 0x41, 0x7e) || in(b, 0x81, 0xfe)
			}
			return in(b, 0x31, 0x7e) || in(b, 0x91, 0xfe)
		},
	},
	{ // Shift_JIS, CP932 (0xa1-0xdf are single-byte katakana)
		lead:  func(b byte) bool { return in(b, 0x81, 0x9f) || in(b, 0xe0, 0xfc) },
		trail: func(_, b byte) bool { return in(b, 0x40, 0x7e) || in(b, 0x80, 0xfc) },
	},
}

// swallowable is an ASCII byte that is syntax to bash and may be the second
// byte of a double-byte character. (Letters may be too; a letter inside a
// character changes no syntax.)
func swallowable(b byte) bool {
	return b == '@' || in(b, '[', '`') || in(b, '{', '~') || in(b, ';', '?')
}

// mayReadDifferently is the cheap test: some byte of 0x81 or more is
// followed by a swallowable byte.
func mayReadDifferently(src string) bool {
	for i := 1; i < len(src); i++ {
		if src[i-1] >= 0x81 && swallowable(src[i]) {
			return true
		}
	}
	return false
}

// doubleByteReadings returns src as each double-byte character set reads
// it, where that differs in syntax: every character of two or more bytes
// becomes that many x's (a word character, as bash takes it), any other
// byte of 0x80 or more one x. Readings that swallow no swallowable byte are
// left out.
func doubleByteReadings(src string) []string {
	if !mayReadDifferently(src) {
		return nil
	}
	var out []string
	buf := make([]byte, len(src))
	for _, cs := range doubleByteSets {
		swallowed := false
		for i := 0; i < len(src); {
			b := src[i]
			switch {
			case b < 0x80:
				buf[i] = b
				i++
				continue
			case cs.four && i+3 < len(src) && cs.lead(b) && in(src[i+1], '0', '9') && in(src[i+2], 0x81, 0xfe) && in(src[i+3], '0', '9'):
				copy(buf[i:i+4], "xxxx")
				i += 4
				continue
			case cs.lead(b) && i+1 < len(src) && cs.trail(b, src[i+1]):
				swallowed = swallowed || swallowable(src[i+1])
				buf[i], buf[i+1] = 'x', 'x'
				i += 2
				continue
			}
			buf[i] = 'x'
			i++
		}
		if !swallowed {
			continue
		}
		r := string(buf)
		dup := false
		for _, o := range out {
			dup = dup || o == r
		}
		if !dup {
			out = append(out, r)
		}
	}
	return out
}
