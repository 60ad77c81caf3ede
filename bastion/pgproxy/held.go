package pgproxy

import (
	"encoding/hex"
	"fmt"
	"slices"
	"strings"
	"sync/atomic"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Approvals are per execution. A statement that needs approval is judged where it is
// prepared (Parse, SQL PREPARE), so one that is blocked never reaches the server; but a
// prepared statement runs as often as the client likes (Bind/Execute again, EXECUTE d(1);
// EXECUTE d(2)), and one approval must not cover them all. So the session remembers,
// per statement name, what the name may refer to (prepCand); each execution of a name
// that needed approval (the Bind of a portal from it, an SQL EXECUTE of it anywhere in a
// statement) is judged again, with Protocol "execute" and the values
// bound. The approval given when the statement was prepared covers its first execution
// only, only when the statement has no $n parameters (whose values the approver could not
// see; the Judge may let such a statement be prepared unasked, Verdict.AtExecution), and
// only once the server has confirmed that preparation (or in the same pipeline, where a
// failed preparation makes the server skip the execution).
//
// What a name refers to is only known for sure once the server answers, so a name keeps
// every candidate that it may still refer to: a preparation the server confirmed
// (ParseComplete) replaces the ones before it; one that failed or was skipped is
// dropped; an SQL PREPARE, DEALLOCATE or a body's statements only ever add (stricter).
// An execution is judged against every live candidate that needed approval.
//
// Rules change (a reload) while statements stay prepared. With Config.RulesVersion,
// every preparation is a candidate, with the rules it was judged under (ver), and an
// execution is judged again, as above, against every live candidate judged under other
// rules: a DELETE prepared while nothing blocked it does not run after a reload that
// blocks it. Allowed, the candidates count as judged under the rules now; held, each
// execution asks.

// prepCand is one preparation of a statement name.
type prepCand struct {
	st     Statement
	held   bool   // it needed approval
	credit bool   // ...and that approval is yet to cover an execution
	seg    uint64 // the pipeline segment (s.segs) it was prepared in
	ver    any    // Config.RulesVersion it was judged under (nil: not tracked)
	// protocol: a Parse, whose outcome the backend loop reports in state.
	protocol bool
	state    atomic.Int32 // candPending, candConfirmed, candFailed
}

const (
	candPending int32 = iota
	candConfirmed
	candFailed
)

// heldPortal is a portal bound from a name that needed approval. Its one execution was
// approved when it was bound (Execute after Execute of a portal, and FETCH from it,
// continue the same run).
type heldPortal struct {
	stmt   string
	params []string
	run    *stmtRun // the approved execution, for the first Execute's audit event
}

// noteParse records a Parse the proxy forwards (runs judged, e its expectation).
func (s *session) noteParse(name string, runs []*stmtRun, e *expect) {
	held := len(runs) == 1 && runs[0].held
	// The approval given at Parse covers the first execution only when the approver
	// saw everything it runs with: not for a statement with $n parameters, whose
	// values come with the Bind.
	credit := held && !runs[0].atExecution && !HasPlaceholders(runs[0].st.SQL)
	cands := pruneCands(s.prepCands[name])
	if name == "" {
		cands = nil // Parse of the unnamed statement drops the old one, whatever follows
	}
	var ver any
	if len(runs) == 1 {
		ver = runs[0].rules
	}
	if !held && ver == nil && len(cands) == 0 {
		delete(s.prepCands, name)
		return
	}
	c := &prepCand{held: held, credit: credit, seg: s.segs, protocol: true, ver: ver}
	if len(runs) == 1 {
		c.st = runs[0].st
	}
	e.cand = c
	s.prepCands[name] = append(cands, c)
}

// noteClose records a Close of a statement: once the server confirms it, the name
// refers to nothing.
func (s *session) noteClose(m targetMsg, e *expect) {
	if m.kind != 'S' || len(s.prepCands[m.name]) == 0 {
		return
	}
	c := &prepCand{seg: s.segs, protocol: true}
	e.cand = c
	s.prepCands[m.name] = append(pruneCands(s.prepCands[m.name]), c)
}

// pruneCands drops the candidates a name can no longer refer to: those that failed,
// and those before a preparation (or Close) the server confirmed. Nil when none of the
// rest needed approval.
func pruneCands(cands []*prepCand) []*prepCand {
	var out []*prepCand
	for _, c := range cands {
		switch c.state.Load() {
		case candFailed:
			continue
		case candConfirmed:
			if c.protocol {
				out = out[:0] // the name was free: what came before is gone
			}
		}
		out = append(out, c)
	}
	for _, c := range out {
		if c.held || c.ver != nil {
			return out
		}
	}
	return nil
}

// rulesVersion is Config.RulesVersion now, nil without one.
func (s *session) rulesVersion() any {
	if s.cfg.RulesVersion == nil {
		return nil
	}
	return s.cfg.RulesVersion()
}

// staleRules reports whether c was judged under rules other than those in force now.
func (s *session) staleRules(c *prepCand, now any) bool {
	return c.ver != nil && c.ver != now
}

// noteRefusedParse: the refusal sent in place of a Parse of the unnamed statement drops
// the old one too.
func (s *session) noteRefusedParse(name string) {
	if name == "" {
		delete(s.prepCands, name)
	}
}

// noteBind records which portal was bound from a name that needed approval.
func (s *session) noteBind(m bindMsg, run *stmtRun) {
	if len(s.prepCands[m.stmt]) == 0 {
		if old := s.heldPortals[m.portal]; old != nil && old.run != nil && m.portal != "" {
			// A named portal that still exists makes this Bind fail: the old one keeps
			// its approved run.
			return
		}
		delete(s.heldPortals, m.portal)
		return
	}
	s.heldPortals[m.portal] = &heldPortal{stmt: m.stmt, params: bindParams(m, s.binaryParamHidden), run: run}
}

// live returns the candidates name may refer to now, waiting for the server's answer
// to a preparation of an earlier pipeline segment if there is one.
func (s *session) live(name string) ([]*prepCand, error) {
	cands := s.prepCands[name]
	for _, c := range cands {
		if c.protocol && c.seg != s.segs && c.state.Load() == candPending {
			if s.uw.Buffered() > 0 {
				if err := s.uw.Flush(); err != nil {
					return nil, s.upstreamGone(err)
				}
			}
			if err := s.waitIdle(); err != nil {
				return nil, err
			}
			break
		}
	}
	out := pruneCands(cands)
	if len(out) == 0 {
		delete(s.prepCands, name)
	} else {
		s.prepCands[name] = out
	}
	return out, nil
}

// approveExecution judges one execution of the statement name: exec is the statement
// to judge in its place (nil: the prepared statement itself, with params). It returns
// a nil run when no approval is needed.
func (s *session) approveExecution(name string, exec *Statement, params []string) (*stmtRun, *Statement, *refusal) {
	now := s.rulesVersion()
	need := false
	for _, c := range s.prepCands[name] {
		need = need || c.held || s.staleRules(c, now)
	}
	if !need {
		return nil, nil, nil
	}
	cands, err := s.live(name)
	if err != nil {
		st := Statement{SQL: "-- execution of prepared statement " + clean(name), Protocol: "execute"}
		return nil, &st, &refusal{code: "08006", message: "bastion: upstream connection lost", outcome: OutcomeBlocked}
	}
	var held, stale []*prepCand
	approval := false // a candidate needed approval
	for _, c := range cands {
		switch {
		case c.held:
			held = append(held, c)
			approval = true
		case s.staleRules(c, now) && c.st.SQL != "":
			held = append(held, c)
			stale = append(stale, c)
		case s.staleRules(c, now):
			// Prepared as more than one statement, which the server refuses to
			// prepare: nothing to judge.
		}
	}
	if len(held) == 0 {
		return nil, nil, nil
	}
	if len(cands) == 1 && held[0].credit && !s.staleRules(held[0], now) && (held[0].seg == s.segs || held[0].state.Load() == candConfirmed) {
		held[0].credit = false // the approval given when it was prepared
		return nil, nil, nil
	}
	for _, c := range held {
		c.credit = false
	}
	var st Statement
	if exec == nil {
		st = held[len(held)-1].st
		st.Protocol, st.Params = "execute", params
		st.Body = append([]Statement(nil), st.Body...)
		for _, c := range held[:len(held)-1] { // a name that may refer to several
			st.Body = append(st.Body, preparedBody(c.st)...)
			mergeJudged(&st, &c.st)
		}
	} else {
		st = *exec
		st.Body = append([]Statement(nil), st.Body...)
		for _, c := range held {
			st.Body = append(st.Body, preparedBody(c.st)...)
			mergeJudged(&st, &c.st)
		}
	}
	if s.uw.Buffered() > 0 { // whatever is already forwarded must not wait on a human
		if err := s.uw.Flush(); err != nil {
			return nil, &st, &refusal{code: "08006", message: "bastion: upstream connection lost", outcome: OutcomeBlocked}
		}
	}
	v := s.callJudge(&st)
	switch v.Action {
	case Allow:
		for _, c := range stale {
			c.ver = now // judged under the rules in force, as what it is
		}
		if !approval {
			return nil, nil, nil // as when it was prepared
		}
		return &stmtRun{st: st, rule: v.Rule}, &st, nil
	case Hold:
		run, ref := s.hold(&st, v)
		return run, &st, ref
	}
	return nil, &st, blockRefusal(v, OutcomeBlocked)
}

// preparedBody is a prepared statement as part of the Body of its execution.
func preparedBody(p Statement) []Statement {
	nested := p.Body
	p.Body, p.Protocol = nil, "prepared"
	return append([]Statement{p}, nested...)
}

// mergeJudged adds what from does to st.
func mergeJudged(st, from *Statement) {
	for _, k := range from.Kinds {
		if !contains(st.Kinds, k) {
			st.Kinds = append(st.Kinds, k)
		}
	}
	for _, t := range from.Tables {
		if !contains(st.Tables, t) {
			st.Tables = append(st.Tables, t)
		}
	}
	for _, f := range from.Functions {
		if !contains(st.Functions, f) {
			st.Functions = append(st.Functions, f)
		}
	}
	if st.Unknowable == "" {
		st.Unknowable = from.Unknowable
	}
}

// onQueryPrepared handles, for a simple Query being judged, the prepared statements its
// statement i prepares (SQL PREPARE, also in bodies) and executes (SQL EXECUTE, also
// under EXPLAIN ANALYZE, CREATE TABLE AS, in bodies). It returns the run that replaces
// run when an execution needed approval.
func (s *session) onQueryPrepared(st *Statement, run *stmtRun) (*stmtRun, *refusal) {
	if !run.held && run.rules == nil && len(s.prepCands) == 0 {
		return run, nil // nothing prepared needed approval, nor does this
	}
	prepares, executes := preparedNames(st)
	for _, p := range prepares {
		// Top-level or not, it may or may not run: it only adds a candidate.
		// The PREPARE's approval covers the first EXECUTE only when its text has no
		// parameters: an approver shown "$1" did not see what the EXECUTE binds.
		credit := run.held && p.top && !run.atExecution && !HasPlaceholders(p.st.SQL)
		c := &prepCand{st: p.st, held: run.held, credit: credit, seg: s.segs, ver: run.rules}
		c.state.Store(candPending)
		if !c.held && c.ver == nil && len(s.prepCands[p.name]) == 0 {
			continue
		}
		cands := s.prepCands[p.name]
		if !c.held && c.ver != nil {
			// SQL PREPAREs only ever add; one of the same text judged now under the
			// same rules replaces an earlier one that needed no approval (the same
			// text, judged again, would be judged so), which bounds the list.
			cands = slices.DeleteFunc(slices.Clone(cands), func(o *prepCand) bool {
				return !o.held && !o.protocol && o.st.SQL == c.st.SQL
			})
		}
		s.prepCands[p.name] = append(cands, c)
	}
	out := run
	for _, name := range executes {
		r, _, ref := s.approveExecution(name, &out.st, nil)
		if ref != nil {
			return nil, ref
		}
		if r != nil {
			r.lin, r.schema = run.lin, run.schema
			out = r
		}
	}
	return out, nil
}

type preparedStmt struct {
	name string
	st   Statement // the statement prepared, as classified
	top  bool      // written in the statement itself, not in a body
}

// preparedNames finds the prepared statements st (and its bodies) prepare and execute.
func preparedNames(st *Statement) (prepares []preparedStmt, executes []string) {
	if !st.Has("prepare") && !st.Has("execute") {
		return nil, nil
	}
	texts := []string{st.SQL}
	for _, b := range st.Body {
		if b.Has("prepare") || b.Has("execute") {
			texts = append(texts, b.SQL)
		}
	}
	for i, text := range texts {
		res, err := pgParse(text)
		if err != nil {
			continue // it was classified: the text parses
		}
		for _, raw := range res.Stmts {
			if raw.Stmt == nil {
				continue
			}
			walkNodes(raw.Stmt.ProtoReflect(), func(n any) {
				switch n := n.(type) {
				case *pg.ExecuteStmt:
					if !contains(executes, n.Name) {
						executes = append(executes, n.Name)
					}
				case *pg.PrepareStmt:
					p := preparedStmt{name: n.Name, top: i == 0, st: *st}
					if i > 0 {
						p.st = st.Body[0]
						for _, b := range st.Body {
							if b.SQL == text {
								p.st = b
								break
							}
						}
					}
					prepares = append(prepares, p)
				}
			})
		}
	}
	return prepares, executes
}

// walkNodes calls f on every node of a parse tree.
func walkNodes(m protoreflect.Message, f func(any)) {
	f(m.Interface())
	eachChild(m, func(c protoreflect.Message) bool {
		walkNodes(c, f)
		return true
	})
}

// eachChild calls f on every message m holds directly (in fields and lists, not
// maps), in field order, until f returns false; it reports whether f always
// returned true. The parse tree walks are built on it.
func eachChild(m protoreflect.Message, f func(protoreflect.Message) bool) bool {
	all := true
	m.Range(func(fd protoreflect.FieldDescriptor, v protoreflect.Value) bool {
		if fd.Kind() != protoreflect.MessageKind || fd.IsMap() {
			return true
		}
		if fd.IsList() {
			l := v.List()
			for i := 0; i < l.Len(); i++ {
				if !f(l.Get(i).Message()) {
					all = false
					return false
				}
			}
			return true
		}
		all = f(v.Message())
		return all
	})
	return all
}

// Prepares reports whether st only prepares a statement (a Parse, an SQL PREPARE):
// with a Hold verdict it may be prepared unapproved (Verdict.AtExecution), its
// executions then asking.
func Prepares(st Statement) bool {
	return st.Protocol == "parse" || st.Protocol == "simple" && len(st.Kinds) > 0 && st.Kinds[0] == "prepare"
}

// HasPlaceholders reports whether sql has $n parameters (or cannot be scanned): its
// values are bound at each execution, so an approval of the text alone does not show
// what runs. Called for statements that need approval only.
func HasPlaceholders(sql string) bool {
	if strings.IndexByte(sql, '$') < 0 {
		return false
	}
	scan, err := pgScan(sql)
	if err != nil {
		return true
	}
	for _, tok := range scan.Tokens {
		if tok.Token == pg.Token_PARAM {
			return true
		}
	}
	return false
}

// maxParamShown bounds each parameter value shown to an approver.
const maxParamShown = 1024

// binaryParamHidden reports whether a binary parameter is masked where people see it
// (an approval request): what the wire capture masks (binaryParamNeedsMask).
func (s *session) binaryParamHidden(v []byte) bool {
	return s.cfg.MaskValue != nil && s.binaryParamNeedsMask(v)
}

// bindParams renders a Bind's parameter values as SQL literals for an approver; a
// binary value hide says yes to shows as stars.
func bindParams(m bindMsg, hide func([]byte) bool) []string {
	out := make([]string, len(m.params))
	for i, p := range m.params {
		format := int16(0)
		switch {
		case len(m.paramFormats) == 1:
			format = m.paramFormats[0]
		case i < len(m.paramFormats):
			format = m.paramFormats[i]
		}
		v := p.v
		cut := ""
		if len(v) > maxParamShown {
			// Said outside the literal: "..." inside it would read as part of the value.
			v, cut = v[:maxParamShown], fmt.Sprintf(" (cut: %d more bytes of this value not shown)", len(p.v)-maxParamShown)
		}
		switch {
		case p.null:
			out[i] = "NULL"
		case format == 1 && hide != nil && hide(p.v):
			// In hex, no detector would see an int8 card number: masked as
			// the wire capture masks it (a value, never syntax).
			out[i] = `'` + strings.Repeat("*", 8) + `' (binary, masked)`
		case format == 1:
			out[i] = `'\x` + hex.EncodeToString(v) + `' (binary)` + cut
		default:
			out[i] = "'" + strings.ReplaceAll(string(v), "'", "''") + "'" + cut
		}
	}
	return out
}

// RedactPasswords returns sql with the password constants of CREATE/ALTER ROLE (USER,
// GROUP) ... PASSWORD 'x' replaced by '********': text shown to people (an approval
// request) shows every other constant as written. SQL that does not parse is returned
// as is.
func RedactPasswords(sql string) string {
	if !strings.Contains(strings.ToLower(sql), "password") {
		return sql
	}
	res, err := pgParse(sql)
	if err != nil {
		return sql
	}
	locs := map[int]bool{}
	for _, raw := range res.Stmts {
		if raw.Stmt == nil {
			continue
		}
		walkNodes(raw.Stmt.ProtoReflect(), func(n any) {
			// [ENCRYPTED] PASSWORD 'x': the option's location is its first keyword, and
			// the password the first string constant after it.
			de, ok := n.(*pg.DefElem)
			if ok && strings.EqualFold(de.Defname, "password") && de.Arg != nil {
				locs[int(de.Location)] = true
			}
		})
	}
	if len(locs) == 0 {
		return sql
	}
	scan, err := pgScan(sql)
	if err != nil {
		return sql
	}
	var b strings.Builder
	last, after := 0, -1 // after: tokens since a password option's keyword, -1 if none
	for _, tok := range scan.Tokens {
		start, end := int(tok.Start), int(tok.End)
		if start < last || end > len(sql) || start > end {
			continue
		}
		if locs[start] {
			after = 0
			continue
		}
		if after < 0 {
			continue
		}
		if after++; after > 2 {
			after = -1
			continue
		}
		if tok.Token != pg.Token_SCONST && tok.Token != pg.Token_USCONST {
			continue
		}
		b.WriteString(sql[last:start])
		b.WriteString("'********'")
		last, after = end, -1
	}
	b.WriteString(sql[last:])
	return b.String()
}

// judgedUnder is what a portal was bound from, or an SQL cursor declared as, and the
// rules (Config.RulesVersion) it was judged under: running it (Execute, FETCH, MOVE)
// after a reload runs what was judged under other rules, so it is judged again first.
type judgedUnder struct {
	sts []Statement
	ver any
}

// notePortalRules records, with Config.RulesVersion, what a Bind binds.
func (s *session) notePortalRules(m bindMsg) {
	if s.cfg.RulesVersion == nil {
		return
	}
	var sts []Statement
	for _, c := range s.prepCands[m.stmt] {
		if c.st.SQL != "" && c.state.Load() != candFailed {
			sts = append(sts, c.st)
		}
	}
	if len(sts) == 0 {
		delete(s.portalRules, m.portal)
		return
	}
	if s.portalRules == nil {
		s.portalRules = map[string]*judgedUnder{}
	}
	s.portalRules[m.portal] = &judgedUnder{sts: sts, ver: s.rulesVersion()}
}

// rejudgeUnder judges j's statements again, as one execution, when they were judged
// under rules other than those in force; nil when they were not, or are allowed now.
func (s *session) rejudgeUnder(j *judgedUnder) (*Statement, *refusal) {
	if j == nil || len(j.sts) == 0 {
		return nil, nil
	}
	now := s.rulesVersion()
	if j.ver == nil || j.ver == now {
		return nil, nil
	}
	st := j.sts[len(j.sts)-1]
	st.Protocol = "execute"
	st.Body = append([]Statement(nil), st.Body...)
	for _, o := range j.sts[:len(j.sts)-1] { // a name that may refer to several
		st.Body = append(st.Body, preparedBody(o)...)
		mergeJudged(&st, &o)
	}
	if s.uw.Buffered() > 0 { // whatever is already forwarded must not wait on a human
		if err := s.uw.Flush(); err != nil {
			return &st, &refusal{code: "08006", message: "bastion: upstream connection lost", outcome: OutcomeBlocked}
		}
	}
	v := s.callJudge(&st)
	switch v.Action {
	case Allow:
		j.ver = now
		return nil, nil
	case Hold:
		// Asked now, for this run; the next asks again.
		_, ref := s.hold(&st, v)
		return &st, ref
	}
	return &st, blockRefusal(v, OutcomeBlocked)
}

// onQueryCursors records, with Config.RulesVersion, the SQL cursors statement st
// declares, and judges again the cursors it reads (FETCH, MOVE) that were declared
// under rules since reloaded: their queries run as they are read.
func (s *session) onQueryCursors(st *Statement, run *stmtRun) *refusal {
	if s.cfg.RulesVersion == nil || !st.Has("declare_cursor") && !st.Has("fetch") && !st.Has("move") {
		return nil
	}
	res, err := pgParse(st.SQL)
	if err != nil {
		return nil // it was classified: the text parses
	}
	var declared, read []string
	for _, raw := range res.Stmts {
		if raw.Stmt == nil {
			continue
		}
		switch n := raw.Stmt.Node.(type) {
		case *pg.Node_DeclareCursorStmt:
			declared = append(declared, n.DeclareCursorStmt.Portalname)
		case *pg.Node_FetchStmt:
			read = append(read, n.FetchStmt.Portalname)
		}
	}
	for _, name := range read {
		if _, ref := s.rejudgeUnder(s.cursorRules[name]); ref != nil {
			return ref
		}
	}
	for _, name := range declared {
		if s.cursorRules == nil {
			s.cursorRules = map[string]*judgedUnder{}
		}
		c := *st
		c.Body = slices.Clone(st.Body)
		s.cursorRules[name] = &judgedUnder{sts: []Statement{c}, ver: run.rules}
	}
	return nil
}
