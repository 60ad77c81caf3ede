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
