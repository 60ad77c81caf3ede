package pgproxy

import (
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Table rules follow views. A rule scoped to a table matches the relations a statement
// names; PostgreSQL turns a write to an auto-updatable view into a write to the view's
// base table, so "DELETE FROM v" deletes from the table v reads, which the statement
// does not name. Before Judge sees a statement that writes (INSERT, UPDATE, DELETE,
// MERGE, TRUNCATE, COPY FROM, in the statement, its CTEs or its bodies), the proxy asks
// the catalog, over its side connection, what each written relation is; for a view it
// adds the relations the view reads, through views of views, to Statement.Tables, so a
// rule naming the base table matches the write; likewise a written table's partitions and
// inheritance children, the tables its foreign keys' cascading actions write (and, for
// TRUNCATE ... CASCADE, every referencing table), and what a DROP TABLE drops with it. Where that cannot be known the
// statement is made unknowable (the rules' unknowable option applies):
//   - the catalog cannot be read;
//   - a written relation, or a relation a written view reads, has rewrite rules (ON
//     INSERT/UPDATE/DELETE ... DO INSTEAD/ALSO) or, for a view, INSTEAD OF triggers:
//     they write wherever their definitions say;
//   - a written relation is not in the catalog and the session did not create a table
//     of that name (a view created by a function, or by another session just now);
//   - the session created or changed a view, rule or trigger (or renamed or moved a
//     relation) in the same message or in a transaction still open: the side connection
//     sees committed state only, so it cannot tell what the written name now is;
//   - an SQL EXECUTE of a prepared statement that writes, prepared before view DDL of
//     the session (the server analyses it again: the name may now be a view). An
//     Execute (extended protocol) of a portal bound from such a statement is judged
//     again, following views afresh.

// viewGuard is the session's state for following views.
type viewGuard struct {
	mu sync.Mutex
	// rfqSent counts the messages enqueued that the server answers with ReadyForQuery
	// (Query, Sync, FunctionCall); rfqSeen the ReadyForQuery messages received.
	rfqSent, rfqSeen uint64
	// ddlUntil, when not 0, is the ordinal of the ReadyForQuery after which the view DDL
	// judged last has been run: the first idle ('I') ReadyForQuery at or after it means
	// it was committed or rolled back, and the catalog shows the result.
	ddlUntil uint64
	// created are the names of tables the session created (CREATE TABLE, SELECT INTO,
	// CREATE TABLE AS): a write to one of them before it is committed is not to a view.
	created map[string]bool
	// epoch counts the view DDL judged in the session.
	epoch uint64
	// prepared are the statements prepared (Parse, SQL PREPARE) by name, portals the
	// statement each portal was bound from.
	prepared map[string]*prepInfo
	portals  map[string]string
	// refollowing is set while a prepared statement is followed again for its
	// execution: that following notes nothing (names created, view DDL, statements
	// prepared), since the statement does not run again as written.
	refollowing bool
}

// prepInfo is a prepared statement as far as views go.
type prepInfo struct {
	epoch  uint64 // viewGuard.epoch when it was judged
	writes bool   // it writes to a relation
	ddl    bool   // it creates or changes a view, rule or trigger
	st     Statement
}

// maxCreatedNames bounds viewGuard.created.
const maxCreatedNames = 4096

// sentReady notes an enqueued message that the server answers with ReadyForQuery.
// Called with s.qmu held (enqueue).
func (g *viewGuard) sentReady() {
	g.mu.Lock()
	g.rfqSent++
	g.mu.Unlock()
}

// ready notes a ReadyForQuery with status.
func (g *viewGuard) ready(status byte) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.rfqSeen++
	if status == 'I' && g.ddlUntil != 0 && g.rfqSeen >= g.ddlUntil {
		g.ddlUntil = 0
	}
}

// viewDDL notes view DDL judged now: it runs before the next ReadyForQuery the
// session asks for.
func (g *viewGuard) viewDDL() {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.ddlUntil = g.rfqSent + 1
	g.epoch++
}

func (g *viewGuard) ddlPending() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.ddlUntil != 0
}

func (g *viewGuard) noteCreated(names []string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.created == nil {
		g.created = map[string]bool{}
	}
	for _, n := range names {
		if len(g.created) < maxCreatedNames {
			g.created[n] = true
		}
	}
}

