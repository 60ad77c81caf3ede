package main

import (
	"bufio"
	"context"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/login"
	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// clusterYAML makes alice's and carol's group (dev) approvers, holds
// "touch .../approve*" for approval, and keeps the store in PostgreSQL
// (the DSN in an environment variable, as an operator keeps a password
// out of the file).
const clusterYAML = `  - {name: approvers, groups: [dev], targets: ["web*"], logins: [root], approve: ["*"]}
rules:
  - {name: held, on: command, match: {regex: "^touch .*/approve"}, action: approve, approvers: [approvers], timeout: 60s}
store:
  postgres: {dsn_env: BASTION_TEST_STORE_DSN, name: a, lease: 5s}
`

// newReplica starts a second bastion with w's config on w's PostgreSQL
// store, as an operator deploys one: its own data_dir holding copies of
// the CA keys, and its own SSH host key (certified by the same host CA).
// It returns a world for it with a fresh user home. edit, if given,
// changes the replica's config first.
func (w *world) newReplica(t *testing.T, name string, edit ...func(*config.Config)) *world {
	t.Helper()
	return w.newReplicaOpts(t, name, app.Options{}, edit...)
}

// newReplicaOpts is newReplica with app options (a clock of its own); its
// Logger is the replica's.
func (w *world) newReplicaOpts(t *testing.T, name string, opt app.Options, edit ...func(*config.Config)) *world {
	t.Helper()
	cfg := *w.app.Config
	pc := *cfg.Store.Postgres
	pc.Name = name
	cfg.Store.Postgres = &pc
	cfg.DataDir = t.TempDir()
	w.copyCAKeys(t, cfg.DataDir)
	for _, f := range edit {
		f(&cfg)
	}
	r := &world{t: t, idp: w.idp, ci: w.ci, sshd: w.sshd, home: t.TempDir(), cfgPath: w.cfgPath, logs: &testenv.SyncBuffer{}}
	var err error
	opt.Logger = slog.New(slog.NewTextHandler(r.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	r.app, err = app.New(&cfg, opt)
	if err != nil {
		t.Fatal(err)
	}
	if err := r.app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		r.app.Shutdown(ctx)
		if t.Failed() {
			t.Logf("replica %s log:\n%s", name, r.logs.String())
		}
	})
	return r
}

// copyCAKeys copies w's CA keys into dataDir/ca, as an operator gives
// every replica the same keys; the SSH host key stays each replica's own.
func (w *world) copyCAKeys(t *testing.T, dataDir string) {
	t.Helper()
	src, dst := filepath.Join(w.app.Config.DataDir, "ca"), filepath.Join(dataDir, "ca")
	if err := os.Mkdir(dst, 0o700); err != nil {
		t.Fatal(err)
	}
	files, err := os.ReadDir(src)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range files {
		if f.Name() == "host_key" || f.IsDir() {
			continue
		}
		b, err := os.ReadFile(filepath.Join(src, f.Name()))
		if err != nil {
			t.Fatal(err)
		}
		os.WriteFile(filepath.Join(dst, f.Name()), b, 0o600)
	}
}

// another returns a world for the same bastion with a fresh user home:
// another person at another machine.
func (w *world) another() *world {
	c := *w
	c.home = w.t.TempDir()
	return &c
}

// certSerial returns the serial of the certificate the user of w logged
// in with.
func (w *world) certSerial(t *testing.T) uint64 {
	t.Helper()
	_, cert := w.loginState(t)
	return cert.Serial
}

// loginState returns the login of the user of w and its certificate.
func (w *world) loginState(t *testing.T) (*login.State, *ssh.Certificate) {
	t.Helper()
	st, err := login.Resolve(filepath.Join(w.home, ".config", "bastion"), "")
	if err != nil {
		t.Fatal(err)
	}
	b, err := os.ReadFile(st.CertPath)
	if err != nil {
		t.Fatal(err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		t.Fatal(err)
	}
	return st, pub.(*ssh.Certificate)
}

var heldRE = regexp.MustCompile(`request ([0-9a-f]{8})`)

// TestReplicasSharePostgres runs two bastions on one real PostgreSQL
// store, with Debian's HAProxy in front of both (TCP mode, round robin,
// for SSH and HTTP; public.ssh names it). Clients that need one replica
// talk to it directly: a session recorded through replica A is listed,
// replayed and verified from B; a command held on A is approved on B, and
// a second decision on A is refused; a CI token spent on A is refused on
// B; and a certificate revoked on A is refused by B. Through HAProxy,
// logins and ssh -J sessions land on both replicas and every session is
// listed, replayed and verified from either; 200 concurrent sessions
// through it all verify. A third replica, a real `bastion serve` process,
// is killed with SIGKILL mid-session: the client sees the connection
// drop, A marks the session interrupted once the lease expired, and it
// verifies up to its last signed checkpoint.
func TestReplicasSharePostgres(t *testing.T) {
	haproxy := requireHAProxy(t)
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	t.Setenv("BASTION_TEST_STORE_DSN", pg.StoreDSN(t, "bastion"))
	lbSSH, lbHTTP := freeAddrs(t)
	a := newWorldWith(t, clusterYAML+`public: {ssh: "`+lbSSH+`"}`+"\n")
	b := a.newReplica(t, "b")
	startHAProxy(t, haproxy, lbSSH, lbHTTP, a, b)
	c := &cluster{a: a, b: b, lbSSH: lbSSH, lbURL: "http://" + lbHTTP}
	aliceA, aliceB := a.loginDirect(t, "u-alice"), b.loginDirect(t, "u-alice")
	sshTo := func(cfg string, args ...string) (string, error) {
		out, err := exec.Command("ssh", append([]string{"-F", cfg}, args...)...).CombinedOutput()
		return string(out), err
	}

	t.Run("recorded on A, read on B", func(t *testing.T) {
		if out, err := sshTo(aliceA, "root@web1", "echo through-replica-a"); err != nil || !strings.Contains(out, "through-replica-a") {
			t.Fatalf("ssh through A: %v\n%s", err, out)
		}
		// ssh exits on the channel's close, before A has committed the
		// session's end: B lists it ended once A has.
		var r testenv.Result
		var id string
		for deadline := time.Now().Add(30 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			r = b.run(nil, "sessions", "--json")
			for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
				var s recorder.SessionInfo
				if json.Unmarshal([]byte(line), &s) == nil && strings.Contains(s.Command, "through-replica-a") && s.Status == recorder.StatusEnded {
					id = s.ID
				}
			}
			if (r.Code == 0 && id != "") || time.Now().After(deadline) {
				break
			}
		}
		if r.Code != 0 || id == "" {
			t.Fatalf("B's sessions lack A's session: %s", r)
		}
		if r := b.run(nil, "verify", id); r.Code != 0 || !strings.Contains(r.Stdout, "intact") {
			t.Fatalf("verify on B: %s", r)
		}
		if r := b.run(nil, "replay", id, "--speed", "100"); r.Code != 0 || !strings.Contains(r.Stdout, "through-replica-a") {
			t.Fatalf("replay on B: %s", r)
		}
		if r := b.run(nil, "verify", "--audit"); r.Code != 0 {
			t.Fatalf("verify --audit on B: %s", r)
		}
	})

	t.Run("held on A, approved on B", func(t *testing.T) {
		// carol watches the console's approvals page on both replicas
		// (its server-sent events, over HTTP, as the page's script does).
		pageB, pageA := b.consolePage(t, "u-carol"), a.consolePage(t, "u-carol")
		dir := t.TempDir()
		p := testenv.StartPTY(t, 100, 30, "ssh", "-F", aliceA, "root@web1", "touch "+filepath.Join(dir, "approve-me")+" && echo ran-approved")
		m := heldRE.FindStringSubmatch(p.Expect("Ctrl-C cancels", 20*time.Second))
		if m == nil {
			t.Fatal("no request ID in the hold message")
		}
		pageB.waitChange(`id="request-`+m[1]+`"`, true) // held on A, shown live by B
		carolB, carolA := b.another(), a.another()
		carolB.loginDirect(t, "u-carol")
		carolA.loginDirect(t, "u-carol")
		if r := carolB.run(nil, "requests", "--json"); r.Code != 0 || !strings.Contains(r.Stdout, m[1]) {
			t.Fatalf("B's requests lack A's request %s: %s", m[1], r)
		}
		if r := carolB.run(nil, "approve", m[1]); r.Code != 0 {
			t.Fatalf("approve on B: %s", r)
		}
		p.Expect("ran-approved", 20*time.Second)
		p.Wait(20 * time.Second)
		pageA.waitChange(`id="request-`+m[1]+`"`, false) // decided on B, gone live from A's page
		pageB.waitChange(`id="request-`+m[1]+`"`, false)
		if r := carolA.run(nil, "deny", m[1]); r.Code == 0 || !strings.Contains(r.Stderr, "no pending request") {
			t.Fatalf("a second decision on A: %s", r)
		}
	})

	t.Run("a token spent on A is refused on B", func(t *testing.T) {
		claims, _ := a.ci.IDTokenClaims("repo:acme/etl:ref:refs/heads/main", "bastion-ci")
		tok, _ := a.ci.MintIDToken(claims)
		env := []string{"CI_OIDC_TOKEN=" + tok}
		if r := a.another().run(env, "login", "--bastion", a.url(), "--id-token-env", "CI_OIDC_TOKEN"); r.Code != 0 {
			t.Fatalf("login on A: %s", r)
		}
		if r := b.another().run(env, "login", "--bastion", b.url(), "--id-token-env", "CI_OIDC_TOKEN"); r.Code != 1 || !strings.Contains(r.Stderr, "already used") {
			t.Fatalf("the same token on B: %s", r)
		}
	})

	t.Run("revoked on A, refused by B", func(t *testing.T) {
		if out, err := sshTo(aliceB, "root@web1", "echo through-replica-b"); err != nil || !strings.Contains(out, "through-replica-b") {
			t.Fatalf("ssh through B before the revocation: %v\n%s", err, out)
		}
		serial := b.certSerial(t)
		if r := a.run(nil, "ca", "revoke", strconv.FormatUint(serial, 10), "--reason", "lost laptop"); r.Code != 0 {
			t.Fatalf("revoke on A: %s", r)
		}
		deadline := time.Now().Add(20 * time.Second)
		for {
			out, err := sshTo(aliceB, "root@web1", "echo still-in")
			if err != nil && !strings.Contains(out, "still-in") {
				if !strings.Contains(strings.ToLower(out), "revoked") && !strings.Contains(out, "Permission denied") {
					t.Fatalf("B refused for another reason than the revocation: %v\n%s", err, out)
				}
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("B still accepts a certificate revoked on A: %s", out)
			}
			time.Sleep(100 * time.Millisecond)
		}
	})

	// Alice's login on B is revoked now: administrators of each replica
	// log in afresh.
	c.adminA, c.adminB = a.another(), b.another()
	c.adminA.loginDirect(t, "u-alice")
	c.adminB.loginDirect(t, "u-alice")
	t.Run("through HAProxy, on both replicas", c.throughBalancer)
	t.Run("200 concurrent sessions through HAProxy", c.concurrentSessions)
	t.Run("kill -9 of a replica mid-session", c.killReplica)
}

// TestStoreMigrate records a session in a bbolt store, stops the bastion,
// copies the store into PostgreSQL with `bastion store migrate`, and
// starts the bastion on the copy: the session is listed and verifies.
func TestStoreMigrate(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	w := newWorld(t)
	if out, err := exec.Command("ssh", "-F", w.loginAlice(t), "root@web1", "echo before-migrate").CombinedOutput(); err != nil {
		t.Fatalf("ssh: %v\n%s", err, out)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	w.app.Shutdown(ctx)
	cancel()

	dsn := pg.StoreDSN(t, "migrated")
	env := []string{"DSN=" + dsn}
	r := w.run(env, "store", "migrate", "--from", w.app.Config.DataDir, "--to-env", "DSN")
	if r.Code != 0 || !strings.Contains(r.Stdout, "copied 1 sessions") || !strings.Contains(r.Stdout, "the copy verifies") {
		t.Fatalf("store migrate: %s", r)
	}
	if r := w.run(env, "store", "migrate", "--from", w.app.Config.DataDir, "--to-env", "DSN"); r.Code == 0 || !strings.Contains(r.Stderr, "already holds a store") {
		t.Fatalf("a second store migrate into the same database: %s", r)
	}

	cfg := *w.app.Config
	cfg.Store.Postgres = &config.StorePostgres{DSN: dsn}
	a, err := app.New(&cfg, app.Options{Logger: slog.New(slog.DiscardHandler)})
	if err != nil {
		t.Fatal(err)
	}
	defer a.Store.Close()
	list, err := a.Store.Sessions(recorder.SessionFilter{})
	if err != nil || len(list) != 1 || !strings.Contains(list[0].Command, "before-migrate") {
		t.Fatalf("sessions in the copy: %+v, %v", list, err)
	}
	if rep, err := a.Store.Verify(list[0].ID); err != nil || !rep.Intact || !rep.Sealed {
		t.Fatalf("verify the copy: %+v, %v", rep, err)
	}
}

// hookReceiver is an HTTPS endpoint taking the audit webhook's JSON lines.
type hookReceiver struct {
	mu     sync.Mutex
	lines  []string
	srv    *httptest.Server
	caFile string
}

func startHookReceiver(t *testing.T, token string) *hookReceiver {
	h := &hookReceiver{}
	h.srv = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "who are you", http.StatusUnauthorized)
			return
		}
		body, err := io.ReadAll(r.Body)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		h.mu.Lock()
		h.lines = append(h.lines, strings.Split(strings.TrimRight(string(body), "\n"), "\n")...)
		h.mu.Unlock()
	}))
	t.Cleanup(h.srv.Close)
	h.caFile = filepath.Join(t.TempDir(), "webhook-ca.pem")
	os.WriteFile(h.caFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: h.srv.Certificate().Raw}), 0o600)
	return h
}

