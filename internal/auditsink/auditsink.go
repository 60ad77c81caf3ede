// Package auditsink ships the audit log off the box as it is written: every
// record, with the chain hash and the signed checkpoints, to sinks an
// operator already runs, a syslog server (RFC 5424, to rsyslog or journald)
// and an HTTPS webhook taking JSON lines (for a SIEM or a log shipper).
// Whoever later deletes the local log's tail cannot delete what the sinks
// hold, and `bastion verify --audit --against FILE` shows the difference.
//
// # Delivery
//
// The store's audit log is the spool. Each sink reads the records after the
// last one it delivered (its cursor, kept in the store), sends them in
// order, and moves its cursor only once the sink took them; a sink that
// fails is retried with backoff (up to MaxBackoff), reading on from its
// cursor, so an outage loses nothing and delivers everything in order when
// the sink is back. Shipping never holds up a session or an issuance: the
// audit record is committed locally first, and the shipper follows.
//
// A sink's backlog is bounded by its Spool: when it falls further behind
// than that (a sink gone for days), the oldest undelivered records are
// skipped and the sink receives a gap line naming them
// ({"gap":{"from":N,"to":M}}), so the receiver knows what it lacks, and the
// records stay in the local log.
//
// A webhook answers each batch (2xx, acknowledged). Syslog over TCP has no
// acknowledgement: records written to the socket just before the receiver
// dies can be lost, and syslog over UDP is best effort; a batch that failed
// is sent again, so a receiver may see a record twice (same sequence, same
// hash).
//
// # Several replicas
//
// Replicas sharing a PostgreSQL store share one audit log and, configured
// alike, the same sinks. Each sink is shipped by one replica at a time, its
// holder (a row in the store naming the replica and the sink's cursor): a
// replica claims the sink before every batch, which succeeds while it
// holds it, or when nobody does, or when the holder's lease expired (the
// holder died); it sends the batch and then moves the cursor, which only
// the holder can do, forward. A replica that stops releases its sinks, and
// another takes them over at its next claim (within a second); one that
// dies loses them when its lease expires (store.postgres.lease).
//
// The guarantee is at least once, in order, and what a receiver needs to
// de-duplicate: every record reaches each sink, and records reach it in
// sequence order except that a record can arrive again. A batch in flight
// when its holder dies, or takes longer than the holder's lease, is sent
// again by the next holder from the last cursor the first one saved, so a
// receiver can see records a second time, with the same sequence and hash
// (and, in the worst case, a stale copy after newer ones): keeping the
// first copy of each sequence gives the log exactly once and in order, and
// `bastion verify --audit --against` accepts repeats. Nothing is skipped:
// the cursor only moves after the sink took the records.
package auditsink

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"
)

// Feed is what the shipper reads: the store (recorder.Store).
type Feed interface {
	// AuditLines calls fn with the lines after record after, up to about
	// maxBytes, and returns the last record's sequence.
	AuditLines(after uint64, maxBytes int, fn func(line []byte) error) (uint64, error)
	AuditHead() (uint64, error)
	AuditNotify() <-chan struct{}
	// SinksShared reports whether other processes (replicas) ship from
	// the same log to the same sinks: the shipper then claims a sink
	// before every batch and ships only while it holds it.
	SinksShared() bool
	// ClaimSink makes this process the one shipping to the sink, if no
	// other does, and returns the sink's cursor (the last record it was
	// delivered); ok is false while another process holds the sink.
	ClaimSink(name string) (cursor uint64, ok bool, err error)
	// SetSinkCursor moves the sink's cursor (when shared, only while this
	// process holds the sink).
	SetSinkCursor(name string, seq uint64) error
	// ResetSinkCursor moves the sink's cursor back from from to to, if it
	// is still at from (when shared, only while this process holds it).
	ResetSinkCursor(name string, from, to uint64) error
	// ReleaseSink lets another process claim the sink at once.
	ReleaseSink(name string) error
}

// Sink delivers lines somewhere. Send delivers all of them, in order, or
// returns an error (the shipper sends them again).
type Sink interface {
	// Name is stable: the cursor is kept under it.
	Name() string
	Send(ctx context.Context, lines [][]byte) error
	Close() error
}

