package player

import (
	"bytes"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata")

var epoch = time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)

// autoClock is a fake clock for playback without interactive keys: every wait
// returns at once and moves the clock forward by the time waited.
type autoClock struct{ now time.Time }

func (c *autoClock) Now() time.Time { return c.now }

func (c *autoClock) After(d time.Duration) <-chan time.Time {
	c.now = c.now.Add(d)
	ch := make(chan time.Time, 1)
	ch <- c.now
	return ch
}

// manualClock is a fake clock that only moves when the test advances it.
type manualClock struct {
	mu      sync.Mutex
	now     time.Time
	waiters []waiter
	calls   int // number of After calls
}

// Calls returns the number of After calls so far.
func (c *manualClock) Calls() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.calls
}

type waiter struct {
	at time.Time
	ch chan time.Time
}

func (c *manualClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *manualClock) After(d time.Duration) <-chan time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	ch := make(chan time.Time, 1)
	c.calls++
	c.waiters = append(c.waiters, waiter{c.now.Add(d), ch})
	return ch
}

// Advance moves the clock and fires the waits that are due. It reports whether
// the most recent wait fired (earlier ones were abandoned by the player).
func (c *manualClock) Advance(d time.Duration) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	fired := false
	keep := c.waiters[:0]
	for i, w := range c.waiters {
		if w.at.After(c.now) {
			keep = append(keep, w)
			continue
		}
		w.ch <- c.now
		fired = i == len(c.waiters)-1
	}
	c.waiters = keep
	return fired
}

// transcript records each write to the terminal with the fake time it happened at.
type transcript struct {
	mu    sync.Mutex
	now   func() time.Time
	lines []string
	all   bytes.Buffer
}

func (t *transcript) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.lines = append(t.lines, fmt.Sprintf("%7.3fs %q", t.now().Sub(epoch).Seconds(), p))
	t.all.Write(p)
	return len(p), nil
}

func (t *transcript) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	return strings.Join(t.lines, "\n")
}

// take returns the lines written since the last call.
func (t *transcript) take() []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	l := t.lines
	t.lines = nil
	return l
}

// castSource builds a Source from a header and events, counting opens.
type castSource struct {
	data  []byte
	opens int
}

func (s *castSource) Open() (io.ReadCloser, error) {
	s.opens++
	return io.NopCloser(bytes.NewReader(s.data)), nil
}

func newCast(t testing.TB, events ...asciicast.Event) *castSource {
	t.Helper()
	return newCastHeader(t, asciicast.Header{Version: 2, Width: 80, Height: 24}, events...)
}

func newCastHeader(t testing.TB, h asciicast.Header, events ...asciicast.Event) *castSource {
	t.Helper()
	var b bytes.Buffer
	enc, err := asciicast.NewEncoder(&b, h)
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range events {
		if err := enc.Event(ev); err != nil {
			t.Fatal(err)
		}
	}
	return &castSource{data: b.Bytes()}
}

func out(sec float64, data string) asciicast.Event {
	return asciicast.Event{Time: time.Duration(sec * float64(time.Second)), Type: asciicast.Output, Data: data}
}

// playAuto plays src with the auto-advancing clock and returns the transcript.
func playAuto(t *testing.T, src Source, opt Options) string {
	t.Helper()
	clock := &autoClock{now: epoch}
	tr := &transcript{now: clock.Now}
	opt.Now, opt.After = clock.Now, clock.After
	if err := Play(context.Background(), src, tr, opt); err != nil {
		t.Fatalf("Play: %v", err)
	}
	return tr.String()
}

