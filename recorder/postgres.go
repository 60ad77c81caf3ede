package recorder

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"os"
	"strings"
	"sync"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgconn"
	"github.com/jackc/pgx/v5/pgxpool"
)

// The PostgreSQL backend: one database that several bastion replicas
// share. Each replica keeps a pool of connections and one more that
// listens for notifications (revocations, approval decisions); every value
// the Store writes to bbolt it writes here, byte for byte, in the tables
// the schema (pgschema.go) creates.
//
// Transactions are READ COMMITTED for writes and REPEATABLE READ, READ
// ONLY for reads, so a read sees one moment (a session with its seal and
// checkpoint). The audit chain's tail is one row that an appending
// transaction locks until it commits: records get one order across
// replicas. A replica's liveness is a lease row it renews; the time that
// decides whether a lease expired is the database's, never a replica's
// clock.

// PostgresConfig configures a store kept in PostgreSQL.
type PostgresConfig struct {
	// DSN is a libpq connection string, keywords ("host=db dbname=bastion
	// user=bastion sslmode=verify-full") or a URL (postgres://...).
	// Required. It may hold a password; it is never logged.
	DSN string
	// Name names this replica in sessions' records and logs. Default: the
	// host name.
	Name string
	// Lease is how long this replica's lease lasts without renewal; it is
	// renewed every third of it. When a replica dies, another marks its
	// live sessions interrupted once its lease expired. Default 10s.
	Lease time.Duration
	// Poll is how often a replica reads revocations and waiting approvals
	// when no notification came (notifications make it sooner). Default
	// 500ms.
	Poll time.Duration
	// MaxConns bounds this replica's connection pool (plus one listening
	// connection). Default 16.
	MaxConns int32
	// Timeout bounds each transaction. Default 30s.
	Timeout time.Duration
}

// Defaults for zero PostgresConfig fields.
const (
	DefaultLease    = 10 * time.Second
	DefaultPoll     = 500 * time.Millisecond
	DefaultMaxConns = 16
	DefaultPGTimout = 30 * time.Second
)

func (c PostgresConfig) check() (PostgresConfig, error) {
	if strings.TrimSpace(c.DSN) == "" {
		return c, fmt.Errorf("recorder: config: %w: Postgres.DSN is required", ErrConfig)
	}
	if _, err := pgxpool.ParseConfig(c.DSN); err != nil {
		// pgx's message can quote the DSN, password included: say less.
		return c, fmt.Errorf("recorder: config: %w: Postgres.DSN is not a valid PostgreSQL connection string", ErrConfig)
	}
	if c.Lease < 0 || c.Poll < 0 || c.MaxConns < 0 || c.Timeout < 0 {
		return c, fmt.Errorf("recorder: config: %w: negative Postgres settings", ErrConfig)
	}
	if c.Name == "" {
		c.Name, _ = os.Hostname()
	}
	if c.Lease == 0 {
		c.Lease = DefaultLease
	}
	if c.Lease < 300*time.Millisecond {
		c.Lease = 300 * time.Millisecond
	}
	if c.Poll == 0 {
		c.Poll = DefaultPoll
	}
	if c.MaxConns == 0 {
		c.MaxConns = DefaultMaxConns
	}
	if c.Timeout == 0 {
		c.Timeout = DefaultPGTimout
	}
	return c, nil
}

// pgBackend is a Backend over a PostgreSQL database.
type pgBackend struct {
	cfg     PostgresConfig
	pool    *pgxpool.Pool
	replica string // this replica's ID (a ULID)
	log     *slog.Logger

	listenStop context.CancelFunc
	listenDone chan struct{}
	subsMu     sync.Mutex
	subs       map[string]map[chan struct{}]struct{} // notification topic -> subscribers
}

var _ Backend = (*pgBackend)(nil)

// notification topics on the one channel replicas listen on.
const (
	pgChannel        = "bastion"
	notifyRevocation = "revocation"
	notifyApproval   = "approval:" // + request ID
	notifyApprovals  = "approvals" // any approval: subscribers only, dispatched for every approval:ID
)

// OpenPostgres connects to the database cfg names and brings its schema up
// to date (refusing one newer than this bastion knows), without joining
// the cluster as a replica: for tools such as `bastion store migrate`.
// Stores open it through Config.Postgres.
func OpenPostgres(cfg PostgresConfig) (Backend, error) {
	cfg, err := cfg.check()
	if err != nil {
		return nil, err
	}
	return connectPostgres(cfg, "", slog.New(slog.DiscardHandler))
}

// openPostgres connects, migrates the schema, takes a lease as replica and
// starts listening for notifications.
func openPostgres(cfg PostgresConfig, replica string, log *slog.Logger) (*pgBackend, error) {
	b, err := connectPostgres(cfg, replica, log)
	if err != nil {
		return nil, err
	}
	ctx, cancel := b.ctx()
	defer cancel()
	_, err = b.pool.Exec(ctx, `INSERT INTO bastion_replicas (id, name, started, expires)
		VALUES ($1, $2, now(), now() + $3::bigint * interval '1 microsecond')`,
		replica, cfg.Name, cfg.Lease.Microseconds())
	if err != nil {
		b.pool.Close()
		return nil, fmt.Errorf("recorder: postgres: register replica: %w", err)
	}
	lctx, stop := context.WithCancel(context.Background())
	b.listenStop, b.listenDone = stop, make(chan struct{})
	go b.listen(lctx)
	return b, nil
}

