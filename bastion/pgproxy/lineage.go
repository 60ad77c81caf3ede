package pgproxy

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Lineage: which source columns a result column's value derives from. A column mask
// names source columns (a table's, a view's); it must follow their values through
// renaming (SELECT name AS n), expressions (upper(name), name::text, CASE, aggregates),
// whole-row references (SELECT c FROM customers c, row_to_json(c)), subqueries, CTEs,
// views, set operations, RETURNING, cursors and prepared statements. The analysis works
// on the parse tree, with the catalog (read over a side connection) for relations'
// columns, views' definitions and functions' bodies:
//
//   - An output column is masked when its expression reads a masked column anywhere
//     (its subqueries included), or a whole row of a relation with a masked column.
//   - An output column whose sources cannot be known (a function whose body cannot be
//     read, a cursor or prepared statement the proxy did not see, a relation not in the
//     catalog, statistics that hold column values) is unknowable: masked, or the
//     statement refused, as ColumnMasks.Block says.
//   - A statement that would copy masked values where no mask follows them (INSERT ...
//     SELECT into an unmasked column, UPDATE SET, CREATE TABLE AS, COPY TO a file,
//     pg_notify, renaming a masked column or its table) is refused.
//   - A statement that reads masked values anywhere (a WHERE clause included) has the
//     text of its errors and notices withheld: "invalid input syntax for type integer:
//     "Ada Lovelace"" would otherwise show the value. So has one that writes to or
//     alters a relation with masked columns (its targets): constraint violations quote
//     the row or key ("Failing row contains (2, Alan Turing, null)").
//
// The analysis over-approximates: a reference that could mean two columns takes both.

// taint says what a value may derive from.
type taint struct {
	masked  bool   // a masked source column
	unknown string // why its sources cannot be known; "" when they can
	// reads: its unknown sources are data read from relations the statement does not
	// name (query_to_xml's query, pg_stats, a foreign table): any masked column's
	// values may be in it, so a copy of it is refused as a copy of a masked column is,
	// whatever the unknowable option (readerTaint).
	reads bool
}

func (t *taint) add(o taint) {
	t.masked = t.masked || o.masked
	t.reads = t.reads || o.reads
	if t.unknown == "" {
		t.unknown = o.unknown
	}
}

// readerTaint is unknownTaint for data read from relations the statement does not name.
func readerTaint(format string, args ...any) taint {
	t := unknownTaint(format, args...)
	t.reads = true
	return t
}

// copyRefused reports whether a value tainted t must not be copied where no mask
// follows it: it is masked, read from relations the statement does not name, or of
// unknowable origin while such values are refused.
func (a *analyzer) copyRefused(t taint) bool {
	return t.masked || t.reads || t.unknown != "" && a.refuseUnknown()
}

func (t taint) dirty() bool { return t.masked || t.unknown != "" }

func unknownTaint(format string, args ...any) taint {
	return taint{unknown: clean(fmt.Sprintf(format, args...))}
}

// outCol is one named column of a relation, subquery or result.
type outCol struct {
	name string
	t    taint
}

// resultItem is one target-list entry: known columns, or (open) a number of columns
// the analysis cannot count, each with openT.
type resultItem struct {
	cols  []outCol
	open  bool
	openT taint
}

// result is a statement's (or subquery's) output columns.
type result struct {
	items []resultItem
	// targets: for a prepared statement, what the relations it writes hold (see
	// lineage.targets), which executing it writes again.
	targets taint
}

func (r *result) add(c outCol) { r.items = append(r.items, resultItem{cols: []outCol{c}}) }

// flat returns the columns when their number is known.
func (r *result) flat() ([]outCol, bool) {
	var out []outCol
	for _, it := range r.items {
		if it.open {
			return nil, false
		}
		out = append(out, it.cols...)
	}
	return out, true
}

// all is the union of every column's taint.
func (r *result) all() taint {
	var t taint
	for _, it := range r.items {
		for _, c := range it.cols {
			t.add(c.t)
		}
		if it.open {
			t.add(it.openT)
		}
	}
	return t
}

// taints maps the result onto n columns of a RowDescription: exactly when the numbers
// agree, else every column takes the union of all (an unknown number of columns from
// one open item is inferred from n).
func (r *result) taints(n int) []taint {
	out := make([]taint, 0, n)
	known, opens := 0, 0
	for _, it := range r.items {
		known += len(it.cols)
		if it.open {
			opens++
		}
	}
	if opens == 0 && known == n || opens == 1 && known <= n {
		for _, it := range r.items {
			for _, c := range it.cols {
				out = append(out, c.t)
			}
			if it.open {
				for i := known; i < n; i++ {
					out = append(out, it.openT)
				}
			}
		}
		return out
	}
	all := r.all()
	if !all.dirty() && opens == 0 {
		all = unknownTaint("the result has %d columns where %d were expected", n, known)
	}
	for i := 0; i < n; i++ {
		out = append(out, all)
	}
	return out
}

// openNames maps the result onto n columns as taints does and reports, for each,
// whether its name comes from where the analysis cannot see: an open item (a cursor or
// prepared statement declared elsewhere, a relation the catalog does not show), or
// columns that could not be placed at all (more or fewer than the analysis found). SQL built at run time names such a column
// after any value.
func (r *result) openNames(n int) []bool {
	out := make([]bool, n)
	known, opens := 0, 0
	for _, it := range r.items {
		known += len(it.cols)
		if it.open {
			opens++
		}
	}
	if opens == 0 && known == n {
		return out
	}
	if opens == 1 && known <= n {
		i := 0
		for _, it := range r.items {
			i += len(it.cols)
			if it.open {
				for k := known; k < n; k++ {
					out[i] = true
					i++
				}
			}
		}
		return out
	}
	for i := range out {
		out[i] = true // not placed: whatever names the result has
	}
	return out
}

// rte is a FROM item in scope.
type rte struct {
	alias   string // the name it is referred to by; "" for a join without alias
	schema  string // a relation's schema, for schema.relation.column references
	cols    []outCol
	open    bool // columns beyond cols, names unknown...
	openT   taint
	members []*rte // ...and, for a join without alias, its inputs (referable themselves)
}

func (r *rte) whole() taint {
	var t taint
	for _, c := range r.cols {
		t.add(c.t)
	}
	if r.open {
		t.add(r.openT)
	}
	return t
}

func (r *rte) item() resultItem {
	return resultItem{cols: append([]outCol(nil), r.cols...), open: r.open, openT: r.openT}
}

// scope is one query level's names.
type scope struct {
	from    []*rte // FROM items in order, for *
	named   []*rte // the range entries names can refer to
	ctes    map[string]*result
	outputs []outCol // the level's output columns, for ORDER BY and GROUP BY names
	parent  *scope
}

func (sc *scope) cte(name string) *result {
	for s := sc; s != nil; s = s.parent {
		if r, ok := s.ctes[name]; ok {
			return r
		}
	}
	return nil
}

func (sc *scope) addFrom(r *rte) {
	sc.from = append(sc.from, r)
	var walk func(r *rte)
	walk = func(r *rte) {
		if r.alias != "" {
			sc.named = append(sc.named, r)
			return
		}
		for _, m := range r.members {
			walk(m)
		}
	}
	walk(r)
}

// lineageState is a session's memory for lineage: what its cursors and prepared
// statements return, and the relations it created or replaced (which the side
// connection cannot see until they are committed).
type lineageState struct {
	mu       sync.Mutex
	cursors  map[string]*result
	prepared map[string]*result
	// preparedQuery is the query of a statement prepared with SQL PREPARE, with the
	// result it had then: the server analyses it again when a definition it uses
	// changes, so EXECUTE analyses it again too (while prepared[name] is that result).
	preparedQuery map[string]preparedDef
	pending       map[string][]*pendingRel
	gen           uint64 // changes with every definition (see session.lineageMemo)

	// Definitions the side connection may not see yet (see lineage_txn.go), guarded by
	// the session's qmu and then mu.
	suspect string // why; "" when the catalog shows what the session's statements see
	// definers are the server's prepared statements (extended protocol) that may change
	// definitions: each Execute can run it again, which the frontend does not tie to it.
	definers    map[string]bool
	suspectNeed uint64 // suspect at least until ready exceeds this
	ready       uint64 // ReadyForQuery messages received
	lastStatus  byte   // the transaction status of the last one
}

// pendingRel is a relation the session created or replaced.
type pendingRel struct {
	schema, name string
	cols         []outCol
	open         bool
	openT        taint
}

func (st *lineageState) generation() uint64 {
	st.mu.Lock()
	defer st.mu.Unlock()
	return st.gen
}

func newLineageState() *lineageState {
	return &lineageState{cursors: map[string]*result{}, prepared: map[string]*result{}, pending: map[string][]*pendingRel{},
		preparedQuery: map[string]preparedDef{}}
}

type preparedDef struct {
	r     *result
	query *pg.Node
}

// lineage is what the analysis found about one statement.
type lineage struct {
	out     *result // the rows it returns; nil when it returns none from tables
	touched taint   // everything it reads
	targets taint   // everything the relations it writes or alters hold (errors quote their rows)
	leak    string  // why it would copy masked values where no mask follows them
	copyOut bool    // COPY TO STDOUT: the result goes out as COPY data, which cannot be masked
	define  func(*lineageState)
	// ddl: a function it calls may change definitions (its body has DDL, dynamic SQL, or
	// cannot be read): later statements cannot trust the side connection's catalog until
	// the transaction ends (see lineage_txn.go).
	ddl bool
	// What it was analysed from: the catalog's and the session's generations when the
	// analysis began, and whether the catalog was suspect (see refreshLineage).
	catGen, stateGen uint64
	suspect          bool
}

// maskingSources reports whether a source column is masked.
type maskingSources interface {
	source(schema, table, column string) bool
	blockUnknowable() bool
}

