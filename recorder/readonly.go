package recorder

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
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
	b := &boltBackend{db: db, path: path, used: make(map[string]int64), log: newChunkLog(path, true)}
	s := &Store{cfg: Config{Path: path, Now: time.Now}, b: b, log: slog.New(slog.DiscardHandler), readOnly: true}
	err = db.View(func(tx *bolt.Tx) error {
		meta := tx.Bucket(bucketMeta)
		if meta == nil {
			return fmt.Errorf("%w: %s is not a bastion store", ErrConfig, path)
		}
		if f := meta.Get([]byte("format")); string(f) != storeFormat && string(f) != storeFormat2 {
			return fmt.Errorf("%w: %s is not a bastion store", ErrConfig, path)
		}
		for _, name := range allBuckets {
			if tx.Bucket(name) == nil {
				return fmt.Errorf("%w: %s lacks bucket %s (written by another version?)", ErrConfig, path, name)
			}
		}
		if err := b.log.load(tx); err != nil {
			return err
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
	bb.log.rm.RLock() // no segment goes while the copy reads them
	defer bb.log.rm.RUnlock()
	err := bb.db.View(func(tx *bolt.Tx) error {
		if tx.Bucket(bucketChunkLog) != nil {
			var err error
			n, err = bb.backupInline(tx, w, size)
			return err
		}
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

// backupInline writes a copy of the store as of tx with every chunk in its
// own value: a backup is one file that opens as a store anywhere, without
// the chunk log beside it. The copy is built in a temporary file beside the
// store (it needs about the store's and its log's size) and then written
// to w.
func (b *boltBackend) backupInline(tx *bolt.Tx, w io.Writer, size func(int64) error) (int64, error) {
	tmp, err := os.CreateTemp(filepath.Dir(b.path), ".backup-*.db")
	if err != nil {
		return 0, err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	if _, err := tx.WriteTo(tmp); err != nil {
		return 0, err
	}
	if err := tmp.Close(); err != nil {
		return 0, err
	}
	cp, err := bolt.Open(tmp.Name(), 0o600, &bolt.Options{NoSync: true, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return 0, err
	}
	defer cp.Close()
	// Replace the references batch by batch: one transaction per batch
	// keeps the copy's memory bounded.
	after := []byte{}
	for after != nil {
		var keys, refs [][]byte
		var batch int
		cp.View(func(ctx *bolt.Tx) error {
			c := ctx.Bucket(bucketChunks).Cursor()
			k, v := c.Seek(after)
			if len(after) > 0 && bytes.Equal(k, after) {
				k, v = c.Next()
			}
			after = nil
			for ; k != nil; k, v = c.Next() {
				if ref, ok := parseRef(v); ok {
					keys, refs = append(keys, bytes.Clone(k)), append(refs, bytes.Clone(v))
					if batch += ref.n; batch >= 64<<20 {
						after = bytes.Clone(k)
						break
					}
				}
			}
			return nil
		})
		err := cp.Update(func(ctx *bolt.Tx) error {
			bk := ctx.Bucket(bucketChunks)
			for i, k := range keys {
				ref, _ := parseRef(refs[i])
				var buf []byte // bbolt keeps each value until the commit
				v, err := b.log.read(ref, &buf)
				if err != nil {
					// Kept as it is: the copy's verify reports the chunk
					// as it would here.
					v = unreadRef(err)
				}
				if err := bk.Put(k, v); err != nil {
					return err
				}
			}
			return nil
		})
		if err != nil {
			return 0, err
		}
	}
	err = cp.Update(func(ctx *bolt.Tx) error {
		if err := ctx.DeleteBucket(bucketChunkLog); err != nil {
			return err
		}
		return ctx.Bucket(bucketMeta).Put([]byte("format"), []byte(storeFormat))
	})
	if err == nil {
		err = cp.Sync()
	}
	if err == nil {
		err = cp.Close()
	}
	if err != nil {
		return 0, err
	}
	f, err := os.Open(tmp.Name())
	if err != nil {
		return 0, err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return 0, err
	}
	if size != nil {
		if err := size(st.Size()); err != nil {
			return 0, err
		}
	}
	return io.Copy(w, f)
}
