package bastion_test

import (
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
)

// TestDoorsStartupCardNotInCapture: the wire capture of a PostgreSQL session holds the
// client's StartupMessage; a card number in it (application_name here) is stored masked,
// as every other message the client sent is.
func TestDoorsStartupCardNotInCapture(t *testing.T) {
	p := newPGEnv(t)
	r := testenv.Run(t, 60*time.Second, "", p.pg.Tool(t, "psql"), "-X", "-At",
		p.dsn("application_name='4111 1111 1111 1111'"), "-c", "SELECT 1")
	if r.Code != 0 {
		t.Fatalf("psql: %s", r)
	}
	id := p.endedSession(t, "postgres", "pg1")
	exp := p.ssh("", "bastion", "export", id, "--format", "pcap")
	if exp.Code != 0 {
		t.Fatalf("export: %s", exp)
	}
	if strings.Contains(exp.Stdout, "4111 1111 1111 1111") {
		t.Fatal("the capture holds the card number the client sent in its StartupMessage")
	}
	if !strings.Contains(exp.Stdout, "**** **** **** 1111") {
		t.Error("the capture does not hold the masked application_name")
	}
}
