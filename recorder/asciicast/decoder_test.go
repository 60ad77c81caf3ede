package asciicast

import (
	"bytes"
	"errors"
	"io"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"
)

const hdr = `{"version": 2, "width": 80, "height": 24}` + "\n"

// malformed is the table of bad recordings: each must fail at line with an
// error wrapping want. FuzzDecoder is seeded from it.
var malformed = []struct {
	name  string
	input string
	lim   Limits
	line  int
	want  error
}{
	{name: "empty input", input: "", line: 1, want: ErrNoHeader},
	{name: "blank header", input: "\n", line: 1, want: ErrMalformed},
	{name: "header not json", input: "hello\n", line: 1, want: ErrMalformed},
	{name: "header is array", input: "[2]\n", line: 1, want: ErrMalformed},
	{name: "header truncated", input: `{"version": 2, "width": 80`, line: 1, want: ErrMalformed},
	{name: "header wrong types", input: `{"version": 2, "width": "80", "height": 24}`, line: 1, want: ErrMalformed},
	{name: "no version", input: `{"width": 80, "height": 24}`, line: 1, want: ErrVersion},
	{name: "version 1", input: `{"version": 1, "width": 80, "height": 24}`, line: 1, want: ErrVersion},
	{name: "version 3", input: `{"version": 3, "term": {"cols": 80, "rows": 24}}`, line: 1, want: ErrVersion},
	{name: "version float", input: `{"version": 2.5, "width": 80, "height": 24}`, line: 1, want: ErrMalformed},
	{name: "no width", input: `{"version": 2, "height": 24}`, line: 1, want: ErrGeometry},
	{name: "zero height", input: `{"version": 2, "width": 80, "height": 0}`, line: 1, want: ErrGeometry},
	{name: "negative width", input: `{"version": 2, "width": -80, "height": 24}`, line: 1, want: ErrGeometry},
	{name: "absurd width", input: `{"version": 2, "width": 1000000, "height": 24}`, line: 1, want: ErrGeometry},
	{name: "absurd height", input: `{"version": 2, "width": 80, "height": 99999999999}`, line: 1, want: ErrGeometry},
	{name: "huge number", input: `{"version": 2, "width": 1e400, "height": 24}`, line: 1, want: ErrMalformed},
	{name: "negative timestamp", input: `{"version": 2, "width": 80, "height": 24, "timestamp": -1}`, line: 1, want: ErrTime},
	{name: "negative duration", input: `{"version": 2, "width": 80, "height": 24, "duration": -1}`, line: 1, want: ErrTime},
	{name: "header too long", input: `{"version": 2, "width": 80, "height": 24, "title": "` + strings.Repeat("x", 200) + `"}`, lim: Limits{MaxLineBytes: 100}, line: 1, want: ErrLineTooLong},
	{name: "event not json", input: hdr + "[1.0, \"o\", \"x\"\n", line: 2, want: ErrMalformed},
	{name: "event is object", input: hdr + `{"t": 1}` + "\n", line: 2, want: ErrMalformed},
	{name: "empty line", input: hdr + "[0.1, \"o\", \"x\"]\n\n[0.2, \"o\", \"y\"]\n", line: 3, want: ErrMalformed},
	{name: "two elements", input: hdr + `[1.0, "o"]`, line: 2, want: ErrMalformed},
	{name: "four elements", input: hdr + `[1.0, "o", "x", "y"]`, line: 2, want: ErrMalformed},
	{name: "time is string", input: hdr + `["1.0", "o", "x"]`, line: 2, want: ErrMalformed},
	{name: "time is null", input: hdr + `[null, "o", "x"]`, line: 2, want: ErrMalformed},
	{name: "negative time", input: hdr + `[-0.5, "o", "x"]`, line: 2, want: ErrTime},
	{name: "absurd time", input: hdr + `[1e300, "o", "x"]`, line: 2, want: ErrTime},
	{name: "time overflows float", input: hdr + `[1e999, "o", "x"]`, line: 2, want: ErrMalformed},
	{name: "time goes backwards", input: hdr + "[2.0, \"o\", \"a\"]\n[1.999999, \"o\", \"b\"]\n", line: 3, want: ErrTime},
	{name: "type is number", input: hdr + `[1.0, 111, "x"]`, line: 2, want: ErrMalformed},
	{name: "unknown type", input: hdr + `[1.0, "x", "x"]`, line: 2, want: ErrEventType},
	{name: "long type", input: hdr + `[1.0, "oo", "x"]`, line: 2, want: ErrEventType},
	{name: "empty type", input: hdr + `[1.0, "", "x"]`, line: 2, want: ErrEventType},
	{name: "data is number", input: hdr + `[1.0, "o", 5]`, line: 2, want: ErrMalformed},
	{name: "type is null", input: hdr + `[1.0, null, "x"]`, line: 2, want: ErrMalformed},
	{name: "data is null", input: hdr + `[1.0, "o", null]`, line: 2, want: ErrMalformed},
	{name: "bad resize", input: hdr + `[1.0, "r", "80 24"]`, line: 2, want: ErrGeometry},
	{name: "absurd resize", input: hdr + `[1.0, "r", "100000x24"]`, line: 2, want: ErrGeometry},
	{name: "zero resize", input: hdr + `[1.0, "r", "0x0"]`, line: 2, want: ErrGeometry},
	{name: "event too long", input: hdr + `[1.0, "o", "` + strings.Repeat("x", 200) + `"]` + "\n", lim: Limits{MaxLineBytes: 100}, line: 2, want: ErrLineTooLong},
	{name: "last line too long", input: hdr + `[1.0, "o", "` + strings.Repeat("x", 95) + `"]`, lim: Limits{MaxLineBytes: 100}, line: 2, want: ErrLineTooLong},
	{name: "too many events", input: hdr + "[0.1, \"o\", \"a\"]\n[0.2, \"o\", \"b\"]\n", lim: Limits{MaxEvents: 1}, line: 3, want: ErrTooManyEvents},
	{name: "beyond max time", input: hdr + `[61, "o", "a"]`, lim: Limits{MaxTime: time.Minute}, line: 2, want: ErrTime},
	{name: "binary garbage", input: hdr + "\x00\xff\xfe[", line: 2, want: ErrMalformed},
}

