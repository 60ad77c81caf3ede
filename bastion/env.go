package bastion

import (
	"log/slog"
	"time"

	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/ca"
)

// sessionEnv is what a session needs from the server, made once when the
// server starts and handed to every session: the session, its proxy and its
// shell guard reach nothing else of the Server. (The policy is a function,
// not a snapshot: a reload reaches the next decision of a live session.)
type sessionEnv struct {
	policy      func() *policy.Policy
	audit       func(Event) error
	approvals   *approvals
	recorder    Recorder
	metrics     *Metrics
	now         func() time.Time
	log         *slog.Logger // the server's; sessions add their own fields
	maskHold    time.Duration
	idleTimeout time.Duration
	maxDuration time.Duration
	envAllowed  func(name string) bool
	stillValid  func(ca.Identity) error // the certificate has not expired or been revoked since login
	sessionOver func(ca.Identity) error // the certificate has been revoked, or has expired with sessions.disconnect_expired_cert
	untrack     func(*session)
}

// newSessionEnv is the environment of the server's sessions.
func (s *Server) newSessionEnv() *sessionEnv {
	return &sessionEnv{
		policy:      s.cfg.Policy,
		audit:       s.audit,
		approvals:   s.approvals,
		recorder:    s.cfg.Recorder,
		metrics:     s.metrics,
		now:         s.now,
		log:         s.log,
		maskHold:    s.cfg.MaskHold,
		idleTimeout: s.cfg.IdleTimeout,
		maxDuration: s.cfg.MaxSessionDuration,
		envAllowed:  s.envAllowed,
		stillValid:  s.stillValid,
		sessionOver: s.sessionOver,
		untrack:     s.untrack,
	}
}
