package recorder

import (
	"bytes"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	bolt "go.etcd.io/bbolt"
)

// The chunk log: where the bbolt backend keeps large chunk values.
//
// bbolt copies a value into freshly zeroed pages and writes them at commit,
// which for recordings that stream (a forward of incompressible bytes, a
// busy shell) halves what the disk takes: measured on the bench machine,
// 1 MiB values committed 8 at a time went into bbolt at 180–230 MB/s and
// into a plain file at 400–510 MB/s. So a chunk value of logMinValue bytes
// or more is appended to a segment file in the directory beside the bbolt
// file (ChunkDir), and the chunks bucket holds a small reference to it:
//
//	"BRF1" | segment u32 | offset u64 | length u32
//
// The chunk itself (format, hash chain, checkpoints, seal) is unchanged:
// the log only moves its bytes, so every reader gets the same value from
// Tx.Chunks and verification reads exactly what was written. A segment's
// bytes are made durable (fdatasync) before the bbolt transaction that
// references them commits, so a committed reference always has its bytes;
// bytes written by a transaction that did not commit are past the
// committed end and are cut off at the next start. Segments are named by a
// random log ID kept in the store (so a restored or copied store never
// mixes its segments with another's) and a number, and roll over at
// segmentSize; a segment whose chunks retention deleted is removed.
//
// The chunk_log bucket (created with the first segment) holds the log's
// state:
//
//	"id"           the log ID (16 hex digits)
//	"tail"         current segment u32 | committed end u64
//	"live" + seg   bytes of chunks in segment seg that the store still holds (u64)

const (
	refMagic    = "BRF1"
	refLen      = 4 + 4 + 8 + 4
	logMinValue = 32 << 10 // smaller values stay in bbolt's pages
	// storeFormat2 marks a bbolt file whose chunks bucket may hold
	// references into the chunk log: a binary from before the log refuses
	// it clearly instead of reading references as damaged chunks.
	storeFormat2   = "bastion-recorder-2"
	chunkDirSuffix = ".chunks"
)

var bucketChunkLog = []byte("chunk_log")

// segmentSize is where the log starts a new segment (a variable for tests).
var segmentSize int64 = 1 << 30

// errChunkUnread is a chunk whose bytes are in the chunk log but could
// not be read (a segment missing or cut short).
var errChunkUnread = errors.New("chunk's bytes in the store's chunk log cannot be read")

// ChunkDir is the chunk log's directory beside the bbolt store at
// storePath: part of the store (backups copy what it holds into the
// backup's file, restore moves it aside with the store).
func ChunkDir(storePath string) string { return storePath + chunkDirSuffix }

// chunkRef is where a chunk value is in the log.
type chunkRef struct {
	seg uint32
	off int64
	n   int
}

func (r chunkRef) encode() []byte {
	b := make([]byte, 0, refLen)
	b = append(b, refMagic...)
	b = binary.BigEndian.AppendUint32(b, r.seg)
	b = binary.BigEndian.AppendUint64(b, uint64(r.off))
	return binary.BigEndian.AppendUint32(b, uint32(r.n))
}

// maxRefValue bounds what a reference may point at: a chunk holds at most
// maxChunkRaw bytes of events (stored uncompressed if they do not shrink),
// so an edited reference cannot make a reader allocate more.
const maxRefValue = chunkHeaderLenV2 + maxChunkRaw + hashLen

// parseRef reads a reference; ok is false for a value that is not a
// well-formed one.
func parseRef(v []byte) (chunkRef, bool) {
	if len(v) != refLen || string(v[:4]) != refMagic {
		return chunkRef{}, false
	}
	off, n := binary.BigEndian.Uint64(v[8:]), binary.BigEndian.Uint32(v[16:])
	if off > 1<<62 || n > maxRefValue {
		return chunkRef{}, false
	}
	return chunkRef{seg: binary.BigEndian.Uint32(v[4:]), off: int64(off), n: int(n)}, true
}

// unreadRef is what Tx.Chunks hands on for a reference whose bytes cannot
// be read: the reference and why, which parseChunk reports as
// errChunkUnread, so verification names the chunk instead of failing.
func unreadRef(err error) []byte {
	v := make([]byte, refLen, refLen+len(err.Error()))
	copy(v, refMagic)
	return append(v, err.Error()...)
}

