// Package safetext makes text that comes from outside (user, target and
// session names, commands, an IdP's claims) safe to put into logs, error
// messages and terminals: every name that reaches the bastion over the
// network is attacker-controlled, and a raw escape sequence in it could
// rewrite a log line or an operator's terminal.
package safetext

import (
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
