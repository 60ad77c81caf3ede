package recorder

import (
	"bytes"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/klauspost/compress/zstd"
	"github.com/oklog/ulid/v2"
)

// metaCheckpointsSince is when this store began to write signed session
// checkpoints: a session that started later must have them.
const metaCheckpointsSince = "checkpoints_since"

// Store is the recording store: the one owner of its backend (the bbolt
// file, or this replica's connections to PostgreSQL).
type Store struct {
	cfg     Config
	b       Backend
	pg      *pgBackend // the backend when it is PostgreSQL; nil with bbolt
	replica string     // this replica's ID in a shared backend; "" with bbolt
	log     *slog.Logger
	// clockOffset is the database's clock minus cfg.Now's, in
	// nanoseconds (PostgreSQL: measured at open and every lease renewal;
	// 0 with bbolt); clockWarned, that a warning about it stands.
	clockOffset atomic.Int64
	clockWarned bool

	closeMu sync.RWMutex // held shared by public operations, exclusively by Close
	closed  bool

	mu      sync.Mutex            // guards active, dirty, flushed
	active  map[string]*Recording // recordings not yet ended
	dirty   []*Recording          // recordings with something to flush
	flushed chan struct{}         // closed and replaced after every flush

	kick     chan struct{} // asks the flusher for an early flush
	stop     chan struct{} // closed by Close
	done     chan struct{} // closed when the flusher has exited
	closedCh chan struct{} // closed when the final flush is done

	uncommitted atomic.Int64 // event bytes buffered across all sessions
	auditDirty  atomic.Bool  // audit records since the last checkpoint

	auditQ    chan *auditReq // Audit's requests, committed by auditLoop
	auditDone chan struct{}  // closed when auditLoop has exited
	laterMu   sync.Mutex
	later     []AuditEvent // AuditLater's records, committed by the flusher

	idMu    sync.Mutex
	entropy io.Reader

	revMu       sync.RWMutex
	revoked     map[uint64]struct{}
	userRevoked map[string]time.Time // user -> everything they held up to then is revoked

	bufPool sync.Pool     // *[]byte with capacity >= chunkHeaderLen+SessionBuffer
	valPool sync.Pool     // *[]byte: encoded chunk values, the same capacity
	zenc    *zstd.Encoder // compresses chunks; used by the flusher
	signer  *sealSigner   // signs seals and checkpoints
	keys    sealKeys      // verify them: the seal key, then previous ones
	cpSince time.Time     // when the store began writing checkpoints: informational only (its writer can edit it)
	// tokensSwept is when expired token keys were last forgotten (the
	// audit loop's own).
	tokensSwept time.Time
	auditFault  atomic.Pointer[error] // FailAuditForTest
	jr          *journalState         // the audit journal (bbolt stores only)
	auditSubsMu sync.Mutex
	auditSubs   []chan struct{} // told after commits that appended audit records

	clusterDone chan struct{} // closed when clusterLoop has exited (PostgreSQL)

	// flushHook, set by tests, runs inside every flush transaction; an
	// error from it fails the transaction.
	flushHook atomic.Pointer[func() error]
	// crashed, set by tests, makes Close stop as a crash would: no final
	// flush, no recording ended, the lease not given up.
	crashed atomic.Bool

	closeOnce sync.Once
	closeErr  error

	readOnly bool // OpenReadOnly: reads only, no flusher, no audit loop
}

