package linerec

import (
	"bytes"
	"strings"
	"testing"

	"github.com/charmbracelet/x/vt"
)

// screenText returns the screen rows, trailing blanks trimmed, joined by "\n".
func screenText(s *screen) string {
	var rows []string
	for y := range s.rows {
		r := s.line(y)
		rows = append(rows, strings.TrimRight(r.text(0, len(r.c)), " "))
	}
	return strings.TrimRight(strings.Join(rows, "\n"), "\n")
}

func TestScreen(t *testing.T) {
	for _, tc := range []struct {
		name string
		cols int
		rows int
		in   string
		want string
		x, y int
	}{
		{"print", 10, 3, "abc", "abc", 3, 0},
		{"crlf", 10, 3, "ab\r\ncd", "ab\ncd", 2, 1},
		{"backspace erase", 10, 3, "abc\b \b", "ab", 2, 0},
		{"backspace el", 10, 3, "abc\b\x1b[K", "ab", 2, 0},
		{"autowrap", 4, 3, "abcdef", "abcd\nef", 2, 1},
		{"pending wrap then cr", 4, 3, "abcd\rX", "Xbcd", 1, 0},
		{"scroll", 4, 2, "a\r\nb\r\nc", "b\nc", 1, 1},
		{"insert chars", 10, 2, "abcd\b\b\x1b[2@XY", "abXYcd", 4, 0},
		{"delete chars", 10, 2, "abcdef\r\x1b[C\x1b[2P", "adef", 1, 0},
		{"erase chars", 10, 2, "abcdef\r\x1b[3X", "   def", 0, 0},
		{"cup", 10, 3, "\x1b[2;3HX", "\n  X", 3, 1},
		{"cursor up clamps", 10, 3, "\x1b[3;1H\x1b[99AX", "X", 1, 0},
		{"ed below", 10, 3, "aaa\r\nbbb\r\nccc\x1b[2;2H\x1b[J", "aaa\nb", 1, 1},
		{"el start", 10, 2, "abcdef\x1b[3G\x1b[1K", "   def", 2, 0},
		{"insert mode", 10, 2, "abc\r\x1b[4hX\x1b[4l", "Xabc", 1, 0},
		{"no autowrap", 4, 2, "\x1b[?7labcdef", "abcf", 3, 0},
		{"scroll region", 5, 4, "top\r\n\x1b[2;3r\x1b[3;1Ha\nb\nc", "top\n b\n  c", 3, 2},
		{"reverse index", 5, 3, "a\x1bMb", " b\na", 2, 0},
		{"save restore", 10, 2, "ab\x1b7\x1b[2;5Hc\x1b8d", "abd\n    c", 3, 0},
		{"alt screen draws nothing", 10, 2, "ab\x1b[?1049hXYZ\x1b[Hq\x1b[?1049lc", "abc", 3, 0},
		{"wide", 6, 2, "a世b", "a世b", 4, 0},
		{"wide at margin wraps", 4, 2, "abc世", "abc\n世", 2, 1},
		{"wide overwritten half", 6, 2, "世\x1b[2Gx", " x", 2, 0},
		{"utf8 split", 6, 2, "\xe4\xb8", "", 0, 0},
		{"invalid utf8", 6, 2, "\xffa", "\ufffda", 2, 0},
		{"osc ignored", 10, 2, "a\x1b]0;title\x07b\x1b]8;;u\x1b\\c", "abc", 3, 0},
		{"dcs ignored", 10, 2, "a\x1bP1$rxyz\x1b\\b", "ab", 2, 0},
		{"queries ignored", 10, 2, "a\x1b[c\x1b[6n\x1b[>c\x1b]10;?\x07b", "ab", 2, 0},
		{"sgr ignored", 10, 2, "\x1b[1;38;2;1;2;3ma\x1b[0m", "a", 1, 0},
		{"huge params clamp", 10, 3, "\x1b[99999999999999999999;99999999999999999999HX", "\n\n         X", 9, 2},
		{"huge rep clamps", 4, 2, "a\x1b[999999999b", "aaaa\na", 1, 1},
		{"huge tab clamps", 10, 2, "\x1b[999999999IX", "         X", 9, 0},
		{"can aborts", 10, 2, "\x1b[12\x18ab", "ab", 2, 0},
		{"esc restarts csi", 10, 2, "\x1b[1\x1b[Cx", " x", 2, 0},
		{"control inside csi", 10, 2, "ab\x1b[\rC", "ab", 1, 0},
		{"too many params", 10, 2, "\x1b[" + strings.Repeat("1;", 100) + "mX", "X", 1, 0},
		{"ris", 10, 2, "abc\x1bcx", "x", 1, 0},
		{"decstr", 10, 2, "\x1b[4h\x1b[!pab", "ab", 2, 0},
		{"lone esc", 10, 2, "a\x1b", "a", 1, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := newScreen(tc.cols, tc.rows)
			s.write([]byte(tc.in))
			if got := screenText(s); got != tc.want {
				t.Errorf("screen: got %q, want %q", got, tc.want)
			}
			if s.x != tc.x || s.y != tc.y {
				t.Errorf("cursor: got %d,%d, want %d,%d", s.x, s.y, tc.x, tc.y)
			}
		})
	}
}

