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
	switch k {
	case "init.templatedir", "instaweb.httpd", "instaweb.browser":
		// A template directory's hooks are copied into each new
		// repository and run.
		return true
	}
	switch {
	case strings.HasPrefix(k, "alias."):
		return strings.HasPrefix(strings.TrimSpace(value), "!")
	case strings.HasPrefix(k, "submodule.") && strings.HasSuffix(k, ".update"):
		// submodule.NAME.update=!command, honoured from the configuration.
		return true
	case strings.HasSuffix(k, "command"), strings.HasSuffix(k, "cmd"):
		// core.alternateRefsCommand, gpg.ssh.defaultKeyCommand,
		// sendemail.toCmd, ccCmd, headerCmd, and the .command and .cmd
		// of drivers and tools.
		return true
	case strings.HasSuffix(k, ".path") && (strings.HasPrefix(k, "man.") || strings.HasPrefix(k, "browser.")):
		return true
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
	if i >= len(args) {
		return
	}
	if args[i].s != "config" {
		if gitRunsOption(args[i].s, args[i+1:]) {
			a.unknowable(st.text, ReasonCodeSetting)
		}
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

// gitCodeOptions are long options of git commands whose value is a command
// git runs: rebase --exec, clone/fetch/pull/ls-remote --upload-pack,
// push/send-pack --receive-pack (--exec), archive --exec, difftool
// --extcmd, send-email's --to-cmd, grep --open-files-in-pager, daemon
// --access-hook, instaweb --httpd and filter-branch's filters.
var gitCodeOptions = []string{"exec", "upload-pack", "receive-pack", "extcmd", "to-cmd", "cc-cmd", "header-cmd",
	"open-files-in-pager", "access-hook", "httpd", "template"}

// gitCodeShort are, per git command, its one-letter options that take a
// command: rebase -x, difftool -x, clone and ls-remote -u, grep -O,
// instaweb -d.
var gitCodeShort = map[string]string{"rebase": "x", "difftool": "x", "clone": "u", "ls-remote": "u", "grep": "O", "instaweb": "d"}

// gitRunsOption reports whether git command sub with args runs a command
// they give: an option of gitCodeOptions (or an abbreviation git's option
// parser would take for one), a short one of gitCodeShort in a cluster,
// `bisect run`, `submodule foreach` or filter-branch.
func gitRunsOption(sub string, args []word) bool {
	switch sub {
	case "filter-branch":
		return true
	case "bisect", "submodule":
		op := map[string]string{"bisect": "run", "submodule": "foreach"}[sub]
		for _, w := range args {
			if !w.lit || w.s == op {
				return true
			}
		}
		return false
	}
	for i, w := range args {
		s := w.s
		if s == "--" {
			return false
		}
		if sub == "clone" {
			// clone -c KEY=VALUE (--config) sets a key in the new
			// repository before it fetches: core.sshCommand runs.
			var kv string
			switch {
			case (s == "-c" || s == "--config") && i+1 < len(args):
				if !args[i+1].lit {
					return true
				}
				kv = args[i+1].s
			case strings.HasPrefix(s, "--config="):
				kv = s[len("--config="):]
			case strings.HasPrefix(s, "-c") && len(s) > 2:
				kv = s[2:]
			}
			if key, val, _ := strings.Cut(kv, "="); kv != "" && gitCodeKey(key, val) {
				return true
			}
		}
		if strings.HasPrefix(s, "--") {
			name, _, _ := strings.Cut(s[2:], "=")
			for _, o := range gitCodeOptions {
				if name == o || len(name) >= 3 && strings.HasPrefix(o, name) {
					return true
				}
			}
			continue
		}
		if short := gitCodeShort[sub]; short != "" && strings.HasPrefix(s, "-") && strings.ContainsAny(s[1:], short) {
			return true
		}
	}
	return false
}

// commandVars are environment variables whose value a program runs as a
// command line (through a shell, or as the program's name): git's ssh,
// external diff, pager, editor and askpass, and the pagers, editors and
// askpass helpers other programs run. An assignment's value is judged as
// a command, the variable its wrapper.
var commandVars = set("GIT_SSH_COMMAND", "GIT_SSH", "GIT_EXTERNAL_DIFF", "GIT_PAGER", "GIT_EDITOR",
	"GIT_SEQUENCE_EDITOR", "GIT_ASKPASS", "GIT_PROXY_COMMAND", "PAGER", "MANPAGER", "SYSTEMD_PAGER",
	"EDITOR", "VISUAL", "SSH_ASKPASS", "SUDO_ASKPASS", "BROWSER", "RSYNC_RSH", "RSYNC_CONNECT_PROG", "CVS_RSH",
	"BORG_RSH", "SVN_SSH")

// codeVar follows an assignment of v to the environment variable name
// (NAME=v cmd, export, env, sudo): a command variable's value is judged as
// a command line, unknowable when not literal; a variable through which git
// loads configuration or programs (GIT_CONFIG_KEY_n naming a key whose
// value git runs, GIT_CONFIG_PARAMETERS, GIT_CONFIG_GLOBAL, GIT_EXEC_PATH,
// GIT_ALLOW_PROTOCOL as protocol.*.allow, …) and less's input
// preprocessors are unknowable.
func (a *analyzer) codeVar(name string, v word, sc scope, text string) {
	switch {
	case commandVars[name]:
		if !v.lit {
			a.unknowable(text, ReasonCodeSetting)
			return
		}
		a.nested(v.s, sc.depth, appendWrapper(sc.wrappers, name), false, text)
		if f := strings.Fields(v.s); name == "RSYNC_RSH" && len(f) > 0 && rshRunsHost(baseName(f[0])) {
			// rsync hands its remote shell the host of a remote
			// operand, which a shell (RSYNC_RSH='sh -c') runs.
			a.unknowable(text, ReasonTransferHost)
		}
	case codeSettingVar(name, v):
		a.unknowable(text, ReasonCodeSetting)
	case (name == "BASH_ENV" || name == "ENV") && isStdinPath(v.s):
		// The shells started with it source their standard input (or
		// terminal) first: for an exec, the session's input.
		a.out.StdinShell = true
	}
}

func codeSettingVar(name string, v word) bool {
	switch name {
	case "GIT_CONFIG_PARAMETERS", "GIT_CONFIG", "GIT_CONFIG_GLOBAL", "GIT_CONFIG_SYSTEM", "GIT_EXEC_PATH",
		"GIT_TEMPLATE_DIR", "GIT_ALLOW_PROTOCOL", "LESSOPEN", "LESSCLOSE",
		"TAR_OPTIONS", "ZIPOPT", "ZIP":
		return true
	}
	if strings.HasPrefix(name, "GIT_CONFIG_KEY_") {
		return !v.lit || gitCodeKey(v.s, "!")
	}
	return false
}
