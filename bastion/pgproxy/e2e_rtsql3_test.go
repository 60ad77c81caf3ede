package pgproxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bastionhq/bastion/internal/testenv"
)

// Regression tests for a red team on the output side: card numbers reaching the client
// or the recording in forms the card detector did not look at.

// TestRedCardsOutput: card numbers reaching the client, the transcript, the wire capture
// or the audit log in forms the card detector did not read (one cluster for all).
func TestRedCardsOutput(t *testing.T) {
	pg := startCluster(t)
	t.Run("hidden forms", func(t *testing.T) { redCardsHiddenForms(t, pg) })
	t.Run("bind parameters in the capture", func(t *testing.T) { redCardsBindParamsInCapture(t, pg) })
	t.Run("COPY FROM data in the capture", func(t *testing.T) { redCardsCopyFromInCapture(t, pg) })
	t.Run("COPY FROM long field in the capture", func(t *testing.T) { redCardsCopyLongFieldInCapture(t, pg) })
	t.Run("refused statements in the transcript", func(t *testing.T) { redCardsRefusedInTranscript(t, pg) })
}

// cardHex are the seeded card number's bytes (orders.card, orders.card_num's text) in
// bytea's hex output.
var cardHex = []string{"34313131203131313120313131312031313131", "34313131313131313131313131313131"}

// showsCard reports whether s shows the seeded card number in any form these tests try.
func showsCard(s string) bool {
	// what is drawn as a blank or a dash between digit groups
	s = strings.NewReplacer("\u00a0", " ", "\u202f", " ", "\u2009", " ", "\u2013", "-", "\u2011", "-").Replace(s)
	if hasCard(s) || strings.Contains(s, "4111-1111-1111-1111") || strings.Contains(s, "4.111111111111111e+15") {
		return true
	}
	for _, h := range cardHex {
		if strings.Contains(s, h) {
			return true
		}
	}
	return false
}

// redCardsHiddenForms: with the card detector alone, a card number reached the client
// and the transcript as a result column's name (RowDescription: SQL built at run time
// names its columns after any value), as bytea's hex output (a card number stored or cast
// as bytea), and as float8's exponent form (4.111111111111111e+15 holds all 16 digits);
// the binary forms of the latter two were masked, their text forms not; and grouped with
// a no-break space, an en dash or another blank or dash than ' ' and '-'.
func redCardsHiddenForms(t *testing.T, pg *testenv.Postgres) {
	h := startProxy(t, pg, func(c *Config) {
		c.MaskColumn = nil
		c.Masks = nil
		c.MaskValue = realCards
		c.Judge = allowAll // a deployment with no SQL rules runs dynamic SQL
	})
	for _, q := range []string{
		// a column name from data: a cursor opened on SQL built at run time, and a
		// statement prepared so
		`BEGIN; DO $$DECLARE c refcursor := 'leak'; BEGIN OPEN c FOR EXECUTE format('SELECT 1 AS %I', (SELECT card FROM orders WHERE id = 1)); END$$; FETCH ALL FROM leak; COMMIT`,
		`DO $$BEGIN EXECUTE format('PREPARE p AS SELECT 1 AS %I', (SELECT card_num FROM orders WHERE id = 1)); END$$; EXECUTE p`,
		// bytea's hex output: top level, in an array, in JSON, in COPY
		`SELECT card::bytea, convert_to(card_num::text, 'UTF8') FROM orders WHERE id = 1`,
		`SELECT ARRAY[card::bytea], to_json(card::bytea), row(1, card_num::text::bytea) FROM orders WHERE id = 1`,
		`COPY (SELECT card::bytea FROM orders WHERE id = 1) TO STDOUT`,
		// float8's exponent form
		`SELECT card_num::float8, ARRAY[card_num::float8], to_json(card_num::float8) FROM orders WHERE id = 1`,
		`COPY (SELECT card_num::float8 FROM orders WHERE id = 1) TO STDOUT WITH (FORMAT csv)`,
		// grouped with the blanks and dashes of documents and locales: no-break and
		// narrow no-break space, thin space, en dash, non-breaking hyphen
		`SELECT replace(card, ' ', chr(160)), replace(card, ' ', chr(8239)), replace(card, ' ', chr(8201)), replace(card, ' ', chr(8211)), replace(card, ' ', chr(8209)) FROM orders WHERE id = 1`,
	} {
		r := h.psql(t, "", "-c", q)
		if r.err != nil {
			t.Errorf("%s: %v\n%s", q, r.err, r.stderr)
		}
		if showsCard(r.stdout + r.stderr) {
			t.Errorf("%s shows the card number:\n%s%s", q, r.stdout, r.stderr)
		}
	}
	// Describe of a prepared statement names the columns too.
	ctx := context.Background()
	conn := h.connect(t, "app", "shop", nil)
	if _, err := conn.Exec(ctx, `DO $$BEGIN EXECUTE format('PREPARE q AS SELECT 1 AS %I', (SELECT card FROM orders WHERE id = 1)); END$$`); err != nil {
		t.Fatal(err)
	}
	sd, err := conn.Prepare(ctx, "described", "EXECUTE q")
	if err != nil {
		t.Fatal(err)
	}
	if len(sd.Fields) != 1 || showsCard(sd.Fields[0].Name) {
		t.Errorf("Describe named the column %q", sd.Fields[0].Name)
	}
	// Values that are no card numbers stay as they are.
	var f float64
	var b []byte
	if err := conn.QueryRow(ctx, "SELECT 1.5e15::float8, '\\x41'::bytea").Scan(&f, &b); err != nil || f != 1.5e15 || string(b) != "A" {
		t.Errorf("plain values: %v %q %v", f, b, err)
	}
	if tr := h.transcript.String(); showsCard(tr) {
		t.Errorf("the transcript shows the card number:\n%s", tr)
	}
}

