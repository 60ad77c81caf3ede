package recorder

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"sort"
)

// The audit feed is how the audit log leaves the box: sinks (syslog, a
// webhook) read the records in order after the last one they delivered, as
// lines, and the store keeps each sink's place. The log itself is the spool:
// a sink that is down reads on from its place when it is back, and nothing
// that was committed is lost.
//
// A line is an audit record exactly as stored,
//
//	{"seq":N,"prev":"HEX","hash":"HEX","event":{...}}
//
// or, after the record it covers, a signed checkpoint of the chain head:
//
//	{"checkpoint":{"payload":{"seq":N,"hash":"HEX","time":"..."},"key":"...","sig":"..."}}
//
// so a receiver holds a chain it can check on its own, and [Store.CompareAudit]
// can later tell whether the local log still agrees with it.

// subscribeAudit returns a channel that receives a value (without blocking
// the writer) after every commit that appended audit records.
func (s *Store) subscribeAudit() chan struct{} {
	ch := make(chan struct{}, 1)
	s.auditSubsMu.Lock()
	s.auditSubs = append(s.auditSubs, ch)
	s.auditSubsMu.Unlock()
	return ch
}

// AuditNotify returns a channel that receives a value after every commit
// that appended audit records (values are coalesced: one may stand for
// several commits).
func (s *Store) AuditNotify() <-chan struct{} { return s.subscribeAudit() }

func (s *Store) notifyAudit() {
	s.auditSubsMu.Lock()
	defer s.auditSubsMu.Unlock()
	for _, ch := range s.auditSubs {
		select {
		case ch <- struct{}{}:
		default:
		}
	}
}

// AuditLines calls fn with the feed's lines after record after, in order,
// up to about maxBytes of records (at least one), and returns the sequence
// of the last record it delivered (after, when there was none).
func (s *Store) AuditLines(after uint64, maxBytes int, fn func(line []byte) error) (uint64, error) {
	if err := s.syncAudit(); err != nil {
		return after, fmt.Errorf("recorder: audit lines: %w", err)
	}
	if err := s.enter(); err != nil {
		return after, err
	}
	defer s.leave()
	type rec struct {
		seq  uint64
		line []byte
	}
	var recs []rec
	cps := map[uint64][]byte{}
	size := 0
	err := s.b.View(func(tx Tx) error {
		recs, size = recs[:0], 0
		clear(cps)
		err := tx.Audit(after+1, scanRecords, func(seq uint64, v []byte) error {
			if seq == ^uint64(0) {
				return nil
			}
			if len(recs) > 0 && size+len(v) > maxBytes {
				return errStop
			}
			recs = append(recs, rec{seq: seq, line: bytes.Clone(v)})
			size += len(v)
			return nil
		})
		if err != nil && err != errStop {
			return err
		}
		if len(recs) == 0 {
			return nil
		}
		first, last := recs[0].seq, recs[len(recs)-1].seq
		return tx.AuditCheckpoints(first, last, func(seq uint64, v []byte) error {
			cps[seq] = bytes.Clone(v)
			return nil
		})
	})
	if err != nil {
		return after, fmt.Errorf("recorder: audit lines: %w", err)
	}
	for _, r := range recs {
		if err := fn(r.line); err != nil {
			return after, err
		}
		after = r.seq
		if cp, ok := cps[r.seq]; ok {
			line := make([]byte, 0, len(cp)+16)
			line = append(line, `{"checkpoint":`...)
			line = append(line, cp...)
			line = append(line, '}')
			if err := fn(line); err != nil {
				return after, err
			}
		}
	}
	return after, nil
}

// AuditHead returns the sequence of the newest audit record (0 when the log
// is empty).
func (s *Store) AuditHead() (uint64, error) {
	if err := s.syncAudit(); err != nil {
		return 0, fmt.Errorf("recorder: audit head: %w", err)
	}
	var seq uint64
	err := s.view(func(tx Tx) error {
		var err error
		seq, _, err = tx.AuditTail()
		return err
	})
	return seq, err
}

// SinksShared reports whether several replicas share this store's audit
// sinks (PostgreSQL). Each sink is then shipped by one replica at a time,
// the one that holds it ([Store.ClaimSink]); with bbolt the one process
// always does.
func (s *Store) SinksShared() bool { return s.pg != nil }

