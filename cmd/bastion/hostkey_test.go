package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/testenv"
)

// TestHostKeyFromKeyscan: the README's way to find a target's key to pin
// (ssh-keyscan, first field cut) gives exactly the line host_key takes.
func TestHostKeyFromKeyscan(t *testing.T) {
	testenv.Require(t, "ssh-keyscan")
	keys, err := ca.LoadOrCreateKeys(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	sshd := testenv.StartSSHD(t, testenv.SSHDOptions{TrustedUserCAKeys: keys.TargetCALine()})
	// As in the README, with the test sshd's port.
	line := "ssh-keyscan -t ed25519 -p " + itoa(sshd.Port) + " 127.0.0.1 2>/dev/null | cut -d' ' -f2-"
	out, err := exec.Command("sh", "-c", line).Output()
	if err != nil {
		t.Fatalf("%s: %v", line, err)
	}
	if got := strings.TrimSpace(string(out)); got != sshd.HostKeyLine {
		t.Fatalf("%s printed %q, want the host_key line %q", line, got, sshd.HostKeyLine)
	}
}

// TestTargetsHostKey: `bastion targets hostkey NAME` prints the key a real
// sshd offers (the one ssh-keygen reads from its key file), as the
// host_key line, and pins nothing; that line, pasted into the target's
// config, lets a session through. Non-SSH targets and targets the caller
// may not reach are refused.
func TestTargetsHostKey(t *testing.T) {
	w := newWorldTargets(t, "", `{name: websink, kind: tcp, address: "127.0.0.1:9"}`,
		`{name: lab1, kind: ssh, address: "127.0.0.1:9", trust_on_first_use: true}`)
	// web2 is the same sshd, trusted on first use: the probe must not pin.
	web1 := fmt.Sprintf(`host_key: %q}`+"\n", w.sshd.HostKeyLine)
	orig, err := os.ReadFile(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	reload := func(web2 string) {
		t.Helper()
		text := strings.Replace(string(orig), web1, web1+"  - {name: web2, kind: ssh, address: \""+w.sshd.Addr+"\", "+web2+"}\n", 1)
		os.WriteFile(w.cfgPath, []byte(text), 0o600)
		cfg, err := config.Load(w.cfgPath)
		if err != nil {
			t.Fatalf("config with web2 %s: %v", web2, err)
		}
		if err := w.app.Reload(cfg); err != nil {
			t.Fatal(err)
		}
	}
	reload("trust_on_first_use: true")
	aliceCfg := w.loginAlice(t)

	r := w.run(nil, "targets", "hostkey", "web2")
	if r.Code != 0 {
		t.Fatalf("targets hostkey web2: %s", r)
	}
	var pin string
	for _, line := range strings.Split(r.Stdout, "\n") {
		if strings.HasPrefix(line, "host_key: ") {
			pin = strings.TrimPrefix(line, "host_key: ")
		}
	}
	if want := fmt.Sprintf("%q", w.sshd.HostKeyLine); pin != want {
		t.Fatalf("printed pin %s, want %s:\n%s", pin, want, r.Stdout)
	}
	// The fingerprint is the one the target's own ssh-keygen shows.
	fp, err := exec.Command("ssh-keygen", "-lf", filepath.Join(w.sshd.Dir, "ssh_host_ed25519_key")).Output()
	if err != nil {
		t.Fatal(err)
	}
	if f := strings.Fields(string(fp)); len(f) < 2 || !strings.Contains(r.Stdout, " "+f[1]) {
		t.Fatalf("ssh-keygen says %q; the command printed:\n%s", fp, r.Stdout)
	}
	if _, pinned, err := w.app.Store.PinnedHostKey("web2"); err != nil || pinned {
		t.Fatalf("the probe pinned a key (%v, %v)", pinned, err)
	}
	if r := w.run(nil, "targets", "hostkey", "web1", "--json"); r.Code != 0 ||
		!strings.Contains(r.Stdout, `"pinned":"matches"`) || !strings.Contains(r.Stdout, `"host_key":`+fmt.Sprintf("%q", w.sshd.HostKeyLine)) {
		t.Fatalf("targets hostkey web1 --json: %s", r)
	}

	// Refusals.
	if r := w.run(nil, "targets", "hostkey", "websink"); r.Code != 1 || !strings.Contains(r.Stderr, "websink is a tcp target: only SSH targets have a host key") {
		t.Fatalf("a tcp target: %s", r)
	}
	carol := w.another() // dev, not an auditor: web* only
	carol.loginAs(t, "u-carol")
	if r := carol.run(nil, "targets", "hostkey", "lab1"); r.Code != 1 || !strings.Contains(r.Stderr, `no target "lab1" that you may reach`) {
		t.Fatalf("a target carol may not reach: %s", r)
	}
	if r := carol.run(nil, "targets", "hostkey", "web2"); r.Code != 0 || !strings.Contains(r.Stdout, pin) {
		t.Fatalf("a target carol may reach: %s", r)
	}
	if r := w.run(nil, "targets", "hostkey"); r.Code != 2 || !strings.Contains(r.Stderr, "Usage: bastion targets hostkey NAME") {
		t.Fatalf("no name: %s", r)
	}

	// The printed line, pasted as web2's pin, lets a session through.
	reload("host_key: " + pin)
	if out, err := exec.Command("ssh", "-F", aliceCfg, "root@web2", "echo pinned-ok").CombinedOutput(); err != nil || !strings.Contains(string(out), "pinned-ok") {
		t.Fatalf("a session to web2 with the printed pin: %v\n%s", err, out)
	}
	if _, pinned, _ := w.app.Store.PinnedHostKey("web2"); pinned {
		t.Fatal("a key was pinned in the store")
	}
}
