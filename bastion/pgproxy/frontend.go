package pgproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"
)

// frontendLoop reads the client's messages, judges statements and forwards what may pass.
// It returns nil when the client terminates (Terminate or EOF).
func (s *session) frontendLoop() error {
	for {
		typ, body, err := s.cr.next()
		if err != nil {
			if errors.Is(err, io.EOF) {
				s.vanished()
				s.terminated.Store(true)
				s.uw.Write([]byte{'X', 0, 0, 0, 4})
				_ = s.uw.Flush()
				return nil
			}
			if s.ctx.Err() != nil {
				return s.cause()
			}
			return err
		}
		if s.ctx.Err() != nil {
			// The session was ended (a reload withdrew it, a revocation, a
			// shutdown) while this message came: it is not acted on.
			return s.cause()
		}
		if err := s.onFrontend(typ, body); err != nil {
			if errors.Is(err, errDone) {
				return nil
			}
			return err
		}
		if s.cbr.Buffered() == 0 && s.uw.Buffered() > 0 {
			if err := s.uw.Flush(); err != nil {
				return s.upstreamGone(err)
			}
		}
	}
}

// vanished handles a client that went away without Terminate: whatever it left running
// on the server is cancelled rather than left to finish for nobody.
func (s *session) vanished() {
	if err := s.cancelBusy(s.ctx); err != nil {
		s.log.Warn("cancelling the statement of a vanished client failed", "err", err)
	}
}

// cancelBusy cancels at the server the statement the client left running,
// if any, within ten seconds of ctx.
func (s *session) cancelBusy(ctx context.Context) error {
	s.qmu.Lock()
	busy := s.pendingRFQ > 0
	s.qmu.Unlock()
	if !busy || s.cancelTarget == nil {
		return nil
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	return s.cancelTarget.send(ctx)
}

// cause is why the session's context ended (errDone for a normal end).
func (s *session) cause() error {
	if c := context.Cause(s.ctx); c != nil {
		return c
	}
	return errDone
}

func (s *session) upstreamGone(err error) error {
	if s.ctx.Err() != nil {
		return s.cause()
	}
	return fmt.Errorf("%w: write: %v", ErrUpstream, err)
}

// forward writes the client's message upstream unchanged.
func (s *session) forward(typ byte, body []byte) error {
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(body)+4))
	if _, err := s.uw.Write(hdr[:]); err != nil {
		return s.upstreamGone(err)
	}
	if _, err := s.uw.Write(body); err != nil {
		return s.upstreamGone(err)
	}
	return nil
}

