package pgproxy

import (
	"fmt"
	"time"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// colMasks adapts Config.Masks for the analysis: a panicking Source masks.
type colMasks struct{ m *ColumnMasks }

func (c colMasks) source(schema, table, column string) (masked bool) {
	defer func() {
		if r := recover(); r != nil {
			masked = true
		}
	}()
	return c.m.Source(schema, table, column)
}

func (c colMasks) blockUnknowable() bool { return c.m.Block }

// readOnlyKinds never change the schema; after any other statement the catalog cache
// is dropped (a function or procedure may change it too, so only plain reads and
// writes are spared).
var readOnlyKinds = map[string]bool{
	"select": true, "values": true, "insert": true, "update": true, "delete": true, "merge": true,
	"upsert": true, "update_without_where": true, "delete_without_where": true, "copy": true,
	"copy_from": true, "copy_to": true, "copy_from_stdin": true, "copy_to_stdout": true,
	"fetch": true, "move": true, "show": true, "explain": true, "set": true, "reset": true,
	"transaction": true, "begin": true, "start": true, "savepoint": true, "release": true,
	"declare_cursor": true, "close_cursor": true, "lock": true, "listen": true, "unlisten": true,
	"notify": true, "select_for_update": true, "function_call": true,
}

func changesSchema(st *Statement) bool {
	for _, k := range st.Kinds {
		if !readOnlyKinds[k] {
			return true
		}
	}
	return false
}

// maskRule is the name refusals by the column masks carry.
func (s *session) maskRule() string {
	if r := s.cfg.Masks.Rule; r != "" {
		return r
	}
	return "pgproxy:masking"
}

// lineageFor analyses an allowed statement's lineage (Config.Masks only) and returns a
// refusal when the statement must not run: it would copy masked values where no mask
// follows them, its results cannot be masked (COPY TO STDOUT of masked columns), or
// ColumnMasks.Block and a result column's lineage cannot be known.
func (s *session) lineageFor(st *Statement) (*lineage, *refusal) {
	refuse := func(why string) *refusal {
		return &refusal{code: "42501", rule: s.maskRule(), outcome: OutcomeBlocked,
			message: fmt.Sprintf("bastion: statement blocked by masking rule %q: %s", clean(s.maskRule()), clean(why))}
	}
	suspect := s.lineageBegin() // see lineage_txn.go
	var lin *lineage
	switch {
	case st.Protocol == "fastpath":
		t := unknownTaint("a fastpath function call returns what the function reads")
		lin = &lineage{out: &result{items: []resultItem{{open: true, openT: t}}}, touched: t}
	case st.Has("replication_command"):
		if st.Has("start_replication") || st.Has("base_backup") {
			return nil, refuse("a replication stream carries whole rows, which cannot be masked by column")
		}
		t := unknownTaint("a replication command")
		lin = &lineage{out: &result{items: []resultItem{{open: true, openT: t}}}}
	default:
		analyze := func(root *pg.Node) (*lineage, bool) {
			constRead := false
			a := &analyzer{ctx: s.ctx, cat: s.catalog, views: s.catalog, masks: colMasks{s.cfg.Masks},
				state: s.lineage, funcMemo: map[string]funcLineage{}, stmt: st, constRead: &constRead, suspect: suspect}
			return a.analyzeStatement(root), constRead
		}
		// The classifier's cached tree spares a parse; one of another text (other
		// constants) serves only an analysis that read no constant's value.
		if tree := s.cfg.Classifier.lineageTree(st.SQL); tree != nil && suspect == "" {
			if lin = s.memoLineage(tree, st); lin != nil {
				break
			}
			catGen, _ := s.catalog.generation(false)
			stateGen := s.lineage.generation()
			var constRead bool
			if lin, constRead = analyze(tree.stmt); constRead && tree.sql != st.SQL {
				tree.constRead.Store(true)
				lin = nil
			} else if !constRead {
				s.rememberLineage(tree, st, lin, catGen, stateGen)
			}
		}
		if lin != nil {
			break
		}
		res, err := pgParse(st.SQL)
		if err != nil || len(res.Stmts) != 1 || res.Stmts[0].Stmt == nil {
			t := unknownTaint("the statement cannot be analysed")
			lin = &lineage{out: &result{items: []resultItem{{open: true, openT: t}}}, touched: t}
			break
		}
		lin, _ = analyze(res.Stmts[0].Stmt)
	}
	if lin.leak != "" {
		return nil, refuse(lin.leak)
	}
	if lin.out != nil {
		all := lin.out.all()
		if all.unknown != "" && s.cfg.Masks.Block {
			return nil, refuse("the source of a result column cannot be known: " + all.unknown)
		}
		if lin.copyOut {
			dirty := all.dirty()
			if cols, ok := lin.out.flat(); ok && s.cfg.MaskColumn != nil {
				for _, c := range cols {
					dirty = dirty || s.maskColumn(c.name)
				}
			} else if !ok && s.cfg.MaskColumn != nil {
				dirty = true
			}
			if dirty {
				return nil, refuse("COPY TO STDOUT would send masked columns, which cannot be masked in COPY data; use SELECT")
			}
		}
	}
	if lin.define != nil {
		lin.define(s.lineage)
	}
	if changesSchema(st) {
		s.catalog.invalidate()
	}
	s.lineageMark(st, lin)
	return lin, nil
}

// columnTaints is what each of a result's n columns derives from, by the statement's
// lineage and, where RowDescription names a source column, by that column's own mask.
func (s *session) columnTaints(run *stmtRun, fields []fieldDesc) []taint {
	var out []taint
	switch {
	case run == nil || run.lin == nil:
		t := unknownTaint("the statement behind this result is unknown to the bastion")
		out = make([]taint, len(fields))
		for i := range out {
			out[i] = t
		}
	case run.lin.out == nil:
		t := unknownTaint("the statement was not expected to return rows")
		out = make([]taint, len(fields))
		for i := range out {
			out[i] = t
		}
	default:
		out = run.lin.out.taints(len(fields))
	}
	for i, f := range fields {
		if f.tableOID != 0 && f.attnum > 0 && !out[i].masked && s.originMasked(f.tableOID, int(f.attnum)) {
			out[i].masked = true
		}
	}
	return out
}

// originMasked reports whether the source column RowDescription names (table OID and
// attribute number) is masked: a second opinion beside the lineage, for columns that
// are plain references to a table's or view's column. Only evidence of a mask counts:
// a relation the side connection cannot see (created in the client's open
// transaction) is the lineage's business.
func (s *session) originMasked(oid uint32, attnum int) bool {
	r, err := s.catalog.relationByOID(s.ctx, oid)
	if err != nil || r == nil || attnum > len(r.Cols) || r.Cols[attnum-1] == "" {
		return false
	}
	a := &analyzer{ctx: s.ctx, cat: s.catalog, views: s.catalog, masks: colMasks{s.cfg.Masks},
		state: s.lineage, funcMemo: map[string]funcLineage{}}
	if a.columnTaint(r, r.Cols[attnum-1]).masked {
		return true
	}
	if r.Kind == "v" || r.Kind == "m" {
		k := 0
		for _, c := range r.Cols[:attnum-1] {
			if c != "" {
				k++
			}
		}
		if vt := a.viewColumns(r); k < len(vt) {
			return vt[k].masked
		}
	}
	return false
}

// withheldMessage replaces the text of an error or notice raised by a statement that
// reads masked columns, or writes to a relation with masked columns: PostgreSQL quotes
// values in messages ("invalid input syntax for type integer: ...", "Failing row
// contains (...)", "Key (name)=(...) already exists"), and RAISE ... USING puts any value in the schema, table, column,
// datatype and constraint fields. Only the fields the server fills from its own code
// stay (severity, SQLSTATE, position, source location); every other one is dropped.
//
// The SQLSTATE is the server's too, except a PL/pgSQL RAISE's (routine exec_stmt_raise):
// USING ERRCODE sets it to any five digits or capital letters, a masked value's
// included ("ERRCODE = substr(card, 1, 5)"). One PostgreSQL does not define becomes the
// RAISE's default for its level; choosing among the defined ones tells what a WHERE
// or a division by zero tells of a value, not the value.
func withheldMessage(fields []errField) []errField {
	raise := fieldValue(fields, 'R') == "exec_stmt_raise" && !definedSQLSTATEs[fieldValue(fields, 'C')]
	out := make([]errField, 0, len(fields))
	for _, f := range fields {
		switch {
		case f.code == 'C' && raise:
			f.value = raiseDefaultCode(fieldValue(fields, 'V'))
		case f.code == 'M':
			f.value = "bastion: the server's message is withheld: the statement reads or writes masked columns"
		case f.code == 'p': // a position in the internal query, which is withheld
			continue
		case !structuralErrorField(f.code):
			continue
		}
		out = append(out, f)
	}
	return out
}

// raiseDefaultCode is the SQLSTATE a RAISE of severity level (the 'V' field) has
// without ERRCODE: raise_exception for an error, warning for a warning, successful
// completion below.
func raiseDefaultCode(level string) string {
	switch level {
	case "ERROR", "FATAL", "PANIC":
		return "P0001"
	case "WARNING":
		return "01000"
	}
	return "00000"
}

// runOf is the statement a response from the server belongs to.
func (s *session) runOf(head *expect) *stmtRun {
	if s.cur != nil && s.cur.run != nil {
		return s.cur.run
	}
	if head == nil {
		return nil
	}
	switch head.kind {
	case expQuery:
		if head.idx < len(head.runs) {
			return head.runs[head.idx]
		}
	case expParse, expFunctionCall:
		if len(head.runs) > 0 {
			return head.runs[0]
		}
	case expExecute:
		if p := s.portals[head.name]; p != nil && p.prep != nil && !p.replaceable {
			return p.prep.run
		}
	case expBind:
		if p := s.stmts[head.stmt]; p != nil {
			return p.run
		}
	case expDescribe:
		if head.target == 'S' {
			if p := s.stmts[head.name]; p != nil {
				return p.run
			}
		} else if p := s.portals[head.name]; p != nil && p.prep != nil && !p.replaceable {
			return p.prep.run
		}
	}
	return nil
}

// touches reports whether the messages of the head's statement must be withheld.
func (s *session) touches(head *expect) bool {
	if s.cfg.Masks == nil || head == nil {
		return false
	}
	if head.kind == expSync {
		// Sync commits an implicit transaction: deferred constraints report the rows of
		// the statements before it.
		return s.wroteMasked
	}
	run := s.runOf(head)
	if s.wroteMasked && run != nil && (run.st.Has("transaction") || run.st.Has("constraints_set")) {
		return true // COMMIT, SET CONSTRAINTS ... IMMEDIATE: the same
	}
	if s.wroteMasked && head.kind == expQuery && head.idx >= len(head.runs)-1 {
		// The server commits a simple Query's implicit transaction before the last
		// statement's CommandComplete, so what the commit raises comes as that
		// statement's error ("DECLARE c CURSOR WITH HOLD FOR …; SELECT 1").
		return true
	}
	return s.runTouches(run)
}

// namesMaskedTable reports whether an error or notice names, in its schema and table
// fields, a relation with masked columns (or one the catalog does not show): its detail
// may quote that relation's rows, whatever statement raised it. This catches what the
// statement's lineage cannot see: a foreign key's cascade (DELETE FROM towns setting
// residents.town to NULL, "Failing row contains (1, Ada Lovelace, null)"), a trigger or
// rule writing to another table.
func (s *session) namesMaskedTable(fields []errField) bool {
	table := fieldValue(fields, 't')
	if s.cfg.Masks == nil || table == "" {
		return false
	}
	a := &analyzer{ctx: s.ctx, cat: s.catalog, views: s.catalog, masks: colMasks{s.cfg.Masks},
		state: s.lineage, funcMemo: map[string]funcLineage{}}
	return a.relation(fieldValue(fields, 's'), table).whole().dirty()
}

// runTouches reports whether the messages of run (nil: a statement the proxy cannot
// name) must be withheld: it reads masked values, or writes to (or alters) a relation
// with masked columns, whose rows its errors quote.
func (s *session) runTouches(run *stmtRun) bool {
	if run == nil || run.lin == nil {
		return true
	}
	return run.lin.touched.dirty() || run.lin.targets.dirty()
}

// runWrites reports whether run (nil: a statement the proxy cannot name) may have
// written to a relation with masked columns.
func (s *session) runWrites(run *stmtRun) bool {
	return run == nil || run.lin == nil || run.lin.targets.dirty()
}

// describeRun is the statement a Describe's RowDescription belongs to.
func (s *session) describeRun(head *expect) *stmtRun {
	return s.runOf(head)
}

// sqlPrepared is a statement prepared with SQL PREPARE, bound through the extended
// protocol (both share one namespace).
func (s *session) sqlPrepared(name string) *prepared {
	s.lineage.mu.Lock()
	r := s.lineage.prepared[name]
	s.lineage.mu.Unlock()
	if r == nil {
		return nil
	}
	return &prepared{run: &stmtRun{st: Statement{SQL: "EXECUTE " + name, Kinds: []string{"execute"}}, lin: &lineage{out: r, touched: r.all(), targets: r.targets}}}
}

// linMemo is an analysis the session may reuse for the same parse tree: valid while
// neither the catalog answers nor the session's definitions have changed and every
// catalog answer it used is still fresh.
type linMemo struct {
	lin              *lineage
	catGen, stateGen uint64
	until            time.Time
}

// maxLinMemo bounds a session's memo of analyses (distinct statement shapes).
const maxLinMemo = 256

// memoizable reports whether st's analysis depends on nothing but its tree, the catalog
// and the session's definitions: a read-only statement without bodies, which defines
// nothing. (A body is text of the statement's own, outside the tree's key.)
func memoizable(st *Statement) bool {
	return len(st.Body) == 0 && !changesSchema(st)
}

// memoLineage returns the remembered analysis of tree for st, or nil. Running the
// analysis again on the same tree against the same catalog answers and definitions
// would give the same result: lineage is a pure function of those, and the results are
// read only once made (prepared statements already share them across executions).
func (s *session) memoLineage(tree *cachedTree, st *Statement) *lineage {
	m, ok := s.linMemo[tree]
	if !ok || !memoizable(st) {
		return nil
	}
	catGen, _ := s.catalog.generation(false)
	if m.catGen != catGen || m.stateGen != s.lineage.generation() || !s.cfg.Now().Before(m.until) {
		delete(s.linMemo, tree)
		return nil
	}
	return m.lin
}

// rememberLineage keeps lin, the analysis of tree that read no constant's value, when it
// ran entirely from the catalog answers and definitions it found (catGen and stateGen
// unchanged by the analysis: nothing was fetched, refreshed or failed meanwhile).
func (s *session) rememberLineage(tree *cachedTree, st *Statement, lin *lineage, catGen, stateGen uint64) {
	if lin == nil || lin.define != nil || !memoizable(st) {
		return
	}
	gen, until := s.catalog.generation(true)
	if gen != catGen || s.lineage.generation() != stateGen {
		return
	}
	if s.linMemo == nil || len(s.linMemo) >= maxLinMemo {
		s.linMemo = map[*cachedTree]linMemo{}
	}
	s.linMemo[tree] = linMemo{lin: lin, catGen: catGen, stateGen: stateGen, until: until}
}
