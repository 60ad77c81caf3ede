package shellcmd

import (
	"path"
	"strings"

	"mvdan.cc/sh/v3/syntax"
)

// maxWrappers bounds the chain of wrappers followed to reach one command
// (including find -exec levels, each a recursive call). Every wrapper in
// the chain is itself reported with its arguments, so the bound also keeps
// the output linear in the input.
const maxWrappers = 32

// peelState is what is known while peeling wrappers off one command.
type peelState struct {
	sc         scope
	stmt       *syntax.Stmt // the statement, for its stdin redirections; nil if stdin is not the statement's
	stdinPipe  bool         // stdin comes from a pipe
	wrappers   []string     // wrappers peeled so far, outermost first
	xargs      bool         // xargs completes the command line from its input
	repl       string       // a placeholder replaced at run time (xargs -I, find {})
	replReason string       // the reason to report when repl is in command position
	text       string       // source text of the whole command, for Unknowable
}

// call reports the simple command call and what it runs.
func (a *analyzer) call(call *syntax.CallExpr, stmt *syntax.Stmt, sc scope, stdinPipe, timed bool) {
	if len(call.Args) == 0 || a.budgetHit {
		return
	}
	text := nodeText(sc.src, call)
	for _, as := range call.Assigns {
		// BASH_ENV=/dev/stdin bash -c true: the shell sources its input
		// before the command, from a pipe or here-document too.
		if as != nil && as.Name != nil && as.Value != nil && (as.Name.Value == "BASH_ENV" || as.Name.Value == "ENV") {
			if v := normWord(as.Value, sc.src); isStdinPath(v.s) {
				a.stdinScript(as.Name.Value, &peelState{sc: sc, stmt: stmt, stdinPipe: stdinPipe, wrappers: sc.wrappers, text: text}, ReasonPipeShell, true)
			}
		}
	}
	words := a.expandArgs(call.Args, sc, text)
	wr := sc.wrappers
	if timed {
		wr = appendWrapper(wr, "time")
	}
	a.peel(words, peelState{sc: sc, stmt: stmt, stdinPipe: stdinPipe, wrappers: wr, text: text})
}

// commandPositionReason returns why a non-literal word cannot name a command.
func commandPositionReason(w word) string {
	switch {
	case w.subst || w.proc:
		return ReasonSubstCommand
	case w.arith:
		return ReasonArithCommand
	default:
		return ReasonParamCommand
	}
}

// peel reports the command in words and, while it is a wrapper, the command
// the wrapper runs.
func (a *analyzer) peel(words []word, st peelState) {
	for len(words) > 0 {
		if len(st.wrappers) > maxWrappers {
			a.unknowable(st.text, ReasonTooDeep)
			return
		}
		w0 := words[0]
		if !w0.lit {
			a.unknowable(st.text, commandPositionReason(w0))
			return
		}
		if w0.glob {
			a.unknowable(st.text, ReasonGlobCommand)
			return
		}
		if st.repl != "" && strings.Contains(w0.s, st.repl) {
			a.unknowable(st.text, st.replReason)
			return
		}
		dynamic := st.xargs || st.sc.appended
		for _, w := range words[1:] {
			dynamic = dynamic || !w.lit
		}
		if !a.emit(wordStrings(words), st.wrappers, dynamic, st.text) {
			return
		}
		name := baseName(w0.s)
		args := words[1:]
		if why := historyOrEditing(name, args); why != "" {
			a.unknowable(st.text, why)
		}
		a.builtinCode(name, args, &st)

		inner, label, follow := a.unwrap(name, args, &st)
		if !follow {
			return
		}
		if name == "setarch" {
			// setarch ARCH [flags] command: its flags come after the
			// architecture and take no values.
			for len(inner) > 0 && inner[0].lit && strings.HasPrefix(inner[0].s, "-") {
				dd := inner[0].s == "--"
				inner = inner[1:]
				if dd {
					break
				}
			}
		}
		if name == "repeat" && len(inner) > 0 && inner[0].lit && inner[0].s == "{" {
			// zsh's repeat 3 { cmd }: bash reads the braces as words.
			inner = inner[1:]
			if n := len(inner); n > 0 && inner[n-1].lit && inner[n-1].s == "}" {
				inner = inner[:n-1]
			}
		}
		if len(inner) == 0 {
			if st.xargs {
				// `xargs env`: the command comes from the input.
				a.unknowable(st.text, ReasonXargsCommand)
			}
			return
		}
		st.wrappers = appendWrapper(st.wrappers, label)
		words = inner
	}
}

