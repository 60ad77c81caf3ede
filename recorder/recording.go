package recorder

import (
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

// Recording is one session being recorded. Its methods are safe for
// concurrent use; Output and Input copy what they need before returning.
type Recording struct {
	s     *Store
	id    string
	start time.Time
	meta  [hashLen]byte // MetaHash of the session record, in every checkpoint

	failed chan struct{} // closed on a Strict failure or when the store closes

	mu        sync.Mutex
	info      SessionInfo // metadata; counters are updated by the flusher
	outCarry  asciicast.UTF8Carry
	inCarry   asciicast.UTF8Carry
	pending   []byte       // encoded events after a reserved chunk header; nil when empty
	pendingEv int          // events in pending
	lastLen   int          // length of the pending buffer the last flush took: the next one's size
	full      []pendingBuf // buffers that reached SessionBuffer, for the flusher
	lastUS    int64        // time of the last event, µs since start
	stored    int64        // event data bytes accepted, for SessionByteBudget
	truncated bool
	unstored  [2]int64 // TCP content bytes (client, server) not stored since the last connection event
	bytesIn   int64
	bytesOut  int64
	dirty     bool        // queued in Store.dirty
	ended     bool        // End was called (or the store closed)
	endReq    *endRequest // the pending end, until committed
	err       error       // why the recording failed (Strict) or closed
	gap       *gap        // events lost to a failed flush, not yet marked (BestEffort)
	closing   bool        // the store is closing

	uncommitted atomic.Int64 // event bytes not yet committed

	// Chain state, touched only by the flusher goroutine.
	seq             uint64
	head            [hashLen]byte
	committedEvents int64
	committedBytes  int64 // bytes of committed chunks as stored (compressed)
}

// pendingBuf is a buffer of encoded events that will become one chunk.
type pendingBuf struct {
	buf    []byte // chunk header reserved, then events
	events int
	value  []byte // the encoded chunk, once the flusher made it
}

type endRequest struct {
	exit     ExitInfo
	end      time.Time
	status   string
	reason   string
	done     chan error // receives the first attempt's result
	answered bool
}

type gap struct {
	events, bytes int64
	content       [2]int64 // TCP content bytes (client, server) among them
	lastUS        int64    // time of the last lost event
	err           error
}

// Begin starts recording a session and stores its metadata before
// returning, so even a crash right after leaves a record. info.ID is
// generated if empty; info.Start defaults to now; Status is set to live.
func (s *Store) Begin(info SessionInfo) (*Recording, error) {
	if s.readOnly {
		return nil, ErrReadOnly
	}
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	now := s.cfg.Now()
	if info.Start.IsZero() {
		info.Start = now
	}
	if info.ID == "" {
		id, err := s.newID(info.Start)
		if err != nil {
			return nil, err
		}
		info.ID = id
	}
	if !validID(info.ID) {
		return nil, fmt.Errorf("recorder: begin %s: %w: session ID", quoteID(info.ID), ErrInvalid)
	}
	info.Width, info.Height = clampGeometry(info.Width, info.Height)
	info.Status = StatusLive
	info.End, info.ExitStatus, info.ExitSignal, info.Reason, info.Error = time.Time{}, 0, "", "", ""
	info.BytesIn, info.BytesOut, info.Events, info.Chunks, info.Truncated = 0, 0, 0, 0, false
	info.Replica, info.ReplicaName = s.replica, ""
	if s.pg != nil {
		info.ReplicaName = s.pg.cfg.Name
	}
	// The first checkpoint, of no chunks, covers the session's metadata
	// from the start (one signature per session).
	meta := MetaHash(info)
	cp, err := signCheckpoint(s.signer, Checkpoint{SessionID: info.ID, Head: genesis(info.ID), Time: now, Meta: meta})
	if err != nil {
		return nil, fmt.Errorf("recorder: begin %s: %w", info.ID, err)
	}
	err = s.b.Update(func(tx Tx) error {
		if err := tx.CreateSession(info); err != nil {
			return err
		}
		return tx.PutCheckpoint(info.ID, cp)
	})
	if err != nil {
		return nil, fmt.Errorf("recorder: begin %s: %w", info.ID, err)
	}
	r := &Recording{
		s:      s,
		id:     info.ID,
		start:  info.Start,
		meta:   meta,
		failed: make(chan struct{}),
		info:   info,
		head:   genesis(info.ID),
	}
	s.mu.Lock()
	s.active[r.id] = r
	s.mu.Unlock()
	return r, nil
}

// clampGeometry keeps a terminal size inside what the asciicast decoder
// accepts by default; 0 (no terminal) stays 0.
func clampGeometry(w, h int) (int, int) {
	clamp := func(v, max int) int {
		if v < 0 {
			return 0
		}
		if v > max {
			return max
		}
		return v
	}
	return clamp(w, asciicast.DefaultMaxWidth), clamp(h, asciicast.DefaultMaxHeight)
}

// ID returns the session ID.
func (r *Recording) ID() string { return r.id }

// Info returns a snapshot of the session's metadata.
func (r *Recording) Info() SessionInfo {
	r.mu.Lock()
	defer r.mu.Unlock()
	info := r.info
	info.BytesIn, info.BytesOut, info.Truncated = r.bytesIn, r.bytesOut, r.truncated
	return info
}

// Failed is closed when the recording can no longer be written: a Strict
// write failure or the store closing. Err then says why.
func (r *Recording) Failed() <-chan struct{} { return r.failed }

// Err returns why the recording failed, or nil.
func (r *Recording) Err() error {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.err
}

// Output records bytes written to the user's terminal ('o' events).
func (r *Recording) Output(p []byte) error {
	return r.write(asciicast.Output, p, &r.outCarry, true)
}

// Input records bytes the user typed ('i' events) if Config.RecordInput is
// set; otherwise it only counts them.
func (r *Recording) Input(p []byte) error {
	return r.write(asciicast.Input, p, &r.inCarry, r.s.cfg.RecordInput)
}

// AddBytes counts traffic that is not recorded as events, such as the bytes
// of a TCP forward.
func (r *Recording) AddBytes(in, out int64) {
	r.mu.Lock()
	r.bytesIn += in
	r.bytesOut += out
	if r.err == nil && !r.ended {
		r.markDirtyLocked()
	}
	r.mu.Unlock()
}

// FromClient records bytes a TCP session's client sent toward the target
// ([EventFromClient]), as bytes: a TCP payload is not text. Like Output it
// honours the byte budget and backpressure, and it counts the bytes.
func (r *Recording) FromClient(p []byte) error { return r.writeBytes(EventFromClient, p) }

// FromServer records bytes the target sent back toward the client
// ([EventFromServer]).
func (r *Recording) FromServer(p []byte) error { return r.writeBytes(EventFromServer, p) }

// ConnEvent records a TCP session's connection event ([EventConn]): "open
// CLIENT TARGET", "client fin", "server fin", "client rst", "server rst",
// "cut" (the bastion ended the connection).
// Connection events are kept after the byte budget is spent (a session
// has a few), each preceded by "unstored CLIENT SERVER" when bytes passed
// unstored since the last one, so a capture shows them as missing rather
// than reading as the whole conversation.
func (r *Recording) ConnEvent(what string) error {
	r.mu.Lock()
	if err := r.usableLocked(); err != nil {
		r.mu.Unlock()
		return err
	}
	us := r.nowUS()
	if r.unstored != [2]int64{} {
		r.appendEventLocked(EventConn, us, fmt.Appendf(nil, "unstored %d %d", r.unstored[0], r.unstored[1]))
		r.unstored = [2]int64{}
	}
	r.appendEventLocked(EventConn, us, []byte(strings.ToValidUTF8(what, "\uFFFD")))
	full := len(r.full) > 0 || len(r.pending)-chunkHeaderLen >= r.s.cfg.SessionBuffer
	r.markDirtyLocked()
	r.mu.Unlock()
	if full {
		r.s.requestFlush()
	}
	return r.throttle()
}

func (r *Recording) writeBytes(typ asciicast.EventType, p []byte) error {
	r.mu.Lock()
	if err := r.usableLocked(); err != nil {
		r.mu.Unlock()
		return err
	}
	side := 0
	if typ == EventFromClient {
		r.bytesIn += int64(len(p))
	} else {
		r.bytesOut += int64(len(p))
		side = 1
	}
	kept := 0
	if !r.truncated {
		us := r.nowUS()
		data := p
		if budget := r.s.cfg.SessionByteBudget; budget > 0 && r.stored+int64(len(data)) > budget {
			data = data[:max(budget-r.stored, 0)]
		}
		kept = len(data)
		for len(data) > 0 {
			n := min(len(data), maxEventData)
			r.appendEventLocked(typ, us, data[:n])
			data = data[n:]
		}
		if budget := r.s.cfg.SessionByteBudget; budget > 0 && r.stored >= budget {
			r.truncateLocked(us)
		}
	}
	r.unstored[side] += int64(len(p) - kept)
	full := len(r.full) > 0 || len(r.pending)-chunkHeaderLen >= r.s.cfg.SessionBuffer
	r.markDirtyLocked()
	r.mu.Unlock()
	if full {
		r.s.requestFlush()
	}
	return r.throttle()
}

// Resize records a terminal size change. Sizes beyond what players accept
// are clamped; non-positive sizes are refused with ErrInvalid.
func (r *Recording) Resize(cols, rows int) error {
	if cols <= 0 || rows <= 0 {
		return fmt.Errorf("recorder: resize %dx%d: %w", cols, rows, ErrInvalid)
	}
	cols, rows = clampGeometry(cols, rows)
	var buf [24]byte
	data := fmt.Appendf(buf[:0], "%dx%d", cols, rows)
	return r.event(asciicast.Resize, data)
}

// Marker records a labelled marker ('m'), such as a blocked command or an
// approval decision. Markers are kept even after the byte budget is spent.
func (r *Recording) Marker(label string) error {
	label = strings.ToValidUTF8(label, "\uFFFD")
	if len(label) > maxEventData {
		label = label[:runeStart(label, maxEventData)]
	}
	return r.event(asciicast.Marker, []byte(label))
}

func (r *Recording) event(typ asciicast.EventType, data []byte) error {
	r.mu.Lock()
	if err := r.usableLocked(); err != nil {
		r.mu.Unlock()
		return err
	}
	if typ == asciicast.Marker || !r.truncated {
		r.appendEventLocked(typ, r.nowUS(), data)
	}
	full := len(r.full) > 0 || len(r.pending)-chunkHeaderLen >= r.s.cfg.SessionBuffer
	r.markDirtyLocked()
	r.mu.Unlock()
	if full {
		r.s.requestFlush()
	}
	return r.throttle()
}

func (r *Recording) write(typ asciicast.EventType, p []byte, carry *asciicast.UTF8Carry, record bool) error {
	r.mu.Lock()
	if err := r.usableLocked(); err != nil {
		r.mu.Unlock()
		return err
	}
	if typ == asciicast.Input {
		r.bytesIn += int64(len(p))
	} else {
		r.bytesOut += int64(len(p))
	}
	if record && !r.truncated {
		r.appendTextLocked(typ, r.nowUS(), carry.Write(p))
	}
	full := len(r.full) > 0 || len(r.pending)-chunkHeaderLen >= r.s.cfg.SessionBuffer
	r.markDirtyLocked()
	r.mu.Unlock()
	if full {
		r.s.requestFlush()
	}
	return r.throttle()
}

func (r *Recording) usableLocked() error {
	if r.err != nil {
		return r.err
	}
	if r.ended {
		return fmt.Errorf("recorder: session %s: %w", r.id, ErrEnded)
	}
	return nil
}

// nowUS returns the event time in µs since the start, never going backwards.
func (r *Recording) nowUS() int64 {
	us := int64(r.s.cfg.Now().Sub(r.start) / time.Microsecond)
	if us < r.lastUS {
		us = r.lastUS
	}
	if max := int64(asciicast.DefaultMaxTime / time.Microsecond); us > max {
		us = max
	}
	r.lastUS = us
	return us
}

// appendTextLocked appends valid UTF-8 text as events of at most
// maxEventData bytes each, honouring the byte budget.
func (r *Recording) appendTextLocked(typ asciicast.EventType, us int64, text []byte) {
	if budget := r.s.cfg.SessionByteBudget; budget > 0 && r.stored+int64(len(text)) > budget {
		keep := budget - r.stored
		text = text[:runeStartBytes(text, int(keep))]
		r.appendTextLocked(typ, us, text)
		r.truncateLocked(us)
		return
	}
	for len(text) > 0 {
		n := len(text)
		if n > maxEventData {
			n = runeStartBytes(text, maxEventData)
		}
		r.appendEventLocked(typ, us, text[:n])
		text = text[n:]
	}
}

func (r *Recording) truncateLocked(us int64) {
	r.truncated = true
	label := fmt.Sprintf("recording truncated: session byte budget of %d bytes reached", r.s.cfg.SessionByteBudget)
	r.appendEventLocked(asciicast.Marker, us, []byte(label))
}

// appendEventLocked appends one encoded event to the pending buffer.
func (r *Recording) appendEventLocked(typ asciicast.EventType, us int64, data []byte) {
	need := maxEventOverhead + len(data)
	if r.pending != nil && len(r.pending)-chunkHeaderLen >= r.s.cfg.SessionBuffer {
		// Full: it becomes a chunk as it is, and a new buffer starts.
		r.full = append(r.full, pendingBuf{buf: r.pending, events: r.pendingEv})
		r.pending, r.pendingEv = nil, 0
	}
	if r.pending == nil || cap(r.pending)-len(r.pending) < need {
		r.pending = r.s.growBuffer(r.pending, need, r.lastLen)
	}
	before := len(r.pending)
	r.pending = appendEvent(r.pending, typ, us, data)
	n := int64(len(r.pending) - before)
	r.pendingEv++
	if typ != asciicast.Marker {
		r.stored += int64(len(data))
	}
	r.uncommitted.Add(n)
	r.s.uncommitted.Add(n)
}

func (r *Recording) markDirtyLocked() {
	if r.dirty {
		return
	}
	r.dirty = true
	r.s.mu.Lock()
	r.s.dirty = append(r.s.dirty, r)
	r.s.mu.Unlock()
}

// sessionWindow is how many SessionBuffers one session may have
// uncommitted: what the commit in progress holds and what the session has
// written since. A streaming session waits only when its window is full,
// so while a commit pays its fsyncs the session fills the next one, and the
// store's commits grow with their latency instead of capping throughput at
// a buffer per commit (MaxPending still bounds all sessions together).
const sessionWindow = 8

// throttle makes the writer wait for a flush while this session, or all
// sessions together, have more uncommitted bytes than allowed.
func (r *Recording) throttle() error {
	s := r.s
	limit := int64(sessionWindow * s.cfg.SessionBuffer)
	maxPending := int64(s.cfg.MaxPending)
	over := func() bool { return r.uncommitted.Load() > limit || s.uncommitted.Load() > maxPending }
	for over() {
		s.mu.Lock()
		flushed := s.flushed
		s.mu.Unlock()
		if !over() {
			break
		}
		s.requestFlush()
		select {
		case <-flushed:
		case <-s.closedCh:
			return ErrClosed
		}
	}
	return nil
}

// End flushes the recording, records how the session ended and seals it.
// It waits for the commit and returns its error; if that fails the store
// keeps trying with later flushes (the session stays live until then).
func (r *Recording) End(exit ExitInfo) error {
	r.mu.Lock()
	if r.closing {
		r.mu.Unlock()
		return ErrClosed
	}
	if r.ended {
		r.mu.Unlock()
		return fmt.Errorf("recorder: session %s: %w", r.id, ErrEnded)
	}
	r.ended = true
	if r.err == nil {
		r.flushCarriesLocked()
	}
	status, reason := StatusEnded, ""
	if r.err != nil {
		status, reason = StatusFailed, r.err.Error()
	}
	req := &endRequest{exit: exit, end: r.s.cfg.Now(), status: status, reason: reason, done: make(chan error, 1)}
	r.endReq = req
	r.markDirtyLocked()
	r.mu.Unlock()
	r.s.requestFlush()
	if err := <-req.done; err != nil {
		return err
	}
	return nil
}

// flushCarriesLocked writes out bytes still carried as incomplete characters.
func (r *Recording) flushCarriesLocked() {
	if r.truncated {
		return
	}
	if r.outCarry.Pending() > 0 {
		r.appendTextLocked(asciicast.Output, r.nowUS(), r.outCarry.Flush())
	}
	if r.inCarry.Pending() > 0 && r.s.cfg.RecordInput {
		r.appendTextLocked(asciicast.Input, r.nowUS(), r.inCarry.Flush())
	}
}

// failLocked marks the recording failed (Strict) or closed.
func (r *Recording) failLocked(err error) {
	if r.err != nil {
		return
	}
	r.err = err
	close(r.failed)
}

// runeStart returns the largest index <= n that starts a character of s.
func runeStart(s string, n int) int {
	if n >= len(s) {
		return len(s)
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return n
}

func runeStartBytes(b []byte, n int) int {
	if n >= len(b) {
		return len(b)
	}
	if n < 0 {
		return 0
	}
	for n > 0 && !utf8.RuneStart(b[n]) {
		n--
	}
	return n
}
