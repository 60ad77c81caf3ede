package shellcmd

import (
	"regexp"
	"strings"
)

// Programs whose own language runs commands (awk, vim's Ex commands,
// make), and more launchers: chroot and jail tools, developer containers,
// file watchers, remote shells of other tools.

// awk [options] 'program' [file...]: the program runs a command through
// system(), a pipe to or from a command (print | "cmd", "cmd" | getline),
// a coprocess (|&) or an indirect call (gawk's @f(), which may name
// system). A program with none of these runs no command. A program from a
// file (-f) is, like a script, not read; a library (-l) is unknowable.
func (a *analyzer) awk(args []word, st *peelState) {
	r := scanOpts(args, optSpec{valued: "FvfeiElW", optional: "dDLop", long: set("file", "field-separator", "assign",
		"source", "include", "load", "exec")})
	if r.bad {
		a.unknowable(st.text, ReasonWrapperArg)
		return
	}
	if len(r.values("l", "load")) > 0 {
		a.unknowable(st.text, ReasonCodeSetting)
		return
	}
	for _, f := range r.values("f", "file", "E", "exec", "i", "include") {
		if !f.lit || isStdinPath(f.s) || f.s == "-" {
			a.unknowable(st.text, ReasonCodeSetting) // the program is on the input
			return
		}
	}
	progs := r.values("e", "source")
	if len(progs) == 0 && len(r.values("f", "file", "E", "exec", "i", "include")) == 0 {
		if rest := args[r.next:]; len(rest) > 0 {
			progs = append(progs, rest[0])
		}
	}
	for _, p := range progs {
		if !p.lit || awkRunsCommand(p.s) {
			a.unknowable(st.text, ReasonCodeSetting)
			return
		}
	}
}

// awkRunsCommand reports whether an awk program may run a command: it
// holds system, a pipe (| or |&, not ||) or an @ outside string and
// regular expression literals.
func awkRunsCommand(p string) bool {
	prev := byte('(') // the last significant character: an operand may follow
	for i := 0; i < len(p); i++ {
		c := p[i]
		switch {
		case c == '"':
			for i++; i < len(p) && p[i] != '"'; i++ {
				if p[i] == '\\' {
					i++
				}
			}
			prev = '"'
		case c == '#':
			for i < len(p) && p[i] != '\n' {
				i++
			}
			prev = '\n'
		case c == '/' && strings.IndexByte("(,~!{};&|=:?\n", prev) >= 0:
			// A regular expression literal where an operand is expected
			// (after an operand, / divides).
			for i++; i < len(p) && p[i] != '/'; i++ {
				switch p[i] {
				case '\\':
					i++
				case '[':
					i++
					if i < len(p) && p[i] == '^' {
						i++
					}
					if i < len(p) && p[i] == ']' {
						i++
					}
					for i < len(p) && p[i] != ']' {
						i++
					}
				}
			}
			prev = '/'
		case c == '|':
			if i+1 < len(p) && p[i+1] == '|' {
				i++
				prev = '|'
				continue
			}
			return true
		case c == '@':
			return true
		case c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			j := i
			for j < len(p) && (p[j] == '_' || p[j] >= 'a' && p[j] <= 'z' || p[j] >= 'A' && p[j] <= 'Z' || p[j] >= '0' && p[j] <= '9') {
				j++
			}
			if p[i:j] == "system" {
				return true
			}
			i = j - 1
			prev = 'a'
		case c == ' ' || c == '\t' || c == '\r':
		case c == '\\' && i+1 < len(p) && p[i+1] == '\n':
			i++
		default:
			prev = c
		}
	}
	return false
}

// vimHarmless matches an Ex command that runs nothing: a line number, a
// search, an option setting, syntax and file type, leaving, writing,
// editing a file by name.
var vimHarmless = regexp.MustCompile(`^\s*:*\s*(\d+|\$|[/?].*|(set?|setl(ocal)?|setg(lobal)?)(\s+[^|]*)?|syn(tax)?\s+(on|off|enable)|filet(ype)?(\s+\w+)*|colo(rscheme)?\s+[\w-]+|noh(lsearch)?|q(uit)?!?|qa(ll)?!?|wq?a?!?|wq?all!?|x(it)?!?|xa(ll)?!?|startinsert!?|stopinsert|redraw!?|e(dit)?!?\s+[\w./-]+|only|vsp(lit)?|sp(lit)?|tabe(dit)?\s+[\w./-]+|retab!?|nu(mber)?|%s/[^|!]*|g/[^|!]*/d|diffupdate|diffthis)\s*$`)

