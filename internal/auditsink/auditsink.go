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
	SinkCursor(name string) (uint64, error)
	SetSinkCursor(name string, seq uint64) error
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
	cursor, err := s.cfg.Feed.SinkCursor(name)
	for err != nil {
		// The store is unreadable: try again rather than resend all.
		log.Error("audit sink: read cursor", "err", err)
		if !sleep(ctx, s.cfg.MaxBackoff) {
			return
		}
		cursor, err = s.cfg.Feed.SinkCursor(name)
	}
	s.setStatus(name, func(st *Status) { st.Delivered = cursor })
	backoff := s.cfg.MinBackoff
	maxLag := uint64(max(s.cfg.Spool/recordBytes, 1))
	tick := time.NewTicker(time.Second) // a notification is a hint; the log is the truth
	defer tick.Stop()
	var saved time.Time
	dirty := false
	defer func() {
		if dirty {
			s.saveCursor(name, cursor, log)
		}
	}()
	for {
		if head, err := s.cfg.Feed.AuditHead(); err == nil && head > cursor+maxLag {
			gap := []byte(fmt.Sprintf(`{"gap":{"from":%d,"to":%d}}`, cursor+1, head-maxLag))
			if err := sink.Send(ctx, [][]byte{gap}); err == nil {
				log.Warn("audit sink fell behind its spool; skipped records", "from", cursor+1, "to", head-maxLag)
				cursor, dirty = head-maxLag, true
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
			select {
			case <-ctx.Done():
				return
			case <-notify:
			case <-tick.C:
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
		cursor = last
		s.setStatus(name, func(st *Status) { st.Delivered, st.Failing, st.LastError = cursor, false, "" })
		// The cursor is saved at most once a second (each save is a
		// commit); after a crash the sink gets up to a second again.
		if time.Since(saved) >= time.Second {
			s.saveCursor(name, cursor, log)
			saved = time.Now()
		} else {
			dirty = true
		}
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
