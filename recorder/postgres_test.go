package recorder

import (
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder/asciicast"
)

// pgConfig returns a config for a replica of a store in a fresh database
// of pg (one per test), with a short lease so that takeovers are quick.
func pgConfig(dsn, name string) Config {
	return Config{
		Postgres:      &PostgresConfig{DSN: dsn, Name: name, Lease: 600 * time.Millisecond, Poll: 100 * time.Millisecond},
		SealKey:       testKey,
		FlushInterval: time.Hour,
		Now:           time.Now,
	}
}

// waitFor polls cond until it holds or 20s pass.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting until %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestPostgresReplicas runs two stores (replicas) on one real PostgreSQL
// database: what one records, audits, revokes and decides, the other sees,
// verifies and enforces; and when one dies mid-session the other takes
// its session over once its lease expires.
func TestPostgresReplicas(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	dsn := pg.StoreDSN(t, "bastion")
	a := openStore(t, pgConfig(dsn, "a"))
	b := openStore(t, pgConfig(dsn, "b"))

	t.Run("recording", func(t *testing.T) {
		r := begin(t, a, SessionInfo{Start: time.Now()})
		must(t, r.Output([]byte("hello from a\r\n")))
		a.sync()
		// Live on A, readable on B up to the last flush.
		if got := output(events(t, b, r.ID()), asciicast.Output); got != "hello from a\r\n" {
			t.Fatalf("B reads the live session as %q", got)
		}
		must(t, r.Output([]byte("bye\r\n")))
		must(t, r.End(ExitInfo{Status: 0}))
		list, err := b.Sessions(SessionFilter{User: "alice"})
		if err != nil || len(list) != 1 || list[0].ID != r.ID() || list[0].Status != StatusEnded || list[0].Replica != a.ReplicaID() {
			t.Fatalf("B lists %+v, %v", list, err)
		}
		rep, err := b.Verify(r.ID())
		if err != nil || !rep.Intact {
			t.Fatalf("B verifies %+v, %v", rep, err)
		}
		if got := output(events(t, b, r.ID()), asciicast.Output); got != "hello from a\r\nbye\r\n" {
			t.Fatalf("B replays %q", got)
		}
	})

	t.Run("sessions by actor", func(t *testing.T) {
		// Runs of one CI job share a user; the actor is in the record's
		// JSON only, and the limit counts what the filter keeps.
		old := begin(t, a, SessionInfo{User: "ci-etl", Start: time.Now()})
		must(t, old.End(ExitInfo{}))
		run := begin(t, a, SessionInfo{User: "ci-etl", Actor: "carol", Start: time.Now().Add(time.Millisecond)})
		must(t, run.End(ExitInfo{}))
		for actor, want := range map[string]string{"carol": run.ID(), "": old.ID()} {
			list, err := b.Sessions(SessionFilter{User: "ci-etl", ByActor: true, Actor: actor, Limit: 1})
			if err != nil || len(list) != 1 || list[0].ID != want || list[0].Actor != actor {
				t.Fatalf("actor %q: B lists %+v, %v", actor, list, err)
			}
		}
		if list, err := b.Sessions(SessionFilter{User: "ci-etl", ByActor: true, Actor: "mallory"}); err != nil || len(list) != 0 {
			t.Fatalf("mallory: B lists %+v, %v", list, err)
		}
		if rep, err := b.Verify(run.ID()); err != nil || !rep.Intact {
			t.Fatalf("B verifies the run's session: %+v, %v", rep, err)
		}
	})

	t.Run("audit and tokens", func(t *testing.T) {
		if _, err := a.AuditOnce(AuditEvent{Type: "cert.issue", User: "ci"}, []byte("jti-1"), time.Now().Add(time.Hour)); err != nil {
			t.Fatal(err)
		}
		if _, err := b.AuditOnce(AuditEvent{Type: "cert.issue", User: "ci"}, []byte("jti-1"), time.Now().Add(time.Hour)); !errors.Is(err, ErrReplay) {
			t.Fatalf("a token spent on A, again on B: %v, want ErrReplay", err)
		}
		if _, err := b.Audit(AuditEvent{Type: "test.b"}); err != nil {
			t.Fatal(err)
		}
		// Many uses at once on both replicas, so batches spend several
		// tokens in one statement, the same key among them: each key
		// buys exactly one record cluster-wide.
		var spent, replays atomic.Int32
		var wg sync.WaitGroup
		for i := range 40 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				s := []*Store{a, b}[i%2]
				_, err := s.AuditOnce(AuditEvent{Type: "cert.issue", User: "ci"}, fmt.Appendf(nil, "jti-batch-%d", i%10), time.Now().Add(time.Hour))
				switch {
				case err == nil:
					spent.Add(1)
				case errors.Is(err, ErrReplay):
					replays.Add(1)
				default:
					t.Error(err)
				}
			}()
		}
		wg.Wait()
		if spent.Load() != 10 || replays.Load() != 30 {
			t.Fatalf("40 uses of 10 keys: %d spent, %d replays; want 10 and 30", spent.Load(), replays.Load())
		}
		for _, s := range []*Store{a, b} {
			rep, err := s.VerifyAudit()
			if err != nil || !rep.Intact {
				t.Fatalf("VerifyAudit: %+v, %v", rep, err)
			}
		}
	})

	t.Run("revocation", func(t *testing.T) {
		must(t, a.Revoke(4242, "alice", "lost laptop"))
		waitFor(t, "B refuses the serial A revoked", func() bool { return b.IsRevoked(4242) })
		at, err := a.RevokeUser("carol", AuditEvent{User: "alice", Reason: "left"})
		must(t, err)
		waitFor(t, "B knows carol revoked", func() bool { got, ok := b.UserRevoked("carol"); return ok && got.Equal(at) })
		// An older revocation (a replica's clock behind) does not move it back.
		must(t, b.update(func(tx Tx) error {
			return tx.RevokeUser(Revocation{User: "carol", By: "bob", Time: at.Add(-time.Minute)})
		}))
		revs, err := b.UserRevocations()
		if err != nil || len(revs) != 1 || !revs[0].Time.Equal(at) || revs[0].By != "alice" {
			t.Fatalf("UserRevocations: %+v, %v", revs, err)
		}
	})

	t.Run("approval", func(t *testing.T) {
		now := time.Now()
		all, stopAll := b.Approvals().WatchAll() // B's approvals page
		defer stopAll()
		must(t, a.Approvals().Put(Approval{ID: "req1", Request: []byte(`{}`), Created: now, Expires: now.Add(time.Minute)}))
		select {
		case <-all:
		case <-time.After(20 * time.Second):
			t.Fatal("B was not told of A's new request")
		}
		changed, stop := a.Approvals().Watch("req1")
		defer stop()
		if list, err := b.Approvals().Pending(now); err != nil || len(list) != 1 || list[0].ID != "req1" || list[0].Replica != a.ReplicaID() {
			t.Fatalf("B's pending list: %+v, %v", list, err)
		}
		if _, err := b.Approvals().Claim("req1", "claim-b", now, now.Add(time.Minute)); err != nil {
			t.Fatal(err)
		}
		if _, err := a.Approvals().Claim("req1", "claim-a", now, now.Add(time.Minute)); !errors.Is(err, ErrNoApproval) {
			t.Fatalf("a second claim: %v, want ErrNoApproval", err)
		}
		if ok, err := a.Approvals().Decide("req1", "", nil, "timed_out", "", "", now); ok || err != nil {
			t.Fatalf("a timeout over a claim in force was recorded: %v, %v", ok, err)
		}
		if ok, err := b.Approvals().Decide("req1", "claim-b", []byte(`{}`), "approved", "carol", "ok", now); !ok || err != nil {
			t.Fatalf("Decide: %v, %v", ok, err)
		}
		select {
		case <-changed:
		case <-time.After(20 * time.Second):
			t.Fatal("A was not told of B's decision")
		}
		select {
		case <-all:
		case <-time.After(20 * time.Second):
			t.Fatal("B's watchers of every request were not told of the decision")
		}
		got, err := a.Approvals().Get("req1", now)
		if err != nil || got.Outcome != "approved" || got.DecidedBy != "carol" {
			t.Fatalf("A reads %+v, %v", got, err)
		}
		if ok, _ := b.Approvals().Decide("req1", "claim-b", []byte(`{}`), "denied", "carol", "", now); ok {
			t.Fatal("a request was decided twice")
		}
	})

	t.Run("takeover", func(t *testing.T) {
		c := openStore(t, pgConfig(dsn, "c"))
		r := begin(t, c, SessionInfo{Start: time.Now(), User: "dave"})
		must(t, r.Output([]byte("checkpointed\r\n")))
		c.sync()
		c.crashed.Store(true) // dies: no final flush, the lease not given up
		c.Close()
		waitFor(t, "B marks C's session interrupted", func() bool {
			info, err := b.Session(r.ID())
			return err == nil && info.Status == StatusInterrupted
		})
		rep, err := a.Verify(r.ID())
		if err != nil || !rep.Intact {
			t.Fatalf("verify after takeover: %+v, %v", rep, err)
		}
		info, _ := a.Session(r.ID())
		if !strings.Contains(info.Error, "lease expired") {
			t.Errorf("the session's error says %q", info.Error)
		}
	})

	t.Run("newer schema refused", func(t *testing.T) {
		pg.ExecIn(t, "bastion", "UPDATE bastion_schema SET version = version + 1")
		defer pg.ExecIn(t, "bastion", "UPDATE bastion_schema SET version = version - 1")
		if _, err := Open(pgConfig(dsn, "d")); !errors.Is(err, ErrSchema) {
			t.Fatalf("Open against a newer schema: %v, want ErrSchema", err)
		}
	})
}