// Open opens the store: the bbolt file at cfg.Path (created if needed), or
// the PostgreSQL database cfg.Postgres names (its schema created or
// migrated). It marks sessions left live by a crash (with PostgreSQL: by a
// replica whose lease expired) as interrupted and seals them, loads the
// revocations and starts the flusher.
func Open(cfg Config) (*Store, error) {
	cfg, err := cfg.check()
	if err != nil {
		return nil, err
	}
	s := &Store{
		cfg:         cfg,
		log:         cfg.Logger,
		active:      make(map[string]*Recording),
		flushed:     make(chan struct{}),
		kick:        make(chan struct{}, 1),
		stop:        make(chan struct{}),
		done:        make(chan struct{}),
		closedCh:    make(chan struct{}),
		auditQ:      make(chan *auditReq),
		auditDone:   make(chan struct{}),
		entropy:     ulid.Monotonic(rand.Reader, 0),
		revoked:     make(map[uint64]struct{}),
		userRevoked: make(map[string]time.Time),
		zenc:        newZstdEncoder(),
	}
	s.signer, _ = newSealSigner(cfg.SealKey) // checked by cfg.check
	s.keys = sealKeys{s.signer.sealPublic}
	for _, k := range cfg.PreviousSealKeys {
		p, _ := newSealPublic(k)
		s.keys = append(s.keys, p)
	}
	if cfg.Postgres != nil {
		replica, err := s.newID(cfg.Now())
		if err != nil {
			return nil, err
		}
		s.pg, err = openPostgres(*cfg.Postgres, replica, cfg.Logger)
		if err != nil {
			return nil, err
		}
		s.b, s.replica = s.pg, replica
		s.measureClock()
	} else {
		b, err := openBolt(cfg.Path, cfg.OpenTimeout, cfg.Now)
		if err != nil {
			return nil, err
		}
		s.b = b
	}
	// The audit records a crash left in the journal go into the audit log
	// before the recovery reads it: one of them may say that a session
	// found live had ended, which its recovery must know.
	if s.pg == nil && !cfg.noJournal {
		if err := s.openAuditJournal(); err != nil {
			s.b.Close()
			return nil, err
		}
	}
	if err := s.init(); err != nil {
		if s.pg != nil {
			s.pg.leave()
		}
		if s.jr != nil {
			s.closeJournal()
		}
		s.b.Close()
		return nil, err
	}
	go s.run()
	go s.auditLoop()
	if s.pg != nil {
		s.clusterDone = make(chan struct{})
		go s.clusterLoop()
	}
	return s, nil
}

// where names the store in errors: the file, or the database.
func (s *Store) where() string {
	if s.pg != nil {
		return "the PostgreSQL store"
	}
	return s.cfg.Path
}

func (s *Store) init() error {
	err := s.b.Update(func(tx Tx) error {
		// When this store began writing signed checkpoints, for people
		// reading the file; verify and the recovery do not trust it (the
		// store's writer can edit it), so an older session left unsealed
		// by a crash is not sealed without a checkpoint.
		if v, err := tx.Meta(metaMigrating); err != nil {
			return err
		} else if len(v) > 0 {
			return fmt.Errorf("%w: bastion store migrate did not finish copying into this database: drop it and run the migration again", ErrBroken)
		}
		since, err := tx.Meta(metaCheckpointsSince)
		if err != nil {
			return err
		}
		if since != nil {
			t, err := time.Parse(time.RFC3339Nano, string(since))
			if err != nil {
				return fmt.Errorf("%w: unreadable %s in the store's metadata", ErrBroken, metaCheckpointsSince)
			}
			s.cpSince = t
			return nil
		}
		s.cpSince = s.cfg.Now().UTC()
		return tx.SetMeta(metaCheckpointsSince, []byte(s.cpSince.Format(time.RFC3339Nano)))
	})
	if err != nil {
		return fmt.Errorf("recorder: init %s: %w", s.where(), err)
	}
	if err := s.recoverOrphans(); err != nil {
		return err
	}
	if err := s.loadRevocations(); err != nil {
		return fmt.Errorf("recorder: load revocations: %w", err)
	}
	return nil
}

// loadRevocations reads every revoked serial into memory (IsRevoked reads
// memory; with PostgreSQL the cluster loop calls this again when another
// replica revokes).
func (s *Store) loadRevocations() error {
	m := make(map[uint64]struct{})
	users := make(map[string]time.Time)
	err := s.b.View(func(tx Tx) error {
		clear(m)
		clear(users)
		if err := tx.Revocations(func(r Revocation) error {
			m[r.Serial] = struct{}{}
			return nil
		}); err != nil {
			return err
		}
		return tx.UserRevocations(func(r Revocation) error {
			users[r.User] = r.Time
			return nil
		})
	})
	if err != nil {
		return err
	}
	// Merged into what is in memory, not put in its place: a reload that
	// read the store just before this replica's own revocation committed
	// must not forget it until the next one. (Revocations are never taken
	// back; one deleted from the database still holds here until restart.)
	s.revMu.Lock()
	for serial := range m {
		s.revoked[serial] = struct{}{}
	}
	for user, at := range users {
		if at.After(s.userRevoked[user]) {
			s.userRevoked[user] = at
		}
	}
	s.revMu.Unlock()
	return nil
}

