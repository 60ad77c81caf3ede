package pgproxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"fmt"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5/pgproto3"

	"github.com/bastionhq/bastion/internal/testenv"
)

// TestReplicationStreamUnderCardMasking: a replication stream (BASE_BACKUP's data
// files, START_REPLICATION's WAL) carries values in their binary form, as binary COPY
// does: an int8 card number is eight bytes the card detector cannot see. Under card
// masking it is refused before it runs, as binary COPY is.
func TestReplicationStreamUnderCardMasking(t *testing.T) {
	pg := startCluster(t)
	h := startProxy(t, pg, func(c *Config) {
		c.Judge = allowAll
		c.MaskColumn = nil
		c.Authorize = func(context.Context, Startup) error { return nil } // replication allowed
	})
	conn, err := net.Dial("tcp", h.addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	c := &rawConn{conn: conn, fe: pgproto3.NewFrontend(conn, conn)}
	c.send(t, &pgproto3.StartupMessage{ProtocolVersion: pgproto3.ProtocolVersion30,
		Parameters: map[string]string{"user": "postgres", "database": "shop", "replication": "database"}})
	if got := c.untilReady(t); !strings.HasPrefix(got, "AuthenticationOk") {
		t.Fatalf("startup: %s", got)
	}
	var card [8]byte // orders.card_num, as the heap stores it
	binary.LittleEndian.PutUint64(card[:], 4111111111111111)
	c.send(t, &pgproto3.Query{String: "BASE_BACKUP (CHECKPOINT 'fast')"})
	conn.SetReadDeadline(time.Now().Add(2 * time.Minute))
	var data int
	var summary []string
	for {
		m, err := c.fe.Receive()
		if err != nil {
			t.Fatalf("after %v: %v", summary, err)
		}
		switch m := m.(type) {
		case *pgproto3.CopyData:
			data += len(m.Data)
			if bytes.Contains(m.Data, card[:]) {
				t.Fatalf("the base backup carried orders.card_num 4111111111111111 unmasked (%d bytes in)", data)
			}
		case *pgproto3.ErrorResponse:
			summary = append(summary, fmt.Sprintf("Error(%s %s)", m.Code, m.Message))
		case *pgproto3.ReadyForQuery:
			t.Logf("%v, %d bytes of copy data", summary, data)
			if data > 0 || len(summary) == 0 || !strings.Contains(summary[0], "42501") {
				t.Fatalf("want the replication stream refused (42501): %v, %d bytes", summary, data)
			}
			return
		default:
			summary = append(summary, strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3."))
		}
	}
}

// TestFastpathBinaryResultUnderCardMasking: a fastpath function call (FunctionCall,
// no SQL text) asking for its result in binary gets an int8 card number as eight
// bytes; through SQL the same value in binary is sent as NULL (binaryNeedsMask). The
// fastpath result must not be the way around it.
func TestFastpathBinaryResultUnderCardMasking(t *testing.T) {
	pg := startCluster(t)
	pg.ExecIn(t, "shop", "CREATE FUNCTION card_of(int) RETURNS bigint LANGUAGE sql STABLE AS 'SELECT card_num FROM orders WHERE id = $1'")
	oids := pg.QueryStrings(t, "shop", "SELECT 'card_of'::regproc::oid")
	var oid uint32
	fmt.Sscan(oids[0], &oid)
	h := startProxy(t, pg, func(c *Config) {
		c.Judge = allowAll
		c.MaskColumn = nil
	})
	c := h.raw(t, "app", "shop")
	// Through SQL, in binary: NULL.
	c.send(t, &pgproto3.Parse{Query: "SELECT card_of(1)"}, &pgproto3.Bind{ResultFormatCodes: []int16{1}}, &pgproto3.Describe{ObjectType: 'P'},
		&pgproto3.Execute{}, &pgproto3.Sync{})
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var card [8]byte
	binary.BigEndian.PutUint64(card[:], 4111111111111111)
	for done := false; !done; {
		m, err := c.fe.Receive()
		if err != nil {
			t.Fatal(err)
		}
		switch m := m.(type) {
		case *pgproto3.DataRow:
			if len(m.Values) != 1 || m.Values[0] != nil {
				t.Fatalf("SQL in binary: %q, want NULL", m.Values)
			}
		case *pgproto3.ReadyForQuery:
			done = true
		}
	}
	call := func(id uint32) []byte {
		arg := binary.BigEndian.AppendUint32(nil, id)
		c.send(t, &pgproto3.FunctionCall{Function: oid, ArgFormatCodes: []uint16{1}, Arguments: [][]byte{arg}, ResultFormatCode: 1})
		var res []byte
		got := false
		for {
			m, err := c.fe.Receive()
			if err != nil {
				t.Fatal(err)
			}
			switch m := m.(type) {
			case *pgproto3.FunctionCallResponse:
				res, got = m.Result, true
			case *pgproto3.ErrorResponse:
				t.Fatalf("fastpath call: %s %s", m.Code, m.Message)
			case *pgproto3.ReadyForQuery:
				if !got {
					t.Fatal("no FunctionCallResponse")
				}
				return res
			}
		}
	}
	if res := call(1); bytes.Contains(res, card[:]) || res != nil {
		t.Fatalf("the fastpath call returned the card number in binary: %x (want NULL)", res)
	}
	// A value that is no card number comes through, by its type (int8 42).
	if res := call(2); len(res) != 8 || binary.BigEndian.Uint64(res) != 42 {
		t.Fatalf("card_of(2) through fastpath: %x, want int8 42", res)
	}
}

// recvUntilReady reads up to ReadyForQuery, summarising with DataRow values.
func recvUntilReady(t *testing.T, c *rawConn) string {
	t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	var got []string
	for {
		m, err := c.fe.Receive()
		if err != nil {
			t.Fatalf("after %v: %v", got, err)
		}
		switch m := m.(type) {
		case *pgproto3.ParameterStatus, *pgproto3.BackendKeyData:
		case *pgproto3.DataRow:
			var vals []string
			for _, v := range m.Values {
				vals = append(vals, string(v))
			}
			got = append(got, "DataRow("+strings.Join(vals, ",")+")")
		case *pgproto3.RowDescription:
			var names []string
			for _, f := range m.Fields {
				names = append(names, string(f.Name))
			}
			got = append(got, "RowDescription("+strings.Join(names, ",")+")")
		case *pgproto3.CommandComplete:
			got = append(got, fmt.Sprintf("CommandComplete(%s)", m.CommandTag))
		case *pgproto3.ErrorResponse:
			got = append(got, fmt.Sprintf("ErrorResponse(%s %s)", m.Code, m.Message))
		case *pgproto3.NoticeResponse:
			got = append(got, fmt.Sprintf("Notice(%s)", m.Message))
		case *pgproto3.ReadyForQuery:
			got = append(got, fmt.Sprintf("ReadyForQuery(%c)", m.TxStatus))
			return strings.Join(got, " ")
		default:
			got = append(got, strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3."))
		}
	}
}

// TestPortalReplacedBySQL: a protocol portal closed and re-created by SQL (CLOSE,
// DECLARE) under the same name, then run with a protocol Execute, must be masked as what
// it now is, not as the portal the proxy saw bound.
func TestPortalReplacedBySQL(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": lineageSeed},
	})
	for _, mode := range []string{"lineage", "by name"} {
		t.Run(mode, func(t *testing.T) {
			h := startProxy(t, pg, func(c *Config) {
				c.Judge = allowAll
				if mode == "lineage" {
					c.MaskColumn = nil
					c.Masks = lineageMasks(false)
				} else {
					c.MaskColumn = func(name string) bool { return name == "name" }
				}
			})
			c := h.raw(t, "app", "shop")
			c.send(t, &pgproto3.Query{String: "BEGIN"})
			t.Log(recvUntilReady(t, c))
			c.send(t, &pgproto3.Parse{Name: "s1", Query: "SELECT 'harmless'::text AS x"}, &pgproto3.Bind{DestinationPortal: "c", PreparedStatement: "s1"},
				&pgproto3.Describe{ObjectType: 'P', Name: "c"}, &pgproto3.Sync{})
			t.Log(recvUntilReady(t, c))
			c.send(t, &pgproto3.Query{String: "CLOSE c"})
			t.Log(recvUntilReady(t, c))
			c.send(t, &pgproto3.Query{String: "DECLARE c CURSOR FOR SELECT name AS x FROM customers ORDER BY id"})
			t.Log(recvUntilReady(t, c))
			c.send(t, &pgproto3.Execute{Portal: "c"}, &pgproto3.Sync{})
			got := recvUntilReady(t, c)
			t.Log(got)
			if leaksName(got) {
				t.Fatalf("masked names reached the client: %s", got)
			}

			// The same through PL/pgSQL: CLOSE and OPEN of a refcursor named like the
			// portal, in a DO block.
			c.send(t, &pgproto3.Bind{DestinationPortal: "d", PreparedStatement: "s1"}, &pgproto3.Describe{ObjectType: 'P', Name: "d"}, &pgproto3.Sync{})
			t.Log(recvUntilReady(t, c))
			c.send(t, &pgproto3.Query{String: "DO $$DECLARE r refcursor := 'd'; BEGIN CLOSE r; OPEN r FOR SELECT upper(name) AS x FROM customers ORDER BY id; END$$"})
			t.Log(recvUntilReady(t, c))
			c.send(t, &pgproto3.Execute{Portal: "d"}, &pgproto3.Sync{})
			got = recvUntilReady(t, c)
			t.Log(got)
			if strings.Contains(got, "LOVELACE") || strings.Contains(got, "TURING") {
				t.Fatalf("masked names reached the client: %s", got)
			}

			// A named portal fetched in parts, nothing else running between: its rows
			// come through.
			c.send(t, &pgproto3.Query{String: "COMMIT"})
			t.Log(recvUntilReady(t, c))
			c.send(t, &pgproto3.Query{String: "BEGIN"})
			t.Log(recvUntilReady(t, c))
			c.send(t, &pgproto3.Parse{Name: "s2", Query: "SELECT id FROM customers ORDER BY id"}, &pgproto3.Bind{DestinationPortal: "q", PreparedStatement: "s2"},
				&pgproto3.Describe{ObjectType: 'P', Name: "q"}, &pgproto3.Execute{Portal: "q", MaxRows: 1}, &pgproto3.Sync{})
			if got := recvUntilReady(t, c); !strings.Contains(got, "DataRow(1)") {
				t.Fatalf("first part: %s", got)
			}
			c.send(t, &pgproto3.Execute{Portal: "q", MaxRows: 1}, &pgproto3.Sync{})
			if got := recvUntilReady(t, c); !strings.Contains(got, "DataRow(2)") {
				t.Fatalf("second part: %s", got)
			}
		})
	}
}

// TestStatementReplacedBySQL: a statement prepared through the protocol (Parse), then
// deallocated and prepared again under the same name in SQL, then bound through the
// protocol, must be masked as what it now is.
func TestStatementReplacedBySQL(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": lineageSeed},
	})
	h := startProxy(t, pg, func(c *Config) {
		c.Judge = allowAll
		c.MaskColumn = nil
		c.Masks = lineageMasks(false)
	})
	for _, replace := range []string{
		"DEALLOCATE s1; PREPARE s1 AS SELECT name AS x FROM customers ORDER BY id",
		"DO $$BEGIN EXECUTE 'DEALLOCATE s1'; EXECUTE 'PREPARE s1 AS SELECT name AS x FROM customers ORDER BY id'; END$$",
	} {
		t.Run(replace[:10], func(t *testing.T) {
			c := h.raw(t, "app", "shop")
			c.send(t, &pgproto3.Parse{Name: "s1", Query: "SELECT 'harmless'::text AS x"}, &pgproto3.Describe{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{})
			t.Log(recvUntilReady(t, c))
			c.send(t, &pgproto3.Query{String: replace})
			t.Log(recvUntilReady(t, c))
			c.send(t, &pgproto3.Bind{PreparedStatement: "s1"}, &pgproto3.Describe{ObjectType: 'P'}, &pgproto3.Execute{}, &pgproto3.Sync{})
			got := recvUntilReady(t, c)
			t.Log(got)
			if leaksName(got) {
				t.Fatalf("masked names reached the client: %s", got)
			}
		})
	}
}

