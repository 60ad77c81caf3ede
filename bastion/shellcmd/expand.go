package shellcmd

// Word expansion for the words of a command: brace expansion, the split
// at an unquoted $IFS, and shell-like splitting of a string (env -S). The
// normalisation of one word is in words.go.

import (
	"strings"

	"mvdan.cc/sh/v3/expand"
	"mvdan.cc/sh/v3/syntax"
)

// expandArgs normalises the words of a command: brace expansion first (as
// bash does), then the split at an unquoted $IFS, then quote removal.
func (a *analyzer) expandArgs(args []*syntax.Word, sc scope, text string) []word {
	out := make([]word, 0, len(args))
	for _, w := range args {
		if w == nil || len(w.Parts) == 0 {
			continue
		}
		exp, reason := a.braceWords(w, text)
		if reason != "" {
			a.unknowable(text, reason)
		}
		if exp == nil {
			out = append(out, splitIFS(w, sc.src)...)
			continue
		}
		for _, ew := range exp {
			out = append(out, splitIFS(ew, sc.src)...)
		}
	}
	return out
}

// braceWords expands the brace expressions in w ({rm,-rf,x} is three
// words). It returns nil if w holds none, or if the expansion is too large
// (with the reason); every word produced is charged to the budget, so
// expansion stays linear in the input.
func (a *analyzer) braceWords(w *syntax.Word, text string) ([]*syntax.Word, string) {
	if !syntax.SplitBraces(w) {
		return nil, ""
	}
	var words []*syntax.Word
	for ew, err := range expand.BracesSeq(&expand.Config{}, w) {
		if err != nil || len(words) >= MaxBraceWords {
			return nil, ReasonBraceLimit
		}
		cost := len(ew.Parts)
		for _, p := range ew.Parts {
			if l, ok := p.(*syntax.Lit); ok {
				cost += len(l.Value)
			}
		}
		if !a.spend(cost, text) {
			return nil, ""
		}
		words = append(words, ew)
	}
	return words, ""
}

// splitIFS normalises w, splitting it where an unquoted $IFS or ${IFS}
// stands: with the default IFS that expansion separates words, the classic
// way to write `rm${IFS}-rf${IFS}/` without spaces.
func splitIFS(w *syntax.Word, src string) []word {
	cut := -1
	for i, p := range w.Parts {
		if pe, ok := p.(*syntax.ParamExp); ok && isPlainIFS(pe) {
			cut = i
			break
		}
	}
	if cut < 0 {
		return []word{normWord(w, src)}
	}
	var out []word
	start := 0
	for i := 0; i <= len(w.Parts); i++ {
		if i < len(w.Parts) {
			pe, ok := w.Parts[i].(*syntax.ParamExp)
			if !ok || !isPlainIFS(pe) {
				continue
			}
		}
		if i > start {
			out = append(out, normWord(&syntax.Word{Parts: w.Parts[start:i]}, src))
		}
		start = i + 1
	}
	return out
}

func isPlainIFS(pe *syntax.ParamExp) bool {
	return pe.Param != nil && pe.Param.Value == "IFS" && pe.Index == nil && pe.Exp == nil &&
		pe.Slice == nil && pe.Repl == nil && !pe.Excl && !pe.Length && pe.NestedParam == nil
}

// splitShellWords splits a literal string into words like the shell (used
// for env -S, which follows nearly the same rules).
func (a *analyzer) splitShellWords(v word) ([]word, bool) {
	if !v.lit {
		return nil, false
	}
	if !strings.ContainsAny(v.s, "\\'\"$`#{[*?~=;&|<>()") {
		var out []word
		for _, f := range strings.Fields(v.s) {
			out = append(out, word{s: f, lit: true})
		}
		return out, true
	}
	if checkComplexity(v.s) != nil {
		return nil, false
	}
	var out []word
	err := a.parser().Words(strings.NewReader(v.s), func(w *syntax.Word) bool {
		out = append(out, normWord(w, v.s))
		return true
	})
	return out, err == nil
}