// maxLineageDepth bounds views within views and functions within functions.
const maxLineageDepth = 8

// analyzer computes one statement's lineage.
type analyzer struct {
	ctx     context.Context
	cat     catalogReader
	views   viewCache
	masks   maskingSources
	state   *lineageState
	depth   int
	lenient bool       // in a body: an unresolved name is a variable, not an unknown column
	stmt    *Statement // the classified statement (its bodies), at the top level

	reads    []*taint // active accumulators: every read is added to all
	targets  []*taint // active accumulators of targets (shared with sub-analyzers: a body's writes count)
	leak     string
	funcMemo map[string]funcLineage // shared with sub-analyzers
	// constRead (shared with sub-analyzers; nil when nobody asks) is set when the
	// analysis read a constant's value: then it holds only for the text the tree was
	// parsed from (see Classifier.lineageTree).
	constRead *bool
	// suspect, when not "", says why the catalog may not show the definitions the
	// statement will see (the session changed definitions in its open transaction, or
	// earlier in the same message): every relation's column, every function, operator
	// and cast is then of unknowable origin, and values of unknowable origin are not
	// copied (see refuseUnknown).
	suspect string
	ddl     *bool // shared with sub-analyzers: see lineage.ddl
}

// refuseUnknown says whether a value of unknowable origin must not be copied where no
// mask follows: with ColumnMasks.Block, and while the catalog is suspect (a copy made
// then could not be judged again once the definitions are known).
func (a *analyzer) refuseUnknown() bool {
	return a.masks.blockUnknowable() || a.suspect != ""
}

func (a *analyzer) suspectTaint() taint {
	if a.suspect == "" {
		return taint{}
	}
	return unknownTaint("%s", a.suspect)
}

// funcLineage is what calling a function reads, and why calling it copies.
type funcLineage struct {
	t    taint
	leak string
}

func newAnalyzer(ctx context.Context, cat catalogReader, views viewCache, masks maskingSources, state *lineageState, stmt *Statement) *analyzer {
	return &analyzer{ctx: ctx, cat: cat, views: views, masks: masks, state: state, stmt: stmt, funcMemo: map[string]funcLineage{}}
}

// viewCache remembers analysed views (the side catalog implements it).
type viewCache interface {
	viewTaints(r *relInfo) ([]taint, bool)
	setViewTaints(r *relInfo, t []taint)
}

func (a *analyzer) read(t taint) {
	for _, acc := range a.reads {
		acc.add(t)
	}
}

// target notes a relation the statement writes to or alters: its errors may quote any
// of the relation's columns.
func (a *analyzer) target(e *rte) {
	t := e.whole()
	for _, acc := range a.targets {
		acc.add(t)
	}
}

// collectTargets runs f with a fresh accumulator of targets and returns what f targets.
func (a *analyzer) collectTargets(f func()) taint {
	var t taint
	a.targets = append(a.targets, &t)
	defer func() { a.targets = a.targets[:len(a.targets)-1] }()
	f()
	return t
}

// collect runs f with a fresh accumulator and returns what f read.
func (a *analyzer) collect(f func()) taint {
	var t taint
	a.reads = append(a.reads, &t)
	defer func() { a.reads = a.reads[:len(a.reads)-1] }()
	f()
	return t
}

func (a *analyzer) setLeak(format string, args ...any) {
	if a.leak == "" {
		a.leak = clean(fmt.Sprintf(format, args...))
	}
}

// analyzeStatement computes the lineage of one parsed statement.
func (a *analyzer) analyzeStatement(n *pg.Node) *lineage {
	if a.ddl == nil {
		a.ddl = new(bool)
	}
	lin := &lineage{suspect: a.suspect != ""}
	if g, ok := a.cat.(interface {
		generation(bool) (uint64, time.Time)
	}); ok {
		lin.catGen, _ = g.generation(false)
	}
	if a.state != nil {
		lin.stateGen = a.state.generation()
	}
	lin.targets = a.collectTargets(func() {
		lin.touched = a.collect(func() { lin.out = a.statement(n, nil, lin) })
	})
	// What the server may call without the statement naming it (implicit casts, domain
	// and table checks, defaults, comparison operators): any statement may run it.
	amb := a.ambientTaint()
	amb.add(a.suspectTaint())
	if amb.dirty() {
		lin.touched.add(amb)
		if lin.out != nil {
			lin.out = lin.out.with(amb)
		}
		if (amb.masked || amb.unknown != "" && a.refuseUnknown()) && a.stmt != nil {
			for _, k := range writesKinds {
				// CREATE TABLE stores nothing; CREATE TABLE AS does.
				if a.stmt.Has(k) && (k != "create_table" || n.GetCreateTableAsStmt() != nil) {
					if amb.masked {
						a.setLeak("a cast, check, default or operator the server applies implicitly calls a function that reads masked columns: the values the statement stores could derive from them")
					} else {
						a.setLeak("it stores values while the origin of what the server computes implicitly cannot be known (%s)", amb.unknown)
					}
					break
				}
			}
		}
	}
	lin.leak = a.leak
	lin.ddl = *a.ddl
	return lin
}

// with returns a copy of r with t added to every column.
func (r *result) with(t taint) *result {
	out := &result{targets: r.targets}
	for _, it := range r.items {
		ni := resultItem{open: it.open, openT: it.openT}
		if it.open {
			ni.openT.add(t)
		}
		for _, c := range it.cols {
			c.t.add(t)
			ni.cols = append(ni.cols, c)
		}
		out.items = append(out.items, ni)
	}
	return out
}

// statement analyses a statement; lin (may be nil) receives what only top-level
// statements define (cursors, prepared statements, new relations).
func (a *analyzer) statement(n *pg.Node, parent *scope, lin *lineage) *result {
	if n == nil {
		return nil
	}
	define := func(f func(*lineageState)) {
		if lin != nil {
			lin.define = f
		}
	}
	switch s := n.Node.(type) {
	case *pg.Node_SelectStmt:
		r := a.selectStmt(s.SelectStmt, parent, true)
		if into := s.SelectStmt.IntoClause; into != nil {
			a.createAs(into, r, false, define)
			return nil
		}
		return r
	case *pg.Node_InsertStmt:
		return a.insert(s.InsertStmt, parent)
	case *pg.Node_UpdateStmt:
		return a.update(s.UpdateStmt, parent)
	case *pg.Node_DeleteStmt:
		return a.delete(s.DeleteStmt, parent)
	case *pg.Node_MergeStmt:
		return a.merge(s.MergeStmt, parent)
	case *pg.Node_DeclareCursorStmt:
		r := orEmpty(a.statement(s.DeclareCursorStmt.Query, parent, nil))
		name := s.DeclareCursorStmt.Portalname
		define(func(st *lineageState) { st.mu.Lock(); st.cursors[name] = r; st.gen++; st.mu.Unlock() })
		return nil
	case *pg.Node_PrepareStmt:
		var r *result
		targets := a.collectTargets(func() { r = orEmpty(a.statement(s.PrepareStmt.Query, parent, nil)) })
		if targets.dirty() {
			rc := *r
			rc.targets = targets
			r = &rc
		}
		name, q := s.PrepareStmt.Name, s.PrepareStmt.Query
		define(func(st *lineageState) {
			st.mu.Lock()
			st.prepared[name] = r
			st.preparedQuery[name] = preparedDef{r, q}
			st.gen++
			st.mu.Unlock()
		})
		return nil
	case *pg.Node_ExecuteStmt:
		for _, p := range s.ExecuteStmt.Params {
			a.read(a.expr(p, parent))
		}
		a.state.mu.Lock()
		def, ok := a.state.preparedQuery[s.ExecuteStmt.Name]
		current := ok && a.state.prepared[s.ExecuteStmt.Name] == def.r
		a.state.mu.Unlock()
		if current && a.depth == 0 {
			// Analysed again: the definitions it uses may have changed since PREPARE.
			r := orEmpty(a.statement(def.query, nil, nil))
			a.read(r.all())
			return r
		}
		return a.known(a.state.prepared, s.ExecuteStmt.Name, "prepared statement")
	case *pg.Node_FetchStmt:
		if s.FetchStmt.Ismove {
			return nil
		}
		return a.known(a.state.cursors, s.FetchStmt.Portalname, "cursor")
	case *pg.Node_CopyStmt:
		return a.copyStmt(s.CopyStmt, lin)
	case *pg.Node_ExplainStmt:
		for _, o := range s.ExplainStmt.Options {
			if de := o.GetDefElem(); de != nil && de.Defname == "analyze" && !a.isFalse(de.Arg) {
				a.statement(s.ExplainStmt.Query, parent, nil) // it runs: its copies count
			}
		}
		r := &result{}
		r.add(outCol{name: "QUERY PLAN"})
		return r
	case *pg.Node_CreateTableAsStmt:
		r := a.statement(s.CreateTableAsStmt.Query, parent, nil)
		a.createAs(s.CreateTableAsStmt.Into, r, s.CreateTableAsStmt.Objtype == pg.ObjectType_OBJECT_MATVIEW, define)
		return nil
	case *pg.Node_ViewStmt:
		r := a.statement(s.ViewStmt.Query, parent, nil)
		a.createView(s.ViewStmt, r, define)
		return nil
	case *pg.Node_CreateStmt:
		a.createTable(s.CreateStmt, define)
		return nil
	case *pg.Node_AlterTableStmt:
		a.alterTable(s.AlterTableStmt)
		return nil
	case *pg.Node_IndexStmt:
		// A unique index reports a duplicate key: "Key (name)=(Ada Lovelace) is duplicated."
		a.targetRel(s.IndexStmt.Relation)
		return nil
	case *pg.Node_RefreshMatViewStmt:
		// CONCURRENTLY reports a duplicate row: "Row: (...)".
		a.targetRel(s.RefreshMatViewStmt.Relation)
		return nil
	case *pg.Node_RenameStmt:
		a.rename(s.RenameStmt)
		return nil
	case *pg.Node_AlterObjectSchemaStmt:
		a.setSchema(s.AlterObjectSchemaStmt)
		return nil
	case *pg.Node_RuleStmt:
		a.rule(s.RuleStmt)
		return nil
	case *pg.Node_CreateTrigStmt:
		a.trigger(s.CreateTrigStmt)
		return nil
	case *pg.Node_CreateDomainStmt:
		for _, cn := range s.CreateDomainStmt.Constraints {
			if con := cn.GetConstraint(); con != nil && con.Contype == pg.ConstrType_CONSTR_DEFAULT {
				if t := a.expr(con.RawExpr, nil); t.masked {
					a.setLeak("the default of domain %s derives from masked columns: columns of the domain would store them where no mask follows", qualifiedName(s.CreateDomainStmt.Domainname))
				}
			}
			if con := cn.GetConstraint(); con != nil && con.Contype == pg.ConstrType_CONSTR_CHECK {
				a.implicitDefinition("the check of domain "+qualifiedName(s.CreateDomainStmt.Domainname), a.sub(true).expr(con.RawExpr, nil))
			}
		}
		return nil
	case *pg.Node_CreateCastStmt:
		a.createCast(s.CreateCastStmt)
		return nil
	case *pg.Node_DefineStmt:
		a.defineStmt(s.DefineStmt)
		return nil
	case *pg.Node_DoStmt:
		if a.stmt != nil && parent == nil {
			a.bodyCopies(*a.stmt, "the DO block")
		}
		return nil
	case *pg.Node_CreateFunctionStmt:
		if a.stmt != nil && parent == nil {
			reads := a.bodyCopies(*a.stmt, "the body of "+qualifiedName(s.CreateFunctionStmt.Funcname))
			a.replaceHook(s.CreateFunctionStmt.Funcname, reads)
		}
		return nil
	case *pg.Node_CallStmt:
		a.read(a.expr(&pg.Node{Node: &pg.Node_FuncCall{FuncCall: s.CallStmt.Funccall}}, parent))
		return &result{items: []resultItem{{open: true, openT: unknownTaint("the output arguments of procedure %s", qualifiedName(s.CallStmt.Funccall.GetFuncname()))}}}
	case *pg.Node_VariableShowStmt:
		r := &result{}
		r.add(outCol{name: s.VariableShowStmt.Name})
		return r
	}
	return nil
}

