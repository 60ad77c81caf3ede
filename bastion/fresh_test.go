package bastion

import (
	"slices"
	"strings"
	"testing"

	"github.com/bastionhq/bastion/bastion/linerec"
)

// TestFreshReadings: what bash would run of joined lines had a program
// read the first ones.
func TestFreshReadings(t *testing.T) {
	for _, tc := range []struct {
		text string
		from int
		want []string
	}{
		{"ls", 1, nil},
		{"cat <<EOF\nrm -rf x", 1, []string{"rm -rf x"}},
		{"cat <<EOF\nrm -rf x\nEOF", 1, []string{"rm -rf x\nEOF", "EOF"}},
		{"echo '\nrm -rf x #'", 1, []string{"rm -rf x #'"}},
		{"if true; then\necho a\nfi", 1, []string{"echo a"}}, // "fi" alone does not parse
		{"read x\ncat <<EOF\nr\\\nm -rf x", 2, []string{"r\\\nm -rf x", "m -rf x"}},
		{"cat <<EOF\nrm -rf x", 0, nil},
		{"a\nb\nc", 2, []string{"c"}},
		{"x\n\n  \n", 1, nil},
	} {
		budget := freshBudget
		got, ok := freshReadings(tc.text, &budget, tc.from)
		if !ok || !slices.Equal(got, tc.want) {
			t.Errorf("freshReadings(%q, %d) = %q, %v; want %q", tc.text, tc.from, got, ok, tc.want)
		}
	}
	// A text that would take too long to read every way is refused.
	budget := 1 << 10
	if _, ok := freshReadings(strings.Repeat("echo 'x\n", 200), &budget, 1); ok {
		t.Error("an unbounded text was read")
	}
}

func TestTypedFreshFrom(t *testing.T) {
	for _, tc := range []struct {
		line linerec.Line
		mode readMode
		want int
	}{
		{linerec.Line{Text: "cat <<EOF\nhello"}, modeScreen, 0},
		{linerec.Line{Text: "cat <<EOF\nhello", AfterEarly: true}, modeScreen, 1},
		{linerec.Line{Text: "cat <<EOF\nhello"}, modeKeys, 1},
		{linerec.Line{Text: "echo @(\nrm -rf x"}, modeScreen, 1},
		{linerec.Line{Text: "echo @("}, modeScreen, 0},
	} {
		if got := typedFreshFrom(tc.mode, tc.line); got != tc.want {
			t.Errorf("typedFreshFrom(%v, %+v) = %d, want %d", tc.mode, tc.line, got, tc.want)
		}
	}
}