func connectPostgres(cfg PostgresConfig, replica string, log *slog.Logger) (*pgBackend, error) {
	pc, err := pgxpool.ParseConfig(cfg.DSN)
	if err != nil {
		return nil, fmt.Errorf("recorder: config: %w: Postgres.DSN is not a valid PostgreSQL connection string", ErrConfig)
	}
	pc.MaxConns = cfg.MaxConns
	if pc.ConnConfig.RuntimeParams == nil {
		pc.ConnConfig.RuntimeParams = map[string]string{}
	}
	if pc.ConnConfig.RuntimeParams["application_name"] == "" {
		pc.ConnConfig.RuntimeParams["application_name"] = "bastion"
	}
	b := &pgBackend{cfg: cfg, replica: replica, log: log, subs: map[string]map[chan struct{}]struct{}{}}
	ctx, cancel := b.ctx()
	defer cancel()
	b.pool, err = pgxpool.NewWithConfig(ctx, pc)
	if err != nil {
		return nil, fmt.Errorf("recorder: postgres: %w", err)
	}
	if err := b.pool.Ping(ctx); err != nil {
		b.pool.Close()
		return nil, fmt.Errorf("recorder: postgres: connect to %s: %w", pgWhere(pc.ConnConfig), err)
	}
	if err := migrateSchema(ctx, b.pool); err != nil {
		b.pool.Close()
		return nil, err
	}
	return b, nil
}

// pgWhere names a database for messages: host, port and name, never the
// password.
func pgWhere(c *pgx.ConnConfig) string {
	return fmt.Sprintf("%s:%d/%s", c.Host, c.Port, c.Database)
}

func (b *pgBackend) ctx() (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.Background(), b.cfg.Timeout)
}

// Close stops listening and closes the pool.
func (b *pgBackend) Close() error {
	if b.listenStop != nil {
		b.listenStop()
		<-b.listenDone
	}
	b.pool.Close()
	return nil
}

// Update runs fn in a READ COMMITTED transaction, again (up to three
// times) when the database reports a deadlock or a serialization failure.
func (b *pgBackend) Update(fn func(Tx) error) error {
	return b.run(`BEGIN ISOLATION LEVEL READ COMMITTED`, false, fn)
}

// View runs fn in a REPEATABLE READ, READ ONLY transaction.
func (b *pgBackend) View(fn func(Tx) error) error {
	return b.run(`BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY`, true, fn)
}

func (b *pgBackend) run(begin string, readOnly bool, fn func(Tx) error) error {
	for attempt := 0; ; attempt++ {
		err := b.runOnce(begin, readOnly, fn)
		var pe *pgconn.PgError
		if attempt < 2 && errors.As(err, &pe) && (pe.Code == "40001" || pe.Code == "40P01") {
			continue
		}
		return err
	}
}

// runOnce runs fn in one transaction. The transaction's BEGIN goes out with
// its first statements and its COMMIT with its last writes, in the same
// pipelined batch, so an audit batch (spend the tokens, read and lock the
// chain's head, append) costs three round trips instead of five; a
// transaction that sends nothing costs none.
func (b *pgBackend) runOnce(begin string, readOnly bool, fn func(Tx) error) error {
	ctx, cancel := b.ctx()
	defer cancel()
	conn, err := b.pool.Acquire(ctx)
	if err != nil {
		return fmt.Errorf("postgres: begin: %w", err)
	}
	t := &pgTx{b: b, ctx: ctx, conn: conn, begin: begin, readOnly: readOnly}
	defer t.release()
	if err := fn(t); err != nil {
		return err
	}
	if err := t.flush(true); err != nil {
		return err
	}
	for _, f := range t.onCommit {
		f()
	}
	return nil
}

// release rolls back what the transaction left open (after an error) and
// returns the connection to the pool; a connection whose rollback fails is
// closed by the pool instead of being reused.
func (t *pgTx) release() {
	if t.conn.Conn().PgConn().TxStatus() != 'I' && !t.conn.Conn().IsClosed() {
		ctx, cancel := context.WithTimeout(context.Background(), t.b.cfg.Timeout)
		t.conn.Exec(ctx, `ROLLBACK`)
		cancel()
	}
	t.conn.Release()
}

// pgTx is one transaction. Writes whose results are not needed at once are
// queued and sent together (chunks with COPY, the rest as one pipelined
// batch) before the next read and before the commit, so a group commit of
// many sessions costs a few round trips, not one per statement.
type pgTx struct {
	b        *pgBackend
	ctx      context.Context
	conn     *pgxpool.Conn
	begin    string // the BEGIN statement, sent with the first statements
	begun    bool
	readOnly bool
	onCommit []func()

	batch  pgx.Batch
	checks []func(pgconn.CommandTag) error // one per queued statement
	// fences counts the queued statements whose check refuses the
	// transaction (PutSession's fence): those go out and are checked
	// before the COMMIT is sent, never in its batch, since a check that
	// fails after the commit cannot undo what committed with it.
	fences int
	chunks [][]any // rows for COPY into bastion_chunks

	head      *pgHead // the audit tail, read (and locked) once per transaction
	headDirty bool

	// Audit records appended and not yet queued: they go out as one
	// INSERT before the next statement that reads, or the commit.
	auditSeqs []int64
	auditRecs [][]byte
}

type pgHead struct {
	seq  uint64
	hash [hashLen]byte
}

func (t *pgTx) OnCommit(fn func()) { t.onCommit = append(t.onCommit, fn) }

// queue adds a write to the batch; check, if not nil, sees its command tag.
func (t *pgTx) queue(check func(pgconn.CommandTag) error, sql string, args ...any) {
	t.batch.Queue(sql, args...)
	t.checks = append(t.checks, check)
}

