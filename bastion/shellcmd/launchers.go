package shellcmd

import (
	"regexp"
	"strings"
)

// Launchers: programs that start a command they are given, as argv or as a
// string, often somewhere else (a detached session, another namespace,
// every host of a cluster, a batch job). Each is followed to that command
// where its syntax is known; an option of theirs not known here (it might
// take the next word as its value, which would then be read as the
// command) makes the line unknowable rather than guessed at.

// ReasonInputCommand: the program puts data it reads at run time into the
// command it runs (entr's /_, the file that changed).
const ReasonInputCommand = "command completed from the program's input"

// ReasonManifestCommand: a manifest typed into the line (a here-document,
// a patch) gives containers a command of their own.
const ReasonManifestCommand = "manifest whose containers run a command"

// launcherSpec is a launcher read with getopt: the options it knows
// (valued ones in spec, the rest in flags, by letter or long name), the
// operands before the command, the options after which nothing runs, and
// whether it starts a shell on the session's input when given no command.
type launcherSpec struct {
	spec        optSpec
	flags       map[string]bool
	positional  int
	noCommand   []string
	shellIfNone bool
}

var launcherSpecs = map[string]launcherSpec{
	"rlwrap": {spec: optSpec{valued: "bCDefgHlMOPqsStwz", optional: "amp", long: set("break-chars", "command-name",
		"histsize", "file", "history-filename", "logfile", "prompt-colour", "pre-given", "quote-characters",
		"substitute-prompt", "set-term-name", "filter", "multi-line", "extra-char-after-completion", "history-format")},
		flags: set("a", "m", "p", "A", "c", "h", "i", "I", "n", "N", "o", "r", "R", "U", "v", "W", "ansi-colour-aware",
			"complete-filenames", "case-insensitive", "remember", "renice", "always-readline", "no-children",
			"one-shot", "version", "help", "no-warnings", "mirror-arguments", "pass-sigint-as-sigterm", "polling")},
	"trickle": {spec: optSpec{valued: "duwtln"}, flags: set("s", "V", "v", "h")},
	"systemd-inhibit": {spec: optSpec{long: set("what", "who", "why", "mode")},
		flags:     set("h", "help", "version", "no-pager", "no-legend", "no-ask-password", "list"),
		noCommand: []string{"list"}},
	"systemd-cat": {spec: optSpec{valued: "tp", long: set("identifier", "priority", "stderr-priority", "level-prefix", "namespace")},
		flags: set("h", "help", "version")},
	"aa-exec": {spec: optSpec{valued: "pn", long: set("profile", "namespace")},
		flags: set("i", "v", "d", "h", "immediate", "verbose", "debug", "help")},
	"flatpak-spawn": {spec: optSpec{long: set("forward-fd", "env", "unset-env", "directory", "sandbox-expose",
		"sandbox-expose-ro", "sandbox-flag", "sandbox-expose-path", "sandbox-expose-path-ro", "app-path", "usr-path")},
		flags: set("host", "watch-bus", "expose-pids", "share-pids", "latest-version", "no-network", "sandbox",
			"clear-env", "verbose", "v", "help", "h")},
	"ld.so": {spec: optSpec{long: set("library-path", "inhibit-rpath", "audit", "preload", "argv0",
		"glibc-hwcaps-prepend", "glibc-hwcaps-mask")},
		flags:     set("inhibit-cache", "help", "version", "list", "verify", "list-tunables", "list-diagnostics"),
		noCommand: []string{"list", "verify", "list-tunables", "list-diagnostics", "help", "version"}},
	"schroot": {spec: optSpec{valued: "cudno", long: set("chroot", "user", "directory", "session-name", "option", "config", "location")},
		flags: set("p", "q", "v", "h", "l", "i", "b", "e", "a", "V", "r", "f", "preserve-environment", "quiet",
			"verbose", "all", "all-chroots", "all-sessions", "all-source-chroots", "run-session", "automatic-session",
			"recover-session", "force", "help", "version", "list", "info", "begin-session", "end-session"),
		noCommand:   []string{"l", "i", "b", "e", "V", "list", "info", "begin-session", "end-session", "config", "location", "version", "help"},
		shellIfNone: true},
	"lxc-attach": {spec: optSpec{valued: "nPsaflovugL", optional: "e", long: set("name", "lxcpath", "namespaces",
		"arch", "rcfile", "logfile", "logpriority", "set-var", "keep-var", "uid", "gid", "context", "pty-log")},
		flags:       set("q", "h", "R", "clear-env", "keep-env", "quiet", "help", "remount-sys-proc", "elevated-privileges"),
		shellIfNone: true},
	"lxc-execute": {spec: optSpec{valued: "nPflosug", long: set("name", "lxcpath", "rcfile", "logfile", "logpriority", "define", "uid", "gid")},
		flags: set("d", "q", "h", "daemon", "quiet", "help")},
	"runcon": {spec: optSpec{valued: "urtl", long: set("user", "role", "type", "range")},
		flags: set("c", "h", "V", "compute", "help", "version")},
	"cpulimit": {spec: optSpec{valued: "lpePcs", long: set("limit", "pid", "exe", "path", "cpu", "signal")},
		flags: set("z", "i", "k", "r", "v", "q", "b", "m", "h", "lazy", "include-children", "kill", "restore", "verbose",
			"quiet", "background", "monitor-forks", "help")},
	"tsp":                     {spec: optSpec{valued: "LDNW"}, flags: set("n", "f", "g", "m", "d", "E", "B", "z", "h")},
	"nq":                      {flags: set("c", "q", "h")},
	"setuidgid":               {positional: 1},
	"envuidgid":               {positional: 1},
	"s6-setuidgid":            {positional: 1},
	"s6-envuidgid":            {flags: set("i", "D", "n", "B"), positional: 1},
	"envdir":                  {positional: 1},
	"s6-envdir":               {spec: optSpec{valued: "c"}, flags: set("I", "i", "f", "n", "L"), positional: 1},
	"softlimit":               {spec: optSpec{valued: "mdsloapfcrt"}},
	"s6-softlimit":            {spec: optSpec{valued: "adcfHlmoprst"}},
	"setlock":                 {flags: set("n", "N", "x", "X"), positional: 1},
	"s6-setlock":              {spec: optSpec{valued: "tS"}, flags: set("n", "N", "r", "w", "d"), positional: 1},
	"pgrphack":                {},
	"fghack":                  {},
	"tcpserver":               {spec: optSpec{valued: "cCxBgubltTiI"}, flags: set("q", "Q", "v", "1", "4", "6", "d", "D", "h", "H", "p", "P", "r", "R", "o", "O", "U", "X"), positional: 2},
	"systemd-socket-activate": {spec: optSpec{valued: "lE", long: set("listen", "setenv", "fdname")}, flags: set("a", "h", "accept", "datagram", "seqpacket", "inetd", "now", "help", "version")},
	"arch-chroot":             {spec: optSpec{valued: "u"}, flags: set("N", "h"), positional: 1, shellIfNone: true},
	"jexec":                   {spec: optSpec{valued: "uUd"}, flags: set("l", "h"), positional: 1, shellIfNone: true},
	"sandbox": {spec: optSpec{valued: "lHIWtwRTi", long: set("level", "homedir", "include", "windowmanager", "type", "windowsize", "runuserdir", "tmpdir")},
		flags: set("X", "S", "M", "s", "C", "h", "shred", "mount", "capabilities", "help")},
	"empty": {spec: optSpec{valued: "iopL"}, flags: set("f", "c", "S", "v", "h", "i")},
	"proot": {spec: optSpec{valued: "rbmwkivRSpq", long: set("rootfs", "bind", "mount", "pwd", "cwd", "kernel-release",
		"change-id", "verbose", "qemu", "kill-on-exit"), optional: ""},
		flags:       set("0", "V", "h", "L", "n", "root-id", "link2symlink", "help", "version", "usage"),
		shellIfNone: true},
}

