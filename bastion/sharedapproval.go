package bastion

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/bastionhq/bastion/ca"
)

// Approval requests on an ApprovalBoard, shared by the replicas of one
// store. The replica holding the session puts the request on the board and
// waits for its row to be decided (woken by the board, polling as well);
// any replica's approver claims it, audits the decision, and records it.
// The board lets exactly one decision through, so single use holds across
// replicas; the requester's replica ends the wait at the deadline itself.

// claimTTL is how long a decider holds a request while it audits the
// decision; a decider that dies lets it lapse.
const claimTTL = 30 * time.Second

// sharedRequest is what the board keeps of a request: the approval and
// the requester (whom the local JSON leaves out).
type sharedRequest struct {
	*approval
	Requester ca.Identity `json:"requester"`
}

func (a *approvals) clock() time.Time {
	if a.now != nil {
		return a.now()
	}
	return time.Now()
}

// requestShared puts ap on the board and audits the hold.
func (a *approvals) requestShared(ap *approval) *approval {
	for {
		ap.ID = newApprovalID()
		body, err := json.Marshal(sharedRequest{approval: ap, Requester: ap.Requester})
		if err != nil {
			a.deny(ap, "the request could not be encoded")
			return ap
		}
		ap.body = body
		var admit func([][]byte) bool
		if a.maxPending > 0 {
			admit = func(pending [][]byte) bool { return countSharedOf(ap.Requester, pending) < a.maxPending }
		}
		ok, err := a.board.Put(ap.ID, body, ap.Created, ap.Expires, personKey(ap.Requester), admit)
		if errors.Is(err, ErrNotAdmitted) {
			return a.refuseAtOnce(ap)
		}
		if err != nil {
			a.log.Error("approval request could not be shared", "err", err)
			a.deny(ap, "the request could not be written to the shared store")
			return ap
		}
		if ok {
			break
		}
	}
	if err := a.audit(Event{Type: "command.hold", Identity: ap.Requester, SessionID: ap.SessionID, Target: ap.Target, Outcome: "held", Reason: ap.Reason,
		Fields: map[string]string{"request": ap.ID, "rule": ap.Rule, "command": ap.Command, "kind": ap.Kind}}); err != nil {
		a.finishShared(ap, Denied, "", "the request could not be written to the audit log")
		a.deny(ap, "the request could not be written to the audit log")
		return ap
	}
	if a.webhook != "" {
		go a.notify(ap)
	}
	return ap
}

// deny ends a request that never reached the board (or the audit log)
// locally, as a denial.
func (a *approvals) deny(ap *approval, note string) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if ap.outcome == "" {
		ap.outcome, ap.note = Denied, note
		close(ap.done)
	}
}

// waitShared waits for ap's row to be decided. At the deadline, or when
// ctx ends, it records the timeout or cancellation itself unless an
// approver holds a claim, whose decision it then waits for; when the store
// cannot be reached it fails closed a claim's length after the deadline.
func (a *approvals) waitShared(ctx context.Context, ap *approval) (outcome, by, note string) {
	changed, stop := a.board.Watch(ap.ID)
	defer stop()
	poll := time.NewTicker(a.board.PollInterval())
	defer poll.Stop()
	deadline := time.NewTimer(time.Until(ap.Expires))
	defer deadline.Stop()
	ctxDone := ctx.Done()
	var end string // TimedOut or Cancelled, once the wait should end
	for {
		sa, ok, err := a.board.Get(ap.ID, a.clock())
		switch {
		case err != nil:
			a.log.Warn("approval request could not be read from the shared store", "request", ap.ID, "err", err)
		case !ok:
			return Denied, "", "the request disappeared from the shared store"
		case sa.Outcome == Approved && (!sa.Proven || !bytes.Equal(sa.Request, ap.body)):
			// Not decided by an approver through a replica: the row (or
			// the request it holds) was written in the database directly.
			note := "the approval in the shared store is not signed by a bastion for this request (was the store edited?): refused"
			a.log.Error("approval refused: the shared store holds an approval no bastion signed for this request", "request", ap.ID, "decided_by", sa.DecidedBy)
			a.record(ap, Denied, "bastion", note)
			return Denied, "bastion", note
		case sa.Outcome != "":
			return sa.Outcome, sa.DecidedBy, sa.Note
		}
		if end != "" {
			by, note := "", "no decision within "+ap.Expires.Sub(ap.Created).Round(time.Second).String()
			if end == Cancelled {
				by, note = ap.User, "cancelled by the requester"
			}
			ok, err := a.decideOwn(ap, end, by, note)
			if ok {
				return end, by, note
			}
			// Unreachable store: refuse now (nothing runs). A claim in
			// force: wait for that decision, but not past its length.
			if err != nil || time.Now().After(ap.Expires.Add(claimTTL)) {
				return end, by, "no decision could be recorded in the shared store"
			}
		}
		select {
		case <-changed:
		case <-poll.C:
		case <-deadline.C:
			end = TimedOut
		case <-ctxDone:
			ctxDone, end = nil, Cancelled
		}
	}
}