func (s *session) onFrontend(typ byte, body []byte) error {
	switch typ {
	case 'Q':
		return s.onQuery(body)
	case 'P':
		return s.onParse(body)
	case 'B':
		m, err := decodeBind(body)
		if err != nil {
			return err
		}
		var run *stmtRun
		if len(s.prepCands[m.stmt]) > 0 {
			// Each execution of a statement that needed approval needs its own (held.go),
			// asked when the portal is bound, with its values: once the portal exists on
			// the server, SQL (FETCH, MOVE, a PL/pgSQL FETCH of a refcursor of its name)
			// can run it without any Execute the proxy would see.
			var judged *Statement
			var ref *refusal
			if run, judged, ref = s.approveExecution(m.stmt, nil, bindParams(m, s.binaryParamHidden)); ref != nil {
				// In place of the Bind, a Parse the server rejects (of a name nothing
				// uses): the server skips to Sync, the portal is never created.
				return s.refuse(expParse, "bastion_refused_"+s.nonce, judged.SQL, []Statement{*judged}, ref)
			}
		}
		s.noteBind(m, run)
		s.notePortalRules(m)
		s.views.bound(m.portal, m.stmt)
		s.enqueue(&expect{kind: expBind, name: m.portal, stmt: m.stmt, formats: m.resultFormats})
	case 'D', 'C':
		m, err := decodeTarget(typ, body)
		if err != nil {
			return err
		}
		kind := expDescribe
		if typ == 'C' {
			kind = expClose
		}
		e := &expect{kind: kind, target: m.kind, name: m.name}
		if typ == 'C' {
			s.noteClose(m, e)
			if m.kind == 'P' {
				s.views.closedPortal(m.name)
				delete(s.portalRules, m.name) // gone, or its transaction aborted
			}
		}
		s.enqueue(e)
	case 'E':
		m, err := decodeExecute(body)
		if err != nil {
			return err
		}
		e := &expect{kind: expExecute, name: m.portal, sent: s.cfg.Now()}
		if st, stale := s.views.staleExecute(m.portal); st != nil {
			// A write prepared before view DDL of the session is judged again (views.go),
			// and refused like a denied execution below; so is one whose names another
			// session has since made views of other tables.
			if !stale {
				st, stale = s.refollow(st)
			}
			if stale {
				if ref := s.rejudgeExecution(m.portal, st); ref != nil {
					return s.refuse(expParse, "bastion_refused_"+s.nonce, st.SQL, []Statement{*st}, ref)
				}
			}
		}
		for _, j := range []*judgedUnder{s.portalRules[m.portal], s.cursorRules[m.portal]} {
			// Bound (or, an SQL cursor of that name, declared) under rules since
			// reloaded: judged again (held.go).
			if st, ref := s.rejudgeUnder(j); ref != nil {
				return s.refuse(expParse, "bastion_refused_"+s.nonce, st.SQL, []Statement{*st}, ref)
			}
		}
		if hp := s.heldPortals[m.portal]; hp != nil && hp.run != nil {
			// The approval asked when the portal was bound: this is its run.
			e.runs = []*stmtRun{hp.run}
			hp.run = nil
		}
		s.enqueue(e)
		s.unsyncedExec = true
	case 'S':
		if err := checkEmpty("client", typ, body); err != nil {
			return err
		}
		s.enqueue(&expect{kind: expSync})
		s.unsyncedExec = false
		s.segs++
	case 'H':
		if err := checkEmpty("client", typ, body); err != nil {
			return err
		}
	case 'F':
		return s.onFunctionCall(body)
	case 'd':
		// COPY data is never parsed as SQL.
	case 'c', 'f':
		if typ == 'c' {
			if err := checkEmpty("client", typ, body); err != nil {
				return err
			}
		} else if _, err := decodeQuery(body); err != nil { // same layout: one string
			return protoErr("client", typ, "malformed CopyFail")
		}
		s.qmu.Lock()
		s.copyEnds++
		s.qmu.Unlock()
	case 'X':
		if err := checkEmpty("client", typ, body); err != nil {
			return err
		}
		s.terminated.Store(true)
		if err := s.forward(typ, body); err != nil {
			return err
		}
		if err := s.uw.Flush(); err != nil {
			return s.upstreamGone(err)
		}
		return errDone
	default:
		return protoErr("client", typ, "unexpected message")
	}
	return s.forward(typ, body)
}

// classify classifies sql for a client message, failing closed.
func (s *session) classify(sql, protocol string) ([]Statement, *refusal) {
	if len(sql) > s.cfg.Limits.MaxSQL {
		return nil, &refusal{code: "54000", rule: "pgproxy:max-sql",
			message: fmt.Sprintf("bastion: statement refused: %d bytes exceeds the limit of %d", len(sql), s.cfg.Limits.MaxSQL)}
	}
	if strings.IndexByte(sql, '\\') >= 0 {
		if err := s.backslashSafe(); err != nil {
			if s.ctx.Err() != nil {
				return nil, &refusal{code: "57P01", message: "bastion: session ending"}
			}
			return nil, &refusal{code: "42501", rule: "pgproxy:backslash", message: "bastion: statement refused: " + err.Error()}
		}
	}
	sts, err := s.cfg.Classifier.Classify(sql)
	if err != nil {
		if s.startup.Replication {
			if st, ok := classifyReplication(sql); ok {
				st.Protocol = protocol
				return []Statement{st}, nil
			}
		}
		if errors.Is(err, ErrUnsafeSetting) {
			return nil, &refusal{code: "42501", rule: "pgproxy:standard-conforming-strings",
				message: "bastion: statement refused: " + strings.TrimPrefix(err.Error(), ErrUnsafeSetting.Error()+": ")}
		}
		return nil, &refusal{code: "42601", rule: "pgproxy:unparseable",
			message: "bastion: statement refused: it cannot be parsed: " + strings.TrimPrefix(err.Error(), ErrUnparseable.Error()+": ")}
	}
	for i := range sts {
		sts[i].Protocol = protocol
	}
	return sts, nil
}

