package recorder

import (
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	bolt "go.etcd.io/bbolt"
)

// OpenReadOnly opens the store at path for reading, without a bastion: for
// auditors who replay or export recordings from a data directory (or a copy
// of one) while no bastion runs. Session, Sessions, Events, Export,
// ExportPcap and Backup work; whatever writes returns ErrReadOnly or fails.
// Nothing is changed in the file: sessions a crash left live are shown as
// live (the next bastion start marks them interrupted).
//
// It takes bbolt's shared lock, so it fails with ErrLocked, after timeout
// (0 means 1s), while a bastion holds the store, and a bastion cannot start
// while it is open.
func OpenReadOnly(path string, timeout time.Duration) (*Store, error) {
	if timeout == 0 {
		timeout = time.Second
	}
	if _, err := os.Stat(path); err != nil {
		return nil, fmt.Errorf("recorder: open %s: %w", path, err)
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{ReadOnly: true, Timeout: timeout})
	switch {
	case errors.Is(err, bolt.ErrTimeout):
		return nil, fmt.Errorf("recorder: open %s: %w", path, ErrLocked)
	case err != nil:
		return nil, fmt.Errorf("recorder: open %s: %w", path, err)
	}
	b := &boltBackend{db: db, path: path, used: make(map[string]int64)}
	s := &Store{cfg: Config{Path: path, Now: time.Now}, b: b, log: slog.New(slog.DiscardHandler), readOnly: true}
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil || string(meta.Get([]byte("format"))) != storeFormat {
			return fmt.Errorf("%w: %s is not a bastion store", ErrConfig, path)
		}
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("%w: %s lacks bucket %s (written by another version?)", ErrConfig, path, name)
			}
		}
		if since := meta.Get([]byte(metaCheckpointsSince)); since != nil {
			s.cpSince, _ = time.Parse(time.RFC3339Nano, string(since))
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("recorder: %w", err)
	}
	return s, nil
}

// Backup writes a consistent copy of a bbolt store to w (bbolt's
// Tx.WriteTo in one read transaction: recordings keep being written
// meanwhile) and returns its size. The copy opens as a store of its own.
// size, if not nil, is told the copy's length before any of it is written
// (a caller that sends the copy on can frame it), and may refuse it. A
// PostgreSQL store is backed up with the database's own tools (pg_dump).
func (s *Store) Backup(w io.Writer, size func(int64) error) (int64, error) {
	bb, ok := s.b.(*boltBackend)
	if !ok {
		return 0, fmt.Errorf("recorder: backup: the store is in PostgreSQL: back it up with pg_dump")
	}
	if err := s.syncAudit(); err != nil { // the copy holds every audit record answered so far
		return 0, fmt.Errorf("recorder: backup: %w", err)
	}
	var n int64
	err := bb.db.View(func(tx *bolt.Tx) error {
		if size != nil {
			if err := size(tx.Size()); err != nil {
				return err
			}
		}
		var err error
		n, err = tx.WriteTo(w)
		return err
	})
	if err != nil {
		return n, fmt.Errorf("recorder: backup: %w", err)
	}
	return n, nil
}