// flush sends the queued writes, and at the commit the COMMIT after them;
// before the commit it first writes the audit tail if this transaction
// moved it. A transaction that has sent nothing commits without a round
// trip.
func (t *pgTx) flush(commit bool) error {
	t.queueAudit()
	if commit && t.headDirty {
		t.queue(nil, `UPDATE bastion_audit_head SET seq = $1, hash = $2`, int64(t.head.seq), t.head.hash[:])
		t.headDirty = false
	}
	if len(t.chunks) > 0 {
		// COPY cannot ride in a batch: the transaction begins (with what is
		// queued) first.
		rows := t.chunks
		t.chunks = nil
		if err := t.send(false, nil); err != nil {
			return err
		}
		if _, err := t.conn.CopyFrom(t.ctx, pgx.Identifier{"bastion_chunks"}, []string{"session", "seq", "data"}, pgx.CopyFromRows(rows)); err != nil {
			return fmt.Errorf("postgres: store chunks: %w", err)
		}
	}
	if commit && !t.begun && t.batch.Len() == 0 {
		return nil
	}
	if commit && t.fences > 0 {
		// A fence's check must pass before anything commits: one more
		// round trip, only for a transaction that has a fence still
		// unsent (a flush with no chunks: with chunks, the send before
		// the COPY checked it).
		if err := t.send(false, nil); err != nil {
			return err
		}
	}
	return t.send(commit, nil)
}

// stmt is one statement for send.
func stmt(sql string, args ...any) *pgx.QueuedQuery {
	return &pgx.QueuedQuery{SQL: sql, Arguments: args}
}

// send sends, in one batch: BEGIN if the transaction has not begun, the
// queued writes, then COMMIT if commit, or, if read is not nil, the
// statements qs, whose results read takes from the batch. An error of the
// batch comes first; read's own error (which it wraps itself) after it.
func (t *pgTx) send(commit bool, read func(pgx.BatchResults) error, qs ...*pgx.QueuedQuery) error {
	t.queueAudit()
	if t.begun && t.batch.Len() == 0 && !commit && read == nil {
		return nil
	}
	// The batch results read the batch's queries: hand over a batch of
	// its own, not t.batch, which is reset for the next writes.
	var batch pgx.Batch
	begin := !t.begun
	if begin {
		batch.Queue(t.begin)
		t.begun = true
	}
	batch.QueuedQueries = append(batch.QueuedQueries, t.batch.QueuedQueries...)
	checks := t.checks
	t.batch, t.checks, t.fences = pgx.Batch{}, nil, 0
	if commit {
		batch.Queue(`COMMIT`)
	}
	if read != nil {
		batch.QueuedQueries = append(batch.QueuedQueries, qs...)
	}
	br := t.conn.SendBatch(t.ctx, &batch)
	var first error
	var fenced []error // every fence that refused, so a flush drops them all at once
	keep := func(err error) {
		var fe *fencedError
		if errors.As(err, &fe) {
			fenced = append(fenced, err)
		}
		if err != nil && first == nil {
			first = err
		}
	}
	if begin {
		_, err := br.Exec()
		keep(err)
	}
	for _, check := range checks {
		tag, err := br.Exec()
		if err == nil && check != nil {
			err = check(tag)
		}
		keep(err)
	}
	if commit {
		tag, err := br.Exec()
		if err == nil && tag.String() != "COMMIT" {
			// The COMMIT of a transaction that had failed rolls it back.
			err = fmt.Errorf("commit: the transaction was rolled back (%s)", tag)
		}
		keep(err)
	}
	var readErr error
	if read != nil && first == nil {
		readErr = read(br)
	}
	keep(br.Close())
	if first != nil {
		if errors.Is(first, ErrFenced) {
			if len(fenced) > 1 {
				return errors.Join(fenced...)
			}
			return first
		}
		return fmt.Errorf("postgres: %w", first)
	}
	return readErr
}

// query runs a query after the queued writes, in the same round trip,
// calling fn for each row until fn returns an error.
func (t *pgTx) query(fn func(pgx.Rows) error, sql string, args ...any) error {
	return t.send(false, func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			if err := fn(rows); err != nil {
				return err
			}
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		return nil
	}, stmt(sql, args...))
}

// queryRow runs a query for at most one row after the queued writes,
// scanning it into dest; found is false when there was none.
func (t *pgTx) queryRow(dest []any, sql string, args ...any) (found bool, err error) {
	err = t.send(false, func(br pgx.BatchResults) error {
		err := br.QueryRow().Scan(dest...)
		if errors.Is(err, pgx.ErrNoRows) {
			return nil
		}
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		found = true
		return nil
	}, stmt(sql, args...))
	return found && err == nil, err
}

// exec runs one statement now, after the queued writes.
func (t *pgTx) exec(sql string, args ...any) (pgconn.CommandTag, error) {
	var tag pgconn.CommandTag
	err := t.send(false, func(br pgx.BatchResults) error {
		var err error
		if tag, err = br.Exec(); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		return nil
	}, stmt(sql, args...))
	return tag, err
}

// limitArg is a LIMIT parameter: NULL (no limit) for 0.
func limitArg(limit int) any {
	if limit <= 0 {
		return nil
	}
	return int64(limit)
}

// seqArg maps a sequence to bigint, saturating.
func seqArg(seq uint64) int64 {
	if seq > math.MaxInt64 {
		return math.MaxInt64
	}
	return int64(seq)
}

// Metadata.

func (t *pgTx) Meta(name string) ([]byte, error) {
	var v []byte
	_, err := t.queryRow([]any{&v}, `SELECT value FROM bastion_meta WHERE name = $1`, name)
	return v, err
}

func (t *pgTx) SetMeta(name string, v []byte) error {
	t.queue(nil, `INSERT INTO bastion_meta (name, value) VALUES ($1, $2)
		ON CONFLICT (name) DO UPDATE SET value = EXCLUDED.value`, name, v)
	return nil
}

func (t *pgTx) Metas(fn func(string, []byte) error) error {
	return t.query(func(rows pgx.Rows) error {
		var name string
		var v []byte
		if err := rows.Scan(&name, &v); err != nil {
			return err
		}
		return fn(name, v)
	}, `SELECT name, value FROM bastion_meta ORDER BY name`)
}

// Sessions.

func endNS(info SessionInfo) any {
	if info.Status == StatusLive || info.End.IsZero() {
		return nil
	}
	return info.End.UnixNano()
}

