package bastion_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
)

// An approver of a prepared statement sees the values it runs with: pgx
// prepares (Parse) and then executes (Bind) with its arguments, psql can
// PREPARE and EXECUTE, and neither may run on an approval given before the
// values were shown.
func TestPostgresApprovalShowsBoundValues(t *testing.T) {
	p := newPGEnv(t)
	bobCfg := p.bobConfig(t)
	value := func() string {
		got := p.pg.QueryStrings(t, "shop", "SELECT value FROM secret_keys WHERE name = 'api'")
		if len(got) != 1 {
			t.Fatalf("secret_keys: %v", got)
		}
		return got[0]
	}
	// decide runs f, approving the requests approve says yes to (an approver
	// who approves what does not show a value they would refuse) and denying
	// the others, and returns how many requests were made.
	decide := func(f func() error, approve func(shown string) bool) int {
		t.Helper()
		done := make(chan error, 1)
		go func() { done <- f() }()
		seen := map[string]bool{}
		for {
			select {
			case err := <-done:
				if err != nil {
					t.Logf("statement: %v", err)
				}
				return len(seen)
			case <-time.After(200 * time.Millisecond):
			}
			r := p.as(bobCfg, "bastion", "requests", "--json")
			for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
				var req struct{ ID, Command string }
				if line == "" || json.Unmarshal([]byte(line), &req) != nil || seen[req.ID] {
					continue
				}
				seen[req.ID] = true
				t.Logf("the approver is shown %q", req.Command)
				verb := "deny"
				if approve(req.Command) {
					verb = "approve"
				}
				if r := p.as(bobCfg, "bastion", verb, req.ID); r.Code != 0 {
					t.Fatalf("%s: %s", verb, r)
				}
			}
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	conn, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app@127.0.0.1:%d/shop?sslmode=disable", p.lport))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	update := func(v string) func() error {
		return func() error {
			_, err := conn.Exec(ctx, "UPDATE secret_keys SET value = $1 WHERE name = $2", v, "api")
			return err
		}
	}

	// Refused whenever its value is shown, it does not run.
	decide(update("attacker-chosen"), func(s string) bool { return !strings.Contains(s, "attacker-chosen") })
	if v := value(); v != "k-123" {
		t.Fatalf("the update ran with values no approver was shown: value = %q", v)
	}
	// One request, with the values: approved, it runs.
	if n := decide(update("rotated"), func(s string) bool { return strings.Contains(s, "-- parameters: $1 = 'rotated', $2 = 'api'") }); n != 1 || value() != "rotated" {
		t.Errorf("approved with its values shown: %d requests, value %q; want 1, rotated", n, value())
	}
	// SQL PREPARE and EXECUTE: the EXECUTE's value is what is approved.
	decide(func() error {
		r := p.psql(t, "", "-c", "PREPARE d(text) AS UPDATE secret_keys SET value = $1 WHERE name = 'api'", "-c", "EXECUTE d('via-prepare')")
		if r.Code != 0 {
			return fmt.Errorf("%s", r.Stderr)
		}
		return nil
	}, func(s string) bool { return !strings.Contains(s, "via-prepare") })
	if v := value(); v != "rotated" {
		t.Fatalf("the EXECUTE ran with a value no approver was shown: value = %q", v)
	}
	// A card number bound in binary (pgx sends an int8 as eight bytes) is
	// masked in the request as one in the text is: shown in hex, it would be
	// in the approvals list, the webhook and the audit log whole.
	const card = 4111111111111111
	var shown []string
	decide(func() error {
		_, err := conn.Exec(ctx, "UPDATE secret_keys SET value = $1 WHERE name = 'api' AND $2::int8 <> 0", "by-card", int64(card))
		return err
	}, func(s string) bool { shown = append(shown, s); return false })
	if len(shown) != 1 || strings.Contains(shown[0], fmt.Sprintf("%016x", card)) || !strings.Contains(shown[0], "$1 = 'by-card'") {
		t.Errorf("a card number bound in binary is shown to the approver unmasked (or the request is not the one): %q", shown)
	}
}
