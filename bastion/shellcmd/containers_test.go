package shellcmd

import (
	"slices"
	"testing"
)

// Container and cluster CLIs run their command elsewhere: the command is
// judged as itself, the CLI its wrapper; options not known make the line
// unknowable rather than read wrong.
func TestContainerCLIs(t *testing.T) {
	t.Parallel()
	rm := []string{"rm", "-rf", "/srv"}
	for _, tc := range []struct {
		src    string
		argv   []string // the rm expected, or nil
		wraps  []string
		reason string // an Unknowable expected, or ""
	}{
		{src: "docker exec db rm -rf /srv", argv: rm, wraps: []string{"docker exec"}},
		{src: "docker exec -it -u root -e A=1 --workdir /x db rm -rf /srv", argv: rm, wraps: []string{"docker exec"}},
		{src: "docker -H tcp://h:2375 --context prod exec db rm -rf /srv", argv: rm, wraps: []string{"docker exec"}},
		{src: "docker container exec db rm -rf /srv", argv: rm, wraps: []string{"docker exec"}},
		{src: "docker compose -f c.yml exec web rm -rf /srv", argv: rm, wraps: []string{"docker exec"}},
		{src: "podman exec -l rm -rf /srv", argv: rm, wraps: []string{"podman exec"}}, // -l: the latest container, no container named
		{src: "podman exec --latest -it rm -rf /srv", argv: rm, wraps: []string{"podman exec"}},
		{src: "sudo podman exec db sh -c 'rm -rf /srv'", argv: rm},
		{src: "nerdctl exec db rm -rf /srv", argv: rm, wraps: []string{"nerdctl exec"}},
		{src: "docker run --rm -v /srv:/srv alpine rm -rf /srv", argv: rm, wraps: []string{"docker run"}},
		{src: "docker run --entrypoint rm alpine -rf /srv", reason: ReasonWrapperOption},
		{src: "docker exec --new-option x db rm -rf /srv", reason: ReasonWrapperOption},
		{src: "docker --new-global x exec db rm -rf /srv", reason: ReasonWrapperOption},
		{src: "docker exec $C rm -rf /srv", argv: rm, reason: ReasonWrapperArg},
		{src: "kubectl exec pod -- rm -rf /srv", argv: rm, wraps: []string{"kubectl exec"}},
		{src: "kubectl -n prod exec -it pod -c app -- rm -rf /srv", argv: rm, wraps: []string{"kubectl exec"}},
		{src: "kubectl exec --context prod pod -- sh -c 'rm -rf /srv'", argv: rm},
		{src: "oc exec pod -- rm -rf /srv", argv: rm, wraps: []string{"oc exec"}},
		{src: "kubectl debug -it pod --image=busybox -- rm -rf /srv", argv: rm, wraps: []string{"kubectl debug"}},
		{src: "kubectl exec pod rm -rf /srv", reason: ReasonWrapperOption},
		{src: "kubectl exec --new-flag pod -- rm -rf /srv", reason: ReasonWrapperOption},
		// A one-letter option is read as itself, never as a long option of
		// that name: docker run's -a (--attach) and nerdctl's -n
		// (--namespace) take a value.
		{src: "docker run -a stdin alpine rm -rf /srv", argv: rm, wraps: []string{"docker run"}},
		{src: "nerdctl -n k8s.io exec db rm -rf /srv", argv: rm, wraps: []string{"nerdctl exec"}},
		// create stores the command a later start runs.
		{src: "docker create --name x alpine rm -rf /srv", argv: rm, wraps: []string{"docker create"}},
		{src: "docker container create alpine rm -rf /srv", argv: rm, wraps: []string{"docker create"}},
		{src: "podman create alpine sh -c 'rm -rf /srv'", argv: rm},
		// kubectl run takes its command without "--" too.
		{src: "kubectl run x --image=alpine --restart=Never --command rm -rf /srv", reason: ReasonWrapperOption},
		// "--" is a valued option's value, not the end of the options.
		{src: "kubectl --cache-dir -- exec pod -- rm -rf /srv", argv: rm, wraps: []string{"kubectl exec"}},
		{src: "kubectl exec pod --cache-dir -- -- rm -rf /srv", argv: rm, wraps: []string{"kubectl exec"}},
		{src: "kubectl run x --image=alpine --field-manager -- -- rm -rf /srv", argv: rm, wraps: []string{"kubectl run"}},
		{src: "kubectl run x --image=alpine --new-option -- -- rm -rf /srv", reason: ReasonWrapperOption},
		{src: "kubectl run x --image alpine --command -- rm -rf /srv", argv: rm, wraps: []string{"kubectl run"}},
		// Compose's own binaries; the pods of kubectl create job,
		// cronjob and deployment; oc rsh's command; kubectl alpha debug.
		{src: "docker-compose exec web rm -rf /srv", argv: rm, wraps: []string{"docker exec"}},
		{src: "podman-compose -f c.yml run web rm -rf /srv", argv: rm, wraps: []string{"podman run"}},
		{src: "kubectl create job x --image=alpine -- rm -rf /srv", argv: rm, wraps: []string{"kubectl create"}},
		{src: "kubectl create cronjob x --image=alpine --schedule='* * * * *' -- rm -rf /srv", argv: rm, wraps: []string{"kubectl create"}},
		{src: "oc rsh pod rm -rf /srv", reason: ReasonWrapperOption},
		{src: "oc rsh -c app pod -- rm -rf /srv", argv: rm, wraps: []string{"oc rsh"}},
		{src: "kubectl alpha debug pod -- rm -rf /srv", argv: rm, wraps: []string{"kubectl debug"}},
		// A node's CRI client, and LXD/Incus.
		{src: "crictl exec -it 4f2a rm -rf /srv", argv: rm, wraps: []string{"crictl exec"}},
		{src: "crictl -r unix:///run/containerd/containerd.sock exec -s 4f2a rm -rf /srv", argv: rm, wraps: []string{"crictl exec"}},
		{src: "crictl exec --new-option x 4f2a rm -rf /srv", reason: ReasonWrapperOption},
		{src: "crictl --new-global x exec 4f2a rm -rf /srv", reason: ReasonWrapperOption},
		{src: "lxc exec web -- rm -rf /srv", argv: rm, wraps: []string{"lxc exec"}},
		{src: "incus exec web --env A=1 -- sh -c 'rm -rf /srv'", argv: rm},
		{src: "lxc exec web rm /srv", reason: ReasonWrapperOption},
	} {
		a := analyzeOK(t, tc.src)
		if tc.reason != "" {
			found := false
			for _, u := range a.Unknowable {
				found = found || u.Reason == tc.reason
			}
			if !found {
				t.Errorf("%q: no Unknowable %q in:%s", tc.src, tc.reason, dump(a))
			}
		}
		if tc.argv == nil {
			continue
		}
		found := false
		for _, c := range a.Commands {
			if c.Name == "rm" && slices.Equal(c.Argv, tc.argv) {
				found = true
				if tc.wraps != nil && !slices.Equal(c.Wrappers, tc.wraps) {
					t.Errorf("%q: rm wrappers %q, want %q", tc.src, c.Wrappers, tc.wraps)
				}
			}
		}
		if !found {
			t.Errorf("%q: no rm %q in:%s", tc.src, tc.argv, dump(a))
		}
	}
	// What runs nothing given is left alone.
	for _, src := range []string{"docker ps -a", "docker logs -f web", "kubectl get pods -n prod", "docker run -d nginx", "kubectl logs pod", "docker compose up -d", "podman images",
		"docker create nginx", "kubectl run web --image=nginx", "kubectl run web --image nginx --port 80", "crictl ps -a", "lxc list"} {
		a := analyzeOK(t, src)
		if len(a.Unknowable) > 0 || len(a.Commands) != 1 {
			t.Errorf("%q: want one command, nothing unknowable:%s", src, dump(a))
		}
	}
	// Attach reads the session's input into the container's process; so
	// do an interactive run without a command (the image's own, a shell
	// for most images), start -ai, oc rsh and oc debug without one.
	for _, src := range []string{"kubectl attach -it pod", "docker attach db", "podman attach db", "docker start -ai db", "podman start -i db",
		"docker run -it alpine", "nerdctl run --rm -i alpine", "kubectl run x -it --image=alpine", "kubectl debug -it pod --image=busybox",
		"oc rsh pod", "oc debug node/x", "docker-compose run -i web", "lxc shell web", "crictl attach 4f2a"} {
		if a := analyzeOK(t, src); !a.StdinShell {
			t.Errorf("%q: want unknowable (a process reading the session's input):%s", src, dump(a))
		}
	}
}

