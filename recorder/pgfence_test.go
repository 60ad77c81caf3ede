package recorder

import (
	"bytes"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
)

// TestPostgresFencedReplicaWritesNothing: a replica that stalled past its
// lease (here: its lease row expired behind its back, as when the network
// to the database was cut) comes back after another replica took its
// session over, marked it interrupted and sealed it. Whatever the stalled
// replica then flushes for that session is refused, and refused before the
// commit: the seal, the checkpoint and the chunks the takeover sealed stay
// as they were, and the session still verifies.
func TestPostgresFencedReplicaWritesNothing(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	dsn := pg.StoreDSN(t, "bastion")
	b := openStore(t, pgConfig(dsn, "b"))
	cfg := pgConfig(dsn, "c")
	cfg.Postgres.Lease = time.Hour // C renews rarely: the test expires its lease
	c := openStore(t, cfg)

	r := begin(t, c, SessionInfo{Start: time.Now(), User: "dave"})
	must(t, r.Output([]byte("checkpointed\r\n")))
	rb := begin(t, c, SessionInfo{Start: time.Now(), User: "dave"})
	must(t, rb.Output([]byte("checkpointed too\r\n")))
	rc := begin(t, c, SessionInfo{Start: time.Now(), User: "dave"})
	must(t, rc.Output([]byte("checkpointed as well\r\n")))
	c.sync()

	pg.ExecIn(t, "bastion", "UPDATE bastion_replicas SET expires = now() - interval '1 hour' WHERE id = '"+c.ReplicaID()+"'")
	waitFor(t, "B marks C's session interrupted", func() bool {
		info, err := b.Session(r.ID())
		if err != nil || info.Status != StatusInterrupted {
			return false
		}
		for _, id := range []string{rb.ID(), rc.ID()} {
			if info, err = b.Session(id); err != nil || info.Status != StatusInterrupted {
				return false
			}
		}
		return true
	})
	before := pg.QueryStrings(t, "bastion", "SELECT encode(seal, 'hex') FROM bastion_seals WHERE session = '"+r.ID()+"'")
	cpBefore := pg.QueryStrings(t, "bastion", "SELECT encode(note, 'hex') FROM bastion_session_checkpoints WHERE session = '"+r.ID()+"'")
	if len(before) != 1 || len(cpBefore) != 1 {
		t.Fatalf("after the takeover: seals %v, checkpoints %v", before, cpBefore)
	}

	// C comes back and ends the session, with nothing left to flush but
	// the end (the record and the seal).
	if err := r.End(ExitInfo{Status: 0}); !errors.Is(err, ErrFenced) {
		t.Errorf("ending a session taken over: %v, want ErrFenced", err)
	}

	after := pg.QueryStrings(t, "bastion", "SELECT encode(seal, 'hex') FROM bastion_seals WHERE session = '"+r.ID()+"'")
	cpAfter := pg.QueryStrings(t, "bastion", "SELECT encode(note, 'hex') FROM bastion_session_checkpoints WHERE session = '"+r.ID()+"'")
	if len(after) != 1 || !bytes.Equal([]byte(after[0]), []byte(before[0])) {
		t.Errorf("the fenced replica replaced the takeover's seal")
	}
	if len(cpAfter) != 1 || cpAfter[0] != cpBefore[0] {
		t.Errorf("the fenced replica replaced the takeover's checkpoint")
	}
	rep, err := b.Verify(r.ID())
	if err != nil || !rep.Intact || !rep.Sealed || rep.Status != StatusInterrupted {
		t.Errorf("verify after the fenced replica came back: %+v, %v", rep, err)
	}

	// C renews its lease (registering again) and goes on serving: a
	// session it starts now shares a flush with the other session taken
	// over, and with a deferred audit record. Those two are written once;
	// the fenced session stops.
	must(t, c.pg.renew())
	r2 := begin(t, c, SessionInfo{Start: time.Now(), User: "erin"})
	must(t, r2.Output([]byte("after the takeover\r\n")))
	if _, err := c.AuditLater(AuditEvent{Type: "test.later", User: "erin"}); err != nil {
		t.Fatal(err)
	}
	must(t, rb.Output([]byte("lost\r\n")))
	must(t, rc.Output([]byte("lost too\r\n")))
	c.sync()
	for _, r := range []*Recording{rb, rc} {
		select {
		case <-r.Failed():
		default:
			t.Error("the recording of a session taken over goes on")
		}
	}
	if err := r2.End(ExitInfo{Status: 0}); err != nil {
		t.Errorf("a new session on the replica that came back: %v", err)
	}
	rep, err = b.Verify(r2.ID())
	if err != nil || !rep.Intact || !rep.Sealed || rep.Events != 1 {
		t.Errorf("verify the new session: %+v, %v", rep, err)
	}
	if got := pg.QueryStrings(t, "bastion", "SELECT count(*) FROM bastion_audit WHERE convert_from(record, 'UTF8') LIKE '%test.later%'"); got[0] != "1" {
		t.Errorf("the deferred audit record is in the chain %s times, want once", got[0])
	}
	if rep, err := b.Verify(rb.ID()); err != nil || !rep.Intact || !rep.Sealed || rep.Events != 1 {
		t.Errorf("verify the other session taken over: %+v, %v", rep, err)
	}
	for _, s := range []*Store{b, c} {
		if rep, err := s.VerifyAudit(); err != nil || !rep.Intact {
			t.Errorf("VerifyAudit: %+v, %v", rep, err)
		}
	}
}