// refusal is a statement the proxy will not send, and what the client is told.
type refusal struct {
	code, rule, message, detail, hint string
	requestID                         string
	outcome                           Outcome
	index                             int // statement refused, among those of its message
}

func (r *refusal) fields() []errField {
	f := []errField{{'S', "ERROR"}, {'V', "ERROR"}, {'C', r.code}, {'M', r.message}}
	if r.detail != "" {
		f = append(f, errField{'D', r.detail})
	}
	if r.hint != "" {
		f = append(f, errField{'H', r.hint})
	}
	return f
}

// copyBinary reports whether a COPY statement asks for the binary format (FORMAT binary,
// or the older BINARY keyword, which PostgreSQL's grammar turns into the same option):
// values the value masker would find in text are then sent in their binary form, an
// int8 card number as eight bytes. A statement that does not parse counts as binary.
func copyBinary(sql string) bool {
	res, err := pgParse(sql)
	if err != nil || len(res.Stmts) != 1 {
		return true
	}
	cs := res.Stmts[0].Stmt.GetCopyStmt()
	if cs == nil {
		return true
	}
	for _, o := range cs.Options {
		de := o.GetDefElem()
		if de == nil || !strings.EqualFold(de.Defname, "format") {
			continue
		}
		if v := de.Arg.GetString_(); v == nil || !strings.EqualFold(v.Sval, "text") && !strings.EqualFold(v.Sval, "csv") {
			return true
		}
	}
	return false
}

// judgeAll judges every statement before any is sent; the first refusal stops it.
func (s *session) judgeAll(sts []Statement) ([]*stmtRun, *refusal) {
	runs := make([]*stmtRun, 0, len(sts))
	for i := range sts {
		run, ref := s.judge(&sts[i])
		if ref == nil {
			// SQL PREPARE and EXECUTE: each execution needs its own approval (held.go).
			run, ref = s.onQueryPrepared(&sts[i], run)
		}
		if ref == nil {
			// Cursors declared under rules since reloaded (held.go).
			ref = s.onQueryCursors(&sts[i], run)
		}
		if ref != nil {
			ref.index = i
			return nil, ref
		}
		runs = append(runs, run)
	}
	return runs, nil
}

// judge asks Judge about one statement, handling holds.
func (s *session) judge(st *Statement) (*stmtRun, *refusal) {
	if s.cfg.Masks == nil && s.cfg.MaskColumn != nil && st.Has("copy_to_stdout") {
		return nil, &refusal{code: "42501", rule: "pgproxy:copy-masking", outcome: OutcomeBlocked,
			message: "bastion: statement blocked: COPY TO STDOUT cannot be masked by column; use SELECT"}
	}
	if s.cfg.MaskValue != nil && st.Has("copy_to_stdout") && copyBinary(st.SQL) {
		return nil, &refusal{code: "42501", rule: "pgproxy:copy-masking", outcome: OutcomeBlocked,
			message: "bastion: statement blocked: COPY TO STDOUT in binary format cannot be masked; use FORMAT text or csv"}
	}
	if s.cfg.MaskValue != nil && st.Has("replication_command") && (st.Has("start_replication") || st.Has("base_backup")) {
		// WAL and data files hold values in their binary form (an int8 card number is
		// eight bytes), which the value masker cannot see, as in binary COPY.
		return nil, &refusal{code: "42501", rule: "pgproxy:replication-masking", outcome: OutcomeBlocked,
			message: "bastion: statement blocked: a replication stream carries values in binary form, which cannot be masked"}
	}
	// Whatever is already forwarded must not wait on a human.
	if s.uw.Buffered() > 0 {
		if err := s.uw.Flush(); err != nil {
			return nil, &refusal{code: "08006", message: "bastion: upstream connection lost", outcome: OutcomeBlocked}
		}
	}
	rules := s.rulesVersion()
	v := s.callJudge(st)
	if v.Action != Allow && v.Action != Hold {
		return nil, blockRefusal(v, OutcomeBlocked)
	}
	// Masks: what the results derive from, before anyone is asked to approve.
	var lin *lineage
	if s.cfg.Masks != nil {
		var ref *refusal
		if lin, ref = s.lineageFor(st); ref != nil {
			return nil, ref
		}
	}
	var run *stmtRun
	if v.Action == Hold && v.AtExecution && Prepares(*st) {
		// Prepared unapproved: its executions ask, with their values (held.go).
		run = &stmtRun{st: *st, rule: v.Rule, held: true, atExecution: true}
	} else if v.Action == Hold {
		var ref *refusal
		if run, ref = s.hold(st, v); ref != nil {
			return nil, ref
		}
	} else {
		run = &stmtRun{st: *st, rule: v.Rule}
	}
	run.lin = lin
	run.schema = s.cfg.Masks != nil && changesSchema(st)
	run.rules = rules
	return run, nil
}

