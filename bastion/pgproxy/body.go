package pgproxy

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// Bodies: the statements of a function, procedure or DO block run later, with the
// privileges of whoever calls it, so they are judged where the body is written. A
// statement's Body lists them, each classified as if sent directly; its own kinds,
// tables and functions include theirs, and it is unknowable when any part of a body is.
//
//   - LANGUAGE sql: the body string is parsed as SQL (a SQL-standard BEGIN ATOMIC or
//     RETURN body is already part of the statement's tree).
//   - LANGUAGE plpgsql, and DO blocks: pg_query's PL/pgSQL parser compiles the body;
//     every SQL statement and expression in it (PLpgSQL_expr: static statements, PERFORM,
//     RETURN QUERY, OPEN ... FOR, FOR ... IN query loops, conditions, assignments,
//     defaults (a record variable's read from the text: pg_query leaves it out), cursor
//     queries, RAISE arguments) is classified. EXECUTE of a constant
//     string is classified as that SQL; EXECUTE of anything else is unknowable.
//   - Other languages (plpython, plperl, C, internal, ...) are unknowable.
//
// A body that does not parse makes the statement unparseable, so it fails closed.

// routineBody classifies the body of CREATE FUNCTION or CREATE PROCEDURE.
func (c *collector) routineBody(n *pg.CreateFunctionStmt) {
	what := "function " + qualifiedName(n.Funcname)
	if n.IsProcedure {
		what = "procedure " + qualifiedName(n.Funcname)
	}
	lang, langSet, as, asSet, err := bodyOptions(n.Options, "as")
	if err != nil {
		c.fail("%s: %v", clean(what), err)
		return
	}
	if n.SqlBody != nil {
		// The body is in the tree, walked with the statement.
		if asSet {
			c.fail("%s has two bodies", clean(what))
		}
		return
	}
	switch {
	case !asSet:
		c.fail("%s has no body", clean(what))
		return
	case !langSet:
		c.fail("%s has no LANGUAGE", clean(what))
		return
	}
	c.constDep = true
	switch lang {
	case "sql":
		if len(as) != 1 {
			c.fail("%s: language sql takes one body", clean(what))
			return
		}
		c.sqlBody(what, as[0], routineVars(n))
	case "plpgsql":
		if len(as) != 1 {
			c.fail("%s: language plpgsql takes one body", clean(what))
			return
		}
		c.plpgsqlBody(what, as[0], routineVars(n))
	case "c":
		c.kind(KindServerProgram)
		c.unknown(fmt.Sprintf("%s is native code (language c), which the bastion cannot inspect", clean(what)))
	default:
		c.unknown(fmt.Sprintf("the body of %s is in language %q, which the bastion cannot inspect", clean(what), clean(lang)))
	}
}

// doBody classifies the body of a DO block.
func (c *collector) doBody(n *pg.DoStmt) {
	lang, langSet, code, codeSet, err := bodyOptions(n.Args, "as")
	if err != nil {
		c.fail("DO block: %v", err)
		return
	}
	if !codeSet || len(code) != 1 {
		c.fail("DO block without code")
		return
	}
	if !langSet {
		lang = "plpgsql"
	}
	c.constDep = true
	if lang != "plpgsql" {
		c.unknown(fmt.Sprintf("the body of a DO block is in language %q, which the bastion cannot inspect", clean(lang)))
		return
	}
	c.plpgsqlBody("DO block", code[0], nil)
}

// bodyOptions reads LANGUAGE and the body option (AS) from a routine's options or a
// DO block's arguments. A repeated option is an error, as PostgreSQL makes it.
func bodyOptions(opts []*pg.Node, bodyName string) (lang string, langSet bool, body []string, bodySet bool, err error) {
	for _, o := range opts {
		de := o.GetDefElem()
		if de == nil {
			continue
		}
		switch de.Defname {
		case "language":
			s := de.Arg.GetString_()
			if langSet || s == nil {
				return "", false, nil, false, errors.New("conflicting or malformed LANGUAGE")
			}
			lang, langSet = s.Sval, true
		case bodyName:
			if bodySet || de.Arg == nil {
				return "", false, nil, false, errors.New("conflicting or malformed body")
			}
			bodySet = true
			if s := de.Arg.GetString_(); s != nil { // DO 'code'
				body = []string{s.Sval}
				continue
			}
			l := de.Arg.GetList()
			if l == nil {
				return "", false, nil, false, errors.New("malformed body")
			}
			for _, it := range l.Items {
				s := it.GetString_()
				if s == nil {
					return "", false, nil, false, errors.New("malformed body")
				}
				body = append(body, s.Sval)
			}
		}
	}
	return lang, langSet, body, bodySet, nil
}

