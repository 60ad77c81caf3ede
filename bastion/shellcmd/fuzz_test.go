package shellcmd

import (
	"errors"
	"slices"
	"strings"
	"testing"
)

// FuzzAnalyze checks that Analyze never panics and that the Text of every
// command it reports analyses back to the same argv.
func FuzzAnalyze(f *testing.F) {
	for _, tc := range bypassCases {
		f.Add(tc.src)
	}
	for _, tc := range benignCases {
		f.Add(tc.src)
	}
	for _, src := range incompleteCases {
		f.Add(src)
	}
	for _, src := range syntaxErrorCases {
		f.Add(src)
	}
	for _, h := range hostileSeeds {
		f.Add(h)
	}
	for _, src := range programSeeds {
		f.Add(src)
	}
	for _, src := range launcherSeeds {
		f.Add(src)
	}
	f.Fuzz(func(t *testing.T, src string) {
		a, err := Analyze(src)
		if errors.Is(err, ErrInternal) {
			t.Fatalf("Analyze(%q): %v", src, err)
		}
		if err != nil {
			if a != nil {
				t.Fatalf("Analyze(%q): got both an analysis and error %v", src, err)
			}
			if !strings.HasPrefix(err.Error(), "shellcmd: ") {
				t.Fatalf("Analyze(%q): error %q lacks the shellcmd: prefix", src, err)
			}
			return
		}
		if a.Incomplete && (len(a.Commands) > 0 || len(a.Unknowable) > 0) {
			t.Fatalf("Analyze(%q): Incomplete with results", src)
		}
		for _, u := range a.Unknowable {
			if u.Reason == "" {
				t.Fatalf("Analyze(%q): Unknowable %q without a reason", src, u.Text)
			}
		}
		for _, c := range a.Commands {
			if len(c.Argv) == 0 {
				t.Fatalf("Analyze(%q): command without argv", src)
			}
			if c.Name != baseName(c.Argv[0]) {
				t.Fatalf("Analyze(%q): Name %q, want base name of %q", src, c.Name, c.Argv[0])
			}
			b, err := Analyze(c.Text)
			if err != nil || b.Incomplete || len(b.Commands) == 0 {
				t.Fatalf("Analyze(%q): Text %q of %q does not analyse back: %v", src, c.Text, c.Argv, err)
			}
			if got := b.Commands[0].Argv; !slices.Equal(got, c.Argv) {
				t.Fatalf("Analyze(%q): Text %q analyses to %q, want %q", src, c.Text, got, c.Argv)
			}
		}
	})
}

// FuzzPattern checks that CompilePattern and Match never panic, and that a
// pattern made of a command's own literal words matches that command.
func FuzzPattern(f *testing.F) {
	for _, tc := range matchCases {
		f.Add(tc.pattern, tc.cmd)
	}
	for _, tc := range badPatterns {
		f.Add(tc.pattern, "rm -rf /")
	}
	f.Fuzz(func(t *testing.T, pattern, cmd string) {
		p, err := CompilePattern(pattern)
		if err != nil {
			if p != nil {
				t.Fatalf("CompilePattern(%q): got both a pattern and error %v", pattern, err)
			}
			return
		}
		a, err := Analyze(cmd)
		if err != nil {
			return
		}
		for _, c := range a.Commands {
			p.Match(c)
			self, err := CompilePattern(c.Text)
			if err != nil {
				continue // Text may hold $ or other characters patterns refuse
			}
			if !self.Match(c) && literalArgv(c.Argv) {
				t.Fatalf("pattern of its own Text %q does not match %q", c.Text, c.Argv)
			}
		}
	})
}

// literalArgv reports whether every word of argv stands for itself in a
// pattern made from the command's Text: no glob or escape characters, and
// no option word (which could take the next word as its value).
func literalArgv(argv []string) bool {
	for _, s := range argv {
		if strings.ContainsAny(s, `*?[\`) {
			return false
		}
		if strings.HasPrefix(s, "-") {
			return false // an option word may take the next one as its value
		}
	}
	return true
}
