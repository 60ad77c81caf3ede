package bastion

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"github.com/bastionhq/bastion/bastion/mask"
	"github.com/bastionhq/bastion/bastion/pgproxy"
	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/ca"
)

// dbCertTTL is the lifetime of a per-connection PostgreSQL client
// certificate: it only has to survive the TLS handshake.
const dbCertTTL = 2 * time.Minute

// pgShared is what PostgreSQL forwards share across connections: the
// cancel registry (a cancel arrives on a forward of its own) and the
// certificate offered to clients that ask for TLS inside the tunnel.
type pgShared struct {
	cancels   *pgproxy.CancelRegistry
	authority *ca.Authority
	names     func() []string // the names the certificate is for, besides loopback
	once      sync.Once
	server    *tls.Config
	err       error
}

// serverTLS is the bastion's PostgreSQL server certificate, from the
// database CA, made at first use.
func (p *pgShared) serverTLS() (*tls.Config, error) {
	p.once.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			p.err = err
			return
		}
		names := append([]string{"localhost", "127.0.0.1", "::1"}, p.names()...)
		cert, err := p.authority.SignDBServer(key.Public(), names, 10*365*24*time.Hour)
		if err != nil {
			p.err = err
			return
		}
		p.server = &tls.Config{
			Certificates: []tls.Certificate{{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}},
			MinVersion:   tls.VersionTLS12,
		}
	})
	return p.server, p.err
}

// pgUpstreamTLS verifies a PostgreSQL target against the CA the policy
// compiled for it (nil: the target authenticates with a password).
func pgUpstreamTLS(t *policy.Target) *tls.Config {
	if t.ServerCAs == nil {
		return nil
	}
	return &tls.Config{RootCAs: t.ServerCAs, ServerName: t.ServerName, MinVersion: tls.VersionTLS12}
}

// pgPassword is the weaker, password-based credential of a target.
func pgPassword(t *policy.Target) (string, error) {
	if p, ok := t.Password(); ok {
		return p, nil
	}
	return "", errors.New("no password configured")
}

// transcriptWriter puts the PostgreSQL transcript into the recording.
type transcriptWriter struct{ ss *session }

func (w transcriptWriter) Write(p []byte) (int, error) {
	if err := w.ss.record(p); err != nil && w.ss.recordingFailed() || w.ss.recordingFailed() {
		return 0, fmt.Errorf("the session recording failed (%v); strict recording ends the session", w.ss.recordingErr())
	}
	return len(p), nil
}

