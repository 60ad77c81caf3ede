package recorder

import (
	"context"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math"
	"time"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

// Session returns a session's metadata, or an error wrapping ErrNotFound.
// For a live session the counters are those of the last flush.
func (s *Store) Session(id string) (SessionInfo, error) {
	return s.sessionView(id)
}

// Sessions returns the sessions matching f, newest first.
func (s *Store) Sessions(f SessionFilter) ([]SessionInfo, error) {
	var out []SessionInfo
	err := s.view(func(tx Tx) error {
		out = out[:0]
		return tx.Sessions(f, func(info SessionInfo) bool {
			out = append(out, info)
			return f.Limit <= 0 || len(out) < f.Limit
		})
	})
	if err != nil {
		return nil, fmt.Errorf("recorder: sessions: %w", err)
	}
	return out, nil
}

// Events calls fn for each committed event of a session, in order. Chunks
// are read in batches and checked (hash and chain link) before their events
// are delivered, and fn runs outside any transaction, so a slow consumer
// (a replay with its original timing) never holds the database. A damaged
// chunk stops the walk with an error wrapping ErrBroken; an error from fn
// stops it and is returned as is.
func (s *Store) Events(id string, fn func(asciicast.Event) error) error {
	if _, err := s.sessionView(id); err != nil {
		return err
	}
	return s.events(id, fn)
}

type callbackError struct{ err error }

func (e callbackError) Error() string { return e.err.Error() }

func (s *Store) events(id string, fn func(asciicast.Event) error) error {
	cc := newChainChecker(id)
	done, err := s.signedExtent(id, cc)
	if err != nil {
		return err
	}
	err = s.scanChunks(id, func(seq uint64, v []byte) error {
		var last = cc.last
		c, err := cc.check(seq, v, nil)
		if err != nil {
			return fmt.Errorf("recorder: session %s: chunk %d: %w: %v", id, cc.next, ErrBroken, err)
		}
		return walkEvents(c, &last, func(e rawEvent) error {
			if binaryEvent(e.typ) || e.typ == EventConn {
				// A PostgreSQL session's wire messages are for its capture
				// (ExportPcap); its terminal view is the transcript.
				return nil
			}
			if err := fn(e.event()); err != nil {
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

// signedExtent reads what signatures say of session id's chain (its seal,
// or else its latest checkpoint) and asks cc to remember the chain there.
// done, once cc has walked every chunk, says whether what was read matches
// them: a chain rebuilt without the seal key links chunk to chunk, so only
// the signature tells it from the recording. A reader streams before it
// knows, so done's error comes after the content (the caller fails).
func (s *Store) signedExtent(id string, cc *chainChecker) (done func() error, err error) {
	if len(s.keys) == 0 {
		// Opened read-only without the seal key (an offline reader):
		// nothing to check signatures with; `bastion verify` does.
		return func() error { return nil }, nil
	}
	var sealBytes, cpBytes []byte
	var info SessionInfo
	var infoErr error
	err = s.view(func(tx Tx) error {
		var err error
		if sealBytes, err = tx.Seal(id); err != nil {
			return err
		}
		if cpBytes, err = tx.Checkpoint(id); err != nil {
			return err
		}
		info, infoErr = tx.Session(id)
		return nil
	})
	live := infoErr != nil || info.Status == StatusLive
	if err != nil {
		return nil, fmt.Errorf("recorder: session %s: %w", id, err)
	}
	broken := func(format string, args ...any) error {
		return fmt.Errorf("recorder: session %s: %w: %s (bastion verify %s says more)", id, ErrBroken, fmt.Sprintf(format, args...), id)
	}
	if sealBytes != nil {
		var se Seal
		if err := openSigned(s.keys, sealDomain, sealBytes, &se); err != nil || se.SessionID != id {
			return func() error { return broken("the seal is invalid") }, nil
		}
		// The record's metadata (its start, which times a capture's
		// frames; its user and target, in an export's header) is what
		// the seal says, or nothing is shown.
		if field := se.mismatch(info); field != "" && infoErr == nil {
			return nil, broken("the session record's %s differs from the seal", field)
		}
		cc.checkAt(se.Chunks)
		return func() error {
			if int64(cc.next) != se.Chunks || !cc.atSeen || hex.EncodeToString(cc.atHead[:]) != se.Head || cc.atEvents != se.Events {
				return broken("the recording does not match its seal")
			}
			return nil
		}, nil
	}
	cp, ok, cpErr := s.openStoredCheckpoint(id, cpBytes)
	switch {
	case cpErr != nil:
		return func() error { return broken("the signed checkpoint does not verify") }, nil
	case !ok:
		return func() error { return nil }, nil // verify says what is unverified
	case infoErr == nil && cp.metaMismatch(info):
		return nil, broken("the session record's metadata (user, target, start...) differs from the signed checkpoint")
	}
	cc.checkAt(cp.Chunks)
	return func() error {
		// A live session's later chunks came with later checkpoints.
		if !cc.atSeen || cc.atHead != cp.Head || cc.atEvents != cp.Events {
			return broken("the recording does not match its signed checkpoint")
		}
		// An ended one has none: its chunks after the last are unverified
		// (its seal was removed, and chunks added), as verify says.
		if !live && int64(cc.next) > cp.Chunks {
			return broken("chunks %d to %d come after the last signed checkpoint", cp.Chunks, cc.next-1)
		}
		return nil
	}, nil
}

func (s *Store) sessionView(id string) (SessionInfo, error) {
	if !validID(id) {
		return SessionInfo{}, fmt.Errorf("recorder: session %s: %w", quoteID(id), ErrNotFound)
	}
	var info SessionInfo
	err := s.view(func(tx Tx) error {
		var err error
		info, err = tx.Session(id)
		return err
	})
	return info, err
}

// scanChunks calls fn with each stored chunk of session id, in sequence
// order, reading in batches outside of which fn runs.
func (s *Store) scanChunks(id string, fn func(seq uint64, v []byte) error) error {
	return s.scanChunksFrom(id, 0, fn)
}

// scanChunksFrom is scanChunks from chunk seq from on.
func (s *Store) scanChunksFrom(id string, from uint64, fn func(seq uint64, v []byte) error) error {
	return s.scan(from, scanChunks, func(tx Tx, from uint64, limit int, f func(uint64, []byte) error) error {
		return tx.Chunks(id, from, limit, f)
	}, fn)
}

// Export writes a session as an asciicast v2 recording, with bastion's
// metadata in the header's "x_bastion" object. A session without a terminal
// gets an 80x24 header.
func (s *Store) Export(id string, w io.Writer) error {
	info, err := s.sessionView(id)
	if err != nil {
		return err
	}
	if info.Kind == "tcp" {
		// Checked whole first, as a capture is (ExportPcap), at the cost
		// of a second read: a timeline written to a file and cut at the
		// damage would read as the session.
		if err := s.rawEvents(id, func(rawEvent) error { return nil }); err != nil {
			if errors.Is(err, ErrBroken) {
				return fmt.Errorf("recorder: export %s: refused, nothing written: %w", id, err)
			}
			return err
		}
	}
	enc, err := asciicast.NewEncoder(w, exportHeader(info))
	if err != nil {
		return fmt.Errorf("recorder: export %s: %w", id, err)
	}
	if info.Kind == "tcp" {
		// A TCP session's bytes are not terminal output: they play as a
		// readable timeline (ExportPcap gives the capture).
		var last int64
		tl := timeline{out: enc.Event}
		err := s.rawEvents(id, func(e rawEvent) error {
			last = e.us
			return tl.event(e)
		})
		if err == nil && info.Status == StatusInterrupted {
			// Neither side's close was recorded: say why the timeline
			// stops, as the capture shows it (no FIN, no RST).
			err = tl.event(rawEvent{typ: asciicast.Marker, us: last, data: []byte("the recording ends here: the session was interrupted (" + info.Error + "); no close of either side was recorded")})
		}
		return err
	}
	return s.events(id, enc.Event)
}

// ExportFollow writes a terminal session as Export does and then, while
// it is live, each event the recorder commits, until the session ends (nil)
// or ctx does; w is flushed after each event when it is an http.Flusher-like
// interface{ Flush() error }. With fromNow, the events committed before the
// call are written at time 0 (they draw the present screen at once) and
// later ones at their time since the call, so a player shows the present
// and then follows in real time; otherwise times are the session's own.
func (s *Store) ExportFollow(ctx context.Context, id string, w io.Writer, fromNow bool) error {
	info, err := s.sessionView(id)
	if err != nil {
		return err
	}
	if info.Kind == "tcp" {
		return fmt.Errorf("recorder: follow %s: a tcp session has no terminal to follow; export it when it ends", id)
	}
	enc, err := asciicast.NewEncoder(w, exportHeader(info))
	if err != nil {
		return fmt.Errorf("recorder: export %s: %w", id, err)
	}
	flush := func() error { return nil }
	if f, ok := w.(interface{ Flush() error }); ok {
		flush = f.Flush
	}
	var offset time.Duration
	caught := !fromNow
	return s.Follow(ctx, id, func(ev asciicast.Event) error {
		if fromNow {
			if !caught {
				ev.Time = 0
			} else {
				ev.Time = max(ev.Time-offset, 0)
			}
		}
		if err := enc.Event(ev); err != nil {
			return err
		}
		if caught {
			return flush()
		}
		return nil
	}, func() error {
		if fromNow {
			caught, offset = true, s.cfg.Now().Sub(info.Start)
		}
		return flush()
	})
}

// exportHeader is the asciicast header of a session's export.
func exportHeader(info SessionInfo) asciicast.Header {
	h := asciicast.Header{
		Width: info.Width, Height: info.Height, Timestamp: info.Start.Unix(), Command: info.Command,
		Bastion: &asciicast.Meta{SessionID: info.ID, User: info.User, Target: info.Target, Login: info.Login, Kind: info.Kind},
	}
	if h.Width == 0 || h.Height == 0 {
		h.Width, h.Height = 80, 24
	}
	if info.Term != "" {
		h.Env = map[string]string{"TERM": info.Term}
	}
	if info.Status != StatusLive && !info.End.IsZero() && info.End.After(info.Start) {
		h.Duration = math.Round(info.End.Sub(info.Start).Seconds()*1e6) / 1e6
	}
	return h
}

// Verify checks a session's recording: every chunk against its hash and the
// chain, and the seal against the chain head, the counts and the session
// record. The report says intact, or which chunk broke and why. Only a
// failure to read the store is returned as an error.
func (s *Store) Verify(id string) (Report, error) {
	rep := Report{ID: id, BrokenAt: -1}
	if !validID(id) {
		return rep, fmt.Errorf("recorder: verify %s: %w", quoteID(id), ErrNotFound)
	}
	var (
		info      SessionInfo
		infoErr   error
		sealBytes []byte
		cp        Checkpoint
		hasCP     bool
		cpErr     error
	)
	err := s.view(func(tx Tx) error {
		info, infoErr = tx.Session(id)
		if errors.Is(infoErr, ErrNotFound) {
			return infoErr
		}
		var err error
		if sealBytes, err = tx.Seal(id); err != nil {
			return err
		}
		cpBytes, err := tx.Checkpoint(id)
		if err != nil {
			return err
		}
		cp, hasCP, cpErr = s.openStoredCheckpoint(id, cpBytes)
		return nil
	})
	if err != nil {
		return rep, err
	}
	rep.Status = info.Status
	fail := func(at int64, format string, args ...any) {
		if rep.Problem == "" {
			rep.BrokenAt, rep.Problem = at, fmt.Sprintf(format, args...)
		}
	}
	if infoErr != nil {
		fail(-1, "the session record is unreadable")
	}

	cc := newChainChecker(id)
	if hasCP && cpErr == nil {
		cc.checkAt(cp.Chunks)
	}
	err = s.scanChunks(id, func(seq uint64, v []byte) error {
		if _, err := cc.check(seq, v, nil); err != nil {
			switch {
			case errors.Is(err, errChunkMissing):
				fail(int64(cc.next), "chunk %d is missing", cc.next)
			case errors.Is(err, errChunkLink):
				fail(int64(cc.next), "chunk %d does not link to chunk %d: one of them was replaced", cc.next, int64(cc.next)-1)
			default:
				fail(int64(cc.next), "chunk %d: %v", cc.next, err)
			}
			return errStop
		}
		return nil
	})
	if err != nil && err != errStop {
		return rep, fmt.Errorf("recorder: verify %s: %w", id, err)
	}
	rep.Chunks, rep.Events = int64(cc.next), cc.events

	switch {
	case sealBytes != nil:
		var se Seal
		if err := openSigned(s.keys, sealDomain, sealBytes, &se); err != nil {
			fail(-1, "the seal is invalid: %v", err)
			break
		}
		if rep.Problem != "" {
			break
		}
		if se.SessionID != id {
			fail(-1, "the seal belongs to another session")
			break
		}
		if se.Chunks > rep.Chunks {
			fail(rep.Chunks, "chunks %d to %d are missing (the seal covers %d)", rep.Chunks, se.Chunks-1, se.Chunks)
			break
		}
		if se.Chunks < rep.Chunks {
			fail(se.Chunks, "chunks %d to %d come after the seal: unverified (chunk %d was added after the seal)", se.Chunks, rep.Chunks-1, se.Chunks)
			break
		}
		if se.Head != hex.EncodeToString(cc.head[:]) || se.Events != rep.Events {
			fail(rep.Chunks-1, "the chain does not end where the seal says")
			break
		}
		if field := se.mismatch(info); field != "" && infoErr == nil {
			fail(-1, "the session record's %s differs from the seal", field)
			break
		}
		rep.Sealed = true
	case cpErr != nil:
		fail(-1, "the signed checkpoint does not verify: %v", cpErr)
	case hasCP && infoErr == nil && cp.metaMismatch(info):
		fail(-1, "the session record's metadata (user, target, start...) differs from the signed checkpoint")
	case hasCP:
		// Not sealed: the latest signed checkpoint covers the chain up
		// to its extent; anything after it is unverified.
		switch {
		case rep.Problem != "":
		case !cc.atSeen:
			fail(rep.Chunks, "chunks %d to %d are missing (the signed checkpoint covers %d)", rep.Chunks, cp.Chunks-1, cp.Chunks)
		case cc.atHead != cp.Head || cc.atEvents != cp.Events:
			fail(cp.Chunks-1, "chunk %d does not match the signed checkpoint: the recording was rewritten", cp.Chunks-1)
		case rep.Chunks > cp.Chunks:
			fail(cp.Chunks, "chunks %d to %d come after the last signed checkpoint: unverified", cp.Chunks, rep.Chunks-1)
		case info.Status != StatusLive:
			fail(-1, "the %s session has no seal (its chunks match the last signed checkpoint)", info.Status)
		}
	case rep.Chunks > 0:
		// Whatever the store says of when checkpoints began (its writer
		// can edit that): an unsealed recording without one is unverified.
		fail(0, "no signed checkpoint covers chunk 0: the recording is unverified")
	case info.Status == StatusLive:
		fail(-1, "no signed checkpoint covers the live session's record")
	default:
		fail(-1, "the %s session has no seal", info.Status)
	}
	if rep.Problem == "" && info.Status == StatusLive {
		// A record set live again, an earlier checkpoint put back and the
		// chunks after it deleted verify as a live session's start. The
		// audit log (chained, shipped to the sinks) says it ended.
		ended, err := s.endedInAudit([]SessionInfo{info})
		if err != nil {
			return rep, fmt.Errorf("recorder: verify %s: %w", id, err)
		}
		if e := ended[id]; e != "" {
			fail(-1, "the audit log says the session already ended (%s), but its record says live: its seal was removed from the store (or the end of the session was never stored)", e)
		}
	}
	rep.Intact = rep.Problem == ""
	return rep, nil
}
