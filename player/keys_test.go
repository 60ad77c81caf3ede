package player

import (
	"context"
	"errors"
	"io"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

func TestKeyParser(t *testing.T) {
	cases := []struct {
		name string
		in   string
		want []key
	}{
		{"space", " ", []key{keyPause}},
		{"arrows", "\x1b[C\x1b[D", []key{keyForward, keyBack}},
		{"application cursor arrows", "\x1bOC\x1bOD", []key{keyForward, keyBack}},
		{"modified arrows", "\x1b[1;5C\x1b[1;2D", []key{keyForward, keyBack}},
		{"other sequences ignored", "\x1b[A\x1b[B\x1b[3~\x1bOP", nil},
		{"step and speed", ".+=-", []key{keyStep, keyFaster, keyFaster, keySlower}},
		{"quit", "q", []key{keyQuit}},
		{"ctrl-c", "\x03", []key{keyQuit}},
		{"alt-q is q", "\x1bq", []key{keyQuit}},
		{"esc esc arrow", "\x1b\x1b[C", []key{keyForward}},
		{"sequence broken by space", "\x1b[1 ", []key{keyPause}},
		{"other bytes ignored", "abc\x00\xff", nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			var kp keyParser
			var got []key
			for i := range len(tc.in) {
				if k := kp.feed(tc.in[i]); k != 0 {
					got = append(got, k)
				}
			}
			if !slices.Equal(got, tc.want) {
				t.Errorf("got %v, want %v", got, tc.want)
			}
		})
	}
}

// harness runs Play in a goroutine with a manual clock and a pipe for keys, and
// steps it deterministically: the player reports each time it is about to block.
type harness struct {
	t      *testing.T
	clock  *manualClock
	tr     *transcript
	keys   *io.PipeWriter
	waits  chan bool // each wait of the player: whether it has a timer
	timed  bool      // the current wait has a timer (the clock's latest)
	done   chan error
	ended  bool
	result error
}

func startPlay(t *testing.T, src Source, opt Options) *harness {
	t.Helper()
	clock := &manualClock{now: epoch}
	pr, pw := io.Pipe()
	h := &harness{
		t:     t,
		clock: clock,
		tr:    &transcript{now: clock.Now},
		keys:  pw,
		waits: make(chan bool),
		done:  make(chan error, 1),
	}
	ctx, cancel := context.WithCancel(context.Background())
	opt.Now, opt.After, opt.Keys = clock.Now, clock.After, pr
	calls := 0
	opt.onWait = func() {
		// The player creates a wait's timer just before it reports the wait.
		timed := clock.Calls() != calls
		calls = clock.Calls()
		select {
		case h.waits <- timed:
		case <-ctx.Done():
		}
	}
	go func() { h.done <- Play(ctx, src, h.tr, opt) }()
	t.Cleanup(func() {
		cancel()
		pw.Close()
		if !h.ended {
			<-h.done
		}
	})
	h.idle()
	return h
}

// idle waits until the player blocks again, or ends; it reports whether it is
// still playing.
func (h *harness) idle() bool {
	h.t.Helper()
	if h.ended {
		return false
	}
	select {
	case h.timed = <-h.waits:
		return true
	case h.result = <-h.done:
		h.ended = true
		return false
	}
}

// press types keys one at a time and lets the player act on each.
func (h *harness) press(keys ...string) {
	h.t.Helper()
	for _, k := range keys {
		if h.ended {
			h.t.Fatalf("key %q after the end of playback", k)
		}
		if _, err := io.WriteString(h.keys, k); err != nil {
			h.t.Fatal(err)
		}
		h.idle()
	}
}

// advance moves the clock and lets the player act if a wait fired.
func (h *harness) advance(d time.Duration) {
	h.t.Helper()
	if h.clock.Advance(d) && h.timed {
		h.idle()
	}
}

