package recorder

import (
	"time"
)

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
		}
	}
}

func (s *Store) refreshRevocations() {
	if err := s.loadRevocations(); err != nil {
		s.log.Error("recorder: reload revocations", "err", err)
	}
}
