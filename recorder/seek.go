package recorder

import (
	"errors"
	"fmt"
	"sync"
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
	chain *seekChain // the walk that made it; nil in the zero Seek
}

// seekChain is what a walk from the start checked: the hash of every chunk
// (a prefix of it), and whether the walk got to the end and matched the
// seal. A read from one of its Seeks checks each chunk against it, since
// the link to the chunk before says nothing of chunks rewritten since with
// the chain after them rebuilt (in place, in the chunk log, under a
// running bastion), and such a read stops before the end, where the seal
// would tell.
type seekChain struct {
	mu      sync.Mutex
	sums    [][seekSumLen]byte
	checked bool
}

// seekSumLen is how much of each chunk's hash a seekChain keeps.
const seekSumLen = 16

func (sc *seekChain) state() ([][seekSumLen]byte, bool) {
	sc.mu.Lock()
	defer sc.mu.Unlock()
	return sc.sums, sc.checked
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
	var (
		chain   *seekChain // filled by a walk from the start
		checked [][seekSumLen]byte
	)
	switch {
	case from.chain != nil:
		sums, ok := from.chain.state()
		if !ok {
			return fmt.Errorf("recorder: session %s: %w: the walk this read starts from did not check the recording to its end", id, ErrBroken)
		}
		checked = sums
		cc.next, cc.head = from.Chunk, from.prev
	case from.Chunk > 0:
		return fmt.Errorf("recorder: session %s: %w: a Seek that no walk made", id, ErrBroken)
	default:
		// A walk from the start (the console's index of the recording)
		// ends checked against the seal, as Events does.
		var err error
		if done, err = s.signedExtent(id, cc); err != nil {
			return err
		}
		chain = &seekChain{}
	}
	err := s.scanChunksFrom(id, from.Chunk, func(seq uint64, v []byte) error {
		at := Seek{Chunk: seq, prev: cc.head, chain: chain}
		if from.chain != nil {
			at.chain = from.chain
		}
		last := cc.last
		c, err := cc.check(seq, v, nil)
		if err != nil {
			return fmt.Errorf("recorder: session %s: chunk %d: %w: %v", id, cc.next, ErrBroken, err)
		}
		switch {
		case chain != nil:
			chain.mu.Lock()
			chain.sums = append(chain.sums, [seekSumLen]byte(c.hash[:seekSumLen]))
			chain.mu.Unlock()
		case seq >= uint64(len(checked)):
			return fmt.Errorf("recorder: session %s: chunk %d: %w: it was not there when the recording was checked against its seal", id, seq, ErrBroken)
		case checked[seq] != [seekSumLen]byte(c.hash[:seekSumLen]):
			return fmt.Errorf("recorder: session %s: chunk %d: %w: it changed since the recording was checked against its seal", id, seq, ErrBroken)
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
	if err == nil && chain != nil {
		chain.mu.Lock()
		chain.checked = true
		chain.mu.Unlock()
	}
	return err
}