// redCardsBindParamsInCapture: the wire capture (Config.Wire: the recording of what
// the client sent) masked a client message as one text. A Bind's parameters are joined
// only by their length prefixes, bytes no terminal draws, so a text card number next to
// another digit parameter (card, expiry month, year: "4111111111111111" "12" "2030")
// read as one run of 22 digits, which is no card number; and a binary parameter (pgx
// sends an int64 as int8, a float64 as float8, a numeric in base 10000) holds the
// number as bytes no detector reads. Each parameter is now masked on its own, a binary
// one also in the decimal form of the number it may be.
func redCardsBindParamsInCapture(t *testing.T, pg *testenv.Postgres) {
	wire := &testenv.SyncBuffer{}
	h := startProxy(t, pg, func(c *Config) {
		c.MaskColumn = nil
		c.Masks = nil
		c.MaskValue = realCards
		c.Wire = func(fromClient bool, p []byte) error {
			if fromClient {
				wire.Write(p)
			}
			return nil
		}
	})
	ctx := context.Background()
	conn := h.connect(t, "app", "shop", nil)
	const card = int64(4111111111111111)
	for _, c := range []struct {
		sql  string
		args []any
	}{
		{"SELECT $1::text, $2::text, $3::text", []any{"4111111111111111", "12", "2030"}},
		{"SELECT $1::text, $2::text", []any{"2030", "4111111111111111"}},
		{"SELECT $1::int8", []any{card}},
		{"SELECT $1::float8", []any{float64(card)}},
		{"SELECT $1::numeric", []any{card}},
		{"SELECT $1::int8[]", []any{[]int64{card}}},
	} {
		if _, err := conn.Exec(ctx, c.sql, c.args...); err != nil {
			t.Fatalf("%s: %v", c.sql, err)
		}
	}
	got := []byte(wire.String())
	var i8, f8 [8]byte
	binary.BigEndian.PutUint64(i8[:], uint64(card))
	binary.BigEndian.PutUint64(f8[:], math.Float64bits(float64(card)))
	for what, b := range map[string][]byte{
		"text":    []byte("4111111111111111"),
		"int8":    i8[:],
		"float8":  f8[:],
		"numeric": {0x10, 0x0f, 0x04, 0x57, 0x04, 0x57, 0x04, 0x57},
	} {
		if bytes.Contains(got, b) {
			t.Errorf("the capture holds the card number as %s", what)
		}
	}
	// Parameters that are no card numbers are kept.
	if !bytes.Contains(got, []byte("2030")) {
		t.Errorf("the capture lost the other parameters: %q", got)
	}
}