// orEmpty is r, or an empty result for a statement that returns no rows (a cursor or
// prepared statement the session declared, as opposed to one it did not).
func orEmpty(r *result) *result {
	if r == nil {
		return &result{}
	}
	return r
}

// isFalse reads an option's value: a constant's.
func (a *analyzer) isFalse(n *pg.Node) bool {
	if n == nil {
		return false
	}
	if a.constRead != nil {
		*a.constRead = true
	}
	if b := n.GetBoolean(); b != nil {
		return !b.Boolval
	}
	if s := n.GetString_(); s != nil {
		switch strings.ToLower(s.Sval) {
		case "false", "off", "0", "no":
			return true
		}
	}
	if ac := n.GetAConst(); ac != nil {
		if b := ac.GetBoolval(); b != nil {
			return !b.Boolval
		}
	}
	return false
}

// known returns what a cursor or prepared statement the session declared returns.
func (a *analyzer) known(m map[string]*result, name, what string) *result {
	a.state.mu.Lock()
	r := m[name]
	a.state.mu.Unlock()
	if r == nil {
		t := unknownTaint("%s %q was not declared through the bastion", what, name)
		a.read(t)
		return &result{items: []resultItem{{open: true, openT: t}}}
	}
	a.read(r.all())
	a.target(&rte{cols: []outCol{{t: r.targets}}})
	return r
}

// withClause analyses a WITH clause into a new scope level.
func (a *analyzer) withClause(w *pg.WithClause, parent *scope) *scope {
	sc := &scope{parent: parent, ctes: map[string]*result{}}
	if w == nil {
		return sc
	}
	for _, c := range w.Ctes {
		cte := c.GetCommonTableExpr()
		if cte == nil {
			continue
		}
		var r *result
		if w.Recursive {
			// Start from nothing known, then let the recursive term see the CTE until its
			// taints stop growing (they only grow, so two extra rounds settle it).
			sc.ctes[cte.Ctename] = &result{items: []resultItem{{open: true}}}
			for round := 0; round < 3; round++ {
				r = a.statement(cte.Ctequery, sc, nil)
				if r == nil {
					r = &result{}
				}
				r = renameCols(r, cte.Aliascolnames)
				sc.ctes[cte.Ctename] = r
			}
		} else {
			r = a.statement(cte.Ctequery, sc, nil)
			if r == nil {
				r = &result{}
			}
			r = renameCols(r, cte.Aliascolnames)
		}
		sc.ctes[cte.Ctename] = r
	}
	return sc
}

// renameCols applies a column alias list.
func renameCols(r *result, names []*pg.Node) *result {
	if len(names) == 0 {
		return r
	}
	out := &result{}
	i := 0
	for _, it := range r.items {
		ni := resultItem{open: it.open, openT: it.openT}
		for _, c := range it.cols {
			if i < len(names) {
				if s := names[i].GetString_(); s != nil {
					c.name = s.Sval
				}
			}
			i++
			ni.cols = append(ni.cols, c)
		}
		out.items = append(out.items, ni)
	}
	return out
}

// selectStmt analyses a SELECT (or VALUES, or set operation). targets is false for an
// EXISTS subquery, whose select list is never computed.
func (a *analyzer) selectStmt(s *pg.SelectStmt, parent *scope, targets bool) *result {
	if s == nil {
		return &result{}
	}
	sc := a.withClause(s.WithClause, parent)
	out := &result{}
	switch {
	case s.Op != pg.SetOperation_SETOP_NONE:
		l := a.selectStmt(s.Larg, sc, targets)
		r := a.selectStmt(s.Rarg, sc, targets)
		out = unionPositional(l, r)
	case len(s.ValuesLists) > 0:
		var cols []outCol
		for _, row := range s.ValuesLists {
			l := row.GetList()
			if l == nil {
				continue
			}
			for i, e := range l.Items {
				t := a.expr(e, sc)
				if i >= len(cols) {
					cols = append(cols, outCol{name: fmt.Sprintf("column%d", i+1)})
				}
				cols[i].t.add(t)
			}
		}
		for _, c := range cols {
			out.add(c)
		}
	default:
		for _, f := range s.FromClause {
			sc.addFrom(a.fromItem(f, sc))
		}
		a.read(a.expr(s.WhereClause, sc))
		for _, g := range s.GroupClause {
			a.read(a.expr(g, sc))
		}
		a.read(a.expr(s.HavingClause, sc))
		for _, w := range s.WindowClause {
			a.read(a.expr(w, sc))
		}
		if targets {
			out = a.targetList(s.TargetList, sc)
		}
		for _, d := range s.DistinctClause {
			a.read(a.expr(d, sc))
		}
	}
	if flat, ok := out.flat(); ok {
		sc.outputs = flat
	}
	for _, o := range s.SortClause {
		a.read(a.expr(o, sc))
	}
	a.read(a.expr(s.LimitOffset, sc))
	a.read(a.expr(s.LimitCount, sc))
	return out
}

func unionPositional(l, r *result) *result {
	lf, lok := l.flat()
	rf, rok := r.flat()
	if !lok || !rok || len(lf) != len(rf) {
		t := l.all()
		t.add(r.all())
		return &result{items: []resultItem{{open: true, openT: t}}}
	}
	out := &result{}
	for i := range lf {
		c := lf[i]
		c.t.add(rf[i].t)
		out.add(c)
	}
	return out
}

// targetList analyses a select list (or RETURNING list) in scope.
func (a *analyzer) targetList(list []*pg.Node, sc *scope) *result {
	out := &result{}
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil {
			continue
		}
		if cr := rt.Val.GetColumnRef(); cr != nil && isStar(cr) {
			for _, it := range a.star(cr, sc) {
				out.items = append(out.items, it)
			}
			continue
		}
		t := a.expr(rt.Val, sc)
		name := rt.Name
		if name == "" {
			name = colName(rt.Val)
		}
		out.add(outCol{name: name, t: t})
	}
	return out
}

func isStar(cr *pg.ColumnRef) bool {
	return len(cr.Fields) > 0 && cr.Fields[len(cr.Fields)-1].GetAStar() != nil
}

// star expands * or alias.* in a select list.
func (a *analyzer) star(cr *pg.ColumnRef, sc *scope) []resultItem {
	quals := fieldNames(cr.Fields[:len(cr.Fields)-1])
	var items []resultItem
	if len(quals) == 0 {
		for _, r := range sc.from {
			items = append(items, r.item())
			a.read(r.whole())
		}
		return items
	}
	for s := sc; s != nil; s = s.parent {
		for _, r := range s.named {
			if matchQual(r, quals) {
				a.read(r.whole())
				return []resultItem{r.item()}
			}
		}
	}
	t := unknownTaint("%s.* does not name a relation in scope", strings.Join(quals, "."))
	a.read(t)
	return []resultItem{{open: true, openT: t}}
}

func matchQual(r *rte, quals []string) bool {
	switch len(quals) {
	case 1:
		return r.alias == quals[0]
	case 2:
		return r.schema == quals[0] && r.alias == quals[1]
	case 3:
		return r.schema == quals[1] && r.alias == quals[2]
	}
	return false
}

func fieldNames(fields []*pg.Node) []string {
	var out []string
	for _, f := range fields {
		if s := f.GetString_(); s != nil {
			out = append(out, s.Sval)
		}
	}
	return out
}