func (h *harness) expect(want ...string) {
	h.t.Helper()
	got := h.tr.take()
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		h.t.Errorf("got:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
}

func (h *harness) expectEnd() {
	h.t.Helper()
	if !h.ended {
		h.t.Fatal("playback did not end")
	}
	if h.result != nil {
		h.t.Fatalf("Play: %v", h.result)
	}
}

func TestPlayPause(t *testing.T) {
	h := startPlay(t, newCast(t, out(0, "a"), out(1, "b"), out(2, "c")), Options{})
	h.expect(`  0.000s "a"`)
	h.advance(500 * time.Millisecond)
	h.press(" ")
	h.advance(time.Hour) // paused: the clock moves, playback does not
	h.expect()
	h.press(" ")
	h.advance(499 * time.Millisecond)
	h.expect()
	h.advance(time.Millisecond) // the other half of the first second
	h.expect(`3601.000s "b"`)
	h.advance(time.Second)
	h.expect(`3602.000s "c"`)
	h.expectEnd()
}

func TestPlayStep(t *testing.T) {
	h := startPlay(t, newCast(t, out(0, "a"), out(1, "b"), out(5, "c"), out(6, "d")), Options{})
	h.press(".") // ignored while playing
	h.press(" ", ".")
	h.expect(`  0.000s "a"`, `  0.000s "b"`)
	h.advance(time.Hour)
	h.expect()
	h.press(".")
	h.expect(`3600.000s "c"`)
	h.press(" ") // resume from c's time: d is one second later
	h.advance(time.Second)
	h.expect(`3601.000s "d"`)
	h.expectEnd()
}

func TestPlaySeekForward(t *testing.T) {
	h := startPlay(t, newCast(t, out(0, "a"), out(3, "b"), out(4, "c"), out(9, "d"), out(30, "e")), Options{})
	h.advance(time.Second)
	h.press("\x1b[C") // from 1s to 6s
	h.expect(`  0.000s "a"`, `  1.000s "bc"`)
	h.advance(3 * time.Second)
	h.expect(`  4.000s "d"`)
	h.press(" ", "\x1b[C") // seeking while paused stays paused
	h.advance(time.Hour)
	h.expect()
	h.press("\x1b[C", "\x1b[C", "\x1b[C", "\x1b[C") // to 29s... then past the end
	h.expect(`3604.000s "e"`)
	h.expectEnd()
}

func TestPlaySeekBack(t *testing.T) {
	src := newCast(t, out(0, "\x1b[?1049ha"), out(3, "b"), out(8, "c"), out(20, "d"))
	h := startPlay(t, src, Options{})
	h.advance(3 * time.Second)
	h.advance(5 * time.Second)
	h.tr.take()
	h.press("\x1b[D") // from 8s back to 3s: undo the modes, clear, replay to 3s
	h.expect(`  8.000s "\x1b[?1049l\x1b[H\x1b[2J\x1b[?1049hab"`)
	if src.opens != 2 {
		t.Errorf("got %d opens, want 2", src.opens)
	}
	h.advance(5 * time.Second)
	h.expect(` 13.000s "c"`)
	h.press("\x1b[D", "\x1b[D", "\x1b[D") // 8s, 3s, then clamped at 0: the first frame
	h.expect(` 13.000s "\x1b[?1049l\x1b[H\x1b[2J\x1b[?1049hab"`,
		` 13.000s "\x1b[?1049l\x1b[H\x1b[2J\x1b[?1049ha"`,
		` 13.000s "\x1b[?1049l\x1b[H\x1b[2J\x1b[?1049ha"`)
	h.advance(3 * time.Second)
	h.expect(` 16.000s "b"`)
}

func TestPlaySeekBackRaw(t *testing.T) {
	h := startPlay(t, newCast(t, out(0, "a"), out(10, "b")), Options{Raw: true})
	h.press("\x1b[D")
	h.expect(`  0.000s "a"`, `  0.000s "\x1b[0m\x1b(B\x1b[r\x1b[?1049l\x1b[?25h\x1b[?7h\x1b[H\x1b[2Ja"`)
}

func TestPlaySpeedKeys(t *testing.T) {
	h := startPlay(t, newCast(t, out(0, "a"), out(4, "b"), out(8, "c"), out(9, "d")), Options{})
	h.press("+")
	h.advance(2 * time.Second)
	h.expect(`  0.000s "a"`, `  2.000s "b"`)
	h.press("-", "-")
	h.advance(8 * time.Second)
	h.expect(` 10.000s "c"`)
	for range 20 { // bounded at MaxSpeed
		h.press("+")
	}
	h.advance(time.Millisecond) // 1s at MaxSpeed is under 1ms
	h.expect(` 10.001s "d"`)
	h.expectEnd()
}

func TestPlayQuit(t *testing.T) {
	for _, k := range []string{"q", "\x03"} {
		h := startPlay(t, newCast(t, out(0, "\x1b[?25la"), out(10, "b")), Options{})
		h.press(k)
		h.expect(`  0.000s "\x1b[?25la"`, `  0.000s "\x1b[?25h"`)
		h.expectEnd()
	}
}

func TestPlayKeysEOF(t *testing.T) {
	h := startPlay(t, newCast(t, out(0, "a"), out(1, "b")), Options{})
	h.keys.Close()
	h.idle() // the player notices the end of input and plays on
	h.advance(time.Second)
	h.expect(`  0.000s "a"`, `  1.000s "b"`)
	h.expectEnd()
}

// errReader fails every read.
type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("read error") }

