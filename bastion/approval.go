package bastion

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/safetext"
)

// Approval outcomes.
const (
	Approved  = "approved"
	Denied    = "denied"
	TimedOut  = "timed_out"
	Cancelled = "cancelled"
)

// approval is one held command or statement. It is bound to that exact
// text in that session, is decided at most once, and fails closed: no
// decision before the deadline means denied.
type approval struct {
	ID        string      `json:"id"`
	SessionID string      `json:"session_id"`
	Requester ca.Identity `json:"-"`
	User      string      `json:"user"`
	Target    string      `json:"target"`
	Login     string      `json:"login,omitempty"`
	Kind      string      `json:"kind"` // command or sql
	Command   string      `json:"command"`
	Rule      string      `json:"rule"`
	Reason    string      `json:"reason"`
	Approvers []string    `json:"approvers"`
	Created   time.Time   `json:"created"`
	Expires   time.Time   `json:"expires"`

	done      chan struct{}
	deciding  bool // a decision is being audited; others are refused
	outcome   string
	decidedBy string
	note      string
}

// approvals holds the pending requests. Requests live in memory: a session
// waiting for one ends with the bastion anyway, and every step is in the
// audit log and the recording.
type approvals struct {
	audit   func(Event) error     // records every request and decision
	policy  func() *policy.Policy // who may decide, as of now
	webhook string                // receives new requests; "" for none
	log     *slog.Logger
	mu      sync.Mutex
	m       map[string]*approval
}

func newApprovalID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// request opens an approval request and notifies the webhook.
func (a *approvals) request(ap *approval) *approval {
	ap.done = make(chan struct{})
	a.mu.Lock()
	for {
		ap.ID = newApprovalID()
		if _, dup := a.m[ap.ID]; !dup {
			break
		}
	}
	a.m[ap.ID] = ap
	a.mu.Unlock()
	if err := a.audit(Event{Type: "command.hold", Identity: ap.Requester, SessionID: ap.SessionID, Target: ap.Target, Outcome: "held", Reason: ap.Reason,
		Fields: map[string]string{"request": ap.ID, "rule": ap.Rule, "command": ap.Command, "kind": ap.Kind}}); err != nil {
		// A hold the audit log cannot record is not offered for approval.
		a.finish(ap, Denied, "", "the request could not be written to the audit log")
		return ap
	}
	if a.webhook != "" {
		go a.notify(ap)
	}
	return ap
}