// ClaimSink makes this replica the one shipping to the sink named name, if
// no other live replica does, and returns the sequence of the last audit
// record the sink was delivered (0 when none); ok is false while another
// replica holds the sink. A holder stays the holder until it releases the
// sink or its lease expires, when another replica may claim it. With bbolt
// it always succeeds.
func (s *Store) ClaimSink(name string) (cursor uint64, ok bool, err error) {
	if s.pg == nil {
		cursor, err = s.SinkCursor(name)
		return cursor, err == nil, err
	}
	if err := s.enter(); err != nil {
		return 0, false, err
	}
	defer s.leave()
	return s.pg.claimSink(name)
}

// ReleaseSink gives up the sink named name (PostgreSQL), so that another
// replica claims it at once rather than after this replica's lease.
func (s *Store) ReleaseSink(name string) error {
	if s.pg == nil {
		return nil
	}
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	return s.pg.releaseSink(name)
}

// SinkCursor returns the sequence of the last audit record the sink named
// name delivered (0 when it never delivered one).
func (s *Store) SinkCursor(name string) (uint64, error) {
	if s.pg != nil {
		if err := s.enter(); err != nil {
			return 0, err
		}
		defer s.leave()
		seq, _, err := s.pg.sinkCursor(name)
		return seq, err
	}
	var seq uint64
	err := s.view(func(tx Tx) error {
		v, err := tx.Meta(sinkKey(name))
		if len(v) == 8 {
			seq = binary.BigEndian.Uint64(v)
		}
		return err
	})
	return seq, err
}

// SinkHolder returns the ID of the replica holding the sink named name (""
// when none, and with bbolt).
func (s *Store) SinkHolder(name string) (string, error) {
	if s.pg == nil {
		return "", nil
	}
	if err := s.enter(); err != nil {
		return "", err
	}
	defer s.leave()
	_, holder, err := s.pg.sinkCursor(name)
	return holder, err
}

// SetSinkCursor records that the sink named name delivered every record up
// to seq. With PostgreSQL only its holder moves the cursor, forward: it
// fails when another replica took the sink over.
func (s *Store) SetSinkCursor(name string, seq uint64) error {
	if s.pg != nil {
		if err := s.enter(); err != nil {
			return err
		}
		defer s.leave()
		return s.pg.setSinkCursor(name, seq)
	}
	return s.update(func(tx Tx) error {
		return tx.SetMeta(sinkKey(name), u64key(seq))
	})
}

// ResetSinkCursor moves the sink's cursor back from from to to, if it is
// still at from (and, with PostgreSQL, this replica holds the sink): for a
// cursor found past the log's head, which only an alteration of the store
// explains.
func (s *Store) ResetSinkCursor(name string, from, to uint64) error {
	if s.pg != nil {
		if err := s.enter(); err != nil {
			return err
		}
		defer s.leave()
		return s.pg.resetSinkCursor(name, from, to)
	}
	return s.update(func(tx Tx) error {
		v, err := tx.Meta(sinkKey(name))
		if err != nil {
			return err
		}
		if len(v) != 8 || binary.BigEndian.Uint64(v) != from {
			return fmt.Errorf("recorder: audit sink %s: the cursor moved", name)
		}
		return tx.SetMeta(sinkKey(name), u64key(to))
	})
}

func sinkKey(name string) string { return "sink:" + name }

// AuditComparison is what CompareAudit found.
type AuditComparison struct {
	Received     int64  // records read from the sink's copy
	Matched      int64  // of them, identical to the local record
	Checkpoints  int64  // signed checkpoints read from the sink's copy and verified
	LocalLast    uint64 // the newest local record
	ReceivedLast uint64 // the newest record the sink received
	Intact       bool   // the local log agrees with everything the sink received
	BrokenAt     int64  // the first record where they part, -1 if none
	Problem      string // what is wrong, if anything
	Notes        []string
}