// TestScreenLikeVT compares the text of the screen with the vt emulator on
// the sequences readline uses, where both implement xterm the same way.
func TestScreenLikeVT(t *testing.T) {
	for _, in := range []string{
		"$ echo hello",
		"$ ls -lx\b \b\b\x1b[K",
		"$ echo wrld\b\b\b\x1b[1@o",
		"$ " + strings.Repeat("abcdefgh ", 12),
		"$ abc\r$ \x1b[Kdef\r\n\r\x1b[K\x1b[A$ x",
		"1\r\n2\r\n3\r\n4\r\n5\r\n6\r\n7\r\n$ " + strings.Repeat("x", 100),
		"$ a\x1b[4Pbcd\x1b[2D\x1b[Ke",
		"\x1b[H\x1b[2J$ cleared",
	} {
		s := newScreen(20, 5)
		s.write([]byte(in))
		e := vt.NewEmulator(20, 5)
		if _, err := e.Write([]byte(in)); err != nil {
			t.Fatal(err)
		}
		var rows []string
		for y := range 5 {
			var b strings.Builder
			for x := range 20 {
				c := e.CellAt(x, y)
				if c == nil || c.Content == "" {
					b.WriteByte(' ')
				} else {
					b.WriteString(c.Content)
				}
			}
			rows = append(rows, strings.TrimRight(b.String(), " "))
		}
		want := strings.TrimRight(strings.Join(rows, "\n"), "\n")
		if got := screenText(s); got != want {
			t.Errorf("%q: got %q, want %q", in, got, want)
		}
		if pos := e.CursorPosition(); pos.X != s.x || pos.Y != s.y {
			t.Errorf("%q: cursor: got %d,%d, want %d,%d", in, s.x, s.y, pos.X, pos.Y)
		}
	}
}

func segsString(segs []Segment) string {
	var b strings.Builder
	for _, s := range segs {
		b.WriteString("[" + string(s.Data))
		if s.Submit {
			b.WriteString("|submit")
		}
		if s.Paste != nil {
			b.WriteString("|paste:" + strings.Join(s.Paste, "/"))
		}
		b.WriteString("]")
	}
	return b.String()
}

