package recorder

import (
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"time"
)

// The audit log is append-only and hash-chained: record N stores the hash
// of record N-1, and its own hash covers its sequence, that link and the
// event's exact JSON. The flusher signs the chain head (a checkpoint) after
// new records, so rewriting history or cutting the tail is detectable.
type auditRecord struct {
	Seq   uint64          `json:"seq"`
	Prev  string          `json:"prev"` // hex
	Hash  string          `json:"hash"` // hex
	Event json.RawMessage `json:"event"`
}

type checkpoint struct {
	Seq  uint64    `json:"seq"`
	Hash string    `json:"hash"`
	Time time.Time `json:"time"`
}

func auditHash(seq uint64, prev [hashLen]byte, event []byte) [hashLen]byte {
	h := sha256.New()
	h.Write([]byte("bastion-audit-v1\n"))
	h.Write(binary.BigEndian.AppendUint64(nil, seq))
	h.Write(prev[:])
	h.Write(event)
	var sum [hashLen]byte
	h.Sum(sum[:0])
	return sum
}

// prepareAudit fills in the ID and time of ev.
func (s *Store) prepareAudit(ev *AuditEvent) error {
	if ev.Time.IsZero() {
		ev.Time = s.cfg.Now()
	}
	ev.Time = ev.Time.UTC()
	if ev.ID == "" {
		id, err := s.newID(ev.Time)
		if err != nil {
			return err
		}
		ev.ID = id
	}
	return nil
}

// appendAudit appends ev to the audit chain inside tx.
func (s *Store) appendAudit(tx Tx, ev AuditEvent) (string, error) {
	if err := s.prepareAudit(&ev); err != nil {
		return "", err
	}
	event, err := appendEventJSON(make([]byte, 0, 512), &ev)
	if err != nil {
		return "", err
	}
	if err := s.appendAuditJSON(tx, event); err != nil {
		return "", err
	}
	return ev.ID, nil
}

// appendAuditJSON appends an event, as JSON with its ID and time filled in,
// to the audit chain inside tx.
func (s *Store) appendAuditJSON(tx Tx, event []byte) error {
	seq, prev, err := tx.AuditTail()
	if err != nil {
		return err
	}
	seq++
	tx.OnCommit(s.notifyAudit)
	h := auditHash(seq, prev, event)
	// The same bytes json.Marshal(auditRecord{...}) gives, without encoding
	// the event a second time (it is already valid, compact JSON).
	rec := make([]byte, 0, len(event)+2*2*hashLen+64)
	rec = append(rec, `{"seq":`...)
	rec = strconv.AppendUint(rec, seq, 10)
	rec = append(rec, `,"prev":"`...)
	rec = hex.AppendEncode(rec, prev[:])
	rec = append(rec, `","hash":"`...)
	rec = hex.AppendEncode(rec, h[:])
	rec = append(rec, `","event":`...)
	rec = append(rec, event...)
	rec = append(rec, '}')
	if err := tx.AppendAudit(seq, h, rec); err != nil {
		return err
	}
	s.auditDirty.Store(true)
	return nil
}

// Audit appends an event to the audit log and returns its ID once it is
// committed. ev.ID and ev.Time are set if empty. Concurrent calls share a
// transaction: a commit loop takes everything queued the moment the previous
// commit ends, so a lone call waits for one commit and a busy log commits in
// batches, with no fixed delay.
func (s *Store) Audit(ev AuditEvent) (string, error) {
	if s.readOnly {
		return "", ErrReadOnly
	}
	if err := s.enter(); err != nil {
		return "", err
	}
	defer s.leave()
	if err := s.checkAudit(&ev); err != nil {
		return "", err
	}
	req := &auditReq{ev: ev, done: make(chan error, 1)}
	s.auditQ <- req
	if err := <-req.done; err != nil {
		return "", fmt.Errorf("recorder: audit %s: %w", ev.Type, err)
	}
	return ev.ID, nil
}

