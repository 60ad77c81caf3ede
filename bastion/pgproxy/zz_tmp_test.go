package pgproxy

import "testing"

func TestZZFlow(t *testing.T) {
	_, h := leakHarness(t, "", false)
	for _, q := range []string{
		"LISTEN c; DO $$DECLARE v text; BEGIN SELECT name INTO v FROM customers WHERE id = 1; PERFORM pg_notify('c', v); END$$",
		"DO $$DECLARE v text; BEGIN SELECT name INTO v FROM customers WHERE id = 1; PERFORM set_config('x.y', v, false); END$$; SELECT current_setting('x.y')",
		"DO $$DECLARE v text; BEGIN v := (SELECT name FROM customers WHERE id = 1); EXECUTE 'SET application_name = ' || quote_literal(v); END$$; SHOW application_name",
		"DO $$DECLARE v text; BEGIN SELECT name INTO v FROM customers WHERE id = 1; PERFORM lo_from_bytea(4242, convert_to(v, 'UTF8')); END$$; SELECT convert_from(lo_get(4242), 'UTF8')",
		"DO $$DECLARE v text; BEGIN SELECT name INTO v FROM customers WHERE id = 1; CREATE TEMP TABLE tt AS SELECT v AS x; END$$; SELECT * FROM tt",
		"DO $$DECLARE v text; BEGIN FOR v IN SELECT name FROM customers LOOP PERFORM pg_advisory_lock(hashtext(v)); END LOOP; END$$",
		"DO $$DECLARE v text; BEGIN SELECT name INTO v FROM customers WHERE id = 1; RAISE EXCEPTION USING MESSAGE = v; END$$",
		"DO $$DECLARE v text; BEGIN SELECT name INTO v FROM customers WHERE id = 1; PERFORM v::int; END$$",
		"DO $$DECLARE v text; BEGIN SELECT name INTO v FROM customers WHERE id = 1; COMMENT ON TABLE staff IS 'x'; EXECUTE format('COMMENT ON TABLE staff IS %L', v); END$$; SELECT obj_description('staff'::regclass)",
	} {
		r := through(t, h, q)
		if leaksName(r.stdout + r.stderr) {
			t.Errorf("LEAK: %s", q)
		}
	}
}
