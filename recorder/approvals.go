package recorder

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
)

// Approval requests in a shared store. With one bastion, a held command's
// request lives in that process (the server's own board); with several
// replicas the request must be where every replica sees it, because the
// approver's `bastion approve` may land on another replica than the held
// session. The table is the truth: a decision is one conditional UPDATE,
// so exactly one decision wins cluster-wide, and the requester's replica,
// woken by a notification or its poll, reads the outcome from the row.
//
// A decision is made in two steps, so that it is audited before anyone
// acts on it: an approver first claims the request (no one else may decide
// it while the claim lasts), audits the decision, and then records it. A
// claim that is not followed by a decision (the approver's replica died)
// lapses at its deadline; the requester's timeout then applies.

// Approval is an approval request as a shared store keeps it.
type Approval struct {
	ID      string
	Replica string // the replica holding the session that waits
	Request []byte // the server's own description of the request (JSON), opaque here
	Created time.Time
	Expires time.Time
	// The decision: Outcome is empty while the request is pending.
	Outcome   string
	DecidedBy string
	Note      string
	DecidedAt time.Time
	Claimed   bool // someone is deciding it right now
	// Proven says that an approver's replica signed this outcome of this
	// request (its Request bytes, ID, Outcome and DecidedBy) with the
	// cluster's seal key. A row written in the database by anyone else
	// is not proven: the waiting replica acts on a proven approval only.
	Proven bool
}

// approvalDomain separates decision proofs from seals and checkpoints
// signed with the same key.
const approvalDomain = "bastion-approval-decision-v1\n"

// decisionProof is what an approver's replica signs.
type decisionProof struct {
	ID        string `json:"id"`
	Request   string `json:"request_sha256"`
	Outcome   string `json:"outcome"`
	DecidedBy string `json:"decided_by"`
}

func newDecisionProof(id string, request []byte, outcome, by string) decisionProof {
	h := sha256.Sum256(request)
	return decisionProof{ID: id, Request: hex.EncodeToString(h[:]), Outcome: outcome, DecidedBy: by}
}

// prove sets a.Proven from the row's proof.
func (b *ApprovalBoard) prove(a *Approval, proof []byte) {
	a.Proven = false
	if a.Outcome == "" || len(proof) == 0 {
		return
	}
	var got decisionProof
	if err := openSigned(b.s.keys, approvalDomain, proof, &got); err != nil {
		return
	}
	a.Proven = got == newDecisionProof(a.ID, a.Request, a.Outcome, a.DecidedBy)
}

// ErrNoApproval means there is no pending request with that ID (or it is
// claimed by another decider).
var ErrNoApproval = errors.New("no pending approval request with that ID")

// Approvals returns the shared approval board, or nil when the store is
// not shared (bbolt: the server keeps requests in memory).
func (s *Store) Approvals() *ApprovalBoard {
	if s.pg == nil {
		return nil
	}
	return &ApprovalBoard{s: s}
}

// ApprovalBoard holds approval requests in the shared store. Its methods
// are safe for concurrent use, on every replica at once.
type ApprovalBoard struct{ s *Store }

// approvalColumns selects an Approval; now names the parameter holding the
// current time (whether a claim is in force).
func approvalColumns(now string) string {
	return `id, replica, request, created, expires, claim_until > ` + now + ` AND outcome IS NULL,
		coalesce(outcome, ''), coalesce(decided_by, ''), coalesce(note, ''), coalesce(decided_at, 'epoch'), proof`
}

// Times cross the board in this replica's clock and are kept in the
// database's (Store.ClockOffset): a request's expiry and a claim's are
// compared on one clock, whichever replicas put, claim and decide it, so
// a replica whose clock is off neither sees others' requests as expired
// nor takes a claim for lapsed early.
func (b *ApprovalBoard) toDB(t time.Time) time.Time   { return t.Add(b.s.ClockOffset()) }
func (b *ApprovalBoard) fromDB(t time.Time) time.Time { return t.Add(-b.s.ClockOffset()) }

