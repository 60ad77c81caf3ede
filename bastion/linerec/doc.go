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
// completion list. Keys splits input at submit keys (CR, LF, Ctrl-O, and
// Ctrl-E or Ctrl-R after Ctrl-X, which make bash run an editor's buffer or
// re-read its bindings: Segment.Edit); the caller forwards a submit segment
// without its last key, waits until the echo has settled
// ([Tracker.Settled]: a lone Enter has nothing to echo, so a person's Enter
// is settled at once), judges [Tracker.Line], and then forwards the key and
// calls [Tracker.Commit], or [Tracker.Continue] when the shell will ask for
// more (an open quote, a trailing backslash), or cancels the line at the
// target and calls [Tracker.Cancel].
//
// Every Line carries a second reading, Keys: the keys replayed through a
// model of readline's default emacs bindings (printable text, Backspace,
// Delete, Ctrl-A/B/D/E/F/K/U/W, Left, Right, Home, End), continued lines
// included. KeysOK is false once a key the model cannot know the effect of
// was typed (history, completion, search, yank, Alt-keys). A line whose
// first key came before the shell drew its prompt (type-ahead) is
// Line.Early: its screen holds the running command's output, and the caller
// judges the keys; when they are not known, no reading can be trusted. A
// line with such a key that brought no output since is Line.Unanswered:
// the shell has not shown its effect yet (a slow completion).
//
// A multi-line paste comes back as one segment whose Paste field lists every
// line it submits, so the caller can judge them all before a byte of it is
// forwarded; PasteKeys lists them from the keys alone. A bracketed paste
// (ESC [200~ ... ESC [201~, when the shell enabled it) is inserted by the
// shell without running it; its lines are listed in Paste too, and the Enter
// after it is judged on the echo. After a paste that leaves a command
// unfinished, [Tracker.ContinueWith] tells the tracker which lines the shell
// holds.
//
// Line.Judge is false when the input is not a command line the screen can
// show: the alternate screen is active (vim, less, top; Line.Alt) or the
// typed keys were not echoed (a password prompt, or echo turned off;
// Line.Hidden). Text is empty then; Keys still holds what was typed, which
// the caller must treat as a possible secret.
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
//     read by readline later. Line.Early says so; the screen reading is then
//     not the line.
//   - A script written with an editor (vim x.sh, then bash x.sh), a here
//     document, or a file fetched from elsewhere runs commands that never
//     appear on a command line.
//   - Aliases, shell functions, PROMPT_COMMAND, traps and variables are
//     expanded by the shell after the line is judged; the judge sees the
//     text, not what the names mean.
//   - Readline macros, custom key bindings (bind, .inputrc), vi mode and
//     keys the shell binds differently change what keys do. Submit keys are
//     CR, LF and Ctrl-O, and zsh's Alt-a, Alt-x and Alt-z; a binding of
//     another key to accept-line is not seen.
//   - Ctrl-X Ctrl-E (edit-and-execute-command) is reported as a submit
//     (Segment.Edit), but what the editor saves cannot be read; in vi mode
//     `v` does the same and is not recognised. The other default emacs
//     keys that run something without Enter are reported the same way:
//     Ctrl-X e (a keyboard macro, which may replay an Enter), Alt-Ctrl-E
//     (shell-expand-line runs the line's command substitutions) and Alt-#
//     (insert-comment, which with a numeric argument uncomments the line
//     and runs it). With convert-meta on (bash in the C locale), a byte
//     with the eighth bit set is an Alt-key too (0x85 is Alt-Ctrl-E, 0xa3
//     Alt-#); since the locale the shell reads with is not known, a
//     character holding such a byte is held like those keys (in a UTF-8
//     locale it is a character: the line is judged, silently when
//     allowed). A numeric argument (Alt-digit) makes readline show
//     "(arg: N) " over the prompt; Line.Arg reads the line after it.
//   - Output that is not echo (a background job writing to the terminal
//     while the user types) changes the screen without changing the line.
//   - A line whose echo arrives after the caller stopped waiting looks like a
//     password prompt (Hidden); the caller should wait for Settled.
//   - History recall of a multi-line entry, quoted-insert (Ctrl-V Ctrl-J)
//     and bracketed pastes put line breaks into the line; the text is then
//     judged as several lines, each of them a command.
//   - Full-width and combining characters are measured with a built-in
//     approximation of wcwidth; combining marks are dropped.
//   - A resized window is not reflowed (as in xterm); readline redraws the
//     line after SIGWINCH and that redraw is what is read.
package linerec
