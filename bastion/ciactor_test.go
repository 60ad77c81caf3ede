package bastion

import (
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/ca"
)

// TestApprovalsTriggeredBy: a CI run's requests are not decided by the
// person who triggered it (oidc.workload actor_claim), nor by another run
// that person triggered, in memory and through a shared board read by
// another replica; another approver decides them.
func TestApprovalsTriggeredBy(t *testing.T) {
	pol, err := policy.Compile(policy.Spec{
		Targets: []policy.TargetSpec{{Name: "web1", Kind: "ssh", Address: "h:22", TrustOnFirstUse: true}},
		Roles:   []policy.RoleSpec{{Name: "approvers", Groups: []string{"sre"}, Approve: []string{"web*"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	run := ca.Identity{User: "ci-etl", Issuer: "https://ci", Subject: "repo:acme/etl:ref:refs/heads/main", Workload: true, Actor: "alice"}
	alice := Caller{Identity: ca.Identity{User: "alice", Issuer: "i", Subject: "a", Groups: []string{"sre"}}}
	aliceRun := Caller{Identity: ca.Identity{User: "ci-approve", Issuer: "https://ci", Subject: "repo:acme/ops", Workload: true, Actor: "alice", Groups: []string{"sre"}}}
	bob := Caller{Identity: ca.Identity{User: "bob", Issuer: "i", Subject: "b", Groups: []string{"sre"}}}
	newApprovals := func(board ApprovalBoard) *approvals {
		return &approvals{audit: func(Event) error { return nil }, policy: func() *policy.Policy { return pol },
			log: slog.New(slog.DiscardHandler), m: map[string]*approval{}, board: board}
	}
	for _, tc := range []struct {
		name     string
		here, at *approvals // the requester's replica, the approvers'
	}{
		{"memory", nil, nil},
		{"shared board", nil, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.here = newApprovals(nil)
			tc.at = tc.here
			if tc.name == "shared board" {
				board := &fakeBoard{m: map[string]*fakeRequest{}}
				tc.here, tc.at = newApprovals(board), newApprovals(board)
			}
			ap := tc.here.request(&approval{Requester: run, User: run.User, Target: "web1", Command: "./load.sh", Rule: "loads",
				Approvers: []string{"approvers"}, Created: time.Now(), Expires: time.Now().Add(time.Minute)})
			list, err := tc.at.visible(alice)
			if err != nil || len(list) != 1 {
				t.Fatalf("alice sees %v, %v", list, err)
			}
			if r := list[0].request(alice); r.Actor != "alice" || !r.Triggered || r.Own || r.Who() != "ci-etl (triggered by alice)" {
				t.Fatalf("alice is shown %+v", r)
			}
			if js, _ := json.Marshal(list[0]); !strings.Contains(string(js), `"actor":"alice"`) {
				t.Fatalf("requests --json: %s", js)
			}
			for _, c := range []Caller{alice, aliceRun} {
				if _, err := tc.at.decide(c, ap.ID, true, "", ""); !errors.Is(err, ErrTriggeredApprove) || !strings.Contains(err.Error(), "ci-etl (triggered by alice)") {
					t.Fatalf("%s approving: %v", c.Identity.User, err)
				}
			}
			if _, err := tc.at.decide(bob, ap.ID, true, "", ""); err != nil {
				t.Fatalf("bob approving: %v", err)
			}
		})
	}
	// The other way: a run alice triggered does not approve alice's request.
	a := newApprovals(nil)
	ap := a.request(&approval{Requester: alice.Identity, User: "alice", Target: "web1", Command: "./deploy.sh", Rule: "deploys",
		Approvers: []string{"approvers"}, Created: time.Now(), Expires: time.Now().Add(time.Minute)})
	if _, err := a.decide(aliceRun, ap.ID, true, "", ""); !errors.Is(err, ErrTriggeredApprove) {
		t.Fatalf("alice's run approving alice's request: %v", err)
	}
}
