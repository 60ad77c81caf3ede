package main

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"text/template"
	"time"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/devidp"
	"github.com/bastionhq/bastion/internal/login"
	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// The test binary doubles as the bastion binary: with BASTION_TEST_AS_CLI
// set it runs the CLI, so tests drive the real command line (the same
// code as the built binary, with the race detector on).
//
// It runs the CLI too when started with a command rather than test flags:
// an ssh_config written by `bastion ssh-config` in a test names this binary
// in its login check (Match exec), and ssh runs it without the variable.
func TestMain(m *testing.M) {
	if os.Getenv("BASTION_TEST_AS_CLI") == "1" || len(os.Args) > 1 && !strings.HasPrefix(os.Args[1], "-") {
		os.Exit(run(os.Args[1:]))
	}
	os.Exit(m.Run())
}

// world is a bastion with a real OIDC provider, a CI token issuer and a
// real sshd target, and a user home for the CLI.
type world struct {
	t       *testing.T
	idp, ci *devidp.Provider
	app     *app.App
	sshd    *testenv.SSHD
	home    string
	cfgPath string
	logs    *testenv.SyncBuffer
}

func boolp(b bool) *bool { return &b }

const worldConfig = `
listen: {ssh: "127.0.0.1:0", http: "127.0.0.1:0"{{.Listen}}}
data_dir: {{.DataDir}}
oidc:
  issuer: "{{.Issuer}}"
  client_id: bastion
  workload:
    - {issuer: "{{.CI}}", audience: bastion-ci, subject: "repo:acme/etl:*", name: ci-etl, groups: [etl]}
targets:
  - {name: web1, kind: ssh, address: "{{.SSHD}}", host_key: "{{.HostKey}}"}
{{.Targets}}roles:
  - {name: dev, groups: [dev], targets: ["web*"], logins: [root]}
  - {name: etl, groups: [etl], targets: [web1], logins: [root], shell: false}
  - {name: auditors, groups: [sec], auditor: true}
`

func newWorld(t *testing.T) *world { return newWorldWith(t, "") }

// newWorldWith is newWorld with extra YAML appended to the config.
func newWorldWith(t *testing.T, extraYAML string) *world {
	t.Helper()
	return newWorldTargets(t, extraYAML)
}

// newWorldTargets is newWorldWith and more targets (YAML flow maps).
func newWorldTargets(t *testing.T, extraYAML string, targets ...string) *world {
	t.Helper()
	return newWorldListen(t, "", nil, extraYAML, targets...)
}

// newWorldListen is newWorldTargets with more listen keys (", postgres:
// ...") and a hook that sees the CA keys before the bastion starts and
// returns more targets (a database that trusts the database CA).
func newWorldListen(t *testing.T, listen string, withKeys func(*ca.Keys) []string, extraYAML string, targets ...string) *world {
	t.Helper()
	return newWorldConfig(t, worldConfig, listen, withKeys, extraYAML, targets...)
}

