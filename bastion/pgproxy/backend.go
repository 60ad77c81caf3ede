package pgproxy

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// running is the statement whose results are streaming from the server.
type running struct {
	run      *stmtRun
	desc     *resultDesc
	rows     int64
	withheld int
	why      string // why rows were withheld
	nulled   int
	begun    bool // prompt written to the transcript
	tRows    int  // rows written to the transcript
	start    time.Time
	// binaryCopy: a COPY TO STDOUT in binary format, whose data is withheld.
	binaryCopy bool
}

// backendLoop reads the server's messages, masks results and forwards them to the client.
func (s *session) backendLoop() error {
	defer s.flushTranscript()
	for {
		typ, body, err := s.ur.next()
		if err != nil {
			if s.ctx.Err() != nil || s.terminated.Load() {
				return errDone
			}
			if errors.Is(err, io.EOF) {
				err = fmt.Errorf("%w: server closed the connection", ErrUpstream)
			}
			s.cancel(err)
			return err
		}
		if err := s.onBackend(typ, body); err != nil {
			s.cancel(err)
			return err
		}
		if s.ubr.Buffered() == 0 {
			if err := s.flushClient(); err != nil {
				s.cancel(errDone)
				return errDone
			}
		}
	}
}

func desync(typ byte, what string) error {
	return protoErr("server", typ, "out of step with the client's requests: "+what)
}

