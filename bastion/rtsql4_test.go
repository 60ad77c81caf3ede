package bastion_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/testenv"
)

// A statement prepared while no rule blocked it must not run once a reload has added a
// rule that blocks it: the rules are read at each statement, and an EXECUTE (SQL) or a
// Bind (extended protocol) of something prepared earlier runs what was prepared, not
// "execute". (SQL PREPARE takes only DML; a Parse takes anything, DROP TABLE too.) So
// does a portal bound before the reload (Execute) and an SQL cursor declared before it
// (FETCH), whose queries run as they are read. Real psql (SQL PREPARE) and pgx (a named Parse, as pgx's statement cache
// does), one PostgreSQL, one reload.
func TestReloadRulesReachPreparedStatements(t *testing.T) {
	testenv.RequirePostgres(t)
	e := newEnv(t, envOptions{pgTarget: true})
	e.pg.ExecIn(t, "shop", `CREATE TABLE victim_bind (x int);
		CREATE TABLE victim_del (x int); INSERT INTO victim_del VALUES (1);
		CREATE TABLE victim_portal (x int); INSERT INTO victim_portal VALUES (1);
		ALTER TABLE victim_bind OWNER TO app; ALTER TABLE victim_del OWNER TO app; ALTER TABLE victim_portal OWNER TO app`)
	lport := e.forwardPG(t)
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()

	pty := testenv.StartPTY(t, 200, 30, e.pg.Tool(t, "psql"), "-X",
		fmt.Sprintf("host=127.0.0.1 port=%d user=app dbname=shop sslmode=disable connect_timeout=20", lport))
	pty.Expect("shop=>", 30*time.Second)
	pty.Send("PREPARE delit AS DELETE FROM victim_del;\r")
	pty.Expect("PREPARE", 20*time.Second)
	// A cursor whose query runs as it is fetched.
	pty.Send("BEGIN; DECLARE cur CURSOR FOR SELECT set_config('application_name', 'cursor-ran', false);\r")
	pty.Expect("DECLARE CURSOR", 20*time.Second)
	pty.Expect("shop=*>", 20*time.Second)

	c, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app@127.0.0.1:%d/shop?sslmode=disable", lport))
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close(context.Background())
	if _, err := c.Prepare(ctx, "dropbind", "DROP TABLE victim_bind"); err != nil {
		t.Fatal(err)
	}
	// A portal bound before the reload, executed after it (the extended protocol, by
	// hand: Parse and Bind now, Execute later, in one pipeline segment).
	c2, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app@127.0.0.1:%d/shop?sslmode=disable", lport))
	if err != nil {
		t.Fatal(err)
	}
	defer c2.Close(context.Background())
	fe := c2.PgConn().Frontend()
	fe.Send(&pgproto3.Parse{Name: "pdel", Query: "DELETE FROM victim_portal"})
	fe.Send(&pgproto3.Bind{DestinationPortal: "por", PreparedStatement: "pdel"})
	fe.Send(&pgproto3.Flush{})
	if err := fe.Flush(); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < 2; i++ {
		if m, err := fe.Receive(); err != nil {
			t.Fatal(err)
		} else if _, ok := m.(*pgproto3.ErrorResponse); ok {
			t.Fatalf("Parse/Bind: %#v", m)
		}
	}

	// An SQL cursor run by a protocol Execute of its name.
	c3, err := pgx.Connect(ctx, fmt.Sprintf("postgres://app@127.0.0.1:%d/shop?sslmode=disable", lport))
	if err != nil {
		t.Fatal(err)
	}
	defer c3.Close(context.Background())
	if _, err := c3.Exec(ctx, "BEGIN; DECLARE cur2 CURSOR FOR SELECT set_config('application_name', 'cursor2-ran', false)", pgx.QueryExecModeSimpleProtocol); err != nil {
		t.Fatal(err)
	}

	if err := e.reloadWith(t,
		config.Rule{Name: "no-drop-now", On: "sql", Action: "block", Match: config.RuleMatch{Statements: []string{"drop_table"}}},
		config.Rule{Name: "no-delete-now", On: "sql", Action: "block", Match: config.RuleMatch{Statements: []string{"delete"}, Tables: []string{"victim_*"}}},
		config.Rule{Name: "no-set-config-now", On: "sql", Action: "block", Match: config.RuleMatch{Statements: []string{"set_config"}}},
	); err != nil {
		t.Fatal(err)
	}

	pty.Send("FETCH cur;\r")
	fetched, _ := pty.ExpectAny(20*time.Second, "shop=*>", "shop=!>")
	pty.Send("ROLLBACK;\r")
	pty.Expect("shop=>", 20*time.Second)
	pty.Send("EXECUTE delit;\r")
	pty.Expect("shop=>", 20*time.Second)
	execute := func(fe *pgproto3.Frontend, portal string) (rows []string, msg string) {
		fe.Send(&pgproto3.Execute{Portal: portal})
		fe.Send(&pgproto3.Sync{})
		if err := fe.Flush(); err != nil {
			t.Fatal(err)
		}
		for {
			m, err := fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			switch m := m.(type) {
			case *pgproto3.ErrorResponse:
				msg = m.Message
			case *pgproto3.DataRow:
				rows = append(rows, string(m.Values[0]))
			case *pgproto3.ReadyForQuery:
				return rows, msg
			}
		}
	}
	_, portalErr := execute(fe, "por")
	if rows, msg := execute(c3.PgConn().Frontend(), "cur2"); len(rows) > 0 || !strings.Contains(msg, "no-set-config-now") {
		t.Errorf("a protocol Execute of an SQL cursor declared before a reload that blocks its query: rows %q, error %q", rows, msg)
	}
	pty.Send("SELECT 'after' || 'wards';\r")
	pty.Expect("afterwards", 20*time.Second)
	_, bindErr := c.Exec(ctx, "dropbind")

	exists := func(name string) bool {
		return e.pg.QueryStrings(t, "shop", fmt.Sprintf("SELECT count(*) FROM pg_tables WHERE tablename = '%s'", name))[0] == "1"
	}
	if !exists("victim_bind") {
		t.Errorf("Bind/Execute of a DROP TABLE prepared before a reload that blocks it dropped the table (err %v)", bindErr)
	}
	if got := e.pg.QueryStrings(t, "shop", "SELECT count(*) FROM victim_portal")[0]; got != "1" || !strings.Contains(portalErr, "no-delete-now") {
		t.Errorf("Execute of a portal bound before a reload that blocks its DELETE: %s rows left, error %q", got, portalErr)
	}
	if strings.Contains(fetched, "cursor-ran") || !strings.Contains(fetched, "no-set-config-now") {
		t.Errorf("FETCH from a cursor declared before a reload that blocks its query: %q", fetched)
	}
	if got := e.pg.QueryStrings(t, "shop", "SELECT count(*) FROM victim_del")[0]; got != "1" {
		t.Errorf("SQL EXECUTE of a DELETE prepared before a reload that blocks it deleted rows:\n%s", pty.Output())
	}
	if bindErr == nil || !strings.Contains(bindErr.Error(), "no-drop-now") {
		t.Errorf("Bind of the blocked statement: %v, want the rule named", bindErr)
	}
	if !strings.Contains(pty.Output(), "no-delete-now") {
		t.Errorf("psql output does not name the rule:\n%s", pty.Output())
	}
}