// colName is the name PostgreSQL gives an unnamed select-list entry (enough of it to
// resolve references to a subquery's columns).
func colName(n *pg.Node) string {
	switch v := n.GetNode().(type) {
	case *pg.Node_ColumnRef:
		names := fieldNames(v.ColumnRef.Fields)
		if len(names) > 0 {
			return names[len(names)-1]
		}
	case *pg.Node_FuncCall:
		names := fieldNames(v.FuncCall.Funcname)
		if len(names) > 0 {
			return names[len(names)-1]
		}
	case *pg.Node_TypeCast:
		if name := colName(v.TypeCast.Arg); name != "?column?" {
			return name
		}
		if tn := v.TypeCast.TypeName; tn != nil {
			names := fieldNames(tn.Names)
			if len(names) > 0 {
				return names[len(names)-1]
			}
		}
	case *pg.Node_AIndirection:
		for i := len(v.AIndirection.Indirection) - 1; i >= 0; i-- {
			if s := v.AIndirection.Indirection[i].GetString_(); s != nil {
				return s.Sval
			}
		}
		return colName(v.AIndirection.Arg)
	case *pg.Node_CaseExpr:
		return "case"
	case *pg.Node_JsonScalarExpr, *pg.Node_JsonSerializeExpr, *pg.Node_JsonParseExpr, *pg.Node_JsonFuncExpr,
		*pg.Node_JsonObjectConstructor, *pg.Node_JsonArrayConstructor, *pg.Node_JsonArrayQueryConstructor,
		*pg.Node_JsonObjectAgg, *pg.Node_JsonArrayAgg, *pg.Node_MergeSupportFunc:
		// what an older server, calling a function of that name, names the column
		return olderServerCall(n.ProtoReflect().Get(n.ProtoReflect().WhichOneof(nodeOneof())).Message().Interface())
	case *pg.Node_CoalesceExpr:
		return "coalesce"
	}
	return "?column?"
}

// fromItem analyses one FROM item.
func (a *analyzer) fromItem(n *pg.Node, sc *scope) *rte {
	switch v := n.GetNode().(type) {
	case *pg.Node_RangeVar:
		return a.rangeVar(v.RangeVar, sc)
	case *pg.Node_RangeSubselect:
		r := a.statement(v.RangeSubselect.Subquery, sc, nil)
		if r == nil {
			r = &result{}
		}
		return a.aliased(r, v.RangeSubselect.Alias, "")
	case *pg.Node_RangeFunction:
		var t taint
		for _, f := range v.RangeFunction.Functions {
			if l := f.GetList(); l != nil && len(l.Items) > 0 {
				t.add(a.expr(l.Items[0], sc))
			}
		}
		r := &result{}
		if len(v.RangeFunction.Coldeflist) > 0 {
			for _, cd := range v.RangeFunction.Coldeflist {
				if d := cd.GetColumnDef(); d != nil {
					r.add(outCol{name: d.Colname, t: t})
				}
			}
		} else {
			// A function may return a row: its columns are not counted here.
			name := ""
			if len(v.RangeFunction.Functions) == 1 {
				if l := v.RangeFunction.Functions[0].GetList(); l != nil && len(l.Items) > 0 {
					name = colName(l.Items[0])
				}
			}
			r.items = append(r.items, resultItem{cols: []outCol{{name: name, t: t}}, open: true, openT: t})
		}
		if v.RangeFunction.Ordinality {
			r.add(outCol{name: "ordinality"})
		}
		alias := ""
		if v.RangeFunction.Alias == nil && len(v.RangeFunction.Functions) == 1 {
			if l := v.RangeFunction.Functions[0].GetList(); l != nil && len(l.Items) > 0 {
				alias = colName(l.Items[0])
			}
		}
		return a.aliased(r, v.RangeFunction.Alias, alias)
	case *pg.Node_JoinExpr:
		return a.join(v.JoinExpr, sc)
	case *pg.Node_RangeTableSample:
		a.read(a.expr(&pg.Node{Node: &pg.Node_List{List: &pg.List{Items: v.RangeTableSample.Args}}}, sc))
		return a.fromItem(v.RangeTableSample.Relation, sc)
	}
	// XMLTABLE, JSON_TABLE and anything newer: columns of the inputs' taint.
	return &rte{alias: aliasOf(n), open: true, openT: a.expr(n, sc)}
}

func aliasOf(n *pg.Node) string {
	switch v := n.GetNode().(type) {
	case *pg.Node_RangeTableFunc:
		if v.RangeTableFunc.Alias != nil {
			return v.RangeTableFunc.Alias.Aliasname
		}
	case *pg.Node_JsonTable:
		if v.JsonTable.Alias != nil {
			return v.JsonTable.Alias.Aliasname
		}
	}
	return ""
}

// aliased makes a range entry of a result, with an alias and its column names.
func (a *analyzer) aliased(r *result, al *pg.Alias, defaultName string) *rte {
	name := defaultName
	if al != nil {
		name = al.Aliasname
		r = renameCols(r, al.Colnames)
	}
	e := &rte{alias: name}
	for _, it := range r.items {
		e.cols = append(e.cols, it.cols...)
		if it.open {
			e.open = true
			e.openT.add(it.openT)
		}
	}
	return e
}

// join analyses a JOIN: its columns are the USING (or NATURAL) columns once, then the
// rest of each side.
func (a *analyzer) join(j *pg.JoinExpr, sc *scope) *rte {
	l := a.fromItem(j.Larg, sc)
	r := a.fromItem(j.Rarg, sc)
	inner := &scope{parent: sc}
	inner.addFrom(l)
	inner.addFrom(r)
	a.read(a.expr(j.Quals, inner))
	using := fieldNames(j.UsingClause)
	if j.IsNatural {
		if l.open || r.open {
			using = nil
		}
		for _, lc := range l.cols {
			for _, rc := range r.cols {
				if lc.name == rc.name && lc.name != "" && !contains(using, lc.name) {
					using = append(using, lc.name)
				}
			}
		}
	}
	e := &rte{members: []*rte{l, r}, open: l.open || r.open}
	e.openT.add(l.openT)
	e.openT.add(r.openT)
	for _, u := range using {
		c := outCol{name: u}
		for _, side := range []*rte{l, r} {
			found := false
			for _, sc := range side.cols {
				if sc.name == u {
					c.t.add(sc.t)
					found = true
				}
			}
			if !found && side.open {
				c.t.add(side.openT)
			}
		}
		e.cols = append(e.cols, c)
	}
	for _, side := range []*rte{l, r} {
		for _, c := range side.cols {
			if !contains(using, c.name) {
				e.cols = append(e.cols, c)
			}
		}
	}
	if j.Alias != nil {
		e.alias = j.Alias.Aliasname
		if len(j.Alias.Colnames) > 0 {
			e = a.aliased(&result{items: []resultItem{e.item()}}, j.Alias, "")
		}
		e.members = nil
	}
	if j.JoinUsingAlias != nil { // JOIN ... USING (x) AS u: u.x names the merged columns
		u := &rte{alias: j.JoinUsingAlias.Aliasname, cols: e.cols[:len(using)]}
		e.members = append(e.members, u)
	}
	return e
}

// rangeVar resolves a relation name: a CTE, or every relation of that name the session
// created or the catalog holds (in any schema when none is written: the search path
// is not known, so every candidate counts).
func (a *analyzer) rangeVar(rv *pg.RangeVar, sc *scope) *rte {
	alias := rv.Relname
	if rv.Alias != nil {
		alias = rv.Alias.Aliasname
	}
	if rv.Schemaname == "" {
		if r := sc.cte(rv.Relname); r != nil {
			return a.aliased(r, rv.Alias, rv.Relname)
		}
	}
	e := a.relation(rv.Schemaname, rv.Relname)
	e.alias = alias
	if rv.Schemaname != "" {
		e.schema = rv.Schemaname
	}
	if rv.Alias != nil && len(rv.Alias.Colnames) > 0 {
		ren := a.aliased(&result{items: []resultItem{e.item()}}, rv.Alias, "")
		ren.schema = e.schema
		e = ren
	}
	return e
}

// statsRelations hold column values (most common values, histogram bounds): reading
// them is reading the columns.
var statsRelations = map[string]bool{
	"pg_statistic": true, "pg_stats": true, "pg_statistic_ext_data": true, "pg_stats_ext": true, "pg_stats_ext_exprs": true,
}

// relation is the range entry for schema.name (schema "" for any).
func (a *analyzer) relation(schema, name string) *rte {
	if statsRelations[name] && (schema == "" || schema == "pg_catalog") {
		return &rte{alias: name, schema: "pg_catalog", open: true, openT: readerTaint("%s holds column values", name)}
	}
	var cands []*rte
	a.state.mu.Lock()
	for _, p := range a.state.pending[name] {
		if schema == "" || p.schema == "" || p.schema == schema {
			c := &rte{alias: name, schema: p.schema, cols: append([]outCol(nil), p.cols...), open: p.open, openT: p.openT}
			for i := range c.cols {
				c.cols[i].t.add(a.suspectTaint())
			}
			c.openT.add(a.suspectTaint())
			cands = append(cands, c)
		}
	}
	a.state.mu.Unlock()
	rels, err := a.cat.relations(a.ctx, schema, []string{name})
	if err != nil {
		return &rte{alias: name, open: true, openT: unknownTaint("%v", err)}
	}
	for _, r := range rels {
		cands = append(cands, a.relRTE(r))
	}
	switch len(cands) {
	case 0:
		return &rte{alias: name, schema: schema, open: true, openT: unknownTaint("relation %s is not in the catalog", name)}
	case 1:
		return cands[0]
	}
	// Several relations of that name: a column takes every candidate's column of that
	// name; the columns of * are counted only when all candidates agree.
	e := &rte{alias: name, schema: schema}
	same := true
	for _, c := range cands[1:] {
		if c.open || cands[0].open || len(c.cols) != len(cands[0].cols) {
			same = false
			break
		}
		for i := range c.cols {
			if c.cols[i].name != cands[0].cols[i].name {
				same = false
			}
		}
	}
	for _, c := range cands {
		if c.open {
			e.open = true
			e.openT.add(c.openT)
		}
	}
	if same {
		e.cols = append([]outCol(nil), cands[0].cols...)
		for _, c := range cands[1:] {
			for i := range c.cols {
				e.cols[i].t.add(c.cols[i].t)
			}
		}
		return e
	}
	for _, c := range cands {
		for _, col := range c.cols {
			merged := false
			for i := range e.cols {
				if e.cols[i].name == col.name {
					e.cols[i].t.add(col.t)
					merged = true
				}
			}
			if !merged {
				e.cols = append(e.cols, col)
			}
		}
	}
	e.open = true
	for _, col := range e.cols {
		e.openT.add(col.t)
	}
	return e
}

