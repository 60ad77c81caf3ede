package pgproxy

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"

	pg "github.com/pganalyze/pg_query_go/v6"
	"google.golang.org/protobuf/reflect/protoreflect"
)

// Classify parses sql with PostgreSQL's own parser (pg_query, the PostgreSQL 17 grammar)
// and returns one Statement per statement in it, in order. SQL that does not parse
// returns an error wrapping ErrUnparseable: callers must fail closed. An empty or
// comment-only string returns no statements.
//
// Bodies are classified too: the SQL and PL/pgSQL bodies of CREATE FUNCTION and CREATE
// PROCEDURE, and DO blocks (see Statement.Body). A body that does not parse makes the
// whole statement unparseable.
func Classify(sql string) ([]Statement, error) {
	sts, _, err := classify(sql, 0, nil)
	return sts, err
}

// maxBodyDepth bounds bodies nested in bodies (a DO block creating a function whose
// body runs a DO block...); deeper nesting fails closed.
const maxBodyDepth = 8

// classify is Classify for text at depth bodies deep, with vars naming the variables
// and parameters of the enclosing body (references to them are not columns).
// constDep reports whether the classification read the value of a constant (a body, a
// set_config() setting name): such a classification must not be cached by a key that
// abstracts constants (see Classifier).
func classify(sql string, depth int, vars map[string]bool) (sts []Statement, constDep bool, err error) {
	sts, constDep, _, err = classifyTree(sql, depth, vars)
	return sts, constDep, err
}

// classifyTree is classify that also returns the parse tree it classified.
func classifyTree(sql string, depth int, vars map[string]bool) (sts []Statement, constDep bool, res *pg.ParseResult, err error) {
	if depth > maxBodyDepth {
		return nil, false, nil, fmt.Errorf("%w: bodies nested more than %d deep", ErrUnparseable, maxBodyDepth)
	}
	res, err = pgParse(sql)
	if err != nil {
		return nil, false, nil, fmt.Errorf("%w: %s", ErrUnparseable, parseErrMessage(err))
	}
	out := make([]Statement, 0, len(res.Stmts))
	for _, raw := range res.Stmts {
		text := sql
		if len(res.Stmts) > 1 {
			text = stmtText(sql, raw)
		}
		st := Statement{SQL: text}
		c := collector{text: text, depth: depth, vars: vars}
		if raw.Stmt != nil {
			c.walk(raw.Stmt.ProtoReflect())
		}
		if c.err != nil {
			return nil, false, nil, c.err
		}
		st.Kinds, st.Tables, st.Functions, st.Unknowable, st.Body = c.kinds, c.tables, c.funcs, c.unknowable, c.body
		st.AttrFunctions = c.attrs
		st.Normalized = normalize(text)
		constDep = constDep || c.constDep
		out = append(out, st)
	}
	return out, constDep, res, nil
}

func parseErrMessage(err error) string {
	msg := err.Error()
	if len(msg) > 200 {
		msg = msg[:200] + "..."
	}
	return clean(msg)
}

// stmtText cuts one statement out of a multi-statement string.
func stmtText(sql string, raw *pg.RawStmt) string {
	loc, n := int(raw.StmtLocation), int(raw.StmtLen)
	if loc < 0 || loc > len(sql) {
		return sql
	}
	end := len(sql)
	if n > 0 && loc+n <= len(sql) {
		end = loc + n
	}
	return strings.TrimSpace(sql[loc:end])
}

