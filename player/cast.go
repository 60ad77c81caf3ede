package player

import (
	"bytes"
	"errors"
	"io"
	"math"
	"strings"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

// SanitizeCast copies the asciicast v2 recording read from r to w with the
// data of its output events passed through one Sanitizer, as Play shows
// them: what another player (asciinema play or cat) writes to its terminal
// then carries no sequence that attacks the viewer's terminal. A sequence
// split across events is carried to the event that completes it. One more
// output event ends it: the sequences that undo the modes the recording left
// on, and the list of its markers that Play writes after a replay (players
// such as asciinema do not show markers, and the recording's output can
// erase or imitate the messages bastion printed). Other events and the
// header are copied unchanged. It streams: each event is written as soon as
// it is read.
func SanitizeCast(r io.Reader, w io.Writer) error {
	dec, err := asciicast.NewDecoder(r, asciicast.Limits{MaxEvents: math.MaxInt})
	if err != nil {
		return err
	}
	enc, err := asciicast.NewEncoder(w, dec.Header())
	if err != nil {
		return err
	}
	var out bytes.Buffer
	san := NewSanitizer(&out)
	var in []byte
	var last asciicast.Event
	var markers []listedMarker
	more := 0
	for {
		ev, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		switch ev.Type {
		case asciicast.Output:
			out.Reset()
			in = append(in[:0], ev.Data...)
			san.Write(in) // writes to a bytes.Buffer do not fail
			ev.Data = out.String()
		case asciicast.Marker:
			if len(markers) < maxMarkerList {
				markers = append(markers, listedMarker{at: ev.Time, label: inert(strings.TrimPrefix(ev.Data, "bastion: "), maxMarkerRunes)})
			} else {
				more++
			}
		}
		if err := enc.Event(ev); err != nil {
			return err
		}
		last = ev
	}
	out.Reset()
	san.Close()
	out.WriteString("\r\n")
	out.WriteString(markerList(markers, more))
	return enc.Event(asciicast.Event{Time: last.Time, Type: asciicast.Output, Data: out.String()})
}

// SanitizeExport runs export, which writes an asciicast v2 recording to the
// writer it is given, and copies what it writes to w through SanitizeCast,
// as it is written. It returns export's error first (a recording that fails
// its checks), else SanitizeCast's.
func SanitizeExport(export func(io.Writer) error, w io.Writer) error {
	pr, pw := io.Pipe()
	errc := make(chan error, 1)
	go func() {
		err := export(pw)
		pw.CloseWithError(err)
		errc <- err
	}()
	err := SanitizeCast(pr, w)
	pr.CloseWithError(io.ErrClosedPipe) // an export still writing stops
	if eerr := <-errc; eerr != nil && !errors.Is(eerr, io.ErrClosedPipe) {
		return eerr
	}
	return err
}
