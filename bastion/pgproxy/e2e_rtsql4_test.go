package pgproxy

import (
	"strings"
	"testing"
)

// TestRedSQLJSONSyntaxOlderServer: pg_query is PostgreSQL 17's parser, which reads
// json_scalar(x), json_serialize(x), json(x), json_query/json_value/json_exists(x, p),
// json_array(x), json_object(x) (written as pg_catalog's) and merge_action() as SQL/JSON
// constructs of its own; PostgreSQL 15 (16 for some) reads each as a call of whatever
// function of that name the search path finds. A function created through the bastion
// in public that reads a masked column was not seen: its result reached the client in
// clear. One cluster, psql.
func TestRedSQLJSONSyntaxOlderServer(t *testing.T) {
	_, h := leakHarness(t, "", false)
	// Through the bastion: a function that only reads a masked column may be created
	// (its result is masked when it is called).
	var defs []string
	// (Quoted: to pg_query the names are keywords.)
	for _, f := range []string{`"json_scalar"(i int)`, `"json_serialize"(i int)`, `"json"(i int)`, `"json_array"(i int)`,
		`"json_object"(i int)`, `"json_query"(i int, p text)`, `"json_value"(i int, p text)`, `"json_exists"(i int, p text)`} {
		defs = append(defs, "CREATE FUNCTION "+f+" RETURNS text LANGUAGE sql STABLE AS 'SELECT name FROM customers WHERE id = i'")
	}
	defs = append(defs, `CREATE FUNCTION "merge_action"() RETURNS text LANGUAGE sql STABLE AS 'SELECT name FROM customers WHERE id = 1'`)
	mustRun(t, h, strings.Join(defs, "; "))
	for _, q := range []string{
		`SELECT json_scalar(1)`,
		`SELECT json_serialize(1)`,
		`SELECT json(1)`,
		`SELECT json_array(1)`,
		`SELECT json_object(1)`,
		`SELECT json_query(1, '$')`,
		`SELECT json_value(1, '$')`,
		`SELECT json_exists(1, '$')`,
		`SELECT merge_action()`,
		`SELECT * FROM json_scalar(1)`,
		`SELECT json_scalar FROM (SELECT json_scalar(1)) s`,
	} {
		t.Run(q, func(t *testing.T) { wantMasked(t, through(t, h, q)) })
	}
}
