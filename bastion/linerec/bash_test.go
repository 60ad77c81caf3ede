package linerec

import (
	"bytes"
	"encoding/json"
	"errors"
	"flag"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/creack/pty"
)

var update = flag.Bool("update", false, "record testdata fixtures from a real bash")

// A fixture is a recorded session: what the user typed, what bash echoed, in
// the order the tracker saw them, and at each Enter what bash then ran.
type fixture struct {
	Name   string  `json:"name"`
	Note   string  `json:"note,omitempty"`
	Cols   int     `json:"cols"`
	Rows   int     `json:"rows"`
	Events []event `json:"events"`
}

type event struct {
	Keys   string   `json:"keys,omitempty"`   // Tracker.Keys
	Paste  []string `json:"paste,omitempty"`  // with Keys: the lines bash ran from the paste
	Out    string   `json:"out,omitempty"`    // Tracker.Output
	Resize []int    `json:"resize,omitempty"` // Tracker.Resize
	Check  *check   `json:"check,omitempty"`  // Tracker.Line, then Commit or Continue
}

type check struct {
	Text     string `json:"text"`               // what bash ran (history), "" when it ran nothing
	Judge    bool   `json:"judge"`              // false: bash's readline did not read this line
	Continue bool   `json:"continue,omitempty"` // the line was incomplete (PS2)
}

type scenario struct {
	name  string
	cols  int
	rows  int
	ps1   string
	setup []string // commands run before recording
	keys  []string // key chunks as a user would type them
}

const plainPS1 = `\$ `

var scenarios = []scenario{
	{name: "typing", keys: []string{"echo hello", "\r"}},
	{name: "backspace", keys: []string{"echo hellx", "\x7f", "o", "\x7f\x7fo", "\r"}},
	{name: "ctrl-u", keys: []string{"rm -rf /tmp/nothing-here", "\x15", "echo safe", "\r"}},
	{name: "ctrl-w", keys: []string{"echo one two", "\x17", "three", "\r"}},
	{name: "arrows-insert", keys: []string{"echo wrld", "\x1b[D", "\x1b[D", "\x1b[D", "o", "\x1b[C", "\x1b[C", "+", "\r"}},
	{name: "home-end", keys: []string{"cho x", "\x01", "e", "\x05", "y", "\x1b[H", "\x1b[F", "z", "\r"}},
	{name: "history", keys: []string{"echo first", "\r", "echo second one", "\r", "\x1b[A", "\x1b[A", "\x1b[B", "\x1b[A", " again", "\r"}},
	{name: "tab-completion", setup: []string{"touch alpha-one.txt alpha-two.txt beta.txt"},
		keys: []string{"ls bet", "\t", "\r", "ls alp", "\t", "\t", "\t", "t", "\t", "\r"}},
	{name: "wrap-scroll", cols: 30, rows: 6, setup: []string{"seq 1 8"},
		keys: []string{"echo " + strings.Repeat("abcdefghij", 4), "\r", "echo " + strings.Repeat("0123456789", 9) + " end", "\x7f\x7f\x7fEND", "\r"}},
	{name: "colour-prompt", ps1: `\[\e[1;32m\]user@host\[\e[0m\]:\[\e[1;34m\]\w\[\e[0m\]\$ `,
		keys: []string{"echo colour", "\r", "echo two", "\x15", "echo three", "\r"}},
	{name: "password", keys: []string{"read -s -p 'Password: ' pw", "\r", "hunter2", "\r", "echo done", "\r"}},
	{name: "alt-screen", keys: []string{`printf '\e[?1049h'; read x; printf '\e[?1049l'`, "\r", "inside the program", "\r", "echo after", "\r"}},
	{name: "less", setup: []string{"seq 1 200 > numbers.txt"}, keys: []string{"less numbers.txt", "\r", "/150", "\r", "q", "echo back", "\r"}},
	{name: "vim", keys: []string{"vim -u NONE -N x.txt", "\r", "iecho not a command", "\x1b", ":wq", "\r", "echo out", "\r"}},
	{name: "paste-plain", setup: []string{"bind 'set enable-bracketed-paste off'"},
		keys: []string{"echo ", "p1\recho p2\recho p3\r"}},
	{name: "paste-bracketed", keys: []string{"echo ", "\x1b[200~b1\recho b2\r\x1b[201~", "\r"}},
	{name: "continuation", keys: []string{"echo a \\", "\r", "b c", "\r", "echo 'x", "\r", "y'", "\r"}},
	{name: "ctrl-l", keys: []string{"echo cl", "\x0c", "ear", "\r"}},
	{name: "ctrl-c", keys: []string{"echo never", "\x03", "echo after", "\r"}},
}

