package bastion_test

import (
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/testenv"
)

// keyGap is how fast these tests type: a person's pace.
const keyGap = 80 * time.Millisecond

// What the user sees when the guard stops a line.
const (
	seenBlocked    = "blocked by rule"
	seenHeld       = "Ctrl-C cancels"
	seenUnreadable = "could not be read"
)

// stopped types keys at a person's pace and expects the guard to stop the
// line they submit (block it, or hold it for approval: then Ctrl-C
// cancels it), then waits for the prompt. It returns what was seen.
func stopped(t *testing.T, p *testenv.PTY, keys string) string {
	t.Helper()
	p.Type(keys, keyGap)
	out, k := p.ExpectAny(30*time.Second, seenBlocked, seenHeld, seenUnreadable)
	if k == 1 {
		p.Send("\x03")
		out += p.Expect("cancelled", 30*time.Second)
	}
	return out + p.Expect("P> ", 30*time.Second)
}

// ran types keys at a person's pace and expects want in the output, then
// the prompt. Nothing may be refused on the way.
func ran(t *testing.T, p *testenv.PTY, keys, want string) {
	t.Helper()
	p.Type(keys, keyGap)
	out := p.Expect(want, 30*time.Second)
	if want != "P> " {
		out += p.Expect("P> ", 30*time.Second)
	}
	for _, refused := range []string{seenBlocked, seenHeld, seenUnreadable, "typed before the prompt"} {
		if strings.Contains(out, refused) {
			t.Fatalf("benign %q was refused:\n%s", keys, out)
		}
	}
}

