package recorder

import (
	"errors"
	"time"
)

// Session statuses.
const (
	StatusLive        = "live"        // recording
	StatusEnded       = "ended"       // ended normally and sealed
	StatusInterrupted = "interrupted" // the bastion stopped mid-session (crash or shutdown); sealed at the next start
	StatusFailed      = "failed"      // the recording could not be written (Strict mode)
)

// Sentinel errors.
var (
	// ErrConfig means the Config is invalid.
	ErrConfig = errors.New("invalid config")
	// ErrClosed means the Store is closed.
	ErrClosed = errors.New("recorder closed")
	// ErrNotFound means no session (or other record) has that ID.
	ErrNotFound = errors.New("not found")
	// ErrExists means a session with that ID already exists.
	ErrExists = errors.New("session already exists")
	// ErrInvalid means an argument is malformed (an ID, a target name, a geometry).
	ErrInvalid = errors.New("invalid argument")
	// ErrEnded means the recording has already ended.
	ErrEnded = errors.New("recording ended")
	// ErrBroken means stored data failed its integrity check; Verify says where.
	ErrBroken = errors.New("recording integrity check failed")
	// ErrPinMismatch means a target already has a different pinned host key.
	ErrPinMismatch = errors.New("host key differs from the pinned key")
	// ErrWrite means buffered events could not be committed to the store.
	ErrWrite = errors.New("recording write failed")
	// ErrReplay means a one-time token was already used (AuditOnce).
	ErrReplay = errors.New("token already used")
	// ErrFenced means another replica took over a session this replica
	// was recording (its lease had expired): its recording cannot go on.
	ErrFenced = errors.New("session taken over by another replica")
	// ErrSchema means a PostgreSQL store's schema is newer than this
	// bastion knows, or unusable.
	ErrSchema = errors.New("store schema")
	// ErrLocked means another process, a running bastion, holds the store.
	ErrLocked = errors.New("the store is in use by another process (a running bastion)")
	// ErrReadOnly means the operation writes, on a store opened read-only.
	ErrReadOnly = errors.New("the store is open read-only")
)

// SessionInfo is a session's metadata.
type SessionInfo struct {
	ID         string    `json:"id"`   // set by Begin if empty: a ULID
	Kind       string    `json:"kind"` // "shell", "exec", "subsystem", "tcp", "postgres"
	User       string    `json:"user"`
	Issuer     string    `json:"issuer,omitempty"`  // the identity's OIDC issuer
	Subject    string    `json:"subject,omitempty"` // the identity's OIDC subject
	Actor      string    `json:"actor,omitempty"`   // who triggered a CI run (oidc.workload actor_claim); none in older records
	Target     string    `json:"target"`
	Login      string    `json:"login,omitempty"`
	Command    string    `json:"command,omitempty"`
	ClientAddr string    `json:"client_addr,omitempty"`
	CertSerial uint64    `json:"cert_serial,omitempty"`
	Width      int       `json:"width,omitempty"`
	Height     int       `json:"height,omitempty"`
	Term       string    `json:"term,omitempty"`
	Start      time.Time `json:"start"`
	End        time.Time `json:"end,omitzero"`
	ExitStatus int       `json:"exit_status"`
	ExitSignal string    `json:"exit_signal,omitempty"`
	Reason     string    `json:"reason,omitempty"` // why the session ended, from ExitInfo
	Status     string    `json:"status"`           // StatusLive, StatusEnded, StatusInterrupted, StatusFailed
	BytesIn    int64     `json:"bytes_in"`
	BytesOut   int64     `json:"bytes_out"`
	Events     int64     `json:"events"` // committed events
	Chunks     int64     `json:"chunks"` // committed chunks
	Truncated  bool      `json:"truncated,omitempty"`
	Stored     int64     `json:"stored_bytes,omitempty"`     // event bytes recorded (before compression)
	Compressed int64     `json:"compressed_bytes,omitempty"` // what the chunks take in the store
	Error      string    `json:"error,omitempty"`            // why the recording failed, if it did
	// Replica is the replica recording the session, in a store that
	// several replicas share (PostgreSQL); empty with bbolt.
	Replica string `json:"replica,omitempty"`
	// ReplicaName is that replica's configured name (store.postgres.name),
	// for people: Replica changes at every start of the replica.
	ReplicaName string `json:"replica_name,omitempty"`
	// What happened in the session, for listings; set when it ends.
	Database   string `json:"database,omitempty"`   // postgres: the database connected to (Login is the database user)
	Statements int64  `json:"statements,omitempty"` // postgres: statements judged
	Blocked    int    `json:"blocked,omitempty"`    // commands or statements a rule blocked
	Approved   int    `json:"approved,omitempty"`   // held for approval and approved
	Denied     int    `json:"denied,omitempty"`     // held for approval and denied, timed out or cancelled
}

