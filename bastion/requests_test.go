package bastion

import (
	"fmt"
	"sync"
	"testing"
	"time"

	gossh "golang.org/x/crypto/ssh"
)

// A queue handles its requests in the order pushed, one at a time, runs
// its end only after the last of them, and leaves no worker behind.
func TestRequestQueueOrder(t *testing.T) {
	var mu sync.Mutex
	var got []string
	busy := 0
	release := make(chan struct{})
	q := &requestQueue{handle: func(r *gossh.Request) {
		mu.Lock()
		busy++
		if busy > 1 {
			t.Errorf("two handlers at once")
		}
		mu.Unlock()
		if r.Type == "r0" {
			<-release // later pushes queue behind a slow handler
		}
		mu.Lock()
		got = append(got, r.Type)
		busy--
		mu.Unlock()
	}}
	for i := range 50 {
		q.push(&gossh.Request{Type: fmt.Sprintf("r%d", i)})
	}
	ended := make(chan []string, 1)
	q.end(func() {
		mu.Lock()
		defer mu.Unlock()
		ended <- append([]string(nil), got...)
	})
	select {
	case <-ended:
		t.Fatal("the end ran before the queued requests were handled")
	case <-time.After(50 * time.Millisecond):
	}
	close(release)
	var at []string
	select {
	case at = <-ended:
	case <-time.After(time.Minute):
		t.Fatal("the end never ran")
	}
	if len(at) != 50 {
		t.Fatalf("the end ran after %d of 50 requests", len(at))
	}
	for i, typ := range at {
		if want := fmt.Sprintf("r%d", i); typ != want {
			t.Fatalf("request %d handled was %s, want %s (in order)", i, typ, want)
		}
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.running || q.queue != nil {
		t.Errorf("after the end: running %v, %d queued; want no worker and no queue", q.running, len(q.queue))
	}
}

// An idle queue ends at once, on the caller's goroutine; one that went
// idle starts a worker again for the next request.
func TestRequestQueueIdle(t *testing.T) {
	handled := make(chan string, 4)
	q := &requestQueue{handle: func(r *gossh.Request) { handled <- r.Type }}
	for _, typ := range []string{"a", "b"} {
		q.push(&gossh.Request{Type: typ})
		if got := <-handled; got != typ {
			t.Fatalf("handled %q, want %q", got, typ)
		}
		for { // until the worker has gone
			q.mu.Lock()
			running := q.running
			q.mu.Unlock()
			if !running {
				break
			}
			time.Sleep(time.Millisecond)
		}
	}
	ran := false
	q.end(func() { ran = true })
	if !ran {
		t.Error("the end of an idle queue did not run at once")
	}
}

// serve never waits on a handler: a user's request whose handling waits
// for the target's next request (as a forwarded request waits for an
// answer x/crypto delivers only after the requests queued before it) does
// not stop that request from being handled.
func TestServeDoesNotWaitOnHandlers(t *testing.T) {
	downReqs := make(chan *gossh.Request)
	upReqs := make(chan *gossh.Request)
	upHandled := make(chan struct{})
	down := &requestQueue{handle: func(*gossh.Request) { <-upHandled }}
	up := &requestQueue{handle: func(*gossh.Request) { close(upHandled) }}
	downDone, upDone := make(chan struct{}), make(chan struct{})
	served := make(chan struct{})
	go func() {
		defer close(served)
		(&upstreamConn{}).serve(downReqs, upReqs, down, up, func() { close(downDone) }, func() { close(upDone) })
	}()
	feed := func(ch chan *gossh.Request, typ string) {
		select {
		case ch <- &gossh.Request{Type: typ}:
		case <-time.After(time.Minute):
			t.Fatalf("serve did not take the %s request", typ)
		}
	}
	feed(downReqs, "window-change")
	feed(upReqs, "keepalive@openssh.com")
	close(downReqs)
	close(upReqs)
	for _, c := range []struct {
		what string
		ch   chan struct{}
	}{{"the user's requests' end", downDone}, {"the target's requests' end", upDone}, {"serve", served}} {
		select {
		case <-c.ch:
		case <-time.After(time.Minute):
			t.Fatalf("%s never came", c.what)
		}
	}
}

// A handler's panic is handed to onPanic, what waits for the queue's end
// is not left waiting, and later requests are refused, not queued.
func TestRequestQueuePanic(t *testing.T) {
	panicked := make(chan any, 1)
	q := &requestQueue{handle: func(r *gossh.Request) {
		if r.Type == "boom" {
			panic("boom")
		}
	}, onPanic: func(v any) { panicked <- v }}
	q.push(&gossh.Request{Type: "boom"})
	select {
	case v := <-panicked:
		if v != "boom" {
			t.Fatalf("onPanic got %v", v)
		}
	case <-time.After(time.Minute):
		t.Fatal("onPanic never ran")
	}
	q.push(&gossh.Request{Type: "after"}) // refused: no worker starts
	ended := make(chan struct{})
	q.end(func() { close(ended) })
	select {
	case <-ended:
	case <-time.After(time.Minute):
		t.Fatal("the end never ran after a panic")
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if q.running || len(q.queue) != 0 {
		t.Errorf("after a panic: running %v, %d queued", q.running, len(q.queue))
	}
}
