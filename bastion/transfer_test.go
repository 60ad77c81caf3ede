package bastion_test

import (
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/localsvc"
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
  - {name: hold-sftp, on: command, match: {commands: [sftp]}, action: approve, approvers: [approvers], timeout: 60s, roles: [dev]}
  - {name: no-scp, on: command, match: {commands: [scp]}, action: block, roles: [ops]}
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
		{"tar --checkpoint-action=exec", fmt.Sprintf(`tar -cf /dev/null %s --checkpoint=1 --checkpoint-action=exec='%s'`, src, rm)},
		{"tar -I", fmt.Sprintf(`tar -cf /dev/null -I 'sh -c "%s"' %s`, rm, src)},
		{"tar --use-compress-program", fmt.Sprintf(`tar -cf /dev/null --use-compress-program '%s' %s`, rm, src)},
		{"tar --to-command on a piped archive", fmt.Sprintf(`tar -cf - %s | tar -xf - --to-command='%s'`, src, rm)},
		{"tar old-style options", fmt.Sprintf(`tar cIf 'sh -c "%s"' /dev/null %s`, rm, src)},
		// ssh reading its configuration from the session's input.
		{"ssh -F /dev/stdin", `printf 'Host *\n ProxyCommand ` + rm + `\n' | ssh -F /dev/stdin h true`},
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
	// name, or sourcing it at start-up (BASH_ENV, ENV, --rcfile): what
	// the input holds is judged as its command lines.
	for _, cmd := range []string{
		"BASH_ENV=/dev/stdin bash -c true",
		"export BASH_ENV=/dev/fd/0; bash -c true",
		"ENV=/dev/stdin sh -i -c true",
		"bash --rcfile /dev/stdin -i /dev/null",
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
		{"scp -O with backquotes in the remote path", []string{"scp", "-F", e.cfgPath, "-O", src, "root@web1:" + dst + "/`" + rm + "`"}},
		{"scp -O with a newline in the remote path", []string{"scp", "-F", e.cfgPath, "-O", src, "root@web1:" + dst + "/x\n" + rm}},
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
	// Forwards and agents inside the hop to web1 are refused: a unix
	// socket on the target (docker's, PostgreSQL's) is never reached.
	sockDir, _ := os.MkdirTemp("", "uds")
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	uds, err := net.Listen("unix", filepath.Join(sockDir, "docker.sock"))
	if err != nil {
		t.Fatal(err)
	}
	defer uds.Close()
	reached := make(chan struct{}, 1)
	go func() {
		if c, err := uds.Accept(); err == nil {
			reached <- struct{}{}
			c.Close()
		}
	}()
	lport := testenv.FreePort(t)
	fwd := exec.Command("ssh", "-F", e.cfgPath, "-N", "-L", fmt.Sprintf("127.0.0.1:%d:%s", lport, uds.Addr()), "root@web1")
	if err := fwd.Start(); err != nil {
		t.Fatal(err)
	}
	testenv.WaitFor(t, 20*time.Second, "ssh -L listener", func() bool {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", lport), time.Second)
		if err == nil {
			c.Write([]byte("x"))
			c.Close()
		}
		return err == nil
	})
	for _, args := range [][]string{
		{"-o", "ExitOnForwardFailure=yes", "-R", "127.0.0.1:0:" + e.echo, "root@web1", "true"},
		{"-o", "ExitOnForwardFailure=yes", "-R", filepath.Join(sockDir, "r.sock") + ":" + e.echo, "root@web1", "true"},
	} {
		if r := e.ssh("", args...); r.Code == 0 {
			t.Errorf("ssh %v: %s", args, r) // the listener was granted
		}
	}
	fwd.Process.Kill()
	fwd.Wait()
	select {
	case <-reached:
		t.Error("a -L forward reached a unix socket on the target")
	case <-time.After(time.Second):
	}
	if exists(filepath.Join(sockDir, "r.sock")) {
		t.Error("a -R forward made a unix socket on the target")
	}
	r := e.ssh("", "-A", "-o", "ForwardAgent=yes", "-X", "root@web1", "echo agent=$SSH_AUTH_SOCK display=$DISPLAY")
	if strings.Contains(r.Stdout, "agent=/") || strings.Contains(r.Stdout, "display=l") {
		t.Errorf("an agent or X11 forward reached the target: %s", r)
	}
	// A held sftp session (scp's default mode too) is held before the
	// target starts its sftp-server: nothing it sends is written, and a
	// denial ends it.
	t.Run("held sftp", func(t *testing.T) {
		bobCfg := e.bobConfig(t)
		batch := filepath.Join(t.TempDir(), "batch")
		os.WriteFile(batch, []byte(fmt.Sprintf("put %s %s/held\n", src, dst)), 0o600)
		var stderr testenv.SyncBuffer
		cmd := exec.Command("sftp", "-F", e.cfgPath, "-b", batch, "root@web1")
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		var id string
		testenv.WaitFor(t, 20*time.Second, "the approval request", func() bool {
			m := requestRE.FindStringSubmatch(stderr.String())
			if m != nil {
				id = m[1]
			}
			return m != nil
		})
		time.Sleep(300 * time.Millisecond)
		if exists(filepath.Join(dst, "held")) || strings.Contains(e.sshd.Log(), "subsystem 'sftp'") {
			t.Fatalf("the held sftp session reached the target:\n%s", e.sshd.Log())
		}
		if r := e.as(bobCfg, "bastion", "deny", id); r.Code != 0 {
			t.Fatalf("deny: %s", r)
		}
		err := cmd.Wait()
		if err == nil || exists(filepath.Join(dst, "held")) {
			t.Fatalf("a denied sftp session wrote the file: %v %s", err, stderr.String())
		}
	})
	// scp speaks sftp by default (OpenSSH 9.0): a rule naming scp holds
	// the sftp subsystem too, since the bastion cannot tell them apart.
	t.Run("scp default mode under a rule naming scp", func(t *testing.T) {
		carol := e.userKey("carol", ca.Identity{User: "carol", Issuer: "https://idp.test", Subject: "u-carol", Groups: []string{"ops"}}, 0)
		cfg := e.writeSSHConfig("carol", carol)
		r := testenv.Run(t, 60*time.Second, "", "scp", "-F", cfg, src, "root@web1:"+dst+"/via-scp")
		if exists(filepath.Join(dst, "via-scp")) {
			t.Fatalf("scp (sftp mode) wrote the file past rule no-scp: %s", r)
		}
		mustContain(t, "scp stderr", r.Stderr, "blocked by rule no-scp")
		// sftp -s PATH runs the sftp server as an exec: the same session.
		server := localsvc.SFTPServer()
		if !strings.HasPrefix(server, "/") {
			return
		}
		batch := filepath.Join(t.TempDir(), "batch")
		os.WriteFile(batch, []byte(fmt.Sprintf("put %s %s/via-server\n", src, dst)), 0o600)
		r = testenv.Run(t, 60*time.Second, "", "sftp", "-F", cfg, "-s", server, "-b", batch, "root@web1")
		if exists(filepath.Join(dst, "via-server")) {
			t.Fatalf("sftp -s %s wrote the file past rule no-scp: %s", server, r)
		}
		mustContain(t, "sftp stderr", r.Stderr, "blocked by rule no-scp")
	})
	// rsync itself still works through the bastion.
	r = testenv.Run(t, 60*time.Second, "", "rsync", "-e", "ssh -F "+e.cfgPath, src, "root@web1:"+dst+"/")
	if got, err := os.ReadFile(filepath.Join(dst, "src")); err != nil || string(got) != "x\n" {
		t.Fatalf("rsync through the bastion: %v %q %s", err, got, r)
	}
}