func (g *viewGuard) wasCreated(name string) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.created[name]
}

// notePrepared records a statement prepared as name (Parse), judged now.
func (g *viewGuard) notePrepared(name string, runs []*stmtRun) {
	info := &prepInfo{}
	for _, r := range runs {
		info.ddl = info.ddl || hasViewDDL(&r.st)
		info.writes = info.writes || writesTo(&r.st)
		if len(runs) == 1 {
			info.st = r.st
		}
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	info.epoch = g.epoch
	if g.prepared == nil {
		g.prepared = map[string]*prepInfo{}
	}
	g.prepared[name] = info
}

// bound notes a Bind of statement stmt to portal: DDL in it runs in this transaction.
func (g *viewGuard) bound(portal, stmt string) {
	g.mu.Lock()
	if g.portals == nil {
		g.portals = map[string]string{}
	}
	g.portals[portal] = stmt
	info := g.prepared[stmt]
	g.mu.Unlock()
	if info != nil && info.ddl {
		g.viewDDL()
	}
}

// closedPortal forgets a portal (Close).
func (g *viewGuard) closedPortal(portal string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.portals, portal)
}

// staleExecute returns, for an Execute of portal, the statement it was bound from when
// that writes and was judged before view DDL of this session: the server analyses it
// again, and a name it writes to may now be a view the judgement did not follow. The
// statement has no SQL when it is not known (then it is refused).
//
// A write judged after the session's last view DDL is returned too, with stale false:
// another session (through this bastion or not) may since have made a name it writes a
// view, and the server, analysing the statement again, writes that view's tables; the
// caller follows its views afresh (refollowChanged).
func (g *viewGuard) staleExecute(portal string) (st *Statement, stale bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	stmt, ok := g.portals[portal]
	if !ok {
		return nil, false
	}
	info := g.prepared[stmt]
	if info == nil || !info.writes {
		return nil, false
	}
	if info.epoch == g.epoch && info.st.SQL == "" {
		return nil, false
	}
	c := info.st
	c.Tables = slices.Clone(c.Tables)
	c.Body = slices.Clone(c.Body)
	return &c, info.epoch != g.epoch
}

// preparedStatement returns a copy of the write prepared as name (Parse or SQL
// PREPARE), or nil.
func (g *viewGuard) preparedStatement(name string) *Statement {
	g.mu.Lock()
	defer g.mu.Unlock()
	info := g.prepared[name]
	if info == nil || !info.writes || info.st.SQL == "" {
		return nil
	}
	c := info.st
	c.Tables = slices.Clone(c.Tables)
	c.Body = slices.Clone(c.Body)
	return &c
}

// refollow follows again the views of st, a prepared write, as the catalog stands now,
// without noting anything, and reports whether it now reaches a table it did not, or
// cannot be known where it could.
func (s *session) refollow(st *Statement) (now *Statement, changed bool) {
	c := *st
	c.Tables = slices.Clone(st.Tables)
	c.Body = slices.Clone(st.Body)
	s.views.mu.Lock()
	s.views.refollowing = true
	s.views.mu.Unlock()
	s.followViews(&c)
	s.views.mu.Lock()
	s.views.refollowing = false
	s.views.mu.Unlock()
	for _, t := range c.Tables {
		if !contains(st.Tables, t) {
			changed = true
		}
	}
	if c.Unknowable != "" && st.Unknowable == "" {
		changed = true
	}
	return &c, changed
}

func (g *viewGuard) isRefollowing() bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.refollowing
}

// rejudged notes that the statement portal was bound from was judged again now.
func (g *viewGuard) rejudged(portal string) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if info := g.prepared[g.portals[portal]]; info != nil {
		info.epoch = g.epoch
	}
}

// rejudgeExecution judges again, following views afresh, a write prepared before view
// DDL of the session (staleExecute), at its Execute.
func (s *session) rejudgeExecution(portal string, st *Statement) *refusal {
	if st.SQL == "" {
		return &refusal{code: "42501", rule: "pgproxy:views", outcome: OutcomeBlocked,
			message: "bastion: statement refused: it writes to relations and was prepared before a view, rule or trigger was created or changed in this session; prepare it again"}
	}
	if s.uw.Buffered() > 0 { // whatever is already forwarded must not wait on a human
		if err := s.uw.Flush(); err != nil {
			return &refusal{code: "08006", message: "bastion: upstream connection lost", outcome: OutcomeBlocked}
		}
	}
	st.Protocol = "execute"
	v := s.callJudge(st)
	switch v.Action {
	case Allow:
	case Hold:
		if _, ref := s.hold(st, v); ref != nil {
			return ref
		}
	default:
		return blockRefusal(v, OutcomeBlocked)
	}
	s.views.rejudged(portal)
	return nil
}

