package bastion_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bastionhq/bastion/internal/testenv"
)

// Debian's /bin/sh is dash, which reads some text differently from bash:
// it has no arithmetic command (`((a))` is two subshells), no `&>`
// redirect (`a &>f b` is `a &` then `>f b`) and no ANSI-C quoting (`$'`
// is a `$` then a single-quoted string, which a backslash does not end).
// A string run by sh must be judged as sh reads it, not only as bash does.
func TestBlockedExecAsDashReadsIt(t *testing.T) {
	testenv.Require(t, "dash")
	e := newEnv(t, envOptions{extraYAML: controlRules})
	// Arithmetic reads the path as division: keep it to names and slashes.
	dir, err := os.MkdirTemp("", "rtdash")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	victim := filepath.Join(dir, "victim")
	for _, cmd := range []string{
		"dash -c '((rm -rf " + victim + "))'",
		"dash -c 'echo x &>/dev/null rm -rf " + victim + "'",
		"dash -c \"echo \\$'\\\\'; rm -rf " + victim + "; echo \\\\'\n'\"",
		// An sh login shell reads the exec itself.
		"((rm -rf " + victim + "))",
		"echo x &>/dev/null rm -rf " + victim,
	} {
		t.Run(cmd, func(t *testing.T) {
			os.MkdirAll(victim, 0o755)
			r := e.ssh("", "root@web1", cmd)
			if !exists(victim) {
				t.Fatalf("the blocked command ran as dash reads it: %s", r)
			}
			mustContain(t, "stderr", r.Stderr, "blocked by rule no-rm-rf")
		})
	}
	// What bash and dash read alike still runs.
	r := e.ssh("", "root@web1", "dash -c 'echo x &>/dev/null; ((i=1)); echo ok'")
	mustContain(t, "stdout", r.Stdout, "ok\n")
}

// zsh and fish read some command words as bash does not: zsh's `=rm` is
// rm's path, `noglob`, `nocorrect` and `-` are precommand modifiers and
// `repeat N` a loop; fish's `and`, `or` and `not` run the command after
// them. bash reads each as a command of that name.
func TestBlockedExecZshFishWords(t *testing.T) {
	testenv.Require(t, "zsh")
	testenv.Require(t, "fish")
	e := newEnv(t, envOptions{extraYAML: controlRules})
	victim := filepath.Join(t.TempDir(), "victim")
	for _, cmd := range []string{
		"zsh -c '=rm -rf " + victim + "'",
		"zsh -c 'noglob rm -rf " + victim + "'",
		"zsh -c 'nocorrect rm -rf " + victim + "'",
		"zsh -c 'true; - rm -rf " + victim + "'",
		"zsh -c 'repeat 1 rm -rf " + victim + "'",
		"zsh -c 'repeat 1 { rm -rf " + victim + " }'",
		"fish -c 'true; and rm -rf " + victim + "'",
		"fish -c 'false; or rm -rf " + victim + "'",
		"fish -c 'not rm -rf " + victim + "'",
		// fish's single quotes take \' as a quote.
		"fish -c \"echo 'a\\\\''; rm -rf " + victim + "; echo '\\\\'' #'\"",
		// fish's alias takes the name and the value as two words.
		"fish -c 'alias x \"rm -rf " + victim + "\"; x'",
	} {
		t.Run(cmd, func(t *testing.T) {
			os.MkdirAll(victim, 0o755)
			r := e.ssh("", "root@web1", cmd)
			if !exists(victim) {
				t.Fatalf("the blocked command ran: %s", r)
			}
			mustContain(t, "stderr", r.Stderr, "blocked by rule no-rm-rf")
		})
	}
}

