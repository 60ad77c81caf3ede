package bastion

import (
	"sync"

	gossh "golang.org/x/crypto/ssh"
)

// requestQueue handles one side's channel requests in order, on a
// goroutine that runs only while some are queued. The loop receiving them
// (upstreamConn.serve, for both sides of a session) never waits on a
// handler, which matters twice: a handler may wait for the other side's
// answer (a forwarded window-change, the target's keepalive), and x/crypto
// delivers that answer only once the requests queued before it are
// received, so a loop that waited could deadlock with more than x/crypto's
// 16 queued; and an idle session holds no goroutine for its requests.
type requestQueue struct {
	handle  func(*gossh.Request)
	onPanic func(v any) // a handler's panic, recovered; nil lets it crash

	mu      sync.Mutex
	queue   []*gossh.Request
	running bool   // a worker is handling the queue
	ended   bool   // no request will be pushed again
	broken  bool   // a handler panicked: requests are refused
	atEnd   func() // run once the queue is empty and ended
}

// push queues a request, starting a worker if none runs. After a
// handler's panic the queue only refuses.
func (q *requestQueue) push(req *gossh.Request) {
	q.mu.Lock()
	if q.broken {
		q.mu.Unlock()
		if req.WantReply {
			req.Reply(false, nil)
		}
		return
	}
	q.queue = append(q.queue, req)
	start := !q.running
	q.running = true
	q.mu.Unlock()
	if start {
		go q.work()
	}
}

// end says no more requests come; atEnd runs once those queued are
// handled, on the worker's goroutine or this one.
func (q *requestQueue) end(atEnd func()) {
	q.mu.Lock()
	q.ended, q.atEnd = true, atEnd
	idle := !q.running
	q.mu.Unlock()
	if idle {
		atEnd()
	}
}

func (q *requestQueue) work() {
	if q.onPanic != nil {
		defer func() {
			if v := recover(); v != nil {
				q.mu.Lock()
				q.broken, q.running, q.queue = true, false, nil
				atEnd := q.atEnd
				if !q.ended {
					atEnd = nil
				}
				q.mu.Unlock()
				q.onPanic(v)
				if atEnd != nil {
					atEnd() // what waits for the end is not left waiting
				}
			}
		}()
	}
	for {
		q.mu.Lock()
		if len(q.queue) == 0 {
			q.running = false
			q.queue = nil // an idle session keeps no backing array
			atEnd := q.atEnd
			if !q.ended {
				atEnd = nil
			}
			q.mu.Unlock()
			if atEnd != nil {
				atEnd()
			}
			return
		}
		req := q.queue[0]
		q.queue[0] = nil
		q.queue = q.queue[1:]
		q.mu.Unlock()
		q.handle(req)
	}
}