// staleSQLExecute reports, for an SQL EXECUTE of name, whether the statement writes
// and was prepared before view DDL of this session, and whether it is view DDL.
func (g *viewGuard) staleSQLExecute(name string) (stale, ddl bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	info := g.prepared[name]
	if info == nil {
		return false, false
	}
	return info.writes && info.epoch != g.epoch, info.ddl
}

// noteSQLPrepared records statements prepared with SQL PREPARE, judged now.
func (g *viewGuard) noteSQLPrepared(names []string, writes bool, st *Statement) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.prepared == nil {
		g.prepared = map[string]*prepInfo{}
	}
	for _, n := range names {
		info := &prepInfo{epoch: g.epoch, writes: writes}
		if len(names) == 1 && st != nil {
			info.st = *st
			info.st.Tables = slices.Clone(st.Tables)
			info.st.Body = slices.Clone(st.Body)
		}
		g.prepared[n] = info
	}
}

func strconvQuote(s string) string { return fmt.Sprintf("%q", s) }

// writesTo reports whether st (or a statement of its bodies) writes to a relation.
func writesTo(st *Statement) bool {
	if !mayWrite(st) {
		return false
	}
	w, err := scanWrites(st.SQL)
	if err != nil || len(w.targets) > 0 {
		return true
	}
	for i := range st.Body {
		if writesTo(&st.Body[i]) {
			return true
		}
	}
	return false
}

// writeKinds are the kinds of statements that may write to a relation, or change
// what a relation name means.
var writeKinds = map[string]bool{
	"insert": true, "update": true, "delete": true, "merge": true, "truncate": true, "copy_from": true,
	"create_view": true, "create_rule": true, "create_trigger": true, "rename": true, "alter": true,
	"create_table": true, "select_into": true, "create_extension": true, "create_schema": true,
	"prepare": true, "execute": true, "drop_table": true,
}

func mayWrite(st *Statement) bool {
	for _, k := range st.Kinds {
		if writeKinds[k] {
			return true
		}
	}
	return false
}

// hasViewDDL reports whether st (or a statement of its bodies) creates or changes a
// view, rule or trigger, or renames or moves a relation.
func hasViewDDL(st *Statement) bool {
	if !mayWrite(st) {
		return false
	}
	w, err := scanWrites(st.SQL)
	if err != nil || w.viewDDL {
		return true
	}
	for i := range st.Body {
		if hasViewDDL(&st.Body[i]) {
			return true
		}
	}
	return false
}

// writes is what one statement's text writes to, as far as views go.
type writes struct {
	targets  []string // relation names written (relname as the parser folded it)
	cascade  []string // of targets, those truncated with CASCADE (every referencing table too)
	dropped  []string // of targets, those only dropped (DROP TABLE: partitions, children go too)
	created  []string // tables created
	viewDDL  bool     // creates or changes a view, rule or trigger, renames or moves a relation
	prepares []string // SQL PREPARE names
	// renames are relations that come to stand under a name (a view created, a
	// relation renamed or moved): code written before against that name (a function
	// body's DELETE FROM x, judged when x was a table) now writes through them.
	renames  []nameSource
	executes []string // SQL EXECUTE names
}

// nameSource is a relation (source) that a name now stands for.
type nameSource struct{ name, source string }

// scanWrites parses sql and collects its write targets.
func scanWrites(sql string) (writes, error) {
	var w writes
	res, err := pgParse(sql)
	if err != nil {
		return w, err
	}
	for _, raw := range res.Stmts {
		if raw.Stmt != nil {
			w.walk(raw.Stmt.ProtoReflect())
		}
	}
	return w, nil
}

func (w *writes) target(rv *pg.RangeVar) {
	if rv == nil || rv.Relname == "" {
		return
	}
	if i := slices.Index(w.dropped, rv.Relname); i >= 0 { // written as well as dropped
		w.dropped = slices.Delete(w.dropped, i, i+1)
	}
	if !contains(w.targets, rv.Relname) {
		w.targets = append(w.targets, rv.Relname)
	}
}

