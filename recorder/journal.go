package recorder

import (
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// The audit journal makes an audited action durable with one fdatasync.
//
// A bbolt commit costs two: the new pages, then the meta page that points
// to them. Every certificate issuance waits for its audit record (an
// unaudited certificate is never issued) and for its spent ID token, so
// with bbolt alone issuance runs at the pace of two disk flushes per batch.
// With a journal the audit loop writes each batch of records and token
// spends to a preallocated file with one fdatasync and answers; a second
// goroutine (the applier) appends them to the hash-chained audit log in
// bbolt in larger batches. The chain is built when a record is applied, in
// the order records were journaled, so the chain and its checkpoints are
// exactly as before: only its durability moved earlier.
//
// Reads of the audit log (AuditEvents, AuditLines, VerifyAudit, Backup)
// first wait until everything journaled so far is applied, so a record is
// visible to every reader once Audit has returned. A crash loses nothing
// that was answered: Open applies what the journal holds beyond the last
// applied entry (its number is kept in the store's metadata, written in the
// same transaction as the records) before anything else.
//
// The file is written in place, never grown: entries are framed as
//
//	u32 length of the JSON | u32 CRC-32C of the rest | u64 entry number | JSON
//
// and numbered consecutively across the file's lifetime. When everything
// written has been applied the writer starts again at offset 0; a reader
// stops at the first frame that is torn, fails its checksum or breaks the
// numbering, which is where the newest writing ended. PostgreSQL stores
// (one database, several replicas) do not use it: a token spent on one
// replica must be seen by the others at once.

const (
	journalSize        = 8 << 20 // bytes preallocated; entries are written in place
	journalFrame       = 16      // length, checksum, entry number
	maxJournalEntry    = 1 << 20 // an audit event is far smaller
	metaJournalApplied = "audit_journal_applied"
	journalSuffix      = ".audit-journal"
)

var journalCRC = crc32.MakeTable(crc32.Castagnoli)

// errJournalFull says a batch does not fit before the end of the file.
var errJournalFull = errors.New("audit journal full")

// journalEntry is one journaled audit record and the token it spends.
type journalEntry struct {
	n       uint64
	event   []byte     // Event's JSON, once append has written it: the applier stores these bytes
	Event   AuditEvent `json:"ev"`
	Token   []byte     `json:"tok,omitempty"`
	Expires int64      `json:"exp,omitempty"` // unix nanoseconds
}

// auditJournal is the journal file. Only the audit loop writes it (and
// Open before that loop starts).
type auditJournal struct {
	f    *os.File
	off  int64  // where the next entry goes
	last uint64 // number of the newest entry written
	buf  []byte
}

// journalPath is where the journal of the bbolt file at path lives.
func journalPath(path string) string { return path + journalSuffix }

// openJournal opens (creating and preallocating if needed) the journal
// next to a bbolt file and returns the entries it holds, oldest first.
func openJournal(path string) (*auditJournal, []journalEntry, error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, nil, fmt.Errorf("recorder: audit journal: %w", err)
	}
	j := &auditJournal{f: f}
	entries, err := j.load(path)
	if err != nil {
		f.Close()
		return nil, nil, fmt.Errorf("recorder: audit journal %s: %w", path, err)
	}
	return j, entries, nil
}

func (j *auditJournal) load(path string) ([]journalEntry, error) {
	st, err := j.f.Stat()
	if err != nil {
		return nil, err
	}
	if st.Size() < journalSize {
		// Written with zeros, not fallocated: writing into an allocated,
		// written block needs no metadata, so fdatasync flushes data only.
		zero := make([]byte, 1<<20)
		for off := st.Size(); off < journalSize; off += int64(len(zero)) {
			if _, err := j.f.WriteAt(zero[:min(int64(len(zero)), journalSize-off)], off); err != nil {
				return nil, err
			}
		}
		if err := j.f.Sync(); err != nil {
			return nil, err
		}
		if err := syncDir(filepath.Dir(path)); err != nil {
			return nil, err
		}
	}
	data := make([]byte, journalSize)
	n, err := j.f.ReadAt(data, 0)
	if err != nil && err != io.EOF {
		return nil, err
	}
	entries, end := parseJournal(data[:n])
	j.off = end
	if len(entries) > 0 {
		j.last = entries[len(entries)-1].n
	}
	return entries, nil
}