// newWorldConfig is newWorldListen with another config template than
// worldConfig (one that changes its oidc section, say).
func newWorldConfig(t *testing.T, cfgTemplate, listen string, withKeys func(*ca.Keys) []string, extraYAML string, targets ...string) *world {
	t.Helper()
	testenv.Require(t, "ssh")
	w := &world{t: t, home: t.TempDir(), logs: &testenv.SyncBuffer{}}
	var err error
	w.idp, err = devidp.Start(devidp.Config{
		Users: []devidp.User{
			{Subject: "u-alice", Email: "alice@example.com", EmailVerified: boolp(true), Name: "Alice", Groups: []string{"dev", "sec"}},
			{Subject: "u-bob", Email: "bob@example.com", EmailVerified: boolp(false), Name: "Bob"},
			{Subject: "u-carol", Email: "carol@example.com", EmailVerified: boolp(true), Name: "Carol", Groups: []string{"dev"}},
		},
		Clients: []devidp.Client{{ID: "bastion", RedirectURIs: []string{"http://127.0.0.1/callback", "http://127.0.0.1/auth/callback"}, Device: true}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.idp.Close() })
	w.ci, err = devidp.Start(devidp.Config{Users: []devidp.User{{Subject: "repo:acme/etl:ref:refs/heads/main"}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.ci.Close() })

	dataDir := t.TempDir()
	keys, err := ca.LoadOrCreateKeys(dataDir)
	if err != nil {
		t.Fatal(err)
	}
	w.sshd = testenv.StartSSHD(t, testenv.SSHDOptions{TrustedUserCAKeys: keys.TargetCALine()})
	if withKeys != nil {
		targets = append(targets, withKeys(keys)...)
	}
	var buf bytes.Buffer
	template.Must(template.New("").Parse(cfgTemplate)).Execute(&buf, map[string]string{
		"DataDir": dataDir, "Issuer": w.idp.Issuer(), "CI": w.ci.Issuer(), "SSHD": w.sshd.Addr, "HostKey": w.sshd.HostKeyLine,
		"Targets": targetLines(targets), "Listen": listen,
	})
	buf.WriteString(extraYAML)
	w.cfgPath = filepath.Join(t.TempDir(), "bastion.yaml")
	os.WriteFile(w.cfgPath, buf.Bytes(), 0o600)
	cfg, err := config.Load(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	w.app, err = app.New(cfg, app.Options{Logger: slog.New(slog.NewTextHandler(w.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		w.app.Shutdown(ctx)
		if t.Failed() {
			t.Logf("bastion log:\n%s", w.logs.String())
		}
	})
	return w
}

func targetLines(targets []string) string {
	var b strings.Builder
	for _, t := range targets {
		b.WriteString("  - " + t + "\n")
	}
	return b.String()
}

func (w *world) url() string { return "http://" + w.app.HTTPAddr() }

// cli prepares the bastion CLI as a user of this world would run it.
func (w *world) cli(env []string, args ...string) *exec.Cmd {
	cmd := exec.Command(os.Args[0], args...)
	cmd.Env = append(os.Environ(), "BASTION_TEST_AS_CLI=1", "HOME="+w.home, "XDG_CONFIG_HOME="+filepath.Join(w.home, ".config"), "SSH_AUTH_SOCK=")
	cmd.Env = append(cmd.Env, env...)
	return cmd
}

// run runs the CLI to completion.
func (w *world) run(env []string, args ...string) testenv.Result {
	w.t.Helper()
	cmd := w.cli(env, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	r := testenv.Result{Stdout: out.String(), Stderr: errb.String(), Err: err}
	if ee, ok := err.(*exec.ExitError); ok {
		r.Code = ee.ExitCode()
	} else if err != nil {
		r.Code = -1
	}
	return r
}

// startCLI starts the CLI and returns a line reader over its output and a
// channel that receives its exit error.
func (w *world) startCLI(env []string, args ...string) (<-chan error, *lineReader) {
	w.t.Helper()
	cmd := w.cli(env, args...)
	pr, pw := io.Pipe()
	cmd.Stderr = pw
	cmd.Stdout = pw
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	lr := &lineReader{lines: make(chan string, 100)}
	go func() {
		sc := bufio.NewScanner(pr)
		for sc.Scan() {
			lr.mu.Lock()
			lr.all = append(lr.all, sc.Text())
			lr.mu.Unlock()
			lr.lines <- sc.Text()
		}
		close(lr.lines)
	}()
	done := make(chan error, 1)
	w.t.Cleanup(func() { cmd.Process.Kill() })
	go func() { done <- cmd.Wait(); pw.Close() }()
	return done, lr
}

type lineReader struct {
	lines chan string
	mu    sync.Mutex
	all   []string
}

// next returns the first line for which match returns true.
func (l *lineReader) next(t *testing.T, match func(string) bool) string {
	t.Helper()
	timeout := time.After(30 * time.Second)
	for {
		select {
		case line, ok := <-l.lines:
			if !ok {
				t.Fatalf("output ended before the expected line; got:\n%s", l.String())
			}
			if match(line) {
				return line
			}
		case <-timeout:
			t.Fatalf("no expected line within 30s; got:\n%s", l.String())
		}
	}
}

func (l *lineReader) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return strings.Join(l.all, "\n")
}

// afterLogin checks what a successful login leaves behind, then uses it
// with the stock OpenSSH client through the generated ssh_config.
func (w *world) afterLogin(t *testing.T, wantUser string, env []string, sshArgs ...string) {
	t.Helper()
	st, err := login.Resolve(filepath.Join(w.home, ".config", "bastion"), "")
	if err != nil {
		t.Fatal(err)
	}
	if st.User != wantUser || st.SSHAddress != w.app.SSHAddr() {
		t.Fatalf("state %+v", st)
	}
	for _, p := range []string{st.CertPath, st.KnownHostsPath, st.KeyPath} {
		if p == "" {
			continue
		}
		fi, err := os.Stat(p)
		if err != nil || fi.Mode().Perm() != 0o600 {
			t.Errorf("%s: %v mode %v, want 0600", p, err, fi.Mode().Perm())
		}
	}
	out, err := exec.Command("ssh-keygen", "-L", "-f", st.CertPath).CombinedOutput()
	if err != nil || !strings.Contains(string(out), "Principals: \n                "+wantUser+"\n") {
		t.Fatalf("ssh-keygen -L: %v\n%s", err, out)
	}
	r := w.run(env, "whoami")
	if r.Code != 0 || !strings.Contains(r.Stdout, "user         "+wantUser) {
		t.Fatalf("bastion whoami: %s", r)
	}
	r = w.run(env, "ssh-config")
	if r.Code != 0 || !strings.Contains(r.Stdout, "ProxyJump") {
		t.Fatalf("bastion ssh-config: %s", r)
	}
	sshCfg := filepath.Join(w.home, "ssh_config")
	os.WriteFile(sshCfg, []byte(r.Stdout), 0o600)
	args := append([]string{"-F", sshCfg, "-o", "BatchMode=yes"}, sshArgs...)
	cmd := exec.Command("ssh", args...)
	cmd.Env = append(os.Environ(), env...)
	got, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(got), "through-the-bastion") {
		t.Fatalf("ssh %v: %v\n%s\nconfig:\n%s", sshArgs, err, got, r.Stdout)
	}
}

func TestLoginBrowser(t *testing.T) {
	w := newWorld(t)
	cmd, out := w.startCLI(nil, "login", "--bastion", w.url(), "--no-browser")
	authURL := strings.TrimSpace(out.next(t, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), "http") }))
	redirect, err := w.idp.CompleteBrowserLogin(context.Background(), authURL, "u-alice")
	if err != nil {
		t.Fatal(err)
	}
	if redirect.Hostname() != "127.0.0.1" {
		t.Fatalf("redirect to %s, want the CLI's loopback listener", redirect)
	}
	resp, err := http.Get(redirect.String()) // the browser follows the redirect
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := waitCmd(cmd); err != nil {
		t.Fatalf("login: %v\n%s", err, out)
	}
	w.afterLogin(t, "alice", nil, "root@web1", "echo through-the-bastion")

	// The CLI's callback refuses a forged state (login CSRF), and goes on
	// waiting for the real one: a stray request does not end the login.
	cmd, out = w.startCLI(nil, "login", "--bastion", w.url(), "--no-browser")
	u, err := url.Parse(strings.TrimSpace(out.next(t, func(l string) bool { return strings.HasPrefix(strings.TrimSpace(l), "http") })))
	if err != nil {
		t.Fatal(err)
	}
	resp, err = http.Get(u.Query().Get("redirect_uri") + "?state=forged&code=stolen")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != 400 {
		t.Errorf("forged callback answered HTTP %d, want 400", resp.StatusCode)
	}
	redirect, err = w.idp.CompleteBrowserLogin(context.Background(), u.String(), "u-alice")
	if err != nil {
		t.Fatal(err)
	}
	if resp, err = http.Get(redirect.String()); err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if err := waitCmd(cmd); err != nil {
		t.Fatalf("login after a forged callback: %v\n%s", err, out)
	}
}

func TestLoginDevice(t *testing.T) {
	w := newWorld(t)
	cmd, out := w.startCLI(nil, "login", "--bastion", w.url(), "--device")
	line := out.next(t, func(l string) bool { return strings.Contains(l, "code ") })
	code := strings.TrimSpace(line[strings.LastIndex(line, "code ")+5:])
	if err := w.idp.ApproveDevice(context.Background(), code, "u-alice"); err != nil {
		t.Fatal(err)
	}
	if err := waitCmd(cmd); err != nil {
		t.Fatalf("login --device: %v\n%s", err, out)
	}
	w.afterLogin(t, "alice", nil, "root@web1", "echo through-the-bastion")
}

func TestLoginWorkloadToken(t *testing.T) {
	w := newWorld(t)
	claims, _ := w.ci.IDTokenClaims("repo:acme/etl:ref:refs/heads/main", "bastion-ci")
	tok, err := w.ci.MintIDToken(claims)
	if err != nil {
		t.Fatal(err)
	}
	env := []string{"CI_OIDC_TOKEN=" + tok}
	r := w.run(env, "login", "--bastion", w.url(), "--id-token-env", "CI_OIDC_TOKEN")
	if r.Code != 0 {
		t.Fatalf("login: %s", r)
	}
	st, _ := login.Resolve(filepath.Join(w.home, ".config", "bastion"), "")
	if d := time.Until(st.ValidBefore); d > 5*time.Minute+time.Second {
		t.Errorf("workload certificate lives %s, want at most 5m", d)
	}
	// The etl role is exec-only: a command runs, a shell would not.
	w.afterLogin(t, "ci-etl", nil, "root@web1", "echo through-the-bastion")

	// A token buys one certificate: the same token again is refused, in
	// one line that says why, and both are audited.
	r = w.run(env, "login", "--bastion", w.url(), "--id-token-env", "CI_OIDC_TOKEN")
	if r.Code != 1 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 || !strings.Contains(r.Stderr, "already used") {
		t.Fatalf("reused token: want exit 1 and a one-line reason, got %s", r)
	}
	// Nor does the same token spelt differently: a line break inside it
	// (base64 decoders skip it) or another last character that decodes to
	// the same signature (its unused bits) is refused as malformed, not
	// spent again.
	const b64url = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"
	last := strings.IndexByte(b64url, tok[len(tok)-1])
	dot := strings.IndexByte(tok, '.')
	for _, variant := range []string{
		tok[:len(tok)-1] + string(b64url[last^1]),
		tok[:dot+3] + "\n" + tok[dot+3:],
		tok[:8] + "\r\n" + tok[8:],
	} {
		r = w.run([]string{"CI_OIDC_TOKEN=" + variant}, "login", "--bastion", w.url(), "--id-token-env", "CI_OIDC_TOKEN")
		if r.Code != 1 || !strings.Contains(r.Stderr, "malformed") {
			t.Fatalf("the used token spelt differently: want a refusal as malformed, got %s", r)
		}
	}
	var issued, replays int
	if err := w.app.Store.AuditEvents(time.Time{}, func(ev recorder.AuditEvent) error {
		if ev.Subject == "repo:acme/etl:ref:refs/heads/main" && ev.Type == "cert.issue" {
			issued++
		}
		if ev.Type == "cert.refuse" && ev.Reason == "replay" {
			replays++
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if issued != 1 || replays != 1 {
		t.Fatalf("audit: %d issued and %d replays refused, want 1 and 1", issued, replays)
	}

	// From a file, too (a fresh token); and a refused token says why in one line.
	claims["jti"] = "job-42-step-2"
	tok2, _ := w.ci.MintIDToken(claims)
	tf := filepath.Join(w.home, "token")
	os.WriteFile(tf, []byte(tok2+"\n"), 0o600)
	if r := w.run(nil, "login", "--bastion", w.url(), "--id-token-file", tf); r.Code != 0 {
		t.Fatalf("login --id-token-file: %s", r)
	}
	// A token with the same jti is the same token, whatever else differs.
	claims["nonce"] = "other"
	tok3, _ := w.ci.MintIDToken(claims)
	if r := w.run([]string{"CI_OIDC_TOKEN=" + tok3}, "login", "--bastion", w.url(), "--id-token-env", "CI_OIDC_TOKEN"); r.Code != 1 || !strings.Contains(r.Stderr, "already used") {
		t.Fatalf("a token with a used jti: %s", r)
	}
	delete(claims, "jti")
	delete(claims, "nonce")
	claims["exp"] = time.Now().Add(-time.Minute).Unix()
	expired, _ := w.ci.MintIDToken(claims)
	r = w.run([]string{"CI_OIDC_TOKEN=" + expired}, "login", "--bastion", w.url(), "--id-token-env", "CI_OIDC_TOKEN")
	if r.Code != 1 || strings.Count(strings.TrimSpace(r.Stderr), "\n") != 0 || !strings.Contains(r.Stderr, "expired") {
		t.Fatalf("expired token: want exit 1 and a one-line reason, got %s", r)
	}
}

func TestLoginIntoAgent(t *testing.T) {
	w := newWorld(t)
	testenv.Require(t, "ssh-agent")
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command("ssh-agent", "-D", "-a", sock)
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	// Until the agent listens (the loop used to give up silently after 2 s,
	// and the login then found no agent).
	testenv.WaitFor(t, 20*time.Second, "ssh-agent's socket", func() bool {
		_, err := os.Stat(sock)
		return err == nil
	})
	claims, _ := w.ci.IDTokenClaims("repo:acme/etl:ref:refs/heads/main", "bastion-ci")
	tok, _ := w.ci.MintIDToken(claims)
	env := []string{"SSH_AUTH_SOCK=" + sock, "CI_OIDC_TOKEN=" + tok}
	if r := w.run(env, "login", "--bastion", w.url(), "--id-token-env", "CI_OIDC_TOKEN"); r.Code != 0 || !strings.Contains(r.Stderr, "ssh-agent") {
		t.Fatalf("login: %s", r)
	}
	if _, err := os.Stat(filepath.Join(w.home, ".config", "bastion", "id_ed25519")); err == nil {
		t.Error("the private key was written to disk although an agent runs")
	}
	cmd := exec.Command("ssh-add", "-L")
	cmd.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	out, _ := cmd.Output()
	if !strings.Contains(string(out), "ssh-ed25519-cert-v01@openssh.com") {
		t.Fatalf("ssh-add -L: %s", out)
	}
	w.afterLogin(t, "ci-etl", []string{"SSH_AUTH_SOCK=" + sock}, "root@web1", "echo through-the-bastion")
}

func TestRefusedLoginIsAudited(t *testing.T) {
	w := newWorld(t)
	claims, _ := w.idp.IDTokenClaims("u-bob", "bastion")
	tok, _ := w.idp.MintIDToken(claims)
	r := w.run([]string{"T=" + tok}, "login", "--bastion", w.url(), "--id-token-env", "T")
	if r.Code != 1 || !strings.Contains(r.Stderr, "email_verified") {
		t.Fatalf("unverified email: %s", r)
	}
	// Alice (an auditor) reads the audit log through the CLI.
	claims, _ = w.idp.IDTokenClaims("u-alice", "bastion")
	tok, _ = w.idp.MintIDToken(claims)
	if r := w.run([]string{"T=" + tok}, "login", "--bastion", w.url(), "--id-token-env", "T"); r.Code != 0 {
		t.Fatalf("login: %s", r)
	}
	r = w.run(nil, "audit", "--json")
	if r.Code != 0 {
		t.Fatalf("audit: %s", r)
	}
	if !strings.Contains(r.Stdout, `"type":"cert.refuse"`) || !strings.Contains(r.Stdout, `"reason":"email_unverified"`) ||
		!strings.Contains(r.Stdout, `"type":"cert.issue"`) {
		t.Fatalf("audit log lacks the refusal and the issuance:\n%s", r.Stdout)
	}
	if strings.Contains(r.Stdout, tok[:40]) {
		t.Fatal("the audit log contains a token")
	}
	if r := w.run(nil, "verify", "--audit"); r.Code != 0 || !strings.Contains(r.Stdout, "intact") {
		t.Fatalf("verify --audit: %s", r)
	}
}

func TestCAExportAndConfigCheck(t *testing.T) {
	w := newWorld(t)
	r := w.run(nil, "ca", "export", "--target", "--config", w.cfgPath)
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != w.app.Keys.TargetCALine() {
		t.Fatalf("ca export --target: %s", r)
	}
	r = w.run(nil, "ca", "export", "--host", "--config", w.cfgPath)
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "@cert-authority * ssh-ed25519 ") {
		t.Fatalf("ca export --host: %s", r)
	}
	r = w.run(nil, "ca", "export", "--db", "--config", w.cfgPath)
	if r.Code != 0 || !strings.HasPrefix(r.Stdout, "-----BEGIN CERTIFICATE-----") {
		t.Fatalf("ca export --db: %s", r)
	}
	if r := w.run(nil, "ca", "export", "--config", w.cfgPath); r.Code != 2 {
		t.Fatalf("ca export without a CA: %s", r)
	}
	if r := w.run(nil, "config", "check", "--config", w.cfgPath); r.Code != 0 || !strings.Contains(r.Stdout, "ok") {
		t.Fatalf("config check: %s", r)
	}
	bad := filepath.Join(t.TempDir(), "bad.yaml")
	os.WriteFile(bad, []byte("data_dir: /x\noidc: {issuer: \"https://i\"}\ntargets: [{name: a, kind: ssh, address: h}]\n"), 0o600)
	r = w.run(nil, "config", "check", "--config", bad)
	if r.Code != 1 || !strings.Contains(r.Stderr, "oidc.client_id: required") || !strings.Contains(r.Stderr, "targets[0].address") {
		t.Fatalf("config check of a bad file: %s", r)
	}
	if r := w.run(nil, "sessions"); r.Code != 1 || !strings.Contains(r.Stderr, "not logged in") {
		t.Fatalf("sessions before login: %s", r)
	}
	if r := w.run(nil, "nonsense"); r.Code != 2 {
		t.Fatalf("unknown command: %s", r)
	}
}

func waitCmd(done <-chan error) error {
	select {
	case err := <-done:
		return err
	case <-time.After(60 * time.Second):
		return fmt.Errorf("timed out")
	}
}
