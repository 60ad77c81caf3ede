package pgproxy

import (
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// Classifier is Classify with a bounded cache, safe for concurrent use.
//
// Parsing costs tens of microseconds per statement; applications repeat the same few
// statements with different constants (pgbench -S sends "SELECT abalance FROM
// pgbench_accounts WHERE aid = 48213;" with a new number each time). The cache key is the
// statement text with some constant literals replaced by a placeholder, and a wrong hit
// would be a bypass, so the key is built to be provably sound:
//
//   - Text with anything that changes how PostgreSQL tokenises the rest (comments, quoted
//     identifiers, dollar quotes, backslashes, non-ASCII bytes, control characters) is
//     keyed verbatim: only the identical text can hit.
//   - Otherwise the text is keyed with plain '...' strings and integers of at most nine
//     digits replaced by a placeholder, but only where the byte before is whitespace, '(',
//     ',' or '=' (and, for integers, the byte after is whitespace, ')', ',' or ';'), so the
//     replaced span is a whole string or ICONST token in PostgreSQL's lexer and no prefix
//     (E”, U&”, B”, X”, N”) or neighbouring token can change its meaning. Everything
//     else, whitespace included, stays byte for byte in the key.
//   - A result is stored only for a single statement, and only when pg_query's own
//     normaliser, run on that text, replaced exactly the spans the key abstracts with $1..$n.
//     So every abstracted span is a constant in the grammar; two texts with the same key
//     differ only in constant values, and give the same parse tree apart from those values.
//   - Classify reads node types, flags and identifiers, and Normalized has the constants
//     replaced: the stored classification is the one a full parse would give. Where a
//     classification reads a constant's value (a function or DO body, a set_config()
//     setting name), it is not stored at all. FuzzClassify checks cached against
//     uncached results.
//
// Only the classification is cached, and the parse tree of the text that filled the
// entry, which the lineage analysis reuses (lineageTree); each result carries its own
// exact SQL.
type Classifier struct {
	size         int
	mu           sync.Mutex
	entries      map[string]*cacheEntry
	hits, misses atomic.Uint64
}

type cacheEntry struct {
	kinds, tables, funcs   []string
	attrs                  []string
	normalized, unknowable string
	tree                   *cachedTree
}

// cachedTree is the parse tree of the text that filled a cache entry, which the
// column-masking lineage analysis reuses (see lineageTree): parsing is most of a cached
// statement's cost.
type cachedTree struct {
	sql  string
	stmt *pg.Node // read only: sessions share it
	// constRead: an analysis of the tree read a constant's value, so texts with other
	// constants parse their own tree.
	constRead atomic.Bool
}

// lineageTree returns the cached parse tree for sql's key, or nil. The tree may be of
// another text with the same key, which differs from sql only in the constants the key
// abstracts (the Classifier's soundness argument); a caller that reads such a constant's
// value from a tree of another text must not use what it read, and sets constRead.
func (c *Classifier) lineageTree(sql string) *cachedTree {
	if c == nil || c.size <= 0 {
		return nil
	}
	key, _, ok := cacheKey(sql)
	if !ok {
		return nil
	}
	c.mu.Lock()
	e := c.entries[key]
	c.mu.Unlock()
	if e == nil || e.tree == nil || e.tree.sql != sql && e.tree.constRead.Load() {
		return nil
	}
	return e.tree
}

// maxCachedSQL is the longest statement text cached.
const maxCachedSQL = 4 << 10

// defaultClassifier serves Configs without a Classifier.
var defaultClassifier = NewClassifier(4096)

// NewClassifier returns a Classifier caching up to size statements; size <= 0 disables
// the cache.
func NewClassifier(size int) *Classifier {
	return &Classifier{size: size, entries: map[string]*cacheEntry{}}
}

// Stats returns the cache's hit and miss counts.
func (c *Classifier) Stats() (hits, misses uint64) {
	return c.hits.Load(), c.misses.Load()
}

// Classify is the package's Classify, answered from the cache when it soundly can.
func (c *Classifier) Classify(sql string) ([]Statement, error) {
	if c == nil || c.size <= 0 {
		return Classify(sql)
	}
	key, spans, ok := cacheKey(sql)
	if !ok {
		return Classify(sql)
	}
	c.mu.Lock()
	e := c.entries[key]
	c.mu.Unlock()
	if e != nil {
		c.hits.Add(1)
		return []Statement{{
			SQL:           sql,
			Kinds:         slices.Clone(e.kinds),
			Tables:        slices.Clone(e.tables),
			Functions:     slices.Clone(e.funcs),
			AttrFunctions: slices.Clone(e.attrs),
			Normalized:    e.normalized,
			Unknowable:    e.unknowable,
		}}, nil
	}
	c.misses.Add(1)
	sts, constDep, res, err := classifyTree(sql, 0, nil)
	if err != nil || len(sts) != 1 || constDep {
		return sts, err
	}
	if len(spans) > 0 && !normalizerAgrees(sql, spans) {
		return sts, nil
	}
	st := sts[0]
	e = &cacheEntry{
		kinds: slices.Clone(st.Kinds), tables: slices.Clone(st.Tables), funcs: slices.Clone(st.Functions),
		attrs:      slices.Clone(st.AttrFunctions),
		normalized: st.Normalized, unknowable: st.Unknowable,
	}
	if len(res.Stmts) == 1 && res.Stmts[0].Stmt != nil {
		e.tree = &cachedTree{sql: sql, stmt: res.Stmts[0].Stmt}
	}
	c.mu.Lock()
	if len(c.entries) >= c.size {
		// Evict about an eighth, in map order (random enough for a cache of hot statements).
		n := max(1, c.size/8)
		for k := range c.entries {
			delete(c.entries, k)
			if n--; n == 0 {
				break
			}
		}
	}
	c.entries[key] = e
	c.mu.Unlock()
	return sts, nil
}

// Placeholders in abstracted keys. They are control bytes, which never occur in a text
// that is abstracted, and keys are prefixed "a" (abstracted) or "v" (verbatim).
const (
	phString = '\x01'
	phInt    = '\x02'
)

// cacheKey returns the cache key for sql and the byte spans it abstracted; ok is false
// when sql is not cacheable at all.
func cacheKey(sql string) (key string, spans [][2]int, ok bool) {
	if len(sql) > maxCachedSQL {
		return "", nil, false
	}
	for i := 0; i < len(sql); i++ {
		switch c := sql[i]; {
		case c == '\\' || c == '"' || c == '$' || c >= 0x7f:
			return "v" + sql, nil, true
		case c < 0x20 && c != ' ' && c != '\t' && c != '\n' && c != '\r':
			return "v" + sql, nil, true
		}
	}
	var b strings.Builder
	b.Grow(len(sql) + 1)
	b.WriteByte('a')
	for i := 0; i < len(sql); {
		c := sql[i]
		switch {
		case c == '\'':
			j := i + 1
			for {
				if j >= len(sql) {
					return "v" + sql, nil, true // unterminated: let the parser say so
				}
				if sql[j] == '\'' {
					if j+1 < len(sql) && sql[j+1] == '\'' {
						j += 2
						continue
					}
					break
				}
				j++
			}
			if safeBefore(sql, i) {
				b.WriteByte(phString)
				spans = append(spans, [2]int{i, j + 1})
			} else {
				b.WriteString(sql[i : j+1])
			}
			i = j + 1
		case c == '-' && i+1 < len(sql) && sql[i+1] == '-', c == '/' && i+1 < len(sql) && sql[i+1] == '*':
			return "v" + sql, nil, true
		case c >= '0' && c <= '9':
			j := i
			for j < len(sql) && sql[j] >= '0' && sql[j] <= '9' {
				j++
			}
			if j-i <= 9 && safeBefore(sql, i) && safeAfterInt(sql, j) {
				b.WriteByte(phInt)
				spans = append(spans, [2]int{i, j})
			} else {
				b.WriteString(sql[i:j])
			}
			i = j
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(sql) && (sql[j] == '_' || sql[j] >= 'a' && sql[j] <= 'z' || sql[j] >= 'A' && sql[j] <= 'Z' || sql[j] >= '0' && sql[j] <= '9') {
				j++
			}
			b.WriteString(sql[i:j])
			i = j
		default:
			b.WriteByte(c)
			i++
		}
	}
	return b.String(), spans, true
}

func safeBefore(sql string, i int) bool {
	if i == 0 {
		return true
	}
	switch sql[i-1] {
	case ' ', '\t', '\n', '\r', '(', ',', '=':
		return true
	}
	return false
}

func safeAfterInt(sql string, j int) bool {
	if j == len(sql) {
		return true
	}
	switch sql[j] {
	case ' ', '\t', '\n', '\r', ')', ',', ';':
		return true
	}
	return false
}

// normalizerAgrees reports whether pg_query's normaliser replaces exactly spans (in
// order, numbered from $1) and nothing else.
func normalizerAgrees(sql string, spans [][2]int) bool {
	n, err := pgNormalize(sql)
	if err != nil {
		return false
	}
	var b strings.Builder
	prev := 0
	for k, sp := range spans {
		b.WriteString(sql[prev:sp[0]])
		b.WriteByte('$')
		b.WriteString(strconv.Itoa(k + 1))
		prev = sp[1]
	}
	b.WriteString(sql[prev:])
	return b.String() == n
}