// normalize replaces constants with $n (pg_query's normaliser) and rewrites the result
// in a canonical spelling from PostgreSQL's own lexer: keywords in upper case, unquoted
// identifiers in lower case (as PostgreSQL folds them), comments dropped, and any run of
// whitespace or comments between two tokens reduced to one space. So "DrOp/**/TABLE  T"
// and "drop table t" both read "DROP TABLE t". (pg_query's deparser is not used: it
// crashes the process on some trees, e.g. that of "LOAD $1".)
func normalize(text string) string {
	n, err := pgNormalize(text)
	if err != nil {
		n = text
	}
	scan, err := pgScan(n)
	if err != nil {
		return n
	}
	var b strings.Builder
	b.Grow(len(n))
	prevEnd := -1
	toks := scan.Tokens
	for i := 0; i < len(toks); i++ {
		tok := toks[i]
		start, end := int(tok.Start), int(tok.End)
		if start < 0 || end > len(n) || start > end {
			return n
		}
		if tok.Token == pg.Token_SQL_COMMENT || tok.Token == pg.Token_C_COMMENT {
			continue
		}
		if prevEnd >= 0 && start > prevEnd {
			b.WriteByte(' ')
		}
		word := n[start:end]
		switch {
		case tok.KeywordKind != pg.KeywordKind_NO_KEYWORD:
			word = strings.ToUpper(word)
		case tok.Token == pg.Token_UIDENT:
			// U&"pg\005fsleep" [UESCAPE '!'] is the identifier pg_sleep: a regex rule
			// sees it as PostgreSQL reads it.
			esc := byte('\\')
			if i+2 < len(toks) && toks[i+1].Token == pg.Token_UESCAPE && toks[i+2].Token == pg.Token_SCONST {
				lit := n[toks[i+2].Start:toks[i+2].End]
				if len(lit) != 3 || lit[0] != '\'' || lit[2] != '\'' {
					return n
				}
				esc = lit[1]
				end = int(toks[i+2].End)
				i += 2
			}
			name, ok := decodeUnicodeIdent(word, esc)
			if !ok {
				return n
			}
			word = canonicalIdent(name)
		case tok.Token == pg.Token_IDENT && strings.HasPrefix(word, `"`):
			word = canonicalIdent(strings.ReplaceAll(word[1:len(word)-1], `""`, `"`))
		case tok.Token == pg.Token_IDENT:
			word = strings.ToLower(word)
		}
		b.WriteString(word)
		prevEnd = end
	}
	return b.String()
}

// decodeUnicodeIdent decodes a U&"..." identifier with escape character esc: esc
// followed by four hex digits, esc + and six hex digits, or esc twice.
func decodeUnicodeIdent(tok string, esc byte) (string, bool) {
	if len(tok) < 4 || !strings.EqualFold(tok[:2], "u&") || tok[2] != '"' || tok[len(tok)-1] != '"' {
		return "", false
	}
	body := strings.ReplaceAll(tok[3:len(tok)-1], `""`, `"`)
	var b strings.Builder
	for i := 0; i < len(body); i++ {
		c := body[i]
		if c != esc {
			b.WriteByte(c)
			continue
		}
		switch {
		case i+1 < len(body) && body[i+1] == esc:
			b.WriteByte(esc)
			i++
		case i+1 < len(body) && body[i+1] == '+' && i+8 <= len(body):
			r, err := strconv.ParseUint(body[i+2:i+8], 16, 32)
			if err != nil {
				return "", false
			}
			b.WriteRune(rune(r))
			i += 7
		case i+5 <= len(body):
			r, err := strconv.ParseUint(body[i+1:i+5], 16, 32)
			if err != nil {
				return "", false
			}
			b.WriteRune(rune(r))
			i += 4
		default:
			return "", false
		}
	}
	return b.String(), true
}

// canonicalIdent writes an identifier as PostgreSQL reads it, quoted only when it must
// be: "pg_sleep" is pg_sleep, "Orders" stays quoted.
func canonicalIdent(name string) string {
	plain := name != ""
	for i := 0; i < len(name) && plain; i++ {
		c := name[i]
		plain = c == '_' || c >= 'a' && c <= 'z' || i > 0 && (c >= '0' && c <= '9' || c == '$')
	}
	if plain {
		if sc, err := pgScan(name); err == nil && len(sc.Tokens) == 1 && sc.Tokens[0].Token == pg.Token_IDENT &&
			sc.Tokens[0].KeywordKind == pg.KeywordKind_NO_KEYWORD {
			return name
		}
	}
	return `"` + strings.ReplaceAll(name, `"`, `""`) + `"`
}

