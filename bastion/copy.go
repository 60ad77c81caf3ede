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

// copyBufPool holds relay buffers. 32 KiB matches x/crypto's channel packet
// size, so one Read from a channel fills at most one buffer.
var copyBufPool = sync.Pool{New: func() any { b := make([]byte, 32<<10); return &b }}

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
	bp := copyBufPool.Get().(*[]byte)
	defer copyBufPool.Put(bp)
	buf := *bp
	var n int64
	var err error
	for {
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
		if rerr != nil {
			if !errors.Is(rerr, io.EOF) {
				err = rerr
			}
			break
		}
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
