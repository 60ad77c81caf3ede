package shellcmd

import (
	"errors"
	"fmt"
	"path"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// ErrPattern is wrapped by CompilePattern errors.
var ErrPattern = errors.New("invalid pattern")

// maxPatternBytes bounds a pattern's length; patterns come from the config.
const maxPatternBytes = 4096

// Pattern is a compiled argv pattern such as "rm -rf *". See the package
// documentation for the exact semantics. A Pattern is immutable and safe
// for concurrent use.
type Pattern struct {
	src      string
	name     string // glob on Command.Name, or on Argv[0] when fullPath
	fullPath bool
	table    *optTable // option aliases of the named command, if known
	flags    []patFlag // required options
	operands []string  // globs on the operands, in order
	rest     bool      // a final "*": any further operands
}

// patFlag is one required option: a canonical key ("-r", "--no-preserve-root")
// and, for "--name=glob", a glob on its value.
type patFlag struct {
	key      string
	value    string
	hasValue bool
}

// String returns the pattern as written.
func (p *Pattern) String() string { return p.src }

// CompilePattern compiles a pattern: words split like the shell (quotes
// group words, a quoted glob character is literal), the first naming the
// command, the others options and globs on the operands.
func CompilePattern(p string) (*Pattern, error) {
	fail := func(format string, args ...any) (*Pattern, error) {
		return nil, fmt.Errorf("shellcmd: pattern %q: %w: %s", p, ErrPattern, fmt.Sprintf(format, args...))
	}
	if len(p) > maxPatternBytes {
		return fail("longer than %d bytes", maxPatternBytes)
	}
	if checkComplexity(p) != nil {
		return fail("too complex")
	}
	type pword struct {
		glob, lit string
		meta      bool // holds an unescaped glob metacharacter
		star      bool // exactly an unquoted "*"
	}
	var words []pword
	var werr error
	parser := syntax.NewParser(syntax.Variant(syntax.LangBash))
	err := parser.Words(strings.NewReader(p), func(w *syntax.Word) bool {
		g, l, meta, err := patternWord(w)
		if err != nil {
			werr = err
			return false
		}
		lw, _ := w.Parts[0].(*syntax.Lit)
		star := len(w.Parts) == 1 && lw != nil && lw.Value == "*"
		words = append(words, pword{glob: g, lit: l, meta: meta, star: star})
		return true
	})
	if werr != nil {
		return fail("%v", werr)
	}
	if err != nil {
		return fail("%v", err)
	}
	if len(words) == 0 {
		return fail("empty")
	}
	for _, w := range words {
		if _, err := path.Match(w.glob, ""); err != nil {
			return fail("word %q: %v", w.lit, err)
		}
	}
	pat := &Pattern{src: p, name: words[0].glob}
	pat.fullPath = strings.Contains(words[0].lit, "/")
	if !words[0].meta {
		pat.table = optTables[baseName(words[0].lit)]
	}
	rest := words[1:]
	if n := len(rest); n > 0 && rest[n-1].star {
		pat.rest = true
		rest = rest[:n-1]
	}
	options := true
	for _, w := range rest {
		switch {
		case options && w.lit == "--":
			options = false
		case options && strings.HasPrefix(w.lit, "-") && w.lit != "-":
			fs, ok := patternFlags(w.lit, w.glob, pat.table)
			if !ok {
				return fail("option %q: only the value of --name=value may be a glob", w.lit)
			}
			pat.flags = append(pat.flags, fs...)
		default:
			pat.operands = append(pat.operands, w.glob)
		}
	}
	return pat, nil
}

// patternWord turns a pattern word into a path.Match glob and its literal
// text: unquoted text keeps its glob characters and backslash escapes,
// quoted text is matched literally.
func patternWord(w *syntax.Word) (glob, lit string, meta bool, err error) {
	var g, l strings.Builder
	var add func(parts []syntax.WordPart, qc quoteContext) error
	add = func(parts []syntax.WordPart, qc quoteContext) error {
		for _, part := range parts {
			switch x := part.(type) {
			case *syntax.Lit:
				if qc == unquoted {
					g.WriteString(x.Value)
					if hasGlobMeta(x.Value) {
						meta = true
					}
				} else {
					g.WriteString(escapeGlob(unescape(x.Value, qc)))
				}
				l.WriteString(unescape(x.Value, qc))
			case *syntax.SglQuoted:
				v := x.Value
				if x.Dollar {
					v = ansiC(v)
				}
				g.WriteString(escapeGlob(v))
				l.WriteString(v)
			case *syntax.DblQuoted:
				if err := add(x.Parts, inDouble); err != nil {
					return err
				}
			default:
				return errors.New("patterns hold no expansions or substitutions")
			}
		}
		return nil
	}
	if err := add(w.Parts, unquoted); err != nil {
		return "", "", false, err
	}
	return g.String(), l.String(), meta, nil
}

// escapeGlob escapes the characters path.Match treats specially.
func escapeGlob(s string) string {
	if !strings.ContainsAny(s, `*?[\`) {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', '\\':
			b.WriteByte('\\')
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// patternFlags splits an option word of a pattern into canonical flags.
func patternFlags(lit, glob string, t *optTable) ([]patFlag, bool) {
	if strings.HasPrefix(lit, "--") {
		name, _, eq := strings.Cut(lit[2:], "=")
		f := patFlag{key: t.longKey(name)}
		if eq {
			// The glob text after the first "=".
			_, gv, _ := strings.Cut(glob, "=")
			f.value, f.hasValue = gv, true
			if hasGlobMeta(name) {
				return nil, false
			}
		} else if hasGlobMeta(glob) {
			return nil, false
		}
		return []patFlag{f}, true
	}
	if hasGlobMeta(glob) {
		return nil, false
	}
	var out []patFlag
	for _, fl := range splitShort(lit, t) {
		out = append(out, patFlag{key: fl.key, value: fl.value, hasValue: fl.hasValue})
	}
	return out, true
}

// cmdFlag is an option found in a command's arguments.
type cmdFlag struct {
	key      string
	value    string
	hasValue bool
}

// splitShort splits a short-option word ("-rfv") into canonical flags. A
// command that takes whole words as options (find) keeps the word whole.
func splitShort(s string, t *optTable) []cmdFlag {
	if t != nil && t.wholeWords {
		name, val, eq := strings.Cut(s, "=")
		return []cmdFlag{{key: name, value: val, hasValue: eq}}
	}
	var out []cmdFlag
	for k := 1; k < len(s); k++ {
		c := s[k]
		if t != nil && strings.IndexByte(t.valued, c) >= 0 {
			f := cmdFlag{key: t.shortKey(c)}
			if k+1 < len(s) {
				f.value, f.hasValue = s[k+1:], true
			}
			return append(out, f)
		}
		out = append(out, cmdFlag{key: t.shortKey(c)})
	}
	return out
}

// operand is a non-option argument; optional if it may instead be the value
// of the option before it.
type operand struct {
	s        string
	optional bool
}

// Match reports whether the command matches the pattern.
func (p *Pattern) Match(c Command) bool {
	if len(c.Argv) == 0 {
		return false
	}
	target := c.Name
	if p.fullPath {
		target = c.Argv[0]
	}
	if !globMatch(p.name, target) {
		return false
	}
	if len(p.flags) == 0 && p.rest && len(p.operands) == 0 {
		return true
	}
	flags, ops := splitArgs(c.Argv[1:], p.table)
	for _, want := range p.flags {
		if !hasFlag(flags, ops, want) {
			return false
		}
	}
	return matchOperands(p.operands, p.rest, ops)
}

// splitArgs separates a command's arguments into canonical options and
// operands. A word after an option that may take a value is an optional
// operand: the match may treat it either way.
func splitArgs(args []string, t *optTable) (flags []cmdFlag, ops []operand) {
	maybeValue := false
	options := true
	for _, a := range args {
		switch {
		case !options || a == "-" || !strings.HasPrefix(a, "-"):
			ops = append(ops, operand{s: a, optional: maybeValue})
			maybeValue = false
		case a == "--":
			options = false
			maybeValue = false
		case strings.HasPrefix(a, "--"):
			name, val, eq := strings.Cut(a[2:], "=")
			flags = append(flags, cmdFlag{key: t.longKey(name), value: val, hasValue: eq})
			maybeValue = !eq && (t == nil || t.longValued[t.resolveLong(name)])
		default:
			fs := splitShort(a, t)
			flags = append(flags, fs...)
			maybeValue = t == nil || t.wholeWords
			if t != nil && len(fs) > 0 {
				last := fs[len(fs)-1]
				if !last.hasValue && strings.IndexByte(t.valued, a[len(a)-1]) >= 0 {
					maybeValue = true
				}
			}
		}
	}
	return flags, ops
}

// hasFlag reports whether the command has the option want. A value glob
// may match an attached value (--name=v) or the word after the option.
func hasFlag(flags []cmdFlag, ops []operand, want patFlag) bool {
	for _, f := range flags {
		if f.key != want.key {
			continue
		}
		if !want.hasValue {
			return true
		}
		if f.hasValue && globMatch(want.value, f.value) {
			return true
		}
		if !f.hasValue {
			// --name value: the value is one of the optional
			// operands; accept if any optional operand matches.
			for _, o := range ops {
				if o.optional && globMatch(want.value, o.s) {
					return true
				}
			}
		}
	}
	return false
}

// matchOperands matches operand globs in order against the operands,
// allowing optional operands to be skipped and, with rest, any operands
// after the last glob. It simulates the automaton over pattern positions:
// O(len(ops) * len(globs)) time, O(len(globs)) space.
func matchOperands(globs []string, rest bool, ops []operand) bool {
	m := len(globs)
	cur := make([]bool, m+1)
	next := make([]bool, m+1)
	cur[0] = true
	for _, o := range ops {
		clear(next)
		alive := false
		for j := 0; j <= m; j++ {
			if !cur[j] {
				continue
			}
			if o.optional {
				next[j] = true
			}
			if j < m && globMatch(globs[j], o.s) {
				next[j+1] = true
			}
			if j == m && rest {
				next[j] = true
			}
		}
		for _, v := range next {
			alive = alive || v
		}
		if !alive {
			return false
		}
		cur, next = next, cur
	}
	return cur[m]
}

// globMatch is path.Match, except that a pattern word "*" matches any one
// argument, slashes included. Patterns were checked when compiled.
func globMatch(glob, s string) bool {
	if glob == "*" {
		return true
	}
	ok, err := path.Match(glob, s)
	return ok && err == nil
}

// optTable describes the options of a command whose aliases matter for
// rules: which short options are the same, which long options map to a
// short one, which take a value.
type optTable struct {
	shortAlias map[byte]byte     // 'R' -> 'r' for rm
	long       map[string]string // long name -> canonical key ("-r" or "--name")
	valued     string            // short options that take a value
	longValued map[string]bool   // long options (canonical long names) that take a value
	wholeWords bool              // -name style options (find): no clusters
}

func (t *optTable) shortKey(c byte) string {
	if t != nil {
		if a, ok := t.shortAlias[c]; ok {
			c = a
		}
	}
	return "-" + string(c)
}

// resolveLong returns the long option name that name denotes: itself, or
// the only known option it is a prefix of (GNU getopt accepts unambiguous
// abbreviations: rm --rec is rm --recursive).
func (t *optTable) resolveLong(name string) string {
	if t == nil || len(t.long) == 0 {
		return name
	}
	if _, ok := t.long[name]; ok {
		return name
	}
	found := ""
	for full := range t.long {
		if strings.HasPrefix(full, name) && name != "" {
			if found != "" {
				return name // ambiguous
			}
			found = full
		}
	}
	if found == "" {
		return name
	}
	return found
}

// longKey returns the canonical key of a long option.
func (t *optTable) longKey(name string) string {
	full := t.resolveLong(name)
	if t != nil {
		if k, ok := t.long[full]; ok && k != "" {
			return k
		}
	}
	return "--" + full
}

// longs builds a long-option map where every name maps to itself unless
// an alias is given.
func longs(aliases map[string]string, names ...string) map[string]string {
	m := make(map[string]string, len(names)+len(aliases))
	for _, n := range names {
		m[n] = "--" + n
	}
	for n, k := range aliases {
		m[n] = k
	}
	return m
}

// optTables holds the option grammar of common dangerous commands, so that
// `rm -R --force x` matches "rm -rf *". Other commands split short-option
// clusters and compare long options as written.
var optTables = map[string]*optTable{
	"rm": {
		shortAlias: map[byte]byte{'R': 'r'},
		long: longs(map[string]string{"recursive": "-r", "force": "-f", "dir": "-d", "verbose": "-v"},
			"interactive", "one-file-system", "no-preserve-root", "preserve-root", "help", "version"),
	},
	"cp": {
		shortAlias: map[byte]byte{'R': 'r'},
		long: longs(map[string]string{"recursive": "-r", "force": "-f", "archive": "-a", "link": "-l",
			"symbolic-link": "-s", "verbose": "-v", "target-directory": "-t", "suffix": "-S"},
			"attributes-only", "backup", "copy-contents", "debug", "dereference", "interactive", "no-clobber",
			"no-dereference", "preserve", "no-preserve", "parents", "reflink", "remove-destination", "sparse",
			"strip-trailing-slashes", "no-target-directory", "update", "keep-directory-symlink",
			"one-file-system", "context", "help", "version"),
		valued:     "St",
		longValued: set("target-directory", "suffix"),
	},
	"mv": {
		long: longs(map[string]string{"force": "-f", "verbose": "-v", "target-directory": "-t", "suffix": "-S"},
			"backup", "debug", "exchange", "interactive", "no-clobber", "no-copy", "strip-trailing-slashes",
			"no-target-directory", "update", "context", "help", "version"),
		valued:     "St",
		longValued: set("target-directory", "suffix"),
	},
	"chmod": {
		long: longs(map[string]string{"recursive": "-R", "verbose": "-v", "changes": "-c", "quiet": "-f", "silent": "-f"},
			"no-preserve-root", "preserve-root", "reference", "help", "version"),
		longValued: set("reference"),
	},
	"chown": chownTable,
	"chgrp": chownTable,
	"ln": {
		long: longs(map[string]string{"force": "-f", "symbolic": "-s", "verbose": "-v", "target-directory": "-t", "suffix": "-S"},
			"backup", "directory", "interactive", "logical", "no-dereference", "physical", "relative",
			"no-target-directory", "help", "version"),
		valued:     "St",
		longValued: set("target-directory", "suffix"),
	},
	"shred": {
		long: longs(map[string]string{"force": "-f", "remove": "-u", "zero": "-z", "iterations": "-n", "size": "-s", "verbose": "-v", "exact": "-x"},
			"random-source", "help", "version"),
		valued:     "ns",
		longValued: set("random-source"),
	},
	"userdel": {
		long:       longs(map[string]string{"force": "-f", "remove": "-r", "root": "-R", "prefix": "-P", "selinux-user": "-Z"}, "help"),
		valued:     "RP",
		longValued: set("root", "prefix"),
	},
	"kill": {
		long:   longs(map[string]string{"signal": "-s", "list": "-l", "table": "-L"}),
		valued: "sn",
	},
	"systemctl": {
		long:   longs(map[string]string{"force": "-f"}),
		valued: "tpPsnoHM",
		longValued: set("type", "property", "state", "signal", "kill-whom", "kill-value", "lines", "output", "host",
			"machine", "root", "job-mode", "what", "when", "timestamp", "message", "boot-loader-entry",
			"reboot-argument", "image", "preset-mode", "drop-in", "check-inhibitors", "boot-loader-menu"),
	},
	"find": {wholeWords: true},
}

var chownTable = &optTable{
	long: longs(map[string]string{"recursive": "-R", "verbose": "-v", "changes": "-c", "quiet": "-f", "silent": "-f", "no-dereference": "-h"},
		"dereference", "from", "no-preserve-root", "preserve-root", "reference", "help", "version"),
	longValued: set("from", "reference"),
}
