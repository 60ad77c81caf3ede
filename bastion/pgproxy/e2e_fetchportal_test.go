package pgproxy

import (
	"context"
	"strings"
	"sync"
	"testing"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/bastionhq/bastion/internal/testenv"
)

// TestFetchRunsHeldPortal: a portal bound through the protocol from a statement that
// needs approval per execution must not run before that execution is approved. SQL can
// run a protocol portal by its name without any Execute (FETCH, MOVE, a PL/pgSQL FETCH
// or MOVE of a refcursor holding the name), so the approval is asked at the Bind, with
// the values bound, and a denied Bind never creates the portal. Before, the approval
// was asked at the Execute, and FETCH ALL FROM p ran a DELETE ... RETURNING unasked.
func TestFetchRunsHeldPortal(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app", "other", "priv"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": guardSeed + "CREATE TABLE v2 (id int); GRANT ALL ON v2 TO app;"},
	})
	var mu sync.Mutex
	var asked []Statement
	allow := false
	h := startProxy(t, pg, func(c *Config) {
		c.Judge = func(ctx context.Context, st Statement) Verdict {
			if !st.Has("delete") {
				return guardJudge(ctx, st)
			}
			if Prepares(st) && HasPlaceholders(st.SQL) {
				return Verdict{Action: Hold, Rule: "deletes-need-approval", AtExecution: true}
			}
			return Verdict{Action: Hold, Rule: "deletes-need-approval", RequestID: "r1",
				Wait: func(ctx context.Context) (Verdict, error) {
					mu.Lock()
					defer mu.Unlock()
					asked = append(asked, st)
					if allow {
						return Verdict{Action: Allow, Rule: "deletes-need-approval"}, nil
					}
					return Verdict{Action: Block, Rule: "deletes-need-approval", Message: "denied"}, nil
				}}
		}
	})
	reseed := func() { pg.ExecIn(t, "shop", "DELETE FROM v2; INSERT INTO v2 SELECT generate_series(1, 9)") }
	left := func() string { return pg.QueryStrings(t, "shop", "SELECT count(*) FROM v2")[0] }
	for _, fetch := range []string{
		"FETCH ALL FROM p",
		"MOVE ALL IN p",
		"SELECT 1; FETCH ALL FROM p",
		"DO $$DECLARE r refcursor := 'p'; BEGIN MOVE LAST IN r; END$$",
	} {
		t.Run(fetch, func(t *testing.T) {
			reseed()
			c := h.raw(t, "app", "shop")
			c.send(t, &pgproto3.Query{String: "BEGIN"})
			c.untilReady(t)
			c.send(t, &pgproto3.Parse{Name: "s1", Query: "DELETE FROM v2 WHERE id > $1 RETURNING id", ParameterOIDs: []uint32{23}},
				&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s1", Parameters: [][]byte{[]byte("0")}}, &pgproto3.Sync{})
			if got, want := c.untilReady(t), "ParseComplete ErrorResponse(42501) ReadyForQuery(E)"; got != want {
				t.Errorf("Bind of a denied execution: got %s, want %s", got, want)
			}
			c.send(t, &pgproto3.Query{String: "ROLLBACK"})
			c.untilReady(t)
			c.send(t, &pgproto3.Query{String: "BEGIN"})
			c.untilReady(t)
			c.send(t, &pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s1", Parameters: [][]byte{[]byte("0")}}, &pgproto3.Sync{})
			c.untilReady(t)
			c.send(t, &pgproto3.Query{String: fetch})
			got := c.untilReady(t)
			c.send(t, &pgproto3.Query{String: "COMMIT"})
			c.untilReady(t)
			if n := left(); n != "9" {
				t.Fatalf("%s ran the portal's DELETE without approval: %s rows of 9 left (%s)", fetch, n, got)
			}
		})
	}

	// Approved at its Bind, the portal runs once, by Execute or by FETCH, with its
	// values shown to the approver.
	mu.Lock()
	allow, asked = true, nil
	mu.Unlock()
	reseed()
	c := h.raw(t, "app", "shop")
	c.send(t, &pgproto3.Query{String: "BEGIN"})
	c.untilReady(t)
	c.send(t, &pgproto3.Parse{Name: "s1", Query: "DELETE FROM v2 WHERE id > $1 RETURNING id", ParameterOIDs: []uint32{23}},
		&pgproto3.Bind{DestinationPortal: "p", PreparedStatement: "s1", Parameters: [][]byte{[]byte("7")}},
		&pgproto3.Describe{ObjectType: 'P', Name: "p"}, &pgproto3.Execute{Portal: "p", MaxRows: 1}, &pgproto3.Execute{Portal: "p"}, &pgproto3.Sync{})
	if got, want := c.untilReady(t), "ParseComplete BindComplete RowDescription DataRow PortalSuspended DataRow CommandComplete(DELETE 1) ReadyForQuery(T)"; got != want {
		t.Errorf("approved portal: got %s, want %s", got, want)
	}
	c.send(t, &pgproto3.Bind{DestinationPortal: "q", PreparedStatement: "s1", Parameters: [][]byte{[]byte("5")}}, &pgproto3.Sync{})
	c.untilReady(t)
	c.send(t, &pgproto3.Query{String: "FETCH ALL FROM q"})
	if got := c.untilReady(t); !strings.Contains(got, "FETCH 2") {
		t.Errorf("FETCH of an approved portal: %s", got)
	}
	c.send(t, &pgproto3.Query{String: "COMMIT"})
	c.untilReady(t)
	if n := left(); n != "5" {
		t.Errorf("%s rows left, want 5", n)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(asked) != 2 || strings.Join(asked[0].Params, ",") != "'7'" || strings.Join(asked[1].Params, ",") != "'5'" || asked[0].Protocol != "execute" {
		t.Errorf("approvals asked: %+v, want two, with the values bound", asked)
	}
}

// TestPlpgsqlFetchOfOutsideCursor: a PL/pgSQL FETCH of a refcursor holding the name of a
// cursor opened outside the body (a protocol portal, a cursor declared in SQL) reads
// what that cursor returns, which the body's analysis does not see: the body counts as
// reading a value of unknowable origin, so its messages are withheld, its results
// masked, and (with unknowable: block) a copy of it refused. Before, a DO block's NOTICE
// or a function's result showed the masked values in clear.
func TestPlpgsqlFetchOfOutsideCursor(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": lineageSeed + "CREATE TABLE sink (v text); GRANT ALL ON sink TO app;"},
	})
	for _, block := range []bool{false, true} {
		pg.ExecIn(t, "shop", "DELETE FROM sink")
		h := startProxy(t, pg, func(c *Config) {
			c.Judge = allowAll
			c.MaskColumn = nil
			c.Masks = lineageMasks(block)
		})
		c := h.raw(t, "app", "shop")
		if !block {
			c.send(t, &pgproto3.Query{String: "CREATE FUNCTION peek(n text) RETURNS text LANGUAGE plpgsql AS $$DECLARE r refcursor := n; v text; BEGIN FETCH r INTO v; RETURN v; END$$"})
			if got := c.untilReady(t); !strings.Contains(got, "CREATE FUNCTION") {
				t.Fatalf("CREATE FUNCTION: %s", got)
			}
		}
		for _, q := range []string{
			"DO $$DECLARE r refcursor := 'p'; v text; BEGIN FETCH r INTO v; RAISE NOTICE '%', v; END$$",
			"DO $$DECLARE r refcursor := 'p'; v text; BEGIN FETCH r INTO v; RAISE EXCEPTION '%', v; END$$",
			"SELECT peek('p')",
			"DECLARE c CURSOR FOR SELECT name FROM customers ORDER BY id; SELECT peek('c')",
			"DO $$DECLARE r refcursor := 'p'; v text; BEGIN FETCH r INTO v; INSERT INTO sink VALUES (v); END$$",
		} {
			c.send(t, &pgproto3.Query{String: "BEGIN"})
			c.untilReady(t)
			c.send(t, &pgproto3.Parse{Query: "SELECT name AS x FROM customers ORDER BY id"},
				&pgproto3.Bind{DestinationPortal: "p"}, &pgproto3.Sync{})
			if got, want := c.untilReady(t), "ParseComplete BindComplete ReadyForQuery(T)"; got != want {
				t.Fatalf("binding p: got %s, want %s", got, want)
			}
			c.send(t, &pgproto3.Query{String: q})
			got := recvUntilReady(t, c)
			c.send(t, &pgproto3.Query{String: "COMMIT"})
			c.untilReady(t)
			t.Logf("block=%v: %s => %s", block, q, got)
			if leaksName(got) {
				t.Errorf("block=%v: %s: masked values reached the client: %s", block, q, got)
			}
		}
		if sunk := pg.QueryStrings(t, "shop", "SELECT coalesce(string_agg(v, ','), '') FROM sink"); block && sunk[0] != "" {
			t.Errorf("unknowable: block: the DO block copied %q into sink", sunk[0])
		}
	}
}