func (s *session) onBackend(typ byte, body []byte) error {
	head := s.head()
	switch typ {
	case 'S':
		name, value, err := decodeParameterStatus(body)
		if err != nil {
			return err
		}
		s.noteParam(name, value)
		// PostgreSQL reports changed settings just before ReadyForQuery, after the
		// statement that changed them; older servers, while it runs.
		withheld := s.readMasked || s.cfg.Masks != nil && s.cur != nil && s.runTouches(s.cur.run)
		if v, ok := s.maskParam(name, value, withheld); ok {
			return s.writeClient(appendParameterStatus(nil, name, v))
		}
	case 'N':
		if s.cfg.Masks != nil {
			fields, err := decodeErrorFields('N', body)
			if err != nil {
				return err
			}
			if s.touches(head) || s.namesMaskedTable(fields) {
				return s.writeClient(appendErrorFields(nil, 'N', withheldMessage(fields)))
			}
		}
		return s.writeClient(s.maskErrorFields('N', body))
	case 'A':
		pid, channel, payload, err := decodeNotification(body)
		if err != nil {
			return err
		}
		if v, ok := s.maskValue(payload); ok {
			return s.writeClient(appendNotification(nil, pid, channel, v))
		}
	case 'E':
		return s.onError(head, body)
	case 'Z':
		return s.onReady(head, body)
	case '1':
		if head == nil || head.kind != expParse || head.refusal {
			return desync(typ, "ParseComplete")
		}
		if err := checkEmpty("server", typ, body); err != nil {
			return err
		}
		if head.cand != nil {
			head.cand.state.CompareAndSwap(candPending, candConfirmed)
		}
		p := &prepared{}
		if len(head.runs) > 0 {
			p.run = head.runs[0]
		}
		s.stmts[head.name] = p
		s.lineageParsed(head.name, p.run) // see lineage_txn.go
		s.pop()
	case '2':
		if head == nil || head.kind != expBind {
			return desync(typ, "BindComplete")
		}
		if err := checkEmpty("server", typ, body); err != nil {
			return err
		}
		prep := s.stmts[head.stmt]
		if prep == nil && s.lineage != nil {
			prep = s.sqlPrepared(head.stmt)
		}
		if prep != nil {
			s.refreshLineage(prep.run) // the server has bound it: see lineage_txn.go
		}
		// Binding evaluates the parameters (a domain's CHECK may call a function).
		s.ranOtherThan(head.name, true)
		s.portals[head.name] = &portalState{prep: prep, formats: head.formats}
		s.pop()
	case '3':
		if head == nil || head.kind != expClose {
			return desync(typ, "CloseComplete")
		}
		if err := checkEmpty("server", typ, body); err != nil {
			return err
		}
		if head.cand != nil {
			head.cand.state.CompareAndSwap(candPending, candConfirmed)
		}
		if head.target == 'S' {
			delete(s.stmts, head.name)
			s.lineageClosed(head.name)
		} else {
			delete(s.portals, head.name)
		}
		s.pop()
	case 't':
		if head == nil || head.kind != expDescribe || head.target != 'S' {
			return desync(typ, "ParameterDescription")
		}
	case 'n':
		if head == nil || head.kind != expDescribe {
			return desync(typ, "NoData")
		}
		if err := checkEmpty("server", typ, body); err != nil {
			return err
		}
		s.described(head, nil)
		s.pop()
	case 'T':
		fields, err := decodeRowDescription(body)
		if err != nil {
			return err
		}
		renamed := s.maskFieldNames(fields)
		var desc *resultDesc
		switch {
		case head != nil && head.kind == expDescribe:
			desc = s.newDesc(fields, nil, s.runOf(head))
			s.described(head, fields)
			s.pop()
		case head != nil && head.kind == expQuery:
			r := s.current(head)
			desc = s.newDesc(fields, nil, r.run)
			r.desc = desc
		default:
			return desync(typ, "RowDescription")
		}
		if desc.anyMasked || renamed {
			return s.writeClient(appendRowDescription(nil, desc.clientFields()))
		}
	case 'D':
		if head == nil || (head.kind != expQuery && head.kind != expExecute) {
			return desync(typ, "DataRow")
		}
		return s.onDataRow(s.current(head), body)
	case 'C':
		tag, err := decodeCommandComplete(body)
		if err != nil {
			return err
		}
		if head == nil || (head.kind != expQuery && head.kind != expExecute) {
			return desync(typ, "CommandComplete")
		}
		s.leaveCopyIn()
		if err := s.finish(s.current(head), OutcomeOK, tag, nil); err != nil {
			return err
		}
		s.ranOtherThan(head.name, head.kind == expExecute)
		s.cur = nil
		head.answered = true
		if head.kind == expQuery {
			head.idx++
		} else {
			s.pop()
		}
	case 'I':
		if err := checkEmpty("server", typ, body); err != nil {
			return err
		}
		switch {
		case head != nil && head.kind == expQuery:
			head.answered = true
		case head != nil && head.kind == expExecute:
			s.cur = nil
			s.pop()
		default:
			return desync(typ, "EmptyQueryResponse")
		}
	case 's':
		if err := checkEmpty("server", typ, body); err != nil {
			return err
		}
		if head == nil || head.kind != expExecute {
			return desync(typ, "PortalSuspended")
		}
		s.ranOtherThan(head.name, true)
		s.cur = nil
		s.pop()
	case 'G', 'H', 'W':
		if err := checkCopyResponse(typ, body); err != nil {
			return err
		}
		if head == nil || (head.kind != expQuery && head.kind != expExecute) {
			return desync(typ, "copy response")
		}
		r := s.current(head)
		if typ == 'G' {
			s.enterCopyIn(head)
		}
		if typ == 'H' && body[0] == 1 && s.cfg.MaskValue != nil {
			// Refused before it runs (copyBinary); should one get through, its data is
			// withheld: binary COPY data cannot be masked.
			r.binaryCopy = true
		}
	case 'd':
		if r := s.cur; r != nil && r.binaryCopy {
			r.withheld++
			if r.why == "" {
				r.why = "binary COPY data cannot be masked; use FORMAT text or csv"
			}
			return nil
		}
		if s.cfg.MaskValue != nil {
			if v, ok := s.maskValue(body); ok {
				return s.writeClient(appendRaw(nil, 'd', v))
			}
		}
	case 'c':
		if err := checkEmpty("server", typ, body); err != nil {
			return err
		}
	case 'V':
		c := cursor{b: body}
		v, null := c.value("result")
		if err := c.done("server", typ); err != nil {
			return err
		}
		if head == nil || head.kind != expFunctionCall {
			return desync(typ, "FunctionCallResponse")
		}
		head.answered = true
		r := s.current(head)
		masked := false
		if !null {
			// With column masks, a fastpath function's result has no known lineage.
			_, masked = s.maskValue(v)
			masked = masked || s.cfg.Masks != nil
			if !masked && head.fnBinary {
				if m, err := s.binaryNeedsMask(head.fnType, v); err != nil || m {
					masked = true
				}
			}
		}
		if masked {
			r.nulled++
		}
		if err := s.finish(r, OutcomeOK, "", nil); err != nil {
			return err
		}
		s.ranOtherThan("", false)
		if masked {
			out, start := beginMsg(nil, 'V')
			out = binary.BigEndian.AppendUint32(out, 0xffffffff)
			return s.writeClient(endMsg(out, start))
		}
	default: // K, R, v after startup
		return protoErr("server", typ, "unexpected message after startup")
	}
	return s.writeRaw(typ, body)
}

