package recorder

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

// followPoll is how often Follow looks for new chunks when no flush wakes
// it (a flush always does; this is the fallback).
const followPoll = time.Second

// Follow calls fn for each event of a session, in order, as Events does,
// and then for each event committed later, as the recorder flushes them,
// until the session is no longer live: it returns nil once every event of
// the ended session was delivered. caughtUp, when not nil, is called once,
// when the events committed before the call have all been delivered (a
// caller following "from now" shows those at once and paces the rest).
//
// Chunks are checked (hash and chain link) before their events are
// delivered, and fn runs outside any transaction; what the first read
// delivered is then checked against the signatures as Events checks it,
// and the whole chain, once the session ended, against its seal (an error
// wrapping ErrBroken after the content, as with Events). A PostgreSQL
// session's wire messages are skipped, as Events skips them. Follow returns
// context.Cause(ctx) when ctx ends, ErrClosed when the store closes, an
// error wrapping ErrBroken for a damaged chunk, and an error from fn or
// caughtUp as is.
//
// Events are delivered at most one flush interval after they happened: the
// recorder commits them in groups (see the package doc).
func (s *Store) Follow(ctx context.Context, id string, fn func(asciicast.Event) error, caughtUp func() error) error {
	if _, err := s.sessionView(id); err != nil {
		return err
	}
	cc := newChainChecker(id) // kept across reads: each resumes the chain
	// What was read is checked against the signatures as Events checks
	// it: the first read against the seal, or the latest checkpoint of a
	// live session, and the whole chain, once the session ended, against
	// its seal. A chain rebuilt without the seal key reads through chunk
	// by chunk and only the signatures tell it from the recording.
	done, err := s.signedExtent(id, cc)
	if err != nil {
		return err
	}
	read := func() error {
		err := s.scanChunksFrom(id, cc.next, func(seq uint64, v []byte) error {
			last := cc.last
			c, err := cc.check(seq, v, nil)
			if err != nil {
				return fmt.Errorf("recorder: session %s: chunk %d: %w: %v", id, cc.next, ErrBroken, err)
			}
			return walkEvents(c, &last, func(e rawEvent) error {
				if binaryEvent(e.typ) || e.typ == EventConn {
					return nil // as in events: a PostgreSQL session's wire messages
				}
				if err := fn(e.event()); err != nil {
					return callbackError{err}
				}
				return nil
			})
		})
		var cb callbackError
		if errors.As(err, &cb) {
			return cb.err
		}
		return err
	}
	timer := time.NewTimer(followPoll)
	defer timer.Stop()
	for first := true; ; first = false {
		// Take the flush signal before reading, so a flush that commits
		// right after the read still wakes the wait below.
		s.mu.Lock()
		flushed := s.flushed
		s.mu.Unlock()
		if err := read(); err != nil {
			return err
		}
		if first {
			if err := done(); err != nil {
				return err
			}
		}
		if first && caughtUp != nil {
			if err := caughtUp(); err != nil {
				return err
			}
		}
		info, err := s.sessionView(id)
		if err != nil {
			return err
		}
		if info.Status != StatusLive {
			// The last chunks commit with the status: read what came
			// between the read above and the status.
			if err := read(); err != nil {
				return err
			}
			return s.endedExtent(id, cc)
		}
		timer.Reset(followPoll)
		select {
		case <-ctx.Done():
			return context.Cause(ctx)
		case <-s.stop:
			return ErrClosed
		case <-flushed:
		case <-timer.C:
		}
	}
}

// endedExtent checks the chain cc walked to its end against the ended
// session's seal (or, unsealed, its latest signed checkpoint), as
// signedExtent's done does for a walk that knew the extent before it began.
func (s *Store) endedExtent(id string, cc *chainChecker) error {
	if len(s.keys) == 0 {
		return nil
	}
	var sealBytes, cpBytes []byte
	err := s.view(func(tx Tx) error {
		var err error
		if sealBytes, err = tx.Seal(id); err != nil {
			return err
		}
		cpBytes, err = tx.Checkpoint(id)
		return err
	})
	if err != nil {
		return fmt.Errorf("recorder: session %s: %w", id, err)
	}
	broken := func(what string) error {
		return fmt.Errorf("recorder: session %s: %w: %s (bastion verify %s says more)", id, ErrBroken, what, id)
	}
	if sealBytes != nil {
		var se Seal
		if err := openSigned(s.keys, sealDomain, sealBytes, &se); err != nil || se.SessionID != id {
			return broken("the seal is invalid")
		}
		if int64(cc.next) != se.Chunks || hex.EncodeToString(cc.head[:]) != se.Head || cc.events != se.Events {
			return broken("the recording does not match its seal")
		}
		return nil
	}
	cp, ok, cpErr := s.openStoredCheckpoint(id, cpBytes)
	switch {
	case cpErr != nil:
		return broken("the signed checkpoint does not verify")
	case !ok:
		return nil // as Events: verify says what is unverified
	case cp.Chunks != int64(cc.next) || cp.Head != cc.head || cp.Events != cc.events:
		return broken("the recording does not match its signed checkpoint")
	}
	return nil
}
