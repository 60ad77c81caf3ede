package pgproxy

import "testing"

func TestZZIdent(t *testing.T) {
	for _, s := range []string{
		`INSERT INTO victim VALUES (1,1) ON CONFLICT (id) DO UPDATE SET pid = 2`,
		`INSERT INTO victim VALUES (1,1) ON CONFLICT (id) DO UPDATE SET pid = 2 WHERE victim.id = 1`,
		`MERGE INTO victim v USING (SELECT 1 AS id) s ON v.id = s.id WHEN MATCHED THEN DELETE`,
		`ALTER TABLE victim DROP COLUMN pid`,
		`ALTER TABLE victim ALTER COLUMN pid SET DEFAULT 1`,
		`CLUSTER victim`,
		`SELECT * FROM victim FOR UPDATE`,
		`COMMENT ON TABLE victim IS 'x'`,
		`SECURITY LABEL ON TABLE victim IS 'x'`,
		`ALTER TABLE victim OF sometype`,
		`ALTER TABLE victim NOT OF`,
		`CREATE TABLE x (LIKE victim)`,
		`ALTER TABLE victim ADD COLUMN z int GENERATED ALWAYS AS (id) STORED`,
		`ALTER TABLE victim ALTER COLUMN pid TYPE bigint`,
		`ALTER TABLE victim ALTER COLUMN pid SET EXPRESSION AS (1)`,
		`IMPORT FOREIGN SCHEMA x FROM SERVER s INTO public`,
		`ALTER TABLE victim SET UNLOGGED`,
		`ALTER TABLE victim ATTACH PARTITION y FOR VALUES IN (1)`,
		`ALTER TABLE victim DETACH PARTITION y`,
	} {
		sts, err := Classify(s)
		if err != nil {
			t.Log(s, err)
			continue
		}
		for _, st := range sts {
			t.Logf("%s => kinds=%v tables=%v funcs=%v unk=%q", s, st.Kinds, st.Tables, st.Functions, st.Unknowable)
		}
	}
}