func TestKeys(t *testing.T) {
	for _, tc := range []struct {
		name      string
		typed     string // keys typed and echoed before
		bracketed bool
		keys      []string
		want      string
	}{
		{"plain", "", false, []string{"ls"}, "[ls]"},
		{"enter", "", false, []string{"ls\r"}, "[ls\r|submit]"},
		{"ctrl-j and ctrl-o", "", false, []string{"\n"}, "[\n|submit]"},
		{"trailing partial", "", false, []string{"ls\rpw"}, "[ls\r|submit][pw]"},
		{"paste", "", false, []string{"ls\rpwd\r"}, "[ls\rpwd\r|submit|paste:ls/pwd]"},
		{"paste after typed", "echo ", false, []string{"a\rb\rc"}, "[a\rb\r|submit|paste:echo a/b][c]"},
		{"paste with editing", "", false, []string{"rm x\x7f\x7f\x7f\x7fls\r\x15pwd\r"}, "[rm x\x7f\x7f\x7f\x7fls\r\x15pwd\r|submit|paste:ls/pwd]"},
		{"paste with arrows", "", false, []string{"ecox\x7f\x1b[Dh\x1b[C\r.\r"}, "[ecox\x7f\x1b[Dh\x1b[C\r.\r|submit|paste:echo/.]"},
		{"bracketed", "", true, []string{"\x1b[200~a\rb\r\x1b[201~"}, "[\x1b[200~a\rb\r\x1b[201~|paste:a/b]"},
		{"bracketed then enter", "", true, []string{"\x1b[200~a\rb\x1b[201~\r"}, "[\x1b[200~a\rb\x1b[201~\r|submit|paste:a/b]"},
		{"bracketed split", "", true, []string{"\x1b[20", "0~a\rb", "\x1b[2", "01~", "\r"}, "[\x1b[20][0~a\rb|paste:a][\x1b[2][01~][\r|submit]"},
		{"brackets but shell did not ask", "", false, []string{"\x1b[200~a\rb\r\x1b[201~"}, "[\x1b[200~a\rb\r|submit|paste:a/b][\x1b[201~]"},
		{"meta enter", "", false, []string{"\x1b\r"}, "[\x1b\r|submit]"},
		{"arrow split", "", false, []string{"\x1b", "[A", "\r"}, "[\x1b][[A][\r|submit]"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr := New(80, 24)
			tr.Output([]byte("$ "))
			if tc.bracketed {
				tr.Output([]byte("\x1b[?2004h"))
			}
			if tc.typed != "" {
				tr.Keys([]byte(tc.typed))
				tr.Output([]byte(tc.typed))
			}
			var got strings.Builder
			for _, k := range tc.keys {
				segs := tr.Keys([]byte(k))
				var all []byte
				for _, s := range segs {
					all = append(all, s.Data...)
				}
				if string(all) != k {
					t.Fatalf("data: got %q, want %q", all, k)
				}
				got.WriteString(segsString(segs))
			}
			if got.String() != tc.want {
				t.Errorf("got %q, want %q", got.String(), tc.want)
			}
		})
	}
}

// session drives a tracker through typed keys and their echo.
type session struct {
	t  *testing.T
	tr *Tracker
}

func (s session) key(k, echo string) session {
	s.tr.Keys([]byte(k))
	s.tr.Output([]byte(echo))
	return s
}

func (s session) line(want string, judge bool) session {
	s.t.Helper()
	got := s.tr.Line()
	if got.Judge != judge || (judge && got.Text != want) {
		s.t.Errorf("got %q judge %v (why %q), want %q judge %v", got.Text, got.Judge, got.Why, want, judge)
	}
	return s
}