// AuditOnce is Audit for an action that a one-time token buys (a
// certificate for an ID token): it records the token's key, remembered until
// expires, in the same transaction as the event. A key already recorded and
// not yet expired makes it return an error wrapping ErrReplay and record
// nothing; so of two concurrent uses, exactly one succeeds.
func (s *Store) AuditOnce(ev AuditEvent, key []byte, expires time.Time) (string, error) {
	if s.readOnly {
		return "", ErrReadOnly
	}
	if err := s.enter(); err != nil {
		return "", err
	}
	defer s.leave()
	if len(key) == 0 || len(key) > 256 {
		return "", fmt.Errorf("recorder: audit %s: %w: token key of %d bytes", ev.Type, ErrInvalid, len(key))
	}
	if err := s.checkAudit(&ev); err != nil {
		return "", err
	}
	req := &auditReq{ev: ev, token: key, expires: expires, done: make(chan error, 1)}
	s.auditQ <- req
	if err := <-req.done; err != nil {
		return "", fmt.Errorf("recorder: audit %s: %w", ev.Type, err)
	}
	return ev.ID, nil
}

// tokenSweepEvery is how often expired token keys are forgotten; a sweep
// that forgets a full batch is followed by another at the next commit, so
// the sweeps keep up with any rate of issuance (a batch every commit, ten
// commits a second under load) without one commit deleting them all.
const tokenSweepEvery = time.Minute

// tokenSweepBatch is the most keys one sweep forgets (a var for tests).
var tokenSweepBatch = 2000

// AuditLater appends an event to the audit log with the next group commit
// of recordings (within one flush interval), without waiting for it: for
// high-volume records of routine outcomes (an allowed statement), which then
// have the crash guarantee of the recordings they belong to. Decisions that
// must be durable before anything proceeds use Audit. It returns the ID the
// event will have.
func (s *Store) AuditLater(ev AuditEvent) (string, error) {
	if s.readOnly {
		return "", ErrReadOnly
	}
	if err := s.enter(); err != nil {
		return "", err
	}
	defer s.leave()
	if err := s.checkAudit(&ev); err != nil {
		return "", err
	}
	s.laterMu.Lock()
	s.later = append(s.later, ev)
	n := len(s.later)
	s.laterMu.Unlock()
	if n >= maxLaterAudits {
		s.requestFlush()
	}
	return ev.ID, nil
}

// checkAudit refuses an event without a type and fills in its ID and time.
func (s *Store) checkAudit(ev *AuditEvent) error {
	if ev.Type == "" {
		return fmt.Errorf("recorder: audit: %w: event type is required", ErrInvalid)
	}
	return s.prepareAudit(ev)
}

// maxLaterAudits asks for an early flush when this many deferred audit
// records are waiting.
const maxLaterAudits = 4096

type auditReq struct {
	ev      AuditEvent
	token   []byte    // for AuditOnce: the one-time token's key
	expires time.Time // and until when to remember it
	err     error     // this request's own outcome within a successful commit
	done    chan error
}

// auditLoop commits queued audit records: it takes every request queued so
// far, appends them in one transaction, answers them all, and repeats.
func (s *Store) auditLoop() {
	defer close(s.auditDone)
	for {
		var batch []*auditReq
		select {
		case req := <-s.auditQ:
			batch = append(batch, req)
		case <-s.stop:
			return
		}
	drain:
		for len(batch) < 1024 {
			select {
			case req := <-s.auditQ:
				batch = append(batch, req)
			default:
				break drain
			}
		}
		if p := s.auditFault.Load(); p != nil {
			for _, req := range batch {
				req.done <- *p
			}
			continue
		}
		now := s.cfg.Now()
		if s.jr != nil {
			err := s.journalBatch(batch, now)
			for _, req := range batch {
				if err != nil {
					req.done <- err
				} else {
					req.done <- req.err
				}
			}
			continue
		}
		sweep := now.Sub(s.tokensSwept) >= tokenSweepEvery
		var sweptFull bool
		err := s.b.Update(func(tx Tx) error {
			spent, err := spendBatch(tx, batch, now)
			if err != nil {
				return err
			}
			for i, req := range batch {
				req.err = nil
				if req.token != nil {
					var ok bool
					if spent != nil {
						ok = spent[i]
					} else if ok, err = tx.SpendToken(req.token, req.expires, now); err != nil {
						return err
					}
					if !ok {
						req.err = ErrReplay
						continue
					}
				}
				if _, err := s.appendAudit(tx, req.ev); err != nil {
					return err
				}
			}
			if sweep {
				return tx.ForgetTokens(now, &sweptFull)
			}
			return nil
		})
		if err == nil && sweep {
			s.tokensSwept = now
			if sweptFull {
				s.tokensSwept = time.Time{} // more expired keys: sweep again next commit
			}
		}
		for _, req := range batch {
			if err != nil {
				req.done <- err
			} else {
				req.done <- req.err
			}
		}
	}
}