// postgres inspects a forward to a PostgreSQL target: the startup is
// checked against the identity's roles, the bastion authenticates upstream
// with a fresh client certificate, every statement is judged before it is
// sent, result values are masked, and the session is recorded as a
// readable transcript.
func (s *Server) postgres(ctx context.Context, ss *session, ch net.Conn, up net.Conn, t *policy.Target, port int) (err error) {
	id := ss.identity
	pid := policyIdentity(id)
	log := s.log.With("session_id", ss.id, "user", id.User, "target", t.Name)
	upTLS := pgUpstreamTLS(t)
	srvTLS, err := s.pg.serverTLS()
	if err != nil {
		return err
	}
	preDialled := atomic.Pointer[net.Conn]{}
	preDialled.Store(&up)
	cfg := pgproxy.Config{
		DialUpstream: func(ctx context.Context) (net.Conn, error) {
			// The forward dialled the target before accepting the channel,
			// so a refusal reached the user; use that connection first.
			if c := preDialled.Swap(nil); c != nil {
				return *c, nil
			}
			start := s.now()
			c, err := s.dialTarget(ctx, t, port)
			result := "ok"
			if err != nil {
				result = "error"
			}
			s.metrics.UpstreamDial.WithLabelValues(policy.KindPostgres, result).Observe(s.now().Sub(start).Seconds())
			return c, err
		},
		UpstreamTLS:   upTLS,
		ServerTLS:     srvTLS,
		Limits:        pgproxy.Limits{StartupTimeout: s.cfg.StartupTimeout},
		StartupParams: t.StartupParams,
		Authorize: func(_ context.Context, st pgproxy.Startup) error {
			if err := s.cfg.Policy().CheckDB(pid, t.Name, st.User, st.Database, st.Replication); err != nil {
				// The names are the client's: masked in the audit record
				// and in the error, which ends the session (its reason).
				why := maskClientText(err.Error())
				s.audit(Event{Type: "sql.connect", Identity: id, SessionID: ss.id, Target: t.Name, Outcome: "refused", Reason: why,
					Fields: map[string]string{"db_user": maskClientText(st.User), "database": maskClientText(st.Database)}})
				return errors.New("bastion: " + why)
			}
			ss.mu.Lock()
			ss.login, ss.database = st.User, st.Database
			ss.mu.Unlock()
			ss.marker(fmt.Sprintf("bastion: connected as %s to database %s", st.User, st.Database))
			s.audit(Event{Type: "sql.connect", Identity: id, SessionID: ss.id, Target: t.Name, Outcome: "allowed",
				Fields: map[string]string{"db_user": st.User, "database": st.Database}})
			return nil
		},
		Judge: func(ctx context.Context, st pgproxy.Statement) pgproxy.Verdict {
			ss.mu.Lock()
			ss.statements++
			ss.mu.Unlock()
			return s.judgeSQL(ctx, ss, t, st)
		},
		// A reload swaps the policy: statements prepared under the old one are
		// judged again when they next run.
		RulesVersion: func() any { return s.cfg.Policy() },
		Transcript:   transcriptWriter{ss},
		Audit: func(ev pgproxy.Event) {
			f := map[string]string{"sql": ev.Statement.Normalized, "db_user": ev.User, "database": ev.Database, "outcome": string(ev.Outcome),
				"tag": ev.Tag, "rows": strconv.FormatInt(ev.Rows, 10), "duration_us": strconv.FormatInt(ev.Duration.Microseconds(), 10)}
			if ev.Rule != "" {
				f["rule"] = ev.Rule
			}
			if ev.RequestID != "" {
				f["request"] = ev.RequestID
			}
			if ev.SQLState != "" {
				f["sqlstate"] = ev.SQLState
			}
			if ev.Withheld > 0 || ev.NulledBinary > 0 {
				f["withheld_rows"], f["nulled_binary"] = strconv.Itoa(ev.Withheld), strconv.Itoa(ev.NulledBinary)
			}
			routine := ev.Outcome == pgproxy.OutcomeOK || ev.Outcome == pgproxy.OutcomeError || ev.Outcome == pgproxy.OutcomeNotRun
			s.audit(Event{Type: "sql.statement", Identity: id, SessionID: ss.id, Target: t.Name, Outcome: string(ev.Outcome), Reason: ev.Message, Fields: f, Routine: routine})
		},
		Cancels: s.pg.cancels,
		Logger:  log,
		Now:     s.now,
	}
	if t.ServerCAs != nil {
		cfg.ClientCert = func(_ context.Context, user string) (*tls.Certificate, error) {
			key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
			if err != nil {
				return nil, err
			}
			cert, err := s.cfg.Authority.SignDBClient(key.Public(), user, dbCertTTL)
			if err != nil {
				return nil, err
			}
			return &tls.Certificate{Certificate: [][]byte{cert.Raw}, PrivateKey: key, Leaf: cert}, nil
		}
	} else {
		cfg.Password = func(context.Context, string) (string, error) { return pgPassword(t) }
	}
	rm := s.cfg.Policy().ResultMasks(pid, t.Name)
	// A reload ends the session when the new policy would not let it connect,
	// or changes its masks: what it prepared and traced was set up for these.
	// The session is first checked within a second (checkPolicy runs at a
	// reload and every second, for every session whose policy is not the one
	// in force), so a reload since its access was checked is not missed.
	maskKey := rm.Key()
	ss.policyCheck(nil, func(p *policy.Policy) error {
		if err := recheckForward(p, pid, t, port); err != nil {
			return err
		}
		ss.mu.Lock()
		login, database := ss.login, ss.database
		ss.mu.Unlock()
		if login != "" {
			if err := p.CheckDB(pid, t.Name, login, database, false); err != nil {
				return err
			}
		}
		if p.ResultMasks(pid, t.Name).Key() != maskKey {
			return errMasksChanged
		}
		return nil
	})
	if len(rm.Columns) > 0 {
		cfg.MaskColumn = rm.MaskColumn
		cfg.Masks = &pgproxy.ColumnMasks{Source: rm.MaskSource, Rule: strings.Join(rm.ColumnRules, ","), Block: rm.BlockUnknowable}
	}
	if rm.Cards || len(rm.Patterns) > 0 {
		mcfg := mask.Config{Cards: rm.Cards, Patterns: rm.Patterns}
		if _, err := mask.New(mcfg); err != nil {
			return fmt.Errorf("masking: %w", err)
		}
		cardsOnly := len(rm.Patterns) == 0
		cfg.MaskValue = func(v []byte) ([]byte, bool) {
			if cardsOnly && digitCount(v) < minCardDigits {
				return nil, false // most cells: too few digits to hold a card number
			}
			out, n := mask.MaskString(mcfg, string(v))
			if n == 0 {
				return nil, false
			}
			ss.addMasked(n)
			return []byte(out), true
		}
	}
	if t.RecordContent {
		// The client side of the conversation, for a capture of it (export
		// --format pcap): what the client sent, and what it received after
		// masking.
		rec := ss.rec
		rec.ConnEvent("open " + ch.RemoteAddr().String() + " " + up.RemoteAddr().String())
		cfg.Wire = func(fromClient bool, p []byte) error {
			var err error
			if fromClient {
				err = rec.FromClient(p)
			} else {
				err = rec.FromServer(p)
			}
			if err != nil && ss.recordingFailed() {
				return err
			}
			return nil
		}
		defer func() {
			if ss.wasStopped() {
				// The bastion ended it (idle timeout, a withdrawn
				// grant...), not the client or the server.
				rec.ConnEvent("cut")
				return
			}
			rec.ConnEvent(closeEvent("client", err))
			rec.ConnEvent("server fin")
		}()
	}
	return pgproxy.Serve(ctx, ch, cfg)
}

