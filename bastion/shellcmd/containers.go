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
	containerRunValued = optSpec{valued: "ehlmpuvwc", long: set(
		"env", "env-file", "hostname", "label", "memory", "publish", "user", "volume", "workdir", "cpu-shares",
		"name", "network", "net", "mount", "add-host", "cap-add", "cap-drop", "cpus", "device", "dns", "gpus",
		"ipc", "pid", "platform", "pull", "restart", "security-opt", "shm-size", "stop-signal", "tmpfs",
		"ulimit", "userns", "log-driver", "log-opt", "cgroupns", "group-add", "expose", "label-file",
		"memory-swap", "network-alias", "sysctl", "runtime", "uts", "stop-timeout", "init-path", "cidfile",
		"detach-keys", "attach", "a", "entrypoint")}
	containerRunFlags = set("d", "i", "t", "P", "rm", "detach", "interactive", "tty", "privileged",
		"init", "read-only", "publish-all", "no-healthcheck", "quiet", "q", "oom-kill-disable", "sig-proxy")
	// Global options before the subcommand.
	containerGlobalValued = optSpec{valued: "Hcl", long: set("host", "context", "config", "log-level",
		"tlscacert", "tlscert", "tlskey", "url", "connection", "root", "runroot", "storage-driver",
		"cgroup-manager", "events-backend", "namespace", "address", "n", "identity")}
	containerGlobalFlags = set("D", "debug", "tls", "tlsverify", "remote", "r", "help", "v", "version")
	// kubectl and oc: global options, and those of exec.
	kubeValued = optSpec{valued: "nsvcf", long: set("namespace", "context", "kubeconfig", "cluster", "user",
		"server", "token", "as", "as-group", "as-uid", "request-timeout", "certificate-authority",
		"client-certificate", "client-key", "tls-server-name", "cache-dir", "profile", "profile-output",
		"container", "pod-running-timeout", "filename", "v")}
	kubeFlags = set("i", "t", "q", "stdin", "tty", "quiet", "insecure-skip-tls-verify", "match-server-version", "warnings-as-errors")
)

// knownOpts reports whether every option r read is one of valued's or
// flags' (and no option's value was a non-literal word).
func knownOpts(r scanResult, valued optSpec, flags map[string]bool) bool {
	if r.bad {
		return false
	}
	for _, o := range r.opts {
		if flags[o.name] {
			continue
		}
		if len(o.name) == 1 && strings.IndexByte(valued.valued, o.name[0]) >= 0 || valued.long[o.name] {
			continue
		}
		return false
	}
	return true
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
// "--", and the command is everything after it.
func (a *analyzer) kubectl(name string, args []word, st *peelState) ([]word, string, bool) {
	dd := -1
	for i, w := range args {
		if w.lit && w.s == "--" {
			dd = i
			break
		}
	}
	before := args
	if dd >= 0 {
		before = args[:dd]
	}
	r := scanPermute(before, kubeValued)
	sub := ""
	if len(r.operands) > 0 && r.operands[0].lit {
		sub = r.operands[0].s
	}
	switch sub {
	case "exec", "run", "debug", "attach":
	default:
		if len(r.operands) > 0 && !r.operands[0].lit {
			a.unknowable(st.text, ReasonWrapperArg)
		}
		return nil, "", false
	}
	if sub == "attach" {
		// The container's main process reads the session's input.
		a.stdinScript(name, st, ReasonPipeShell, false)
		return nil, "", false
	}
	if sub == "exec" && !knownOpts(r, kubeValued, kubeFlags) {
		return a.containerUnknown(name, args, st)
	}
	if dd < 0 {
		// exec POD COMMAND without "--" is refused by current kubectl;
		// an older one runs it.
		if sub == "exec" && len(r.operands) > 2 {
			a.unknowable(st.text, ReasonWrapperOption)
		}
		return nil, "", false
	}
	return args[dd+1:], name + " " + sub, true
}