// spendBatch spends the batch's tokens in one statement where the backend
// can (PostgreSQL: a round trip per token was most of a batch's time) and
// says, per request, whether its token was spent; nil means spend them one
// by one. A key twice in the batch is spent once: the later use is a replay.
func spendBatch(tx Tx, batch []*auditReq, now time.Time) ([]bool, error) {
	bs, ok := tx.(interface {
		SpendTokens(keys [][]byte, expires []int64, now time.Time) ([]bool, error)
	})
	if !ok {
		return nil, nil
	}
	var keys [][]byte
	var exp []int64
	var idx []int
	first := map[string]bool{}
	for i, req := range batch {
		if req.token == nil || first[string(req.token)] {
			continue
		}
		first[string(req.token)] = true
		keys, exp, idx = append(keys, req.token), append(exp, tokenExpiry(req.expires, now)), append(idx, i)
	}
	spent := make([]bool, len(batch))
	if len(keys) == 0 {
		return spent, nil
	}
	ok2, err := bs.SpendTokens(keys, exp, now)
	if err != nil {
		return nil, err
	}
	for j, i := range idx {
		spent[i] = ok2[j]
	}
	return spent, nil
}

// AuditEvents calls fn for each audit event at or after since, oldest
// first. fn runs outside any transaction; an error from it stops the walk
// and is returned.
func (s *Store) AuditEvents(since time.Time, fn func(AuditEvent) error) error {
	if err := s.syncAudit(); err != nil {
		return fmt.Errorf("recorder: audit events: %w", err)
	}
	from := uint64(1)
	if !since.IsZero() {
		var err error
		if from, err = s.auditSeqAfter(since.Add(-AuditTimeSlack)); err != nil {
			return fmt.Errorf("recorder: audit events: %w", err)
		}
	}
	err := s.scan(from, scanRecords, Tx.Audit, func(seq uint64, v []byte) error {
		var rec auditRecord
		var ev AuditEvent
		if err := json.Unmarshal(v, &rec); err != nil || json.Unmarshal(rec.Event, &ev) != nil {
			return fmt.Errorf("%w: audit record %d is unreadable", ErrBroken, seq)
		}
		if !since.IsZero() && ev.Time.Before(since) {
			return nil
		}
		return fn(ev)
	})
	if err != nil {
		return fmt.Errorf("recorder: audit events: %w", err)
	}
	return nil
}

// AuditTimeSlack is how far out of order with its neighbours an audit
// event's time may be and still be listed by AuditEvents: records are
// appended in the order they are made, with the time of the replica that
// made them, so a listing from a date starts at the first record dated
// AuditTimeSlack before it (found by bisection, not by reading the log from
// its start) and filters from there.
const AuditTimeSlack = time.Hour

// auditSeqAfter returns the sequence number of the first audit record
// dated at or after t, by bisection over the log (records are in append
// order, their times nearly so); 1 when none is known to be earlier or a
// probed record cannot be read, so that the scan reports it.
func (s *Store) auditSeqAfter(t time.Time) (uint64, error) {
	var lo uint64 = 1
	err := s.view(func(tx Tx) error {
		tail, _, err := tx.AuditTail()
		if err != nil {
			return err
		}
		hi := tail + 1
		for lo < hi {
			mid := lo + (hi-lo)/2
			var at time.Time
			found := false
			err := tx.Audit(mid, 1, func(seq uint64, v []byte) error {
				var rec struct {
					Event struct {
						Time time.Time `json:"time"`
					} `json:"event"`
				}
				if seq != mid || json.Unmarshal(v, &rec) != nil {
					return errStop
				}
				at, found = rec.Event.Time, true
				return nil
			})
			if err != nil && !errors.Is(err, errStop) {
				return err
			}
			if !found {
				lo = 1 // a gap or an unreadable record: read it all
				return nil
			}
			if at.Before(t) {
				lo = mid + 1
			} else {
				hi = mid
			}
		}
		return nil
	})
	return lo, err
}

