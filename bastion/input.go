package bastion

import (
	"sync"
)

// userInput is the user's input on a session channel, read on demand by
// its one consumer of the moment (pumpStdin or a shellGuard) on the
// consumer's own goroutine: an idle session then holds one goroutine
// blocked in the channel's Read instead of a reader and a consumer handing
// chunks across a channel (a goroutine and a read buffer less per idle
// session). Nothing is read before a consumer asks, so input typed before
// the session starts waits in the SSH window, as it did when the reader
// blocked on its hand-off.
//
// A decision waiting for an approver must still see the keys (Ctrl-C
// cancels) while its goroutine waits elsewhere: watch starts a reader
// goroutine for that, and from then on every chunk, the consumer's
// included, comes through it, so the channel never has two readers. Only a
// session that waited on an approval with a terminal pays for it.
type userInput struct {
	p   *proxy
	ab  adaptiveBuf
	err error // the channel's read error, once seen (only the reader touches it)

	mu sync.Mutex
	bg chan []byte // the reader goroutine's chunks, once watch started it; closed at the end
}

// read reads one chunk and hands it to use before the buffer is reused.
// The calling goroutine must be the channel's only reader: the consumer
// before watch, the reader goroutine after. A chunk that comes with an
// error is handed over first; the error is returned by the next read.
func (in *userInput) read(use func([]byte)) error {
	for in.err == nil {
		buf := in.ab.get()
		n, err := in.p.down.Read(buf)
		if err != nil {
			in.err = err
		}
		if n > 0 {
			in.p.ss.act.touch(in.p.env.now())
			in.p.ss.recordInput(buf[:n]) // dropped by the recorder unless recording.input is on
			use(buf[:n])
			in.ab.adapt(n, buf)
			return nil
		}
	}
	in.ab.release()
	return in.err
}

// reader returns the reader goroutine's chunks, or nil while the consumer
// reads the channel itself.
func (in *userInput) reader() <-chan []byte {
	in.mu.Lock()
	defer in.mu.Unlock()
	return in.bg
}

// next returns the next chunk, the caller's to keep, or false once the
// input has ended.
func (in *userInput) next() ([]byte, bool) {
	if bg := in.reader(); bg != nil {
		chunk, ok := <-bg
		return chunk, ok
	}
	var chunk []byte
	if err := in.read(func(b []byte) { chunk = append([]byte(nil), b...) }); err != nil {
		return nil, false
	}
	return chunk, true
}

// watch returns the input as a channel, closed at its end, for a wait that
// must see keys while its goroutine is blocked elsewhere. It is called by
// the consumer (or before there is one), never while the consumer is in
// read. The reader goroutine it starts stays for the rest of the session.
func (in *userInput) watch() <-chan []byte {
	in.mu.Lock()
	defer in.mu.Unlock()
	if in.bg == nil {
		in.bg = make(chan []byte)
		go in.feed(in.bg)
	}
	return in.bg
}

// feed is the reader goroutine.
func (in *userInput) feed(ch chan<- []byte) {
	defer close(ch)
	for {
		var chunk []byte
		if in.read(func(b []byte) { chunk = append([]byte(nil), b...) }) != nil {
			return
		}
		select {
		case ch <- chunk:
		case <-in.p.ss.ctx.Done():
			return
		}
	}
}

// copyTo hands the input to w as it comes, until the input ends or w
// fails. Read directly, the bytes are valid only during the call.
func (in *userInput) copyTo(w func([]byte) error) {
	if bg := in.reader(); bg != nil {
		for chunk := range bg {
			if w(chunk) != nil {
				return
			}
		}
		return
	}
	var werr error
	for werr == nil {
		if in.read(func(b []byte) { werr = w(b) }) != nil {
			return
		}
	}
}