// TestStatementReplacedBySQLBinary: under card masking, a statement described through
// the protocol and then replaced in SQL (DEALLOCATE, PREPARE) must not be masked by its
// old description: bound for a binary result, its int8 card number is eight bytes only
// the right type tells apart.
func TestStatementReplacedBySQLBinary(t *testing.T) {
	pg := startCluster(t)
	h := startProxy(t, pg, func(c *Config) { c.Judge = allowAll })
	var card [8]byte
	binary.BigEndian.PutUint64(card[:], 4111111111111111)
	c := h.raw(t, "app", "shop")
	c.send(t, &pgproto3.Parse{Name: "s1", Query: "SELECT 'harmless'::text AS x"}, &pgproto3.Describe{ObjectType: 'S', Name: "s1"}, &pgproto3.Sync{})
	t.Log(recvUntilReady(t, c))
	c.send(t, &pgproto3.Query{String: "DEALLOCATE s1; PREPARE s1 AS SELECT card_num AS x FROM orders WHERE id = 1"})
	t.Log(recvUntilReady(t, c))
	c.send(t, &pgproto3.Bind{PreparedStatement: "s1", ResultFormatCodes: []int16{1}}, &pgproto3.Execute{}, &pgproto3.Sync{})
	got := recvUntilReady(t, c)
	t.Logf("%q", got)
	if strings.Contains(got, string(card[:])) {
		t.Fatalf("the card number reached the client in binary: %q", got)
	}
}

