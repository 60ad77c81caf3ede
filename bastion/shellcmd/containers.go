package shellcmd

import "strings"

// Container and cluster CLIs run a command line elsewhere, which on a
// bastion's targets is often where the data is: `docker exec db rm -rf
// /var/lib/postgresql`, `kubectl exec pod -- rm -rf /data`. The command they
// run is judged as the command it is, with the CLI as its wrapper. Their
// option sets are large and grow with each release, so an option that is
// not known here (it might take the next word as its value, which would
// then be read as the container or the command) makes the line unknowable
// rather than guessed at.

// containerExec are the options of `docker exec` (and podman's and
// nerdctl's, which take docker's): valued ones and flags.
var (
	containerExecValued = optSpec{valued: "euw", long: set("env", "env-file", "user", "workdir", "detach-keys")}
	containerExecFlags  = set("d", "i", "t", "detach", "interactive", "tty", "privileged", "latest", "l")
	// docker/podman run: the options that matter for reading where the
	// image and its command are. --entrypoint replaces the image's
	// entrypoint, so the words after the image are its arguments, not a
	// command: unknowable.
	containerRunValued = optSpec{valued: "ehlmpuvwca", long: set(
		"env", "env-file", "hostname", "label", "memory", "publish", "user", "volume", "workdir", "cpu-shares",
		"name", "network", "net", "mount", "add-host", "cap-add", "cap-drop", "cpus", "device", "dns", "gpus",
		"ipc", "pid", "platform", "pull", "restart", "security-opt", "shm-size", "stop-signal", "tmpfs",
		"ulimit", "userns", "log-driver", "log-opt", "cgroupns", "group-add", "expose", "label-file",
		"memory-swap", "network-alias", "sysctl", "runtime", "uts", "stop-timeout", "init-path", "cidfile",
		"detach-keys", "attach", "entrypoint")}
	containerRunFlags = set("d", "i", "t", "P", "rm", "detach", "interactive", "tty", "privileged",
		"init", "read-only", "publish-all", "no-healthcheck", "quiet", "q", "oom-kill-disable", "sig-proxy")
	// Global options before the subcommand.
	containerGlobalValued = optSpec{valued: "Hcln", long: set("host", "context", "config", "log-level",
		"tlscacert", "tlscert", "tlskey", "url", "connection", "root", "runroot", "storage-driver",
		"cgroup-manager", "events-backend", "namespace", "address", "identity")}
	containerGlobalFlags = set("D", "debug", "tls", "tlsverify", "remote", "r", "help", "v", "version")
	// kubectl and oc: global options, and those of exec.
	kubeValued = optSpec{valued: "nsvcf", long: set("namespace", "context", "kubeconfig", "cluster", "user",
		"server", "token", "as", "as-group", "as-uid", "request-timeout", "certificate-authority",
		"client-certificate", "client-key", "tls-server-name", "cache-dir", "profile", "profile-output",
		"container", "pod-running-timeout", "filename", "v")}
	kubeFlags = set("i", "t", "q", "stdin", "tty", "quiet", "insecure-skip-tls-verify", "match-server-version", "warnings-as-errors")
	// kubectl run's valued options besides the global ones, so that
	// `--image nginx` is not read as the pod's name and a command.
	kubeRunValued = optSpec{valued: kubeValued.valued + "lo", long: union(kubeValued.long, set("image", "port",
		"env", "labels", "overrides", "restart", "image-pull-policy", "annotations", "output",
		"field-manager", "limits", "requests", "timeout", "template", "hostport", "serviceaccount",
		"override-type", "grace-period", "shell", "schedule", "replicas", "from", "profile"))}
	// Flags of kubectl run, create, debug and oc rsh (--dry-run and
	// --cascade take a value only after "=").
	kubeRunFlags = union(kubeFlags, set("command", "rm", "attach", "leave-stdin-open", "privileged", "expose",
		"dry-run", "cascade", "wait", "record", "save-config", "show-managed-fields", "allow-missing-template-keys",
		"T", "share-processes", "keep-labels", "keep-annotations", "keep-liveness", "keep-readiness",
		"keep-startup", "keep-init-containers", "same-node"))
)

