package bastion_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/testenv"
)

const controlRules = `
rules:
  - {name: no-rm-rf, on: command, match: {command: "rm -rf *"}, action: block}
  - {name: held, on: command, match: {regex: "^touch .*/approve"}, action: approve, approvers: [approvers], timeout: 60s}
  - {name: quick, on: command, match: {regex: "^touch .*/quick"}, action: approve, approvers: [approvers], timeout: 2s}
  - {name: cards, on: output, match: {detector: credit_card}, action: mask}
`

func exists(p string) bool { _, err := os.Stat(p); return err == nil }

func TestBlockedExec(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	for _, cmd := range []string{
		"rm -rf " + victim,
		"ls /; rm -rf " + victim,
		"true && rm -rf " + victim,
		"false || rm -fr " + victim,
		"bash -c 'rm -r -f " + victim + "'",
		`"rm" -rf ` + victim,
		`r\m -rf ` + victim,
		`$'\x72\x6d' -rf ` + victim,
		"sudo rm -rf " + victim,
		"echo $(rm -rf " + victim + ")",
		"nice -n 5 env X=1 rm -Rf " + victim,
	} {
		t.Run(cmd, func(t *testing.T) {
			os.MkdirAll(victim, 0o755)
			r := e.ssh("", "root@web1", cmd)
			if r.Code != 126 {
				t.Errorf("exit %d, want 126: %s", r.Code, r)
			}
			mustContain(t, "stderr", r.Stderr, "blocked by rule no-rm-rf")
			if !exists(victim) {
				t.Fatal("the blocked command ran: the victim is gone")
			}
		})
	}
	r := e.ssh("", "root@web1", "rm -r "+victim+" && echo removed")
	if r.Code != 0 || !strings.Contains(r.Stdout, "removed") || exists(victim) {
		t.Fatalf("an allowed command did not run: %s", r)
	}
}

func TestBlockedInteractive(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	os.MkdirAll(victim, 0o755)
	after := filepath.Join(dir, "after")
	p := e.shell(t)

	// Plain, then with editing: backspace over a harmless word, Ctrl-U.
	for _, keys := range []string{
		"rm -rf " + victim + "\r",
		"rm -rf " + victim + "xx\x7f\x7f\r",
		"echo harmless\x15rm -rf " + victim + "\r",
		"ls \x01rm -rf " + victim + " #\r", // Ctrl-A: insert at the start
	} {
		p.Send(keys)
		p.Expect("blocked by rule no-rm-rf", 20*time.Second)
		p.Expect("P> ", 20*time.Second)
		if !exists(victim) {
			t.Fatalf("%q ran", keys)
		}
	}
	// A line continued with a backslash is judged whole.
	p.Send("rm -rf \\\r")
	p.Expect("> ", 20*time.Second)
	p.Send(victim + "\r")
	p.Expect("blocked by rule no-rm-rf", 20*time.Second)
	p.Expect("P> ", 20*time.Second)
	if !exists(victim) {
		t.Fatal("a continued line ran")
	}
	// History recall: an allowed command, then the blocked one recalled.
	p.Send("echo first-$((1+1))\r")
	p.Expect("first-2", 20*time.Second)
	p.Expect("P> ", 20*time.Second)
	p.Send("rm -rf " + victim + "\r")
	p.Expect("blocked by rule no-rm-rf", 20*time.Second)
	p.Expect("P> ", 20*time.Second)
	p.Send("\x1b[A\r") // Up: bash recalls... the blocked line was never run, so history holds echo first
	p.Expect("first-2", 20*time.Second)
	p.Expect("P> ", 20*time.Second)

	// A multi-line paste with a blocked line: nothing of it runs.
	p.Send("touch " + after + "-1\rrm -rf " + victim + "\rtouch " + after + "-2\r")
	p.Expect("blocked by rule no-rm-rf", 20*time.Second)
	p.Expect("P> ", 20*time.Second)
	p.Send("echo marker-$((2+3))\r")
	p.Expect("marker-5", 20*time.Second)
	p.Expect("P> ", 20*time.Second)
	if !exists(victim) || exists(after+"-1") || exists(after+"-2") {
		t.Fatalf("the paste ran: victim %v, after-1 %v, after-2 %v", exists(victim), exists(after+"-1"), exists(after+"-2"))
	}
	// An allowed command still runs.
	p.Send("rm -r " + victim + "; echo gone-$((3+4))\r")
	p.Expect("gone-7", 20*time.Second)
	if exists(victim) {
		t.Fatal("the allowed command did not run")
	}
	p.Expect("P> ", 20*time.Second)
	p.Send("exit\r")
	p.Wait(20 * time.Second)
}