// TestBash runs each scenario against a real bash on a pty: it feeds the
// keys through a Tracker the way the SSH server does, and checks at each
// Enter that Line() is the command bash then runs. With -update it also
// records the session as a fixture under testdata/.
func TestBash(t *testing.T) {
	if testing.Short() {
		t.Skip("starts bash")
	}
	if _, err := exec.LookPath("bash"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatal("bash is required in CI")
		}
		t.Skip("no bash")
	}
	for _, sc := range scenarios {
		t.Run(sc.name, func(t *testing.T) {
			if strings.HasPrefix(sc.name, "vim") || strings.HasPrefix(sc.name, "less") {
				if _, err := exec.LookPath(sc.name); err != nil {
					t.Skip("no " + sc.name)
				}
			}
			fx := runBash(t, sc)
			if *update {
				b, err := json.MarshalIndent(fx, "", "  ")
				if err != nil {
					t.Fatal(err)
				}
				if err := os.WriteFile(filepath.Join("testdata", sc.name+".json"), append(b, '\n'), 0o644); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

type bashSession struct {
	t        *testing.T
	pty      *os.File
	out      chan []byte
	histFile string
	histSeen int
}

func startBash(t *testing.T, sc scenario) *bashSession {
	t.Helper()
	dir := t.TempDir()
	hist := filepath.Join(dir, ".hist")
	ps1 := sc.ps1
	if ps1 == "" {
		ps1 = plainPS1
	}
	cmd := exec.Command("bash", "--norc", "--noprofile", "-i")
	cmd.Dir = dir
	cmd.Env = []string{
		"PS1=" + ps1, "PS2=> ", "TERM=xterm-256color", "HOME=" + dir, "PATH=" + os.Getenv("PATH"),
		"LANG=C.UTF-8", "INPUTRC=/dev/null", "HISTFILE=", "HISTSIZE=1000", "HISTCONTROL=",
	}
	cols, rows := sc.cols, sc.rows
	if cols == 0 {
		cols, rows = 80, 24
	}
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: uint16(cols), Rows: uint16(rows)})
	if err != nil {
		t.Fatal(err)
	}
	b := &bashSession{t: t, pty: f, out: make(chan []byte, 64), histFile: hist}
	go func() {
		defer close(b.out)
		for {
			buf := make([]byte, 4096)
			n, err := f.Read(buf)
			if n > 0 {
				b.out <- buf[:n]
			}
			if err != nil {
				return
			}
		}
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
		_ = f.Close()
		for range b.out {
		}
	})
	return b
}

// read collects output until it has been quiet for a moment (or, when want
// is set, until something arrived and then went quiet).
func (b *bashSession) read(want bool) [][]byte {
	var got [][]byte
	quiet := 150 * time.Millisecond
	if want {
		quiet = 3 * time.Second
	}
	for {
		select {
		case p, ok := <-b.out:
			if !ok {
				return got
			}
			got = append(got, p)
			quiet = 150 * time.Millisecond
		case <-time.After(quiet):
			return got
		}
	}
}

// readPrompt collects output until the shell shows a prompt again (or what
// runs instead has been busy for a while), then until it is quiet.
func (b *bashSession) readPrompt() [][]byte {
	var got [][]byte
	var all []byte
	deadline := time.After(5 * time.Second)
	for {
		select {
		case p, ok := <-b.out:
			if !ok {
				return got
			}
			got = append(got, p)
			all = append(all, p...)
			if bytes.Contains(all, []byte("\x1b[?2004h")) || bytes.HasSuffix(all, []byte("# ")) ||
				bytes.HasSuffix(all, []byte("$ ")) || bytes.HasSuffix(all, []byte("> ")) {
				return append(got, b.read(false)...)
			}
		case <-deadline:
			return got
		}
	}
}

func (b *bashSession) send(p string) {
	if _, err := b.pty.Write([]byte(p)); err != nil {
		b.t.Fatal(err)
	}
}

var histRE = regexp.MustCompile(`(?s)^\s*(\d+)\*?\s\s(.*)$`)

// ran returns the history entries added since the last call.
func (b *bashSession) ran() []string {
	data, err := os.ReadFile(b.histFile)
	if err != nil && !errors.Is(err, os.ErrNotExist) {
		b.t.Fatal(err)
	}
	var out []string
	for _, e := range bytes.Split(data, []byte{0}) {
		m := histRE.FindSubmatch(e)
		if m == nil {
			continue
		}
		n := 0
		for _, d := range m[1] {
			n = n*10 + int(d-'0')
		}
		if n > b.histSeen {
			b.histSeen = n
			out = append(out, string(m[2]))
		}
	}
	return out
}

func runBash(t *testing.T, sc scenario) fixture {
	b := startBash(t, sc)
	b.read(true)
	// The DEBUG trap runs before each command, right after bash accepted
	// the line: it records the history entry, that is the line bash runs.
	b.send(`trap 'printf "%s\0" "$(HISTTIMEFORMAT= history 1)" >> ` + b.histFile + `' DEBUG` + "\r")
	b.read(true)
	for _, c := range sc.setup {
		b.send(c + "\r")
		b.read(true)
	}
	b.ran()
	cols, rows := sc.cols, sc.rows
	if cols == 0 {
		cols, rows = 80, 24
	}
	// Start recording on a fresh prompt.
	b.send("\r")
	fx := fixture{Name: sc.name, Cols: cols, Rows: rows, Note: "recorded from bash --norc --noprofile -i on a pty"}
	tr := New(cols, rows)
	for _, p := range b.read(true) {
		tr.Output(p)
		fx.Events = append(fx.Events, event{Out: string(p)})
	}
	b.ran()
	record := func(ps [][]byte) {
		for _, p := range ps {
			tr.Output(p)
			fx.Events = append(fx.Events, event{Out: string(p)})
		}
	}
	feed := func(want bool) { record(b.read(want)) }
	for _, k := range sc.keys {
		segs := tr.Keys([]byte(k))
		fx.Events = append(fx.Events, event{Keys: k})
		ki := len(fx.Events) - 1
		for _, seg := range segs {
			switch {
			case !seg.Submit && seg.Paste != nil:
				// A bracketed paste: the shell inserts it; the next Enter runs it.
				fx.Events[ki].Paste = seg.Paste
				b.send(string(seg.Data))
				feed(true)
			case !seg.Submit:
				b.send(string(seg.Data))
				feed(true)
			case seg.Paste != nil:
				b.send(string(seg.Data))
				tr.Commit()
				record(b.readPrompt())
				ran := b.ran()
				fx.Events[ki].Paste = ran
				if !sameLines(seg.Paste, ran) {
					t.Errorf("paste: got %q, want %q", seg.Paste, ran)
				}
			default:
				b.send(string(seg.Data[:len(seg.Data)-1]))
				feed(len(seg.Data) > 1)
				l := tr.Line()
				ck := &check{}
				fx.Events = append(fx.Events, event{Check: ck})
				b.send(string(seg.Data[len(seg.Data)-1:]))
				record(b.readPrompt())
				ran := b.ran()
				switch {
				case len(ran) > 0:
					ck.Text, ck.Judge = strings.Join(ran, "\n"), true
				case l.Judge && isIncomplete(l.Text):
					ck.Text, ck.Judge, ck.Continue = l.Text, true, true
				default: // bash's readline did not read a command line
					ck.Judge = false
				}
				verify(t, ck, l)
				if ck.Continue {
					tr.Continue()
				} else {
					tr.Commit()
				}
			}
		}
	}
	return fx
}

// isIncomplete is the test's stand-in for the shell parser the server uses
// to decide between Commit and Continue: a trailing backslash or an open
// single or double quote.
func isIncomplete(s string) bool {
	s = strings.TrimRight(s, "\n")
	if strings.HasSuffix(s, "\\") {
		return true
	}
	var q rune
	esc := false
	for _, r := range s {
		switch {
		case esc:
			esc = false
		case q == '\'':
			if r == '\'' {
				q = 0
			}
		case r == '\\':
			esc = true
		case q == '"':
			if r == '"' {
				q = 0
			}
		case r == '\'' || r == '"':
			q = r
		}
	}
	return q != 0
}

// norm makes a history entry and a tracked line comparable: bash drops a
// backslash-newline from history and may keep trailing blanks.
func norm(s string) string {
	s = strings.ReplaceAll(s, "\\\n", "")
	return strings.Join(strings.Fields(s), " ")
}

func sameLines(a, b []string) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if norm(a[i]) != norm(b[i]) {
			return false
		}
	}
	return true
}

