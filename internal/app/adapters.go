package app

import (
	"errors"
	"strconv"
	"time"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/recorder"
)

// The bastion and ca packages consume small interfaces; these adapt the
// recorder store to them.

var (
	_ bastion.Recorder    = recorderAdapter{}
	_ bastion.Recording   = recordingAdapter{}
	_ bastion.Auditor     = auditAdapter{}
	_ bastion.Revocations = (*recorder.Store)(nil)
	_ bastion.HostKeyPins = (*recorder.Store)(nil)
	_ ca.Auditor          = certAuditor{}
)

type recorderAdapter struct{ s *recorder.Store }

func (r recorderAdapter) Begin(m bastion.SessionMeta) (bastion.Recording, error) {
	rec, err := r.s.Begin(recorder.SessionInfo{
		ID: m.ID, Kind: m.Kind, User: m.Identity.User, Issuer: m.Identity.Issuer, Subject: m.Identity.Subject, Actor: m.Identity.Actor,
		Target: m.Target, Login: m.Login, Command: m.Command, ClientAddr: m.ClientAddr,
		CertSerial: m.Identity.Serial, Width: m.Width, Height: m.Height, Term: m.Term, Start: m.Start,
	})
	if err != nil {
		return nil, err
	}
	return recordingAdapter{rec}, nil
}

type recordingAdapter struct{ *recorder.Recording }

func (r recordingAdapter) End(e bastion.Exit) error {
	return r.Recording.End(recorder.ExitInfo{Status: e.Status, Signal: e.Signal, Reason: e.Reason,
		Login: e.Login, Database: e.Database, Statements: e.Statements, Blocked: e.Blocked, Approved: e.Approved, Denied: e.Denied})
}

type auditAdapter struct{ s *recorder.Store }

func (a auditAdapter) Audit(ev bastion.Event) error {
	rev := recorder.AuditEvent{
		Type: ev.Type, User: ev.Identity.User, Issuer: ev.Identity.Issuer, Subject: ev.Identity.Subject,
		SessionID: ev.SessionID, Target: ev.Target, Outcome: ev.Outcome, Reason: ev.Reason, Fields: withSerial(ev.Fields, ev.Identity.Serial),
	}
	if ev.Identity.Actor != "" {
		// A CI run's records name who triggered it.
		rev.Fields = withField(rev.Fields, "actor", ev.Identity.Actor)
	}
	var err error
	if ev.Routine {
		_, err = a.s.AuditLater(rev)
	} else {
		_, err = a.s.Audit(rev)
	}
	return err
}

// withField returns f with k set to v, f itself left as it was.
func withField(f map[string]string, k, v string) map[string]string {
	out := make(map[string]string, len(f)+1)
	for k, v := range f {
		out[k] = v
	}
	out[k] = v
	return out
}

func withSerial(f map[string]string, serial uint64) map[string]string {
	if serial == 0 {
		return f
	}
	out := make(map[string]string, len(f)+1)
	for k, v := range f {
		out[k] = v
	}
	out["serial"] = strconv.FormatUint(serial, 10)
	return out
}

// certAuditor records issuance decisions and counts them.
type certAuditor struct{ a *App }

func (c certAuditor) AuditCert(r ca.AuditRecord) error {
	outcome := "refused"
	if r.Action == ca.ActionIssue {
		outcome = "issued"
	}
	f := map[string]string{"remote": r.Remote}
	for k, v := range r.Fields {
		f[k] = v
	}
	if r.Serial != 0 {
		f["serial"] = strconv.FormatUint(r.Serial, 10)
		f["key_id"] = r.KeyID
		f["valid_before"] = r.ValidBefore.UTC().Format("2006-01-02T15:04:05Z")
	}
	if r.Workload {
		f["workload"] = "true"
	}
	if r.Actor != "" {
		f["actor"] = r.Actor
	}
	if r.Detail != "" {
		f["detail"] = r.Detail
	}
	ev := recorder.AuditEvent{
		Type: r.Action, User: r.User, Issuer: r.Issuer, Subject: r.Subject, Outcome: outcome, Reason: r.Reason, Fields: f,
	}
	if r.Action == ca.ActionIssue && len(r.TokenKey) > 0 {
		// The issuance and the spent token commit together: a token
		// buys one certificate, even on several replicas at once.
		_, err := c.a.Store.AuditOnce(ev, r.TokenKey, r.TokenExpiry)
		if errors.Is(err, recorder.ErrReplay) {
			return ca.ErrTokenReplay
		}
		return err
	}
	_, err := c.a.Store.Audit(ev)
	return err
}

// boardAdapter shares approval requests through a PostgreSQL store.
type boardAdapter struct{ b *recorder.ApprovalBoard }

var _ bastion.ApprovalBoard = boardAdapter{}

func (a boardAdapter) Put(id string, request []byte, created, expires time.Time, person string, admit func([][]byte) bool) (bool, error) {
	var check func([]recorder.Approval) bool
	if admit != nil {
		check = func(list []recorder.Approval) bool {
			bodies := make([][]byte, len(list))
			for i, ap := range list {
				bodies[i] = ap.Request
			}
			return admit(bodies)
		}
	}
	err := a.b.PutAdmitted(recorder.Approval{ID: id, Request: request, Created: created, Expires: expires}, person, check)
	switch {
	case errors.Is(err, recorder.ErrExists):
		return false, nil
	case errors.Is(err, recorder.ErrNotAdmitted):
		return false, bastion.ErrNotAdmitted
	}
	return err == nil, err
}

func sharedApproval(ap recorder.Approval) bastion.SharedApproval {
	return bastion.SharedApproval{Request: ap.Request, Outcome: ap.Outcome, DecidedBy: ap.DecidedBy, Note: ap.Note, Proven: ap.Proven}
}

func (a boardAdapter) Get(id string, now time.Time) (bastion.SharedApproval, bool, error) {
	ap, err := a.b.Get(id, now)
	if errors.Is(err, recorder.ErrNotFound) {
		return bastion.SharedApproval{}, false, nil
	}
	return sharedApproval(ap), err == nil, err
}

func (a boardAdapter) Pending(now time.Time) ([]bastion.SharedApproval, error) {
	list, err := a.b.Pending(now)
	out := make([]bastion.SharedApproval, len(list))
	for i, ap := range list {
		out[i] = sharedApproval(ap)
	}
	return out, err
}

func (a boardAdapter) Claim(id, claim string, now, until time.Time) (bool, error) {
	_, err := a.b.Claim(id, claim, now, until)
	if errors.Is(err, recorder.ErrNoApproval) {
		return false, nil
	}
	return err == nil, err
}

func (a boardAdapter) Decide(id, claim string, request []byte, outcome, by, note string, now time.Time) (bool, error) {
	return a.b.Decide(id, claim, request, outcome, by, note, now)
}

func (a boardAdapter) Watch(id string) (<-chan struct{}, func()) { return a.b.Watch(id) }
func (a boardAdapter) WatchAll() (<-chan struct{}, func())       { return a.b.WatchAll() }
func (a boardAdapter) PollInterval() time.Duration               { return a.b.PollInterval() }

// approvalBoard returns the store's shared board, or nil (requests in
// memory) when the store is not shared.
func approvalBoard(s *recorder.Store) bastion.ApprovalBoard {
	if b := s.Approvals(); b != nil {
		return boardAdapter{b}
	}
	return nil
}
