package player

import (
	"bytes"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

func encodeCast(t *testing.T, evs ...asciicast.Event) string {
	t.Helper()
	var b bytes.Buffer
	enc, err := asciicast.NewEncoder(&b, asciicast.Header{Width: 80, Height: 24, Command: "sh"})
	if err != nil {
		t.Fatal(err)
	}
	for _, ev := range evs {
		if err := enc.Event(ev); err != nil {
			t.Fatal(err)
		}
	}
	return b.String()
}

func decodeCast(t *testing.T, s string) (asciicast.Header, []asciicast.Event) {
	t.Helper()
	dec, err := asciicast.NewDecoder(strings.NewReader(s), asciicast.Limits{})
	if err != nil {
		t.Fatal(err)
	}
	var evs []asciicast.Event
	for {
		ev, err := dec.Next()
		if errors.Is(err, io.EOF) {
			return dec.Header(), evs
		}
		if err != nil {
			t.Fatal(err)
		}
		evs = append(evs, ev)
	}
}

func TestSanitizeCast(t *testing.T) {
	out := func(ms int, s string) asciicast.Event {
		return asciicast.Event{Time: time.Duration(ms) * time.Millisecond, Type: asciicast.Output, Data: s}
	}
	// end is the last event: the modes undone, then the list of markers.
	end := func(ms int, resets string, markers ...listedMarker) asciicast.Event {
		return out(ms, resets+"\r\n"+markerList(markers, 0))
	}
	for _, tc := range []struct {
		name string
		in   []asciicast.Event
		want []asciicast.Event
	}{
		{"text and colours pass", []asciicast.Event{out(0, "$ ls\r\n\x1b[1mbold\x1b[0m\r\n")},
			[]asciicast.Event{out(0, "$ ls\r\n\x1b[1mbold\x1b[0m\r\n"), end(0, "\x1b[0m")}},
		{"OSC 52 clipboard write", []asciicast.Event{out(0, "a\x1b]52;c;ZWNobwo=\x07b")}, []asciicast.Event{out(0, "ab"), end(0, "")}},
		{"OSC 8 hyperlink", []asciicast.Event{out(0, "\x1b]8;;http://x/\x1b\\link\x1b]8;;\x1b\\")}, []asciicast.Event{out(0, "link"), end(0, "")}},
		{"DECRQSS", []asciicast.Event{out(0, "\x1bP$qm\x1b\\x")}, []asciicast.Event{out(0, "x"), end(0, "")}},
		{"title report", []asciicast.Event{out(0, "\x1b]2;id\x07\x1b[21tx")}, []asciicast.Event{out(0, "x"), end(0, "")}},
		{"UTF-8 encoded C1", []asciicast.Event{out(0, "\u009d52;c;eA==\u009cx\u009b31m")}, []asciicast.Event{out(0, "?52;c;eA==?x?31m"), end(0, "")}},
		{"OSC split across events", []asciicast.Event{out(0, "a\x1b]5"), out(5, "2;c;eA==\x07b"), {Time: 6 * time.Millisecond, Type: asciicast.Marker, Data: "bastion: m"}},
			[]asciicast.Event{out(0, "a"), out(5, "b"), {Time: 6 * time.Millisecond, Type: asciicast.Marker, Data: "bastion: m"},
				end(6, "", listedMarker{at: 6 * time.Millisecond, label: "m"})}},
		{"alternate screen left on", []asciicast.Event{out(0, "\x1b[?1049h\x1b[?1000hx"), {Time: time.Millisecond, Type: asciicast.Resize, Data: "100x30"}},
			[]asciicast.Event{out(0, "\x1b[?1049hx"), {Time: time.Millisecond, Type: asciicast.Resize, Data: "100x30"}, end(1, "\x1b[?1049l")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var b bytes.Buffer
			if err := SanitizeCast(strings.NewReader(encodeCast(t, tc.in...)), &b); err != nil {
				t.Fatal(err)
			}
			h, got := decodeCast(t, b.String())
			if h.Command != "sh" || h.Width != 80 {
				t.Errorf("header %+v", h)
			}
			if len(got) != len(tc.want) {
				t.Fatalf("events %q, want %q", got, tc.want)
			}
			for i := range got {
				if got[i] != tc.want[i] {
					t.Errorf("event %d = %q, want %q", i, got[i], tc.want[i])
				}
			}
		})
	}
}

func TestSanitizeExportErrors(t *testing.T) {
	broken := errors.New("chunk 2 broken")
	cast := encodeCast(t, asciicast.Event{Type: asciicast.Output, Data: "x\x1b]52;c;eA==\x07"})
	var b bytes.Buffer
	err := SanitizeExport(func(w io.Writer) error {
		io.WriteString(w, cast)
		return broken
	}, &b)
	if !errors.Is(err, broken) {
		t.Fatalf("err = %v, want the export's", err)
	}
	if strings.Contains(b.String(), "52;c") {
		t.Errorf("wrote %q", b.String())
	}
	// An export that fails before its header.
	if err := SanitizeExport(func(io.Writer) error { return broken }, &b); !errors.Is(err, broken) {
		t.Fatalf("err = %v", err)
	}
	// A writer that fails stops the export.
	err = SanitizeExport(func(w io.Writer) error {
		for {
			if _, err := io.WriteString(w, cast); err != nil {
				return err
			}
		}
	}, failWriter{errors.New("disk full")})
	if err == nil || errors.Is(err, io.ErrClosedPipe) {
		t.Fatalf("err = %v, want the writer's", err)
	}
}