func union(a, b map[string]bool) map[string]bool {
	m := make(map[string]bool, len(a)+len(b))
	for k := range a {
		m[k] = true
	}
	for k := range b {
		m[k] = true
	}
	return m
}

// knownOpts reports whether every option r read is one of valued's or
// flags' (and no option's value was a non-literal word).
func knownOpts(r scanResult, valued optSpec, flags map[string]bool) bool {
	if r.bad {
		return false
	}
	for _, o := range r.opts {
		if !optKnown(o, valued, flags) {
			return false
		}
	}
	return true
}

// optKnown reports whether o is one of valued's or flags' options: a
// one-letter option written -x only as a short one (docker run's -a is
// --attach, not a flag of that letter), a long one only by its name.
func optKnown(o option, valued optSpec, flags map[string]bool) bool {
	if o.long {
		return len(o.name) > 1 && (flags[o.name] || valued.long[o.name])
	}
	return len(o.name) == 1 && (flags[o.name] || strings.IndexByte(valued.valued, o.name[0]) >= 0)
}

// containerCLI follows docker, podman and nerdctl to the command of their
// exec and run subcommands (also as `container exec`, `compose exec
// SERVICE`, `compose run SERVICE`).
func (a *analyzer) containerCLI(name string, args []word, st *peelState) ([]word, string, bool) {
	g := scanOpts(args, containerGlobalValued)
	rest := args[g.next:]
	sub := ""
	if len(rest) > 0 && rest[0].lit {
		sub = rest[0].s
	}
	if sub == "container" || sub == "compose" {
		rest = rest[1:]
		if sub == "compose" {
			// compose's own options (-f FILE, -p NAME) come before its
			// subcommand.
			c := scanOpts(rest, optSpec{valued: "fp", long: set("file", "project-name", "project-directory", "env-file", "profile", "ansi", "progress", "parallel")})
			if c.bad {
				return a.containerUnknown(name, args, st)
			}
			rest = rest[c.next:]
		}
		if len(rest) > 0 && rest[0].lit {
			sub = rest[0].s
		} else {
			sub = ""
		}
	}
	if !knownOpts(g, containerGlobalValued, containerGlobalFlags) && mentionsRun(args) {
		return a.containerUnknown(name, args, st)
	}
	if len(rest) == 0 || !rest[0].lit {
		if len(rest) > 0 && mentionsRun(args) {
			return a.containerUnknown(name, args, st)
		}
		return nil, "", false
	}
	rest = rest[1:]
	label := name + " " + sub
	switch sub {
	case "attach":
		// The container's main process reads the session's input.
		a.stdinScript(name, st, ReasonPipeShell, false)
		return nil, "", false
	case "start":
		// start -i (with -a or without: it attaches too) gives the
		// session's input to what a create stored, or to the image's own
		// command (often a shell).
		r := scanOpts(rest, optSpec{long: set("detach-keys")})
		if r.hasFlag('i') || r.hasLong("interactive") || r.bad {
			a.stdinScript(name, st, ReasonPipeShell, false)
		}
		return nil, "", false
	}
	if sub == "create" {
		// create stores the command that a later start runs: judged
		// now, as run's is.
		sub = "run"
	}
	switch sub {
	case "exec":
		r := scanOpts(rest, containerExecValued)
		if !knownOpts(r, containerExecValued, containerExecFlags) {
			return a.containerUnknown(name, args, st)
		}
		inner := rest[r.next:]
		if name == "podman" && (r.hasFlag('l') || r.hasLong("latest")) {
			// podman exec --latest: the last container started, none named.
			return inner, label, true
		}
		if len(inner) == 0 {
			return nil, "", false
		}
		// The container (or compose's service), then the command.
		if !inner[0].lit {
			a.unknowable(st.text, ReasonWrapperArg)
		}
		return inner[1:], label, true
	case "run":
		r := scanOpts(rest, containerRunValued)
		if !knownOpts(r, containerRunValued, containerRunFlags) || r.hasLong("entrypoint") {
			return a.containerUnknown(name, args, st)
		}
		inner := rest[r.next:]
		if len(inner) <= 1 && (r.hasFlag('i') || r.hasLong("interactive")) {
			// The image's own command, with the session's input: a
			// shell, for most images.
			a.stdinScript(name, st, ReasonPipeShell, false)
		}
		if len(inner) == 0 {
			return nil, "", false
		}
		if !inner[0].lit {
			a.unknowable(st.text, ReasonWrapperArg)
		}
		// The image (or service); without a command it runs the image's
		// own, which is not typed here.
		return inner[1:], label, true
	}
	return nil, "", false
}

