package shellcmd

import "testing"

// CloseHereDocs ends what bash may already have ended: an open
// here-document (and the constructs around it), so that the commands before
// it can be judged; where it cannot (an empty delimiter, which this parser
// never ends), ok is false.
func TestCloseHereDocs(t *testing.T) {
	for _, c := range []struct {
		src, closed string
		open, ok    bool
	}{
		{src: "rm x; cat <<EOF\nE\\\nOF", closed: "rm x; cat <<EOF\nE\\\nOF\nEOF", open: true, ok: true},
		{src: "echo $(cat <<EOF\nEOF)", closed: "echo $(cat <<EOF\nEOF)\nEOF\n)", open: true, ok: true},
		{src: "git commit -m \"$(cat <<'EOF'\nmsg", closed: "git commit -m \"$(cat <<'EOF'\nmsg\nEOF\n)\"", open: true, ok: true},
		{src: "{ rm x; cat <<EOF\nE\\\nOF\n}", closed: "{ rm x; cat <<EOF\nE\\\nOF\n}\nEOF\n}", open: true, ok: true},
		{src: "if true; then cat <<EOF\nx\nEOF", closed: "if true; then cat <<EOF\nx\nEOF\nfi", ok: true},
		{src: "rm x; cat <<''\n", open: true},
		{src: "rm x; cat <<\"\"\nbody", open: true},
		{src: "echo 'x", open: false},
	} {
		closed, open, ok := CloseHereDocs(c.src)
		if closed != c.closed || open != c.open || ok != c.ok {
			t.Errorf("%q: got %q, open %v, ok %v; want %q, %v, %v", c.src, closed, open, ok, c.closed, c.open, c.ok)
		}
		if ok {
			if a, err := Analyze(closed); err != nil || a.Incomplete {
				t.Errorf("%q: closed %q does not parse whole: %v", c.src, closed, err)
			}
		}
	}
}
