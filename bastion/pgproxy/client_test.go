package pgproxy

import (
	"context"
	"encoding/binary"
	"errors"
	"io"
	"net"
	"runtime"
	"strings"
	"testing"
	"time"
	"unsafe"
)

// serverSays is what a proxy might answer: after the startup, AuthOk and
// ReadyForQuery; then the given messages.
func serverSays(msgs ...[]byte) []byte {
	out := appendAuthOK(nil)
	out = appendReadyForQuery(out, 'I')
	for _, m := range msgs {
		out = append(out, m...)
	}
	return out
}

func dataRow(vals ...*string) []byte {
	b, start := beginMsg(nil, 'D')
	b = binary.BigEndian.AppendUint16(b, uint16(len(vals)))
	for _, v := range vals {
		if v == nil {
			b = binary.BigEndian.AppendUint32(b, 0xffffffff)
			continue
		}
		b = binary.BigEndian.AppendUint32(b, uint32(len(*v)))
		b = append(b, *v...)
	}
	return endMsg(b, start)
}

func commandComplete(tag string) []byte {
	b, start := beginMsg(nil, 'C')
	return endMsg(appendCString(b, tag), start)
}

// runQuery plays server bytes to Query over loopback TCP, half-closing
// after them, and returns Query's result.
func runQuery(t testing.TB, in []byte, maxRows int) (*QueryResult, error) {
	return runQueryKey(t, in, maxRows, 0, nil)
}

func runQueryKey(t testing.TB, in []byte, maxRows, maxBytes int, onKey func(pid, secret uint32)) (*QueryResult, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	client, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server, err := ln.Accept()
	if err != nil {
		t.Fatal(err)
	}
	defer server.Close()
	go func() {
		server.Write(in)
		server.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, server)
	}()
	return Query(context.Background(), client, "app", "shop", "SELECT 1", maxRows, maxBytes, onKey)
}

func TestQuery(t *testing.T) {
	one, two := "1", "2"
	rd := appendRowDescription(nil, []fieldDesc{{name: "x", typeOID: 23, typeSize: 4, typmod: -1}})
	res, err := runQuery(t, serverSays(rd, dataRow(&one), dataRow(&two), dataRow(nil), commandComplete("SELECT 3"), appendReadyForQuery(nil, 'I')), 2)
	if err != nil || len(res.Rows) != 2 || *res.Rows[1][0] != "2" || !res.Truncated || res.Tags[0] != "SELECT 3" || res.Columns[0] != "x" {
		t.Fatalf("%+v, %v", res, err)
	}
	// The backend key (for a cancel) is reported before the statement.
	var pid, secret uint32
	keyed := append(appendAuthOK(nil), appendBackendKeyData(nil, 7, 99)...)
	keyed = append(appendReadyForQuery(keyed, 'I'), commandComplete("SELECT 0")...)
	if _, err := runQueryKey(t, appendReadyForQuery(keyed, 'I'), 1, 0, func(p, s uint32) { pid, secret = p, s }); err != nil || pid != 7 || secret != 99 {
		t.Fatalf("backend key: %d %d, %v", pid, secret, err)
	}
	blocked := errorMsg('E', "ERROR", "42501", "bastion: statement blocked by rule \"no-drop\"", "", "")
	_, err = runQuery(t, serverSays(blocked, appendReadyForQuery(nil, 'I')), 10)
	var qe *QueryError
	if !errors.As(err, &qe) || qe.Fatal || qe.SQLState != "42501" {
		t.Fatalf("blocked: %v", err)
	}
	fatal := errorMsg('E', "FATAL", "28000", "bastion: no role allows", "", "")
	if _, err = runQuery(t, fatal, 10); !errors.As(err, &qe) || !qe.Fatal {
		t.Fatalf("refused startup: %v", err)
	}
	for name, in := range map[string][]byte{
		"auth request":   {'R', 0, 0, 0, 8, 0, 0, 0, 3},
		"unknown type":   {'?', 0, 0, 0, 4},
		"short row":      serverSays(rd, []byte{'D', 0, 0, 0, 6, 0, 1}),
		"truncated":      serverSays(rd)[:5],
		"negative value": serverSays(rd, []byte{'D', 0, 0, 0, 10, 0, 1, 0xff, 0xff, 0xff, 0xf0}),
		"no ready":       appendAuthOK(nil),
		"short key":      append(appendAuthOK(nil), 'K', 0, 0, 0, 8, 0, 0, 0, 1),
	} {
		if res, err := runQuery(t, in, 10); err == nil {
			t.Errorf("%s: accepted: %+v", name, res)
		}
	}
}

