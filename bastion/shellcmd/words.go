package shellcmd

import (
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// word is one normalised shell word.
type word struct {
	s     string // quotes and escapes resolved; run-time parts as source text
	lit   bool   // s is exactly what the shell passes: no run-time expansion
	glob  bool   // an unquoted glob metacharacter (* ? [...] or an extglob)
	subst bool   // holds a command substitution
	param bool   // holds a parameter expansion
	arith bool   // holds an arithmetic expansion
	proc  bool   // holds a process substitution
}

// text returns the words joined by spaces, for display.
func joinWords(ws []word) string {
	var b strings.Builder
	for i, w := range ws {
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(w.s)
	}
	return b.String()
}

func wordStrings(ws []word) []string {
	out := make([]string, len(ws))
	for i, w := range ws {
		out[i] = w.s
	}
	return out
}

// quoteContext says how backslashes in a literal are interpreted.
type quoteContext int

const (
	unquoted quoteContext = iota
	inDouble
	inHeredoc
)

// normWord normalises w. src is the text w was parsed from (for the source
// text of run-time parts).
func normWord(w *syntax.Word, src string) word {
	if len(w.Parts) == 1 {
		// The common case: one plain literal.
		if l, ok := w.Parts[0].(*syntax.Lit); ok && strings.IndexByte(l.Value, '\\') < 0 && strings.IndexByte(l.Value, 0) < 0 && !zshParam(l.Value) {
			return word{s: l.Value, lit: true, glob: hasGlobMeta(l.Value)}
		}
	}
	var out word
	out.lit = true
	var b strings.Builder
	normParts(w.Parts, src, unquoted, &b, &out)
	out.s = stripNUL(b.String())
	return out
}

func normParts(parts []syntax.WordPart, src string, qc quoteContext, b *strings.Builder, out *word) {
	for i, part := range parts {
		next := i + 1
		switch p := part.(type) {
		case *syntax.Lit:
			v := p.Value
			if qc == unquoted && hasGlobMeta(v) {
				out.glob = true
			}
			// The parser splits "$=x" into "$" and "=x".
			if zshParam(v) || strings.HasSuffix(v, "$") && next < len(parts) && litStartsZshParam(parts[next]) {
				out.lit = false
				out.param = true
			}
			b.WriteString(unescape(v, qc))
		case *syntax.SglQuoted:
			if p.Dollar {
				b.WriteString(ansiC(p.Value))
			} else {
				b.WriteString(p.Value)
			}
		case *syntax.DblQuoted:
			normParts(p.Parts, src, inDouble, b, out)
		case *syntax.ParamExp:
			out.lit = false
			out.param = true
			b.WriteString(nodeText(src, p))
		case *syntax.CmdSubst:
			out.lit = false
			out.subst = true
			b.WriteString(nodeText(src, p))
		case *syntax.ArithmExp:
			out.lit = false
			out.arith = true
			b.WriteString(nodeText(src, p))
		case *syntax.ProcSubst:
			out.lit = false
			out.proc = true
			b.WriteString(nodeText(src, p))
		case *syntax.ExtGlob:
			if qc == unquoted {
				out.glob = true
			}
			b.WriteString(p.Op.String())
			b.WriteString(p.Pattern.Value)
			b.WriteByte(')')
		case *syntax.BraceExp:
			// Only present after syntax.SplitBraces, in a word
			// kept unexpanded because its expansion was too large.
			// (Its Pos panics when an element is empty.)
			sep := ","
			if p.Sequence {
				sep = ".."
			}
			b.WriteByte('{')
			for i, e := range p.Elems {
				if i > 0 {
					b.WriteString(sep)
				}
				if e != nil {
					normParts(e.Parts, src, qc, b, out)
				}
			}
			b.WriteByte('}')
		default:
			out.lit = false
			b.WriteString(nodeText(src, part))
		}
	}
}

// unescape resolves backslash escapes in a literal as the shell does in
// the given context. Line continuations are already removed by the parser.
func unescape(v string, qc quoteContext) string {
	if strings.IndexByte(v, '\\') < 0 {
		return v
	}
	var b strings.Builder
	b.Grow(len(v))
	for i := 0; i < len(v); i++ {
		c := v[i]
		if c != '\\' || i+1 == len(v) {
			b.WriteByte(c)
			continue
		}
		next := v[i+1]
		switch qc {
		case unquoted:
			// A backslash quotes any following character.
			b.WriteByte(next)
			i++
		case inDouble, inHeredoc:
			switch next {
			case '$', '`', '\\', '\n':
				b.WriteByte(next)
				i++
			case '"':
				if qc == inDouble {
					b.WriteByte(next)
					i++
				} else {
					b.WriteByte(c)
				}
			default:
				b.WriteByte(c)
			}
		}
	}
	return b.String()
}

// ansiC decodes the body of a $'...' string; like bash, the value ends at
// the first NUL it produces.
func ansiC(v string) string {
	if strings.IndexByte(v, '\\') < 0 {
		return v
	}
	// A fresh Config each time: with a nil one, expand.Format writes into
	// a builder shared by the whole process, and concurrent calls corrupt
	// each other's results (mvdan.cc/sh/v3 v3.14.1).
	s, _, err := expand.Format(&expand.Config{}, v, nil)
	if err != nil {
		return v
	}
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	return s
}

// stripNUL removes NUL bytes, which no argument can hold.
func stripNUL(s string) string {
	if strings.IndexByte(s, 0) < 0 {
		return s
	}
	return strings.ReplaceAll(s, "\x00", "")
}

// hasGlobMeta reports whether an unquoted literal (with its backslashes)
// holds an unescaped *, ? or a [ with a later ].
func hasGlobMeta(v string) bool {
	open := false
	for i := 0; i < len(v); i++ {
		switch v[i] {
		case '\\':
			i++
		case '*', '?':
			return true
		case '[':
			open = true
		case ']':
			if open {
				return true
			}
		}
	}
	return false
}

// nodeText returns the source text of n, or "" if its offsets are not in
// src (a node built by brace expansion).
func nodeText(src string, n syntax.Node) (text string) {
	if isNil(n) {
		return ""
	}
	defer func() {
		// Pos and End index into child nodes, and some nodes built
		// by the syntax package's own helpers lack them.
		if recover() != nil {
			text = ""
		}
	}()
	start, end := n.Pos(), n.End()
	if !start.IsValid() || !end.IsValid() {
		return ""
	}
	s, e := start.Offset(), end.Offset()
	if s > e || e > uint(len(src)) {
		return ""
	}
	return src[s:e]
}

// heredocBody returns the body of a here-document redirect and whether it
// is literal: a quoted delimiter makes the body literal as written; an
// unquoted one allows expansions and backslash escapes in it.
func heredocBody(r *syntax.Redirect, src string) (string, bool) {
	if r.Hdoc == nil {
		return "", true
	}
	quotedDelim := false
	if r.Word != nil {
		for _, p := range r.Word.Parts {
			if _, ok := p.(*syntax.Lit); !ok {
				quotedDelim = true
			} else if strings.ContainsRune(p.(*syntax.Lit).Value, '\\') {
				quotedDelim = true
			}
		}
	}
	var b strings.Builder
	if quotedDelim {
		for _, p := range r.Hdoc.Parts {
			if l, ok := p.(*syntax.Lit); ok {
				b.WriteString(l.Value)
			} else {
				b.WriteString(nodeText(src, p))
			}
		}
		return stripNUL(b.String()), true
	}
	out := word{lit: true}
	normParts(r.Hdoc.Parts, src, inHeredoc, &b, &out)
	return stripNUL(b.String()), out.lit
}

// zshParam reports a parameter expansion that zsh performs and bash does
// not: $=x (x's value split into words), $~x (its value a pattern), $^x
// and $+x, bare or braced (${=x} is a syntax error to bash). v is a
// literal's source text, unquoted or inside double quotes, where a
// backslash before the $ keeps it literal.
func zshParam(v string) bool {
	for i := strings.IndexByte(v, '$'); i >= 0 && i+2 < len(v); {
		bs := 0
		for j := i - 1; j >= 0 && v[j] == '\\'; j-- {
			bs++
		}
		if bs%2 == 0 && strings.IndexByte("=~^+", v[i+1]) >= 0 {
			c := v[i+2]
			if c == '_' || c == '{' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' {
				return true
			}
		}
		k := strings.IndexByte(v[i+1:], '$')
		if k < 0 {
			break
		}
		i += 1 + k
	}
	return false
}

// litStartsZshParam reports a literal that, after a "$", makes one of
// zsh's parameter expansions (see zshParam).
func litStartsZshParam(p syntax.WordPart) bool {
	l, ok := p.(*syntax.Lit)
	return ok && zshParam("$"+l.Value)
}