func (s *session) callJudge(st *Statement) (v Verdict) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("Judge panicked; statement blocked", "panic", fmt.Sprint(r))
			v = Verdict{Action: Block, Rule: "pgproxy:judge-failed", Message: "the policy check failed"}
		}
	}()
	// Table rules follow views: the judged statement names the relations behind the
	// views it writes to (views.go).
	s.followViews(st)
	return s.cfg.Judge(s.ctx, *st)
}

func blockRefusal(v Verdict, outcome Outcome) *refusal {
	rule := v.Rule
	if rule == "" {
		rule = "unnamed"
	}
	verb := "blocked"
	if outcome == OutcomeDenied {
		verb = "denied"
	}
	msg := fmt.Sprintf("bastion: statement %s by rule %q", verb, clean(rule))
	if v.Message != "" {
		msg += ": " + clean(v.Message)
	}
	r := &refusal{code: "42501", rule: rule, message: msg, outcome: outcome, requestID: v.RequestID}
	if v.RequestID != "" {
		r.detail = "approval request " + clean(v.RequestID)
	}
	return r
}

// hold tells the client the statement waits for approval, then waits.
func (s *session) hold(st *Statement, v Verdict) (*stmtRun, *refusal) {
	id, rule := clean(v.RequestID), clean(v.Rule)
	// Cancellable from before the client hears of the hold: it may Ctrl-C at once.
	wctx, cancel := context.WithCancelCause(s.ctx)
	s.holdMu.Lock()
	s.holdCancel = cancel
	s.holdMu.Unlock()
	defer func() {
		s.holdMu.Lock()
		s.holdCancel = nil
		s.holdMu.Unlock()
		cancel(nil)
	}()
	notice := fmt.Sprintf("bastion: statement held for approval by rule %q: request %s", rule, id)
	var detail string
	if v.Message != "" {
		detail = clean(v.Message)
	}
	if err := s.sendClient(errorMsg('N', "NOTICE", "00000", notice, detail, "an approver runs: bastion approve "+id)); err != nil {
		return nil, &refusal{code: "08006", message: "bastion: client connection lost", outcome: OutcomeDenied}
	}
	if err := s.transcript(s.promptLine(st.SQL) + fmt.Sprintf("HELD for approval by rule %q: request %s\r\n", rule, id)); err != nil {
		return nil, &refusal{code: "58030", message: "bastion: recording failed", outcome: OutcomeDenied}
	}
	if v.Wait == nil {
		return nil, blockRefusal(Verdict{Rule: v.Rule, Message: "no approval possible", RequestID: v.RequestID}, OutcomeDenied)
	}
	final, err := s.wait(wctx, v)
	if errors.Is(context.Cause(wctx), errCancelledByClient) {
		return nil, &refusal{code: "57014", rule: v.Rule, requestID: v.RequestID, outcome: OutcomeDenied,
			message: "bastion: statement cancelled by the client while held for approval (request " + id + ")"}
	}
	if err != nil {
		msg := "approval failed: " + err.Error()
		if s.ctx.Err() != nil {
			msg = "session ended while waiting for approval"
		}
		return nil, blockRefusal(Verdict{Rule: v.Rule, Message: msg, RequestID: v.RequestID}, OutcomeDenied)
	}
	if final.Action != Allow {
		if final.Rule == "" {
			final.Rule = v.Rule
		}
		if final.RequestID == "" {
			final.RequestID = v.RequestID
		}
		return nil, blockRefusal(final, OutcomeDenied)
	}
	if err := s.transcript(fmt.Sprintf("APPROVED request %s\r\n", id)); err != nil {
		return nil, &refusal{code: "58030", message: "bastion: recording failed", outcome: OutcomeDenied}
	}
	return &stmtRun{st: *st, rule: v.Rule, requestID: v.RequestID, held: true}, nil
}