// unwrap handles the command name with arguments args. For a wrapper it
// returns the words of the command it runs and the wrapper's label, with
// follow=true. Commands that run code given as a string (shells, eval, su
// -c, ...) are analysed here and return follow=false, like plain commands.
func (a *analyzer) unwrap(name string, args []word, st *peelState) (inner []word, label string, follow bool) {
	if spec, ok := wrapperSpecs[name]; ok {
		return a.genericWrapper(name, spec, args, st)
	}
	if inner, label, follow, ok := a.launcher(name, args, st); ok {
		return inner, label, follow
	}
	if len(name) > 1 && name[0] == '=' {
		// zsh expands =rm to rm's path (EQUALS, on by default).
		return append([]word{{s: name[1:], lit: true}}, args...), "=", true
	}
	switch name {
	case "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "rbash", "yash", "posh", "ksh93", "pdksh", "oksh", "lksh":
		// (posixShellNames)
		a.shell(name, args, st)
	case "fish":
		a.fish(args, st)
	case "eval":
		a.eval(args, st)
	case "source", ".":
		a.source(name, args, st)
	case "alias":
		a.alias(args, st)
	case "abbr":
		a.abbr(args, st)
	case "trap":
		a.trap(args, st)
	case "env":
		return a.env(args, st)
	case "sudo":
		return a.sudo(args, st)
	case "doas":
		r := scanOpts(args, optSpec{valued: "aCu"})
		a.checkBad(r, st)
		switch {
		case r.hasFlag('C'):
			return nil, "", false // checks a config file
		case r.hasFlag('s'):
			a.stdinScript("doas", st, ReasonPipeShell, true) // a shell, no command
			return nil, "", false
		}
		return args[r.next:], "doas", true
	case "command":
		r := scanOpts(args, optSpec{})
		if r.hasFlag('v') || r.hasFlag('V') {
			return nil, "", false // only looks the name up
		}
		a.checkBad(r, st)
		return args[r.next:], "command", true
	case "xargs":
		return a.xargsCmd(args, st)
	case "busybox", "toybox":
		if len(args) == 0 || !args[0].lit || strings.HasPrefix(args[0].s, "-") {
			return nil, "", false
		}
		return args, name, true
	case "watch":
		return a.watch(args, st)
	case "su", "runuser":
		return a.su(name, args, st)
	case "sg":
		a.sg(args, st)
	case "login":
		// login -f USER (as root, no password) starts a shell on the
		// session's input.
		a.stdinScript(name, st, ReasonPipeShell, false)
	case "machinectl":
		return a.machinectl(args, st)
	case "chpst":
		return a.genericWrapper(name, chpstSpec, args, st)
	case "daemonize":
		return a.genericWrapper(name, daemonizeSpec, args, st)
	case "start-stop-daemon":
		return a.startStopDaemon(args, st)
	case "git":
		a.git(args, st)
	case "parallel", "sem":
		// GNU parallel builds command lines from its arguments after :::
		// and from its input, and runs them through a shell.
		if !(len(args) == 1 && args[0].lit && (args[0].s == "--version" || args[0].s == "--help")) {
			a.unknowable(st.text, ReasonCodeSetting)
		}
	case "expect":
		if len(args) == 0 {
			a.stdinScript(name, st, ReasonPipeInterp, false)
		}
		for _, w := range args {
			if !w.lit || w.s == "-c" || strings.HasPrefix(w.s, "-c") && len(w.s) > 2 && w.s[1] == 'c' {
				a.unknowable(st.text, ReasonCodeSetting)
				break
			}
		}
	case "docker-compose", "podman-compose":
		// Compose's own command: docker-compose exec web rm -rf /srv.
		cli := strings.TrimSuffix(name, "-compose")
		return a.containerCLI(cli, append([]word{{s: "compose", lit: true}}, args...), st)
	case "docker", "podman", "nerdctl":
		return a.containerCLI(name, args, st)
	case "crictl":
		return a.crictl(args, st)
	case "lxc", "incus":
		return a.lxc(name, args, st)
	case "kubectl", "oc":
		return a.kubectl(name, args, st)
	case "tmux":
		return a.tmux(args, st)
	case "screen":
		return a.screen(args, st)
	case "newgrp":
		// newgrp [-] [group]: a new shell, on the session's input.
		a.stdinScript("newgrp", st, ReasonPipeShell, false)
	case "tcsh", "csh":
		// A shell of another syntax: without a script or -c, it reads
		// its commands from the session's input.
		if len(args) == 0 || !args[0].lit || (args[0].s == "-i" || args[0].s == "-l") && len(args) == 1 {
			a.stdinScript(name, st, ReasonPipeShell, false)
		}
	case "ssh":
		a.ssh(args, st)
	case "tar", "gtar":
		a.tar(args, st)
	case "zip":
		a.zip(args, st)
	case "ssh-copy-id", "lftp", "borg", "rclone", "unison", "sshfs", "restic":
		a.transferTool(name, args, st)
	case "find":
		a.find(args, st)
	case "flock":
		return a.flock(args, st)
	case "script":
		r := scanPermute(args, optSpec{valued: "cEIOBTmo", optional: "t",
			long: set("command", "echo", "log-in", "log-out", "log-io", "log-timing", "logging-format", "output-limit")})
		a.checkBad(r, st)
		cmds := r.values("c", "command")
		for _, v := range cmds {
			a.shellString(v, "script -c", st)
		}
		if len(cmds) == 0 {
			// Without -c, script runs $SHELL, interactive, on the
			// session's input.
			a.stdinScript("script", st, ReasonPipeShell, false)
		}
	case "ip":
		// ip [options] vrf exec NAME command...
		if o := ipObject(args); o >= 0 && o+2 < len(args) && args[o].s == "vrf" && args[o+1].lit && args[o+1].s == "exec" {
			if !args[o+2].lit {
				a.unknowable(st.text, ReasonWrapperArg)
				return nil, "", false
			}
			return args[o+3:], "ip vrf exec", true
		}
		// ip [options] netns exec NAME command...
		// (with -all, no NAME: every namespace runs it).
		all := false
		for i := 0; i+2 < len(args); i++ {
			if args[i].lit && (args[i].s == "-all" || args[i].s == "-a" || args[i].s == "--all") {
				all = true
			}
			if args[i].lit && args[i].s == "netns" && args[i+1].lit && args[i+1].s == "exec" {
				if all {
					return args[i+2:], "ip netns exec", true
				}
				if !args[i+2].lit {
					a.unknowable(st.text, ReasonWrapperArg)
					return nil, "", false
				}
				return args[i+3:], "ip netns exec", true
			}
			if !args[i].lit || !strings.HasPrefix(args[i].s, "-") && args[i].s != "netns" {
				break
			}
		}
	case "at", "batch":
		// at and batch read the commands of a job from stdin (or -f
		// FILE, like bash FILE) and run them with sh later.
		r := scanPermute(args, optSpec{valued: "qft"})
		a.checkBad(r, st)
		for _, c := range []byte("ldrcf") {
			if r.hasFlag(c) {
				return nil, "", false
			}
		}
		a.stdinScript(name, st, ReasonPipeShell, true)
	default:
		if interpreters[name] || isVersionedPython(name) {
			a.interpreter(name, args, st)
		}
		a.interpCode(name, args, st)
	}
	return nil, "", false
}