// vimSetValue is an option value that holds no expression, function or
// command: expression options (foldexpr, …) are evaluated as the buffer
// is drawn.
var vimSetValue = regexp.MustCompile(`^[\w.,:/+-]*$`)

// vimSetHarmless reports whether an Ex command, if it sets options, sets
// only options that are not expressions, functions or programs to plain
// values.
func vimSetHarmless(cmd string) bool {
	f := strings.Fields(strings.TrimLeft(cmd, " :"))
	if len(f) == 0 {
		return true
	}
	switch f[0] {
	case "set", "se", "setl", "setlocal", "setg", "setglobal":
	default:
		return true
	}
	for _, opt := range f[1:] {
		name, val, _ := strings.Cut(opt, "=")
		name = strings.TrimRight(name, "+-^:")
		n := strings.ToLower(name)
		if !vimSetValue.MatchString(val) || strings.Contains(n, "expr") || strings.Contains(n, "func") ||
			strings.Contains(n, "prg") || strings.Contains(n, "shell") || strings.HasSuffix(n, "fe") || strings.HasSuffix(n, "fu") || strings.HasSuffix(n, "ex") {
			return false
		}
	}
	return true
}

// vim, vi, ex and their kin run Ex commands given with -c, --cmd and
// +CMD before editing: any that is not plainly harmless (:!, :r !, :call
// system(), :norm, :exe, :lua, a backtick) is unknowable. Commands typed
// in the editor are not judged (it is a full-screen program).
func (a *analyzer) vim(args []word, st *peelState) {
	check := func(v word) bool {
		if !v.lit || strings.Contains(v.s, "`") {
			return false
		}
		if strings.Contains(v.s, "\\=") {
			return false // :s with \= evaluates an expression
		}
		for _, part := range strings.Split(v.s, "|") {
			if !vimHarmless.MatchString(part) || !vimSetHarmless(part) {
				return false
			}
		}
		return true
	}
	for i := 0; i < len(args); i++ {
		w := args[i]
		var v word
		switch {
		case w.lit && (w.s == "-c" || w.s == "--cmd"):
			if i+1 >= len(args) {
				return
			}
			i++
			v = args[i]
		case strings.HasPrefix(w.s, "+") && w.s != "+":
			v = word{s: w.s[1:], lit: w.lit}
		case w.s == "--":
			return
		default:
			if !w.lit && strings.HasPrefix(w.s, "$") {
				// May be -c or +CMD at run time.
				a.unknowable(st.text, ReasonWrapperArg)
				return
			}
			continue
		}
		if !check(v) {
			a.unknowable(st.text, ReasonCodeSetting)
			return
		}
	}
}

// make runs makefile text given with --eval (-E) and a makefile read from
// its input (-f -); SHELL and .SHELLFLAGS set on its command line choose the
// program that runs every recipe, and a value holding a make function
// ($(shell …)) or a != assignment runs a command as it is read.
func (a *analyzer) make(args []word, st *peelState) {
	// A non-literal option (-j$(nproc)) is fine: only --eval, -f and the
	// assignments are read.
	r := scanPermute(args, optSpec{valued: "CfIoWE", optional: "jlO", long: set("directory", "file", "makefile",
		"include-dir", "old-file", "assume-old", "what-if", "new-file", "assume-new", "eval")})
	if len(r.values("E", "eval")) > 0 {
		a.unknowable(st.text, ReasonCodeSetting)
		return
	}
	for _, f := range r.values("f", "file", "makefile") {
		if !f.lit || isStdinPath(f.s) || f.s == "-" {
			a.unknowable(st.text, ReasonCodeSetting)
			return
		}
	}
	for _, op := range r.operands {
		eq := strings.IndexByte(op.s, '=')
		if eq <= 0 {
			continue
		}
		name := strings.TrimRight(op.s[:eq], ":+?! ")
		val := op.s[eq+1:]
		if !op.lit && !plainExpansions(op.s) || op.s[eq-1] == '!' || name == "SHELL" || name == ".SHELLFLAGS" || name == "MAKESHELL" ||
			strings.Contains(val, "$(") || strings.Contains(val, "${") || strings.Contains(val, "`") {
			a.unknowable(st.text, ReasonCodeSetting)
			return
		}
	}
}