// parseJournal reads consecutive entries from the start of data and returns
// them with the offset after the last one. It stops, without an error, at
// the first frame that is short, oversized, fails its checksum, breaks the
// numbering or holds no valid entry: the writer's newest data ends there.
func parseJournal(data []byte) ([]journalEntry, int64) {
	var entries []journalEntry
	off := 0
	for len(data)-off >= journalFrame {
		n := int(binary.BigEndian.Uint32(data[off:]))
		if n == 0 || n > maxJournalEntry || n > len(data)-off-journalFrame {
			break
		}
		sum := binary.BigEndian.Uint32(data[off+4:])
		body := data[off+8 : off+journalFrame+n]
		if crc32.Checksum(body, journalCRC) != sum {
			break
		}
		num := binary.BigEndian.Uint64(body)
		if len(entries) > 0 && num != entries[len(entries)-1].n+1 {
			break
		}
		var e journalEntry
		if json.Unmarshal(body[8:], &e) != nil || e.Event.Type == "" || e.Event.ID == "" {
			break
		}
		e.n = num
		entries = append(entries, e)
		off += journalFrame + n
	}
	return entries, int64(off)
}

// append numbers the entries, writes them after the newest ones and makes
// them durable. It returns errJournalFull, writing nothing, when they do
// not fit before the end of the file.
func (j *auditJournal) append(entries []journalEntry) error {
	j.buf = j.buf[:0]
	num := j.last
	for i := range entries {
		num++
		entries[i].n = num
		body, err := entries[i].marshal()
		if err != nil {
			return err
		}
		if len(body) > maxJournalEntry {
			return fmt.Errorf("recorder: audit event of %d bytes is too large", len(body))
		}
		start := len(j.buf)
		j.buf = binary.BigEndian.AppendUint32(j.buf, uint32(len(body)))
		j.buf = binary.BigEndian.AppendUint32(j.buf, 0)
		j.buf = binary.BigEndian.AppendUint64(j.buf, num)
		j.buf = append(j.buf, body...)
		binary.BigEndian.PutUint32(j.buf[start+4:], crc32.Checksum(j.buf[start+8:], journalCRC))
	}
	if j.off+int64(len(j.buf)) > journalSize {
		return errJournalFull
	}
	if _, err := j.f.WriteAt(j.buf, j.off); err != nil {
		return err
	}
	if err := fdatasync(j.f); err != nil {
		return err
	}
	j.off += int64(len(j.buf))
	j.last = num
	return nil
}

// marshal encodes e as json.Marshal would, keeping the event's JSON in
// e.event so the applier does not encode the event a second time.
func (e *journalEntry) marshal() ([]byte, error) {
	ev, err := appendEventJSON(make([]byte, 0, 512), &e.Event)
	if err != nil {
		return nil, err
	}
	e.event = ev
	b := make([]byte, 0, len(ev)+len(e.Token)*4/3+48)
	b = append(b, `{"ev":`...)
	b = append(b, ev...)
	if len(e.Token) > 0 {
		b = append(b, `,"tok":"`...)
		b = base64.StdEncoding.AppendEncode(b, e.Token)
		b = append(b, '"')
	}
	if e.Expires != 0 {
		b = append(b, `,"exp":`...)
		b = strconv.AppendInt(b, e.Expires, 10)
	}
	return append(b, '}'), nil
}

// rewind makes the next entry go to the start of the file. The caller has
// applied every entry written so far.
func (j *auditJournal) rewind() { j.off = 0 }