func (t *pgTx) CreateSession(info SessionInfo) error {
	v, err := json.Marshal(info)
	if err != nil {
		return err
	}
	tag, err := t.exec(`INSERT INTO bastion_sessions (id, start_ns, end_ns, user_name, target, kind, status, replica, info)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9) ON CONFLICT (id) DO NOTHING`,
		info.ID, info.Start.UnixNano(), endNS(info), info.User, info.Target, info.Kind, info.Status, info.Replica, v)
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		return ErrExists
	}
	return nil
}

// PutSession updates a session that is live in the store and recorded by
// info.Replica (which a recovery keeps): the fence against a replica that
// lost its lease.
func (t *pgTx) PutSession(info SessionInfo) error {
	v, err := appendSessionJSON(nil, &info)
	if err != nil {
		return err
	}
	id := info.ID
	t.fences++
	t.queue(func(tag pgconn.CommandTag) error {
		if tag.RowsAffected() == 0 {
			return &fencedError{id: id}
		}
		return nil
	}, `UPDATE bastion_sessions SET status = $2, end_ns = $3, info = $4
		WHERE id = $1 AND status = 'live' AND replica = $5`,
		info.ID, info.Status, endNS(info), v, info.Replica)
	return nil
}

func (t *pgTx) Session(id string) (SessionInfo, error) {
	q := `SELECT info FROM bastion_sessions WHERE id = $1`
	if !t.readOnly {
		q += ` FOR UPDATE`
	}
	var v []byte
	found, err := t.queryRow([]any{&v}, q, id)
	if err != nil {
		return SessionInfo{}, err
	}
	if !found {
		v = nil
	}
	return decodeSession(id, v)
}

func (t *pgTx) scanSessions(fn func(SessionInfo) bool, sql string, args ...any) error {
	err := t.query(func(rows pgx.Rows) error {
		var id string
		var v []byte
		if err := rows.Scan(&id, &v); err != nil {
			return err
		}
		info, err := decodeSession(id, v)
		if err != nil {
			return nil // Verify reports it
		}
		if !fn(info) {
			return errStop
		}
		return nil
	}, sql, args...)
	if err == errStop {
		return nil
	}
	return err
}

func (t *pgTx) Sessions(f SessionFilter, fn func(SessionInfo) bool) error {
	since := int64(math.MinInt64)
	if !f.Since.IsZero() {
		since = f.Since.UnixNano()
	}
	if f.ByActor {
		// The actor is in the record's JSON only (no column: records
		// written before it was stored stay as they are): filtered here,
		// and the limit is the caller's, counting what fn is given.
		f.Limit = 0
		next := fn
		fn = func(info SessionInfo) bool { return !f.match(info) || next(info) }
	}
	return t.scanSessions(fn, `SELECT id, info FROM bastion_sessions
		WHERE start_ns >= $1 AND ($2 = '' OR user_name = $2) AND ($3 = '' OR target = $3) AND ($4 = '' OR kind = $4)
		ORDER BY start_ns DESC, id DESC LIMIT $5`,
		since, f.User, f.Target, f.Kind, limitArg(f.Limit))
}

func (t *pgTx) Orphans() ([]SessionInfo, error) {
	var out []SessionInfo
	err := t.scanSessions(func(info SessionInfo) bool {
		out = append(out, info)
		return true
	}, `SELECT s.id, s.info FROM bastion_sessions s
		WHERE s.status = 'live' AND NOT EXISTS (
			SELECT 1 FROM bastion_replicas r WHERE r.id = s.replica AND r.expires > now())
		ORDER BY s.start_ns`)
	return out, err
}

func (t *pgTx) Ended(before time.Time, fn func(SessionInfo) bool) error {
	return t.scanSessions(fn, `SELECT id, info FROM bastion_sessions
		WHERE status <> 'live' AND end_ns < $1 ORDER BY start_ns, id`, before.UnixNano())
}

func (t *pgTx) DeleteSession(info SessionInfo) (int, error) {
	tag, err := t.exec(`DELETE FROM bastion_chunks WHERE session = $1`, info.ID)
	if err != nil {
		return 0, err
	}
	for _, q := range []string{
		`DELETE FROM bastion_seals WHERE session = $1`,
		`DELETE FROM bastion_session_checkpoints WHERE session = $1`,
		`DELETE FROM bastion_sessions WHERE id = $1`,
	} {
		t.queue(nil, q, info.ID)
	}
	return int(tag.RowsAffected()), nil
}

// Chunks, checkpoints, seals.

func (t *pgTx) PutChunks(id string, first uint64, values [][]byte) error {
	for i, v := range values {
		t.chunks = append(t.chunks, []any{id, int64(first) + int64(i), v})
	}
	return nil
}

func (t *pgTx) Chunks(id string, from uint64, limit int, fn func(uint64, []byte) error) error {
	return t.query(func(rows pgx.Rows) error {
		var seq int64
		var v []byte
		if err := rows.Scan(&seq, &v); err != nil {
			return err
		}
		return fn(uint64(seq), v)
	}, `SELECT seq, data FROM bastion_chunks WHERE session = $1 AND seq >= $2 ORDER BY seq LIMIT $3`,
		id, seqArg(from), limitArg(limit))
}

func (t *pgTx) PutCheckpoint(id string, note []byte) error {
	t.queue(nil, `INSERT INTO bastion_session_checkpoints (session, note) VALUES ($1, $2)
		ON CONFLICT (session) DO UPDATE SET note = EXCLUDED.note`, id, note)
	return nil
}

func (t *pgTx) Checkpoint(id string) ([]byte, error) {
	var v []byte
	_, err := t.queryRow([]any{&v}, `SELECT note FROM bastion_session_checkpoints WHERE session = $1`, id)
	return v, err
}

func (t *pgTx) PutSeal(id string, seal []byte) error {
	t.queue(nil, `INSERT INTO bastion_seals (session, seal) VALUES ($1, $2)
		ON CONFLICT (session) DO UPDATE SET seal = EXCLUDED.seal`, id, seal)
	return nil
}

