package asciicast

import (
	"bytes"
	"errors"
	"flag"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

var update = flag.Bool("update", false, "rewrite the golden .cast files under testdata/cast")

// goldenDir holds the golden recordings, shared with the player's tests.
const goldenDir = "../../testdata/cast"

// golden recordings, written by the Encoder; -update rewrites the files.
var goldenCases = []struct {
	name   string
	header Header
	events []Event
}{
	{
		name: "shell",
		header: Header{
			Width: 80, Height: 24, Timestamp: 1700000000, Duration: 7.5,
			Command: "/bin/bash", Title: "alice@web1",
			Env:     map[string]string{"TERM": "xterm-256color", "SHELL": "/bin/bash"},
			Bastion: &Meta{SessionID: "01HF7YAT00G6B4XJ5K3T0YV1QZ", User: "alice", Target: "web1", Login: "root", Kind: "shell"},
		},
		events: []Event{
			{Time: 104501 * time.Microsecond, Type: Output, Data: "root@web1:~# "},
			{Time: 1 * time.Second, Type: Input, Data: "e"},
			{Time: 1*time.Second + 1, Type: Output, Data: "echo h\u00e9llo \u20ac \u4e16\u754c \U0001F600"},
			{Time: 1500 * time.Millisecond, Type: Output, Data: "\r\nh\u00e9llo \u20ac \u4e16\u754c \U0001F600\r\n"},
			{Time: 2 * time.Second, Type: Resize, Data: "120x40"},
			{Time: 2*time.Second + 10*time.Microsecond, Type: Output, Data: "\x1b[1;31mred\x1b[0m \"quoted\" back\\slash <tag> & tab\t bell\x07\r\n"},
			{Time: 3 * time.Second, Type: Marker, Data: "command blocked: rm -rf /"},
			{Time: 7*time.Second + 499999*time.Microsecond, Type: Output, Data: "logout\r\n"},
		},
	},
	{
		name: "exec",
		header: Header{
			Width: 80, Height: 24, Timestamp: 1700000100, Command: "systemctl status nginx",
			Bastion: &Meta{SessionID: "01HF7YB000AAAAAAAAAAAAAAAA", User: "ci-etl", Target: "web1", Login: "deploy", Kind: "exec"},
		},
		events: []Event{
			{Time: 0, Type: Output, Data: "\u25cf nginx.service - A high performance web server\n"},
			{Time: 0, Type: Output, Data: "     Active: active (running)\n"},
			{Time: 12 * time.Millisecond, Type: Marker, Data: "exit-status 0"},
		},
	},
	{
		name:   "empty",
		header: Header{Width: 1, Height: 1},
	},
}

func encodeAll(t testing.TB, h Header, events []Event) []byte {
	t.Helper()
	var buf bytes.Buffer
	enc, err := NewEncoder(&buf, h)
	if err != nil {
		t.Fatalf("NewEncoder: %v", err)
	}
	for i, ev := range events {
		if err := enc.Event(ev); err != nil {
			t.Fatalf("event %d: %v", i, err)
		}
	}
	return buf.Bytes()
}

func decodeAll(t testing.TB, data []byte) (Header, []Event) {
	t.Helper()
	dec, err := NewDecoder(bytes.NewReader(data), Limits{})
	if err != nil {
		t.Fatalf("NewDecoder: %v", err)
	}
	var events []Event
	for {
		ev, err := dec.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatalf("Next: %v", err)
		}
		events = append(events, ev)
	}
	return dec.Header(), events
}

// truncUS is what an event time becomes after a round trip.
func truncUS(events []Event) []Event {
	out := make([]Event, len(events))
	for i, ev := range events {
		ev.Time = ev.Time.Truncate(time.Microsecond)
		out[i] = ev
	}
	return out
}

func TestGolden(t *testing.T) {
	for _, tc := range goldenCases {
		t.Run(tc.name, func(t *testing.T) {
			got := encodeAll(t, tc.header, tc.events)
			path := filepath.Join(goldenDir, tc.name+".cast")
			if *update {
				if err := os.WriteFile(path, got, 0o644); err != nil {
					t.Fatal(err)
				}
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (run go test -update to create it)", err)
			}
			if !bytes.Equal(got, want) {
				t.Fatalf("encoding differs from %s:\ngot  %q\nwant %q", path, got, want)
			}
			h, events := decodeAll(t, want)
			wantH := tc.header
			wantH.Version = 2
			if !reflect.DeepEqual(h, wantH) {
				t.Errorf("header: got %+v, want %+v", h, wantH)
			}
			if want := truncUS(tc.events); !reflect.DeepEqual(events, want) && !(len(events) == 0 && len(want) == 0) {
				t.Errorf("events: got %q, want %q", events, want)
			}
		})
	}
}