// recoverOrphans marks live sessions that no running replica owns (with
// bbolt: every one, left over from a crash) as interrupted, and seals what
// was committed.
func (s *Store) recoverOrphans() error {
	var orphans []SessionInfo
	err := s.b.View(func(tx Tx) error {
		var err error
		orphans, err = tx.Orphans()
		return err
	})
	if err != nil {
		return fmt.Errorf("recorder: recover: %w", err)
	}
	if len(orphans) == 0 {
		return nil
	}
	ended, err := s.endedInAudit(orphans)
	if err != nil {
		return fmt.Errorf("recorder: recover: %w", err)
	}
	for _, info := range orphans {
		if err := s.recoverSession(info.ID, ended[info.ID]); err != nil {
			return fmt.Errorf("recorder: recover session %s: %w", info.ID, err)
		}
	}
	return nil
}

// endedTypes are the audit records that say a session ended: the bastion's
// own at its end, and the recovery's.
var endedTypes = map[string]bool{"session.end": true, "forward.end": true, "session.interrupted": true}

// endedInAudit returns, for the sessions among orphans that the audit log
// says already ended, the record that says so. A session that ended was
// sealed then; one found live again was set so in the store, by someone
// who can then put back an earlier signed checkpoint of it and delete the
// chunks after it, and whom the recovery, sealing up to that checkpoint,
// would otherwise sign a shortened recording for. The audit log is
// chained and shipped to the sinks: the record cannot go without that
// showing. The whole log is read, once, and only when there are orphans.
func (s *Store) endedInAudit(orphans []SessionInfo) (map[string]string, error) {
	// Every record journaled so far first: the session's end is audited
	// as it ends, and applied to the log within applyEvery.
	if err := s.syncAudit(); err != nil {
		return nil, err
	}
	want := make(map[string]bool, len(orphans))
	for _, info := range orphans {
		want[info.ID] = true
	}
	ended := map[string]string{}
	key := []byte(`,"session_id":"`)
	err := s.scan(1, scanRecords, Tx.Audit, func(seq uint64, v []byte) error {
		if seq == ^uint64(0) {
			return nil
		}
		i := bytes.Index(v, key)
		if i < 0 {
			return nil
		}
		rest := v[i+len(key):]
		j := bytes.IndexByte(rest, '"')
		if j < 0 || !want[string(rest[:j])] {
			return nil
		}
		var rec struct {
			Event struct {
				Type      string `json:"type"`
				SessionID string `json:"session_id"`
			} `json:"event"`
		}
		if json.Unmarshal(v, &rec) != nil || !want[rec.Event.SessionID] || !endedTypes[rec.Event.Type] {
			return nil
		}
		if _, ok := ended[rec.Event.SessionID]; !ok {
			ended[rec.Event.SessionID] = fmt.Sprintf("%s, audit record %d", rec.Event.Type, seq)
		}
		return nil
	})
	return ended, err
}

