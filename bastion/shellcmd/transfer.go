package shellcmd

// The file-transfer tools run commands of their own, given in their
// options rather than as a command line (ssh's, scp's, sftp's and rsync's
// own are in launchers.go): the host rsync hands a remote shell that is
// not ssh, scp's remote paths, which the remote shell expands in its
// legacy protocol, tar's and zip's command options, and other tools'
// remote shells.

import (
	"slices"
	"strings"
)

// ReasonTransferHost: a transfer tool hands the host of a remote operand to
// a remote shell that may run it (rsync -e 'sh -c'), or expands it into a
// command (ssh -o ProxyCommand='sh -c %h'), and the host is not a plain
// host name or is known only at run time.
const ReasonTransferHost = "a remote host that a transfer tool's command may run"

// plainHost accepts [user@]host[:port] as a host name or address is
// written: nothing a shell would read as more than a word.
func plainHost(s string) bool {
	if s == "" {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || strings.ContainsRune("._-@:[]%", c)) {
			return false
		}
	}
	return true
}

// runsProgram judges a program a tool runs with arguments of its own (scp
// -S, sftp -S): a command named by it whose arguments are known only at
// run time.
func (a *analyzer) runsProgram(v word, label string, st *peelState) {
	if !v.lit {
		a.unknowable(st.text, ReasonWrapperArg)
		return
	}
	a.emit([]string{v.s}, appendWrapper(st.wrappers, label), true, st.text)
}

// remoteOperand splits a scp or rsync operand [user@]host:path; ok is
// false for a local path (no colon, or a slash before it).
func remoteOperand(s string) (host, path string, ok bool) {
	if strings.HasPrefix(s, "rsync://") || strings.HasPrefix(s, "scp://") {
		rest := s[strings.Index(s, "://")+3:]
		host, path, _ = strings.Cut(rest, "/")
		return host, path, true
	}
	if strings.HasPrefix(s, "[") {
		// [user@]host given as an address in brackets.
		if j := strings.Index(s, "]:"); j > 0 {
			return s[:j+1], s[j+2:], true
		}
	}
	i := strings.IndexByte(s, ':')
	if i < 0 || strings.Contains(s[:i], "/") {
		return "", "", false
	}
	return s[:i], strings.TrimPrefix(s[i+1:], ":"), true
}

// tarCommandLong are GNU tar's long options whose value tar runs as a
// command (through sh -c): a program for each member's contents, a
// compressor, a script at volume changes, the remote shell and the
// remote tape server.
var tarCommandLong = set("to-command", "use-compress-program", "info-script", "new-volume-script", "rsh-command", "rmt-command")

// tarValuedLong are tar's long options that take the next word as their
// value when not written --name=value (only the ones known to: one
// missing reads its value as an operand or option, which is stricter).
var tarValuedLong = set("to-command", "use-compress-program", "info-script", "new-volume-script", "rsh-command", "rmt-command",
	"checkpoint-action", "file", "directory", "exclude", "files-from", "exclude-from", "transform", "xform", "owner", "group",
	"mode", "mtime", "newer", "after-date", "newer-mtime", "label", "tape-length", "blocking-factor", "record-size", "format",
	"listed-incremental", "index-file", "strip-components", "quoting-style", "quote-chars", "no-quote-chars", "level",
	"volno-file", "pax-option", "hole-detection", "exclude-tag", "exclude-tag-under", "exclude-tag-all", "exclude-ignore",
	"exclude-ignore-recursive", "starting-file", "owner-map", "group-map", "sort", "warning", "one-top-level")

// tarValuedShort are tar's short options that take a value: -I and -F
// are commands.
const tarValuedShort = "bCfFgHIKLNTVX"