func TestPlayGolden(t *testing.T) {
	src := FileSource(filepath.Join("testdata", "session.cast"))
	cases := []struct {
		name string
		opt  Options
	}{
		{"default", Options{}},
		{"speed2_idle1s", Options{Speed: 2, IdleLimit: time.Second}},
		{"markers", Options{ShowMarkers: true, IdleLimit: time.Second}},
		{"raw", Options{Raw: true, ShowMarkers: true, IdleLimit: time.Second}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := playAuto(t, src, tc.opt) + "\n"
			golden := filepath.Join("testdata", "session."+tc.name+".golden")
			if *update {
				if err := os.WriteFile(golden, []byte(got), 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(golden)
			if err != nil {
				t.Fatal(err)
			}
			if got != string(want) {
				t.Errorf("got:\n%s\nwant:\n%s", got, want)
			}
		})
	}
}

func TestPlayTiming(t *testing.T) {
	cases := []struct {
		name   string
		events []asciicast.Event
		opt    Options
		want   string
	}{
		{
			name:   "first frame at once",
			events: []asciicast.Event{out(10, "a"), out(11, "b")},
			want:   "  0.000s \"a\"\n  1.000s \"b\"",
		},
		{
			name:   "speed",
			events: []asciicast.Event{out(0, "a"), out(1, "b"), out(3, "c")},
			opt:    Options{Speed: 4},
			want:   "  0.000s \"a\"\n  0.250s \"b\"\n  0.750s \"c\"",
		},
		{
			name:   "slow motion",
			events: []asciicast.Event{out(0, "a"), out(0.5, "b")},
			opt:    Options{Speed: 0.5},
			want:   "  0.000s \"a\"\n  1.000s \"b\"",
		},
		{
			name:   "idle limit caps each pause",
			events: []asciicast.Event{out(0, "a"), out(100, "b"), out(100.5, "c"), out(300, "d")},
			opt:    Options{IdleLimit: 2 * time.Second},
			want:   "  0.000s \"a\"\n  2.000s \"b\"\n  2.500s \"c\"\n  4.500s \"d\"",
		},
		{
			name:   "idle limit before speed",
			events: []asciicast.Event{out(0, "a"), out(100, "b")},
			opt:    Options{IdleLimit: 2 * time.Second, Speed: 2},
			want:   "  0.000s \"a\"\n  1.000s \"b\"",
		},
		{
			name:   "simultaneous events are written together",
			events: []asciicast.Event{out(0, "a"), out(0, "b"), out(1, "c"), out(1, "d")},
			want:   "  0.000s \"ab\"\n  1.000s \"cd\"",
		},
		{
			name: "resize and input show nothing",
			events: []asciicast.Event{out(0, "a"),
				{Time: time.Second, Type: asciicast.Resize, Data: "100x40"},
				{Time: 2 * time.Second, Type: asciicast.Input, Data: "secret"},
				out(3, "b")},
			want: "  0.000s \"a\"\n  3.000s \"b\"",
		},
		{
			name:   "empty recording",
			events: nil,
			want:   "",
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			got := playAuto(t, newCast(t, tc.events...), tc.opt)
			if got != tc.want {
				t.Errorf("got %q, want %q", got, tc.want)
			}
		})
	}
}

func TestPlayMarkers(t *testing.T) {
	ev := asciicast.Event{Time: time.Second, Type: asciicast.Marker,
		Data: "command blocked: rm -rf / \x1b]52;c;aGk=\x07\u202e\x9b6n" + strings.Repeat("x", 300)}
	src := newCast(t, out(0, "$ "), ev)
	got := playAuto(t, src, Options{ShowMarkers: true})
	label := "command blocked: rm -rf / ?]52;c;aGk=???6n"
	want := "\r\n\x1b[0m\x1b[2m[bastion: " + label + strings.Repeat("x", maxMarkerRunes-len(label)) + "...]\x1b[0m\r\n"
	if q := fmt.Sprintf("%q", want); !strings.Contains(got, q[:len(q)-1]) {
		t.Errorf("got %s, want it to contain %q", got, want)
	}
	if got := playAuto(t, src, Options{}); strings.Contains(got, "bastion") {
		t.Errorf("markers hidden by default: got %s", got)
	}
}

