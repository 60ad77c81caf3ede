package bastion_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
)

// Lines typed at a person's pace whose meaning depends on what the session
// did before (an alias defined at the prompt) or on keys that put a
// control character into the line (quoted-insert): each way must leave the
// victim in place, and each must be refused somewhere along the way.
func TestGuardrailsSessionStateAndLiterals(t *testing.T) {
	testenv.Require(t, "zsh")
	e := newEnv(t, envOptions{extraYAML: controlRules})
	dir := t.TempDir()
	p := e.shell(t)
	p.Send("cd " + dir + "\r")
	p.Expect("P> ", 20*time.Second)
	victim := "victim"
	os.MkdirAll(filepath.Join(dir, victim), 0o755)
	n := 0

	// resize stands for anything that makes the terminal draw while a key
	// is pending: readline redraws the line on a window change.
	const resize = "\x00resize"
	for _, c := range []struct {
		name  string
		lines []string // typed one after the other; at least one is refused
		loose bool     // no prompt is awaited after a line: each gets 3s
	}{
		// bash runs an alias's value with the words typed after it:
		// a value that ends in a wrapper, a separator, a comment or a
		// backslash makes those words a command, or hides the rest of
		// the line from the parse, or joins the next line to it.
		{name: "alias to a wrapper", lines: []string{"alias s=env\r", "s rm -rf " + victim + "\r"}},
		{name: "alias to a keyword", lines: []string{"alias s=time\r", "s rm -rf " + victim + "\r"}},
		{name: "alias ending in a separator", lines: []string{"alias s='true;'\r", "s rm -rf " + victim + "\r"}},
		{name: "alias to a comment", lines: []string{"alias s='#'\r", "s 'x\r", "rm -rf " + victim + " #'\r"}},
		{name: "alias ending in a backslash", lines: []string{"alias s='r\\'\r", "s\r", "m -rf " + victim + "\r"}},
		// Ctrl-V (quoted-insert) puts the next key into the line as a
		// character: a Ctrl-O or a CR after it runs nothing, and the # typed
		// after it is inside a word, not a comment.
		{name: "quoted Ctrl-O", lines: []string{"true x\x16" + resize + "\x0f#; rm -rf " + victim + "\r"}},
		{name: "quoted CR", lines: []string{"true x\x16" + resize + "\r#; rm -rf " + victim + "\r"}},
		// bash ends a here-document where the parser does not: at an
		// empty line for an empty delimiter, at a delimiter joined by a
		// backslash-newline, at EOF) inside $( ... ): it runs the
		// commands before it, and the next line is a command.
		{name: "empty here-document delimiter", lines: []string{"rm -rf " + victim + "; cat <<''\r", "\r"}},
		{name: "here-document delimiter joined by a backslash", lines: []string{"rm -rf " + victim + "; cat <<EOF\r", "E\\\r", "OF\r"}},
		{name: "line after a here-document joined by a backslash", lines: []string{"cat <<EOF\r", "E\\\r", "OF\r", "rm -rf " + victim + "\r"}},
		{name: "line after a here-document ended inside $(", lines: []string{"echo $(cat <<EOF\r", "EOF)\r", "rm -rf " + victim + "\r"}},
		// A # starts a comment at a prompt only with interactive
		// comments on: not in bash after shopt -u interactive_comments,
		// nor in zsh by default.
		{name: "interactive comments off", lines: []string{"shopt -u interactive_comments\r", "true #; rm -rf " + victim + "\r", "shopt -s interactive_comments\r"}},
		{name: "zsh without interactive comments", lines: []string{"PS1='P''> ' zsh -f\r", "true #; rm -rf " + victim + "\r", "exit\r"}},
		// bash's quoted-insert turns the terminal's signals off for the
		// key after Ctrl-V: a Ctrl-C then goes into the line, which the
		// Enter after it runs.
		{name: "quoted Ctrl-C", lines: []string{"rm -rf " + victim + " \x16\x03\r"}},
		// No prompt follows a refusal there: the lines are typed seconds
		// apart (the trap, held, times out after the quick rule's 2s).
		{name: "refused line run again", loose: true, lines: []string{"trap '' INT\r", "rm -rf " + victim + "\r", "\r"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			os.MkdirAll(filepath.Join(dir, victim), 0o755)
			refused := false
			if c.loose {
				before := len(p.Output())
				for _, l := range c.lines {
					p.Type(l, keyGap)
					time.Sleep(3 * time.Second)
				}
				out := p.Output()[before:]
				refused = strings.Contains(out, seenBlocked) || strings.Contains(out, seenHeld)
				p.Type("\x15trap - INT\r", keyGap)
				time.Sleep(time.Second)
				p.Send("\x03")
				time.Sleep(time.Second)
				p.Send("\x03")
				p.Expect("P> ", 20*time.Second)
			}
			for _, l := range c.lines {
				if c.loose {
					break
				}
				for i, part := range strings.Split(l, resize) {
					if i > 0 {
						// readline draws the prompt and the line again.
						p.Resize(100+i+n%2, 30)
						p.Expect("P> ", 20*time.Second)
						time.Sleep(100 * time.Millisecond)
					}
					p.Type(part, keyGap)
				}
				_, k := p.ExpectAny(20*time.Second, seenBlocked, seenHeld, seenUnreadable, "P> ", "\x1b[?2004h> ")
				switch k {
				case 1:
					// Keys typed during the hold are dropped; it may
					// also time out (the quick rule's 2s) before this.
					p.Send("\x03")
					p.ExpectAny(20*time.Second, "cancelled", "timed out")
					fallthrough
				case 0, 2:
					refused = true
					p.Expect("P> ", 20*time.Second)
				}
			}
			// Whatever the shell still holds (a continued line, a guard
			// that lost track) is dropped before the check.
			time.Sleep(200 * time.Millisecond)
			p.Send("\x03")
			p.Expect("P> ", 20*time.Second)
			n++
			ran(t, p, fmt.Sprintf("unalias -a; echo check-$((%d*2))\r", n), fmt.Sprintf("check-%d", n*2))
			if !exists(filepath.Join(dir, victim)) {
				t.Fatalf("the victim was deleted; output:\n%s", p.Output())
			}
			if !refused {
				t.Fatalf("nothing was refused; output:\n%s", p.Output())
			}
		})
	}
	p.Send("exit\r")
	p.Wait(20 * time.Second)
}