func TestEncoderFormat(t *testing.T) {
	got := string(encodeAll(t, Header{Width: 80, Height: 24, Bastion: &Meta{User: "a<b>"}}, []Event{
		{Time: 0, Type: Output, Data: "x"},
		{Time: 1500 * time.Millisecond, Type: Output, Data: "<&>\u00e9\x00"},
		{Time: 61*time.Second + 7*time.Microsecond + 999, Type: Resize, Data: "100x30"},
	}))
	want := `{"version":2,"width":80,"height":24,"x_bastion":{"user":"a<b>"}}` + "\n" +
		`[0.000000, "o", "x"]` + "\n" +
		`[1.500000, "o", "<&>` + "\u00e9" + `\u0000"]` + "\n" +
		`[61.000007, "r", "100x30"]` + "\n"
	if got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestEncoderRejects(t *testing.T) {
	tests := []struct {
		name   string
		header Header
		events []Event
		want   error
	}{
		{name: "version 1", header: Header{Version: 1, Width: 80, Height: 24}, want: ErrVersion},
		{name: "zero width", header: Header{Height: 24}, want: ErrGeometry},
		{name: "negative height", header: Header{Width: 80, Height: -1}, want: ErrGeometry},
		{name: "negative duration", header: Header{Width: 80, Height: 24, Duration: -1}, want: ErrTime},
		{name: "negative time", header: Header{Width: 80, Height: 24}, events: []Event{{Time: -1, Type: Output}}, want: ErrTime},
		{name: "backwards", header: Header{Width: 80, Height: 24}, events: []Event{{Time: 2, Type: Output}, {Time: 1, Type: Output}}, want: ErrTime},
		{name: "unknown type", header: Header{Width: 80, Height: 24}, events: []Event{{Type: 'x'}}, want: ErrEventType},
		{name: "zero type", header: Header{Width: 80, Height: 24}, events: []Event{{}}, want: ErrEventType},
		{name: "bad resize", header: Header{Width: 80, Height: 24}, events: []Event{{Type: Resize, Data: "80 24"}}, want: ErrGeometry},
		{name: "zero resize", header: Header{Width: 80, Height: 24}, events: []Event{{Type: Resize, Data: "0x24"}}, want: ErrGeometry},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			enc, err := NewEncoder(io.Discard, tc.header)
			for _, ev := range tc.events {
				if err != nil {
					break
				}
				err = enc.Event(ev)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
		})
	}
}

type failWriter struct{ n int }

func (w *failWriter) Write(p []byte) (int, error) {
	if w.n == 0 {
		return 0, errors.New("disk full")
	}
	w.n--
	return len(p), nil
}

func TestEncoderWriteError(t *testing.T) {
	if _, err := NewEncoder(&failWriter{}, Header{Width: 1, Height: 1}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("header: got %v, want disk full", err)
	}
	enc, err := NewEncoder(&failWriter{n: 1}, Header{Width: 1, Height: 1})
	if err != nil {
		t.Fatal(err)
	}
	if err := enc.Event(Event{Type: Output, Data: "x"}); err == nil || !strings.Contains(err.Error(), "disk full") {
		t.Errorf("event: got %v, want disk full", err)
	}
}

func TestRoundTripInvalidUTF8(t *testing.T) {
	// Invalid bytes are replaced by the encoder; everything else survives.
	_, events := decodeAll(t, encodeAll(t, Header{Width: 2, Height: 2}, []Event{{Type: Output, Data: "a\xffb"}}))
	if got, want := events[0].Data, "a\ufffdb"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestParseResize(t *testing.T) {
	tests := []struct {
		in         string
		cols, rows int
		ok         bool
	}{
		{"80x24", 80, 24, true},
		{"1x1", 1, 1, true},
		{"1000x1000", 1000, 1000, true},
		{"1001x24", 0, 0, false},
		{"80x", 0, 0, false},
		{"x24", 0, 0, false},
		{"80X24", 0, 0, false},
		{"+80x24", 0, 0, false},
		{"-80x24", 0, 0, false},
		{"80x24x1", 0, 0, false},
		{"99999999999x1", 0, 0, false},
		{"0x0", 0, 0, false},
		{"", 0, 0, false},
	}
	for _, tc := range tests {
		cols, rows, err := ParseResize(tc.in, 1000, 1000)
		if (err == nil) != tc.ok || cols != tc.cols || rows != tc.rows {
			t.Errorf("ParseResize(%q): got %d, %d, %v, want %d, %d, ok=%v", tc.in, cols, rows, err, tc.cols, tc.rows, tc.ok)
		}
	}
	if got, want := FormatResize(120, 40), "120x40"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}
