package recorder

import (
	"fmt"
	"log/slog"
)

// MigrateReport says what Migrate copied and how the copy verified.
type MigrateReport struct {
	Sessions     int
	Chunks       int
	AuditRecords int
	Revocations  int // serials and users
	HostKeys     int
	// Problems lists what does not verify in the copy, one line each
	// (sessions that did not verify in the source either are listed too).
	Problems []string
}

// migrateBatch is how many chunks or audit records one transaction copies.
const migrateBatch = 512

// Migrate copies the bbolt store cfg opens (cfg.Path) into the PostgreSQL
// database to names, which must hold no store yet (a migration that stopped
// part way leaves one that Open refuses: drop it and migrate again), and then verifies every
// session and the audit chain in the copy with cfg's seal keys. It opens
// the source as serve does first, so sessions a crash left live are marked
// interrupted and sealed before they are copied. Run it with the bastion
// stopped. The bytes are copied as they are: chunks, signed checkpoints
// and seals, audit records and their signed checkpoints, so the copy
// verifies exactly when the source does. One-time tokens already used are
// not copied: they expire within minutes, so wait that long (the longest
// token lifetime the IdPs issue) before starting the replicas.
func Migrate(cfg Config, to PostgresConfig) (MigrateReport, error) {
	var rep MigrateReport
	if cfg.Postgres != nil || cfg.Path == "" {
		return rep, fmt.Errorf("recorder: migrate: %w: the source is a bbolt file (Path)", ErrConfig)
	}
	to, err := to.check()
	if err != nil {
		return rep, err
	}
	src, err := Open(cfg)
	if err != nil {
		return rep, err
	}
	defer src.Close()
	dst, err := connectPostgres(to, "", slog.New(slog.DiscardHandler))
	if err != nil {
		return rep, err
	}
	err = copyStore(src.b, dst, &rep)
	dst.Close()
	if err != nil {
		return rep, fmt.Errorf("recorder: migrate: %w", err)
	}
	// Verify the copy as a replica would read it.
	vcfg := cfg
	vcfg.Path, vcfg.Postgres = "", &to
	check, err := Open(vcfg)
	if err != nil {
		return rep, fmt.Errorf("recorder: migrate: open the copy: %w", err)
	}
	defer check.Close()
	list, err := check.Sessions(SessionFilter{})
	if err != nil {
		return rep, fmt.Errorf("recorder: migrate: list the copy: %w", err)
	}
	if len(list) != rep.Sessions {
		rep.Problems = append(rep.Problems, fmt.Sprintf("the copy holds %d sessions, the source %d", len(list), rep.Sessions))
	}
	for _, info := range list {
		r, err := check.Verify(info.ID)
		if err == nil && !r.Intact {
			if before, err := src.Verify(info.ID); err == nil && !before.Intact {
				rep.Problems = append(rep.Problems, fmt.Sprintf("session %s: %s (in the source too)", info.ID, r.Problem))
				continue
			}
		}
		switch {
		case err != nil:
			rep.Problems = append(rep.Problems, fmt.Sprintf("session %s: %v", info.ID, err))
		case !r.Intact:
			rep.Problems = append(rep.Problems, fmt.Sprintf("session %s: %s", info.ID, r.Problem))
		}
	}
	r, err := check.VerifyAudit()
	switch {
	case err != nil:
		rep.Problems = append(rep.Problems, fmt.Sprintf("audit: %v", err))
	case !r.Intact:
		rep.Problems = append(rep.Problems, "audit: "+r.Problem)
	}
	return rep, nil
}

