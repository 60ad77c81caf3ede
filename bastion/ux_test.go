package bastion_test

import (
	"encoding/json"
	"regexp"
	"strings"
	"testing"
)

// TestAdminHelpAndJSONLines: every admin command answers --help on the
// bastion with its usage and exit 0, and --json output is JSON lines.
func TestAdminHelpAndJSONLines(t *testing.T) {
	e := newEnv(t, envOptions{})
	for _, name := range []string{"whoami", "targets", "requests", "approve", "deny", "sessions", "export", "replay", "verify", "audit", "revoke"} {
		t.Run(name+" --help", func(t *testing.T) {
			r := e.ssh("", "bastion", name+" --help")
			if r.Code != 0 || !strings.HasPrefix(r.Stdout, "Usage: bastion "+name) || strings.Contains(r.Stdout+r.Stderr, "Usage of") {
				t.Fatalf("got %s; want its usage and exit 0", r)
			}
		})
	}
	t.Run("targets --json", func(t *testing.T) {
		r := e.ssh("", "bastion", "targets --json")
		lines := strings.Split(strings.TrimSpace(r.Stdout), "\n")
		if r.Code != 0 || len(lines) < 2 {
			t.Fatalf("got %s; want a line per target", r)
		}
		for _, l := range lines {
			var v map[string]any
			if err := json.Unmarshal([]byte(l), &v); err != nil || v["name"] == nil {
				t.Errorf("line %q is not a target object: %v", l, err)
			}
		}
	})
	t.Run("requests --json with none", func(t *testing.T) {
		if r := e.ssh("", "bastion", "requests --json"); r.Code != 0 || r.Stdout != "" {
			t.Errorf("got %s; want no lines", r)
		}
	})
}

// TestPtyWithoutLocalTerminal: ssh -tt without a local terminal (cron, CI)
// asks for a 0x0 pty, which OpenSSH's sshd accepts; so does the bastion.
func TestPtyWithoutLocalTerminal(t *testing.T) {
	e := newEnv(t, envOptions{})
	r := e.ssh("", "-tt", "root@web1", "stty size; echo pty-$((6*7))")
	if r.Code != 0 || !strings.Contains(r.Stdout, "pty-42") {
		t.Fatalf("got %s; want the command run on a pty", r)
	}
	r = e.ssh("", "-tt", "bastion", "whoami")
	if r.Code != 0 || !strings.Contains(r.Stdout, "alice") {
		t.Fatalf("admin command with a 0x0 pty: %s", r)
	}
}

// TestSessionAnnouncedOnlyWhenRecorded: the session ID is announced once
// the recording exists, so it can be listed and replayed; a connection the
// bastion refuses announces none.
func TestSessionAnnouncedOnlyWhenRecorded(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: "rules: [{name: no-rm-rf, on: command, match: {command: \"rm -rf *\"}, action: block}]\n"})
	r := e.ssh("", "deploy@web1", "true")
	if r.Code == 0 || strings.Contains(r.Stderr, "is recorded") {
		t.Fatalf("a refused login: got %s; want a refusal without a session ID", r)
	}
	r = e.ssh("", "root@web1", "echo hello")
	m := regexp.MustCompile(`bastion: session (\S+) is recorded`).FindStringSubmatch(r.Stderr)
	if r.Code != 0 || m == nil {
		t.Fatalf("got %s; want the session announced", r)
	}
	e.waitEnded(t, m[1])
	if v := e.ssh("", "bastion", "verify "+m[1]); v.Code != 0 || !strings.Contains(v.Stdout, "intact") {
		t.Errorf("the announced session %s: %s", m[1], v)
	}
	r = e.ssh("", "-J", "bastion", "root@web9", "true")
	if r.Code == 0 || strings.Contains(r.Stderr, "is recorded") || !strings.Contains(r.Stderr, "(see `bastion targets`)") {
		t.Errorf("an unknown target: got %s; want the refusal pointing at bastion targets, no session ID", r)
	}
}

// TestBlockReasonInRecordedOutput: the message the user saw when a command
// was blocked is in the recording's output, not only in a marker (which
// asciinema ignores).
func TestBlockReasonInRecordedOutput(t *testing.T) {
	e := newEnv(t, envOptions{extraYAML: "rules: [{name: no-rm-rf, on: command, match: {command: \"rm -rf *\"}, action: block}]\n"})
	r := e.ssh("", "root@web1", "rm -rf /tmp/nothing-here")
	m := regexp.MustCompile(`bastion: session (\S+) is recorded`).FindStringSubmatch(r.Stderr)
	if r.Code != 126 || m == nil {
		t.Fatalf("got %s; want exit 126 and a session ID", r)
	}
	e.waitEnded(t, m[1])
	cast := e.ssh("", "bastion", "export "+m[1])
	found := false
	for _, line := range strings.Split(cast.Stdout, "\n") {
		var ev []any
		if json.Unmarshal([]byte(line), &ev) == nil && len(ev) == 3 && ev[1] == "o" && strings.Contains(ev[2].(string), "blocked by rule no-rm-rf") {
			found = true
		}
	}
	if !found {
		t.Errorf("the export has no output event with the block message:\n%s", cast.Stdout)
	}
	// sessions says what the rules did.
	list := e.ssh("", "bastion", "sessions --json")
	var info struct {
		Blocked int `json:"blocked"`
	}
	for _, line := range strings.Split(list.Stdout, "\n") {
		if strings.Contains(line, m[1]) {
			json.Unmarshal([]byte(line), &info)
		}
	}
	if info.Blocked != 1 {
		t.Errorf("sessions --json: blocked %d, want 1:\n%s", info.Blocked, list.Stdout)
	}
	if table := e.ssh("", "bastion", "sessions"); !strings.Contains(table.Stdout, "ended (1 blocked)") {
		t.Errorf("sessions: want STATUS ended (1 blocked):\n%s", table.Stdout)
	}
}
