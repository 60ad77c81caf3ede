package main

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// TestCIActorFourEyes: with actor_claim on a workload (oidc.workload), a
// CI job's certificate names who triggered the run, and that person, an
// approver, cannot approve what the job is held on (by `bastion approve`
// or the console); another approver can. A token without the claim is
// refused, and audited. devidp is the CI issuer; the target is a real sshd.
// actorWorldConfig is worldConfig with actor_claim set on its ci-etl
// workload: runs of one job told apart by who triggered them.
func actorWorldConfig(t *testing.T) string {
	t.Helper()
	cfg := strings.Replace(worldConfig, "name: ci-etl, groups: [etl]}", "name: ci-etl, groups: [etl], actor_claim: actor}", 1)
	if cfg == worldConfig {
		t.Fatal("worldConfig changed: no ci-etl workload to give an actor_claim")
	}
	return cfg
}

// ciRunLogin logs r in as a run of the ci-etl job on main that actor
// triggered (nil: a token without the claim).
func (w *world) ciRunLogin(t *testing.T, r *world, actor any) testenv.Result {
	t.Helper()
	claims, _ := w.ci.IDTokenClaims("repo:acme/etl:ref:refs/heads/main", "bastion-ci")
	if actor != nil {
		claims["actor"] = actor
	}
	tok, err := w.ci.MintIDToken(claims)
	if err != nil {
		t.Fatal(err)
	}
	return r.run([]string{"CI_OIDC_TOKEN=" + tok}, "login", "--bastion", w.url(), "--id-token-env", "CI_OIDC_TOKEN")
}