// relRTE is a catalog relation's range entry: each column masked as the masks say for
// the relation or any relation it inherits from, and a view's columns as its
// definition makes them.
func (a *analyzer) relRTE(r *relInfo) *rte {
	e := &rte{alias: r.Name, schema: r.Schema}
	var viewT []taint
	if r.Kind == "v" || r.Kind == "m" {
		viewT = a.viewColumns(r)
	}
	k := 0
	for _, name := range r.Cols {
		if name == "" {
			continue // dropped
		}
		c := outCol{name: name, t: a.columnTaint(r, name)}
		c.t.add(a.suspectTaint())
		if r.Kind == "f" && !c.t.masked {
			// A foreign table's rows come from another server (which may be this one).
			c.t = unknownTaint("foreign table %s.%s: its data comes from elsewhere", r.Schema, r.Name)
		}
		if viewT != nil {
			if k < len(viewT) {
				c.t.add(viewT[k])
			} else {
				c.t.add(unknownTaint("view %s.%s has more columns than its definition", r.Schema, r.Name))
			}
		}
		k++
		e.cols = append(e.cols, c)
	}
	return e
}

// columnTaint is a catalog column's own mask.
func (a *analyzer) columnTaint(r *relInfo, col string) taint {
	if a.masks.source(r.Schema, r.Name, col) {
		return taint{masked: true}
	}
	for _, rel := range append(r.Ancestors, r.Descendants...) {
		if a.masks.source(rel[0], rel[1], col) {
			return taint{masked: true}
		}
	}
	return taint{}
}

// viewColumns analyses a view's (or materialized view's) definition, once per view and
// session catalog.
func (a *analyzer) viewColumns(r *relInfo) []taint {
	if t, ok := a.views.viewTaints(r); ok {
		return t
	}
	n := 0
	for _, c := range r.Cols {
		if c != "" {
			n++
		}
	}
	out := make([]taint, n)
	fail := func(t taint) []taint {
		for i := range out {
			out[i] = t
		}
		return out
	}
	if a.depth >= maxLineageDepth {
		return fail(unknownTaint("views nested more than %d deep", maxLineageDepth))
	}
	res, err := pgParse(r.Def)
	if err != nil || len(res.Stmts) != 1 {
		return fail(unknownTaint("the definition of view %s.%s cannot be parsed", r.Schema, r.Name))
	}
	sub := a.sub(false)
	var rr *result
	sub.collect(func() { rr = sub.statement(res.Stmts[0].Stmt, nil, nil) })
	if rr == nil {
		rr = &result{}
	}
	out = rr.taints(n)
	if a.suspect == "" { // a suspect analysis is unknowable throughout: not worth keeping
		a.views.setViewTaints(r, out)
	}
	return out
}

// sub is an analyzer for a nested definition (a view, a function body).
func (a *analyzer) sub(lenient bool) *analyzer {
	return &analyzer{ctx: a.ctx, cat: a.cat, views: a.views, masks: a.masks, state: a.state,
		depth: a.depth + 1, lenient: lenient, funcMemo: a.funcMemo, constRead: a.constRead,
		suspect: a.suspect, ddl: a.ddl, targets: a.targets[:len(a.targets):len(a.targets)]}
}

// expr is what an expression reads: every column it references, whole rows, the reads
// of its subqueries, and what the functions it calls may read.
func (a *analyzer) expr(n *pg.Node, sc *scope) taint {
	if n == nil {
		return taint{}
	}
	return a.collect(func() { a.walkExpr(n.ProtoReflect(), sc) })
}

func (a *analyzer) walkExpr(m protoreflect.Message, sc *scope) {
	switch v := m.Interface().(type) {
	case *pg.Node:
		// The wrapper holds one field of its oneof; Range would look at all of them.
		if fd := m.WhichOneof(nodeOneof()); fd != nil {
			a.walkExpr(m.Get(fd).Message(), sc)
		}
		return
	case *pg.A_Const, *pg.ParamRef:
		return // reads nothing
	case *pg.ColumnRef:
		a.read(a.columnRef(v, sc))
		return
	case *pg.SubLink:
		a.walkExpr(v.Testexpr.ProtoReflect(), sc)
		if len(v.OperName) > 0 { // x ### ANY (SELECT ...)
			a.read(a.operatorTaint(&pg.A_Expr{Kind: pg.A_Expr_Kind_AEXPR_OP, Name: v.OperName}))
		}
		if sel := v.Subselect.GetSelectStmt(); sel != nil {
			r := a.selectStmt(sel, sc, v.SubLinkType != pg.SubLinkType_EXISTS_SUBLINK)
			a.read(r.all())
		} else if v.Subselect != nil {
			a.statement(v.Subselect, sc, nil)
		}
		return
	case *pg.FuncCall:
		a.funcCall(v, sc)
		return
	case *pg.JsonScalarExpr, *pg.JsonSerializeExpr, *pg.JsonParseExpr, *pg.JsonFuncExpr, *pg.JsonTable,
		*pg.JsonObjectConstructor, *pg.JsonArrayConstructor, *pg.JsonArrayQueryConstructor,
		*pg.JsonObjectAgg, *pg.JsonArrayAgg, *pg.MergeSupportFunc:
		// SQL/JSON syntax to pg_query, a call of a function of that name to an older
		// server (funcs.go).
		a.walkFields(m, sc)
		if name := olderServerCall(v); name != "" {
			a.read(a.functionTaint("", name))
		}
		return
	case *pg.SelectStmt:
		a.read(a.selectStmt(v, sc, true).all())
		return
	case *pg.A_Expr:
		a.walkFields(m, sc)
		a.read(a.operatorTaint(v))
		return
	case *pg.TypeCast:
		a.walkFields(m, sc)
		a.read(a.castTaint(v.TypeName))
		return
	case *pg.SortBy:
		a.walkFields(m, sc)
		if len(v.UseOp) > 0 { // ORDER BY x USING ###
			a.read(a.operatorTaint(&pg.A_Expr{Kind: pg.A_Expr_Kind_AEXPR_OP, Name: v.UseOp}))
		}
		return
	case *pg.A_Indirection:
		a.walkFields(m, sc)
		for _, ind := range v.Indirection {
			if s := ind.GetString_(); s != nil { // (o).f: a field, or f(o)
				a.read(a.attributeFunc(s.Sval))
			}
		}
		return
	}
	a.walkFields(m, sc)
}

// walkFields walks every node m holds.
func (a *analyzer) walkFields(m protoreflect.Message, sc *scope) {
	eachChild(m, func(c protoreflect.Message) bool {
		a.walkExpr(c, sc)
		return true
	})
}

// nodeOneof is pg.Node's oneof: which node it is. Looked up on first use:
// the descriptor builds pg_query's whole protobuf file, about 10 ms that
// every start of the binary (each CLI command) would otherwise pay.
var nodeOneof = sync.OnceValue(func() protoreflect.OneofDescriptor {
	return (&pg.Node{}).ProtoReflect().Descriptor().Oneofs().ByName("node")
})

// columnRef is what a column reference reads: every candidate it could mean.
func (a *analyzer) columnRef(cr *pg.ColumnRef, sc *scope) taint {
	names := fieldNames(cr.Fields)
	star := isStar(cr)
	var t taint
	found := false
	hit := func(x taint) { t.add(x); found = true }
	if len(names) == 0 && !star {
		return unknownTaint("a column reference without a name")
	}
	for s := sc; s != nil; s = s.parent {
		switch {
		case star && len(names) == 0:
			for _, r := range s.from {
				hit(r.whole())
			}
		case star:
			for _, r := range s.named {
				if matchQual(r, names) {
					hit(r.whole())
				}
			}
		case len(names) == 1:
			n := names[0]
			for _, r := range s.named {
				for _, c := range r.cols {
					if c.name == n {
						hit(c.t)
					}
				}
				if r.open {
					hit(r.openT) // it may have a column of that name
				}
				if r.alias == n {
					hit(r.whole()) // SELECT c FROM customers c: the whole row
				}
			}
			for _, r := range s.from { // a join without alias exposes its merged columns
				if r.alias == "" {
					for _, c := range r.cols {
						if c.name == n {
							hit(c.t)
						}
					}
				}
			}
			for _, o := range s.outputs {
				if o.name == n {
					hit(o.t)
				}
			}
		default:
			q, n := names[0], names[1]
			for _, r := range s.named {
				switch {
				case r.alias == q:
					colFound := false
					for _, c := range r.cols {
						if c.name == n {
							hit(c.t)
							colFound = true
						}
					}
					if !colFound {
						// c.f where f is no column: a function taking the whole row
						// (c.row_to_json, PostgreSQL's attribute notation for f(c)),
						// or a column hidden in the open part.
						hit(r.whole())
						hit(a.attributeFunc(n))
					}
				case len(names) >= 3 && r.schema == q && r.alias == n:
					for _, c := range r.cols {
						if c.name == names[2] {
							hit(c.t)
						}
					}
					if r.open {
						hit(r.openT)
					}
				}
				for _, c := range r.cols { // a composite column's field: col.field, or f(col)
					if c.name == q {
						hit(c.t)
						hit(a.attributeFunc(names[len(names)-1]))
					}
				}
			}
		}
	}
	if !found && !a.lenient {
		return unknownTaint("%s is not a column the bastion can trace", strings.Join(names, "."))
	}
	return t
}