// collector walks a parse tree and gathers kinds, tables and functions. It reads node
// types, flags and identifiers; where it reads a constant's value (a body, a setting
// name), it sets constDep.
type collector struct {
	kinds, tables, funcs []string
	attrs                []string // of funcs, those only read in attribute notation
	unknowable           string

	text     string          // the statement's text (pg_query's PL/pgSQL parser needs it)
	depth    int             // bodies enclosing this statement
	vars     map[string]bool // variables and parameters of the enclosing body
	body     []Statement     // statements of bodies, flattened
	constDep bool
	err      error // a body that does not parse: the statement fails closed
}

// unknown records why the statement's effect cannot be known (the first reason wins).
func (c *collector) unknown(why string) {
	if c.unknowable == "" {
		c.unknowable = why
	}
}

// refuse makes the whole statement refused for err (wrapping ErrUnsafeSetting): the
// first reason wins, as with fail.
func (c *collector) refuse(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%w: "+format, append([]any{ErrUnsafeSetting}, args...)...)
	}
}

// fail makes the whole statement unparseable.
func (c *collector) fail(format string, args ...any) {
	if c.err == nil {
		c.err = fmt.Errorf("%w: "+format, append([]any{ErrUnparseable}, args...)...)
	}
}

func (c *collector) kind(ks ...string) {
	for _, k := range ks {
		if !contains(c.kinds, k) {
			c.kinds = append(c.kinds, k)
		}
	}
}

func (c *collector) table(name string) {
	if name != "" && !contains(c.tables, name) {
		c.tables = append(c.tables, name)
	}
}

