package recorder

import (
	"context"
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
// delivered, and fn runs outside any transaction. Follow returns
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
	read := func() error {
		err := s.scanChunksFrom(id, cc.next, func(seq uint64, v []byte) error {
			last := cc.last
			c, err := cc.check(seq, v, nil)
			if err != nil {
				return fmt.Errorf("recorder: session %s: chunk %d: %w: %v", id, cc.next, ErrBroken, err)
			}
			return walkEvents(c, &last, func(e rawEvent) error {
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
			return read()
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