// zsh's $=x splits x's value into words, and $~x, $^x, $+x are parameter
// expansions too: bash reads each as a literal $ and text.
func TestRefusedExecZshParamFlags(t *testing.T) {
	testenv.Require(t, "zsh")
	e := newEnv(t, envOptions{extraYAML: controlRules})
	victim := filepath.Join(t.TempDir(), "victim")
	os.MkdirAll(victim, 0o755)
	r := e.ssh("", "root@web1", "zsh -c 'x=\"rm -rf "+victim+"\"; $=x'")
	if !exists(victim) {
		t.Fatalf("zsh's $=x ran a blocked command: %s", r)
	}
	if r.Code == 0 {
		t.Fatalf("not refused: %s", r)
	}
}

// zsh runs code in a glob qualifier (*(e:code:), *(+function)); bash with
// extglob reads *(...) as a pattern.
func TestRefusedExecZshGlobQualifier(t *testing.T) {
	testenv.Require(t, "zsh")
	e := newEnv(t, envOptions{extraYAML: controlRules})
	victim := filepath.Join(t.TempDir(), "victim")
	for _, cmd := range []string{
		"zsh -c 'echo /b*(e:\"rm -rf " + victim + "\":)'",
		"zsh -c 'echo /b*(.e{rm -rf " + victim + "})'",
	} {
		os.MkdirAll(victim, 0o755)
		r := e.ssh("", "root@web1", cmd)
		if !exists(victim) {
			t.Fatalf("%s: a glob qualifier ran a blocked command: %s", cmd, r)
		}
		mustContain(t, "stderr", r.Stderr, "blocked by rule no-rm-rf")
	}
}

// Programs that run their operands as a command, as sudo and nice do.
func TestBlockedExecMoreWrappers(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	victim := filepath.Join(t.TempDir(), "victim")
	for _, cmd := range []string{
		"setarch x86_64 -R rm -rf " + victim,
		"linux64 rm -rf " + victim,
		"prlimit --nofile=100 rm -rf " + victim,
		"setpriv --reuid 0 rm -rf " + victim,
		"ssh-agent rm -rf " + victim,
		// Launchers: a string for bash after capsh's "--", socat's SYSTEM
		// address, ssh's ProxyCommand (run locally before connecting), and
		// tmux's window command of several words, run as argv.
		"capsh -- -c 'rm -rf " + victim + "'",
		"socat - SYSTEM:'rm -rf " + victim + "'",
		"ssh -o BatchMode=yes -o ProxyCommand='rm -rf " + victim + "' nohost",
		"tmux -L rtw new -d bash -c 'command rm -rf " + victim + "'",
	} {
		t.Run(cmd, func(t *testing.T) {
			name, _, _ := strings.Cut(cmd, " ")
			testenv.Require(t, name)
			os.MkdirAll(victim, 0o755)
			r := e.ssh("", "root@web1", cmd)
			if !exists(victim) {
				t.Fatalf("the blocked command ran: %s", r)
			}
			mustContain(t, "stderr", r.Stderr, "blocked by rule no-rm-rf")
		})
	}
}

// bash expands substitutions inside an arithmetic expression even in
// single quotes, evaluates an indexed array's subscripts in a compound
// assignment, and evaluates a stored value's subscript whenever the
// variable is used in arithmetic: each ran rm while the parser saw only
// quoted text.
func TestRefusedExecArithmeticCode(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	victim := filepath.Join(t.TempDir(), "victim")
	for _, cmd := range []string{
		"echo $(( '$(rm -rf " + victim + ")' ))",
		"for (( i='$(rm -rf " + victim + ")'; i<1; i++ )); do :; done",
		"a=(['$(rm -rf " + victim + ")']=1)",
		"x='a[$(rm -rf " + victim + ")]'; echo $((x))",
		"read x <<< 'a[$(rm -rf " + victim + ")]'; echo $((x))",
	} {
		os.MkdirAll(victim, 0o755)
		r := e.ssh("", "root@web1", cmd)
		if !exists(victim) {
			t.Fatalf("%s: arithmetic ran a blocked command: %s", cmd, r)
		}
		if r.Code == 0 {
			t.Fatalf("%s: not refused: %s", cmd, r)
		}
	}
}
