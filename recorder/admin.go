package recorder

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"
	"unicode/utf8"

	bolt "go.etcd.io/bbolt"
)

// Revoke records that the certificate with this serial is revoked, and
// audits it. Revoking a serial twice keeps the first record.
func (s *Store) Revoke(serial uint64, by, reason string) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	rev := Revocation{Serial: serial, By: by, Reason: reason, Time: s.cfg.Now().UTC()}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketRevocations)
		if b.Get(u64key(serial)) != nil {
			return nil
		}
		v, err := json.Marshal(rev)
		if err != nil {
			return err
		}
		if err := b.Put(u64key(serial), v); err != nil {
			return err
		}
		_, err = s.appendAudit(tx, AuditEvent{
			Type: "cert.revoke", User: by, Outcome: "revoked", Reason: reason,
			Fields: map[string]string{"serial": fmt.Sprint(serial)},
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("recorder: revoke %d: %w", serial, err)
	}
	s.revMu.Lock()
	s.revoked[serial] = struct{}{}
	s.revMu.Unlock()
	return nil
}

// IsRevoked reports whether the serial is revoked, from memory.
func (s *Store) IsRevoked(serial uint64) bool {
	s.revMu.RLock()
	defer s.revMu.RUnlock()
	_, ok := s.revoked[serial]
	return ok
}

// Revocations lists the revoked serials in serial order.
func (s *Store) Revocations() ([]Revocation, error) {
	if err := s.enter(); err != nil {
		return nil, err
	}
	defer s.leave()
	var out []Revocation
	err := s.db.View(func(tx *bolt.Tx) error {
		return tx.Bucket(bucketRevocations).ForEach(func(k, v []byte) error {
			var rev Revocation
			if err := json.Unmarshal(v, &rev); err != nil {
				return fmt.Errorf("%w: revocation %x is unreadable", ErrBroken, k)
			}
			out = append(out, rev)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("recorder: revocations: %w", err)
	}
	return out, nil
}

// validTarget bounds a target name used as a key.
func validTarget(t string) bool {
	return t != "" && len(t) <= 255 && utf8.ValidString(t)
}

// PinnedHostKey returns the host key pinned for target on first use.
func (s *Store) PinnedHostKey(target string) ([]byte, bool, error) {
	if err := s.enter(); err != nil {
		return nil, false, err
	}
	defer s.leave()
	if !validTarget(target) {
		return nil, false, fmt.Errorf("recorder: host key for %s: %w: target name", quoteID(target), ErrInvalid)
	}
	var key []byte
	err := s.db.View(func(tx *bolt.Tx) error {
		key = bytes.Clone(tx.Bucket(bucketHostKeys).Get([]byte(target)))
		return nil
	})
	if err != nil {
		return nil, false, fmt.Errorf("recorder: host key for %s: %w", quoteID(target), err)
	}
	return key, key != nil, nil
}

// PinHostKey pins key (an SSH wire-format public key) for target. Pinning
// the same key again is a no-op; a different key is refused with
// ErrPinMismatch and never overwrites the pin.
func (s *Store) PinHostKey(target string, key []byte) error {
	if err := s.enter(); err != nil {
		return err
	}
	defer s.leave()
	if !validTarget(target) || len(key) == 0 || len(key) > 16<<10 {
		return fmt.Errorf("recorder: pin host key for %s: %w", quoteID(target), ErrInvalid)
	}
	err := s.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketHostKeys)
		if old := b.Get([]byte(target)); old != nil {
			if bytes.Equal(old, key) {
				return nil
			}
			return ErrPinMismatch
		}
		if err := b.Put([]byte(target), bytes.Clone(key)); err != nil {
			return err
		}
		sum := sha256.Sum256(key)
		_, err := s.appendAudit(tx, AuditEvent{
			Type: "hostkey.pin", Target: target, Outcome: "pinned",
			Fields: map[string]string{"fingerprint": "SHA256:" + base64.RawStdEncoding.EncodeToString(sum[:])},
		})
		return err
	})
	if err != nil {
		return fmt.Errorf("recorder: pin host key for %s: %w", quoteID(target), err)
	}
	return nil
}