// plainExpansions reports whether the only expansions in a word's text are
// of the working or home directory, the user or the processor count:
// make reads their values as plain text (a value holding $(shell …)
// arrives only through another variable).
func plainExpansions(s string) bool {
	for _, e := range []string{"$HOME", "${HOME}", "$PWD", "${PWD}", "$(pwd)", "$(nproc)", "$USER", "${USER}", "$(getconf _NPROCESSORS_ONLN)"} {
		s = strings.ReplaceAll(s, e, "")
	}
	return !strings.ContainsAny(s, "$`")
}

// ipObject returns the index of ip's object (netns, vrf, link, …) after its
// options, or -1.
func ipObject(args []word) int {
	for i := 0; i < len(args); i++ {
		w := args[i]
		if !w.lit {
			return -1
		}
		if !strings.HasPrefix(w.s, "-") {
			return i
		}
		switch strings.TrimLeft(w.s, "-") {
		case "n", "netns", "b", "batch", "rc", "rcvbuf", "f", "family", "l", "loops":
			i++
		}
	}
	return -1
}

// wordsAfterDash returns the words after the first "--" and whether there
// was one.
func wordsAfterDash(args []word) ([]word, bool) {
	for i, w := range args {
		if w.lit && w.s == "--" {
			return args[i+1:], true
		}
	}
	return nil, false
}

// distrobox enter NAME [-- COMMAND...] (distrobox-enter): without a command,
// a shell on the session's input.
func (a *analyzer) distrobox(args []word, st *peelState) ([]word, string, bool) {
	if cmd, ok := wordsAfterDash(args); ok && len(cmd) > 0 {
		return cmd, "distrobox enter", true
	}
	for i, w := range args {
		if w.lit && (w.s == "-e" || w.s == "--exec") {
			return args[i+1:], "distrobox enter", true
		}
	}
	a.stdinScript("distrobox", st, ReasonPipeShell, false)
	return nil, "", false
}

// flatpak run [options] --command=CMD APP [ARG...] runs CMD in the app's
// sandbox.
func (a *analyzer) flatpak(args []word, st *peelState) ([]word, string, bool) {
	if len(args) == 0 || !args[0].lit || args[0].s != "run" {
		return nil, "", false
	}
	var cmd *word
	i := 1
	for ; i < len(args); i++ {
		w := args[i]
		if !w.lit {
			a.unknowable(st.text, ReasonWrapperArg)
			return nil, "", false
		}
		if !strings.HasPrefix(w.s, "-") {
			break
		}
		if v, ok := strings.CutPrefix(w.s, "--command="); ok {
			cmd = &word{s: v, lit: true}
		} else if w.s == "--command" && i+1 < len(args) {
			i++
			c := args[i]
			cmd = &c
		} else if strings.HasPrefix(w.s, "--") && !strings.Contains(w.s, "=") && !flatpakRunFlags[w.s[2:]] {
			a.unknowable(st.text, ReasonWrapperOption)
			return nil, "", false
		}
	}
	if cmd == nil || i >= len(args) {
		return nil, "", false
	}
	return append([]word{*cmd}, args[i+1:]...), "flatpak run", true
}

var flatpakRunFlags = set("user", "system", "devel", "log-session-bus", "log-system-bus", "log-a11y-bus", "no-a11y-bus",
	"no-session-bus", "no-documents-portal", "file-forwarding", "die-with-parent", "sandbox", "clear-env", "verbose",
	"parent-expose-pids", "parent-share-pids", "a11y-bus", "session-bus", "help")