// launcher reports whether name is one of the launchers handled here and,
// if so, follows it.
func (a *analyzer) launcher(name string, args []word, st *peelState) (inner []word, label string, follow, ok bool) {
	if isDynamicLoader(name) {
		name = "ld.so"
	}
	if spec, found := launcherSpecs[name]; found {
		inner, label, follow = a.specLauncher(name, spec, args, st)
		return inner, label, follow, true
	}
	switch name {
	case "hyperfine":
		a.hyperfine(args, st)
	case "pueue":
		if len(args) > 0 && args[0].lit && args[0].s == "add" {
			cmd, ok := wordsAfterDash(args[1:])
			if !ok {
				r, good := a.strictScan(args[1:], optSpec{valued: "dgaolw", long: set("delay", "group", "after", "priority", "label", "working-directory")},
					set("e", "i", "s", "p", "f", "escape", "immediate", "stashed", "print-task-id", "follow", "h", "help"), st)
				if !good {
					break
				}
				cmd = args[1+r.next:]
			}
			if len(cmd) > 0 {
				a.joinedString(cmd, "pueue add", st)
			}
		}
	case "entr":
		inner, label, follow = a.entr(args, st)
	case "capsh":
		inner, label, follow = a.capsh(args, st)
	case "dtach":
		inner, label, follow = a.dtach(args, st)
	case "abduco":
		inner, label, follow = a.abduco(args, st)
	case "mpirun", "mpiexec", "orterun", "prterun", "mpiexec.hydra", "mpirun.openmpi", "mpirun.mpich", "mpiexec.openmpi", "mpiexec.mpich":
		a.mpirun(name, args, st)
	case "srun", "salloc", "sbatch":
		inner, label, follow = a.slurm(name, args, st)
	case "pdsh", "clush", "pssh", "parallel-ssh":
		a.fanout(name, args, st)
	case "ansible":
		a.ansible(args, st)
	case "salt", "salt-call", "salt-ssh", "salt-run":
		a.salt(name, args, st)
	case "ctr":
		inner, label, follow = a.ctr(args, st)
	case "runc", "crun", "youki", "runsc":
		inner, label, follow = a.runc(name, args, st)
	case "systemd-nspawn":
		inner, label, follow = a.nspawn(args, st)
	case "scp", "sftp":
		a.scpSftp(name, args, st)
	case "rsync":
		a.rsync(args, st)
	case "bwrap":
		inner, label, follow = a.bwrap(args, st)
	case "gdb":
		inner, label, follow = a.gdb(args, st)
	case "perf":
		inner, label, follow = a.perf(args, st)
	case "socat":
		a.socat(args, st)
	case "nc", "ncat", "netcat", "nc.traditional", "nc.openbsd":
		a.netcat(name, args, st)
	default:
		return a.moreLaunchers(name, args, st)
	}
	return inner, label, follow, true
}

// isDynamicLoader reports whether name is the dynamic loader, which runs
// the program named by its first operand: ld.so, ld-linux-x86-64.so.2,
// ld-musl-x86_64.so.1, ld64.so.2.
func isDynamicLoader(name string) bool {
	return name == "ld.so" || (strings.HasPrefix(name, "ld-") || strings.HasPrefix(name, "ld64.so")) && strings.Contains(name, ".so")
}

// strictScan reads options with spec and reports the line unknowable when
// one of them is not among spec's and flags' (or is not literal).
func (a *analyzer) strictScan(args []word, spec optSpec, flags map[string]bool, st *peelState) (scanResult, bool) {
	r := scanOpts(args, spec)
	if !knownOpts(r, spec, flags) {
		a.unknowable(st.text, ReasonWrapperOption)
		return r, false
	}
	return r, true
}

func (a *analyzer) specLauncher(name string, ls launcherSpec, args []word, st *peelState) ([]word, string, bool) {
	r, ok := a.strictScan(args, ls.spec, ls.flags, st)
	if !ok {
		return nil, "", false
	}
	for _, n := range ls.noCommand {
		if len(n) == 1 && r.hasFlag(n[0]) || len(n) > 1 && r.hasLong(n) {
			return nil, "", false
		}
	}
	rest := args[r.next:]
	positional := ls.positional
	switch name {
	case "runcon":
		// runcon CONTEXT COMMAND, unless the context is given in parts.
		if len(r.values("u", "r", "t", "l", "user", "role", "type", "range")) == 0 {
			positional = 1
		}
	case "empty":
		if !r.hasFlag('f') {
			return nil, "", false // -w, -s, -k: talk to a session, run nothing
		}
	case "proot":
		// -q runs the program through an emulator given as a command line.
		for _, v := range r.values("q", "qemu") {
			a.shellString(v, "proot -q", st)
		}
	}
	for p := 0; p < positional && len(rest) > 0; p++ {
		if !rest[0].lit {
			a.unknowable(st.text, ReasonWrapperArg)
			return nil, "", false
		}
		rest = rest[1:]
	}
	if len(rest) == 0 {
		if ls.shellIfNone {
			a.stdinScript(name, st, ReasonPipeShell, false)
		}
		return nil, "", false
	}
	return rest, name, true
}

// entr [-acdnprsxz] UTILITY [ARG...]: runs the utility when a file read
// from its input changes, /_ standing for that file; with -s, the first
// operand is a string for $SHELL -c.
func (a *analyzer) entr(args []word, st *peelState) ([]word, string, bool) {
	r, ok := a.strictScan(args, optSpec{}, set("a", "c", "d", "n", "p", "r", "s", "x", "z", "h"), st)
	if !ok {
		return nil, "", false
	}
	rest := args[r.next:]
	st.stdinPipe, st.stmt = false, nil // the files to watch come on stdin
	st.repl, st.replReason = "/_", ReasonInputCommand
	if r.hasFlag('s') {
		if len(rest) > 0 {
			a.shellString(rest[0], "entr -s", st)
		}
		return nil, "", false
	}
	return rest, "entr", true
}

// capsh runs /bin/bash (or --shell=PROG) with the words after "--" or
// "-+", and itself again with those after "==" or "=+".
func (a *analyzer) capsh(args []word, st *peelState) ([]word, string, bool) {
	shell := word{s: "/bin/bash", lit: true}
	for i, w := range args {
		if !w.lit {
			a.unknowable(st.text, ReasonWrapperArg)
			return nil, "", false
		}
		switch {
		case strings.HasPrefix(w.s, "--shell="):
			shell = word{s: strings.TrimPrefix(w.s, "--shell="), lit: true}
		case w.s == "--" || w.s == "-+":
			return append([]word{shell}, args[i+1:]...), "capsh", true
		case w.s == "==" || w.s == "=+":
			return append([]word{{s: "capsh", lit: true}}, args[i+1:]...), "capsh", true
		}
	}
	return nil, "", false
}