func (w *writes) walk(m protoreflect.Message) {
	switch n := m.Interface().(type) {
	case *pg.InsertStmt:
		w.target(n.Relation)
	case *pg.UpdateStmt:
		w.target(n.Relation)
	case *pg.DeleteStmt:
		w.target(n.Relation)
	case *pg.MergeStmt:
		w.target(n.Relation)
	case *pg.TruncateStmt:
		for _, r := range n.Relations {
			rv := r.GetRangeVar()
			w.target(rv)
			if rv != nil && n.Behavior == pg.DropBehavior_DROP_CASCADE && !contains(w.cascade, rv.Relname) {
				w.cascade = append(w.cascade, rv.Relname)
			}
		}
	case *pg.DropStmt:
		// DROP TABLE drops a partitioned table's partitions, and with CASCADE the
		// inheritance children: tables the statement does not name.
		if n.RemoveType == pg.ObjectType_OBJECT_TABLE {
			for _, o := range n.Objects {
				if l := o.GetList(); l != nil && len(l.Items) > 0 {
					if name := l.Items[len(l.Items)-1].GetString_(); name != nil && name.Sval != "" {
						if !contains(w.targets, name.Sval) {
							w.targets = append(w.targets, name.Sval)
							w.dropped = append(w.dropped, name.Sval)
						}
					}
				}
			}
		}
	case *pg.AlterTableStmt:
		// Attaching a partition, adding a parent or a foreign key changes what a write
		// to (or drop of) another table reaches, as view DDL does.
		for _, cmd := range n.Cmds {
			if ac := cmd.GetAlterTableCmd(); ac != nil {
				switch ac.Subtype {
				case pg.AlterTableType_AT_AttachPartition, pg.AlterTableType_AT_AddInherit,
					pg.AlterTableType_AT_AlterConstraint:
					w.viewDDL = true
				case pg.AlterTableType_AT_AddConstraint:
					if con := ac.Def.GetConstraint(); con == nil || con.Contype == pg.ConstrType_CONSTR_FOREIGN {
						w.viewDDL = true
					}
				}
			}
		}
	case *pg.CopyStmt:
		if n.IsFrom {
			w.target(n.Relation)
		}
	case *pg.ViewStmt, *pg.RuleStmt, *pg.CreateTrigStmt, *pg.RenameStmt, *pg.AlterObjectSchemaStmt,
		*pg.CreateExtensionStmt, *pg.AlterExtensionStmt, *pg.AlterExtensionContentsStmt:
		w.viewDDL = true
		switch n := n.(type) {
		case *pg.ViewStmt:
			if sel := n.Query.GetSelectStmt(); n.View != nil && sel != nil && len(sel.FromClause) == 1 {
				if rv := sel.FromClause[0].GetRangeVar(); rv != nil { // may be auto-updatable
					w.renames = append(w.renames, nameSource{n.View.Relname, rv.Relname})
				}
			}
		case *pg.RenameStmt:
			if relationTypes[n.RenameType] && n.Relation != nil {
				w.renames = append(w.renames, nameSource{n.Newname, n.Relation.Relname})
			}
		case *pg.RuleStmt:
			// CREATE RULE "_RETURN" AS ON SELECT TO x DO INSTEAD SELECT ... turns the
			// table x into a view (PostgreSQL 15 and before).
			if n.Event == pg.CmdType_CMD_SELECT && n.Relation != nil {
				for _, a := range n.Actions {
					if sel := a.GetSelectStmt(); sel != nil && len(sel.FromClause) == 1 {
						if rv := sel.FromClause[0].GetRangeVar(); rv != nil {
							w.renames = append(w.renames, nameSource{n.Relation.Relname, rv.Relname})
						}
					}
				}
			}
		case *pg.AlterObjectSchemaStmt:
			if relationTypes[n.ObjectType] && n.Relation != nil {
				w.renames = append(w.renames, nameSource{n.Relation.Relname, n.Relation.Relname})
			}
		}
	case *pg.PrepareStmt:
		w.prepares = append(w.prepares, n.Name)
	case *pg.ExecuteStmt:
		w.executes = append(w.executes, n.Name)
	case *pg.CreateStmt:
		if n.Relation != nil {
			w.created = append(w.created, n.Relation.Relname)
		}
	case *pg.IntoClause:
		if n.Rel != nil {
			w.created = append(w.created, n.Rel.Relname)
		}
	}
	eachChild(m, func(c protoreflect.Message) bool {
		w.walk(c)
		return true
	})
}