// containerUnknown reports a container CLI line whose options are not read
// for sure.
func (a *analyzer) containerUnknown(name string, args []word, st *peelState) ([]word, string, bool) {
	a.unknowable(st.text, ReasonWrapperOption)
	return nil, "", false
}

// mentionsRun reports whether a literal exec, run, debug or attach word is
// among args: a line whose options were not read may run a command.
func mentionsRun(args []word) bool {
	for _, w := range args {
		if !w.lit {
			return true
		}
		switch w.s {
		case "exec", "run", "debug", "attach":
			return true
		}
	}
	return false
}

// kubectl follows kubectl and oc to the command of exec (and of run and
// debug, whose command follows "--"): cobra reads options anywhere before
// "--", and the command is everything after it. A "--" that is an option's
// value (`--cache-dir -- exec pod -- rm …`) does not end the options.
func (a *analyzer) kubectl(name string, args []word, st *peelState) ([]word, string, bool) {
	spec := kubeRunValued
	dd, unsure := kubeDash(args, spec, kubeRunFlags)
	before := args
	if dd >= 0 {
		before = args[:dd]
	}
	r := scanPermute(before, spec)
	ops := r.operands
	if len(ops) > 1 && ops[0].lit && ops[0].s == "alpha" {
		ops = ops[1:] // kubectl alpha debug, in older releases
	}
	sub := ""
	if len(ops) > 0 && ops[0].lit {
		sub = ops[0].s
	}
	stdin := r.hasFlag('i') || r.hasLong("stdin")
	switch sub {
	case "exec", "run", "debug", "attach", "rsh":
	case "create":
		// create job, cronjob or deployment NAME --image=… -- COMMAND:
		// its pods run the command.
		a.kubeManifest(sub, args, st)
		if unsure {
			return a.containerUnknown(name, args, st)
		}
		if dd < 0 {
			return nil, "", false
		}
		return args[dd+1:], name + " create", true
	default:
		a.kubeManifest(sub, args, st)
		if len(r.operands) > 0 && !r.operands[0].lit || unsure {
			a.unknowable(st.text, ReasonWrapperArg)
		}
		return nil, "", false
	}
	if sub == "attach" {
		// The container's main process reads the session's input.
		a.stdinScript(name, st, ReasonPipeShell, false)
		return nil, "", false
	}
	if unsure || sub == "exec" && !knownOpts(r, kubeValued, kubeFlags) {
		return a.containerUnknown(name, args, st)
	}
	if dd < 0 {
		// exec POD COMMAND without "--" is refused by current kubectl;
		// an older one runs it. run NAME COMMAND and oc rsh POD COMMAND
		// run it.
		if (sub == "exec" || sub == "run" || sub == "rsh") && len(ops) > 2 {
			a.unknowable(st.text, ReasonWrapperOption)
			return nil, "", false
		}
		// Without a command, oc rsh and oc debug start a shell on the
		// session's input, and run or debug -i the image's own command
		// (a shell, for most images).
		if sub == "rsh" || name == "oc" && sub == "debug" || (sub == "run" || sub == "debug") && stdin {
			a.stdinScript(name, st, ReasonPipeShell, false)
		}
		return nil, "", false
	}
	return args[dd+1:], name + " " + sub, true
}

