package shellcmd

import (
	"slices"
	"strings"
	"testing"
)

func TestHistoryExpansion(t *testing.T) {
	for _, tc := range []struct {
		line string
		want bool
	}{
		{"!!", true},
		{"!!:1-3", true},
		{"sudo !!", true},
		{"!echo:s/echo //", true},
		{"!-2", true},
		{"!?rm?", true},
		{"echo !$", true},
		{"^echo x^rm", true},
		{"  ^a^b", true},
		{`echo "a!b"`, true},
		{"echo a!b", true},
		{"ok\n!!", true},
		{"echo 'x\n!!'", true}, // each line is expanded on its own
		{`echo \'!!`, true},

		{"ls", false},
		{"echo hi!", false},
		{`echo "hello!"`, false},
		{"[ ! -f x ]", false},
		{"if ! grep -q x f; then echo no; fi", false},
		{"echo 'a!b'", false},
		{`echo $'a\'!b'`, false},
		{`echo \!x`, false},
		{"echo $!", false},
		{"echo ${!name}", false},
		{"ls [!a]*", false},
		{"x=!", false},
		{"echo a != b", false},
		{"echo hi # comment!x", false},
		{"awk '!seen[$0]++' f", false},
	} {
		_, got := HistoryExpansion(tc.line)
		if got != tc.want {
			t.Errorf("HistoryExpansion(%q): got %v, want %v", tc.line, got, tc.want)
		}
	}
}

func TestHistoryAndEditingCommands(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want string // reason, or "" for none
	}{
		{"fc -s", ReasonHistory},
		{"fc -s 'echo rm=rm'", ReasonHistory},
		{"fc", ReasonHistory},
		{"fc -e vi 3", ReasonHistory},
		{"fc -l", ""},
		{"fc -ln -5", ""},
		{"set -o history -H", ReasonHistory},
		{"set -H", ReasonHistory},
		{"set -eH", ReasonHistory},
		{"set -o histexpand", ReasonHistory},
		{"set -o vi", ReasonLineEditing},
		{"set +H", ""},
		{"set -e", ""},
		{"set -o pipefail", ""},
		{"set -- -H", ""},
		{"set -k", ReasonKeyword},
		{"set -ek", ReasonKeyword},
		{"set -o keyword", ReasonKeyword},
		{"set +k", ""},
		{"set -k; git fetch GIT_SSH_COMMAND='rm -rf /srv' origin", ReasonKeyword},
		{"shopt -so keyword", ReasonKeyword},
		{"bash -k -c \"git fetch GIT_SSH_COMMAND='rm -rf /srv' origin\"", ReasonKeyword},
		{"bash -kc 'git fetch'", ReasonKeyword},
		{"bash -o keyword -c 'echo hi'", ReasonKeyword},
		{"shopt -s -o histexpand", ReasonHistory},
		{"shopt -so history", ReasonHistory},
		{"shopt -s extglob", ""},
		{"bash -H -c 'echo hi'", ReasonHistory},
		{"bash -o history -c 'echo hi'", ReasonHistory},
		{"histchars=@", ReasonHistory},
		{"histchars=", ReasonHistory},
		{"export histchars=%", ReasonHistory},
		{"env SHELLOPTS=history:histexpand bash -c 'echo'", ReasonHistory},
		{"INPUTRC=/tmp/x bash", ReasonLineEditing},
		{`bind '"\C-t": "rm -rf x\n"'`, ReasonLineEditing},
		{`bind -x '"\C-t": rm -rf x'`, ReasonLineEditing},
		{"bind -f /tmp/inputrc", ReasonLineEditing},
		{"bind -p", ""},
		{"bind -q accept-line", ""},
		{"stty -echo", ReasonLineEditing},
		{"stty eol ^T", ReasonLineEditing},
		{"stty -isig", ReasonLineEditing},
		{"stty raw", ReasonLineEditing},
		{"stty -a", ""},
		{"stty size", ""},
		{"stty sane", ""},
		{"stty cols 100 rows 40", ReasonTerminal},
		{"stty rows 40", ReasonTerminal},
		{"stty columns 2000", ReasonTerminal},
		{"sudo stty -echo", ReasonLineEditing},
		{"bash -c 'set -H'", ReasonHistory},
		// zsh's and fish's vi modes, and tset's special characters, as
		// set -o vi and stty.
		{"setopt vi", ReasonLineEditing},
		{"setopt V_I", ReasonLineEditing},
		{"unsetopt novi", ReasonLineEditing},
		{"setopt extendedglob", ""},
		{"fish_vi_key_bindings", ReasonLineEditing},
		{"fish_hybrid_key_bindings", ReasonLineEditing},
		{"set -g fish_key_bindings fish_vi_key_bindings", ReasonLineEditing},
		{"set -g fish_greeting ''", ""},
		{"tset -e ^H", ReasonLineEditing},
		{"reset -i '^X'", ReasonLineEditing},
		{"tset -k^U", ReasonLineEditing},
		{"reset", ""},
		{"tset -Q", ""},
		{"tset -Qe ^H", ReasonLineEditing},
	} {
		a, err := Analyze(tc.src)
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		got := ""
		for _, u := range a.Unknowable {
			if u.Reason == ReasonHistory || u.Reason == ReasonLineEditing || u.Reason == ReasonTerminal || u.Reason == ReasonKeyword {
				got = u.Reason
			}
		}
		if got != tc.want {
			t.Errorf("%q: got %q, want %q (unknowable %v)", tc.src, got, tc.want, a.Unknowable)
		}
	}
}