// routineVars are the names a routine's body can use for its parameters: their names
// and the routine's own (f.param).
func routineVars(n *pg.CreateFunctionStmt) map[string]bool {
	vars := map[string]bool{}
	for _, p := range n.Parameters {
		if fp := p.GetFunctionParameter(); fp != nil && fp.Name != "" {
			vars[fp.Name] = true
		}
	}
	if len(n.Funcname) > 0 {
		if s := n.Funcname[len(n.Funcname)-1].GetString_(); s != nil {
			vars[s.Sval] = true
		}
	}
	return vars
}

func withVars(a, b map[string]bool) map[string]bool {
	if len(b) == 0 {
		return a
	}
	out := make(map[string]bool, len(a)+len(b))
	for k := range a {
		out[k] = true
	}
	for k := range b {
		out[k] = true
	}
	return out
}

// sqlBody classifies a body of SQL statements (LANGUAGE sql, or a constant EXECUTE).
func (c *collector) sqlBody(what, sql string, vars map[string]bool) {
	sts, _, err := classify(sql, c.depth+1, vars)
	if errors.Is(err, ErrUnsafeSetting) {
		if c.err == nil {
			c.err = err // kept as is: the refusal says what, not where
		}
		return
	}
	if err != nil {
		msg := strings.TrimPrefix(err.Error(), ErrUnparseable.Error()+": ")
		if strings.HasPrefix(msg, "the body of ") || strings.HasPrefix(msg, "the PL/pgSQL body of ") {
			c.fail("%s", msg) // the innermost body says where
		} else {
			c.fail("the body of %s: %s", clean(what), msg)
		}
		return
	}
	for _, st := range sts {
		c.addBody(what, st)
	}
}

// addBody records a body statement (and those of its own bodies) and merges what it
// does into the enclosing statement.
func (c *collector) addBody(what string, st Statement) {
	nested := st.Body
	st.Body = nil
	st.SQL = strings.TrimSpace(st.SQL)
	st.Protocol = "body"
	c.body = append(c.body, st)
	c.body = append(c.body, nested...)
	c.kind(st.Kinds...)
	for _, t := range st.Tables {
		c.table(t)
	}
	for _, f := range st.Functions {
		if !contains(st.AttrFunctions, f) {
			c.explicitCall(f)
		} else if !contains(c.funcs, f) {
			c.funcs = append(c.funcs, f)
			c.attrs = append(c.attrs, f)
		}
	}
	if st.Unknowable != "" {
		c.unknown(fmt.Sprintf("in the body of %s: %s", clean(what), st.Unknowable))
	}
	if st.Has("execute") && (strings.HasPrefix(what, "function ") || strings.HasPrefix(what, "procedure ")) {
		// An SQL EXECUTE in a routine runs whatever the calling session has prepared
		// under that name when it is called (a statement prepared unapproved, whose
		// executions each ask, included), which is not known when it is written. (A DO
		// block's runs now: its EXECUTE is judged with what the name refers to.)
		c.unknown(fmt.Sprintf("the body of %s runs a prepared statement (EXECUTE %s), which is whatever its caller has prepared under that name", clean(what), clean(executedName(st.SQL))))
	}
}

// executedName is the name an EXECUTE statement runs, "" when it cannot be read.
func executedName(sql string) string {
	res, err := pgParse(sql)
	if err != nil {
		return ""
	}
	name := ""
	for _, raw := range res.Stmts {
		if raw.Stmt == nil {
			continue
		}
		walkNodes(raw.Stmt.ProtoReflect(), func(n any) {
			if e, ok := n.(*pg.ExecuteStmt); ok && name == "" {
				name = e.Name
			}
		})
	}
	return name
}

// triggerVars are the variables PL/pgSQL defines in trigger and event trigger functions.
var triggerVars = []string{"new", "old", "found", "tg_name", "tg_when", "tg_level", "tg_op", "tg_relid", "tg_relname",
	"tg_table_name", "tg_table_schema", "tg_nargs", "tg_argv", "tg_event", "tg_tag"}