// dtach -n|-N|-c|-A SOCKET [-e CHAR] [-E] [-r METHOD] [-z] COMMAND...;
// -a attaches to a session and -p pushes the input into one; -c and -A
// attach too.
func (a *analyzer) dtach(args []word, st *peelState) ([]word, string, bool) {
	if len(args) == 0 || !args[0].lit {
		if len(args) > 0 {
			a.unknowable(st.text, ReasonWrapperArg)
		}
		return nil, "", false
	}
	mode := args[0].s
	switch mode {
	case "-a", "-p":
		a.stdinScript("dtach", st, ReasonPipeShell, false)
		return nil, "", false
	case "-n", "-N", "-c", "-A":
	default:
		return nil, "", false
	}
	if len(args) < 2 {
		return nil, "", false
	}
	r, ok := a.strictScan(args[2:], optSpec{valued: "er"}, set("E", "z"), st)
	if !ok {
		return nil, "", false
	}
	if mode == "-c" || mode == "-A" {
		a.stdinScript("dtach", st, ReasonPipeShell, false)
	}
	return args[2+r.next:], "dtach", true
}

// abduco [-e KEY] [-flpqr] -c|-n|-A NAME [COMMAND...], abduco -a NAME.
func (a *analyzer) abduco(args []word, st *peelState) ([]word, string, bool) {
	r, ok := a.strictScan(args, optSpec{valued: "e"}, set("a", "A", "c", "n", "f", "l", "p", "q", "r", "v"), st)
	if !ok {
		return nil, "", false
	}
	if r.hasFlag('a') || r.hasFlag('c') || r.hasFlag('A') {
		a.stdinScript("abduco", st, ReasonPipeShell, false)
	}
	rest := args[r.next:]
	if r.hasFlag('a') || len(rest) < 2 {
		return nil, "", false
	}
	return rest[1:], "abduco", true
}

// mpiOptArgs is how many words the options of mpirun and mpiexec (Open MPI,
// MPICH's hydra) take, by name without leading dashes; -1 marks an option
// whose value is a program they run.
var mpiOptArgs = map[string]int{
	"np": 1, "n": 1, "c": 1, "N": 1, "H": 1, "host": 1, "hosts": 1, "hostfile": 1, "machinefile": 1, "f": 1,
	"default-hostfile": 1, "x": 1, "wdir": 1, "wd": 1, "path": 1, "prefix": 1, "bind-to": 1, "map-by": 1,
	"rank-by": 1, "npernode": 1, "ppn": 1, "npersocket": 1, "output-filename": 1, "timeout": 1, "rankfile": 1,
	"rf": 1, "am": 1, "tune": 1, "preload-files": 1, "s": 1, "stdin": 1, "genvlist": 1, "envlist": 1,
	"iface": 1, "bootstrap": 1, "launcher": 1, "errfile-pattern": 1, "outfile-pattern": 1, "profile": 1,
	"report-pid": 1, "report-uri": 1, "cpu-set": 1, "cpus-per-proc": 1, "cpus-per-rank": 1, "output": 1,
	"display": 1, "hostlist": 1, "configfile": 1, "app": 1, "personality": 1, "runtime-options": 1, "pmixmca": 2,
	"mca": 2, "gmca": 2, "genv": 2, "env": 2, "prtemca": 2,
	"oversubscribe": 0, "allow-run-as-root": 0, "report-bindings": 0, "tag-output": 0, "timestamp-output": 0,
	"display-map": 0, "display-allocation": 0, "q": 0, "quiet": 0, "v": 0, "verbose": 0, "nolocal": 0,
	"noprefix": 0, "use-hwthread-cpus": 0, "hetero": 0, "xml": 0, "merge-stderr-to-stdout": 0, "l": 0,
	"prepend-rank": 0, "genvall": 0, "genvnone": 0, "print-all-exitcodes": 0, "enable-recovery": 0,
	"disable-recovery": 0, "bind-to-core": 0, "bind-to-socket": 0, "bynode": 0, "byslot": 0, "help": 0, "h": 0,
	"version": 0, "V": 0, "d": 0, "debug": 0, "debug-devel": 0, "ordered-output": 0, "nameserver": 0,
	"launch-agent": -1, "bootstrap-exec": -1, "launcher-exec": -1, "rsh": -1, "rsh-agent": -1,
}

// mpirun [options] PROGRAM [ARG...] [: [options] PROGRAM [ARG...]]...:
// each application context is judged; an option not known, a launch agent
// (a program that starts the others) or an MCA setting naming one makes
// the line unknowable.
func (a *analyzer) mpirun(name string, args []word, st *peelState) {
	i := 0
	for i < len(args) {
		// One application context: options, then the program.
		for i < len(args) {
			w := args[i]
			if !w.lit {
				a.unknowable(st.text, ReasonWrapperArg)
				return
			}
			if w.s == "--" {
				i++
				break
			}
			if !strings.HasPrefix(w.s, "-") || w.s == "-" {
				break
			}
			opt, _, eq := strings.Cut(strings.TrimLeft(w.s, "-"), "=")
			n, known := mpiOptArgs[opt]
			if !known || n < 0 {
				a.unknowable(st.text, ReasonWrapperOption)
				return
			}
			if eq {
				n--
			}
			if opt == "mca" || opt == "gmca" || opt == "prtemca" || opt == "pmixmca" {
				if i+1 < len(args) && (strings.Contains(args[i+1].s, "agent") || strings.Contains(args[i+1].s, "rsh")) {
					a.unknowable(st.text, ReasonCodeSetting)
					return
				}
			}
			i += 1 + max(n, 0)
		}
		j := i
		for j < len(args) && !(args[j].lit && args[j].s == ":") {
			j++
		}
		if j > i {
			sub := *st
			sub.wrappers = appendWrapper(st.wrappers, name)
			a.peel(args[i:j], sub)
		}
		i = j + 1
	}
}

// slurmValued are Slurm's short options that take a value; its long ones
// are written --name=value or, for those in slurmLong, --name value.
var (
	slurmValued = optSpec{valued: "AbBcCdDeGiJLmMnNopqStTwWx", optional: "K", long: set("nodes", "ntasks", "cpus-per-task",
		"partition", "time", "job-name", "output", "error", "account", "qos", "mem", "mem-per-cpu", "gres", "constraint",
		"nodelist", "exclude", "chdir", "reservation", "dependency", "export", "gpus", "ntasks-per-node", "array",
		"mail-type", "mail-user", "begin", "distribution", "cpu-bind", "mem-bind", "licenses", "comment", "signal",
		"wckey", "clusters", "time-min", "input", "open-mode", "tmp", "threads-per-core", "wrap", "mpi", "gpus-per-node",
		"gpus-per-task", "mem-per-gpu", "cpus-per-gpu", "ntasks-per-core", "ntasks-per-socket", "sockets-per-node",
		"cores-per-socket", "hint", "nice", "priority", "deadline", "delay-boot", "container", "network", "switches",
		"uid", "gid", "kill-command", "core-spec", "thread-spec", "profile", "prolog", "epilog", "task-prolog",
		"task-epilog", "bcast", "acctg-freq", "propagate", "job-id", "jobid", "het-group", "ntasks-per-gpu")}
	slurmFlags = set("E", "h", "H", "I", "k", "l", "O", "Q", "s", "u", "v", "V", "X", "Z", "exclusive", "overcommit",
		"no-kill", "label", "unbuffered", "pty", "quiet", "verbose", "hold", "immediate", "x11", "overlap",
		"oversubscribe", "contiguous", "help", "usage", "version", "test-only", "kill-on-bad-exit", "parsable",
		"requeue", "no-requeue", "wait", "exact", "spread-job", "use-min-nodes", "disable-status", "no-shell",
		"preserve-env", "whole", "get-user-env", "ignore-pbs", "nodefile")
)