func TestAnalyzeWithInteractive(t *testing.T) {
	a, err := AnalyzeWith("echo rm -rf x; !!:1-3", Options{Interactive: true})
	if err != nil || len(a.Unknowable) == 0 || a.Unknowable[0].Reason != ReasonHistory {
		t.Fatalf("got %+v, %v; want a history unknowable", a, err)
	}
	a, err = AnalyzeWith("echo rm -rf x; !!:1-3", Options{})
	if err != nil || len(a.Unknowable) != 0 {
		t.Fatalf("exec: got %+v, %v; want nothing unknowable", a, err)
	}
	a, err = AnalyzeWith("echo 'x !!", Options{Interactive: true})
	if err != nil || !a.Incomplete {
		t.Fatalf("got %+v, %v; want incomplete", a, err)
	}
}

func TestBuiltinCode(t *testing.T) {
	for _, tc := range []struct {
		src     string
		command string // a command that must be found, or ""
		reason  string // an unknowable reason that must be found, or ""
	}{
		{"mapfile -C 'rm -rf v' -c 1 < /etc/passwd", "rm -rf v", ""},
		{"readarray -t -C \"rm -rf v\" a < f", "rm -rf v", ""},
		{"complete -C 'rm -rf v' ls", "rm -rf v", ReasonLineEditing},
		{"compgen -C 'rm -rf v' x", "rm -rf v", ""},
		{"complete -W '$(rm -rf v)' ls", "", ReasonShellString},
		{"complete -C \"$x\" ls", "", ReasonShellString},
		{"printf -v 'a[$(rm -rf v)]' x", "", ReasonSubscript},
		{"read 'a[`rm -rf v`]' < /dev/null", "", ReasonSubscript},
		{"unset 'a[$(rm -rf v)]'", "", ReasonSubscript},
		{"test -v 'a[$(rm -rf v)]'", "", ReasonSubscript},
		{"let 'a[$(rm -rf v)]=1'", "", ReasonSubscript},
		{"printf '%s[x]\\n' y", "", ""},
		{"read -r line < f", "", ""},
		{"complete -W 'start stop' svc", "", ""},
	} {
		a, err := Analyze(tc.src)
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		found := tc.command == ""
		for _, c := range a.Commands {
			if c.Text == tc.command {
				found = true
			}
		}
		reason := ""
		for _, u := range a.Unknowable {
			reason = u.Reason
		}
		if !found || reason != tc.reason {
			t.Errorf("%q: commands %v, unknowable %v; want command %q, reason %q", tc.src, a.Commands, a.Unknowable, tc.command, tc.reason)
		}
	}
}

