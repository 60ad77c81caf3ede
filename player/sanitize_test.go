package player

import (
	"bytes"
	"errors"
	"fmt"
	"strings"
	"testing"
	"unicode/utf8"
)

// sanitizeCases are the sanitiser's table tests; FuzzSanitizer is seeded from them.
var sanitizeCases = []struct {
	name string
	in   string
	want string
}{
	// Kept.
	{"plain text", "hello, world", "hello, world"},
	{"utf8 text", "héllo ✓ 日本 🎉", "héllo ✓ 日本 🎉"},
	{"allowed controls", "a\r\nb\tc\bd\ae", "a\r\nb\tc\bd\ae"},
	{"vt and ff become lf", "a\vb\fc", "a\nb\nc"},
	{"sgr colours", "\x1b[1;31mred\x1b[0m", "\x1b[1;31mred\x1b[0m"},
	{"sgr truecolor with colons", "\x1b[38:2::10:20:30mx", "\x1b[38:2::10:20:30mx"},
	{"sgr empty", "\x1b[m", "\x1b[m"},
	{"cursor movement", "\x1b[H\x1b[10;20H\x1b[2A\x1b[B\x1b[3C\x1b[D\x1b[5G\x1b[7d\x1b[1;1f", "\x1b[H\x1b[10;20H\x1b[2A\x1b[B\x1b[3C\x1b[D\x1b[5G\x1b[7d\x1b[1;1f"},
	{"erase", "\x1b[2J\x1b[K\x1b[1K\x1b[0J\x1b[5X", "\x1b[2J\x1b[K\x1b[1K\x1b[0J\x1b[5X"},
	{"insert delete", "\x1b[2@\x1b[3P\x1b[L\x1b[4M", "\x1b[2@\x1b[3P\x1b[L\x1b[4M"},
	{"scroll region and scrolling", "\x1b[2;20r\x1b[S\x1b[2T\x1bD\x1bM\x1bE", "\x1b[2;20r\x1b[S\x1b[2T\x1bD\x1bM\x1bE"},
	{"save restore cursor", "\x1b7\x1b8\x1b[s\x1b[u", "\x1b7\x1b8\x1b[s\x1b[u"},
	{"alternate screen", "\x1b[?1049h\x1b[?1049l\x1b[?47h\x1b[?1047l", "\x1b[?1049h\x1b[?1049l\x1b[?47h\x1b[?1047l"},
	{"cursor visibility and autowrap", "\x1b[?25l\x1b[?25h\x1b[?7l\x1b[?7h", "\x1b[?25l\x1b[?25h\x1b[?7l\x1b[?7h"},
	{"insert mode", "\x1b[4h\x1b[4l", "\x1b[4h\x1b[4l"},
	{"line drawing charset", "\x1b(0qqq\x1b(B", "\x1b(0qqq\x1b(B"},
	{"huge repeat", "x\x1b[65536b\x1b[99999999999b\x1b[65535b", "x\x1b[65535b"},
	{"tabs and repeat", "\x1b[2I\x1b[Z\x1bx\x1b[3b", "\x1b[2I\x1b[Z\x1b[3b"},
	{"control inside csi executes in place", "\x1b[1\r\n;31mx", "\r\n\x1b[1;31mx"},

	// Mixed lists are filtered, not dropped wholesale.
	{"decset mixed list", "\x1b[?1049;1000;25h", "\x1b[?1049;25h"},
	{"decset leading zeros", "\x1b[?01049h", "\x1b[?1049h"},
	{"sm mixed list", "\x1b[4;20h", "\x1b[4h"},

	// OSC: clipboard, titles, hyperlinks, colours; BEL and ST terminated.
	{"osc 52 clipboard bel", "a\x1b]52;c;ZWNobyBoaQ==\x07b", "ab"},
	{"osc 52 clipboard st", "a\x1b]52;c;ZWNobyBoaQ==\x1b\\b", "ab"},
	{"osc 52 query", "\x1b]52;c;?\x07", ""},
	{"osc title", "\x1b]0;evil title\x07x\x1b]2;t\x1b\\y", "xy"},
	{"osc 8 hyperlink", "\x1b]8;;https://evil.example/\x1b\\click\x1b]8;;\x1b\\", "click"},
	{"osc colour query", "\x1b]10;?\x07\x1b]4;1;?\x07", ""},
	{"osc with utf8 payload", "\x1b]0;日本\x9c\x07ok", "ok"},
	{"osc ended by esc starts new sequence", "\x1b]0;t\x1b[1mx", "\x1b[1mx"},
	{"osc aborted by can", "\x1b]0;t\x18x", "x"},

	// DCS, SOS, PM, APC.
	{"dcs decrqss", "\x1bP$qm\x1b\\x", "x"},
	{"dcs sixel", "\x1bPq#0;2;0;0;0#1!10~\x1b\\x", "x"},
	{"dcs tmux passthrough", "\x1bPtmux;\x1b\x1b]52;c;aGk=\x07\x1b\\x", "x"},
	{"dcs xtgettcap", "\x1bP+q544e\x1b\\x", "x"},
	{"apc", "\x1b_Gf=100;AAAA\x1b\\x", "x"},
	{"pm", "\x1b^private\x1b\\x", "x"},
	{"sos", "\x1bXstring\x1b\\x", "x"},

	// Queries the terminal would answer into the viewer's input.
	{"da primary", "\x1b[c\x1b[0c", ""},
	{"da secondary tertiary", "\x1b[>c\x1b[=c", ""},
	{"dsr cursor position", "\x1b[6n\x1b[5n\x1b[?6n", ""},
	{"window reports", "\x1b[21t\x1b[14t\x1b[18t\x1b[13t", ""},
	{"window manipulation", "\x1b[8;100;300t\x1b[3;0;0t\x1b[22;0t", ""},
	{"decrqm", "\x1b[?2004$p\x1b[4$p", ""},
	{"decreqtparm", "\x1b[x\x1b[1x", ""},
	{"xtversion", "\x1b[>q", ""},
	{"kitty keyboard query and push", "\x1b[?u\x1b[>1u\x1b[<u", ""},
	{"checksum request", "\x1b[1;1;1;1;1;1*y", ""},
	{"xtsmgraphics", "\x1b[?1;1;0S", ""},
	{"enq answerback", "a\x05b", "ab"},

	// Modes that would outlive the replay or change input.
	{"mouse modes", "\x1b[?1000h\x1b[?1002h\x1b[?1003h\x1b[?1006h\x1b[?1015h", ""},
	{"focus events", "\x1b[?1004h", ""},
	{"bracketed paste", "\x1b[?2004h\x1b[?2004l", ""},
	{"cursor keys and keypad", "\x1b[?1h\x1b=\x1b>", ""},
	{"modify other keys", "\x1b[>4;1m", ""},
	{"132 columns and reverse video", "\x1b[?3h\x1b[?5h", ""},
	{"keyboard lock and newline mode", "\x1b[2h\x1b[20h\x1b[12l", ""},
	{"cursor style", "\x1b[2 q", ""},
	{"soft reset", "\x1b[!p", ""},
	{"full reset", "\x1bc", ""},
	{"scrollback erase", "\x1b[3J", ""},
	{"tab stops", "\x1bH\x1b[3g\x1b[g", ""},
	{"8-bit controls in replies", "\x1b G", ""},
	{"leave utf8 mode", "\x1b%@\x1b%G", ""},
	{"other charsets", "\x1b)0\x1b(A\x1b*0", ""},
	{"shift in out", "a\x0eb\x0fc", "abc"},
	{"media copy", "\x1b[5i\x1b[4i", ""},
	{"mouse highlight tracking", "\x1b[1;2;3;4;5T", ""},
	{"slrm with params", "\x1b[5;10s\x1b[1u", ""},
	{"private save restore", "\x1b[?1049s\x1b[?1049r", ""},
	{"colon outside sgr", "\x1b[1:2H", ""},
	{"private marker mid params", "\x1b[1?5h", ""},

	// 8-bit and UTF-8 encoded C1 controls, invalid UTF-8.
	{"8-bit csi", "a\x9b6nb", "a?6nb"},
	{"8-bit osc", "a\x9d52;c;aGk=\x07b", "a?52;c;aGk=\x07b"},
	{"8-bit dcs st", "\x90q\x9c", "?q?"},
	{"utf8 encoded c1 csi", "a\u009b6nb", "a?6nb"},
	{"utf8 encoded c1 osc", "\u009d0;x\a", "?0;x\a"},
	{"invalid lead bytes", "a\xff\xfe\xc0\xc1b", "a????b"},
	{"truncated rune", "a\xe6\x97b", "a?b"},
	{"overlong encoding", "\xe0\x80\xafx", "?x"},
	{"surrogate", "\xed\xa0\x80x", "?x"},
	{"too large", "\xf4\x90\x80\x80x", "?x"},
	{"esc then 8-bit", "\x1b\x9bx", "?x"},
	{"csi broken by utf8", "\x1b[1é", "é"},

	// Other C0 controls and DEL.
	{"nul and del", "a\x00b\x7fc", "abc"},
	{"lone esc at end", "a\x1b", "a"},
	{"esc esc", "\x1b\x1b[1mx", "\x1b[1mx"},
	{"st alone", "a\x1b\\b", "ab"},
	{"can aborts csi", "\x1b[1\x18mx", "mx"},

	// Bounds: an unterminated sequence does not hide the rest of the session.
	{"unterminated osc is bounded", "\x1b]" + strings.Repeat("a", maxString) + "tail", "tail"},
	{"osc at the bound", "\x1b]" + strings.Repeat("a", maxString) + "\atail", "tail"},
	{"long csi is bounded", "\x1b[" + strings.Repeat("1", maxCSI-2) + "2mtail", "2mtail"},
	{"csi at the bound", "\x1b[" + strings.Repeat(";", maxCSI-2) + "mx", "\x1b[" + strings.Repeat(";", maxCSI-2) + "mx"},
	{"long esc intermediates", "\x1b((((((B", "((B"},
}