func TestDecoderMalformed(t *testing.T) {
	for _, tc := range malformed {
		t.Run(tc.name, func(t *testing.T) {
			err := decodeErr(strings.NewReader(tc.input), tc.lim)
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("got %v, want a *LineError", err)
			}
			if le.Line != tc.line {
				t.Errorf("line: got %d, want %d (%v)", le.Line, tc.line, err)
			}
			if !errors.Is(err, tc.want) {
				t.Errorf("got %v, want %v", err, tc.want)
			}
			if !strings.HasPrefix(err.Error(), "asciicast: line ") {
				t.Errorf("got %q, want an asciicast: line N: prefix", err)
			}
		})
	}
}

// decodeErr decodes everything and returns the first error other than io.EOF.
func decodeErr(r io.Reader, lim Limits) error {
	dec, err := NewDecoder(r, lim)
	if err != nil {
		return err
	}
	for {
		_, err := dec.Next()
		if err == io.EOF {
			return nil
		}
		if err != nil {
			if _, again := dec.Next(); again != err {
				return errors.New("error is not sticky")
			}
			return err
		}
	}
}

func TestDecoderAccepts(t *testing.T) {
	tests := []struct {
		name  string
		input string
		want  []Event
	}{
		{name: "no trailing newline", input: hdr + `[0.5, "o", "a"]`, want: []Event{{Time: 500 * time.Millisecond, Type: Output, Data: "a"}}},
		{name: "crlf lines", input: strings.ReplaceAll(hdr+"[0.5, \"o\", \"a\"]\n", "\n", "\r\n"), want: []Event{{Time: 500 * time.Millisecond, Type: Output, Data: "a"}}},
		{name: "integer and exponent times", input: hdr + "[1e-06, \"o\", \"b\"]\n[1, \"o\", \"a\"]\n",
			want: []Event{{Time: time.Microsecond, Type: Output, Data: "b"}, {Time: time.Second, Type: Output, Data: "a"}}},
		{name: "equal times", input: hdr + "[1.5, \"o\", \"a\"]\n[1.5, \"i\", \"b\"]\n", want: []Event{{Time: 1500 * time.Millisecond, Type: Output, Data: "a"}, {Time: 1500 * time.Millisecond, Type: Input, Data: "b"}}},
		{name: "unknown header fields", input: `{"version": 2, "width": 3, "height": 4, "theme": {"fg": "#fff"}, "x_other": 1}` + "\n", want: nil},
		{name: "escaped data", input: hdr + `[0, "m", "\u00e9\ud83d\ude00\n"]`, want: []Event{{Type: Marker, Data: "\u00e9\U0001F600\n"}}},
		{name: "sub-microsecond rounds", input: hdr + `[0.0000014, "o", ""]`, want: []Event{{Time: time.Microsecond, Type: Output}}},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, events := decodeAll(t, []byte(tc.input))
			if !reflect.DeepEqual(events, tc.want) {
				t.Errorf("got %q, want %q", events, tc.want)
			}
		})
	}
}