var requestRE = regexp.MustCompile(`request ([0-9a-f]{8})`)

// bob is an approver (group sre).
func (e *env) bobConfig(t *testing.T) string {
	bob := e.userKey("bob", ca.Identity{User: "bob", Issuer: "https://idp.test", Subject: "u-bob", Groups: []string{"sre"}}, 0)
	return e.writeSSHConfig("bob", bob)
}

func (e *env) as(cfg string, args ...string) testenv.Result {
	e.t.Helper()
	return testenv.Run(e.t, 30*time.Second, "", "ssh", append([]string{"-F", cfg}, args...)...)
}

func TestApprovalExec(t *testing.T) {
	hooks := make(chan map[string]any, 10)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m map[string]any
		json.NewDecoder(r.Body).Decode(&m)
		hooks <- m
	}))
	defer hook.Close()
	e := newEnv(t, envOptions{extraYAML: controlRules + "approvals: {webhook: \"" + hook.URL + "\"}\n"})
	bobCfg := e.bobConfig(t)
	e.writeSSHConfig("alice", e.alice)
	dir := t.TempDir()

	start := func(name string) (*testenv.PTY, string) {
		p := testenv.StartPTY(t, 100, 30, "ssh", "-F", e.cfgPath, "root@web1", "touch "+filepath.Join(dir, name)+" && echo ran-"+name)
		out := p.Expect("Ctrl-C cancels", 20*time.Second)
		m := requestRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatalf("no request ID in %q", out)
		}
		return p, m[1]
	}

	t.Run("approved", func(t *testing.T) {
		p, id := start("approved")
		time.Sleep(200 * time.Millisecond)
		if exists(filepath.Join(dir, "approved")) {
			t.Fatal("the held command ran before approval")
		}
		// The requester cannot approve it.
		if r := e.ssh("", "bastion", "approve", id); r.Code == 0 || !strings.Contains(r.Stderr, "own request") {
			t.Fatalf("self-approval: %s", r)
		}
		// With the login it runs as: rm -rf as root is not rm -rf as deploy.
		if r := e.as(bobCfg, "bastion", "requests"); !strings.Contains(r.Stdout, id) || !strings.Contains(r.Stdout, "web1 as root") {
			t.Fatalf("requests does not list %s on web1 as root: %s", id, r)
		}
		select {
		case m := <-hooks:
			if m["id"] != id || m["user"] != "alice" || m["rule"] != "held" || !strings.Contains(m["command"].(string), "approved") {
				t.Errorf("webhook got %v", m)
			}
		case <-time.After(10 * time.Second):
			t.Error("the webhook was not called")
		}
		if r := e.as(bobCfg, "bastion", "approve", id); r.Code != 0 {
			t.Fatalf("approve: %s", r)
		}
		p.Expect("ran-approved", 20*time.Second)
		if code := p.Wait(20 * time.Second); code != 0 {
			t.Fatalf("exit %d", code)
		}
		// Single use.
		if r := e.as(bobCfg, "bastion", "approve", id); r.Code == 0 {
			t.Fatalf("a second approval was accepted: %s", r)
		}
	})
	t.Run("denied", func(t *testing.T) {
		p, id := start("approve-denied")
		if r := e.as(bobCfg, "bastion", "deny", id, "--reason", "'not today'"); r.Code != 0 {
			t.Fatalf("deny: %s", r)
		}
		p.Expect("not today", 20*time.Second)
		if code := p.Wait(20 * time.Second); code != 126 {
			t.Fatalf("exit %d, want 126", code)
		}
		if exists(filepath.Join(dir, "approve-denied")) {
			t.Fatal("a denied command ran")
		}
	})
	t.Run("timed out", func(t *testing.T) {
		p, id := start("quick-timeout")
		p.Expect("timed out", 20*time.Second)
		if code := p.Wait(20 * time.Second); code != 126 {
			t.Fatalf("exit %d, want 126", code)
		}
		if r := e.as(bobCfg, "bastion", "approve", id); r.Code == 0 {
			t.Fatalf("an expired request was approved: %s", r)
		}
		if exists(filepath.Join(dir, "quick-timeout")) {
			t.Fatal("a timed-out command ran")
		}
	})
}

