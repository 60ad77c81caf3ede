package bastion_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
)

// What an approver is shown for a held shell line is what bash runs: output
// from the target that redraws the line after it was typed (a background job)
// must not make the request show other text than the keys bash has.
func TestApprovalShowsWhatRuns(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	bobCfg := e.bobConfig(t)
	dir := t.TempDir()
	p := e.shell(t)
	shown := filepath.Join(dir, "approve-shown")
	real := filepath.Join(dir, "approve-xxxxx")
	// A background job that, two seconds later, redraws the prompt's line.
	ran(t, p, "(sleep 2; printf '\\r\\033[KP> touch "+shown+"') &\r", "P> ")
	p.Send("touch " + real)
	// Enter only once the redraw has come through the bastion (its escape
	// sequence, not the echo of the command that prints it): a fixed pause
	// could end before the job's output on a loaded machine, and the test
	// would then pass without a redraw to be misled by.
	p.Expect("\x1b[KP> touch "+shown, 30*time.Second)
	p.Send("\r")
	m := requestRE.FindStringSubmatch(p.Expect("Ctrl-C cancels", 20*time.Second))
	if m == nil {
		t.Fatal("no request ID")
	}
	r := e.as(bobCfg, "bastion", "requests")
	if !strings.Contains(r.Stdout, "touch "+real) {
		t.Fatalf("the approver is not shown the command bash runs (touch %s): %s", real, r.Stdout)
	}
	// Approved as shown, bash runs the keys it has.
	if r := e.as(bobCfg, "bastion", "approve", m[1]); r.Code != 0 {
		t.Fatalf("approve: %s", r)
	}
	p.Expect("approved by bob", 20*time.Second)
	p.Expect("P> ", 20*time.Second)
	ran(t, p, "echo done-$((2*4))\r", "done-8")
	if !exists(real) || exists(shown) {
		t.Fatalf("ran: %s %v, %s %v; want the typed one", real, exists(real), shown, exists(shown))
	}
}

// `bastion requests` and `bastion approve` show the whole held command: a
// long run of spaces must not push what else runs past a cut.
func TestRequestsShowWholeCommand(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	bobCfg := e.bobConfig(t)
	dir := t.TempDir()
	evil := filepath.Join(dir, "evil")
	command := "touch " + filepath.Join(dir, "approve-ok") + strings.Repeat(" ", 300) + "; touch " + evil
	p := testenv.StartPTY(t, 100, 30, "ssh", "-F", e.cfgPath, "root@web1", command)
	m := requestRE.FindStringSubmatch(p.Expect("Ctrl-C cancels", 20*time.Second))
	if m == nil {
		t.Fatal("no request ID")
	}
	if r := e.as(bobCfg, "bastion", "requests"); !strings.Contains(r.Stdout, "; touch "+evil) {
		t.Errorf("requests does not show the whole command (touch %s):\n%s", evil, r.Stdout)
	}
	r := e.as(bobCfg, "bastion", "deny", m[1])
	if !strings.Contains(r.Stdout, "; touch "+evil) {
		t.Errorf("deny does not show the whole command:\n%s", r.Stdout)
	}
	p.Wait(20 * time.Second)
}

// A held command is shown to its approver whole: an output masking rule
// (here a password pattern) must not hide part of it from the approver,
// who would approve what they cannot see.
func TestHeldCommandNotHiddenByMasking(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules + `  - {name: passwords, on: output, match: {detector: regex, pattern: "password=\\S+"}, action: mask}
`})
	bobCfg := e.bobConfig(t)
	dir := t.TempDir()
	evil := filepath.Join(dir, "evil")
	command := "touch " + filepath.Join(dir, "approve-ok") + " password=x;touch${IFS}" + evil
	p := testenv.StartPTY(t, 100, 30, "ssh", "-F", e.cfgPath, "root@web1", command)
	out, k := p.ExpectAny(20*time.Second, "Ctrl-C cancels", "blocked by rule")
	if k == 0 {
		m := requestRE.FindStringSubmatch(out)
		if m == nil {
			t.Fatal("no request ID")
		}
		r := e.as(bobCfg, "bastion", "requests")
		if !strings.Contains(r.Stdout, evil) {
			e.as(bobCfg, "bastion", "approve", m[1])
			p.Wait(20 * time.Second)
			t.Fatalf("the approver was shown %q, not `touch %s`, which ran on the approval: %v", r.Stdout, evil, exists(evil))
		}
		e.as(bobCfg, "bastion", "deny", m[1])
	}
	p.Wait(20 * time.Second)
	if exists(evil) {
		t.Fatal("the command ran")
	}
	// Card masking hides digits only: such a command is still held.
	command = "touch " + filepath.Join(dir, "approve-4111111111111111")
	p = testenv.StartPTY(t, 100, 30, "ssh", "-F", e.cfgPath, "root@web1", command)
	p.Expect("Ctrl-C cancels", 20*time.Second)
	p.Send("\x03")
	p.Wait(20 * time.Second)
}
