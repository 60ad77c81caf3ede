package shellcmd

import (
	"slices"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// ReasonPosixSh: a POSIX shell without bash's extensions (dash, Debian's
// and Ubuntu's /bin/sh; ash, busybox sh) reads the text as something that
// does not parse, where bash reads it otherwise.
const ReasonPosixSh = "reads differently in a POSIX sh such as dash"

// maxPosixRewrites bounds the rounds of posixReading: each round rewrites
// constructs that bash's reading had hidden inside an ANSI-C string.
const maxPosixRewrites = 16

// posixReading returns src as dash reads it, written so that bash parses
// it the same way, and whether that differs from src. Three bash
// extensions change where commands begin in a shell that lacks them:
//
//   - `((a))`, bash's arithmetic command, is two nested subshells in
//     dash: `((rm -rf /srv))` is division to bash and an rm to dash;
//   - `&>f`, bash's redirect of both outputs, is `&` then `>f` in dash:
//     `echo x &>/dev/null rm -rf /srv` runs rm in the background there;
//   - `$'...'`, bash's ANSI-C string, is a `$` then a single-quoted string
//     in dash, which the first `'` ends (a backslash escapes nothing):
//     `echo $'\'; rm -rf /srv; \”` is one echo to bash.
//
// The reading inserts a blank into `((`, its `))` and `&>`, and a backslash before
// such a `$`, where bash's parse finds them, and parses again until no
// such construct is left (what was inside an ANSI-C string may hold more).
// Text that does not parse at some round is returned as far as it got:
// the caller parses it and judges what comes before the error. ok is
// false where there is nothing to rewrite; done is false where rounds
// were left when maxPosixRewrites ran out.
func posixReading(src string) (reading string, ok, done bool) {
	if !strings.Contains(src, "((") && !strings.Contains(src, "$'") && !strings.Contains(src, "&>") {
		return "", false, true
	}
	cur, changed := src, false
	p := syntax.NewParser(syntax.Variant(syntax.LangBash))
	for range maxPosixRewrites {
		var at []int // offsets before which to insert, and what
		var what []byte
		var stmts []*syntax.Stmt
		p.Stmts(strings.NewReader(cur), func(s *syntax.Stmt) bool {
			stmts = append(stmts, s)
			return true
		})
		eachNode(stmts, func(n syntax.Node) {
			switch n := n.(type) {
			case *syntax.ArithmCmd:
				if o := int(n.Left.Offset()); o+1 < len(cur) && cur[o:o+2] == "((" {
					at, what = append(at, o+1), append(what, ' ')
				}
				if o := int(n.Right.Offset()); o+1 < len(cur) && cur[o:o+2] == "))" {
					at, what = append(at, o+1), append(what, ' ')
				}
			case *syntax.Redirect:
				if n.Op == syntax.RdrAll || n.Op == syntax.AppAll {
					if o := int(n.OpPos.Offset()); o+1 < len(cur) && cur[o:o+2] == "&>" {
						at, what = append(at, o+1), append(what, ' ')
					}
				}
			case *syntax.SglQuoted:
				// Only a string holding a quote ends elsewhere in dash.
				if n.Dollar && strings.Contains(n.Value, "'") {
					if o := int(n.Left.Offset()); o < len(cur) && cur[o] == '$' {
						at, what = append(at, o), append(what, '\\')
					}
				}
			}
		})
		if len(at) == 0 {
			return cur, changed, true
		}
		idx := make([]int, len(at))
		for i := range idx {
			idx[i] = i
		}
		slices.SortFunc(idx, func(a, b int) int { return at[b] - at[a] }) // last first
		next := cur
		for _, i := range idx {
			next = next[:at[i]] + string(what[i]) + next[at[i]:]
		}
		cur, changed = next, true
	}
	return cur, changed, false
}

// posixComplete reports whether text that bash finds unfinished is
// complete as dash reads it: a `$'` string that only a backslash keeps
// open (`echo $'\'; rm -rf /srv #`) ends at its first quote in dash, which
// then runs the line. The reading here is textual, since bash's parse of
// unfinished text gives no tree: every `$'` not escaped by a backslash
// becomes `\$'`.
func posixComplete(src string) bool {
	if !strings.Contains(src, "$'") {
		return false
	}
	var b strings.Builder
	bs := 0
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c == '$' && bs%2 == 0 && i+1 < len(src) && src[i+1] == '\'' {
			b.WriteByte('\\')
		}
		if c == '\\' {
			bs++
		} else {
			bs = 0
		}
		b.WriteByte(c)
	}
	v := b.String()
	f, err := parse(v)
	return err == nil && !trailingContinuation(v, f)
}