// judgeSQL applies the SQL rules to one statement.
func (s *Server) judgeSQL(ctx context.Context, ss *session, t *policy.Target, st pgproxy.Statement) pgproxy.Verdict {
	pol := s.cfg.Policy()
	d := pol.JudgeSQL(policyIdentity(ss.identity), t.Name, policyStatement(st))
	s.metrics.Decisions.WithLabelValues(policy.OnSQL, d.Action).Inc()
	// What the markers below show of the statement: they go into the recording, which
	// the output masks cover, and normalisation keeps identifiers and the constants of
	// many statements (COPY … PROGRAM 'echo 4111…', PREPARE, CREATE VIEW). The rules
	// (a re-judgement after an approval) keep reading the statement as it is.
	shown := st.Normalized
	if d.Action != policy.ActionAllow {
		shown = maskedMarkerText(pol.ResultMasks(policyIdentity(ss.identity), t.Name), st.Normalized)
	}
	switch d.Action {
	case policy.ActionAllow:
		return pgproxy.Verdict{Action: pgproxy.Allow}
	case policy.ActionBlock:
		ss.marker(fmt.Sprintf("bastion: statement blocked by rule %s: %s", d.Rule, shown))
		ss.decided(outcomeBlocked)
		return pgproxy.Verdict{Action: pgproxy.Block, Rule: d.Rule, Message: d.Reason}
	}
	if pgproxy.Prepares(st) && pgproxy.HasPlaceholders(st.SQL) {
		// Prepared without asking: each execution asks, with the values it binds
		// (an approval of "SET balance = $1" would not say which balance).
		return pgproxy.Verdict{Action: pgproxy.Hold, Rule: d.Rule, AtExecution: true}
	}
	if n := len(sqlApprovalFull(st)); n > maxApprovalSQL {
		// An approver would be shown its first maxApprovalSQL bytes and
		// approve the rest unseen: refused, as a shell line too long to
		// show is.
		ss.marker(fmt.Sprintf("bastion: statement needs approval by rule %s but is too long to show an approver (%d bytes): not run: %s", d.Rule, n, shown))
		ss.decided(outcomeBlocked)
		return pgproxy.Verdict{Action: pgproxy.Block, Rule: d.Rule,
			Message: fmt.Sprintf("needs approval by rule %s, but the statement (with its parameters) is too long to show an approver whole (%d bytes, at most %d): not run", d.Rule, n, maxApprovalSQL)}
	}
	// What the approval request stores and shows (requests, the console,
	// the webhook, the audit log) is masked as the recording is: card
	// numbers become stars, which hide a value and never what the statement
	// does; a pattern's match can hide anything, so a statement a pattern
	// would partly hide is refused, as such a command is.
	command := sqlApprovalText(st)
	rm := pol.ResultMasks(policyIdentity(ss.identity), t.Name)
	if len(rm.Patterns) > 0 {
		if out, n := mask.MaskString(mask.Config{Patterns: rm.Patterns}, command); n > 0 && out != command {
			ss.marker(fmt.Sprintf("bastion: statement needs approval by rule %s but a masking pattern hides part of it: not run: %s", d.Rule, shown))
			ss.decided(outcomeBlocked)
			return pgproxy.Verdict{Action: pgproxy.Block, Rule: d.Rule,
				Message: fmt.Sprintf("needs approval by rule %s, but an output masking pattern hides part of it, so no approver could see what they approve (keep the secret out of the statement)", d.Rule)}
		}
	}
	command = maskedMarkerText(rm, command)
	now := s.now()
	ss.mu.Lock()
	login, database := ss.login, ss.database
	ss.mu.Unlock()
	ap := s.approvals.request(&approval{
		SessionID: ss.id, Requester: ss.identity, User: ss.identity.User, Target: t.Name, Login: login, Database: database,
		Kind: "sql", Command: command, Rule: d.Rule, Reason: d.Reason, Approvers: d.Approvers,
		Created: now, Expires: now.Add(d.Timeout),
	})
	ss.marker(fmt.Sprintf("bastion: statement held for approval (request %s, rule %s): %s", ap.ID, d.Rule, shown))
	if ss.onHold != nil {
		ss.onHold(ap.ID)
	}
	return pgproxy.Verdict{
		Action: pgproxy.Hold, Rule: d.Rule, RequestID: ap.ID,
		Message: fmt.Sprintf("held for approval by rule %s (%s): an approver (%s) runs `bastion approve %s`; waiting up to %s",
			d.Rule, d.Reason, strings.Join(d.Approvers, ", "), ap.ID, d.Timeout.Round(time.Second)),
		Wait: func(ctx context.Context) (pgproxy.Verdict, error) {
			outcome, by, note := s.approvals.wait(ctx, ap)
			if ss.onDecided != nil {
				ss.onDecided()
			}
			if outcome == Approved {
				ss.decided(outcomeApproved)
			} else {
				ss.decided(outcomeDenied)
			}
			ss.marker(fmt.Sprintf("bastion: request %s %s%s", ap.ID, strings.ReplaceAll(outcome, "_", " "), suffix(" by ", by)))
			if outcome == Approved {
				// A revocation (or an expiry, with disconnect_expired_cert)
				// ends the session within a second (endRevoked); an approval
				// in that second must not run the statement.
				if err := s.sessionOver(ss.identity); err != nil {
					ss.marker(fmt.Sprintf("bastion: request %s not run: the requester's %v", ap.ID, err))
					return pgproxy.Verdict{Action: pgproxy.Block, Rule: d.Rule, RequestID: ap.ID,
						Message: fmt.Sprintf("request %s approved%s, but not run: your %v", ap.ID, suffix(" by ", by), err)}, nil
				}
				if cur := s.cfg.Policy(); cur != pol {
					// The rules were reloaded while it waited: judged again, it
					// runs only if they would let it run without an approval.
					if d2 := cur.JudgeSQL(policyIdentity(ss.identity), t.Name, policyStatement(st)); d2.Action != policy.ActionAllow {
						ss.marker(fmt.Sprintf("bastion: request %s not run: the rules were reloaded while it waited (%s)", ap.ID, d2))
						return pgproxy.Verdict{Action: pgproxy.Block, Rule: d2.Rule, RequestID: ap.ID,
							Message: fmt.Sprintf("request %s approved%s, but the rules were reloaded while it waited and now %s it (%s): run it again", ap.ID, suffix(" by ", by), d2.Action, d2.Reason)}, nil
					}
				}
				return pgproxy.Verdict{Action: pgproxy.Allow, Rule: d.Rule, RequestID: ap.ID}, nil
			}
			return pgproxy.Verdict{Action: pgproxy.Block, Rule: d.Rule, RequestID: ap.ID,
				Message: fmt.Sprintf("request %s %s%s%s", ap.ID, strings.ReplaceAll(outcome, "_", " "), suffix(" by ", by), suffix(": ", note))}, nil
		},
	}
}

