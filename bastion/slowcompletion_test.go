package bastion_test

import (
	"os"
	"path/filepath"
	"testing"
	"time"
)

// A key whose effect the guard cannot follow (Tab's completion) may change
// the line after the guard has read it: bash reads the Enter that follows
// only once the completion is done. Found: a completion that took longer
// than the guard's wait for the echo (here a completion function that
// sleeps, set up in the shell's rc file) was judged as the line before
// it, "x", and then bash put rm -rf in its place and ran it. The guard now
// waits for the shell to answer such a key, and a line whose keys it never
// answered gets the rules' unknowable action.
func TestGuardrailsSlowCompletion(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: controlRules})
	dir := t.TempDir()
	victim := filepath.Join(dir, "victim")
	rc := filepath.Join(dir, "rc")
	if err := os.WriteFile(rc, []byte("PS1='P''> '\nf() { sleep 3; COMPREPLY=('rm -rf "+victim+"'); }\ncomplete -o nospace -I -F f\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	p := e.shell(t)
	p.Send("cd " + dir + "\r")
	p.Expect("P> ", 20*time.Second)
	p.Type("exec bash --rcfile "+rc+" -i\r", keyGap)
	p.Expect("P> ", 20*time.Second)
	time.Sleep(500 * time.Millisecond)
	os.MkdirAll(victim, 0o755)
	p.Type("x\t\r", keyGap)
	out, k := p.ExpectAny(30*time.Second, seenBlocked, seenHeld, seenUnreadable)
	if k == 1 {
		p.Send("\x03")
		out += p.Expect("cancelled", 30*time.Second)
	}
	time.Sleep(4 * time.Second) // the completion's sleep, and what follows it
	if !exists(victim) {
		t.Fatalf("a slow completion put rm -rf in the line after the guard judged it:\n%s\n%s", out, p.Output())
	}
}