// wrapperSpecs are the wrappers that run their operands as a command after
// getopt-style options and a fixed number of operands.
var wrapperSpecs = map[string]optSpec{
	"nice":     {valued: "n", long: set("adjustment")},
	"timeout":  {valued: "ks", long: set("kill-after", "signal"), positional: 1},
	"nohup":    {},
	"stdbuf":   {valued: "ioe", long: set("input", "output", "error")},
	"time":     {valued: "fo", long: set("format", "output")},
	"builtin":  {},
	"exec":     {valued: "a"},
	"chroot":   {long: set("userspec", "groups"), positional: 1},
	"ionice":   {valued: "cnpPu", noCommand: "pPu"},
	"setsid":   {},
	"unbuffer": {},
	"gosu":     {positional: 1},
	"su-exec":  {positional: 1},
	"nsenter":  {valued: "tSGN", optional: "muinpCUTrwW", long: set("target", "setuid", "setgid", "net-socket")},
	"unshare":  {valued: "RwSG", optional: "muinpUCT", long: set("root", "wd", "setuid", "setgid", "propagation", "setgroups", "map-user", "map-group", "map-users", "map-groups", "load-interp")},
	"taskset":  {positional: 1, noCommand: "p"},
	"chrt":     {valued: "TPD", positional: 1, noCommand: "pm"},
	"strace":   {valued: "abeEIoOpPsSuUX", long: set("output", "attach", "signal", "trace", "status", "string-limit", "user", "env", "columns", "trace-path", "summary-sort-by", "const-print-style", "decode-fds")},
	"ltrace":   {valued: "aADeFlnopsuwx", long: set("output", "library", "indent", "align", "config", "demangle")},
	"systemd-run": {valued: "pEHMuC", long: set("capsule", "unit", "property", "description", "slice", "uid", "gid", "nice", "working-directory", "setenv", "machine", "host",
		"on-active", "on-boot", "on-startup", "on-unit-active", "on-unit-inactive", "on-calendar", "timer-property", "path-property", "socket-property", "service-type")},
	"fakeroot":     {valued: "lsib", long: set("lib", "faked", "fd-base")},
	"proxychains":  {valued: "f"},
	"proxychains4": {valued: "f"},
	"tsocks":       {},
	"torsocks":     {valued: "uapP", long: set("user", "pass", "address", "port")},
	"pkexec":       {long: set("user")},
	"run0":         {valued: "ugD", long: set("user", "group", "nice", "chdir", "setenv", "unit", "property", "description", "slice", "background", "machine", "shell-prompt-prefix")},
	"firejail":     {},
	"valgrind":     {},
	"catchsegv":    {},
	"eatmydata":    {},
	"nocache":      {},
	"caffeinate":   {},
	// More programs that run their operands as a command.
	"setarch":          {positional: 1},
	"linux32":          {},
	"linux64":          {},
	"i386":             {},
	"x86_64":           {},
	"prlimit":          {valued: "po", long: set("pid", "output")},
	"setpriv":          {long: set("reuid", "regid", "ruid", "euid", "rgid", "egid", "groups", "inh-caps", "ambient-caps", "bounding-set", "securebits", "pdeathsig", "selinux-label", "apparmor-profile", "landlock-access", "landlock-rule", "ptracer")},
	"ssh-agent":        {valued: "aEOPt"},
	"numactl":          {valued: "imCNpPw", long: set("interleave", "membind", "cpunodebind", "physcpubind", "preferred", "preferred-many", "weighted-interleave", "offset", "length", "shmmode", "shmid", "shm", "file")},
	"dbus-run-session": {long: set("config-file", "dbus-daemon")},
	"xvfb-run":         {valued: "efnps", long: set("error-file", "server-num", "xauth-protocol", "server-args", "auth-file")},
	"cgexec":           {valued: "g"},
	"faketime":         {positional: 1},
	"tini":             {valued: "ep"},
	"dumb-init":        {valued: "r", long: set("rewrite")},
	"chronic":          {},
	"ifne":             {},
	"sshpass":          {valued: "pfdP"},
	"run-one":          {},
	// zsh's precommand modifiers and its repeat loop, and fish's and, or
	// and not: elsewhere no such command exists, so judging the command
	// after them costs nothing.
	"noglob":    {},
	"nocorrect": {},
	"-":         {},
	"repeat":    {positional: 1},
	"and":       {},
	"or":        {},
	"not":       {},
}

// interpreters are the programs whose bare form reads a program from stdin.
var interpreters = map[string]bool{
	"python": true, "python2": true, "python3": true, "perl": true, "ruby": true,
	"node": true, "nodejs": true, "php": true, "lua": true, "tclsh": true,
}

func isVersionedPython(name string) bool {
	rest, ok := strings.CutPrefix(name, "python")
	if !ok || rest == "" {
		return false
	}
	for _, c := range rest {
		if (c < '0' || c > '9') && c != '.' {
			return false
		}
	}
	return true
}

// inlineProgramFlags are the options that give an interpreter its program
// as an argument, so that stdin is data, not code.
var inlineProgramFlags = map[string]string{
	"python": "cm", "perl": "eE", "ruby": "e", "node": "ep", "nodejs": "ep", "php": "rBERF", "lua": "e", "tclsh": "",
}

// checkBad reports a wrapper whose options could not be read for sure.
func (a *analyzer) checkBad(r scanResult, st *peelState) {
	if r.bad {
		a.unknowable(st.text, ReasonWrapperArg)
	}
}

// genericWrapper peels a wrapper described by spec.
func (a *analyzer) genericWrapper(name string, spec optSpec, args []word, st *peelState) ([]word, string, bool) {
	r := scanOpts(args, spec)
	for _, c := range []byte(spec.noCommand) {
		if r.hasFlag(c) {
			return nil, "", false
		}
	}
	rest := args[r.next:]
	for p := 0; p < spec.positional && len(rest) > 0; p++ {
		if !rest[0].lit || rest[0].glob {
			r.bad = true
		}
		rest = rest[1:]
	}
	a.checkBad(r, st)
	if len(rest) == 0 && shellWithoutCommand[name] || name == "systemd-run" && (r.hasFlag('S') || r.hasLong("shell")) {
		// Without a command these run $SHELL, interactive, on the
		// session's input.
		a.stdinScript(name, st, ReasonPipeShell, false)
	}
	return rest, name, true
}

