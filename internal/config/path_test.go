package config

import (
	"errors"
	"strings"
	"testing"

	"go.yaml.in/yaml/v3"
)

// TestValueErrorsNameTheField: a value its type cannot read is reported
// with the field's path, not only a line.
func TestValueErrorsNameTheField(t *testing.T) {
	tests := []struct {
		name, yaml, want string
	}{
		{"duration in a flow map", minimal + "certs: {user_ttl: forever}\n", `config: certs.user_ttl: "forever" is not a duration`},
		{"duration in a block map", minimal + "certs:\n  user_ttl: 1h\n  max_user_ttl: soon\n", `config: certs.max_user_ttl: "soon" is not a duration`},
		{"negative", minimal + "sessions: {idle_timeout: -5m}\n", "config: sessions.idle_timeout: \"-5m\" is negative"},
		{"size", minimal + "recording: {max_bytes: lots}\n", `config: recording.max_bytes: "lots" is not a size`},
		{"size in a list item", minimal + "audit:\n  webhook: {url: \"https://s.example\", spool: huge}\n", "config: audit.webhook.spool:"},
		{"rule timeout", minimal + "roles: [{name: r, groups: [g]}]\nrules:\n  - {name: a, on: command, action: block}\n  - {name: b, on: command, action: approve, approvers: [r], timeout: later}\n", "config: rules[1].timeout:"},
		{"duration given a map", minimal + "certs: {user_ttl: {h: 1}}\n", "config: certs.user_ttl: want a duration"},
		{"int given text", minimal + "roles: [{name: r, groups: [g], ports: [ssh]}]\n", "config: roles[0].ports[0]: cannot unmarshal"},
		{"unknown key", minimal + "certs:\n  user_tll: 1h\n", "config: certs.user_tll: field user_tll not found"},
		{"two bad values", minimal + "certs: {user_ttl: x, target_ttl: y}\n", `config: certs.user_ttl: "x"`},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatal("accepted")
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Errorf("got %q, want it to contain %q", err, tc.want)
			}
			if !strings.Contains(err.Error(), "(line ") {
				t.Errorf("got %q, want the line too", err)
			}
			var errs Errors
			if !errors.As(err, &errs) {
				t.Errorf("got %T, want config.Errors", err)
			}
		})
	}
}

func TestPathAt(t *testing.T) {
	doc := `a: 1
b:
  c: x
  d: [p, q]
e:
  - {f: 1, g: 2}
  - h: 3
    i:
      j: k
`
	var root yaml.Node
	if err := yaml.Unmarshal([]byte(doc), &root); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		line, col int
		want      string
	}{
		{1, 0, "a"}, {1, 4, "a"}, {3, 0, "b.c"}, {4, 7, "b.d[0]"}, {4, 10, "b.d[1]"}, {4, 6, "b.d"},
		{6, 0, "e[0].f"}, {6, 12, "e[0].g"}, {7, 0, "e[1].h"}, {9, 0, "e[1].i.j"}, {42, 0, ""},
	}
	for _, tc := range tests {
		if got := pathAt(&root, position(tc.line, tc.col)); got != tc.want {
			t.Errorf("pathAt(line %d, column %d): got %q, want %q", tc.line, tc.col, got, tc.want)
		}
	}
}
