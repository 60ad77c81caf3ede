package bastion

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
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
	"unicode/utf8"

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
	Actor     string      `json:"actor,omitempty"` // a CI run's requests: who triggered the run
	Target    string      `json:"target"`
	Login     string      `json:"login,omitempty"`
	Database  string      `json:"database,omitempty"` // sql: the database the statement runs in
	Kind      string      `json:"kind"`               // command or sql
	Command   string      `json:"command"`
	Rule      string      `json:"rule"`
	Reason    string      `json:"reason"`
	Approvers []string    `json:"approvers"`
	Created   time.Time   `json:"created"`
	Expires   time.Time   `json:"expires"`

	done      chan struct{}
	body      []byte // with a shared board: the request as this replica put it there
	deciding  bool   // a decision is being audited; others are refused
	atOnce    bool   // denied by request itself, never offered (approvals.max_pending)
	outcome   string
	decidedBy string
	note      string
}

// approvals holds the pending requests. Requests live in memory: a session
// waiting for one ends with the bastion anyway, and every step is in the
// audit log and the recording.
type approvals struct {
	audit   func(Event) error      // records every request and decision
	policy  func() *policy.Policy  // who may decide, as of now
	webhook string                 // receives new requests; "" for none
	link    func(id string) string // the request's web page, for the webhook; nil for none
	log     *slog.Logger
	mu      sync.Mutex
	m       map[string]*approval
	// maxPending bounds the requests one identity has waiting; 0 = none.
	maxPending int
	changed    chan struct{} // closed and replaced when a request opens or ends here

	// board, when set, holds the requests instead of m, for every replica
	// sharing a store (shared.go).
	board ApprovalBoard
	now   func() time.Time

	// With a board, watching turns other replicas' changes into changed
	// (watchBoard, started by the first watch, stopped by stop).
	watchOnce sync.Once
	watched   bool          // someone waits on changed (the poll reads the board only then)
	stopCh    chan struct{} // closed by stop
	stopOnce  sync.Once
}

// changedLocked wakes whoever waits for the list to change.
func (a *approvals) changedLocked() {
	if a.changed != nil {
		close(a.changed)
	}
	a.changed = make(chan struct{})
	a.watched = false
}

// bump is changedLocked under the lock.
func (a *approvals) bump() {
	a.mu.Lock()
	a.changedLocked()
	a.mu.Unlock()
}