// slurm: srun and salloc run their operands (salloc, without any, a
// shell); sbatch runs --wrap's string with sh, else a script file or, with
// none, the script on its input. A program that Slurm runs before or after
// the job (--prolog, --task-epilog, …) is unknowable.
func (a *analyzer) slurm(name string, args []word, st *peelState) ([]word, string, bool) {
	r, ok := a.strictScan(args, slurmValued, slurmFlags, st)
	if !ok {
		return nil, "", false
	}
	if len(r.values("prolog", "epilog", "task-prolog", "task-epilog", "kill-command")) > 0 {
		a.unknowable(st.text, ReasonCodeSetting)
	}
	if r.hasLong("multi-prog") {
		return nil, "", false
	}
	rest := args[r.next:]
	switch name {
	case "sbatch":
		wraps := r.values("wrap")
		for _, v := range wraps {
			a.shellString(v, "sbatch --wrap", st)
		}
		if len(wraps) == 0 && len(rest) == 0 {
			a.stdinScript(name, st, ReasonPipeShell, true)
		}
		return nil, "", false
	case "salloc":
		if len(rest) == 0 {
			a.stdinScript(name, st, ReasonPipeShell, false)
			return nil, "", false
		}
	}
	return rest, name, true
}

// fanout: pdsh, clush and pssh run their operands, joined, through a
// remote shell on many hosts (pdsh and clush without any read commands
// from their input). An option passing options to ssh is judged as ssh's.
func (a *analyzer) fanout(name string, args []word, st *peelState) {
	var spec optSpec
	var flags map[string]bool
	switch name {
	case "pdsh":
		spec, flags = optSpec{valued: "wxgXltufRMe"}, set("a", "A", "b", "d", "h", "L", "q", "S", "k", "N", "V")
	case "clush":
		spec = optSpec{valued: "wxgXlftuoORE", long: set("nodes", "exclude", "group", "xgroup", "user", "fanout",
			"options", "option", "topology", "worker", "hostfile", "dest", "pick", "color", "connect_timeout", "command_timeout", "conf", "groupsconf", "groupsource")}
		flags = set("a", "b", "B", "d", "h", "L", "n", "N", "q", "S", "v", "all", "dshbak", "dshbak-all", "label", "nostdin",
			"quiet", "verbose", "debug", "help", "version", "diff", "progress", "nolabel", "nodes-only")
	default: // pssh, parallel-ssh
		spec = optSpec{valued: "hHlpoteOxX", long: set("hosts", "host", "user", "par", "outdir", "errdir", "timeout", "option", "extra-args", "extra-arg")}
		flags = set("A", "i", "I", "v", "P", "askpass", "inline", "inline-stdout", "send-input", "verbose", "print", "help", "version")
	}
	r, ok := a.strictScan(args, spec, flags, st)
	if !ok {
		return
	}
	if name == "clush" && (r.hasFlag('c') || r.hasLong("copy") || r.hasLong("rcopy")) {
		return
	}
	// Options handed to ssh: -o Key=Value settings it runs.
	for _, v := range r.values("O", "option") {
		a.sshOption(v, st)
	}
	for _, v := range r.values("o", "options", "x", "X", "extra-args", "extra-arg") {
		if name == "pssh" || name == "parallel-ssh" || name == "clush" {
			if v.s != "" && (!v.lit || strings.Contains(strings.ToLower(v.s), "command") || strings.Contains(strings.ToLower(v.s), "provider")) {
				a.unknowable(st.text, ReasonCodeSetting)
			}
		}
	}
	cmd := args[r.next:]
	if len(cmd) == 0 {
		if name == "pdsh" || name == "clush" {
			a.stdinScript(name, st, ReasonPipeShell, true)
		}
		return
	}
	a.joinedString(cmd, name, st)
}

// ansibleShellModules run their free-form -a string as a command line.
var ansibleShellModules = set("command", "shell", "raw", "win_shell", "win_command")

// ansible PATTERN [-m MODULE] -a ARGS: the command, shell and raw modules
// (command by default) run ARGS as a command line on every host.
func (a *analyzer) ansible(args []word, st *peelState) {
	module := "command"
	var vals []word
	for i := 0; i < len(args); i++ {
		w := args[i]
		next := func() (word, bool) {
			if i+1 < len(args) {
				i++
				return args[i], true
			}
			return word{}, false
		}
		switch {
		case w.s == "-m" || w.s == "--module-name":
			if v, ok := next(); ok {
				if !v.lit {
					a.unknowable(st.text, ReasonWrapperArg)
					return
				}
				module = v.s
			}
		case strings.HasPrefix(w.s, "--module-name="):
			module = strings.TrimPrefix(w.s, "--module-name=")
		case strings.HasPrefix(w.s, "-m") && !strings.HasPrefix(w.s, "--"):
			module = w.s[2:]
		case w.s == "-a" || w.s == "--args":
			if v, ok := next(); ok {
				vals = append(vals, v)
			}
		case strings.HasPrefix(w.s, "--args="):
			vals = append(vals, word{s: strings.TrimPrefix(w.s, "--args="), lit: w.lit})
		case strings.HasPrefix(w.s, "-a") && !strings.HasPrefix(w.s, "--"):
			vals = append(vals, word{s: w.s[2:], lit: w.lit})
		}
	}
	for _, v := range vals {
		if !v.lit || ansibleCommandKey.MatchString(v.s) {
			a.unknowable(st.text, ReasonCodeSetting)
			return
		}
	}
	m := module
	m = strings.TrimPrefix(m, "ansible.builtin.")
	m = strings.TrimPrefix(m, "ansible.legacy.")
	m = strings.TrimPrefix(m, "ansible.windows.")
	if !ansibleShellModules[m] {
		return
	}
	for _, v := range vals {
		a.shellString(v, "ansible -m "+m, st)
	}
}

// ansibleCommandKey matches a module parameter that is a command line
// (command's cmd= and argv=, expect's command=, cron's job=, shell's
// executable=).
var ansibleCommandKey = regexp.MustCompile(`(^|\s)(cmd|argv|command|job|executable)=`)

// saltCommandFuncs are the functions of Salt's cmd module that run their
// first argument (or cmd=) as a command line; cmd.run_chroot takes it
// second. Other cmd functions (exec_code, script) are unknowable.
var saltCommandFuncs = set("cmd.run", "cmd.shell", "cmd.run_all", "cmd.run_stdout", "cmd.run_stderr", "cmd.run_bg",
	"cmd.retcode", "cmd.powershell", "cmd.run_chroot", "cmd.shells")

// salt TARGET FUNCTION ARG... (salt-call and salt-run without a target): a
// cmd.* function runs a command line on the minions.
func (a *analyzer) salt(name string, args []word, st *peelState) {
	for i, w := range args {
		if !w.lit {
			if strings.Contains(w.s, "cmd.") || strings.Contains(w.s, "$") {
				a.unknowable(st.text, ReasonWrapperArg)
				return
			}
			continue
		}
		if saltRunsCommand(w.s) {
			a.unknowable(st.text, ReasonCodeSetting)
			return
		}
		if !strings.Contains(w.s, "cmd.") {
			continue
		}
		if strings.Contains(w.s, ",") || !saltCommandFuncs[w.s] {
			if strings.HasPrefix(w.s, "cmd.") || strings.Contains(w.s, ",cmd.") {
				a.unknowable(st.text, ReasonCodeSetting)
				return
			}
			continue
		}
		for _, v := range args[i+1:] {
			if !v.lit {
				a.unknowable(st.text, ReasonShellString)
				return
			}
			key, val, kw := strings.Cut(v.s, "=")
			if kw && isSaltKwarg(key) {
				if key != "cmd" && key != "name" {
					continue
				}
				v = word{s: val, lit: true}
			}
			if strings.HasPrefix(v.s, "-") {
				continue // an option of salt's, after the function
			}
			a.shellString(v, name+" "+w.s, st)
		}
		return
	}
}

