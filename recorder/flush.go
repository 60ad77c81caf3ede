package recorder

import (
	"errors"
	"fmt"
	"math/bits"
	"slices"
	"time"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

// requestFlush asks the flusher for a flush now.
func (s *Store) requestFlush() {
	select {
	case s.kick <- struct{}{}:
	default:
	}
}

// smallBuffer is the largest buffer a quiet session's events grow in
// before it takes a pooled one.
const smallBuffer = 4 << 10

// minBuffer is the smallest buffer a session starts with.
const minBuffer = 256

// bigBuffer is the capacity of a pooled buffer: a chunk header, a full
// SessionBuffer, and room for one more event of any size and the hash, so a
// buffer that is not yet full always fits the next event.
func (s *Store) bigBuffer() int {
	return chunkHeaderLen + s.cfg.SessionBuffer + maxEventOverhead + maxEventData + hashLen
}

// growBuffer returns a buffer holding buf's events (or a reserved chunk
// header, for a new buffer) with room for need more bytes and the hash.
// A quiet session's buffer is sized by what it wrote in the last flush
// interval (hint, the length of the buffer the flusher took then), a power
// of two from minBuffer to smallBuffer, doubling while it fits there: a
// thousand sessions printing a line each per interval would otherwise
// allocate a smallBuffer each per flush, most of the garbage a busy bastion
// makes. Busier ones use pooled buffers, so streaming output allocates
// nothing in the steady state.
func (s *Store) growBuffer(buf []byte, need, hint int) []byte {
	want := len(buf) + need + hashLen
	if buf == nil {
		want = chunkHeaderLen + need + hashLen
	}
	if want <= smallBuffer {
		size := max(want, hint+hashLen, 2*cap(buf), minBuffer)
		size = min(1<<bits.Len(uint(size-1)), smallBuffer)
		nb := make([]byte, chunkHeaderLen, size)
		if buf != nil {
			nb = append(nb[:0], buf...)
		}
		return nb
	}
	var nb []byte
	if want <= s.bigBuffer() {
		if p, ok := s.bufPool.Get().(*[]byte); ok {
			nb = (*p)[:0]
		} else {
			nb = make([]byte, 0, s.bigBuffer())
		}
	} else {
		nb = make([]byte, 0, want) // cannot happen: events are bounded
	}
	if buf == nil {
		return append(nb, make([]byte, chunkHeaderLen)...)
	}
	nb = append(nb, buf...)
	s.putBuffer(buf)
	return nb
}

// getValue returns an empty buffer for the encoded chunk of buf. An
// encoded chunk is at most its events plus a format 2 header and the hash,
// which a pool-sized buffer holds. A small chunk (a quiet session's few
// events) gets a buffer of its own size: a thousand idle sessions flushed
// together would otherwise each hold a pooled megabyte until the commit.
func (s *Store) getValue(buf []byte) []byte {
	if need := len(buf) + chunkHeaderLenV2 + hashLen; need <= smallValue {
		return make([]byte, 0, need)
	}
	if p, ok := s.valPool.Get().(*[]byte); ok {
		return (*p)[:0]
	}
	return make([]byte, 0, s.bigBuffer()+chunkHeaderLenV2)
}

// smallValue is the largest encoded chunk not taken from the pool.
const smallValue = 64 << 10

// putValue returns an encoded chunk's buffer to its pool.
func (s *Store) putValue(v []byte) {
	if cap(v) == s.bigBuffer()+chunkHeaderLenV2 {
		v = v[:0]
		s.valPool.Put(&v)
	}
}

// putBuffer returns a pool-sized buffer to the pool.
func (s *Store) putBuffer(buf []byte) {
	if cap(buf) == s.bigBuffer() {
		buf = buf[:0]
		s.bufPool.Put(&buf)
	}
}

// run is the flusher: it commits every FlushInterval, or earlier on request,
// all sessions' pending events in one transaction.
func (s *Store) run() {
	defer close(s.done)
	t := time.NewTicker(s.cfg.FlushInterval)
	defer t.Stop()
	for {
		select {
		case <-t.C:
		case <-s.kick:
		case <-s.stop:
			if s.crashed.Load() {
				return
			}
			s.closeRecordings()
			s.flush(true)
			return
		}
		s.flush(false)
	}
}

// closeRecordings ends every active recording as interrupted, for Close.
func (s *Store) closeRecordings() {
	s.mu.Lock()
	active := make([]*Recording, 0, len(s.active))
	for _, r := range s.active {
		active = append(active, r)
	}
	s.mu.Unlock()
	for _, r := range active {
		r.mu.Lock()
		r.closing = true
		if !r.ended {
			r.ended = true
			if r.err == nil {
				r.flushCarriesLocked()
			}
			r.endReq = &endRequest{end: s.cfg.Now(), status: StatusInterrupted,
				reason: "the recorder was closed while the session was live", done: make(chan error, 1)}
		}
		r.failLocked(fmt.Errorf("recorder: session %s: %w", r.id, ErrClosed))
		r.markDirtyLocked()
		r.mu.Unlock()
	}
}

// flushItem is one recording's share of a flush.
type flushItem struct {
	r       *Recording
	bufs    []pendingBuf // the pending buffers, one chunk each
	events  int          // events in bufs
	bytes   int64        // uncommitted bytes it accounts for
	lastUS  int64        // time of the last event in buf
	info    SessionInfo
	gap     *gap
	end     *endRequest
	values  [][]byte   // chunks to put, in order
	check   Checkpoint // the checkpoint covering them, when there are some
	cp      []byte     // check, signed
	seal    []byte     // the signed seal, when the session ends
	stored  int64      // bytes of the chunk values
	seq     uint64     // chain state after a successful commit
	head    [hashLen]byte
	evTotal int64
}

// flush commits what every dirty recording has pending.
func (s *Store) flush(final bool) {
	s.mu.Lock()
	dirty := s.dirty
	s.dirty = nil
	s.mu.Unlock()
	s.laterMu.Lock()
	later := s.later
	s.later = nil
	s.laterMu.Unlock()
	checkpoint := s.auditDirty.Swap(false) || len(later) > 0
	if len(dirty) == 0 && !checkpoint {
		s.broadcastFlushed()
		return
	}
	now := s.cfg.Now()
	items := make([]*flushItem, 0, len(dirty))
	for _, r := range dirty {
		it := &flushItem{r: r}
		r.mu.Lock()
		r.dirty = false
		it.bufs = append(it.bufs, r.full...)
		clear(r.full)
		r.full = r.full[:0]
		if r.pendingEv > 0 {
			it.bufs = append(it.bufs, pendingBuf{buf: r.pending, events: r.pendingEv})
			r.lastLen = len(r.pending)
			r.pending, r.pendingEv = nil, 0
		}
		for _, pb := range it.bufs {
			it.events += pb.events
			it.bytes += int64(len(pb.buf) - chunkHeaderLen)
		}
		it.gap, it.end, it.lastUS = r.gap, r.endReq, r.lastUS
		it.info = r.info
		it.info.BytesIn, it.info.BytesOut, it.info.Truncated, it.info.Stored = r.bytesIn, r.bytesOut, r.truncated, r.stored
		r.mu.Unlock()
		s.prepare(it, now)
		items = append(items, it)
	}
	s.signCheckpoints(items, now)

	txStart := time.Now()
	// A session another replica took over (this replica's lease had
	// expired) refuses the whole transaction: drop it and commit the
	// others, rather than losing every session's events with it, and
	// fail it for good, rather than retrying its seal in every flush.
	var fenced []*flushItem
	var err error
	for {
		err = s.flushTx(items, later, checkpoint, now)
		ids := fencedIDs(err)
		n := len(items)
		items = slices.DeleteFunc(items, func(it *flushItem) bool {
			if !slices.Contains(ids, it.r.id) {
				return false
			}
			s.log.Error("recorder: a session this replica recorded was taken over by another replica (this replica's lease had expired); its recording stops", "session_id", it.r.id)
			fenced = append(fenced, it)
			return true
		})
		if len(items) == n {
			break
		}
		// The attempt may have taken auditDirty: write the checkpoint now.
		checkpoint = true
	}
	if s.cfg.OnFlush != nil {
		s.cfg.OnFlush(time.Since(txStart), len(items), err)
	}
	if err != nil && len(later) > 0 {
		// Keep the deferred audit records for the next attempt.
		s.laterMu.Lock()
		s.later = append(later, s.later...)
		s.laterMu.Unlock()
	}
	if err != nil {
		err = fmt.Errorf("%w: %w", ErrWrite, err)
		s.log.Error("recorder: flush failed", "sessions", len(items), "mode", s.cfg.Mode.String(), "err", err)
		s.auditDirty.Store(true) // the checkpoint, if any, was not written
	}
	for _, it := range items {
		s.finish(it, err, final)
	}
	for _, it := range fenced {
		s.finishFenced(it)
	}
	s.broadcastFlushed()
}

// fencedIDs lists the sessions err says were taken over.
func fencedIDs(err error) []string {
	var ids []string
	var walk func(error)
	walk = func(err error) {
		switch e := err.(type) {
		case nil:
		case *fencedError:
			ids = append(ids, e.id)
		case interface{ Unwrap() []error }:
			for _, err := range e.Unwrap() {
				walk(err)
			}
		case interface{ Unwrap() error }:
			walk(e.Unwrap())
		}
	}
	walk(err)
	return ids
}

// flushTx writes the items' chunks, checkpoints, records and seals, and the
// deferred audit records, in one transaction.
func (s *Store) flushTx(items []*flushItem, later []AuditEvent, checkpoint bool, now time.Time) error {
	return s.b.Update(func(tx Tx) error {
		if hook := s.flushHook.Load(); hook != nil {
			if err := (*hook)(); err != nil {
				return err
			}
		}
		for _, it := range items {
			if len(it.values) > 0 {
				if it.cp == nil {
					return errors.New("no signed checkpoint for the chunks")
				}
				if err := tx.PutChunks(it.r.id, it.r.seq, it.values); err != nil {
					return err
				}
				if err := tx.PutCheckpoint(it.r.id, it.cp); err != nil {
					return err
				}
			}
			if err := tx.PutSession(it.info); err != nil {
				return err
			}
			if it.end != nil {
				if it.seal == nil {
					return errors.New("no signed seal for the ended session")
				}
				if err := tx.PutSeal(it.r.id, it.seal); err != nil {
					return err
				}
			}
		}
		// The audit records last: with PostgreSQL appending holds the
		// cluster-wide chain until the commit, so it is held briefly.
		for _, it := range items {
			if it.gap != nil {
				_, err := s.appendAudit(tx, AuditEvent{
					Type: "recording.gap", User: it.info.User, SessionID: it.r.id, Target: it.info.Target,
					Outcome: "gap", Reason: it.gap.err.Error(),
					Fields: map[string]string{"events_lost": fmt.Sprint(it.gap.events), "bytes_lost": fmt.Sprint(it.gap.bytes)},
				})
				if err != nil {
					return err
				}
			}
		}
		for _, ev := range later {
			if _, err := s.appendAudit(tx, ev); err != nil {
				return err
			}
		}
		if checkpoint || s.auditDirty.Swap(false) {
			return s.putCheckpoint(tx, now)
		}
		return nil
	})
}

// finishFenced ends an item whose session another replica took over: its
// events are lost (the takeover sealed the session up to its last
// checkpoint), the recording fails whatever the mode (nothing more of it
// can be stored), and an End waiting on it hears ErrFenced.
func (s *Store) finishFenced(it *flushItem) {
	r := it.r
	err := fmt.Errorf("%w: %w", ErrWrite, &fencedError{id: r.id})
	s.uncommitted.Add(-it.bytes)
	r.uncommitted.Add(-it.bytes)
	for _, pb := range it.bufs {
		s.putBuffer(pb.buf)
		s.putValue(pb.value)
	}
	r.mu.Lock()
	r.info.Events, r.info.Chunks = r.committedEvents, int64(r.seq)
	r.failLocked(err)
	r.gap = nil
	if it.end != nil && !it.end.answered {
		it.end.answered = true
		it.end.done <- fmt.Errorf("recorder: end session %s: %w", r.id, err)
	}
	r.endReq = nil
	r.mu.Unlock()
	s.mu.Lock()
	delete(s.active, r.id)
	s.mu.Unlock()
}

// prepare turns an item's pending events into chunk values (outside any
// lock: the chain state belongs to the flusher) and computes the session
// record as it will be after the commit.
func (s *Store) prepare(it *flushItem, now time.Time) {
	r := it.r
	seq, head := r.seq, r.head
	evTotal := r.committedEvents
	if it.gap != nil {
		label := fmt.Sprintf("recording gap: %d events (%d bytes) lost: %v", it.gap.events, it.gap.bytes, it.gap.err)
		payload := appendEvent(nil, asciicast.Marker, it.gap.lastUS, []byte(label))
		n := 1
		if c := it.gap.content; c != [2]int64{} {
			// A TCP session's lost bytes, each way: a capture moves its
			// sequence numbers past them (Wireshark: previous segment not
			// captured) rather than join what came before and after.
			payload = appendEvent(payload, EventConn, it.gap.lastUS, fmt.Appendf(nil, "unstored %d %d lost", c[0], c[1]))
			n++
		}
		v, h := newChunk(payload, seq, head, n)
		it.values = append(it.values, v)
		seq, head = seq+1, h
		evTotal += int64(n)
	}
	for i, pb := range it.bufs {
		v, h := encodeChunk(s.getValue(pb.buf), pb.buf, seq, head, pb.events, s.zenc)
		it.bufs[i].value = v
		it.values = append(it.values, v)
		seq, head = seq+1, h
		evTotal += int64(pb.events)
	}
	it.seq, it.head, it.evTotal = seq, head, evTotal
	it.info.Events, it.info.Chunks = evTotal, int64(seq)
	for _, v := range it.values {
		it.stored += int64(len(v))
	}
	it.info.Compressed = r.committedBytes + it.stored
	if len(it.values) > 0 {
		it.check = Checkpoint{SessionID: r.id, Chunks: int64(seq), Events: evTotal, Head: head, Time: now, Meta: r.meta}
	}
	if it.end != nil {
		it.info.Status = it.end.status
		it.info.End = it.end.end
		ex := it.end.exit
		it.info.ExitStatus, it.info.ExitSignal, it.info.Reason = ex.Status, ex.Signal, ex.Reason
		if it.info.Login == "" {
			it.info.Login = ex.Login
		}
		it.info.Database, it.info.Statements = ex.Database, ex.Statements
		it.info.Blocked, it.info.Approved, it.info.Denied = ex.Blocked, ex.Approved, ex.Denied
		if it.end.reason != "" {
			it.info.Error = it.end.reason
		}
		if it.info.Status == StatusInterrupted && it.info.Reason == "" {
			it.info.Reason = it.end.reason
		}
	}
}

// signCheckpoints signs the checkpoints of the items that have chunks to
// put, with one signature for all of them, and the seals of the sessions
// that end, before the transaction (a signature in an HSM is a round trip,
// which the store's one writer would otherwise wait for). If signing
// fails, the items have none, and the flush fails and each session follows
// its failure mode.
func (s *Store) signCheckpoints(items []*flushItem, now time.Time) {
	for _, it := range items {
		if it.end != nil {
			var err error
			if it.seal, err = sign(s.signer, sealDomain, newSeal(it.info, it.head, now)); err != nil {
				s.log.Error("recorder: sign seal", "session_id", it.r.id, "err", err)
			}
		}
	}
	var cps []Checkpoint
	for _, it := range items {
		if len(it.values) > 0 {
			cps = append(cps, it.check)
		}
	}
	signed, err := signCheckpoints(s.signer, cps)
	if err != nil {
		s.log.Error("recorder: sign checkpoints", "sessions", len(cps), "err", err)
		return
	}
	for _, it := range items {
		if len(it.values) > 0 {
			it.cp, signed = signed[0], signed[1:]
		}
	}
}

// contentBytes counts the TCP content in pending buffers, each way (client,
// server): the bytes of each side's events, and those an "unstored" event
// among them accounts for.
func contentBytes(bufs []pendingBuf) [2]int64 {
	var n [2]int64
	for _, pb := range bufs {
		var last int64
		walkEvents(chunk{format: 2, payload: pb.buf[chunkHeaderLen:]}, &last, func(e rawEvent) error {
			switch e.typ {
			case EventFromClient:
				n[0] += int64(len(e.data))
			case EventFromServer:
				n[1] += int64(len(e.data))
			case EventConn:
				if c, s, _, ok := parseUnstored(e.data); ok {
					n[0] += int64(c)
					n[1] += int64(s)
				}
			}
			return nil
		})
	}
	return n
}

// finish applies a flush's outcome to one recording.
func (s *Store) finish(it *flushItem, err error, final bool) {
	r := it.r
	s.uncommitted.Add(-it.bytes)
	r.uncommitted.Add(-it.bytes)
	if err == nil {
		r.seq, r.head, r.committedEvents = it.seq, it.head, it.evTotal
		r.committedBytes += it.stored
	}
	var lost [2]int64
	if err != nil {
		lost = contentBytes(it.bufs)
	}
	for _, pb := range it.bufs { // committed or lost, bbolt is done with them
		s.putBuffer(pb.buf)
		s.putValue(pb.value)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.info.Events, r.info.Chunks = it.info.Events, it.info.Chunks
	if err == nil {
		if it.gap != nil && r.gap == it.gap {
			r.gap = nil
		}
		if it.end != nil {
			r.info = it.info
			if !it.end.answered {
				it.end.answered = true
				it.end.done <- nil
			}
			r.endReq = nil
			s.mu.Lock()
			delete(s.active, r.id)
			s.mu.Unlock()
		}
		return
	}
	// The transaction failed: these events are lost. The next successful
	// flush writes a gap marker (and audits it) before anything newer.
	r.info.Events, r.info.Chunks = r.committedEvents, int64(r.seq)
	if s.cfg.Mode == Strict || final {
		r.failLocked(err)
	}
	if it.events > 0 || it.gap != nil {
		g := r.gap
		if g == nil {
			g = &gap{}
			r.gap = g
		}
		g.events += int64(it.events)
		g.bytes += it.bytes
		g.content[0] += lost[0]
		g.content[1] += lost[1]
		g.lastUS = max(g.lastUS, it.lastUS)
		g.err = err
	}
	if it.end != nil {
		if r.err != nil && it.end.status == StatusEnded {
			it.end.status, it.end.reason = StatusFailed, r.err.Error()
		}
		if !it.end.answered {
			it.end.answered = true
			it.end.done <- fmt.Errorf("recorder: end session %s: %w", r.id, err)
		}
	}
	if !final && (it.end != nil || r.gap != nil) {
		r.markDirtyLocked() // retry the seal or the gap marker next time
	}
	if final && it.end != nil {
		s.mu.Lock()
		delete(s.active, r.id)
		s.mu.Unlock()
	}
}

func (s *Store) broadcastFlushed() {
	s.mu.Lock()
	close(s.flushed)
	s.flushed = make(chan struct{})
	s.mu.Unlock()
}
