package bastion

import (
	"bytes"
	"context"
	"errors"
	"io"
	"sync/atomic"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// scriptedChannel is a session channel whose reads return scripted steps,
// one per Read, blocking until the next is given; it fails the test when
// two reads overlap (the channel must have one reader at a time).
type scriptedChannel struct {
	gossh.Channel
	t       *testing.T
	steps   chan readStep
	reading atomic.Int32
}

type readStep struct {
	data string
	err  error
}

func (c *scriptedChannel) Read(p []byte) (int, error) {
	if c.reading.Add(1) > 1 {
		c.t.Error("two reads of the channel at once")
	}
	defer c.reading.Add(-1)
	s := <-c.steps
	return copy(p, s.data), s.err
}

func newTestInput(t *testing.T) (*userInput, *scriptedChannel, context.CancelFunc) {
	ch := &scriptedChannel{t: t, steps: make(chan readStep)}
	ctx, cancel := context.WithCancel(context.Background())
	p := &proxy{env: &sessionEnv{now: time.Now}, ss: &session{ctx: ctx}, down: ch}
	return &userInput{p: p}, ch, cancel
}

// give hands the channel its next read's result, within a minute.
func (c *scriptedChannel) give(data string, err error) {
	c.t.Helper()
	select {
	case c.steps <- readStep{data, err}:
	case <-time.After(time.Minute):
		c.t.Fatalf("nobody read %q", data)
	}
}

// next reads in order, hands over a chunk that came with an error before
// the end, and returns chunks the caller keeps.
func TestUserInputNext(t *testing.T) {
	in, ch, cancel := newTestInput(t)
	defer cancel()
	go func() {
		ch.give("ab", nil)
		ch.give("cd", io.EOF)
	}()
	first, ok := in.next()
	if !ok || string(first) != "ab" {
		t.Fatalf("first: %q %v", first, ok)
	}
	second, ok := in.next()
	if !ok || string(second) != "cd" {
		t.Fatalf("second (with EOF): %q %v", second, ok)
	}
	if string(first) != "ab" {
		t.Errorf("the first chunk changed under the caller: %q", first)
	}
	if b, ok := in.next(); ok {
		t.Fatalf("after EOF: %q, want the end", b)
	}
	if in.p.ss.act.last.Load() == 0 {
		t.Error("reading input did not count as activity")
	}
}

// Once a wait watches the keys, the reader goroutine reads for everyone:
// the watcher sees what is typed while it waits, the consumer gets what
// comes after, in order, and the end reaches both.
func TestUserInputWatch(t *testing.T) {
	in, ch, cancel := newTestInput(t)
	defer cancel()
	go ch.give("a", nil)
	if b, ok := in.next(); !ok || string(b) != "a" {
		t.Fatalf("before the watch: %q %v", b, ok)
	}
	keys := in.watch()
	if in.watch() != keys {
		t.Fatal("a second watch started a second reader")
	}
	go ch.give("\x03", nil)
	select {
	case b := <-keys:
		if string(b) != "\x03" {
			t.Fatalf("the watcher saw %q", b)
		}
	case <-time.After(time.Minute):
		t.Fatal("the watcher saw nothing")
	}
	go func() {
		ch.give("b", nil)
		ch.give("", errors.New("channel closed"))
	}()
	if b, ok := in.next(); !ok || string(b) != "b" {
		t.Fatalf("after the watch: %q %v", b, ok)
	}
	if b, ok := in.next(); ok {
		t.Fatalf("after the end: %q", b)
	}
	if _, ok := <-keys; ok {
		t.Error("the watch channel stayed open after the end")
	}
}

// copyTo hands every byte over in order until the end, the last chunk
// that came with EOF included.
func TestUserInputCopyTo(t *testing.T) {
	in, ch, cancel := newTestInput(t)
	defer cancel()
	big := string(bytes.Repeat([]byte("x"), smallBuf)) // fills the small buffer: the next read is large
	go func() {
		ch.give("one ", nil)
		ch.give(big, nil)
		ch.give(" two", nil)
		ch.give(" end", io.EOF)
	}()
	var got bytes.Buffer
	in.copyTo(func(b []byte) error { got.Write(b); return nil })
	if want := "one " + big + " two end"; got.String() != want {
		t.Fatalf("copied %d bytes, want %d in order", got.Len(), len(want))
	}
	if in.ab.large != nil {
		t.Error("the large buffer was kept after the end")
	}
}