func TestTracker(t *testing.T) {
	t.Run("wrap scrolls the anchor up", func(t *testing.T) {
		tr := New(10, 3)
		tr.Output([]byte("1\r\n2\r\n$ "))
		long := "echo " + strings.Repeat("x", 30)
		session{t, tr}.key(long, long).line(long, true)
	})
	t.Run("line longer than the screen", func(t *testing.T) {
		tr := New(10, 3)
		tr.Output([]byte("$ "))
		long := "echo " + strings.Repeat("y", 60) + " end"
		session{t, tr}.key(long, long).line(long, true)
	})
	t.Run("stale text right of the prompt is not the line", func(t *testing.T) {
		tr := New(20, 3)
		tr.Output([]byte("garbage garbage\r$ "))
		session{t, tr}.key("ls", "ls").line("ls", true)
	})
	t.Run("password", func(t *testing.T) {
		tr := New(20, 3)
		tr.Output([]byte("Password: "))
		session{t, tr}.key("hunter2", "").line("", false)
	})
	t.Run("alternate screen", func(t *testing.T) {
		tr := New(20, 3)
		tr.Output([]byte("\x1b[?1049h"))
		session{t, tr}.key(":q", ":q").line("", false)
	})
	t.Run("continue joins lines", func(t *testing.T) {
		tr := New(20, 5)
		tr.Output([]byte("$ "))
		s := session{t, tr}.key("echo 'a", "echo 'a").line("echo 'a", true)
		tr.Keys([]byte("\r"))
		tr.Continue()
		tr.Output([]byte("\r\n> "))
		s.key("b'", "b'").line("echo 'a\nb'", true)
		tr.Commit()
		s.line("", true)
	})
	t.Run("ctrl-c resets", func(t *testing.T) {
		tr := New(20, 5)
		tr.Output([]byte("$ "))
		s := session{t, tr}.key("rm -rf /", "rm -rf /").key("\x03", "^C\r\n$ ")
		s.key("ls", "ls").line("ls", true)
	})
	t.Run("ctrl-l", func(t *testing.T) {
		tr := New(20, 5)
		tr.Output([]byte("a\r\nb\r\n$ "))
		session{t, tr}.key("echo x", "echo x").key("\x0c", "\x1b[H\x1b[2J$ echo x").line("echo x", true)
	})
	t.Run("search", func(t *testing.T) {
		tr := New(40, 5)
		tr.Output([]byte("$ "))
		session{t, tr}.key("\x12", "\r(reverse-i-search)`': ").key("rm", "\x08\x08\x08rm': rm -rf /tmp/x\x1b[10D").line("rm -rf /tmp/x", true)
	})
	t.Run("resize", func(t *testing.T) {
		tr := New(20, 5)
		tr.Output([]byte("$ "))
		s := session{t, tr}.key("echo resized", "echo resized")
		tr.Resize(10, 3)
		s.line("echo res", true) // not reflowed: the row was cut
		tr.Output([]byte("\r$ echo res\r\nized\x1b[K"))
		s.line("echo resized", true)
	})
	t.Run("settled", func(t *testing.T) {
		tr := New(20, 5)
		if !tr.Settled() {
			t.Error("new tracker: got unsettled")
		}
		tr.Keys([]byte("l"))
		if tr.Settled() {
			t.Error("after a key: got settled")
		}
		tr.Output([]byte("l"))
		if !tr.Settled() {
			t.Error("after the echo: got unsettled")
		}
	})
	t.Run("a lone Enter has nothing to echo", func(t *testing.T) {
		tr := New(20, 5)
		tr.Output([]byte("$ "))
		session{t, tr}.key("ls", "ls")
		segs := tr.Keys([]byte("\r"))
		if len(segs) != 1 || !segs[0].Submit || !tr.Settled() {
			t.Fatalf("got %v settled %v; want one submit, settled", segs, tr.Settled())
		}
	})
	t.Run("keys reading through continuations", func(t *testing.T) {
		tr := New(30, 5)
		tr.Output([]byte("$ "))
		s := session{t, tr}.key("rm -rf \\", "rm -rf \\")
		tr.Keys([]byte("\r"))
		tr.Continue()
		tr.Output([]byte("\r\n> "))
		s.key("victim", "victim")
		l := tr.Line()
		if l.Text != "rm -rf \\\nvictim" || l.Keys != l.Text || !l.KeysOK {
			t.Fatalf("got text %q keys %q (ok %v)", l.Text, l.Keys, l.KeysOK)
		}
	})
	t.Run("tab is unknown to the keys reading", func(t *testing.T) {
		tr := New(30, 5)
		tr.Output([]byte("$ "))
		session{t, tr}.key("ech\t", "echo ")
		if l := tr.Line(); l.KeysOK || l.Text != "echo" {
			t.Fatalf("got %+v", l)
		}
	})
	t.Run("hidden input", func(t *testing.T) {
		tr := New(30, 5)
		tr.Output([]byte("$ "))
		session{t, tr}.key("rm -rf x", "")
		if l := tr.Line(); !l.Hidden || l.Judge || l.Keys != "rm -rf x" || !l.KeysOK {
			t.Fatalf("got %+v", l)
		}
	})
	t.Run("type-ahead is early", func(t *testing.T) {
		tr := New(40, 5)
		tr.Output([]byte("$ "))
		session{t, tr}.key("sleep 1", "sleep 1")
		tr.Keys([]byte("\r"))
		tr.Commit()
		tr.Output([]byte("\r\n\x1b[?2004l\r"))
		// Up arrow typed before the prompt: the tty echoes it.
		tr.Keys([]byte("\x1b[A"))
		tr.Output([]byte("^[[A"))
		l := tr.Line()
		if !l.Early || l.KeysOK {
			t.Fatalf("got %+v; want early, keys unknown", l)
		}
	})
	t.Run("a completion key is unanswered until output comes", func(t *testing.T) {
		tr := New(40, 5)
		tr.Output([]byte("$ "))
		session{t, tr}.key("x", "x")
		tr.Keys([]byte("\t"))
		if l := tr.Line(); !l.Unanswered || l.KeysOK {
			t.Fatalf("got %+v; want unanswered, keys unknown", l)
		}
		tr.Output([]byte("\brm -rf v"))
		if l := tr.Line(); l.Unanswered || l.Text != "rm -rf v" {
			t.Fatalf("got %+v; want answered, the completed line", l)
		}
		// A key the model follows needs no answer to be read.
		session{t, tr}.key("z", "rm -rf vz")
		tr.Keys([]byte("\x1b[D"))
		if l := tr.Line(); l.Unanswered {
			t.Fatalf("got %+v; want answered", l)
		}
	})
	t.Run("ctrl-x ctrl-e submits", func(t *testing.T) {
		tr := New(30, 5)
		tr.Output([]byte("$ "))
		session{t, tr}.key("rm -rf x", "rm -rf x")
		segs := tr.Keys([]byte("\x18"))
		if len(segs) != 1 || segs[0].Submit {
			t.Fatalf("ctrl-x: got %+v", segs)
		}
		segs = tr.Keys([]byte("\x05"))
		if len(segs) != 1 || !segs[0].Submit || !segs[0].Edit {
			t.Fatalf("ctrl-e after ctrl-x: got %+v", segs)
		}
		if segs = tr.Keys([]byte("\x05")); segs[0].Submit {
			t.Fatal("a plain ctrl-e submits")
		}
	})
	t.Run("paste read from the keys too", func(t *testing.T) {
		tr := New(30, 5)
		tr.Output([]byte("$ "))
		session{t, tr}.key("echo a", "echo a")
		segs := tr.Keys([]byte("b\rrm -rf x\r"))
		if len(segs) != 1 || strings.Join(segs[0].Paste, "|") != "echo ab|rm -rf x" || strings.Join(segs[0].PasteKeys, "|") != "echo ab|rm -rf x" {
			t.Fatalf("got %+v", segs)
		}
	})
	t.Run("full-screen program exits", func(t *testing.T) {
		tr := New(20, 5)
		tr.Output([]byte("$ \x1b[?1049h"))
		s := session{t, tr}.key("q", "")
		tr.Output([]byte("\x1b[?1049l$ "))
		s.key("ls", "ls").line("ls", true)
	})
}