// plpgsqlBody compiles the statement's PL/pgSQL body (src, the body's text) with
// pg_query and classifies every SQL statement and expression in it.
func (c *collector) plpgsqlBody(what, src string, vars map[string]bool) {
	js, err := pgParsePlpgsql(c.text)
	if err != nil {
		c.fail("the PL/pgSQL body of %s does not parse: %s", clean(what), parseErrMessage(err))
		return
	}
	root, err := decodeJSONTree(js)
	if err != nil || root.kind != '[' || len(root.items) != 1 {
		c.fail("the PL/pgSQL body of %s: unexpected parser output", clean(what))
		return
	}
	fn := root.items[0].get("PLpgSQL_function")
	if fn == nil || fn.get("action") == nil {
		c.fail("the PL/pgSQL body of %s: unexpected parser output", clean(what))
		return
	}
	w := plWalker{c: c, what: what, vars: map[string]bool{}}
	for v := range vars {
		w.vars[v] = true
	}
	for _, v := range triggerVars {
		w.vars[v] = true
	}
	fn.names(w.vars)
	w.walk(fn, false)
	if datums := fn.get("datums"); datums != nil && w.c.err == nil {
		for _, d := range datums.items {
			if rec := d.get("PLpgSQL_rec"); rec != nil {
				w.recordDefault(src, rec)
			}
		}
	}
}

// recordDefault classifies the default of a declared record variable. pg_query's JSON
// leaves out a PLpgSQL_rec's default_val (DECLARE r record := ROW(f())), which the server
// evaluates when the block is entered, so it is found in the body's text: the variable
// is named at the start of a declaration on the line the datum gives, and its default
// follows the first top-level :=, = or DEFAULT up to the declaration's semicolon. A
// declared record whose declaration cannot be found fails closed.
func (w *plWalker) recordDefault(src string, rec *jsonNode) {
	name, line := rec.get("refname"), rec.get("lineno")
	if name == nil || name.kind != 's' || line == nil || line.kind != 'n' || line.str == "0" {
		return // a parameter, NEW or OLD: no declaration
	}
	lineno, err := strconv.Atoi(line.str)
	if err != nil {
		w.c.fail("the PL/pgSQL body of %s: unexpected parser output", clean(w.what))
		return
	}
	if w.toks == nil {
		scan, err := pgScan(src)
		if err != nil {
			w.c.fail("the PL/pgSQL body of %s: cannot read the declaration of %s", clean(w.what), clean(name.str))
			return
		}
		w.toks = scan.Tokens
		w.lines = make([]int, len(w.toks))
		line, at := 1, 0
		for i, t := range w.toks {
			if st := int(t.Start); st >= at && st <= len(src) {
				line += strings.Count(src[at:st], "\n")
				at = st
			}
			w.lines[i] = line
		}
	}
	toks := w.toks
	text := func(i int) string {
		t := toks[i]
		if t.Start < 0 || int(t.End) > len(src) || t.Start > t.End {
			return ""
		}
		return src[t.Start:t.End]
	}
	folded := func(s string) string {
		if len(s) >= 2 && s[0] == '"' && s[len(s)-1] == '"' {
			return strings.ReplaceAll(s[1:len(s)-1], `""`, `"`)
		}
		return strings.ToLower(s)
	}
	declared := false
	for i := range toks {
		if w.lines[i] != lineno || folded(text(i)) != name.str {
			continue
		}
		prev := ""
		if i > 0 {
			prev = strings.ToLower(text(i - 1))
		}
		switch prev {
		case "for": // FOR r IN cursor LOOP declares r, without a default
			declared = true
			continue
		case "", ";", "declare":
		default:
			continue
		}
		declared = true
		depth := 0
		for j := i + 1; j < len(toks); j++ {
			switch toks[j].Token {
			case pg.Token_ASCII_40, pg.Token_ASCII_91:
				depth++
			case pg.Token_ASCII_41, pg.Token_ASCII_93:
				depth--
			}
			if depth != 0 {
				continue
			}
			if toks[j].Token == pg.Token_ASCII_59 {
				break
			}
			if toks[j].Token != pg.Token_COLON_EQUALS && toks[j].Token != pg.Token_ASCII_61 && toks[j].Token != pg.Token_DEFAULT {
				continue
			}
			end := len(src)
			for k, d := j+1, 0; k < len(toks); k++ {
				switch toks[k].Token {
				case pg.Token_ASCII_40, pg.Token_ASCII_91:
					d++
				case pg.Token_ASCII_41, pg.Token_ASCII_93:
					d--
				}
				if d == 0 && toks[k].Token == pg.Token_ASCII_59 {
					end = int(toks[k].Start)
					break
				}
			}
			if expr := strings.TrimSpace(src[toks[j].End:end]); expr != "" {
				w.c.sqlBody(w.what, "SELECT "+expr, w.vars)
			}
			break
		}
	}
	if !declared {
		w.c.fail("the PL/pgSQL body of %s: cannot find the declaration of %s", clean(w.what), clean(name.str))
	}
}