// Every way found to get a blocked command past the interactive guard, typed
// the way a person types (keys 80 ms apart, waiting for the prompt), must
// leave the victim in place; benign lines typed the same way must run.
func TestGuardrailsInteractiveAtHumanPace(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules + `
  - {name: deploys, on: command, match: {command: "./deploy.sh *"}, action: approve, approvers: [approvers], timeout: 60s}
`})
	dir := t.TempDir()
	p := e.shell(t)
	// Work in dir, so that the lines typed stay short.
	p.Send("cd " + dir + "\r")
	p.Expect("P> ", 20*time.Second)
	victim := "victim"
	n := 0
	check := func(what string) {
		t.Helper()
		n++
		ran(t, p, fmt.Sprintf("echo check-$((%d*2))\r", n), fmt.Sprintf("check-%d", n*2))
		if !exists(filepath.Join(dir, victim)) {
			t.Fatalf("%s: the victim was deleted; output:\n%s", what, p.Output())
		}
	}
	os.MkdirAll(filepath.Join(dir, victim), 0o755)

	for _, c := range []struct {
		name  string
		setup []string // typed first, each allowed to run
		keys  string   // then these, which must be stopped
		paste string   // sent at once after keys (a paste)
		burst bool     // keys sent at once
	}{
		{name: "continuation typed during the hold", keys: "true\rrm -rf \\\r" + victim + "\r"},
		{name: "continuation typed while a command runs", keys: "sleep 1\rrm -rf \\\r" + victim + "\r"},
		{name: "heredoc fed to a shell", keys: "bash <<EOF\rrm -rf " + victim + "\rEOF\r"},
		{name: "quoted heredoc fed to a shell", keys: "sh <<'X'\recho hi; rm -rf " + victim + "\rX\r"},
		{name: "history word designators", setup: []string{"echo rm -rf " + victim}, keys: "!!:1-3\r"},
		{name: "quick substitution", setup: []string{"echo x -rf " + victim}, keys: "^echo x^rm\r"},
		{name: "history search and substitution", setup: []string{"echo rm -rf " + victim}, keys: "!echo:s/echo //\r"},
		{name: "fc -s", setup: []string{"echo rm -rf " + victim}, keys: "fc -s 'echo rm=rm'\r"},
		{name: "history by number", setup: []string{"echo rm -rf " + victim}, keys: "!-1:1-3\r"},
		{name: "history characters changed", keys: "histchars=@\r"},
		{name: "key binding macro", keys: `bind '"\C-t": "rm -rf ` + victim + `\n"'` + "\r"},
		{name: "echo turned off", keys: "stty -echo\r"},
		{name: "edit and execute", keys: "rm -rf " + victim + "\x18\x05"},
		// Default emacs keys that run something without Enter.
		{name: "shell-expand-line", keys: "echo $(rm -rf " + victim + ")\x1b\x05"},
		{name: "insert-comment with an argument", keys: "#rm -rf " + victim + "\x1b1\x1b#"},
		{name: "keyboard macro replaying Enter", setup: []string{"true\x18("}, keys: "\x18)rm -rf " + victim + "\x18e"},
		{name: "insert-comment and Enter in one read", keys: "#rm -rf " + victim + "\x1b1\x1b#\r", burst: true},
		// Where readline reads a byte with the eighth bit set as Meta
		// (convert-meta: the C locale), 0x85 is Alt-Ctrl-E and 0xa3 Alt-#.
		{name: "eight-bit shell-expand-line", setup: []string{"export LC_ALL=C"}, keys: "echo $(rm -rf " + victim + ")\x85"},
		{name: "eight-bit insert-comment", keys: "#rm -rf " + victim + "\xb1\xa3"},
		{name: "eight-bit insert-comment in one read", keys: "#rm -rf " + victim + "\xb1\xa3", burst: true},
		{name: "shell on the alternate screen", setup: []string{"printf '\\033[?1049h'"}, keys: "rm -rf " + victim + "\r"},
		{name: "continuation then paste", keys: "rm -rf \\\r", paste: victim + "\rtrue\r"},
		{name: "completion typed while a command runs", keys: "sleep 1\rrm -rf vict\t\r"},
		// A program, not bash, reads the line the guard took for the start
		// of a command, and bash runs the next line on its own.
		{name: "here-document opener read by a program", keys: "read x\rcat <<EOF\rrm -rf " + victim + "\r"},
		{name: "quote opener read by a program", keys: "read x\recho '\rrm -rf " + victim + " #'\r"},
		{name: "pattern bash rejects", setup: []string{"shopt -u extglob"}, keys: "echo @(\rrm -rf " + victim + "\r"},
		// Prompt code and renamed commands, in the forms bash also takes.
		{name: "PROMPT_COMMAND array", keys: "PROMPT_COMMAND=('rm -rf " + victim + "')\r"},
		{name: "PS1 array", keys: "PS1=('$(rm -rf " + victim + ")P> ')\r"},
		{name: "printf -v PROMPT_COMMAND", keys: "printf -v PROMPT_COMMAND 'rm -rf " + victim + "'\r"},
		{name: "read PROMPT_COMMAND", keys: "read -r PROMPT_COMMAND <<< 'rm -rf " + victim + "'\r"},
		{name: "hash -p", keys: "hash -p /bin/rm ls; ls -rf " + victim + "\r"},
		{name: "BASH_ALIASES", keys: "BASH_ALIASES[x]=rm\r"},
		{name: "BASH_ENV expanded by the next bash", keys: "export BASH_ENV='$(rm -rf " + victim + ")'\r"},
		// readline shows "(arg: 1) " over a longer prompt while it reads a
		// numeric argument: nothing of the line is after the prompt's end.
		{name: "numeric argument over a long prompt", setup: []string{"PS1='a-rather-long-prompt-P> '"}, keys: "rm -rf " + victim + "\x1b1\r"},
	} {
		t.Run(c.name, func(t *testing.T) {
			for i, s := range c.setup {
				ran(t, p, s+"\r", "P> ")
				_ = i
			}
			if c.burst {
				p.Send(c.keys)
				stopped(t, p, "")
			} else if c.paste != "" {
				p.Type(c.keys, keyGap)
				p.Expect("> ", 30*time.Second)
				stopped(t, p, c.paste)
			} else {
				stopped(t, p, c.keys)
			}
			if strings.Contains(c.name, "alternate") {
				ran(t, p, "printf '\\033[?1049l'\r", "P> ")
			}
			check(c.name)
		})
	}

	// The held deploy, recalled from history, asks for approval too.
	ran(t, p, ": ./deploy.sh v2\r", "P> ")
	out := stopped(t, p, "!!:1-2\r")
	if !strings.Contains(out, "held for approval") {
		t.Fatalf("the recalled deploy was not held:\n%s", out)
	}

	// Benign lines typed at the same pace run, including the next command
	// typed while the last one still runs.
	for _, c := range []struct{ keys, want string }{
		{"sleep 1\recho after-sleep-$((2*3))\r", "after-sleep-6"},
		{`echo "hi$((1))!"` + "\r", "hi1!"},
		{`echo "wow!" done-$((1+1))` + "\r", "wow! done-2"},
		{"for i in 1 2; do echo loop-$i; done\r", "loop-2"},
		{"if true; then\recho in-if-$((4+4))\rfi\r", "in-if-8"},
		{"cat <<EOF\rdoc line $((5+5))\rEOF\r", "doc line 10"}, // its line benign as a command too: typed ahead, each line is also judged as one
		{"ech\t tabbed-$((3+3))\r", "tabbed-6"},
		{"echo one-$((0+1)) | tr o O\r", "One-1"},
		{"[ ! -e /nonexistent ] && echo neg-$((7+7))\r", "neg-14"},
		{"echo recall-$((8+8))\r\x1b[A\r", "recall-16"},
		// (An Up arrow typed while a command runs is not here: bash reads
		// it only after the command, and the line gets the unknowable
		// action; see "completion typed while a command runs".)
		{"ls -d / > /dev/null; echo ok-$((9+9))\r", "ok-18"},
	} {
		ran(t, p, c.keys, c.want)
	}

	// Characters whose UTF-8 bytes include 0x85 or 0xa3 (read as Meta
	// keys in the C locale) are typed as usual in a UTF-8 locale,
	// unfinished lines included.
	ran(t, p, "export LC_ALL=C.UTF-8\r", "P> ")
	ran(t, p, "echo \"não £ Å\r\"\r", "não £ Å\r\n\r\n")
	ran(t, p, "echo ok-ą-ã\r", "ok-ą-ã")
	p.Send("exit\r")
	p.Wait(20 * time.Second)
}