// copyStore copies everything but used tokens from src to dst, which must
// be empty.
func copyStore(src Backend, dst *pgBackend, rep *MigrateReport) error {
	err := dst.View(func(tx Tx) error {
		seq, _, err := tx.AuditTail()
		if err != nil {
			return err
		}
		found := false
		if err := tx.Sessions(SessionFilter{}, func(SessionInfo) bool { found = true; return false }); err != nil {
			return err
		}
		if seq > 0 || found {
			return fmt.Errorf("%w: the database already holds a store (sessions or audit records)", ErrExists)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// Metadata, revocations and pins: small, one transaction.
	err = src.View(func(stx Tx) error {
		return dst.Update(func(dtx Tx) error {
			rep.Revocations, rep.HostKeys = 0, 0
			if err := stx.Metas(dtx.SetMeta); err != nil {
				return err
			}
			// Until the copy is whole, no replica opens the database.
			if err := dtx.SetMeta(metaMigrating, []byte("copying")); err != nil {
				return err
			}
			if err := stx.Revocations(func(r Revocation) error {
				rep.Revocations++
				_, err := dtx.Revoke(r)
				return err
			}); err != nil {
				return err
			}
			if err := stx.UserRevocations(func(r Revocation) error {
				rep.Revocations++
				return dtx.RevokeUser(r)
			}); err != nil {
				return err
			}
			return stx.HostKeys(func(target string, key []byte) error {
				rep.HostKeys++
				_, err := dtx.PinHostKey(target, key)
				return err
			})
		})
	})
	if err != nil {
		return err
	}
	var sessions []SessionInfo
	if err := src.View(func(tx Tx) error {
		return tx.Sessions(SessionFilter{}, func(info SessionInfo) bool { sessions = append(sessions, info); return true })
	}); err != nil {
		return err
	}
	for _, info := range sessions {
		if err := copySession(src, dst, info, rep); err != nil {
			return fmt.Errorf("session %s: %w", info.ID, err)
		}
	}
	if err := copyAudit(src, dst, rep); err != nil {
		return err
	}
	return dst.Update(func(tx Tx) error { return tx.SetMeta(metaMigrating, []byte{}) })
}

// metaMigrating is set, non-empty, while Migrate copies into a database:
// a migration that stopped part way leaves it, and Open refuses the store.
const metaMigrating = "migration_incomplete"

// copySession copies a session's chunks in batches, then its record,
// checkpoint and seal (a reader of the copy meanwhile sees no session).
func copySession(src Backend, dst *pgBackend, info SessionInfo, rep *MigrateReport) error {
	for from := uint64(0); ; {
		var values [][]byte
		first := from
		err := src.View(func(tx Tx) error {
			values = values[:0]
			return tx.Chunks(info.ID, from, migrateBatch, func(seq uint64, v []byte) error {
				if seq != first+uint64(len(values)) {
					return fmt.Errorf("%w: chunk %d is missing", ErrBroken, first+uint64(len(values)))
				}
				values = append(values, append([]byte(nil), v...))
				return nil
			})
		})
		if err != nil {
			return err
		}
		if len(values) == 0 {
			break
		}
		if err := dst.Update(func(tx Tx) error { return tx.PutChunks(info.ID, first, values) }); err != nil {
			return err
		}
		rep.Chunks += len(values)
		from = first + uint64(len(values))
		if len(values) < migrateBatch {
			break
		}
	}
	var cp, seal []byte
	if err := src.View(func(tx Tx) error {
		var err error
		if cp, err = tx.Checkpoint(info.ID); err != nil {
			return err
		}
		seal, err = tx.Seal(info.ID)
		return err
	}); err != nil {
		return err
	}
	rep.Sessions++
	return dst.Update(func(tx Tx) error {
		if err := tx.CreateSession(info); err != nil {
			return err
		}
		if cp != nil {
			if err := tx.PutCheckpoint(info.ID, cp); err != nil {
				return err
			}
		}
		if seal != nil {
			return tx.PutSeal(info.ID, seal)
		}
		return nil
	})
}

// copyAudit copies the audit records in order, then their checkpoints.
func copyAudit(src Backend, dst *pgBackend, rep *MigrateReport) error {
	type rec struct {
		seq uint64
		v   []byte
	}
	for from := uint64(1); ; {
		var batch []rec
		if err := src.View(func(tx Tx) error {
			batch = batch[:0]
			return tx.Audit(from, migrateBatch, func(seq uint64, v []byte) error {
				batch = append(batch, rec{seq, append([]byte(nil), v...)})
				return nil
			})
		}); err != nil {
			return err
		}
		if len(batch) == 0 {
			break
		}
		if err := dst.Update(func(tx Tx) error {
			tail, _, err := tx.AuditTail()
			if err != nil {
				return err
			}
			for _, r := range batch {
				if r.seq != tail+1 {
					return fmt.Errorf("%w: audit record %d is missing", ErrBroken, tail+1)
				}
				if err := tx.AppendAudit(r.seq, recordHash(r.v), r.v); err != nil {
					return err
				}
				tail = r.seq
			}
			return nil
		}); err != nil {
			return err
		}
		rep.AuditRecords += len(batch)
		from = batch[len(batch)-1].seq + 1
	}
	return src.View(func(stx Tx) error {
		return dst.Update(func(dtx Tx) error {
			return stx.AuditCheckpoints(0, ^uint64(0), dtx.PutAuditCheckpoint)
		})
	})
}