// saltRunsCommand reports whether a Salt function (not of the cmd module)
// runs or schedules a command line it is given: at.at, cron.set_job,
// schedule.add, and the run functions of the container and chroot modules.
func saltRunsCommand(f string) bool {
	mod, fn, ok := strings.Cut(f, ".")
	if !ok || mod == "cmd" || mod == "" || strings.ContainsAny(f, " /*") {
		return false
	}
	switch {
	case mod == "at" || mod == "cron" || mod == "schedule" || mod == "incron":
		return true
	case fn == "run" || strings.HasPrefix(fn, "run_") || fn == "retcode" || fn == "call" || fn == "script" || strings.HasPrefix(fn, "exec"):
		return true
	}
	return false
}

func isSaltKwarg(k string) bool {
	if k == "" {
		return false
	}
	for _, c := range k {
		if !(c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9') {
			return false
		}
	}
	return true
}

// ctr, containerd's CLI: run IMAGE ID [COMMAND...], containers create
// IMAGE ID [COMMAND...] (a later task start runs it) and tasks exec
// --exec-id ID CONTAINER COMMAND... Options are read as urfave/cli reads
// them (one or two dashes, up to the first operand).
var (
	ctrGlobal     = optSpec{valued: "an", long: set("address", "timeout", "connect-timeout", "namespace")}
	ctrGlobalFlag = set("debug", "help", "h", "version", "v")
	ctrRun        = optSpec{valued: "u", long: set("snapshotter", "snapshotter-label", "cwd", "env", "env-file", "label",
		"annotation", "mount", "runtime", "runtime-config-path", "with-ns", "pid-file", "gpus", "memory-limit", "cap-add",
		"cap-drop", "seccomp-profile", "apparmor-default-profile", "apparmor-profile", "blockio-config-file", "rdt-class",
		"hostname", "user", "log-uri", "fifo-dir", "cgroup", "platform", "cpus", "cpu-shares", "cpu-quota", "cpu-period",
		"device", "uidmap", "gidmap", "cpuset-cpus", "cpuset-mems", "sandbox", "rootfs-propagation", "exec-id",
		"console-socket", "checkpoint", "image-config-labels", "runtime-options", "hook")}
	ctrRunFlag = set("t", "d", "tty", "detach", "rm", "null-io", "net-host", "privileged", "read-only", "rootfs",
		"allow-new-privs", "seccomp", "cni", "remap-labels", "no-pivot", "privileged-without-host-devices", "help", "h")
)

func (a *analyzer) ctr(args []word, st *peelState) ([]word, string, bool) {
	g, ok := a.strictScan(dashes(args), ctrGlobal, ctrGlobalFlag, st)
	if !ok {
		return nil, "", false
	}
	rest := args[g.next:]
	var sub []string
	for len(rest) > 0 && rest[0].lit && len(sub) < 2 && !strings.HasPrefix(rest[0].s, "-") {
		sub = append(sub, rest[0].s)
		rest = rest[1:]
		if len(sub) == 1 && sub[0] == "run" {
			break
		}
	}
	label, operands := "", 0
	switch {
	case len(sub) >= 1 && sub[0] == "run":
		label, operands = "ctr run", 2
	case len(sub) == 2 && (sub[0] == "containers" || sub[0] == "container" || sub[0] == "c") && sub[1] == "create":
		label, operands = "ctr containers create", 2
	case len(sub) == 2 && (sub[0] == "tasks" || sub[0] == "task" || sub[0] == "t") && sub[1] == "exec":
		label, operands = "ctr tasks exec", 1
	default:
		return nil, "", false
	}
	r, ok := a.strictScan(dashes(rest), ctrRun, ctrRunFlag, st)
	if !ok {
		return nil, "", false
	}
	if len(r.values("hook")) > 0 || r.hasLong("config") {
		a.unknowable(st.text, ReasonCodeSetting)
		return nil, "", false
	}
	rest = rest[r.next:]
	if len(rest) <= operands {
		return nil, "", false
	}
	for _, w := range rest[:operands] {
		if !w.lit {
			a.unknowable(st.text, ReasonWrapperArg)
			return nil, "", false
		}
	}
	if r.hasFlag('t') || r.hasLong("tty") {
		a.stdinScript("ctr", st, ReasonPipeShell, false)
	}
	return dropDash(rest[operands:]), label, true
}

// dashes rewrites urfave/cli's single-dash long options (-exec-id x) as
// double-dash ones, for scanOpts.
func dashes(args []word) []word {
	out := make([]word, len(args))
	copy(out, args)
	for i, w := range out {
		if w.lit && len(w.s) > 2 && w.s[0] == '-' && w.s[1] != '-' {
			out[i].s = "-" + w.s
		}
		if !w.lit || !strings.HasPrefix(w.s, "-") {
			break
		}
	}
	return out
}

// runc, crun and the other OCI runtimes: exec [options] CONTAINER
// COMMAND... (run and create read the command from the bundle's
// config.json, a file).
var (
	runcGlobal     = optSpec{long: set("root", "log", "log-format", "criu", "rootless", "cgroup-manager")}
	runcGlobalFlag = set("debug", "systemd-cgroup", "help", "h", "version", "v")
	runcExec       = optSpec{valued: "eugpc", long: set("console-socket", "cwd", "env", "user", "additional-gids",
		"process", "apparmor", "process-label", "cap", "pid-file", "preserve-fds", "cgroup")}
	runcExecFlag = set("t", "d", "tty", "detach", "no-new-privs", "ignore-paused", "help", "h")
)

func (a *analyzer) runc(name string, args []word, st *peelState) ([]word, string, bool) {
	g, ok := a.strictScan(dashes(args), runcGlobal, runcGlobalFlag, st)
	if !ok {
		return nil, "", false
	}
	rest := args[g.next:]
	if len(rest) == 0 || !rest[0].lit || rest[0].s != "exec" {
		return nil, "", false
	}
	rest = rest[1:]
	r, ok := a.strictScan(dashes(rest), runcExec, runcExecFlag, st)
	if !ok {
		return nil, "", false
	}
	rest = rest[r.next:]
	if len(rest) < 2 {
		return nil, "", false
	}
	if !rest[0].lit {
		a.unknowable(st.text, ReasonWrapperArg)
		return nil, "", false
	}
	if r.hasFlag('t') || r.hasLong("tty") {
		a.stdinScript(name, st, ReasonPipeShell, false)
	}
	return dropDash(rest[1:]), name + " exec", true
}

// dropDash drops a "--" before a command: a CLI that passes it on would
// only fail to run it.
func dropDash(ws []word) []word {
	if len(ws) > 1 && ws[0].lit && ws[0].s == "--" {
		return ws[1:]
	}
	return ws
}

