package main

import (
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// displayYAML makes carol an approver of web1 and holds touch .../approve*.
const displayYAML = `  - {name: approvers, users: [carol], approve: ["web*"]}
rules:
  - {name: held, on: command, match: {regex: "^touch .*/approve"}, action: approve, approvers: [approvers], timeout: 60s}
`

// The approvals page shows a held command as it runs, not as the browser's
// bidirectional algorithm reorders it ("Trojan source"): with U+202E and
// isolates, `touch A ‮⁦; touch B ⁩ ⁦# ok⁩` (B runs) draws as
// `touch A # ok ; touch B`, the second command seemingly in a comment.
// Controls and invisible characters are shown as escapes.
func TestConsoleShowsHeldCommandAsItRuns(t *testing.T) {
	root := startChromium(t)
	w := newWorldWith(t, displayYAML)
	sshCfg := w.loginAlice(t)
	base := w.url()
	carol := newBrowser(t, root, "carol")
	carol.signIn(base, "u-carol")

	dir, err := os.MkdirTemp("", "d") // short: the command fits on one line
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	shown := filepath.Join(dir, "approve-ok")
	hidden := filepath.Join(dir, "evil")
	command := "touch " + shown + " \u202e\u2066; touch " + hidden + " \u2069 \u2066# ok\u2069"
	carol.run("approvals", chromedp.Navigate(base+"/approvals"), chromedp.WaitVisible(chromedp.CSS(`#requests`)))
	cmd := exec.Command("ssh", "-F", sshCfg, "root@web1", command)
	out := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	carol.waitText("#requests", "touch "+shown)

	// Where the browser draws the ';' that starts the second command and
	// the '#' after it.
	pos := eval[[]float64](carol, `(() => {
		const pre = document.querySelector('section.request pre.cmd');
		const text = pre.firstChild;
		const at = (ch) => { const i = text.data.indexOf(ch); if (i < 0) return -1;
			const r = document.createRange(); r.setStart(text, i); r.setEnd(text, i+1); return r.getBoundingClientRect().left; };
		return [at(';'), at('#')];
	})()`)
	shownText := carol.text("section.request pre.cmd")
	t.Logf("the approver sees %q; ';' at x=%v, '#' at x=%v", shownText, pos[0], pos[1])
	if pos[0] > pos[1] {
		carol.screenshot("reordered")
		t.Errorf("the page draws the '#' left of the ';' that precedes it: the command shows reordered (%q)", shownText)
	}
	for _, r := range shownText {
		if r == '\u202e' || r == '\u2066' || r == '\u2069' {
			t.Errorf("the page shows the command with its bidirectional controls (%U) unescaped: %q", r, shownText)
			break
		}
	}
	if !strings.Contains(shownText, `\u202e\u2066; touch `+hidden+` \u2069 \u2066# ok\u2069`) {
		t.Errorf("the page does not name the invisible characters: %q", shownText)
	}

	// Approved, both commands run; the session's page shows its command
	// and its markers (drawn by the page's script) the same way.
	id := eval[string](carol, `document.querySelector('section.request').dataset.request`)
	carol.run("approve", chromedp.Click(chromedp.CSS(`#request-`+id+` button.approve`)), chromedp.WaitVisible(chromedp.CSS(`#requests`)))
	done := make(chan error, 1)
	go func() { done <- cmd.Wait() }()
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("the held command did not end after approval:\n%s", out.String())
	}
	if !exists(hidden) {
		t.Errorf("%s was not created", hidden)
	}
	var sid string
	testenv.WaitFor(t, 20*time.Second, "the session ended", func() bool {
		list, _ := w.app.Store.Sessions(recorder.SessionFilter{})
		for _, s := range list {
			if strings.Contains(s.Command, "approve-ok") && s.Status == recorder.StatusEnded {
				sid = s.ID
			}
		}
		return sid != ""
	})
	alice := newBrowser(t, root, "alice") // the session is hers
	alice.signIn(base, "u-alice")
	alice.run("the session", chromedp.Navigate(base+"/sessions/"+sid), chromedp.WaitVisible(chromedp.CSS(`body[data-ready]`)),
		chromedp.WaitVisible(chromedp.CSS(`button.marker`)))
	for what, sel := range map[string]string{"command": ".info .cmd", "markers": "#markers"} {
		got := alice.text(sel)
		if strings.ContainsAny(got, "\u202e\u2066\u2069") || !strings.Contains(got, `\u202e`) {
			t.Errorf("the session page's %s: %q", what, got)
		}
	}
	_ = fmt.Sprint
}