func sanitize(t testing.TB, chunks ...string) string {
	t.Helper()
	var buf bytes.Buffer
	s := NewSanitizer(&buf)
	for _, c := range chunks {
		n, err := s.Write([]byte(c))
		if err != nil {
			t.Fatalf("Write: %v", err)
		}
		if n != len(c) {
			t.Fatalf("Write returned %d, want %d", n, len(c))
		}
	}
	if err := s.Flush(); err != nil {
		t.Fatalf("Flush: %v", err)
	}
	return buf.String()
}

func TestSanitizer(t *testing.T) {
	for _, tc := range sanitizeCases {
		t.Run(tc.name, func(t *testing.T) {
			got := sanitize(t, tc.in)
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			if err := checkSafe([]byte(got)); err != nil {
				t.Errorf("output %q: %v", got, err)
			}
		})
	}
}

// TestSanitizerSplitWrites checks that every table case gives the same output
// however the input is split across writes, including byte by byte.
func TestSanitizerSplitWrites(t *testing.T) {
	for _, tc := range sanitizeCases {
		t.Run(tc.name, func(t *testing.T) {
			var bytewise []string
			for i := range len(tc.in) {
				bytewise = append(bytewise, tc.in[i:i+1])
			}
			if got := sanitize(t, bytewise...); got != tc.want {
				t.Errorf("byte by byte: got %q, want %q", got, tc.want)
			}
			for i := 1; i < len(tc.in); i++ {
				if got := sanitize(t, tc.in[:i], tc.in[i:]); got != tc.want {
					t.Fatalf("split at %d: got %q, want %q", i, got, tc.want)
				}
			}
		})
	}
}