// TestPlayMarkerAfterUnfinishedSequence checks that an output event ending in the
// middle of an escape sequence cannot swallow the marker note.
func TestPlayMarkerAfterUnfinishedSequence(t *testing.T) {
	src := newCast(t, out(0, "a\x1b]0;"), asciicast.Event{Time: 0, Type: asciicast.Marker, Data: "m"}, out(0, "b\x07c"))
	got := playAuto(t, src, Options{ShowMarkers: true})
	want := `  0.000s "a\r\n\x1b[0m\x1b[2m[bastion: m]\x1b[0m\r\nb\ac\r\n` + listed(`0:00 m`) + `"`
	if got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// listed is the list of markers after a replay, as %q shows it without quotes.
func listed(markers ...string) string {
	const dim, end = `\x1b[0m\x1b[2m[bastion: `, `]\x1b[22m\x1b[K\r\n`
	s := dim + "end of the replay; its 1 marker (a note not listed here was printed by the session):" + end
	if len(markers) != 1 {
		s = dim + "end of the replay; its " + strconv.Itoa(len(markers)) + " markers (a note not listed here was printed by the session):" + end
	}
	for _, m := range markers {
		s += dim + m + end
	}
	return s
}

func TestPlaySanitizes(t *testing.T) {
	attack := "\x1b]52;c;ZWNobyBoaQ==\x07\x1b[21t\x1bP$q\"p\x1b\\\x1b[?1049h"
	src := newCast(t, out(0, "x"+attack))
	safe := playAuto(t, src, Options{})
	if want := `  0.000s "x\x1b[?1049h\x1b[?1049l"`; safe != want {
		t.Errorf("got %s, want %s", safe, want)
	}
	raw := playAuto(t, src, Options{Raw: true})
	if want := fmt.Sprintf("  0.000s %q", "x"+attack); raw != want {
		t.Errorf("raw: got %s, want %s", raw, want)
	}
}

func TestPlayErrors(t *testing.T) {
	good := newCast(t, out(0, "a"))
	openErr := errors.New("no such session")
	cases := []struct {
		name string
		src  Source
		out  io.Writer
		opt  Options
		is   error
		msg  string
	}{
		{name: "nil source", out: io.Discard, is: ErrOptions},
		{name: "nil output", src: good, is: ErrOptions},
		{name: "negative speed", src: good, out: io.Discard, opt: Options{Speed: -1}, is: ErrOptions},
		{name: "infinite speed", src: good, out: io.Discard, opt: Options{Speed: math.Inf(1)}, is: ErrOptions},
		{name: "negative idle limit", src: good, out: io.Discard, opt: Options{IdleLimit: -1}, is: ErrOptions},
		{name: "open fails", src: SourceFunc(func() (io.ReadCloser, error) { return nil, openErr }), out: io.Discard, is: openErr},
		{name: "missing file", src: FileSource(filepath.Join(t.TempDir(), "nope.cast")), out: io.Discard, is: os.ErrNotExist},
		{name: "empty file", src: &castSource{}, out: io.Discard, is: asciicast.ErrNoHeader},
		{name: "not a cast", src: &castSource{data: []byte("hello\n")}, out: io.Discard, is: asciicast.ErrMalformed, msg: "line 1"},
		{name: "version 1", src: &castSource{data: []byte(`{"version":1,"width":80,"height":24}` + "\n")}, out: io.Discard, is: asciicast.ErrVersion},
		{
			name: "bad event mid-stream",
			src:  &castSource{data: append(append([]byte{}, good.data...), "[1.0, \"o\"]\n"...)},
			out:  io.Discard, is: asciicast.ErrMalformed, msg: "line 3",
		},
		{
			name: "time goes backwards",
			src:  &castSource{data: append(append([]byte{}, good.data...), "[5.0, \"o\", \"b\"]\n[4.0, \"o\", \"c\"]\n"...)},
			out:  io.Discard, is: asciicast.ErrTime, msg: "line 4",
		},
		{name: "write fails", src: good, out: failWriter{io.ErrClosedPipe}, is: io.ErrClosedPipe},
		{name: "raw write fails", src: good, out: failWriter{io.ErrClosedPipe}, opt: Options{Raw: true}, is: io.ErrClosedPipe},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			clock := &autoClock{now: epoch}
			tc.opt.Now, tc.opt.After = clock.Now, clock.After
			err := Play(context.Background(), tc.src, tc.out, tc.opt)
			if !errors.Is(err, tc.is) {
				t.Fatalf("got %v, want %v", err, tc.is)
			}
			if !strings.HasPrefix(err.Error(), "player: ") {
				t.Errorf("got %q, want a player: prefix", err)
			}
			if !strings.Contains(err.Error(), tc.msg) {
				t.Errorf("got %q, want it to mention %q", err, tc.msg)
			}
		})
	}
}

func TestFileSource(t *testing.T) {
	path := filepath.Join(t.TempDir(), "x.cast")
	if err := os.WriteFile(path, newCast(t, out(0, "hi")).data, 0o600); err != nil {
		t.Fatal(err)
	}
	if got, want := playAuto(t, FileSource(path), Options{}), `  0.000s "hi"`; got != want {
		t.Errorf("got %s, want %s", got, want)
	}
}

// gatedReader serves data up to gate, then blocks until release is closed.
type gatedReader struct {
	data    []byte
	gate    int
	release chan struct{}
	pos     int
}

func (r *gatedReader) Read(p []byte) (int, error) {
	if r.pos == r.gate {
		<-r.release
	}
	if r.pos >= len(r.data) {
		return 0, io.EOF
	}
	end := len(r.data)
	if r.pos < r.gate {
		end = r.gate
	}
	n := copy(p, r.data[r.pos:end])
	r.pos += n
	return n, nil
}

