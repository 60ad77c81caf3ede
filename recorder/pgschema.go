package recorder

import (
	"context"
	"errors"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The PostgreSQL schema is versioned: migrations[i] takes it from version
// i to i+1, and bastion_schema holds the version. Open runs the missing
// migrations in one transaction under an advisory lock (replicas starting
// together take turns), and refuses a database whose version is newer
// than this bastion knows: an older bastion must not write to a schema it
// does not understand (a rolling upgrade starts the new version's replicas
// before stopping the old ones only when a release says its migration
// allows it).
//
// Every table is prefixed bastion_, so the database can be shared with
// other applications. Values are the exact bytes the bbolt backend stores:
// the session record's JSON, chunks, signed notes, audit records.
var migrations = []string{
	// 1: everything the bbolt file holds, plus replicas and approvals.
	`
CREATE TABLE bastion_meta (
	name  text PRIMARY KEY,
	value bytea NOT NULL
);
CREATE TABLE bastion_replicas (
	id      text PRIMARY KEY,
	name    text NOT NULL,
	started timestamptz NOT NULL,
	expires timestamptz NOT NULL
);
CREATE TABLE bastion_sessions (
	id        text PRIMARY KEY,
	start_ns  bigint NOT NULL,
	end_ns    bigint,
	user_name text NOT NULL,
	target    text NOT NULL,
	kind      text NOT NULL,
	status    text NOT NULL,
	replica   text NOT NULL,
	info      bytea NOT NULL
);
CREATE INDEX bastion_sessions_by_start ON bastion_sessions (start_ns DESC, id DESC);
CREATE INDEX bastion_sessions_live ON bastion_sessions (replica) WHERE status = 'live';
CREATE INDEX bastion_sessions_by_end ON bastion_sessions (end_ns) WHERE status <> 'live';
CREATE TABLE bastion_chunks (
	session text NOT NULL,
	seq     bigint NOT NULL,
	data    bytea NOT NULL,
	PRIMARY KEY (session, seq)
);
-- Chunks are compressed already: store them out of line, uncompressed.
ALTER TABLE bastion_chunks ALTER COLUMN data SET STORAGE EXTERNAL;
CREATE TABLE bastion_session_checkpoints (
	session text PRIMARY KEY,
	note    bytea NOT NULL
);
CREATE TABLE bastion_seals (
	session text PRIMARY KEY,
	seal    bytea NOT NULL
);
CREATE TABLE bastion_audit (
	seq    bigint PRIMARY KEY,
	record bytea NOT NULL
);
-- The chain's tail: one row, locked by each appending transaction.
CREATE TABLE bastion_audit_head (
	one  boolean PRIMARY KEY DEFAULT true CHECK (one),
	seq  bigint NOT NULL,
	hash bytea NOT NULL
);
INSERT INTO bastion_audit_head (seq, hash) VALUES (0, decode(repeat('00', 32), 'hex'));
CREATE TABLE bastion_audit_checkpoints (
	seq    bigint PRIMARY KEY,
	signed bytea NOT NULL
);
CREATE TABLE bastion_used_tokens (
	key        bytea PRIMARY KEY,
	expires_ns bigint NOT NULL
);
CREATE INDEX bastion_used_tokens_by_expiry ON bastion_used_tokens (expires_ns);
CREATE TABLE bastion_revocations (
	serial     bigint PRIMARY KEY,
	revocation bytea NOT NULL
);
CREATE TABLE bastion_host_keys (
	target text PRIMARY KEY,
	key    bytea NOT NULL
);
CREATE TABLE bastion_approvals (
	id          text PRIMARY KEY,
	replica     text NOT NULL,
	request     bytea NOT NULL,
	created     timestamptz NOT NULL,
	expires     timestamptz NOT NULL,
	claim       text,
	claim_until timestamptz,
	outcome     text,
	decided_by  text,
	note        text,
	decided_at  timestamptz
);
CREATE INDEX bastion_approvals_pending ON bastion_approvals (created) WHERE outcome IS NULL;
`,
	// 2: audit sinks, each shipped by one replica at a time (the holder)
	// from the last record it delivered.
	`
CREATE TABLE bastion_sinks (
	name      text PRIMARY KEY,
	holder    text,
	delivered bigint NOT NULL
);
`,
	// 3: an approver's decision carries the deciding replica's signature
	// (seal key) over the request and the outcome, so that a row edited
	// in the database approves nothing.
	`
ALTER TABLE bastion_approvals ADD COLUMN proof bytea;
`,
	// 4: a user's revocation (bastion ca revoke --user): everything the
	// user held up to time_ns.
	`
CREATE TABLE bastion_user_revocations (
	user_name  text PRIMARY KEY,
	time_ns    bigint NOT NULL,
	revocation bytea NOT NULL
);
`,
}

// SchemaVersion is the PostgreSQL schema version this bastion writes.
var SchemaVersion = len(migrations)

// schemaLock is the advisory lock key migrations run under (an arbitrary
// constant: "bastion" in ASCII).
const schemaLock = 0x62617374696f6e

// migrateSchema brings the schema up to SchemaVersion, or refuses a newer
// one.
func migrateSchema(ctx context.Context, pool *pgxpool.Pool) error {
	return pgx.BeginTxFunc(ctx, pool, pgx.TxOptions{}, func(tx pgx.Tx) error {
		if _, err := tx.Exec(ctx, `SELECT pg_advisory_xact_lock($1)`, int64(schemaLock)); err != nil {
			return fmt.Errorf("recorder: postgres: lock the schema: %w", err)
		}
		if _, err := tx.Exec(ctx, `CREATE TABLE IF NOT EXISTS bastion_schema (version integer NOT NULL)`); err != nil {
			return fmt.Errorf("recorder: postgres: create bastion_schema: %w", err)
		}
		var version int
		err := tx.QueryRow(ctx, `SELECT version FROM bastion_schema`).Scan(&version)
		switch {
		case errors.Is(err, pgx.ErrNoRows):
			if _, err := tx.Exec(ctx, `INSERT INTO bastion_schema (version) VALUES (0)`); err != nil {
				return fmt.Errorf("recorder: postgres: %w", err)
			}
		case err != nil:
			return fmt.Errorf("recorder: postgres: read the schema version: %w", err)
		}
		if version > len(migrations) {
			return fmt.Errorf("recorder: postgres: %w: the database has schema version %d, this bastion knows up to %d: upgrade this bastion (it refuses to write to a newer schema)", ErrSchema, version, len(migrations))
		}
		for v := version; v < len(migrations); v++ {
			if _, err := tx.Exec(ctx, migrations[v]); err != nil {
				return fmt.Errorf("recorder: postgres: migrate the schema to version %d: %w", v+1, err)
			}
		}
		if version < len(migrations) {
			if _, err := tx.Exec(ctx, `UPDATE bastion_schema SET version = $1`, len(migrations)); err != nil {
				return fmt.Errorf("recorder: postgres: %w", err)
			}
		}
		return nil
	})
}
