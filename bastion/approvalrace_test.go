package bastion

import (
	"context"
	"log/slog"
	"sync"
	"testing"
	"time"

	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/ca"
)

// TestApprovalRacingTimeoutAgreesWithAudit: an approver's decision that
// is being written to the audit log when the request's deadline passes
// (or the requester cancels) is the outcome: the session must not take
// the request as neither approved nor timed out (it did: "cancelled; not
// run") while the audit log and the approver were told "approved". The
// audit write is slowed so the race is certain.
func TestApprovalRacingTimeoutAgreesWithAudit(t *testing.T) {
	pol, err := policy.Compile(policy.Spec{
		Targets: []policy.TargetSpec{{Name: "web1", Kind: "ssh", Address: "h:22", TrustOnFirstUse: true}},
		Roles:   []policy.RoleSpec{{Name: "approvers", Groups: []string{"sre"}, Approve: []string{"web*"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, cancelled := range []bool{false, true} {
		var mu sync.Mutex
		var events []string
		a := &approvals{
			audit: func(ev Event) error {
				if ev.Type == "command.approve" {
					time.Sleep(300 * time.Millisecond) // a slow audit sink
				}
				mu.Lock()
				defer mu.Unlock()
				events = append(events, ev.Type+":"+ev.Outcome)
				return nil
			},
			policy: func() *policy.Policy { return pol }, log: slog.New(slog.DiscardHandler), m: map[string]*approval{},
		}
		alice := ca.Identity{User: "alice", Issuer: "i", Subject: "a"}
		bob := Caller{Identity: ca.Identity{User: "bob", Issuer: "i", Subject: "b", Groups: []string{"sre"}}}
		timeout := 100 * time.Millisecond
		if cancelled {
			timeout = time.Minute
		}
		ap := a.request(&approval{Requester: alice, User: "alice", Target: "web1", Command: "./deploy.sh", Rule: "deploys",
			Approvers: []string{"approvers"}, Created: time.Now(), Expires: time.Now().Add(timeout)})
		ctx, cancel := context.WithCancel(context.Background())
		decided := make(chan error, 1)
		go func() {
			_, err := a.decide(bob, ap.ID, true, "", "")
			decided <- err
		}()
		time.Sleep(30 * time.Millisecond) // the decision is being audited
		if cancelled {
			go func() { time.Sleep(50 * time.Millisecond); cancel() }()
		}
		outcome, _, _ := a.wait(ctx, ap)
		cancel()
		derr := <-decided
		mu.Lock()
		ev := append([]string(nil), events...)
		mu.Unlock()
		approvedInAudit := false
		for _, e := range ev {
			if e == "command.approve:approved" {
				approvedInAudit = true
			}
		}
		if approvedInAudit != (outcome == Approved) || (derr == nil) != (outcome == Approved) {
			t.Errorf("cancelled=%v: the session got %q, the approver was told err=%v, the audit log has %v", cancelled, outcome, derr, ev)
		}
	}
}