func FuzzHistoryExpansion(f *testing.F) {
	for _, s := range []string{"!!", "!!:1-3", "^a^b", `echo "a!b"`, "echo 'x\n!!'", `echo $'a\'!b'`, "ls [!a]*", "echo ${!n}", "x # !y", `"\"!x"`, "\\", "'", "!"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		line, ok := HistoryExpansion(s)
		if ok && !strings.Contains(s, line) {
			t.Fatalf("HistoryExpansion(%q) returned %q, not one of its lines", s, line)
		}
		if !ok && (strings.Contains(s, "!!") && !strings.ContainsAny(s, "'\\#$[{\"")) {
			t.Fatalf("HistoryExpansion(%q): missed !!", s)
		}
		AnalyzeWith(s, Options{Interactive: true})
	})
}

// The terminal type decides the sequences readline draws its line with:
// assignments that change it to one a reader of xterm's sequences cannot
// follow (vt52, dumb, none) are unknowable.
func TestTerminalTypeAssignments(t *testing.T) {
	for _, tc := range []struct {
		src     string
		refused bool
	}{
		{"export TERM=vt52", true},
		{"TERM=dumb", true},
		{"TERM=", true},
		{"TERM=$t", true},
		{"TERM+=x", true},
		{"declare -x TERM=vt52", true},
		{`export "TERM=vt52"`, true},
		{"TERM=vt52 bash", true},
		{"env TERM=dumb bash -i", true},
		{"unset TERM", true},
		{"unset -v TERM", true},
		{"unset $v", true},
		{"read TERM", true},
		{"printf -v TERM vt52", true},
		{"export TERMINFO=/tmp/ti", true},
		{"TERMCAP='xx|x:le=\\ED:' bash", true},
		{"TERMINFO_DIRS=/tmp bash", true},
		{"export TERM=xterm-256color", false},
		{"TERM=screen tmux attach", false},
		{"export TERM", false},
		{"env TERM=linux top", false},
		{"unset HISTFILE", false},
		{"echo $TERM", false},
	} {
		a, err := Analyze(tc.src)
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		got := false
		for _, u := range a.Unknowable {
			if u.Reason == ReasonTerminal || u.Reason == ReasonPrompt {
				got = true
			}
		}
		if got != tc.refused {
			t.Errorf("%q: unknowable %v, want refused %v", tc.src, a.Unknowable, tc.refused)
		}
	}
}

// Programs that start the user's shell, interactive, when given no
// command read their commands from the session's input, as bash does.
func TestProgramsStartingAShell(t *testing.T) {
	for _, tc := range []struct {
		src  string
		want bool
	}{
		{"script", true},
		{"script -q /dev/null", true},
		{"script -qc 'ls' /dev/null", false},
		{"script --command ls out", false},
		{"unshare", true},
		{"unshare -U", true},
		{"unshare -U ls", false},
		{"nsenter -t 1 -m", true},
		{"nsenter -t 1 -m ls", false},
		{"chroot /srv/root", true},
		{"chroot /srv/root ls", false},
		{"newgrp", true},
		{"newgrp wheel", true},
		{"sg wheel", true},
		{"sg wheel -c ls", false},
		{"tcsh", true},
		{"csh -l", true},
		{"tcsh script.csh", false},
		{"sudo script", true},
		{"login -f root", true},
		{"run0", true},
		{"run0 ls", false},
		{"run0 -u root bash", true},
		{"pkexec", true},
		{"pkexec ls", false},
		{"fakeroot", true},
		{"firejail", true},
		{"systemd-run --pty -S", true},
		{"systemd-run --shell", true},
		{"systemd-run --pty ls", false},
		{"machinectl shell", true},
		{"machinectl list", false},
	} {
		a, err := Analyze(tc.src)
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		if a.StdinShell != tc.want {
			t.Errorf("%q: StdinShell %v, want %v", tc.src, a.StdinShell, tc.want)
		}
	}
}

