package pgproxy

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"

	"github.com/bastionhq/bastion/bastion/mask"
	"github.com/bastionhq/bastion/internal/testenv"
)

// Regression tests for masking leaks found by a red team: values of masked columns or
// card numbers reaching the client through channels other than result rows.

// realCards is the production MaskValue for a cards-only rule (bastion/postgres.go).
func realCards(v []byte) ([]byte, bool) {
	out, n := mask.MaskString(mask.Config{Cards: true}, string(v))
	if n == 0 {
		return nil, false
	}
	return []byte(out), true
}

// hasCard reports whether s shows the seeded card number.
func hasCard(s string) bool {
	return strings.Contains(s, "4111111111111111") || strings.Contains(s, "4111 1111 1111 1111")
}

// startCardsProxy is a proxy with the card detector alone, as a deployment with only
// {on: output, match: {detector: credit_card}, action: mask} configures it.
func startCardsProxy(t *testing.T) *harness {
	return startProxy(t, startCluster(t), func(c *Config) {
		c.MaskColumn = nil
		c.Masks = nil
		c.MaskValue = realCards
	})
}

func noticeText(n *pgconn.Notice) string {
	return fmt.Sprintf("M=%q D=%q H=%q W=%q s=%q t=%q c=%q d=%q n=%q", n.Message, n.Detail, n.Hint, n.Where,
		n.SchemaName, n.TableName, n.ColumnName, n.DataTypeName, n.ConstraintName)
}

func pgErrorText(e *pgconn.PgError) string {
	return fmt.Sprintf("M=%q D=%q H=%q W=%q q=%q s=%q t=%q c=%q d=%q n=%q", e.Message, e.Detail, e.Hint, e.Where,
		e.InternalQuery, e.SchemaName, e.TableName, e.ColumnName, e.DataTypeName, e.ConstraintName)
}

// TestRedErrorFields: RAISE ... USING SCHEMA/TABLE/COLUMN/DATATYPE/CONSTRAINT sets those
// fields of an error or notice to any value; they go through the value masker, and are
// dropped when the statement's messages are withheld.
func TestRedErrorFields(t *testing.T) {
	ctx := context.Background()
	t.Run("cards detector", func(t *testing.T) {
		h := startCardsProxy(t)
		var notices []string
		conn := h.connect(t, "app", "shop", func(c *pgx.ConnConfig) {
			c.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, noticeText(n)) }
		})
		const card = "(SELECT card FROM orders WHERE id = 1)"
		if _, err := conn.Exec(ctx, "DO $$BEGIN RAISE NOTICE 'hi' USING DETAIL = "+card+", SCHEMA = "+card+
			", TABLE = "+card+", COLUMN = "+card+", DATATYPE = "+card+", CONSTRAINT = "+card+"; END$$"); err != nil {
			t.Fatal(err)
		}
		if len(notices) != 1 || hasCard(notices[0]) || !strings.Contains(notices[0], `M="hi"`) {
			t.Errorf("notices = %v, want one notice \"hi\" with its fields masked", notices)
		}
		_, err := conn.Exec(ctx, "DO $$BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = '22023', CONSTRAINT = "+card+
			", SCHEMA = "+card+", TABLE = "+card+", COLUMN = "+card+", DATATYPE = "+card+"; END$$")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			t.Fatalf("err = %v, want the server's error", err)
		}
		if pe.Code != "22023" || pe.Message != "boom" || hasCard(pgErrorText(pe)) {
			t.Errorf("error %s %s, want 22023 boom with its fields masked", pe.Code, pgErrorText(pe))
		}
	})
	t.Run("column masks (withheld message)", func(t *testing.T) {
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
		var notices []string
		conn := h.connect(t, "app", "shop", func(c *pgx.ConnConfig) {
			c.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, noticeText(n)) }
		})
		if _, err := conn.Exec(ctx, "DO $$BEGIN RAISE NOTICE 'hi' USING SCHEMA = (SELECT name FROM customers ORDER BY id LIMIT 1), "+
			"TABLE = (SELECT name FROM customers ORDER BY id DESC LIMIT 1), DATATYPE = (SELECT min(name) FROM customers); END$$"); err != nil {
			t.Fatal(err)
		}
		if len(notices) != 1 || leaksName(notices[0]) || !strings.Contains(notices[0], "withheld") {
			t.Errorf("notices = %v, want one withheld notice", notices)
		}
		_, err := conn.Exec(ctx, "DO $$BEGIN RAISE EXCEPTION 'boom' USING ERRCODE = '22023', COLUMN = (SELECT string_agg(name, ',') FROM customers), "+
			"CONSTRAINT = (SELECT max(name) FROM customers); END$$")
		var pe *pgconn.PgError
		if !errors.As(err, &pe) {
			t.Fatalf("err = %v, want the server's error", err)
		}
		if pe.Code != "22023" || leaksName(pgErrorText(pe)) || !strings.Contains(pe.Message, "withheld") {
			t.Errorf("error %s %s, want 22023 withheld", pe.Code, pgErrorText(pe))
		}
		if pe.ColumnName != "" || pe.ConstraintName != "" {
			t.Errorf("withheld error kept column %q constraint %q", pe.ColumnName, pe.ConstraintName)
		}
	})
}

