package pgproxy

import (
	"sync"

	pg "github.com/pganalyze/pg_query_go/v6"
)

// pgMu serialises every call into pg_query's C code. The library redirects the
// process's stderr (file descriptor 2) to a pipe around each parse and restores it
// afterwards with dup2; two calls interleaving on different threads could leave fd 2
// pointing at the other call's closed pipe, and the next write to stderr would then
// kill the process with SIGPIPE. A parse takes microseconds, so the lock costs little.
var pgMu sync.Mutex

func pgParse(sql string) (*pg.ParseResult, error) {
	pgMu.Lock()
	defer pgMu.Unlock()
	return pg.Parse(sql)
}

func pgNormalize(sql string) (string, error) {
	pgMu.Lock()
	defer pgMu.Unlock()
	return pg.Normalize(sql)
}

func pgScan(sql string) (*pg.ScanResult, error) {
	pgMu.Lock()
	defer pgMu.Unlock()
	return pg.Scan(sql)
}

// pgParsePlpgsql compiles the PL/pgSQL bodies of the CREATE FUNCTION and DO
// statements in sql and returns them as JSON. The caller must have checked that every
// such statement has a body (pg_query asserts it) and is in language plpgsql.
func pgParsePlpgsql(sql string) (string, error) {
	pgMu.Lock()
	defer pgMu.Unlock()
	return pg.ParsePlPgSqlToJSON(sql)
}