// plWalker classifies the expressions of a compiled PL/pgSQL function.
type plWalker struct {
	c    *collector
	what string
	vars map[string]bool
	// toks and lines are the body's tokens and the line of each, scanned when a
	// declared record is met (see recordDefault).
	toks  []*pg.ScanToken
	lines []int
}

func (w *plWalker) walk(n *jsonNode, dynamic bool) {
	if w.c.err != nil || n == nil {
		return
	}
	switch n.kind {
	case '[':
		for _, it := range n.items {
			w.walk(it, false)
		}
	case '{':
		for i, k := range n.keys {
			v := n.vals[i]
			switch k {
			case "PLpgSQL_expr":
				w.expr(v, dynamic)
			case "PLpgSQL_stmt_dynexecute", "PLpgSQL_stmt_dynfors":
				// EXECUTE string ..., FOR ... IN EXECUTE string: the string is the
				// statement; USING parameters are ordinary expressions.
				if v.kind != '{' {
					w.c.fail("the PL/pgSQL body of %s: unexpected parser output", clean(w.what))
					return
				}
				for j, kk := range v.keys {
					w.walk(v.vals[j], kk == "query")
				}
			case "dynquery": // OPEN ... FOR EXECUTE, RETURN QUERY EXECUTE
				w.walk(v, true)
			case "PLpgSQL_stmt_fetch":
				// FETCH or MOVE of a cursor variable, which may hold the name of a cursor
				// or protocol portal opened anywhere: what it reads is not in the body.
				if m := v.get("is_move"); m != nil && m.str == "true" {
					w.c.kind("move")
				} else {
					w.c.kind("fetch")
				}
				w.walk(v, false)
			default:
				w.walk(v, false)
			}
		}
	}
}

// expr classifies one PL/pgSQL expression by its parse mode (PostgreSQL's RawParseMode):
// 0 a whole statement, 2 an expression (the select list of a SELECT without the
// keyword), 3-5 an assignment "target := expression".
func (w *plWalker) expr(n *jsonNode, dynamic bool) {
	q := n.get("query")
	mode := n.get("parseMode")
	if q == nil || q.kind != 's' || mode == nil || mode.kind != 'n' {
		w.c.fail("the PL/pgSQL body of %s: unexpected parser output", clean(w.what))
		return
	}
	switch mode.str {
	case "0":
		w.c.sqlBody(w.what, q.str, w.vars)
	case "2":
		w.c.sqlBody(w.what, "SELECT "+q.str, w.vars)
	case "3", "4", "5":
		target, value, ok := splitAssignment(q.str)
		if !ok {
			w.c.fail("the PL/pgSQL body of %s: cannot read the assignment %q", clean(w.what), clean(q.str))
			return
		}
		w.c.sqlBody(w.what, "SELECT "+value, w.vars)
		if strings.ContainsAny(target, "[(") { // subscripts are expressions too
			w.c.sqlBody(w.what, "SELECT "+target, w.vars)
		}
	default:
		w.c.fail("the PL/pgSQL body of %s: unexpected expression kind %s", clean(w.what), clean(mode.str))
		return
	}
	if !dynamic || w.c.err != nil {
		return
	}
	// The string EXECUTE runs: a constant is SQL that can be judged (without the body's
	// variables, which dynamic SQL cannot see); anything else is only known at run time.
	if s, ok := constExpression(q.str); ok && mode.str == "2" {
		w.c.sqlBody(w.what+" (EXECUTE)", s, nil)
		return
	}
	w.c.unknown(fmt.Sprintf("%s runs SQL built at run time (EXECUTE)", clean(w.what)))
}