func (s *session) writeRaw(typ byte, body []byte) error {
	s.cwMu.Lock()
	defer s.cwMu.Unlock()
	var hdr [5]byte
	hdr[0] = typ
	binary.BigEndian.PutUint32(hdr[1:], uint32(len(body)+4))
	if _, err := s.cw.Write(hdr[:]); err != nil {
		return err
	}
	_, err := s.cw.Write(body)
	return err
}

// replacesPrepared reports whether a statement may drop or create prepared statements
// through SQL (DEALLOCATE, PREPARE, DISCARD, in a body too, or what cannot be known):
// a name the client prepared with Parse may then stand for another statement.
func replacesPrepared(st *Statement) bool {
	if st.Unknowable != "" || st.Has("prepare") || st.Has("deallocate") || st.Has("discard") {
		return true
	}
	for i := range st.Body {
		if replacesPrepared(&st.Body[i]) {
			return true
		}
	}
	return false
}

// forgetDescriptions drops what Describe said of the prepared statements: after SQL
// that may have replaced one, a statement's old description (column names, types)
// would mask another statement's results. A portal bound from such a statement is
// masked by its own Describe, or its rows are withheld.
func (s *session) forgetDescriptions() {
	for _, p := range s.stmts {
		p.desc, p.described = nil, false
	}
}

// described stores a Describe's answer on its statement or portal.
func (s *session) described(head *expect, fields []fieldDesc) {
	if head.target == 'S' {
		if p := s.stmts[head.name]; p != nil {
			p.desc, p.described = fields, true
		}
		return
	}
	if p := s.portals[head.name]; p != nil {
		p.desc, p.described = fields, true
	}
}

// current returns the running statement for the head expectation, starting it if needed.
func (s *session) current(head *expect) *running {
	if s.cur != nil {
		return s.cur
	}
	s.runBuf = running{start: head.sent}
	r := &s.runBuf
	switch head.kind {
	case expQuery:
		if head.idx < len(head.runs) {
			r.run = head.runs[head.idx]
		}
		if head.idx > 0 && !s.lastDone.IsZero() {
			r.start = s.lastDone
		}
	case expFunctionCall:
		if len(head.runs) > 0 {
			r.run = head.runs[0]
		}
	case expExecute:
		if p := s.portals[head.name]; p != nil && p.replaceable {
			// Its rows are withheld (maskRow: no description), its messages too.
			r.why = replacedPortalWhy
		} else if p != nil {
			if p.prep != nil {
				r.run = p.prep.run
			}
			if len(head.runs) > 0 && r.run != nil {
				// This execution's own approval (held.go).
				run := *r.run
				run.rule, run.requestID = head.runs[0].rule, head.runs[0].requestID
				r.run = &run
			}
			switch {
			case p.described:
				r.desc = s.newDesc(p.desc, nil, r.run)
			case p.prep != nil && p.prep.described:
				r.desc = s.newDesc(p.prep.desc, p.formats, r.run)
			}
		}
	}
	s.cur = r
	return r
}