func (r *gatedReader) Close() error { return nil }

// TestPlayStreams shows that the first frame is written before the rest of the
// recording has been read: the reader blocks after the second event until the
// first frame has reached the terminal.
func TestPlayStreams(t *testing.T) {
	cast := newCast(t, out(0, "first"), out(1, "second"), out(2, "third"))
	gate := bytes.Index(cast.data, []byte("third")) - 10
	r := &gatedReader{data: cast.data, gate: gate, release: make(chan struct{})}
	src := SourceFunc(func() (io.ReadCloser, error) { return r, nil })
	clock := &manualClock{now: epoch}
	frames := make(chan string, 10)
	w := writerFunc(func(p []byte) (int, error) { frames <- string(p); return len(p), nil })
	opt := Options{Now: clock.Now, After: clock.After, onWait: func() { clock.Advance(time.Hour) }}
	done := make(chan error, 1)
	go func() { done <- Play(context.Background(), src, w, opt) }()
	if got := <-frames; got != "first" {
		t.Fatalf("got %q, want %q", got, "first")
	}
	close(r.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	close(frames)
	var rest []string
	for f := range frames {
		rest = append(rest, f)
	}
	if got, want := strings.Join(rest, "|"), "secondthird"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// TestPlayLive: following a live session, events due at once are shown
// before a read that waits for the next one (without Live they would sit
// in the buffer until the next pause).
func TestPlayLive(t *testing.T) {
	cast := newCast(t, out(0, "first"), out(0, "second"), out(0, "third"))
	gate := bytes.Index(cast.data, []byte("third")) - 10
	r := &gatedReader{data: cast.data, gate: gate, release: make(chan struct{})}
	src := SourceFunc(func() (io.ReadCloser, error) { return r, nil })
	frames := make(chan string, 10)
	w := writerFunc(func(p []byte) (int, error) { frames <- string(p); return len(p), nil })
	done := make(chan error, 1)
	go func() { done <- Play(context.Background(), src, w, Options{Live: true}) }()
	var got string
	for got != "firstsecond" {
		select {
		case f := <-frames:
			got += f
		case <-time.After(20 * time.Second):
			t.Fatalf("before the next event arrived, got %q", got)
		}
	}
	close(r.release)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

type writerFunc func(p []byte) (int, error)

func (f writerFunc) Write(p []byte) (int, error) { return f(p) }

func TestPlayContextCancel(t *testing.T) {
	src := newCast(t, out(0, "\x1b[?25la"), out(60, "b"))
	clock := &manualClock{now: epoch}
	tr := &transcript{now: clock.Now}
	ctx, cancel := context.WithCancelCause(context.Background())
	cause := errors.New("viewer disconnected")
	opt := Options{Now: clock.Now, After: clock.After, onWait: func() { cancel(cause) }}
	err := Play(ctx, src, tr, opt)
	if !errors.Is(err, cause) {
		t.Fatalf("got %v, want %v", err, cause)
	}
	// The terminal is restored even when playback is cut short.
	if got, want := tr.all.String(), "\x1b[?25la\x1b[?25h"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// FuzzPlay plays arbitrary bytes as a recording: it must end without a panic, and
// unless Raw is set, nothing unsafe may reach the terminal, markers included.
func FuzzPlay(f *testing.F) {
	session, err := os.ReadFile(filepath.Join("testdata", "session.cast"))
	if err != nil {
		f.Fatal(err)
	}
	f.Add(session, true)
	f.Add([]byte(`{"version":2,"width":80,"height":24}`+"\n"+`[0.1,"m","\u001b]52;c;aGk=\u0007"]`+"\n"), true)
	f.Add([]byte(`{"version":2,"width":80,"height":24}`+"\n"+`[0.1,"o","\u001b]0;"]`+"\n"+`[0.2,"m","x"]`+"\n"), true)
	f.Add([]byte(`{"version":2,"width":80,"height":24}`+"\n"+`[1e9,"o","x"]`+"\n"), false)
	f.Fuzz(func(t *testing.T, cast []byte, markers bool) {
		clock := &autoClock{now: epoch}
		var buf bytes.Buffer
		src := &castSource{data: cast}
		opt := Options{ShowMarkers: markers, IdleLimit: time.Second, Now: clock.Now, After: clock.After}
		Play(context.Background(), src, &buf, opt)
		if err := checkSafe(buf.Bytes()); err != nil {
			t.Fatalf("unsafe output %q: %v", buf.Bytes(), err)
		}
	})
}