// dataReaderFuncs read data the statement does not name: a query in a string, a table
// by name, a cursor, another server, the change stream.
var dataReaderFuncs = map[string]bool{
	"query_to_xml": true, "query_to_xmlschema": true, "query_to_xml_and_xmlschema": true,
	"table_to_xml": true, "table_to_xml_and_xmlschema": true, "cursor_to_xml": true,
	"schema_to_xml": true, "schema_to_xml_and_xmlschema": true, "database_to_xml": true,
	"database_to_xml_and_xmlschema": true, "ts_stat": true, "ts_rewrite": true, // see sqlTextCall
	"pg_background_result": true,                                                                             // the rows of the SQL pg_background_launch() ran
	"crosstab":             true, "crosstab2": true, "crosstab3": true, "crosstab4": true, "connectby": true, // tablefunc
	"pg_logical_slot_get_changes": true, "pg_logical_slot_peek_changes": true,
	"pg_logical_slot_get_binary_changes": true, "pg_logical_slot_peek_binary_changes": true,
}

// sinkFuncs keep a value where it can be read back without its lineage (a setting,
// a notification, a large object, a sequence, another server): an argument derived
// from a masked column makes the statement a copy.
var sinkFuncs = map[string]bool{
	"set_config": true, "pg_notify": true, "lo_from_bytea": true, "lo_put": true, "lowrite": true,
	"setval": true, "pg_logical_emit_message": true,
}

// funcCall is what a function call reads: its arguments, and what the function may
// read by itself.
func (a *analyzer) funcCall(fc *pg.FuncCall, sc *scope) {
	var args taint
	args = a.collect(func() {
		for _, x := range fc.Args {
			a.walkExpr(x.ProtoReflect(), sc)
		}
		for _, x := range fc.AggOrder {
			a.walkExpr(x.ProtoReflect(), sc)
		}
		if fc.AggFilter != nil {
			a.walkExpr(fc.AggFilter.ProtoReflect(), sc)
		}
		if fc.Over != nil {
			a.walkExpr(fc.Over.ProtoReflect(), sc)
		}
	})
	a.read(args)
	names := fieldNames(fc.Funcname)
	if len(names) == 0 {
		return
	}
	base := names[len(names)-1]
	lower := strings.ToLower(base)
	schema := ""
	if len(names) > 1 {
		schema = names[len(names)-2]
	}
	switch {
	case dataReaderFuncs[lower] && (lower != "ts_rewrite" || sqlTextCall(lower, fc)):
		a.read(readerTaint("%s() reads data the statement does not name", base))
	case strings.HasPrefix(lower, "dblink"):
		a.read(unknownTaint("%s() reads another server", base))
		if args.masked {
			a.setLeak("it would send masked column values to another server through %s()", base)
		}
	case sinkFuncs[lower] && a.copyRefused(args):
		a.setLeak("%s() would keep values derived from masked columns where no mask follows them", base)
	}
	a.read(a.functionTaint(schema, base))
	if schema == "pg_catalog" && lower == "json_object" && len(names) == 2 {
		// The parser (PostgreSQL 17's) writes json_object(a, b) as pg_catalog's; a
		// server older than 16 calls whichever json_object the search path finds.
		a.read(a.functionTaint("", base))
	}
}

// builtinSchemas hold PostgreSQL's own functions.
var builtinSchemas = map[string]bool{"pg_catalog": true, "information_schema": true}

// functionTaint is what a function may read by itself: nothing for PostgreSQL's own
// functions; for a function written in sql or plpgsql, what its body reads (masked
// when it reads a relation with a masked column); unknowable for any other language.
// Every function of that name counts, in any schema.
func (a *analyzer) functionTaint(schema, name string) taint {
	key := schema + "." + name
	if fl, ok := a.funcMemo[key]; ok {
		if fl.leak != "" {
			a.setLeak("%s", fl.leak)
		}
		t := fl.t
		t.add(a.suspectTaint())
		return t
	}
	// A function calling itself (directly or not) reads nothing beyond what its body
	// reads: while it is analysed, its own calls count as clean.
	a.funcMemo[key] = funcLineage{}
	fl := a.functionLineage(schema, name)
	a.funcMemo[key] = fl
	if fl.leak != "" {
		a.setLeak("%s", fl.leak)
	}
	t := fl.t
	t.add(a.suspectTaint()) // a function created or renamed in the open transaction
	return t
}

// functionLineage is functionTaint uncached; a function whose body reads masked
// columns and writes (wherever it was created) makes its caller a copy.
func (a *analyzer) functionLineage(schema, name string) funcLineage {
	var fl funcLineage
	fl.t = a.functionTaintUncached(schema, name, &fl.leak)
	return fl
}

func (a *analyzer) functionTaintUncached(schema, name string, leak *string) taint {
	fns, err := a.cat.functions(a.ctx, []string{name})
	if err != nil {
		return unknownTaint("%v", err)
	}
	var t taint
	seen := false
	for _, f := range fns {
		if schema != "" && f.Schema != schema {
			continue
		}
		seen = true
		if builtinSchemas[f.Schema] {
			continue
		}
		if a.depth >= maxLineageDepth {
			t.add(unknownTaint("functions nested more than %d deep", maxLineageDepth))
			continue
		}
		if f.Def == "" {
			t.add(unknownTaint("function %s.%s is in language %s, which the bastion cannot read", f.Schema, f.Name, f.Lang))
			a.mayDefine()
			continue
		}
		if sts, err := Classify(f.Def); err != nil || len(sts) != 1 || bodyDefines(sts[0]) {
			a.mayDefine()
		}
		what := fmt.Sprintf("function %s.%s", f.Schema, f.Name)
		bt, writes := a.bodyReads(f.Def, what)
		t.add(bt)
		if bt.masked && writes && *leak == "" {
			*leak = clean(what + " reads masked columns and writes: calling it could copy them where no mask follows")
		}
	}
	if !seen {
		return unknownTaint("function %s is not in the catalog", name)
	}
	return t
}

// bodyReads is what a routine definition's body may read: masked when it reads a
// relation with a masked column (directly, through a view, or through a function it
// calls), unknowable when any of it is.
func (a *analyzer) bodyReads(def, what string) (taint, bool) {
	sts, err := Classify(def)
	if errors.Is(err, ErrUnsafeSetting) {
		// A routine with SET standard_conforming_strings = off (pg_proc.proconfig, in
		// its definition) reads its body otherwise than pg_query does.
		return unknownTaint("%s sets standard_conforming_strings: its body cannot be read", what), true
	}
	if err != nil || len(sts) != 1 {
		return unknownTaint("the body of %s cannot be parsed", what), true
	}
	if sts[0].Unknowable != "" {
		return unknownTaint("%s: %s", what, sts[0].Unknowable), true
	}
	sub := a.sub(true)
	t := sub.collect(func() { sub.bodyStatements(sts[0], what) })
	if !t.masked {
		return t, false
	}
	return t, a.bodyWrites(sts[0])
}

// bodyStatements analyses the statements of st's bodies: the classified ones (string
// bodies) and a SQL-standard body, which is part of st's own tree.
func (a *analyzer) bodyStatements(st Statement, what string) {
	if st.Has("fetch") {
		// A PL/pgSQL FETCH reads the cursor its variable names, which may have been
		// opened outside the body (a refcursor holding a protocol portal's or another
		// cursor's name): a cursor not declared through the bastion, as in SQL FETCH.
		a.read(unknownTaint("%s fetches from a cursor that may not have been declared through the bastion", what))
	}
	for _, b := range st.Body {
		res, err := pgParse(b.SQL)
		if err != nil {
			a.read(unknownTaint("the body of %s cannot be parsed", what))
			continue
		}
		for _, raw := range res.Stmts {
			a.statement(raw.Stmt, nil, nil)
		}
	}
	res, err := pgParse(st.SQL)
	if err != nil || len(res.Stmts) != 1 {
		return
	}
	cf := res.Stmts[0].Stmt.GetCreateFunctionStmt()
	if cf == nil || cf.SqlBody == nil {
		return
	}
	var walk func(n *pg.Node)
	walk = func(n *pg.Node) {
		switch v := n.GetNode().(type) {
		case *pg.Node_List:
			for _, it := range v.List.Items {
				walk(it)
			}
		case *pg.Node_ReturnStmt:
			a.read(a.expr(v.ReturnStmt.Returnval, nil))
		default:
			a.statement(n, nil, nil)
		}
	}
	walk(cf.SqlBody)
}

// writesKinds are statement kinds that store values.
var writesKinds = []string{"insert", "update", "merge", "copy_to", "create_table", "select_into", "set_config",
	"create_materialized_view", "call", "execute", "notify"}