// A statement prepared unapproved (it has $n parameters: each execution asks, with its
// values) must not run unasked through an SQL EXECUTE in a function body: the body's
// EXECUTE was judged when the function was written, before the name was prepared.
func TestPreparedHeldStatementRunFromFunctionBody(t *testing.T) {
	p := newPGEnv(t)
	pty := testenv.StartPTY(t, 200, 30, p.pg.Tool(t, "psql"), "-X", p.dsn(""))
	pty.Expect("shop=>", 30*time.Second)
	pty.Send("CREATE FUNCTION runit() RETURNS void LANGUAGE sql AS $$EXECUTE delsecret('api')$$;\r")
	// unknowable: refused by the rule that blocks what cannot be known
	pty.Expect("runs a prepared statement (EXECUTE delsecret)", 20*time.Second)
	pty.Expect("shop=>", 20*time.Second)
	pty.Send("PREPARE delsecret(text) AS DELETE FROM secret_keys WHERE name = $1;\r")
	pty.Expect("shop=>", 20*time.Second)
	pty.Send("SELECT runit();\r")
	pty.Expect("shop=>", 20*time.Second)
	pty.Send("SELECT 'done' || 'ne';\r")
	pty.Expect("donene", 20*time.Second)
	if got := p.pg.QueryStrings(t, "shop", "SELECT count(*) FROM secret_keys"); got[0] != "1" {
		t.Fatalf("a held statement ran without approval through a function's EXECUTE:\n%s", pty.Output())
	}
}
