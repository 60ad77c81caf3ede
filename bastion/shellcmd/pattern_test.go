package shellcmd

import (
	"errors"
	"strings"
	"testing"
)

// matchCase matches pattern against the last command Analyze finds in cmd
// (the innermost one, after wrappers).
type matchCase struct {
	name    string
	pattern string
	cmd     string
	want    bool
}

var matchCases = []matchCase{
	{"exact", "rm -rf *", "rm -rf /tmp/victim", true},
	{"cluster reordered", "rm -rf *", "rm -fr x", true},
	{"split options", "rm -rf *", "rm -r -f x", true},
	{"split reordered", "rm -rf *", "rm -f -r x", true},
	{"extra option", "rm -rf *", "rm -rfv x", true},
	{"option after operand", "rm -rf *", "rm x -rf", true},
	{"capital R", "rm -rf *", "rm -Rf x", true},
	{"long options", "rm -rf *", "rm --recursive --force x", true},
	{"abbreviated long options", "rm -rf *", "rm --rec --fo x", true},
	{"long and short", "rm -rf *", "rm --force -R x", true},
	{"several operands", "rm -rf *", "rm -rf a b c", true},
	{"no operands with star", "rm -rf *", "rm -rf", true},
	{"missing option", "rm -rf *", "rm -r x", false},
	{"other command", "rm -rf *", "rmdir -rf x", false},
	{"pattern long form", "rm --recursive --force *", "rm -rf x", true},
	{"pattern capital R", "rm -R *", "rm -r x", true},
	{"after double dash", "rm -rf *", "rm -- -rf", false},
	{"double dash operand", "rm -r /", "rm -r -- /", true},
	{"operand exact", "rm -r /", "rm -rf /", true},
	{"operand differs", "rm -r /", "rm -r /tmp", false},
	{"operand count", "rm -r /", "rm -r / /tmp", false},
	{"operand glob", "rm -rf /tmp/*", "rm -rf /tmp/x", true},
	{"operand glob no slash", "rm -rf /tmp/*", "rm -rf /tmp/x/y", false},
	{"lone star any argument", "cp * /etc/passwd", "cp /tmp/x /etc/passwd", true},
	{"wrapped", "rm -rf *", "sudo -u root rm -rf x", true},
	{"path matched by name", "rm -rf *", "/bin/rm -rf x", true},
	{"full path pattern", "/usr/bin/rm *", "/usr/bin/rm x", true},
	{"full path pattern other path", "/usr/bin/rm *", "/bin/rm x", false},
	{"full path pattern bare", "/usr/bin/rm *", "rm x", false},
	{"name glob", "mkfs* *", "mkfs.ext4 /dev/sda1", true},
	{"systemctl restart", "systemctl restart *", "systemctl restart nginx", true},
	{"systemctl option", "systemctl restart *", "systemctl --no-block restart nginx", true},
	{"systemctl valued option", "systemctl restart *", "systemctl -H host restart nginx", true},
	{"systemctl status", "systemctl restart *", "systemctl status nginx", false},
	{"bare name", "shutdown", "shutdown", true},
	{"bare name with option", "shutdown", "shutdown -h", true},
	{"bare name with operand", "shutdown", "shutdown now", false},
	{"name star", "shutdown *", "shutdown -h now", true},
	{"chmod recursive", "chmod -R 777 *", "chmod --recursive 777 /srv /var", true},
	{"git long option", "git push --force *", "git push origin --force", true},
	{"git short differs", "git push --force *", "git push -f origin", false},
	{"long option value", "git push --force-with-lease=* *", "git push --force-with-lease=main origin", true},
	{"long option value next word", "curl --output=/etc/* *", "curl --output /etc/passwd http://x", true},
	{"long option value mismatch", "curl --output=/etc/* *", "curl --output /tmp/x http://x", false},
	{"quoted star literal", "rm '*'", "rm '*'", true},
	{"quoted star not glob", "rm '*'", "rm x", false},
	{"escaped star literal", `rm \*`, "rm x", false},
	{"question mark", "kill -9 ?", "kill -9 1", true},
	{"kill different spelling", "kill -9 *", "kill -KILL 1", false},
	{"find whole word options", "find * -delete", "find /tmp -name x -delete", true},
	{"find no delete", "find * -delete", "find /tmp -depth -name x", false},
	{"dd operand", "dd of=/dev/sd* *", "dd if=/dev/zero of=/dev/sda bs=1M", false},
	{"dd any", "dd * of=/dev/sd* *", "dd if=/dev/zero of=/dev/sda bs=1M", true},
	{"unknown command value skip", "tar -x *", "tar -C /srv -x f.tar", true},
	{"cp target option", "cp -r * /etc", "cp -t /x -r a /etc", true},
}

func lastCommand(t *testing.T, src string) Command {
	t.Helper()
	a := analyzeOK(t, src)
	if len(a.Commands) == 0 {
		t.Fatalf("Analyze(%q): no command", src)
	}
	return a.Commands[len(a.Commands)-1]
}

func TestPatternMatch(t *testing.T) {
	t.Parallel()
	for _, tc := range matchCases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := CompilePattern(tc.pattern)
			if err != nil {
				t.Fatalf("CompilePattern(%q): %v", tc.pattern, err)
			}
			c := lastCommand(t, tc.cmd)
			if got := p.Match(c); got != tc.want {
				t.Fatalf("%q.Match(%q): got %v, want %v", tc.pattern, c.Argv, got, tc.want)
			}
			if p.String() != tc.pattern {
				t.Fatalf("String: got %q, want %q", p.String(), tc.pattern)
			}
		})
	}
}

var badPatterns = []struct {
	name, pattern string
}{
	{"empty", ""},
	{"blank", "   "},
	{"variable", "rm $X"},
	{"substitution", "rm $(x)"},
	{"operator", "rm x; ls"},
	{"pipe", "rm | x"},
	{"bad glob", "rm [x"},
	{"glob in option", "rm -r*"},
	{"unclosed quote", "rm 'x"},
	{"too long", "rm " + strings.Repeat("x", maxPatternBytes)},
	{"too complex", "rm " + strings.Repeat("(", 9000)},
	{"process substitution", "rm <(x)"},
	{"arithmetic", "rm $((1))"},
}

func TestCompilePatternErrors(t *testing.T) {
	t.Parallel()
	for _, tc := range badPatterns {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			p, err := CompilePattern(tc.pattern)
			if err == nil {
				t.Fatalf("CompilePattern(%q): got %v, want an error", tc.pattern, p)
			}
			if !errors.Is(err, ErrPattern) {
				t.Fatalf("CompilePattern(%q): got %v, want an error wrapping ErrPattern", tc.pattern, err)
			}
			if !strings.HasPrefix(err.Error(), "shellcmd: pattern ") {
				t.Fatalf("CompilePattern(%q): got %q, want the shellcmd: pattern prefix", tc.pattern, err)
			}
		})
	}
}

func TestPatternStarName(t *testing.T) {
	t.Parallel()
	every, err := CompilePattern("* *")
	if err != nil {
		t.Fatal(err)
	}
	if every.Match(Command{}) {
		t.Fatal("got a match for a command without argv, want none")
	}
	if !every.Match(lastCommand(t, "anything at all")) {
		t.Fatal(`"* *" does not match a command, want it to match every command`)
	}
	bare, err := CompilePattern("*")
	if err != nil {
		t.Fatal(err)
	}
	if !bare.Match(lastCommand(t, "anything")) || bare.Match(lastCommand(t, "anything at all")) {
		t.Fatal(`"*" must match any command without operands, and only those`)
	}
}
