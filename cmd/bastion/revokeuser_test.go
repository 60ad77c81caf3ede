package main

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// TestRevokeUser is offboarding with `bastion ca revoke --user`, against a
// real IdP, sshd and the stock ssh client: an auditor revokes carol, and
// everything carol held at that moment stops working — her open shell
// ends within seconds, her certificate opens nothing, an ID token she
// obtained before and had not spent buys no certificate, her console
// sign-in is over (its open event stream ends and the next page asks her
// to sign in) — while alice is untouched, and a login carol makes
// afterwards (the IdP still lets her) works again.
func TestRevokeUser(t *testing.T) {
	w := newWorld(t)
	aliceCfg := w.loginAlice(t) // alice is an auditor (group sec)
	carol := w.another()
	carolCfg := carol.loginAs(t, "u-carol")

	// carol's open shell, her console page with its event stream, and an
	// ID token she holds but has not spent.
	shell := testenv.StartPTY(t, 100, 30, "ssh", "-F", carolCfg, "-tt", "root@web1")
	shell.Send("PS1='$ '\r")
	shell.Send("echo before-$((6*7))\r")
	shell.Expect("before-42", 30*time.Second)
	page := w.consolePage(t, "u-carol")
	claims, _ := w.idp.IDTokenClaims("u-carol", "bastion")
	unspent, _ := w.idp.MintIDToken(claims)

	t.Run("a user may not revoke another", func(t *testing.T) {
		r := carol.run(nil, "ca", "revoke", "--user", "alice")
		if r.Code == 0 || !strings.Contains(r.Stderr, "only auditors may revoke another user") {
			t.Fatalf("carol revoking alice: %s", r)
		}
	})
	t.Run("bad arguments", func(t *testing.T) {
		for _, args := range [][]string{{"--user", "Carol;rm"}, {"--user", "carol", "123"}} {
			r := w.run(nil, append([]string{"ca", "revoke"}, args...)...)
			if r.Code != 2 {
				t.Errorf("ca revoke %q: %s", args, r)
			}
		}
		for _, user := range []string{"Carol", "carol+ci@example.com"} {
			r := w.run(nil, "ca", "revoke", "--user", user)
			if r.Code != 2 || !strings.Contains(r.Stderr, `logs in as "carol"`) {
				t.Errorf("ca revoke --user %s: %s", user, r)
			}
		}
	})

	r := w.run(nil, "ca", "revoke", "--user", "carol", "--reason", "left the company")
	if r.Code != 0 || !strings.Contains(r.Stdout, "revoked everything user carol held at") {
		t.Fatalf("ca revoke --user carol: %s", r)
	}

	t.Run("her certificate opens nothing", func(t *testing.T) {
		out, err := carol.sshAs(carolCfg, "root@web1", "echo reached").CombinedOutput()
		if err == nil || strings.Contains(string(out), "reached") {
			t.Fatalf("carol's revoked certificate reached web1: %v %s", err, out)
		}
		if !strings.Contains(string(out), "the certificates of user carol issued up to") {
			t.Errorf("ssh does not say why: %s", out)
		}
	})
	t.Run("her unspent ID token buys nothing", func(t *testing.T) {
		r := carol.run([]string{"T=" + unspent}, "login", "--bastion", w.url(), "--id-token-env", "T")
		if r.Code == 0 || !strings.Contains(r.Stdout+r.Stderr, "have been revoked") {
			t.Fatalf("login with a token from before the revocation: %s", r)
		}
	})
	t.Run("her console sign-in is over", func(t *testing.T) {
		select {
		case <-page.ended:
		case <-time.After(15 * time.Second):
			t.Fatal("the approvals stream of carol's console page is still open")
		}
		resp, err := page.c.Get(page.base + "/approvals")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/login") {
			t.Fatalf("carol's console after the revocation: %d %q", resp.StatusCode, loc)
		}
	})
	t.Run("alice is untouched", func(t *testing.T) {
		if out, err := w.sshAs(aliceCfg, "root@web1", "echo alice-$((6*7))").CombinedOutput(); err != nil || !strings.Contains(string(out), "alice-42") {
			t.Fatalf("alice after carol's revocation: %v %s", err, out)
		}
	})
	t.Run("audited once", func(t *testing.T) {
		var got []recorder.AuditEvent
		w.app.Store.AuditEvents(time.Time{}, func(ev recorder.AuditEvent) error {
			if ev.Type == "user.revoke" {
				got = append(got, ev)
			}
			return nil
		})
		if len(got) != 1 || got[0].User != "alice" || got[0].Fields["revoked_user"] != "carol" || got[0].Reason != "left the company" {
			t.Fatalf("user.revoke events: %+v", got)
		}
	})
	t.Run("her open shell has ended", func(t *testing.T) {
		// Last but one: the PTY fails the whole test when it times out.
		shell.Expect("have been revoked", 15*time.Second)
		if code := shell.Wait(10 * time.Second); code == 0 {
			t.Errorf("the shell ended with status 0")
		}
	})
	t.Run("a later login works", func(t *testing.T) {
		time.Sleep(1100 * time.Millisecond) // past the revocation's second: tokens carry whole seconds
		carolCfg := carol.loginAs(t, "u-carol")
		if out, err := carol.sshAs(carolCfg, "root@web1", "echo after-$((6*7))").CombinedOutput(); err != nil || !strings.Contains(string(out), "after-42") {
			t.Fatalf("carol after logging in again: %v %s", err, out)
		}
		w.consolePage(t, "u-carol") // signs in and opens the stream
	})
}

