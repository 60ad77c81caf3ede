package asciicast

import (
	"bytes"
	"testing"
	"unicode/utf8"
)

// reference decodes the whole stream at once, one U+FFFD per invalid byte.
func reference(p []byte) []byte {
	var out []byte
	for len(p) > 0 {
		r, size := utf8.DecodeRune(p)
		if r == utf8.RuneError && size == 1 {
			out = utf8.AppendRune(out, utf8.RuneError)
		} else {
			out = append(out, p[:size]...)
		}
		p = p[size:]
	}
	return out
}

// carryAll feeds the writes through one UTF8Carry, checking every piece.
func carryAll(t *testing.T, writes [][]byte) []byte {
	t.Helper()
	var c UTF8Carry
	var out []byte
	for i, w := range writes {
		piece := c.Write(w)
		if !utf8.Valid(piece) {
			t.Fatalf("write %d (%q): piece %q is not valid UTF-8", i, w, piece)
		}
		out = append(out, piece...)
	}
	return append(out, c.Flush()...)
}

func TestUTF8Carry(t *testing.T) {
	euro := []byte("\u20ac") // e2 82 ac
	emoji := []byte("\U0001F600")
	tests := []struct {
		name   string
		writes [][]byte
		want   string
	}{
		{name: "ascii", writes: [][]byte{[]byte("abc"), []byte("def")}, want: "abcdef"},
		{name: "euro split 1+2", writes: [][]byte{{'a', euro[0]}, {euro[1], euro[2], 'b'}}, want: "a\u20acb"},
		{name: "euro split 2+1", writes: [][]byte{{'a', euro[0], euro[1]}, {euro[2]}}, want: "a\u20ac"},
		{name: "emoji byte by byte", writes: [][]byte{{emoji[0]}, {emoji[1]}, {emoji[2]}, {emoji[3]}}, want: "\U0001F600"},
		{name: "empty writes between", writes: [][]byte{{euro[0]}, {}, nil, {euro[1]}, {}, {euro[2]}}, want: "\u20ac"},
		{name: "invalid byte", writes: [][]byte{[]byte("a\xffb")}, want: "a\ufffdb"},
		{name: "literal U+FFFD passes", writes: [][]byte{[]byte("\ufffd")}, want: "\ufffd"},
		{name: "lone continuation", writes: [][]byte{{0x80, 'a'}}, want: "\ufffda"},
		{name: "broken by ascii", writes: [][]byte{{euro[0], euro[1]}, []byte("x")}, want: "\ufffd\ufffdx"},
		{name: "broken by new start", writes: [][]byte{{euro[0]}, {emoji[0], emoji[1], emoji[2], emoji[3]}}, want: "\ufffd\U0001F600"},
		{name: "broken start carried again", writes: [][]byte{{euro[0]}, {emoji[0]}, {emoji[1], emoji[2], emoji[3]}}, want: "\ufffd\U0001F600"},
		{name: "surrogate", writes: [][]byte{{0xed, 0xa0}, {0x80}}, want: "\ufffd\ufffd\ufffd"},
		{name: "beyond U+10FFFF", writes: [][]byte{{0xf4, 0x90, 0x80, 0x80}}, want: "\ufffd\ufffd\ufffd\ufffd"},
		{name: "overlong", writes: [][]byte{{0xc0, 0xaf}}, want: "\ufffd\ufffd"},
		{name: "incomplete at end", writes: [][]byte{[]byte("ok"), {emoji[0], emoji[1]}}, want: "ok\ufffd\ufffd"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if got := carryAll(t, tc.writes); string(got) != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

// Every split of a mixed stream gives what decoding it whole gives.
func TestUTF8CarryEverySplit(t *testing.T) {
	in := []byte("h\u00e9\u20ac\U0001F600\xff\xe2\x82x\xf0\x9f\x98\u4e16")
	want := reference(in)
	for i := 0; i <= len(in); i++ {
		for j := i; j <= len(in); j++ {
			got := carryAll(t, [][]byte{in[:i], in[i:j], in[j:]})
			if !bytes.Equal(got, want) {
				t.Fatalf("split %d,%d: got %q, want %q", i, j, got, want)
			}
		}
	}
}

// A valid write with nothing carried comes back as the same slice.
func TestUTF8CarryNoCopy(t *testing.T) {
	var c UTF8Carry
	p := []byte("plain text \u00e9")
	if got := c.Write(p); &got[0] != &p[0] || len(got) != len(p) {
		t.Errorf("got a copy, want p itself")
	}
	p = append([]byte("abc"), 0xe2)
	if got := c.Write(p); &got[0] != &p[0] || string(got) != "abc" || c.Pending() != 1 {
		t.Errorf("got %q pending %d, want \"abc\" aliasing p, pending 1", got, c.Pending())
	}
	allocs := testing.AllocsPerRun(100, func() {
		c.Write([]byte{0x82, 0xac, 'a', 'b', 0xe2})
	})
	if allocs != 0 {
		t.Errorf("got %v allocations per carried write, want 0", allocs)
	}
}

func FuzzUTF8Carry(f *testing.F) {
	f.Add([]byte("h\u00e9llo \u20ac\U0001F600"), uint8(3), uint8(7))
	f.Add([]byte{0xe2, 0x82, 0xff, 0xf0, 0x9f, 0x98}, uint8(1), uint8(2))
	f.Add([]byte{0xed, 0xa0, 0x80, 0xc0, 0xaf}, uint8(1), uint8(4))
	f.Fuzz(func(t *testing.T, in []byte, a, b uint8) {
		i, j := int(a)%(len(in)+1), int(b)%(len(in)+1)
		if i > j {
			i, j = j, i
		}
		want := reference(in)
		if got := carryAll(t, [][]byte{in[:i], in[i:j], in[j:]}); !bytes.Equal(got, want) {
			t.Fatalf("split %d,%d of %q: got %q, want %q", i, j, in, got, want)
		}
	})
}

func BenchmarkUTF8Carry(b *testing.B) {
	p := bytes.Repeat([]byte("ascii and \u00e9\u20ac "), 4096/16)
	p = p[:4095] // likely ends mid-character
	var c UTF8Carry
	b.SetBytes(int64(len(p)))
	b.ReportAllocs()
	for b.Loop() {
		c.Write(p)
	}
}