// TestPostgresSinkClaims: replicas sharing a store take turns at an audit
// sink. One holds it, and only the holder moves its cursor; a replica
// that stops releases it; one that dies loses it when its lease expires,
// and the next holder goes on from the last cursor saved. A sink's cursor
// kept by a bbolt store (copied by Migrate) is where a first claim starts.
func TestPostgresSinkClaims(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	dsn := pg.StoreDSN(t, "bastion")
	// A and B keep their leases through a loaded machine's pauses (their
	// expiry is not what this test waits for; C's is).
	long := func(name string) Config {
		cfg := pgConfig(dsn, name)
		cfg.Postgres.Lease = 10 * time.Second
		return cfg
	}
	a := openStore(t, long("a"))
	b := openStore(t, long("b"))
	if !a.SinksShared() {
		t.Fatal("a PostgreSQL store's sinks are not shared")
	}
	claim := func(s *Store, want bool, wantCursor uint64) {
		t.Helper()
		c, ok, err := s.ClaimSink("webhook")
		if err != nil || ok != want || ok && c != wantCursor {
			t.Fatalf("claim: %d %v %v; want %v at %d", c, ok, err, want, wantCursor)
		}
	}
	// A cursor from before the cluster (bbolt, copied as metadata).
	pg.ExecIn(t, "bastion", `INSERT INTO bastion_meta (name, value) VALUES ('sink:webhook', decode('0000000000000007', 'hex'))`)
	claim(a, true, 7)
	claim(b, false, 0)
	claim(a, true, 7)
	must(t, a.SetSinkCursor("webhook", 9))
	if err := b.SetSinkCursor("webhook", 12); err == nil {
		t.Fatal("a replica that does not hold the sink moved its cursor")
	}
	if c, err := b.SinkCursor("webhook"); err != nil || c != 9 {
		t.Fatalf("B reads the cursor as %d, %v", c, err)
	}
	if h, _ := b.SinkHolder("webhook"); h != a.ReplicaID() {
		t.Fatalf("holder %q, want A %q", h, a.ReplicaID())
	}

	// A stops: B takes over at once, from A's cursor.
	must(t, a.ReleaseSink("webhook"))
	claim(b, true, 9)
	claim(a, false, 0)
	if err := a.SetSinkCursor("webhook", 10); err == nil {
		t.Fatal("a replica that released the sink moved its cursor")
	}
	must(t, b.SetSinkCursor("webhook", 11))

	// The holder is taken over behind its back (as when its lease
	// expired while it was stuck): it can no longer move the cursor.
	pg.ExecIn(t, "bastion", "UPDATE bastion_sinks SET holder = '"+a.ReplicaID()+"'")
	if err := b.SetSinkCursor("webhook", 12); err == nil {
		t.Fatal("a replica whose sink was taken over moved its cursor")
	}
	claim(b, false, 0)
	must(t, a.ReleaseSink("webhook"))

	// C holds it and dies: B waits for C's lease to expire, then goes on
	// from C's last cursor.
	c := openStore(t, pgConfig(dsn, "c"))
	claim(c, true, 11)
	must(t, c.SetSinkCursor("webhook", 20))
	c.crashed.Store(true) // dies: the lease is not given up
	c.Close()
	waitFor(t, "B takes the sink over", func() bool {
		cur, ok, err := b.ClaimSink("webhook")
		return err == nil && ok && cur == 20
	})
	// The cursor never goes back.
	if err := b.SetSinkCursor("webhook", 19); err == nil {
		t.Fatal("the cursor moved back")
	}
}

