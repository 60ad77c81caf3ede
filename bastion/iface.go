package bastion

import (
	"context"
	"errors"
	"io"
	"time"

	"github.com/bastionhq/bastion/ca"
)

// What the server needs from the recorder and the audit log, as small
// interfaces consumed here; internal/app adapts *recorder.Store to them, so
// this package never imports the recorder.

// SessionMeta describes a session when its recording begins.
type SessionMeta struct {
	ID         string
	Kind       string // shell, exec, subsystem, tcp, postgres
	Identity   ca.Identity
	Target     string
	Login      string
	Command    string
	ClientAddr string
	Width      int
	Height     int
	Term       string
	Start      time.Time
}

// Exit is how a session ended.
type Exit struct {
	Status int    // exit status; -1 when none was received
	Signal string // exit signal name, if any
	Reason string // why the bastion ended it, if it did
	// What happened in the session, for listings.
	Login, Database           string // postgres: the database user and database
	Statements                int64  // postgres: statements judged
	Blocked, Approved, Denied int    // decisions on commands and statements
}

// Recorder starts recordings.
type Recorder interface {
	Begin(meta SessionMeta) (Recording, error)
}

// Recording receives one session's events. Output, Input and Marker must
// copy what they keep: callers reuse buffers.
type Recording interface {
	Output(p []byte) error
	Input(p []byte) error
	// FromClient, FromServer and ConnEvent record a TCP forward's content:
	// the bytes each side sent, and how the connection opened and closed.
	FromClient(p []byte) error
	FromServer(p []byte) error
	ConnEvent(what string) error
	Resize(cols, rows int) error
	Marker(label string) error
	AddBytes(in, out int64)
	// Failed is closed when the recording can no longer be written; in
	// strict mode the session must then end with Err as the reason.
	Failed() <-chan struct{}
	Err() error
	End(exit Exit) error
}

// Event is one audit record.
type Event struct {
	Type      string // e.g. "ssh.login", "session.start", "forward.refuse"
	Identity  ca.Identity
	SessionID string
	Target    string
	Outcome   string // "allowed", "refused", "ended", ...
	Reason    string
	Fields    map[string]string
	// Routine marks a high-volume record of a routine outcome (an allowed
	// statement or command): it may be committed with the next group commit
	// of the recordings instead of before the bastion goes on. Decisions
	// that refuse, hold or approve are never routine.
	Routine bool
}

// Auditor appends to the audit log.
type Auditor interface {
	Audit(ev Event) error
}

// HostKeyPins stores trust-on-first-use host keys of targets.
type HostKeyPins interface {
	PinnedHostKey(target string) ([]byte, bool, error)
	PinHostKey(target string, key []byte) error
}

// Revocations answers whether a certificate serial was revoked, and up
// to when a user's certificates were (bastion ca revoke --user).
type Revocations interface {
	IsRevoked(serial uint64) bool
	UserRevoked(user string) (time.Time, bool)
}

// Caller is the identity behind an admin command.
type Caller struct {
	Identity   ca.Identity
	Roles      []string
	Auditor    bool // holds a role marked auditor
	RemoteAddr string
}

// MaySee reports whether c may see what the identity (user at issuer,
// triggered by actor for a CI run) did: its own sessions, or everyone's
// for an auditor. Runs of one CI job share a user and issuer (every push
// to main is one workload subject); with oidc.workload actor_claim a run
// sees only what runs the same person triggered did, and nothing that
// names no actor (recordings made before sessions named it): fail closed,
// those are the auditors'. A person, and a workload without actor_claim,
// has no actor and sees as before.
func (c Caller) MaySee(user, issuer, actor string) bool {
	return c.Auditor || user == c.Identity.User && issuer == c.Identity.Issuer && actor == c.Identity.Actor
}

// AdminIO is the I/O of an admin command.
type AdminIO struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Pty is non-nil when the client asked for a terminal.
	Pty *Pty
}

// Pty is a requested terminal.
type Pty struct {
	Term   string
	Width  int
	Height int
	// Resize delivers window changes.
	Resize <-chan [2]int
}

// AdminCommand runs one admin command (`ssh bastion NAME ARGS...`) and
// returns its exit status. ctx is cancelled when the client goes away.
type AdminCommand func(ctx context.Context, c Caller, args []string, io AdminIO) int

// ApprovalBoard keeps approval requests where every bastion replica that
// shares a store sees them, so that an approver's decision on one replica
// releases a command held on another. Without one, requests live in the
// server's memory (one bastion). A decision is made once cluster-wide: a
// decider first claims the request, audits the decision, then records it.
type ApprovalBoard interface {
	// Put adds a pending request (request is the server's own JSON);
	// false when the ID is taken. With admit set, it first calls admit
	// with the requests pending at created, under a lock that person
	// names (other Puts for the same person, on every replica, wait for
	// this one), and adds nothing but returns ErrNotAdmitted when admit
	// says no: approvals.max_pending holds however many requests arrive
	// at once.
	Put(id string, request []byte, created, expires time.Time, person string, admit func(pending [][]byte) bool) (bool, error)
	// Get returns a request and its outcome; false when there is none.
	Get(id string, now time.Time) (SharedApproval, bool, error)
	// Pending lists the undecided, unexpired requests, oldest first.
	Pending(now time.Time) ([]SharedApproval, error)
	// Claim reserves a pending, unexpired, unclaimed request for one
	// decider until until; false when it is not there to claim.
	Claim(id, claim string, now, until time.Time) (bool, error)
	// Decide records the outcome once: by the holder of claim, over
	// request (the bytes the decider read and showed; an error when the
	// board holds others), or, with claim empty (the waiting replica's
	// timeout or cancellation), when no claim is in force. It reports
	// whether it recorded it.
	Decide(id, claim string, request []byte, outcome, by, note string, now time.Time) (bool, error)
	// Watch signals when request id may have changed (a hint: poll too,
	// every PollInterval).
	Watch(id string) (<-chan struct{}, func())
	// WatchAll signals when any request may have changed: one put on
	// the board or decided, by any replica (a hint: poll too).
	WatchAll() (<-chan struct{}, func())
	PollInterval() time.Duration
}

// ErrNotAdmitted is what ApprovalBoard.Put returns when its admit said no.
var ErrNotAdmitted = errors.New("approval request not admitted")

// SharedApproval is a request as an ApprovalBoard returns it.
type SharedApproval struct {
	Request   []byte
	Outcome   string // empty while pending
	DecidedBy string
	Note      string
	// Proven: a decider's replica signed this outcome of this Request
	// (with the key every replica holds). A row edited in the store
	// directly is not proven, and an approval that is not is refused.
	Proven bool
}