func (s *session) onDataRow(r *running, body []byte) error {
	out, err := s.maskRow(r, body)
	if err != nil {
		r.withheld++
		if r.why == "" {
			r.why = err.Error()
		}
		return nil
	}
	r.rows++
	if s.cfg.TranscriptRows > 0 && r.tRows < s.cfg.TranscriptRows {
		row := body
		if out != nil {
			row = out[5:]
		}
		if err := s.transcriptRow(r, row); err != nil {
			return err
		}
	}
	if out == nil {
		return s.writeRaw('D', body)
	}
	return s.writeClient(out)
}

func (s *session) onError(head *expect, body []byte) error {
	fields, err := decodeErrorFields('E', body)
	if err != nil {
		return err
	}
	refused := false
	if head != nil && head.refusal {
		if f, ok := s.takeRefusal(fields); ok {
			fields, refused = f, true
		}
	}
	var out []byte
	switch {
	case refused:
		out = appendErrorFields(nil, 'E', fields)
	case s.touches(head) || s.namesMaskedTable(fields):
		fields = withheldMessage(fields)
		out = appendErrorFields(nil, 'E', fields)
	default:
		out = s.maskErrorFields('E', body)
		fields, _ = decodeErrorFields('E', out[5:])
	}
	s.leaveCopyIn()
	if head != nil && !head.refusal {
		switch head.kind {
		case expQuery, expExecute, expFunctionCall:
			if err := s.finish(s.current(head), OutcomeError, "", fields); err != nil {
				return err
			}
			s.ranOtherThan(head.name, head.kind == expExecute)
		case expParse:
			now := s.cfg.Now()
			for _, run := range head.runs {
				ev := s.event(now, &run.st)
				ev.Outcome, ev.Rule, ev.RequestID = OutcomeError, run.rule, run.requestID
				ev.SQLState, ev.Message = fieldValue(fields, 'C'), fieldValue(fields, 'M')
				s.audit(ev)
			}
		}
	}
	s.cur = nil
	if head != nil {
		head.answered = true
		switch head.kind {
		case expQuery:
			head.idx++
		case expSync, expFunctionCall:
		default:
			s.skipToSync() // the server ignores everything up to Sync
		}
	}
	return s.writeClient(out)
}

// takeRefusal recognises the server's syntax error for the proxy's refusal statement and
// returns the error the client is to see instead.
func (s *session) takeRefusal(fields []errField) ([]errField, bool) {
	marker := "bastion_refused_" + s.nonce + "_"
	msg := fieldValue(fields, 'M')
	i := strings.Index(msg, marker)
	if fieldValue(fields, 'C') != "42601" || i < 0 {
		return nil, false
	}
	digits := msg[i+len(marker):]
	if j := strings.IndexFunc(digits, func(r rune) bool { return r < '0' || r > '9' }); j >= 0 {
		digits = digits[:j]
	}
	seq, err := strconv.ParseUint(digits, 10, 64)
	if err != nil {
		return nil, false
	}
	s.qmu.Lock()
	defer s.qmu.Unlock()
	f, ok := s.refusals[seq]
	delete(s.refusals, seq)
	// Refusals the server skipped (an earlier error in the same pipeline) are never
	// answered; drop them with this one.
	for k := range s.refusals {
		if k < seq {
			delete(s.refusals, k)
		}
	}
	return f, ok
}