func (t *pgTx) Seal(id string) ([]byte, error) {
	var v []byte
	_, err := t.queryRow([]any{&v}, `SELECT seal FROM bastion_seals WHERE session = $1`, id)
	return v, err
}

// Audit.

func (t *pgTx) AuditTail() (uint64, [hashLen]byte, error) {
	if t.head != nil {
		return t.head.seq, t.head.hash, nil
	}
	var seq int64
	var hash []byte
	found, err := t.queryRow([]any{&seq, &hash}, t.headQuery())
	if err != nil {
		return 0, [hashLen]byte{}, err
	}
	if err := t.setHead(found, seq, hash); err != nil {
		return 0, [hashLen]byte{}, err
	}
	return t.head.seq, t.head.hash, nil
}

// headQuery reads the audit chain's head, and locks it in a transaction
// that may write: the chain is ours until the commit.
func (t *pgTx) headQuery() string {
	if t.readOnly {
		return `SELECT seq, hash FROM bastion_audit_head`
	}
	return `SELECT seq, hash FROM bastion_audit_head FOR UPDATE`
}

// setHead keeps the head headQuery read.
func (t *pgTx) setHead(found bool, seq int64, hash []byte) error {
	if !found || len(hash) != hashLen || seq < 0 {
		return fmt.Errorf("%w: the audit chain's head row is missing or malformed", ErrSchema)
	}
	t.head = &pgHead{seq: uint64(seq), hash: [hashLen]byte(hash)}
	return nil
}

func (t *pgTx) AppendAudit(seq uint64, hash [hashLen]byte, record []byte) error {
	if t.head == nil || seq != t.head.seq+1 {
		return errors.New("postgres: audit record appended without its tail")
	}
	t.auditSeqs, t.auditRecs = append(t.auditSeqs, int64(seq)), append(t.auditRecs, record)
	t.head.seq, t.head.hash, t.headDirty = seq, hash, true
	return nil
}

// queueAudit queues the audit records appended since the last statement
// went out as one INSERT: an audit batch of many certificates or
// statements costs the server one statement, not one per record.
func (t *pgTx) queueAudit() {
	switch len(t.auditSeqs) {
	case 0:
		return
	case 1:
		t.queue(nil, `INSERT INTO bastion_audit (seq, record) VALUES ($1, $2)`, t.auditSeqs[0], t.auditRecs[0])
	default:
		n := len(t.auditSeqs)
		t.queue(func(tag pgconn.CommandTag) error {
			if tag.RowsAffected() != int64(n) {
				return fmt.Errorf("audit append: %d of %d records inserted", tag.RowsAffected(), n)
			}
			return nil
		}, `INSERT INTO bastion_audit (seq, record) SELECT * FROM unnest($1::bigint[], $2::bytea[])`, t.auditSeqs, t.auditRecs)
	}
	t.auditSeqs, t.auditRecs = nil, nil
}

func (t *pgTx) Audit(from uint64, limit int, fn func(uint64, []byte) error) error {
	return t.query(func(rows pgx.Rows) error {
		var seq int64
		var v []byte
		if err := rows.Scan(&seq, &v); err != nil {
			return err
		}
		return fn(uint64(seq), v)
	}, `SELECT seq, record FROM bastion_audit WHERE seq >= $1 ORDER BY seq LIMIT $2`, seqArg(from), limitArg(limit))
}

func (t *pgTx) PutAuditCheckpoint(seq uint64, signed []byte) error {
	t.queue(nil, `INSERT INTO bastion_audit_checkpoints (seq, signed) VALUES ($1, $2)
		ON CONFLICT (seq) DO UPDATE SET signed = EXCLUDED.signed`, int64(seq), signed)
	return nil
}

func (t *pgTx) AuditCheckpoints(from, to uint64, fn func(uint64, []byte) error) error {
	return t.query(func(rows pgx.Rows) error {
		var seq int64
		var v []byte
		if err := rows.Scan(&seq, &v); err != nil {
			return err
		}
		return fn(uint64(seq), v)
	}, `SELECT seq, signed FROM bastion_audit_checkpoints WHERE seq BETWEEN $1 AND $2 ORDER BY seq`, seqArg(from), seqArg(to))
}

// One-time tokens.
//
// Whether a spent token's key has expired is the database's clock, never a
// replica's: a key is swept only a minute after the database's clock passed
// its expiry, and a key whose expiry that clock has passed is not spent
// (reported as a replay). Otherwise a replica whose clock lags would take a
// token for unexpired after a replica on time swept its key as expired,
// and sell it again.

// pgNowNS is the database's clock, in Unix nanoseconds.
const pgNowNS = `(extract(epoch FROM clock_timestamp()) * 1000000000)::bigint`

// SpendToken inserts the key, or takes over an expired one. Two replicas
// spending the same key at once: the second waits for the first's commit
// on the key's index entry, then finds it unexpired, and reports a replay.
// now is not read: the database's clock decides (above).
func (t *pgTx) SpendToken(key []byte, expires, now time.Time) (bool, error) {
	if !expires.After(now) {
		expires = now.Add(time.Minute)
	}
	var one int
	found, err := t.queryRow([]any{&one}, `INSERT INTO bastion_used_tokens (key, expires_ns) SELECT $1::bytea, $2::bigint WHERE $2::bigint > `+pgNowNS+`
		ON CONFLICT (key) DO UPDATE SET expires_ns = EXCLUDED.expires_ns WHERE bastion_used_tokens.expires_ns <= `+pgNowNS+`
		RETURNING 1`, key, expires.UnixNano())
	return found, err
}