// Config configures a Shipper.
type Config struct {
	Feed  Feed   // required
	Sinks []Sink // none: the shipper does nothing
	// Spool bounds a sink's backlog, in bytes of records: a sink further
	// behind skips ahead and gets a gap line. Default 1 GiB.
	Spool int64
	// BatchBytes is how much one Send carries at most. Default 256 KiB.
	BatchBytes int
	// MinBackoff and MaxBackoff bound the wait between retries of a failed
	// sink. Defaults 500ms and 10s.
	MinBackoff, MaxBackoff time.Duration
	// Logger; nil discards.
	Logger *slog.Logger
}

// recordBytes is the size of an audit record assumed to turn Spool into a
// number of records.
const recordBytes = 512

// Shipper runs one goroutine per sink.
type Shipper struct {
	cfg    Config
	log    *slog.Logger
	cancel context.CancelFunc
	wg     sync.WaitGroup
	mu     sync.Mutex
	status map[string]Status
}

// Status is a sink's state, for metrics and `bastion audit sinks`.
type Status struct {
	Holding   bool      // this process ships to the sink (false: another replica does)
	Delivered uint64    // the last record delivered
	Failing   bool      // the last attempt failed
	LastError string    // why
	Since     time.Time // when the current failure began
}

// New checks cfg and returns a Shipper; Start runs it.
func New(cfg Config) (*Shipper, error) {
	if cfg.Feed == nil {
		return nil, errors.New("auditsink: Config.Feed is required")
	}
	if cfg.Spool == 0 {
		cfg.Spool = 1 << 30
	}
	if cfg.BatchBytes == 0 {
		cfg.BatchBytes = 256 << 10
	}
	if cfg.MinBackoff == 0 {
		cfg.MinBackoff = 500 * time.Millisecond
	}
	if cfg.MaxBackoff == 0 {
		cfg.MaxBackoff = 10 * time.Second
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Shipper{cfg: cfg, log: log, status: map[string]Status{}}, nil
}

// Start starts shipping to every sink.
func (s *Shipper) Start() {
	ctx, cancel := context.WithCancel(context.Background())
	s.cancel = cancel
	for _, sink := range s.cfg.Sinks {
		notify := s.cfg.Feed.AuditNotify()
		s.wg.Add(1)
		go func() {
			defer s.wg.Done()
			s.run(ctx, sink, notify)
		}()
	}
}

// Close stops shipping (what is not delivered is delivered at the next
// start) and closes the sinks.
func (s *Shipper) Close() error {
	if s.cancel != nil {
		s.cancel()
	}
	s.wg.Wait()
	var errs []error
	for _, sink := range s.cfg.Sinks {
		errs = append(errs, sink.Close())
	}
	return errors.Join(errs...)
}

// Status returns every sink's state.
func (s *Shipper) Status() map[string]Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]Status, len(s.status))
	for k, v := range s.status {
		out[k] = v
	}
	return out
}

func (s *Shipper) setStatus(name string, f func(*Status)) {
	s.mu.Lock()
	st := s.status[name]
	f(&st)
	s.status[name] = st
	s.mu.Unlock()
}

