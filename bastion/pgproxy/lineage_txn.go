package pgproxy

// Definitions the side connection cannot see. The side catalog reads committed
// definitions only, and the analysis of a message's statements runs before any of them
// does. So after a statement that may change a definition the lineage reads (CREATE OR
// REPLACE FUNCTION or VIEW, ALTER … RENAME, CREATE OPERATOR, CAST, TYPE or DOMAIN, a DO
// block, a function whose body may do any of that; see definesKinds), what the catalog
// says may not be what the server will run: `BEGIN; ALTER FUNCTION get_name(int) RENAME
// TO innocent; SELECT innocent(1)` must not be analysed as the committed innocent.
//
// The session is then suspect, from the analysis of that statement (so the rest of its
// own message is suspect too) until the server has answered it and every message sent
// before and with it, and the last ReadyForQuery says the session is outside a
// transaction: by then the change is committed (and visible to the side connection,
// which revalidate compares before the next statement) or rolled back. While suspect,
// every relation's column, function, operator and cast is of unknowable origin: result
// columns are masked (refused with unknowable: block), messages withheld, and a value of
// unknowable origin is not copied where no mask follows (refuseUnknown), since a copy
// could not be judged again; a statement that stores values is refused (what the server
// applies implicitly — a cast, a check — may have been defined in the transaction too):
// commit the schema change first. A change prepared with the extended protocol can run
// again at any Execute, which the frontend does not tie to its statement: the session is
// suspect while the server holds such a statement (from ParseComplete), and after it is
// closed or replaced as after any change, until a later ReadyForQuery says idle.
//
// Counting: ready counts ReadyForQuery messages; at the mark, pendingRFQ is the number
// still owed for messages already sent, so the message being analysed (or one after it)
// is answered once ready exceeds ready+pendingRFQ as they were. Both are read and
// changed under qmu; ready is counted before the answered message leaves the queue, so
// an inconsistent moment errs towards suspect. A later mark only moves the bound on.

// lineageBegin prepares the analysis of one statement: it drops the cached catalog if
// the server's answers changed, lifts a mark whose transaction has ended, and returns
// why the catalog is suspect ("" when it is not).
func (s *session) lineageBegin() string {
	s.catalog.revalidate(s.ctx)
	st := s.lineage
	s.qmu.Lock()
	defer s.qmu.Unlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.suspect != "" && st.lastStatus == 'I' && st.ready > st.suspectNeed {
		st.suspect = ""
	}
	if st.suspect == "" && len(st.definers) > 0 {
		return "a statement prepared with the extended protocol can change definitions whenever it is executed"
	}
	return st.suspect
}

// lineageMark marks the session suspect after the analysis of a statement that may
// change definitions.
func (s *session) lineageMark(stmt *Statement, lin *lineage) {
	why := ""
	switch k := definesKinds(stmt.Kinds); {
	case k != "":
		why = "an earlier statement (" + k + ") changed definitions the bastion cannot see before the transaction ends"
	case stmt.Unknowable != "" || lin != nil && lin.ddl:
		why = "an earlier statement may have changed definitions the bastion cannot see before the transaction ends"
	default:
		return
	}
	s.markSuspect(why, false)
}

// markSuspect makes the session suspect until the server reports it idle after what
// has happened so far. From the frontend (backend false), what is being analysed is not
// queued yet: the messages still owed a ReadyForQuery come before it. From the backend,
// answering the head of the queue, everything before the head has been answered: any
// later ReadyForQuery comes after what happened.
func (s *session) markSuspect(why string, backend bool) {
	st := s.lineage
	s.qmu.Lock()
	defer s.qmu.Unlock()
	st.mu.Lock()
	defer st.mu.Unlock()
	st.suspect = why
	definitionsEpoch.Add(1) // other sessions' catalogs check again (revalidate)
	need := st.ready
	if !backend {
		need += uint64(s.pendingRFQ)
	}
	if need > st.suspectNeed {
		st.suspectNeed = need
	}
}

