// Package mask masks card numbers (PANs) and custom patterns in a terminal
// output stream before anyone sees or stores it.
//
// # Basics
//
// A [Masker] sits on every byte of a session's output, before the bytes
// reach the user and the recording. [Masker.Write] returns what is safe to
// emit now and holds back a short tail (at most Config.MaxHold bytes) that
// could still become part of a card number; [Masker.Flush] releases it after
// a quiet period or at the end of the stream. [MaskString] is the one-shot
// form for stored strings such as database cells.
//
// A card number is 13 to 19 digits passing the Luhn check: plain, or in
// groups of 3 to 6 digits joined by single spaces or dashes (every window
// of whole groups of such a run is checked, so "4111 1111 1111 1111 12" is
// found). Masked digits become '*'; separators stay; the last KeepLast
// digits stay visible. More than 19 consecutive digits are not a card.
//
// Escape sequences (CSI, OSC and the other strings, charset designations)
// are parsed, never altered, and transparent to detection: digits coloured
// one by one are still one number, and digits inside a sequence (an SGR
// parameter, a window title) are not text. Card masking keeps the length of
// the stream: every output byte is the input byte or a '*' in place of a
// digit.
//
// So is what a terminal does not draw, since the screen shows the digits
// on either side of it together: the C0 controls that neither draw nor
// move the cursor (NUL, as in UTF-16 text, SO, SI, BEL and the others but
// BS, HT, LF, VT, FF, CR and ESC), DEL, and the zero-width and format
// characters U+200B to U+200F, U+202A to U+202E, U+2060 to U+2064, U+2066
// to U+2069 and U+FEFF, in UTF-8. A soft hyphen (U+00AD), which terminals
// draw as a hyphen, is a separator like '-', and so are the other blanks
// and hyphens text puts between digit groups: U+00A0 (no-break space),
// U+2000 to U+200A (figure, thin, hair spaces, …), U+2010 to U+2013
// (hyphens, figure and en dash), U+202F (narrow no-break space, a thousands
// separator) and U+205F. An 8-bit CSI (0x9b, or c2 9b,
// U+009B in UTF-8) is a CSI sequence, transparent, unless its parameters
// hold 13 digits or more or it is longer than 24 bytes: a terminal that
// does not take it as one (a raw 0x9b is not UTF-8) draws what follows, so
// such a sequence is text, and a number in it is masked. Patterns see text
// without any of these either.
//
// A stream no terminal draws (Config.Binary: a tcp forward's content, read
// as a capture or a hex dump) has none of this: no escape sequences, and
// NUL is the only byte transparent between digits (UTF-16 text); every
// other byte but a digit or a separator ends a run, so a card number that
// binary framing puts next to other digits (a field's length, the next
// field) is still seen whole rather than as part of a longer run. The
// bytes right before and after a field are often framing that is a digit
// (a MySQL field's one-byte length or a row's next packet length, a
// PostgreSQL DataRow column length after NULs, when it is 48 to 57), so
// in binary mode the windows that leave out a run's last digit, and a
// plain run's first, are checked too: a card with one such digit on
// either side or both is masked, those digits not.
//
// Input may be split anywhere, in the middle of a number or of an escape
// sequence: the parser state and the digits of the current run carry over.
// If a Flush or a full hold released the first digits of a number before
// the rest arrived, the rest is masked when it completes the number, its
// last digits included, so the output never holds every digit of it.
//
// Custom patterns (RE2) are matched within one line of text with escapes
// removed, when the line ends or when the hold is released; every byte of a
// match becomes '*'.
//
// Each input byte costs O(1) amortized (a Luhn check per digit group covers
// at most 19 digits); patterns add RE2's linear matching over each line,
// and the held tail (at most MaxHold bytes) once more per Write. Without
// patterns, text that cannot hold a card number (runs of digits and
// separators, with what is transparent between them, holding fewer than 13
// digits and ending in text, and no escape sequence or character that is
// not drawn) is skipped 64 bytes at a time, and output with nothing to mask
// or hold is returned as it came, without a copy. On the bench machine (2
// cores of an EPYC at 2.1 GHz): log text about 1.5 GB/s, CJK text with
// numbers about 1 GB/s, random bytes about 0.45 GB/s, and 2 GB/s in binary
// mode.
//
// # Concurrency
//
// A Masker is not safe for concurrent use; MaskString is.
//
// # Caveats
//
//   - Digits drawn out of order with cursor addressing, or typed over with
//     backspaces, can show a number on screen that never appears in the
//     byte stream in order; such output is not masked. BS, HT, CR and the
//     line feeds end a run of digits, as text does.
//   - A terminal that ignores U+009B draws the parameters of a short
//     c2 9b CSI: digits there that continue the digits before it are
//     not joined with them. Combining marks and variation selectors are
//     text: a digit carrying one ends a run.
//   - Patterns only see a match whole when the match lies within the last
//     MaxHold bytes of its line, or the line ends before the hold fills.
//   - A window title or other OSC string holding a card number is passed
//     through: escape sequences are never altered.
//   - In binary mode one digit of framing on either side of a card is seen
//     (above), but not two on a side, nor one before a grouped card, nor
//     any next to a 19-digit number (20 digits are not a card); and the
//     windows without the first or last digit mask about two in ten more
//     of the 14 to 19 digit numbers there.
//   - Windows of spaced digit groups also match other numbers that happen
//     to pass the Luhn check (one in ten 13 to 19 digit groupings, such as
//     a hex dump's columns); masking those is the safe way to be wrong.
package mask
