package pgproxy

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bastionhq/bastion/internal/testenv"
)

// lineageSeed: customers.name is masked (by table and column); staff.name is not.
const lineageSeed = `
CREATE TABLE customers (id int PRIMARY KEY, name text, city text);
INSERT INTO customers VALUES (1, 'Ada Lovelace', 'London'), (2, 'Alan Turing', 'Wilmslow');
CREATE TABLE staff (id int, name text);
INSERT INTO staff VALUES (1, 'Grace Hopper');
CREATE TABLE orders (id int, customer_id int, amount int);
INSERT INTO orders VALUES (10, 1, 5), (11, 2, 7);
CREATE VIEW cust_view AS SELECT id, name AS who, city FROM customers;
CREATE VIEW cust_shout AS SELECT id, upper(name) || '!' AS shout FROM customers;
CREATE VIEW view_of_view AS SELECT who AS w FROM cust_view;
CREATE TABLE people (id int, name text) PARTITION BY RANGE (id);
CREATE TABLE people_1 PARTITION OF people FOR VALUES FROM (0) TO (100);
INSERT INTO people VALUES (1, 'Ada Lovelace');
CREATE FUNCTION get_name(i int) RETURNS text LANGUAGE sql STABLE AS 'SELECT name FROM customers WHERE id = i';
CREATE FUNCTION get_name_pl(i int) RETURNS text LANGUAGE plpgsql STABLE AS $$BEGIN RETURN (SELECT name FROM customers WHERE id = i); END$$;
CREATE FUNCTION plus_one(i int) RETURNS int LANGUAGE sql IMMUTABLE AS 'SELECT i + 1';
CREATE FUNCTION copy_names() RETURNS void LANGUAGE sql AS 'INSERT INTO staff SELECT 100 + id, name FROM customers';
GRANT ALL ON ALL TABLES IN SCHEMA public TO app;
GRANT CREATE ON SCHEMA public TO app;
`

// lineageMasks masks customers.name and people.name (the partitioned parent, so its
// partitions' data too).
func lineageMasks(block bool) *ColumnMasks {
	return &ColumnMasks{Rule: "names", Block: block, Source: func(schema, table, column string) bool {
		return (table == "customers" || table == "people") && column == "name"
	}}
}

func allowAll(context.Context, Statement) Verdict { return Verdict{Action: Allow} }

// clearNames are the masked values; none may reach the client.
var clearNames = []string{"Ada", "Lovelace", "Alan", "Turing"}

func leaksName(s string) bool {
	for _, n := range clearNames {
		if strings.Contains(s, n) {
			return true
		}
	}
	return false
}

