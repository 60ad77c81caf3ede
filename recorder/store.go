package recorder

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
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
	bolt "go.etcd.io/bbolt"
)

// Buckets of the bbolt file.
var (
	bucketMeta        = []byte("meta")                // "format" -> storeFormat
	bucketSessions    = []byte("sessions")            // session ID -> SessionInfo JSON
	bucketByStart     = []byte("sessions_by_start")   // start (8 bytes) + ID -> nothing
	bucketChunks      = []byte("chunks")              // session ID + 0 + seq (8 bytes) -> chunk
	bucketSeals       = []byte("seals")               // session ID -> signed Seal
	bucketAudit       = []byte("audit")               // seq (8 bytes) -> auditRecord JSON
	bucketCheckpoints = []byte("audit_checkpoints")   // seq (8 bytes) -> signed checkpoint
	bucketRevocations = []byte("revocations")         // serial (8 bytes) -> Revocation JSON
	bucketHostKeys    = []byte("host_keys")           // target -> pinned key
	bucketSessionCPs  = []byte("session_checkpoints") // session ID -> its latest signed Checkpoint (a note)
	bucketTokensByExp = []byte("used_tokens")         // expiry (8 bytes, unix ns) + one-time token key -> nothing
	allBuckets        = [][]byte{bucketMeta, bucketSessions, bucketByStart, bucketChunks, bucketSeals,
		bucketAudit, bucketCheckpoints, bucketRevocations, bucketHostKeys, bucketSessionCPs,
		bucketTokensByExp}
)

const storeFormat = "bastion-recorder-1"

// metaCheckpointsSince is when this store began to write signed session
// checkpoints: a session that started later must have them.
var metaCheckpointsSince = []byte("checkpoints_since")

// Store is the recording store: the one owner of the bbolt file.
type Store struct {
	cfg Config
	db  *bolt.DB
	log *slog.Logger

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

	revMu   sync.RWMutex
	revoked map[uint64]struct{}

	bufPool sync.Pool     // *[]byte with capacity >= chunkHeaderLen+SessionBuffer
	valPool sync.Pool     // *[]byte: encoded chunk values, the same capacity
	zenc    *zstd.Encoder // compresses chunks; used by the flusher
	signer  *sealSigner   // signs seals and checkpoints
	keys    sealKeys      // verify them: the seal key, then previous ones
	cpSince time.Time     // sessions started at or after this have checkpoints
	// tokensSwept is when expired token keys were last forgotten (the
	// audit loop's own).
	tokensSwept time.Time
	usedTokens  map[string]int64      // one-time token key -> expiry (unix ns); the audit loop's own
	auditFault  atomic.Pointer[error] // FailAuditForTest
	auditSubsMu sync.Mutex
	auditSubs   []chan struct{} // told after commits that appended audit records

	// flushHook, set by tests, runs inside every flush transaction; an
	// error from it fails the transaction.
	flushHook atomic.Pointer[func() error]

	closeOnce sync.Once
	closeErr  error
}

// Open opens (creating if needed) the store at cfg.Path. It marks sessions
// left live by a crash as interrupted and seals them, loads the revocations
// and starts the flusher.
func Open(cfg Config) (*Store, error) {
	cfg, err := cfg.check()
	if err != nil {
		return nil, err
	}
	db, err := bolt.Open(cfg.Path, 0o600, &bolt.Options{
		Timeout:      cfg.OpenTimeout,
		FreelistType: bolt.FreelistMapType,
	})
	if err != nil {
		return nil, fmt.Errorf("recorder: open %s: %w", cfg.Path, err)
	}
	s := &Store{
		cfg:        cfg,
		db:         db,
		log:        cfg.Logger,
		active:     make(map[string]*Recording),
		flushed:    make(chan struct{}),
		kick:       make(chan struct{}, 1),
		stop:       make(chan struct{}),
		done:       make(chan struct{}),
		closedCh:   make(chan struct{}),
		auditQ:     make(chan *auditReq),
		auditDone:  make(chan struct{}),
		entropy:    ulid.Monotonic(rand.Reader, 0),
		revoked:    make(map[uint64]struct{}),
		zenc:       newZstdEncoder(),
		usedTokens: make(map[string]int64),
	}
	s.signer, _ = newSealSigner(cfg.SealKey) // checked by cfg.check
	s.keys = sealKeys{s.signer.sealPublic}
	for _, k := range cfg.PreviousSealKeys {
		p, _ := newSealPublic(k)
		s.keys = append(s.keys, p)
	}
	if err := s.init(); err != nil {
		db.Close()
		return nil, err
	}
	go s.run()
	go s.auditLoop()
	return s, nil
}