// Purge removes sessions that ended more than Config.Retention ago: their
// chunks, seal and record. Each removal is audited. Live sessions are never
// removed. It returns how many sessions were removed; with no Retention it
// does nothing. The file does not shrink (see the package doc).
func (s *Store) Purge() (int, error) {
	if err := s.enter(); err != nil {
		return 0, err
	}
	defer s.leave()
	if s.cfg.Retention <= 0 {
		return 0, nil
	}
	cutoff := s.cfg.Now().Add(-s.cfg.Retention)
	var victims []SessionInfo
	err := s.db.View(func(tx *bolt.Tx) error {
		sessions := tx.Bucket(bucketSessions)
		c := tx.Bucket(bucketByStart).Cursor()
		for k, _ := c.First(); k != nil; k, _ = c.Next() {
			if len(k) <= 8 {
				continue
			}
			start := time.Unix(0, int64(binary.BigEndian.Uint64(k[:8])^(1<<63)))
			if !start.Before(cutoff) {
				break // started after the cutoff, so ended after it too
			}
			var info SessionInfo
			v := sessions.Get(k[8:])
			if v == nil || json.Unmarshal(v, &info) != nil {
				continue
			}
			if info.Status != StatusLive && !info.End.IsZero() && info.End.Before(cutoff) {
				victims = append(victims, info)
			}
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("recorder: purge: %w", err)
	}
	n := 0
	for _, info := range victims {
		s.mu.Lock()
		_, live := s.active[info.ID]
		s.mu.Unlock()
		if live {
			continue
		}
		if err := s.purgeSession(info); err != nil {
			return n, fmt.Errorf("recorder: purge %s: %w", info.ID, err)
		}
		n++
	}
	return n, nil
}

func (s *Store) purgeSession(info SessionInfo) error {
	return s.db.Update(func(tx *bolt.Tx) error {
		chunks := tx.Bucket(bucketChunks)
		prefix := chunkPrefix(info.ID)
		var keys [][]byte
		c := chunks.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			keys = append(keys, bytes.Clone(k))
		}
		for _, k := range keys {
			if err := chunks.Delete(k); err != nil {
				return err
			}
		}
		for _, del := range []struct {
			bucket, key []byte
		}{
			{bucketSeals, []byte(info.ID)},
			{bucketSessionCPs, []byte(info.ID)},
			{bucketSessions, []byte(info.ID)},
			{bucketByStart, startKey(info.Start, info.ID)},
		} {
			if err := tx.Bucket(del.bucket).Delete(del.key); err != nil {
				return err
			}
		}
		_, err := s.appendAudit(tx, AuditEvent{
			Type: "session.purge", User: info.User, SessionID: info.ID, Target: info.Target, Outcome: "purged",
			Reason: fmt.Sprintf("ended %s, retention %s", info.End.UTC().Format(time.RFC3339), s.cfg.Retention),
			Fields: map[string]string{"chunks": fmt.Sprint(len(keys))},
		})
		return err
	})
}

// Compact copies the store at src into a new file at dst, leaving out the
// free pages bbolt never returns to the file system. Run it while no Store
// has src open (bastion stopped), then replace src with dst. It is what
// `bbolt compact -o dst src` does.
func Compact(dst, src string) error {
	in, err := bolt.Open(src, 0o600, &bolt.Options{ReadOnly: true, Timeout: DefaultOpenTimeout})
	if err != nil {
		return fmt.Errorf("recorder: compact: open %s: %w", src, err)
	}
	defer in.Close()
	out, err := bolt.Open(dst, 0o600, &bolt.Options{Timeout: DefaultOpenTimeout, FreelistType: bolt.FreelistMapType})
	if err != nil {
		return fmt.Errorf("recorder: compact: create %s: %w", dst, err)
	}
	if err := bolt.Compact(out, in, 64<<20); err != nil {
		out.Close()
		return fmt.Errorf("recorder: compact: %w", err)
	}
	if err := out.Close(); err != nil {
		return fmt.Errorf("recorder: compact: %w", err)
	}
	return nil
}
