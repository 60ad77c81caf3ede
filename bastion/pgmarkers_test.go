package bastion_test

import (
	"strings"
	"testing"
)

// TestPostgresMarkersMasked: a blocked statement's recording marker carried its
// normalised text, and normalisation keeps the constants of many statements (COPY …
// PROGRAM, PREPARE, CREATE VIEW, DEFAULT and CHECK expressions) and every identifier:
// a card number typed there was stored in the recording, which masks it everywhere else.
func TestPostgresMarkersMasked(t *testing.T) {
	p := newPGEnv(t)
	r := p.psql(t, "COPY orders FROM PROGRAM 'echo 4111111111111111';\nDROP TABLE \"4111 1111 1111 1111\";\n", "-v", "ON_ERROR_STOP=0", "-f", "-")
	if !strings.Contains(r.Stderr, "no-server-access") || !strings.Contains(r.Stderr, "no-drop") {
		t.Fatalf("psql: %s", r)
	}
	id := p.endedSession(t, "postgres", "pg1")
	exp := p.ssh("", "bastion", "export", id)
	mustContain(t, "export", exp.Stdout, "blocked by rule no-server-access", "blocked by rule no-drop")
	if strings.Contains(exp.Stdout, "4111111111111111") || strings.Contains(exp.Stdout, "4111 1111 1111 1111") {
		t.Errorf("the recording holds a card number:\n%s", exp.Stdout)
	}
}