func hostileOutput() []byte {
	var b bytes.Buffer
	for b.Len() < 1<<20 {
		b.WriteString("\x1b[" + strings.Repeat("9", 40) + ";" + strings.Repeat("9", 40) + "H")
		b.WriteString("\x1b[999999999b\x1b[999999999I\x1b[99999L\x1b[99999M\x1b[2J")
		b.WriteString("\x1b]0;" + strings.Repeat("endless title ", 20))
		b.WriteString("\x07\x1b[2;3r\n\n\n\x1b[r\x1bM\x1b[99999@\x1b[99999P世界\r\n")
	}
	return b.Bytes()[:1<<20]
}

func benchOutput(b *testing.B, in []byte) {
	tr := New(80, 24)
	tr.Output([]byte("$ "))
	tr.Keys([]byte("x")) // a line in progress: the anchor is followed too
	b.SetBytes(int64(len(in)))
	b.ResetTimer()
	for range b.N {
		for i := 0; i < len(in); i += 32 * 1024 {
			tr.Output(in[i:min(i+32*1024, len(in))])
		}
	}
}

func BenchmarkOutputHostile(b *testing.B) { benchOutput(b, hostileOutput()) }

func BenchmarkOutputEndlessOSC(b *testing.B) {
	benchOutput(b, append([]byte("\x1b]0;"), bytes.Repeat([]byte("x"), 1<<20)...))
}