// tar: the options that run a command (--to-command, -I and
// --use-compress-program, --checkpoint-action=exec=, -F and
// --info-script, --new-volume-script, --rsh-command, --rmt-command) are
// judged as command lines, in the old style (tar cIf PROG FILE) too.
func (a *analyzer) tar(args []word, st *peelState) {
	run := func(v word, label string) {
		a.shellString(v, "tar "+label, st)
	}
	i := 0
	if len(args) > 0 && args[0].lit && args[0].s != "" && !strings.HasPrefix(args[0].s, "-") {
		// Old style: a cluster of letters whose values follow in order.
		i = 1
		for _, c := range []byte(args[0].s) {
			if strings.IndexByte(tarValuedShort, c) < 0 {
				continue
			}
			if i >= len(args) {
				break
			}
			if c == 'I' || c == 'F' {
				run(args[i], "-"+string(c))
			}
			i++
		}
	} else if len(args) > 0 && !args[0].lit {
		a.unknowable(st.text, ReasonWrapperArg)
		return
	}
	for ; i < len(args); i++ {
		w := args[i]
		s := w.s
		if w.lit && s == "--" {
			break
		}
		if !strings.HasPrefix(s, "-") || s == "-" {
			continue
		}
		if !w.lit {
			a.unknowable(st.text, ReasonWrapperArg)
			return
		}
		if strings.HasPrefix(s, "--") {
			name, v, eq := strings.Cut(s[2:], "=")
			val := word{s: v, lit: true}
			if !eq {
				if !tarValuedLong[name] || i+1 >= len(args) {
					if full := uniquePrefix(name, tarCommandLong); full != "" && !tarValuedLong[name] {
						// tar takes an abbreviation: --to-com.
						a.unknowable(st.text, ReasonCodeSetting)
					}
					continue
				}
				i++
				val = args[i]
			} else if full := uniquePrefix(name, tarCommandLong); full != "" && !tarValuedLong[name] {
				name = full
			}
			switch {
			case tarCommandLong[name]:
				run(val, "--"+name)
			case name == "checkpoint-action" || strings.HasPrefix("checkpoint-action", name) && len(name) > len("checkpoint-"):
				if !val.lit {
					a.unknowable(st.text, ReasonWrapperArg)
				} else if cmd, ok := strings.CutPrefix(val.s, "exec="); ok {
					run(word{s: cmd, lit: true}, "--checkpoint-action")
				}
			}
			continue
		}
		for k := 1; k < len(s); k++ {
			c := s[k]
			if strings.IndexByte(tarValuedShort, c) < 0 {
				continue
			}
			var val word
			if k+1 < len(s) {
				val = word{s: s[k+1:], lit: true}
			} else if i+1 < len(args) {
				i++
				val = args[i]
			} else {
				break
			}
			if c == 'I' || c == 'F' {
				run(val, "-"+string(c))
			}
			break
		}
	}
}

// zip -TT CMD (--unzip-command) runs CMD to test the archive.
func (a *analyzer) zip(args []word, st *peelState) {
	for i := 0; i < len(args); i++ {
		w := args[i]
		switch {
		case !w.lit:
			continue
		case w.s == "-TT" || w.s == "--unzip-command":
			if i+1 < len(args) {
				i++
				a.shellString(args[i], "zip -TT", st)
			}
		case strings.HasPrefix(w.s, "--unzip-command="):
			a.shellString(word{s: strings.TrimPrefix(w.s, "--unzip-command="), lit: true}, "zip -TT", st)
		case strings.HasPrefix(w.s, "-TT"):
			a.shellString(word{s: w.s[3:], lit: true}, "zip -TT", st)
		}
	}
}

// commandOptions are other transfer tools' options whose value is a
// command line the tool runs (its remote shell, mostly): written
// --name=VALUE or --name VALUE (unison's single dash too).
var commandOptions = map[string][]string{
	"borg":   {"--rsh"},
	"rclone": {"--sftp-ssh"},
	"unison": {"-sshcmd", "--sshcmd"},
}

// commandSubOptions are tools' -o KEY=VALUE settings whose value is a
// command line: sshfs's ssh_command, restic's sftp.command.
var commandSubOptions = map[string][]string{
	"sshfs":  {"ssh_command"},
	"restic": {"sftp.command"},
}