// recoverSession marks one orphaned live session interrupted and seals what
// the last signed checkpoint covers; ended names the audit record that says
// the session already ended, if any, and then nothing is sealed.
func (s *Store) recoverSession(id, ended string) error {
	now := s.cfg.Now()
	var info SessionInfo
	recovered := false
	err := s.b.Update(func(tx Tx) error {
		recovered = false
		var err error
		info, err = tx.Session(id) // locked until the commit
		if err != nil || info.Status != StatusLive {
			return err // another replica recovered it first
		}
		cpBytes, err := tx.Checkpoint(id)
		if err != nil {
			return err
		}
		cp, hasCP, cpErr := s.openStoredCheckpoint(id, cpBytes)
		cc := newChainChecker(id)
		if hasCP && cpErr == nil {
			cc.checkAt(cp.Chunks)
		}
		var broken error
		err = tx.Chunks(id, 0, 0, func(seq uint64, v []byte) error {
			if _, err := cc.check(seq, v, nil); err != nil {
				broken = err
				return errStop
			}
			return nil
		})
		if err != nil && err != errStop {
			return err
		}
		info.Status = StatusInterrupted
		info.End = info.Start.Add(time.Duration(cc.last) * time.Microsecond)
		if info.Error == "" {
			info.Error = "the bastion stopped while the session was live"
			if s.pg != nil {
				info.Error = "the bastion replica recording it stopped while the session was live (its lease expired)"
			}
		}
		// Seal only what a signature already covers: the chunks up to the
		// last signed checkpoint (the flusher writes it with the chunks).
		// A chain rebuilt without the seal key does not match it and is
		// not sealed.
		seal := false
		head, chunks, events := cc.head, int64(cc.next), cc.events
		switch {
		case ended != "":
			info.Error = fmt.Sprintf("the audit log says the session already ended (%s), but its record said live: its seal was removed from the store (or the end of the session was never stored); not sealed", ended)
		case cpErr != nil:
			info.Error = fmt.Sprintf("the signed checkpoint does not verify (%v): the recording is not sealed", cpErr)
		case hasCP && cp.metaMismatch(info):
			info.Error = "the session record's metadata (user, target, start...) differs from the signed checkpoint: the record was edited; not sealed"
		case hasCP && !cc.atSeen:
			info.Error = fmt.Sprintf("recording damaged at chunk %d, before the end of the signed checkpoint (chunk %d): not sealed", cc.next, cp.Chunks-1)
		case hasCP && (cc.atHead != cp.Head || cc.atEvents != cp.Events):
			info.Error = fmt.Sprintf("chunk %d does not match the signed checkpoint: the recording was rewritten; not sealed", cp.Chunks-1)
		case hasCP:
			seal, head, chunks, events = true, cp.Head, cp.Chunks, cp.Events
			if int64(cc.next) > cp.Chunks || broken != nil {
				info.Error = fmt.Sprintf("chunks from %d on come after the last signed checkpoint: sealed up to chunk %d", cp.Chunks, cp.Chunks-1)
			}
		case cc.next > 0 || broken != nil:
			// Even a session recorded before checkpoints existed (format
			// 1) is not sealed as it stands: what tells such a session
			// from a forgery rebuilt in format 1 with its checkpoint
			// deleted is only in the store, which its writer can edit.
			info.Error = "no signed checkpoint covers the recording: not sealed"
		default:
			info.Error = "no signed checkpoint covers the session record: not sealed"
		}
		if seal {
			info.Events, info.Chunks = events, chunks
		}
		if err := tx.PutSession(info); err != nil {
			return err
		}
		if seal {
			sealed, err := sign(s.signer, sealDomain, newSeal(info, head, now))
			if err != nil {
				return err
			}
			if err := tx.PutSeal(id, sealed); err != nil {
				return err
			}
		}
		_, err = s.appendAudit(tx, AuditEvent{
			Type: "session.interrupted", User: info.User, SessionID: info.ID, Target: info.Target,
			Outcome: StatusInterrupted, Reason: info.Error,
		})
		recovered = err == nil
		return err
	})
	if err != nil {
		return err
	}
	if recovered {
		s.log.Warn("recorder: marked an interrupted session", "session_id", info.ID, "events", info.Events, "replica", info.Replica)
	}
	return nil
}

