package recorder

import (
	"errors"
	"fmt"
	"os"
	"syscall"
	"unsafe"
)

// Direct writes of the chunk log's current segment.
//
// Written through the page cache, every byte of a streaming recording is
// copied into a dirty page, and the writes of a segment that grows wait
// on the filesystem's journal while the previous fdatasync commits it: on
// the bench machine (ext4 on a virtio disk) a flush's writes of 4 MiB took
// 10–13 ms and its fdatasync 5 ms, against about 1 ms per MiB for the disk
// itself; and the page-cache path slowed as the store grew: five rounds of
// the bench's content-recorded -L row into one store went at 301, 282, 168,
// 179 and 197 MiB/s (3.0 rising to 5.5 CPU s/GiB), against 207–239 MiB/s at
// 3.0–3.3 CPU s/GiB with direct writes (a fresh store's first GiB or two
// go faster through the page cache). So a transaction's values are gathered in one aligned buffer and
// written with O_DIRECT when it commits, in whole blocks: the block the
// committed end falls in is written again with the bytes it holds (kept
// in memory, the tail), and the last block is padded with zeros past the
// transaction's end, which the next transaction writes over and a restart
// cuts off (load). fdatasync follows as before, so durability is the same.
// Readers keep reading through the page cache, which a direct write
// invalidates for its range; the committed bytes of a block written again
// are the same before and after. Where the filesystem refuses O_DIRECT
// (tmpfs, some network filesystems) the log writes through the page cache.

// directAlign is the alignment of direct writes: their memory, offset and
// length (4 KiB covers 512-byte and 4 KiB logical blocks).
const directAlign = 4096

// directIO turns direct writes on; tests turn it off to cover the
// page-cache path on filesystems that take both.
var directIO = true

// openDirect and writeDirect are the system calls (variables for tests of
// a filesystem that refuses them).
var (
	openDirect = func(path string) (*os.File, error) {
		return os.OpenFile(path, os.O_WRONLY|syscall.O_DIRECT, 0)
	}
	writeDirect = func(f *os.File, b []byte, off int64) (int, error) { return f.WriteAt(b, off) }
)

// maxKeptStage is the largest staging buffer kept between transactions.
const maxKeptStage = 16 << 20

// directWriter is the current segment opened for direct writes.
type directWriter struct {
	seg     uint32
	f       *os.File // O_WRONLY|O_DIRECT
	tail    []byte   // the committed bytes of the block tailEnd is in
	tailEnd int64    // the committed end tail was taken at; -1: none
	buf     []byte   // aligned staging memory, reused across transactions
}

// stage is one transaction's values for one segment, waiting for one
// direct write.
type stage struct {
	on      bool
	seg     uint32
	off     int64  // where b starts in the segment, a multiple of directAlign
	from    int    // where the values start in b (before: the tail's bytes)
	b       []byte // aligned
	tail    []byte // after the write: b's bytes in the block its end is in
	tailSeg uint32
}

// directFor returns the direct writer for segment seg, opening it.
func (l *chunkLog) directFor(id string, seg uint32) (*directWriter, error) {
	if l.dw != nil && l.dw.seg == seg {
		return l.dw, nil
	}
	f, err := openDirect(l.segPath(id, seg))
	if err != nil {
		return nil, err
	}
	var buf []byte
	l.mu.Lock()
	if l.dw != nil {
		l.dw.f.Close()
		buf = l.dw.buf
	}
	l.dw = &directWriter{seg: seg, f: f, buf: buf, tailEnd: -1}
	l.mu.Unlock()
	return l.dw, nil
}

// stageValue adds v, which belongs at the transaction's end of its
// segment (f, opened for reading and writing), to the stage. It reports
// false when the log writes through the page cache instead.
func (t *boltTx) stageValue(f *os.File, v []byte) (bool, error) {
	l, lt := t.b.log, &t.log
	st := &lt.stage
	if !st.on || st.seg != lt.seg {
		if !directIO || l.noDirect {
			return false, nil
		}
		dw, err := l.directFor(lt.id, lt.seg)
		if errors.Is(err, syscall.EINVAL) || errors.Is(err, syscall.EOPNOTSUPP) {
			l.noDirect = true
			return false, nil
		}
		if err != nil {
			return false, err
		}
		off := lt.end &^ (directAlign - 1)
		n := int(lt.end - off)
		b := alignedAppend(dw.buf[:0], nil, n)[:n]
		if n > 0 {
			if dw.tailEnd == lt.end && len(dw.tail) == n {
				copy(b, dw.tail)
			} else if _, err := f.ReadAt(b, off); err != nil {
				// After a restart: the block's committed bytes from the
				// file (load cut it at the committed end).
				return false, fmt.Errorf("read the segment's last block: %w", err)
			}
		}
		*st = stage{on: true, seg: lt.seg, off: off, from: n, b: b, tail: st.tail, tailSeg: st.tailSeg}
	}
	st.b = alignedAppend(st.b, v, 0)
	return true, nil
}

// writeStage writes the stage, if any, in whole blocks.
func (t *boltTx) writeStage() error {
	l, lt := t.b.log, &t.log
	st := &lt.stage
	if !st.on {
		return nil
	}
	st.on = false
	n := len(st.b)
	padded := (n + directAlign - 1) &^ (directAlign - 1)
	b := alignedAppend(st.b, nil, padded-n)[:padded]
	clear(b[n:])
	if l.dw != nil && l.dw.seg == st.seg {
		// Keep the buffer for the next transaction, unless a burst
		// (many sessions in one flush) grew it past what streaming needs.
		l.dw.buf = nil
		if cap(b) <= maxKeptStage {
			l.dw.buf = b[:0]
		}
	}
	_, err := writeDirect(l.dw.f, b, st.off)
	if errors.Is(err, syscall.EINVAL) {
		// The filesystem took the open but not the write: through the
		// page cache from now on.
		l.noDirect = true
		var f *os.File
		if f, err = l.file(lt.id, st.seg, true); err == nil {
			_, err = f.WriteAt(b[st.from:n], st.off+int64(st.from))
		}
	}
	if err != nil {
		return fmt.Errorf("chunk log: %w", err)
	}
	last := (n - 1) &^ (directAlign - 1)
	if n%directAlign == 0 {
		last = n
	}
	st.tail, st.tailSeg = b[last:n], st.seg
	return nil
}

// alignedAppend appends v to b, which starts at a directAlign boundary,
// with room for extra more bytes, moving b to new aligned memory when it
// does not fit.
func alignedAppend(b, v []byte, extra int) []byte {
	need := len(b) + len(v) + extra
	if need > cap(b) {
		c := max(2*cap(b), need, 1<<20)
		c = (c + directAlign - 1) &^ (directAlign - 1)
		raw := make([]byte, c+directAlign)
		skip := 0
		if r := int(uintptr(unsafe.Pointer(&raw[0])) & (directAlign - 1)); r != 0 {
			skip = directAlign - r
		}
		nb := raw[skip : skip+len(b) : skip+c]
		copy(nb, b)
		b = nb
	}
	return append(b, v...)
}
