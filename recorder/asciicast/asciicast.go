package asciicast

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Version is the asciicast format version this package reads and writes.
const Version = 2

// Header is the first line of a recording.
type Header struct {
	Version       int               `json:"version"` // always 2
	Width         int               `json:"width"`
	Height        int               `json:"height"`
	Timestamp     int64             `json:"timestamp,omitempty"` // unix seconds of the start
	Duration      float64           `json:"duration,omitempty"`  // seconds
	IdleTimeLimit float64           `json:"idle_time_limit,omitempty"`
	Command       string            `json:"command,omitempty"`
	Title         string            `json:"title,omitempty"`
	Env           map[string]string `json:"env,omitempty"`
	// Bastion carries bastion's metadata in a namespaced object players ignore.
	Bastion *Meta `json:"x_bastion,omitempty"`
}

// Meta is bastion's metadata about the recorded session.
type Meta struct {
	SessionID string `json:"session_id,omitempty"`
	User      string `json:"user,omitempty"`
	Target    string `json:"target,omitempty"`
	Login     string `json:"login,omitempty"`
	Kind      string `json:"kind,omitempty"`
}

// EventType is the one-letter code of an event.
type EventType byte

// The event types of asciicast v2.
const (
	Output EventType = 'o' // data written to the terminal
	Input  EventType = 'i' // data typed by the user
	Resize EventType = 'r' // terminal resized; data is "COLSxROWS"
	Marker EventType = 'm' // a marker; data is its label
)

// Valid reports whether t is one of the asciicast v2 event types.
func (t EventType) Valid() bool {
	switch t {
	case Output, Input, Resize, Marker:
		return true
	}
	return false
}

// String returns the one-letter code.
func (t EventType) String() string { return string(rune(t)) }

// Event is one recorded event.
type Event struct {
	Time time.Duration // since the start; encoded as seconds with microsecond precision
	Type EventType     // Output, Input, Resize or Marker
	Data string        // for Resize: "COLSxROWS"
}

// Sentinel errors; decoder errors wrap them in a *LineError.
var (
	// ErrVersion means the header is not asciicast version 2.
	ErrVersion = errors.New("unsupported asciicast version")
	// ErrGeometry means a width or height is missing, not positive or beyond the limits.
	ErrGeometry = errors.New("bad terminal geometry")
	// ErrLineTooLong means a line exceeds Limits.MaxLineBytes.
	ErrLineTooLong = errors.New("line too long")
	// ErrMalformed means a line is not the JSON the format requires.
	ErrMalformed = errors.New("malformed line")
	// ErrEventType means an event has an unknown type code.
	ErrEventType = errors.New("unknown event type")
	// ErrTime means an event time is negative, too large or earlier than the previous one.
	ErrTime = errors.New("bad event time")
	// ErrTooManyEvents means the recording has more than Limits.MaxEvents events.
	ErrTooManyEvents = errors.New("too many events")
	// ErrNoHeader means the input is empty.
	ErrNoHeader = errors.New("missing header")
)

// LineError is a decoding error with the 1-based line number where it occurred.
type LineError struct {
	Line int
	Err  error
}

func (e *LineError) Error() string { return fmt.Sprintf("asciicast: line %d: %v", e.Line, e.Err) }

// Unwrap returns the underlying error.
func (e *LineError) Unwrap() error { return e.Err }

// ParseResize parses the data of a resize event, "COLSxROWS", with both
// numbers in 1..maxCols and 1..maxRows (a limit of 0 means no limit).
func ParseResize(data string, maxCols, maxRows int) (cols, rows int, err error) {
	c, r, ok := strings.Cut(data, "x")
	if !ok {
		return 0, 0, fmt.Errorf("%w: resize %q is not COLSxROWS", ErrGeometry, data)
	}
	cols, err1 := parseDim(c)
	rows, err2 := parseDim(r)
	if err1 != nil || err2 != nil {
		return 0, 0, fmt.Errorf("%w: resize %q is not COLSxROWS", ErrGeometry, data)
	}
	if err := checkGeometry(cols, rows, maxCols, maxRows); err != nil {
		return 0, 0, err
	}
	return cols, rows, nil
}

// FormatResize formats the data of a resize event.
func FormatResize(cols, rows int) string {
	return strconv.Itoa(cols) + "x" + strconv.Itoa(rows)
}

// parseDim parses a small decimal number without sign or leading '+'.
func parseDim(s string) (int, error) {
	if s == "" || len(s) > 9 {
		return 0, ErrGeometry
	}
	n := 0
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return 0, ErrGeometry
		}
		n = n*10 + int(s[i]-'0')
	}
	return n, nil
}

func checkGeometry(w, h, maxW, maxH int) error {
	if w <= 0 || h <= 0 {
		return fmt.Errorf("%w: %dx%d is not positive", ErrGeometry, w, h)
	}
	if (maxW > 0 && w > maxW) || (maxH > 0 && h > maxH) {
		return fmt.Errorf("%w: %dx%d exceeds the limit %dx%d", ErrGeometry, w, h, maxW, maxH)
	}
	return nil
}

// formatTime appends d as seconds with exactly six decimals (microseconds,
// truncated), without going through a float.
func formatTime(b []byte, d time.Duration) []byte {
	us := int64(d / time.Microsecond)
	b = strconv.AppendInt(b, us/1e6, 10)
	b = append(b, '.')
	frac := us % 1e6
	for div := int64(100000); div > 0; div /= 10 {
		b = append(b, byte('0'+frac/div%10))
	}
	return b
}