// TestSyncDuringFailingCopy: a Sync sent in copy-in mode is ignored by the server only
// if the COPY is still running when the server reads it; a COPY that already failed on
// bad data leaves the Sync to be answered. The proxy took every such Sync for ignored, so
// the server's extra ReadyForQuery was taken for the next Query's: that Query's results
// were then masked as those of the Query after it (a constant), and masked names went out
// in clear. Now a ReadyForQuery that answers a Query with nothing before it is the desync
// it is, and the session ends.
func TestSyncDuringFailingCopy(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": lineageSeed},
	})
	h := startProxy(t, pg, func(c *Config) {
		c.Judge = allowAll
		c.MaskColumn = nil
		c.Masks = lineageMasks(false)
	})
	const masked, harmless = "SELECT name || '' AS x FROM customers ORDER BY id", "SELECT 'harmless'::text AS x"
	bad := &pgproto3.CopyData{Data: []byte("notanumber\tx\n")}
	for name, during := range map[string][]pgproto3.FrontendMessage{
		"sync":              {bad, &pgproto3.Sync{}},
		"sync, done, sync":  {bad, &pgproto3.Sync{}, &pgproto3.CopyDone{}, &pgproto3.Sync{}},
		"sync, fail, sync":  {bad, &pgproto3.Sync{}, &pgproto3.CopyFail{Message: "x"}, &pgproto3.Sync{}},
		"sync, sync, done":  {bad, &pgproto3.Sync{}, &pgproto3.Sync{}, &pgproto3.CopyDone{}},
		"data before the G": nil,
	} {
		t.Run(name, func(t *testing.T) {
			c := h.raw(t, "app", "shop")
			// The same statements once before, so that judging them again takes no
			// catalog query and the proxy keeps up with the pipeline.
			for _, q := range []string{masked, harmless} {
				c.send(t, &pgproto3.Query{String: q})
				recvUntilReady(t, c)
			}
			tail := []pgproto3.FrontendMessage{&pgproto3.Query{String: masked}, &pgproto3.Query{String: harmless}}
			if during == nil {
				// Everything at once, CopyData before the server's CopyInResponse.
				c.send(t, append([]pgproto3.FrontendMessage{&pgproto3.Query{String: "COPY staff FROM STDIN"}, bad, &pgproto3.Sync{}}, tail...)...)
			} else {
				c.send(t, &pgproto3.Query{String: "COPY staff FROM STDIN"})
				c.conn.SetReadDeadline(time.Now().Add(30 * time.Second))
				if m, err := c.fe.Receive(); err != nil {
					t.Fatal(err)
				} else if _, ok := m.(*pgproto3.CopyInResponse); !ok {
					t.Fatalf("COPY: %T", m)
				}
				c.send(t, append(during, tail...)...)
			}
			var got []string
			c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
			for {
				m, err := c.fe.Receive()
				if err != nil {
					break // the proxy ended the session, or the test's deadline
				}
				switch m := m.(type) {
				case *pgproto3.DataRow:
					got = append(got, "DataRow("+string(m.Values[0])+")")
				case *pgproto3.ErrorResponse:
					got = append(got, "Error("+m.Code+" "+m.Message+")")
				default:
					got = append(got, strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3."))
				}
			}
			t.Logf("%q", got)
			if leaksName(strings.Join(got, " ")) {
				t.Fatalf("masked names reached the client: %q", got)
			}
		})
	}
}