// systemd-nspawn [options] [COMMAND...]: without a command, a shell on the
// session's input (with --boot, init and a login prompt on it).
var (
	nspawnSpec = optSpec{valued: "DuLMSZipE", long: set("directory", "template", "user", "machine", "uuid", "slice",
		"property", "network-interface", "network-macvlan", "network-ipvlan", "network-veth-extra", "network-bridge",
		"network-zone", "network-namespace-path", "port", "setenv", "bind", "bind-ro", "inaccessible", "tmpfs", "overlay",
		"overlay-ro", "capability", "drop-capability", "ambient-capability", "link-journal", "selinux-context",
		"selinux-apparmor-profile", "image", "image-policy", "oci-bundle", "chdir", "pivot-root", "personality",
		"kill-signal", "notify-ready", "root-hash", "root-hash-sig", "verity-data", "system-call-filter", "rlimit",
		"oom-score-adjust", "cpu-affinity", "resolv-conf", "timezone", "console", "hostname", "no-new-privileges",
		"settings", "load-credential", "set-credential", "bind-user", "suppress-sync", "private-users-ownership",
		"background", "register", "keep-unit", "private-users", "volatile", "network-veth", "read-only", "register",
		"link-journal", "bind-user-shell", "bind-user-group", "uid")}
	nspawnFlag = set("h", "a", "b", "j", "q", "x", "n", "U", "P", "V", "help", "version", "boot", "as-pid2", "ephemeral",
		"quiet", "pipe", "private-network", "no-pager", "keep-unit", "read-only", "network-veth")
)

func (a *analyzer) nspawn(args []word, st *peelState) ([]word, string, bool) {
	r, ok := a.strictScan(args, nspawnSpec, nspawnFlag, st)
	if !ok {
		return nil, "", false
	}
	rest := args[r.next:]
	if r.hasFlag('b') || r.hasLong("boot") || len(rest) == 0 {
		a.stdinScript("systemd-nspawn", st, ReasonPipeShell, false)
		return nil, "", false
	}
	return rest, "systemd-nspawn", true
}

// sshCommandOptions are ssh settings whose value is a command line ssh
// runs (locally through the user's shell, or as the remote command);
// sshCodeOptions load a library.
var (
	sshCommandOptions = set("proxycommand", "localcommand", "remotecommand", "knownhostscommand")
	sshCodeOptions    = set("pkcs11provider", "securitykeyprovider", "include")
)

// sshOption judges an -o Key=Value (or "Key Value") setting of ssh, scp,
// sftp or a tool handing it to them.
func (a *analyzer) sshOption(v word, st *peelState) {
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
	switch {
	case sshCommandOptions[key]:
		if strings.EqualFold(val, "none") || val == "" {
			return
		}
		a.shellString(word{s: val, lit: true}, "ssh -o "+key, st)
	case sshCodeOptions[key]:
		if !strings.EqualFold(val, "none") {
			a.unknowable(st.text, ReasonCodeSetting)
		}
	case key == "xauthlocation":
		a.runsProgram(word{s: val, lit: true}, "ssh -o xauthlocation", st) // run for -X
	}
}

// scp and sftp: -o settings as ssh's; -S names the program run in ssh's
// place and -D an sftp server run locally, both unknowable.
func (a *analyzer) scpSftp(name string, args []word, st *peelState) {
	spec := optSpec{valued: "cDFiJlPoSX"}
	if name == "sftp" {
		spec = optSpec{valued: "BbcDFiJlPoRSsX"}
	}
	r := scanPermute(args, spec)
	a.checkBad(r, st)
	for _, v := range r.values("o") {
		a.sshOption(v, st)
	}
	if len(r.values("S", "D")) > 0 {
		a.unknowable(st.text, ReasonCodeSetting)
	}
	for _, f := range r.values("F") {
		if !f.lit || isStdinPath(f.s) || f.s == "-" {
			a.unknowable(st.text, ReasonCodeSetting)
		}
	}
	if name == "scp" {
		a.scpRemotePaths(r.operands, st)
	}
	if name == "sftp" {
		// -s: the subsystem, or a path run on the host as a command.
		for _, v := range r.values("s") {
			a.shellString(v, "sftp -s", st)
		}
	}
}

// rsync: -e/--rsh is the remote shell it runs (the words of a command
// line), --rsync-path a command run through that shell on the other side;
// a remote shell other than ssh is handed the remote operand's host
// (rsyncHosts). rsync takes no abbreviated long options, so they are read
// here in order rather than with scanPermute, which would take --partial
// for --partial-dir and its value from the next word.
func (a *analyzer) rsync(args []word, st *peelState) {
	var shells, paths, remote, operands []word
	server := false
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
			shells = append(shells, val)
		case "rsync-path":
			paths = append(paths, val)
		case "M", "remote-option":
			remote = append(remote, val)
		}
	}
	if server {
		// The remote end of a transfer (rsync --server
		// -vlogDtpre.iLsfxCIvu . dst): it runs no remote shell, and its
		// -e carries protocol flags.
		return
	}
	for _, v := range shells {
		a.shellString(v, "rsync -e", st)
	}
	for _, v := range paths {
		a.shellString(v, "rsync --rsync-path", st)
	}
	for _, v := range remote {
		if !v.lit || strings.Contains(v.s, "rsh") || strings.Contains(v.s, "rsync-path") || strings.HasPrefix(v.s, "-e") {
			a.unknowable(st.text, ReasonCodeSetting)
		}
	}
	a.rsyncHosts(shells, operands, st)
}

// rsyncValued are rsync's long options that take the next word as their
// value when not written --name=value. One missing here reads its value
// as an operand, which only makes the analysis stricter.
var rsyncValued = set("rsh", "rsync-path", "filter", "exclude", "include", "files-from", "exclude-from", "include-from",
	"temp-dir", "backup-dir", "suffix", "chmod", "log-file", "log-file-format", "password-file", "partial-dir",
	"compare-dest", "copy-dest", "link-dest", "out-format", "bwlimit", "timeout", "contimeout", "port", "address",
	"sockopts", "chown", "usermap", "groupmap", "remote-option", "info", "debug", "iconv", "max-size", "min-size",
	"max-delete", "block-size", "modify-window", "skip-compress", "compress-choice", "checksum-choice",
	"compress-level", "stop-after", "stop-at", "early-input", "outbuf", "protocol", "checksum-seed", "config",
	"dparam", "read-batch", "write-batch", "only-write-batch", "copy-as")

// bwrapArgs is how many words bubblewrap's options take.
var bwrapArgs = map[string]int{
	"unshare-all": 0, "share-net": 0, "unshare-user": 0, "unshare-user-try": 0, "unshare-ipc": 0, "unshare-pid": 0,
	"unshare-net": 0, "unshare-uts": 0, "unshare-cgroup": 0, "unshare-cgroup-try": 0, "die-with-parent": 0,
	"as-pid-1": 0, "new-session": 0, "clearenv": 0, "disable-userns": 0, "assert-userns-disabled": 0, "help": 0,
	"version": 0, "level-prefix": 0,
	"argv0": 1, "userns": 1, "userns2": 1, "pidns": 1, "uid": 1, "gid": 1, "hostname": 1, "chdir": 1, "unsetenv": 1,
	"lock-file": 1, "sync-fd": 1, "remount-ro": 1, "exec-label": 1, "file-label": 1, "proc": 1, "dev": 1, "tmpfs": 1,
	"mqueue": 1, "dir": 1, "seccomp": 1, "add-seccomp-fd": 1, "block-fd": 1, "userns-block-fd": 1, "info-fd": 1,
	"json-status-fd": 1, "cap-add": 1, "cap-drop": 1, "perms": 1, "size": 1, "overlay-src": 1, "tmp-overlay": 1,
	"ro-overlay": 1,
	"setenv":     2, "bind": 2, "bind-try": 2, "dev-bind": 2, "dev-bind-try": 2, "ro-bind": 2, "ro-bind-try": 2,
	"bind-fd": 2, "ro-bind-fd": 2, "file": 2, "bind-data": 2, "ro-bind-data": 2, "symlink": 2, "chmod": 2,
	"overlay": 3,
}