// putCheckpoint signs the current head of the audit chain.
func (s *Store) putCheckpoint(tx Tx, now time.Time) error {
	seq, head, err := tx.AuditTail()
	if err != nil || seq == 0 {
		return err
	}
	v, err := sign(s.signer, checkpointDomain, checkpoint{Seq: seq, Hash: hex.EncodeToString(head[:]), Time: now.UTC()})
	if err != nil {
		return err
	}
	return tx.PutAuditCheckpoint(seq, v)
}

// auditCheckpoints reads the audit checkpoints from sequence from on, at
// most limit of them, for scan.
func auditCheckpoints(tx Tx, from uint64, limit int, fn func(uint64, []byte) error) error {
	n := 0
	err := tx.AuditCheckpoints(from, ^uint64(0), func(seq uint64, v []byte) error {
		if limit > 0 && n == limit {
			return errStop
		}
		n++
		return fn(seq, v)
	})
	if err == errStop {
		return nil
	}
	return err
}

// VerifyAudit checks the whole audit chain and its signed checkpoints.
// Report.Chunks counts records; BrokenAt names the first bad record.
func (s *Store) VerifyAudit() (Report, error) {
	if err := s.syncAudit(); err != nil {
		return Report{}, fmt.Errorf("recorder: verify audit: %w", err)
	}
	rep := Report{BrokenAt: -1}
	fail := func(seq uint64, format string, args ...any) {
		if rep.Problem == "" {
			rep.BrokenAt = int64(seq)
			rep.Problem = fmt.Sprintf(format, args...)
		}
	}
	// Checkpoints are few; check their signatures first.
	cps := make(map[uint64]string)
	var lastCP uint64
	err := s.scan(0, scanRecords, auditCheckpoints, func(seq uint64, v []byte) error {
		var cp checkpoint
		if seq == 0 {
			fail(0, "checkpoint with a malformed key")
			return nil
		}
		if err := openSigned(s.keys, checkpointDomain, v, &cp); err != nil {
			fail(seq, "checkpoint at record %d: %v", seq, err)
			return nil
		}
		if cp.Seq != seq {
			fail(seq, "checkpoint at record %d names record %d", seq, cp.Seq)
			return nil
		}
		cps[seq] = cp.Hash
		lastCP = max(lastCP, seq)
		return nil
	})
	if err != nil {
		return rep, fmt.Errorf("recorder: verify audit: %w", err)
	}
	var (
		next = uint64(1)
		prev [hashLen]byte
	)
	err = s.scan(1, scanRecords, Tx.Audit, func(seq uint64, v []byte) error {
		if rep.Problem != "" {
			return errStop
		}
		if seq != next {
			fail(next, "audit record %d is missing", next)
			return errStop
		}
		var rec auditRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			fail(next, "audit record %d is unreadable", next)
			return errStop
		}
		var ev AuditEvent
		switch {
		case rec.Seq != next:
			fail(next, "audit record %d carries sequence %d", next, rec.Seq)
		case rec.Prev != hex.EncodeToString(prev[:]):
			fail(next, "audit record %d does not link to record %d (one of them was altered, or records were removed)", next, next-1)
		case json.Unmarshal(rec.Event, &ev) != nil:
			fail(next, "audit record %d has an unreadable event", next)
		}
		h := auditHash(next, prev, rec.Event)
		hh := hex.EncodeToString(h[:])
		if rep.Problem == "" && rec.Hash != hh {
			fail(next, "audit record %d does not match its hash (altered)", next)
		}
		if cp, ok := cps[next]; ok && rep.Problem == "" && cp != hh {
			fail(next, "audit record %d differs from the signed checkpoint", next)
		}
		if rep.Problem != "" {
			return errStop
		}
		prev = h
		rep.Chunks++
		rep.Events++
		next++
		return nil
	})
	if err != nil && err != errStop {
		return rep, fmt.Errorf("recorder: verify audit: %w", err)
	}
	if rep.Problem == "" && lastCP >= next {
		fail(next, "audit records %d to %d were removed (a signed checkpoint covers %d)", next, lastCP, lastCP)
	}
	rep.Intact = rep.Problem == ""
	return rep, nil
}

// FailAuditForTest makes every synchronous audit write fail with err (nil
// restores them), as a broken disk would: for tests that show an action the
// audit log cannot record is refused.
func (s *Store) FailAuditForTest(err error) {
	if err == nil {
		s.auditFault.Store(nil)
		return
	}
	s.auditFault.Store(&err)
}
