// Package player replays recorded terminal sessions (asciicast v2) on the viewer's
// terminal, with their original timing, and without letting the recording attack
// that terminal.
//
// # Basics
//
// [Play] reads a recording from a [Source] ([FileSource] for a .cast file, or any
// Open function for a stored session) and writes it to an io.Writer, normally the
// viewer's terminal:
//
//	err := player.Play(ctx, player.FileSource("x.cast"), os.Stdout, player.Options{
//		Speed:     2,
//		IdleLimit: 2 * time.Second,
//	})
//
// Event times are idle-capped first (every pause longer than IdleLimit becomes
// IdleLimit) and then divided by Speed. The first frame is written at once, however
// late it was recorded, and the recording is streamed: nothing reads it whole, so
// the first frame of a 1 GiB recording appears as fast as that of a small one.
// Resize events change nothing on the viewer's terminal; input events are not shown
// (their echo is in the output); marker events are shown as a dim, sanitised note
// only when Options.ShowMarkers is set. With it, the end of playback (or the
// viewer quitting) lists the markers shown once more, after the recording's
// last byte and with its modes undone: the recording's own output can draw
// over an inline note at once, and can draw a look-alike (SGR 2 "dim" is
// passed), but it cannot draw that list. An inline note is drawn with the
// default attributes and in ASCII whatever the recording set (concealed,
// black on black, line drawing), and the recording's colours are not
// restored after it.
//
// With Options.Keys the viewer controls playback: space pauses (the clock stops),
// the arrow keys seek [SeekStep] forward (the events in between are written without
// delay) or back (the Source is opened again and played without delay up to the
// target, after the screen is cleared), '.' steps one event while paused, '+' and
// '-' double and halve the speed, 'q' or Ctrl-C quits. [MakeRaw] puts a local
// terminal in the raw mode this needs.
//
// # Safe output
//
// Unless Options.Raw is set, the output passes through a [Sanitizer]: a streaming
// filter that passes text and the escape sequences needed to show a session, and
// drops the rest. Passed: printable UTF-8; CR, LF, TAB, BS, BEL (VT and FF become
// LF); SGR (colours and attributes); cursor movement, save and restore; erasing
// (but not ED 3, which erases the viewer's scrollback); insert and delete; scroll
// regions and scrolling; the alternate screen; DEC private modes 6, 7, 25, 47, 1047,
// 1048, 1049 and ANSI mode 4 (insert); the G0 charsets ASCII and line drawing.
// Dropped: every OSC (clipboard 52, titles, hyperlinks 8, colour queries), DCS
// (DECRQSS, sixel, tmux passthrough, XTGETTCAP), SOS, PM and APC; every request that
// makes the terminal answer into the viewer's input (DA, DSR, DECRQM, window
// reports, ENQ, XTVERSION, kitty keyboard queries); window manipulation; mouse,
// keyboard, focus and bracketed-paste modes; tab stop changes, soft and full resets,
// charset shifts and 8-bit control mode. 8-bit C1 controls (0x80-0x9f), the same
// code points encoded as UTF-8, and invalid UTF-8 become '?'.
//
// A sequence passes only once it is complete and checked, in its 7-bit form, so
// the viewer's terminal is never left inside a sequence by the replay, and a list of
// modes is filtered (CSI ? 1049;1000 h becomes CSI ? 1049 h). At the end of
// playback, on quit and before a backward seek, the modes the recording left on
// (alternate screen, hidden cursor, scroll region, colours, ...) are turned off.
//
// # Concurrency
//
// Play runs in the caller's goroutine; with Options.Keys it starts one more that
// reads the keys. That goroutine ends when a Read returns an error, so a caller that
// passes a reader which blocks forever (os.Stdin) should expect it to outlive Play.
// A Sanitizer is not safe for concurrent use.
//
// # Caveats
//
// The Sanitizer protects the viewer's terminal, not the fidelity of the evidence:
// a recording can still hide text from a viewer with the means a screen has
// (concealed or same-colour text, overwriting, clearing). Audits that must not be
// misled read the recording's bytes (`bastion export --raw`), not the replay.
//
// An unterminated string (OSC, DCS, ...) is dropped for at most 4 KiB, and an
// overlong control sequence for at most 256 bytes; after that the Sanitizer goes
// back to showing bytes as text, so one stray introducer cannot hide the rest of a
// session. A real terminal would keep swallowing; the replay shows more instead.
//
// [SanitizeCast] applies the same Sanitizer to a recording's output events
// and writes an asciicast recording again, for players that write output
// to their terminal as it is (asciinema); `bastion export` uses it.
//
// Raw output is the recording's bytes unchanged, and dangerous for the reason the
// Sanitizer exists. It is meant for trusted recordings and for piping to a file.
package player