// watch returns a channel closed at the next change of the pending
// requests: one opened or ended here, and, with a shared board, one opened
// or decided on any replica.
func (a *approvals) watch() <-chan struct{} {
	if a.board != nil {
		a.watchOnce.Do(func() {
			a.mu.Lock()
			if a.stopCh == nil {
				a.stopCh = make(chan struct{})
			}
			stop := a.stopCh
			a.mu.Unlock()
			go a.watchBoard(stop)
		})
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.changed == nil {
		a.changed = make(chan struct{})
	}
	a.watched = true
	return a.changed
}

// stop ends watchBoard.
func (a *approvals) stop() {
	a.stopOnce.Do(func() {
		a.mu.Lock()
		if a.stopCh == nil {
			a.stopCh = make(chan struct{})
		}
		close(a.stopCh)
		a.mu.Unlock()
	})
}

// watchBoard wakes the watchers when the board changes: at once on a
// notification from any replica (a request put or decided), and, in case
// one was lost or a request expired or vanished with its replica, when a
// poll of the pending requests (only while someone watches) finds them
// different.
func (a *approvals) watchBoard(stop <-chan struct{}) {
	notified, unsubscribe := a.board.WatchAll()
	defer unsubscribe()
	poll := time.NewTicker(a.board.PollInterval())
	defer poll.Stop()
	last := ""
	for {
		select {
		case <-stop:
			return
		case <-notified:
			a.bump()
		case <-poll.C:
			a.mu.Lock()
			watched := a.watched
			a.mu.Unlock()
			if !watched {
				continue
			}
			list, err := a.board.Pending(a.clock())
			if err != nil {
				continue
			}
			var sig strings.Builder
			for _, sa := range list {
				sig.Write(sa.Request)
				sig.WriteByte(0)
			}
			if s := sig.String(); s != last {
				last = s
				a.bump()
			}
		}
	}
}

func newApprovalID() string {
	var b [4]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// request opens an approval request and notifies the webhook. The count
// of the requester's waiting requests (approvals.max_pending) and the new
// request's entry are one step, under a lock (on a shared board, one the
// board holds for that person across replicas): requests made at once
// cannot all pass a count that none of them is in yet.
func (a *approvals) request(ap *approval) *approval {
	ap.done = make(chan struct{})
	ap.Actor = ap.Requester.Actor
	defer a.bump()
	if a.board != nil {
		return a.requestShared(ap)
	}
	a.mu.Lock()
	if a.maxPending > 0 && a.pendingLocked(ap.Requester) >= a.maxPending {
		a.mu.Unlock()
		return a.refuseAtOnce(ap)
	}
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

// refuseAtOnce denies ap before it is offered (approvals.max_pending): not
// listed, not sent to the webhook.
func (a *approvals) refuseAtOnce(ap *approval) *approval {
	note := fmt.Sprintf("%s already has %d requests waiting for a decision (approvals.max_pending): wait for them, or cancel one", ap.Requester.User, a.maxPending)
	ap.ID = newApprovalID()
	a.mu.Lock()
	ap.atOnce = true
	a.mu.Unlock()
	a.audit(Event{Type: "command.hold", Identity: ap.Requester, SessionID: ap.SessionID, Target: ap.Target, Outcome: "refused", Reason: note,
		Fields: map[string]string{"request": ap.ID, "rule": ap.Rule, "command": ap.Command, "kind": ap.Kind}})
	a.deny(ap, note)
	return ap
}

// refusedAtOnce reports whether request denied ap before offering it
// (approvals.max_pending), and why.
func (a *approvals) refusedAtOnce(ap *approval) (string, bool) {
	a.mu.Lock()
	defer a.mu.Unlock()
	return ap.note, ap.atOnce
}

// pendingOf counts the undecided, unexpired requests of id (on the shared
// board when there is one; one the board cannot list counts as the limit):
// its account's and those of every account with its user name, the same
// person as ownRequest knows people, so a second account does not double
// what one person may have waiting.
func (a *approvals) pendingOf(id ca.Identity) int {
	if a.board != nil {
		list, err := a.board.Pending(a.clock())
		if err != nil {
			return a.maxPending
		}
		bodies := make([][]byte, len(list))
		for i, p := range list {
			bodies[i] = p.Request
		}
		return countSharedOf(id, bodies)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.pendingLocked(id)
}

// samePerson says whether r is id's person (pendingOf).
func samePerson(id, r ca.Identity) bool {
	return r.Issuer == id.Issuer && r.Subject == id.Subject || id.User != "" && r.User == id.User
}

// personKey names id's person for the shared board's lock: one name for
// every account samePerson counts together.
func personKey(id ca.Identity) string {
	if id.User != "" {
		return "user\n" + id.User
	}
	return "subject\n" + id.Issuer + "\n" + id.Subject
}

// countSharedOf counts the requests of id's person among shared request
// bodies.
func countSharedOf(id ca.Identity, bodies [][]byte) int {
	n := 0
	for _, b := range bodies {
		var r struct {
			Requester ca.Identity `json:"requester"`
		}
		if json.Unmarshal(b, &r) == nil && samePerson(id, r.Requester) {
			n++
		}
	}
	return n
}

// pendingLocked is pendingOf for requests in memory; a.mu is held.
func (a *approvals) pendingLocked(id ca.Identity) int {
	now := a.clock()
	n := 0
	for _, p := range a.m {
		if p.outcome == "" && now.Before(p.Expires) && samePerson(id, p.Requester) {
			n++
		}
	}
	return n
}

// wait blocks until the request is decided, the deadline passes, or ctx
// ends (the requester cancelled or went away). Every ending but an explicit
// approval is a refusal.
func (a *approvals) wait(ctx context.Context, ap *approval) (outcome, by, note string) {
	defer a.bump()
	if a.board != nil && ap.outcome == "" {
		return a.waitShared(ctx, ap)
	}
	t := time.NewTimer(time.Until(ap.Expires))
	defer t.Stop()
	select {
	case <-ap.done:
	case <-t.C:
		a.finish(ap, TimedOut, "", "no decision within "+ap.Expires.Sub(ap.Created).Round(time.Second).String())
	case <-ctx.Done():
		a.finish(ap, Cancelled, ap.User, "cancelled by the requester")
	}
	// A timeout or cancellation that lost to a decision being audited
	// (finish refused it) waits for that decision, which is the outcome the
	// audit log and the approver get: as on a shared board, where an
	// approver's claim in force wins over the deadline.
	<-ap.done
	a.mu.Lock()
	defer a.mu.Unlock()
	return ap.outcome, ap.decidedBy, ap.note
}

// finish records the first outcome; later ones are ignored. The outcome is
// audited before the waiting session sees it, and an approval the audit log
// cannot record becomes a denial: nothing runs on an unaudited approval.
func (a *approvals) finish(ap *approval, outcome, by, note string) bool {
	if a.board != nil {
		ok := a.finishShared(ap, outcome, by, note)
		if ok {
			a.bump()
		}
		return ok
	}
	a.mu.Lock()
	if ap.outcome != "" || ap.deciding {
		a.mu.Unlock()
		return false
	}
	ap.deciding = true
	a.mu.Unlock()
	outcome, note = a.record(ap, outcome, by, note)
	a.mu.Lock()
	ap.outcome, ap.decidedBy, ap.note = outcome, by, note
	delete(a.m, ap.ID)
	close(ap.done)
	a.changedLocked()
	a.mu.Unlock()
	return true
}

// record audits a decision, and turns an approval the audit log cannot
// record into a denial (audited too, if it can be), which it returns.
func (a *approvals) record(ap *approval, outcome, by, note string) (string, string) {
	record := func(outcome, note string) error {
		typ := map[string]string{Approved: "command.approve", Denied: "command.deny", TimedOut: "command.timeout", Cancelled: "command.cancel"}[outcome]
		return a.audit(Event{Type: typ, Identity: ap.Requester, SessionID: ap.SessionID, Target: ap.Target, Outcome: outcome, Reason: note,
			Fields: map[string]string{"request": ap.ID, "rule": ap.Rule, "command": ap.Command, "decided_by": by}})
	}
	if err := record(outcome, note); err != nil && outcome == Approved {
		outcome, note = Denied, "the approval could not be written to the audit log"
		record(outcome, note)
	}
	return outcome, note
}

// Errors a decision can meet (Server.Decide and the approve and deny
// admin commands).
var (
	ErrNoRequest   = errors.New("no pending request with that ID (decided, expired, or never made)")
	ErrSelfApprove = errors.New("nobody approves their own request")
	ErrNotApprover = errors.New("you hold none of the roles that may decide this request")
	// ErrTriggeredApprove: the request is a CI run's that the approver
	// triggered (or the approver is a run the requester triggered).
	ErrTriggeredApprove = errors.New("nobody approves the requests of a CI job they triggered")
)

// ownRequest reports whether ap is c's own request: the same account (issuer
// and subject), or the same user name. The bastion knows people by their
// name: two accounts that map to one name (carol@ and carol+2@ at the IdP,
// one workload's jobs) log in as the same user, see the same sessions and
// hold the same roles by name, so one does not approve the other's request.
func ownRequest(c Caller, ap *approval) bool {
	return c.Identity.Issuer == ap.Requester.Issuer && c.Identity.Subject == ap.Requester.Subject ||
		c.Identity.User != "" && c.Identity.User == ap.Requester.User
}

// triggeredRequest reports whether c and ap's requester are one person
// through a CI run (oidc.workload actor_claim): c triggered the run that
// asks, the run that decides was triggered by the requester, or both runs
// were triggered by one person. A person who can push a job's code and
// holds an approver role would otherwise approve what their own job asks.
func triggeredRequest(c Caller, ap *approval) bool {
	by, r := c.Identity, ap.Requester
	return r.Actor != "" && (by.User == r.Actor || by.Actor == r.Actor) ||
		by.Actor != "" && by.Actor == r.User
}

// ownView reports whether c sees ap as its own (rather than as one of its
// approvers): c's request, or, for a person, the request of a CI run they
// triggered. Runs of one job are one account to ownRequest (every push to
// main is one workload subject), but a run sees only the requests of runs
// the same person triggered: the commands another person's run typed are
// not its to read. Nor does a run see the requests of the person who
// triggered it, or of another job they triggered: a run's code is
// whoever pushed it.
func ownView(c Caller, ap *approval) bool {
	by, r := c.Identity, ap.Requester
	if ownRequest(c, ap) {
		return by.Actor == r.Actor
	}
	return by.Actor == "" && r.Actor != "" && by.User == r.Actor
}

// maxNote bounds an approver's note, in bytes.
const maxNote = 1024

// approverNote is an approver's note as the requester's terminal or
// database client is shown it: escape sequences, control characters (line
// breaks too: a note could draw a forged "bastion:" line) and what a
// display hides or reorders written as escapes, at most maxNote bytes.
func approverNote(note string) string {
	note = strings.NewReplacer("\n", `\n`, "\t", `\t`).Replace(safetext.Visible(note))
	if len(note) > maxNote {
		n := maxNote
		for n > 0 && !utf8.RuneStart(note[n]) {
			n--
		}
		note = note[:n] + "…"
	}
	return note
}

// ErrRequestChanged: the request is not the one the approver was shown
// (the shared store was edited between the page and the decision).
var ErrRequestChanged = errors.New("the request is no longer the one you were shown (was the shared store edited?): reload and decide again")

// digest identifies a request as an approver is shown it: what it runs,
// where, for whom, under which rule. A page's decision carries the digest
// of what the page showed, and is refused for a request that differs.
func (ap *approval) digest() string {
	b, _ := json.Marshal([]any{ap.ID, ap.SessionID, ap.User, ap.Actor, ap.Target, ap.Login, ap.Database, ap.Kind, ap.Command, ap.Rule, ap.Approvers})
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:16])
}

// decide applies an approver's decision. shown, when not empty, is the
// digest of the request as the approver was shown it.
func (a *approvals) decide(c Caller, id string, approve bool, note, shown string) (*approval, error) {
	var ap *approval
	if a.board != nil {
		var err error
		if ap, err = a.lookupShared(id); err != nil {
			return nil, err
		}
	} else {
		a.mu.Lock()
		ap = a.m[id]
		a.mu.Unlock()
	}
	if ap == nil {
		return nil, ErrNoRequest
	}
	if ownRequest(c, ap) {
		a.audit(Event{Type: "command.self_approve", Identity: c.Identity, SessionID: ap.SessionID, Target: ap.Target, Outcome: "refused",
			Reason: ErrSelfApprove.Error(), Fields: map[string]string{"request": ap.ID}})
		return nil, ErrSelfApprove
	}
	if triggeredRequest(c, ap) {
		err := fmt.Errorf("%w (asked by %s, decided by %s)", ErrTriggeredApprove, ap.Requester.Who(), c.Identity.Who())
		a.audit(Event{Type: "command.self_approve", Identity: c.Identity, SessionID: ap.SessionID, Target: ap.Target, Outcome: "refused",
			Reason: err.Error(), Fields: map[string]string{"request": ap.ID}})
		return nil, err
	}
	if !a.policy().CanApprove(policyIdentity(c.Identity), ap.Approvers, ap.Target) {
		return nil, fmt.Errorf("%w (%s)", ErrNotApprover, strings.Join(ap.Approvers, ", "))
	}
	if shown != "" && shown != ap.digest() {
		a.log.Error("approval refused: the request is not the one the approver was shown", "request", ap.ID, "by", c.Identity.User)
		return nil, ErrRequestChanged
	}
	outcome := Denied
	if approve {
		outcome = Approved
	}
	note = approverNote(note)
	if a.board != nil {
		if err := a.decideShared(ap, outcome, c.Identity.User, note); err != nil {
			return nil, err
		}
		a.bump()
		return ap, nil
	}
	if !a.finish(ap, outcome, c.Identity.User, note) {
		return nil, ErrNoRequest
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
func (a *approvals) visible(c Caller) ([]*approval, error) {
	pol := a.policy()
	all := a.m
	if a.board != nil {
		var err error
		if all, err = a.pendingShared(); err != nil {
			return nil, err
		}
	} else {
		a.mu.Lock()
		defer a.mu.Unlock()
	}
	var out []*approval
	for _, ap := range all {
		if ownView(c, ap) || pol.CanApprove(policyIdentity(c.Identity), ap.Approvers, ap.Target) {
			out = append(out, ap)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, nil
}

// notify posts a new request to the webhook (a chat bot can relay it).
func (a *approvals) notify(ap *approval) {
	var link string
	if a.link != nil {
		link = a.link(ap.ID)
	}
	// A chat bot shows the command to people who decide on it, and chat clients
	// draw bidirectional controls and zero-width characters: "command" is the text
	// as the console shows it (safetext.Visible), "command_exact" the text itself.
	body, _ := json.Marshal(struct {
		Event string `json:"event"`
		*approval
		Command      string `json:"command"`
		CommandExact string `json:"command_exact"`
		Approve      string `json:"approve"`
		URL          string `json:"url,omitempty"` // the request's page in the web console
	}{"approval.requested", ap, safetext.Visible(ap.Command), ap.Command, "bastion approve " + ap.ID, link})
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
	list, err := s.approvals.visible(c)
	if err != nil {
		fmt.Fprintf(aio.Stderr, "bastion: requests: %v\n", err)
		return 1
	}
	if js {
		// JSON lines, as every --json output: one request per line.
		for _, ap := range list {
			if st := writeJSONLine(aio, ap); st != 0 {
				return st
			}
		}
		return 0
	}
	if len(list) == 0 {
		fmt.Fprintln(aio.Stdout, "no pending requests")
		return 0
	}
	tw := tabwriter.NewWriter(aio.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tUSER\tTARGET\tRULE\tEXPIRES\tCOMMAND")
	for _, ap := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", ap.ID, ap.who(), ap.where(), ap.Rule,
			time.Until(ap.Expires).Round(time.Second), safetext.Escaped(ap.Command)) // whole: what is cut is not approved knowingly
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
	ap, err := s.approvals.decide(c, id, approve, reason, "")
	if err != nil {
		fmt.Fprintf(aio.Stderr, "bastion: %s %s: %v\n", name, safetext.Printable(id), err)
		return 1
	}
	verb := map[bool]string{true: "approved", false: "denied"}[approve]
	fmt.Fprintf(aio.Stdout, "%s request %s: %s on %s: %s\n", verb, ap.ID, ap.who(), ap.where(), safetext.Escaped(ap.Command))
	return 0
}

// who is the requester as an approver is shown it: "ci-etl (triggered by
// alice)" for a CI run whose workload names an actor claim.
func (ap *approval) who() string { return ca.WhoIs(ap.User, ap.Actor) }

// where is the request's target as an approver is shown it: for a
// statement, with the database it runs in (one PostgreSQL target serves
// several, and "DELETE FROM orders" in one is not the same in another),
// and with the login or database user it runs as ("rm -rf /srv" as root
// is not what it is as deploy; a database user's privileges and row
// security decide what a statement reaches), as the console shows them.
func (ap *approval) where() string {
	w := ap.Target
	if ap.Database != "" {
		w += "/" + safetext.Escaped(ap.Database)
	}
	if ap.Login != "" {
		w += " as " + safetext.Escaped(ap.Login)
	}
	return w
}

// Request is a pending approval request as the web console shows it.
type Request struct {
	ID        string    `json:"id"`
	SessionID string    `json:"session_id"`
	User      string    `json:"user"`
	Actor     string    `json:"actor,omitempty"` // a CI run's requests: who triggered the run
	Target    string    `json:"target"`
	Login     string    `json:"login,omitempty"`
	Database  string    `json:"database,omitempty"` // sql: the database the statement runs in
	Kind      string    `json:"kind"`               // command or sql
	Command   string    `json:"command"`
	Rule      string    `json:"rule"`
	Reason    string    `json:"reason"`
	Approvers []string  `json:"approvers"`
	Created   time.Time `json:"created"`
	Expires   time.Time `json:"expires"`
	// Own is true for the caller's own request, which they may not decide.
	Own bool `json:"own"`
	// Triggered is true for a request of a CI run the caller triggered
	// (or that triggered the caller's run), which they may not decide.
	Triggered bool `json:"triggered,omitempty"`
	// Shown identifies the request as shown here: a decision made on a
	// page passes it back (DecideShown), and is refused if the request
	// has changed since (a shared store edited in between).
	Shown string `json:"shown"`
}

// Who is the requester: "ci-etl (triggered by alice)" for a CI run whose
// workload names an actor claim.
func (r Request) Who() string { return ca.WhoIs(r.User, r.Actor) }

func (ap *approval) request(c Caller) Request {
	return Request{
		ID: ap.ID, SessionID: ap.SessionID, User: ap.User, Actor: ap.Actor, Target: ap.Target, Login: ap.Login, Database: ap.Database, Kind: ap.Kind,
		Command: ap.Command, Rule: ap.Rule, Reason: ap.Reason, Approvers: ap.Approvers, Created: ap.Created, Expires: ap.Expires,
		Own: ownRequest(c, ap), Triggered: !ownRequest(c, ap) && triggeredRequest(c, ap), Shown: ap.digest(),
	}
}

// Requests lists the pending requests c may decide, and c's own, oldest
// first: what the requests admin command shows. With a shared store, a
// request it cannot read is left out (and logged).
func (s *Server) Requests(c Caller) []Request {
	list, err := s.approvals.visible(c)
	if err != nil {
		s.log.Warn("approval requests", "err", err)
	}
	out := make([]Request, len(list))
	for i, ap := range list {
		out[i] = ap.request(c)
	}
	return out
}

// Decide approves or denies a pending request for c, under the same rules
// as the approve and deny admin commands: nobody decides their own request
// (ErrSelfApprove), only the rule's approver roles decide (ErrNotApprover),
// a request is decided once (ErrNoRequest), and a decision the audit log
// cannot record becomes a denial.
func (s *Server) Decide(c Caller, id string, approve bool, note string) (Request, error) {
	return s.DecideShown(c, id, approve, note, "")
}

// DecideShown is Decide for a decision made on what a page showed:
// shown is the Request.Shown the page had, and a request that is no longer
// that one is not decided (ErrRequestChanged); "" checks nothing.
func (s *Server) DecideShown(c Caller, id string, approve bool, note, shown string) (Request, error) {
	ap, err := s.approvals.decide(c, id, approve, note, shown)
	if err != nil {
		return Request{}, err
	}
	return ap.request(c), nil
}

// RequestsChanged returns a channel closed at the next change of the
// pending requests (one opens here, or one held here is decided, times out
// or is cancelled; with replicas sharing a store, one opens or is decided
// on any replica), so a page can update without polling.
func (s *Server) RequestsChanged() <-chan struct{} { return s.approvals.watch() }
