package asciicast

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"time"

	"github.com/bastionhq/bastion/internal/safetext"
)

// Encoder writes an asciicast v2 recording.
type Encoder struct {
	w    io.Writer
	line []byte        // the line being built, reused
	str  bytes.Buffer  // encoding/json output for one string, reused
	js   *json.Encoder // writes into str
	last time.Duration
	n    int // events written
}

// NewEncoder writes the header line to w and returns an encoder for the
// events. h.Version 0 means 2; any other version, or a width or height that is
// not positive, is refused.
func NewEncoder(w io.Writer, h Header) (*Encoder, error) {
	if h.Version == 0 {
		h.Version = Version
	}
	if h.Version != Version {
		return nil, fmt.Errorf("asciicast: encode header: %w: %d", ErrVersion, h.Version)
	}
	if err := checkGeometry(h.Width, h.Height, 0, 0); err != nil {
		return nil, fmt.Errorf("asciicast: encode header: %w", err)
	}
	if h.Duration < 0 || h.IdleTimeLimit < 0 {
		return nil, fmt.Errorf("asciicast: encode header: %w: negative duration", ErrTime)
	}
	e := &Encoder{w: w}
	e.js = json.NewEncoder(&e.str)
	e.js.SetEscapeHTML(false)
	if err := e.js.Encode(h); err != nil {
		return nil, fmt.Errorf("asciicast: encode header: %w", err)
	}
	if _, err := w.Write(safetext.EscapeC1(e.str.Bytes())); err != nil {
		return nil, fmt.Errorf("asciicast: write header: %w", err)
	}
	return e, nil
}

// Event writes one event line. Times must not go backwards, the type must be
// a known one and a resize must be "COLSxROWS" with positive numbers. Invalid
// UTF-8 in the data is replaced with U+FFFD (as encoding/json does).
func (e *Encoder) Event(ev Event) error {
	if ev.Time < 0 || ev.Time < e.last {
		return fmt.Errorf("asciicast: event %d: %w: %v after %v", e.n+1, ErrTime, ev.Time, e.last)
	}
	if !ev.Type.Valid() {
		return fmt.Errorf("asciicast: event %d: %w: %q", e.n+1, ErrEventType, byte(ev.Type))
	}
	if ev.Type == Resize {
		if _, _, err := ParseResize(ev.Data, 0, 0); err != nil {
			return fmt.Errorf("asciicast: event %d: %w", e.n+1, err)
		}
	}
	e.str.Reset()
	if err := e.js.Encode(ev.Data); err != nil {
		return fmt.Errorf("asciicast: event %d: %w", e.n+1, err)
	}
	// C1 controls as escapes: a recording printed on a terminal (cat)
	// must not act on it.
	data := safetext.EscapeC1(bytes.TrimSuffix(e.str.Bytes(), []byte("\n")))
	b := append(e.line[:0], '[')
	b = formatTime(b, ev.Time)
	b = append(b, ", \""...)
	b = append(b, byte(ev.Type))
	b = append(b, "\", "...)
	b = append(b, data...)
	b = append(b, "]\n"...)
	e.line = b
	if _, err := e.w.Write(b); err != nil {
		return fmt.Errorf("asciicast: write event %d: %w", e.n+1, err)
	}
	e.last = ev.Time
	e.n++
	return nil
}
