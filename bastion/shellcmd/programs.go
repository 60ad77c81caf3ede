package shellcmd

import "strings"

// More programs that run a command line they are given, or that a setting
// makes run one.

// ReasonCodeSetting: a setting whose value is a command the program runs
// (git -c core.sshCommand=…, an alias starting with '!'), or a program
// whose command line is built from its input or a script (GNU parallel,
// expect).
const ReasonCodeSetting = "setting or script that runs a command"

// chpst (runit) and daemonize run their operands as a command.
var (
	chpstSpec     = optSpec{valued: "uUe/nlLmdopfcrt"}
	daemonizeSpec = optSpec{valued: "ceoplu"}
)

// startStopDaemon follows start-stop-daemon --start to the program it
// starts (--startas, else --exec) with the arguments after "--".
func (a *analyzer) startStopDaemon(args []word, st *peelState) ([]word, string, bool) {
	spec := optSpec{valued: "xpnuagrNPIkdCcs", long: set("exec", "pidfile", "name", "user", "startas",
		"group", "chroot", "nicelevel", "procsched", "iosched", "umask", "chdir", "chuid", "signal",
		"retry", "make-pidfile", "remove-pidfile", "notify-await", "notify-timeout", "output", "ppid")}
	// Its flags --start, --stop, --status would read as abbreviations of
	// --startas and --stop... valued options: spelled short for the scan.
	short := map[string]string{"--start": "-S", "--stop": "-K", "--status": "-T", "--test": "-t", "--background": "-b", "--oknodo": "-o", "--quiet": "-q", "--verbose": "-v"}
	args = append([]word(nil), args...)
	for i, w := range args {
		if s, ok := short[w.s]; ok && w.lit {
			args[i].s = s
		}
	}
	dd := len(args)
	for i, w := range args {
		if w.lit && w.s == "--" {
			dd = i
			break
		}
	}
	r := scanPermute(args[:dd], spec)
	a.checkBad(r, st)
	if !r.hasFlag('S') && !r.hasLong("start") {
		return nil, "", false
	}
	prog := r.values("a", "startas")
	if len(prog) == 0 {
		prog = r.values("x", "exec")
	}
	if len(prog) == 0 {
		return nil, "", false
	}
	var tail []word
	if dd < len(args) {
		tail = args[dd+1:]
	}
	return append([]word{prog[len(prog)-1]}, tail...), "start-stop-daemon", true
}

// gitCodeKey reports whether a git configuration key's value is a command
// git runs (or, for an alias, runs when it starts with '!').
func gitCodeKey(key, value string) bool {
	k := strings.ToLower(key)
	switch k {
	case "core.pager", "core.sshcommand", "core.editor", "core.fsmonitor", "core.hookspath",
		"core.askpass", "core.gitproxy", "sequence.editor", "diff.external", "gpg.program",
		"gpg.ssh.program", "gpg.x509.program", "gpg.openpgp.program", "credential.helper",
		"uploadpack.packobjectshook", "ssh.variant", "web.browser", "protocol.allow",
		"include.path", "interactive.difffilter", "sendemail.sendmailcmd",
		"sendemail.smtpserver", "receive.procreceiverefs":
		return true
	}
	switch {
	case strings.HasPrefix(k, "alias."):
		return strings.HasPrefix(strings.TrimSpace(value), "!")
	case strings.HasPrefix(k, "pager."), strings.HasPrefix(k, "filter."), strings.HasPrefix(k, "includeif."),
		strings.HasPrefix(k, "url."), strings.HasPrefix(k, "protocol."):
		return true
	case strings.HasSuffix(k, ".textconv"), strings.HasSuffix(k, ".command"), strings.HasSuffix(k, ".driver"),
		strings.HasSuffix(k, ".cmd"), strings.HasSuffix(k, ".tool"), strings.HasSuffix(k, ".path") && strings.HasPrefix(k, "difftool."),
		strings.HasSuffix(k, ".path") && strings.HasPrefix(k, "mergetool."), strings.HasSuffix(k, ".helper"),
		strings.HasSuffix(k, ".uploadpack"), strings.HasSuffix(k, ".receivepack"), strings.HasSuffix(k, ".proxy"),
		strings.HasSuffix(k, ".sshcommand"), strings.HasSuffix(k, ".vcs"):
		return true
	}
	return false
}

// git: a -c KEY=VALUE, or a `git config` that sets a key, whose value git
// runs as a command makes the line unknowable; --exec-path and -C, -c
// values that are not literal, too.
func (a *analyzer) git(args []word, st *peelState) {
	i := 0
	for i < len(args) {
		w := args[i]
		if !w.lit {
			a.unknowable(st.text, ReasonWrapperArg)
			return
		}
		s := w.s
		switch {
		case s == "-c" || s == "--config-env":
			if i+1 >= len(args) || !args[i+1].lit {
				a.unknowable(st.text, ReasonWrapperArg)
				return
			}
			key, val, _ := strings.Cut(args[i+1].s, "=")
			if s == "--config-env" || gitCodeKey(key, val) {
				a.unknowable(st.text, ReasonCodeSetting)
				return
			}
			i += 2
			continue
		case strings.HasPrefix(s, "--config-env="), strings.HasPrefix(s, "--exec-path"):
			a.unknowable(st.text, ReasonCodeSetting)
			return
		case s == "-C" || s == "--git-dir" || s == "--work-tree" || s == "--namespace" || s == "--super-prefix":
			i += 2
			continue
		case strings.HasPrefix(s, "-"):
			i++
			continue
		}
		break
	}
	if i >= len(args) || args[i].s != "config" {
		return
	}
	// git config [options] KEY VALUE (and set, --add, --replace-all).
	var ops []string
	for _, w := range args[i+1:] {
		if !w.lit {
			a.unknowable(st.text, ReasonWrapperArg)
			return
		}
		if strings.HasPrefix(w.s, "-") {
			switch w.s {
			case "--file", "-f", "--blob", "--type", "--default", "--comment", "--value":
				ops = append(ops, "\x00") // its value follows: skipped below
			}
			continue
		}
		ops = append(ops, w.s)
	}
	var words []string
	for j := 0; j < len(ops); j++ {
		if ops[j] == "\x00" {
			j++
			continue
		}
		words = append(words, ops[j])
	}
	if len(words) > 0 && (words[0] == "set" || words[0] == "unset" || words[0] == "get") {
		words = words[1:]
	}
	if len(words) >= 2 && gitCodeKey(words[0], words[1]) {
		a.unknowable(st.text, ReasonCodeSetting)
	}
}
