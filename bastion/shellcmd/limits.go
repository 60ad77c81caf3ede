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
// Measured upper bounds per level: "(" in arithmetic 4 KiB, "$[" 8 KiB,
// "{" and "$(" 2 KiB, "\"$(" 3 KiB, a compound keyword about 1.5 KiB, "!"
// or "?" about 1 KiB, "&&" or "||" in [[ ]] about 320 B, "a=" in
// arithmetic 256 B, "2**" 190 B, unary "-", "+", "~" 128 B. Lists,
// pipelines, && chains, elif chains, words and redirections are parsed
// iteratively and cost nothing per element. TestStackBound parses the
// deepest admitted input of every construct under a lowered stack limit.

// stackBudget is the most stack, in bytes, that parsing may be allowed to
// use. It admits 8192 nested parentheses, any realistic script of 128 KiB
// (the most Linux passes to sh -c), and a megabyte of simple commands
// with pipes, options and quotes.
const stackBudget = 64 << 20

// byteCost is the stack charge of each byte value. Bytes that cannot
// open a level by themselves are charged a little anyway, against
// constructs not measured.
var byteCost = func() (t [256]uint32) {
	for c := range t {
		if c > ' ' && c < 0x7f && (c < '0' || c > '9') && (c < 'A' || c > 'Z') && (c < 'a' || c > 'z') {
			t[c] = 64 // other punctuation
		}
	}
	for _, c := range "([{" {
		t[c] = 8192
	}
	t['`'] = 4096
	t['!'] = 2048
	t['?'] = 2048
	for _, c := range "\"&|=" {
		t[c] = 256
	}
	for _, c := range "-+~*" {
		t[c] = 128
	}
	return t
}()

// keywordCost is the charge of a word that is a compound-command keyword.
const keywordCost = 4096

// recursiveKeywords are the reserved words that open a nesting level.
// (then, else, do, in belong to the level their if/for/while opened; elif
// chains are parsed iteratively.)
var recursiveKeywords = map[string]bool{
	"if": true, "while": true, "until": true, "for": true, "select": true,
	"case": true, "function": true, "time": true, "coproc": true,
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