func (s *Store) init() error {
	err := s.db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		meta := tx.Bucket(bucketMeta)
		switch f := meta.Get([]byte("format")); {
		case f == nil:
			if err := meta.Put([]byte("format"), []byte(storeFormat)); err != nil {
				return err
			}
		case string(f) != storeFormat:
			return fmt.Errorf("%w: unknown store format %q", ErrConfig, f)
		}
		// Sessions that start from now on are covered by signed
		// checkpoints; older ones (chunk format 1) are sealed as before.
		if since := meta.Get(metaCheckpointsSince); since != nil {
			t, err := time.Parse(time.RFC3339Nano, string(since))
			if err != nil {
				return fmt.Errorf("%w: unreadable %s in the store's metadata", ErrBroken, metaCheckpointsSince)
			}
			s.cpSince = t
			return nil
		}
		s.cpSince = s.cfg.Now().UTC()
		return meta.Put(metaCheckpointsSince, []byte(s.cpSince.Format(time.RFC3339Nano)))
	})
	if err != nil {
		return fmt.Errorf("recorder: init %s: %w", s.cfg.Path, err)
	}
	if err := s.recoverLive(); err != nil {
		return err
	}
	err = s.db.View(func(tx *bolt.Tx) error {
		s.loadTokens(tx)
		return tx.Bucket(bucketRevocations).ForEach(func(k, _ []byte) error {
			if len(k) == 8 {
				s.revoked[binary.BigEndian.Uint64(k)] = struct{}{}
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("recorder: load revocations: %w", err)
	}
	return nil
}

// recoverLive marks sessions still "live" in the file, which can only be
// left over from a crash, as interrupted, and seals what was committed.
func (s *Store) recoverLive() error {
	var live []SessionInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketSessions).ForEach(func(k, v []byte) error {
			var info SessionInfo
			if err := json.Unmarshal(v, &info); err != nil {
				s.log.Error("recorder: unreadable session record", "session_id", string(k), "err", err)
				return nil
			}
			if info.Status == StatusLive {
				live = append(live, info)
			}
			return nil
		})
	})
	if err != nil {
		return fmt.Errorf("recorder: recover: %w", err)
	}
	now := s.cfg.Now()
	for _, info := range live {
		err := s.db.Update(func(tx *bolt.Tx) error {
			cp, hasCP, cpErr := s.readCheckpoint(tx, info.ID)
			cc := newChainChecker(info.ID)
			if hasCP && cpErr == nil {
				cc.at = cp.Chunks
			}
			var broken error
			c := tx.Bucket(bucketChunks).Cursor()
			prefix := chunkPrefix(info.ID)
			for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if _, err := cc.check(k, v, nil); err != nil {
					broken = err
					break
				}
			}
			info.Status = StatusInterrupted
			info.End = info.Start.Add(time.Duration(cc.last) * time.Microsecond)
			if info.Error == "" {
				info.Error = "the bastion stopped while the session was live"
			}
			// Seal only what a signature already covers: the chunks up
			// to the last signed checkpoint (the flusher writes it with
			// the chunks). A chain rebuilt without the seal key does not
			// match it and is not sealed.
			seal := false
			head, chunks, events := cc.head, int64(cc.next), cc.events
			switch {
			case cpErr != nil:
				info.Error = fmt.Sprintf("the signed checkpoint does not verify (%v): the recording is not sealed", cpErr)
			case hasCP && !cc.atSeen:
				info.Error = fmt.Sprintf("recording damaged at chunk %d, before the end of the signed checkpoint (chunk %d): not sealed", cc.next, cp.Chunks-1)
			case hasCP && (cc.atHead != cp.Head || cc.atEvents != cp.Events):
				info.Error = fmt.Sprintf("chunk %d does not match the signed checkpoint: the recording was rewritten; not sealed", cp.Chunks-1)
			case hasCP:
				seal, head, chunks, events = true, cp.Head, cp.Chunks, cp.Events
				if int64(cc.next) > cp.Chunks || broken != nil {
					info.Error = fmt.Sprintf("chunks from %d on come after the last signed checkpoint: sealed up to chunk %d", cp.Chunks, cp.Chunks-1)
				}
			case s.needsCheckpoint(info, cc.v2) && (cc.next > 0 || broken != nil):
				info.Error = "no signed checkpoint covers the recording: not sealed"
			case broken != nil:
				info.Error = fmt.Sprintf("recording damaged at chunk %d: %v", cc.next, broken)
			default:
				seal = true // written before checkpoints: sealed as it stands
			}
			if seal {
				info.Events, info.Chunks = events, chunks
			}
			if err := putSession(tx, info); err != nil {
				return err
			}
			if seal {
				sealed, err := sign(s.signer, sealDomain, newSeal(info, head, now))
				if err != nil {
					return err
				}
				if err := tx.Bucket(bucketSeals).Put([]byte(info.ID), sealed); err != nil {
					return err
				}
			}
			_, err := s.appendAudit(tx, AuditEvent{
				Type: "session.interrupted", User: info.User, SessionID: info.ID, Target: info.Target,
				Outcome: StatusInterrupted, Reason: info.Error,
			})
			return err
		})
		if err != nil {
			return fmt.Errorf("recorder: recover session %s: %w", info.ID, err)
		}
		s.log.Warn("recorder: marked an interrupted session", "session_id", info.ID, "events", info.Events)
	}
	return nil
}