// constExpression returns the value of an expression that is a single string constant.
func constExpression(expr string) (string, bool) {
	res, err := pgParse("SELECT " + expr)
	if err != nil || len(res.Stmts) != 1 {
		return "", false
	}
	sel := res.Stmts[0].Stmt.GetSelectStmt()
	if sel == nil || len(sel.TargetList) != 1 || len(sel.FromClause) != 0 || sel.WhereClause != nil {
		return "", false
	}
	rt := sel.TargetList[0].GetResTarget()
	if rt == nil {
		return "", false
	}
	return constString(rt.Val)
}

// splitAssignment splits a PL/pgSQL assignment "target := value" (or "target = value")
// at its first top-level assignment operator.
func splitAssignment(q string) (target, value string, ok bool) {
	scan, err := pgScan(q)
	if err != nil {
		return "", "", false
	}
	depth := 0
	for _, tok := range scan.Tokens {
		switch tok.Token {
		case pg.Token_ASCII_40, pg.Token_ASCII_91:
			depth++
		case pg.Token_ASCII_41, pg.Token_ASCII_93:
			depth--
		case pg.Token_COLON_EQUALS, pg.Token_ASCII_61:
			if depth != 0 {
				continue
			}
			start, end := int(tok.Start), int(tok.End)
			if start <= 0 || end > len(q) || start > end {
				return "", "", false
			}
			return q[:start], q[end:], strings.TrimSpace(q[end:]) != ""
		}
	}
	return "", "", false
}

// jsonNode is a JSON value that keeps the order of object keys (the PL/pgSQL parser's
// output lists a function's statements in order).
type jsonNode struct {
	kind  byte // '{', '[', 's' string, 'n' number, 'b' bool, '0' null
	keys  []string
	vals  []*jsonNode
	items []*jsonNode
	str   string
}

func (n *jsonNode) get(key string) *jsonNode {
	if n == nil || n.kind != '{' {
		return nil
	}
	for i, k := range n.keys {
		if k == key {
			return n.vals[i]
		}
	}
	return nil
}

// names adds the names of the variables and block labels declared in a compiled
// function: references to them in its SQL are not columns.
func (n *jsonNode) names(into map[string]bool) {
	switch n.kind {
	case '[':
		for _, it := range n.items {
			it.names(into)
		}
	case '{':
		for i, k := range n.keys {
			v := n.vals[i]
			if (k == "refname" || k == "label") && v.kind == 's' && !strings.HasPrefix(v.str, "(") {
				into[v.str] = true
			}
			v.names(into)
		}
	}
}

// maxJSONDepth bounds the nesting of the parser's output.
const maxJSONDepth = 10000

func decodeJSONTree(s string) (*jsonNode, error) {
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	n, err := decodeJSONValue(dec, 0)
	if err != nil {
		return nil, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return nil, errors.New("trailing data")
	}
	return n, nil
}

func decodeJSONValue(dec *json.Decoder, depth int) (*jsonNode, error) {
	if depth > maxJSONDepth {
		return nil, errors.New("too deep")
	}
	tok, err := dec.Token()
	if err != nil {
		return nil, err
	}
	switch t := tok.(type) {
	case json.Delim:
		switch t {
		case '{':
			n := &jsonNode{kind: '{'}
			for dec.More() {
				kt, err := dec.Token()
				if err != nil {
					return nil, err
				}
				k, ok := kt.(string)
				if !ok {
					return nil, errors.New("object key is not a string")
				}
				v, err := decodeJSONValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.keys, n.vals = append(n.keys, k), append(n.vals, v)
			}
			_, err := dec.Token() // '}'
			return n, err
		case '[':
			n := &jsonNode{kind: '['}
			for dec.More() {
				v, err := decodeJSONValue(dec, depth+1)
				if err != nil {
					return nil, err
				}
				n.items = append(n.items, v)
			}
			_, err := dec.Token() // ']'
			return n, err
		}
		return nil, errors.New("unexpected delimiter")
	case string:
		return &jsonNode{kind: 's', str: t}, nil
	case json.Number:
		return &jsonNode{kind: 'n', str: t.String()}, nil
	case bool:
		return &jsonNode{kind: 'b', str: strconv.FormatBool(t)}, nil
	case nil:
		return &jsonNode{kind: '0'}, nil
	}
	return nil, errors.New("unexpected token")
}