func (h *hookReceiver) text() string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return strings.Join(h.lines, "\n") + "\n"
}

// TestAuditSinksAcrossReplicas ships the audit log of a cluster to a real
// rsyslog and an HTTPS webhook from three replicas on one real PostgreSQL
// store: A writes audit records and ships nothing; P (a `bastion serve`
// process) and B ship to both sinks, one at a time. Every record, whoever
// wrote it, arrives at each sink exactly once and in order: while P ships,
// after P is killed (B takes over when P's lease expires), and after B
// stops (P2, another process, takes over at once).
func TestAuditSinksAcrossReplicas(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	t.Setenv("BASTION_TEST_STORE_DSN", pg.StoreDSN(t, "bastion"))
	t.Setenv("BASTION_TEST_SINK_TOKEN", "sink-s3cret")
	port := testenv.FreePort(t)
	rs := startRsyslog(t, t.TempDir(), port)
	hook := startHookReceiver(t, "sink-s3cret")
	sinksYAML := fmt.Sprintf("audit:\n  syslog: {address: \"tcp://127.0.0.1:%d\"}\n  webhook: {url: %q, ca_file: %q, token_env: BASTION_TEST_SINK_TOKEN}\n",
		port, hook.srv.URL, hook.caFile)

	a := newWorldWith(t, clusterYAML)
	aliceA := a.loginAlice(t)
	session := func(msg string) {
		t.Helper()
		if out, err := exec.Command("ssh", "-F", aliceA, "root@web1", "echo "+msg).CombinedOutput(); err != nil {
			t.Fatalf("session: %v %s", err, out)
		}
	}
	holders := func() []string {
		var out []string
		for _, sink := range []string{"syslog", "webhook"} {
			h, err := a.app.Store.SinkHolder(sink)
			if err != nil {
				t.Fatal(err)
			}
			out = append(out, h)
		}
		return out
	}
	waitHolder := func(what string, ok func(string) bool) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(50 * time.Millisecond) {
			h := holders()
			if ok(h[0]) && ok(h[1]) {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("the sinks are held by %v, not %s", h, what)
			}
		}
	}
	// delivered waits until both sinks received every record written so
	// far and their cursors say so (nothing is in flight), and checks
	// that each received every record once, in order.
	delivered := func(when string) {
		t.Helper()
		for deadline := time.Now().Add(60 * time.Second); ; time.Sleep(100 * time.Millisecond) {
			head, _ := a.app.Store.AuditHead()
			done := true
			for _, sink := range []string{"syslog", "webhook"} {
				if c, _ := a.app.Store.SinkCursor(sink); c != head {
					done = false
				}
			}
			got := map[string][]uint64{"syslog": rs.seqs(), "webhook": auditSeqs(hook.text())}
			for sink, seqs := range got {
				for i, seq := range seqs {
					if seq != uint64(i+1) {
						t.Fatalf("%s: %s received record %d as %d (out of order, lost or repeated): %v", when, sink, i+1, seq, seqs)
					}
				}
				if uint64(len(seqs)) != head {
					done = false
				}
			}
			if done {
				return
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s: the sinks did not receive up to record %d: %v", when, head, got)
			}
		}
	}

	// P ships; B waits.
	p, _ := a.serveReplica(t, "p", sinksYAML)
	waitHolder("P", func(h string) bool { return h != "" && h != a.app.Store.ReplicaID() })
	pID := holders()[0]
	b := a.newReplica(t, "b", func(c *config.Config) {
		c.Audit = config.Audit{
			Syslog:  &config.AuditSyslog{Address: fmt.Sprintf("tcp://127.0.0.1:%d", port)},
			Webhook: &config.AuditWebhook{URL: hook.srv.URL, CAFile: hook.caFile, TokenEnv: "BASTION_TEST_SINK_TOKEN"},
		}
	})
	aliceB := b.loginAlice(t)
	session("while-p-ships")
	if out, err := exec.Command("ssh", "-F", aliceB, "root@web1", "echo through-b").CombinedOutput(); err != nil {
		t.Fatalf("session through B: %v %s", err, out)
	}
	delivered("while P ships")
	if h := holders(); h[0] != pID || h[1] != pID {
		t.Fatalf("the sinks moved from P to %v while P was alive", h)
	}

	// P dies: B takes over once P's lease expires, from P's cursor.
	p.Process.Kill()
	p.Wait()
	session("after-p-died")
	waitHolder("B", func(h string) bool { return h == b.app.Store.ReplicaID() })
	session("b-ships")
	delivered("after P was killed")

	// P2 waits; B stops and releases the sinks: P2 takes over.
	a.serveReplica(t, "p2", sinksYAML)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	b.app.Shutdown(ctx)
	cancel()
	session("after-b-stopped")
	waitHolder("P2", func(h string) bool {
		return h != "" && h != pID && h != a.app.Store.ReplicaID() && h != b.app.Store.ReplicaID()
	})
	session("p2-ships")
	delivered("after B stopped")

	// What each sink holds is the cluster's audit chain.
	for _, against := range []string{rs.received, writeTemp(t, hook.text())} {
		if r := a.run(nil, "verify", "--audit", "--against", against); r.Code != 0 || !strings.Contains(r.Stdout, "intact") {
			t.Fatalf("verify --audit --against %s: %s", against, r)
		}
	}
}