// A line tracker that fails (here: output that crashed the screen model on
// main) fails closed for the line and keeps the session; the output that
// triggered it is recorded.
func TestGuardrailsTrackerNeverDropsSession(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	p := e.shell(t)
	ran(t, p, `head -c 119 /dev/zero | tr '\0' x; printf '\033[119G\033[9@'; echo; echo emitted-$((20+1))`+"\r", "emitted-21")
	ran(t, p, "echo alive-$((1+1))\r", "alive-2")
	p.Send("exit\r")
	p.Wait(20 * time.Second)
	out := e.ssh("", "bastion", "sessions", "--json")
	id := regexp.MustCompile(`"id":"([0-9A-Z]+)"`).FindStringSubmatch(out.Stdout)
	if id == nil {
		t.Fatalf("no session: %s", out)
	}
	e.waitEnded(t, id[1])
	exp := e.ssh("", "bastion", "export", id[1])
	if exp.Code != 0 || !strings.Contains(exp.Stdout, strings.Repeat("x", 119)) || !strings.Contains(exp.Stdout, "alive-2") {
		t.Fatalf("the recording lacks the output: %s", exp)
	}
}

// History expansion turned on inside an exec, or a shell asked to be
// interactive, cannot be judged: such an exec follows the unknowable
// action, even for an exec-only role.
func TestGuardrailsExecHistory(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: `
rules:
  - {name: no-rm-rf, on: command, match: {command: "rm -rf *"}, action: block, unknowable: block}
`})
	canary := filepath.Join(t.TempDir(), "canary")
	os.MkdirAll(canary, 0o755)
	for _, cmd := range []string{
		"set -o history -H\necho rm -rf " + canary + " >/dev/null\n!!:1-3",
		"set -H; set -o history\necho rm -rf " + canary + "\n!!:1-3",
		"bash -H -o history -c 'echo rm -rf " + canary + "'",
		"env SHELLOPTS=history:histexpand bash -c 'true'",
	} {
		r := e.ssh("", "root@web1", cmd)
		if !exists(canary) {
			t.Fatalf("%q deleted the canary: %s", cmd, r)
		}
		if r.Code != 126 || !strings.Contains(r.Stderr, "history expansion") {
			t.Errorf("%q: want a refusal naming history expansion, got %s", cmd, r)
		}
	}
	// A shell asked to be interactive on a session without a pty expands
	// history: its lines are judged as typed at a prompt.
	r := e.ssh("echo rm -rf "+canary+"\n!!:1-3\n", "root@web1", "bash -i")
	if !exists(canary) {
		t.Fatalf("bash -i deleted the canary: %s", r)
	}
	// Ordinary exec commands still run.
	r = e.ssh("", "root@web1", `echo "done!"; test ! -e /nonexistent && echo fine`)
	if r.Code != 0 || !strings.Contains(r.Stdout, "done!\nfine") {
		t.Fatalf("a benign exec was refused: %s", r)
	}
}