// TestLineageMaskingEndToEnd: a mask on customers.name follows the column through
// renaming, expressions, whole rows, subqueries, CTEs, views, casts, CASE, aggregates,
// RETURNING, cursors and prepared statements, with the real psql and pgx against a real
// PostgreSQL 15; copies that would lose the mask are refused; other columns and other
// tables' name columns stay clear.
func TestLineageMaskingEndToEnd(t *testing.T) {
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
	ctx := context.Background()

	masked := []string{
		"SELECT name AS n FROM customers",
		"SELECT upper(name) FROM customers",
		"SELECT lower(name) AS x, id FROM customers",
		"SELECT c FROM customers c",
		"SELECT customers FROM customers",
		"SELECT row_to_json(c) FROM customers c",
		"SELECT to_jsonb(c.*) FROM customers c",
		"SELECT ROW(c.*)::text FROM customers c",
		"SELECT (c).name FROM customers c",
		"SELECT c.* FROM customers c",
		"SELECT * FROM customers",
		"SELECT * FROM (SELECT name FROM customers) s",
		"SELECT s.x FROM (SELECT name AS x FROM customers) AS s",
		"SELECT * FROM (SELECT * FROM customers) AS s(a, b, c)",
		"WITH x AS (SELECT name FROM customers) SELECT * FROM x",
		"WITH RECURSIVE r(n, d) AS (SELECT name, 1 FROM customers UNION ALL SELECT n, d + 1 FROM r WHERE d < 2) SELECT * FROM r",
		"SELECT who FROM cust_view",
		"SELECT * FROM cust_view",
		"SELECT shout FROM cust_shout",
		"SELECT w FROM view_of_view",
		"SELECT name::text FROM customers",
		"SELECT CAST(name AS varchar(50)) FROM customers",
		"SELECT CASE WHEN id = 1 THEN name ELSE 'x' END FROM customers",
		"SELECT coalesce(name, 'x') FROM customers",
		"SELECT string_agg(name, ',') FROM customers",
		"SELECT json_agg(c) FROM customers c",
		"SELECT json_agg(name) FROM customers",
		"SELECT array_agg(name)::text FROM customers",
		"SELECT ARRAY(SELECT name FROM customers)::text",
		"SELECT (SELECT name FROM customers ORDER BY id LIMIT 1)",
		"SELECT name FROM customers UNION SELECT 'x'",
		"SELECT 'x' UNION ALL SELECT name FROM customers",
		"SELECT format('%s', name), concat('', name), name || '' FROM customers",
		"SELECT first_value(name) OVER (ORDER BY id) FROM customers",
		"SELECT s.n FROM orders o, LATERAL (SELECT name AS n FROM customers c WHERE c.id = o.customer_id) s",
		"SELECT o.id, c.name FROM orders o JOIN customers c ON c.id = o.customer_id",
		"SELECT * FROM staff JOIN customers USING (id)",
		"SELECT customers.name FROM customers",
		"SELECT public.customers.name FROM public.customers",
		"SELECT get_name(1)",
		"SELECT get_name_pl(2)",
		"SELECT name FROM people_1",
		"SELECT name FROM people",
		"SELECT xmlforest(name) FROM customers",
		"SELECT query_to_xml('SELECT name FROM customers', true, true, '')",
		"INSERT INTO customers VALUES (3, 'Bob Kahn', 'Glendale') ON CONFLICT (id) DO UPDATE SET city = excluded.city RETURNING name",
		"UPDATE customers SET city = city WHERE id = 1 RETURNING name AS n",
		"DELETE FROM customers WHERE id = 3 RETURNING upper(name)",
		"BEGIN; DECLARE cur CURSOR FOR SELECT name AS n FROM customers; FETCH ALL FROM cur; COMMIT",
		"PREPARE p1 AS SELECT name AS n FROM customers; EXECUTE p1",
		"SELECT * FROM ROWS FROM (unnest(ARRAY(SELECT name FROM customers))) AS u",
	}
	for _, sql := range masked {
		t.Run("psql masked: "+sql, func(t *testing.T) {
			r := h.psql(t, "", "-A", "-t", "-c", sql)
			if r.err != nil {
				t.Fatalf("psql: %v\n%s", r.err, r.stderr)
			}
			if leaksName(r.stdout + r.stderr) {
				t.Errorf("a masked value reached the client: %q %q", r.stdout, r.stderr)
			}
			if !strings.Contains(r.stdout, ColumnMask) {
				t.Errorf("got %q, want %s in it", r.stdout, ColumnMask)
			}
		})
	}

	t.Run("pgx, every case, text and binary", func(t *testing.T) {
		conn := h.connect(t, "app", "shop", nil)
		for _, sql := range masked {
			if strings.Contains(sql, ";") {
				continue // one statement per message in the extended protocol: below
			}
			for _, mode := range []pgx.QueryExecMode{pgx.QueryExecModeSimpleProtocol, pgx.QueryExecModeCacheStatement} {
				rows, err := conn.Query(ctx, sql, mode)
				if err != nil {
					t.Errorf("%s (%v): %v", sql, mode, err)
					continue
				}
				var all []string
				for rows.Next() {
					vals, err := rows.Values()
					if err != nil {
						t.Errorf("%s (%v): %v", sql, mode, err)
						break
					}
					for _, v := range vals {
						all = append(all, fmt.Sprint(v))
					}
				}
				if err := rows.Err(); err != nil {
					t.Errorf("%s (%v): %v", sql, mode, err)
				}
				got := strings.Join(all, "|")
				if leaksName(got) {
					t.Errorf("%s (%v): a masked value reached pgx: %q", sql, mode, got)
				}
				if mode == pgx.QueryExecModeSimpleProtocol && strings.HasPrefix(sql, "SELECT") && !strings.Contains(got, ColumnMask) {
					t.Errorf("%s (%v): got %q, want the mask", sql, mode, got)
				}
			}
		}
		// A cursor and an SQL prepared statement, through the extended protocol.
		tx, err := conn.Begin(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := tx.Exec(ctx, "DECLARE cur2 CURSOR FOR SELECT id, name AS n FROM customers"); err != nil {
			t.Fatal(err)
		}
		var got []string
		rows, err := tx.Query(ctx, "FETCH ALL FROM cur2", pgx.QueryResultFormats{pgx.TextFormatCode})
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var id, n string
			if err := rows.Scan(&id, &n); err != nil {
				t.Fatal(err)
			}
			got = append(got, n)
		}
		tx.Rollback(ctx)
		if len(got) != 2 || got[0] != ColumnMask || got[1] != ColumnMask {
			t.Errorf("FETCH through pgx: got %q, want two masks", got)
		}
		if _, err := conn.Exec(ctx, "PREPARE p2 AS SELECT upper(name) FROM customers WHERE id = $1"); err != nil {
			t.Fatal(err)
		}
		var v string
		if err := conn.QueryRow(ctx, "EXECUTE p2(1)", pgx.QueryExecModeSimpleProtocol).Scan(&v); err != nil || v != ColumnMask {
			t.Errorf("EXECUTE through pgx: got %q, %v; want the mask", v, err)
		}
	})

	t.Run("pgx, extended protocol", func(t *testing.T) {
		conn := h.connect(t, "app", "shop", nil)
		for _, sql := range []string{"SELECT name AS n FROM customers WHERE id = $1", "SELECT upper(name) FROM customers WHERE id = $1", "SELECT get_name($1)"} {
			// Text results: the mask.
			var got string
			if err := conn.QueryRow(ctx, sql, pgx.QueryExecModeSimpleProtocol, 1).Scan(&got); err != nil || got != ColumnMask {
				t.Errorf("%s (simple): got %q, %v; want the mask", sql, got, err)
			}
			// Binary results: NULL, with a notice.
			var p *string
			if err := conn.QueryRow(ctx, sql, 1).Scan(&p); err != nil || p != nil && *p != ColumnMask {
				t.Errorf("%s (extended): got %v, %v; want NULL or the mask", sql, p, err)
			}
		}
		// A prepared statement keeps its lineage.
		if _, err := conn.Prepare(ctx, "named", "SELECT c.name, c.city FROM customers c ORDER BY id"); err != nil {
			t.Fatal(err)
		}
		rows, err := conn.Query(ctx, "named", pgx.QueryResultFormats{pgx.TextFormatCode})
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var name, city string
			if err := rows.Scan(&name, &city); err != nil {
				t.Fatal(err)
			}
			if name != ColumnMask || city == ColumnMask || city == "" {
				t.Errorf("got %q, %q; want the name masked and the city clear", name, city)
			}
		}
		if rows.Err() != nil {
			t.Fatal(rows.Err())
		}
	})

	t.Run("COPY of masked columns is refused, of others allowed", func(t *testing.T) {
		for _, sql := range []string{"COPY (SELECT name FROM customers) TO STDOUT", "COPY customers TO STDOUT", "COPY customers (name) TO STDOUT", "COPY (SELECT * FROM cust_view) TO STDOUT"} {
			r := h.psql(t, "", "-c", sql)
			if r.err == nil || leaksName(r.stdout) || !strings.Contains(r.stderr, `masking rule "names"`) {
				t.Errorf("%s: got %v, stdout %q stderr %q; want a refusal", sql, r.err, r.stdout, r.stderr)
			}
		}
		r := h.psql(t, "", "-c", "COPY customers (id, city) TO STDOUT")
		if r.err != nil || !strings.Contains(r.stdout, "London") {
			t.Errorf("COPY of clear columns: %v %q %q", r.err, r.stdout, r.stderr)
		}
	})

	t.Run("messages that would quote a masked value are withheld", func(t *testing.T) {
		for _, sql := range []string{
			"SELECT name::int FROM customers",
			"SELECT 1 FROM customers WHERE name::int > 0",
			"DO $$BEGIN RAISE NOTICE 'got %', (SELECT name FROM customers ORDER BY id LIMIT 1); END$$",
			"DO $$BEGIN RAISE EXCEPTION 'got %', (SELECT name FROM customers ORDER BY id LIMIT 1); END$$",
		} {
			r := h.psql(t, "", "-c", sql)
			if leaksName(r.stdout + r.stderr) {
				t.Errorf("%s: a masked value in a message: %q", sql, r.stderr)
			}
			if !strings.Contains(r.stderr, "withheld") {
				t.Errorf("%s: got %q, want the message withheld", sql, r.stderr)
			}
		}
		// Other statements keep their messages.
		if r := h.psql(t, "", "-c", "SELECT 'abc'::int"); !strings.Contains(r.stderr, `invalid input syntax for type integer: "abc"`) {
			t.Errorf("an unrelated error lost its message: %q", r.stderr)
		}
	})

	t.Run("copies that would lose the mask are refused", func(t *testing.T) {
		for _, sql := range []string{
			"CREATE TABLE copy1 AS SELECT name AS n FROM customers",
			"SELECT name AS n INTO copy2 FROM customers",
			"INSERT INTO staff (id, name) SELECT id, name FROM customers",
			"INSERT INTO staff SELECT * FROM customers",
			"UPDATE staff SET name = (SELECT name FROM customers LIMIT 1)",
			"UPDATE staff s SET name = c.name FROM customers c WHERE c.id = s.id",
			"WITH x AS (SELECT name FROM customers) INSERT INTO staff SELECT 5, name FROM x",
			"SELECT pg_notify('ch', name) FROM customers",
			"SELECT set_config('my.x', name, false) FROM customers",
			"ALTER TABLE customers RENAME COLUMN name TO n",
			"ALTER TABLE customers RENAME TO clients",
			"ALTER TABLE customers ADD COLUMN n2 text GENERATED ALWAYS AS (upper(name)) STORED",
			"CREATE RULE r1 AS ON UPDATE TO customers DO ALSO INSERT INTO staff VALUES (NEW.id, NEW.name)",
			"DO $$BEGIN INSERT INTO staff SELECT 9, name FROM customers; END$$",
			"DO $$DECLARE v text; BEGIN SELECT name INTO v FROM customers LIMIT 1; INSERT INTO staff VALUES (9, v); END$$",
			"CREATE FUNCTION copier() RETURNS void LANGUAGE sql AS 'INSERT INTO staff SELECT 9, name FROM customers'",
			"CREATE FUNCTION copier2() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO staff VALUES (NEW.id, NEW.name); RETURN NEW; END$$; CREATE TRIGGER t2 AFTER UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION copier2()",
			"COPY (SELECT name FROM customers) TO '/tmp/names'",
			"ALTER TABLE staff ALTER COLUMN name SET DEFAULT get_name(1)",
			"CREATE TABLE defaulted (id int, n text DEFAULT get_name(1))",
			"CREATE FUNCTION fill() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN NEW.name := (SELECT name FROM customers LIMIT 1); RETURN NEW; END$$",
			"SELECT copy_names()",
		} {
			r := h.psql(t, "", "-c", sql)
			if r.err == nil || !strings.Contains(r.stderr, `masking rule "names"`) {
				t.Errorf("%s: got %v, stderr %q; want a refusal by the masking rule", sql, r.err, r.stderr)
			}
		}
		// The trigger function alone is harmless until a trigger ties it to customers.
		if r := h.psql(t, "", "-c", "CREATE FUNCTION copier3() RETURNS trigger LANGUAGE plpgsql AS $$BEGIN INSERT INTO staff VALUES (NEW.id, NEW.name); RETURN NEW; END$$"); r.err != nil {
			t.Fatalf("creating a trigger function: %v %s", r.err, r.stderr)
		}
		if r := h.psql(t, "", "-c", "CREATE TRIGGER t3 AFTER UPDATE ON customers FOR EACH ROW EXECUTE FUNCTION copier3()"); r.err == nil || !strings.Contains(r.stderr, `masking rule "names"`) {
			t.Errorf("trigger on customers: got %v, %q; want a refusal", r.err, r.stderr)
		}
		if got := pg.QueryStrings(t, "shop", "SELECT count(*) FROM staff WHERE name LIKE '%Lovelace%' OR name LIKE '%Turing%'"); got[0] != "0" {
			t.Errorf("masked names were copied into staff")
		}
		for _, tbl := range []string{"copy1", "copy2", "clients"} {
			if tableExists(t, pg, tbl) {
				t.Errorf("table %s exists", tbl)
			}
		}
		// A view keeps the lineage: allowed, and its column stays masked.
		r := h.psql(t, "CREATE VIEW mine AS SELECT id, name AS handle FROM customers;\nSELECT handle FROM mine;\n", "-A", "-t")
		if r.err != nil || leaksName(r.stdout) || !strings.Contains(r.stdout, ColumnMask) {
			t.Errorf("view created in the session: %v %q %q", r.err, r.stdout, r.stderr)
		}
	})

	t.Run("benign work stays clear", func(t *testing.T) {
		for _, tc := range []struct{ sql, want string }{
			{"SELECT id, city FROM customers ORDER BY id", "1|London"},
			{"SELECT name FROM staff", "Grace Hopper"},
			{"SELECT count(*) FROM customers", "2"},
			{"SELECT plus_one(id) FROM customers ORDER BY 1 LIMIT 1", "2"},
			{"SELECT city FROM cust_view ORDER BY id LIMIT 1", "London"},
			{"SELECT o.amount, c.city FROM orders o JOIN customers c ON c.id = o.customer_id ORDER BY o.id LIMIT 1", "5|London"},
			{"SELECT exists(SELECT 1 FROM customers WHERE id = 1)", "t"},
			{"UPDATE customers SET city = 'Paris' WHERE id = 2 RETURNING city", "Paris"},
			{"SELECT current_user", "app"},
			{"SELECT column_name FROM information_schema.columns WHERE table_name = 'customers' ORDER BY ordinal_position LIMIT 1", "id"},
			{"SELECT table_name FROM information_schema.tables WHERE table_schema = 'public' ORDER BY 1 LIMIT 1", "cust_shout"},
			{"SELECT viewname FROM pg_views WHERE schemaname = 'public' ORDER BY 1 LIMIT 1", "cust_shout"},
			{"SELECT relname FROM pg_class WHERE relname = 'customers'", "customers"},
			{"SELECT now() IS NOT NULL, version() LIKE 'PostgreSQL%'", "t|t"},
		} {
			r := h.psql(t, "", "-A", "-t", "-c", tc.sql)
			if r.err != nil || !strings.Contains(r.stdout, tc.want) || strings.Contains(r.stdout, ColumnMask) {
				t.Errorf("%s: got %v %q %q; want %q clear", tc.sql, r.err, r.stdout, r.stderr, tc.want)
			}
		}
		for _, m := range []string{`\d customers`, `\dt`, `\dv`, `\df get_name`} {
			if r := h.psql(t, "", "-c", m); r.err != nil {
				t.Errorf("%s: %v\n%s", m, r.err, r.stderr)
			}
		}
		var n int
		if err := h.connect(t, "app", "shop", nil).QueryRow(ctx, "SELECT count(*) FROM orders WHERE amount > $1", 1).Scan(&n); err != nil || n != 2 {
			t.Errorf("pgx: %d, %v", n, err)
		}
	})

	t.Run("unknowable lineage blocks when the rule says so", func(t *testing.T) {
		hb := startProxy(t, pg, func(c *Config) { c.Judge = allowAll; c.MaskColumn = nil; c.Masks = lineageMasks(true) })
		for _, sql := range []string{
			"SELECT query_to_xml('SELECT name FROM customers', true, true, '')",
			"FETCH ALL FROM not_declared_here",
			"SELECT * FROM pg_stats WHERE tablename = 'customers'",
		} {
			r := hb.psql(t, "", "-c", sql)
			if r.err == nil || !strings.Contains(r.stderr, `masking rule "names"`) || leaksName(r.stdout) {
				t.Errorf("%s: got %v, %q %q; want a refusal", sql, r.err, r.stdout, r.stderr)
			}
		}
		r := hb.psql(t, "", "-A", "-t", "-c", "SELECT name FROM customers ORDER BY id LIMIT 1")
		if r.err != nil || strings.TrimSpace(r.stdout) != ColumnMask {
			t.Errorf("a known lineage is masked, not blocked: %v %q %q", r.err, r.stdout, r.stderr)
		}
	})

	t.Run("a parent's rows include its children's", func(t *testing.T) {
		pg.ExecIn(t, "shop", "ALTER TABLE customers INHERIT staff") // by the owner, outside the bastion
		defer pg.ExecIn(t, "shop", "ALTER TABLE customers NO INHERIT staff")
		r := h.psql(t, "", "-A", "-t", "-c", "SELECT name FROM staff")
		if r.err != nil || leaksName(r.stdout) || !strings.Contains(r.stdout, ColumnMask) {
			t.Errorf("got %v %q %q; want the parent's name column masked", r.err, r.stdout, r.stderr)
		}
	})

	// A session reuses the analysis of a statement shape it ran before (linMemo); the
	// reuse must end when the schema the analysis read changes: at once after the
	// session's own DDL, and when the catalog's answers age out after another session's.
	t.Run("a remembered analysis follows the schema", func(t *testing.T) {
		var skew atomic.Int64
		hm := startProxy(t, pg, func(c *Config) {
			c.Judge = allowAll
			c.MaskColumn = nil
			c.Masks = lineageMasks(false)
			c.Now = func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
		})
		conn := hm.connect(t, "app", "shop", nil)
		pg.ExecIn(t, "shop", "CREATE VIEW memo_v AS SELECT id, city AS x FROM customers; ALTER VIEW memo_v OWNER TO app")
		defer pg.ExecIn(t, "shop", "DROP VIEW memo_v")
		query := func(id int) string {
			t.Helper()
			var x string
			if err := conn.QueryRow(ctx, fmt.Sprintf("SELECT upper(x) FROM memo_v WHERE id = %d", id), pgx.QueryExecModeSimpleProtocol).Scan(&x); err != nil {
				t.Fatal(err)
			}
			return x
		}
		for id := 1; id <= 3; id++ { // other constants, the same shape: remembered
			if got := query(1 + id%2); got == ColumnMask {
				t.Fatalf("the city is masked (%q)", got)
			}
		}
		// Another session makes the view read the masked column: the catalog may be
		// that old, no older, and neither may a remembered analysis.
		pg.ExecIn(t, "shop", "CREATE OR REPLACE VIEW memo_v AS SELECT id, name AS x FROM customers")
		skew.Store(int64(catalogMaxAge + time.Second))
		if got := query(1); got != ColumnMask {
			t.Errorf("after another session's DDL and the catalog's age: got %q, want the mask", got)
		}
		// The session's own DDL ends the reuse at once.
		if _, err := conn.Exec(ctx, "CREATE OR REPLACE VIEW memo_v AS SELECT id, city AS x FROM customers", pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatal(err)
		}
		if got := query(2); got == ColumnMask {
			t.Errorf("after the session's own DDL (the city again): got the mask")
		}
		if _, err := conn.Exec(ctx, "CREATE OR REPLACE VIEW memo_v AS SELECT id, name AS x FROM customers", pgx.QueryExecModeSimpleProtocol); err != nil {
			t.Fatal(err)
		}
		if got := query(1); got != ColumnMask {
			t.Errorf("after the session's own DDL (the name): got %q, want the mask", got)
		}
	})

	if tr := h.transcript.String(); leaksName(tr) {
		t.Errorf("the transcript holds a masked value:\n%s", tr)
	}
}
