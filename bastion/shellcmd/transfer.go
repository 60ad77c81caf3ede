package shellcmd

// The file-transfer tools and ssh run commands of their own, given in
// their options rather than as a command line: rsync's remote shell (-e,
// which rsync hands the host of a remote operand, and --rsync-path, which
// the remote shell runs), ssh's ProxyCommand, LocalCommand,
// KnownHostsCommand and RemoteCommand (also as scp's and sftp's -o), the
// program scp and sftp run instead of ssh (-S), sftp's direct server (-D)
// and a subsystem given as a path (-s), and scp's remote paths, which the
// remote shell expands in its legacy protocol.

import (
	"slices"
	"strings"

	"mvdan.cc/sh/v3/syntax"
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

// quoteWord quotes s as one bash word.
func quoteWord(s string) string {
	q, err := syntax.Quote(s, syntax.LangBash)
	if err != nil {
		return "'" + strings.ReplaceAll(s, "'", `'\''`) + "'"
	}
	return q
}

// sshOption judges one ssh -o option (keyword=value or keyword value,
// keyword in any case): a command ssh runs locally (ProxyCommand through
// the shell, LocalCommand, KnownHostsCommand) or has the remote shell run
// (RemoteCommand) is judged as a command line, the xauth program it
// runs for X11 forwarding (XAuthLocation) as a command; a library ssh
// loads
// (PKCS11Provider, SecurityKeyProvider) is unknowable. hosts are the
// destinations: a command holding a %-token that expands to one of them
// is unknowable unless each is a plain host name.
func (a *analyzer) sshOption(v word, label string, hosts []word, st *peelState) {
	if !v.lit {
		a.unknowable(st.text, ReasonWrapperArg)
		return
	}
	s := strings.TrimLeft(v.s, " \t")
	i := strings.IndexAny(s, "= \t")
	if i < 0 {
		return
	}
	key := strings.ToLower(s[:i])
	val := strings.TrimLeft(s[i:], " \t")
	val = strings.TrimPrefix(val, "=")
	val = strings.TrimLeft(val, " \t")
	switch key {
	case "xauthlocation":
		a.runsProgram(word{s: val, lit: true}, label+" "+key, st)
	case "proxycommand", "localcommand", "knownhostscommand", "remotecommand":
		if strings.EqualFold(val, "none") || val == "" {
			return
		}
		if (key == "proxycommand" || key == "localcommand" || key == "knownhostscommand") && hasHostToken(val) {
			for _, h := range hosts {
				if !h.lit || !plainHost(h.s) {
					a.unknowable(st.text, ReasonTransferHost)
					return
				}
			}
		}
		a.shellString(word{s: val, lit: true}, label+" "+key, st)
	case "pkcs11provider", "securitykeyprovider":
		a.unknowable(st.text, ReasonCodeSetting)
	}
}

// hasHostToken reports a %-token that ssh expands to the destination or
// the remote user (%h, %n, %r, %k; %% is a percent sign).
func hasHostToken(s string) bool {
	for i := 0; i+1 < len(s); i++ {
		if s[i] != '%' {
			continue
		}
		switch s[i+1] {
		case 'h', 'n', 'r', 'k':
			return true
		}
		i++
	}
	return false
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

// rsyncValued are rsync's options that take the next word as their value
// when not written --name=value. One missing here reads its value as an
// operand, which only makes the analysis stricter.
var rsyncValued = set("rsh", "rsync-path", "filter", "exclude", "include", "files-from", "exclude-from", "include-from",
	"temp-dir", "backup-dir", "suffix", "chmod", "log-file", "log-file-format", "password-file", "partial-dir",
	"compare-dest", "copy-dest", "link-dest", "out-format", "bwlimit", "timeout", "contimeout", "port", "address",
	"sockopts", "chown", "usermap", "groupmap", "remote-option", "info", "debug", "iconv", "max-size", "min-size",
	"max-delete", "block-size", "modify-window", "skip-compress", "compress-choice", "checksum-choice",
	"compress-level", "stop-after", "stop-at", "early-input", "outbuf", "protocol", "checksum-seed", "config",
	"dparam", "read-batch", "write-batch", "only-write-batch", "copy-as")

// rsync: its remote shell (-e, --rsh; ssh by default) is run with the host
// of the remote operand, then --rsync-path (default rsync) and the
// server's options, which the remote end's shell runs. That command line
// is judged as written, the remote shell's value split as a shell splits
// it; a remote shell other than ssh with a host that is not a plain name,
// or known only at run time, is unknowable (sh -c runs the host).
func (a *analyzer) rsync(args []word, st *peelState) {
	server := false
	var rsh, rpath *word
	var operands []word
	for i := 0; i < len(args); i++ {
		w := args[i]
		s := w.s
		if w.lit && s == "--" {
			operands = append(operands, args[i+1:]...)
			break
		}
		if !strings.HasPrefix(s, "-") || s == "-" {
			operands = append(operands, w)
			continue
		}
		if !w.lit {
			a.unknowable(st.text, ReasonWrapperArg)
			return
		}
		var name string
		var val word
		has := false
		if strings.HasPrefix(s, "--") {
			n, v, eq := strings.Cut(s[2:], "=")
			name = n
			server = server || n == "server" && !eq
			if eq {
				val, has = word{s: v, lit: true}, true
			} else if rsyncValued[n] && i+1 < len(args) {
				i++
				val, has = args[i], true
			}
		} else {
			for k := 1; k < len(s); k++ {
				if strings.IndexByte("eBfMT@", s[k]) < 0 {
					continue
				}
				name = s[k : k+1]
				if k+1 < len(s) {
					val, has = word{s: s[k+1:], lit: true}, true
				} else if i+1 < len(args) {
					i++
					val, has = args[i], true
				}
				break
			}
		}
		if !has {
			continue
		}
		switch name {
		case "e", "rsh":
			v := val
			rsh = &v
		case "rsync-path":
			v := val
			rpath = &v
		}
	}
	if server {
		// The remote end of a transfer (rsync --server
		// -vlogDtpre.iLsfxCIvu . dst): it runs no remote shell, and its
		// -e carries protocol flags.
		return
	}
	shell := "ssh"
	if rsh != nil {
		if !rsh.lit {
			a.unknowable(st.text, ReasonWrapperArg)
			return
		}
		shell = rsh.s
	}
	path := "rsync"
	if rpath != nil {
		if !rpath.lit {
			a.unknowable(st.text, ReasonWrapperArg)
			return
		}
		path = rpath.s
	}
	viaSSH := false
	if f := strings.Fields(shell); len(f) > 0 && baseName(f[0]) == "ssh" {
		viaSSH = true
	}
	var hosts []string
	for _, w := range operands {
		if !w.lit {
			if !viaSSH {
				a.unknowable(st.text, ReasonTransferHost)
				return
			}
			continue
		}
		if h, _, ok := remoteOperand(w.s); ok {
			if rsh == nil && (strings.HasPrefix(w.s, "rsync://") || strings.HasPrefix(w.s[len(h):], "::")) {
				continue // a daemon's, over its own socket
			}
			if !viaSSH && !plainHost(h) {
				a.unknowable(st.text, ReasonTransferHost)
				return
			}
			hosts = append(hosts, h)
		}
	}
	if len(hosts) == 0 {
		if rsh == nil && rpath == nil {
			return // a local copy, or a daemon's
		}
		hosts = []string{"host"}
	}
	for _, h := range hosts {
		text := shell + " " + quoteWord(h) + " " + quoteWord(path) + " --server"
		a.shellString(word{s: text, lit: true}, "rsync", st)
	}
}

// scp: -o options go to ssh, -S names the program run instead of ssh, -D
// a server program run directly; a remote path is expanded by the remote
// shell in the legacy protocol (scp -O, and older scp's default): judged
// as part of the command `scp -f PATH` that shell runs.
func (a *analyzer) scp(args []word, st *peelState) {
	r := scanPermute(args, optSpec{valued: "cDFiJlLoPSX"})
	a.checkBad(r, st)
	var hosts []word
	for i, w := range r.operands {
		if !w.lit {
			hosts = append(hosts, w)
			continue
		}
		if h, p, ok := remoteOperand(w.s); ok {
			hosts = append(hosts, word{s: h, lit: true})
			if !strings.HasPrefix(w.s, "scp://") {
				mode := "-f" // a source: the remote end sends it
				if i == len(r.operands)-1 {
					mode = "-t" // the destination
				}
				a.shellString(word{s: "scp " + mode + " " + p, lit: true}, "scp", st)
			}
		}
	}
	a.transferOpts(r, "scp", hosts, st)
}

// sftp: as scp, and -s names a subsystem, or with a slash a command the
// remote shell runs.
func (a *analyzer) sftp(args []word, st *peelState) {
	r := scanPermute(args, optSpec{valued: "BbcDFiJloPRSsX"})
	a.checkBad(r, st)
	var hosts []word
	for _, w := range r.operands {
		if !w.lit {
			hosts = append(hosts, w)
			continue
		}
		h, _, ok := remoteOperand(w.s)
		if !ok {
			h = w.s // sftp [user@]host
		}
		hosts = append(hosts, word{s: h, lit: true})
	}
	for _, v := range r.values("s") {
		if !v.lit || strings.Contains(v.s, "/") {
			a.shellString(v, "sftp -s", st)
		}
	}
	a.transferOpts(r, "sftp", hosts, st)
}

func (a *analyzer) transferOpts(r scanResult, name string, hosts []word, st *peelState) {
	for _, o := range r.opts {
		if !o.has {
			continue
		}
		switch o.name {
		case "o":
			a.sshOption(o.val, name+" -o", hosts, st)
		case "S":
			a.runsProgram(o.val, name+" -S", st)
		case "D":
			a.shellString(o.val, name+" -D", st)
		case "F":
			if isStdinPath(o.val.s) {
				a.unknowable(st.text, ReasonCodeSetting) // ssh's configuration read from the input
			}
		}
	}
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
	"mosh":   {"--ssh"},
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
// autossh and ssh-copy-id pass their options to ssh; lftp runs its own
// commands (-e, -c), where ! runs a shell command: unknowable.
func (a *analyzer) transferTool(name string, args []word, st *peelState) {
	switch name {
	case "autossh":
		// autossh [-M port[:echo]] [ssh options] host [command]
		if len(args) > 0 && args[0].lit && strings.HasPrefix(args[0].s, "-M") {
			if args[0].s == "-M" && len(args) > 1 {
				args = args[2:]
			} else {
				args = args[1:]
			}
		}
		a.ssh(args, st)
		return
	case "ssh-copy-id":
		r := scanPermute(args, optSpec{valued: "iopFt"})
		a.checkBad(r, st)
		for _, o := range r.opts {
			if o.name == "o" && o.has {
				a.sshOption(o.val, "ssh-copy-id -o", r.operands, st)
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