// remoteShells are other tools' ssh: the command they run (a -c or
// --command string, or the words after the host) and a shell on the
// session's input without one.
func (a *analyzer) remoteShell(name string, args []word, st *peelState) ([]word, string, bool) {
	switch name {
	case "vagrant":
		if len(args) == 0 || !args[0].lit || args[0].s != "ssh" {
			return nil, "", false
		}
		r := scanPermute(args[1:], optSpec{valued: "c", long: set("command")})
		a.checkBad(r, st)
		cs := r.values("c", "command")
		for _, v := range cs {
			a.shellString(v, "vagrant ssh -c", st)
		}
		if len(cs) == 0 {
			a.stdinScript(name, st, ReasonPipeShell, true)
		}
	case "gcloud":
		// gcloud compute ssh INSTANCE [--command=CMD] [-- SSH ARGS [CMD]].
		if len(args) < 2 || args[0].s != "compute" || args[1].s != "ssh" {
			return nil, "", false
		}
		before, after := args[2:], []word(nil)
		for i, w := range before {
			if w.lit && w.s == "--" {
				before, after = before[:i], before[i+1:]
				break
			}
		}
		r := scanPermute(before, optSpec{long: set("command", "zone", "project", "ssh-flag", "ssh-key-file",
			"internal-ip", "tunnel-through-iap", "container", "troubleshoot", "strict-host-key-checking", "dry-run")})
		a.checkBad(r, st)
		cs := r.values("command")
		for _, v := range cs {
			a.shellString(v, "gcloud compute ssh --command", st)
		}
		for _, v := range r.values("ssh-flag") {
			if o, ok := strings.CutPrefix(strings.TrimSpace(v.s), "-o"); ok && v.lit {
				a.sshOption(word{s: o, lit: true}, st)
			} else if !v.lit {
				a.unknowable(st.text, ReasonWrapperArg)
			}
		}
		if len(after) > 0 {
			// ssh's own options and a remote command, after the host.
			a.ssh(append([]word{{s: "host", lit: true}}, after...), st)
		}
		if len(cs) == 0 && len(after) == 0 {
			a.stdinScript(name, st, ReasonPipeShell, true)
		}
	case "tsh":
		if len(args) == 0 || !args[0].lit || args[0].s != "ssh" {
			return nil, "", false
		}
		a.ssh(args[1:], st)
	case "autossh":
		// autossh [-M PORT] [-f] [ssh options] host [command]
		var rest []word
		for _, w := range args {
			if w.lit && (w.s == "-f" || w.s == "-V") {
				continue
			}
			rest = append(rest, w)
		}
		// Drop -M and its value.
		for i := 0; i < len(rest); i++ {
			if rest[i].lit && rest[i].s == "-M" && i+1 < len(rest) {
				rest = append(rest[:i:i], rest[i+2:]...)
				break
			}
			if rest[i].lit && strings.HasPrefix(rest[i].s, "-M") {
				rest = append(rest[:i:i], rest[i+1:]...)
				break
			}
		}
		a.ssh(rest, st)
	case "mosh":
		// mosh [options] [--] HOST [--] [COMMAND...]: --ssh is run locally,
		// --server and the command on the host.
		i := 0
		for ; i < len(args); i++ {
			w := args[i]
			if !w.lit {
				a.unknowable(st.text, ReasonWrapperArg)
				return nil, "", false
			}
			if w.s == "--" {
				i++
				break
			}
			if !strings.HasPrefix(w.s, "-") {
				break
			}
			opt, val, eq := strings.Cut(w.s, "=")
			switch opt {
			case "--ssh", "--server", "--client":
				if !eq && i+1 < len(args) {
					i++
					val = args[i].s
					if !args[i].lit {
						a.unknowable(st.text, ReasonWrapperArg)
						return nil, "", false
					}
				}
				a.shellString(word{s: val, lit: true}, "mosh "+opt, st)
			case "-p", "--port", "--family", "--predict", "--bind-server", "--experimental-remote-ip":
				if !eq {
					i++
				}
			}
		}
		if i >= len(args) {
			return nil, "", false
		}
		cmd := args[i+1:]
		if len(cmd) > 0 && cmd[0].lit && cmd[0].s == "--" {
			cmd = cmd[1:]
		}
		if len(cmd) == 0 {
			a.stdinScript(name, st, ReasonPipeShell, true)
			return nil, "", false
		}
		return cmd, "mosh", true
	case "az":
		// az vm run-command invoke … --scripts SCRIPT...
		run := false
		for i, w := range args {
			if w.lit && w.s == "run-command" {
				run = true
			}
			if !run {
				continue
			}
			if w.s == "--scripts" || w.s == "--script" {
				for _, v := range args[i+1:] {
					if v.lit && strings.HasPrefix(v.s, "--") {
						break
					}
					a.shellString(v, "az vm run-command", st)
				}
			} else if v, ok := strings.CutPrefix(w.s, "--scripts="); ok {
				a.shellString(word{s: v, lit: w.lit}, "az vm run-command", st)
			}
		}
	case "aws":
		// aws ssm send-command: the commands are in JSON or shorthand
		// parameters, not read here.
		send := false
		for _, w := range args {
			send = send || w.lit && w.s == "send-command"
		}
		if send {
			a.unknowable(st.text, ReasonCodeSetting)
		}
	}
	return nil, "", false
}