func (s *session) wait(ctx context.Context, v Verdict) (final Verdict, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("approval wait panicked: %v", r)
		}
	}()
	return v.Wait(ctx)
}

// errCancelledByClient ends an approval wait when the client sends a CancelRequest
// (Ctrl-C in psql): the held statement is not on the server, so there is nothing to
// cancel there.
var errCancelledByClient = errors.New("pgproxy: cancelled by the client")

// cancelHold cancels the approval wait in progress, if any.
func (s *session) cancelHold() bool {
	s.holdMu.Lock()
	defer s.holdMu.Unlock()
	if s.holdCancel == nil {
		return false
	}
	s.holdCancel(errCancelledByClient)
	return true
}

func (s *session) onQuery(body []byte) error {
	sql, err := decodeQuery(body)
	if err != nil {
		return err
	}
	sts, ref := s.classify(sql, "simple")
	var runs []*stmtRun
	if ref == nil {
		runs, ref = s.judgeAll(sts)
	}
	defer func() { s.segs++ }() // a Query is a pipeline segment of its own
	if ref != nil {
		return s.refuse(expQuery, "", sql, sts, ref)
	}
	s.enqueue(&expect{kind: expQuery, runs: runs, sent: s.cfg.Now()})
	s.unsyncedExec = false // the Query's ReadyForQuery reports the settings again
	return s.forward('Q', body)
}

func (s *session) onParse(body []byte) error {
	m, err := decodeParse(body)
	if err != nil {
		return err
	}
	sts, ref := s.classify(m.query, "parse")
	var runs []*stmtRun
	if ref == nil {
		runs, ref = s.judgeAll(sts)
	}
	if ref != nil {
		s.noteRefusedParse(m.name)
		return s.refuse(expParse, m.name, m.query, sts, ref)
	}
	if s.lineage != nil && m.name != "" && len(runs) == 1 && runs[0].lin != nil {
		// SQL EXECUTE can run a statement prepared with Parse: they share names.
		r := orEmpty(runs[0].lin.out)
		s.lineage.mu.Lock()
		s.lineage.prepared[m.name] = r
		s.lineage.gen++
		s.lineage.mu.Unlock()
	}
	s.views.notePrepared(m.name, runs)
	e := &expect{kind: expParse, name: m.name, runs: runs}
	s.noteParse(m.name, runs, e)
	s.enqueue(e)
	return s.forward('P', body)
}

func (s *session) onFunctionCall(body []byte) error {
	oid, args, binaryResult, err := decodeFunctionCallArgs(body)
	if err != nil {
		return err
	}
	// What an approver is shown, as for an execution of a prepared statement: the
	// function that runs (read from the catalog: the call names it by OID only) and
	// the values it runs with. The rules still get their unknowable action, and
	// function rules match the function too.
	st := Statement{
		SQL:        fmt.Sprintf("-- fastpath function call (function OID %d)", oid),
		Kinds:      []string{"function_call"},
		Unknowable: "a fastpath function call names its function by OID, outside SQL",
		Protocol:   "fastpath",
		Params:     bindParams(args, s.binaryParamHidden),
	}
	if fn := s.fastpathFunction(oid); fn.signature != "" {
		st.SQL = fmt.Sprintf("-- fastpath function call of %s (function OID %d)", fn.signature, oid)
		st.Functions = []string{fn.name}
	}
	run, ref := s.judge(&st)
	if ref != nil {
		return s.refuse(expQuery, "", st.SQL, []Statement{st}, ref)
	}
	e := &expect{kind: expFunctionCall, runs: []*stmtRun{run}, sent: s.cfg.Now()}
	if binaryResult && s.cfg.MaskValue != nil {
		// A binary result is checked by its type, as a binary result column is: an
		// int8 card number is eight bytes the value masker cannot see.
		e.fnBinary, e.fnType = true, s.functionResultType(oid)
	}
	s.enqueue(e)
	return s.forward('F', body)
}

