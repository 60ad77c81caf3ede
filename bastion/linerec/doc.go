// Package linerec reconstructs the line an interactive shell will run when
// the user presses Enter, from the keystrokes going to the target and the
// echo coming back.
//
// # Basics
//
// The echoed screen is the truth: readline, not the bastion, knows what
// history recall, tab completion, Ctrl-W or a cursor movement did to the
// line, and it shows the result. A [Tracker] runs a terminal emulator over
// the target's output ([Tracker.Output]) and watches the keys
// ([Tracker.Keys]). The first key after a prompt anchors the line at the
// cursor; from then on only what is drawn after the anchor counts, and the
// anchor follows scrolling (a long line wrapping at the bottom of the
// window), a cleared screen (Ctrl-L) and a prompt redrawn below a
// completion list. Keys splits input at submit keys (CR, LF, Ctrl-O); the
// caller forwards a submit segment without its last key, waits until the
// echo has settled ([Tracker.Settled], or a short timeout), judges
// [Tracker.Line], and then forwards the key and calls [Tracker.Commit], or
// [Tracker.Continue] when the shell will ask for more (an open quote, a
// trailing backslash), or cancels the line at the target and calls
// [Tracker.Cancel].
//
// A multi-line paste comes back as one segment whose Paste field lists every
// line it submits, so the caller can judge them all before a byte of it is
// forwarded. Those lines are rebuilt from the keys alone, by a small model of
// readline's default emacs bindings (printable text, Backspace, Delete,
// Ctrl-A/B/D/E/F/K/U/W, Left, Right, Home, End); keys the model cannot know
// the effect of (history, completion, search, yank, Alt-keys) are dropped
// from those lines. A bracketed paste (ESC [200~ ... ESC [201~, when the
// shell enabled it) is inserted by the shell without running it; its lines
// are listed in Paste too, and the Enter after it is judged on the echo.
//
// Line.Judge is false when the input is not a command line: the alternate
// screen is active (vim, less, top) or the typed keys were not echoed (a
// password prompt). Text is empty then, so a password never reaches a rule,
// a log or an approval request.
//
// The emulator is this package's own (screen.go), not
// github.com/charmbracelet/x/vt, which is still used by the tests as a
// reference for the sequences readline draws with. Measured on vt v0.1.0:
// it copies the whole screen, cell by cell, on every scroll
// (BenchmarkVTNewlines: over a second per 64 KiB of newlines, where this
// emulator does tens to hundreds of MB/s on the same machine); it repeats
// REP and tab sequences as many times as the target asks
// (ESC [2000000000b); it writes answers to queries (DA, DSR, colour
// queries) into an unbuffered pipe, so its Write blocks until someone reads
// them; it allocates a 4 MiB buffer per instance; and it does not report
// scrolling, which the anchor needs. The emulator here implements the
// subset shells and line editors draw with (xterm auto-wrap with the
// pending-wrap column, cursor motion, erase, insert and delete characters
// and lines, scroll regions, origin and insert modes, the alternate screen),
// answers nothing, keeps characters and no colours, and clamps every
// parameter, so each output byte costs O(1) apart from scrolls and erases
// (O(rows) and O(cols)); BenchmarkOutputHostile feeds it a MiB of huge
// parameters, endless OSC strings and scroll storms.
//
// # Concurrency
//
// A Tracker is not safe for concurrent use: the session that owns it calls
// Output and Keys from one goroutine or under one lock.
//
// # Caveats
//
// This is a guardrail for honest mistakes and casual attempts, not a
// boundary. A user with a shell can run anything the shell can reach; where
// rules must hold, give the role exec-only access (shell: false) and judge
// exact exec commands instead. Specifically:
//
//   - Type-ahead: keys typed while a command runs are echoed by the tty and
//     again by readline later; the anchor is taken at the first key after
//     the previous Enter, so such a line is judged with the command's output
//     or the prompt in front of it (Line.Why says so when it can tell).
//   - A script written with an editor (vim x.sh, then bash x.sh), a here
//     document, or a file fetched from elsewhere runs commands that never
//     appear on a command line.
//   - Aliases, shell functions, PROMPT_COMMAND, traps and variables are
//     expanded by the shell after the line is judged; the judge sees the
//     text, not what the names mean.
//   - Readline macros, custom key bindings (bind, .inputrc), vi mode and
//     keys the shell binds differently change what keys do. Submit keys are
//     CR, LF and Ctrl-O only; a binding of another key to accept-line is
//     not seen.
//   - Ctrl-X Ctrl-E (edit-and-execute-command) opens an editor on the
//     alternate screen and runs what is saved there without an Enter at the
//     prompt.
//   - Output that is not echo (a background job writing to the terminal
//     while the user types) changes the screen without changing the line.
//   - A line whose echo arrives after the caller stopped waiting looks like a
//     password prompt (Judge false); the caller should wait for Settled.
//   - History recall of a multi-line entry, quoted-insert (Ctrl-V Ctrl-J)
//     and bracketed pastes put line breaks into the line; the text is then
//     judged as several lines, each of them a command.
//   - Full-width and combining characters are measured with a built-in
//     approximation of wcwidth; combining marks are dropped.
//   - A resized window is not reflowed (as in xterm); readline redraws the
//     line after SIGWINCH and that redraw is what is read.
package linerec
