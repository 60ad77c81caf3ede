package shellcmd

import (
	"slices"
	"testing"
)

// Programs that run their arguments (or a string) as a command, reached
// for to get rm past a rule: each must yield the rm command, or make the
// line unknowable, or (stdin) be a program reading the session's input.
func TestLaunchersRunningTheirArguments(t *testing.T) {
	t.Parallel()
	const rm, unk, stdin = "rm", "unknowable", "stdin"
	for _, tc := range []struct{ src, want string }{
		// screen: options as screen reads them (a cluster's valued letter
		// takes the next word), and the window's command run as argv.
		{"screen -dmS x rm -rf /srv", rm},
		{"screen -DmS x rm -rf /srv", rm},
		{"screen -L -Logfile /tmp/l -dm rm -rf /srv", rm},
		{"screen -dm bash -c 'X=1 rm -rf /srv'", rm},
		{"screen -dm bash -c 'command rm -rf /srv'", rm},
		{"screen -d -r x", stdin},
		{"screen -dr x", stdin},
		{"screen -D -R", stdin},
		{"tmux new -d bash -c 'command rm -rf /srv'", rm},
		// entr runs its operands, or with -s a string with $SHELL -c.
		{"ls | entr rm -rf /srv", rm},
		{"ls | entr -rp rm -rf /srv", rm},
		{"ls | entr -s 'rm -rf /srv'", rm},
		{"ls | entr -n -s 'rm -rf /srv'", rm},
		{"ls | entr /_ x", unk},
		// SELinux, capabilities, namespaces.
		{"runcon -t unconfined_t rm -rf /srv", rm},
		{"runcon system_u:system_r:unconfined_t:s0 rm -rf /srv", rm},
		{"runcon -u x -r y rm -rf /srv", rm},
		{"capsh -- -c 'rm -rf /srv'", rm},
		{"capsh --user=root -- -c 'rm -rf /srv'", rm},
		{"capsh --shell=/bin/rm -- -rf /srv", rm},
		{"capsh --caps=x == -- -c 'rm -rf /srv'", rm},
		{"capsh =+ --shell=/bin/rm -- -rf /srv", rm},
		{"machinectl shell root@.host /bin/rm -rf /srv", rm},
		{"machinectl -q shell .host /bin/sh -c 'rm -rf /srv'", rm},
		{"systemd-run -C x rm -rf /srv", rm},
		{"su root -s /bin/rm -- -rf /srv", rm},
		// Detached sessions.
		{"dtach -n /tmp/s rm -rf /srv", rm},
		{"dtach -c /tmp/s -z rm -rf /srv", rm},
		{"dtach -A /tmp/s -e ^A rm -rf /srv", rm},
		{"dtach -a /tmp/s", stdin},
		{"dtach -p /tmp/s", stdin},
		{"abduco -n x rm -rf /srv", rm},
		{"abduco -c x rm -rf /srv", rm},
		{"abduco -e ^A -A x rm -rf /srv", rm},
		{"abduco -a x", stdin},
		// MPI and Slurm.
		{"mpirun -np 2 rm -rf /srv", rm},
		{"mpirun -n 1 --host a,b rm -rf /srv", rm},
		{"mpiexec -n 1 rm -rf /srv", rm},
		{"mpirun --mca btl self rm -rf /srv", rm},
		{"mpirun --new-option x rm -rf /srv", unk},
		{"srun -N1 rm -rf /srv", rm},
		{"srun -N 1 --ntasks=2 rm -rf /srv", rm},
		{"salloc -N1 rm -rf /srv", rm},
		{"sbatch --wrap='rm -rf /srv'", rm},
		{"sbatch --wrap 'rm -rf /srv'", rm},
		// Fan-out to many hosts.
		{"pdsh -w host rm -rf /srv", rm},
		{"pdsh -w host 'rm -rf /srv'", rm},
		{"pdsh -w host", stdin},
		{"clush -w host rm -rf /srv", rm},
		{"clush -b -w host 'rm -rf /srv'", rm},
		{"pssh -H host rm -rf /srv", rm},
		{"parallel-ssh -i -H host 'rm -rf /srv'", rm},
		{"ansible all -a 'rm -rf /srv'", rm},
		{"ansible all -m shell -a 'rm -rf /srv'", rm},
		{"ansible all -m ansible.builtin.command -a 'rm -rf /srv'", rm},
		{"ansible all --module-name=raw --args='rm -rf /srv'", rm},
		{"ansible all -m shell -a \"$X\"", unk},
		{"salt '*' cmd.run 'rm -rf /srv'", rm},
		{"salt -G os:Debian cmd.run 'rm -rf /srv'", rm},
		{"salt-call cmd.run 'rm -rf /srv'", rm},
		{"salt-ssh '*' cmd.run_all cmd='rm -rf /srv'", rm},
		{"salt '*' cmd.exec_code bash 'rm -rf /srv'", unk},
		{"salt '*' cmd.run,test.ping 'rm -rf /srv',", unk},
		// Container runtimes below docker.
		{"ctr run --rm docker.io/library/alpine:latest x rm -rf /srv", rm},
		{"ctr -n k8s.io run -t img id rm -rf /srv", rm},
		{"ctr task exec --exec-id x c1 rm -rf /srv", rm},
		{"ctr t exec -t --exec-id x c1 rm -rf /srv", rm},
		{"ctr containers create img id rm -rf /srv", rm},
		{"ctr run --new-flag x img id rm -rf /srv", unk},
		{"runc exec c1 rm -rf /srv", rm},
		{"runc --root /run/x exec -t --cwd / c1 rm -rf /srv", rm},
		{"crun exec c1 rm -rf /srv", rm},
		{"runc exec --new-flag x c1 rm -rf /srv", unk},
		{"systemd-nspawn -D /var/lib/machines/x rm -rf /srv", rm},
		{"systemd-nspawn -M x rm -rf /srv", rm},
		{"systemd-nspawn -D /x --bind=/srv -- rm -rf /srv", rm},
		{"systemd-nspawn -q --bind /srv -D /x rm -rf /srv", rm},
		{"systemd-nspawn -D /x", stdin},
		{"systemd-nspawn --new-option x rm -rf /srv", unk},
		// Commands run by ssh, scp, sftp and rsync besides the remote one.
		{"ssh -o ProxyCommand='rm -rf /srv' host", rm},
		{"ssh -oProxyCommand='rm -rf /srv' host ls", rm},
		{"ssh -o 'ProxyCommand rm -rf /srv' host ls", rm},
		{"ssh -o LocalCommand='rm -rf /srv' -o PermitLocalCommand=yes host ls", rm},
		{"ssh -o RemoteCommand='rm -rf /srv' host", rm},
		{"ssh host -o KnownHostsCommand='rm -rf /srv' ls", rm},
		{"ssh -o PKCS11Provider=/tmp/x.so host ls", unk},
		{"ssh -I /tmp/x.so host ls", unk},
		{"ssh -o \"$O\" host ls", unk},
		{"scp -S /bin/rm -rf x host:", unk},
		{"scp -o ProxyCommand='rm -rf /srv' a host:b", rm},
		{"sftp -o ProxyCommand='rm -rf /srv' host", rm},
		{"sftp -S /bin/rm host", unk},
		{"rsync -e 'rm -rf /srv' a host:b", rm},
		{"rsync --rsh='sh -c \"rm -rf /srv\"' a host:b", rm},
		{"rsync -avz --rsync-path='rm -rf /srv' a host:b", rm},
		{"rsync -ave 'rm -rf /srv' a host:b", rm},
		// Plain argv wrappers.
		{"rlwrap rm -rf /srv", rm},
		{"rlwrap -a -c rm -rf /srv", rm},
		{"proot rm -rf /srv", rm},
		{"proot -r / -b /srv rm -rf /srv", rm},
		{"proot -0 rm -rf /srv", rm},
		{"bwrap --bind / / rm -rf /srv", rm},
		{"bwrap --ro-bind / / --dev /dev --setenv A B rm -rf /srv", rm},
		{"bwrap --new-option x rm -rf /srv", unk},
		{"gdb -batch -ex run --args rm -rf /srv", rm},
		{"gdb --args rm -rf /srv", rm},
		{"perf stat rm -rf /srv", rm},
		{"perf record -g -o /tmp/p rm -rf /srv", rm},
		{"perf trace rm -rf /srv", rm},
		{"ld.so /bin/rm -rf /srv", rm},
		{"/lib64/ld-linux-x86-64.so.2 /bin/rm -rf /srv", rm},
		{"/lib/x86_64-linux-gnu/ld-linux-x86-64.so.2 --preload x.so /bin/rm -rf /srv", rm},
		{"systemd-inhibit --what=sleep rm -rf /srv", rm},
		{"systemd-cat -t x rm -rf /srv", rm},
		{"aa-exec -p x -- rm -rf /srv", rm},
		{"flatpak-spawn --host rm -rf /srv", rm},
		{"schroot -c x -- rm -rf /srv", rm},
		{"schroot -c x rm -rf /srv", rm},
		{"lxc-attach -n x -- rm -rf /srv", rm},
		{"lxc-execute -n x -- rm -rf /srv", rm},
		{"env -a x rm -rf /srv", rm},
		{"trickle -d 10 rm -rf /srv", rm},
		{"socat - EXEC:'rm -rf /srv'", rm},
		{"socat - SYSTEM:'rm -rf /srv',pty", rm},
		{"socat TCP-LISTEN:1,fork EXEC:\"$X\"", unk},
		{"ncat -e '/bin/rm -rf /srv' host 1", rm},
		{"ncat -c 'rm -rf /srv' host 1", rm},
		{"ncat --sh-exec 'rm -rf /srv' host 1", rm},
		{"nc -c 'rm -rf /srv' host 1", rm},
		{"nc.traditional -e /bin/rm host 1", rm},
		// awk's program runs a command with system(), a pipe or a
		// coprocess, or an indirect call (gawk's @f()) of system.
		{"awk 'BEGIN{system(\"rm -rf /srv\")}'", unk},
		{"gawk 'BEGIN{print | \"rm -rf /srv\"}'", unk},
		{"awk 'BEGIN{\"rm -rf /srv\" | getline}'", unk},
		{"awk 'BEGIN{f=\"system\"; @f(\"rm -rf /srv\")}'", unk},
		{"awk -F: -v x=1 '{print $1 |& \"sh\"}' /etc/passwd", unk},
		{"mawk -e 'BEGIN{system(\"rm -rf /srv\")}'", unk},
		{"gawk --source='BEGIN{system(\"rm\")}'", unk},
		{"gawk -l ./x.so 'BEGIN{}'", unk},
		{"awk \"$P\"", unk},
		// vim and ex run Ex commands given with -c, +cmd and --cmd: one
		// that is not plainly harmless (:!, :r !, :call system(), :norm,
		// :exe, a script language) is unknowable.
		{"vim -c '!rm -rf /srv' -c q", unk},
		{"ex -c '!rm -rf /srv'", unk},
		{"vim '+!rm -rf /srv'", unk},
		{"vi -c 'call system(\"rm -rf /srv\")' x", unk},
		{"nvim --cmd 'lua os.execute(\"rm -rf /srv\")'", unk},
		{"vim -c 'set ft=sh | !rm -rf /srv' x", unk},
		// make runs text given with --eval and a makefile on its input;
		// SHELL names the program that runs every recipe.
		{"make -f /dev/null --eval='x:;rm -rf /srv' x", unk},
		{"make -E 'x:;rm -rf /srv' x", unk},
		{"make -f - x <<EOF\nx:\n\trm -rf /srv\nEOF", unk},
		{"make SHELL=/bin/rm .SHELLFLAGS=-rf", unk},
		{"make CFLAGS='$(shell rm -rf /srv)'", unk},
		{"make CFLAGS=\"$X\"", unk},
		// More launchers.
		{"arch-chroot /mnt rm -rf /srv", rm},
		{"arch-chroot /mnt", stdin},
		{"jexec -u root 1 rm -rf /srv", rm},
		{"ip vrf exec red rm -rf /srv", rm},
		{"ip -n x vrf exec red rm -rf /srv", rm},
		{"distrobox enter x -- rm -rf /srv", rm},
		{"distrobox-enter -n x -- rm -rf /srv", rm},
		{"distrobox enter x", stdin},
		{"toolbox run rm -rf /srv", rm},
		{"toolbox run -c fedora rm -rf /srv", rm},
		{"toolbox enter", stdin},
		{"vagrant ssh", stdin},
		{"gcloud compute ssh vm", stdin},
		{"mosh host", stdin},
		{"tsh ssh root@host", stdin},
		{"flatpak run --command=rm org.x.App -rf /srv", rm},
		{"flatpak run --command rm org.x.App -rf /srv", rm},
		{"vagrant ssh -c 'rm -rf /srv'", rm},
		{"vagrant ssh web --command 'rm -rf /srv'", rm},
		{"pct exec 101 -- rm -rf /srv", rm},
		{"pct enter 101", stdin},
		{"vzctl exec 101 rm -rf /srv", rm},
		{"vzctl exec2 101 'rm -rf /srv'", rm},
		{"watchexec -- rm -rf /srv", rm},
		{"watchexec -w src 'rm -rf /srv'", rm},
		{"watchexec --shell=none -- rm -rf /srv", rm},
		{"reflex -r x -- rm -rf /srv", rm},
		{"nodemon --exec 'rm -rf /srv'", rm},
		{"mosh host -- rm -rf /srv", rm},
		{"mosh --ssh='ssh -p 2' host rm -rf /srv", rm},
		{"autossh -M 0 -f host rm -rf /srv", rm},
		{"autossh -M 0 -o ProxyCommand='rm -rf /srv' host", rm},
		{"tsh ssh root@host rm -rf /srv", rm},
		{"gcloud compute ssh vm --zone z --command='rm -rf /srv'", rm},
		{"gcloud compute ssh vm --command 'rm -rf /srv'", rm},
		{"az vm run-command invoke -g g -n vm --command-id RunShellScript --scripts 'rm -rf /srv'", rm},
		{"aws ssm send-command --document-name AWS-RunShellScript --parameters commands='rm -rf /srv'", unk},
		{"tsocks rm -rf /srv", rm},
		{"sandbox -X rm -rf /srv", rm},
		{"empty -f rm -rf /srv", rm},
		// Second look: what the first fixes still let through.
		{"scp -R -S /bin/rm a host:b", unk},
		{"scp -s -o ProxyCommand='rm -rf /srv' a host:b", rm},
		{"sftp -s 'sh -c \"rm -rf /srv\"' host", rm},
		{"ssh -F /dev/stdin host ls <<EOF\nProxyCommand rm -rf /srv\nEOF", unk},
		{"RSYNC_RSH='rm -rf /srv' rsync a host:b", rm},
		{"ansible all -a 'cmd=\"rm -rf /srv\"'", unk},
		{"ansible all -m expect -a 'command=\"rm -rf /srv\" responses={}'", unk},
		{"ansible all -m cron -a 'name=x job=\"rm -rf /srv\"'", unk},
		{"salt '*' at.at now 'rm -rf /srv'", unk},
		{"salt '*' cron.set_job root '*' '*' '*' '*' '*' 'rm -rf /srv'", unk},
		{"salt '*' dockermod.run c1 'rm -rf /srv'", unk},
		{"ctr run img id -- rm -rf /srv", rm},
		{"runc exec c1 -- rm -rf /srv", rm},
		{"gdb -batch -ex 'shel rm -rf /srv'", unk},
		{"gdb -batch -ex 'p system(\"rm -rf /srv\")' -p 1", unk},
		{"gdb -batch -ex 'run $(rm -rf /srv)' ./a.out", unk},
		{"gdb -batch -ex 'thread apply all shell rm -rf /srv' -p 1", unk},
		{"gdb -batch -ex 'run /srv' /bin/rm", rm}, // and unknowable
		{"gdb -batch -ex run -x /dev/null /bin/rm", rm},
		{"vim -c '%s/x/\\=system(\"rm -rf /srv\")/' x", unk},
		{"vim -c 'set foldmethod=expr foldexpr=system(\"rm\")' x", unk},
		{"vim -c 'set foldexpr=v:lua.os.execute' x", unk},
		{"awk -f /dev/stdin <<EOF\nBEGIN{system(\"rm -rf /srv\")}\nEOF", unk},
		// Third batch: supervision tools and runners.
		{"ltrace -f rm -rf /srv", rm},
		{"cpulimit -l 50 rm -rf /srv", rm},
		{"cpulimit -l 50 -- rm -rf /srv", rm},
		{"hyperfine 'rm -rf /srv'", rm},
		{"hyperfine -r 1 --prepare 'rm -rf /srv' ls", rm},
		{"hyperfine -L x rm,ls '{x} -rf /srv'", unk},
		{"pueue add rm -rf /srv", rm},
		{"pueue add -d 1m -- 'rm -rf /srv'", rm},
		{"tsp rm -rf /srv", rm},
		{"nq rm -rf /srv", rm},
		{"setuidgid root rm -rf /srv", rm},
		{"s6-setuidgid root rm -rf /srv", rm},
		{"softlimit -m 1000000 rm -rf /srv", rm},
		{"envdir /etc/x rm -rf /srv", rm},
		{"setlock -n /tmp/l rm -rf /srv", rm},
		{"pgrphack rm -rf /srv", rm},
		{"tcpserver -v 0 1234 rm -rf /srv", rm},
		{"systemd-socket-activate -l 1234 rm -rf /srv", rm},
		// Interpreters' inline code that names a way to start a process
		// or to evaluate code built at run time.
		{"python3 -c 'import os; os.system(\"rm -rf /srv\")'", unk},
		{"python3 -Ic 'import subprocess; subprocess.run([\"rm\", \"-rf\", \"/srv\"])'", unk},
		{"python3 -c '__import__(\"o\"+\"s\").system(\"rm -rf /srv\")'", unk},
		{"python3 -m pty rm -rf /srv", unk},
		{"python3 -m timeit -s 'import os' 'os.system(\"rm\")'", unk},
		{"python3 <<EOF\nimport os\nos.system('rm -rf /srv')\nEOF", unk},
		{"perl -e 'system(\"rm -rf /srv\")'", unk},
		{"perl -e '`rm -rf /srv`'", unk},
		{"perl -ne 'print' -e 'qx(rm -rf /srv)'", unk},
		{"perl -pe '$c=q(sys).q(tem(q{rm -rf /srv})); s/^/$c/ee'", unk},
		{"perl -MIPC::Run -e 'run [qw(rm -rf /srv)]'", unk},
		{"ruby -e 'system(\"rm -rf /srv\")'", unk},
		{"ruby -e '%x(rm -rf /srv)'", unk},
		{"ruby -e 'Kernel.send(:sys\"+\"tem, \"rm\")'", unk},
		{"node -e 'require(\"child_process\").execSync(\"rm -rf /srv\")'", unk},
		{"node -p 'process.binding(\"spawn_sync\")'", unk},
		{"nodejs --eval='require(\"child_process\")'", unk},
		{"php -r 'system(\"rm -rf /srv\");'", unk},
		{"php -r '$f=\"sys\".\"tem\"; $f(\"rm -rf /srv\");'", unk},
		{"php -r 'echo `rm -rf /srv`;'", unk},
		{"lua -e 'os.execute(\"rm -rf /srv\")'", unk},
		{"lua5.4 -e 'io.popen(\"rm -rf /srv\")'", unk},
		{"lua -e 'os[\"exe\"..\"cute\"](\"rm -rf /srv\")'", unk},
		{"ruby -e 'open(\"|rm -rf /srv\")'", unk},
		{"node -e 'process.mainModule.require(\"child_process\")'", unk},
		{"python3 -c 'exec(\"import o\"+\"s\")'", unk},
		{"tclsh <<< 'exec rm -rf /srv'", unk},
		{"python3 -c \"$CODE\"", unk},
		// A manifest typed into the line whose containers run a command.
		{"kubectl apply -f - <<EOF\napiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - command: [rm, -rf, /srv]\nEOF", unk},
		{"kubectl create -f - <<< '{\"spec\":{\"containers\":[{\"args\":[\"-c\",\"rm -rf /srv\"]}]}}'", unk},
		{"kubectl patch pod x -p '{\"spec\":{\"containers\":[{\"command\":[\"rm\"]}]}}'", unk},
	} {
		a, err := Analyze(tc.src)
		if err != nil {
			t.Errorf("%q: %v", tc.src, err)
			continue
		}
		got := ""
		switch {
		case slices.Contains(a.Names(), "rm"):
			got = rm
		case len(a.Unknowable) > 0:
			got = unk
		case a.StdinShell:
			got = stdin
		}
		if got != tc.want {
			t.Errorf("%q: got %q, want %q:%s", tc.src, got, tc.want, dump(a))
		}
	}
	// Everyday uses stay plain: nothing unknowable, no shell on stdin.
	for _, src := range []string{
		"time ls", "screen -ls", "screen -wipe", "screen -dmS build make", "tmux new -d -s x top",
		"ls | entr -c make", "runcon -t x_t ls", "capsh --print", "dtach -n /tmp/s top",
		"mpirun -np 4 ./a.out", "srun -N2 hostname", "sbatch job.sh", "pdsh -w h[1-4] uptime",
		"ansible all -m ping", "ansible all -m copy -a 'src=a dest=/tmp/a'", "salt '*' test.ping",
		"salt-call grains.items", "ctr images ls", "ctr run -d docker.io/library/redis:latest r1",
		"runc list", "runc run c1", "kubectl apply -f x.yaml",
		"kubectl apply -f - <<EOF\nkind: ConfigMap\ndata:\n  a: b\nEOF",
		"ssh -o ProxyCommand='ssh -W %h:%p jump' host ls", "ssh -o StrictHostKeyChecking=no host uptime",
		"scp -o ConnectTimeout=5 a host:b", "rsync -e 'ssh -p 2222' -av a host:b", "rsync -avz a host:b",
		"rlwrap python3", "proot -r /x ls", "gdb -p 1", "perf stat ls", "perf report",
		"systemd-cat -t x ls", "socat - TCP:host:80", "nc host 80", "ncat -l 8080",
		"awk '{print $1}' f", "awk -F: '$3 > 1000 {print $1}' /etc/passwd", "awk '/a|b/ {n++} END {print n}' f",
		"awk '$1 == \"x\" || $2 ~ /y|z/' f", "awk '{ a = $1 / 2; print a > \"out\" }' f", "awk 'BEGIN { printf \"%s|%s\\n\", 1, 2 }'",
		"vim +42 x", "vim -c 'set ft=yaml' x", "vim '+/pattern' x", "vi -c 'syntax on' -c 'set nu' x", "vim -c wq x",
		"python3 -c 'import json,sys; print(json.load(sys.stdin)[\"a\"])'", "python3 -c 'print(1+1)'", "python3 -m json.tool x.json",
		"python3 -m http.server 8000", "perl -ne 'print if /foo/' f", "perl -pi -e 's/a/b/g' f", "perl -lane 'print $F[0]' f",
		"ruby -e 'puts 1+1'", "node -e 'console.log(1)'", "node -p 'process.version'", "node -e 'console.log(process.env.HOME)'",
		"python3 -c 'import re; print(re.compile(\"x\").pattern)'", "lua -e 'print(os.time())'", "ruby -rjson -e 'puts JSON.parse(STDIN.read)'",
		"ruby -e 'File.open(\"x\").each { |l| puts l }'", "php -r 'echo preg_replace(\"/a/\", \"b\", \"abc\");'", "php -r 'echo 1;'", "lua -e 'print(1)'", "python3 script.py",
		"make", "make -j4 all", "make -j$(nproc)", "make PREFIX=$HOME/.local install", "make DESTDIR=\"$PWD/out\" install", "make -C src install PREFIX=/usr", "make -f build.mk CC=clang",
		"flatpak run org.x.App", "watchexec -e go -- go test ./...", "tsh ls",
		"gdb -batch -ex bt -ex 'info registers' -ex 'thread apply all bt full' -p 1", "gdb -q -ex run --args ./a.out x", "gdb -batch -ex run -ex bt ./a.out", "hyperfine 'sleep 0.1'", "cpulimit -p 1 -l 10",
		"vim -c '%s/\\s\\+$//e' -c wq x", "vim -c 'set et sw=2 ts=2 ft=yaml' x", "ansible all -a 'uptime'",
		"ansible all -m shell -a 'df -h chdir=/tmp'", "salt '*' cmd.run 'uptime'", "salt '*' pkg.version bash",
	} {
		a, err := Analyze(src)
		if err != nil {
			t.Errorf("%q: %v", src, err)
			continue
		}
		if len(a.Unknowable) > 0 || a.StdinShell {
			t.Errorf("%q: want a plain command (stdin %v):%s", src, a.StdinShell, dump(a))
		}
	}
}