// TestRedCardsParamStatus: set_config on a reported setting puts any value in the
// ParameterStatus the server sends the client.
func TestRedCardsParamStatus(t *testing.T) {
	ctx := context.Background()
	t.Run("cards detector", func(t *testing.T) {
		h := startCardsProxy(t)
		conn := h.connect(t, "app", "shop", nil)
		var v string
		if err := conn.QueryRow(ctx, "SELECT set_config('application_name', card, false) FROM orders WHERE id = 1").Scan(&v); err != nil {
			t.Fatal(err)
		}
		if ps := conn.PgConn().ParameterStatus("application_name"); hasCard(ps) || hasCard(v) || ps == "" {
			t.Errorf("application_name reported as %q (result %q), want it masked", ps, v)
		}
		if _, err := conn.Exec(ctx, "SET application_name = 'tool'"); err != nil {
			t.Fatal(err)
		}
		if ps := conn.PgConn().ParameterStatus("application_name"); ps != "tool" {
			t.Errorf("application_name reported as %q, want tool", ps)
		}
	})
	t.Run("column masks", func(t *testing.T) {
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
		conn := h.connect(t, "app", "shop", nil)
		// Refused as a copy; and were it run, its report would be masked.
		_, err := conn.Exec(ctx, "SELECT set_config('application_name', name, false) FROM customers WHERE id = 1")
		if ps := conn.PgConn().ParameterStatus("application_name"); leaksName(ps) {
			t.Errorf("application_name reported as %q (err %v)", ps, err)
		}
		// A statement whose messages are withheld has its free-text settings masked.
		_, err = conn.Exec(ctx, "SELECT set_config('application_name', 'n' || count(*), false) FROM customers WHERE name LIKE 'A%'")
		if ps := conn.PgConn().ParameterStatus("application_name"); err != nil || ps != ColumnMask {
			t.Errorf("application_name reported as %q (err %v), want %q", ps, err, ColumnMask)
		}
		if _, err := conn.Exec(ctx, "SET application_name = 'tool'"); err != nil {
			t.Fatal(err)
		}
		if ps := conn.PgConn().ParameterStatus("application_name"); ps != "tool" {
			t.Errorf("application_name reported as %q, want tool", ps)
		}
	})
}