func (j *auditJournal) close() error { return j.f.Close() }

func fdatasync(f *os.File) error {
	for {
		err := syscall.Fdatasync(int(f.Fd()))
		if err != syscall.EINTR {
			return err
		}
	}
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// journalApplied reads the number of the newest applied entry.
func journalApplied(tx Tx) (uint64, error) {
	v, err := tx.Meta(metaJournalApplied)
	if err != nil || v == nil {
		return 0, err
	}
	n, err := strconv.ParseUint(string(v), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("%w: unreadable %s in the store's metadata", ErrBroken, metaJournalApplied)
	}
	return n, nil
}

// applyEntries appends the entries numbered after the applied one to the
// audit chain, spends their tokens and records the newest number, in tx.
func (s *Store) applyEntries(tx Tx, entries []journalEntry) error {
	applied, err := journalApplied(tx)
	if err != nil {
		return err
	}
	bt, ok := tx.(*boltTx)
	if !ok {
		return errors.New("recorder: the audit journal needs a bbolt store")
	}
	last := applied
	for i, e := range entries {
		if i%applyYieldEvery == applyYieldEvery-1 {
			// Hundreds of entries are milliseconds of CPU, and a goroutine
			// keeps its P until it blocks: the requests queued behind it
			// would wait that long (the p99 of issuance, every applyEvery).
			runtime.Gosched()
		}
		if e.n <= applied {
			continue // applied before a crash or a rewind
		}
		if e.Token != nil {
			if err := bt.putSpentToken(e.Token, e.Expires); err != nil {
				return err
			}
		}
		event := e.event
		if event == nil { // read back from the file after a crash
			var err error
			if event, err = appendEventJSON(nil, &e.Event); err != nil {
				return err
			}
		}
		if err := s.appendAuditJSON(tx, event); err != nil {
			return err
		}
		last = e.n
	}
	if last == applied {
		return nil
	}
	return tx.SetMeta(metaJournalApplied, []byte(strconv.FormatUint(last, 10)))
}

// journalState is the Store's side of the audit journal.
type journalState struct {
	j       *auditJournal
	mu      sync.Mutex
	pending []journalEntry // written, not yet applied, oldest first
	written uint64         // newest entry written
	applied uint64         // newest entry applied
	err     error          // the last apply's failure, until one succeeds
	changed chan struct{}  // closed and replaced when applied moves or err is set
	kick    chan struct{}  // new entries: apply within applyEvery
	urgent  chan struct{}  // a reader or a full journal waits: apply now
	stop    chan struct{}  // closed by Close once the audit loop has exited
	done    chan struct{}  // closed when the applier has exited
	swept   time.Time      // when expired token keys were last forgotten
	hold    atomic.Bool    // tests: the applier applies nothing (a crash before it could)
}

// openAuditJournal opens the journal of a bbolt store and applies what a
// crash left in it. Called by Open before the audit loop starts.
func (s *Store) openAuditJournal() error {
	j, entries, err := openJournal(journalPath(s.cfg.Path))
	if err != nil {
		return err
	}
	var applied uint64
	err = s.b.Update(func(tx Tx) error {
		if err := s.applyEntries(tx, entries); err != nil {
			return err
		}
		applied, err = journalApplied(tx)
		return err
	})
	if err != nil {
		j.close()
		return fmt.Errorf("recorder: apply the audit journal: %w", err)
	}
	j.last = max(j.last, applied)
	j.rewind() // everything in it is applied
	s.jr = &journalState{
		j: j, written: j.last, applied: j.last,
		changed: make(chan struct{}), kick: make(chan struct{}, 1), urgent: make(chan struct{}, 1),
		stop: make(chan struct{}), done: make(chan struct{}),
		swept: s.cfg.Now(),
	}
	go s.applyLoop()
	return nil
}

// journalBatch is the audit loop's commit with a journal: it spends the
// batch's tokens in memory, writes the records and spends durably with one
// fdatasync, and hands them to the applier. It answers nothing; the caller
// answers each request with req.err or the returned error.
func (s *Store) journalBatch(batch []*auditReq, now time.Time) error {
	bb := s.b.(*boltBackend)
	entries := make([]journalEntry, 0, len(batch))
	var reserved [][]byte
	for _, req := range batch {
		req.err = nil
		e := journalEntry{Event: req.ev}
		if req.token != nil {
			e.Token, e.Expires = req.token, tokenExpiry(req.expires, now)
			if !bb.reserveToken(req.token, e.Expires, now) {
				req.err = ErrReplay
				continue
			}
			reserved = append(reserved, req.token)
		}
		entries = append(entries, e)
	}
	if len(entries) == 0 {
		return nil
	}
	err := s.journalWrite(entries)
	if err != nil {
		for _, k := range reserved {
			bb.unreserveToken(k)
		}
		return err
	}
	jr := s.jr
	jr.mu.Lock()
	jr.pending = append(jr.pending, entries...)
	jr.written = entries[len(entries)-1].n
	jr.mu.Unlock()
	s.kickApply()
	return nil
}

// journalWrite writes entries, starting the file over once everything in it
// is applied and it is a quarter full, or when they do not fit.
func (s *Store) journalWrite(entries []journalEntry) error {
	jr := s.jr
	for {
		jr.mu.Lock()
		caughtUp := jr.applied == jr.written
		changed, applyErr := jr.changed, jr.err
		jr.mu.Unlock()
		if caughtUp && jr.j.off > journalSize/4 {
			jr.j.rewind()
		}
		err := jr.j.append(entries)
		if err != errJournalFull {
			return err
		}
		if caughtUp {
			return fmt.Errorf("recorder: %d audit records do not fit in the journal", len(entries))
		}
		if applyErr != nil {
			return applyErr
		}
		s.applyNow()
		<-changed // the applier moved on (or failed); try again
	}
}

func (s *Store) kickApply() {
	select {
	case s.jr.kick <- struct{}{}:
	default:
	}
}

// applyNow asks the applier to apply at once, for a caller that waits.
func (s *Store) applyNow() {
	select {
	case s.jr.urgent <- struct{}{}:
	default:
	}
}

// applyEvery is how long journaled entries may wait for the applier when
// nobody waits for them: they are durable in the journal already, and each
// apply is a bbolt commit with its own fdatasync, which on one disk delays
// the journal's. Applying every few milliseconds instead of after every
// journal write halves the syncs under load and batches the commits (at
// 4,000 issuances/s, applying once a second instead of every 25 ms saved a
// tenth of their CPU; 100 ms keeps most of that and the audit feed prompt).
const applyEvery = 100 * time.Millisecond

// applyYieldEvery is how many entries the applier appends between yields of
// its P (about 0.1–0.4 ms of work at a time).
const applyYieldEvery = 32

// applyLoop applies journaled entries to the audit log until Close.
func (s *Store) applyLoop() {
	jr := s.jr
	defer close(jr.done)
	retry := time.NewTimer(time.Hour)
	retry.Stop()
	later := time.NewTimer(time.Hour)
	later.Stop()
	armed := false
	var last time.Time
	for {
		select {
		case <-jr.kick:
			if wait := applyEvery - time.Since(last); wait > 0 {
				if !armed {
					later.Reset(wait)
					armed = true
				}
				continue
			}
		case <-later.C:
		case <-jr.urgent:
		case <-retry.C:
		case <-jr.stop:
			if !s.crashed.Load() && !jr.hold.Load() {
				s.apply(true)
			}
			return
		}
		if armed {
			later.Stop()
			armed = false
		}
		if jr.hold.Load() {
			continue
		}
		last = time.Now()
		if s.apply(false) != nil {
			retry.Reset(100 * time.Millisecond)
		}
	}
}

// apply appends every pending entry to the audit log in one transaction
// and signs the chain's head in it; the final one, at Close, signs the head
// even with nothing to apply if another writer left it unsigned (the
// flusher, which signs it otherwise, has stopped).
func (s *Store) apply(final bool) error {
	jr := s.jr
	jr.mu.Lock()
	pend := jr.pending
	jr.pending = nil
	jr.mu.Unlock()
	if len(pend) == 0 && !final {
		return nil
	}
	now := s.cfg.Now()
	sweep := now.Sub(jr.swept) >= tokenSweepEvery
	var sweptFull bool
	err := s.b.Update(func(tx Tx) error {
		if err := s.applyEntries(tx, pend); err != nil {
			return err
		}
		if sweep {
			if err := tx.ForgetTokens(now, &sweptFull); err != nil {
				return err
			}
		}
		// The head is signed in the commit that moved it, so the flusher
		// needs no commit (two more fdatasyncs) of its own for these
		// records; bbolt runs one write transaction at a time, so no other
		// record can land between this one's appends and its signature.
		if len(pend) > 0 || (final && s.auditDirty.Load()) {
			s.auditDirty.Store(false)
			return s.putCheckpoint(tx, now)
		}
		return nil
	})
	if err != nil {
		s.auditDirty.Store(true) // the checkpoint, if any, was not written
	}
	jr.mu.Lock()
	if err != nil {
		jr.pending = append(pend, jr.pending...)
		jr.err = fmt.Errorf("recorder: apply the audit journal: %w", err)
		s.log.Error("audit journal: apply failed; retrying", "err", err)
	} else if len(pend) > 0 {
		jr.applied, jr.err = pend[len(pend)-1].n, nil
		if sweep {
			jr.swept = now
			if sweptFull {
				jr.swept = time.Time{} // more expired keys: sweep again next apply
			}
		}
	}
	close(jr.changed)
	jr.changed = make(chan struct{})
	jr.mu.Unlock()
	return err
}

// syncAudit waits until every audit record journaled before the call is in
// the audit log, so a reader sees every Audit that has returned.
func (s *Store) syncAudit() error {
	jr := s.jr
	if jr == nil {
		return nil
	}
	jr.mu.Lock()
	target := jr.written
	jr.mu.Unlock()
	for {
		jr.mu.Lock()
		done, err, changed := jr.applied >= target, jr.err, jr.changed
		jr.mu.Unlock()
		switch {
		case done:
			return nil
		case err != nil:
			return err
		}
		s.applyNow()
		select {
		case <-changed:
		case <-jr.done:
			return ErrClosed
		}
	}
}

// closeJournal applies what is left (unless crashing) and closes the file.
// Called by Close after the audit loop has exited.
func (s *Store) closeJournal() error {
	jr := s.jr
	if jr == nil {
		return nil
	}
	close(jr.stop)
	<-jr.done
	return jr.j.close()
}

// JournalPath is the audit journal's file beside the bbolt store at
// storePath: part of the store (restore moves it aside with the store).
func JournalPath(storePath string) string { return journalPath(storePath) }

// UnappliedAudit counts the audit records in a store's journal that its
// audit log does not have yet (a bastion stopped before applying them; the
// next start applies them). A read-only store's readers say so, and a
// backup of a stopped store refuses until they are applied.
func (s *Store) UnappliedAudit() (int, error) {
	bb, ok := s.b.(*boltBackend)
	if !ok {
		return 0, nil
	}
	data, err := os.ReadFile(journalPath(bb.path))
	if errors.Is(err, os.ErrNotExist) {
		return 0, nil
	} else if err != nil {
		return 0, fmt.Errorf("recorder: audit journal: %w", err)
	}
	entries, _ := parseJournal(data)
	var applied uint64
	if err := s.b.View(func(tx Tx) error {
		var err error
		applied, err = journalApplied(tx)
		return err
	}); err != nil {
		return 0, err
	}
	n := 0
	for _, e := range entries {
		if e.n > applied {
			n++
		}
	}
	return n, nil
}