func (s *session) onReady(head *expect, body []byte) error {
	status, err := decodeReadyForQuery(body)
	if err != nil {
		return err
	}
	if head == nil || !answersWithReady(head.kind) || head.kind != expSync && !head.answered {
		return desync('Z', "ReadyForQuery")
	}
	if head.kind == expQuery {
		now := s.cfg.Now()
		for i := head.idx; i < len(head.runs); i++ {
			ev := s.event(now, &head.runs[i].st)
			ev.Outcome, ev.Rule, ev.RequestID = OutcomeNotRun, head.runs[i].rule, head.runs[i].requestID
			s.audit(ev)
		}
		// A simple Query drops the unnamed statement and portal.
		delete(s.stmts, "")
		s.lineageClosed("")
		delete(s.portals, "")
	}
	s.cur = nil
	s.readMasked = false
	s.lineageReady(status) // before pop: see lineage_txn.go
	s.pop()
	s.views.ready(status)
	if status == 'I' {
		clear(s.portals) // portals end with their transaction
		// Deferred constraints have been checked by now.
		s.wroteMasked = false
	}
	return s.writeRaw('Z', body)
}

// finish reports a statement's outcome: notices about masking, the audit event and the
// transcript line.
func (s *session) finish(r *running, outcome Outcome, tag string, errFields []errField) error {
	now := s.cfg.Now()
	if r.withheld > 0 {
		msg := fmt.Sprintf("bastion: %d row(s) withheld: masking failed: %s", r.withheld, clean(r.why))
		if err := s.writeClient(errorMsg('N', "WARNING", "01000", msg, "", "")); err != nil {
			return err
		}
	}
	if r.nulled > 0 {
		msg := fmt.Sprintf("bastion: %d binary value(s) had to be masked and were sent as NULL", r.nulled)
		if err := s.writeClient(errorMsg('N', "NOTICE", "01000", msg, "", "request text format to see masked values")); err != nil {
			return err
		}
	}
	if s.cfg.Masks != nil && s.runTouches(r.run) {
		s.readMasked = true
	}
	if s.cfg.Masks != nil && s.runWrites(r.run) {
		s.wroteMasked = true
	}
	if s.cfg.Masks != nil && (r.run == nil || r.run.st.Has("declare_cursor")) && s.runTouches(r.run) {
		// A WITH HOLD cursor's query runs to its end when the transaction commits: its
		// errors ("invalid input syntax for type integer: "…"") come with the COMMIT.
		s.wroteMasked = true
	}
	var st *Statement
	if r.run != nil {
		st = &r.run.st
		if r.run.schema {
			s.catalog.invalidate()
		}
	}
	if st == nil || replacesPrepared(st) {
		s.forgetDescriptions()
	}
	ev := s.event(now, st)
	ev.Outcome, ev.Tag, ev.Rows, ev.Duration = outcome, tag, r.rows, now.Sub(r.start)
	ev.Withheld, ev.NulledBinary = r.withheld, r.nulled
	if n, ok := tagRows(tag); ok {
		ev.Rows = n
	}
	if r.run != nil {
		ev.Rule, ev.RequestID = r.run.rule, r.run.requestID
	}
	if errFields != nil {
		ev.SQLState, ev.Message = fieldValue(errFields, 'C'), fieldValue(errFields, 'M')
	}
	s.audit(ev)
	s.lastDone = now
	return s.transcriptOutcome(r, ev)
}

func (s *session) event(now time.Time, st *Statement) Event {
	ev := Event{Time: now, User: s.startup.User, Database: s.startup.Database}
	if st != nil {
		ev.Statement = *st
	}
	return ev
}

// tagRows extracts the row count from a command tag ("SELECT 3", "INSERT 0 1").
func tagRows(tag string) (int64, bool) {
	i := strings.LastIndexByte(tag, ' ')
	if i < 0 {
		return 0, false
	}
	switch verb, _, _ := strings.Cut(tag, " "); verb {
	case "SELECT", "INSERT", "UPDATE", "DELETE", "MERGE", "COPY", "FETCH", "MOVE":
	default:
		return 0, false
	}
	n, err := strconv.ParseInt(tag[i+1:], 10, 64)
	return n, err == nil
}