// TestRevokeUserEndsAdminCommands: an admin command still running when its
// user is revoked ends within seconds, as a shell does. An auditor's
// `bastion replay --follow` of someone else's live shell is the case that
// matters: it goes on showing what that shell types for as long as the
// shell lives, and a lost laptop's open follow is exactly what `ca revoke
// --user` is meant to cut off.
func TestRevokeUserEndsAdminCommands(t *testing.T) {
	w := newWorld(t)
	w.loginAlice(t) // alice is an auditor (group sec)
	carol := w.another()
	carolCfg := carol.loginAs(t, "u-carol")

	shell := testenv.StartPTY(t, 100, 30, "ssh", "-F", carolCfg, "-tt", "root@web1")
	shell.Send("PS1='$ '\r")
	shell.Send("echo before-$((6*7))\r")
	shell.Expect("before-42", 30*time.Second)
	var live recorder.SessionInfo
	testenv.WaitFor(t, 20*time.Second, "carol's live session", func() bool {
		l, _ := w.app.Store.Sessions(recorder.SessionFilter{Kind: "shell"})
		for _, s := range l {
			if s.Status == recorder.StatusLive {
				live = s
				return true
			}
		}
		return false
	})
	followDone, follow := w.startCLI(nil, "replay", live.ID, "--follow", "--from", "now")
	follow.next(t, func(l string) bool { return strings.Contains(l, "before-42") })

	// alice's laptop is lost: she (or any auditor) revokes her.
	if r := w.run(nil, "ca", "revoke", "--user", "alice", "--reason", "laptop lost"); r.Code != 0 {
		t.Fatalf("ca revoke --user alice: %s", r)
	}
	select {
	case <-followDone:
	case <-time.After(10 * time.Second):
		shell.Send("echo after-$((6*8))\r")
		shell.Expect("after-48", 30*time.Second)
		time.Sleep(time.Second)
		t.Fatalf("alice's replay --follow still runs after her revocation; it shows:\n%s", follow)
	}
	if !strings.Contains(follow.String(), "have been revoked") {
		t.Errorf("the follow ended without saying why:\n%s", follow)
	}
	// carol's shell is not alice's: it runs on.
	shell.Send("echo still-$((6*9))\r")
	shell.Expect("still-54", 30*time.Second)
}

