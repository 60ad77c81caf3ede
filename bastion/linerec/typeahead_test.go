package linerec

import "testing"

// A key typed after a submit, while the shell's answer has not drawn a
// prompt yet (no output, or output that still ends a line), is type-ahead.
func TestTypeAheadAfterSubmit(t *testing.T) {
	for _, tc := range []struct {
		name   string
		answer string // output between the submit and the next key
		early  bool
	}{
		{"no answer yet", "", true},
		{"command output only", "out-1\r\n", true},
		{"output then prompt", "out-1\r\n\x1b[?2004hP> ", false},
		{"prompt only", "\r\nP> ", false},
		{"password prompt", "[sudo] password for root: ", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(80, 24)
			tr.Output([]byte("P> "))
			tr.Keys([]byte("echo a\r"))
			tr.Output([]byte("echo a"))
			tr.Commit()
			if tc.answer != "" {
				tr.Output([]byte(tc.answer))
			}
			tr.Keys([]byte("ls"))
			tr.Output([]byte("ls"))
			if got := tr.Line().Early; got != tc.early {
				t.Fatalf("got Early=%v, want %v", got, tc.early)
			}
		})
	}
}

// The key reading of a line follows readline's editing keys and gives up
// on keys whose effect only the shell knows.
func TestKeysReading(t *testing.T) {
	for _, tc := range []struct {
		name, keys, want string
		ok               bool
	}{
		{"plain", "rm -rf /x", "rm -rf /x", true},
		{"backspace", "rm -rf /xy\x7f", "rm -rf /x", true},
		{"ctrl-u", "echo hi\x15rm -rf /x", "rm -rf /x", true},
		{"ctrl-a insert", "-rf /x\x01rm ", "rm -rf /x", true},
		{"history", "\x1b[A", "", false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(80, 24)
			tr.Output([]byte("P> "))
			tr.Keys([]byte(tc.keys))
			tr.Output([]byte("x")) // some echo: the key reading is only given for echoed lines
			l := tr.Line()
			if l.KeysOK != tc.ok || tc.ok && l.Keys != tc.want {
				t.Fatalf("got %q ok=%v, want %q ok=%v", l.Keys, l.KeysOK, tc.want, tc.ok)
			}
		})
	}
}