func contains(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

func (c *collector) walk(m protoreflect.Message) {
	if c.err != nil {
		return
	}
	n := m.Interface()
	c.visit(n)
	c.extraKinds(n)
	if f, ok := n.(*pg.CreateFunctionStmt); ok {
		// A SQL-standard body (BEGIN ATOMIC ... END, RETURN ...) is part of the tree:
		// the routine's parameters are not columns in it.
		saved := c.vars
		c.vars = withVars(saved, routineVars(f))
		defer func() { c.vars = saved }()
	}
	eachChild(m, func(child protoreflect.Message) bool {
		c.walk(child)
		return true
	})
}

func (c *collector) visit(n any) {
	if name := olderServerCall(n); name != "" {
		c.explicitCall(name) // json_scalar(x) on PostgreSQL 15 (funcs.go)
	}
	switch n := n.(type) {
	case *pg.Node, *pg.RawStmt, *pg.List:
		return
	case *pg.RangeVar:
		name := n.Relname
		if n.Schemaname != "" {
			name = n.Schemaname + "." + name
		}
		if n.Catalogname != "" {
			name = n.Catalogname + "." + name
		}
		c.table(name)
	case *pg.FuncCall:
		c.explicitCall(qualifiedName(n.Funcname))
		c.call(n)
	case *pg.A_Indirection:
		// (expr).f is attribute notation: when f is no field of expr, the server calls
		// f(expr), whatever expr's type ((pg_backend_pid()).pg_terminate_backend).
		for _, ind := range n.Indirection {
			if s := ind.GetString_(); s != nil {
				c.attributeCall(s.Sval)
			}
		}
	case *pg.ColumnRef:
		// t.f, s.t.f: f(t) when f is no column of t (attribute notation on a row).
		if len(n.Fields) >= 2 {
			if s := n.Fields[len(n.Fields)-1].GetString_(); s != nil {
				c.attributeCall(s.Sval)
			}
		}
	case *pg.SelectStmt:
		if len(n.ValuesLists) > 0 {
			c.kind("values")
		} else if n.Op == pg.SetOperation_SETOP_NONE {
			c.kind("select")
		}
		if n.IntoClause != nil {
			c.kind("select_into", "create", "create_table")
		}
		if len(n.LockingClause) > 0 {
			c.kind("select_for_update")
		}
	case *pg.InsertStmt:
		c.kind("insert")
		if n.OnConflictClause != nil && n.OnConflictClause.Action == pg.OnConflictAction_ONCONFLICT_UPDATE {
			c.kind("upsert", "update")
		}
	case *pg.UpdateStmt:
		c.kind("update")
		if !restricts(n.WhereClause, c.vars) {
			c.kind("update_without_where")
		}
	case *pg.DeleteStmt:
		c.kind("delete")
		if !restricts(n.WhereClause, c.vars) {
			c.kind("delete_without_where")
		}
	case *pg.MergeStmt:
		c.kind("merge")
		// A WHEN MATCHED ... DELETE/UPDATE acts on every target row the join condition
		// matches (ON true: all of them), one WHEN NOT MATCHED BY SOURCE on every row it
		// does not: without a column in the condition or the clause's AND, it is a
		// DELETE/UPDATE without a WHERE.
		joined := restricts(n.JoinCondition, c.vars)
		for _, w := range n.MergeWhenClauses {
			wc := w.GetMergeWhenClause()
			if wc == nil || restricts(wc.Condition, c.vars) {
				continue
			}
			if joined && wc.MatchKind == pg.MergeMatchKind_MERGE_WHEN_MATCHED {
				continue
			}
			switch wc.CommandType {
			case pg.CmdType_CMD_DELETE:
				c.kind("delete_without_where")
			case pg.CmdType_CMD_UPDATE:
				c.kind("update_without_where")
			}
		}
	case *pg.MergeWhenClause:
		switch n.CommandType {
		case pg.CmdType_CMD_UPDATE:
			c.kind("update")
		case pg.CmdType_CMD_DELETE:
			c.kind("delete")
		case pg.CmdType_CMD_INSERT:
			c.kind("insert")
		}
	case *pg.TruncateStmt:
		c.kind("truncate")
	case *pg.DropStmt:
		obj := objectName(n.RemoveType)
		c.kind("drop", "drop_"+obj)
		c.dropImplies(n)
		switch n.RemoveType {
		case pg.ObjectType_OBJECT_TABLE, pg.ObjectType_OBJECT_VIEW, pg.ObjectType_OBJECT_MATVIEW,
			pg.ObjectType_OBJECT_INDEX, pg.ObjectType_OBJECT_SEQUENCE, pg.ObjectType_OBJECT_FOREIGN_TABLE:
			for _, o := range n.Objects {
				if l := o.GetList(); l != nil {
					c.table(qualifiedName(l.Items))
				}
			}
		}
	case *pg.AlterTableStmt:
		c.kind("alter", "alter_"+objectName(n.Objtype))
		if redirectsWrites(n) {
			c.kind(KindRedirectWrites)
		}
		for _, cmd := range n.Cmds {
			// ALTER COLUMN ... TYPE ... USING expr rewrites the column of every row with
			// expr: an UPDATE without a WHERE (USING NULL wipes it).
			if ac := cmd.GetAlterTableCmd(); ac != nil && ac.Subtype == pg.AlterTableType_AT_AlterColumnType {
				if cd := ac.Def.GetColumnDef(); cd != nil && cd.RawDefault != nil {
					c.kind("update", "update_without_where")
				}
			}
		}
	case *pg.RenameStmt:
		c.kind("alter", "rename", "alter_"+objectName(renameTarget(n)))
		if relationTypes[n.RenameType] {
			c.kind(KindRenameRelation)
		}
	case *pg.AlterObjectSchemaStmt:
		c.kind("alter", "alter_"+objectName(n.ObjectType))
		if relationTypes[n.ObjectType] {
			c.kind(KindRenameRelation)
		}
	case *pg.AlterOwnerStmt:
		c.kind("alter", "alter_"+objectName(n.ObjectType))
	case *pg.AlterExtensionContentsStmt:
		// A member is dropped with its extension (DROP EXTENSION e, which names no
		// table): adding a relation to one makes that drop reach it.
		if n.Action > 0 && relationTypes[n.Objtype] {
			if l := n.Object.GetList(); l != nil {
				c.table(qualifiedName(l.Items))
			}
			c.kind(KindRedirectWrites)
		}
	case *pg.CreateTableAsStmt:
		c.kind("create", "create_"+objectName(n.Objtype))
		if n.IsSelectInto {
			c.kind("select_into")
		}
	case *pg.CreateFunctionStmt:
		if n.IsProcedure {
			c.kind("create", "create_procedure")
		} else {
			c.kind("create", "create_function")
		}
		c.routineBody(n)
	case *pg.GrantStmt:
		if n.IsGrant {
			c.kind("grant")
		} else {
			c.kind("revoke")
		}
	case *pg.GrantRoleStmt:
		if n.IsGrant {
			c.kind("grant", "grant_role", "role_change")
		} else {
			c.kind("revoke", "revoke_role", "role_change")
		}
	case *pg.CreateRoleStmt:
		c.kind("create", "create_role", "role_change")
	case *pg.AlterRoleStmt, *pg.AlterRoleSetStmt:
		c.kind("alter", "alter_role", "role_change")
	case *pg.DropRoleStmt:
		c.kind("drop", "drop_role", "role_change")
	case *pg.DropOwnedStmt:
		// Every object the roles own, in every schema of the database, and their grants.
		c.kind("drop", "drop_owned", "drop_schema", "revoke")
		c.kind(containedKinds...)
		c.unknown("DROP OWNED drops every object the role owns, which the statement does not name")
	case *pg.VariableSetStmt:
		if n.Kind == pg.VariableSetKind_VAR_RESET || n.Kind == pg.VariableSetKind_VAR_RESET_ALL {
			c.kind("reset")
		} else {
			c.kind("set")
		}
		// Setting names are case-insensitive (SET "ROLE" = ... sets role); RESET ALL
		// resets the role too.
		if roleSettings[strings.ToLower(n.Name)] || n.Kind == pg.VariableSetKind_VAR_RESET_ALL {
			c.kind("role_change")
		}
		// SET, SET LOCAL, RESET, ALTER ROLE/DATABASE/SYSTEM ... SET, and a routine's
		// SET clause (CREATE/ALTER FUNCTION ... SET) all carry this node.
		c.lexerSetting(n)
	case *pg.CopyStmt:
		c.kind("copy")
		if n.IsFrom {
			c.kind("copy_from")
		} else {
			c.kind("copy_to")
		}
		switch {
		case n.IsProgram:
			c.kind("copy_program")
		case n.Filename == "" && n.IsFrom:
			c.kind("copy_from_stdin")
		case n.Filename == "":
			c.kind("copy_to_stdout")
		}
	case *pg.DoStmt:
		c.kind("do")
		c.doBody(n)
	case *pg.TransactionStmt:
		c.kind("transaction", strings.ToLower(strings.TrimPrefix(n.Kind.String(), "TRANS_STMT_")))
	case *pg.VacuumStmt:
		if n.IsVacuumcmd {
			c.kind("vacuum")
		} else {
			c.kind("analyze")
		}
	case *pg.FetchStmt:
		if n.Ismove {
			c.kind("move")
		} else {
			c.kind("fetch")
		}
	case *pg.ExplainStmt:
		c.kind("explain")
	case *pg.ExecuteStmt:
		c.kind("execute")
	case *pg.PrepareStmt:
		c.kind("prepare")
	case *pg.CallStmt:
		c.kind("call")
	case *pg.LockStmt:
		c.kind("lock")
	case *pg.LoadStmt:
		c.kind("load")
	case *pg.VariableShowStmt:
		c.kind("show")
	case *pg.DeclareCursorStmt:
		c.kind("declare_cursor")
	case *pg.ClosePortalStmt:
		c.kind("close_cursor")
	case *pg.CheckPointStmt:
		c.kind("checkpoint")
	case *pg.CreatedbStmt:
		c.kind("create", "create_database")
	case *pg.DropdbStmt:
		c.kind("drop", "drop_database")
	case *pg.CreateStmt:
		c.kind("create", "create_table")
	case *pg.IndexStmt:
		c.kind("create", "create_index")
	case *pg.ViewStmt:
		c.kind("create", "create_view")
	case *pg.RuleStmt:
		c.kind("create", "create_rule")
	case *pg.CreateTrigStmt:
		c.kind("create", "create_trigger")
	case *pg.CreateSeqStmt:
		c.kind("create", "create_sequence")
	case *pg.AlterSeqStmt:
		c.kind("alter", "alter_sequence")
	case *pg.DefineStmt:
		c.kind("create", "create_"+objectName(n.Kind))
	case *pg.CompositeTypeStmt:
		c.kind("create", "create_type")
	case *pg.RefreshMatViewStmt:
		c.kind("refresh_materialized_view")
	case *pg.ReturnStmt:
		// A SQL-standard function body's RETURN; the expression is walked.
	default:
		m, ok := n.(interface{ ProtoReflect() protoreflect.Message })
		if !ok {
			return
		}
		name := string(m.ProtoReflect().Descriptor().Name())
		if !strings.HasSuffix(name, "Stmt") {
			return
		}
		k := snake(strings.TrimSuffix(name, "Stmt"))
		for _, prefix := range []string{"create_", "alter_", "drop_"} {
			if strings.HasPrefix(k, prefix) {
				c.kind(strings.TrimSuffix(prefix, "_"))
			}
		}
		c.kind(k)
	}
}

// attributeCall counts name, read as a field or column in attribute notation, as a
// call of a function of that name: the text cannot tell a field from a function call
// (PostgreSQL looks at the catalog), so both are assumed.
func (c *collector) attributeCall(name string) {
	if name == "" {
		return
	}
	if !contains(c.funcs, name) {
		c.funcs = append(c.funcs, name)
		c.attrs = append(c.attrs, name)
	}
	if base := strings.ToLower(name); noOneArgForm[base] {
		// f(x) cannot call it: a column of that name (a job's schedule) is no SQL text.
		c.kind(funcKinds[base]...)
		return
	}
	c.classifyFuncName(name)
}

// explicitCall counts name as called: a function call written as one. A name also read
// in attribute notation is then no longer only that.
func (c *collector) explicitCall(name string) {
	if name == "" {
		return
	}
	if !contains(c.funcs, name) {
		c.funcs = append(c.funcs, name)
	}
	if i := slices.Index(c.attrs, name); i >= 0 {
		c.attrs = slices.Delete(c.attrs, i, i+1)
	}
}

// noOneArgForm are functions that run SQL text but take two arguments or more, so
// attribute notation (one argument) never calls them.
var noOneArgForm = map[string]bool{
	"schedule": true, "schedule_in_database": true,
	"query_to_xml": true, "query_to_xmlschema": true, "query_to_xml_and_xmlschema": true,
	"table_to_xml": true, "table_to_xml_and_xmlschema": true, "cursor_to_xml": true,
	"schema_to_xml": true, "schema_to_xml_and_xmlschema": true,
	"database_to_xml": true, "database_to_xml_and_xmlschema": true,
	"connectby": true,
}

// KindRenameRelation: a table, view or other relation is renamed or moved to another
// schema, so later statements name it otherwise. A rule scoped to tables matches it
// for a relation it names, whatever its statement kinds (bastion/policy): else
// "ALTER TABLE victim RENAME TO x; DELETE FROM x" escapes a rule on victim.
const KindRenameRelation = "rename_relation"

// KindRedirectWrites: from now on, writes to (or a drop of) one relation the statement
// names reach another it names, whoever writes them: a partition attached, a parent
// added, a foreign key with a cascading action. The write may come from code judged
// before (a function body's TRUNCATE pp or DROP TABLE pp, judged when pp had no
// partitions), so a rule scoped to tables and listing a write or drop matches the
// redirection itself (bastion/policy). (A view is not one: writes through views are
// followed when they are judged.)
const KindRedirectWrites = "redirect_writes"

// redirectsWrites reports whether an ALTER TABLE makes writes to (or drops of) one
// relation reach another.
func redirectsWrites(n *pg.AlterTableStmt) bool {
	for _, cmd := range n.Cmds {
		ac := cmd.GetAlterTableCmd()
		if ac == nil {
			continue
		}
		switch ac.Subtype {
		case pg.AlterTableType_AT_AttachPartition, pg.AlterTableType_AT_AddInherit:
			return true
		case pg.AlterTableType_AT_AddOf:
			// A typed table is dropped with its type: DROP TYPE t CASCADE drops it.
			return true
		case pg.AlterTableType_AT_AddConstraint:
			if con := ac.Def.GetConstraint(); con != nil && con.Contype == pg.ConstrType_CONSTR_FOREIGN &&
				(cascading(con.FkDelAction) || cascading(con.FkUpdAction)) {
				return true
			}
		}
	}
	return false
}

// cascading reports whether a foreign key action writes the referencing rows:
// CASCADE, SET NULL, SET DEFAULT.
func cascading(action string) bool {
	return action == "c" || action == "n" || action == "d"
}

// relationTypes are the objects a table rule names.
var relationTypes = map[pg.ObjectType]bool{
	pg.ObjectType_OBJECT_TABLE: true, pg.ObjectType_OBJECT_VIEW: true, pg.ObjectType_OBJECT_MATVIEW: true,
	pg.ObjectType_OBJECT_FOREIGN_TABLE: true, pg.ObjectType_OBJECT_SEQUENCE: true,
	pg.ObjectType_OBJECT_INDEX: true, // ALTER INDEX t RENAME renames a table t too
}

// containedKinds are what a schema (or a role's objects) can hold, each dropped with it.
var containedKinds = []string{"drop_table", "drop_view", "drop_materialized_view", "drop_sequence",
	"drop_index", "drop_foreign_table", "drop_function", "drop_procedure", "drop_aggregate",
	"drop_type", "drop_domain", "drop_trigger", "drop_rule", "drop_policy"}

// dropImplies adds the kinds of what a DROP drops beyond the objects it names: DROP
// SCHEMA ... CASCADE drops every table, view and function in the schema, a blocked
// drop_table included, and which ones is not in the text; DROP TYPE or DOMAIN ... CASCADE
// drops the columns of that type and the tables typed by it; DROP EXTENSION drops its
// member objects (tables, functions), with CASCADE columns of its types too; DROP ...
// CASCADE of anything else (a function, operator, collation, server, ...) drops the
// tables that depend on it, such as a table partitioned by an expression using it.
func (c *collector) dropImplies(n *pg.DropStmt) {
	cascade := n.Behavior == pg.DropBehavior_DROP_CASCADE
	switch n.RemoveType {
	case pg.ObjectType_OBJECT_SCHEMA:
		if cascade {
			c.kind(containedKinds...)
			c.unknown("DROP SCHEMA ... CASCADE drops whatever the schema holds, which the statement does not name")
		}
	case pg.ObjectType_OBJECT_TYPE, pg.ObjectType_OBJECT_DOMAIN:
		if cascade {
			c.kind("drop_table", "alter", "alter_table")
		}
	case pg.ObjectType_OBJECT_EXTENSION:
		c.kind("drop_table", "drop_function", "drop_type")
		if cascade {
			// Whatever depends on a member goes too: a table typed by its type, or
			// partitioned by an expression using its function, or in its schema
			// (ALTER EXTENSION e ADD FUNCTION f, ADD SCHEMA s).
			c.kind(containedKinds...)
			c.kind("alter", "alter_table")
			c.unknown("DROP EXTENSION ... CASCADE drops whatever depends on the extension's members, which the statement does not name")
		}
	case pg.ObjectType_OBJECT_TABLE, pg.ObjectType_OBJECT_VIEW, pg.ObjectType_OBJECT_MATVIEW,
		pg.ObjectType_OBJECT_INDEX, pg.ObjectType_OBJECT_SEQUENCE, pg.ObjectType_OBJECT_FOREIGN_TABLE:
		// Views over them, constraints and defaults go with CASCADE; the partitions
		// and children a DROP TABLE drops are found in the catalog (views.go).
	case pg.ObjectType_OBJECT_TRIGGER, pg.ObjectType_OBJECT_POLICY, pg.ObjectType_OBJECT_RULE,
		pg.ObjectType_OBJECT_STATISTIC_EXT, pg.ObjectType_OBJECT_EVENT_TRIGGER, pg.ObjectType_OBJECT_PUBLICATION:
		// Nothing depends on these.
	default:
		if cascade {
			// A table partitioned by an expression using a function, operator,
			// operator class or collation, or a foreign table of a server, depends
			// on it: DROP FUNCTION f CASCADE drops the table and its partitions.
			c.kind(containedKinds...)
			c.kind("alter", "alter_table")
			c.unknown(fmt.Sprintf("DROP %s ... CASCADE drops whatever depends on it (a table partitioned by an expression using it, a view), which the statement does not name", strings.ToUpper(strings.ReplaceAll(objectName(n.RemoveType), "_", " "))))
		}
	}
}

// restricts reports whether a WHERE clause can select particular rows: it must refer to a
// column (or be WHERE CURRENT OF). "WHERE true" and "WHERE 1=1" do not, nor does a
// reference to one of vars (in a body, a variable or parameter looks like a column).
func restricts(where *pg.Node, vars map[string]bool) bool {
	if where == nil {
		return false
	}
	found := false
	var walk func(m protoreflect.Message)
	walk = func(m protoreflect.Message) {
		if found {
			return
		}
		switch n := m.Interface().(type) {
		case *pg.ColumnRef:
			if len(n.Fields) > 0 {
				if s := n.Fields[0].GetString_(); s != nil && vars[s.Sval] {
					return // a variable, not a column (its subscripts are walked no further)
				}
			}
			found = true
			return
		case *pg.CurrentOfExpr:
			found = true
			return
		}
		eachChild(m, func(c protoreflect.Message) bool {
			walk(c)
			return !found
		})
	}
	walk(where.ProtoReflect())
	return found
}

func renameTarget(n *pg.RenameStmt) pg.ObjectType {
	switch n.RenameType {
	case pg.ObjectType_OBJECT_COLUMN, pg.ObjectType_OBJECT_TABCONSTRAINT, pg.ObjectType_OBJECT_TRIGGER,
		pg.ObjectType_OBJECT_RULE, pg.ObjectType_OBJECT_POLICY:
		return n.RelationType
	}
	return n.RenameType
}

// objectName turns OBJECT_TABLE into "table", OBJECT_MATVIEW into "materialized_view".
func objectName(t pg.ObjectType) string {
	s := strings.ToLower(strings.TrimPrefix(t.String(), "OBJECT_"))
	switch s {
	case "matview":
		return "materialized_view"
	case "tabconstraint":
		return "constraint"
	}
	return s
}

// qualifiedName joins a name list of String nodes with dots.
func qualifiedName(items []*pg.Node) string {
	parts := make([]string, 0, len(items))
	for _, it := range items {
		if s := it.GetString_(); s != nil {
			parts = append(parts, s.Sval)
		}
	}
	return strings.Join(parts, ".")
}

// snake turns "AlterSystem" into "alter_system".
func snake(s string) string {
	var b strings.Builder
	for i, r := range s {
		if unicode.IsUpper(r) {
			if i > 0 {
				b.WriteByte('_')
			}
			r = unicode.ToLower(r)
		}
		b.WriteRune(r)
	}
	return b.String()
}

// replicationCommands are the walsender's commands, which are not SQL.
var replicationCommands = map[string]bool{
	"IDENTIFY_SYSTEM": true, "START_REPLICATION": true, "BASE_BACKUP": true,
	"CREATE_REPLICATION_SLOT": true, "DROP_REPLICATION_SLOT": true, "ALTER_REPLICATION_SLOT": true,
	"READ_REPLICATION_SLOT": true, "TIMELINE_HISTORY": true, "UPLOAD_MANIFEST": true, "SHOW": true,
}

// classifyReplication recognises a replication command (on replication connections,
// which Authorize allowed) by its first word.
func classifyReplication(sql string) (Statement, bool) {
	s := strings.TrimLeft(sql, " \t\r\n")
	end := strings.IndexFunc(s, func(r rune) bool { return !(r == '_' || unicode.IsLetter(r)) })
	if end < 0 {
		end = len(s)
	}
	word := strings.ToUpper(s[:end])
	if !replicationCommands[word] {
		return Statement{}, false
	}
	return Statement{
		SQL:        sql,
		Kinds:      []string{"replication_command", strings.ToLower(word)},
		Normalized: word,
	}, true
}