// bodyWrites reports whether a body can store a value somewhere: a statement that
// writes, a function that keeps its argument, a call to a function outside
// PostgreSQL's own (which may write), anything unknowable.
func (a *analyzer) bodyWrites(st Statement) bool {
	if st.Unknowable != "" {
		return true
	}
	if res, err := pgParse(st.SQL); err == nil && len(res.Stmts) == 1 {
		// A trigger function writes the row it returns (NEW.col := ...).
		if cf := res.Stmts[0].Stmt.GetCreateFunctionStmt(); cf != nil && cf.ReturnType != nil {
			if names := fieldNames(cf.ReturnType.Names); len(names) > 0 && names[len(names)-1] == "trigger" {
				return true
			}
		}
	}
	for _, k := range writesKinds {
		if st.Has(k) {
			return true
		}
	}
	var names []string
	for _, f := range st.Functions {
		base := f[strings.LastIndexByte(f, '.')+1:]
		lower := strings.ToLower(base)
		if sinkFuncs[lower] || strings.HasPrefix(lower, "dblink") {
			return true
		}
		names = append(names, base)
	}
	if len(names) == 0 {
		return false
	}
	fns, err := a.cat.functions(a.ctx, names)
	if err != nil {
		return true
	}
	found := map[string]bool{}
	for _, f := range fns {
		found[f.Name] = true
		if !builtinSchemas[f.Schema] {
			return true
		}
	}
	for _, n := range names {
		if !found[n] && !contains(st.AttrFunctions, n) {
			// Not in the catalog yet: created by this very body, say. (A name read
			// only in attribute notation that no function has is a column.)
			return true
		}
	}
	return false
}

// bodyCopies refuses a body (of a DO block or a routine) that reads masked values and
// can store values somewhere: they can flow through its variables, which the analysis
// does not follow, so reading and writing in one body counts as a copy.
func (a *analyzer) bodyCopies(st Statement, what string) taint {
	sub := a.sub(true)
	reads := sub.collect(func() { sub.bodyStatements(st, what) })
	a.read(reads)
	if sub.leak != "" {
		a.setLeak("%s: %s", what, sub.leak)
	}
	if reads.masked && a.bodyWrites(st) {
		a.setLeak("%s reads masked columns and writes: the values could be copied where no mask follows them", what)
	} else if reads.unknown != "" && (reads.reads || a.refuseUnknown()) && a.bodyWrites(st) {
		a.setLeak("%s reads values of unknowable origin (%s) and writes: they could be copied where no mask follows them", what, reads.unknown)
	}
	return reads
}

// targetRel is the relation a statement writes (or alters): its range entry, noted as
// a target.
func (a *analyzer) targetRel(rv *pg.RangeVar) *rte {
	if rv == nil {
		return &rte{open: true}
	}
	e := a.rangeVar(rv, &scope{})
	a.target(e)
	return e
}

// writeCheck refuses storing a value of taint t into column col of target, unless the
// column is masked itself (the mask follows the value there).
func (a *analyzer) writeCheck(target *rte, rel, col string, t taint) {
	if !a.copyRefused(t) {
		return
	}
	for _, c := range target.cols {
		if c.name == col && c.t.masked {
			return
		}
	}
	what := "values derived from masked columns"
	if !t.masked {
		what = "values of unknowable origin (" + t.unknown + ")"
	}
	a.setLeak("it would copy %s into %s.%s, where no mask follows them", what, rel, col)
}

func (a *analyzer) insert(s *pg.InsertStmt, parent *scope) *result {
	sc := a.withClause(s.WithClause, parent)
	target := a.targetRel(s.Relation)
	rel := s.Relation.GetRelname()
	var cols []string
	for _, c := range s.Cols {
		if rt := c.GetResTarget(); rt != nil {
			cols = append(cols, rt.Name)
		}
	}
	if len(cols) == 0 {
		for _, c := range target.cols {
			cols = append(cols, c.name)
		}
	}
	var src *result
	if s.SelectStmt != nil {
		src = a.statement(s.SelectStmt, sc, nil)
	}
	var srcAll taint
	if src != nil {
		srcAll = src.all()
		if flat, ok := src.flat(); ok && (len(flat) <= len(cols) || target.open) {
			for i, c := range flat {
				name := ""
				if i < len(cols) {
					name = cols[i]
				}
				a.writeCheck(target, rel, name, c.t)
			}
		} else {
			for _, c := range cols {
				a.writeCheck(target, rel, c, srcAll)
			}
			if len(cols) == 0 {
				a.writeCheck(target, rel, "?", srcAll)
			}
		}
	}
	tsc := &scope{parent: sc}
	tsc.addFrom(target)
	if oc := s.OnConflictClause; oc != nil {
		excluded := &rte{alias: "excluded", cols: nil, open: true, openT: srcAll}
		for _, c := range target.cols {
			excluded.cols = append(excluded.cols, outCol{name: c.name, t: srcAll})
		}
		usc := &scope{parent: sc}
		usc.addFrom(target)
		usc.addFrom(excluded)
		a.setList(oc.TargetList, target, rel, usc)
		a.read(a.expr(oc.WhereClause, usc))
	}
	if len(s.ReturningList) == 0 {
		return nil
	}
	return a.targetList(s.ReturningList, tsc)
}

// setList checks UPDATE ... SET (and ON CONFLICT DO UPDATE SET) assignments.
func (a *analyzer) setList(list []*pg.Node, target *rte, rel string, sc *scope) {
	multi := map[*pg.Node]taint{}
	for _, n := range list {
		rt := n.GetResTarget()
		if rt == nil {
			continue
		}
		var t taint
		if mar := rt.Val.GetMultiAssignRef(); mar != nil {
			if prev, ok := multi[mar.Source]; ok {
				t = prev
			} else {
				t = a.expr(mar.Source, sc)
				multi[mar.Source] = t
			}
		} else {
			t = a.expr(rt.Val, sc)
		}
		for _, ind := range rt.Indirection { // SET col[expr] = ..., SET col.field = ...
			a.read(a.expr(ind, sc))
		}
		a.read(t)
		a.writeCheck(target, rel, rt.Name, t)
	}
}

func (a *analyzer) update(s *pg.UpdateStmt, parent *scope) *result {
	sc := a.withClause(s.WithClause, parent)
	target := a.targetRel(s.Relation)
	inner := &scope{parent: sc}
	inner.addFrom(target)
	for _, f := range s.FromClause {
		inner.addFrom(a.fromItem(f, inner))
	}
	a.setList(s.TargetList, target, s.Relation.GetRelname(), inner)
	a.read(a.expr(s.WhereClause, inner))
	if len(s.ReturningList) == 0 {
		return nil
	}
	return a.targetList(s.ReturningList, inner)
}

func (a *analyzer) delete(s *pg.DeleteStmt, parent *scope) *result {
	sc := a.withClause(s.WithClause, parent)
	target := a.targetRel(s.Relation)
	inner := &scope{parent: sc}
	inner.addFrom(target)
	for _, f := range s.UsingClause {
		inner.addFrom(a.fromItem(f, inner))
	}
	a.read(a.expr(s.WhereClause, inner))
	if len(s.ReturningList) == 0 {
		return nil
	}
	return a.targetList(s.ReturningList, inner)
}

func (a *analyzer) merge(s *pg.MergeStmt, parent *scope) *result {
	sc := a.withClause(s.WithClause, parent)
	target := a.targetRel(s.Relation)
	rel := s.Relation.GetRelname()
	inner := &scope{parent: sc}
	inner.addFrom(target)
	inner.addFrom(a.fromItem(s.SourceRelation, inner))
	a.read(a.expr(s.JoinCondition, inner))
	for _, w := range s.MergeWhenClauses {
		mw := w.GetMergeWhenClause()
		if mw == nil {
			continue
		}
		a.read(a.expr(mw.Condition, inner))
		switch mw.CommandType {
		case pg.CmdType_CMD_UPDATE:
			a.setList(mw.TargetList, target, rel, inner)
		case pg.CmdType_CMD_INSERT:
			var cols []string
			for _, c := range mw.TargetList {
				if rt := c.GetResTarget(); rt != nil {
					cols = append(cols, rt.Name)
				}
			}
			if len(cols) == 0 {
				for _, c := range target.cols {
					cols = append(cols, c.name)
				}
			}
			for i, v := range mw.Values {
				t := a.expr(v, inner)
				a.read(t)
				name := "?"
				if i < len(cols) {
					name = cols[i]
				}
				a.writeCheck(target, rel, name, t)
			}
		}
	}
	if len(s.ReturningList) == 0 {
		return nil
	}
	return a.targetList(s.ReturningList, inner)
}

func (a *analyzer) copyStmt(s *pg.CopyStmt, lin *lineage) *result {
	if s.IsFrom {
		if s.Relation != nil {
			a.targetRel(s.Relation)
		}
		return nil
	}
	var r *result
	if s.Query != nil {
		r = a.statement(s.Query, nil, nil)
	} else {
		e := a.targetRel(s.Relation)
		r = &result{}
		if len(s.Attlist) > 0 {
			for _, n := range fieldNames(s.Attlist) {
				c := outCol{name: n, t: unknownTaint("column %s is not in the catalog", n)}
				for _, ec := range e.cols {
					if ec.name == n {
						c.t = ec.t
					}
				}
				if e.open {
					c.t.add(e.openT)
				}
				r.add(c)
			}
		} else {
			r.items = append(r.items, e.item())
		}
		a.read(r.all())
	}
	if r == nil {
		return nil
	}
	if s.Filename != "" || s.IsProgram {
		if t := r.all(); a.copyRefused(t) {
			a.setLeak("COPY TO a file or program would write masked columns where no mask follows them")
		}
		return nil
	}
	if lin != nil {
		lin.copyOut = true
	}
	return r
}