// TestPostgresPipelinedTransactions: a transaction's BEGIN rides with its
// first statements and its COMMIT with its last writes. What fails in any
// of those round trips leaves nothing behind, a transaction that swallowed
// a failed statement does not report a commit, and the connection goes back
// to the pool usable.
func TestPostgresPipelinedTransactions(t *testing.T) {
	// One connection: a transaction that left it in a bad state would break
	// every one after it.
	b := pgBackendForTest(t, 1)
	var err error
	meta := func() string {
		var v []byte
		if err := b.View(func(tx Tx) error { v, err = tx.Meta("pipelined"); return err }); err != nil {
			t.Fatal(err)
		}
		return string(v)
	}
	boom := errors.New("boom")

	// Queued writes, then an error from fn: nothing was sent, nothing stays.
	if err := b.Update(func(tx Tx) error {
		must(t, tx.SetMeta("pipelined", []byte("one")))
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if got := meta(); got != "" {
		t.Fatalf("after a failed fn the value is %q", got)
	}

	// Writes sent with a read (BEGIN, writes and the query in one round
	// trip), then an error: rolled back.
	if err := b.Update(func(tx Tx) error {
		must(t, tx.SetMeta("pipelined", []byte("two")))
		if _, err := tx.Meta("pipelined"); err != nil {
			return err
		}
		return boom
	}); !errors.Is(err, boom) {
		t.Fatalf("Update = %v, want boom", err)
	}
	if got := meta(); got != "" {
		t.Fatalf("after a failed fn with its writes sent the value is %q", got)
	}

	// A failed statement whose error fn ignores: the COMMIT is refused, not
	// reported as done.
	err = b.Update(func(tx Tx) error {
		must(t, tx.SetMeta("pipelined", []byte("three")))
		pt := tx.(*pgTx)
		pt.exec(`SELECT 1/0`) // error ignored on purpose
		return nil
	})
	if err == nil {
		t.Fatal("a transaction with a failed statement committed")
	}
	if got := meta(); got != "" {
		t.Fatalf("after a failed statement the value is %q", got)
	}

	// The writes and the COMMIT in one batch, with a failing write among
	// them: nothing committed.
	err = b.Update(func(tx Tx) error {
		must(t, tx.SetMeta("pipelined", []byte("four")))
		tx.(*pgTx).queue(nil, `INSERT INTO bastion_meta (name, value) VALUES (NULL, NULL)`)
		return nil
	})
	if err == nil || !strings.Contains(err.Error(), "postgres:") {
		t.Fatalf("Update with a failing queued write = %v, want a postgres error", err)
	}
	if got := meta(); got != "" {
		t.Fatalf("after a failing queued write the value is %q", got)
	}

	// The single connection is still usable, and a good transaction commits.
	must(t, b.Update(func(tx Tx) error { return tx.SetMeta("pipelined", []byte("five")) }))
	if got := meta(); got != "five" {
		t.Fatalf("value = %q, want five", got)
	}
	// A transaction that does nothing sends nothing and succeeds.
	must(t, b.Update(func(tx Tx) error { return nil }))
	must(t, b.View(func(tx Tx) error { return nil }))
}

// pgBackendForTest connects a backend with a pool of maxConns connections
// to a fresh database of a real PostgreSQL.
func pgBackendForTest(t *testing.T, maxConns int32) *pgBackend {
	t.Helper()
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	cfg, err := PostgresConfig{DSN: pg.StoreDSN(t, "bastion"), Name: "a", MaxConns: maxConns}.check()
	if err != nil {
		t.Fatal(err)
	}
	b, err := connectPostgres(cfg, "", slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { b.Close() })
	return b
}

// TestPostgresSpendTokensLocksHead: spending an audit batch's tokens reads
// the chain's head in the same round trip and locks it as AuditTail would,
// so a second writer waits for the first's commit and then appends after
// it, never beside it.
func TestPostgresSpendTokensLocksHead(t *testing.T) {
	b := pgBackendForTest(t, 3)
	var err error
	now := time.Now()
	exp := []int64{now.Add(time.Minute).UnixNano()}
	var base uint64
	must(t, b.View(func(tx Tx) error { base, _, err = tx.AuditTail(); return err }))

	spent := make(chan struct{})
	commit := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		first <- b.Update(func(tx Tx) error {
			ok, err := tx.(*pgTx).SpendTokens([][]byte{[]byte("token-1")}, exp, now)
			if err != nil || !ok[0] {
				return fmt.Errorf("SpendTokens = %v, %v", ok, err)
			}
			if tx.(*pgTx).head == nil {
				return errors.New("SpendTokens did not read the audit head")
			}
			seq, _, err := tx.AuditTail()
			if err != nil || seq != base {
				return fmt.Errorf("AuditTail = %d, %v; want %d", seq, err, base)
			}
			close(spent)
			<-commit
			return tx.AppendAudit(seq+1, [hashLen]byte{1}, []byte(`{}`))
		})
	}()
	<-spent
	second := make(chan uint64, 1)
	go func() {
		var seq uint64
		err := b.Update(func(tx Tx) error {
			ok, err := tx.(*pgTx).SpendTokens([][]byte{[]byte("token-2")}, exp, now)
			if err != nil || !ok[0] {
				return fmt.Errorf("SpendTokens = %v, %v", ok, err)
			}
			seq, _, err = tx.AuditTail()
			return err
		})
		if err != nil {
			t.Error(err)
		}
		second <- seq
	}()
	// The second writer waits on the head's row lock while the first holds it.
	waitFor(t, "the second writer waits on a lock", func() bool {
		var n int
		err := b.pool.QueryRow(t.Context(), `SELECT count(*) FROM pg_stat_activity
			WHERE wait_event_type = 'Lock' AND query LIKE '%bastion_audit_head%'`).Scan(&n)
		return err == nil && n == 1
	})
	close(commit)
	must(t, <-first)
	if got := <-second; got != base+1 {
		t.Fatalf("the second writer read head %d, want %d (after the first's append)", got, base+1)
	}
}

// TestPostgresAuditAppendBatched: the records a transaction appends go
// out as one statement, before anything in the transaction reads, and
// all or none of them stay.
func TestPostgresAuditAppendBatched(t *testing.T) {
	b := pgBackendForTest(t, 2)
	var err error
	records := func(tx Tx, from uint64) []string {
		var got []string
		must(t, tx.Audit(from, 0, func(seq uint64, v []byte) error {
			got = append(got, fmt.Sprintf("%d=%s", seq, v))
			return nil
		}))
		return got
	}
	var base uint64
	must(t, b.View(func(tx Tx) error { base, _, err = tx.AuditTail(); return err }))
	want := []string{fmt.Sprintf("%d=a", base+1), fmt.Sprintf("%d=b", base+2), fmt.Sprintf("%d=c", base+3)}

	must(t, b.Update(func(tx Tx) error {
		seq, _, err := tx.AuditTail()
		if err != nil {
			return err
		}
		for i, v := range []string{"a", "b", "c"} {
			must(t, tx.AppendAudit(seq+uint64(i)+1, [hashLen]byte{byte(i)}, []byte(v)))
		}
		// A read in the same transaction sees them.
		if got := records(tx, base+1); !slices.Equal(got, want) {
			t.Errorf("inside the transaction: %q, want %q", got, want)
		}
		return nil
	}))
	must(t, b.View(func(tx Tx) error {
		if got := records(tx, base+1); !slices.Equal(got, want) {
			t.Errorf("after the commit: %q, want %q", got, want)
		}
		seq, hash, err := tx.AuditTail()
		if err != nil || seq != base+3 || hash != [hashLen]byte{2} {
			t.Errorf("AuditTail = %d, %x, %v; want %d", seq, hash, err, base+3)
		}
		return nil
	}))

	// A record that cannot be inserted (its sequence taken behind the
	// chain's back) fails the whole append: none of the batch stays.
	if _, err := b.pool.Exec(t.Context(), `INSERT INTO bastion_audit (seq, record) VALUES ($1, 'x')`, int64(base+5)); err != nil {
		t.Fatal(err)
	}
	err = b.Update(func(tx Tx) error {
		seq, _, err := tx.AuditTail()
		if err != nil {
			return err
		}
		must(t, tx.AppendAudit(seq+1, [hashLen]byte{4}, []byte("d")))
		return tx.AppendAudit(seq+2, [hashLen]byte{5}, []byte("e"))
	})
	if err == nil {
		t.Fatal("an append over a taken sequence committed")
	}
	must(t, b.View(func(tx Tx) error {
		if got := records(tx, base+4); !slices.Equal(got, []string{fmt.Sprintf("%d=x", base+5)}) {
			t.Errorf("after the failed append: %q, want only the record put behind its back", got)
		}
		if seq, _, err := tx.AuditTail(); err != nil || seq != base+3 {
			t.Errorf("AuditTail = %d, %v; want %d", seq, err, base+3)
		}
		return nil
	}))
}

// BenchmarkAuditOncePostgres: 16 writers spending one-time tokens, as
// certificate issuance does, with the store in a real PostgreSQL.
func BenchmarkAuditOncePostgres(b *testing.B) {
	pg := testenv.StartPostgres(b, testenv.PostgresOptions{})
	benchSpend(b, openStore(b, pgConfig(pg.StoreDSN(b, "bastion"), "a")), time.Now().Add(5*time.Minute))
}

// TestPostgresForgetTokensReportsFull: with PostgreSQL too, a sweep forgets
// at most a batch of expired keys and says, once committed, when it forgot
// a full one.
func TestPostgresForgetTokensReportsFull(t *testing.T) {
	lowerSweepBatch(t, 4)
	old := tokenSweepMargin
	tokenSweepMargin = 0
	t.Cleanup(func() { tokenSweepMargin = old })
	b := pgBackendForTest(t, 2)
	t0 := time.Now()
	keys := make([][]byte, 7)
	exps := make([]int64, 7)
	for i := range 6 {
		keys[i], exps[i] = fmt.Appendf(nil, "k-%d", i), t0.Add(2*time.Second+time.Duration(i)*time.Millisecond).UnixNano()
	}
	keys[6], exps[6] = []byte("later"), t0.Add(time.Hour).UnixNano()
	must(t, b.Update(func(tx Tx) error {
		ok, err := tx.(*pgTx).SpendTokens(keys, exps, t0)
		if err == nil && len(ok) != len(keys) {
			err = fmt.Errorf("SpendTokens answered %d of %d", len(ok), len(keys))
		}
		return err
	}))
	time.Sleep(time.Until(t0.Add(3 * time.Second))) // expired by the database's clock, which decides
	for i, want := range []bool{true, false, false} {
		var full bool
		must(t, b.Update(func(tx Tx) error { return tx.ForgetTokens(t0.Add(time.Minute), &full) }))
		if full != want {
			t.Fatalf("sweep %d: full = %v, want %v", i+1, full, want)
		}
	}
	var n int
	must(t, b.pool.QueryRow(t.Context(), `SELECT count(*) FROM bastion_used_tokens`).Scan(&n))
	if n != 1 {
		t.Fatalf("%d keys left, want 1 (the one not expired)", n)
	}
}
