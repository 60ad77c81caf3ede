package shellcmd

import (
	"math"
	"runtime/debug"
	"strings"
	"testing"
)

// hostile returns inputs of about n bytes built to stress the parser and
// the analysis: deep nesting, long chains, expansion bombs.
func hostile(n int) map[string]string {
	rep := func(s string, k int) string { return strings.Repeat(s, max(k, 1)) }
	return map[string]string{
		"parens":           rep("(", n),
		"subshells":        rep("( ", n/2),
		"cmd substs":       rep("$(", n/2),
		"and chain":        rep("a&&", n/3) + "a",
		"or chain":         rep("a||", n/3) + "a",
		"pipeline":         rep("a|", n/2) + "a",
		"blocks":           rep("{ ", n/2),
		"ifs":              rep("if ", n/3),
		"whiles":           rep("while ", n/6),
		"untils":           rep("until ", n/6),
		"quoted substs":    rep(`"$(`, n/3),
		"backquotes":       rep("`", n),
		"statements":       rep("a;", n/2),
		"arith unary":      "((" + rep("- ", n/2) + "1))",
		"arith not":        "((" + rep("!", n) + "1))",
		"arith parens":     "$((" + rep("(", n),
		"arith sum":        "((" + rep("1+", n/2) + "1))",
		"arith power":      "((" + rep("2**", n/3) + "1))",
		"arith ternary":    "((" + rep("1?", n/2) + "1))",
		"arith assign":     "((" + rep("a=", n/2) + "1))",
		"param defaults":   rep("${a:-", n/5),
		"param index":      rep("${a[", n/4),
		"test not":         "[[ " + rep("! ", n/2) + "x ]]",
		"test parens":      "[[ " + rep("( ", n/2) + "x ]]",
		"test and":         "[[ " + rep("a && ", n/5) + "a ]]",
		"here-docs":        rep("cat <<E\n", n/8),
		"proc substs":      rep("<(", n/2),
		"functions":        rep("f() ", n/4),
		"time keywords":    rep("time ", n/5) + "a",
		"coprocs":          rep("coproc ", n/7) + "a",
		"case nest":        rep("case x in a) ", n/13),
		"case arms":        "case x in " + rep("a) ;; ", n/6) + "esac",
		"elifs":            "if a; then b; " + rep("elif a; then b; ", n/16) + "fi",
		"arrays":           "a=(" + rep("$(", n/2),
		"dollar brackets":  "$[" + rep("$[", n/2),
		"quoted defaults":  rep(`"${a:-"`, n/7),
		"extglobs":         "echo " + rep("@(", n/2),
		"ansi-c":           rep("$'", n/2),
		"brace words":      "echo " + rep("{", n),
		"brace bomb":       "echo " + rep("{a,b}", n/5),
		"brace bomb eval":  "eval " + rep("{a,b}", 20) + rep("x", n-120),
		"brace sequence":   "echo {1..999999999}",
		"long word":        "echo " + rep("a", n),
		"many words":       "echo " + rep("a ", n/2),
		"quoted parts":     "echo " + rep(`a"b"`, n/4),
		"wrappers":         rep("nice ", n/5) + "rm x",
		"sudo chain":       rep("sudo -u r ", n/10) + "rm x",
		"find exec chain":  "find " + rep("-exec find ", n/11) + "x",
		"xargs chain":      rep("xargs ", n/6) + "sh -c x",
		"bash -c chain":    nestedC(n),
		"ansi-c parens -c": "bash -c $'" + rep(`\x28`, n/4) + "'",
		"eval chain":       rep("eval ", n/5) + "rm x",
		"env -S chain":     rep("env -S ", n/7) + "rm x",
		"backslashes":      rep(`\`, n),
		"here-string sh":   "bash <<< '" + rep("a;", n/2) + "'",
		"alias values":     rep("alias a='rm x' ", n/15),
		"newlines":         rep("\n", n),
		"comments":         rep("# c\n", n/4),
		"nul bytes":        rep("\x00", n),
		"invalid utf8":     "echo " + rep("\xff\xfe", n/2),
		"ifs splits":       "rm" + rep("${IFS}x", n/7),
		"globs":            "ls " + rep("*?[a]", n/5),
	}
}

// nestedC builds bash -c 'bash -c '\”...'\”' about n bytes long; the
// quoting doubles per level, so it is only a few levels deep.
func nestedC(n int) string {
	s := "rm x"
	for len(s) < n/2 {
		s = "bash -c '" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return s
}

// hostileSeeds are small versions of the hostile inputs, for the fuzzer.
var hostileSeeds = func() []string {
	var out []string
	for _, s := range hostile(64) {
		out = append(out, s)
	}
	return out
}()

// TestHostileInputs analyses each hostile input (the benchmarks measure the
// megabyte versions): each must return, with an analysis or an error.
func TestHostileInputs(t *testing.T) {
	t.Parallel()
	for name, src := range hostile(64 << 10) {
		t.Run(name, func(t *testing.T) {
			a, err := Analyze(src)
			if err == nil && a == nil {
				t.Fatalf("got neither analysis nor error")
			}
		})
	}
}

// stackCases are the constructs that make the parser recurse: a prefix,
// a unit repeated to nest, and a suffix.
var stackCases = []struct{ name, prefix, unit, suffix string }{
	{"arith parens", "((", "(", ""},
	{"dollar brackets", "", "$[", ""},
	{"param index", "", "${a[", ""},
	{"subshells", "", "( ", ""},
	{"cmd substs", "", "$(", ""},
	{"quoted substs", "", `"$(`, ""},
	{"blocks", "", "{ ", ""},
	{"ifs", "", "if ", ""},
	{"whiles", "", "while ", ""},
	{"case nest", "", "case x in a) ", ""},
	{"select", "", "select x in a; do ", ""},
	{"c for", "", "for ((;;)) do ", ""},
	{"functions", "", "f() ", ""},
	{"time", "", "time ", "a"},
	{"coproc", "", "coproc ", "a"},
	{"test not", "[[ ", "! ", "x ]]"},
	{"test parens", "[[ ", "( ", "x ]]"},
	{"test and", "[[ ", "a && ", "a ]]"},
	{"arith unary", "((", "- ", "1))"},
	{"arith not", "((", "!", "1))"},
	{"arith ternary", "((", "1?", "1))"},
	{"arith assign", "((", "a=", "1))"},
	{"arith power", "((", "2**", "1))"},
	{"param defaults", "", "${a:-", ""},
	{"quoted defaults", "", `"${a:-"`, ""},
	{"proc substs", "", "<(", ""},
	{"here-string substs", "cat", " <<<$(", ""},
	{"redirect substs", "a", " >$(", ""},
	{"arrays", "a=(", "$(", ""},
	{"extglobs", "echo ", "@(", ""},
	{"backquotes", "", "`", ""},
	{"escaped backquotes", "`", "\\`", ""},
	{"quotes", "echo ", `"a"`, ""},
	{"ansi-c", "echo ", "$'a'", ""},
	{"arith comma", "((", "1,", "1))"},
	{"arith less", "((", "1<", "1))"},
	{"arith modulo", "((", "1%", "1))"},
	{"arith shift", "((", "1<<", "1))"},
	{"arith pre-increment", "((", "++a,", "1))"},
	{"slices", "", "${a:", ""},
	{"replace", "", "${a/", ""},
	{"here-docs", "cat", " <<E", "\nE\n"},
	{"redirects", "echo", " >x", ""},
	{"dup redirects", "echo", " 2>&1", ""},
	{"pipes", "", "a|", "a"},
	{"and chain", "", "a&&", "a"},
	{"elif chain", "if a; then b; ", "elif a; then b; ", "fi"},
	{"assignments", "", "a=b ", "c"},
	{"test binary", "[[ ", "a == ", "a ]]"},
	{"test regex", "[[ a =~ ", "(", " ]]"},
	{"let", "let ", "-", "1"},
	{"case patterns", "case x in ", "a|", "b) ;; esac"},
	{"negated pipes", "", "! a|", "a"},
	{"dollar quotes", "", `$"`, ""},
	{"nested words", "echo ", `"${a:-"`, ""},
}

// TestStackBound parses, for each construct, the deepest input that the
// charges admit, under a stack limit equal to the admitted charge (twice
// that with the race detector, which enlarges frames; and at an eighth of
// the budget, since it is also slow). Go cannot recover from a stack
// overflow: it kills the test binary, so passing shows that the byte
// charges bound the parser's stack.
func TestStackBound(t *testing.T) {
	if testing.Short() {
		t.Skip("parses inputs near the complexity limit")
	}
	budget := uint64(stackBudget / stackTestScale)
	old := debug.SetMaxStack(int(raceFactor * budget))
	t.Cleanup(func() { debug.SetMaxStack(old) })
	for _, tc := range stackCases {
		t.Run(tc.name, func(t *testing.T) {
			build := func(k int) string { return tc.prefix + strings.Repeat(tc.unit, k) + tc.suffix }
			// The charge is linear in the repetitions: compute the
			// largest admitted count, then confirm it.
			base := complexity(tc.prefix+tc.suffix, math.MaxUint64)
			per := max(complexity(tc.unit, math.MaxUint64), 1)
			k := int((budget - base) / per)
			k = min(k, (MaxInputBytes-len(tc.prefix)-len(tc.suffix))/len(tc.unit))
			for k > 0 && complexity(build(k), budget) > budget {
				k--
			}
			src := build(k)
			t.Logf("%d repetitions, %d bytes", k, len(src))
			_, _ = Analyze(src)
		})
	}
}

func TestCheckComplexity(t *testing.T) {
	t.Parallel()
	ok := []string{
		strings.Repeat("(", 1000) + strings.Repeat(")", 1000),
		strings.Repeat("echo hello world; ls -l /tmp && cat x | grep y\n", 20000),
		strings.Repeat("if true; then :; fi\n", 1000),
	}
	for _, s := range ok {
		if err := checkComplexity(s); err != nil {
			t.Errorf("checkComplexity(%.40q...): got %v, want nil", s, err)
		}
	}
	bad := []string{
		strings.Repeat("(", 9000),
		strings.Repeat("if ", 20000),
		strings.Repeat("i\\\nf ", 20000), // a line continuation does not hide a keyword
		strings.Repeat("!", 40000),
	}
	for _, s := range bad {
		if err := checkComplexity(s); err == nil {
			t.Errorf("checkComplexity(%.40q...): got nil, want ErrTooComplex", s)
		}
	}
}