// chunkLog is a bbolt backend's log. Its writer state is only touched in
// Update transactions, which bbolt runs one at a time.
type chunkLog struct {
	dir      string
	readOnly bool

	mu    sync.Mutex
	files map[uint32]*os.File // open segments, for reading and the current one for writing

	// Committed state, as in the chunk_log bucket (id "" until the first
	// segment is written).
	id    string
	seg   uint32
	end   int64
	newID string // the ID a first segment is being written under
	// readID is the ID readers open segments under: set before the
	// transaction that writes the first segment commits, since a reader
	// can see its references before that commit's OnCommit runs.
	readID string

	// dw writes the current segment with O_DIRECT (direct.go); nil until
	// the first write, and for good once the filesystem refused it.
	dw       *directWriter
	noDirect bool

	// rm keeps segments from being removed while Backup reads them.
	rm     sync.RWMutex
	doomed []uint32 // segments retention emptied, removed when no backup reads
}

func newChunkLog(storePath string, readOnly bool) *chunkLog {
	return &chunkLog{dir: ChunkDir(storePath), readOnly: readOnly, files: make(map[uint32]*os.File)}
}

func (l *chunkLog) segPath(id string, seg uint32) string {
	return filepath.Join(l.dir, fmt.Sprintf("%s-%08d.seg", id, seg))
}

// load reads the log's state from the bucket and, for a writer, cuts the
// current segment back to its committed end (bytes of a transaction that
// did not commit) and removes segments the store no longer references
// (left when the process stopped between a commit and the removal).
func (l *chunkLog) load(tx *bolt.Tx) error {
	b := tx.Bucket(bucketChunkLog)
	if b == nil {
		return nil
	}
	id, tail := b.Get([]byte("id")), b.Get([]byte("tail"))
	if len(tail) != 12 || !validLogID(string(id)) {
		return fmt.Errorf("%w: the chunk log's state in the store is unreadable", ErrBroken)
	}
	l.id, l.seg, l.end = string(id), binary.BigEndian.Uint32(tail), int64(binary.BigEndian.Uint64(tail[4:]))
	l.readID = l.id
	if l.readOnly {
		return nil
	}
	// Only ever shortened: a segment shorter than its committed end (or
	// missing) was damaged, and verification reports the chunks it lacks.
	// It is left as it is, for evidence, and new chunks go to the next
	// segment: appending after the committed end would need the bytes of
	// its last block, which are gone, so every write would fail.
	st, err := os.Stat(l.segPath(l.id, l.seg))
	switch {
	case err == nil && st.Size() > l.end:
		if err := os.Truncate(l.segPath(l.id, l.seg), l.end); err != nil {
			return fmt.Errorf("recorder: the chunk log's current segment: %w", err)
		}
	case (err == nil && st.Size() < l.end) || (errors.Is(err, os.ErrNotExist) && l.end > 0):
		l.seg, l.end = l.seg+1, 0
		// A segment past the committed one holds nothing committed.
		if err := os.Truncate(l.segPath(l.id, l.seg), 0); err != nil && !errors.Is(err, os.ErrNotExist) {
			return fmt.Errorf("recorder: the chunk log's next segment: %w", err)
		}
	case err != nil && !errors.Is(err, os.ErrNotExist):
		return fmt.Errorf("recorder: the chunk log's current segment: %w", err)
	}
	live := make(map[uint32]bool)
	c := b.Cursor()
	for k, _ := c.Seek([]byte("live")); k != nil && bytes.HasPrefix(k, []byte("live")); k, _ = c.Next() {
		if len(k) == 8 {
			live[binary.BigEndian.Uint32(k[4:])] = true
		}
	}
	ents, _ := os.ReadDir(l.dir)
	for _, e := range ents {
		seg, ok := l.segOf(e.Name())
		if ok && seg != l.seg && !live[seg] {
			os.Remove(filepath.Join(l.dir, e.Name()))
		}
	}
	return nil
}

// segOf reports the segment number of a file of this log.
func (l *chunkLog) segOf(name string) (uint32, bool) {
	rest, ok := strings.CutPrefix(name, l.id+"-")
	if !ok || l.id == "" {
		return 0, false
	}
	rest, ok = strings.CutSuffix(rest, ".seg")
	if !ok {
		return 0, false
	}
	n, err := strconv.ParseUint(rest, 10, 32)
	return uint32(n), err == nil
}

func validLogID(id string) bool {
	_, err := hex.DecodeString(id)
	return len(id) == 16 && err == nil
}