// SpendTokens spends several distinct keys in one statement (one round
// trip for an audit batch's tokens instead of one each) and reports which
// were spent; the others are replays. Keys must be distinct: one statement
// cannot take the same row twice. An audit batch appends to the chain
// next, so the chain's head is read (and locked) in the same round trip,
// after the tokens, in the order the batch would take them anyway.
func (t *pgTx) SpendTokens(keys [][]byte, expires []int64, now time.Time) ([]bool, error) {
	spent := make(map[string]bool, len(keys))
	qs := []*pgx.QueuedQuery{stmt(`INSERT INTO bastion_used_tokens (key, expires_ns)
		SELECT k, e FROM unnest($1::bytea[], $2::bigint[]) AS u(k, e) WHERE e > `+pgNowNS+`
		ON CONFLICT (key) DO UPDATE SET expires_ns = EXCLUDED.expires_ns WHERE bastion_used_tokens.expires_ns <= `+pgNowNS+`
		RETURNING key`, keys, expires)}
	withHead := t.head == nil && !t.readOnly
	if withHead {
		qs = append(qs, stmt(t.headQuery()))
	}
	err := t.send(false, func(br pgx.BatchResults) error {
		rows, err := br.Query()
		if err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		for rows.Next() {
			var k []byte
			if err := rows.Scan(&k); err != nil {
				rows.Close()
				return fmt.Errorf("postgres: %w", err)
			}
			spent[string(k)] = true
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("postgres: %w", err)
		}
		if !withHead {
			return nil
		}
		var seq int64
		var hash []byte
		err = br.QueryRow().Scan(&seq, &hash)
		if err != nil && !errors.Is(err, pgx.ErrNoRows) {
			return fmt.Errorf("postgres: %w", err)
		}
		return t.setHead(err == nil, seq, hash)
	}, qs...)
	if err != nil {
		return nil, err
	}
	ok := make([]bool, len(keys))
	for i, k := range keys {
		ok[i] = spent[string(k)]
	}
	return ok, nil
}

// tokenSweepMargin is how long after the database's clock passed a key's
// expiry the sweep keeps it: a spend whose statement began before that
// moment (and so let the key through as unexpired) cannot find it gone.
// A variable for tests.
var tokenSweepMargin = time.Minute

// ForgetTokens sweeps keys by the database's clock (above); now is not read.
func (t *pgTx) ForgetTokens(now time.Time, full *bool) error {
	t.queue(func(tag pgconn.CommandTag) error {
		*full = tag.RowsAffected() == int64(tokenSweepBatch)
		return nil
	}, `DELETE FROM bastion_used_tokens WHERE key IN (
		SELECT key FROM bastion_used_tokens WHERE expires_ns <= `+pgNowNS+` - $1 LIMIT $2)`, int64(tokenSweepMargin), tokenSweepBatch)
	return nil
}

// Revocations and pins.

func (t *pgTx) Revoke(r Revocation) (bool, error) {
	v, err := json.Marshal(r)
	if err != nil {
		return false, err
	}
	tag, err := t.exec(`INSERT INTO bastion_revocations (serial, revocation) VALUES ($1, $2) ON CONFLICT (serial) DO NOTHING`,
		int64(r.Serial), v)
	return err == nil && tag.RowsAffected() == 1, err
}

func (t *pgTx) Revocations(fn func(Revocation) error) error {
	return t.query(func(rows pgx.Rows) error {
		var serial int64
		var v []byte
		if err := rows.Scan(&serial, &v); err != nil {
			return err
		}
		var rev Revocation
		if err := json.Unmarshal(v, &rev); err != nil {
			return fmt.Errorf("%w: revocation %d is unreadable", ErrBroken, uint64(serial))
		}
		return fn(rev)
	}, `SELECT serial, revocation FROM bastion_revocations ORDER BY serial`)
}

func (t *pgTx) RevokeUser(r Revocation) error {
	v, err := json.Marshal(r)
	if err != nil {
		return err
	}
	// Keep the later revocation: replicas' clocks differ a little.
	_, err = t.exec(`INSERT INTO bastion_user_revocations (user_name, time_ns, revocation) VALUES ($1, $2, $3)
ON CONFLICT (user_name) DO UPDATE SET time_ns = EXCLUDED.time_ns, revocation = EXCLUDED.revocation
WHERE bastion_user_revocations.time_ns < EXCLUDED.time_ns`, r.User, r.Time.UnixNano(), v)
	return err
}

func (t *pgTx) UserRevocations(fn func(Revocation) error) error {
	return t.query(func(rows pgx.Rows) error {
		var user string
		var v []byte
		if err := rows.Scan(&user, &v); err != nil {
			return err
		}
		var rev Revocation
		if err := json.Unmarshal(v, &rev); err != nil || rev.User != user {
			return fmt.Errorf("%w: the revocation of user %q is unreadable", ErrBroken, user)
		}
		return fn(rev)
	}, `SELECT user_name, revocation FROM bastion_user_revocations ORDER BY user_name`)
}

func (t *pgTx) HostKey(target string) ([]byte, error) {
	var v []byte
	_, err := t.queryRow([]any{&v}, `SELECT key FROM bastion_host_keys WHERE target = $1`, target)
	return v, err
}

func (t *pgTx) HostKeys(fn func(string, []byte) error) error {
	return t.query(func(rows pgx.Rows) error {
		var target string
		var v []byte
		if err := rows.Scan(&target, &v); err != nil {
			return err
		}
		return fn(target, v)
	}, `SELECT target, key FROM bastion_host_keys ORDER BY target`)
}

func (t *pgTx) PinHostKey(target string, key []byte) ([]byte, error) {
	tag, err := t.exec(`INSERT INTO bastion_host_keys (target, key) VALUES ($1, $2) ON CONFLICT (target) DO NOTHING`, target, key)
	if err != nil || tag.RowsAffected() == 1 {
		return nil, err
	}
	return t.HostKey(target)
}

// Notifications: one listening connection per replica; subscribers get a
// value (coalesced, never blocking) when their topic is notified. A
// notification is a hint: subscribers read the tables, and poll too.

