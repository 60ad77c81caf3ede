package shellcmd

import (
	"reflect"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// analyzer collects the result of one Analyze call.
type analyzer struct {
	out       *Analysis
	budget    int  // bytes that nested parsing, brace expansion and output may still use
	budgetHit bool // ReasonBudget was reported; nothing more is followed
	p         *syntax.Parser
}

// parser returns the analyzer's parser for nested text. Each use parses
// to the end before the result is walked, so one parser serves every
// level; reusing it saves its buffers on inputs with many small strings.
func (a *analyzer) parser() *syntax.Parser {
	if a.p == nil {
		a.p = syntax.NewParser(syntax.Variant(syntax.LangBash))
	}
	return a.p
}

// scope is one piece of text being walked: the top-level input, or code
// found inside an argument (`bash -c '...'`).
type scope struct {
	src      string   // the text the nodes were parsed from
	depth    int      // 0 for the input, +1 per nested string
	wrappers []string // wrappers that lead to this text
	appended bool     // its commands get more arguments at run time (an alias value)
}

// item is one node waiting to be visited, with the context it runs in.
type item struct {
	node      syntax.Node
	stdinPipe bool // stdin comes from a pipe or process substitution
	timed     bool // under the `time` keyword
}

// walkFile visits stmts and everything in them. It uses an explicit stack,
// not recursion: pipelines, && chains, elif chains and arithmetic are deep
// trees the parser builds iteratively, and a megabyte of `a|a|a...` must not
// grow the goroutine stack. Recursion happens only for nested text, which
// is bounded by MaxDepth.
func (a *analyzer) walkFile(stmts []*syntax.Stmt, sc scope, stdinPipe bool) {
	var stack []item
	push := func(stdinPipe bool, nodes ...syntax.Node) {
		for i := len(nodes) - 1; i >= 0; i-- {
			if !isNil(nodes[i]) {
				stack = append(stack, item{node: nodes[i], stdinPipe: stdinPipe})
			}
		}
	}
	pushStmts := func(stdinPipe bool, stmts []*syntax.Stmt) {
		for i := len(stmts) - 1; i >= 0; i-- {
			if stmts[i] != nil {
				stack = append(stack, item{node: stmts[i], stdinPipe: stdinPipe})
			}
		}
	}
	pushWords := func(stdinPipe bool, words []*syntax.Word) {
		for i := len(words) - 1; i >= 0; i-- {
			if words[i] != nil {
				stack = append(stack, item{node: words[i], stdinPipe: stdinPipe})
			}
		}
	}
	pushStmts(stdinPipe, stmts)

	for len(stack) > 0 {
		it := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		sp := it.stdinPipe

		switch n := it.node.(type) {
		case *syntax.Stmt:
			// Redirections are pushed first so that they are visited
			// after the command: `cmd <(sub)` lists cmd, then sub.
			for i := len(n.Redirs) - 1; i >= 0; i-- {
				if r := n.Redirs[i]; r != nil {
					push(sp, r)
				}
			}
			if call, ok := n.Cmd.(*syntax.CallExpr); ok && call != nil {
				// Assignments and arguments are visited after the
				// command itself, for nested substitutions.
				for i := len(call.Args) - 1; i >= 0; i-- {
					if call.Args[i] != nil {
						push(sp, call.Args[i])
					}
				}
				for i := len(call.Assigns) - 1; i >= 0; i-- {
					if call.Assigns[i] != nil {
						push(sp, call.Assigns[i])
					}
				}
				if len(call.Args) == 0 {
					a.sizeAssign(call.Assigns, sc) // the shell's own variables
				}
				a.call(call, n, sc, sp, it.timed)
				continue
			}
			if !isNil(n.Cmd) {
				stack = append(stack, item{node: n.Cmd, stdinPipe: sp, timed: it.timed})
			}

		case *syntax.BinaryCmd:
			pipe := n.Op == syntax.Pipe || n.Op == syntax.PipeAll
			if n.Y != nil {
				stack = append(stack, item{node: n.Y, stdinPipe: sp || pipe})
			}
			if n.X != nil {
				stack = append(stack, item{node: n.X, stdinPipe: sp})
			}

		case *syntax.Subshell:
			pushStmts(sp, n.Stmts)
		case *syntax.Block:
			pushStmts(sp, n.Stmts)
		case *syntax.IfClause:
			if n.Else != nil {
				push(sp, n.Else)
			}
			pushStmts(sp, n.Then)
			pushStmts(sp, n.Cond)
		case *syntax.WhileClause:
			pushStmts(sp, n.Do)
			pushStmts(sp, n.Cond)
		case *syntax.ForClause:
			pushStmts(sp, n.Do)
			push(sp, n.Loop)
		case *syntax.WordIter:
			pushWords(sp, n.Items)
		case *syntax.CStyleLoop:
			for _, x := range []syntax.ArithmExpr{n.Init, n.Cond, n.Post} {
				a.arithCode(x, sc, nodeText(sc.src, n), arithExpr)
			}
			push(sp, n.Init, n.Cond, n.Post)
		case *syntax.CaseClause:
			for i := len(n.Items) - 1; i >= 0; i-- {
				ci := n.Items[i]
				if ci == nil {
					continue
				}
				pushStmts(sp, ci.Stmts)
				pushWords(sp, ci.Patterns)
			}
			if n.Word != nil {
				push(sp, n.Word)
			}
		case *syntax.FuncDecl:
			// The body runs when the function is called, with the
			// caller's stdin, which is not known here.
			if n.Body != nil {
				push(false, n.Body)
			}
		case *syntax.ArithmCmd:
			a.arithCode(n.X, sc, nodeText(sc.src, n), arithExpr)
			push(sp, n.X)
		case *syntax.TestClause:
			push(sp, n.X)
		case *syntax.DeclClause:
			a.sizeAssign(n.Args, sc)
			a.decl(n, sc)
			for i := len(n.Args) - 1; i >= 0; i-- {
				if n.Args[i] != nil {
					push(sp, n.Args[i])
				}
			}
		case *syntax.LetClause:
			a.let(n, sc)
			for i := len(n.Exprs) - 1; i >= 0; i-- {
				push(sp, n.Exprs[i])
			}
		case *syntax.TimeClause:
			if n.Stmt != nil {
				stack = append(stack, item{node: n.Stmt, stdinPipe: sp, timed: true})
			}
		case *syntax.CoprocClause:
			if n.Stmt != nil {
				push(sp, n.Stmt)
			}
			if n.Name != nil {
				push(sp, n.Name)
			}
		case *syntax.TestDecl:
			if n.Body != nil {
				push(sp, n.Body)
			}
			if n.Description != nil {
				push(sp, n.Description)
			}

		case *syntax.Redirect:
			// read x <<< 'a[$(cmd)]' stores what arithmetic runs, as an
			// assignment of that value does.
			for _, w := range []*syntax.Word{n.Hdoc, n.Word} {
				if w != nil && (n.Op == syntax.WordHdoc || n.Hdoc == w) {
					if v := normWord(w, sc.src); v.lit && storedSubscriptCode(v.s) {
						a.unknowable(nodeText(sc.src, n), ReasonStoredSubscript)
						break
					}
				}
			}
			if n.Hdoc != nil {
				push(sp, n.Hdoc)
			}
			if n.Word != nil {
				push(sp, n.Word)
			}
		case *syntax.Assign:
			a.specialAssign(n, sc)
			if n.Array != nil {
				for i := len(n.Array.Elems) - 1; i >= 0; i-- {
					if e := n.Array.Elems[i]; e != nil {
						if e.Value != nil {
							push(sp, e.Value)
						}
						// a=(['$(cmd)']=1): an indexed array's
						// subscript is evaluated, substitutions too.
						a.arithCode(e.Index, sc, nodeText(sc.src, n), arithIndex)
						push(sp, e.Index)
					}
				}
			}
			if n.Value != nil {
				push(sp, n.Value)
			}
			a.arithCode(n.Index, sc, nodeText(sc.src, n), arithIndex)
			push(sp, n.Index)

		case *syntax.Word:
			for i := len(n.Parts) - 1; i >= 0; i-- {
				push(sp, n.Parts[i])
			}
		case *syntax.DblQuoted:
			for i := len(n.Parts) - 1; i >= 0; i-- {
				push(sp, n.Parts[i])
			}
		case *syntax.ExtGlob:
			// To zsh, *(...) ending a pattern holds glob qualifiers,
			// and *(e:code:) and *(+name) run code for every file.
			if n.Pattern != nil {
				for _, code := range zshQualifierCode(n.Pattern.Value) {
					a.nestedScope(code, scope{depth: sc.depth, wrappers: appendWrapper(sc.wrappers, "zsh glob qualifier"), appended: true}, false, nodeText(sc.src, n))
				}
			}
		case *syntax.ParamExp:
			if n.Exp != nil && n.Exp.Op == syntax.OtherParamOps && n.Exp.Word != nil && strings.Contains(n.Exp.Word.Lit(), "P") {
				// ${x@P} expands x's value as a prompt string, running
				// the substitutions in it.
				a.unknowable(nodeText(sc.src, n), ReasonPrompt)
			}
			if n.Slice != nil {
				a.arithCode(n.Slice.Offset, sc, nodeText(sc.src, n), arithExpr)
				a.arithCode(n.Slice.Length, sc, nodeText(sc.src, n), arithExpr)
			}
			a.arithCode(n.Index, sc, nodeText(sc.src, n), arithIndex)
			if n.Exp != nil && n.Exp.Word != nil {
				push(sp, n.Exp.Word)
			}
			if n.Repl != nil {
				if n.Repl.With != nil {
					push(sp, n.Repl.With)
				}
				if n.Repl.Orig != nil {
					push(sp, n.Repl.Orig)
				}
			}
			if n.Slice != nil {
				push(sp, n.Slice.Offset, n.Slice.Length)
			}
			push(sp, n.Index, n.NestedParam)
		case *syntax.CmdSubst:
			pushStmts(sp, n.Stmts)
		case *syntax.ProcSubst:
			// >(cmd) reads what the command writes to it: a pipe.
			pushStmts(sp || n.Op == syntax.CmdOut, n.Stmts)
		case *syntax.ArithmExp:
			a.arithCode(n.X, sc, nodeText(sc.src, n), arithExpr)
			push(sp, n.X)
		case *syntax.BraceExp:
			pushWords(sp, n.Elems)
		case *syntax.BinaryArithm:
			push(sp, n.X, n.Y)
		case *syntax.UnaryArithm:
			push(sp, n.X)
		case *syntax.ParenArithm:
			push(sp, n.X)
		case *syntax.FlagsArithm:
			push(sp, n.X)
		case *syntax.BinaryTest:
			switch n.Op {
			case syntax.TsEql, syntax.TsNeq, syntax.TsLeq, syntax.TsGeq, syntax.TsLss, syntax.TsGtr:
				// [[ x -eq y ]] evaluates both sides as arithmetic.
				a.testArith(n.X, sc, nodeText(sc.src, n))
				a.testArith(n.Y, sc, nodeText(sc.src, n))
			}
			push(sp, n.X, n.Y)
		case *syntax.UnaryTest:
			if n.Op == syntax.TsVarSet {
				a.testArith(n.X, sc, nodeText(sc.src, n)) // [[ -v 'a[...]' ]]
			}
			push(sp, n.X)
		case *syntax.ParenTest:
			push(sp, n.X)

		case *syntax.Lit, *syntax.SglQuoted:
			// Nothing runs.
		default:
			// A construct this package does not know: it might run
			// something, so say so rather than pass it silently.
			a.unknowable(nodeText(sc.src, n), ReasonUnsupported)
		}
	}
}

// arithMode is where arithCode's expression stands.
type arithMode int

const (
	arithExpr  arithMode = iota // an arithmetic expression: $(( )), (( )), for (( )), ${x:off:len}
	arithIndex                  // an array index: a[i]=, ${a[i]}, a=([i]=v); the brackets outside the word
	arithValue                  // an operand whose value is evaluated: [[ x -eq y ]]
)

// ReasonArithQuoted: inside an arithmetic expression bash reads single
// quotes as ordinary characters, as in double quotes, so (( '$(cmd)' ))
// runs cmd though the parser sees a quoted, literal word.
const ReasonArithQuoted = "substitution in single quotes that arithmetic expands"

// sglQuotedSubst reports a single-quoted part of w holding a substitution,
// which bash expands inside an arithmetic expression.
func sglQuotedSubst(w *syntax.Word) bool {
	for _, p := range w.Parts {
		if q, ok := p.(*syntax.SglQuoted); ok && (strings.Contains(q.Value, "$(") || strings.Contains(q.Value, "`") || strings.Contains(q.Value, "${")) {
			return true
		}
	}
	return false
}

// arithCode reports, as ReasonSubscript, a word in arithmetic (an
// arithmetic expansion or command, a slice offset, an array index) whose
// quoted text holds a substitution: bash parses the text of the word again
// as arithmetic, where an array subscript in it runs that substitution
// ($(( 'a[$(cmd)]' )), ${x:'a[$(cmd)]'}; in an index, a['$(cmd)'] is
// evaluated itself). In an expression (arithExpr: $(( )), (( )), for (( )),
// a slice) bash reads the text as if double-quoted, so a single-quoted
// '$(cmd)' runs with no subscript at all. Substitutions the parser sees
// are walked as usual; this only catches those hidden in quotes.
func (a *analyzer) arithCode(e syntax.ArithmExpr, sc scope, text string, mode arithMode) {
	// Iterative: arithmetic nests as deep as the parser allows.
	stack := []syntax.ArithmExpr{e}
	for len(stack) > 0 {
		e := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		switch e := e.(type) {
		case *syntax.Word:
			if e == nil || len(e.Parts) == 1 && isLit(e.Parts[0]) {
				continue
			}
			if w := normWord(e, sc.src); w.lit && strings.ContainsAny(w.s, "$`") && (mode == arithIndex || strings.Contains(w.s, "[")) {
				a.unknowable(text, ReasonSubscript)
				return
			}
			if mode == arithExpr && sglQuotedSubst(e) {
				a.unknowable(text, ReasonArithQuoted)
				return
			}
		case *syntax.BinaryArithm:
			if e != nil {
				stack = append(stack, e.X, e.Y)
			}
		case *syntax.UnaryArithm:
			if e != nil {
				stack = append(stack, e.X)
			}
		case *syntax.ParenArithm:
			if e != nil {
				stack = append(stack, e.X)
			}
		}
	}
}

// testArith checks an operand of [[ ]] that bash evaluates as arithmetic
// or as a variable name with a subscript.
func (a *analyzer) testArith(e syntax.TestExpr, sc scope, text string) {
	if w, ok := e.(*syntax.Word); ok {
		a.arithCode(w, sc, text, arithValue)
	}
}

func isLit(n syntax.WordPart) bool {
	_, ok := n.(*syntax.Lit)
	return ok
}

// isNil reports whether n is nil or a typed nil pointer.
func isNil(n syntax.Node) bool {
	if n == nil {
		return true
	}
	v := reflect.ValueOf(n)
	return v.Kind() == reflect.Pointer && v.IsNil()
}

// spend charges n bytes of work to the budget. Once it is exhausted the
// analysis reports ReasonBudget (once) and follows nothing more: the caller
// treats the text as unknowable, so skipping the rest fails closed.
func (a *analyzer) spend(n int, text string) bool {
	if a.budgetHit {
		return false
	}
	if a.budget -= n; a.budget < 0 {
		a.budgetHit = true
		a.unknowable(text, ReasonBudget)
		return false
	}
	return true
}

// unknowable records a construct whose effect cannot be known.
func (a *analyzer) unknowable(text, reason string) {
	if len(text) > maxUnknowableText {
		cut := maxUnknowableText
		for cut > 0 && !isRuneStart(text[cut]) {
			cut--
		}
		text = text[:cut] + "..."
	}
	a.out.Unknowable = append(a.out.Unknowable, Unknowable{Text: text, Reason: reason})
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

// emit records a command, charging its text to the budget (wrapper chains
// repeat their inner words in every level's argv).
func (a *analyzer) emit(argv []string, wrappers []string, dynamic bool, text string) bool {
	n := 16
	for _, s := range argv {
		n += len(s) + 1
	}
	if !a.spend(n, text) {
		return false
	}
	a.out.Commands = append(a.out.Commands, newCommand(argv, wrappers, dynamic))
	return true
}

func newCommand(argv []string, wrappers []string, dynamic bool) Command {
	c := Command{
		Argv:    argv,
		Name:    baseName(argv[0]),
		Text:    quoteArgv(argv),
		Dynamic: dynamic,
	}
	if len(wrappers) > 0 {
		c.Wrappers = append([]string(nil), wrappers...)
	}
	return c
}

// baseName returns the part of p after its last slash ("/usr/bin/rm" ->
// "rm"); a trailing slash is ignored.
func baseName(p string) string {
	q := strings.TrimRight(p, "/")
	if q == "" {
		return p
	}
	if i := strings.LastIndexByte(q, '/'); i >= 0 {
		return q[i+1:]
	}
	return q
}

// quoteArgv quotes argv back into one line that the shell splits into the
// same words.
func quoteArgv(argv []string) string {
	var b strings.Builder
	for i, s := range argv {
		if i > 0 {
			b.WriteByte(' ')
		}
		q, err := syntax.Quote(s, syntax.LangBash)
		if err != nil {
			// Unreachable: words hold no NUL and Quote handles
			// any other byte in bash. Keep the text visible.
			q = "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
		}
		if i == 0 && needsCommandQuote(s) && q == s {
			q = "'" + s + "'"
		}
		b.WriteString(q)
	}
	return b.String()
}

// needsCommandQuote reports whether s, unquoted in command position, would
// be parsed as something other than a command name: a keyword-like builtin
// that the parser gives its own node.
func needsCommandQuote(s string) bool {
	switch s {
	case "declare", "local", "export", "readonly", "typeset", "nameref", "let":
		return false // the parser's own nodes yield the same Argv
	}
	return syntax.IsKeyword(s)
}

// nested analyses text found inside an argument (a -c string, an eval, a
// here-document fed to a shell) as a script of its own. Its commands carry
// wrappers; reportText is the construct to name if it cannot be followed.
func (a *analyzer) nested(text string, depth int, wrappers []string, stdinPipe bool, reportText string) {
	a.nestedScope(text, scope{depth: depth, wrappers: wrappers}, stdinPipe, reportText)
}

// nestedScope is nested with the inner scope's flags given in sc (its
// depth is the outer depth; src is set here).
func (a *analyzer) nestedScope(text string, sc scope, stdinPipe bool, reportText string) {
	depth, wrappers := sc.depth, sc.wrappers
	if depth+1 > MaxDepth {
		a.unknowable(reportText, ReasonTooDeep)
		return
	}
	if !a.spend(len(text), reportText) {
		return
	}
	if checkComplexity(text) != nil {
		a.unknowable(reportText, ReasonTooComplex)
		return
	}
	inner := scope{src: text, depth: depth + 1, wrappers: wrappers, appended: sc.appended}
	p := a.parser()
	// Like bash, the statements before a syntax error run before the
	// error is found, so they are reported too.
	var stmts []*syntax.Stmt
	err := p.Stmts(strings.NewReader(text), func(s *syntax.Stmt) bool {
		stmts = append(stmts, s)
		return true
	})
	a.walkFile(stmts, inner, stdinPipe)
	if err != nil {
		a.unknowable(reportText, ReasonShellSyntax)
	}
	// The shell that runs the string may be a POSIX sh such as dash (sh
	// -c on Debian and Ubuntu, su -c or ssh for a user whose shell it is).
	a.posix(text, inner, stdinPipe, reportText)
	// The shell that runs the string may read it in a double-byte locale.
	for _, v := range doubleByteReadings(text) {
		if !a.spend(len(v), reportText) {
			return
		}
		var vstmts []*syntax.Stmt
		err := p.Stmts(strings.NewReader(v), func(s *syntax.Stmt) bool {
			vstmts = append(vstmts, s)
			return true
		})
		a.walkFile(vstmts, scope{src: v, depth: depth + 1, wrappers: wrappers, appended: sc.appended}, stdinPipe)
		if err != nil {
			a.unknowable(reportText, ReasonDoubleByte)
		}
	}
}

// appendWrapper returns ws with w added, never sharing ws's backing array.
func appendWrapper(ws []string, w ...string) []string {
	out := make([]string, 0, len(ws)+len(w))
	out = append(out, ws...)
	return append(out, w...)
}

// decl reports a declare/export/local/readonly/typeset/nameref clause as a
// command, and follows prompt variables it sets.
func (a *analyzer) decl(d *syntax.DeclClause, sc scope) {
	if d.Variant == nil {
		return
	}
	argv := []string{d.Variant.Value}
	dynamic := sc.appended
	var quoted []string
	for _, as := range d.Args {
		if as == nil {
			continue
		}
		t, lit := assignText(as, sc.src)
		argv = append(argv, t)
		dynamic = dynamic || !lit
		if as.Naked && as.Name == nil && (!lit || strings.HasPrefix(t, "-") && strings.ContainsRune(t, 'n')) {
			// declare -n: a nameref, through which a later assignment
			// reaches a variable not named where it is made.
			a.unknowable(nodeText(sc.src, d), ReasonRebind)
		}
		if as.Naked && as.Name == nil && lit && !strings.HasPrefix(t, "-") && !strings.HasPrefix(t, "+") {
			quoted = append(quoted, t)
		}
	}
	a.emit(argv, sc.wrappers, dynamic, nodeText(sc.src, d))
	for _, t := range quoted {
		// declare "PS1=..." assigns as PS1=... does.
		a.quotedDecl(t, sc, nodeText(sc.src, d))
	}
}

// quotedDecl follows a declare argument that the parser read as a word,
// not an assignment (it is quoted: export "PROMPT_COMMAND=cmd"), as bash
// does: the text up to "=" names the variable.
func (a *analyzer) quotedDecl(t string, sc scope, text string) {
	name, value, isAssign := strings.Cut(t, "=")
	name = strings.TrimSuffix(name, "+")
	base, sub, hasSub := strings.Cut(name, "[")
	if hasSub && strings.ContainsAny(sub, "$`") {
		a.unknowable(text, ReasonSubscript)
	}
	if why := specialVarReason(base); why != "" && isAssign {
		a.unknowable(text, why)
		return
	}
	if isAssign && !promptVar(base) && storedSubscriptCode(value) {
		a.unknowable(text, ReasonStoredSubscript)
	}
	if why := termAssignReason(base, value, !hasSub && !strings.HasSuffix(strings.TrimSuffix(t, value), "+=")); why != "" && isAssign {
		a.unknowable(text, why)
		return
	}
	if isAssign && !hasSub {
		a.codeVar(base, word{s: value, lit: true}, sc, text)
	}
	if isAssign && promptVar(base) {
		a.promptString(base, value, sc, text)
	}
}

// assignText returns the normalised text of one declare argument, and
// whether it is literal.
func assignText(as *syntax.Assign, src string) (string, bool) {
	switch {
	case as.Naked && as.Name == nil && as.Value != nil:
		w := normWord(as.Value, src)
		return w.s, w.lit
	case as.Naked && as.Name != nil:
		return as.Name.Value, true
	case as.Name != nil && as.Index == nil && as.Array == nil:
		op := "="
		if as.Append {
			op = "+="
		}
		w := word{lit: true}
		if as.Value != nil {
			w = normWord(as.Value, src)
		}
		return as.Name.Value + op + w.s, w.lit
	}
	return stripNUL(nodeText(src, as)), false // no argument holds a NUL
}

// let reports a let clause as a command.
func (a *analyzer) let(l *syntax.LetClause, sc scope) {
	argv := []string{"let"}
	dynamic := sc.appended
	for _, e := range l.Exprs {
		if isNil(e) {
			continue
		}
		if w, ok := e.(*syntax.Word); ok {
			nw := normWord(w, sc.src)
			if nw.lit && strings.Contains(nw.s, "[") && strings.ContainsAny(nw.s, "$`") {
				// A subscript in the string is evaluated, substitutions too.
				a.unknowable(nodeText(sc.src, l), ReasonSubscript)
			}
			argv = append(argv, nw.s)
			dynamic = dynamic || !nw.lit
			continue
		}
		argv = append(argv, nodeText(sc.src, e))
		dynamic = true
	}
	a.emit(argv, sc.wrappers, dynamic, nodeText(sc.src, l))
}

// specialAssign follows assignments whose value the shell later runs as
// code: PROMPT_COMMAND is run before each prompt (each element of it, as
// an array), and PS0..PS4 undergo command substitution when shown.
func (a *analyzer) specialAssign(as *syntax.Assign, sc scope) {
	if as.Name == nil {
		return
	}
	if why := specialVarReason(as.Name.Value); why != "" {
		a.unknowable(nodeText(sc.src, as), why)
		return
	}
	if !promptVar(as.Name.Value) {
		// x='a[$(cmd)]' stores code that any arithmetic use of x runs:
		// $((x)), ((x)), [[ $x -eq 0 ]], declare -i y=$x.
		vals := []*syntax.Word{as.Value}
		if as.Array != nil {
			for _, e := range as.Array.Elems {
				if e != nil {
					vals = append(vals, e.Value)
				}
			}
		}
		for _, v := range vals {
			if v == nil {
				continue
			}
			if w := normWord(v, sc.src); w.lit && storedSubscriptCode(w.s) {
				a.unknowable(nodeText(sc.src, as), ReasonStoredSubscript)
				break
			}
		}
	}
	if termVar(as.Name.Value) && !as.Naked {
		v := word{lit: true}
		if as.Value != nil {
			v = normWord(as.Value, sc.src)
		}
		if why := termAssignReason(as.Name.Value, v.s, v.lit && !as.Append && as.Array == nil && as.Index == nil); why != "" {
			a.unknowable(nodeText(sc.src, as), why)
			return
		}
	}
	name := as.Name.Value
	if !as.Naked && as.Array == nil && as.Index == nil {
		v := word{lit: true}
		if as.Value != nil {
			v = normWord(as.Value, sc.src)
		}
		a.codeVar(name, v, sc, nodeText(sc.src, as))
	}
	if !promptVar(name) {
		return
	}
	text := nodeText(sc.src, as)
	if as.Array != nil {
		for _, e := range as.Array.Elems {
			if e != nil && e.Value != nil {
				a.promptValue(name, e.Value, sc, text)
			}
		}
		return
	}
	if as.Value != nil {
		a.promptValue(name, as.Value, sc, text)
	}
}

// promptValue follows one value assigned to a prompt variable.
func (a *analyzer) promptValue(name string, value *syntax.Word, sc scope, text string) {
	w := normWord(value, sc.src)
	if !w.lit {
		a.unknowable(text, ReasonPrompt)
		return
	}
	a.promptString(name, w.s, sc, text)
}

// promptString follows the literal value s assigned to a prompt variable.
func (a *analyzer) promptString(name, s string, sc scope, text string) {
	w := word{s: s, lit: true}
	if name == "PROMPT_COMMAND" {
		a.nested(w.s, sc.depth, appendWrapper(sc.wrappers, name), false, text)
		return
	}
	// A prompt string is expanded like a here-document: only its
	// substitutions can run anything.
	if !strings.Contains(w.s, "$") && !strings.Contains(w.s, "`") {
		return
	}
	if !a.spend(len(w.s), text) {
		return
	}
	if sc.depth+1 > MaxDepth || checkComplexity(w.s) != nil {
		a.unknowable(text, ReasonPrompt)
		return
	}
	doc, err := a.parser().Document(strings.NewReader(w.s))
	if err != nil {
		a.unknowable(text, ReasonPrompt)
		return
	}
	inner := scope{src: w.s, depth: sc.depth + 1, wrappers: appendWrapper(sc.wrappers, name)}
	a.walkWordForCommands(doc, inner)
}

// walkWordForCommands visits the substitutions inside a word parsed on its
// own (a prompt string), by walking it as the value of an assignment-only
// statement, which reports no command of its own.
func (a *analyzer) walkWordForCommands(w *syntax.Word, sc scope) {
	carrier := &syntax.Stmt{Cmd: &syntax.CallExpr{Assigns: []*syntax.Assign{{Naked: true, Value: w}}}}
	a.walkFile([]*syntax.Stmt{carrier}, sc, false)
}