// Nobody approves their own request, from a second account either: the
// bastion names carol+2@example.com "carol" (sub-addressing names the same
// person), the same login, the same sessions, the same roles by name, so an
// approval from that account is carol approving herself.
func TestSelfApprovalFromSecondAccount(t *testing.T) {
	w := newWorldWith(t, displayYAML)
	sshCfg := w.loginAs(t, "u-carol") // carol (dev) asks
	// carol+2: another account at the same IdP, another subject.
	second := w.another()
	claims, err := w.idp.IDTokenClaims("u-carol", "bastion")
	if err != nil {
		t.Fatal(err)
	}
	claims["sub"], claims["email"] = "u-carol-second", "carol+2@example.com"
	tok, err := w.idp.MintIDToken(claims)
	if err != nil {
		t.Fatal(err)
	}
	if r := second.run([]string{"T=" + tok}, "login", "--bastion", w.url(), "--id-token-env", "T"); r.Code != 0 {
		t.Fatalf("login as the second account: %s", r)
	}
	if r := second.run(nil, "whoami"); !strings.Contains(r.Stdout, "carol") {
		t.Fatalf("the second account is not carol: %s", r)
	}

	dir, err := os.MkdirTemp("", "d")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	target := filepath.Join(dir, "approve-self")
	cmd := exec.Command("ssh", "-F", sshCfg, "root@web1", "touch "+target)
	out := &testenv.SyncBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill() })
	var id string
	testenv.WaitFor(t, 20*time.Second, "the request", func() bool {
		m := regexp.MustCompile(`request ([0-9a-f]{8})`).FindStringSubmatch(out.String())
		if m != nil {
			id = m[1]
		}
		return id != ""
	})
	r := second.run(nil, "approve", id)
	if r.Code == 0 {
		cmd.Wait()
		t.Fatalf("carol's second account approved her request (%s exists: %v): %s", target, exists(target), r)
	}
	if !strings.Contains(r.Stderr, "own request") {
		t.Errorf("approve from the second account: %s", r)
	}
}

// A click lands on the request it was aimed at: when a request above goes
// (cancelled by its requester, decided by someone else), the page does not
// move the next one under the approver's pointer.
func TestConsoleApprovalsDoNotShiftUnderThePointer(t *testing.T) {
	root := startChromium(t)
	w := newWorldWith(t, displayYAML)
	sshCfg := w.loginAlice(t)
	base := w.url()
	carol := newBrowser(t, root, "carol")
	carol.signIn(base, "u-carol")
	carol.run("approvals", chromedp.Navigate(base+"/approvals"), chromedp.WaitVisible(chromedp.CSS(`#requests`)))

	dir, err := os.MkdirTemp("", "d")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	os.Chmod(dir, 0o777)
	hold := func(name string) *exec.Cmd {
		cmd := exec.Command("ssh", "-F", sshCfg, "root@web1", "touch "+filepath.Join(dir, name))
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
		carol.waitText("#requests", name)
		return cmd
	}
	benign := hold("approve-benign")
	hold("approve-other")
	id := eval[string](carol, `document.querySelector('section.request').dataset.request`)
	xy := eval[[]float64](carol, `(() => { const r = document.querySelector('#request-`+id+` button.approve').getBoundingClientRect();
		return [r.left + r.width/2, r.top + r.height/2]; })()`)

	// The benign request goes while carol aims at its Approve button.
	benign.Process.Kill()
	testenv.WaitFor(t, 20*time.Second, "the page to update", func() bool {
		return eval[bool](carol, `(() => { const b = document.querySelector('#request-`+id+` button.approve'); return !b || b.disabled; })()`)
	})
	carol.run("click where Approve was", chromedp.MouseClickXY(xy[0], xy[1]))
	time.Sleep(2 * time.Second)
	if exists(filepath.Join(dir, "approve-other")) {
		t.Fatal("the click aimed at one request approved the other, which moved under the pointer")
	}
}