func writeTemp(t *testing.T, text string) string {
	path := filepath.Join(t.TempDir(), "received")
	os.WriteFile(path, []byte(text), 0o600)
	return path
}

// consolePage is a person's approvals page in a replica's web console:
// signed in over HTTP through the development IdP's login page (as a
// browser does), with the page's event stream open.
type consolePage struct {
	t       *testing.T
	c       *http.Client
	base    string
	changed chan struct{}
	ended   chan struct{} // closed when the event stream ends
}

func (w *world) consolePage(t *testing.T, subject string) *consolePage {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	c := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	p := &consolePage{t: t, c: c, base: w.url(), changed: make(chan struct{}, 64), ended: make(chan struct{})}
	resp, err := c.Get(p.base + "/login?next=/approvals")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	callback, err := w.idp.CompleteBrowserLogin(ctx, resp.Header.Get("Location"), subject)
	if err != nil {
		t.Fatalf("console sign-in: %v", err)
	}
	if resp, err = c.Get(callback.String()); err != nil || resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("console callback: %v %v", resp, err)
	}
	resp.Body.Close()
	req, _ := http.NewRequestWithContext(ctx, "GET", p.base+"/api/approvals/stream", nil)
	resp, err = c.Do(req)
	if err != nil || resp.StatusCode != http.StatusOK || resp.Header.Get("Content-Type") != "text/event-stream" {
		t.Fatalf("approvals stream: %v %v", resp, err)
	}
	t.Cleanup(func() { resp.Body.Close() })
	first := make(chan struct{})
	go func() {
		defer close(p.ended)
		sc := bufio.NewScanner(resp.Body)
		n := 0
		for sc.Scan() {
			if sc.Text() != "event: changed" {
				continue
			}
			if n++; n == 1 {
				close(first) // sent at once: the page then waits for the next
				continue
			}
			p.changed <- struct{}{}
		}
	}()
	select {
	case <-first:
	case <-time.After(30 * time.Second):
		t.Fatal("the approvals stream sent nothing")
	}
	return p
}

// waitChange waits for change events until the page, fetched again as
// the page's script does on each, has (or no longer has) want.
func (p *consolePage) waitChange(want string, has bool) {
	p.t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case <-p.changed:
		case <-timeout:
			p.t.Fatalf("%s: no change event with the page showing %q=%v", p.base, want, has)
		}
		resp, err := p.c.Get(p.base + "/approvals")
		if err != nil {
			p.t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK && strings.Contains(string(body), want) == has {
			return
		}
	}
}
