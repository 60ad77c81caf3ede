// Package safetext makes text that comes from outside (user, target and
// session names, commands, an IdP's claims) safe to put into logs, error
// messages and terminals: every name that reaches the bastion over the
// network is attacker-controlled, and a raw escape sequence in it could
// rewrite a log line or an operator's terminal.
package safetext

import (
	"strconv"
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