// CompareAudit reads what an audit sink received (lines of the feed, each
// possibly behind a syslog header; other lines are skipped) and compares it
// with the local log. It reports a truncation (the sink received records
// past the local log's end: its tail was deleted), a fork (a record the sink
// received differs from the local one: one of them was rewritten), a record
// missing locally, and a received copy that is not a chain or whose
// checkpoints do not verify, and a local log that does not verify on its
// own ([Store.VerifyAudit]).
func (s *Store) CompareAudit(r io.Reader) (AuditComparison, error) {
	cmp := AuditComparison{BrokenAt: -1}
	fail := func(seq int64, format string, args ...any) {
		if cmp.Problem == "" {
			cmp.BrokenAt, cmp.Problem = seq, fmt.Sprintf(format, args...)
		}
	}
	received := map[uint64]string{} // seq -> hash
	var (
		records []uint64    // sequences of the records received
		gaps    [][2]uint64 // ranges the bastion said it skipped
		damaged []uint64    // records that arrived cut short
	)
	skipped := 0
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 16<<20)
	for sc.Scan() {
		line := sc.Bytes()
		i := bytes.IndexByte(line, '{')
		if i < 0 {
			skipped++
			continue
		}
		var l struct {
			Seq        uint64          `json:"seq"`
			Prev       string          `json:"prev"`
			Hash       string          `json:"hash"`
			Event      json.RawMessage `json:"event"`
			Checkpoint json.RawMessage `json:"checkpoint"`
			Gap        *struct {
				From uint64 `json:"from"`
				To   uint64 `json:"to"`
			} `json:"gap"`
		}
		if err := json.Unmarshal(line[i:], &l); err != nil {
			if seq, ok := cutRecord(line[i:]); ok {
				// A record the receiver cut short (rsyslog's
				// maxMessageSize): it arrived, but cannot be compared.
				damaged = append(damaged, seq)
				records = append(records, seq)
				continue
			}
			skipped++
			continue
		}
		if l.Gap != nil && l.Gap.From > 0 && l.Gap.From <= l.Gap.To {
			gaps = append(gaps, [2]uint64{l.Gap.From, l.Gap.To})
			continue
		}
		if l.Checkpoint != nil {
			var cp checkpoint
			if err := openSigned(s.keys, checkpointDomain, l.Checkpoint, &cp); err != nil {
				fail(-1, "a checkpoint the sink received does not verify: %v", err)
				continue
			}
			if h, ok := received[cp.Seq]; ok && h != cp.Hash {
				fail(int64(cp.Seq), "the sink's record %d does not match the checkpoint signed for it", cp.Seq)
			}
			received[cp.Seq] = cp.Hash
			cmp.Checkpoints++
			continue
		}
		if l.Seq == 0 || l.Event == nil {
			skipped++
			continue
		}
		prev, err1 := hex.DecodeString(l.Prev)
		if err1 != nil || len(prev) != hashLen || hex.EncodeToString(sumAudit(l.Seq, [hashLen]byte(prev), l.Event)) != l.Hash {
			fail(int64(l.Seq), "the sink's record %d does not hash to what it claims (damaged in transit or forged)", l.Seq)
			continue
		}
		if h, ok := received[l.Seq]; ok && h != l.Hash {
			fail(int64(l.Seq), "the sink received two different records %d", l.Seq)
		}
		received[l.Seq] = l.Hash
		records = append(records, l.Seq)
		cmp.Received++
		cmp.ReceivedLast = max(cmp.ReceivedLast, l.Seq)
	}
	if err := sc.Err(); err != nil {
		return cmp, fmt.Errorf("recorder: compare audit: read: %w", err)
	}
	if len(damaged) > 0 {
		slices.Sort(damaged)
		cmp.Notes = append(cmp.Notes, fmt.Sprintf("%d records arrived cut short and were not compared (the first is record %d): raise the receiver's message size limit", len(damaged), damaged[0]))
	}
	if skipped > 0 {
		cmp.Notes = append(cmp.Notes, fmt.Sprintf("%d lines were not audit records and were skipped", skipped))
	}
	local := map[uint64]string{}
	err := s.scan(1, scanRecords, Tx.Audit, func(seq uint64, v []byte) error {
		if seq == ^uint64(0) {
			return nil
		}
		cmp.LocalLast = max(cmp.LocalLast, seq)
		if _, want := received[seq]; !want {
			return nil
		}
		var rec auditRecord
		if err := json.Unmarshal(v, &rec); err != nil {
			local[seq] = "unreadable"
			return nil
		}
		local[seq] = rec.Hash
		return nil
	})
	if err != nil {
		return cmp, fmt.Errorf("recorder: compare audit: %w", err)
	}
	seqs := make([]uint64, 0, len(received))
	for seq := range received {
		seqs = append(seqs, seq)
	}
	sort.Slice(seqs, func(i, j int) bool { return seqs[i] < seqs[j] })
	for _, seq := range seqs {
		switch lh, ok := local[seq]; {
		case !ok && seq > cmp.LocalLast:
			fail(int64(cmp.LocalLast+1), "truncated: the local audit log ends at record %d, but the sink received records up to %d (records %d to %d were deleted here)", cmp.LocalLast, max(cmp.ReceivedLast, seq), cmp.LocalLast+1, max(cmp.ReceivedLast, seq))
		case !ok:
			fail(int64(seq), "record %d, which the sink received, is missing from the local audit log", seq)
		case lh != received[seq]:
			fail(int64(seq), "forked: record %d differs from the one the sink received (the local log was cut there and written again, or one of the two was altered)", seq)
		default:
			cmp.Matched++
		}
	}
	if len(damaged) > 0 {
		// A record cut short still shows a deleted tail.
		if last := slices.Max(damaged); last > cmp.LocalLast {
			cmp.ReceivedLast = max(cmp.ReceivedLast, last)
			fail(int64(cmp.LocalLast+1), "truncated: the local audit log ends at record %d, but the sink received records up to %d (records %d to %d were deleted here)", cmp.LocalLast, cmp.ReceivedLast, cmp.LocalLast+1, cmp.ReceivedLast)
		}
	}
	// Records between two the sink received that it never did, and that
	// no gap line says the bastion skipped, are records it cannot vouch
	// for: a sink's place moved past them in the store (while the sink
	// was down or behind) skips them so, and they can then be rewritten
	// with the chain after them.
	if cmp.Problem == "" {
		slices.Sort(records)
		for i := 1; i < len(records); i++ {
			from, to := records[i-1]+1, records[i]-1
			if from > to || skippedByGaps(gaps, from, to) {
				continue
			}
			fail(int64(from), "records %d to %d never reached the sink, and no gap line says they were skipped: the sink cannot vouch for them (a sink's place moved past them in the store skips them so; a syslog receiver that stopped with them in flight loses them too)", from, to)
			break
		}
	}
	// The local hashes compared above are the stored ones: a record whose
	// event was edited with its hash left alone would match. The local
	// chain must verify on its own too.
	if cmp.Problem == "" {
		rep, err := s.VerifyAudit()
		if err != nil {
			return cmp, fmt.Errorf("recorder: compare audit: %w", err)
		}
		if !rep.Intact {
			fail(rep.BrokenAt, "the local audit log does not verify: %s", rep.Problem)
		}
	}
	if cmp.Received == 0 && cmp.Problem == "" {
		fail(-1, "no audit records found in the sink's copy")
	}
	if cmp.ReceivedLast < cmp.LocalLast && cmp.Problem == "" {
		cmp.Notes = append(cmp.Notes, fmt.Sprintf("the sink has not received records %d to %d yet", cmp.ReceivedLast+1, cmp.LocalLast))
	}
	cmp.Intact = cmp.Problem == ""
	return cmp, nil
}

func sumAudit(seq uint64, prev [hashLen]byte, event []byte) []byte {
	h := auditHash(seq, prev, event)
	return h[:]
}

// skippedByGaps says whether the ranges the bastion said it skipped cover
// records from to to.
func skippedByGaps(gaps [][2]uint64, from, to uint64) bool {
	for from <= to {
		moved := false
		for _, g := range gaps {
			if g[0] <= from && from <= g[1] {
				if g[1] >= to {
					return true
				}
				from, moved = g[1]+1, true
			}
		}
		if !moved {
			return false
		}
	}
	return true
}

// cutRecord reads the sequence of a feed line cut short: the start of a
// record as the feed writes it, `{"seq":N,"prev":"`.
func cutRecord(line []byte) (uint64, bool) {
	rest, ok := bytes.CutPrefix(line, []byte(`{"seq":`))
	if !ok {
		return 0, false
	}
	var seq uint64
	n := 0
	for n < len(rest) && n < 20 && '0' <= rest[n] && rest[n] <= '9' {
		seq = seq*10 + uint64(rest[n]-'0')
		n++
	}
	if n == 0 || seq == 0 || !bytes.HasPrefix(rest[n:], []byte(`,"prev":"`)) {
		return 0, false
	}
	return seq, true
}
