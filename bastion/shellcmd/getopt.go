package shellcmd

// The getopt engine the wrappers are read with: an option grammar per
// wrapper (optSpec) and scanners that stop at the command (scanOpts) or
// collect operands from anywhere (scanPermute).

import "strings"

// optSpec describes a getopt-style option grammar.
type optSpec struct {
	valued     string          // short options that take a value (attached or the next word)
	optional   string          // short options whose value is optional and only attached
	long       map[string]bool // long options that take a value from the next word when not written --opt=value
	positional int             // operands before the command (timeout's duration, chroot's directory)
	noCommand  string          // short flags after which no command follows
}

func set(names ...string) map[string]bool {
	m := make(map[string]bool, len(names))
	for _, n := range names {
		m[n] = true
	}
	return m
}

// scanResult is the outcome of scanning options.
type scanResult struct {
	next     int      // index of the first operand (the command)
	opts     []option // options in order
	operands []word   // operands, for scanPermute
	bad      bool     // a non-literal word was read as an option or its value
}

type option struct {
	name string // one letter for a short option, the name for a long one
	val  word
	has  bool // val is set
	long bool // written --name: a one-letter name is not a short option
}

func (r scanResult) hasFlag(c byte) bool {
	for _, o := range r.opts {
		if len(o.name) == 1 && o.name[0] == c {
			return true
		}
	}
	return false
}

func (r scanResult) hasLong(name string) bool {
	for _, o := range r.opts {
		if o.name == name {
			return true
		}
	}
	return false
}

// values returns the values of the options with any of the given names.
func (r scanResult) values(names ...string) []word {
	var out []word
	for _, o := range r.opts {
		if !o.has {
			continue
		}
		for _, n := range names {
			if o.name == n {
				out = append(out, o.val)
			}
		}
	}
	return out
}

// scanOpts reads getopt-style options from args, stopping at "--" or the
// first operand, as the wrappers (which use "+" in their getopt strings)
// do.
func scanOpts(args []word, spec optSpec) scanResult {
	var r scanResult
	i := 0
	for i < len(args) {
		n, stop := scanOne(args, i, spec, &r)
		if stop {
			break
		}
		i = n
	}
	r.next = min(i, len(args))
	if i < len(args) && args[i].lit && args[i].s == "--" {
		r.next = i + 1
	}
	return r
}

// scanPermute reads options from anywhere in args, as GNU getopt does by
// default, collecting the operands; everything after "--" is an operand.
func scanPermute(args []word, spec optSpec) scanResult {
	var r scanResult
	i := 0
	for i < len(args) {
		if args[i].lit && args[i].s == "--" {
			r.operands = append(r.operands, args[i+1:]...)
			break
		}
		n, stop := scanOne(args, i, spec, &r)
		if stop {
			r.operands = append(r.operands, args[i])
			i++
			continue
		}
		i = n
	}
	r.next = len(args)
	return r
}

// scanOne reads the option at args[i], returning the index after it; stop
// is true if args[i] is not an option ("--", "-", an operand).
func scanOne(args []word, i int, spec optSpec, r *scanResult) (next int, stop bool) {
	w := args[i]
	s := w.s
	if s == "--" || s == "-" || !strings.HasPrefix(s, "-") {
		return i, true
	}
	if !w.lit {
		// An option whose letters are only known at run time: it may
		// take the next word as a value or not.
		r.bad = true
	}
	if strings.HasPrefix(s, "--") {
		name, val, eq := strings.Cut(s[2:], "=")
		if !eq && !spec.long[name] {
			// GNU getopt accepts an unambiguous abbreviation: sudo
			// --us root is --user root. The full list of a wrapper's
			// long options is not known here, so an abbreviation of
			// one that takes a value is followed but reported.
			if full := uniquePrefix(name, spec.long); full != "" {
				name = full
				r.bad = true
			}
		}
		o := option{name: name, long: true}
		if eq {
			o.val, o.has = word{s: val, lit: w.lit}, true
		} else if spec.long[name] && i+1 < len(args) {
			i++
			o.val, o.has = args[i], true
			if !args[i].lit {
				r.bad = true
			}
		}
		r.opts = append(r.opts, o)
		return i + 1, false
	}
	for k := 1; k < len(s); k++ {
		c := s[k]
		switch {
		case strings.IndexByte(spec.valued, c) >= 0:
			o := option{name: string(c), has: true}
			if k+1 < len(s) {
				o.val = word{s: s[k+1:], lit: w.lit}
			} else if i+1 < len(args) {
				i++
				o.val = args[i]
				if !args[i].lit {
					r.bad = true
				}
			} else {
				o.has = false
			}
			r.opts = append(r.opts, o)
			return i + 1, false
		case strings.IndexByte(spec.optional, c) >= 0:
			o := option{name: string(c)}
			if k+1 < len(s) {
				o.val, o.has = word{s: s[k+1:], lit: w.lit}, true
			}
			r.opts = append(r.opts, o)
			return i + 1, false
		default:
			r.opts = append(r.opts, option{name: string(c)})
		}
	}
	return i + 1, false
}

// uniquePrefix returns the only key of m that name is a prefix of, or "".
func uniquePrefix(name string, m map[string]bool) string {
	if name == "" {
		return ""
	}
	found := ""
	for k := range m {
		if strings.HasPrefix(k, name) {
			if found != "" {
				return ""
			}
			found = k
		}
	}
	return found
}