// lineageParsed notes a statement the server confirmed (ParseComplete), replacing any
// of that name. Backend loop.
func (s *session) lineageParsed(name string, run *stmtRun) {
	if s.lineage == nil {
		return
	}
	// Only a statement that is itself a definition: one that calls a function that may
	// define (or runs dynamic SQL) is marked when bound instead (refreshLineage), or a
	// client's cached SELECT of such a function would keep the session suspect for good.
	defines := run != nil && definesKinds(run.st.Kinds) != ""
	s.lineageClosed(name)
	if defines {
		s.lineage.mu.Lock()
		if s.lineage.definers == nil {
			s.lineage.definers = map[string]bool{}
		}
		s.lineage.definers[name] = true
		s.lineage.mu.Unlock()
	}
}

// lineageClosed notes a statement the server dropped (CloseComplete, or the unnamed
// statement at the end of a simple Query, or replaced by a Parse of that name). One that
// could change definitions may have run in the open transaction: the session stays
// suspect until a later ReadyForQuery says idle. Backend loop.
func (s *session) lineageClosed(name string) {
	if s.lineage == nil {
		return
	}
	s.lineage.mu.Lock()
	was := s.lineage.definers[name]
	delete(s.lineage.definers, name)
	s.lineage.mu.Unlock()
	if was {
		s.markSuspect("a statement prepared with the extended protocol may have changed definitions the bastion cannot see before the transaction ends", true)
	}
}

// lineageReady counts a ReadyForQuery (before its message leaves the queue).
func (s *session) lineageReady(status byte) {
	if s.lineage == nil {
		return
	}
	s.qmu.Lock()
	defer s.qmu.Unlock()
	s.lineage.mu.Lock()
	defer s.lineage.mu.Unlock()
	s.lineage.ready++
	s.lineage.lastStatus = status
	if status == 'I' && (s.lineage.suspect != "" || len(s.lineage.definers) > 0) {
		// A change this session may have made is now committed or rolled back:
		// other sessions' catalogs check again.
		definitionsEpoch.Add(1)
	}
}

// refreshLineage analyses a statement prepared with the extended protocol again when the
// server has bound it (BindComplete: the plan, and the definitions it uses, are fixed;
// the portal's results and messages follow), when what its analysis rested on has
// changed: the
// server analyses a prepared statement again when a definition it uses changes
// (another session's CREATE OR REPLACE, a rename in the open transaction), so the
// lineage from Parse time may be stale. It revalidates the catalog first (one round
// trip on the side connection). Called by the backend loop, which owns run once the
// server confirmed the Parse. An analysis that now finds a copy comes too late to
// refuse (the Execute is on its way): the results are then masked as unknowable and
// the session's log says why; the copy itself is not prevented.
func (s *session) refreshLineage(run *stmtRun) {
	if s.cfg.Masks == nil || run == nil || run.lin == nil || run.st.Protocol != "parse" {
		return
	}
	if run.st.Unknowable != "" || run.lin.ddl {
		// It may change definitions as it runs. Statements the client sent after this
		// Bind and before its BindComplete were analysed unmarked: a known gap.
		s.markSuspect("an earlier statement may have changed definitions the bastion cannot see before the transaction ends", true)
	}
	suspect := s.lineageBegin()
	catGen, _ := s.catalog.generation(false)
	old := run.lin
	if suspect == "" && !old.suspect && old.catGen == catGen && old.stateGen == s.lineage.generation() {
		return
	}
	var lin *lineage
	res, err := pgParse(run.st.SQL)
	if err != nil || len(res.Stmts) != 1 || res.Stmts[0].Stmt == nil {
		t := unknownTaint("the statement cannot be analysed")
		lin = &lineage{out: &result{items: []resultItem{{open: true, openT: t}}}, touched: t, suspect: true}
	} else {
		a := &analyzer{ctx: s.ctx, cat: s.catalog, views: s.catalog, masks: colMasks{s.cfg.Masks},
			state: s.lineage, funcMemo: map[string]funcLineage{}, stmt: &run.st, suspect: suspect}
		lin = a.analyzeStatement(res.Stmts[0].Stmt)
	}
	if lin.leak != "" {
		s.log.Warn("a prepared statement now copies masked values; its results are masked", "why", lin.leak)
		t := unknownTaint("%s", lin.leak)
		lin.out = &result{items: []resultItem{{open: true, openT: t}}}
		lin.touched.add(t)
	}
	run.lin = lin
}
