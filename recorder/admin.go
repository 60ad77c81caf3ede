package recorder

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"maps"
	"time"
	"unicode/utf8"
)

// Revoke records that the certificate with this serial is revoked, and
// audits it. Revoking a serial twice keeps the first record. With
// PostgreSQL every replica learns of it within Config.Postgres's
// PollInterval (at once when the notification arrives).
func (s *Store) Revoke(serial uint64, by, reason string) error {
	return s.RevokeSerial(serial, AuditEvent{User: by, Outcome: "revoked", Reason: reason})
}

// RevokeSerial is Revoke with the audit record to write in the same
// transaction (its Type is set here and the serial added to its Fields):
// the revoker's identity as the admin command knows it.
func (s *Store) RevokeSerial(serial uint64, ev AuditEvent) error {
	rev := Revocation{Serial: serial, By: ev.User, Reason: ev.Reason, Time: s.cfg.Now().UTC()}
	ev.Type = "cert.revoke"
	ev.Fields = maps.Clone(ev.Fields)
	if ev.Fields == nil {
		ev.Fields = map[string]string{}
	}
	ev.Fields["serial"] = fmt.Sprint(serial)
	err := s.update(func(tx Tx) error {
		added, err := tx.Revoke(rev)
		if err != nil || !added {
			return err
		}
		_, err = s.appendAudit(tx, ev)
		return err
	})
	if err != nil {
		return fmt.Errorf("recorder: revoke %d: %w", serial, err)
	}
	s.revMu.Lock()
	s.revoked[serial] = struct{}{}
	s.revMu.Unlock()
	if s.pg != nil {
		s.pg.notify(notifyRevocation, "")
	}
	return nil
}

// IsRevoked reports whether the serial is revoked, from memory.
func (s *Store) IsRevoked(serial uint64) bool {
	s.revMu.RLock()
	defer s.revMu.RUnlock()
	_, ok := s.revoked[serial]
	return ok
}

// RevokeUser revokes everything user holds now: every certificate issued
// to them up to this moment (their login, workload, database and SQL API
// credentials all stand on one) and their console sign-ins; what they
// obtain afterwards is not affected. ev is the audit record written in
// the same transaction (its Type and Time are set here). It returns the
// moment that was revoked up to. Revoking again moves it later. With
// PostgreSQL every replica learns of it as it learns of a serial's.
func (s *Store) RevokeUser(user string, ev AuditEvent) (time.Time, error) {
	if user == "" {
		return time.Time{}, errors.New("recorder: revoke a user: no user name")
	}
	now := s.Now().UTC() // the database's clock, as certificates are stamped (Now)
	ev.Type = "user.revoke"
	err := s.update(func(tx Tx) error {
		if err := tx.RevokeUser(Revocation{User: user, By: ev.User, Reason: ev.Reason, Time: now}); err != nil {
			return err
		}
		_, err := s.appendAudit(tx, ev)
		return err
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("recorder: revoke user %q: %w", user, err)
	}
	s.revMu.Lock()
	if now.After(s.userRevoked[user]) {
		s.userRevoked[user] = now
	}
	s.revMu.Unlock()
	if s.pg != nil {
		s.pg.notify(notifyRevocation, "")
	}
	return now, nil
}

// UserRevoked reports, from memory, the moment up to which everything
// user held has been revoked (bastion ca revoke --user), if ever.
func (s *Store) UserRevoked(user string) (time.Time, bool) {
	s.revMu.RLock()
	defer s.revMu.RUnlock()
	t, ok := s.userRevoked[user]
	return t, ok
}

// UserRevocations lists the users' revocations.
func (s *Store) UserRevocations() ([]Revocation, error) {
	var out []Revocation
	err := s.view(func(tx Tx) error {
		out = out[:0]
		return tx.UserRevocations(func(r Revocation) error {
			out = append(out, r)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("recorder: user revocations: %w", err)
	}
	return out, nil
}

// Revocations lists the revoked serials in serial order.
func (s *Store) Revocations() ([]Revocation, error) {
	var out []Revocation
	err := s.view(func(tx Tx) error {
		out = out[:0]
		return tx.Revocations(func(r Revocation) error {
			out = append(out, r)
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
	if !validTarget(target) {
		return nil, false, fmt.Errorf("recorder: host key for %s: %w: target name", quoteID(target), ErrInvalid)
	}
	var key []byte
	err := s.view(func(tx Tx) error {
		var err error
		key, err = tx.HostKey(target)
		return err
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
	if !validTarget(target) || len(key) == 0 || len(key) > 16<<10 {
		return fmt.Errorf("recorder: pin host key for %s: %w", quoteID(target), ErrInvalid)
	}
	err := s.update(func(tx Tx) error {
		old, err := tx.PinHostKey(target, key)
		switch {
		case err != nil:
			return err
		case old != nil && bytes.Equal(old, key):
			return nil
		case old != nil:
			return ErrPinMismatch
		}
		sum := sha256.Sum256(key)
		_, err = s.appendAudit(tx, AuditEvent{
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
// does nothing. A bbolt file does not shrink (see the package doc).
func (s *Store) Purge() (int, error) {
	if s.cfg.Retention <= 0 {
		return 0, nil
	}
	cutoff := s.cfg.Now().Add(-s.cfg.Retention)
	var victims []SessionInfo
	err := s.view(func(tx Tx) error {
		victims = victims[:0]
		return tx.Ended(cutoff, func(info SessionInfo) bool {
			victims = append(victims, info)
			return true
		})
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
		purged, err := s.purgeSession(info)
		if err != nil {
			return n, fmt.Errorf("recorder: purge %s: %w", info.ID, err)
		}
		if purged {
			n++
		}
	}
	return n, nil
}

// purgeSession removes one session and audits it, unless it is gone
// already: replicas sharing a store purge on their own schedules, and the
// record, locked until the commit, makes the second of two that purge the
// same session at once find nothing to remove (and audit nothing).
func (s *Store) purgeSession(info SessionInfo) (bool, error) {
	purged := false
	err := s.update(func(tx Tx) error {
		purged = false
		cur, err := tx.Session(info.ID)
		if errors.Is(err, ErrNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		if cur.Status == StatusLive {
			return nil
		}
		chunks, err := tx.DeleteSession(info)
		if err != nil {
			return err
		}
		_, err = s.appendAudit(tx, AuditEvent{
			Type: "session.purge", User: info.User, SessionID: info.ID, Target: info.Target, Outcome: "purged",
			Reason: fmt.Sprintf("ended %s, retention %s", info.End.UTC().Format(time.RFC3339), s.cfg.Retention),
			Fields: map[string]string{"chunks": fmt.Sprint(chunks)},
		})
		purged = err == nil
		return err
	})
	return purged && err == nil, err
}
