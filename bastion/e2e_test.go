package bastion_test

import (
	"strings"
	"testing"
)

func TestExecThroughJump(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.ssh("", "root@web1", "printf out-$((6*7)); printf err-1 >&2; exit 3")
	if r.Code != 3 || r.Stdout != "out-42" || !strings.Contains(r.Stderr, "err-1") {
		t.Fatalf("got %s; want exit 3, stdout out-42, stderr err-1", r)
	}
}

func TestAdminWhoamiAndTargets(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.ssh("", "bastion", "whoami")
	if r.Code != 0 {
		t.Fatalf("whoami: %s", r)
	}
	mustContain(t, "whoami", r.Stdout, "alice", "dev", "https://idp.test")
	r = e.ssh("", "bastion", "targets")
	if r.Code != 0 {
		t.Fatalf("targets: %s", r)
	}
	mustContain(t, "targets", r.Stdout, "web1", "echo")
}