// TestRevokeUserWorkloadMayNotRevokeItsName: every run of a CI workload
// shares its name (oidc.workload name), whatever ref or job it came from,
// so a workload revoking "its own" name would revoke every other run's
// certificate: a pull request's job could cut off the main branch's
// deploy. Only auditors revoke a workload's name; a run may still revoke
// its own serial.
func TestRevokeUserWorkloadMayNotRevokeItsName(t *testing.T) {
	w := newWorld(t)
	ciLogin := func(sub string) (*world, string) {
		run := w.another()
		claims, err := w.ci.IDTokenClaims("repo:acme/etl:ref:refs/heads/main", "bastion-ci")
		if err != nil {
			t.Fatal(err)
		}
		claims["sub"] = sub // another job of the same repository
		tok, err := w.ci.MintIDToken(claims)
		if err != nil {
			t.Fatal(err)
		}
		if r := run.run([]string{"CI_OIDC_TOKEN=" + tok}, "login", "--bastion", w.url(), "--id-token-env", "CI_OIDC_TOKEN"); r.Code != 0 {
			t.Fatalf("ci login as %s: %s", sub, r)
		}
		r := run.run(nil, "ssh-config")
		if r.Code != 0 {
			t.Fatalf("ssh-config: %s", r)
		}
		p := filepath.Join(run.home, "ssh_config")
		os.WriteFile(p, []byte(r.Stdout+"\nHost *\n    BatchMode yes\n"), 0o600)
		return run, p
	}
	deploy, deployCfg := ciLogin("repo:acme/etl:ref:refs/heads/main")
	pr, _ := ciLogin("repo:acme/etl:pull_request")

	r := pr.run(nil, "ca", "revoke", "--user", "ci-etl")
	if r.Code == 0 || !strings.Contains(r.Stderr, "only auditors may revoke a workload") {
		t.Errorf("a pull request's job revoking ci-etl: %s", r)
	}
	if _, ok := w.app.Store.UserRevoked("ci-etl"); ok {
		t.Fatal("ci-etl is revoked")
	}
	if out, err := deploy.sshAs(deployCfg, "root@web1", "echo deploy-$((6*7))").CombinedOutput(); err != nil || !strings.Contains(string(out), "deploy-42") {
		t.Fatalf("the main branch's run after the pull request's: %v %s", err, out)
	}
	// An auditor may.
	w.loginAlice(t)
	if r := w.run(nil, "ca", "revoke", "--user", "ci-etl", "--reason", "compromised runner"); r.Code != 0 {
		t.Fatalf("alice revoking ci-etl: %s", r)
	}
	if out, err := deploy.sshAs(deployCfg, "root@web1", "echo deploy").CombinedOutput(); err == nil {
		t.Fatalf("ci-etl's run after its revocation: %s", out)
	}
}

// TestExpiredCertEndsAdminCommands: with sessions.disconnect_expired_cert
// every session ends within a second of its certificate's expiry, and an
// admin command that runs on is one: an auditor's `replay --follow` of
// someone else's live shell goes on showing what it types for as long as
// the shell lives, past the auditor's certificate, unless it is cut as the
// revocation of that certificate cuts it.
func TestExpiredCertEndsAdminCommands(t *testing.T) {
	w := newWorldWith(t, "sessions: {disconnect_expired_cert: true}\n")
	carol := w.another()
	carolCfg := carol.loginAs(t, "u-carol")
	shell := testenv.StartPTY(t, 100, 30, "ssh", "-F", carolCfg, "-tt", "root@web1")
	shell.Send("PS1='$ '\r")
	shell.Send("echo before-$((6*7))\r")
	shell.Expect("before-42", 30*time.Second)
	var live recorder.SessionInfo
	testenv.WaitFor(t, 20*time.Second, "carol's live session", func() bool {
		l, _ := w.app.Store.Sessions(recorder.SessionFilter{Kind: "shell"})
		for _, s := range l {
			if s.Status == recorder.StatusLive {
				live = s
				return true
			}
		}
		return false
	})
	// alice (an auditor) with a certificate of a few seconds.
	claims, _ := w.idp.IDTokenClaims("u-alice", "bastion")
	tok, _ := w.idp.MintIDToken(claims)
	if r := w.run([]string{"T=" + tok}, "login", "--bastion", w.url(), "--id-token-env", "T", "--ttl", "8s"); r.Code != 0 {
		t.Fatalf("login: %s", r)
	}
	st, _ := w.loginState(t)
	followDone, follow := w.startCLI(nil, "replay", live.ID, "--follow", "--from", "now")
	follow.next(t, func(l string) bool { return strings.Contains(l, "before-42") })
	time.Sleep(time.Until(st.ValidBefore))
	select {
	case <-followDone:
	case <-time.After(5 * time.Second):
		shell.Send("echo after-$((6*8))\r")
		shell.Expect("after-48", 30*time.Second)
		time.Sleep(time.Second)
		t.Fatalf("alice's replay --follow still runs after her certificate expired (%s); it shows:\n%s", st.ValidBefore.Format(time.RFC3339), follow)
	}
	if !strings.Contains(follow.String(), "disconnect_expired_cert") {
		t.Errorf("the follow ended without saying why:\n%s", follow)
	}
}
