package safetext

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
	"unicode/utf8"
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

func TestVisible(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"touch a; ls -l\n\tb", "touch a; ls -l\n\tb"},
		{"SELECT 'naïve', '日本'", "SELECT 'naïve', '日本'"},
		{"a \u202e\u2066; b \u2069 \u2066# ok\u2069", `a \u202e\u2066; b \u2069 \u2066# ok\u2069`},
		{"zero\u200bwidth\ufeff", `zero\u200bwidth\ufeff`},
		{"cr\rover\x1b[2K\x00", `cr\rover\x1b[2K\x00`},
		{"c1\u009b31m", `c1\u009b31m`},
		{"bad\xffutf8", `bad\xffutf8`},
		{"nb\u00a0sp\u3000", `nb\u00a0sp\u3000`},
		{"hangul\u3164filler", `hangul\u3164filler`},
		{"vs\ufe0f", `vs\ufe0f`},
		{"line\u2028sep", `line\u2028sep`},
		{"tag\U000e0041", `tag\U000e0041`},
	} {
		if got := Visible(tc.in); got != tc.want {
			t.Errorf("Visible(%q): got %q, want %q", tc.in, got, tc.want)
		}
	}
}

func FuzzVisible(f *testing.F) {
	f.Add("a\u202eb\x1b[2J\r")
	f.Add("naïve \xff")
	f.Fuzz(func(t *testing.T, s string) {
		v := Visible(s)
		if !utf8.ValidString(v) {
			t.Fatalf("Visible(%q) = %q is not valid UTF-8", s, v)
		}
		for _, r := range v {
			if hidden(r, utf8.RuneLen(r)) {
				t.Fatalf("Visible(%q) = %q holds %U", s, v, r)
			}
		}
	})
}

func TestEscapeC1(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{``, ``},
		{`{"a":"plain"}`, `{"a":"plain"}`},
		{"{\"a\":\"\u009b31m\"}", `{"a":"\u009b31m"}`},
		{"\"\u009d52;c;eA==\u009c\"", `"\u009d52;c;eA==\u009c"`},
		{"\"\u0080\u009f\"", `"\u0080\u009f"`},
		{"\"\u00a0é€\"", "\"\u00a0é€\""}, // 0xc2 0xa0 and other characters stay
		{"\"\\\\\u009b\"", `"\\\u009b"`}, // after an escaped backslash
		{"\"\xc2", "\"\xc2"},             // a lone lead byte at the end
	} {
		got := string(EscapeC1([]byte(tc.in)))
		if got != tc.want {
			t.Errorf("EscapeC1(%q) = %q, want %q", tc.in, got, tc.want)
		}
		var a, b any
		if json.Unmarshal([]byte(tc.in), &a) == nil {
			if err := json.Unmarshal([]byte(got), &b); err != nil || !reflect.DeepEqual(a, b) {
				t.Errorf("EscapeC1(%q) decodes to %v (%v), want %v", tc.in, b, err, a)
			}
		}
	}
	var buf bytes.Buffer
	json.NewEncoder(JSONWriter(&buf)).Encode(map[string]string{"command": "x\u009by"})
	if got := buf.String(); got != "{\"command\":\"x\\u009by\"}\n" {
		t.Errorf("JSONWriter wrote %q", got)
	}
}
