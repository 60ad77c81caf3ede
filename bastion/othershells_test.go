package bastion_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
)

// zsh's line editor runs the line on more keys than bash's readline:
// Alt-a (accept-and-hold) runs it and keeps it in the buffer, Alt-x runs
// a widget named in the minibuffer and Alt-z the last one named again.
func TestGuardrailsZshKeys(t *testing.T) {
	testenv.Require(t, "zsh")
	e := newEnv(t, envOptions{extraYAML: controlRules})
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	p := e.shell(t)
	p.Send("cd " + dir + "\r")
	p.Expect("P> ", 20*time.Second)
	p.Type("exec env -u VISUAL -u EDITOR zsh -f\r", keyGap)
	p.Expect(zshPrompt(t), 20*time.Second)
	time.Sleep(time.Second)
	p.Type("PS1='P''> '\r", keyGap)
	p.Expect("P> ", 20*time.Second)
	// zsh's r (ksh's too) re-runs the last command, with a substitution.
	os.MkdirAll(victim, 0o755)
	ran(t, p, "echo -rf victim\r", "P> ")
	stopped(t, p, "r echo=rm\r")
	if !exists(victim) {
		t.Fatalf("r ran a blocked command in zsh:\n%s", p.Output())
	}
	// zsh's bindkey is bash's bind: -s makes a key type a line.
	os.MkdirAll(victim, 0o755)
	p.Type("bindkey -s '^T' 'rm -rf victim\\n'\r", keyGap)
	time.Sleep(2 * time.Second)
	p.Send("\x03")
	time.Sleep(500 * time.Millisecond)
	p.Send("\x14")
	time.Sleep(2 * time.Second)
	p.Send("\x03")
	time.Sleep(500 * time.Millisecond)
	if !exists(victim) {
		t.Fatalf("a zsh key binding ran a blocked command:\n%s", p.Output())
	}
	for _, keys := range []string{"rm -rf victim\x1ba", "rm -rf victim\x1bA", "true\x1bxaccept-and-hold\r\x15rm -rf victim\x1bz"} {
		os.MkdirAll(victim, 0o755)
		p.Type(keys, keyGap)
		time.Sleep(2 * time.Second)
		p.Send("\x15\x03")
		time.Sleep(500 * time.Millisecond)
		if !exists(victim) {
			t.Fatalf("keys %q ran a blocked command in zsh:\n%s", keys, p.Output())
		}
	}
}

// fish's abbreviations become their expansion when Enter is pressed after
// the name: the expansion is code, judged where it is defined.
func TestGuardrailsFishAbbr(t *testing.T) {
	testenv.Require(t, "fish")
	e := newEnv(t, envOptions{extraYAML: controlRules})
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.MkdirAll(victim, 0o755)
	p := e.shell(t)
	p.Send("cd " + dir + "\r")
	p.Expect("P> ", 20*time.Second)
	p.Type("exec fish --no-config\r", keyGap)
	p.Expect("# ", 20*time.Second)
	time.Sleep(time.Second)
	p.Type("abbr -a xq rm -rf victim\r", keyGap)
	if _, k := p.ExpectAny(20*time.Second, seenBlocked, seenHeld); k == 1 {
		p.Send("\x03")
		p.Expect("cancelled", 20*time.Second)
	}
	time.Sleep(time.Second)
	p.Type("xq\r", keyGap)
	time.Sleep(2 * time.Second)
	if !exists(victim) {
		t.Fatalf("an abbreviation ran a blocked command in fish:\n%s", p.Output())
	}
}

// A line bash would continue (it waits for the rest) but zsh or fish runs
// at once: zsh's { cmd } closes without a ;, fish's blocks end in end.
func TestGuardrailsUnfinishedForBashOnly(t *testing.T) {
	testenv.Require(t, "zsh")
	testenv.Require(t, "fish")
	for _, c := range []struct{ shell, prompt, keys string }{
		{"zsh -f", zshPrompt(t), "{ rm -rf victim }\r"},
		{"fish --no-config", "# ", "if true; rm -rf victim; end\r"},
		{"fish --no-config", "# ", "while true; rm -rf victim; break; end\r"},
	} {
		t.Run(c.shell+" "+c.keys, func(t *testing.T) {
			e := newEnv(t, envOptions{extraYAML: controlRules})
			dir := t.TempDir()
			victim := filepath.Join(dir, "victim")
			os.MkdirAll(victim, 0o755)
			p := e.shell(t)
			p.Send("cd " + dir + "\r")
			p.Expect("P> ", 20*time.Second)
			p.Type("exec "+c.shell+"\r", keyGap)
			p.Expect(c.prompt, 20*time.Second)
			time.Sleep(time.Second)
			p.Type(c.keys, keyGap)
			time.Sleep(2 * time.Second)
			if !exists(victim) {
				t.Fatalf("%s ran a blocked command:\n%s", c.shell, p.Output())
			}
		})
	}
}

// zshPrompt is zsh -f's prompt for root: the host name up to its first
// dot (%m), then "# ".
func zshPrompt(t *testing.T) string {
	t.Helper()
	h, err := os.Hostname()
	if err != nil {
		t.Fatal(err)
	}
	h, _, _ = strings.Cut(h, ".")
	return h + "# "
}