// redCardsCopyFromInCapture: COPY FROM STDIN data is cut into CopyData messages
// wherever the client's buffer fills (psql's \copy every 8 KiB, mid-line), and the
// capture masked each message on its own: a card number cut in two was stored whole.
// The capture now masks the client's COPY data as one stream, cut where no card number
// can go on (a newline, tab or comma); binary COPY data is stored as '*'s.
func redCardsCopyFromInCapture(t *testing.T, pg *testenv.Postgres) {
	wire := &testenv.SyncBuffer{}
	h := startProxy(t, pg, func(c *Config) {
		c.MaskColumn = nil
		c.Masks = nil
		c.MaskValue = realCards
		c.Wire = func(fromClient bool, p []byte) error {
			if fromClient {
				wire.Write(p)
			}
			return nil
		}
	})
	var rows strings.Builder
	for i := range 3000 {
		fmt.Fprintf(&rows, "%d\t4111111111111111\n", i)
	}
	file := filepath.Join(t.TempDir(), "cards.tsv")
	if err := os.WriteFile(file, []byte(rows.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	r := h.psql(t, "", "-c", `\copy copied FROM '`+file+`'`)
	if r.err != nil {
		t.Fatalf("\\copy: %v %s", r.err, r.stderr)
	}
	// Binary COPY data: pgx's CopyFrom sends int8 values as eight bytes.
	ctx := context.Background()
	conn := h.connect(t, "app", "shop", nil)
	if _, err := conn.Exec(ctx, "CREATE TABLE IF NOT EXISTS nums (n int8)"); err != nil {
		t.Fatal(err)
	}
	if _, err := conn.CopyFrom(ctx, pgx.Identifier{"nums"}, []string{"n"}, pgx.CopyFromRows([][]any{{int64(4111111111111111)}})); err != nil {
		t.Fatal(err)
	}
	got := copyDataOf(t, []byte(wire.String()))
	if bytes.Contains(got, []byte("4111111111111111")) {
		t.Errorf("the capture holds the card number")
	}
	var i8 [8]byte
	binary.BigEndian.PutUint64(i8[:], 4111111111111111)
	if bytes.Contains(got, i8[:]) {
		t.Errorf("the capture holds the card number as binary COPY data")
	}
	if !bytes.Contains(got, []byte("2999\t************1111\n")) {
		t.Errorf("the capture lost the COPY data")
	}
	if n := serverValue(t, h, "SELECT count(*) FROM copied"); n != "3000" {
		t.Errorf("copied %s rows, want 3000", n)
	}
}

// redCardsCopyLongFieldInCapture: COPY data with no newline, tab or comma in the 64 KiB
// the capture holds back (one long text field) was cut 64 bytes before its end, "a run
// this long is no card number": but the run is of any bytes, and a card number at the
// end of a long field, across the cut, was masked as two halves, neither a card number,
// and stored whole. The data is sent in 8 KiB CopyData messages, as psql's \copy does.
func redCardsCopyLongFieldInCapture(t *testing.T, pg *testenv.Postgres) {
	wire := &testenv.SyncBuffer{}
	h := startProxy(t, pg, func(c *Config) {
		c.MaskColumn = nil
		c.Masks = nil
		c.MaskValue = realCards
		c.Wire = func(fromClient bool, p []byte) error {
			if fromClient {
				wire.Write(p)
			}
			return nil
		}
	})
	conn := h.connect(t, "app", "shop", nil)
	// The cut fell at 64 KiB - 64: a card number starting 4 to 12 bytes before it.
	for _, before := range []int{4, 8, 12} {
		field := strings.Repeat("x", wireCopyMax-64-before) + "4111111111111111" + strings.Repeat(" y", 500) + "\n"
		if _, err := conn.PgConn().CopyFrom(context.Background(), &chunkReader{b: []byte(field), n: 8 << 10}, "COPY copied (name) FROM STDIN"); err != nil {
			t.Fatal(err)
		}
	}
	got := copyDataOf(t, []byte(wire.String()))
	if bytes.Contains(got, []byte("4111111111")) || bytes.Contains(got, []byte("111111111111")) {
		t.Errorf("the capture holds the card number (or a half of it that the other half completes)")
	}
	if n := bytes.Count(got, []byte("************1111")); n != 3 {
		t.Errorf("the capture has %d masked card numbers, want 3", n)
	}
}

// chunkReader reads b at most n bytes at a time.
type chunkReader struct {
	b []byte
	n int
}

func (r *chunkReader) Read(p []byte) (int, error) {
	if len(r.b) == 0 {
		return 0, io.EOF
	}
	k := copy(p[:min(len(p), r.n)], r.b)
	r.b = r.b[k:]
	return k, nil
}

func serverValue(t *testing.T, h *harness, q string) string {
	got := h.pg.QueryStrings(t, "shop", q)
	if len(got) != 1 {
		t.Fatalf("%s: %v", q, got)
	}
	return got[0]
}

// copyDataOf is the COPY data in a capture of what the clients sent (each connection's
// startup packet, then messages), joined as a reader of the capture would.
func copyDataOf(t *testing.T, capture []byte) []byte {
	var out []byte
	for len(capture) >= 8 {
		if capture[0] == 0 { // a startup packet: length, then protocol version
			n := int(binary.BigEndian.Uint32(capture))
			capture = capture[n:]
			continue
		}
		n := int(binary.BigEndian.Uint32(capture[1:]))
		if capture[0] == 'd' {
			out = append(out, capture[5:1+n]...)
		}
		capture = capture[1+n:]
	}
	return out
}

// redCardsRefusedInTranscript: the transcript masked the statement of a result, but
// wrote a refused one (blocked, unparseable, held) as typed, and the refusal's message
// with it, which for SQL that does not parse quotes the text ("unterminated quoted
// string at or near "'4111 1111 1111 1111""); the audit event carried that message too.
func redCardsRefusedInTranscript(t *testing.T, pg *testenv.Postgres) {
	h := startProxy(t, pg, func(c *Config) {
		c.MaskColumn = nil
		c.Masks = nil
		c.MaskValue = realCards
	})
	for _, q := range []string{
		`SELECT 1 FROM orders WHERE card = '4111 1111 1111 1111`,
		`SELECT 1 FROM orders WHERE card_num = 4111111111111111 4111111111111111`,
		`DELETE FROM orders /* card 4111 1111 1111 1111 */`,
		// normalised, DDL keeps its constants: the audit log had them as written
		`PREPARE p AS SELECT * FROM orders WHERE card = '4111 1111 1111 1111'; DROP TABLE orders`,
	} {
		if r := h.psql(t, "", "-c", q); r.err == nil {
			t.Errorf("%s ran", q)
		}
	}
	if tr := h.transcript.String(); hasCard(tr) || !strings.Contains(tr, "BLOCKED") {
		t.Errorf("the transcript shows the card number:\n%s", tr)
	}
	for _, ev := range h.Events() {
		if hasCard(ev.Message) || hasCard(ev.Statement.Normalized) || hasCard(ev.Statement.SQL) {
			t.Errorf("audit event %q: message %q", ev.Statement.Normalized, ev.Message)
		}
	}
}

// TestRedRaiseSQLSTATE: a withheld error or notice keeps its SQLSTATE, which the server
// fills from its own code, except a PL/pgSQL RAISE's: USING ERRCODE sets it to any five
// digits or capital letters, a value read from a masked column included (five digits
// of a card number per statement). A RAISE's is now its level's default.
func TestRedRaiseSQLSTATE(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": lineageSeed + "\nCREATE TABLE cards (id int, num text); INSERT INTO cards VALUES (1, '4111111111111111'); GRANT ALL ON cards TO app;"},
	})
	h := startProxy(t, pg, func(c *Config) {
		c.Judge = allowAll
		c.MaskColumn = nil
		c.Masks = &ColumnMasks{Rule: "cards", Source: func(schema, table, column string) bool { return table == "cards" && column == "num" }}
	})
	ctx := context.Background()
	var codes []string
	conn := h.connect(t, "app", "shop", func(c *pgx.ConnConfig) {
		c.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { codes = append(codes, "notice "+n.Code) }
	})
	const chunk = "(SELECT substr(num, 1, 5) FROM cards WHERE id = 1)"
	_, err := conn.Exec(ctx, "DO $$BEGIN RAISE EXCEPTION USING ERRCODE = "+chunk+"; END$$")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want the server's error", err)
	}
	codes = append(codes, "error "+pe.Code)
	if _, err := conn.Exec(ctx, "DO $$BEGIN RAISE NOTICE USING ERRCODE = "+chunk+", MESSAGE = 'x'; RAISE WARNING 'y' USING ERRCODE = "+chunk+"; END$$"); err != nil {
		t.Fatal(err)
	}
	want := []string{"error P0001", "notice 00000", "notice 01000"}
	if strings.Join(codes, ",") != strings.Join(want, ",") {
		t.Errorf("SQLSTATEs %q, want %q", codes, want)
	}
	// A RAISE that reads no masked column keeps its code.
	_, err = conn.Exec(ctx, "DO $$BEGIN RAISE EXCEPTION USING ERRCODE = '22023'; END$$")
	if !errors.As(err, &pe) || pe.Code != "22023" {
		t.Errorf("err = %v, want 22023", err)
	}
}