// TestSyncDuringSecondCopy: in a Query with two COPY FROM STDIN, a Sync sent during the
// second COPY is ignored by the server like one during the first. The proxy counted the
// CopyDone of the first COPY against the second and kept the Sync, expecting an answer
// that never came: every later answer then went to the statement before, and an error
// message quoting a masked value went out as the Sync's, unmasked.
func TestSyncDuringSecondCopy(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": lineageSeed},
	})
	h := startProxy(t, pg, func(c *Config) {
		c.Judge = allowAll
		c.MaskColumn = nil
		c.Masks = lineageMasks(false)
	})
	c := h.raw(t, "app", "shop")
	expect := func(want string) {
		t.Helper()
		c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
		for {
			m, err := c.fe.Receive()
			if err != nil {
				t.Fatalf("waiting for %s: %v", want, err)
			}
			if strings.TrimPrefix(fmt.Sprintf("%T", m), "*pgproto3.") == want {
				return
			}
		}
	}
	c.send(t, &pgproto3.Query{String: "COPY staff FROM STDIN; COPY staff FROM STDIN"})
	expect("CopyInResponse")
	c.send(t, &pgproto3.CopyDone{})
	expect("CopyInResponse")
	c.send(t, &pgproto3.Sync{}, &pgproto3.CopyDone{})
	expect("ReadyForQuery")
	var got []string
	for _, q := range []string{"UPDATE staff SET id = id WHERE id = (SELECT name::int FROM customers ORDER BY id LIMIT 1)", "SELECT 1", "SELECT 'harmless'::text AS x", "SELECT name || '' AS x FROM customers ORDER BY id", "SELECT 2"} {
		c.send(t, &pgproto3.Query{String: q})
		c.conn.SetReadDeadline(time.Now().Add(5 * time.Second))
		for done := false; !done; {
			m, err := c.fe.Receive()
			if err != nil {
				time.Sleep(200 * time.Millisecond)
				t.Logf("%q, then %v (proxy: %v)", got, err, h.Errors())
				return
			}
			switch m := m.(type) {
			case *pgproto3.DataRow:
				got = append(got, "DataRow("+string(m.Values[0])+")")
			case *pgproto3.ErrorResponse:
				got = append(got, "Error("+m.Code+" "+m.Message+")")
			case *pgproto3.ReadyForQuery:
				got = append(got, "Z")
				done = true
			}
			if leaksName(strings.Join(got, " ")) {
				t.Fatalf("masked names reached the client: %q", got)
			}
		}
	}
	t.Logf("%q", got)
}