// bwrap [options] [--] COMMAND...: --args reads more options from a file
// descriptor, unknowable.
func (a *analyzer) bwrap(args []word, st *peelState) ([]word, string, bool) {
	i := 0
	for i < len(args) {
		w := args[i]
		if !w.lit {
			a.unknowable(st.text, ReasonWrapperArg)
			return nil, "", false
		}
		if w.s == "--" {
			i++
			break
		}
		if !strings.HasPrefix(w.s, "--") {
			break
		}
		n, known := bwrapArgs[w.s[2:]]
		if !known {
			a.unknowable(st.text, ReasonWrapperOption)
			return nil, "", false
		}
		i += 1 + n
	}
	if i >= len(args) {
		return nil, "", false
	}
	return args[i:], "bwrap", true
}

// gdb --args PROGRAM ARG... runs the program; an -ex command "shell CMD"
// or "!CMD" runs CMD with the shell, and one in another language
// (python, guile, pipe, eval) is unknowable.
func (a *analyzer) gdb(args []word, st *peelState) ([]word, string, bool) {
	run := false
	var program *word
	for i := 0; i < len(args); i++ {
		w := args[i]
		if !w.lit {
			continue
		}
		if !strings.HasPrefix(w.s, "-") {
			if program == nil {
				program = &args[i]
			}
			continue
		}
		if gdbValued[strings.TrimLeft(w.s, "-")] && !strings.Contains(w.s, "=") && strings.TrimLeft(w.s, "-") != "ex" &&
			strings.TrimLeft(w.s, "-") != "eval-command" && strings.TrimLeft(w.s, "-") != "iex" && strings.TrimLeft(w.s, "-") != "init-eval-command" {
			i++
			continue
		}
		s := strings.TrimLeft(w.s, "-")
		if w.s == "--args" || w.s == "-args" {
			return args[i+1:], "gdb --args", true
		}
		var v word
		switch {
		case strings.HasPrefix(w.s, "-") && (s == "ex" || s == "eval-command" || s == "iex" || s == "init-eval-command"):
			if i+1 >= len(args) {
				return nil, "", false
			}
			i++
			v = args[i]
		case strings.HasPrefix(w.s, "-") && (strings.HasPrefix(s, "eval-command=") || strings.HasPrefix(s, "init-eval-command=")):
			_, val, _ := strings.Cut(s, "=")
			v = word{s: val, lit: true}
		default:
			continue
		}
		a.gdbCommand(v, st)
		if f := strings.Fields(v.s); len(f) > 0 && (f[0] == "run" || f[0] == "r" || f[0] == "start" || f[0] == "starti") {
			run = true
		}
	}
	if run && program != nil {
		// run and start run the program named on the command line.
		return []word{*program}, "gdb run", true
	}
	return nil, "", false
}

// gdbValued are gdb's options that take the next word as their value.
var gdbValued = set("ex", "iex", "x", "ix", "p", "pid", "c", "core", "d", "directory", "cd", "s", "symbols", "e", "exec",
	"se", "tty", "D", "data-directory", "command", "init-command", "eval-command", "init-eval-command", "interpreter",
	"i", "b", "l", "ctty")

// gdbHarmless matches a gdb command that runs nothing on its own: gdb
// abbreviates commands (she is shell) and evaluates expressions that call
// the program's functions (print system("…")), and run passes its
// arguments to a shell, so only these are let through.
var gdbHarmless = regexp.MustCompile(`^\s*(bt|backtrace|where|info\s+[\w -]*|i\s+[\w -]*|thread\s+apply\s+all\s+(bt|backtrace)(\s+full)?|(run|r|start|starti)|(c|continue|cont|next|n|step|s|finish|fin|up|down|detach|kill|quit|q|gcore|generate-core-file|disassemble|list|l)(\s+[\w./-]*)?|set\s+(pagination|confirm|height|width|verbose|print\s+\w+|logging\s+\w+|listsize|disassembly-flavor|follow-fork-mode|detach-on-fork|non-stop|breakpoint\s+pending|style\s+enabled)(\s+[\w./-]*)?|(break|b|tbreak|tb)\s+[\w.:/+*-]+|frame\s+\d+|f\s+\d+)\s*$`)

func (a *analyzer) gdbCommand(v word, st *peelState) {
	if !v.lit {
		a.unknowable(st.text, ReasonWrapperArg)
		return
	}
	c := strings.TrimSpace(v.s)
	if rest, ok := strings.CutPrefix(c, "!"); ok {
		a.shellString(word{s: rest, lit: true}, "gdb shell", st)
		return
	}
	if first, rest, _ := strings.Cut(c, " "); first == "shell" {
		a.shellString(word{s: rest, lit: true}, "gdb shell", st)
		return
	}
	if !gdbHarmless.MatchString(c) {
		a.unknowable(st.text, ReasonCodeSetting)
	}
}

// perf stat|record|trace|… [options] COMMAND...: perf runs the command it
// measures.
var (
	perfSpec = optSpec{valued: "eoGpCtrxIcFmuDLjkNw", long: set("event", "output", "cgroup", "pid", "cpu", "tid",
		"repeat", "field-separator", "interval-print", "count", "freq", "mmap-pages", "uid", "delay", "call-graph",
		"filter", "post", "pre", "control", "clockid", "affinity", "switch-output", "user-regs", "intr-regs",
		"branch-filter", "metrics", "metric-groups", "topdown", "td-level", "duration", "expr", "sort", "max-stack",
		"min-stack", "sched-stat", "symbols", "comm", "event-filter", "input")}
	perfFlag = set("a", "A", "g", "n", "q", "R", "v", "P", "s", "S", "B", "T", "i", "W", "d", "Y", "h", "all-cpus",
		"no-inherit", "scale", "verbose", "quiet", "null", "detailed", "sync", "big-num", "no-big-num", "no-aggr",
		"per-socket", "per-die", "per-core", "per-thread", "per-node", "raw-trace", "timestamp", "data", "phys-data",
		"period", "sample-cpu", "no-buildid", "no-buildid-cache", "stat", "summary", "no-samples", "help", "append",
		"sched", "tail-synthesize", "overwrite", "strict", "no-bpf-event", "kcore", "realtime")
	perfRuns = set("stat", "record", "trace", "c2c", "mem", "sched", "kvm", "lock", "kmem", "timechart", "top", "ftrace", "kwork", "daemon")
)

func (a *analyzer) perf(args []word, st *peelState) ([]word, string, bool) {
	if len(args) == 0 || !args[0].lit {
		return nil, "", false
	}
	sub := args[0].s
	if !perfRuns[sub] {
		return nil, "", false
	}
	rest := args[1:]
	// Subcommands with their own subcommand (perf sched record CMD).
	if (sub == "c2c" || sub == "mem" || sub == "sched" || sub == "kvm" || sub == "lock" || sub == "kmem" || sub == "timechart" || sub == "kwork") && len(rest) > 0 && rest[0].lit && !strings.HasPrefix(rest[0].s, "-") {
		if rest[0].s != "record" && rest[0].s != "stat" && rest[0].s != "trace" && rest[0].s != "top" {
			return nil, "", false
		}
		rest = rest[1:]
	}
	r, ok := a.strictScan(rest, perfSpec, perfFlag, st)
	if !ok {
		return nil, "", false
	}
	rest = rest[r.next:]
	if len(rest) == 0 {
		return nil, "", false
	}
	return rest, "perf " + sub, true
}