func TestSanitizerClose(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want string // what Close adds
	}{
		{"nothing to undo", "plain", ""},
		{"colours", "\x1b[31mx", "\x1b[0m"},
		{"alternate screen 1049", "\x1b[?1049h", "\x1b[?1049l"},
		{"alternate screen left", "\x1b[?1049h\x1b[?1049l", ""},
		{"alternate screen 47", "\x1b[?47h", "\x1b[?47l"},
		{"hidden cursor", "\x1b[?25l", "\x1b[?25h"},
		{"no autowrap", "\x1b[?7l", "\x1b[?7h"},
		{"scroll region", "\x1b[2;10r", "\x1b7\x1b[r\x1b8"},
		{"scroll region reset", "\x1b[2;10r\x1b[r", ""},
		{"line drawing", "\x1b(0", "\x1b(B"},
		{"insert and origin", "\x1b[4h\x1b[?6h", "\x1b[4l\x1b[?6l"},
		{"everything", "\x1b[1m\x1b(0\x1b[4h\x1b[?6h\x1b[3;4r\x1b[?1049h\x1b[?7l\x1b[?25l",
			"\x1b[0m\x1b(B\x1b[4l\x1b[?6l\x1b7\x1b[r\x1b8\x1b[?1049l\x1b[?7h\x1b[?25h"},
		{"unfinished rune", "a\xe6\x97", "?"},
		{"unfinished csi", "a\x1b[?1049", ""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var buf bytes.Buffer
			s := NewSanitizer(&buf)
			if _, err := s.Write([]byte(tc.in)); err != nil {
				t.Fatal(err)
			}
			before := buf.Len()
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if got := buf.String()[before:]; got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
			// A second Close has nothing left to undo, and the Sanitizer is
			// reusable.
			before = buf.Len()
			if _, err := s.Write([]byte("ok")); err != nil {
				t.Fatal(err)
			}
			if err := s.Close(); err != nil {
				t.Fatal(err)
			}
			if got := buf.String()[before:]; got != "ok" {
				t.Errorf("after Close: got %q, want %q", got, "ok")
			}
		})
	}
}