// posixShellNames are the shells that unwrap reads as sh.
var posixShellNames = set("sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "rbash", "yash", "posh", "ksh93", "pdksh", "oksh", "lksh")

// shellWithoutCommand are the wrappers that start the user's shell when
// given no command.
var shellWithoutCommand = map[string]bool{"nsenter": true, "unshare": true, "chroot": true, "pkexec": true, "firejail": true, "fakeroot": true, "run0": true}

// isAssignment reports whether s is NAME=value.
func isAssignment(s string) bool {
	eq := strings.IndexByte(s, '=')
	return eq > 0 && syntax.ValidName(s[:eq])
}

// sudo: options, then NAME=value assignments, then the command. With -s
// or -i sudo runs a shell: without a command it reads stdin, with one it
// hands the words to the shell's -c (escaped by current sudo versions,
// joined as they are by older ones; both readings are reported).
func (a *analyzer) sudo(args []word, st *peelState) ([]word, string, bool) {
	r := scanOpts(args, optSpec{valued: "aCcDgpRrTtUu", optional: "h",
		long: set("user", "group", "close-from", "chdir", "prompt", "role", "type", "other-user",
			"command-timeout", "chroot", "login-class", "auth-type")})
	if r.hasFlag('e') || r.hasLong("edit") {
		return nil, "", false // sudoedit: the operands are files
	}
	rest := args[r.next:]
	for len(rest) > 0 && isAssignment(rest[0].s) {
		name, value, _ := strings.Cut(rest[0].s, "=")
		a.codeVar(name, word{s: value, lit: rest[0].lit}, st.sc, st.text)
		rest = rest[1:]
	}
	a.checkBad(r, st)
	if r.hasFlag('s') || r.hasFlag('i') || r.hasLong("shell") || r.hasLong("login") {
		if len(rest) == 0 {
			a.stdinScript("sudo", st, ReasonPipeShell, true)
			return nil, "", false
		}
		a.joinedString(rest, "sudo -s", st)
	}
	return rest, "sudo", true
}

// env: options (with -S, a string split into more words), NAME=value
// assignments, then the command.
func (a *analyzer) env(args []word, st *peelState) ([]word, string, bool) {
	spec := optSpec{valued: "uCSa", long: set("unset", "chdir", "split-string", "argv0")}
	for round := 0; ; round++ {
		r := scanOpts(args, spec)
		rest := args[r.next:]
		if len(rest) > 0 && rest[0].lit && rest[0].s == "-" { // "-" is -i
			rest = rest[1:]
		}
		for len(rest) > 0 && isAssignment(rest[0].s) {
			name, value, _ := strings.Cut(rest[0].s, "=")
			if why := specialVarReason(name); why != "" {
				a.unknowable(st.text, why)
			}
			if why := termAssignReason(name, value, rest[0].lit); why != "" {
				a.unknowable(st.text, why)
			}
			a.codeVar(name, word{s: value, lit: rest[0].lit}, st.sc, st.text)
			if promptVar(name) {
				// env BASH_ENV='$(cmd)' bash -c ..., env PS1=...
				if rest[0].lit {
					a.promptString(name, value, st.sc, st.text)
				} else {
					a.unknowable(st.text, ReasonPrompt)
				}
			}
			rest = rest[1:]
		}
		a.checkBad(r, st)
		split := r.values("S", "split-string")
		if len(split) == 0 {
			return rest, "env", true
		}
		if round >= MaxDepth {
			a.unknowable(st.text, ReasonTooDeep)
			return nil, "", false
		}
		// -S splits its value into words that come before the
		// remaining operands: `env -S'rm -rf' /x` runs rm -rf /x.
		var words []word
		for _, v := range split {
			if !a.spend(len(v.s)+16, st.text) {
				return nil, "", false
			}
			ws, ok := a.splitShellWords(v)
			if !ok {
				a.unknowable(st.text, ReasonShellString)
				return nil, "", false
			}
			words = append(words, ws...)
		}
		args = append(words, rest...)
	}
}

// xargs: options; the command after them gets arguments from the input.
func (a *analyzer) xargsCmd(args []word, st *peelState) ([]word, string, bool) {
	r := scanOpts(args, optSpec{valued: "adEILnPs", optional: "eil",
		long: set("arg-file", "delimiter", "max-args", "max-procs", "max-chars", "process-slot-var")})
	a.checkBad(r, st)
	repl := ""
	for _, o := range r.opts {
		switch o.name {
		case "I":
			if o.has {
				repl = o.val.s
			}
		case "i", "replace":
			repl = "{}"
			if o.has && o.val.s != "" {
				repl = o.val.s
			}
		}
	}
	rest := args[r.next:]
	if len(rest) == 0 {
		return nil, "", false // runs echo
	}
	st.xargs = true
	st.stdinPipe = false // the command's stdin is /dev/null
	st.stmt = nil
	if repl != "" {
		st.repl, st.replReason = repl, ReasonXargsCommand
	}
	return rest, "xargs", true
}

// watch runs its operands joined by spaces with sh -c, or as argv with -x.
func (a *analyzer) watch(args []word, st *peelState) ([]word, string, bool) {
	r := scanOpts(args, optSpec{valued: "nqs", optional: "d", long: set("interval", "equexit", "shotsdir")})
	a.checkBad(r, st)
	rest := args[r.next:]
	if len(rest) == 0 {
		return nil, "", false
	}
	if r.hasFlag('x') || r.hasLong("exec") {
		return rest, "watch", true
	}
	a.joinedString(rest, "watch", st)
	return nil, "", false
}

// joinedString analyses words joined by spaces as one script (watch, ssh,
// sg), the way the program hands them to a shell.
func (a *analyzer) joinedString(ws []word, label string, st *peelState) {
	for _, w := range ws {
		if !w.lit {
			a.unknowable(st.text, ReasonShellString)
			return
		}
	}
	a.shellString(word{s: joinWords(ws), lit: true}, label, st)
}

// shellString analyses a string that a program runs as a shell script.
func (a *analyzer) shellString(v word, label string, st *peelState) {
	if !v.lit {
		a.unknowable(st.text, ReasonShellString)
		return
	}
	if st.repl != "" && strings.Contains(v.s, st.repl) {
		// xargs -I{} sh -c '... {} ...': the input becomes code.
		a.unknowable(st.text, st.replReason)
		return
	}
	a.nested(v.s, st.sc.depth, appendWrapper(st.wrappers, label), st.stdinPipe, st.text)
}

// shell handles sh, bash and the other POSIX-like shells: a -c string, a
// script read from stdin, or a script file.
func (a *analyzer) shell(name string, args []word, st *peelState) {
	if why := setOptions(args, true); why != "" {
		a.unknowable(st.text, why)
	}
	cflag, sflag := false, false
	i := 0
scan:
	for i < len(args) {
		w := args[i]
		if !w.lit {
			if cflag {
				break // the -c string, or an option: either way not literal
			}
			if strings.HasPrefix(w.s, "-") || strings.HasPrefix(w.s, "+") || w.s == "" || w.s[0] == '$' {
				// Could be -c: what runs is not known.
				a.unknowable(st.text, ReasonWrapperArg)
				return
			}
			break
		}
		s := w.s
		switch {
		case s == "--" || s == "-":
			i++
			break scan
		case len(s) < 2 || (s[0] != '-' && s[0] != '+'):
			break scan
		case strings.HasPrefix(s, "--"):
			if s == "--rcfile" || s == "--init-file" {
				i++
				if i < len(args) && isStdinPath(args[i].s) {
					// An interactive shell sources it first.
					a.stdinScript(name, st, ReasonPipeShell, true)
				}
			}
			i++
			continue
		}
		for k := 1; k < len(s); k++ {
			switch s[k] {
			case 'c':
				cflag = cflag || s[0] == '-'
			case 's':
				sflag = sflag || s[0] == '-'
			case 'o', 'O':
				i++ // the option name is the next word
			}
		}
		i++
	}
	operands := args[min(i, len(args)):]
	if cflag {
		if len(operands) == 0 {
			if st.xargs {
				a.unknowable(st.text, ReasonXargsCommand)
			}
			return
		}
		a.shellString(operands[0], name+" -c", st)
		return
	}
	if !sflag && len(operands) > 0 {
		op := operands[0]
		if op.proc {
			a.unknowable(st.text, ReasonProcSubstShell)
			return
		}
		if !isStdinPath(op.s) {
			return // a script file: its content is not visible here
		}
	}
	a.stdinScript(name, st, ReasonPipeShell, true)
}

// fish takes its command strings as option values.
func (a *analyzer) fish(args []word, st *peelState) {
	r := scanOpts(args, optSpec{valued: "cCdofp", long: set("command", "init-command", "debug", "debug-output", "features", "profile", "profile-startup")})
	a.checkBad(r, st)
	cmds := r.values("c", "C", "command", "init-command")
	for _, v := range cmds {
		a.shellString(v, "fish -c", st)
		if f, ok := fishReading(v.s); v.lit && ok {
			// fish's single quotes take \' and \\ as escapes.
			a.shellString(word{s: f, lit: true}, "fish -c", st)
		}
	}
	if len(cmds) == 0 && r.next >= len(args) {
		a.stdinScript("fish", st, ReasonPipeShell, false)
	}
}

// isStdinPath reports whether a script operand may name the shell's
// stdin, or its terminal: /dev/stdin, /dev/fd/N and /proc/PID/fd/N (a
// descriptor may be a copy of stdin: bash /dev/fd/3 3<&0), /dev/tty and
// /dev/pts/N, however spelled (/dev/./stdin, //proc/self/fd/0,
// /dev/fd/../fd/0, /proc/$$/fd/0); a relative path, or one through "..",
// whose directory is not known here (cd /dev && bash stdin, cd
// /proc/self/fd && bash 0); and a path known only at run time ("$f"). s
// is the operand's text, expansions unexpanded. An absolute path elsewhere
// is a script file.
func isStdinPath(s string) bool {
	if s == "" {
		return false
	}
	if (s[0] == '$' || s[0] == '`') && !strings.Contains(s, "/") {
		return true // the whole path is known only at run time ("$f")
	}
	p := path.Clean(s)
	if strings.HasPrefix(s, "/") && !strings.Contains(s, "..") && !strings.HasPrefix(p, "/dev/") && !strings.HasPrefix(p, "/proc/") {
		return false
	}
	for _, c := range strings.Split(p, "/") {
		switch {
		case c == "stdin" || c == "fd" || c == "pts" || c == "console" || strings.HasPrefix(c, "tty") && !strings.Contains(c, "."):
			return true
		}
	}
	if strings.HasPrefix(p, "/proc/") {
		return true // a process's files: its descriptors under other names (/proc/self/root/dev/stdin)
	}
	return strings.Contains(s, "..") && strings.HasPrefix(p, "/dev") || !strings.HasPrefix(s, "/") && strings.Trim(p, "0123456789") == ""
}

// stdinScript handles a program that reads its script from stdin: a literal
// here-document or here-string is analysed as shell (when parseShell), a
// pipe or non-literal input is unknowable.
func (a *analyzer) stdinScript(name string, st *peelState, pipeReason string, parseShell bool) {
	var in *syntax.Redirect
	if st.stmt != nil {
		for _, r := range st.stmt.Redirs {
			if r != nil && readsFD0(r) {
				in = r
			}
		}
	}
	shell := pipeReason == ReasonPipeShell
	if in == nil {
		if st.stdinPipe {
			a.unknowable(st.text, pipeReason)
		} else if shell {
			// Its standard input is the one the analysed text was given:
			// for an exec, the session's.
			a.out.StdinShell = true
		}
		return
	}
	src := st.sc.src
	label := name + " <<"
	switch in.Op {
	case syntax.Hdoc, syntax.DashHdoc:
		if !parseShell {
			return
		}
		body, lit := heredocBody(in, src)
		if !lit {
			a.unknowable(st.text, ReasonShellStdin)
			return
		}
		a.nested(body, st.sc.depth, appendWrapper(st.wrappers, label), false, st.text)
	case syntax.WordHdoc:
		if !parseShell || in.Word == nil {
			return
		}
		w := normWord(in.Word, src)
		if !w.lit {
			a.unknowable(st.text, ReasonShellStdin)
			return
		}
		a.nested(w.s+"\n", st.sc.depth, appendWrapper(st.wrappers, label), false, st.text)
	case syntax.RdrIn, syntax.RdrInOut:
		if in.Word != nil {
			switch w := normWord(in.Word, src); {
			case w.proc:
				a.unknowable(st.text, ReasonProcSubstShell)
			case shell && (!w.lit || isStdinPath(w.s)):
				// < /dev/stdin is the input it was given.
				a.out.StdinShell = true
			}
		}
		// Otherwise a script file, as with `bash file`.
	case syntax.DplIn:
		// <&N: whatever that descriptor holds, not known here.
		if in.Word != nil {
			if w := normWord(in.Word, src); !w.lit || w.s != "-" {
				a.unknowable(st.text, ReasonShellStdin)
				if shell {
					a.out.StdinShell = true
				}
			}
		}
	}
}

// readsFD0 reports whether r redirects standard input.
func readsFD0(r *syntax.Redirect) bool {
	if r.N != nil && r.N.Value != "0" {
		return false
	}
	switch r.Op {
	case syntax.RdrIn, syntax.RdrInOut, syntax.DplIn, syntax.Hdoc, syntax.DashHdoc, syntax.WordHdoc:
		return true
	}
	return false
}

// interpreter reports a scripting language interpreter that reads its
// program from a pipe: `curl ... | python3`.
func (a *analyzer) interpreter(name string, args []word, st *peelState) {
	if !st.stdinPipe {
		return
	}
	key := name
	if isVersionedPython(name) {
		key = "python"
	}
	inline := inlineProgramFlags[key]
	for _, w := range args {
		if !w.lit {
			return
		}
		s := w.s
		if s == "-" {
			break // the program is stdin
		}
		if s == "--" || !strings.HasPrefix(s, "-") {
			return // a script file
		}
		if strings.HasPrefix(s, "--") {
			if s == "--eval" || s == "--print" || strings.HasPrefix(s, "--eval=") || strings.HasPrefix(s, "--print=") {
				return
			}
			continue
		}
		if strings.ContainsAny(s[1:], inline) && inline != "" {
			return
		}
	}
	a.stdinScript(name, st, ReasonPipeInterp, false)
}

// eval runs its arguments joined by spaces as shell code.
func (a *analyzer) eval(args []word, st *peelState) {
	if len(args) > 0 && args[0].lit && args[0].s == "--" {
		// eval takes no options but skips "--", as every builtin does.
		args = args[1:]
	}
	if len(args) == 0 {
		return
	}
	for _, w := range args {
		if !w.lit {
			a.unknowable(st.text, ReasonEval)
			return
		}
	}
	if st.repl != "" && strings.Contains(joinWords(args), st.repl) {
		a.unknowable(st.text, st.replReason)
		return
	}
	a.nested(joinWords(args), st.sc.depth, appendWrapper(st.wrappers, "eval"), st.stdinPipe, st.text)
}

// source runs a file in the current shell.
func (a *analyzer) source(name string, args []word, st *peelState) {
	if len(args) == 0 {
		return
	}
	f := args[0]
	switch {
	case f.proc:
		a.unknowable(st.text, ReasonProcSubstShell)
	case isStdinPath(f.s):
		a.stdinScript(name, st, ReasonPipeShell, true)
		if !f.lit {
			a.unknowable(st.text, ReasonSource)
		}
	case !f.lit:
		a.unknowable(st.text, ReasonSource)
	}
}

// alias NAME=VALUE defines VALUE as code that runs when NAME is typed.
func (a *analyzer) alias(args []word, st *peelState) {
	// fish's alias takes the name and the value as two words (alias x
	// 'rm -rf /srv'); bash would only complain that neither is an alias.
	var ops []word
	for _, w := range args {
		if !w.lit || !strings.HasPrefix(w.s, "-") {
			ops = append(ops, w)
		}
	}
	if len(ops) == 2 && ops[0].lit && !strings.Contains(ops[0].s, "=") {
		if !ops[1].lit {
			a.unknowable(st.text, ReasonAlias)
		} else {
			a.nestedScope(ops[1].s, scope{depth: st.sc.depth, wrappers: appendWrapper(st.wrappers, "alias"), appended: true}, false, st.text)
			a.aliasWords(ops[1].s, st)
		}
	}
	for _, w := range args {
		if w.lit && (w.s == "-p" || w.s == "--") {
			continue
		}
		eq := strings.IndexByte(w.s, '=')
		if !w.lit {
			a.unknowable(st.text, ReasonAlias)
			continue
		}
		if eq < 0 {
			continue
		}
		// Words typed after the alias name are appended to its value.
		a.nestedScope(w.s[eq+1:], scope{depth: st.sc.depth, wrappers: appendWrapper(st.wrappers, "alias"), appended: true}, false, st.text)
		a.aliasWords(w.s[eq+1:], st)
	}
}

// aliasProbe stands for the words typed after an alias's name.
const aliasProbe = "__bastion_alias_words__"

// aliasWords reports the alias value as unknowable (ReasonAliasWords)
// unless bash, running it with the words typed after the alias's name,
// gives those words to its last command as arguments and nothing more.
// The line that uses the alias is judged as typed (`s rm -rf /srv`: the
// command s), so a value that makes those words a command (`env`, `sudo`,
// `time`, `true;`, `bash -c`, `xargs`), hides them and the rest of the
// line from the parse (`#`, `echo #`: a quote opened after it no longer
// continues the line, and the next line runs alone), or joins them or the
// next line to its own text (`r\`: bash reads the next line as the rest
// of the word) would run what no rule saw. The value is read followed by a
// word and by a line holding a word, as bash reads the line using it.
func (a *analyzer) aliasWords(value string, st *peelState) {
	if !a.aliasTakesWords(value, st.sc.depth) {
		a.unknowable(st.text, ReasonAliasWords)
	}
}

func (a *analyzer) aliasTakesWords(value string, depth int) bool {
	if strings.Contains(value, aliasProbe) || depth+1 > MaxDepth {
		return false
	}
	for _, sep := range []string{" ", "\n"} {
		text := value + sep + aliasProbe
		if !a.spend(len(text), text) || checkComplexity(text) != nil {
			return false
		}
		var stmts []*syntax.Stmt
		err := a.parser().Stmts(strings.NewReader(text), func(s *syntax.Stmt) bool {
			stmts = append(stmts, s)
			return true
		})
		if err != nil {
			return false
		}
		sub := &analyzer{out: &Analysis{}, budget: a.budget, p: a.p}
		sub.walkFile(stmts, scope{src: text, depth: depth + 1}, false)
		a.budget = sub.budget
		if sub.budgetHit || len(sub.out.Unknowable) > 0 {
			return false
		}
		asArg, alone := false, false
		for _, c := range sub.out.Commands {
			for i, w := range c.Argv {
				switch {
				case !strings.Contains(w, aliasProbe):
				case i > 0 && w == aliasProbe:
					asArg = true
				case i == 0 && len(c.Argv) == 1 && w == aliasProbe && len(c.Wrappers) == 0:
					alone = true
				default:
					return false
				}
			}
		}
		if sep == " " && (!asArg || alone) || sep != " " && (!alone || asArg) {
			return false
		}
	}
	return true
}

// abbr is fish's abbreviation: abbr -a NAME EXPANSION... makes NAME,
// typed as a word and followed by Enter or a blank, become the expansion,
// which the line then runs. With --function the expansion is the output
// of a function.
func (a *analyzer) abbr(args []word, st *peelState) {
	var ops []word
	for i := 0; i < len(args); i++ {
		w := args[i]
		if !w.lit {
			a.unknowable(st.text, ReasonAlias)
			return
		}
		switch {
		case w.s == "-f" || w.s == "--function" || strings.HasPrefix(w.s, "--function="):
			a.unknowable(st.text, ReasonAlias)
			return
		case w.s == "-e" || w.s == "--erase" || w.s == "-l" || w.s == "--list" || w.s == "-s" || w.s == "--show" || w.s == "-q" || w.s == "--query":
			return
		case w.s == "--position" || w.s == "-p" || w.s == "--regex" || w.s == "-r":
			i++ // the option's value
		case strings.HasPrefix(w.s, "-"):
		default:
			ops = append(ops, w)
		}
	}
	if len(ops) < 2 {
		return
	}
	a.nestedScope(joinWords(ops[1:]), scope{depth: st.sc.depth, wrappers: appendWrapper(st.wrappers, "abbr"), appended: true}, false, st.text)
}

// trap ACTION SIGNAL...: ACTION is code run when the signal arrives.
func (a *analyzer) trap(args []word, st *peelState) {
	r := scanOpts(args, optSpec{})
	ops := args[r.next:]
	if r.hasFlag('l') || r.hasFlag('p') || r.hasFlag('P') || len(ops) < 2 {
		return
	}
	act := ops[0]
	if !act.lit {
		a.unknowable(st.text, ReasonTrap)
		return
	}
	if act.s == "" {
		// trap '' INT: bash then ignores SIGINT and readline keeps the
		// line on Ctrl-C, which the bastion sends to drop a refused line
		// and reads as the end of a line being typed: Enter would then run
		// it.
		for _, sig := range ops[1:] {
			name := strings.TrimPrefix(strings.ToUpper(sig.s), "SIG")
			if !sig.lit || name == "INT" || sig.s == "2" {
				a.unknowable(st.text, ReasonIgnoreInt)
				return
			}
		}
	}
	if act.s == "" || act.s == "-" {
		return
	}
	a.nested(act.s, st.sc.depth, appendWrapper(st.wrappers, "trap"), false, st.text)
}

// su and runuser: -c strings run by the target user's shell, which also
// gets the words after the user name (su root -- -c 'cmd'), and reads
// stdin when given no command; runuser -u runs its operands as a command.
func (a *analyzer) su(name string, args []word, st *peelState) ([]word, string, bool) {
	spec := optSpec{valued: "cgGsw", long: set("command", "session-command", "group", "supp-group", "shell", "whitelist-environment")}
	if name == "runuser" {
		spec.valued += "u"
		spec.long["user"] = true
		if r := scanOpts(args, spec); r.hasFlag('u') || r.hasLong("user") {
			a.checkBad(r, st)
			if cs := r.values("c", "command", "session-command"); len(cs) > 0 {
				for _, v := range cs {
					a.shellString(v, name+" -c", st)
				}
				return nil, "", false
			}
			return args[r.next:], name, true
		}
	}
	r := scanPermute(args, spec)
	a.checkBad(r, st)
	cs := r.values("c", "command", "session-command")
	for _, v := range cs {
		a.shellString(v, name+" -c", st)
	}
	if shells := r.values("s", "shell"); len(shells) > 0 {
		// -s PROGRAM: the "shell" run with -c and the words after the
		// user may be any program.
		sh := shells[len(shells)-1]
		if !sh.lit {
			a.unknowable(st.text, ReasonWrapperArg)
			return nil, "", false
		}
		if !posixShellNames[baseName(sh.s)] {
			inner := []word{sh}
			for _, v := range cs {
				inner = append(inner, word{s: "-c", lit: true}, v)
			}
			ops := r.operands
			if len(ops) > 0 && ops[0].lit && ops[0].s == "-" {
				ops = ops[1:]
			}
			if len(ops) > 1 {
				inner = append(inner, ops[1:]...)
			}
			return inner, name + " -s", true
		}
	}
	if len(cs) == 0 {
		// su [-] [USER [ARG...]]: "-" is --login, and the arguments after
		// the user go to the shell.
		ops := r.operands
		if len(ops) > 0 && ops[0].lit && ops[0].s == "-" {
			ops = ops[1:]
		}
		var shellArgs []word
		if len(ops) > 1 {
			shellArgs = ops[1:]
		}
		a.shell(name, shellArgs, st)
	}
	return nil, "", false
}

// sg GROUP [-c] COMMAND runs COMMAND with sh -c.
func (a *analyzer) sg(args []word, st *peelState) {
	if len(args) > 0 && args[0].lit && args[0].s == "-" {
		args = args[1:]
	}
	if len(args) < 2 {
		// sg [group] without a command: a shell, like newgrp.
		a.stdinScript("sg", st, ReasonPipeShell, false)
		return
	}
	rest := args[1:]
	if rest[0].lit && rest[0].s == "-c" {
		rest = rest[1:]
		if len(rest) == 0 {
			return
		}
		a.shellString(rest[0], "sg", st)
		return
	}
	a.joinedString(rest, "sg", st)
}

// ssh DEST COMMAND...: the remote shell runs COMMAND (the words joined by
// spaces); it may well be this same host.
func (a *analyzer) ssh(args []word, st *peelState) {
	spec := optSpec{valued: "BbcDEeFIiJLlmOopQRSWw", noCommand: "NO"}
	r := scanOpts(args, spec)
	rest := args[r.next:]
	// OpenSSH reads options after the destination too.
	var r2 scanResult
	if len(rest) > 0 {
		r2 = scanOpts(rest[1:], spec)
	}
	r.bad = r.bad || r2.bad
	r.opts = append(r.opts, r2.opts...)
	a.checkBad(r, st)
	// Settings that run a command of their own (ProxyCommand, …) or load a
	// library (-I, PKCS11Provider), even without a remote command.
	for _, v := range r.values("o") {
		a.sshOption(v, st)
	}
	if len(r.values("I")) > 0 {
		a.unknowable(st.text, ReasonCodeSetting)
	}
	for _, f := range r.values("F") {
		if !f.lit || isStdinPath(f.s) || f.s == "-" {
			a.unknowable(st.text, ReasonCodeSetting) // a configuration on the input
		}
	}
	if len(rest) == 0 {
		return // options only (RSYNC_RSH='ssh -o …'): judged above
	}
	for _, c := range []byte(spec.noCommand) {
		if r.hasFlag(c) {
			return
		}
	}
	cmd := rest[1+r2.next:]
	if len(cmd) == 0 {
		if !r.hasFlag('W') && !r2.hasFlag('W') {
			// A remote login shell: it reads its commands from ssh's input.
			a.stdinScript("ssh", st, ReasonPipeShell, true)
		}
		return
	}
	a.joinedString(cmd, "ssh", st)
}

// find ... -exec CMD ARGS ; runs CMD for the files found ({} is a file).
func (a *analyzer) find(args []word, st *peelState) {
	for i := 0; i < len(args); i++ {
		w := args[i]
		if !w.lit || (w.s != "-exec" && w.s != "-execdir" && w.s != "-ok" && w.s != "-okdir") {
			continue
		}
		j := i + 1
		for j < len(args) && !(args[j].lit && (args[j].s == ";" || args[j].s == "+")) {
			j++
		}
		inner := args[i+1 : j]
		i = j
		if len(inner) == 0 {
			continue
		}
		sub := *st
		sub.wrappers = appendWrapper(st.wrappers, "find -exec")
		sub.repl, sub.replReason = "{}", ReasonFindExec
		a.peel(inner, sub)
	}
}

// flock [opts] FILE CMD... or flock [opts] FILE -c STRING.
func (a *analyzer) flock(args []word, st *peelState) ([]word, string, bool) {
	spec := optSpec{valued: "wEc", long: set("timeout", "wait", "conflict-exit-code", "command")}
	r := scanOpts(args, spec)
	a.checkBad(r, st)
	for _, v := range r.values("c", "command") {
		a.shellString(v, "flock -c", st)
	}
	rest := args[r.next:]
	if len(rest) < 2 {
		return nil, "", false
	}
	rest = rest[1:] // the lock file or descriptor
	if rest[0].lit && (rest[0].s == "-c" || rest[0].s == "--command") {
		if len(rest) > 1 {
			a.shellString(rest[1], "flock -c", st)
		}
		return nil, "", false
	}
	return rest, "flock", true
}

// ReasonMultiplexer: a terminal multiplexer command that runs a command,
// or types keys into a shell, given in its own language (tmux send-keys,
// run-shell, bind-key; screen -X stuff).
const ReasonMultiplexer = "a terminal multiplexer command that runs or types commands"

// tmuxQuiet are tmux commands that run and type nothing.
var tmuxQuiet = set("ls", "list-sessions", "list-windows", "lsw", "list-panes", "lsp", "list-clients", "lsc",
	"list-buffers", "lsb", "list-commands", "lscm", "list-keys", "lsk", "has-session", "has", "display-message", "display",
	"show-options", "show", "show-window-options", "showw", "show-environment", "showenv", "show-buffer", "showb",
	"info", "server-info", "kill-server", "kill-session", "kill-window", "killw", "kill-pane", "killp",
	"detach-client", "detach", "rename-session", "rename", "rename-window", "renamew", "capture-pane", "capturep",
	"select-window", "selectw", "select-pane", "selectp", "start-server", "start")

// tmuxShells are tmux commands that start a shell (or a given command) in a
// new pane: the words after their options are that command, run by sh -c.
var tmuxShells = map[string]string{
	"new-session": "Adc:DEe:F:f:n:Ps:t:Xx:y:", "new": "Adc:DEe:F:f:n:Ps:t:Xx:y:",
	"new-window": "abc:de:F:kn:PSt:", "neww": "abc:de:F:kn:PSt:",
	"split-window": "bc:de:fF:hIl:Pp:t:vZ", "splitw": "bc:de:fF:hIl:Pp:t:vZ",
	"respawn-pane": "c:e:kt:", "respawnp": "c:e:kt:", "respawn-window": "c:e:kt:", "respawnw": "c:e:kt:",
}

// tmux: with no command, or new-session, attach-session and the commands
// that open a pane, tmux starts a shell whose keys come from the session's
// input (a shell reading stdin, as ssh host bash); a command given for a
// new pane is judged like sh -c; commands that type keys or run commands
// in tmux's own language are unknowable; the rest run nothing.
func (a *analyzer) tmux(args []word, st *peelState) ([]word, string, bool) {
	r := scanOpts(args, optSpec{valued: "cfLST"})
	if len(r.values("c")) > 0 {
		a.unknowable(st.text, ReasonMultiplexer) // tmux -c: run by the default shell
		return nil, "", false
	}
	rest := args[r.next:]
	if len(rest) == 0 {
		a.stdinScript("tmux", st, ReasonPipeShell, false)
		return nil, "", false
	}
	cmd := rest[0]
	if !cmd.lit {
		a.unknowable(st.text, ReasonMultiplexer)
		return nil, "", false
	}
	switch {
	case tmuxQuiet[cmd.s]:
	case cmd.s == "attach-session" || cmd.s == "attach" || cmd.s == "a" || cmd.s == "at":
		a.stdinScript("tmux", st, ReasonPipeShell, false)
	case tmuxShells[cmd.s] != "":
		spec := tmuxShells[cmd.s]
		var valued strings.Builder
		for i := 0; i < len(spec); i++ {
			if i+1 < len(spec) && spec[i+1] == ':' {
				valued.WriteByte(spec[i])
			}
		}
		o := scanOpts(rest[1:], optSpec{valued: valued.String()})
		a.checkBad(o, st)
		if !o.hasFlag('d') {
			a.stdinScript("tmux", st, ReasonPipeShell, false)
		}
		if shell := rest[1+o.next:]; len(shell) > 0 {
			// One word is run with sh -c; more are the program and its
			// arguments, run as they are.
			a.joinedString(shell, "tmux "+cmd.s, st)
			if len(shell) > 1 {
				return shell, "tmux " + cmd.s, true
			}
		}
	default:
		a.unknowable(st.text, ReasonMultiplexer)
	}
	return nil, "", false
}

// screen: its options are read as screen reads them (a valued letter in a
// cluster takes the rest of the cluster or the next word; -r, -R, -x and
// -d/-D take a following session name); listing, version and help run
// nothing; -X and -Q send a command to a session (stuff types keys into
// its shell), unknowable; otherwise screen attaches to a session, or
// starts one running the command given (as its argv) or a shell, whose keys
// come from the session's input unless it starts detached (-d -m, -D -m).
func (a *analyzer) screen(args []word, st *peelState) ([]word, string, bool) {
	var d, m, r, sock bool
	i := 0
scan:
	for i < len(args) {
		w := args[i]
		if !w.lit {
			a.unknowable(st.text, ReasonMultiplexer)
			return nil, "", false
		}
		s := w.s
		switch {
		case s == "--":
			i++
			break scan
		case s == "--version" || s == "--help" || s == "-list" || s == "-ls" || s == "-wipe" || s == "-version" || s == "-help":
			return nil, "", false
		case !strings.HasPrefix(s, "-"):
			break scan
		case s == "-Logfile":
			i += 2
			continue
		}
		next := i + 1
	cluster:
		for k := 1; k < len(s); k++ {
			switch c := s[k]; c {
			case 'a', 'A', 'i', 'm', 'O', 'q', 'U', 'B', 'L':
				m = m || c == 'm'
			case 'p', 'c', 'e':
				if k+1 == len(s) {
					next++
				}
				break cluster
			case 'f', 'l':
				if k+1 < len(s) {
					switch s[k+1] {
					case 's', 'i':
						if c == 'l' {
							return nil, "", false // -ls, -list
						}
					case 'n', '0', 'y', '1', 'a':
					default:
						k--
					}
					k++
				}
			case 'h', 't', 'T', 's':
				next++
			case 'S':
				if !sock {
					next++
					sock = true
				}
			case 'w', 'v':
				return nil, "", false // -wipe, -v
			case 'r', 'R', 'x':
				r = true
				if next < len(args) && !strings.HasPrefix(args[next].s, "-") && !sock {
					next++
					sock = true
				}
			case 'd', 'D':
				d = true
				if next == len(args)-1 && !strings.HasPrefix(args[next].s, "-") && !sock {
					next++
					sock = true
				}
			case 'X', 'Q':
				a.unknowable(st.text, ReasonMultiplexer)
				return nil, "", false
			default:
				a.unknowable(st.text, ReasonWrapperOption)
				return nil, "", false
			}
		}
		i = next
	}
	if i > len(args) {
		i = len(args)
	}
	if r || !d || !m {
		if r || !d {
			a.stdinScript("screen", st, ReasonPipeShell, false)
		} else {
			return nil, "", false // screen -d SESSION: detaches it elsewhere
		}
	}
	cmd := args[i:]
	if len(cmd) == 0 {
		return nil, "", false
	}
	a.joinedString(cmd, "screen", st)
	return cmd, "screen", true
}