func TestCIActorFourEyes(t *testing.T) {
	hooks := make(chan map[string]any, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		hooks <- m
	}))
	defer hook.Close()
	w := newWorldConfig(t, actorWorldConfig(t), "", nil, `  - {name: approvers, groups: [dev], targets: ["web*"], logins: [root], approve: ["*"]}
rules:
  - {name: held, on: command, match: {regex: "^touch .*/approve"}, action: approve, approvers: [approvers], timeout: 60s}
approvals: {webhook: "`+hook.URL+`"}
`)
	ciLogin := func(ci *world, actor any) testenv.Result { return w.ciRunLogin(t, ci, actor) }

	t.Run("a token without the actor claim is refused", func(t *testing.T) {
		for _, actor := range []any{nil, 42, "not a login!"} {
			r := ciLogin(w.another(), actor)
			if r.Code != 1 || !strings.Contains(r.Stderr, `claim "actor"`) {
				t.Fatalf("actor %v: want a refusal naming the claim, got %s", actor, r)
			}
		}
		refused := 0
		w.app.Store.AuditEvents(time.Time{}, func(ev recorder.AuditEvent) error {
			if ev.Type == "cert.refuse" && ev.Reason == "actor" && ev.User == "ci-etl" {
				refused++
			}
			return nil
		})
		if refused != 3 {
			t.Fatalf("%d refusals with reason actor audited, want 3", refused)
		}
	})

	// The run alice triggered (GitHub logins keep their case: Alice).
	ci := w.another()
	if r := ciLogin(ci, "Alice"); r.Code != 0 {
		t.Fatalf("CI login: %s", r)
	}
	if _, cert := ci.loginState(t); cert.Permissions.Extensions["actor@bastionhq.dev"] != "alice" || !strings.Contains(cert.KeyId, "actor=alice") {
		t.Fatalf("the certificate does not name the actor: %v %q", cert.Permissions.Extensions, cert.KeyId)
	}
	if r := ci.run(nil, "whoami"); r.Code != 0 || !regexp.MustCompile(`triggered by\s+alice`).MatchString(r.Stdout) {
		t.Fatalf("whoami: %s", r)
	}
	r := ci.run(nil, "ssh-config")
	if r.Code != 0 {
		t.Fatalf("ssh-config: %s", r)
	}
	ciCfg := filepath.Join(ci.home, "ssh_config")
	os.WriteFile(ciCfg, []byte(r.Stdout+"\nHost *\n    BatchMode yes\n"), 0o600)
	dir := t.TempDir()
	p := testenv.StartPTY(t, 100, 30, "ssh", "-F", ciCfg, "root@web1", "touch "+filepath.Join(dir, "approve-load")+" && echo ran-load")
	m := heldRE.FindStringSubmatch(p.Expect("Ctrl-C cancels", 20*time.Second))
	if m == nil {
		t.Fatal("no request ID in the hold message")
	}
	id := m[1]
	select {
	case h := <-hooks:
		if h["id"] != id || h["user"] != "ci-etl" || h["actor"] != "alice" {
			t.Errorf("webhook got %v", h)
		}
	case <-time.After(10 * time.Second):
		t.Error("the webhook was not called")
	}
	issued := false
	w.app.Store.AuditEvents(time.Time{}, func(ev recorder.AuditEvent) error {
		issued = issued || ev.Type == "cert.issue" && ev.User == "ci-etl" && ev.Fields["actor"] == "alice"
		return nil
	})
	if !issued {
		t.Error("the issuance's audit record does not name the actor")
	}

	// alice, an approver, sees who triggered the run and may not approve it.
	alice := w.another()
	alice.loginAlice(t)
	if r := alice.run(nil, "requests"); r.Code != 0 || !strings.Contains(r.Stdout, "ci-etl (triggered by alice)") {
		t.Fatalf("requests: %s", r)
	}
	if r := alice.run(nil, "requests", "--json"); r.Code != 0 || !strings.Contains(r.Stdout, `"actor":"alice"`) {
		t.Fatalf("requests --json: %s", r)
	}
	if r := alice.run(nil, "approve", id); r.Code != 1 || !strings.Contains(r.Stderr, "nobody approves the requests of a CI job they triggered") {
		t.Fatalf("alice approving her run's request: %s", r)
	}
	page := w.consolePage(t, "u-alice")
	body := page.get("/approvals")
	if !strings.Contains(body, "ci-etl (triggered by alice)") || !strings.Contains(body, "A request of a CI job you triggered") {
		t.Fatalf("console approvals page:\n%s", body)
	}
	if code, body := page.post("/approvals/"+id+"/approve", csrfOf(t, body)); code != http.StatusForbidden || !strings.Contains(body, "CI job they triggered") {
		t.Fatalf("console approve by alice: %d\n%s", code, body)
	}
	if exists(filepath.Join(dir, "approve-load")) {
		t.Fatal("the held command ran")
	}

	// carol, another approver, approves it.
	carol := w.another()
	carol.loginAs(t, "u-carol")
	if r := carol.run(nil, "approve", id); r.Code != 0 || !strings.Contains(r.Stdout, "ci-etl (triggered by alice)") {
		t.Fatalf("carol approving: %s", r)
	}
	p.Expect("ran-load", 20*time.Second)
	p.Wait(20 * time.Second)

	// Revoking alice (she left) ends the runs she triggered that are still
	// running, and a run's token minted before the revocation buys nothing.
	live := testenv.StartPTY(t, 100, 30, "ssh", "-F", ciCfg, "root@web1", "echo live$((6*7)); sleep 120")
	live.Expect("live42", 20*time.Second)
	claims, _ := w.ci.IDTokenClaims("repo:acme/etl:ref:refs/heads/main", "bastion-ci")
	claims["actor"] = "Alice"
	early, err := w.ci.MintIDToken(claims)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.app.Store.RevokeUser("alice", recorder.AuditEvent{User: "admin", Reason: "left the company"}); err != nil {
		t.Fatal(err)
	}
	live.Expect("who triggered this run, has been revoked", 20*time.Second)
	live.Wait(20 * time.Second)
	if r := w.another().run([]string{"CI_OIDC_TOKEN=" + early}, "login", "--bastion", w.url(), "--id-token-env", "CI_OIDC_TOKEN"); r.Code == 0 || !strings.Contains(r.Stderr, "who triggered this run, has been revoked") {
		t.Fatalf("a run's token minted before its actor's revocation: %s", r)
	}
}

var csrfRE = regexp.MustCompile(`name="csrf" value="([^"]+)"`)

func csrfOf(t *testing.T, page string) string {
	t.Helper()
	m := csrfRE.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no csrf token in the page:\n%s", page)
	}
	return m[1]
}

// get fetches a console page as the signed-in user.
func (p *consolePage) get(path string) string {
	p.t.Helper()
	resp, err := p.c.Get(p.base + path)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

// post submits a console form as the signed-in user.
func (p *consolePage) post(path, csrf string, fields ...string) (int, string) {
	p.t.Helper()
	v := url.Values{"csrf": {csrf}}
	for i := 0; i+1 < len(fields); i += 2 {
		v.Set(fields[i], fields[i+1])
	}
	resp, err := p.c.PostForm(p.base+path, v)
	if err != nil {
		p.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}