// moreLaunchers follows the launchers of this file; ok reports whether
// name is one of them.
func (a *analyzer) moreLaunchers(name string, args []word, st *peelState) (inner []word, label string, follow, ok bool) {
	switch name {
	case "awk", "gawk", "mawk", "nawk", "original-awk", "busybox-awk":
		a.awk(args, st)
	case "vim", "vi", "nvim", "ex", "view", "vimdiff", "gvim", "rvim", "evim", "nview", "gview", "rview", "vim.basic", "vim.tiny", "vim.nox", "vim.gtk3":
		a.vim(args, st)
	case "make", "gmake":
		a.make(args, st)
	case "distrobox":
		if len(args) > 0 && args[0].lit && args[0].s == "enter" {
			inner, label, follow = a.distrobox(args[1:], st)
		}
	case "distrobox-enter":
		inner, label, follow = a.distrobox(args, st)
	case "toolbox":
		if len(args) > 0 && args[0].lit {
			switch args[0].s {
			case "enter":
				a.stdinScript(name, st, ReasonPipeShell, false)
			case "run":
				r, ok := a.strictScan(args[1:], optSpec{valued: "cdr", long: set("container", "distro", "release", "preserve-fds")}, set("h", "help", "y", "assumeyes"), st)
				if ok {
					inner, label, follow = args[1+r.next:], "toolbox run", true
				}
			}
		}
	case "flatpak":
		inner, label, follow = a.flatpak(args, st)
	case "pct":
		if len(args) > 1 && args[0].lit {
			switch args[0].s {
			case "enter", "console":
				a.stdinScript(name, st, ReasonPipeShell, false)
			case "exec":
				if cmd, ok := wordsAfterDash(args[2:]); ok {
					inner, label, follow = cmd, "pct exec", true
				} else {
					inner, label, follow = args[2:], "pct exec", true
				}
			}
		}
	case "vzctl":
		if len(args) > 1 && args[0].lit {
			switch args[0].s {
			case "enter", "console":
				a.stdinScript(name, st, ReasonPipeShell, false)
			case "exec", "exec2":
				if len(args) > 2 {
					a.joinedString(args[2:], "vzctl exec", st)
				}
			}
		}
	case "watchexec":
		inner, label, follow = a.watchexec(args, st)
	case "reflex":
		if cmd, ok := wordsAfterDash(args); ok && len(cmd) > 0 {
			inner, label, follow = cmd, "reflex", true
		} else {
			a.unknowable(st.text, ReasonWrapperOption)
		}
	case "nodemon":
		r := scanPermute(args, optSpec{valued: "xwieVd", long: set("exec", "watch", "ignore", "ext", "delay", "signal", "config")})
		a.checkBad(r, st)
		for _, v := range r.values("x", "exec") {
			a.shellString(v, "nodemon --exec", st)
		}
	case "vagrant", "gcloud", "tsh", "autossh", "mosh", "az", "aws":
		inner, label, follow = a.remoteShell(name, args, st)
	default:
		return nil, "", false, false
	}
	return inner, label, follow, true
}

// watchexec [options] [--] COMMAND...: run with the shell (the words
// joined) unless --shell=none (-n in older releases) runs it as argv.
func (a *analyzer) watchexec(args []word, st *peelState) ([]word, string, bool) {
	cmd, ok := wordsAfterDash(args)
	if !ok {
		r := scanOpts(args, optSpec{valued: "weifdsjpE", long: set("watch", "exts", "ignore", "filter", "debounce",
			"signal", "shell", "on-busy-update", "project-origin", "workdir", "env", "delay-run", "poll", "emit-events-to",
			"stop-signal", "stop-timeout", "timeout", "watch-file", "wrap-process", "filter-file", "ignore-file")})
		if !knownOpts(r, optSpec{valued: "weifdsjpE", long: r.longNames()}, set("r", "c", "n", "o", "N", "p", "q", "v", "W",
			"restart", "clear", "postpone", "notify", "no-vcs-ignore", "no-project-ignore", "no-global-ignore",
			"no-default-ignore", "no-discover-ignore", "no-meta", "print-events", "quiet", "verbose", "help", "version")) {
			a.unknowable(st.text, ReasonWrapperOption)
			return nil, "", false
		}
		cmd = args[r.next:]
	}
	if len(cmd) == 0 {
		return nil, "", false
	}
	a.joinedString(cmd, "watchexec", st)
	return cmd, "watchexec", true
}

// longNames returns the long option names r read, for a spec that knows
// them all.
func (r scanResult) longNames() map[string]bool {
	m := map[string]bool{}
	for _, o := range r.opts {
		if o.long {
			m[o.name] = true
		}
	}
	return m
}
