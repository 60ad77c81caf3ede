package main

import (
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
)

// TestApprovalForgedInTheStore: with the store in PostgreSQL, a held
// command waits for its row in bastion_approvals to be decided. Someone who
// can write to the bastion's database (its DBA, a leaked DSN) but holds no
// approver role (here: alice herself, the requester) must not get a held
// command run by editing the table.
func TestApprovalForgedInTheStore(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	t.Setenv("BASTION_TEST_STORE_DSN", pg.StoreDSN(t, "bastion"))
	w := newWorldWith(t, clusterYAML)
	alice := w.loginDirect(t, "u-alice")
	carol := w.another()
	carol.loginDirect(t, "u-carol")
	hold := func(t *testing.T, name string) (*testenv.PTY, string, string) {
		dir := t.TempDir()
		p := testenv.StartPTY(t, 100, 30, "ssh", "-F", alice, "root@web1", "touch "+filepath.Join(dir, name)+" && echo ran-"+name)
		m := heldRE.FindStringSubmatch(p.Expect("Ctrl-C cancels", 20*time.Second))
		if m == nil {
			t.Fatal("no request ID in the hold message")
		}
		return p, m[1], filepath.Join(dir, name)
	}

	// The row set to approved with SQL: a decision counts only when a
	// replica's approver made it (signed with the cluster's seal key over
	// the very request that was held).
	t.Run("outcome written with SQL", func(t *testing.T) {
		p, id, file := hold(t, "approve-forged")
		pg.ExecIn(t, "bastion", "UPDATE bastion_approvals SET outcome = 'approved', decided_by = 'carol', note = '', decided_at = now() WHERE id = '"+id+"'")
		out := p.Expect("is not signed by a bastion for this request", 20*time.Second)
		p.Wait(20 * time.Second)
		if strings.Contains(out, "ran-approve-forged") {
			t.Errorf("the command ran on a decision written into the store: %q", out)
		}
		if _, err := os.Stat(file); err == nil {
			t.Error("the held command ran on a decision written into the store")
		}
		if r := w.run(nil, "audit", "--json"); !strings.Contains(r.Stdout, "command.deny") || strings.Contains(r.Stdout, "command.approve") {
			t.Errorf("the audit log does not show the refusal alone: %s", r)
		}
	})

	// The request swapped under the approver: the row shows carol an
	// innocent command, and a trigger puts the held one back as she claims
	// it. What she approves must be what she was shown, or nothing: before,
	// her replica signed the row as it read it under the claim, and alice's
	// held command ran on carol's approval of another (audited as that
	// other one).
	t.Run("request swapped under the approver", func(t *testing.T) {
		p, id, file := hold(t, "approve-swapped")
		pg.ExecIn(t, "bastion", `
CREATE TABLE swap (id text, real bytea);
INSERT INTO swap SELECT id, request FROM bastion_approvals WHERE id = '`+id+`';
UPDATE bastion_approvals SET request = convert_to(replace(convert_from(request, 'UTF8'), 'touch ', 'ls '), 'UTF8') WHERE id = '`+id+`';
CREATE FUNCTION swap_back() RETURNS trigger LANGUAGE plpgsql SECURITY DEFINER AS $$
BEGIN
	IF NEW.claim IS DISTINCT FROM OLD.claim THEN
		NEW.request := (SELECT real FROM swap WHERE swap.id = NEW.id);
	END IF;
	RETURN NEW;
END$$;
CREATE TRIGGER swap_back BEFORE UPDATE ON bastion_approvals FOR EACH ROW EXECUTE FUNCTION swap_back();`)
		defer pg.ExecIn(t, "bastion", "DROP TRIGGER swap_back ON bastion_approvals")
		r := carol.run(nil, "requests", "--json")
		var shown struct{ Command string }
		for _, line := range strings.Split(r.Stdout, "\n") {
			if strings.Contains(line, id) {
				json.Unmarshal([]byte(line), &shown)
			}
		}
		if !strings.HasPrefix(shown.Command, "ls ") {
			t.Fatalf("carol is not shown the swapped request: %s", r)
		}
		a := carol.run(nil, "approve", id)
		t.Logf("carol approves what she was shown (%q): %s", shown.Command, a)
		if a.Code == 0 || !strings.Contains(a.Stderr, "changed as it was decided") {
			t.Errorf("carol's approval of a request swapped under her: %s %s", a, a.Stderr)
		}
		time.Sleep(time.Second) // an approval would have run it by now
		p.Send("\x03")          // nothing else will: cancel
		p.Wait(30 * time.Second)
		out := p.Output()
		if strings.Contains(out, "ran-approve-swapped") {
			t.Errorf("the held command ran on an approval of another one: %q", out)
		}
		if _, err := os.Stat(file); err == nil {
			t.Error("the held command ran on an approval of another one")
		}
		if r := w.run(nil, "audit", "--json"); strings.Contains(r.Stdout, "command.approve") {
			t.Errorf("the audit log shows an approval: %s", r)
		}
	})

	// The request swapped between the page and the click: carol's console
	// page shows the innocent one, the held one is put back before she
	// clicks Approve. Her click approves what the page showed or nothing.
	t.Run("request swapped between the page and the click", func(t *testing.T) {
		p, id, file := hold(t, "approve-page")
		pg.ExecIn(t, "bastion", `CREATE TABLE swap_page AS SELECT id, request FROM bastion_approvals WHERE id = '`+id+`';
UPDATE bastion_approvals SET request = convert_to(replace(convert_from(request, 'UTF8'), 'touch ', 'ls '), 'UTF8') WHERE id = '`+id+`'`)
		page := w.consolePage(t, "u-carol")
		body := page.get("/approvals")
		shown := regexp.MustCompile(`(?s)id="request-` + id + `".*?name="shown" value="([0-9a-f]+)"`).FindStringSubmatch(body)
		if !strings.Contains(body, "ls /") || shown == nil {
			t.Fatalf("carol's page does not show the swapped request with its form:\n%s", body)
		}
		pg.ExecIn(t, "bastion", `UPDATE bastion_approvals a SET request = s.request FROM swap_page s WHERE a.id = s.id`)
		if code, out := page.post("/approvals/"+id+"/approve", csrfOf(t, body), "shown", shown[1]); code != http.StatusConflict {
			t.Errorf("approving what the page showed, after the swap back: %d\n%s", code, out)
		}
		time.Sleep(time.Second)
		if _, err := os.Stat(file); err == nil {
			t.Fatal("the held command ran on an approval of what the page showed instead")
		}
		// Reloaded, the page shows the held command, and approving it runs it.
		body = page.get("/approvals")
		shown = regexp.MustCompile(`(?s)id="request-` + id + `".*?name="shown" value="([0-9a-f]+)"`).FindStringSubmatch(body)
		if !strings.Contains(body, "touch /") || shown == nil {
			t.Fatalf("the reloaded page does not show the held request:\n%s", body)
		}
		if code, out := page.post("/approvals/"+id+"/approve", csrfOf(t, body), "shown", shown[1]); code != http.StatusSeeOther {
			t.Fatalf("approving the held command as shown: %d\n%s", code, out)
		}
		p.Expect("ran-approve-page", 20*time.Second)
		p.Wait(20 * time.Second)
	})
}