// run0 (systemd's sudo) runs its operands as a command.
func TestRun0IsAWrapper(t *testing.T) {
	a, err := Analyze("run0 -u root rm -rf /srv")
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Contains(a.Names(), "rm") {
		t.Errorf("run0 -u root rm -rf /srv: commands %v, want rm among them", a.Names())
	}
}

// tmux and screen start a shell on the session's input, run a command
// given for a new pane or window as sh -c would, and can type into or run
// commands in a session in their own language (unknowable).
func TestTerminalMultiplexers(t *testing.T) {
	for _, tc := range []struct {
		src        string
		stdinShell bool
		names      []string // commands that must be among those judged
		unknowable bool
	}{
		{src: "tmux", stdinShell: true},
		{src: "tmux -u", stdinShell: true},
		{src: "tmux new -s work", stdinShell: true},
		{src: "tmux attach -t work", stdinShell: true},
		{src: "tmux a", stdinShell: true},
		{src: "tmux ls"},
		{src: "tmux kill-server"},
		{src: "tmux new -d 'rm -rf /srv'", names: []string{"rm"}},
		{src: "tmux new-session -d -s x rm -rf /srv", names: []string{"rm"}},
		{src: "tmux split-window -t x 'rm -rf /srv'", stdinShell: true, names: []string{"rm"}},
		{src: "tmux send-keys -t x 'rm -rf /srv' Enter", unknowable: true},
		{src: "tmux run-shell 'rm -rf /srv'", unknowable: true},
		{src: "tmux -c 'rm -rf /srv'", unknowable: true},
		{src: "tmux $cmd", unknowable: true},
		{src: "screen", stdinShell: true},
		{src: "screen -S work", stdinShell: true},
		{src: "screen -r", stdinShell: true},
		{src: "screen -ls"},
		{src: "screen -dm rm -rf /srv", names: []string{"rm"}},
		{src: "screen rm -rf /srv", stdinShell: true, names: []string{"rm"}},
		{src: "screen -S x -X stuff 'rm -rf /srv\n'", unknowable: true},
	} {
		a, err := Analyze(tc.src)
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		if a.StdinShell != tc.stdinShell {
			t.Errorf("%q: StdinShell %v, want %v", tc.src, a.StdinShell, tc.stdinShell)
		}
		for _, n := range tc.names {
			if !slices.Contains(a.Names(), n) {
				t.Errorf("%q: commands %v, want %s among them", tc.src, a.Names(), n)
			}
		}
		if got := len(a.Unknowable) > 0; got != tc.unknowable {
			t.Errorf("%q: unknowable %v, want %v", tc.src, a.Unknowable, tc.unknowable)
		}
	}
}

// A typed line is also read as a shell without interactive comments reads
// it (zsh by default, bash after shopt -u interactive_comments): its
// comments are words, and the commands after them run.
func TestAnalyzeInteractiveComments(t *testing.T) {
	a, err := AnalyzeWith("true #; rm -rf /srv", Options{Interactive: true})
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, c := range a.Commands {
		found = found || c.Name == "rm"
	}
	if !found {
		t.Errorf("the rm after a # was not reported: %+v", a.Commands)
	}
	a, err = AnalyzeWith("ls # it's here", Options{Interactive: true})
	if err != nil || len(a.Unknowable) == 0 || a.Unknowable[0].Reason != ReasonComment {
		t.Errorf("a comment that is an open quote as words: got %+v, %v", a, err)
	}
	for _, src := range []string{"echo a#b", "ls -l"} {
		a, err = AnalyzeWith(src, Options{Interactive: true})
		if err != nil || len(a.Commands) != 1 || len(a.Unknowable) != 0 {
			t.Errorf("%q: got %+v, %v", src, a, err)
		}
	}
	// An exec command is run by a shell that is not interactive, where a
	// # always starts a comment.
	a, err = Analyze("true #; rm -rf /srv")
	if err != nil || len(a.Commands) != 1 {
		t.Errorf("exec: got %+v, %v", a, err)
	}
}
