package pgproxy

import (
	"context"
	"strings"
	"testing"
)

// Regression tests for a red team on the output side: card numbers reaching the client
// or the recording in forms the card detector did not look at.

// cardHex are the seeded card number's bytes (orders.card, orders.card_num's text) in
// bytea's hex output.
var cardHex = []string{"34313131203131313120313131312031313131", "34313131313131313131313131313131"}

// showsCard reports whether s shows the seeded card number in any form these tests try.
func showsCard(s string) bool {
	if hasCard(s) || strings.Contains(s, "4.111111111111111e+15") {
		return true
	}
	for _, h := range cardHex {
		if strings.Contains(s, h) {
			return true
		}
	}
	return false
}

// TestRedCardsHiddenForms: with the card detector alone, a card number reached the client
// and the transcript as a result column's name (RowDescription: SQL built at run time
// names its columns after any value), as bytea's hex output (a card number stored or cast
// as bytea), and as float8's exponent form (4.111111111111111e+15 holds all 16 digits);
// the binary forms of the latter two were masked, their text forms not.
func TestRedCardsHiddenForms(t *testing.T) {
	h := startProxy(t, startCluster(t), func(c *Config) {
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