// finishShared records a timeout or cancellation (no claim: it loses to an
// approver's claim in force) and then audits it; it reports whether it was
// recorded. A refusal needs no audit before it acts: nothing runs.
func (a *approvals) finishShared(ap *approval, outcome, by, note string) bool {
	ok, _ := a.decideOwn(ap, outcome, by, note)
	return ok
}

// decideOwn is finishShared reporting why it did not record: err when the
// store failed, nil when a claim is in force or the request was decided.
func (a *approvals) decideOwn(ap *approval, outcome, by, note string) (bool, error) {
	ok, err := a.board.Decide(ap.ID, "", nil, outcome, by, note, a.clock())
	if err != nil {
		a.log.Warn("approval outcome could not be written to the shared store", "request", ap.ID, "err", err)
		return false, err
	}
	if ok {
		a.record(ap, outcome, by, note)
	}
	return ok, nil
}

// lookupShared reads a pending request from the board; nil when there is
// none to decide.
func (a *approvals) lookupShared(id string) (*approval, error) {
	sa, ok, err := a.board.Get(id, a.clock())
	if err != nil {
		return nil, fmt.Errorf("read the shared store: %w", err)
	}
	if !ok || sa.Outcome != "" {
		return nil, nil
	}
	ap, err := decodeShared(sa.Request)
	if err != nil {
		return nil, err
	}
	ap.body = sa.Request // what the decider checks, shows and signs
	return ap, nil
}

func decodeShared(body []byte) (*approval, error) {
	r := sharedRequest{approval: &approval{}}
	if err := json.Unmarshal(body, &r); err != nil {
		return nil, errors.New("the shared request is unreadable")
	}
	r.approval.Requester = r.Requester
	return r.approval, nil
}

// errRequestChanged: the request a decider read is no longer the one in
// the shared store.
var errRequestChanged = errors.New("the request in the shared store changed as it was decided (was the store edited?): not decided")

// decideShared claims ap, audits the decision and records it. An approval
// the audit log cannot record is recorded as a denial.
func (a *approvals) decideShared(ap *approval, outcome, by, note string) error {
	claim := newApprovalID() + newApprovalID()
	now := a.clock()
	ok, err := a.board.Claim(ap.ID, claim, now, now.Add(claimTTL))
	if err != nil {
		return fmt.Errorf("claim in the shared store: %w", err)
	}
	if !ok {
		return ErrNoRequest
	}
	// The decision is over the request as it was read, checked (own
	// request, approver roles) and shown: one the store holds otherwise
	// now was edited in the database (swapped as it was claimed), and is
	// not decided, nor audited as decided.
	if sa, ok, err := a.board.Get(ap.ID, a.clock()); err != nil {
		return fmt.Errorf("read the shared store: %w", err)
	} else if !ok || !bytes.Equal(sa.Request, ap.body) {
		a.log.Error("approval refused: the request in the shared store changed as it was decided", "request", ap.ID, "by", by)
		return errRequestChanged
	}
	want := outcome
	outcome, note = a.record(ap, outcome, by, note)
	ok, err = a.board.Decide(ap.ID, claim, ap.body, outcome, by, note, a.clock())
	if err != nil {
		return fmt.Errorf("record in the shared store: %w", err)
	}
	if !ok {
		if outcome == Approved {
			// Audited as approved, never recorded: the waiting replica acts
			// on the store only, and may have ended the wait since.
			a.audit(Event{Type: "command.approve_void", Identity: ap.Requester, SessionID: ap.SessionID, Target: ap.Target, Outcome: "void",
				Reason: "the approval was audited but not recorded in the shared store (its claim lapsed first): it approves nothing",
				Fields: map[string]string{"request": ap.ID, "rule": ap.Rule, "command": ap.Command, "decided_by": by}})
		}
		return errors.New("the decision took longer than its claim; decide again")
	}
	if outcome != want {
		return errors.New("the decision could not be written to the audit log, so the request was denied")
	}
	return nil
}

// pendingShared returns the board's pending requests by ID.
func (a *approvals) pendingShared() (map[string]*approval, error) {
	list, err := a.board.Pending(a.clock())
	if err != nil {
		return nil, fmt.Errorf("read the shared store: %w", err)
	}
	out := make(map[string]*approval, len(list))
	for _, sa := range list {
		ap, err := decodeShared(sa.Request)
		if err != nil {
			continue
		}
		out[ap.ID] = ap
	}
	return out, nil
}
