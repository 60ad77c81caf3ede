package recorder

import (
	"errors"
	"fmt"
	"time"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

// A Seek is a place in a session's recording where a read can start: the
// start of one of its chunks, with the hash of the chunk before it, which
// the chunk's link is checked against. The zero Seek is the recording's
// start. Seeks come from [Store.EventsSeek]; a reader that has walked a
// recording once (checking its whole chain) keeps some, to read a part of
// it later without reading what comes before.
type Seek struct {
	Chunk uint64
	prev  [hashLen]byte
}

// EventsSeek is [Store.Events] from the chunk at from on: fn gets each
// event, with the Seek of the chunk it is in, as stored: ev.Data is empty
// and data is the event's data, valid only until fn returns (copy what
// you keep), so a walk over a large recording copies nothing it does not
// need. Chunks are checked as Events checks them, the first one's link
// against from.
func (s *Store) EventsSeek(id string, from Seek, fn func(at Seek, ev asciicast.Event, data []byte) error) error {
	if _, err := s.sessionView(id); err != nil {
		return err
	}
	cc := newChainChecker(id)
	done := func() error { return nil }
	if from.Chunk > 0 {
		cc.next, cc.head = from.Chunk, from.prev
	} else {
		// A walk from the start (the console's index of the recording)
		// ends checked against the seal, as Events does.
		var err error
		if done, err = s.signedExtent(id, cc); err != nil {
			return err
		}
	}
	err := s.scanChunksFrom(id, from.Chunk, func(seq uint64, v []byte) error {
		at := Seek{Chunk: seq, prev: cc.head}
		last := cc.last
		c, err := cc.check(seq, v, nil)
		if err != nil {
			return fmt.Errorf("recorder: session %s: chunk %d: %w: %v", id, cc.next, ErrBroken, err)
		}
		return walkEvents(c, &last, func(e rawEvent) error {
			if binaryEvent(e.typ) || e.typ == EventConn {
				return nil // as in events: a PostgreSQL session's wire messages
			}
			if err := fn(at, asciicast.Event{Time: time.Duration(e.us) * time.Microsecond, Type: e.typ}, e.data); err != nil {
				return callbackError{err}
			}
			return nil
		})
	})
	var cbErr callbackError
	if errors.As(err, &cbErr) {
		return cbErr.err
	}
	if err == nil {
		err = done()
	}
	return err
}