func verify(t *testing.T, want *check, got Line) {
	t.Helper()
	if got.Judge != want.Judge {
		t.Errorf("Judge: got %v (%q, why %q), want %v (%q)", got.Judge, got.Text, got.Why, want.Judge, want.Text)
		return
	}
	if want.Judge && !want.Continue && norm(got.Text) != norm(want.Text) {
		t.Errorf("Line: got %q (why %q), want %q", got.Text, got.Why, want.Text)
	}
}

// TestFixtures replays the recorded sessions: no bash needed.
func TestFixtures(t *testing.T) {
	files, err := filepath.Glob(filepath.Join("testdata", "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	if len(files) == 0 {
		t.Fatal("no fixtures in testdata (record them with go test -run TestBash -update)")
	}
	for _, f := range files {
		t.Run(strings.TrimSuffix(filepath.Base(f), ".json"), func(t *testing.T) {
			data, err := os.ReadFile(f)
			if err != nil {
				t.Fatal(err)
			}
			var fx fixture
			if err := json.Unmarshal(data, &fx); err != nil {
				t.Fatal(err)
			}
			replay(t, fx)
		})
	}
}

func replay(t *testing.T, fx fixture) {
	t.Helper()
	tr := New(fx.Cols, fx.Rows)
	checks := 0
	for _, ev := range fx.Events {
		switch {
		case ev.Keys != "":
			segs := tr.Keys([]byte(ev.Keys))
			var all []byte
			for _, s := range segs {
				all = append(all, s.Data...)
				if s.Paste != nil || ev.Paste != nil {
					if !sameLines(s.Paste, ev.Paste) {
						t.Errorf("paste: got %q, want %q", s.Paste, ev.Paste)
					}
					if s.Submit {
						tr.Commit()
					}
					checks++
				}
			}
			if string(all) != ev.Keys {
				t.Errorf("segments: got %q, want %q", all, ev.Keys)
			}
		case ev.Out != "":
			tr.Output([]byte(ev.Out))
		case ev.Resize != nil:
			tr.Resize(ev.Resize[0], ev.Resize[1])
		case ev.Check != nil:
			verify(t, ev.Check, tr.Line())
			checks++
			if ev.Check.Continue {
				tr.Continue()
			} else {
				tr.Commit()
			}
		}
	}
	if checks == 0 {
		t.Error("fixture has no check")
	}
}