// posix judges text as dash reads it too, where that differs from bash's
// reading (see posixReading) and the shell that runs the text may be a
// POSIX sh: what dash would run is judged, and a reading that does not
// parse (dash stops with a syntax error after running what came before)
// or was not finished is unknowable. sc is the scope the text is walked
// in; its src is set here.
//
// Which shell runs the text follows from the wrappers around it: none
// for the text of a -c string given to bash, zsh or ksh, which have all
// three constructs. For top-level text the shell is the target's login
// shell, which is not known and is bash far more often than sh: there,
// the commands of dash's reading are judged, but an unknowable that only
// that reading has because it takes an arithmetic command's operands for
// a command (`(( $n > 1 ))`), or because that reading does not parse (the
// parser refuses `( a[i] )`, which bash and dash take), is not reported.
func (a *analyzer) posix(text string, sc scope, stdinPipe bool, reportText string) {
	top := true
	for i := len(sc.wrappers) - 1; i >= 0; i-- {
		first, _, _ := strings.Cut(sc.wrappers[i], " ")
		if bashLike[first] {
			return
		}
		if !sameShell(first) {
			top = false
			break
		}
	}
	v, ok, done := posixReading(text)
	if !ok {
		return
	}
	if !a.spend(len(v), reportText) {
		return
	}
	var stmts []*syntax.Stmt
	err := a.parser().Stmts(strings.NewReader(v), func(s *syntax.Stmt) bool {
		stmts = append(stmts, s)
		return true
	})
	sc.src = v
	before := len(a.out.Unknowable)
	a.walkFile(stmts, sc, stdinPipe)
	if top {
		kept := a.out.Unknowable[:before]
		for _, u := range a.out.Unknowable[before:] {
			switch u.Reason {
			case ReasonGlobCommand, ReasonParamCommand, ReasonArithCommand:
				continue
			}
			kept = append(kept, u)
		}
		a.out.Unknowable = kept
	}
	if (err != nil && !top) || !done {
		a.unknowable(reportText, ReasonPosixSh)
	}
}

// bashLike names the shells that read `((`, `&>` and `$'` as bash does.
var bashLike = map[string]bool{"bash": true, "rbash": true, "zsh": true, "ksh": true, "ksh93": true, "mksh": true}

// sameShell reports whether the wrapper label names code that the
// enclosing shell runs itself (eval, alias, trap, prompt variables).
func sameShell(label string) bool {
	switch label {
	case "eval", "alias", "abbr", "trap", "complete", "bind", "fc":
		return true
	}
	for _, c := range label {
		if !(c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '_') {
			return false
		}
	}
	return label != ""
}