func (s *Shipper) run(ctx context.Context, sink Sink, notify <-chan struct{}) {
	name := sink.Name()
	log := s.log.With("sink", name)
	shared := s.cfg.Feed.SinksShared()
	backoff := s.cfg.MinBackoff
	maxLag := uint64(max(s.cfg.Spool/recordBytes, 1))
	tick := time.NewTicker(time.Second) // a notification is a hint; the log is the truth
	defer tick.Stop()
	wait := func() bool {
		select {
		case <-ctx.Done():
			return false
		case <-notify:
		case <-tick.C:
		}
		return true
	}
	var cursor uint64
	holding := false
	var saved time.Time
	dirty := false
	defer func() {
		if dirty {
			s.saveCursor(name, cursor, log)
		}
		if shared && holding {
			if err := s.cfg.Feed.ReleaseSink(name); err != nil {
				log.Warn("audit sink: release it to the other replicas", "err", err)
			}
		}
	}()
	// advance records that the sink took everything up to seq: shared,
	// at once (a replica taking over resends only what is in flight);
	// alone, at most once a second (each save is a commit; after a crash
	// the sink gets up to a second again).
	advance := func(seq uint64) {
		cursor = seq
		switch {
		case shared:
			s.saveCursor(name, cursor, log)
		case time.Since(saved) >= time.Second:
			s.saveCursor(name, cursor, log)
			saved, dirty = time.Now(), false
		default:
			dirty = true
		}
	}
	for {
		// Alone, the cursor is read once; shared, the sink is claimed
		// before every batch, and the store's cursor is the truth.
		if shared || !holding {
			c, ok, err := s.cfg.Feed.ClaimSink(name)
			if err != nil {
				// The store is unreadable: try again rather than resend all.
				log.Error("audit sink: read its cursor", "err", err)
				if !sleep(ctx, s.cfg.MaxBackoff) {
					return
				}
				continue
			}
			if !ok {
				if holding {
					log.Info("audit sink: another replica ships to it now")
				}
				holding = false
				s.setStatus(name, func(st *Status) { *st = Status{Delivered: st.Delivered} })
				if !wait() {
					return
				}
				continue
			}
			if shared && !holding {
				log.Info("audit sink: this replica ships to it", "from", c+1)
			}
			holding, cursor = true, c
			s.setStatus(name, func(st *Status) { st.Holding, st.Delivered = true, c })
		}
		head, err := s.cfg.Feed.AuditHead()
		if err == nil && cursor > head {
			// The cursor lives in the store beside the log, and nothing
			// legitimate moves it past the head: someone who can write the
			// store did, so that what is written next stays on the box
			// (or the log's tail was deleted). Tell the sink and send
			// again from the start, within the spool's bound.
			line := []byte(fmt.Sprintf(`{"cursor_ahead":{"cursor":%d,"head":%d}}`, cursor, head))
			if err := sink.Send(ctx, [][]byte{line}); err != nil {
				if !sleep(ctx, backoff) {
					return
				}
				continue
			}
			log.Error("audit sink: its cursor in the store is past the audit log's head (the store was altered); sending again from the start", "cursor", cursor, "head", head)
			if err := s.cfg.Feed.ResetSinkCursor(name, cursor, 0); err != nil {
				log.Error("audit sink: reset its cursor", "err", err)
				if !sleep(ctx, s.cfg.MaxBackoff) {
					return
				}
				holding = false // claim it again: the store's cursor is the truth
				continue
			}
			cursor, dirty = 0, false
			continue
		}
		if err == nil && head > cursor+maxLag {
			gap := []byte(fmt.Sprintf(`{"gap":{"from":%d,"to":%d}}`, cursor+1, head-maxLag))
			if err := sink.Send(ctx, [][]byte{gap}); err == nil {
				log.Warn("audit sink fell behind its spool; skipped records", "from", cursor+1, "to", head-maxLag)
				advance(head - maxLag)
				continue
			}
		}
		var lines [][]byte
		last, err := s.cfg.Feed.AuditLines(cursor, s.cfg.BatchBytes, func(line []byte) error {
			lines = append(lines, line)
			return nil
		})
		if err != nil {
			log.Error("audit sink: read the audit log", "err", err)
		}
		if len(lines) == 0 {
			if dirty {
				s.saveCursor(name, cursor, log)
				saved, dirty = time.Now(), false
			}
			if !wait() {
				return
			}
			continue
		}
		if err := sink.Send(ctx, lines); err != nil {
			if ctx.Err() != nil {
				return
			}
			var first bool
			s.setStatus(name, func(st *Status) {
				first = !st.Failing
				if first {
					st.Since = time.Now()
				}
				st.Failing, st.LastError = true, err.Error()
			})
			if first {
				log.Warn("audit sink unavailable; retrying, nothing is lost", "err", err)
			}
			if !sleep(ctx, backoff) {
				return
			}
			backoff = min(backoff*2, s.cfg.MaxBackoff)
			continue
		}
		if backoff != s.cfg.MinBackoff {
			log.Info("audit sink back", "delivered_from", cursor+1)
		}
		backoff = s.cfg.MinBackoff
		s.setStatus(name, func(st *Status) { st.Delivered, st.Failing, st.LastError = last, false, "" })
		advance(last)
	}
}

func (s *Shipper) saveCursor(name string, seq uint64, log *slog.Logger) {
	if err := s.cfg.Feed.SetSinkCursor(name, seq); err != nil {
		// Only costs a resend of what was delivered since the last save.
		log.Warn("audit sink: save cursor", "err", err)
	}
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
