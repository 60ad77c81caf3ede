package main

import (
	"os/exec"
	"strings"
	"testing"

	"github.com/bastionhq/bastion/ca"
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