func (b *ApprovalBoard) scanApproval(row pgx.Row) (Approval, error) {
	var a Approval
	var claimed *bool
	var proof []byte
	err := row.Scan(&a.ID, &a.Replica, &a.Request, &a.Created, &a.Expires, &claimed, &a.Outcome, &a.DecidedBy, &a.Note, &a.DecidedAt, &proof)
	a.Created, a.Expires = b.fromDB(a.Created), b.fromDB(a.Expires)
	if !a.DecidedAt.IsZero() && a.DecidedAt.Unix() != 0 {
		a.DecidedAt = b.fromDB(a.DecidedAt)
	}
	a.Claimed = claimed != nil && *claimed
	b.prove(&a, proof)
	return a, err
}

// ErrNotAdmitted is what PutAdmitted returns when its admit said no.
var ErrNotAdmitted = errors.New("approval request not admitted")

// Put adds a pending request; ErrExists when its ID is taken.
func (b *ApprovalBoard) Put(a Approval) error {
	return b.PutAdmitted(a, "", nil)
}

// PutAdmitted is Put that first, when admit is set, calls admit with the
// requests pending at a.Created, holding a lock named by person (a
// transaction's advisory lock: another PutAdmitted for the same person, on
// any replica, waits until this one committed), and adds nothing, returning
// ErrNotAdmitted, when admit says no. So a bound on what one person has
// waiting holds however many of their requests arrive at once.
func (b *ApprovalBoard) PutAdmitted(a Approval, person string, admit func(pending []Approval) bool) error {
	ctx, cancel := b.s.pg.ctx()
	defer cancel()
	err := pgx.BeginFunc(ctx, b.s.pg.pool, func(tx pgx.Tx) error {
		if admit != nil {
			if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock(hashtextextended($1, 0))`, "bastion-approvals\n"+person); err != nil {
				return err
			}
			rows, err := tx.Query(ctx, `SELECT `+approvalColumns("$1")+` FROM bastion_approvals
				WHERE outcome IS NULL AND expires > $1 ORDER BY created, id`, b.toDB(a.Created))
			if err != nil {
				return err
			}
			list, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Approval, error) { return b.scanApproval(row) })
			if err != nil {
				return err
			}
			if !admit(list) {
				return ErrNotAdmitted
			}
		}
		tag, err := tx.Exec(ctx, `INSERT INTO bastion_approvals (id, replica, request, created, expires)
			VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING`, a.ID, b.s.replica, a.Request, b.toDB(a.Created), b.toDB(a.Expires))
		if err != nil {
			return err
		}
		if tag.RowsAffected() == 0 {
			return ErrExists
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("recorder: approval %s: %w", quoteID(a.ID), err)
	}
	b.s.pg.notify(notifyApproval, a.ID) // for WatchAll: pages listing requests
	return nil
}

// Get returns a request and its decision; ErrNotFound when there is none.
func (b *ApprovalBoard) Get(id string, now time.Time) (Approval, error) {
	ctx, cancel := b.s.pg.ctx()
	defer cancel()
	a, err := b.scanApproval(b.s.pg.pool.QueryRow(ctx, `SELECT `+approvalColumns("$2")+` FROM bastion_approvals WHERE id = $1`, id, b.toDB(now)))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("recorder: approval %s: %w", quoteID(id), ErrNotFound)
	}
	if err != nil {
		return a, fmt.Errorf("recorder: approval %s: %w", quoteID(id), err)
	}
	return a, nil
}

// Pending lists the requests not yet decided and not expired at now,
// oldest first.
func (b *ApprovalBoard) Pending(now time.Time) ([]Approval, error) {
	ctx, cancel := b.s.pg.ctx()
	defer cancel()
	rows, err := b.s.pg.pool.Query(ctx, `SELECT `+approvalColumns("$1")+` FROM bastion_approvals
		WHERE outcome IS NULL AND expires > $1 ORDER BY created, id`, b.toDB(now))
	if err != nil {
		return nil, fmt.Errorf("recorder: approvals: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Approval, error) { return b.scanApproval(row) })
	if err != nil {
		return nil, fmt.Errorf("recorder: approvals: %w", err)
	}
	return out, nil
}

// Claim reserves a pending, unexpired, unclaimed request for a decider
// until until, under the claim token claim, and returns it;
// ErrNoApproval when it is not there to claim.
func (b *ApprovalBoard) Claim(id, claim string, now, until time.Time) (Approval, error) {
	ctx, cancel := b.s.pg.ctx()
	defer cancel()
	a, err := b.scanApproval(b.s.pg.pool.QueryRow(ctx, `UPDATE bastion_approvals SET claim = $3, claim_until = $4
		WHERE id = $1 AND outcome IS NULL AND expires > $2 AND (claim_until IS NULL OR claim_until <= $2)
		RETURNING `+approvalColumns("$2"), id, b.toDB(now), claim, b.toDB(until)))
	if errors.Is(err, pgx.ErrNoRows) {
		return a, fmt.Errorf("recorder: approval %s: %w", quoteID(id), ErrNoApproval)
	}
	if err != nil {
		return a, fmt.Errorf("recorder: approval %s: %w", quoteID(id), err)
	}
	return a, nil
}

// ErrRequestChanged means the request in the store is not the one the
// decider read (and showed its approver): it was edited in the database.
var ErrRequestChanged = errors.New("the request in the shared store changed since it was read (was the store edited?): not decided")

// Decide records the outcome of a request once: with claim set, only by
// the holder of that claim while it is in force (once it lapsed, the
// waiting replica may have ended the wait: a late approval would be
// recorded, and audited, for a command that never ran), and only over request, the bytes the decider
// read and showed its approver (ErrRequestChanged when the row holds other
// ones: an approval is signed over what was approved, never over what the
// row says by the time it is signed); with claim empty (the waiting
// replica's timeout or cancellation), only when no claim is in force at
// now. It reports whether it recorded the outcome, and tells every replica.
func (b *ApprovalBoard) Decide(id, claim string, request []byte, outcome, by, note string, now time.Time) (bool, error) {
	ctx, cancel := b.s.pg.ctx()
	defer cancel()
	// A decider's outcome is signed over the request as the board holds
	// it under the claim; a timeout or cancellation (no claim) needs no
	// proof: it lets nothing run.
	var proof []byte
	if claim != "" {
		var stored []byte
		err := b.s.pg.pool.QueryRow(ctx, `SELECT request FROM bastion_approvals WHERE id = $1 AND claim = $2 AND outcome IS NULL`,
			id, claim).Scan(&stored)
		if errors.Is(err, pgx.ErrNoRows) {
			return false, nil
		}
		if err != nil {
			return false, fmt.Errorf("recorder: approval %s: %w", quoteID(id), err)
		}
		if !bytes.Equal(stored, request) {
			return false, fmt.Errorf("recorder: approval %s: %w", quoteID(id), ErrRequestChanged)
		}
		if proof, err = sign(b.s.signer, approvalDomain, newDecisionProof(id, request, outcome, by)); err != nil {
			return false, fmt.Errorf("recorder: approval %s: %w", quoteID(id), err)
		}
	}
	// With a claim, the row must still hold the request signed (a trigger
	// could swap it as the row is updated: then the proof, over the request
	// approved, does not match the row's, and the waiting replica refuses).
	tag, err := b.s.pg.pool.Exec(ctx, `UPDATE bastion_approvals
		SET outcome = $3, decided_by = $4, note = $5, decided_at = $6, claim_until = NULL, proof = $7
		WHERE id = $1 AND outcome IS NULL AND (
			($2 <> '' AND claim = $2 AND claim_until > $6 AND request = $8) OR ($2 = '' AND (claim_until IS NULL OR claim_until <= $6)))`,
		id, claim, outcome, by, note, b.toDB(now), proof, request)
	if err != nil {
		return false, fmt.Errorf("recorder: approval %s: %w", quoteID(id), err)
	}
	if tag.RowsAffected() == 0 {
		return false, nil
	}
	b.s.pg.notify(notifyApproval, id)
	return true, nil
}

// Watch returns a channel that receives a value when request id may have
// changed (a notification from any replica; read the request then), and a
// function to stop watching. Notifications can be lost: poll as well.
func (b *ApprovalBoard) Watch(id string) (<-chan struct{}, func()) {
	return b.s.pg.subscribe(notifyApproval + id)
}

// WatchAll returns a channel that receives a value when any request may
// have changed (put on the board or decided, by any replica), and a
// function to stop watching. Notifications can be lost: poll as well.
func (b *ApprovalBoard) WatchAll() (<-chan struct{}, func()) {
	return b.s.pg.subscribe(notifyApprovals)
}

// PollInterval is how often a waiter should read a request it watches.
func (b *ApprovalBoard) PollInterval() time.Duration { return b.s.cfg.Postgres.Poll }
