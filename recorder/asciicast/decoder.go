package asciicast

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"time"
)

// Default limits, used where a Limits field is zero.
const (
	DefaultMaxLineBytes = 1 << 20              // 1 MiB per line
	DefaultMaxWidth     = 1000                 // columns
	DefaultMaxHeight    = 1000                 // rows
	DefaultMaxEvents    = 10_000_000           // events per recording
	DefaultMaxTime      = 366 * 24 * time.Hour // the latest event time accepted
)

// Limits bound what a Decoder accepts. A zero field means its default.
type Limits struct {
	MaxLineBytes int           // longest line, newline excluded; default DefaultMaxLineBytes
	MaxWidth     int           // widest terminal (header and resize events); default DefaultMaxWidth
	MaxHeight    int           // tallest terminal; default DefaultMaxHeight
	MaxEvents    int           // most events; default DefaultMaxEvents
	MaxTime      time.Duration // latest event time; default DefaultMaxTime
}

func (l Limits) withDefaults() Limits {
	if l.MaxLineBytes <= 0 {
		l.MaxLineBytes = DefaultMaxLineBytes
	}
	if l.MaxWidth <= 0 {
		l.MaxWidth = DefaultMaxWidth
	}
	if l.MaxHeight <= 0 {
		l.MaxHeight = DefaultMaxHeight
	}
	if l.MaxEvents <= 0 {
		l.MaxEvents = DefaultMaxEvents
	}
	if l.MaxTime <= 0 {
		l.MaxTime = DefaultMaxTime
	}
	return l
}

// Decoder reads an asciicast v2 recording from untrusted input.
type Decoder struct {
	r      *bufio.Reader
	lim    Limits
	h      Header
	line   []byte // current line, reused
	lineNo int
	events int
	last   time.Duration
	err    error // sticky
}

// NewDecoder reads and checks the header line. Errors are *LineError values
// wrapping one of the package's sentinel errors (or the reader's error).
func NewDecoder(r io.Reader, lim Limits) (*Decoder, error) {
	d := &Decoder{r: bufio.NewReaderSize(r, 64<<10), lim: lim.withDefaults()}
	line, err := d.readLine()
	if err == io.EOF {
		err = &LineError{Line: 1, Err: ErrNoHeader}
	}
	if err != nil {
		return nil, err
	}
	if err := d.parseHeader(line); err != nil {
		return nil, &LineError{Line: d.lineNo, Err: err}
	}
	return d, nil
}

// Header returns the recording's header.
func (d *Decoder) Header() Header { return d.h }

// Next returns the next event, or io.EOF after the last one. Any other error
// is a *LineError and is returned again by every later call.
func (d *Decoder) Next() (Event, error) {
	if d.err != nil {
		return Event{}, d.err
	}
	line, err := d.readLine()
	if err != nil {
		d.err = err
		return Event{}, err
	}
	ev, err := d.parseEvent(line)
	if err != nil {
		d.err = &LineError{Line: d.lineNo, Err: err}
		return Event{}, d.err
	}
	return ev, nil
}

// readLine returns the next line without its newline (and a trailing '\r'),
// io.EOF at the end of input, or a *LineError.
func (d *Decoder) readLine() ([]byte, error) {
	d.line = d.line[:0]
	for {
		frag, err := d.r.ReadSlice('\n')
		if len(d.line)+len(frag) > d.lim.MaxLineBytes+1 { // +1 for the newline
			d.lineNo++
			return nil, &LineError{Line: d.lineNo, Err: fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, d.lim.MaxLineBytes)}
		}
		d.line = append(d.line, frag...)
		switch {
		case err == nil:
			d.lineNo++
			line := bytes.TrimSuffix(d.line[:len(d.line)-1], []byte("\r"))
			return line, nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF:
			if len(d.line) == 0 {
				return nil, io.EOF
			}
			d.lineNo++ // a last line without a newline
			if len(d.line) > d.lim.MaxLineBytes {
				return nil, &LineError{Line: d.lineNo, Err: fmt.Errorf("%w: more than %d bytes", ErrLineTooLong, d.lim.MaxLineBytes)}
			}
			return bytes.TrimSuffix(d.line, []byte("\r")), nil
		default:
			d.lineNo++
			return nil, &LineError{Line: d.lineNo, Err: err}
		}
	}
}

