// Package safetext makes text that comes from outside (user, target and
// session names, commands, an IdP's claims) safe to put into logs, error
// messages and terminals: every name that reaches the bastion over the
// network is attacker-controlled, and a raw escape sequence in it could
// rewrite a log line or an operator's terminal.
package safetext

import (
	"bytes"
	"io"
	"strconv"
	"unicode"
	"unicode/utf8"
)

// MaxLen is how many bytes of the text Printable keeps; longer text is cut
// (on a character boundary) and ends in "…".
const MaxLen = 200

// Escaped is Printable without the cut: every byte of s is shown, for text
// a person decides on (a held command an approver reads).
func Escaped(s string) string {
	q := strconv.QuoteToASCII(s)
	return q[1 : len(q)-1]
}

// Printable returns s with control characters, invalid UTF-8 and every
// non-ASCII character written as Go escapes (\x1b, \u202e), without
// surrounding quotes, cut to MaxLen bytes.
func Printable(s string) string {
	cut := false
	if len(s) > MaxLen {
		n := MaxLen
		for n > 0 && !utf8.RuneStart(s[n]) {
			n--
		}
		s, cut = s[:n], true
	}
	q := strconv.QuoteToASCII(s)
	q = q[1 : len(q)-1]
	if cut {
		q += "…"
	}
	return q
}

// Visible returns s for a display that draws Unicode text, such as a web
// page: what such a display does not draw, draws as something else, or lets
// change how the text around it is drawn is written as a Go escape, and the
// rest (line feeds, tabs, other scripts) is kept. Escaped are invalid UTF-8
// (\xff), control characters but LF and TAB (\r, \x1b: a browser draws a CR
// as a line break), format characters (the bidirectional controls U+202A-
// U+202E and U+2066-U+2069 that reorder what follows them, "Trojan source";
// zero-width characters; U+FEFF), line and paragraph separators, spaces
// other than U+0020 (they look like one but do not separate words in a
// shell), variation selectors, other default-ignorable characters (Hangul
// fillers) and unassigned or private-use code points. So a held command
// reads in its own order, and nothing in it is hidden.
func Visible(s string) string {
	i := 0
	for i < len(s) {
		c := s[i]
		if c >= 0x20 && c < 0x7f || c == '\n' || c == '\t' {
			i++
			continue
		}
		r, n := utf8.DecodeRuneInString(s[i:])
		if hidden(r, n) {
			break
		}
		i += n
	}
	if i == len(s) {
		return s
	}
	b := make([]byte, 0, len(s)+16)
	b = append(b, s[:i]...)
	for i < len(s) {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = append(b, `\x`...)
			b = append(b, "0123456789abcdef"[s[i]>>4], "0123456789abcdef"[s[i]&15])
		case hidden(r, n):
			q := strconv.QuoteRuneToASCII(r)
			b = append(b, q[1:len(q)-1]...)
		default:
			b = append(b, s[i:i+n]...)
		}
		i += n
	}
	return string(b)
}

// hidden reports whether Visible escapes the rune r of n bytes.
func hidden(r rune, n int) bool {
	switch {
	case r == utf8.RuneError && n == 1:
		return true
	case r == '\n' || r == '\t':
		return false
	case r == ' ':
		return false
	case !unicode.IsGraphic(r), unicode.Is(unicode.Zs, r):
		return true
	case unicode.Is(unicode.Variation_Selector, r), unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r):
		return true
	case r == 0x2800: // BRAILLE PATTERN BLANK: drawn as nothing
		return true
	}
	return false
}

// EscapeC1 returns the JSON text b (valid UTF-8, as encoding/json writes
// it) with every C1 control, U+0080-U+009F, written as a \u escape.
// encoding/json escapes the C0 controls but writes these as their UTF-8
// bytes, and a terminal that obeys C1 controls in UTF-8 reads U+009B as CSI
// and U+009D as OSC: a name or command a user chose could then act on the
// terminal of whoever reads the JSON there. Outside strings JSON is ASCII,
// so the bytes 0xc2 0x80-0x9f occur only inside strings, and the result
// decodes to the same values. b is returned as is when it has none.
func EscapeC1(b []byte) []byte {
	i := c1Index(b)
	if i < 0 {
		return b
	}
	const hex = "0123456789abcdef"
	out := make([]byte, 0, len(b)+16)
	for i >= 0 {
		out = append(out, b[:i]...)
		out = append(out, '\\', 'u', '0', '0', hex[b[i+1]>>4], hex[b[i+1]&15])
		b = b[i+2:]
		i = c1Index(b)
	}
	return append(out, b...)
}

// c1Index returns the index of the first UTF-8 encoded C1 control in b, or -1.
func c1Index(b []byte) int {
	for off := 0; ; {
		j := bytes.IndexByte(b[off:], 0xc2)
		if j < 0 {
			return -1
		}
		j += off
		if j+1 < len(b) && b[j+1] >= 0x80 && b[j+1] <= 0x9f {
			return j
		}
		off = j + 1
	}
}

// JSONWriter returns a writer that passes each write to w through
// EscapeC1: for a json.Encoder, which writes each value whole.
func JSONWriter(w io.Writer) io.Writer { return jsonWriter{w} }

type jsonWriter struct{ w io.Writer }

func (j jsonWriter) Write(p []byte) (int, error) {
	if _, err := j.w.Write(EscapeC1(p)); err != nil {
		return 0, err
	}
	return len(p), nil
}