// A shell reading the session's input without a pty: a program that reads
// the line the guard took for the start of a command (read, cat) leaves
// bash to run the next one alone, which is judged too; commands that
// rename a program are not judged as the name they are typed with.
func TestGuardrailsProgramReadsInput(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: `
rules:
  - {name: no-rm-rf, on: command, match: {command: "rm -rf *"}, action: block, unknowable: block}
`})
	dir := t.TempDir()
	n := 0
	victim := func() string {
		n++
		v := filepath.Join(dir, fmt.Sprintf("v%d", n))
		os.MkdirAll(v, 0o755)
		return v
	}
	for _, c := range []struct{ stdin, command string }{
		{"rm -rf VICTIM\n", ""},
		{"read x\ncat <<EOF\nrm -rf VICTIM\nEOF\n", ""},
		{"read x\necho '\nrm -rf VICTIM #'\n", ""},
		{"read x\nfor i in 1; do\nrm -rf VICTIM\ndone\n", ""},
		{"shopt -u extglob\necho @(\nrm -rf VICTIM\n)\n", "bash -i"},
	} {
		v := victim()
		args := []string{"-T", "root@web1"}
		if c.command != "" {
			args = append(args, c.command)
		}
		r := e.ssh(strings.ReplaceAll(c.stdin, "VICTIM", v), args...)
		if !exists(v) {
			t.Errorf("%q deleted the victim: %s", c.stdin, r)
		}
	}
	for _, cmd := range []string{
		"hash -p /bin/rm ls; ls -rf VICTIM",
		"BASH_CMDS[ls]=/bin/rm; ls -rf VICTIM",
		"shopt -s expand_aliases; BASH_ALIASES[x]=rm\nx -rf VICTIM",
		"declare -n p=PROMPT_COMMAND; p='rm -rf VICTIM'; bash -ic true",
		// awk's system() runs a command line awk builds: unknowable.
		`awk 'BEGIN{system("r" "m -rf VICTIM")}'`,
		// So does python's os.system.
		`python3 -c 'import os; os.system("rm -rf VICTIM")'`,
	} {
		v := victim()
		cmd = strings.ReplaceAll(cmd, "VICTIM", v)
		if r := e.ssh("", "root@web1", cmd); !exists(v) || r.Code != 126 {
			t.Errorf("%q: want a refusal, the victim kept: %s", cmd, r)
		}
	}
	// Benign input of the same shapes still runs.
	r := e.ssh("read x\nskipped by read\ncat <<EOF\na here-document line\nEOF\necho after-$((4+4))\n", "-T", "root@web1")
	if !strings.Contains(r.Stdout, "a here-document line") || !strings.Contains(r.Stdout, "after-8") {
		t.Errorf("benign input: %s", r)
	}
}

// An exec-only role's commands are judged as written: an exec of a shell
// that would read its commands from the session's input is refused.
func TestGuardrailsExecOnlyRole(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	olga := e.userKey("olga", ca.Identity{User: "olga", Issuer: "https://idp.test", Subject: "u-olga", Groups: []string{"ops"}}, 0)
	cfg := e.writeSSHConfig("olga", olga)
	canary := filepath.Join(t.TempDir(), "canary")
	os.MkdirAll(canary, 0o755)
	for _, cmd := range []string{"bash", "sh -s", "sudo -i", "bash -i", "exec bash -l",
		// Options that take a value, and scripts that are the input.
		"bash -o errexit", "bash +o posix", "bash -O extglob", "bash --rcfile /dev/null",
		"bash /dev/stdin", "sh /dev/fd/0", ". /dev/stdin", "source /dev/stdin", "bash < /dev/stdin"} {
		r := testenv.Run(t, 30*time.Second, "echo rm -rf "+canary+"\n", "ssh", "-F", cfg, "-T", "root@web1", cmd)
		if r.Code != 126 || !strings.Contains(r.Stderr, "not a shell reading its commands") {
			t.Errorf("%q: want a refusal, got %s", cmd, r)
		}
	}
	if r := e.as(cfg, "root@web1", "echo exec-only-$((2+2))"); r.Code != 0 || !strings.Contains(r.Stdout, "exec-only-4") {
		t.Fatalf("an exec was refused: %s", r)
	}
	if !exists(canary) {
		t.Fatal("the canary was deleted")
	}
}