// programSeeds are container, cluster and git lines whose options or
// environment are easily misread, for the fuzzer.
var programSeeds = []string{
	"docker run -a stdin alpine rm -rf /srv",
	"nerdctl -n k8s.io exec db rm -rf /srv",
	"docker container create alpine rm -rf /srv",
	"kubectl --cache-dir -- exec pod -- rm -rf /srv",
	"kubectl run x --image=alpine --new-option -- -- rm -rf /srv",
	"kubectl run x --image=alpine --command rm -rf /srv",
	"GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=core.sshCommand GIT_CONFIG_VALUE_0='rm -rf /srv' git fetch",
	"export 'GIT_SSH_COMMAND=rm -rf /srv'; git fetch",
	"sudo GIT_SSH_COMMAND=\"$X\" git fetch",
	"git rebase -ix 'rm -rf /srv' HEAD~1",
	"git clone -ccore.sshCommand='rm -rf /srv' --upload-pack=x . d",
}

// Programs that run a command they are given (chpst, daemonize,
// start-stop-daemon), build one from their input (parallel), or run one a
// setting names (git -c core.sshCommand=…, a '!' alias).
func TestMoreProgramsRunningCommands(t *testing.T) {
	t.Parallel()
	rm := []string{"rm", "-rf", "/srv"}
	for _, tc := range []struct {
		src    string
		argv   []string
		reason string
	}{
		{src: "chpst -u www rm -rf /srv", argv: rm},
		{src: "daemonize -c / -u root /bin/rm -rf /srv", argv: []string{"/bin/rm", "-rf", "/srv"}},
		{src: "start-stop-daemon --start --exec /bin/rm -- -rf /srv", argv: []string{"/bin/rm", "-rf", "/srv"}},
		{src: "start-stop-daemon -S -x /bin/sh -- -c 'rm -rf /srv'", argv: rm},
		{src: "parallel rm -rf ::: /srv", reason: ReasonCodeSetting},
		{src: "ls | parallel", reason: ReasonCodeSetting},
		{src: "expect -c 'spawn rm -rf /srv'", reason: ReasonCodeSetting},
		{src: "git -c core.sshCommand='rm -rf /srv' fetch", reason: ReasonCodeSetting},
		{src: "git -c alias.x='!rm -rf /srv' x", reason: ReasonCodeSetting},
		{src: "git -C /repo -c core.pager='sh -c x' log", reason: ReasonCodeSetting},
		{src: "git -c protocol.ext.allow=always clone 'ext::sh -c rm% -rf% /srv'", reason: ReasonCodeSetting},
		{src: "git config alias.x '!rm -rf /srv'", reason: ReasonCodeSetting},
		{src: "git config --global core.hooksPath /tmp/h", reason: ReasonCodeSetting},
		{src: "git --exec-path=/tmp/x status", reason: ReasonCodeSetting},
		// Settings git runs that the list missed.
		{src: "git -c submodule.x.update='!rm -rf /srv' submodule update", reason: ReasonCodeSetting},
		{src: "git -c core.alternateRefsCommand='rm -rf /srv' push", reason: ReasonCodeSetting},
		{src: "git -c sendemail.toCmd='rm -rf /srv' send-email x", reason: ReasonCodeSetting},
		{src: "git -c man.viewer=x -c man.x.path=/bin/rm help git", reason: ReasonCodeSetting},
		{src: "git -c browser.x.path=/bin/rm web--browse x", reason: ReasonCodeSetting},
		{src: "git -c init.templateDir=/tmp/t clone x", reason: ReasonCodeSetting},
		// Environment variables whose value git (or another program) runs
		// as a command: the value is judged as one.
		{src: "GIT_SSH_COMMAND='rm -rf /srv' git fetch", argv: rm},
		{src: "GIT_EXTERNAL_DIFF='rm -rf /srv' git diff", argv: rm},
		{src: "PAGER='rm -rf /srv' man ls", argv: rm},
		{src: "export GIT_PAGER='rm -rf /srv'", argv: rm},
		{src: "GIT_EDITOR='rm -rf /srv'; export GIT_EDITOR", argv: rm},
		{src: "env GIT_SSH_COMMAND='rm -rf /srv' git fetch", argv: rm},
		{src: "sudo GIT_SSH_COMMAND='rm -rf /srv' git fetch", argv: rm},
		{src: "export 'GIT_SSH_COMMAND=rm -rf /srv'", argv: rm},
		{src: "GIT_SSH_COMMAND=\"$X\" git fetch", reason: ReasonCodeSetting},
		{src: "read GIT_SSH_COMMAND <<< 'rm -rf /srv'; export GIT_SSH_COMMAND; git fetch", reason: ReasonCodeSetting},
		{src: "printf -v PAGER 'rm -rf /srv'; export PAGER; man ls", reason: ReasonCodeSetting},
		{src: "mapfile -t GIT_CONFIG_KEY_0 < keys", reason: ReasonCodeSetting},
		// ... or names configuration or code of its own.
		{src: "GIT_CONFIG_COUNT=1 GIT_CONFIG_KEY_0=core.sshCommand GIT_CONFIG_VALUE_0='rm -rf /srv' git fetch", reason: ReasonCodeSetting},
		{src: "GIT_CONFIG_PARAMETERS=\"'core.sshcommand=rm -rf /srv'\" git fetch", reason: ReasonCodeSetting},
		{src: "GIT_CONFIG_GLOBAL=/tmp/cfg git fetch", reason: ReasonCodeSetting},
		{src: "GIT_EXEC_PATH=/tmp/x git status", reason: ReasonCodeSetting},
		{src: "GIT_ALLOW_PROTOCOL=ext git clone 'ext::sh -c rm% -rf% /srv' d", reason: ReasonCodeSetting},
		// git commands whose options or operands are a command to run.
		{src: "git rebase -x 'rm -rf /srv' HEAD~1", reason: ReasonCodeSetting},
		{src: "git rebase --exec='rm -rf /srv' HEAD~1", reason: ReasonCodeSetting},
		{src: "git rebase -ix 'rm -rf /srv' HEAD~1", reason: ReasonCodeSetting},
		{src: "git bisect run rm -rf /srv", reason: ReasonCodeSetting},
		{src: "git submodule foreach 'rm -rf /srv'", reason: ReasonCodeSetting},
		{src: "git filter-branch --tree-filter 'rm -rf /srv' HEAD", reason: ReasonCodeSetting},
		{src: "git difftool -x 'rm -rf /srv'", reason: ReasonCodeSetting},
		{src: "git clone --upload-pack='rm -rf /srv;' . d", reason: ReasonCodeSetting},
		{src: "git clone -u 'rm -rf /srv;' . d", reason: ReasonCodeSetting},
		{src: "git fetch --upload-pack 'rm -rf /srv;' .", reason: ReasonCodeSetting},
		{src: "git push --receive-pack='rm -rf /srv;' .", reason: ReasonCodeSetting},
		{src: "git ls-remote --upload-pack='rm -rf /srv;' .", reason: ReasonCodeSetting},
		{src: "git archive --remote=. --exec='rm -rf /srv;' HEAD", reason: ReasonCodeSetting},
		{src: "git send-email --to-cmd='rm -rf /srv' x", reason: ReasonCodeSetting},
		{src: "git -C /repo rebase --exec 'rm -rf /srv' main", reason: ReasonCodeSetting},
		{src: "git clone -c core.sshCommand='rm -rf /srv' host:x.git", reason: ReasonCodeSetting},
		{src: "git clone --config=core.sshCommand='rm -rf /srv' host:x.git", reason: ReasonCodeSetting},
		{src: "git clone --template=/tmp/t host:x.git", reason: ReasonCodeSetting},
	} {
		a := analyzeOK(t, tc.src)
		if tc.reason != "" {
			found := false
			for _, u := range a.Unknowable {
				found = found || u.Reason == tc.reason
			}
			if !found {
				t.Errorf("%q: no Unknowable %q in:%s", tc.src, tc.reason, dump(a))
			}
		}
		if tc.argv != nil {
			found := false
			for _, c := range a.Commands {
				found = found || slices.Equal(c.Argv, tc.argv)
			}
			if !found {
				t.Errorf("%q: no command %q in:%s", tc.src, tc.argv, dump(a))
			}
		}
	}
	for _, src := range []string{"git status", "git -c color.ui=never log -1", "git config alias.st status", "git config --get core.pager",
		"git -C /repo pull --ff-only", "git commit -m 'core.pager'", "start-stop-daemon --stop --pidfile /run/x.pid", "parallel --version",
		"GIT_PAGER=cat git log", "EDITOR=vim git commit", "git rebase -i HEAD~3", "git commit -m 'git rebase -x'", "git submodule update --init",
		"git clone https://example.com/x.git", "git fetch origin", "git push -u origin main", "git bisect start", "GIT_TRACE=1 git fetch",
		"git clone -c user.name=x host:x.git", "git send-email --to x@example.com --cc y@example.com 0001.patch"} {
		a := analyzeOK(t, src)
		if len(a.Unknowable) > 0 {
			t.Errorf("%q: want nothing unknowable:%s", src, dump(a))
		}
	}
}

// The shell's own COLUMNS or LINES make its line editor wrap at another
// width than the window's, which the screen reader models: unknowable. A
// prefix assignment only the command sees is not.
func TestSizeAssignments(t *testing.T) {
	t.Parallel()
	for _, src := range []string{"COLUMNS=20", "export COLUMNS=20", "LINES=5; ls", "declare -x COLUMNS=300", "local LINES=2"} {
		a := analyzeOK(t, src)
		found := false
		for _, u := range a.Unknowable {
			found = found || u.Reason == ReasonTerminal
		}
		if !found {
			t.Errorf("%q: want unknowable %q:%s", src, ReasonTerminal, dump(a))
		}
	}
	for _, src := range []string{"COLUMNS=200 ps aux", "echo $COLUMNS", "export COLUMNS", "tput cols"} {
		if a := analyzeOK(t, src); len(a.Unknowable) > 0 {
			t.Errorf("%q: want nothing unknowable:%s", src, dump(a))
		}
	}
}