// followViews adds to st (and its body statements) the relations behind the views it
// writes to, or makes it unknowable where they cannot be known. Called before Judge.
func (s *session) followViews(st *Statement) {
	if !mayWrite(st) {
		return
	}
	var extra []string
	s.followOne(st, st, &extra)
	st.Tables = slices.Clip(st.Tables)
	for _, t := range extra {
		if !contains(st.Tables, t) {
			st.Tables = append(st.Tables, t)
		}
	}
}

// followOne follows the views one statement (top, or one of its bodies) writes to;
// the tables found are added to it and to *extra (for top).
func (s *session) followOne(top, st *Statement, extra *[]string) {
	unknown := func(why string) {
		if st.Unknowable == "" {
			st.Unknowable = why
		}
		if top.Unknowable == "" {
			top.Unknowable = why
		}
	}
	// st's slices may share arrays with statements kept elsewhere (prepared, held):
	// what is added goes into copies.
	st.Tables = slices.Clip(st.Tables)
	st.Body = slices.Clone(st.Body)
	for i := range st.Body {
		s.followOne(top, &st.Body[i], extra)
	}
	if !mayWrite(st) {
		return
	}
	w, err := scanWrites(st.SQL)
	if err != nil {
		unknown("bastion cannot tell which relations it writes: " + parseErrMessage(err))
		return
	}
	refollowing := s.views.isRefollowing()
	if !refollowing {
		s.views.noteCreated(w.created)
	}
	pending := s.views.ddlPending() // DDL before this statement
	ddl := w.viewDDL
	for _, name := range w.executes {
		if refollowing {
			break
		}
		stale, execDDL := s.views.staleSQLExecute(name)
		ddl = ddl || execDDL
		if stale {
			unknown("it executes prepared statement " + strconvQuote(name) + ", which writes to relations and was prepared before a view, rule or trigger was created or changed in this session")
		}
		// What the prepared write reaches now: the server analyses it again when a
		// relation it names changed, whichever session changed it. Unchanged, its
		// judgement (and approval, held.go) at PREPARE stands; changed, the EXECUTE is
		// judged as the write it now is.
		if p := s.views.preparedStatement(name); p != nil {
			now, changed := s.refollow(p)
			if !changed {
				continue
			}
			for _, k := range now.Kinds {
				if k != "prepare" && !contains(st.Kinds, k) {
					st.Kinds = append(slices.Clip(st.Kinds), k)
				}
				if k != "prepare" && !contains(top.Kinds, k) {
					top.Kinds = append(slices.Clip(top.Kinds), k)
				}
			}
			for _, t := range now.Tables {
				if !contains(st.Tables, t) {
					st.Tables = append(st.Tables, t)
				}
				if !contains(*extra, t) {
					*extra = append(*extra, t)
				}
			}
			if now.Unknowable != "" {
				unknown("it executes prepared statement " + strconvQuote(name) + ": " + now.Unknowable)
			}
		}
	}
	if ddl && !refollowing {
		defer s.views.viewDDL()
	}
	if len(w.prepares) > 0 && !refollowing {
		defer s.views.noteSQLPrepared(w.prepares, len(w.targets) > 0, st)
	}
	if len(w.renames) > 0 {
		s.followRenames(top, st, w.renames, extra, unknown)
	}
	if len(w.targets) == 0 {
		return
	}
	if pending {
		unknown("it writes to " + strings.Join(w.targets, ", ") + " after a view, rule or trigger was created or changed in the same transaction or message, which the catalog does not show yet")
		return
	}
	rels, err := s.catalog.writeTargets(s.ctx, w.targets, w.cascade)
	if err != nil {
		unknown("bastion cannot tell whether " + strings.Join(w.targets, ", ") + " is a view: " + err.Error())
		return
	}
	known := map[string]bool{}
	var add []string
	for _, r := range rels {
		if !r.Base {
			known[r.Root] = true
		}
		if (r.Rules || r.Triggers) && !contains(w.dropped, r.Root) { // a DROP fires no rule
			what := "rewrite rules"
			if r.Triggers {
				what = "INSTEAD OF triggers"
			}
			unknown(fmt.Sprintf("it writes to %s, and %s.%s has %s, which write where their definitions say", r.Root, r.Schema, r.Name, what))
		}
		if r.Kind == "f" && !contains(w.dropped, r.Root) {
			unknown(fmt.Sprintf("it writes to %s, and %s.%s is a foreign table, whose rows are wherever its server and options say (this server's tables too)", r.Root, r.Schema, r.Name))
		}
		if r.Base {
			if q := r.Schema + "." + r.Name; !contains(add, q) {
				add = append(add, q)
			}
		}
	}
	for _, t := range w.targets {
		// A name only dropped that the catalog does not know drops nothing (DROP TABLE
		// IF EXISTS), or a table created in this transaction: partitions attached to it
		// since, or children, would make the ddlPending check above apply.
		if !known[t] && !s.views.wasCreated(t) && !contains(w.dropped, t) {
			unknown(fmt.Sprintf("it writes to %s, which is not in the catalog (a relation created in this transaction, or just now, could be a view)", t))
		}
	}
	sort.Strings(add)
	for _, t := range add {
		if !contains(st.Tables, t) {
			st.Tables = append(st.Tables, t)
		}
		if !contains(*extra, t) {
			*extra = append(*extra, t)
		}
	}
}