type failWriter struct{ err error }

func (w failWriter) Write(p []byte) (int, error) { return 0, w.err }

func TestSanitizerWriteError(t *testing.T) {
	boom := errors.New("boom")
	s := NewSanitizer(failWriter{boom})
	if _, err := s.Write([]byte("x")); !errors.Is(err, boom) {
		t.Fatalf("got %v, want %v", err, boom)
	}
	// Sticky, even for input that produces no output.
	if _, err := s.Write([]byte("\x1b]0;")); !errors.Is(err, boom) {
		t.Fatalf("second Write: got %v, want %v", err, boom)
	}
	if err := s.Close(); !errors.Is(err, boom) {
		t.Fatalf("Close: got %v, want %v", err, boom)
	}
}

// checkSafe is an independent statement of what may reach the viewer's terminal:
// valid UTF-8 text without C1 controls, the C0 controls CR LF TAB BS BEL, and a few
// complete escape sequences.
func checkSafe(p []byte) error {
	for i := 0; i < len(p); {
		b := p[i]
		switch {
		case b == 0x1b:
			n, err := checkEscape(p[i:])
			if err != nil {
				return fmt.Errorf("offset %d: %w", i, err)
			}
			i += n
		case b == '\r' || b == '\n' || b == '\t' || b == '\b' || b == 0x07:
			i++
		case b < 0x20 || b == 0x7f:
			return fmt.Errorf("offset %d: control byte %#x", i, b)
		case b < 0x80:
			i++
		default:
			r, size := utf8.DecodeRune(p[i:])
			if r == utf8.RuneError && size <= 1 {
				return fmt.Errorf("offset %d: invalid UTF-8 %#x", i, b)
			}
			if r >= 0x80 && r <= 0x9f {
				return fmt.Errorf("offset %d: C1 control U+%04X", i, r)
			}
			i += size
		}
	}
	return nil
}

func checkEscape(p []byte) (int, error) {
	if len(p) < 2 {
		return 0, errors.New("lone ESC")
	}
	switch p[1] {
	case '7', '8', 'D', 'E', 'M':
		return 2, nil
	case '(':
		if len(p) >= 3 && (p[2] == 'B' || p[2] == '0') {
			return 3, nil
		}
		return 0, fmt.Errorf("charset %q", p)
	case '[':
	default:
		return 0, fmt.Errorf("escape %q", p[:2])
	}
	i := 2
	private := len(p) > i && p[i] == '?'
	if private {
		i++
	}
	for i < len(p) && (p[i] >= '0' && p[i] <= '9' || p[i] == ';' || p[i] == ':') {
		i++
	}
	if i >= len(p) {
		return 0, fmt.Errorf("unterminated CSI %q", p)
	}
	final := p[i]
	if private {
		if final != 'h' && final != 'l' {
			return 0, fmt.Errorf("private CSI %q", p[:i+1])
		}
		return i + 1, nil
	}
	if !strings.ContainsRune("@ABCDEFGHIJKLMPSTXZ`abdefmrsuhl", rune(final)) {
		return 0, fmt.Errorf("CSI final %q", final)
	}
	return i + 1, nil
}

