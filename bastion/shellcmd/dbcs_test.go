package shellcmd

import (
	"slices"
	"testing"
)

// What bash runs when it reads the text in a double-byte locale is
// reported too: U+4E2D is e4 b8 ad, and BIG5 or GBK read ad 5c (a
// backslash) as one character.
func TestDoubleByteReadings(t *testing.T) {
	for _, tc := range []struct {
		src     string
		names   []string // must all be found
		unknown bool     // a ReasonDoubleByte unknowable
		err     bool
	}{
		{src: "echo \"中\\\" ; rm -rf /srv #\"", names: []string{"echo", "rm"}},
		{src: "LC_ALL=zh_TW.BIG5 bash -c 'echo \"中\\\" ; rm -rf /srv #\"'", names: []string{"bash", "echo", "rm"}},
		{src: "echo 中`rm -rf /srv`", names: []string{"echo", "rm"}, unknown: true}, // an open substitution to BIG5
		{src: "echo '中\\'", names: []string{"echo"}},
		{src: "echo 中\\\"", names: []string{"echo"}, unknown: true}, // an open quote to BIG5
		{src: "echo \"中\\\"", err: true},
		{src: "rm -rf /srv 中\\", err: true}, // continued to UTF-8, run now by BIG5
		{src: "echo 中文 | grep 中", names: []string{"echo", "grep"}},
		{src: "printf '中文\\n'", names: []string{"printf"}},
		// U+0526 is d4 a6: JOHAB takes d4 alone (no lead) and reads
		// a6 5c as one character, where the other sets read d4 a6.
		{src: "echo \"Ԧ\\\" ; rm -rf /srv #\"", names: []string{"echo", "rm"}},
	} {
		a, err := Analyze(tc.src)
		if tc.err {
			if err == nil {
				t.Errorf("%q: want an error, got %+v", tc.src, a)
			}
			continue
		}
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		names := a.Names()
		for _, n := range tc.names {
			if !slices.Contains(names, n) {
				t.Errorf("%q: commands %v, want %s among them", tc.src, names, n)
			}
		}
		unknown := slices.ContainsFunc(a.Unknowable, func(u Unknowable) bool { return u.Reason == ReasonDoubleByte })
		if unknown != tc.unknown {
			t.Errorf("%q: double-byte unknowable %v, want %v (%+v)", tc.src, unknown, tc.unknown, a.Unknowable)
		}
	}
	if doubleByteReadings("echo 中文; ls ~/x") != nil {
		t.Error("a text no double-byte set reads differently has readings")
	}
}