// launcherSeeds are launcher lines whose option scanners the fuzzer starts
// from.
var launcherSeeds = []string{
	"screen -L -Logfile /tmp/l -dmS x -- rm -rf /srv", "screen -d -r x", "tmux new -d bash -c 'rm -rf /srv'",
	"ls | entr -s 'rm /_'", "capsh --shell=/bin/rm == -+ -- -rf /srv", "dtach -A /s -e ^A -r winch rm",
	"abduco -e ^A -A x rm", "mpirun -np 2 a : --mca x y rm -rf /srv", "sbatch --wrap='rm -rf /srv'",
	"pdsh -w h rm", "ansible all -mshell -a'rm -rf /srv'", "salt '*' cmd.run cmd='rm -rf /srv' runas=x",
	"ctr -n x run -t --rm img id rm", "runc --root /r exec -t c1 rm", "systemd-nspawn -q -D /x rm",
	"ssh -o 'ProxyCommand rm -rf /srv' -I x h", "rsync -ave 'rm -rf /srv' a h:b", "bwrap --overlay a b c rm",
	"gdb -ex '!rm -rf /srv' --args rm", "perf sched record rm", "socat EXEC:'rm -rf /srv'!!STDOUT -",
	"nc -lvpe /bin/rm 1", "awk '/[/|]/ { print | \"sh\" }'", "vim -c 'set ft=x | !rm -rf /srv'",
	"make -E 'x:;rm' X!=rm", "machinectl shell --uid=0 .host /bin/rm -rf /srv", "su -s /bin/rm root -c x",
	"kubectl apply -f - <<< 'command: [rm]'", "gcloud compute ssh vm -- -o ProxyCommand=rm rm -rf /srv",
	"mosh --ssh='rm -rf /srv' h -- rm", "flatpak run --command rm app -rf /srv",
}