func TestApprovalShell(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	bobCfg := e.bobConfig(t)
	e.writeSSHConfig("alice", e.alice)
	dir := t.TempDir()
	p := e.shell(t)

	p.Send("touch " + filepath.Join(dir, "approve-shell") + "\r")
	m := requestRE.FindStringSubmatch(p.Expect("Ctrl-C cancels", 20*time.Second))
	if m == nil {
		t.Fatal("no request ID")
	}
	p.Send("echo typed-while-waiting\r") // must not reach the target
	if r := e.as(bobCfg, "bastion", "approve", m[1]); r.Code != 0 {
		t.Fatalf("approve: %s", r)
	}
	p.Expect("approved by bob", 20*time.Second)
	p.Expect("P> ", 20*time.Second)
	p.Send("echo after-$((5*5))\r")
	p.Expect("after-25", 20*time.Second)
	p.Expect("P> ", 20*time.Second)
	if !exists(filepath.Join(dir, "approve-shell")) {
		t.Fatal("the approved shell command did not run")
	}
	if strings.Contains(p.Output(), "typed-while-waiting\r\n") && strings.Count(p.Output(), "typed-while-waiting") > 1 {
		t.Fatal("keys typed while waiting were forwarded")
	}

	p.Send("touch " + filepath.Join(dir, "approve-denied") + "\r")
	m = requestRE.FindStringSubmatch(p.Expect("Ctrl-C cancels", 20*time.Second))
	if r := e.as(bobCfg, "bastion", "deny", m[1]); r.Code != 0 {
		t.Fatalf("deny: %s", r)
	}
	p.Expect("denied by bob", 20*time.Second)
	p.Expect("P> ", 20*time.Second)

	// Ctrl-C cancels a held line.
	p.Send("touch " + filepath.Join(dir, "approve-cancelled") + "\r")
	p.Expect("Ctrl-C cancels", 20*time.Second)
	p.Send("\x03")
	p.Expect("cancelled", 20*time.Second)
	p.Expect("P> ", 20*time.Second)
	p.Send("echo still-here\r")
	p.Expect("still-here", 20*time.Second)
	p.Expect("P> ", 20*time.Second)
	p.Send("exit\r")
	p.Wait(20 * time.Second)
	if exists(filepath.Join(dir, "approve-denied")) || exists(filepath.Join(dir, "approve-cancelled")) {
		t.Fatal("a refused shell command ran")
	}
}

