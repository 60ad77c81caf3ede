package pgproxy

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"strings"
	"unsafe"
)

// Query is the PostgreSQL client of the bastion's SQL API: it speaks to
// Serve over an in-memory connection, so a statement sent through the API
// takes exactly the path of one sent by psql (startup checks, rules,
// masking, holds, transcript, audit) and comes back as values.

// QueryResult is what Query read: the last result set's columns and rows
// (text format, already masked; nil is NULL), capped at the row and byte limits.
type QueryResult struct {
	Columns   []string
	Rows      [][]*string
	Truncated bool     // the server returned more rows than the limits let Query keep
	Tags      []string // command tags, in order
	Notices   []string // cut at the byte limit, the last one then saying how many were left out
}

// QueryError is an ErrorResponse: a refused startup (Fatal) or a failed,
// blocked or denied statement.
type QueryError struct {
	Fatal    bool
	SQLState string
	Message  string
	Detail   string
	Hint     string
}

func (e *QueryError) Error() string { return e.SQLState + ": " + e.Message }

// Query connects over conn as user to database (the startup Serve
// answers), runs sql with the simple protocol and returns its last result
// set, keeping at most maxRows rows. What it keeps in memory, the values of
// those rows and the notices, is bounded by maxBytes (0: no bound): rows past
// it are dropped as rows past maxRows are (Truncated), notices past it are
// counted in a last one. A statement error is a *QueryError
// (the others in sql before it still ran). conn is closed. onKey, if not
// nil, is given the backend key Serve sent (what a CancelRequest names,
// for CancelRegistry.Forward) before the statement is sent.
func Query(ctx context.Context, conn net.Conn, user, database, sql string, maxRows, maxBytes int, onKey func(pid, secret uint32)) (*QueryResult, error) {
	defer conn.Close()
	// Each travels as a C string: a NUL would end it early and make what
	// follows another startup parameter or statement.
	for _, f := range [...]struct{ name, v string }{{"user", user}, {"database", database}, {"SQL", sql}} {
		if strings.IndexByte(f.v, 0) >= 0 {
			return nil, fmt.Errorf("pgproxy: query: the %s contains a NUL byte", f.name)
		}
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	w := bufio.NewWriter(conn)
	out := appendStartupPacket(nil, 3<<16, [][2]string{{"user", user}, {"database", database}, {"application_name", "bastion sql api"}})
	if _, err := w.Write(out); err != nil {
		return nil, err
	}
	if err := w.Flush(); err != nil {
		return nil, err
	}
	mr := newMsgReader(bufio.NewReader(conn), defaultMaxMessage, &backendTypesClient, "server")
	res := &QueryResult{}
	var stmtErr *QueryError
	sent := false
	// held is what the kept rows and notices take; a row or notice that would take it
	// past maxBytes is dropped.
	var rowBytes, noticeBytes, droppedNotices int
	fits := func(n int) bool { return maxBytes <= 0 || rowBytes+noticeBytes+n <= maxBytes }
	// A row that cannot be kept is not read into memory either: one row
	// may be as large as PostgreSQL makes it (1 GiB).
	mr.skip = func(typ byte, n int) bool {
		if typ == 'D' && (len(res.Rows) >= maxRows || res.Truncated || !fits(n+valueOverhead)) {
			res.Truncated = true
			return true
		}
		return false
	}
	for {
		typ, body, err := mr.next()
		if err != nil {
			if ctx.Err() != nil {
				return nil, ctx.Err()
			}
			return nil, fmt.Errorf("pgproxy: query: %w", err)
		}
		switch typ {
		case 'R':
			if len(body) < 4 || binary.BigEndian.Uint32(body) != 0 {
				return nil, errors.New("pgproxy: query: the proxy asked for authentication")
			}
		case 'E':
			fields, err := decodeErrorFields(typ, body)
			if err != nil {
				return nil, err
			}
			qe := &QueryError{SQLState: fieldValue(fields, 'C'), Message: fieldValue(fields, 'M'), Detail: fieldValue(fields, 'D'), Hint: fieldValue(fields, 'H')}
			if !sent || fieldValue(fields, 'S') == "FATAL" {
				qe.Fatal = true
				return nil, qe
			}
			if stmtErr == nil {
				stmtErr = qe
			}
		case 'N':
			if fields, err := decodeErrorFields(typ, body); err == nil {
				m := fieldValue(fields, 'M')
				if droppedNotices > 0 || !fits(len(m)+valueOverhead) {
					droppedNotices++
					continue
				}
				noticeBytes += len(m) + valueOverhead
				res.Notices = append(res.Notices, m)
			}
		case 'T':
			fields, err := decodeRowDescription(body)
			if err != nil {
				return nil, err
			}
			res.Columns, res.Rows, res.Truncated, rowBytes = res.Columns[:0], nil, false, 0
			for _, f := range fields {
				res.Columns = append(res.Columns, f.name)
			}
		case 'D':
			// What the row takes kept: its values' bytes, and for each value a
			// pointer and a string header (the body counts a 4-byte length).
			size := len(body) + valueOverhead
			if len(body) >= 2 {
				size += int(binary.BigEndian.Uint16(body)) * (valueSize - 4)
			}
			if len(res.Rows) >= maxRows || res.Truncated || !fits(size) {
				res.Truncated = true
				continue
			}
			row, err := decodeTextRow(body)
			if err != nil {
				return nil, err
			}
			rowBytes += size
			res.Rows = append(res.Rows, row)
		case 'C':
			tag, err := decodeCommandComplete(body)
			if err != nil {
				return nil, err
			}
			res.Tags = append(res.Tags, tag)
		case 'Z':
			if sent {
				w.Write([]byte{'X', 0, 0, 0, 4})
				w.Flush()
				if droppedNotices > 0 {
					res.Notices = append(res.Notices, fmt.Sprintf("bastion: %d more notice(s) not shown: the answer's size limit (%d bytes) was reached", droppedNotices, maxBytes))
				}
				if stmtErr != nil {
					return res, stmtErr
				}
				return res, nil
			}
			sent = true
			if _, err := w.Write(appendQuery(nil, sql)); err != nil {
				return nil, err
			}
			if err := w.Flush(); err != nil {
				return nil, err
			}
		case 'K':
			pid, secret, err := decodeBackendKeyData(body)
			if err != nil {
				return nil, err
			}
			if onKey != nil {
				onKey(pid, secret)
			}
		case 'S', 'I', 'A':
		default:
			return nil, protoErr("server", typ, "unexpected in a simple query")
		}
	}
}

// valueOverhead is what Query counts for each kept row or notice besides its bytes.
const valueOverhead = 64

// valueSize is what a kept value takes besides its bytes: its pointer in
// the row and its string header.
const valueSize = int(unsafe.Sizeof((*string)(nil))) + int(unsafe.Sizeof(""))

// backendTypesClient are the messages Query accepts.
var backendTypesClient = *typeSet("RSKZTDCIENA")

// decodeTextRow decodes a DataRow's values.
func decodeTextRow(body []byte) ([]*string, error) {
	c := cursor{b: body}
	n := c.u16("column count")
	row := make([]*string, 0, n)
	for i := 0; i < n && c.fail == ""; i++ {
		v, null := c.value("value")
		if null {
			row = append(row, nil)
			continue
		}
		s := string(v)
		row = append(row, &s)
	}
	return row, c.done("server", 'D')
}