// Close flushes everything, marks recordings that were not ended as
// interrupted (and seals them), and closes the file. Writers blocked on
// backpressure return ErrClosed.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		s.closeMu.Lock()
		s.closed = true
		s.closeMu.Unlock()
		close(s.stop)
		<-s.done
		<-s.auditDone
		close(s.closedCh)
		if err := s.db.Close(); err != nil {
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
func (s *Store) view(fn func(*bolt.Tx) error) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.db.View(fn)
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

func startKey(t time.Time, id string) []byte {
	k := make([]byte, 8, 8+len(id))
	binary.BigEndian.PutUint64(k, uint64(t.UnixNano())^(1<<63)) // sorts signed times
	return append(k, id...)
}

func putSession(tx *bolt.Tx, info SessionInfo) error {
	v, err := json.Marshal(info)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketSessions).Put([]byte(info.ID), v)
}

func getSession(tx *bolt.Tx, id string) (SessionInfo, error) {
	var info SessionInfo
	v := tx.Bucket(bucketSessions).Get([]byte(id))
	if v == nil {
		return info, fmt.Errorf("recorder: session %s: %w", quoteID(id), ErrNotFound)
	}
	if err := json.Unmarshal(v, &info); err != nil {
		return info, fmt.Errorf("recorder: session %s: %w: unreadable record: %v", quoteID(id), ErrBroken, err)
	}
	return info, nil
}

func u64key(n uint64) []byte { return binary.BigEndian.AppendUint64(nil, n) }

// scanBatchBytes bounds how much one read transaction of scan copies out.
const scanBatchBytes = 4 << 20

// scan calls fn with copies of the key/value pairs of bucket whose keys start
// with prefix, from start on, reading in batches so that no read transaction
// (nor the store's close lock) is held while fn runs. k and v are valid only
// until fn returns.
func (s *Store) scan(bucket, prefix, start []byte, fn func(k, v []byte) error) error {
	type kv struct{ k, v []byte }
	var (
		batch []kv
		arena []byte
		next  = append([]byte(nil), start...)
	)
	if len(next) == 0 {
		next = append(next, prefix...)
	}
	for {
		batch, arena = batch[:0], arena[:0]
		more := false
		err := s.view(func(tx *bolt.Tx) error {
			c := tx.Bucket(bucket).Cursor()
			k, v := c.First()
			if len(next) > 0 {
				k, v = c.Seek(next)
			}
			for ; k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
				if len(batch) > 0 && len(arena)+len(k)+len(v) > scanBatchBytes {
					next = append(next[:0], k...)
					more = true
					return nil
				}
				off := len(arena)
				arena = append(arena, k...)
				arena = append(arena, v...)
				batch = append(batch, kv{k: arena[off : off+len(k) : off+len(k)], v: arena[off+len(k) : len(arena) : len(arena)]})
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, e := range batch {
			if err := fn(e.k, e.v); err != nil {
				return err
			}
		}
		if !more {
			return nil
		}
	}
}

var errStop = errors.New("stop")