func TestMasking(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	// Card numbers plain, spaced, dashed, coloured, and split across writes.
	script := `printf '4111111111111111\n'; printf '5500 0000 0000 0004\n'; printf '3782-822463-10005\n'; ` +
		`printf '\033[31m4012\033[0m 8888 8888 1881\n'; printf '6011 0000 '; sleep 0.2; printf '0000 0004\n'; ` +
		`printf 'order 1234567890123 not a card\n'`
	r := e.ssh("", "root@web1", script)
	if r.Code != 0 {
		t.Fatalf("%s", r)
	}
	for _, pan := range []string{"4111111111111111", "5500 0000 0000 0004", "3782-822463-10005", "8888 8888 1881", "6011 0000 0000 0004"} {
		if strings.Contains(r.Stdout, pan) {
			t.Errorf("screen shows %q:\n%s", pan, r.Stdout)
		}
	}
	for _, masked := range []string{"************1111", "**** **** **** 0004", "****-******-*0005", "6011 0000 "} {
		_ = masked
	}
	mustContain(t, "screen", r.Stdout, "************1111", "**** **** **** 0004", "order 1234567890123 not a card")
	// And the recording at rest holds no card numbers either.
	out := e.ssh("", "bastion", "sessions", "--json")
	id := regexp.MustCompile(`"id":"([0-9A-Z]+)"`).FindStringSubmatch(out.Stdout)
	if id == nil {
		t.Fatalf("no session: %s", out)
	}
	e.waitEnded(t, id[1])
	exp := e.ssh("", "bastion", "export", id[1])
	if exp.Code != 0 {
		t.Fatal(exp)
	}
	// Output events hold no card number in any form; the command line
	// (in the header and markers) holds none in the plain forms.
	var output strings.Builder
	for _, line := range strings.Split(exp.Stdout, "\n")[1:] {
		var ev []any
		if json.Unmarshal([]byte(line), &ev) == nil && len(ev) == 3 && ev[1] == "o" {
			output.WriteString(ev[2].(string))
		}
	}
	for _, digits := range []string{"4111111111111111", "5500 0000 0000 0004", "3782-822463-10005", "4012", "8888 8888 1881", "6011 0000 0000 0004"} {
		if strings.Contains(output.String(), digits) {
			t.Errorf("the recorded output holds %q", digits)
		}
	}
	for _, digits := range []string{"4111111111111111", "5500 0000 0000 0004", "3782-822463-10005"} {
		if strings.Contains(exp.Stdout, digits) {
			t.Errorf("the recording holds %q", digits)
		}
	}
	mustContain(t, "recording", exp.Stdout, "bastion: masked")
	_ = fmt.Sprint
}

// TestMaskingInvisibleBytes: a card number with bytes between its digits
// that a terminal does not draw is masked too: a UTF-16LE file (NUL after
// every character, as Windows PowerShell 5.1's > writes), and SI, DEL,
// U+200B or an 8-bit CSI in UTF-8 between the groups. With those bytes
// taken out, the output holds no card number, only its masked form.
func TestMaskingInvisibleBytes(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	utf16 := []byte{0xff, 0xfe} // the byte order mark
	for _, c := range []byte("name,card\r\nAda,4111111111111111\r\n") {
		utf16 = append(utf16, c, 0)
	}
	file := filepath.Join(t.TempDir(), "cards-utf16.csv")
	if err := os.WriteFile(file, utf16, 0o644); err != nil {
		t.Fatal(err)
	}
	invisible := regexp.MustCompile("\x00|\x0f|\x7f|\u200b|\xc2\x9b[0-?]*[ -/]*[@-~]")
	for _, cmd := range []string{
		"cat " + file,
		`printf '4111\0171111\0171111\0171111\n'`,
		`printf '4111\1771111\1771111\1771111\n'`,
		`printf '4111\342\200\2131111\342\200\2131111\342\200\2131111\n'`,
		`printf '4111\302\2330m1111\302\2330m1111\302\2330m1111\n'`,
	} {
		t.Run(cmd, func(t *testing.T) {
			r := e.ssh("", "root@web1", cmd)
			if r.Code != 0 {
				t.Fatalf("%s", r)
			}
			screen := invisible.ReplaceAllString(r.Stdout, "")
			if strings.Contains(screen, "4111111111111111") {
				t.Fatalf("the screen shows the card number: %q", r.Stdout)
			}
			mustContain(t, "screen", screen, "************1111")
		})
	}
}

