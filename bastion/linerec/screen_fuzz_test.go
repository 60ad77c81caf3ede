package linerec

import (
	"bytes"
	"fmt"
	"strings"
	"testing"
)

// check reports the first broken invariant of the screen model: the cursor,
// the scroll region, the rows and the mark stay within the window.
func (s *screen) check() error {
	switch {
	case s.cols < 2 || s.cols > maxCols || s.rows < 1 || s.rows > maxRows:
		return fmt.Errorf("size %dx%d", s.cols, s.rows)
	case len(s.ring) != s.rows || s.base < 0 || s.base >= s.rows:
		return fmt.Errorf("ring %d base %d for %d rows", len(s.ring), s.base, s.rows)
	case s.x < 0 || s.x >= s.cols || s.y < 0 || s.y >= s.rows:
		return fmt.Errorf("cursor (%d,%d) outside %dx%d", s.x, s.y, s.cols, s.rows)
	case s.top < 0 || s.bot >= s.rows || s.top > s.bot:
		return fmt.Errorf("scroll region %d..%d in %d rows", s.top, s.bot, s.rows)
	}
	for i := range s.ring {
		if r := &s.ring[i]; len(r.c) > s.cols {
			return fmt.Errorf("row %d: %d cells in %d columns", i, len(r.c), s.cols)
		}
	}
	if s.mark {
		if s.mx < 0 || s.mx > s.cols || s.my >= s.rows || s.my < -len(s.off) && !s.offLost {
			return fmt.Errorf("mark (%d,%d) with %d rows off, %dx%d", s.mx, s.my, len(s.off), s.cols, s.rows)
		}
		if len(s.off) > maxOff {
			return fmt.Errorf("%d rows kept off screen", len(s.off))
		}
	}
	return nil
}

// The shiftRight bug that took sessions down: insert characters at the
// last columns of a full row.
func TestInsertCharsAtRightMargin(t *testing.T) {
	for _, out := range []string{
		strings.Repeat("x", 119) + "\x1b[119G\x1b[9@",
		strings.Repeat("x", 120) + "\x1b[120G\x1b[9999@",
		"\x1b[200G\x1b[5@ab",
		strings.Repeat("界", 60) + "\x1b[119G\x1b[3@",
		"\x1b[4h" + strings.Repeat("y", 130),
	} {
		s := newScreen(120, 30)
		s.write([]byte(out))
		if err := s.check(); err != nil {
			t.Errorf("%q: %v", out, err)
		}
	}
}

// FuzzScreen feeds random output, keys and resizes to a Tracker and checks
// that nothing panics and the screen stays consistent after every step.
func FuzzScreen(f *testing.F) {
	f.Add(uint8(120), uint8(30), []byte(strings.Repeat("x", 119)+"\x1b[119G\x1b[9@"), []byte("ls\r"))
	f.Add(uint8(80), uint8(24), []byte("\x1b[2;5r\x1b[5;1H\n\n\n\x1b[L\x1b[M\x1b[3P\x1b[3X"), []byte("a\x1b[D\x1b[Db\r"))
	f.Add(uint8(10), uint8(3), []byte("\x1b[?1049h\x1b[?6h\x1b[99;99H\x1b[?1049l\x1bM\x1bM\x1bD"), []byte("\x1b[200~x\ry\x1b[201~\r"))
	f.Add(uint8(2), uint8(1), []byte("界界界\x1b[1@\x1b[2P\t\t\x1b[Z\x1b[3b"), []byte("\x18\x05"))
	f.Add(uint8(200), uint8(2), []byte("\x1b[?7l"+strings.Repeat("z", 300)+"\x1b[s\x1b[u\x1b7\x1b8\x1b[r"), []byte("\t\x12x\x03"))
	for _, sc := range scenarios {
		f.Add(uint8(sc.cols), uint8(sc.rows), []byte(sc.ps1), []byte(strings.Join(sc.keys, "")))
	}
	f.Fuzz(func(t *testing.T, cols, rows uint8, out, keys []byte) {
		tr := New(int(cols), int(rows))
		step := func(what string) {
			if err := tr.s.check(); err != nil {
				t.Fatalf("after %s: %v", what, err)
			}
		}
		step("New")
		for i := 0; i < max(len(out), len(keys)); i += 7 {
			if i < len(out) {
				o := out[i:min(i+7, len(out))]
				tr.Output(o)
				step(fmt.Sprintf("output %q", o))
			}
			if i < len(keys) {
				k := keys[i:min(i+7, len(keys))]
				var all []byte
				for _, seg := range tr.Keys(k) {
					all = append(all, seg.Data...)
					if seg.Submit {
						l := tr.Line()
						if !l.Judge && l.Text != "" {
							t.Fatalf("Judge false with text %q", l.Text)
						}
						switch k[0] % 3 {
						case 0:
							tr.Commit()
						case 1:
							tr.Continue()
						default:
							tr.Cancel()
						}
					}
				}
				if !bytes.Equal(all, k) {
					t.Fatalf("segments: got %q, want %q", all, k)
				}
				step(fmt.Sprintf("keys %q", k))
			}
			if i%5 == 3 && len(out) > 0 && len(keys) > 0 {
				tr.Resize(int(out[i%len(out)]), int(keys[i%len(keys)]))
				step("resize")
			}
		}
		tr.Line()
	})
}