// file returns segment seg open for reading (and writing, for a writer).
func (l *chunkLog) file(id string, seg uint32, create bool) (*os.File, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if f := l.files[seg]; f != nil {
		return f, nil
	}
	flag := os.O_RDONLY
	if !l.readOnly {
		flag = os.O_RDWR
		if create {
			flag |= os.O_CREATE
			if err := os.MkdirAll(l.dir, 0o700); err != nil {
				return nil, err
			}
		}
	}
	f, err := os.OpenFile(l.segPath(id, seg), flag, 0o600)
	if err != nil {
		return nil, err
	}
	l.files[seg] = f
	return f, nil
}

// read returns the value ref points at, in *buf (reused).
func (l *chunkLog) read(ref chunkRef, buf *[]byte) ([]byte, error) {
	l.mu.Lock()
	id := l.readID
	l.mu.Unlock()
	if id == "" {
		return nil, errors.New("the store has no chunk log")
	}
	f, err := l.file(id, ref.seg, false)
	if err != nil {
		return nil, err
	}
	if cap(*buf) < ref.n {
		*buf = make([]byte, ref.n)
	}
	v := (*buf)[:ref.n]
	if _, err := f.ReadAt(v, ref.off); err != nil {
		if errors.Is(err, io.EOF) {
			err = io.ErrUnexpectedEOF
		}
		return nil, fmt.Errorf("%s at %d (%d bytes): %w", filepath.Base(f.Name()), ref.off, ref.n, err)
	}
	return v, nil
}

// logTx is one Update transaction's use of the log.
type logTx struct {
	id      string
	seg     uint32
	end     int64
	started bool
	newSeg  bool                // it began a segment: the directory entry must be durable too
	written map[uint32]*os.File // segments this transaction wrote, to sync
	live    map[uint32]int64    // change of each segment's live bytes
	stage   stage               // values waiting for one direct write
}

// appendValue writes v to the log and returns its reference.
func (t *boltTx) appendValue(v []byte) ([]byte, error) {
	l, lt := t.b.log, &t.log
	if !lt.started {
		l.mu.Lock()
		lt.started, lt.id, lt.seg, lt.end = true, l.id, l.seg, l.end
		l.mu.Unlock()
		if lt.id == "" {
			// The store's first segment. The ID is kept for a retry if
			// this transaction does not commit.
			if l.newID == "" {
				var b [8]byte
				rand.Read(b[:])
				l.newID = hex.EncodeToString(b[:])
			}
			lt.id, lt.seg, lt.end = l.newID, 1, 0
		}
		lt.written, lt.live = make(map[uint32]*os.File), make(map[uint32]int64)
	}
	if lt.end > 0 && lt.end+int64(len(v)) > segmentSize {
		if err := t.writeStage(); err != nil {
			return nil, err
		}
		lt.seg, lt.end = lt.seg+1, 0
		// A segment numbered past the committed one holds nothing
		// committed: a transaction that created it did not commit.
		if f, err := t.b.log.file(lt.id, lt.seg, true); err != nil {
			return nil, err
		} else if err := f.Truncate(0); err != nil {
			return nil, err
		}
	}
	f, err := l.file(lt.id, lt.seg, true)
	if err != nil {
		return nil, fmt.Errorf("chunk log: %w", err)
	}
	if staged, err := t.stageValue(f, v); err != nil {
		return nil, fmt.Errorf("chunk log: %w", err)
	} else if !staged {
		if _, err := f.WriteAt(v, lt.end); err != nil {
			return nil, fmt.Errorf("chunk log: %w", err)
		}
	}
	if lt.end == 0 {
		lt.newSeg = true
	}
	ref := chunkRef{seg: lt.seg, off: lt.end, n: len(v)}
	lt.end += int64(len(v))
	lt.written[lt.seg] = f
	lt.live[lt.seg] += int64(len(v))
	return ref.encode(), nil
}

