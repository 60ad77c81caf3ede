package pgproxy

import (
	"strings"
	"testing"
)

// A value too long to show whole says so outside the literal: "..." inside
// it read as the value's own end, and what followed the cut was hidden from
// the approver without a word.
func TestBindParamsShowCut(t *testing.T) {
	long := strings.Repeat("a", maxParamShown) + "; tail the approver cannot see"
	got := bindParams(bindMsg{params: []bindParam{{v: []byte(long)}, {v: []byte("it's")}, {null: true}, {v: []byte(long)}},
		paramFormats: []int16{0, 0, 0, 1}}, nil)
	want0 := "'" + strings.Repeat("a", maxParamShown) + "' (cut: 30 more bytes of this value not shown)"
	if got[0] != want0 {
		t.Errorf("long text value shown as %q…, want %q…", got[0][maxParamShown-4:], want0[maxParamShown-4:])
	}
	if got[1] != "'it''s'" || got[2] != "NULL" {
		t.Errorf("short values shown as %q %q", got[1], got[2])
	}
	if !strings.HasSuffix(got[3], "' (binary) (cut: 30 more bytes of this value not shown)") {
		t.Errorf("long binary value ends %q", got[3][len(got[3])-60:])
	}
}