// fastpathFn is a function a fastpath call names, as the catalog describes it.
type fastpathFn struct{ name, signature string }

// fastpathFunction is the function with oid (empty when the catalog has none or
// cannot be read: the call is then shown by its OID). One catalog query per function
// and session, as functionResultType.
func (s *session) fastpathFunction(oid uint32) fastpathFn {
	if fn, ok := s.fnNames[oid]; ok {
		return fn
	}
	name, sig, ok, err := s.catalog.functionByOID(s.ctx, oid)
	if err != nil {
		s.log.Warn("reading a fastpath function's name failed; its approval request shows its OID", "err", err)
		return fastpathFn{}
	}
	var fn fastpathFn
	if ok {
		fn = fastpathFn{name: name, signature: sig}
	}
	if s.fnNames == nil {
		s.fnNames = map[uint32]fastpathFn{}
	}
	s.fnNames[oid] = fn
	return fn
}

// functionResultType is the result type of the function with oid (0 when it cannot be
// read: the result is then masked). One catalog query per function and session: an OID
// names one function for good, and its result type cannot change.
func (s *session) functionResultType(oid uint32) uint32 {
	if t, ok := s.fnTypes[oid]; ok {
		return t
	}
	t, err := s.catalog.functionResultType(s.ctx, oid)
	if err != nil {
		s.log.Warn("reading a fastpath function's result type failed; its result is masked", "err", err)
		return 0
	}
	if s.fnTypes == nil {
		s.fnTypes = map[uint32]uint32{}
	}
	s.fnTypes[oid] = t
	return t
}

// refuse sends, in place of the refused message, a statement the server rejects with a
// syntax error: the server then does exactly what it does after any error (aborts the
// transaction, skips to Sync in the extended protocol, answers ReadyForQuery), so client
// and server stay in step, and the backend loop replaces that error with the proxy's own.
// Nothing of the refused statement reaches the server.
func (s *session) refuse(kind expKind, name, sql string, sts []Statement, ref *refusal) error {
	if ref.outcome == "" {
		ref.outcome = OutcomeBlocked
	}
	now := s.cfg.Now()
	s.refusalSeq++
	seq := s.refusalSeq
	s.qmu.Lock()
	s.refusals[seq] = ref.fields()
	s.qmu.Unlock()

	// Audit: the refused statement, and the others of the same message that will not run.
	if len(sts) == 0 {
		sts = []Statement{{SQL: sql}}
		ref.index = 0
	}
	// The message may quote the statement (a parse error: "unterminated quoted string at
	// or near "'4111…""): the transcript and the audit log have it masked.
	message := s.maskedText(ref.message)
	for i, st := range sts {
		ev := s.event(now, &st)
		if i == ref.index {
			ev.Outcome, ev.Rule, ev.Message, ev.RequestID = ref.outcome, ref.rule, message, ref.requestID
			ev.SQLState = ref.code
		} else {
			ev.Outcome = OutcomeNotRun
		}
		s.audit(ev)
	}
	var line string
	if ref.outcome == OutcomeDenied {
		line = fmt.Sprintf("DENIED: %s\r\n", message)
	} else {
		line = s.promptLine(sql) + fmt.Sprintf("BLOCKED: %s\r\n", message)
	}
	if err := s.transcript(line); err != nil {
		return err
	}

	marker := fmt.Sprintf("bastion_refused_%s_%d", s.nonce, seq)
	e := &expect{kind: kind, name: name, refusal: true, sent: now}
	s.enqueue(e)
	switch kind {
	case expParse:
		s.fbuf = appendParse(s.fbuf[:0], name, marker)
	default:
		s.fbuf = appendQuery(s.fbuf[:0], marker)
	}
	if _, err := s.uw.Write(s.fbuf); err != nil {
		return s.upstreamGone(err)
	}
	return nil
}
