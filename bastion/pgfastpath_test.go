package bastion_test

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/bastionhq/bastion/internal/testenv"
)

// A fastpath function call (FunctionCall: libpq's PQfn, the large-object
// functions) names its function by OID and carries its arguments outside any
// SQL text, so it follows the rules' unknowable action: held for approval by
// default. Its approver must see which function runs and with which values,
// as for an execution of a prepared statement; before, the request read
// "-- fastpath function call (function OID 16390)" and an approval ran the
// function with arguments nobody was shown.
func TestPostgresApprovalShowsFastpathCall(t *testing.T) {
	testenv.RequirePostgres(t)
	e := newEnv(t, envOptions{pgTarget: true, extraYAML: `
rules:
  - {name: secrets, on: sql, match: {tables: ["secret*"]}, action: approve, approvers: [approvers], timeout: 60s}
`})
	p := &pgEnv{env: e, pg: e.pg, lport: e.forwardPG(t)}
	p.pg.ExecIn(t, "shop", `CREATE FUNCTION set_key(v text) RETURNS int LANGUAGE sql AS $$UPDATE secret_keys SET value = v WHERE name = 'api' RETURNING 1$$;
		GRANT EXECUTE ON FUNCTION set_key(text) TO app`)
	var oid uint32
	fmt.Sscan(p.pg.QueryStrings(t, "shop", "SELECT 'set_key'::regproc::oid")[0], &oid)
	bobCfg := p.bobConfig(t)
	value := func() string {
		return p.pg.QueryStrings(t, "shop", "SELECT value FROM secret_keys WHERE name = 'api'")[0]
	}

	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	pc, err := pgconn.Connect(ctx, p.dsn(""))
	if err != nil {
		t.Fatal(err)
	}
	hj, err := pc.Hijack()
	if err != nil {
		t.Fatal(err)
	}
	defer hj.Conn.Close()
	fe := hj.Frontend
	// call makes the fastpath call and, meanwhile, has bob decide each request
	// it raises: approve when approve says yes to what he is shown.
	call := func(arg string, approve func(shown string) bool) (shown []string) {
		fe.Send(&pgproto3.FunctionCall{Function: oid, ArgFormatCodes: []uint16{0}, Arguments: [][]byte{[]byte(arg)}})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		done := make(chan string, 1)
		go func() {
			var got []string
			for {
				m, err := fe.Receive()
				if err != nil {
					done <- err.Error()
					return
				}
				switch m := m.(type) {
				case *pgproto3.ErrorResponse:
					got = append(got, m.Code)
				case *pgproto3.FunctionCallResponse:
					got = append(got, "result "+string(m.Result))
				case *pgproto3.ReadyForQuery:
					done <- strings.Join(got, " ")
					return
				}
			}
		}()
		seen := map[string]bool{}
		for {
			select {
			case got := <-done:
				t.Logf("fastpath call: %s", got)
				return shown
			case <-time.After(200 * time.Millisecond):
			}
			r := p.as(bobCfg, "bastion", "requests", "--json")
			for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
				var req struct{ ID, Command string }
				if line == "" || json.Unmarshal([]byte(line), &req) != nil || seen[req.ID] {
					continue
				}
				seen[req.ID] = true
				shown = append(shown, req.Command)
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
	// An approver who refuses what shows the attacker's value, or shows no
	// value at all, lets nothing run.
	shown := call("attacker-chosen", func(s string) bool {
		return !strings.Contains(s, "attacker-chosen") && strings.Contains(s, "$1 = ")
	})
	if len(shown) != 1 {
		t.Fatalf("want one request, got %q", shown)
	}
	if v := value(); v != "k-123" {
		t.Fatalf("the fastpath call ran with a value its approver was not shown: value = %q (shown %q)", v, shown)
	}
	if !strings.Contains(shown[0], "set_key(text)") {
		t.Errorf("the request does not name the function that runs: %q", shown[0])
	}
	// Shown whole, approved, it runs.
	shown = call("rotated", func(s string) bool {
		return strings.Contains(s, "set_key(text)") && strings.Contains(s, "$1 = 'rotated'")
	})
	if v := value(); v != "rotated" {
		t.Errorf("approved with its function and value shown: value = %q, want rotated (shown %q)", v, shown)
	}
}
