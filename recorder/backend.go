package recorder

import (
	"time"
)

// The store seam. A [Store] does everything that makes its data evidence
// (chunk encoding and compression, the per-session hash chains, signed
// checkpoints and seals, the audit chain, verification, recovery, group
// commit) the same way whatever holds the data; a [Backend] only keeps the
// bytes and records the Store hands it, in transactions. Two backends
// exist: the bbolt file (the default, one process) and a PostgreSQL
// database that several replicas share. Both store the same chunk bytes,
// the same audit records and the same signed notes, so Verify, Events,
// Export and VerifyAudit read either, and a store can be copied from one to
// the other ([Migrate]) and still verify.

// Backend keeps a store's data. Update and View run fn in a transaction:
// Update's commits when fn returns nil (and rolls back otherwise), View's
// only reads. fn may run more than once when the backend retries a
// transaction that conflicted with another replica's, so it must not have
// effects outside the transaction except through [Tx.OnCommit].
type Backend interface {
	Update(fn func(Tx) error) error
	View(fn func(Tx) error) error
	// Close releases the backend; the Store calls it last.
	Close() error
}

// Tx is one transaction of a [Backend]. Values passed to its callbacks are
// valid only until the callback returns; values it returns are the
// caller's. Methods that change data are only called in an Update.
type Tx interface {
	SessionTx
	ChunkTx
	AuditTx
	AdminTx
	// Meta returns the store-wide value named name (nil when absent);
	// SetMeta sets it. Names are short ASCII ("checkpoints_since", "sink:NAME").
	Meta(name string) ([]byte, error)
	SetMeta(name string, v []byte) error
	// Metas calls fn with every store-wide value (for Migrate).
	Metas(fn func(name string, v []byte) error) error
	// OnCommit runs fn after the transaction commits (not at all if it
	// does not).
	OnCommit(fn func())
}

// SessionTx holds the sessions' metadata.
type SessionTx interface {
	// CreateSession stores a new session; ErrExists when the ID is taken.
	CreateSession(info SessionInfo) error
	// PutSession replaces a session's record. A record that is live in
	// the store is only replaced by its own replica (info.Replica): a
	// session another replica took over (marked interrupted after this
	// replica's lease expired) fails with ErrFenced, so a replica that lost
	// its lease cannot write after the seal.
	PutSession(info SessionInfo) error
	// Session returns a session's record: ErrNotFound when there is none,
	// ErrBroken when it is unreadable. In an Update it also locks the
	// record until the commit (PostgreSQL), so two replicas recovering the
	// same session take turns.
	Session(id string) (SessionInfo, error)
	// Sessions calls fn with the sessions that match f's User, Target, Kind
	// and Since, newest first, until fn returns false (f.Limit is the
	// caller's).
	Sessions(f SessionFilter, fn func(SessionInfo) bool) error
	// Orphans returns the live sessions no running replica owns: with
	// bbolt every live session (the store is opened by one process, so
	// those are from before a crash); with PostgreSQL the live sessions of
	// replicas whose lease has expired.
	Orphans() ([]SessionInfo, error)
	// Ended calls fn with the sessions that ended before t, oldest first
	// (for retention).
	Ended(before time.Time, fn func(SessionInfo) bool) error
	// DeleteSession removes a session: its chunks, checkpoint, seal and
	// record. It returns how many chunks it removed.
	DeleteSession(info SessionInfo) (int, error)
}

// ChunkTx holds the sessions' recordings: chunks (see chunk.go), each
// session's latest signed checkpoint, and its seal, all as opaque bytes.
type ChunkTx interface {
	// PutChunks stores values as chunks first, first+1, ... of session id.
	PutChunks(id string, first uint64, values [][]byte) error
	// Chunks calls fn with session id's chunks from sequence from on, in
	// order, at most limit of them (0: all), until fn returns an error,
	// which Chunks returns.
	Chunks(id string, from uint64, limit int, fn func(seq uint64, v []byte) error) error
	PutCheckpoint(id string, note []byte) error
	// Checkpoint returns session id's latest signed checkpoint, nil if none.
	Checkpoint(id string) ([]byte, error)
	PutSeal(id string, seal []byte) error
	// Seal returns session id's seal, nil if none.
	Seal(id string) ([]byte, error)
}

// AuditTx holds the audit chain: records numbered from 1 in one order
// (across every replica sharing the backend) and signed checkpoints of its
// head.
type AuditTx interface {
	// AuditTail returns the sequence and hash of the newest record (0 and
	// zeros when the chain is empty). In an Update it also holds the chain
	// until the commit, so no other transaction appends in between.
	AuditTail() (uint64, [hashLen]byte, error)
	// AppendAudit stores record seq (the tail's sequence plus one) and
	// makes it the tail, with its hash.
	AppendAudit(seq uint64, hash [hashLen]byte, record []byte) error
	// Audit calls fn with the records from sequence from on, in order, at
	// most limit of them (0: all), until fn returns an error.
	Audit(from uint64, limit int, fn func(seq uint64, record []byte) error) error
	PutAuditCheckpoint(seq uint64, signed []byte) error
	// AuditCheckpoints calls fn with the checkpoints of records from..to
	// (inclusive), in order.
	AuditCheckpoints(from, to uint64, fn func(seq uint64, signed []byte) error) error
}

// AdminTx holds what the bastion remembers beside sessions and audit.
type AdminTx interface {
	// SpendToken remembers a one-time token's key until expires and
	// reports true, or reports false when the key is remembered and not
	// yet expired at now (a replay). Within one transaction a key is spent
	// once.
	SpendToken(key []byte, expires, now time.Time) (bool, error)
	// ForgetTokens forgets up to tokenSweepBatch keys whose expiry is
	// before now. Once the transaction has committed, *full says whether it
	// forgot that many, so that more may be left for the next sweep.
	ForgetTokens(now time.Time, full *bool) error
	// Revoke stores a revocation and reports true, or false when the
	// serial was already revoked (the first record stays).
	Revoke(r Revocation) (bool, error)
	// Revocations calls fn with every revocation, in serial order.
	Revocations(fn func(Revocation) error) error
	// RevokeUser stores a user's revocation (r.User set), keeping the
	// later of r and the one stored before, if any.
	RevokeUser(r Revocation) error
	// UserRevocations calls fn with every user's revocation.
	UserRevocations(fn func(Revocation) error) error
	// HostKey returns target's pinned host key, nil if none.
	HostKey(target string) ([]byte, error)
	// HostKeys calls fn with every pin (for Migrate).
	HostKeys(fn func(target string, key []byte) error) error
	// PinHostKey pins key for target unless a key is pinned already, and
	// returns the key pinned before (nil when this call pinned it).
	PinHostKey(target string, key []byte) ([]byte, error)
}