// A line longer than the reader's buffer but within the limit is read whole.
func TestDecoderLongLine(t *testing.T) {
	data := strings.Repeat("\u00e9", 100<<10)
	in := encodeAll(t, Header{Width: 80, Height: 24}, []Event{{Type: Output, Data: data}, {Type: Output, Data: "end"}})
	_, events := decodeAll(t, in)
	if len(events) != 2 || events[0].Data != data || events[1].Data != "end" {
		t.Fatalf("got %d events, want the long one and \"end\"", len(events))
	}
}

type errReader struct{}

func (errReader) Read([]byte) (int, error) { return 0, errors.New("connection reset") }

func TestDecoderReadError(t *testing.T) {
	err := decodeErr(io.MultiReader(strings.NewReader(hdr), errReader{}), Limits{})
	var le *LineError
	if !errors.As(err, &le) || le.Line != 2 || !strings.Contains(err.Error(), "connection reset") {
		t.Errorf("got %v, want line 2: connection reset", err)
	}
}

// The recording made by the real asciinema recorder decodes.
func TestDecodeAsciinemaRecording(t *testing.T) {
	data, err := os.ReadFile(filepath.Join(goldenDir, "asciinema-2.2.0-rec.cast"))
	if err != nil {
		t.Fatal(err)
	}
	h, events := decodeAll(t, data)
	if h.Width != 80 || h.Height != 24 || h.Env["TERM"] != "xterm" {
		t.Errorf("header: got %+v", h)
	}
	var out strings.Builder
	for _, ev := range events {
		out.WriteString(ev.Data)
	}
	if got, want := out.String(), "h\u00e9llo \u20ac\r\nbye\r\n"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func FuzzDecoder(f *testing.F) {
	for _, tc := range malformed {
		f.Add([]byte(tc.input))
	}
	for _, tc := range goldenCases {
		f.Add(encodeAll(f, tc.header, tc.events))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		lim := Limits{MaxLineBytes: 4096, MaxEvents: 1000}
		dec, err := NewDecoder(bytes.NewReader(data), lim)
		if err != nil {
			var le *LineError
			if !errors.As(err, &le) {
				t.Fatalf("got %T %v, want a *LineError", err, err)
			}
			return
		}
		var events []Event
		for {
			ev, err := dec.Next()
			if err == io.EOF {
				break
			}
			if err != nil {
				var le *LineError
				if !errors.As(err, &le) {
					t.Fatalf("got %T %v, want a *LineError", err, err)
				}
				return
			}
			events = append(events, ev)
		}
		// Whatever decodes cleanly re-encodes to the same events.
		var buf bytes.Buffer
		enc, err := NewEncoder(&buf, dec.Header())
		if err != nil {
			t.Fatalf("re-encode header %+v: %v", dec.Header(), err)
		}
		for _, ev := range events {
			if err := enc.Event(ev); err != nil {
				t.Fatalf("re-encode %+v: %v", ev, err)
			}
		}
		dec2, err := NewDecoder(&buf, Limits{MaxEvents: 1000})
		if err != nil {
			t.Fatalf("decode again: %v", err)
		}
		for i, want := range events {
			got, err := dec2.Next()
			if err != nil || got != want {
				t.Fatalf("event %d: got %+v, %v, want %+v", i, got, err, want)
			}
		}
	})
}