// createAs checks CREATE TABLE AS, SELECT INTO and CREATE MATERIALIZED VIEW: a table
// is a copy (refused when it would hold masked values under unmasked names); a
// materialized view keeps its definition, so its columns stay masked.
func (a *analyzer) createAs(into *pg.IntoClause, r *result, matview bool, define func(func(*lineageState))) {
	if into == nil || into.Rel == nil || r == nil {
		return
	}
	rel := into.Rel
	out := renameCols(r, into.ColNames)
	if !matview {
		for _, it := range out.items {
			for _, c := range it.cols {
				if a.copyRefused(c.t) && !a.masks.source(rel.Schemaname, rel.Relname, c.name) {
					a.writeCheck(&rte{}, rel.Relname, c.name, c.t)
				}
			}
			if it.open && a.copyRefused(it.openT) {
				a.writeCheck(&rte{}, rel.Relname, "?", it.openT)
			}
		}
	}
	a.pend(rel.Schemaname, rel.Relname, out, define)
}

// pend records a relation the statement creates, for statements that follow it before
// the side connection can see it.
func (a *analyzer) pend(schema, name string, r *result, define func(func(*lineageState))) {
	p := &pendingRel{schema: schema, name: name}
	for _, it := range r.items {
		p.cols = append(p.cols, it.cols...)
		if it.open {
			p.open = true
			p.openT.add(it.openT)
		}
	}
	define(func(st *lineageState) {
		st.mu.Lock()
		defer st.mu.Unlock()
		st.pending[name] = append(st.pending[name], p)
		st.gen++
	})
}

func (a *analyzer) createView(v *pg.ViewStmt, r *result, define func(func(*lineageState))) {
	if v.View == nil || r == nil {
		return
	}
	r = renameCols(r, v.Aliases)
	for _, it := range r.items { // the view's own masks apply to its columns too
		for i := range it.cols {
			if a.masks.source(v.View.Schemaname, v.View.Relname, it.cols[i].name) {
				it.cols[i].t.masked = true
			}
		}
	}
	a.pend(v.View.Schemaname, v.View.Relname, r, define)
}

func (a *analyzer) createTable(c *pg.CreateStmt, define func(func(*lineageState))) {
	if c.Relation == nil {
		return
	}
	r := &result{}
	own := &rte{alias: c.Relation.Relname}
	for _, el := range c.TableElts {
		if cd := el.GetColumnDef(); cd != nil {
			col := outCol{name: cd.Colname, t: taint{masked: a.masks.source(c.Relation.Schemaname, c.Relation.Relname, cd.Colname)}}
			r.add(col)
			own.cols = append(own.cols, col)
		}
	}
	// A default or generation expression computed from masked values (get_name(id))
	// would store them under this table's names.
	for _, el := range c.TableElts {
		if cd := el.GetColumnDef(); cd != nil {
			a.columnExprs(cd, own, c.Relation.Schemaname, c.Relation.Relname)
		}
	}
	if len(c.InhRelations) > 0 || c.Partbound != nil || c.OfTypename != nil || hasLike(c.TableElts) {
		r.items = append(r.items, resultItem{open: true}) // columns from elsewhere; the table is new and empty
	}
	a.pend(c.Relation.Schemaname, c.Relation.Relname, r, define)
}

func hasLike(els []*pg.Node) bool {
	for _, el := range els {
		if el.GetTableLikeClause() != nil {
			return true
		}
	}
	return false
}

// alterTable refuses a generated column computed from masked columns under an unmasked
// name.
func (a *analyzer) alterTable(s *pg.AlterTableStmt) {
	if s.Relation == nil {
		return
	}
	// Any ALTER TABLE may report a row: a new constraint's violation, a type change's
	// conversion error ("invalid input syntax for type integer: "Ada Lovelace"").
	target := a.targetRel(s.Relation)
	for _, c := range s.Cmds {
		cmd := c.GetAlterTableCmd()
		if cmd == nil {
			continue
		}
		var expr *pg.Node
		col := cmd.Name
		switch cmd.Subtype {
		case pg.AlterTableType_AT_AddColumn:
			if cd := cmd.Def.GetColumnDef(); cd != nil {
				a.columnExprs(cd, target, s.Relation.Schemaname, s.Relation.Relname)
			}
			continue
		case pg.AlterTableType_AT_SetExpression, pg.AlterTableType_AT_ColumnDefault:
			expr = cmd.Def
		case pg.AlterTableType_AT_AlterColumnType:
			// ALTER COLUMN c TYPE t USING expr: every row's c becomes expr.
			if cd := cmd.Def.GetColumnDef(); cd != nil {
				expr = cd.RawDefault
			}
		}
		if expr == nil {
			continue
		}
		a.storedExpr(expr, target, s.Relation.Schemaname, s.Relation.Relname, col)
	}
}

// columnExprs checks a column definition's default and generation expressions.
func (a *analyzer) columnExprs(cd *pg.ColumnDef, table *rte, schema, rel string) {
	for _, cn := range cd.Constraints {
		if con := cn.GetConstraint(); con != nil && (con.Contype == pg.ConstrType_CONSTR_GENERATED || con.Contype == pg.ConstrType_CONSTR_DEFAULT) {
			a.storedExpr(con.RawExpr, table, schema, rel, cd.Colname)
		}
	}
}

// storedExpr refuses an expression whose values will be stored in column col (a
// default, a generated column) when they derive from masked columns and col is not
// masked itself.
func (a *analyzer) storedExpr(expr *pg.Node, table *rte, schema, rel, col string) {
	sc := &scope{}
	sc.addFrom(table)
	t := a.expr(expr, sc)
	a.read(t)
	if t.masked && !a.masks.source(schema, rel, col) {
		a.writeCheck(&rte{}, rel, col, t)
	}
}

// rename refuses renaming a masked column, or a relation with masked columns, to a
// name its masks would no longer cover.
func (a *analyzer) rename(s *pg.RenameStmt) {
	if s.Relation == nil {
		return
	}
	switch s.RenameType {
	case pg.ObjectType_OBJECT_COLUMN:
		for _, r := range a.candidates(s.Relation) {
			if a.columnTaint(r, s.Subname).masked && !a.columnTaint(&relInfo{Schema: r.Schema, Name: r.Name, Ancestors: r.Ancestors, Descendants: r.Descendants}, s.Newname).masked {
				a.setLeak("renaming masked column %s.%s to %s would unmask it", r.Name, s.Subname, s.Newname)
			}
		}
	case pg.ObjectType_OBJECT_TABLE, pg.ObjectType_OBJECT_VIEW, pg.ObjectType_OBJECT_MATVIEW, pg.ObjectType_OBJECT_FOREIGN_TABLE:
		for _, r := range a.candidates(s.Relation) {
			a.moveCheck(r, r.Schema, s.Newname)
		}
	}
}

func (a *analyzer) setSchema(s *pg.AlterObjectSchemaStmt) {
	if s.Relation == nil {
		return
	}
	for _, r := range a.candidates(s.Relation) {
		a.moveCheck(r, s.Newschema, r.Name)
	}
}

// moveCheck refuses giving a relation a name under which its masked columns would not
// be masked.
func (a *analyzer) moveCheck(r *relInfo, schema, name string) {
	moved := &relInfo{Schema: schema, Name: name, Ancestors: r.Ancestors, Descendants: r.Descendants}
	for _, c := range r.Cols {
		if c != "" && a.columnTaint(r, c).masked && !a.columnTaint(moved, c).masked {
			a.setLeak("renaming %s.%s to %s.%s would unmask its column %s", r.Schema, r.Name, schema, name, c)
		}
	}
}

func (a *analyzer) candidates(rv *pg.RangeVar) []*relInfo {
	rels, err := a.cat.relations(a.ctx, rv.Schemaname, []string{rv.Relname})
	if err != nil {
		a.read(unknownTaint("%v", err))
		if a.masks.blockUnknowable() {
			a.setLeak("the catalog cannot be read: %v", err)
		}
		return nil
	}
	return rels
}

// rule analyses a rule's actions with NEW and OLD as rows of its relation.
func (a *analyzer) rule(s *pg.RuleStmt) {
	if s.Relation == nil {
		return
	}
	rel := a.targetRel(s.Relation)
	sc := &scope{}
	for _, alias := range []string{"new", "old"} {
		e := *rel
		e.alias = alias
		e.members = nil
		sc.addFrom(&e)
	}
	a.read(a.expr(s.WhereClause, sc))
	for _, act := range s.Actions {
		a.statement(act, sc, nil)
	}
}

// trigger refuses a trigger on a relation with masked columns whose function writes:
// it would see every row (NEW, OLD) and could copy it.
func (a *analyzer) trigger(s *pg.CreateTrigStmt) {
	if s.Relation == nil {
		return
	}
	masked := false
	for _, r := range a.candidates(s.Relation) {
		for _, c := range r.Cols {
			if c != "" && a.columnTaint(r, c).masked {
				masked = true
			}
		}
	}
	if !masked {
		return
	}
	names := fieldNames(s.Funcname)
	if len(names) == 0 {
		return
	}
	fns, err := a.cat.functions(a.ctx, []string{names[len(names)-1]})
	if err != nil {
		a.setLeak("the catalog cannot be read: %v", err)
		return
	}
	if len(fns) == 0 {
		a.setLeak("trigger function %s is not in the catalog yet, so what it does with the rows of a table with masked columns cannot be known", names[len(names)-1])
	}
	for _, f := range fns {
		if builtinSchemas[f.Schema] {
			continue
		}
		if f.Def == "" {
			a.setLeak("trigger function %s.%s on a table with masked columns is in language %s, which the bastion cannot read", f.Schema, f.Name, f.Lang)
			continue
		}
		sts, err := Classify(f.Def)
		if err != nil || len(sts) != 1 {
			a.setLeak("the body of trigger function %s.%s cannot be parsed", f.Schema, f.Name)
			continue
		}
		writes := a.bodyWrites(sts[0])
		if writes {
			a.setLeak("trigger function %s.%s writes, and a trigger on a table with masked columns sees them: it could copy them where no mask follows", f.Schema, f.Name)
		}
	}
}