func BenchmarkOutputNewlines(b *testing.B) { benchOutput(b, bytes.Repeat([]byte("\n"), 1<<20)) }

func BenchmarkOutputText(b *testing.B) {
	benchOutput(b, bytes.Repeat([]byte("-rw-r--r-- 1 root root 4096 Nov 27 \x1b[01;34mvar\x1b[0m\r\n"), 1<<20/52))
}

// BenchmarkVTNewlines is the same newline flood through the vt emulator, for
// the comparison in the package documentation.
func BenchmarkVTNewlines(b *testing.B) {
	in := bytes.Repeat([]byte("\n"), 1<<16)
	e := vt.NewEmulator(80, 24)
	b.SetBytes(int64(len(in)))
	for range b.N {
		_, _ = e.Write(in)
	}
}

func FuzzTracker(f *testing.F) {
	f.Add([]byte("$ "), []byte("ls -l\x7f\r"), []byte("ls -\b \b"))
	f.Add([]byte("\x1b[?2004h$ "), []byte("\x1b[200~a\rb\x1b[201~\r"), []byte("\x1b[7ma\x1b[27m\r\n\rb"))
	f.Add([]byte("\x1b[?1049h"), []byte(":q\r"), []byte("\x1b[?1049l$ "))
	f.Add([]byte("\x1b[2;3r\x1b[99999S"), []byte("\x12rm\x03"), []byte("\x1b]0;\x1b[H\x1b[2J"))
	for _, sc := range scenarios {
		f.Add([]byte("$ "), []byte(strings.Join(sc.keys, "")), []byte(strings.Join(sc.keys, "")))
	}
	f.Fuzz(func(t *testing.T, out1, keys, out2 []byte) {
		tr := New(int(len(out1)%100), int(len(out2)%30))
		tr.Output(out1)
		for i := 0; i < len(keys); i += 3 {
			part := keys[i:min(i+3, len(keys))]
			segs := tr.Keys(part)
			var all []byte
			for _, s := range segs {
				all = append(all, s.Data...)
				if s.Submit {
					tr.Line()
					tr.Commit()
				}
			}
			if !bytes.Equal(all, part) {
				t.Fatalf("segments: got %q, want %q", all, part)
			}
			tr.Output(out2[min(i, len(out2)):min(i+3, len(out2))])
		}
		tr.Resize(len(keys)%50, len(out2)%10)
		l := tr.Line()
		if !l.Judge && l.Text != "" {
			t.Fatalf("Judge false with text %q", l.Text)
		}
		tr.Continue()
		tr.Cancel()
	})
}

