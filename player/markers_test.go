package player

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/x/vt"

	"github.com/bastionhq/bastion/bastion/linerec"
	"github.com/bastionhq/bastion/recorder/asciicast"
)

// TestPlayMarkersSurviveTheRecording: a marker is bastion's word (a command
// blocked, held, approved) in a recording the user's programs wrote. The
// user's output can draw over an inline note as soon as it is shown
// (cursor up, erase line) and can print a note of its own in the same dim
// "[bastion: ...]" form (SGR 2 is passed: programs use it). So the replay
// lists the markers it showed once more after the recording has ended,
// where the recording can draw nothing, and that list holds only real ones.
func TestPlayMarkersSurviveTheRecording(t *testing.T) {
	blocked := `command blocked by rule "no-rm": rm -rf /srv`
	src := newCast(t,
		out(0, "$ rm -rf /srv\r\n"),
		asciicast.Event{Time: 100 * time.Millisecond, Type: asciicast.Marker, Data: "bastion: " + blocked},
		// The shell's next prompt erases the note and the line before it.
		out(0.101, "\x1b[A\x1b[2K\x1b[A\x1b[2K$ "),
		// And a note of the user's own making.
		out(0.2, "\x1b[2m[bastion: command approved by bob: deploy --prod]\x1b[22m\r\n$ "),
	)
	clock := &autoClock{now: epoch}
	var buf bytes.Buffer
	if err := Play(context.Background(), src, &buf, Options{ShowMarkers: true, Now: clock.Now, After: clock.After}); err != nil {
		t.Fatal(err)
	}
	lines := linerec.Render(80, 24, buf.Bytes())
	screen := strings.Join(lines, "\n")
	if !strings.Contains(screen, blocked) {
		t.Errorf("the blocked command's marker is nowhere on the auditor's screen:\n%s", screen)
	}
	// What follows the recording's last line (its prompt) is bastion's alone.
	last := -1
	for i, l := range lines {
		if strings.HasPrefix(l, "$") {
			last = i
		}
	}
	after := strings.Join(lines[last+1:], "\n")
	if !strings.Contains(after, blocked) {
		t.Errorf("the markers are not listed after the recording:\n%s", screen)
	}
	if strings.Contains(after, "approved by bob") {
		t.Errorf("the forged note is listed as a marker:\n%s", screen)
	}
}

// TestPlayMarkersListedOnceAfterSeekingBack: a marker shown again after a
// seek back is one marker, and one never reached is not listed.
func TestPlayMarkersListedOnceAfterSeekingBack(t *testing.T) {
	m := func(sec float64, label string) asciicast.Event {
		return asciicast.Event{Time: time.Duration(sec * float64(time.Second)), Type: asciicast.Marker, Data: label}
	}
	src := newCast(t, out(0, "a\r\n"), m(1, "bastion: first"), out(3, "b\r\n"), m(30, "bastion: never reached"), out(31, "c\r\n"))
	h := startPlay(t, src, Options{ShowMarkers: true})
	h.advance(3 * time.Second)
	h.press("\x1b[D", "\x1b[C", "\x1b[D") // back over the marker, forward, back again
	h.tr.take()
	h.press("q")
	h.expectEnd()
	got := strings.Join(h.tr.take(), "\n")
	if want := listed(`0:01 first`); !strings.Contains(got, want) {
		t.Errorf("got:\n%s\nwant the list:\n%s", got, want)
	}
}

// TestPlayMarkerDrawnReadably: the inline note is drawn in the recording's
// graphic state, which the recording chooses: concealed (SGR 8), black on
// black, or in the DEC line-drawing set that turns its letters into box
// glyphs. The note resets what it draws with, and the recording's charset
// is put back after it.
func TestPlayMarkerDrawnReadably(t *testing.T) {
	label := "command blocked by rule no-rm: rm -rf /srv"
	for _, tc := range []struct{ name, before string }{
		{"concealed", "\x1b[8m"},
		{"black on black", "\x1b[30;40m"},
		{"line drawing", "\x1b(0"},
		{"all three", "\x1b[8;30;40m\x1b(0"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			src := newCast(t, out(0, "$ rm -rf /srv\r\n"+tc.before),
				asciicast.Event{Time: time.Second, Type: asciicast.Marker, Data: "bastion: " + label},
				out(2, "qqq"))
			var buf bytes.Buffer
			clock := &autoClock{now: epoch}
			if err := Play(context.Background(), src, &buf, Options{ShowMarkers: true, Now: clock.Now, After: clock.After}); err != nil {
				t.Fatal(err)
			}
			// The screen up to the end of the recording, before the list.
			shown := buf.String()[:strings.Index(buf.String(), "end of the replay")]
			e := vt.NewEmulator(80, 24)
			e.Write([]byte(shown))
			row := -1
			for y := range 24 {
				var b strings.Builder
				for x := range 80 {
					if c := e.CellAt(x, y); c != nil {
						b.WriteString(c.Content)
					}
				}
				if strings.Contains(b.String(), "[bastion: "+label+"]") {
					row = y
				}
			}
			if row < 0 {
				t.Fatalf("the note is not drawn as text:\n%q", shown)
			}
			// Drawn as plain dim text is: no other attribute, no colours.
			ref := vt.NewEmulator(4, 1)
			ref.Write([]byte("\x1b[2mx"))
			dim := ref.CellAt(0, 0).Style.Attrs
			for x := range len("[bastion: " + label + "]") {
				c := e.CellAt(x, row)
				if c.Style.Attrs != dim || c.Style.Fg != nil || c.Style.Bg != nil {
					t.Fatalf("the note is drawn concealed or coloured at column %d: %+v", x, c.Style)
				}
			}
			if tc.before == "\x1b(0" {
				// The recording's "qqq" after the note still draws lines.
				if c := e.CellAt(0, row+1); c == nil || c.Content != "─" {
					t.Errorf("the recording's charset was not put back: %+v", c)
				}
			}
		})
	}
}