// kubeDash returns the index of the "--" that ends kubectl's options (-1:
// none), reading options as spec says: the word after a valued option is
// its value, whatever it is. unsure: an option whose arity is not known
// comes right before it, so it may be that option's value.
func kubeDash(args []word, spec optSpec, flags map[string]bool) (dd int, unsure bool) {
	var r scanResult
	prevUnknown := false
	for i := 0; i < len(args); {
		if args[i].lit && args[i].s == "--" {
			return i, prevUnknown
		}
		n0 := len(r.opts)
		n, stop := scanOne(args, i, spec, &r)
		if stop {
			prevUnknown = false
			i++
			continue
		}
		last := r.opts[len(r.opts)-1]
		prevUnknown = len(r.opts) > n0 && !last.has && !optKnown(last, spec, flags)
		i = n
	}
	return -1, false
}

// crictl (a Kubernetes node's CRI client) follows to the command of exec:
// its options stop at the container (urfave/cli reads no option after an
// operand), and one not known makes the line unknowable.
var (
	crictlGlobal      = optSpec{valued: "ritc", long: set("runtime-endpoint", "image-endpoint", "timeout", "config")}
	crictlGlobalFlags = set("D", "debug")
	crictlExec        = optSpec{long: set("timeout")}
	crictlExecFlags   = set("i", "t", "s", "interactive", "tty", "sync")
)

func (a *analyzer) crictl(args []word, st *peelState) ([]word, string, bool) {
	g := scanOpts(args, crictlGlobal)
	if !knownOpts(g, crictlGlobal, crictlGlobalFlags) && mentionsRun(args) {
		return a.containerUnknown("crictl", args, st)
	}
	rest := args[g.next:]
	if len(rest) == 0 || !rest[0].lit {
		if len(rest) > 0 {
			a.unknowable(st.text, ReasonWrapperArg)
		}
		return nil, "", false
	}
	sub := rest[0].s
	switch sub {
	case "attach":
		a.stdinScript("crictl", st, ReasonPipeShell, false)
		return nil, "", false
	case "exec":
	default:
		return nil, "", false
	}
	r := scanOpts(rest[1:], crictlExec)
	if !knownOpts(g, crictlGlobal, crictlGlobalFlags) || !knownOpts(r, crictlExec, crictlExecFlags) {
		return a.containerUnknown("crictl", args, st)
	}
	inner := rest[1+r.next:]
	if len(inner) == 0 {
		return nil, "", false
	}
	if !inner[0].lit {
		a.unknowable(st.text, ReasonWrapperArg)
	}
	return inner[1:], "crictl exec", true
}

// lxc and incus follow to the command of exec, after "--" (cobra reads
// options anywhere before it); without "--", words after the instance make
// the line unknowable, an instance alone is a shell on the session's input.
var (
	lxcValued = optSpec{long: set("env", "cwd", "mode", "user", "group", "project", "remote")}
	lxcFlags  = set("t", "T", "n", "q", "force-interactive", "force-noninteractive", "disable-stdin",
		"quiet", "debug", "verbose", "force-local", "all-projects")
)

func (a *analyzer) lxc(name string, args []word, st *peelState) ([]word, string, bool) {
	dd, unsure := kubeDash(args, lxcValued, lxcFlags)
	before := args
	if dd >= 0 {
		before = args[:dd]
	}
	r := scanPermute(before, lxcValued)
	if len(r.operands) == 0 || !r.operands[0].lit || r.operands[0].s != "exec" && r.operands[0].s != "shell" && r.operands[0].s != "console" {
		return nil, "", false
	}
	if r.operands[0].s != "exec" {
		a.stdinScript(name, st, ReasonPipeShell, false)
		return nil, "", false
	}
	if unsure || !knownOpts(r, lxcValued, lxcFlags) {
		return a.containerUnknown(name, args, st)
	}
	if dd < 0 {
		if len(r.operands) > 2 {
			a.unknowable(st.text, ReasonWrapperOption)
		}
		return nil, "", false
	}
	return args[dd+1:], name + " exec", true
}