// TestQueryByteLimit: the rows and notices Query keeps are bounded in bytes too, not
// only in rows (TestSQLAPIAnswerBounded is the SQL API's end to end).
func TestQueryByteLimit(t *testing.T) {
	big := strings.Repeat("x", 1000)
	rd := appendRowDescription(nil, []fieldDesc{{name: "x", typeOID: 25, typeSize: -1, typmod: -1}})
	var in [][]byte
	in = append(in, rd)
	for range 100 {
		in = append(in, dataRow(&big))
	}
	for range 100 {
		in = append(in, errorMsg('N', "NOTICE", "00000", big, "", ""))
	}
	in = append(in, commandComplete("SELECT 100"), appendReadyForQuery(nil, 'I'))
	res, err := runQueryKey(t, serverSays(in...), 1000, 10_000, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !res.Truncated || len(res.Rows) == 0 || len(res.Rows) > 10 {
		t.Fatalf("rows: %d kept, truncated %v", len(res.Rows), res.Truncated)
	}
	last := res.Notices[len(res.Notices)-1]
	if len(res.Notices) > 10 || !strings.Contains(last, "more notice(s) not shown") {
		t.Fatalf("notices: %d kept, last %.80q", len(res.Notices), last)
	}
	// Without a byte limit, the row limit alone.
	if res, err := runQueryKey(t, serverSays(in...), 1000, 0, nil); err != nil || res.Truncated || len(res.Rows) != 100 || len(res.Notices) != 100 {
		t.Fatalf("no byte limit: %v", err)
	}
}

func FuzzQuery(f *testing.F) {
	one := "1"
	rd := appendRowDescription(nil, []fieldDesc{{name: "x", typeOID: 23, typeSize: 4, typmod: -1}})
	f.Add(serverSays(rd, dataRow(&one), commandComplete("SELECT 1"), appendReadyForQuery(nil, 'I')))
	f.Add(serverSays(errorMsg('E', "ERROR", "42501", "blocked", "", ""), appendReadyForQuery(nil, 'I')))
	f.Add([]byte{'R', 0, 0, 0, 8, 0, 0, 0, 3})
	f.Add(append(appendAuthOK(nil), appendBackendKeyData(nil, 7, 99)...))
	f.Fuzz(func(t *testing.T, in []byte) {
		res, err := runQuery(t, in, 3)
		if err == nil && (res == nil || len(res.Rows) > 3) {
			t.Fatalf("%+v", res)
		}
	})
}

// TestQueryRefusesNUL: the user, database and SQL travel as C strings, so a
// NUL in one would end it early and make what follows another startup
// parameter or statement. Query refuses them before sending anything.
func TestQueryRefusesNUL(t *testing.T) {
	for _, c := range [][3]string{
		{"app\x00TimeZone\x00UTC", "shop", "SELECT 1"},
		{"app", "shop\x00replication\x00database", "SELECT 1"},
		{"app", "shop", "SELECT 1\x00DROP TABLE t"},
	} {
		client, server := net.Pipe()
		sent := make(chan int, 1)
		go func() {
			n, _ := io.Copy(io.Discard, server)
			sent <- int(n)
		}()
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		_, err := Query(ctx, client, c[0], c[1], c[2], 10, 0, nil)
		cancel()
		server.Close()
		if err == nil || !strings.Contains(err.Error(), "NUL") {
			t.Errorf("%q: want an error naming the NUL, got %v", c, err)
		}
		if n := <-sent; n != 0 {
			t.Errorf("%q: %d bytes sent", c, n)
		}
	}
}

// TestQueryByteLimitCountsValues: the byte limit counts what a kept row
// takes in memory, not its size on the wire. A value is a pointer and a
// string header besides its bytes (24 bytes on 64-bit), while the wire
// counts 4: a row of 1000 empty strings is 4 KiB on the wire and 24 KiB kept,
// so an answer of empty (or one-byte) values held some six times
// sql_api.max_bytes.
func TestQueryByteLimitCountsValues(t *testing.T) {
	empty := ""
	vals := make([]*string, 1000)
	for i := range vals {
		vals[i] = &empty
	}
	fields := make([]fieldDesc, len(vals))
	for i := range fields {
		fields[i] = fieldDesc{name: "e", typeOID: 25, typeSize: -1, typmod: -1}
	}
	in := [][]byte{appendRowDescription(nil, fields)}
	for range 100 {
		in = append(in, dataRow(vals...))
	}
	in = append(in, commandComplete("SELECT 100"), appendReadyForQuery(nil, 'I'))
	const maxBytes = 100_000
	res, err := runQueryKey(t, serverSays(in...), 1000, maxBytes, nil)
	if err != nil {
		t.Fatal(err)
	}
	const valueSize = int(unsafe.Sizeof(&empty)) + int(unsafe.Sizeof(empty))
	if kept := len(res.Rows) * len(vals) * valueSize; kept > maxBytes || !res.Truncated || len(res.Rows) == 0 {
		t.Fatalf("%d rows of %d values kept (%d bytes in memory, limit %d), truncated %v", len(res.Rows), len(vals), kept, maxBytes, res.Truncated)
	}
}

// TestQuerySkipsRowsItCannotKeep: a row past the limits is read past, not
// into memory. PostgreSQL makes rows of up to 1 GiB (SELECT repeat('x',
// 1e9)), and Query read each whole before finding that it did not fit the
// answer, a second copy of it on the bastion's heap beside the proxy's.
func TestQuerySkipsRowsItCannotKeep(t *testing.T) {
	small, big := "1", strings.Repeat("x", 16<<20)
	rd := appendRowDescription(nil, []fieldDesc{{name: "x", typeOID: 25, typeSize: -1, typmod: -1}})
	in := serverSays(rd, dataRow(&small), dataRow(&big), dataRow(&small), commandComplete("SELECT 3"), appendReadyForQuery(nil, 'I'))
	big = ""
	for _, tc := range []struct {
		name              string
		maxRows, maxBytes int
		rows              int
	}{
		{"past max_bytes", 10, 1 << 20, 1},
		{"past max_rows", 1, 0, 1},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var before, after runtime.MemStats
			runtime.ReadMemStats(&before)
			res, err := runQueryKey(t, in, tc.maxRows, tc.maxBytes, nil)
			runtime.ReadMemStats(&after)
			if err != nil || len(res.Rows) != tc.rows || !res.Truncated || res.Tags[0] != "SELECT 3" {
				t.Fatalf("%+v %v", res, err)
			}
			if got := after.TotalAlloc - before.TotalAlloc; got > 4<<20 {
				t.Errorf("Query allocated %d MiB for a 16 MiB row it did not keep", got>>20)
			}
		})
	}
}