// followRenames handles relations that come to stand under a name: when a function
// body (LANGUAGE sql or plpgsql, judged when it was written, not when called) names it,
// writes the body makes to the name reach the relation and what it stands for, so the
// statement is a redirect_writes of those tables (bastion/policy: a rule on them that
// lists writes matches it).
func (s *session) followRenames(top, st *Statement, renames []nameSource, extra *[]string, unknown func(string)) {
	names := make([]string, 0, len(renames))
	for _, r := range renames {
		names = append(names, r.name)
	}
	used, err := s.catalog.namedInBodies(s.ctx, names)
	if err != nil {
		unknown("bastion cannot tell whether a function writes to " + strings.Join(names, ", ") + ": " + err.Error())
		return
	}
	var sources []string
	for _, r := range renames {
		if used[r.name] && !contains(sources, r.source) {
			sources = append(sources, r.source)
		}
	}
	if len(sources) == 0 {
		return
	}
	add := func(st *Statement, t string) {
		if !contains(st.Tables, t) {
			st.Tables = append(st.Tables, t)
		}
		if !contains(st.Kinds, KindRedirectWrites) {
			st.Kinds = append(slices.Clip(st.Kinds), KindRedirectWrites)
		}
	}
	rels, err := s.catalog.writeTargets(s.ctx, sources, nil)
	if err != nil {
		unknown("bastion cannot tell what " + strings.Join(sources, ", ") + " stands for: " + err.Error())
		return
	}
	for _, t := range sources {
		add(st, t)
		add(top, t)
	}
	for _, r := range rels {
		q := r.Schema + "." + r.Name
		add(st, q)
		add(top, q)
		if !contains(*extra, q) {
			*extra = append(*extra, q)
		}
	}
}

// namedInBodiesSQL reports, for each name, whether the body text of a LANGUAGE sql or
// plpgsql function (not the system's own) contains it as a word, in any case (quoted
// or not, in a string or a comment: an over-approximation).
const namedInBodiesSQL = `SELECT coalesce(json_object_agg(n, EXISTS (
    SELECT 1 FROM pg_proc p JOIN pg_language l ON l.oid = p.prolang
     WHERE p.oid >= 16384 AND l.lanname IN ('sql', 'plpgsql')
       AND p.prosrc ~* ('(^|[^[:alnum:]_$])' || regexp_replace(n, '([^[:alnum:]_])', '\\\1', 'g') || '($|[^[:alnum:]_$])'))), '{}')
  FROM json_array_elements_text($1::json) n`