// shell starts an interactive shell on web1 and waits for its prompt
// before typing, as a person does.
func (e *env) shell(t *testing.T) *testenv.PTY {
	p := testenv.StartPTY(t, 120, 30, "ssh", "-F", e.cfgPath, "-tt", "root@web1")
	p.Expect("# ", 30*time.Second)
	p.Send("PS1='P''> '\r") // the echo of this line does not contain the prompt
	p.Expect("P> ", 20*time.Second)
	return p
}

// A shell without a pty reads plain lines: each is judged whole before any
// of it is forwarded.
func TestBlockedShellWithoutPty(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	victim := filepath.Join(t.TempDir(), "victim")
	os.MkdirAll(victim, 0o755)
	script := "echo one\nrm -rf " + victim + "\nif true; then\n  rm -rf " + victim + "\nfi\necho 'two\nlines'\n"
	r := e.ssh(script, "-T", "root@web1")
	if !exists(victim) {
		t.Fatalf("a blocked line ran: %s", r)
	}
	mustContain(t, "stdout", r.Stdout, "one\n", "two\nlines\n")
	if strings.Count(r.Stderr, "blocked by rule no-rm-rf") != 2 {
		t.Fatalf("want two blocks: %s", r)
	}
	// An exec of a shell reading its commands from stdin is a shell too.
	for _, cmd := range []string{"bash", "sh -s", "sudo -i", "bash -l"} {
		r = e.ssh("echo via-"+strings.Fields(cmd)[0]+"\nrm -rf "+victim+"\n", "root@web1", cmd)
		if !exists(victim) {
			t.Fatalf("%s: a blocked line ran: %s", cmd, r)
		}
		if !strings.Contains(r.Stderr, "blocked by rule no-rm-rf") {
			t.Errorf("%s: not judged: %s", cmd, r)
		}
	}
}

// A reload applies to the next command of a live session.
func TestReloadAppliesToLiveSession(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	p := e.shell(t)
	p.Send("echo before-$((1+1))\r")
	p.Expect("before-2", 20*time.Second)
	p.Expect("P> ", 20*time.Second)
	cfg := *e.app.Config
	cfg.Rules = append(cfg.Rules[:len(cfg.Rules):len(cfg.Rules)], config.Rule{Name: "no-echo", On: "command", Action: "block", Match: config.RuleMatch{Commands: []string{"echo"}}})
	if err := e.app.Reload(&cfg); err != nil {
		t.Fatal(err)
	}
	p.Send("echo after-$((1+1))\r")
	p.Expect("blocked by rule no-echo", 20*time.Second)
	if strings.Contains(p.Output(), "after-2") {
		t.Fatal("the reloaded rule did not apply")
	}
}

// Lines typed before the shell drew its prompt (type-ahead racing the
// previous command's output) are judged on their keys, not on a garbled
// screen: a held command stays held.
func TestTypeAheadRace(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	dir := t.TempDir()
	p := e.shell(t)
	for i := 0; i < 5; i++ {
		// Type the next line the moment the output appears, before "P> ".
		p.Send(fmt.Sprintf("echo out-%d\r", i))
		p.Expect(fmt.Sprintf("out-%d\r\n", i), 20*time.Second)
		p.Send("touch " + filepath.Join(dir, fmt.Sprintf("approve-race-%d", i)) + "\r")
		// Judged on its keys, exactly: held, whatever the screen showed.
		p.Expect("Ctrl-C cancels", 20*time.Second)
		time.Sleep(300 * time.Millisecond)
		if exists(filepath.Join(dir, fmt.Sprintf("approve-race-%d", i))) {
			t.Fatalf("round %d: a held command ran without approval; output:\n%q", i, p.Output())
		}
		p.Send("\x03")
		p.Expect("cancelled", 20*time.Second)
		p.Expect("P> ", 20*time.Second)
	}
}