// eachNode calls f for every node under stmts, like syntax.Walk but with
// a stack of its own: a tree that the parser could build nests too deeply
// for a recursive walk (see checkComplexity).
func eachNode(stmts []*syntax.Stmt, f func(syntax.Node)) {
	var stack []syntax.Node
	push := func(ns ...syntax.Node) {
		for _, n := range ns {
			if !isNil(n) {
				stack = append(stack, n)
			}
		}
	}
	for _, s := range stmts {
		push(s)
	}
	for len(stack) > 0 {
		node := stack[len(stack)-1]
		stack = stack[:len(stack)-1]
		f(node)
		switch n := node.(type) {
		case *syntax.Stmt:
			push(n.Cmd)
			for _, r := range n.Redirs {
				push(r)
			}
		case *syntax.Assign:
			push(n.Value, n.Index, n.Array)
		case *syntax.Redirect:
			push(n.Word, n.Hdoc)
		case *syntax.CallExpr:
			for _, x := range n.Assigns {
				push(x)
			}
			for _, x := range n.Args {
				push(x)
			}
		case *syntax.Subshell:
			for _, x := range n.Stmts {
				push(x)
			}
		case *syntax.Block:
			for _, x := range n.Stmts {
				push(x)
			}
		case *syntax.IfClause:
			for _, x := range n.Cond {
				push(x)
			}
			for _, x := range n.Then {
				push(x)
			}
			push(n.Else)
		case *syntax.WhileClause:
			for _, x := range n.Cond {
				push(x)
			}
			for _, x := range n.Do {
				push(x)
			}
		case *syntax.ForClause:
			push(n.Loop)
			for _, x := range n.Do {
				push(x)
			}
		case *syntax.WordIter:
			for _, x := range n.Items {
				push(x)
			}
		case *syntax.CStyleLoop:
			push(n.Init, n.Cond, n.Post)
		case *syntax.BinaryCmd:
			push(n.X, n.Y)
		case *syntax.FuncDecl:
			push(n.Body)
		case *syntax.Word:
			for _, x := range n.Parts {
				push(x)
			}
		case *syntax.DblQuoted:
			for _, x := range n.Parts {
				push(x)
			}
		case *syntax.CmdSubst:
			for _, x := range n.Stmts {
				push(x)
			}
		case *syntax.ParamExp:
			push(n.Index)
			if n.Slice != nil {
				push(n.Slice.Offset, n.Slice.Length)
			}
			if n.Repl != nil {
				push(n.Repl.Orig, n.Repl.With)
			}
			if n.Exp != nil {
				push(n.Exp.Word)
			}
		case *syntax.ArithmExp:
			push(n.X)
		case *syntax.ArithmCmd:
			push(n.X)
		case *syntax.BinaryArithm:
			push(n.X, n.Y)
		case *syntax.BinaryTest:
			push(n.X, n.Y)
		case *syntax.UnaryArithm:
			push(n.X)
		case *syntax.UnaryTest:
			push(n.X)
		case *syntax.ParenArithm:
			push(n.X)
		case *syntax.ParenTest:
			push(n.X)
		case *syntax.CaseClause:
			push(n.Word)
			for _, it := range n.Items {
				push(it)
			}
		case *syntax.CaseItem:
			for _, x := range n.Patterns {
				push(x)
			}
			for _, x := range n.Stmts {
				push(x)
			}
		case *syntax.TestClause:
			push(n.X)
		case *syntax.DeclClause:
			for _, x := range n.Args {
				push(x)
			}
		case *syntax.ArrayExpr:
			for _, x := range n.Elems {
				push(x)
			}
		case *syntax.ArrayElem:
			push(n.Index, n.Value)
		case *syntax.ExtGlob:
			push(n.Pattern)
		case *syntax.ProcSubst:
			for _, x := range n.Stmts {
				push(x)
			}
		case *syntax.TimeClause:
			push(n.Stmt)
		case *syntax.CoprocClause:
			push(n.Stmt)
		case *syntax.LetClause:
			for _, x := range n.Exprs {
				push(x)
			}
		}
	}
}

// zshQualifierCode returns the code that zsh runs for a glob qualifier
// list (the text inside *(...)): the string of each e qualifier, written
// e:code: with any delimiter (or a bracket pair: e{code}), and the name
// after each + (*(+name) runs name for every file). It reads every e
// followed by a delimiter as a qualifier, since which letters take
// arguments would need zsh's whole qualifier grammar: for a bash pattern
// (*(one|two)) that judges text that no shell runs, which costs nothing.
func zshQualifierCode(pat string) []string {
	pat = unquote(pat) // zsh removes the word's quotes first
	var out []string
	for i := 0; i+1 < len(pat); i++ {
		switch pat[i] {
		case 'e':
			d := pat[i+1]
			if isWordChar(d) || d == ' ' || d == '\t' {
				continue
			}
			end := map[byte]byte{'(': ')', '[': ']', '{': '}', '<': '>'}[d]
			if end == 0 {
				end = d
			}
			if j := strings.IndexByte(pat[i+2:], end); j >= 0 {
				out = append(out, pat[i+2:i+2+j])
				i += 2 + j
			}
		case '+':
			j := i + 1
			for j < len(pat) && isWordChar(pat[j]) {
				j++
			}
			if j > i+1 {
				out = append(out, pat[i+1:j])
				i = j - 1
			}
		}
	}
	return out
}