// namedInBodies asks the catalog which names a function body contains.
func (c *sideCatalog) namedInBodies(ctx context.Context, names []string) (map[string]bool, error) {
	if c == nil {
		return nil, fmt.Errorf("no catalog connection")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	arg, _ := json.Marshal(names)
	b, err := c.roundTrip(ctx, namedInBodiesSQL, string(arg))
	if err != nil {
		return nil, err
	}
	got := map[string]bool{}
	if err := json.Unmarshal(b, &got); err != nil {
		return nil, fmt.Errorf("reading the catalog: %w", err)
	}
	return got, nil
}

// writeRel is a relation a statement writes to (Base false: a relation of the name
// written) or one a written view reads or a child of a written table (Base true),
// recursively.
type writeRel struct {
	Root     string `json:"root"` // the name written
	Schema   string `json:"schema"`
	Name     string `json:"name"`
	Kind     string `json:"kind"`
	Base     bool   `json:"base"`
	Rules    bool   `json:"rules"`    // it has rewrite rules other than a view's SELECT rule
	Triggers bool   `json:"triggers"` // a view with (INSTEAD OF) triggers
}

// writeTargetsSQL resolves relation names, in every schema (the session's search_path
// is not known, and pg_temp may shadow any schema), to the relations of that name and,
// recursively, for views to every relation their SELECT rule depends on, for tables to
// their partitions and inheritance children (a write to a parent writes them), and to
// the tables whose foreign keys reference them with an action that writes the
// referencing rows (ON DELETE or ON UPDATE CASCADE, SET NULL, SET DEFAULT) or, for a
// name in $2 (TRUNCATE ... CASCADE), with any action. (Foreign keys are found through
// pg_depend, whose index covers the referenced table; pg_constraint has none on
// confrelid, and this runs at every write.)
const writeTargetsSQL = `WITH RECURSIVE t(oid, root, depth) AS (
    SELECT c.oid, c.relname::text, 0 FROM pg_class c
     WHERE c.relname IN (SELECT json_array_elements_text($1::json)) AND c.relkind IN ('r', 'p', 'v', 'm', 'f')
    UNION
    SELECT x.oid, t.root, t.depth + 1 FROM t, LATERAL (
        SELECT d.refobjid AS oid
          FROM pg_class v JOIN pg_rewrite r ON r.ev_class = v.oid AND r.ev_type = '1'
          JOIN pg_depend d ON d.classid = 'pg_rewrite'::regclass AND d.objid = r.oid
           AND d.refclassid = 'pg_class'::regclass AND d.refobjid <> v.oid
         WHERE v.oid = t.oid AND v.relkind = 'v'
        UNION
        SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = t.oid
        UNION
        SELECT f.conrelid FROM pg_depend fd JOIN pg_constraint f ON f.oid = fd.objid
         WHERE fd.refclassid = 'pg_class'::regclass AND fd.refobjid = t.oid AND fd.classid = 'pg_constraint'::regclass
           AND f.contype = 'f' AND f.confrelid = t.oid AND (f.confdeltype IN ('c', 'n', 'd')
            OR f.confupdtype IN ('c', 'n', 'd') OR t.root IN (SELECT json_array_elements_text($2::json)))) x
     WHERE t.depth < 32)
SELECT coalesce(json_agg(r), '[]') FROM (
  SELECT DISTINCT t.root, n.nspname AS schema, c.relname AS name, c.relkind::text AS kind, t.depth > 0 AS base,
    EXISTS (SELECT 1 FROM pg_rewrite w WHERE w.ev_class = c.oid AND w.ev_type <> '1') AS rules,
    (c.relkind = 'v' AND EXISTS (SELECT 1 FROM pg_trigger g WHERE g.tgrelid = c.oid AND NOT g.tgisinternal)) AS triggers
  FROM t JOIN pg_class c ON c.oid = t.oid JOIN pg_namespace n ON n.oid = c.relnamespace) r`

// writeTargets asks the catalog about the relations names (written to) stand for. It
// is not cached: another session may have replaced a table by a view. Nothing the
// lineage reads comes from it, so it does not move the catalog's generation (roundTrip,
// not query): a write does not cost the session its lineage memo.
func (c *sideCatalog) writeTargets(ctx context.Context, names, cascade []string) ([]writeRel, error) {
	if c == nil {
		return nil, fmt.Errorf("no catalog connection")
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if cascade == nil {
		cascade = []string{}
	}
	arg, _ := json.Marshal(names)
	arg2, _ := json.Marshal(cascade)
	b, err := c.roundTrip(ctx, writeTargetsSQL, string(arg), string(arg2))
	if err != nil {
		return nil, err
	}
	var got []writeRel
	if err := json.Unmarshal(b, &got); err != nil {
		return nil, fmt.Errorf("reading the catalog: %w", err)
	}
	return got, nil
}