func TestPlayKeysError(t *testing.T) {
	clock := &autoClock{now: epoch}
	tr := &transcript{now: clock.Now}
	err := Play(context.Background(), newCast(t, out(0, "a"), out(1, "b")), tr,
		Options{Keys: errReader{}, Now: clock.Now, After: clock.After})
	if err != nil {
		t.Fatalf("got %v, want nil: a failing key reader does not stop playback", err)
	}
	if got, want := tr.all.String(), "ab"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func FuzzKeyParser(f *testing.F) {
	f.Add([]byte(" \x1b[C\x1b[1;5D\x1bOC.+-q\x03"))
	f.Fuzz(func(t *testing.T, in []byte) {
		var kp keyParser
		for _, b := range in {
			if k := kp.feed(b); k < 0 || k > keyQuit {
				t.Fatalf("got key %d", k)
			}
			if kp.state < 0 || kp.state > 2 {
				t.Fatalf("got state %d", kp.state)
			}
		}
	})
}

// TestPlaySeekBackWhilePaused: the left arrow while paused shows the screen
// as it was 5s earlier, never blank (it stops at the first event).
func TestPlaySeekBackWhilePaused(t *testing.T) {
	h := startPlay(t, newCast(t, out(2, "a"), out(3, "b"), out(4, "c")), Options{})
	h.expect(`  0.000s "a"`)
	h.advance(1500 * time.Millisecond)
	h.expect(`  1.500s "b"`)
	h.press(" ", "\x1b[D") // paused at 3.5s; back to 2s (not -1.5s: blank)
	got := strings.Join(h.tr.take(), "\n")
	if !strings.HasSuffix(got, `a"`) || !strings.Contains(got, `\x1b[H\x1b[2J`) {
		t.Errorf("after <- while paused: got\n%s\nwant the screen cleared and redrawn up to a", got)
	}
	h.advance(time.Hour)
	h.expect()
}

// TestPlayStatusLine: with StatusLine, a status line on the last row says
// paused, the position and length, and the speed; playback ends on a new line.
func TestPlayStatusLine(t *testing.T) {
	src := newCastHeader(t, asciicast.Header{Version: 2, Width: 80, Height: 24, Duration: 65}, out(0, "$ ls"), out(1, "\r\nfile\r\n$ "), out(65, "exit"))
	h := startPlay(t, src, Options{StatusLine: true})
	h.expect(`  0.000s "$ ls"`)
	h.press(" ")
	got := strings.Join(h.tr.take(), "\n")
	for _, want := range []string{`\x1b7\x1b[999;1H\x1b[2K\x1b[7m`, "|| paused", "0:00 / 1:05", "speed 1x", "q quit", `\x1b8`} {
		if !strings.Contains(got, want) {
			t.Errorf("status line %s: want %q", got, want)
		}
	}
	h.press("+", " ") // playing at 2x: the status line says so, then goes away
	got = strings.Join(h.tr.take(), "\n")
	if !strings.Contains(got, "> playing") || !strings.Contains(got, "speed 2x") {
		t.Errorf("after + and space: %s", got)
	}
	h.advance(500 * time.Millisecond) // b, at 1s of the recording, plays at 2x
	if got := strings.Join(h.tr.take(), "\n"); !strings.Contains(got, "file") {
		t.Errorf("at 2x after 0.5s: got %s, want b", got)
	}
	h.advance(statusShown - 500*time.Millisecond) // the status line goes away
	if got := strings.Join(h.tr.take(), "\n"); !strings.Contains(got, `\x1b7\x1b[999;1H\x1b[2K\x1b8`) {
		t.Errorf("after %s: got %s, want the status line taken down", statusShown, got)
	}
	h.press("q")
	h.expectEnd()
	if got := strings.Join(h.tr.take(), "\n"); !strings.HasSuffix(got, `\r\n"`) {
		t.Errorf("quit: got %s, want the replay to end on a new line", got)
	}
}
