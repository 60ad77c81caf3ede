package bastion

import (
	"errors"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"
)

// closeWriter is implemented by ssh.Channel and *net.TCPConn.
type closeWriter interface {
	CloseWrite() error
}

// Relay buffers. An idle session's relays wait in Read with a small buffer;
// a read that fills it switches to a pooled large one until a read comes
// back short. So a thousand idle sessions do not hold a thousand sets of
// large buffers. The small one holds a keystroke's echo or a prompt;
// anything larger fills it and moves to the large one (512 bytes rather
// than 2 KiB: 3 KiB less per idle session, for its stdout and stderr
// relays).
//
// The large one is 128 KiB, four SSH packets: a read from an x/crypto
// channel returns every packet already queued, and one from a TCP socket
// what the socket holds, so a streaming relay makes a quarter of the reads,
// writes, masking and recording calls it made with 32 KiB (one packet).
// Measured in `make bench`'s shell-output row, alternating builds: 11.3 and
// 12.6 bastion CPU s/GiB with 32 KiB, 9.7 with 128 KiB and 9.2–9.9 with
// 256 KiB, so 128 KiB, at 96 KiB more per streaming direction.
const (
	smallBuf = 512
	largeBuf = 128 << 10
)

var copyBufPool = sync.Pool{New: func() any { b := make([]byte, largeBuf); return &b }}

// adaptiveBuf is a read buffer that grows under load and shrinks when idle.
type adaptiveBuf struct {
	small [smallBuf]byte
	large *[]byte
}

// get returns the buffer for the next read.
func (a *adaptiveBuf) get() []byte {
	if a.large != nil {
		return *a.large
	}
	return a.small[:]
}

// adapt sizes the buffer after a read of n bytes into buf.
func (a *adaptiveBuf) adapt(n int, buf []byte) {
	switch {
	case n == len(buf) && a.large == nil:
		a.large = copyBufPool.Get().(*[]byte)
	case n < smallBuf && a.large != nil:
		a.release()
	}
}

func (a *adaptiveBuf) release() {
	if a.large != nil {
		copyBufPool.Put(a.large)
		a.large = nil
	}
}

// activity records when data last moved, for idle timeouts.
type activity struct{ last atomic.Int64 }

func (a *activity) touch(now time.Time) { a.last.Store(now.UnixNano()) }

func (a *activity) since(now time.Time) time.Duration {
	return now.Sub(time.Unix(0, a.last.Load()))
}

// relay copies src to dst, then half-closes dst so the peer sees EOF while
// the other direction keeps flowing. It returns the bytes copied. Copying
// that closes both ends on the first EOF cuts off the tail of a stream;
// this never does.
func relay(dst io.Writer, src io.Reader, count func(int), act *activity, now func() time.Time) (int64, error) {
	return relayThen(dst, src, count, act, now, nil)
}

// relayThen is relay that calls ended, when set, with relay's error once
// src is done and before dst is half-closed: what it records of the end
// of one direction is recorded before the peer, seeing EOF, can answer.
func relayThen(dst io.Writer, src io.Reader, count func(int), act *activity, now func() time.Time, ended func(error)) (int64, error) {
	ab := new(adaptiveBuf)
	defer ab.release()
	var n int64
	var err error
	for {
		buf := ab.get()
		nr, rerr := src.Read(buf)
		if nr > 0 {
			if act != nil {
				act.touch(now())
			}
			nw, werr := dst.Write(buf[:nr])
			n += int64(nw)
			if count != nil {
				count(nw)
			}
			if werr != nil {
				err = werr
				break
			}
			if nw != nr {
				err = io.ErrShortWrite
				break
			}
		}
		// Only now is buf free to go back to the pool.
		ab.adapt(nr, buf)
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				err = rerr
			}
			break
		}
	}
	if ended != nil {
		ended(err)
	}
	if cw, ok := dst.(closeWriter); ok {
		cw.CloseWrite()
	}
	return n, err
}

// isClosedErr reports errors that only mean the other side went away.
func isClosedErr(err error) bool {
	return err == nil || errors.Is(err, io.EOF) || errors.Is(err, net.ErrClosed) || errors.Is(err, io.ErrClosedPipe)
}
