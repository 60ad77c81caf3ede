package main

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/demo"
	"github.com/bastionhq/bastion/internal/devidp"
	"github.com/bastionhq/bastion/internal/login"
	"github.com/bastionhq/bastion/internal/testenv"
)

// TestPerBastionLogins: alice logs in to two demos (two bastions with
// their own CAs); the second login leaves the first working (its ssh_config,
// key and known_hosts), --bastion picks either, the default is the last,
// and an expired login says to run `bastion login` before ssh tries.
func TestPerBastionLogins(t *testing.T) {
	testenv.Require(t, "ssh")
	home := t.TempDir()
	env := []string{"BASTION_TEST_AS_CLI=1", "HOME=" + home, "XDG_CONFIG_HOME=" + filepath.Join(home, ".config"), "SSH_AUTH_SOCK=", "BROWSER=", "DISPLAY=", "WAYLAND_DISPLAY="}
	cli := func(args ...string) (string, string, int) {
		t.Helper()
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), env...)
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		err := cmd.Run()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return out.String(), errb.String(), code
	}
	sshRun := func(cfg string, args ...string) (string, int) {
		t.Helper()
		cmd := exec.Command("ssh", append([]string{"-F", cfg, "-o", "BatchMode=yes"}, args...)...)
		cmd.Env = append(os.Environ(), env...)
		out, err := cmd.CombinedOutput()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return string(out), code
	}
	type demoLogin struct {
		d      *demo.Demo
		sshCfg string
	}
	var demos []demoLogin
	for i := 0; i < 2; i++ {
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		d, err := demo.Start(ctx, demo.Config{Dir: t.TempDir(), SSHAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", IssuerAddr: "127.0.0.1:0", NoPostgres: true})
		cancel()
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { d.Close(context.Background()) })

		// Log in with the device flow, clicking alice at the identity provider.
		cmd := exec.Command(os.Args[0], "login", "--bastion", d.BastionURL, "--device")
		cmd.Env = append(os.Environ(), env...)
		var out testenv.SyncBuffer
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		m := waitMatch(t, &out, regexp.MustCompile(`confirm the code (\S+)`))
		actx, acancel := context.WithTimeout(context.Background(), 30*time.Second)
		if err := devidp.ApproveDeviceAt(actx, d.IssuerURL, m[1], "alice"); err != nil {
			t.Fatal(err)
		}
		acancel()
		if err := cmd.Wait(); err != nil {
			t.Fatalf("login: %v\n%s", err, out.String())
		}
		if s := out.String(); !strings.Contains(s, "Logged in to "+d.BastionURL+" as alice") || strings.Contains(s, "~/.ssh/config") || !strings.Contains(s, "ssh -F ") {
			t.Errorf("login output: %s", s)
		}
		cfg, errOut, code := cli("ssh-config")
		if code != 0 {
			t.Fatalf("ssh-config: %s", errOut)
		}
		if !strings.Contains(cfg, "Match host 127.0.0.1 exec") {
			t.Errorf("ssh-config has no login check:\n%s", cfg)
		}
		dl := demoLogin{d: d, sshCfg: filepath.Join(d.Dir, "ssh_config")}
		os.WriteFile(dl.sshCfg, []byte(cfg), 0o600)
		demos = append(demos, dl)
	}
	// Both ssh_configs keep working: the second login did not replace the
	// first one's key, certificate or known_hosts.
	for i, dl := range demos {
		if out, code := sshRun(dl.sshCfg, "demo@"+demo.TargetName, "echo through-demo-$((40+"+itoa(i)+"))"); code != 0 || !strings.Contains(out, "through-demo-4"+itoa(i)) {
			t.Errorf("demo %d after both logins: exit %d\n%s", i, code, out)
		}
	}
	// The default is the last login; --bastion picks by URL or host:port.
	base := filepath.Join(home, ".config", "bastion")
	if cur := login.Current(base); cur != demos[1].d.BastionURL {
		t.Errorf("default %q, want the last login %q", cur, demos[1].d.BastionURL)
	}
	if out, errOut, code := cli("whoami", "--bastion", strings.TrimPrefix(demos[0].d.BastionURL, "http://")); code != 0 || !strings.Contains(out, "alice") {
		t.Errorf("whoami --bastion HOST:PORT of the first: exit %d %q %q", code, out, errOut)
	}
	if out, _, code := cli("login", "--list"); code != 0 || !strings.Contains(out, demos[0].d.BastionURL) || !strings.Contains(out, demos[1].d.BastionURL) {
		t.Errorf("login --list: %q", out)
	}
	if _, errOut, code := cli("whoami", "--bastion", "https://elsewhere.example.com"); code != 1 || !strings.Contains(errOut, "not logged in to https://elsewhere.example.com") {
		t.Errorf("a bastion never logged in to: exit %d %q", code, errOut)
	}
	// An expired login: ssh says to run bastion login, not only
	// "Permission denied (publickey)".
	dir, _ := login.Dir(base, demos[0].d.BastionURL)
	st, err := login.LoadState(dir)
	if err != nil {
		t.Fatal(err)
	}
	expire(t, dir, st)
	// (Only the state says so here; the bastion would refuse the certificate.)
	out, _ := sshRun(demos[0].sshCfg, "demo@"+demo.TargetName, "true")
	if !strings.Contains(out, "expired") || !strings.Contains(out, "bastion login --bastion "+demos[0].d.BastionURL) {
		t.Errorf("ssh with an expired login:\n%s", out)
	}
	if _, errOut, code := cli("login", "--check", "--bastion", demos[0].d.BastionURL); code != 1 || !strings.Contains(errOut, "expired") {
		t.Errorf("login --check of an expired login: exit %d %q", code, errOut)
	}
	if _, errOut, code := cli("login", "--check"); code != 0 {
		t.Errorf("login --check of the valid default: exit %d %q", code, errOut)
	}
}

// expire rewrites a login's state as if its certificate had expired.
func expire(t *testing.T, dir string, st *login.State) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "state.json"))
	if err != nil {
		t.Fatal(err)
	}
	b = bytes.Replace(b, []byte(st.ValidBefore.Format(time.RFC3339Nano)), []byte(time.Now().Add(-time.Minute).UTC().Format(time.RFC3339Nano)), 1)
	if err := os.WriteFile(filepath.Join(dir, "state.json"), b, 0o600); err != nil {
		t.Fatal(err)
	}
	if st2, _ := login.LoadState(dir); st2 == nil || !st2.ValidBefore.Before(time.Now()) {
		t.Fatal("could not expire the login state")
	}
}

// waitMatch waits until the output matches re and returns the submatches.
func waitMatch(t *testing.T, out *testenv.SyncBuffer, re *regexp.Regexp) []string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		if m := re.FindStringSubmatch(out.String()); m != nil {
			return m
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no %q within 30s:\n%s", re, out.String())
	return nil
}
