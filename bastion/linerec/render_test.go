package linerec

import (
	"slices"
	"testing"
)

func TestRender(t *testing.T) {
	for _, tc := range []struct {
		name       string
		cols, rows int
		in         string
		want       []string
	}{
		{"lines", 20, 5, "hello\r\nworld  \r\n", []string{"hello", "world"}},
		{"escapes drawn, not kept", 20, 3, "\x1b[31mred\x1b[0m \x1b]0;title\x07\x1b]52;c;cHduZWQ=\x07ok", []string{"red ok"}},
		{"clear and move", 10, 3, "junk\x1b[2J\x1b[2;3Hx", []string{"", "  x"}},
		{"wrap", 4, 3, "abcdef", []string{"abcd", "ef"}},
		{"scroll", 5, 2, "1\r\n2\r\n3\r\n", []string{"3"}},
		{"alternate screen", 10, 2, "before\x1b[?1049hvim", []string{"before"}},
		{"empty", 80, 24, "", []string{}},
		{"huge window clamped", 5000, 5000, "x", []string{"x"}},
	} {
		if got := Render(tc.cols, tc.rows, []byte(tc.in)); !slices.Equal(got, tc.want) {
			t.Errorf("%s: Render = %q, want %q", tc.name, got, tc.want)
		}
	}
}