// TestPostgresPurgeAuditedOnce: replicas purge on their own schedules, so
// two of them purge the same expired sessions at the same moment. Each
// session is removed once and its removal audited once.
func TestPostgresPurgeAuditedOnce(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	dsn := pg.StoreDSN(t, "bastion")
	clk := newClock()
	stores := make([]*Store, 2)
	for i, name := range []string{"a", "b"} {
		cfg := pgConfig(dsn, name)
		cfg.Now, cfg.Retention = clk.Now, time.Hour
		stores[i] = openStore(t, cfg)
	}
	const n = 20
	for range n {
		r := begin(t, stores[0], SessionInfo{Start: clk.Now()})
		must(t, r.Output([]byte("x\r\n")))
		must(t, r.End(ExitInfo{}))
	}
	clk.Advance(2 * time.Hour)
	purged := make([]int, 2)
	var wg sync.WaitGroup
	for i, s := range stores {
		wg.Add(1)
		go func() {
			defer wg.Done()
			var err error
			purged[i], err = s.Purge()
			if err != nil {
				t.Error(err)
			}
		}()
	}
	wg.Wait()
	if purged[0]+purged[1] != n {
		t.Errorf("the replicas purged %d and %d sessions, %d in all; want %d", purged[0], purged[1], purged[0]+purged[1], n)
	}
	got := pg.QueryStrings(t, "bastion", "SELECT count(*) FROM bastion_audit WHERE convert_from(record, 'UTF8') LIKE '%session.purge%'")
	if got[0] != fmt.Sprint(n) {
		t.Errorf("%s session.purge records for %d sessions", got[0], n)
	}
}

// TestPostgresApprovalProof: a decision made through the board by the
// holder of a claim is proven (signed over the request and the outcome)
// on every replica; one written into the table directly, or a request
// edited after it was decided, is not.
func TestPostgresApprovalProof(t *testing.T) {
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{})
	dsn := pg.StoreDSN(t, "bastion")
	a := openStore(t, pgConfig(dsn, "a"))
	b := openStore(t, pgConfig(dsn, "b"))
	now := time.Now()
	for _, id := range []string{"honest", "forged"} {
		must(t, a.Approvals().Put(Approval{ID: id, Request: []byte(`{"command":"ls"}`), Created: now, Expires: now.Add(time.Minute)}))
	}
	if _, err := b.Approvals().Claim("honest", "claim-b", now, now.Add(time.Minute)); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Approvals().Decide("honest", "claim-b", []byte(`{"command":"ls"}`), "approved", "carol", "", now); !ok || err != nil {
		t.Fatalf("Decide: %v, %v", ok, err)
	}
	if got, err := a.Approvals().Get("honest", now); err != nil || got.Outcome != "approved" || !got.Proven {
		t.Fatalf("A reads B's decision as %+v, %v; want it proven", got, err)
	}
	// A decision after its claim lapsed is not recorded: the waiting
	// replica may have given up on it (and told its user so) by then.
	must(t, a.Approvals().Put(Approval{ID: "late", Request: []byte(`{"command":"ls"}`), Created: now, Expires: now.Add(time.Minute)}))
	if _, err := b.Approvals().Claim("late", "claim-late", now, now.Add(30*time.Second)); err != nil {
		t.Fatal(err)
	}
	if ok, err := b.Approvals().Decide("late", "claim-late", []byte(`{"command":"ls"}`), "approved", "carol", "", now.Add(31*time.Second)); ok || err != nil {
		t.Fatalf("a decision after its claim lapsed: %v, %v; want it not recorded", ok, err)
	}
	pg.ExecIn(t, "bastion", "UPDATE bastion_approvals SET outcome = 'approved', decided_by = 'carol', decided_at = now() WHERE id = 'forged'")
	if got, err := a.Approvals().Get("forged", now); err != nil || got.Outcome != "approved" || got.Proven {
		t.Fatalf("a decision written into the table: %+v, %v; want it not proven", got, err)
	}
	// The honest proof does not carry over to another request or outcome.
	pg.ExecIn(t, "bastion", "UPDATE bastion_approvals SET proof = (SELECT proof FROM bastion_approvals WHERE id = 'honest') WHERE id = 'forged'")
	pg.ExecIn(t, "bastion", `UPDATE bastion_approvals SET request = '{"command":"rm -rf /"}' WHERE id = 'honest'`)
	for _, id := range []string{"honest", "forged"} {
		if got, err := a.Approvals().Get(id, now); err != nil || got.Proven {
			t.Errorf("%s after the edit: %+v, %v; want it not proven", id, got, err)
		}
	}
}
