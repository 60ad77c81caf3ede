package pgproxy

import (
	"strings"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// Functions the server calls without the statement naming them in a function call.
// The analysis resolves function calls by name (functionTaint); PostgreSQL also calls
// functions for:
//
//   - an operator (1 ### 1 calls the operator's function, pg_operator.oprcode);
//   - a cast (x::wrap, CAST(x AS wrap) call pg_cast.castfunc), and a cast the server
//     applies implicitly (an argument of another type, castcontext i, or a value stored
//     in a column, castcontext a), which the text does not show;
//   - a domain's CHECK constraint (it runs on every value cast or stored to the domain,
//     and a function it calls can RAISE NOTICE with what it reads), a table's CHECK
//     constraint, a column default, a row security policy, an index expression, an
//     operator class's support functions and operators (sorting, grouping, DISTINCT,
//     joins, IN and CASE compare with them);
//   - attribute notation: o.f and (o).f, where f is no column of o, call f(o).
//
// Operators and explicit casts are resolved where the statement writes them: an
// operator of that name, or a cast to a type (or a domain over it) of that name, whose
// function is outside PostgreSQL's own schemas taints the expression with what that
// function reads. What the server applies implicitly cannot be placed in the text: the
// union of what those functions read (implicit and assignment casts, constraints,
// defaults, policies, index expressions, operator classes, and comparison operators,
// which the server looks up by name for IN, CASE and the like) taints every result
// column of every statement and its messages, and makes a statement that stores values
// a copy (see analyzeStatement). In a database where none of them reads a masked column
// (the usual case) this costs nothing; where one does, every result is masked, which is
// the price of a definition that lets masked data flow where lineage cannot see.
// Attribute notation is resolved as a call of every function of that name.
//
// Functions of extensions (pg_depend deptype e) are not listed: their code comes from
// the extension's script, installed by a superuser (or a trusted extension's fixed
// script), not from the session; a function a session adds to an extension needs the
// extension's owner.

// comparisonOps are the operators the server finds by name for IN, CASE, NULLIF, IS
// DISTINCT FROM, and for types without an operator class.
var comparisonOps = map[string]bool{"=": true, "<>": true, "<": true, ">": true, "<=": true, ">=": true}

// hookList is the catalog's hooks, or a taint saying why they cannot be known.
func (a *analyzer) hookList() ([]*hookInfo, taint) {
	hr, ok := a.cat.(hookReader)
	if !ok {
		return nil, taint{}
	}
	hs, err := hr.hooks(a.ctx)
	if err != nil {
		return nil, unknownTaint("%v", err)
	}
	return hs, taint{}
}

// operatorTaint is what an operator expression's operator may read by itself.
func (a *analyzer) operatorTaint(e *pg.A_Expr) taint {
	t := a.suspectTaint() // an operator created in the open transaction
	names := fieldNames(e.Name)
	var ops []string
	switch e.Kind {
	case pg.A_Expr_Kind_AEXPR_BETWEEN, pg.A_Expr_Kind_AEXPR_NOT_BETWEEN, pg.A_Expr_Kind_AEXPR_BETWEEN_SYM, pg.A_Expr_Kind_AEXPR_NOT_BETWEEN_SYM:
		ops = []string{">=", "<=", "<", ">"}
	default:
		if len(names) > 0 {
			ops = []string{names[len(names)-1]}
		}
	}
	hs, ht := a.hookList()
	t.add(ht)
	for _, h := range hs {
		if h.Kind == "o" && contains(ops, h.Key) {
			t.add(a.functionTaint(h.Schema, h.Name))
		}
	}
	return t
}

// castTaint is what a cast to tn may read by itself (a domain's checks are among the
// implicit hooks).
func (a *analyzer) castTaint(tn *pg.TypeName) taint {
	t := a.suspectTaint() // a cast or type created in the open transaction
	if tn == nil {
		return t
	}
	names := fieldNames(tn.Names)
	if len(names) == 0 {
		return t
	}
	target := names[len(names)-1]
	hs, ht := a.hookList()
	t.add(ht)
	for _, h := range hs {
		if h.Kind == "c" && h.Key == target {
			t.add(a.functionTaint(h.Schema, h.Name))
		}
	}
	return t
}

// attributeFunc is what o.name may read when it is attribute notation for name(o):
// every function of that name (none: nothing beyond the row, which the caller counts).
func (a *analyzer) attributeFunc(name string) taint {
	t := a.suspectTaint()
	fns, err := a.cat.functions(a.ctx, []string{name})
	if err != nil {
		t.add(unknownTaint("%v", err))
		return t
	}
	if len(fns) > 0 {
		t.add(a.functionTaint("", name))
	}
	return t
}

// implicit reports whether the server may call h's function where the text does not
// show it.
func (h *hookInfo) implicit() bool {
	return h.Kind == "i" || h.Kind == "c" && (h.Ctx == "i" || h.Ctx == "a") || h.Kind == "o" && comparisonOps[h.Key]
}

// ambientTaint is what the functions the server applies implicitly may read (see
// above).
func (a *analyzer) ambientTaint() taint {
	hs, t := a.hookList()
	seen := map[[2]string]bool{}
	for _, h := range hs {
		k := [2]string{h.Schema, h.Name}
		if !h.implicit() || seen[k] {
			continue
		}
		seen[k] = true
		t.add(a.functionTaint(h.Schema, h.Name))
	}
	return t
}

// mayDefine notes that the statement may change definitions through a function it calls.
func (a *analyzer) mayDefine() {
	if a.ddl != nil {
		*a.ddl = true
	}
}

// bodyDefines reports whether a routine's body may change definitions: a statement of it
// that is not a plain read or write, or anything unknowable (dynamic SQL).
func bodyDefines(st Statement) bool {
	if st.Unknowable != "" {
		return true
	}
	for i := range st.Body {
		if definesKinds(st.Body[i].Kinds) != "" {
			return true
		}
	}
	return false
}

// neutralKinds change the schema without changing what the lineage analysis reads in a
// way it does not follow: new tables are followed as the session's own definitions
// (lineageState.pending); dropping only removes candidates (the analysis takes every
// relation and function of a name); privileges, comments, statistics and storage are
// not definitions; EXECUTE runs a prepared SELECT, INSERT, UPDATE, DELETE or MERGE.
var neutralKinds = map[string]bool{
	"create": true, "create_table": true, "create_index": true, "create_sequence": true, "create_schema": true,
	"drop": true, "grant": true, "revoke": true, "comment": true, "vacuum": true, "analyze": true,
	"truncate": true, "checkpoint": true, "server_admin": true, "cluster": true, "reindex": true,
	"discard": true, "role_change": true, "prepare": true, "deallocate": true, "execute": true,
}

// definesKinds returns the first kind that may change a definition the lineage reads
// (a function, view, operator, cast, type, domain, rule, trigger, or a rename or
// ALTER), or "".
func definesKinds(kinds []string) string {
	for _, k := range kinds {
		if readOnlyKinds[k] || neutralKinds[k] || strings.HasPrefix(k, "drop_") {
			continue
		}
		return k
	}
	return ""
}

// Definitions that make the server call a function implicitly are refused, through the
// bastion, when the function reads masked columns (as a column DEFAULT computed from
// them is): the implicit taint above would otherwise mask every result of every session
// of the database (and refuse their writes). Definitions made elsewhere, and a function
// such a hook calls being replaced, are still caught at use by ambientTaint.

// implicitDefinition refuses a definition (what) the server applies implicitly whose
// expression or function reads t.
func (a *analyzer) implicitDefinition(what string, t taint) {
	switch {
	case t.masked:
		a.setLeak("%s calls a function that reads masked columns; the server applies it implicitly, where no mask follows", what)
	case t.unknown != "" && a.refuseUnknown():
		a.setLeak("%s calls a function whose origin cannot be known (%s); the server applies it implicitly", what, t.unknown)
	}
}

// createCast refuses an implicit or assignment cast whose function reads masked columns
// (an explicit cast is resolved where it is written: castTaint).
func (a *analyzer) createCast(c *pg.CreateCastStmt) {
	if c.Func == nil || c.Context == pg.CoercionContext_COERCION_EXPLICIT {
		return
	}
	schema, name := splitName(fieldNames(c.Func.Objname))
	a.implicitDefinition("cast to "+qualifiedName(c.Targettype.GetNames()), a.functionTaint(schema, name))
}

// defineStmt refuses a comparison operator whose function reads masked columns (the
// server finds those by name for IN, CASE and operator classes; other operators are
// resolved where they are written: operatorTaint).
func (a *analyzer) defineStmt(d *pg.DefineStmt) {
	if d.Kind != pg.ObjectType_OBJECT_OPERATOR {
		return
	}
	op := fieldNames(d.Defnames)
	if len(op) == 0 || !comparisonOps[op[len(op)-1]] {
		return
	}
	for _, el := range d.Definition {
		de := el.GetDefElem()
		if de == nil || de.Defname != "function" && de.Defname != "procedure" {
			continue
		}
		var names []string
		if tn := de.Arg.GetTypeName(); tn != nil {
			names = fieldNames(tn.Names)
		} else if l := de.Arg.GetList(); l != nil {
			names = fieldNames(l.Items)
		} else if s := de.Arg.GetString_(); s != nil {
			names = []string{s.Sval}
		}
		if len(names) > 0 {
			schema, name := splitName(names)
			a.implicitDefinition("operator "+op[len(op)-1], a.functionTaint(schema, name))
		}
	}
}

// replaceHook refuses replacing a function the server applies implicitly with a body
// that reads masked columns.
func (a *analyzer) replaceHook(funcname []*pg.Node, reads taint) {
	if !reads.masked {
		return
	}
	schema, name := splitName(fieldNames(funcname))
	hs, _ := a.hookList()
	for _, h := range hs {
		if h.implicit() && h.Name == name && (schema == "" || h.Schema == schema) {
			a.setLeak("function %s.%s is applied implicitly by the server (a cast, check, default or operator); a body that reads masked columns would send them where no mask follows", h.Schema, h.Name)
			return
		}
	}
}

// splitName is a possibly qualified name's schema ("" when none) and name.
func splitName(names []string) (string, string) {
	switch len(names) {
	case 0:
		return "", ""
	case 1:
		return "", names[0]
	}
	return names[len(names)-2], names[len(names)-1]
}
