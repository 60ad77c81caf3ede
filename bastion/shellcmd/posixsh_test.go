package shellcmd

import (
	"slices"
	"testing"
)

// dash, Debian's /bin/sh, has no arithmetic command, no &> and no ANSI-C
// strings: what it runs there is judged too.
func TestAnalyzePosixShReading(t *testing.T) {
	rm := []string{"rm", "-rf", "/srv"}
	for _, src := range []string{
		"sh -c '((rm -rf /srv))'",
		"dash -c 'echo x &>/dev/null rm -rf /srv'",
		"sh -c \"echo \\$'\\\\'; rm -rf /srv; echo \\\\'\n'\"",
		"su -c 'echo x &>>/tmp/log rm -rf /srv'",
		"((rm -rf /srv))",
		"echo x &>/dev/null rm -rf /srv",
		"zsh -c 'repeat 2 { rm -rf /srv }'",
	} {
		a, err := Analyze(src)
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if !slices.ContainsFunc(a.Commands, func(c Command) bool { return slices.Equal(c.Argv, rm) }) {
			t.Errorf("%q: rm not found as dash reads it:%s", src, dump(a))
		}
	}
	// Text that only a backslash keeps open in bash runs at once in dash.
	if _, err := Analyze("echo $'\\'; rm -rf /srv #"); err == nil {
		t.Error("unfinished in bash, complete in dash: want an error")
	}
	// bash -c strings are bash's: no second reading.
	a, err := Analyze("bash -c '(( $n > 1 )) && echo x &>/dev/null'")
	if err != nil || len(a.Unknowable) != 0 {
		t.Errorf("bash -c: %v%s", err, dump(a))
	}
	// A string for sh that dash cannot read as bash does is unknowable.
	a, err = Analyze("sh -c 'echo $'\\''it\\'\\''s'\\'")
	if err != nil || len(a.Unknowable) == 0 {
		t.Errorf("sh -c with a quote in an ANSI-C string: %v%s", err, dump(a))
	}
}

// zsh runs a glob qualifier's e string and + name for every file.
func TestAnalyzeZshGlobQualifier(t *testing.T) {
	for _, src := range []string{
		`echo /b*(e:'rm -rf /srv':)`,
		`echo *(.e{"rm" -rf /srv})`,
		`zsh -c 'echo *(e:"rm -rf /srv":)'`,
	} {
		a, err := Analyze(src)
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if !slices.ContainsFunc(a.Commands, func(c Command) bool { return c.Name == "rm" }) {
			t.Errorf("%q: the qualifier's rm not found:%s", src, dump(a))
		}
	}
	if got := zshQualifierCode("+cleanup"); !slices.Equal(got, []string{"cleanup"}) {
		t.Errorf("+cleanup: got %q", got)
	}
}

// What bash continues but zsh or fish runs at once is an error; what all
// of them continue stays unfinished.
func TestAnalyzeUnfinishedForBashOnly(t *testing.T) {
	for _, src := range []string{"{ rm -rf /srv }", "f() { rm -rf /srv }", "if true { rm -rf /srv }", "while true { rm -rf /srv; break }", "if true; rm -rf /srv; end", "while true; rm -rf /srv; end"} {
		if _, err := Analyze(src); err == nil {
			t.Errorf("%q: want an error", src)
		}
	}
	for _, src := range []string{"if true; then", "{", "echo \"a }", "awk '{ print }", "for x in a; do echo end", "if x; then echo the end", "f() {\necho hi"} {
		a, err := Analyze(src)
		if err != nil || !a.Incomplete {
			t.Errorf("%q: want unfinished, got %v", src, err)
		}
	}
}

// at and batch run the commands they read from stdin.
func TestAnalyzeAtJob(t *testing.T) {
	for _, src := range []string{"at now <<< 'rm -rf /srv'", "batch <<EOF\nrm -rf /srv\nEOF"} {
		a, err := Analyze(src)
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if !slices.ContainsFunc(a.Commands, func(c Command) bool { return c.Name == "rm" }) {
			t.Errorf("%q: the job's rm not found:%s", src, dump(a))
		}
	}
	a, _ := Analyze("echo 'rm -rf /srv' | at now")
	if len(a.Unknowable) == 0 {
		t.Errorf("a job piped into at: want unknowable:%s", dump(a))
	}
	a, _ = Analyze("at -l")
	if len(a.Unknowable) != 0 || a.StdinShell {
		t.Errorf("at -l:%s", dump(a))
	}
}

// ip netns exec runs its operands in a network namespace.
func TestAnalyzeIPNetnsExec(t *testing.T) {
	for _, src := range []string{"ip netns exec blue rm -rf /srv", "ip -all netns exec rm -rf /srv"} {
		a, err := Analyze(src)
		if err != nil {
			t.Fatalf("%q: %v", src, err)
		}
		if !slices.ContainsFunc(a.Commands, func(c Command) bool { return c.Name == "rm" }) {
			t.Errorf("%q: rm not found:%s", src, dump(a))
		}
	}
}