func (d *Decoder) parseHeader(line []byte) error {
	line = bytes.TrimSpace(line)
	if len(line) == 0 || line[0] != '{' {
		return fmt.Errorf("%w: header is not a JSON object", ErrMalformed)
	}
	var raw struct {
		Version *int `json:"version"`
		Header
	}
	if err := json.Unmarshal(line, &raw); err != nil {
		return fmt.Errorf("%w: header: %v", ErrMalformed, err)
	}
	if raw.Version == nil {
		return fmt.Errorf("%w: header has no version", ErrVersion)
	}
	if *raw.Version != Version {
		return fmt.Errorf("%w: %d", ErrVersion, *raw.Version)
	}
	h := raw.Header
	h.Version = Version
	if err := checkGeometry(h.Width, h.Height, d.lim.MaxWidth, d.lim.MaxHeight); err != nil {
		return err
	}
	if h.Timestamp < 0 {
		return fmt.Errorf("%w: negative timestamp", ErrTime)
	}
	if h.Duration < 0 || h.IdleTimeLimit < 0 {
		return fmt.Errorf("%w: negative duration", ErrTime)
	}
	d.h = h
	return nil
}

func (d *Decoder) parseEvent(line []byte) (Event, error) {
	if len(bytes.TrimSpace(line)) == 0 {
		return Event{}, fmt.Errorf("%w: empty line", ErrMalformed)
	}
	if d.events >= d.lim.MaxEvents {
		return Event{}, fmt.Errorf("%w: more than %d", ErrTooManyEvents, d.lim.MaxEvents)
	}
	var parts []json.RawMessage
	if err := json.Unmarshal(line, &parts); err != nil {
		return Event{}, fmt.Errorf("%w: event is not a JSON array: %v", ErrMalformed, err)
	}
	if len(parts) != 3 {
		return Event{}, fmt.Errorf("%w: event has %d elements, want 3", ErrMalformed, len(parts))
	}
	for i, p := range parts {
		if string(bytes.TrimSpace(p)) == "null" {
			return Event{}, fmt.Errorf("%w: event element %d is null", ErrMalformed, i+1)
		}
	}
	var secs float64
	if err := json.Unmarshal(parts[0], &secs); err != nil {
		return Event{}, fmt.Errorf("%w: event time is not a number", ErrMalformed)
	}
	var code, data string
	if err := json.Unmarshal(parts[1], &code); err != nil {
		return Event{}, fmt.Errorf("%w: event type is not a string", ErrMalformed)
	}
	if err := json.Unmarshal(parts[2], &data); err != nil {
		return Event{}, fmt.Errorf("%w: event data is not a string", ErrMalformed)
	}
	if math.IsNaN(secs) || secs < 0 || secs > d.lim.MaxTime.Seconds() {
		return Event{}, fmt.Errorf("%w: %v is negative or beyond %v", ErrTime, secs, d.lim.MaxTime)
	}
	t := time.Duration(math.Round(secs*1e6)) * time.Microsecond
	if t < d.last {
		return Event{}, fmt.Errorf("%w: %v is before the previous event at %v", ErrTime, t, d.last)
	}
	if len(code) != 1 || !EventType(code[0]).Valid() {
		return Event{}, fmt.Errorf("%w: %q", ErrEventType, code)
	}
	ev := Event{Time: t, Type: EventType(code[0]), Data: data}
	if ev.Type == Resize {
		if _, _, err := ParseResize(data, d.lim.MaxWidth, d.lim.MaxHeight); err != nil {
			return Event{}, err
		}
	}
	d.last = t
	d.events++
	return ev, nil
}