// TestRedConstraintDetail: a constraint violation quotes the row ("Failing row contains
// (...)") or key ("Key (name)=(...) already exists"), masked columns included, for a
// statement that only writes to the table and never reads a masked column.
func TestRedConstraintDetail(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": `
CREATE TABLE customers (id int PRIMARY KEY, name text UNIQUE, city text NOT NULL CHECK (city <> 'nowhere'));
INSERT INTO customers VALUES (1, 'Ada Lovelace', 'London'), (2, 'Alan Turing', 'Wilmslow');
CREATE TABLE people (id int, name text, city text);
INSERT INTO people VALUES (1, 'Ada Lovelace', 'London'), (2, 'Ada Lovelace', 'Wilmslow');
CREATE TABLE staff (id int PRIMARY KEY, name text NOT NULL);
CREATE TABLE deferred (id int, name text, CONSTRAINT one_name UNIQUE (name) DEFERRABLE INITIALLY DEFERRED);
INSERT INTO deferred VALUES (1, 'Ada Lovelace'), (2, 'Alan Turing');
CREATE TABLE towns (name text PRIMARY KEY);
INSERT INTO towns VALUES ('London');
CREATE TABLE residents (id int, name text, town text NOT NULL REFERENCES towns ON DELETE SET NULL);
INSERT INTO residents VALUES (1, 'Ada Lovelace', 'London');
GRANT ALL ON ALL TABLES IN SCHEMA public TO app;
GRANT CREATE ON SCHEMA public TO app;
ALTER TABLE customers OWNER TO app;
ALTER TABLE people OWNER TO app;`},
	})
	h := startProxy(t, pg, func(c *Config) {
		c.Judge = allowAll
		c.MaskColumn = nil
		c.Masks = &ColumnMasks{Rule: "names", Source: func(schema, table, column string) bool {
			return table != "staff" && table != "towns" && column == "name"
		}}
	})
	for _, sql := range []string{
		"UPDATE customers SET city = NULL WHERE id = 1",
		"UPDATE customers SET city = 'nowhere' WHERE id = 2",
		"UPDATE customers SET id = NULL WHERE id = 2",
		"UPDATE customers SET id = 1 WHERE id = 2",
		"INSERT INTO customers (id, city) VALUES (1, 'Paris') ON CONFLICT (id) DO UPDATE SET city = NULL",
		"DELETE FROM customers WHERE city::int = 1",
		"ALTER TABLE customers ALTER name TYPE int USING name::int",
		"ALTER TABLE people ADD PRIMARY KEY (name)",
		"CREATE UNIQUE INDEX ON people (name)",
		"PREPARE up AS UPDATE customers SET city = NULL WHERE id = $1; EXECUTE up(2)",
		"DO $$BEGIN UPDATE customers SET city = NULL WHERE id = 2; END$$",
		"BEGIN; UPDATE deferred SET name = 'x' WHERE id = 1; UPDATE deferred SET name = 'x' WHERE id = 2; COMMIT",
		// A cascade writes residents, which the statement does not name.
		"DELETE FROM towns WHERE name = 'London'",
	} {
		r := h.psql(t, "", "-c", sql)
		if r.err == nil {
			t.Errorf("%s: succeeded, want an error", sql)
		}
		if leaksName(r.stdout+r.stderr) || !strings.Contains(r.stderr, "withheld") {
			t.Errorf("%s: %q, want the message withheld", sql, r.stderr)
		}
	}
	// The deferred check at COMMIT, after the writes in earlier statements.
	ctx := context.Background()
	conn := h.connect(t, "app", "shop", nil)
	for _, sql := range []string{"BEGIN", "UPDATE deferred SET name = 'y' WHERE id = 1", "UPDATE deferred SET name = 'y' WHERE id = 2"} {
		if _, err := conn.Exec(ctx, sql); err != nil {
			t.Fatalf("%s: %v", sql, err)
		}
	}
	_, err := conn.Exec(ctx, "COMMIT")
	var pe *pgconn.PgError
	if !errors.As(err, &pe) || pe.Code != "23505" || leaksName(pgErrorText(pe)) || !strings.Contains(pe.Message, "withheld") {
		t.Errorf("COMMIT: %v, want 23505 withheld", err)
	}
	// A table without masked columns keeps its messages.
	r := h.psql(t, "", "-c", "INSERT INTO staff VALUES (1, NULL)")
	if !strings.Contains(r.stderr, "Failing row contains (1, null)") {
		t.Errorf("staff: %q, want the server's detail", r.stderr)
	}
}

// TestRedTriggerNotice: a trigger on the table with the masked column prints NEW for a
// statement that writes the table without reading the masked column.
func TestRedTriggerNotice(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		Roles:     []string{"app"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": lineageSeed + `
CREATE FUNCTION shout() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE NOTICE '%', NEW; RETURN NEW; END$$;
CREATE TRIGGER shout BEFORE UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION shout();
CREATE FUNCTION shout2() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN RAISE EXCEPTION 'no' USING DETAIL = OLD::text; END$$;
CREATE TRIGGER shout2 BEFORE DELETE ON customers FOR EACH ROW EXECUTE FUNCTION shout2();`},
	})
	h := startProxy(t, pg, func(c *Config) {
		c.Judge = allowAll
		c.MaskColumn = nil
		c.Masks = lineageMasks(false)
	})
	for _, sql := range []string{
		"UPDATE customers SET city = city WHERE id = 1",
		"DELETE FROM customers WHERE id = 2",
	} {
		r := h.psql(t, "", "-c", sql)
		if leaksName(r.stdout+r.stderr) || !strings.Contains(r.stderr, "withheld") {
			t.Errorf("%s: %q, want the message withheld", sql, r.stderr)
		}
	}
}

// TestRedCardsBinary: binary result formats carry a card number in forms the detector
// does not read (an int8 inside an array, a record or a range; a domain over int8; a
// float8; binary COPY data). Such values go out as NULL with a notice, and binary COPY TO
// STDOUT is refused.
func TestRedCardsBinary(t *testing.T) {
	h := startCardsProxy(t)
	ctx := context.Background()
	var notices []string
	conn := h.connect(t, "app", "shop", func(c *pgx.ConnConfig) {
		c.OnNotice = func(_ *pgconn.PgConn, n *pgconn.Notice) { notices = append(notices, n.Message) }
	})
	for _, q := range []string{
		"SELECT ARRAY[card_num] FROM orders WHERE id = 1",
		"SELECT ARRAY[[0, card_num]] FROM orders WHERE id = 1",
		"SELECT ARRAY[card_num::numeric] FROM orders WHERE id = 1",
		"SELECT ROW(card_num, 0) FROM orders WHERE id = 1",
		"SELECT ARRAY[ROW(0, ROW(card_num))] FROM orders WHERE id = 1",
		"SELECT int8range(card_num, card_num + 1) FROM orders WHERE id = 1",
		"SELECT numrange(0, card_num) FROM orders WHERE id = 1",
		"SELECT int8multirange(int8range(card_num, NULL)) FROM orders WHERE id = 1",
		"SELECT card_num::float8 FROM orders WHERE id = 1",
		"SELECT ARRAY[card_num::float8] FROM orders WHERE id = 1",
		"SELECT ARRAY[card] FROM orders WHERE id = 1",
	} {
		notices = nil
		rows, err := conn.Query(ctx, q) // pgx asks for binary results where it can
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var got string
		for rows.Next() {
			v, err := rows.Values()
			got += fmt.Sprintf("%v %v ", v, err)
		}
		if err := rows.Err(); err != nil {
			t.Errorf("%s: %v", q, err)
		}
		if hasCard(got) || strings.Contains(got, "4.111111111111111e+15") || got != "[<nil>] <nil> " {
			t.Errorf("%s -> %s, want NULL", q, got)
		}
		if len(notices) != 1 || !strings.Contains(notices[0], "sent as NULL") {
			t.Errorf("%s: notices %q, want one about NULL", q, notices)
		}
	}
	// Values that are not card numbers pass, in every shape.
	for q, want := range map[string]string{
		"SELECT ARRAY[card_num] FROM orders WHERE id = 2":                   "[[42]]",
		"SELECT ROW(card_num, 'x'::text) FROM orders WHERE id = 2":          "[[42 x]]",
		"SELECT int8range(card_num, card_num + 1) FROM orders WHERE id = 2": "[{42 43 i e true}]",
		"SELECT card_num::float8 FROM orders WHERE id = 2":                  "[42]",
		"SELECT ARRAY['a', NULL, 'b']":                                      "[[a <nil> b]]",
		"SELECT now()::date - now()::date, true":                            "[0 true]",
	} {
		notices = nil
		rows, err := conn.Query(ctx, q)
		if err != nil {
			t.Fatalf("%s: %v", q, err)
		}
		var got string
		for rows.Next() {
			v, _ := rows.Values()
			got += fmt.Sprint(v)
		}
		rows.Close()
		if got != want || len(notices) != 0 {
			t.Errorf("%s -> %s (notices %q), want %s", q, got, notices, want)
		}
	}

	// A domain over int8: its OID says nothing of how to read it.
	if _, err := conn.Exec(ctx, "CREATE DOMAIN cardnum AS int8"); err != nil {
		t.Fatal(err)
	}
	res := conn.PgConn().ExecParams(ctx, "SELECT card_num::cardnum FROM orders WHERE id = 1", nil, nil, nil, []int16{1}).Read()
	if res.Err != nil {
		t.Fatal(res.Err)
	}
	if len(res.Rows) != 1 || res.Rows[0][0] != nil {
		t.Errorf("domain over int8: got %x, want NULL", res.Rows)
	}

	for _, q := range []string{
		"COPY (SELECT card_num FROM orders WHERE id = 1) TO STDOUT WITH (FORMAT binary)",
		"COPY (SELECT card_num FROM orders WHERE id = 1) TO STDOUT WITH (FORMAT 'BINARY')",
		"COPY orders (card_num) TO STDOUT BINARY",
		"COPY BINARY orders TO STDOUT",
	} {
		var buf bytes.Buffer
		_, err := conn.PgConn().CopyTo(ctx, &buf, q)
		wantPgError(t, err, "42501", "use FORMAT text or csv")
		b := buf.Bytes()
		if i := bytes.Index(b, []byte{0, 0, 0, 8}); i >= 0 && len(b) >= i+12 && binary.BigEndian.Uint64(b[i+4:]) == 4111111111111111 {
			t.Errorf("%s: the card number in COPY data", q)
		}
	}
	// Text COPY data goes through the value masker.
	var buf bytes.Buffer
	if _, err := conn.PgConn().CopyTo(ctx, &buf, "COPY (SELECT card_num, card FROM orders WHERE id = 1) TO STDOUT WITH (FORMAT csv)"); err != nil {
		t.Fatal(err)
	}
	if hasCard(buf.String()) || !strings.Contains(buf.String(), "1111") {
		t.Errorf("COPY csv: %q, want the card numbers masked", buf.String())
	}
}
