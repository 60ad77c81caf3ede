package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
)

// TestApprovalForgedInTheStore: with the store in PostgreSQL, a held
// command waits for its row in bastion_approvals to be decided. Someone who
// can write to the bastion's database (its DBA, a leaked DSN) but holds no
// approver role (here: alice herself, the requester) sets the row to
// approved with SQL. The command must not run: a decision counts only when
// a replica's approver made it (signed with the cluster's seal key over the
// very request that was held).
func TestApprovalForgedInTheStore(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	t.Setenv("BASTION_TEST_STORE_DSN", pg.StoreDSN(t, "bastion"))
	w := newWorldWith(t, clusterYAML)
	alice := w.loginDirect(t, "u-alice")
	dir := t.TempDir()
	p := testenv.StartPTY(t, 100, 30, "ssh", "-F", alice, "root@web1", "touch "+filepath.Join(dir, "approve-forged")+" && echo ran-forged")
	m := heldRE.FindStringSubmatch(p.Expect("Ctrl-C cancels", 20*time.Second))
	if m == nil {
		t.Fatal("no request ID in the hold message")
	}
	pg.ExecIn(t, "bastion", "UPDATE bastion_approvals SET outcome = 'approved', decided_by = 'carol', note = '', decided_at = now() WHERE id = '"+m[1]+"'")
	out := p.Expect("is not signed by a bastion for this request", 20*time.Second)
	p.Wait(20 * time.Second)
	if strings.Contains(out, "ran-forged") {
		t.Errorf("the command ran on a decision written into the store: %q", out)
	}
	if _, err := os.Stat(filepath.Join(dir, "approve-forged")); err == nil {
		t.Error("the held command ran on a decision written into the store")
	}
	if r := w.run(nil, "audit", "--json"); !strings.Contains(r.Stdout, "command.deny") || strings.Contains(r.Stdout, "command.approve") {
		t.Errorf("the audit log does not show the refusal alone: %s", r)
	}
}
