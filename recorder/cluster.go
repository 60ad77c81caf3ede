package recorder

import (
	"time"
)

// maxClockOffset is how far a replica's clock may be from the database's
// before it warns.
const maxClockOffset = time.Second

// measureClock measures how far the database's clock is from this
// replica's (half a round trip's error), for Now, and warns when it passes
// maxClockOffset (again when it comes back).
func (s *Store) measureClock() {
	ctx, cancel := s.pg.ctx()
	defer cancel()
	t0 := s.cfg.Now()
	var db time.Time
	if err := s.pg.pool.QueryRow(ctx, `SELECT clock_timestamp()`).Scan(&db); err != nil {
		s.log.Warn("recorder: read the database's clock", "err", err)
		return
	}
	t1 := s.cfg.Now()
	off := db.Sub(t0.Add(t1.Sub(t0) / 2))
	s.clockOffset.Store(int64(off))
	switch far := off > maxClockOffset || off < -maxClockOffset; {
	case far && !s.clockWarned:
		s.clockWarned = true
		s.log.Warn("recorder: this replica's clock differs from the database's; certificates and users' revocations are stamped by the database's clock, everything else by this one: keep every replica on NTP",
			"database_minus_replica", off.Round(time.Millisecond).String())
	case !far && s.clockWarned:
		s.clockWarned = false
		s.log.Info("recorder: this replica's clock agrees with the database's again", "database_minus_replica", off.Round(time.Millisecond).String())
	}
}

// ClockOffset is how far the database's clock is ahead of this replica's
// (negative: behind), as last measured; 0 with bbolt.
func (s *Store) ClockOffset() time.Duration { return time.Duration(s.clockOffset.Load()) }

// Now is the store's time: with PostgreSQL the database's clock (this
// replica's corrected by ClockOffset), which every replica shares, so that
// what one replica stamps (a certificate's issue time) and another
// compares (a user's revocation) are one clock's; with bbolt Config.Now.
func (s *Store) Now() time.Time { return s.cfg.Now().Add(s.ClockOffset()) }

// clusterLoop is what a replica sharing a PostgreSQL store does besides
// recording: it renews its lease every third of Lease (in a goroutine of
// its own, renewLoop), takes over the live sessions of replicas whose
// lease expired (marking them interrupted and sealing them up to their
// last signed checkpoint, as Open does after a crash with bbolt), and
// keeps the revocations it answers IsRevoked from current: at once on a
// notification, and every Poll in case one was lost.
func (s *Store) clusterLoop() {
	defer close(s.clusterDone)
	renewing := make(chan struct{})
	go s.renewLoop(renewing)
	defer func() { <-renewing }()
	pc := s.cfg.Postgres
	lease := time.NewTicker(pc.Lease / 3)
	defer lease.Stop()
	poll := time.NewTicker(pc.Poll)
	defer poll.Stop()
	revoked, unsubscribe := s.pg.subscribe(notifyRevocation)
	defer unsubscribe()
	for {
		select {
		case <-s.stop:
			return
		case <-lease.C:
			if err := s.recoverOrphans(); err != nil {
				s.log.Error("recorder: take over the sessions of a stopped replica", "err", err)
			}
			if err := s.pg.reap(); err != nil {
				s.log.Warn("recorder: forget stopped replicas", "err", err)
			}
		case <-revoked:
			s.refreshRevocations()
		case <-poll.C:
			s.refreshRevocations()
		}
	}
}

// renewLoop renews this replica's lease every third of Lease until the
// store stops, then closes done. It is apart from clusterLoop's work
// because taking over a dead replica's sessions seals each of them, which
// takes longer than a short lease when there are many: renewing in the
// same loop let this replica's own lease lapse meanwhile, and the other
// replicas then took over its sessions too, live as they were.
func (s *Store) renewLoop(done chan<- struct{}) {
	defer close(done)
	t := time.NewTicker(s.cfg.Postgres.Lease / 3)
	defer t.Stop()
	for {
		select {
		case <-s.stop:
			return
		case <-t.C:
			if err := s.pg.renew(); err != nil {
				s.log.Error("recorder: renew this replica's lease", "err", err)
			}
			s.measureClock()
		}
	}
}

func (s *Store) refreshRevocations() {
	if err := s.loadRevocations(); err != nil {
		s.log.Error("recorder: reload revocations", "err", err)
	}
}