// subscribe returns a channel for topic and a function that unsubscribes.
func (b *pgBackend) subscribe(topic string) (<-chan struct{}, func()) {
	ch := make(chan struct{}, 1)
	b.subsMu.Lock()
	if b.subs[topic] == nil {
		b.subs[topic] = map[chan struct{}]struct{}{}
	}
	b.subs[topic][ch] = struct{}{}
	b.subsMu.Unlock()
	return ch, func() {
		b.subsMu.Lock()
		delete(b.subs[topic], ch)
		if len(b.subs[topic]) == 0 {
			delete(b.subs, topic)
		}
		b.subsMu.Unlock()
	}
}

func (b *pgBackend) dispatch(topic string) {
	b.subsMu.Lock()
	defer b.subsMu.Unlock()
	topics := []string{topic}
	if strings.HasPrefix(topic, notifyApproval) {
		topics = append(topics, notifyApprovals)
	}
	for _, t := range topics {
		for ch := range b.subs[t] {
			select {
			case ch <- struct{}{}:
			default:
			}
		}
	}
}

// notify tells every replica (this one included, through its listener)
// that topic changed. It is best effort: the others poll.
func (b *pgBackend) notify(topic, arg string) {
	ctx, cancel := b.ctx()
	defer cancel()
	if _, err := b.pool.Exec(ctx, `SELECT pg_notify($1, $2)`, pgChannel, topic+arg); err != nil {
		b.log.Warn("recorder: postgres notify failed; other replicas will poll", "topic", topic, "err", err)
	}
}