// TestRedColumnNamesOfUnknownResults: with column masks and unknowable: mask, a DO block
// whose SQL is built at run time may read a masked column (the analysis cannot see
// which) and open a cursor, or prepare a statement, whose column is named after the
// value (a PREPARE so is refused: it stores values). Its rows were masked (their source
// cannot be known) but the column's name went out in clear, to the client and the
// transcript: a masked value read, no table written. A column the analysis cannot place
// (an open result: a cursor or prepared statement declared elsewhere) and whose source
// is unknown now has its name masked too.
func TestRedColumnNamesOfUnknownResults(t *testing.T) {
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
	for _, q := range []string{
		`BEGIN; DO $$DECLARE v text; c refcursor := 'leak'; BEGIN EXECUTE 'SELECT name FROM ' || 'customers WHERE id = 1' INTO v; OPEN c FOR EXECUTE format('SELECT 1 AS %I', v); END$$; FETCH ALL FROM leak; COMMIT`,
	} {
		r := h.psql(t, "", "-c", q)
		if r.err != nil {
			t.Fatalf("%s: %v %s", q, r.err, r.stderr)
		}
		if leaksName(r.stdout) || !strings.Contains(r.stdout, ColumnMask) {
			t.Errorf("%s:\n%s", q, r.stdout)
		}
	}
	if tr := h.transcript.String(); leaksName(tr) {
		t.Errorf("the transcript shows a masked value:\n%s", tr)
	}
	// The names of results the analysis places stay.
	if r := h.psql(t, "", "-c", "SELECT id, name AS who FROM customers ORDER BY id"); !strings.Contains(r.stdout, "who") {
		t.Errorf("plain SELECT: %s %s", r.stdout, r.stderr)
	}
}
