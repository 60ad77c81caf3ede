// Package recorder is bastion's store: session recordings, the audit log,
// certificate revocations and pinned host keys, in one bbolt file that only
// a [Store] opens, or in a PostgreSQL database that several bastion
// replicas share ([Config].Postgres). The [Store] does the evidence work
// either way; a [Backend] (backend.go) only keeps the bytes, and both
// backends keep the same bytes, so [Migrate] copies a file into a
// database and the copy verifies. The bucket list below is the bbolt
// layout; pgschema.go has the tables.
//
// # Basics
//
// [Store.Begin] stores a session's metadata and returns a [Recording]; the
// server feeds it the session's output ([Recording.Output]), input (only if
// Config.RecordInput: people type passwords), window changes and markers
// for its own decisions, then calls [Recording.End]. Forwards that record
// no content call [Recording.AddBytes]. Output is turned into valid UTF-8
// as it arrives (a character split across two writes is carried whole to
// the next, see asciicast.UTF8Carry) and stored as asciicast v2 events with
// microsecond times; [Store.Export] writes a session as an asciicast v2 file
// that asciinema plays, and [Store.Events] streams it for replay.
//
// The file holds these buckets:
//
//	sessions           session ID -> SessionInfo (JSON)
//	sessions_by_start  start time + ID, for newest-first listing and retention
//	chunks             session ID, 0, big-endian sequence -> chunk of events,
//	                   or for a chunk of 32 KiB or more a reference into the chunk log
//	chunk_log          the chunk log's ID, current segment and live bytes (chunklog.go)
//	session_checkpoints session ID -> its latest signed checkpoint (a note)
//	seals              session ID -> signed seal
//	audit              big-endian sequence -> hash-chained audit record
//	audit_checkpoints  big-endian sequence -> signed audit chain head
//	revocations        big-endian serial -> Revocation
//	host_keys          target -> pinned host key
//
// Large chunks are appended to segment files in the directory beside the
// file ([ChunkDir]), where they cost one write instead of bbolt's page copy
// and zeroed allocation; the chunks bucket then holds where they are, and
// Tx.Chunks hands readers the chunk itself, so nothing above the backend
// (the chain, checkpoints, seal, verification) sees the difference.
//
// A session's chunks sort together under its ID, so a cursor prefix scan
// replays it. Reads copy values out of their transaction and never keep one
// open while a caller's function runs.
//
// # Chunk format
//
// A chunk is one stored value: a header (format magic, sequence, the
// previous chunk's hash, event count), the events, and a SHA-256 hash of
// all of it (see chunk.go for the byte layout). Format 2, which writers
// write, compresses the events with zstd before hashing and storing them
// (terminal output compresses several times over; a chunk that would not
// shrink is stored as it is) and admits the event types of a TCP session's
// payload ([EventFromClient], [EventFromServer], [EventConn]), whose data is
// bytes. Format 1 chunks (uncompressed, terminal events only), written
// before, are read, verified, replayed and exported the same way, and a
// store holds both; the format is per chunk, so no migration is needed.
//
// # Tamper evidence
//
// Each chunk carries the hash of the previous chunk of its session (the
// first one a hash of the session ID) and its own hash, so the chunks form a
// chain. At every flush, in the same transaction as the chunks, the flusher
// signs the session's new chain head, chunk count and event count with
// Config.SealKey as a [Checkpoint], a signed note in the format of
// golang.org/x/mod/sumdb/note ([NoteVerifierKey] gives the verifier key
// others check it with). The seal key is Ed25519 (a file, the default) or
// ECDSA P-256 (a key in an HSM or a cloud KMS, which mostly lack Ed25519);
// the algorithm follows the key, and sealkey.go says how each is encoded.
// After a key change, Config.PreviousSealKeys keeps what the old key signed
// verifiable. When a session ends, a seal naming the chain head,
// the counts, the times and the session's metadata is signed too.
// [Store.Verify] reports a session intact, or exactly which chunk broke and
// how, and reports chunks that no signature covers (after the last
// checkpoint or the seal) as unverified, never intact; the checkpoints of
// one flush are signed once, as records of a Merkle tree whose root is
// signed (checkpoint.go); [VerifySeal] and
// [OpenCheckpoint] check a seal or a checkpoint with only the public key.
// The audit log is chained the same way, and the flusher signs its head
// after new records ([Store.VerifyAudit]).
//
// With bbolt, an audit record that its caller waits for ([Store.Audit],
// [Store.AuditOnce]: a certificate, a spent ID token) is made durable in the
// audit journal beside the file (journal.go: one fdatasync instead of a
// bbolt commit's two) and appended to the chain moments later, in journal
// order; readers of the audit log wait for that, and Open applies what a
// crash left in the journal before anything else.
//
// This detects changes made with access to the file but not to the seal
// key: an edited chunk breaks the chain, and a chain rebuilt with fresh
// hashes no longer matches the signed checkpoint. Someone holding the key
// can rewrite anything; someone who deletes the newest sessions, audit
// records and checkpoints together leaves no trace in the file itself. Ship
// the audit log elsewhere when that matters.
//
// # Concurrency
//
// Every method is safe for concurrent use. Writes are group-committed: each
// Recording buffers encoded events, and one flusher goroutine commits every
// session's buffered events in one bbolt transaction every
// Config.FlushInterval, or sooner when a session has Config.SessionBuffer
// bytes waiting. There is never one transaction per event.
//
// Memory is bounded. A session whose uncommitted bytes exceed twice
// SessionBuffer, or any session while all sessions together exceed
// Config.MaxPending, waits in Output for the next flush (backpressure), so a
// flood of output slows the flooding session to the disk's pace instead of
// growing memory, and other sessions wait at most for the flush in progress.
// Output copies its argument before returning and does not allocate per call
// in the steady state.
//
// # Failures and crashes
//
// In Strict mode (the default) a failed commit fails every recording it
// carried: [Recording.Failed] closes and [Recording.Err] says why, and the
// server ends the session with that reason. In BestEffort mode the session
// goes on; the lost events are dropped, and when a commit succeeds again a
// gap marker ("recording gap: N events lost") is written in their place and
// a "recording.gap" audit event is committed with it.
//
// bbolt commits are atomic, so after a crash (even kill -9) the file opens
// with every committed chunk intact. Sessions still marked live are from
// before the crash: Open marks them interrupted and seals what the last
// signed checkpoint covers, which is everything up to the last flush; at
// most one FlushInterval of events is lost. A session whose chunks do not
// match its checkpoint, or that should have one and has none, is not
// sealed, and says why. (Sessions that started before the store first
// wrote checkpoints are sealed as they stand, as before.)
//
// # Retention and compaction
//
// [Store.Purge] removes sessions that ended more than Config.Retention ago.
// bbolt never shrinks its file: the freed pages are reused for new data, but
// the file keeps its largest size. To give the space back, stop bastion and
// copy the store into a new file, with [Compact] or the bbolt tool:
//
//	bbolt compact -o recordings.new.db recordings.db && mv recordings.new.db recordings.db
//
// # Caveats
//
// Event data is text: bytes that are not UTF-8 (binary output) are stored as
// U+FFFD, as asciinema does. Sizes beyond what players accept (1000x1000)
// are clamped. Config.SessionByteBudget limits stored event bytes per session;
// past it a truncation marker is written and output is only counted.
package recorder
