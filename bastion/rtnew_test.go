package bastion_test

import (
	"sync/atomic"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
)

// TestExpiredCertCancelsRunningStatement: with
// sessions.disconnect_expired_cert a PostgreSQL session ends within a second
// of its certificate's expiry, and so does what it was running: closing the
// connection alone leaves the backend working on the statement (PostgreSQL
// notices a gone client only when it next writes to it), so a long UPDATE
// or DELETE started before the expiry would run on and commit, unseen. The
// statement is cancelled in PostgreSQL, as the SQL API's time limit does.
func TestExpiredCertCancelsRunningStatement(t *testing.T) {
	testenv.RequirePostgres(t)
	var ahead atomic.Int64
	e := newEnv(t, envOptions{extraYAML: pgRules, pgTarget: true, sessions: ", disconnect_expired_cert: true",
		now: func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }})
	p := &pgEnv{env: e, pg: e.pg, lport: e.forwardPG(t)}
	const running = "SELECT count(*) FROM pg_stat_activity WHERE state = 'active' AND query LIKE 'SELECT pg_sleep(120)%'"
	psql := testenv.StartPTY(t, 120, 30, p.pg.Tool(t, "psql"), "-X", p.dsn(""))
	psql.Expect("shop=>", 30*time.Second)
	psql.Send("SELECT pg_sleep(120);\r")
	testenv.WaitFor(t, 30*time.Second, "the statement to run at the server", func() bool {
		got := p.pg.QueryStrings(t, "postgres", running)
		return len(got) == 1 && got[0] == "1"
	})
	ahead.Store(int64(time.Until(time.Unix(int64(e.alice.Cert.ValidBefore), 0)) + time.Second))
	psql.Expect("expired at", 20*time.Second)
	testenv.WaitFor(t, 10*time.Second, "the statement to stop at the server", func() bool {
		got := p.pg.QueryStrings(t, "postgres", running)
		return len(got) == 1 && got[0] == "0"
	})
}