// The key after Ctrl-V or Ctrl-Q (quoted-insert) is a character in bash:
// an Enter, a Ctrl-J or a Ctrl-O after it does not submit the line (it is
// held as KeyQuoted: other shells run the line), a Ctrl-C after it does not
// cancel it (QuotedCancel), and an ESC after it starts no key sequence.
func TestQuotedKeys(t *testing.T) {
	for _, k := range []string{"\r", "\n", "\x0f"} {
		for _, q := range []string{"\x16", "\x11"} {
			tr := New(80, 24)
			tr.Output([]byte("$ "))
			tr.Keys([]byte("true x"))
			tr.Output([]byte("true x"))
			segs := append(tr.Keys([]byte(q)), tr.Keys([]byte(k))...)
			last := segs[len(segs)-1]
			if !last.Submit || !last.Edit || last.EditKey != KeyQuoted {
				t.Errorf("%q %q: got %+v, want the key held as KeyQuoted", q, k, last)
			}
			// Typed in one read: cut after it (EditCut), then held the same way.
			tr = New(80, 24)
			tr.Output([]byte("$ "))
			p := []byte("true x" + q + k + "#; rm -rf /srv\r")
			n := tr.EditCut(p)
			if string(p[:n]) != "true x"+q+k {
				t.Errorf("%q %q: EditCut: got %q", q, k, p[:n])
			}
		}
	}
	tr := New(80, 24)
	tr.Output([]byte("$ "))
	tr.Keys([]byte("rm -rf /srv "))
	tr.Output([]byte("rm -rf /srv "))
	tr.Keys([]byte("\x16"))
	tr.Keys([]byte("\x03"))
	tr.Output([]byte("^C"))
	if l := tr.Line(); !l.QuotedCancel {
		t.Errorf("Ctrl-V Ctrl-C: got %+v, want QuotedCancel", l)
	}
	tr.Keys([]byte("\x03")) // a Ctrl-C of its own ends the line in every shell
	tr.Output([]byte("^C\r\n$ "))
	if l := tr.Line(); l.QuotedCancel {
		t.Errorf("Ctrl-C after Ctrl-V Ctrl-C: got %+v, want the line cancelled", l)
	}
	var toks []keyTok
	var ks keyScanner
	ks.scan([]byte("\x16\x1b[200~a\r"), func(k keyTok) { toks = append(toks, k) })
	if len(toks) < 3 || toks[1].kind != kCtrl || toks[1].r != 0x1b || !toks[1].quoted || toks[2].kind != kRune || toks[2].r != '[' {
		t.Errorf("Ctrl-V ESC: got %+v, want a quoted ESC and then text", toks)
	}
	for _, k := range toks {
		if k.paste {
			t.Errorf("Ctrl-V ESC [200~: read as a paste: %+v", toks)
		}
	}
}

// A line cancelled by the caller whose shell has not answered the Ctrl-C
// (it ignores SIGINT) may still be in the shell: the next line says so.
func TestUncancelled(t *testing.T) {
	tr := New(80, 24)
	tr.Output([]byte("$ "))
	tr.Keys([]byte("rm -rf /srv"))
	tr.Output([]byte("rm -rf /srv"))
	tr.Keys([]byte("\r"))
	tr.Cancel()
	tr.Keys([]byte("\r"))
	if l := tr.Line(); !l.Uncancelled {
		t.Errorf("no answer to the cancel: got %+v, want Uncancelled", l)
	}
	// bash 5.2 given the SIGINT while readline was busy: it resets the
	// terminal and keeps the line, drawing no new one.
	tr.Output([]byte("^C\x1b[?2004l\r\x1b[?2004h"))
	if tr.CancelAnswered() {
		t.Errorf("the terminal reset taken for an answer")
	}
	tr.Keys([]byte("\r"))
	if l := tr.Line(); !l.Uncancelled {
		t.Errorf("after a reset without a new line: got %+v, want Uncancelled", l)
	}
	tr.Output([]byte("\x1b[?2004l\r\r\n\x1b[?2004h$ "))
	if !tr.CancelAnswered() {
		t.Errorf("the new line not taken for an answer")
	}
	tr.Commit()
	tr.Keys([]byte("ls"))
	tr.Output([]byte("ls"))
	if l := tr.Line(); l.Uncancelled {
		t.Errorf("after the shell answered: got %+v", l)
	}
}

func TestSignalReset(t *testing.T) {
	for _, c := range []struct {
		out  string
		want bool
	}{
		{"^C\x1b[?2004l\r\x1b[?2004h", true},
		{"^G^C\x1b[?2004l\r\x1b[?2004h", true},
		{"\a^C", true},
		{"^C", true},
		{"\x1b[?2004l", true},
		{"^C\x1b[?2004l\r\x1b[?2004h\x1b[?2004l\r\r\n\x1b[?2004hP> ", false},
		{"^C\r\nP> ", false},
		{"\x1b[?2004", false},
		{"^", false},
		{"\x1b[?1049l", false},
		{"$ ", false},
	} {
		if got := signalReset([]byte(c.out)); got != c.want {
			t.Errorf("signalReset(%q) = %v, want %v", c.out, got, c.want)
		}
	}
}