// commitLog runs last in an Update that used the log: it makes the
// segments' bytes durable and records the log's state in the transaction,
// and after the commit moves the log's committed state and removes
// segments retention emptied.
func (t *boltTx) commitLog() error {
	lt, l := &t.log, t.b.log
	if len(lt.live) == 0 {
		return nil
	}
	if err := t.writeStage(); err != nil {
		return err
	}
	for _, seg := range slices.Sorted(maps.Keys(lt.written)) {
		if err := fdatasync(lt.written[seg]); err != nil {
			return fmt.Errorf("chunk log: sync: %w", err)
		}
	}
	if lt.newSeg {
		for _, d := range []string{l.dir, filepath.Dir(l.dir)} {
			if err := syncDir(d); err != nil {
				return fmt.Errorf("chunk log: sync %s: %w", d, err)
			}
		}
	}
	b, err := t.tx.CreateBucketIfNotExists(bucketChunkLog)
	if err != nil {
		return err
	}
	if lt.started {
		if err := b.Put([]byte("id"), []byte(lt.id)); err != nil {
			return err
		}
		tail := binary.BigEndian.AppendUint32(nil, lt.seg)
		if err := b.Put([]byte("tail"), binary.BigEndian.AppendUint64(tail, uint64(lt.end))); err != nil {
			return err
		}
		if err := t.tx.Bucket(bucketMeta).Put([]byte("format"), []byte(storeFormat2)); err != nil {
			return err
		}
	}
	l.mu.Lock()
	cur := l.seg
	l.mu.Unlock()
	if lt.started {
		cur = lt.seg
	}
	var emptied []uint32
	for seg, d := range lt.live {
		k := binary.BigEndian.AppendUint32([]byte("live"), seg)
		var n int64
		if v := b.Get(k); len(v) == 8 {
			n = int64(binary.BigEndian.Uint64(v))
		}
		n += d
		if n > 0 || seg == cur {
			if err := b.Put(k, binary.BigEndian.AppendUint64(nil, uint64(max(n, 0)))); err != nil {
				return err
			}
			continue
		}
		if err := b.Delete(k); err != nil {
			return err
		}
		emptied = append(emptied, seg)
	}
	started, id, seg, end := lt.started, lt.id, lt.seg, lt.end
	var tail []byte // the committed end's block, for the next direct write
	if lt.stage.tailSeg == seg {
		tail = lt.stage.tail
	}
	if started {
		l.mu.Lock()
		l.readID = id // the ID never changes once a segment is written
		l.mu.Unlock()
	}
	t.tx.OnCommit(func() {
		l.mu.Lock()
		defer l.mu.Unlock()
		if started {
			l.id, l.seg, l.end = id, seg, end
		}
		if tail != nil && l.dw != nil && l.dw.seg == seg {
			l.dw.tail = append(l.dw.tail[:0], tail...)
			l.dw.tailEnd = end
		}
		l.doomed = append(l.doomed, emptied...)
	})
	return nil
}

// removeDoomed removes the segments retention emptied unless a backup is
// reading segments (the next call does then).
func (l *chunkLog) removeDoomed() {
	l.mu.Lock()
	n := len(l.doomed)
	l.mu.Unlock()
	if n == 0 || !l.rm.TryLock() {
		return
	}
	defer l.rm.Unlock()
	l.mu.Lock()
	doomed, id := l.doomed, l.id
	l.doomed = nil
	for _, seg := range doomed {
		if f := l.files[seg]; f != nil {
			f.Close()
			delete(l.files, seg)
		}
	}
	l.mu.Unlock()
	for _, seg := range doomed {
		os.Remove(l.segPath(id, seg))
	}
}

// dropped accounts for a deleted chunk value.
func (t *boltTx) dropped(v []byte) {
	ref, ok := parseRef(v)
	if !ok {
		return
	}
	if t.log.live == nil {
		t.log.live = make(map[uint32]int64)
	}
	t.log.live[ref.seg] -= int64(ref.n)
}

// resolve returns the chunk value v stands for: v itself, or for a
// reference the bytes it points at (in *buf), or when those cannot be
// read the reference and why (which parseChunk reports).
func (t *boltTx) resolve(v []byte, buf *[]byte) []byte {
	if len(v) < 4 || string(v[:4]) != refMagic {
		return v
	}
	ref, ok := parseRef(v)
	if !ok {
		return unreadRef(errors.New("a malformed reference"))
	}
	data, err := t.b.log.read(ref, buf)
	if err != nil {
		return unreadRef(err)
	}
	return data
}

func (l *chunkLog) close() error {
	l.mu.Lock()
	defer l.mu.Unlock()
	var first error
	if l.dw != nil {
		first = l.dw.f.Close()
		l.dw = nil
	}
	for seg, f := range l.files {
		if err := f.Close(); err != nil && first == nil {
			first = err
		}
		delete(l.files, seg)
	}
	return first
}
