package shellcmd

// The shell parser (mvdan.cc/sh/v3/syntax) is a recursive-descent parser:
// every open parenthesis, brace, bracket, quote, substitution, compound
// keyword or unary operator that is still open costs stack. Go cannot
// recover from a stack overflow (it kills the process), so a text that
// could drive the parser that deep must be refused before it is parsed.
//
// checkComplexity is deliberately model-free: it does not try to follow
// quoting or to match openers with closers (a mistake there would be a
// crash). It charges every byte that can open a recursion level with at
// least the stack that level costs, measured on v3.14.1 and doubled, and
// refuses the text when the sum passes stackBudget. Whatever the parser
// does with the bytes, its stack cannot exceed the sum of their charges.
//
// Measured costs per level, rounded up to a power of two: "(" in arithmetic
// 4 KiB, "$[" 8 KiB, "{" and "$(" 2 KiB, "\"$(" 3 KiB, a compound keyword
// about 1.5 KiB, "!" or "?" about 1 KiB, "&&" or "||" in [[ ]] about 320 B,
// "a=" in arithmetic 256 B, unary "-", "+", "~" about 128 B. Lists,
// pipelines, && chains, elif chains, words and redirections are parsed
// iteratively and cost nothing per element.

// stackBudget is the most stack, in bytes, that parsing may be allowed to
// use. It admits any realistic command line: 8192 nested parentheses, or
// a megabyte of ordinary commands with pipes, options and quotes.
const stackBudget = 64 << 20

// byteCost is the stack charge of each byte value.
var byteCost = func() (t [256]uint32) {
	for _, c := range "([{" {
		t[c] = 8192
	}
	t['`'] = 4096
	t['"'] = 2048
	t['!'] = 2048
	t['?'] = 2048
	t['$'] = 1024
	t['&'] = 512
	t['|'] = 512
	t['='] = 512
	t['<'] = 256
	t['>'] = 256
	for _, c := range "-+~*/%^,:" {
		t[c] = 256
	}
	return t
}()

// keywordCost is the charge of a word that is a compound-command keyword.
const keywordCost = 4096

// recursiveKeywords are the reserved words that open a nesting level.
var recursiveKeywords = map[string]bool{
	"if": true, "elif": true, "then": true, "else": true,
	"while": true, "until": true, "for": true, "select": true, "do": true,
	"case": true, "in": true, "function": true, "time": true, "coproc": true,
}

// checkComplexity returns ErrTooComplex when parsing src could use more
// than stackBudget bytes of stack.
func checkComplexity(src string) error {
	if complexity(src, stackBudget) > stackBudget {
		return ErrTooComplex
	}
	return nil
}

// complexity returns the stack charge of src, in one pass; it stops early
// once the charge passes limit.
func complexity(src string, limit uint64) uint64 {
	var cost uint64
	// Letters are gathered into runs so that compound keywords are found
	// whatever surrounds them; a backslash-newline (removed by the lexer
	// before it sees words) does not end a run.
	var run [8]byte
	n := 0 // letters in the current run; more than len(run) means "not a keyword"
	flush := func() {
		if n > 0 && n <= len(run) && recursiveKeywords[string(run[:n])] {
			cost += keywordCost
		}
		n = 0
	}
	for i := 0; i < len(src); i++ {
		c := src[i]
		if c >= 'a' && c <= 'z' {
			if n < len(run) {
				run[n] = c
			}
			n++
			continue
		}
		if c == '\\' && i+1 < len(src) && src[i+1] == '\n' {
			i++
			continue
		}
		flush()
		cost += uint64(byteCost[c])
		if cost > limit {
			return cost
		}
	}
	flush()
	return cost
}