// maxApprovalSQL bounds the statement text an approval request carries.
const maxApprovalSQL = 64 << 10

// sqlApprovalText is what an approver is shown for a held statement: exactly what will
// run, never the normalised text (which shows every constant as $n, so "UPDATE accounts
// SET balance = $1" could mean any balance). That is the statement's own text as the
// client sent it (its bodies are in it), then, for an execution of a prepared statement,
// the values bound to its parameters and, for an SQL EXECUTE, the statement it executes.
// A role's password is the one constant not shown (pgproxy.RedactPasswords).
// Control characters are left to the displays, which escape them (safetext); a text
// longer than maxApprovalSQL is cut, saying how much is not shown.
func sqlApprovalText(st pgproxy.Statement) string {
	text := sqlApprovalFull(st)
	if len(text) > maxApprovalSQL {
		n := maxApprovalSQL
		for n > 0 && !utf8.RuneStart(text[n]) {
			n--
		}
		text = fmt.Sprintf("%s\n-- (%d more bytes of the statement not shown)", text[:n], len(text)-n)
	}
	return text
}

// sqlApprovalFull is sqlApprovalText uncut. A statement needing approval
// whose text is longer than maxApprovalSQL is refused (judgeSQL): what an
// approver is not shown is not approved.
func sqlApprovalFull(st pgproxy.Statement) string {
	var b strings.Builder
	b.WriteString(pgproxy.RedactPasswords(st.SQL))
	if len(st.Params) > 0 {
		b.WriteString("\n-- parameters:")
		for i, p := range st.Params {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, " $%d = %s", i+1, p)
		}
	}
	for _, bs := range st.Body {
		if bs.Protocol == "prepared" {
			b.WriteString("\n-- executes the prepared statement: ")
			b.WriteString(pgproxy.RedactPasswords(bs.SQL))
		}
	}
	return b.String()
}

// policyStatement is a classified statement as the policy judges it.
func policyStatement(st pgproxy.Statement) policy.Statement {
	ps := policy.Statement{Kinds: st.Kinds, Tables: st.Tables, Functions: st.Functions, Normalized: st.Normalized, Unknowable: st.Unknowable}
	for _, b := range st.Body {
		ps.Body = append(ps.Body, policyStatement(b))
	}
	return ps
}

// maskedMarkerText is text for a recording marker through the output masks in force.
func maskedMarkerText(rm policy.ResultMask, text string) string {
	if !rm.Cards && len(rm.Patterns) == 0 {
		return text
	}
	out, _ := mask.MaskString(mask.Config{Cards: rm.Cards, Patterns: rm.Patterns}, text)
	return out
}

// minCardDigits is the fewest digits a card number has.
const minCardDigits = 13

func digitCount(v []byte) int {
	n := 0
	for _, b := range v {
		if b-'0' < 10 {
			n++
		}
	}
	return n
}