func isWordChar(c byte) bool {
	return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9'
}

// unquote removes shell quoting from s: single quotes keep what they
// hold, double quotes what they hold less the backslashes before $, `,
// ", \ and newline, and an unquoted backslash escapes the next byte.
func unquote(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch c := s[i]; c {
		case '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				b.WriteString(s[i+1:])
				return b.String()
			}
			b.WriteString(s[i+1 : i+1+j])
			i += 1 + j
		case '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("$`\"\\\n", s[i+1]) >= 0 {
					i++
				}
				b.WriteByte(s[i])
			}
		case '\\':
			if i+1 < len(s) {
				i++
				b.WriteByte(s[i])
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// otherShellComplete reports whether text that bash finds unfinished (it
// waits for the next line; err is its parse error) is complete as zsh or
// fish reads it, which then run it at once: zsh closes a brace group with
// a } that bash reads as an argument (`{ rm -rf /srv }`, and the short
// forms `if true { rm -rf /srv }`, `f() { rm -rf /srv }`), and fish ends
// its if and while blocks, which have no then or do, with end (`if true;
// rm -rf /srv; end`).
func otherShellComplete(src string, err error) bool {
	complete := func(t string) bool {
		f, err := parse(t)
		return err == nil && !trailingContinuation(t, f)
	}
	if msg := err.Error(); strings.Contains(msg, "quote") || strings.Contains(msg, "here-document") {
		return false
	}
	if z := strings.TrimRight(src, " \t\n;"); strings.HasSuffix(z, " }") || strings.HasSuffix(z, "\t}") {
		return true
	}
	s := strings.TrimRight(src, " \t\n;")
	base, ok := strings.CutSuffix(s, "end")
	if !ok || base != "" && !strings.ContainsRune(" \t\n;", rune(base[len(base)-1])) {
		return false
	}
	for _, w := range strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == '\t' || r == '\n' || r == ';' }) {
		if w == "then" || w == "do" {
			return false
		}
	}
	return complete(base+" then :; fi") || complete(base+" do :; done")
}

// fishReading returns src with fish's single-quoted strings written as
// bash reads them, and whether that differs: inside single quotes fish
// takes \' for a quote and \\ for a backslash, so that 'a\” is a'
// there, where bash ends the string at the second quote
// (`echo 'a\”; rm -rf /srv; echo '\” #'` is one echo to bash).
func fishReading(src string) (string, bool) {
	if !strings.Contains(src, "\\'") && !strings.Contains(src, "\\\\") {
		return "", false
	}
	var b strings.Builder
	changed := false
	for i := 0; i < len(src); i++ {
		c := src[i]
		switch c {
		case '\\':
			b.WriteByte(c)
			if i+1 < len(src) {
				i++
				b.WriteByte(src[i])
			}
		case '"':
			b.WriteByte(c)
			for i++; i < len(src) && src[i] != '"'; i++ {
				if src[i] == '\\' && i+1 < len(src) {
					b.WriteByte(src[i])
					i++
				}
				b.WriteByte(src[i])
			}
			if i < len(src) {
				b.WriteByte('"')
			}
		case '\'':
			b.WriteByte('\'')
			for i++; i < len(src) && src[i] != '\''; i++ {
				if src[i] == '\\' && i+1 < len(src) && (src[i+1] == '\'' || src[i+1] == '\\') {
					i++
					changed = true
					if src[i] == '\'' {
						b.WriteString(`'\''`)
						continue
					}
				}
				b.WriteByte(src[i])
			}
			if i < len(src) {
				b.WriteByte('\'')
			}
		default:
			b.WriteByte(c)
		}
	}
	return b.String(), changed
}
