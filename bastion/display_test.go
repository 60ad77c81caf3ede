package bastion_test

import (
	"path/filepath"
	"strings"
	"testing"
	"time"
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
	time.Sleep(3 * time.Second)
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