// transferTool judges the commands the tools above take in options;
// ssh-copy-id passes its options to ssh; lftp runs its own
// commands (-e, -c), where ! runs a shell command: unknowable.
func (a *analyzer) transferTool(name string, args []word, st *peelState) {
	switch name {
	case "ssh-copy-id":
		r := scanPermute(args, optSpec{valued: "iopFt"})
		a.checkBad(r, st)
		for _, o := range r.opts {
			if o.name == "o" && o.has {
				a.sshOption(o.val, st)
			}
		}
		return
	case "lftp":
		for _, w := range args {
			if !w.lit || w.s == "-e" || w.s == "-c" || strings.HasPrefix(w.s, "--") && (strings.HasPrefix(w.s, "--execute") || strings.HasPrefix(w.s, "--command")) {
				a.unknowable(st.text, ReasonCodeSetting)
				return
			}
		}
		return
	}
	for i := 0; i < len(args); i++ {
		w := args[i]
		if !w.lit {
			continue
		}
		for _, opt := range commandOptions[name] {
			switch {
			case w.s == opt && i+1 < len(args):
				i++
				a.shellString(args[i], name+" "+opt, st)
			case strings.HasPrefix(w.s, opt+"="):
				a.shellString(word{s: w.s[len(opt)+1:], lit: true}, name+" "+opt, st)
			}
		}
		if keys := commandSubOptions[name]; keys != nil {
			var v word
			switch {
			case w.s == "-o" && i+1 < len(args):
				i++
				v = args[i]
			case strings.HasPrefix(w.s, "-o") && len(w.s) > 2:
				v = word{s: w.s[2:], lit: true}
			case strings.HasPrefix(w.s, "--option="):
				v = word{s: w.s[len("--option="):], lit: true}
			case w.s == "--option" && i+1 < len(args):
				i++
				v = args[i]
			default:
				continue
			}
			if !v.lit {
				a.unknowable(st.text, ReasonWrapperArg)
				continue
			}
			// sshfs takes several settings in one -o, comma-separated
			// (a command with a comma is cut there, which only judges a
			// shorter command); restic's -o one, whose value may hold
			// commas.
			settings := []string{v.s}
			if name == "sshfs" {
				settings = strings.Split(v.s, ",")
			}
			for _, kv := range settings {
				k, val, ok := strings.Cut(kv, "=")
				if ok && slices.Contains(keys, strings.TrimSpace(k)) {
					a.shellString(word{s: val, lit: true}, name+" -o "+k, st)
				}
			}
		}
	}
}

// rsyncHosts follows the host rsync hands its remote shell: ssh takes it
// as a host, but a shell (rsync -e 'sh -c' x 'rm -rf /srv;h:y') runs it.
// With a remote shell other than ssh, a remote operand whose host is not a
// plain host name, or an operand known only at run time, is unknowable.
func (a *analyzer) rsyncHosts(shells []word, operands []word, st *peelState) {
	for _, sh := range shells {
		if !sh.lit {
			return // unknowable already
		}
		if f := strings.Fields(sh.s); len(f) > 0 && baseName(f[0]) == "ssh" {
			continue
		}
		for _, w := range operands {
			if !w.lit {
				a.unknowable(st.text, ReasonTransferHost)
				return
			}
			if h, _, ok := remoteOperand(w.s); ok && !plainHost(h) {
				a.unknowable(st.text, ReasonTransferHost)
				return
			}
		}
	}
}

// scpRemotePaths judges scp's remote paths as the remote shell runs them
// in the legacy protocol (scp -O, and older scp's default): scp -t PATH
// for the destination, scp -f PATH for a source.
func (a *analyzer) scpRemotePaths(operands []word, st *peelState) {
	for i, w := range operands {
		if !w.lit || strings.HasPrefix(w.s, "scp://") {
			continue
		}
		if _, p, ok := remoteOperand(w.s); ok {
			mode := "-f"
			if i == len(operands)-1 {
				mode = "-t"
			}
			a.shellString(word{s: "scp " + mode + " " + p, lit: true}, "scp", st)
		}
	}
}

// rshRunsHost reports a remote shell that may run the host rsync hands it
// as code: a shell, or a program that starts one.
func rshRunsHost(name string) bool {
	switch name {
	case "sh", "bash", "dash", "zsh", "ksh", "mksh", "ash", "yash", "posh", "fish", "busybox", "env", "eval", "xargs", "sudo", "doas", "su":
		return true
	}
	return interpreters[name] || isVersionedPython(name)
}
