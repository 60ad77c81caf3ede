package bastion

import (
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/bastionhq/bastion/ca"
)

// TestPendingOfCountsThePerson: approvals.max_pending bounds what one
// person has waiting, as ownRequest knows people (one user name), so a
// second account that maps to the same name does not double it.
func TestPendingOfCountsThePerson(t *testing.T) {
	now := time.Unix(1_800_000_000, 0)
	carol := ca.Identity{User: "carol", Issuer: "https://idp.example.com", Subject: "00u1"}
	carol2 := ca.Identity{User: "carol", Issuer: "https://idp.example.com", Subject: "00u9"} // carol+2@
	dave := ca.Identity{User: "dave", Issuer: "https://idp.example.com", Subject: "00u2"}
	a := &approvals{now: func() time.Time { return now }, maxPending: 10, m: map[string]*approval{}}
	add := func(id string, r ca.Identity, outcome string, expires time.Time) {
		a.m[id] = &approval{Requester: r, User: r.User, Expires: expires, outcome: outcome}
	}
	add("a", carol, "", now.Add(time.Minute))
	add("b", carol2, "", now.Add(time.Minute))
	add("c", carol2, "approved", now.Add(time.Minute)) // decided
	add("d", carol, "", now.Add(-time.Second))         // expired
	add("e", dave, "", now.Add(time.Minute))
	for _, tc := range []struct {
		id   ca.Identity
		want int
	}{{carol, 2}, {carol2, 2}, {dave, 1}, {ca.Identity{User: "erin", Issuer: "https://idp.example.com", Subject: "00u3"}, 0}} {
		if got := a.pendingOf(tc.id); got != tc.want {
			t.Errorf("pendingOf(%s %s) = %d, want %d", tc.id.User, tc.id.Subject, got, tc.want)
		}
	}
}

// TestMaxPendingRequestsAtOnce: requests one person makes at the same
// moment cannot all pass the count of approvals.max_pending, in memory as
// on a shared board (whose Put counts under the person's lock).
func TestMaxPendingRequestsAtOnce(t *testing.T) {
	for _, tc := range []struct {
		name  string
		board ApprovalBoard
	}{{"in memory", nil}, {"shared board", &fakeBoard{m: map[string]*fakeRequest{}}}} {
		t.Run(tc.name, func(t *testing.T) {
			a := &approvals{audit: func(Event) error { return nil }, log: slog.New(slog.DiscardHandler),
				m: map[string]*approval{}, maxPending: 3, board: tc.board}
			carol := ca.Identity{User: "carol", Issuer: "https://idp.example.com", Subject: "00u1"}
			start := make(chan struct{})
			var wg sync.WaitGroup
			var mu sync.Mutex
			held := 0
			for range 40 {
				wg.Add(1)
				go func() {
					defer wg.Done()
					<-start
					ap := a.request(&approval{Requester: carol, User: carol.User, Created: time.Now(), Expires: time.Now().Add(time.Minute)})
					if _, refused := a.refusedAtOnce(ap); !refused {
						mu.Lock()
						held++
						mu.Unlock()
					}
				}()
			}
			close(start)
			wg.Wait()
			if held != 3 {
				t.Fatalf("%d of 40 requests made at once were held, with max_pending 3", held)
			}
		})
	}
}
