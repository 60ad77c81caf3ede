package safetext

import (
	"strings"
	"testing"
)

func TestPrintable(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice", "alice"},
		{"a\x1b]0;pwned\x07b", `a\x1b]0;pwned\ab`},
		{"line\nbreak", `line\nbreak`},
		{"rtl\u202etxt", `rtl\u202etxt`},
		{"bad\xffutf8", `bad\xffutf8`},
		{`quote"d`, `quote\"d`},
		{strings.Repeat("x", MaxLen+5), strings.Repeat("x", MaxLen) + "…"},
		{strings.Repeat("é", MaxLen), strings.Repeat(`\u00e9`, MaxLen/2) + "…"},
	} {
		if got := Printable(tc.in); got != tc.want {
			t.Errorf("Printable(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func TestEscaped(t *testing.T) {
	long := strings.Repeat(" ", MaxLen*2) + "; rm -rf /\u202e"
	if got, want := Escaped(long), strings.Repeat(" ", MaxLen*2)+`; rm -rf /\u202e`; got != want {
		t.Errorf("Escaped(%q) = %q, want %q", long, got, want)
	}
}

func FuzzPrintable(f *testing.F) {
	f.Add("a\x1b[2Jb")
	f.Add(strings.Repeat("é", 150))
	f.Fuzz(func(t *testing.T, s string) {
		p := Printable(s)
		for _, r := range p {
			if r < 0x20 || r == 0x7f || r > 0x7e && r != '…' {
				t.Fatalf("Printable(%q) = %q holds %U", s, p, r)
			}
		}
	})
}