// ExitInfo is how a session ended.
type ExitInfo struct {
	Status int    // exit status of the remote command
	Signal string // signal name if it was killed by one
	Reason string // why the bastion ended it, if it did
	// What happened, copied into SessionInfo: Login fills in a login
	// known only after Begin (a database user), the rest as named there.
	Login, Database           string
	Statements                int64
	Blocked, Approved, Denied int
}

// SessionFilter selects sessions; zero fields match everything.
type SessionFilter struct {
	User   string
	Target string
	Kind   string
	Since  time.Time // sessions started at or after
	Limit  int       // at most this many, newest first; 0 = all
	// ByActor keeps only the sessions whose Actor is Actor (with Actor
	// empty: those that name none). Runs of one CI job share a user; the
	// person who triggered each tells them apart.
	ByActor bool
	Actor   string
}

// match reports whether info passes f's User, Target and Kind (Since and
// Limit are the scan's).
func (f SessionFilter) match(info SessionInfo) bool {
	return (f.User == "" || info.User == f.User) && (f.Target == "" || info.Target == f.Target) && (f.Kind == "" || info.Kind == f.Kind) &&
		(!f.ByActor || info.Actor == f.Actor)
}

// AuditEvent is one record of the audit log.
type AuditEvent struct {
	ID        string            `json:"id"` // a ULID, set by Audit if empty
	Time      time.Time         `json:"time"`
	Type      string            `json:"type"` // "cert.issue", "cert.refuse", "session.start", "session.end", "command.block", ...
	User      string            `json:"user,omitempty"`
	Issuer    string            `json:"issuer,omitempty"`
	Subject   string            `json:"subject,omitempty"`
	SessionID string            `json:"session_id,omitempty"`
	Target    string            `json:"target,omitempty"`
	Outcome   string            `json:"outcome,omitempty"`
	Reason    string            `json:"reason,omitempty"`
	Fields    map[string]string `json:"fields,omitempty"`
}

// Revocation records a revoked certificate serial or, with User set and
// Serial zero, a revoked user: everything the user held at Time (every
// certificate issued to them up to it, and their console sign-ins).
type Revocation struct {
	Serial uint64    `json:"serial"`
	User   string    `json:"user,omitempty"`
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	Time   time.Time `json:"time"`
}

// Report is the result of Verify or VerifyAudit.
type Report struct {
	ID       string // the session ID; empty for the audit log
	Intact   bool   // every chunk (record) checks out, and the seal (checkpoints) too
	Sealed   bool   // a valid seal covers the whole chain (sessions only)
	Status   string // the session's status
	Chunks   int64  // chunks (audit records) checked
	Events   int64  // events in them
	BrokenAt int64  // the chunk sequence (audit record sequence) that failed; -1 if none
	Problem  string // what failed, if anything
}

// fencedError is ErrFenced for one session: the flusher drops that session
// from its transaction and commits the others.
type fencedError struct{ id string }

func (e *fencedError) Error() string { return "recorder: session " + e.id + ": " + ErrFenced.Error() }
func (e *fencedError) Unwrap() error { return ErrFenced }
