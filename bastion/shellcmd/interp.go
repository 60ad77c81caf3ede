package shellcmd

import (
	"regexp"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// ReasonInterpCode: an interpreter's inline code (python -c, perl -e, a
// here-document fed to it) names a way to start a process or to evaluate
// code built at run time.
const ReasonInterpCode = "interpreter code that may start a process"

// interpProcess matches, per language, the names through which code starts
// a process or evaluates code it builds: the modules, functions and
// operators a user reaches for to run rm. It is a heuristic over the text,
// not a reading of the language: code that reaches them under a name it
// builds at run time without these names still runs unjudged (the README
// says so), so it errs on the side of naming too much.
var interpProcess = map[string]*regexp.Regexp{
	"python": regexp.MustCompile(`\b(os|posix|nt|subprocess|pty|pexpect|sh|plumbum|ctypes|cffi|multiprocessing|asyncio|concurrent|importlib|import_module|webbrowser|pydoc|pdb|code|codeop|runpy|_posixsubprocess|platform|pipes|commands|builtins|timeit|cProfile|modules|system|popen|spawn\w*|execv\w*|_os)\b|(^|[^.\w])(exec|eval|compile|getattr|setattr|globals|locals|vars|help|breakpoint)\b|__\w+__`),
	"perl":   regexp.MustCompile("\\b(system|exec|qx|eval|open|pipe|fork|readpipe|syscall|do|require|use|glob|kill|IPC|POSIX|Expect|CORE|UNIVERSAL|can)\\b|`|/[a-z]*e[a-z]*e[a-z]*"),
	"ruby":   regexp.MustCompile("\\b(system|exec|spawn|popen\\w*|Open3|PTY|fork|eval|\\w+_eval|send|public_send|__send__|method|const_get|Process|syscall|Kernel|ObjectSpace|IO|Shell|binding|instance_variable_get|define_method)\\b|(^|[^.\\w])open\\b|`|%x"),
	"node":   regexp.MustCompile(`\b(require|import|child_process|exec\w*|spawn\w*|fork|eval|Function|Deno|Bun|vm|module|globalThis|global|constructor|Reflect|Proxy|WebAssembly|binding|dlopen|mainModule|_linkedBinding|getBuiltinModule)\b|process\s*\[`),
	"php":    regexp.MustCompile("\\b(system|exec|shell_exec|passthru|popen|proc_open|pcntl_\\w+|eval|assert|create_function|call_user_func\\w*|array_map|array_filter|array_walk\\w*|usort|uasort|uksort|array_reduce|preg_replace_callback\\w*|register_\\w+|ob_start|iterator_apply|forward_static_call\\w*|Reflection\\w*|include\\w*|require\\w*|mail|mb_send_mail|putenv|dl|ffi|FFI|unserialize|extract|parse_str|invoke|Closure)\\b|`|\\$\\w+\\s*\\(|\\$\\{|\\)\\s*\\("),
	"lua":    regexp.MustCompile(`\b(os\s*\.\s*execute|io\s*\.\s*popen|load|loadstring|loadfile|dofile|require|package|debug|_G|_ENV|getfenv|setfenv|rawget|rawset|getmetatable|setmetatable|string\.dump|ffi|jit)\b|\b(os|io)\s*\[`),
	"tcl":    regexp.MustCompile(`\b(exec|open|eval|uplevel|subst|interp|source|load|package|namespace|rename|apply|socket|after|trace|upvar|unknown|auto_\w+|tcl_\w+)\b|\[|\$`),
}

// pythonRunModules are modules whose -m runs a command or code given on the
// command line.
var pythonRunModules = set("pty", "timeit", "code", "pdb", "cProfile", "profile", "trace", "runpy", "webbrowser",
	"idlelib", "IPython", "ptpython", "bpython", "pydoc", "asyncio", "venv", "ensurepip", "pip")

// interpLanguage returns the language of an interpreter's name ("" for
// none): python3.12, lua5.4, nodejs, php8.2, tclsh8.6.
func interpLanguage(name string) string {
	switch {
	case name == "python" || isVersionedPython(name) || name == "pypy" || name == "pypy3":
		return "python"
	case name == "perl" || strings.HasPrefix(name, "perl5"):
		return "perl"
	case name == "ruby" || strings.HasPrefix(name, "ruby") && isVersionSuffix(name[4:]):
		return "ruby"
	case name == "node" || name == "nodejs":
		return "node"
	case name == "php" || strings.HasPrefix(name, "php") && isVersionSuffix(name[3:]):
		return "php"
	case name == "lua" || name == "luajit" || strings.HasPrefix(name, "lua") && isVersionSuffix(name[3:]):
		return "lua"
	case name == "tclsh" || name == "wish" || strings.HasPrefix(name, "tclsh") && isVersionSuffix(name[5:]):
		return "tcl"
	}
	return ""
}

func isVersionSuffix(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// interpOptions are, per language, the short options that take the code
// (code), a module or library (mod), or another value (val) from the rest
// of their word or the next one; other letters are flags, or take only an
// attached value (attached).
var interpOptions = map[string]struct{ code, mod, val, attached string }{
	"python": {code: "c", mod: "m", val: "WX"},
	"perl":   {code: "eE", mod: "Mm", val: "I", attached: "ilx0CFDVd"},
	"ruby":   {code: "e", mod: "r", val: "ICE", attached: "FixWT0K"},
	"lua":    {code: "e", mod: "l"},
	"php":    {code: "rBRE", val: "dFfcnz"},
	"node":   {code: "ep", mod: "r"},
	"tcl":    {},
}

// interpCode judges the code an interpreter is given inline (-c, -e, -r)
// or in a here-document or here-string on its input: code naming a way to
// start a process (interpProcess) is unknowable.
func (a *analyzer) interpCode(name string, args []word, st *peelState) {
	lang := interpLanguage(name)
	if lang == "" {
		return
	}
	re := interpProcess[lang]
	opts := interpOptions[lang]
	check := func(v word) bool {
		if !v.lit || re.MatchString(v.s) {
			a.unknowable(st.text, ReasonInterpCode)
			return false
		}
		return true
	}
	inline, script := false, false
scan:
	for i := 0; i < len(args); i++ {
		w := args[i]
		if !w.lit {
			if strings.HasPrefix(w.s, "-") || strings.HasPrefix(w.s, "$") || strings.HasPrefix(w.s, "\"$") {
				a.unknowable(st.text, ReasonWrapperArg)
				return
			}
			script = true
			break
		}
		s := w.s
		switch {
		case s == "--" || s == "-":
			script = s == "--" && i+1 < len(args)
			break scan
		case !strings.HasPrefix(s, "-"):
			script = true
			break scan
		case strings.HasPrefix(s, "--"):
			if lang != "node" {
				continue
			}
			opt, val, eq := strings.Cut(s, "=")
			switch opt {
			case "--eval", "--print":
				if !eq {
					if i+1 >= len(args) {
						return
					}
					i++
					val = args[i].s
					w = args[i]
				}
				inline = true
				if !check(word{s: val, lit: w.lit}) {
					return
				}
			case "--require", "--import", "--loader", "--experimental-loader":
				if !eq {
					i++
				}
			}
			continue
		}
		for k := 1; k < len(s); k++ {
			c := s[k]
			var v word
			has := false
			switch {
			case strings.IndexByte(opts.code+opts.mod+opts.val, c) >= 0:
				if k+1 < len(s) {
					v, has = word{s: s[k+1:], lit: true}, true
				} else if i+1 < len(args) {
					i++
					v, has = args[i], true
				}
			case strings.IndexByte(opts.attached, c) >= 0:
				k = len(s)
				continue
			default:
				continue
			}
			if !has {
				break
			}
			switch {
			case strings.IndexByte(opts.code, c) >= 0:
				inline = true
				if !check(v) {
					return
				}
				if lang == "python" {
					break scan // the rest is sys.argv
				}
			case strings.IndexByte(opts.mod, c) >= 0:
				if lang == "python" {
					if !v.lit || pythonRunModules[strings.Split(v.s, ".")[0]] {
						a.unknowable(st.text, ReasonInterpCode)
						return
					}
					script = true
					break scan
				}
				if !check(v) {
					return
				}
			}
			break // the value ended the word
		}
	}
	if inline || script || st.stmt == nil {
		return
	}
	// The program is read from the input: a here-document or here-string
	// is code in the line.
	for _, r := range st.stmt.Redirs {
		if r == nil || !readsFD0(r) {
			continue
		}
		switch {
		case r.Hdoc != nil:
			body, lit := heredocBody(r, st.sc.src)
			check(word{s: body, lit: lit})
		case r.Word != nil && r.Op == syntax.WordHdoc:
			check(normWord(r.Word, st.sc.src))
		}
	}
}
