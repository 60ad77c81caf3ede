package bastion_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
)

// The file-transfer tools run commands of their own: rsync its remote
// shell (-e, RSYNC_RSH), scp and sftp an ssh whose options include
// commands (ProxyCommand, KnownHostsCommand) or another program (-S, sftp
// -D). Run on a target through the bastion, what they run is judged like
// any command; and the stock client's rsync, scp -O and a ControlMaster's
// second session reach a rule as the commands they send. One world, one
// victim recreated per row.
func TestTransferToolsCannotHideACommand(t *testing.T) {
	testenv.Require(t, "rsync")
	testenv.Require(t, "scp")
	e := newEnv(t, envOptions{extraYAML: `
rules:
  - {name: no-rm-rf, on: command, match: {command: "rm -rf *"}, action: block, unknowable: block}
`})
	victim := filepath.Join(t.TempDir(), "victim")
	src := filepath.Join(t.TempDir(), "src")
	os.WriteFile(src, []byte("x\n"), 0o600)
	dst := t.TempDir()
	sshdHost, sshdPort, _ := strings.Cut(e.sshd.Addr, ":")
	rm := "rm -rf " + victim
	// Exec commands run on web1.
	for _, tc := range []struct{ name, cmd string }{
		{"rsync -e", fmt.Sprintf(`rsync -e 'sh -c "%s"' /dev/null h:x`, rm)},
		{"rsync --rsh=", fmt.Sprintf(`rsync --rsh='sh -c "%s"' /dev/null h:x`, rm)},
		// rsync passes the host to the remote shell: to sh -c, it is the script.
		{"rsync -e sh -c with the command as host", fmt.Sprintf(`V=%s rsync -e 'sh -c' /dev/null 'rm -rf $V;h:x'`, victim)},
		{"RSYNC_RSH", fmt.Sprintf(`RSYNC_RSH='sh -c "%s"' rsync /dev/null h:x`, rm)},
		{"scp -o ProxyCommand", fmt.Sprintf(`scp -o ProxyCommand='%s' /dev/null h:x`, rm)},
		{"sftp -o ProxyCommand with a blank", fmt.Sprintf(`sftp -o 'proxycommand %s' h </dev/null`, rm)},
		{"sftp -D", fmt.Sprintf(`sftp -D 'sh -c "%s"' </dev/null`, rm)},
		{"ssh -oProxyCommand", fmt.Sprintf(`ssh -oProxyCommand='%s' h true`, rm)},
		{"ssh -o KnownHostsCommand", fmt.Sprintf(`ssh -o 'KnownHostsCommand=/bin/sh -c "%s"' -o UserKnownHostsFile=/dev/null -o GlobalKnownHostsFile=/dev/null -o BatchMode=yes -p %s %s true`, rm, sshdPort, sshdHost)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.MkdirAll(victim, 0o755)
			r := e.ssh("", "root@web1", tc.cmd)
			if !exists(victim) {
				t.Fatalf("the victim was deleted past rule no-rm-rf: %s", r)
			}
			mustContain(t, "stderr", r.Stderr, "blocked by rule no-rm-rf")
		})
	}
	// A shell reading its script from the session's input by another
	// name: what the input holds is judged as its command lines.
	for _, cmd := range []string{
		"bash 3<&0 /dev/fd/3",
		"bash /dev/./stdin",
		"bash //proc/self/fd/0",
		"bash /dev/fd/../fd/0",
		"bash /proc/$$/fd/0",
		"cd /dev && bash stdin",
		"source /dev/fd/3 3<&0",
	} {
		t.Run(cmd, func(t *testing.T) {
			os.MkdirAll(victim, 0o755)
			r := e.ssh(rm+"\n", "root@web1", cmd)
			if !exists(victim) {
				t.Fatalf("the victim was deleted past rule no-rm-rf: %s", r)
			}
			mustContain(t, "stderr", r.Stderr, "blocked by rule no-rm-rf")
		})
	}
	// The stock client through the bastion.
	sock := e.startMaster(t, e.cfgPath, "root@web1")
	for _, tc := range []struct {
		name string
		argv []string
	}{
		{"rsync --rsync-path", []string{"rsync", "-e", "ssh -F " + e.cfgPath, "--rsync-path=" + rm + "; rsync", src, "root@web1:" + dst + "/"}},
		{"scp -O with a substitution in the remote path", []string{"scp", "-F", e.cfgPath, "-O", src, "root@web1:" + dst + "/$(" + rm + ")"}},
		{"second session of a ControlMaster", []string{"ssh", "-F", e.cfgPath, "-S", sock, "root@web1", rm}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			os.MkdirAll(victim, 0o755)
			r := testenv.Run(t, 60*time.Second, "", tc.argv[0], tc.argv[1:]...)
			if !exists(victim) {
				t.Fatalf("the victim was deleted past rule no-rm-rf: %s", r)
			}
			mustContain(t, "stderr", r.Stderr, "blocked by rule no-rm-rf")
		})
	}
	// rsync itself still works through the bastion.
	r := testenv.Run(t, 60*time.Second, "", "rsync", "-e", "ssh -F "+e.cfgPath, src, "root@web1:"+dst+"/")
	if got, err := os.ReadFile(filepath.Join(dst, "src")); err != nil || string(got) != "x\n" {
		t.Fatalf("rsync through the bastion: %v %q %s", err, got, r)
	}
}