// listen holds a connection that LISTENs and dispatches notifications,
// reconnecting with a backoff when it breaks.
func (b *pgBackend) listen(ctx context.Context) {
	defer close(b.listenDone)
	backoff := 100 * time.Millisecond
	for ctx.Err() == nil {
		err := b.listenOnce(ctx)
		if ctx.Err() != nil {
			return
		}
		b.log.Warn("recorder: postgres listener lost its connection; polling until it is back", "err", err)
		select {
		case <-ctx.Done():
			return
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

func (b *pgBackend) listenOnce(ctx context.Context) error {
	cc := b.pool.Config().ConnConfig
	cctx, cancel := context.WithTimeout(ctx, b.cfg.Timeout)
	conn, err := pgx.ConnectConfig(cctx, cc)
	cancel()
	if err != nil {
		return err
	}
	defer conn.Close(context.Background())
	if _, err := conn.Exec(ctx, "LISTEN "+pgChannel); err != nil {
		return err
	}
	// Whatever happened while we were not listening: wake everyone to
	// read the tables.
	b.subsMu.Lock()
	topics := make([]string, 0, len(b.subs))
	for topic := range b.subs {
		topics = append(topics, topic)
	}
	b.subsMu.Unlock()
	for _, topic := range topics {
		b.dispatch(topic)
	}
	for {
		n, err := conn.WaitForNotification(ctx)
		if err != nil {
			return err
		}
		b.dispatch(n.Payload)
	}
}

// Leases.

// renew extends this replica's lease; when the row is gone (others took it
// for dead), it registers again: its old sessions were taken over and are
// fenced, new ones are its own.
func (b *pgBackend) renew() error {
	ctx, cancel := b.ctx()
	defer cancel()
	tag, err := b.pool.Exec(ctx, `UPDATE bastion_replicas SET expires = now() + $2::bigint * interval '1 microsecond' WHERE id = $1`,
		b.replica, b.cfg.Lease.Microseconds())
	if err != nil {
		return err
	}
	if tag.RowsAffected() == 0 {
		b.log.Error("recorder: this replica's lease had expired and was taken over; its live sessions were marked interrupted", "replica", b.replica)
		_, err = b.pool.Exec(ctx, `INSERT INTO bastion_replicas (id, name, started, expires)
			VALUES ($1, $2, now(), now() + $3::bigint * interval '1 microsecond') ON CONFLICT (id) DO NOTHING`,
			b.replica, b.cfg.Name, b.cfg.Lease.Microseconds())
	}
	return err
}

// reap forgets replicas whose lease expired and that have no live session
// left (recoverOrphans took them over first), and approval requests of
// replicas that are gone (their sessions ended with them) or decided a day
// ago.
func (b *pgBackend) reap() error {
	ctx, cancel := b.ctx()
	defer cancel()
	_, err := b.pool.Exec(ctx, `DELETE FROM bastion_replicas r WHERE r.expires < now() AND NOT EXISTS (
		SELECT 1 FROM bastion_sessions s WHERE s.status = 'live' AND s.replica = r.id)`)
	if err != nil {
		return err
	}
	_, err = b.pool.Exec(ctx, `DELETE FROM bastion_approvals a
		WHERE (a.outcome IS NULL AND NOT EXISTS (SELECT 1 FROM bastion_replicas r WHERE r.id = a.replica))
		   OR a.decided_at < now() - interval '1 day'`)
	return err
}

// leave gives up this replica's lease: called when nothing of it is live.
func (b *pgBackend) leave() {
	if b.replica == "" {
		return
	}
	ctx, cancel := b.ctx()
	defer cancel()
	if _, err := b.pool.Exec(ctx, `DELETE FROM bastion_replicas WHERE id = $1`, b.replica); err != nil {
		b.log.Warn("recorder: postgres: give up the lease", "err", err)
	}
}

// Replica is a bastion replica sharing a PostgreSQL store.
type Replica struct {
	ID      string    `json:"id"`
	Name    string    `json:"name"`
	Started time.Time `json:"started"`
	Expires time.Time `json:"expires"`
	Self    bool      `json:"self,omitempty"`
}

// Replicas lists the replicas holding a lease (and those whose lease
// expired but whose sessions are not taken over yet), oldest first; nil
// with bbolt.
func (s *Store) Replicas() ([]Replica, error) {
	if s.pg == nil {
		return nil, nil
	}
	ctx, cancel := s.pg.ctx()
	defer cancel()
	rows, err := s.pg.pool.Query(ctx, `SELECT id, name, started, expires FROM bastion_replicas ORDER BY started`)
	if err != nil {
		return nil, fmt.Errorf("recorder: replicas: %w", err)
	}
	out, err := pgx.CollectRows(rows, func(row pgx.CollectableRow) (Replica, error) {
		var r Replica
		err := row.Scan(&r.ID, &r.Name, &r.Started, &r.Expires)
		r.Self = r.ID == s.replica
		return r, err
	})
	if err != nil {
		return nil, fmt.Errorf("recorder: replicas: %w", err)
	}
	return out, nil
}

// ReplicaID is this replica's ID in a shared store ("" with bbolt).
func (s *Store) ReplicaID() string { return s.replica }

// Audit sinks. Each sink is shipped by one replica at a time, its holder: a
// row in bastion_sinks naming the replica and the last record delivered.
// A replica claims a sink when nobody holds it, or when its holder's lease
// expired (the holder died or lost the database), and only while its own
// lease is valid; it claims again before every batch (a holder stays the
// holder) and moves the cursor only while it still holds the sink, so a
// replica that lost its lease cannot move back a cursor its successor
// moved on. A sink a replica never held starts from the cursor a bbolt
// store kept for it (copied by Migrate), else from the start.

// errSinkLost is what moving a sink's cursor returns when this replica no
// longer holds the sink.
var errSinkLost = errors.New("another replica ships to this sink now")

const claimSinkSQL = `INSERT INTO bastion_sinks AS s (name, holder, delivered)
	SELECT $1, $2, COALESCE((SELECT ('x' || encode(value, 'hex'))::bit(64)::bigint FROM bastion_meta
		WHERE name = 'sink:' || $1 AND length(value) = 8), 0)
	WHERE EXISTS (SELECT 1 FROM bastion_replicas WHERE id = $2 AND expires > now())
	ON CONFLICT (name) DO UPDATE SET holder = EXCLUDED.holder
	WHERE s.holder IS NULL OR s.holder = EXCLUDED.holder
	   OR NOT EXISTS (SELECT 1 FROM bastion_replicas r WHERE r.id = s.holder AND r.expires > now())
	RETURNING s.delivered`

// claimSink makes this replica the sink's holder if it may be, and returns
// the last record delivered to it; false while another replica holds it.
func (b *pgBackend) claimSink(name string) (uint64, bool, error) {
	ctx, cancel := b.ctx()
	defer cancel()
	var delivered int64
	err := b.pool.QueryRow(ctx, claimSinkSQL, name, b.replica).Scan(&delivered)
	if errors.Is(err, pgx.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("recorder: claim audit sink %s: %w", name, err)
	}
	return uint64(delivered), true, nil
}

// setSinkCursor moves the sink's cursor forward while this replica holds
// the sink (with a valid lease): errSinkLost otherwise.
func (b *pgBackend) setSinkCursor(name string, seq uint64) error {
	ctx, cancel := b.ctx()
	defer cancel()
	tag, err := b.pool.Exec(ctx, `UPDATE bastion_sinks SET delivered = $3
		WHERE name = $1 AND holder = $2 AND delivered <= $3
		  AND EXISTS (SELECT 1 FROM bastion_replicas WHERE id = $2 AND expires > now())`, name, b.replica, seqArg(seq))
	if err != nil {
		return fmt.Errorf("recorder: save audit sink %s's cursor: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("recorder: audit sink %s: %w", name, errSinkLost)
	}
	return nil
}

// resetSinkCursor moves the cursor back from from to to, while this
// replica holds the sink and the cursor is still at from.
func (b *pgBackend) resetSinkCursor(name string, from, to uint64) error {
	ctx, cancel := b.ctx()
	defer cancel()
	tag, err := b.pool.Exec(ctx, `UPDATE bastion_sinks SET delivered = $4
		WHERE name = $1 AND holder = $2 AND delivered = $3
		  AND EXISTS (SELECT 1 FROM bastion_replicas WHERE id = $2 AND expires > now())`, name, b.replica, seqArg(from), seqArg(to))
	if err != nil {
		return fmt.Errorf("recorder: reset audit sink %s's cursor: %w", name, err)
	}
	if tag.RowsAffected() == 0 {
		return fmt.Errorf("recorder: audit sink %s: %w", name, errSinkLost)
	}
	return nil
}

// releaseSink gives the sink up, for another replica to claim at once.
func (b *pgBackend) releaseSink(name string) error {
	ctx, cancel := b.ctx()
	defer cancel()
	_, err := b.pool.Exec(ctx, `UPDATE bastion_sinks SET holder = NULL WHERE name = $1 AND holder = $2`, name, b.replica)
	if err != nil {
		return fmt.Errorf("recorder: release audit sink %s: %w", name, err)
	}
	return nil
}

// sinkCursor returns the last record delivered to the sink and the replica
// holding it ("" when none).
func (b *pgBackend) sinkCursor(name string) (uint64, string, error) {
	ctx, cancel := b.ctx()
	defer cancel()
	var delivered int64
	var holder *string
	err := b.pool.QueryRow(ctx, `SELECT delivered, holder FROM bastion_sinks WHERE name = $1`, name).Scan(&delivered, &holder)
	if errors.Is(err, pgx.ErrNoRows) {
		err = b.pool.QueryRow(ctx, `SELECT COALESCE((SELECT ('x' || encode(value, 'hex'))::bit(64)::bigint FROM bastion_meta
			WHERE name = 'sink:' || $1 AND length(value) = 8), 0)`, name).Scan(&delivered)
	}
	if err != nil {
		return 0, "", fmt.Errorf("recorder: audit sink %s's cursor: %w", name, err)
	}
	if holder == nil {
		return uint64(delivered), "", nil
	}
	return uint64(delivered), *holder, nil
}
