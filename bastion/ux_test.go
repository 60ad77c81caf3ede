package bastion_test

import (
	"encoding/json"
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
