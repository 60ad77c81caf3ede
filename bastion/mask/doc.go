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
// separators shorter than 13 bytes that end in text, and no escape) is
// skipped 64 bytes at a time, and output with nothing to mask or hold is
// returned as it came, without a copy: log text masks at about 2 GB/s.
//
// # Concurrency
//
// A Masker is not safe for concurrent use; MaskString is.
//
// # Caveats
//
//   - Digits drawn out of order with cursor addressing, or typed over with
//     backspaces, can show a number on screen that never appears in the
//     byte stream in order; such output is not masked.
//   - Patterns only see a match whole when the match lies within the last
//     MaxHold bytes of its line, or the line ends before the hold fills.
//   - A window title or other OSC string holding a card number is passed
//     through: escape sequences are never altered.
//   - Windows of spaced digit groups also match other numbers that happen
//     to pass the Luhn check (one in ten 13 to 19 digit groupings, such as
//     a hex dump's columns); masking those is the safe way to be wrong.
package mask