// Close flushes everything, marks recordings that were not ended as
// interrupted (and seals them), and closes the backend. Writers blocked on
// backpressure return ErrClosed.
func (s *Store) Close() error {
	if s.readOnly {
		s.closeOnce.Do(func() {
			s.closeMu.Lock()
			s.closed = true
			s.closeMu.Unlock()
			if err := s.b.Close(); err != nil {
				s.closeErr = fmt.Errorf("recorder: close: %w", err)
			}
		})
		return s.closeErr
	}
	s.closeOnce.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()
		close(s.stop)
		<-s.done
		<-s.auditDone
		if err := s.closeJournal(); err != nil {
			s.closeErr = fmt.Errorf("recorder: close the audit journal: %w", err)
		}
		if s.clusterDone != nil {
			<-s.clusterDone
			if !s.crashed.Load() {
				s.pg.leave() // gives up the lease: nothing of ours is live any more
			}
		}
		close(s.closedCh)
		if err := s.b.Close(); err != nil && s.closeErr == nil {
			s.closeErr = fmt.Errorf("recorder: close: %w", err)
		}
	})
	return s.closeErr
}

// enter marks the start of a public operation; it fails once Close began.
func (s *Store) enter() error {
	s.closeMu.RLock()
	if s.closed {
		s.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (s *Store) leave() { s.closeMu.RUnlock() }

// view runs a read transaction unless the store is closing. Operations that
// call back into their caller (Events, Export, AuditEvents) use one view per
// batch, so a slow consumer never delays Close.
func (s *Store) view(fn func(Tx) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.b.View(fn)
}

// update runs a read-write transaction unless the store is closing.
func (s *Store) update(fn func(Tx) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.b.Update(fn)
}

// newID returns a fresh ULID for time t.
func (s *Store) newID(t time.Time) (string, error) {
	s.idMu.Lock()
	defer s.idMu.Unlock()
	id, err := ulid.New(ulid.Timestamp(t), s.entropy)
	if err != nil {
		return "", fmt.Errorf("recorder: new ID: %w", err)
	}
	return id.String(), nil
}

// validID reports whether id is acceptable as a session ID: 1 to 64 ASCII
// letters, digits, '-' or '_'. Everything that names a session comes from
// outside, so anything else is refused before it reaches a key or a log.
func validID(id string) bool {
	if len(id) == 0 || len(id) > 64 {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || c == '-' || c == '_') {
			return false
		}
	}
	return true
}

// quoteID formats an outside ID for an error message, bounded and escaped.
func quoteID(id string) string {
	if len(id) > 80 {
		id = id[:80] + "..."
	}
	return fmt.Sprintf("%q", id)
}

// Batch sizes of scan: how many chunks, or audit records, one read
// transaction returns at most, and how many bytes it copies out.
const (
	scanChunks     = 16
	scanRecords    = 4096
	scanBatchBytes = 4 << 20
)

// scan calls fn with copies of the (sequence, value) pairs that read yields
// from sequence from on, reading in batches of at most limit pairs (and
// about scanBatchBytes), so that no read transaction (nor the store's close
// lock) is held while fn runs. v is valid only until fn returns.
func (s *Store) scan(from uint64, limit int, read func(tx Tx, from uint64, limit int, fn func(uint64, []byte) error) error, fn func(seq uint64, v []byte) error) error {
	type kv struct {
		seq uint64
		v   []byte
	}
	var (
		batch []kv
		arena []byte
		next  = from
	)
	for {
		batch, arena = batch[:0], arena[:0]
		more := false
		err := s.view(func(tx Tx) error {
			batch, arena, more = batch[:0], arena[:0], false
			err := read(tx, next, limit, func(seq uint64, v []byte) error {
				if len(batch) > 0 && len(arena)+len(v) > scanBatchBytes {
					more = true
					return errBatchFull
				}
				off := len(arena)
				arena = append(arena, v...)
				batch = append(batch, kv{seq: seq, v: arena[off:len(arena):len(arena)]})
				return nil
			})
			if err == errBatchFull {
				return nil
			}
			if err == nil && len(batch) == limit {
				more = true
			}
			return err
		})
		if err != nil {
			return err
		}
		for _, e := range batch {
			if err := fn(e.seq, e.v); err != nil {
				return err
			}
		}
		if !more || len(batch) == 0 || batch[len(batch)-1].seq == ^uint64(0) {
			return nil
		}
		next = batch[len(batch)-1].seq + 1
	}
}

var (
	errStop      = errors.New("stop")
	errBatchFull = errors.New("batch full")
)