// socat ADDRESS ADDRESS: an EXEC:, SYSTEM: or SHELL: address runs its
// command line (up to its first ",", the address options).
func (a *analyzer) socat(args []word, st *peelState) {
	for _, w := range args {
		for _, part := range strings.Split(w.s, "!!") {
			lower := strings.ToLower(part)
			typ := ""
			for _, p := range []string{"exec:", "system:", "shell:"} {
				if strings.HasPrefix(lower, p) {
					typ = p
				}
			}
			if typ == "" {
				if !w.lit && !strings.HasPrefix(w.s, "-") && strings.IndexAny(w.s, ":") < 0 {
					a.unknowable(st.text, ReasonWrapperArg) // the whole address is run-time data
					return
				}
				continue
			}
			if !w.lit {
				a.unknowable(st.text, ReasonShellString)
				return
			}
			cmd, _, _ := strings.Cut(part[len(typ):], ",")
			a.shellString(word{s: cmd, lit: true}, "socat "+strings.TrimSuffix(typ, ":"), st)
		}
	}
}

// netcat: -e PROGRAM (ncat: a command line) and -c/--sh-exec STRING (sh
// -c) run a command with the connection as its input and output.
func (a *analyzer) netcat(name string, args []word, st *peelState) {
	for i := 0; i < len(args); i++ {
		w := args[i]
		var v word
		switch {
		case w.s == "--exec" || w.s == "--sh-exec":
			if i+1 >= len(args) {
				return
			}
			i++
			v = args[i]
		case strings.HasPrefix(w.s, "--exec=") || strings.HasPrefix(w.s, "--sh-exec="):
			_, val, _ := strings.Cut(w.s, "=")
			v = word{s: val, lit: w.lit}
		case len(w.s) > 1 && w.s[0] == '-' && w.s[1] != '-':
			k := strings.IndexAny(w.s[1:], "ec")
			if k < 0 {
				continue
			}
			k++
			if k+1 < len(w.s) {
				v = word{s: w.s[k+1:], lit: w.lit}
			} else if i+1 < len(args) {
				i++
				v = args[i]
			} else {
				return
			}
		default:
			continue
		}
		a.shellString(v, name+" -e", st)
	}
}

// manifestCommand matches a container's command or args in YAML or JSON.
var manifestCommand = regexp.MustCompile(`(?m)(^|[\s{,"'-])(command|args)["']?\s*:`)

// kubeManifest makes a kubectl apply/create/replace of a manifest typed
// into the line (-f - with a here-document or here-string), or a patch,
// unknowable when it gives a container a command: the pods run it.
func (a *analyzer) kubeManifest(sub string, args []word, st *peelState) {
	switch sub {
	case "patch":
		for i, w := range args {
			var v word
			switch {
			case (w.s == "-p" || w.s == "--patch") && i+1 < len(args):
				v = args[i+1]
			case strings.HasPrefix(w.s, "--patch="):
				v = word{s: strings.TrimPrefix(w.s, "--patch="), lit: w.lit}
			case strings.HasPrefix(w.s, "-p") && len(w.s) > 2:
				v = word{s: w.s[2:], lit: w.lit}
			default:
				continue
			}
			if !v.lit || manifestCommand.MatchString(v.s) {
				a.unknowable(st.text, ReasonManifestCommand)
				return
			}
		}
	case "apply", "create", "replace":
		fromStdin := false
		for i, w := range args {
			if (w.s == "-f" || w.s == "--filename") && i+1 < len(args) && args[i+1].s == "-" || w.s == "-f-" || w.s == "--filename=-" {
				fromStdin = true
			}
		}
		if !fromStdin || st.stmt == nil {
			return
		}
		for _, r := range st.stmt.Redirs {
			if r == nil || !readsFD0(r) {
				continue
			}
			var body string
			lit := true
			switch {
			case r.Hdoc != nil:
				body, lit = heredocBody(r, st.sc.src)
			case r.Word != nil:
				w := normWord(r.Word, st.sc.src)
				body, lit = w.s, w.lit
			}
			if !lit || manifestCommand.MatchString(body) {
				a.unknowable(st.text, ReasonManifestCommand)
				return
			}
		}
	}
}

// machinectl [options] shell [options] [[USER@]MACHINE [COMMAND...]]: the
// command runs in the machine; without one, a shell on the session's
// input (as for login).
func (a *analyzer) machinectl(args []word, st *peelState) ([]word, string, bool) {
	valued := "pHMsnoE"
	for i := 0; i < len(args); i++ {
		w := args[i]
		if !w.lit {
			a.unknowable(st.text, ReasonWrapperArg)
			return nil, "", false
		}
		switch w.s {
		case "login":
			a.stdinScript("machinectl", st, ReasonPipeShell, false)
			return nil, "", false
		case "shell":
		default:
			continue
		}
		rest := args[i+1:]
		// Options may come between the verb and the machine.
		j := 0
		for j < len(rest) && rest[j].lit && strings.HasPrefix(rest[j].s, "-") && rest[j].s != "-" {
			s := rest[j].s
			j++
			if s == "--" {
				break
			}
			if strings.HasPrefix(s, "--") {
				if !strings.Contains(s, "=") && (s == "--uid" || s == "--setenv" || s == "--host" || s == "--machine" || s == "--property") {
					j++
				}
				continue
			}
			if strings.IndexByte(valued, s[len(s)-1]) >= 0 {
				j++
			}
		}
		rest = rest[min(j, len(rest)):]
		if len(rest) < 2 {
			a.stdinScript("machinectl", st, ReasonPipeShell, false)
			return nil, "", false
		}
		if !rest[0].lit {
			a.unknowable(st.text, ReasonWrapperArg)
			return nil, "", false
		}
		return rest[1:], "machinectl shell", true
	}
	return nil, "", false
}

// hyperfine runs each operand, and its --setup, --prepare, --conclude and
// --cleanup values, with the shell; a parameter (-P, -L) is put into the
// commands at run time, unknowable.
func (a *analyzer) hyperfine(args []word, st *peelState) {
	spec := optSpec{valued: "wmMrspcSunNoi", long: set("warmup", "min-runs", "max-runs", "runs", "setup", "prepare",
		"conclude", "cleanup", "shell", "time-unit", "command-name", "output", "input", "export-asciidoc", "export-csv",
		"export-json", "export-markdown", "export-orgmode", "style", "sort", "reference", "ignore-failure")}
	r := scanPermute(args, spec)
	if !knownOpts(r, spec, set("N", "i", "h", "V", "help", "version", "show-output", "ignore-failure", "dry-run")) {
		a.unknowable(st.text, ReasonWrapperOption)
		return
	}
	for _, v := range r.values("s", "setup", "p", "prepare", "conclude", "c", "cleanup", "reference") {
		a.shellString(v, "hyperfine", st)
	}
	for _, v := range r.values("S", "shell") {
		if !v.lit || v.s != "none" && baseName(v.s) != "sh" && baseName(v.s) != "bash" {
			a.unknowable(st.text, ReasonCodeSetting)
		}
	}
	for _, w := range r.operands {
		a.shellString(w, "hyperfine", st)
	}
}