// restoreMax bounds what Close may add: every mode reset at once.
const restoreMax = len("\x1b[0m\x1b(B\x1b[4l\x1b[?6l\x1b7\x1b[r\x1b8\x1b[?1049l\x1b[?7h\x1b[?25h")

func FuzzSanitizer(f *testing.F) {
	for _, tc := range sanitizeCases {
		f.Add([]byte(tc.in), uint8(3))
	}
	f.Fuzz(func(t *testing.T, in []byte, split uint8) {
		// Whole, then in chunks of split+1 bytes: same output.
		var whole bytes.Buffer
		s := NewSanitizer(&whole)
		s.Write(in)
		s.Flush()
		wholeLen := whole.Len()
		s.Close()

		var chunked bytes.Buffer
		s = NewSanitizer(&chunked)
		step := int(split) + 1
		for i := 0; i < len(in); i += step {
			s.Write(in[i:min(i+step, len(in))])
		}
		s.Flush()
		if !bytes.Equal(chunked.Bytes(), whole.Bytes()[:wholeLen]) {
			t.Fatalf("chunked output differs:\n got %q\nwant %q", chunked.Bytes(), whole.Bytes()[:wholeLen])
		}

		out := whole.Bytes()
		if err := checkSafe(out); err != nil {
			t.Fatalf("unsafe output %q: %v", out, err)
		}
		for _, bad := range []string{"\x1b]", "\x1bP", "\x1b_", "\x1b^", "\x1bX", "\x1b[6n", "\x1b[c"} {
			if bytes.Contains(out, []byte(bad)) {
				t.Fatalf("output %q contains %q", out, bad)
			}
		}
		if len(out) > len(in)+restoreMax {
			t.Fatalf("output is %d bytes for %d of input", len(out), len(in))
		}
		// Sanitising is idempotent: safe output passes unchanged.
		if again := sanitize(t, string(out[:wholeLen])); again != string(out[:wholeLen]) {
			t.Fatalf("not idempotent:\n got %q\nwant %q", again, out[:wholeLen])
		}
	})
}

// sanitizerInput is a realistic mix: coloured shell output with prompts and
// some UTF-8, as ls --color or a full-screen editor would produce.
func sanitizerInput(size int) []byte {
	chunk := "\x1b[01;34mdir\x1b[0m  file.txt  \x1b[01;32mscript.sh\x1b[0m  résumé.pdf  日本語.txt\r\n" +
		"\x1b]0;user@host: ~\x07\x1b[?2004huser@host:~$ ls -la\r\n\x1b[?2004l" +
		"\x1b[H\x1b[2J\x1b[1;24r\x1b[K plain text line with nothing special in it at all\r\n"
	var b bytes.Buffer
	for b.Len() < size {
		b.WriteString(chunk)
	}
	return b.Bytes()[:size]
}

func BenchmarkSanitizer(b *testing.B) {
	for _, bc := range []struct {
		name string
		in   []byte
	}{
		{"terminal", sanitizerInput(1 << 20)},
		{"ascii", bytes.Repeat([]byte("the quick brown fox jumps over the lazy dog\r\n"), 1<<20/45)},
		{"hostile", bytes.Repeat([]byte("\x1b[?1049;1000;25h\x1b]52;c;aGk=\x07\x9b6n\xff\x1b[1;2;3;4;5;6;7;8;9m"), 1<<20/60)},
	} {
		b.Run(bc.name, func(b *testing.B) {
			s := NewSanitizer(discard{})
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				for i := 0; i < len(bc.in); i += 32 << 10 {
					s.Write(bc.in[i:min(i+32<<10, len(bc.in))])
				}
			}
		})
	}
}

type discard struct{}

func (discard) Write(p []byte) (int, error) { return len(p), nil }