// wait blocks until the request is decided, the deadline passes, or ctx
// ends (the requester cancelled or went away). Every ending but an explicit
// approval is a refusal.
func (a *approvals) wait(ctx context.Context, ap *approval) (outcome, by, note string) {
	t := time.NewTimer(time.Until(ap.Expires))
	defer t.Stop()
	select {
	case <-ap.done:
	case <-t.C:
		a.finish(ap, TimedOut, "", "no decision within "+ap.Expires.Sub(ap.Created).Round(time.Second).String())
	case <-ctx.Done():
		a.finish(ap, Cancelled, ap.User, "cancelled by the requester")
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return ap.outcome, ap.decidedBy, ap.note
}

// finish records the first outcome; later ones are ignored. The outcome is
// audited before the waiting session sees it, and an approval the audit log
// cannot record becomes a denial: nothing runs on an unaudited approval.
func (a *approvals) finish(ap *approval, outcome, by, note string) bool {
	a.mu.Lock()
	if ap.outcome != "" || ap.deciding {
		a.mu.Unlock()
		return false
	}
	ap.deciding = true
	a.mu.Unlock()
	record := func(outcome, note string) error {
		typ := map[string]string{Approved: "command.approve", Denied: "command.deny", TimedOut: "command.timeout", Cancelled: "command.cancel"}[outcome]
		return a.audit(Event{Type: typ, Identity: ap.Requester, SessionID: ap.SessionID, Target: ap.Target, Outcome: outcome, Reason: note,
			Fields: map[string]string{"request": ap.ID, "rule": ap.Rule, "command": ap.Command, "decided_by": by}})
	}
	if err := record(outcome, note); err != nil && outcome == Approved {
		outcome, note = Denied, "the approval could not be written to the audit log"
		record(outcome, note)
	}
	a.mu.Lock()
	ap.outcome, ap.decidedBy, ap.note = outcome, by, note
	delete(a.m, ap.ID)
	close(ap.done)
	a.mu.Unlock()
	return true
}

// Errors a decision can meet.
var (
	errNoRequest   = errors.New("no pending request with that ID (decided, expired, or never made)")
	errSelfApprove = errors.New("nobody approves their own request")
	errNotApprover = errors.New("you hold none of the roles that may decide this request")
)

// decide applies an approver's decision.
func (a *approvals) decide(c Caller, id string, approve bool, note string) (*approval, error) {
	a.mu.Lock()
	ap, ok := a.m[id]
	a.mu.Unlock()
	if !ok {
		return nil, errNoRequest
	}
	if c.Identity.Issuer == ap.Requester.Issuer && c.Identity.Subject == ap.Requester.Subject {
		a.audit(Event{Type: "command.self_approve", Identity: c.Identity, SessionID: ap.SessionID, Target: ap.Target, Outcome: "refused",
			Reason: errSelfApprove.Error(), Fields: map[string]string{"request": ap.ID}})
		return nil, errSelfApprove
	}
	if !a.policy().CanApprove(policyIdentity(c.Identity), ap.Approvers, ap.Target) {
		return nil, fmt.Errorf("%w (%s)", errNotApprover, strings.Join(ap.Approvers, ", "))
	}
	outcome := Denied
	if approve {
		outcome = Approved
	}
	if !a.finish(ap, outcome, c.Identity.User, note) {
		return nil, errNoRequest
	}
	a.mu.Lock()
	got := ap.outcome
	a.mu.Unlock()
	if got != outcome {
		return nil, errors.New("the decision could not be written to the audit log, so the request was denied")
	}
	return ap, nil
}

// visible lists the requests c may decide, and c's own.
func (a *approvals) visible(c Caller) []*approval {
	pol := a.policy()
	a.mu.Lock()
	defer a.mu.Unlock()
	var out []*approval
	for _, ap := range a.m {
		own := c.Identity.Issuer == ap.Requester.Issuer && c.Identity.Subject == ap.Requester.Subject
		if own || pol.CanApprove(policyIdentity(c.Identity), ap.Approvers, ap.Target) {
			out = append(out, ap)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out
}

// notify posts a new request to the webhook (a chat bot can relay it).
func (a *approvals) notify(ap *approval) {
	body, _ := json.Marshal(struct {
		Event string `json:"event"`
		*approval
		Approve string `json:"approve"`
	}{"approval.requested", ap, "bastion approve " + ap.ID})
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, a.webhook, bytes.NewReader(body))
	if err != nil {
		a.log.Error("approval webhook", "err", err)
		return
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		a.log.Warn("approval webhook failed", "request", ap.ID, "err", err)
		return
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		a.log.Warn("approval webhook refused", "request", ap.ID, "status", resp.StatusCode)
	}
}

// Admin commands: requests, approve ID, deny ID [--reason R].

func (s *Server) adminRequests(c Caller, args []string, aio AdminIO) int {
	js, err := wantJSON(args)
	if err != nil {
		fmt.Fprintf(aio.Stderr, "bastion: requests: %v\n", err)
		return 2
	}
	list := s.approvals.visible(c)
	if js {
		if list == nil {
			list = []*approval{}
		}
		return writeJSONLine(aio, list)
	}
	if len(list) == 0 {
		fmt.Fprintln(aio.Stdout, "no pending requests")
		return 0
	}
	tw := tabwriter.NewWriter(aio.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tTARGET\tRULE\tEXPIRES\tCOMMAND")
	for _, ap := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ap.ID, ap.User, ap.Target, ap.Rule,
			time.Until(ap.Expires).Round(time.Second), safetext.Printable(ap.Command))
	}
	tw.Flush()
	return 0
}

func (s *Server) adminDecide(c Caller, args []string, aio AdminIO, approve bool) int {
	name := "deny"
	if approve {
		name = "approve"
	}
	var id, reason string
	for i := 0; i < len(args); i++ {
		switch {
		case args[i] == "--reason" && i+1 < len(args):
			reason = args[i+1]
			i++
		case strings.HasPrefix(args[i], "--reason="):
			reason = strings.TrimPrefix(args[i], "--reason=")
		case id == "" && !strings.HasPrefix(args[i], "-"):
			id = args[i]
		default:
			fmt.Fprintf(aio.Stderr, "bastion: usage: %s ID [--reason R]\n", name)
			return 2
		}
	}
	if id == "" {
		fmt.Fprintf(aio.Stderr, "bastion: usage: %s ID [--reason R]\n", name)
		return 2
	}
	ap, err := s.approvals.decide(c, id, approve, reason)
	if err != nil {
		fmt.Fprintf(aio.Stderr, "bastion: %s %s: %v\n", name, safetext.Printable(id), err)
		return 1
	}
	verb := map[bool]string{true: "approved", false: "denied"}[approve]
	fmt.Fprintf(aio.Stdout, "%s request %s: %s on %s: %s\n", verb, ap.ID, ap.User, ap.Target, safetext.Printable(ap.Command))
	return 0
}
