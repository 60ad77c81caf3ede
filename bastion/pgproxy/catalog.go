package pgproxy

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/jackc/pgx/v5/pgconn"
)

// relInfo is a relation as the server's catalog describes it.
type relInfo struct {
	OID    uint32 `json:"oid"`
	Schema string `json:"schema"`
	Name   string `json:"name"`
	// Kind is pg_class.relkind: r table, p partitioned table, v view, m materialized
	// view, f foreign table, S sequence.
	Kind string `json:"kind"`
	// Cols are the attribute names by attnum-1; "" for a dropped column.
	Cols []string `json:"cols"`
	// Def is a view's or materialized view's defining query (pg_get_viewdef).
	Def string `json:"def"`
	// Ancestors are the relations it inherits from (a partition's parents), as
	// [schema, name] pairs: their column masks apply to its columns.
	Ancestors [][2]string `json:"ancestors"`
	// Descendants are the relations that inherit from it (its partitions): a query of
	// it reads their rows, so their column masks apply to its columns too.
	Descendants [][2]string `json:"descendants"`
}

// funcInfo is one function of a name.
type funcInfo struct {
	Schema string `json:"schema"`
	Name   string `json:"name"`
	Lang   string `json:"lang"`
	Kind   string `json:"kind"` // pg_proc.prokind: f, p, a, w
	// Def is the CREATE FUNCTION statement (pg_get_functiondef) of a sql or plpgsql
	// function outside pg_catalog and information_schema.
	Def string `json:"def"`
}

// hookInfo is a function the server calls without the statement naming it: the function
// of an operator (Kind "o", Key the operator's name), of a cast (Kind "c", Key the target
// type's name or the name of a domain over it, Ctx pg_cast.castcontext: e explicit, a
// assignment, i implicit), or one an object calls implicitly (Kind "i": a domain's or
// table's CHECK constraint, a column default, a row security policy, an index
// expression, an operator class's support function or operator). Only functions outside
// PostgreSQL's own schemas and outside extensions are listed.
type hookInfo struct {
	Kind   string `json:"kind"`
	Key    string `json:"key"`
	Ctx    string `json:"ctx"`
	Schema string `json:"schema"` // the function's
	Name   string `json:"name"`
}

// hookReader is a catalogReader that also lists hooks (the side catalog does; a catalog
// that does not has none).
type hookReader interface {
	hooks(ctx context.Context) ([]*hookInfo, error)
}

// catalogReader answers the lineage analysis's questions about relations and functions.
// Names are exact (as the parser folded them); schema "" means any schema.
type catalogReader interface {
	relations(ctx context.Context, schema string, names []string) ([]*relInfo, error)
	relationByOID(ctx context.Context, oid uint32) (*relInfo, error)
	functions(ctx context.Context, names []string) ([]*funcInfo, error)
}

// sideCatalog reads the catalog over a connection of its own to the server, opened on
// first use with the session's credentials (the same user and database), so the
// client's transaction, errors and settings never interfere. It sets search_path to
// pg_catalog, so view and function definitions come back with every other name
// schema-qualified. Answers are cached per session for maxAge, and dropped when the
// session changes the schema (invalidate). Each cached answer carries a digest of what
// the server answered (ver); before each statement is analysed, revalidate asks the
// server for the digests of every cached answer again, in one query, and drops the
// cache when any differs: another session's CREATE OR REPLACE FUNCTION, CREATE OR
// REPLACE VIEW, RENAME, or a new function of a cached name is seen at the next
// statement, not after maxAge. Safe for concurrent use.
type sideCatalog struct {
	dial   func(ctx context.Context) (*pgconn.PgConn, error)
	now    func() time.Time
	maxAge time.Duration

	mu      sync.Mutex
	conn    *pgconn.PgConn
	openErr error
	closed  bool
	rels    map[string]cached[[]*relInfo] // "name" -> every relation of that name
	byOID   map[uint32]cached[*relInfo]
	funcs   map[string]cached[[]*funcInfo]
	views   map[uint32]viewEntry // analysed view columns, by view OID
	hooksC  *cached[[]*hookInfo] // nil until read
	// gen changes whenever an answer may differ from the last one: a query to the
	// server (a miss, a refresh or an error) or invalidate. An analysis that ran with
	// gen unchanged used only cached answers (see session.lineageMemo).
	gen uint64
	// validated is when revalidate last asked the server, at definitions epoch
	// epoch (see definitionsEpoch).
	validated time.Time
	epoch     uint64
}

// definitionsEpoch counts, for the whole process, the moments a proxied session may
// have changed a definition the lineage reads: when a statement that may change one is
// analysed (session.markSuspect), and when such a session's transaction ends
// (lineageReady). A session's catalog asks the server whether its cached answers still
// hold (revalidate) when the epoch moved since it last asked, and at least every
// revalidateEvery for changes made elsewhere (another replica, a direct connection);
// asking before every statement cost a round trip on the side connection each time
// (pgbench -S: 0.05x).
var definitionsEpoch atomic.Uint64

// revalidateEvery bounds how long a change made outside this process (another
// replica, a connection not through the bastion) goes unseen by a session's catalog.
const revalidateEvery = time.Second

type cached[T any] struct {
	v   T
	at  time.Time
	ver string // the server's digest of the answer (see revalidate)
}

// catalogMaxAge bounds how long a cached answer is used: the schema can change under
// the session (another session's DDL), and the cache must catch up.
const catalogMaxAge = 30 * time.Second

// catalogTimeout bounds each catalog query.
const catalogTimeout = 15 * time.Second

func newSideCatalog(dial func(ctx context.Context) (*pgconn.PgConn, error), now func() time.Time) *sideCatalog {
	return &sideCatalog{dial: dial, now: now, maxAge: catalogMaxAge,
		rels: map[string]cached[[]*relInfo]{}, byOID: map[uint32]cached[*relInfo]{},
		funcs: map[string]cached[[]*funcInfo]{}, views: map[uint32]viewEntry{}}
}

// invalidate forgets every cached answer (the session changed the schema).
func (c *sideCatalog) invalidate() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.invalidateLocked()
}

func (c *sideCatalog) invalidateLocked() {
	c.gen++
	clear(c.rels)
	clear(c.byOID)
	clear(c.funcs)
	clear(c.views)
	c.hooksC = nil
}

// close closes the side connection; later queries fail.
func (c *sideCatalog) close() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	if c.conn != nil {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		defer cancel()
		_ = c.conn.Close(ctx)
		c.conn = nil
	}
}

// generation returns gen and, when all is true, until when every cached answer is
// fresh (an analysis from these answers holds no longer than the oldest of them would
// be used).
func (c *sideCatalog) generation(all bool) (gen uint64, until time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !all {
		return c.gen, time.Time{}
	}
	until = c.now().Add(c.maxAge)
	oldest := func(at time.Time) {
		if t := at.Add(c.maxAge); t.Before(until) {
			until = t
		}
	}
	for _, e := range c.rels {
		oldest(e.at)
	}
	for _, e := range c.byOID {
		oldest(e.at)
	}
	for _, e := range c.funcs {
		oldest(e.at)
	}
	if c.hooksC != nil {
		oldest(c.hooksC.at)
	}
	return c.gen, until
}

func (c *sideCatalog) fresh(at time.Time) bool {
	return c.now().Sub(at) < c.maxAge
}

// query runs one catalog query returning a single JSON value. Called with c.mu held.
func (c *sideCatalog) query(ctx context.Context, sql string, args ...string) ([]byte, error) {
	c.gen++
	return c.roundTrip(ctx, sql, args...)
}

// roundTrip is query without changing gen (revalidate, which changes gen only when it
// finds an answer changed). Called with c.mu held.
func (c *sideCatalog) roundTrip(ctx context.Context, sql string, args ...string) ([]byte, error) {
	if c.closed {
		return nil, errors.New("the session has ended")
	}
	if c.conn == nil {
		if c.openErr != nil {
			return nil, c.openErr
		}
		conn, err := c.dial(ctx)
		if err != nil {
			// Not retried: every statement would wait for the same failure.
			c.openErr = fmt.Errorf("cannot read the catalog: %w", err)
			return nil, c.openErr
		}
		c.conn = conn
	}
	ctx, cancel := context.WithTimeout(ctx, catalogTimeout)
	defer cancel()
	params := make([][]byte, len(args))
	for i, a := range args {
		params[i] = []byte(a)
	}
	res := c.conn.ExecParams(ctx, sql, params, nil, nil, nil).Read()
	if res.Err != nil {
		if c.conn.IsClosed() {
			c.conn = nil
		}
		return nil, fmt.Errorf("reading the catalog: %w", res.Err)
	}
	if len(res.Rows) != 1 || len(res.Rows[0]) != 1 {
		return nil, errors.New("reading the catalog: unexpected answer")
	}
	return res.Rows[0][0], nil
}

const relationColumns = `
  SELECT c.oid::int8 AS oid, n.nspname AS schema, c.relname AS name, c.relkind AS kind,
    (SELECT coalesce(json_agg(CASE WHEN a.attisdropped THEN '' ELSE a.attname::text END ORDER BY a.attnum), '[]')
       FROM pg_attribute a WHERE a.attrelid = c.oid AND a.attnum > 0) AS cols,
    CASE WHEN c.relkind IN ('v', 'm') THEN pg_get_viewdef(c.oid) END AS def,
    (WITH RECURSIVE anc(oid) AS (
        SELECT i.inhparent FROM pg_inherits i WHERE i.inhrelid = c.oid
        UNION SELECT i.inhparent FROM pg_inherits i JOIN anc ON i.inhrelid = anc.oid)
     SELECT coalesce(json_agg(json_build_array(an.nspname, ac.relname)), '[]')
       FROM anc JOIN pg_class ac ON ac.oid = anc.oid JOIN pg_namespace an ON an.oid = ac.relnamespace) AS ancestors,
    (WITH RECURSIVE des(oid) AS (
        SELECT i.inhrelid FROM pg_inherits i WHERE i.inhparent = c.oid
        UNION SELECT i.inhrelid FROM pg_inherits i JOIN des ON i.inhparent = des.oid)
     SELECT coalesce(json_agg(json_build_array(dn.nspname, dc.relname)), '[]')
       FROM des JOIN pg_class dc ON dc.oid = des.oid JOIN pg_namespace dn ON dn.oid = dc.relnamespace) AS descendants
  FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace`

// Each answer's digest (ver) is computed by the server from exactly the rows the
// analysis uses, with the same expression at the lookup and at revalidate: per name
// (or OID), the md5 of the sorted md5s of the rows' JSON. A name without rows has the
// digest "" (absent from the map).
const (
	relKinds = `c.relkind IN ('r', 'p', 'v', 'm', 'f', 'S')`
	funcRows = `
  SELECT n.nspname AS schema, p.proname AS name, l.lanname AS lang, p.prokind AS kind,
    CASE WHEN p.prokind IN ('f', 'p') AND l.lanname IN ('sql', 'plpgsql')
          AND n.nspname NOT IN ('pg_catalog', 'information_schema') THEN pg_get_functiondef(p.oid) END AS def
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace JOIN pg_language l ON l.oid = p.prolang`
)

// versOf is the digest map of CTE q's rows, keyed by key (an expression over q).
func versOf(q, key string) string {
	return `(SELECT coalesce(json_object_agg(k, v), '{}') FROM (SELECT ` + key + ` AS k,
    md5(string_agg(md5(row_to_json(` + q + `)::text), ',' ORDER BY md5(row_to_json(` + q + `)::text))) AS v
    FROM ` + q + ` GROUP BY 1) vers)`
}

// hooksSQL lists hooks (hookInfo) as a JSON array.
const hooksSQL = `(WITH RECURSIVE f AS (
  SELECT p.oid, n.nspname AS schema, p.proname AS name
  FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace
  WHERE n.nspname NOT IN ('pg_catalog', 'information_schema')
    AND NOT EXISTS (SELECT 1 FROM pg_depend e WHERE e.classid = 'pg_proc'::regclass AND e.objid = p.oid AND e.deptype = 'e')
), implicit_by AS (
  SELECT d.refclassid, d.refobjid FROM pg_depend d
  WHERE d.classid IN ('pg_constraint'::regclass, 'pg_attrdef'::regclass, 'pg_policy'::regclass, 'pg_amproc'::regclass, 'pg_amop'::regclass)
     OR d.classid = 'pg_class'::regclass AND d.objid IN (SELECT indexrelid FROM pg_index)
), implicit AS (
  SELECT refobjid AS fn FROM implicit_by WHERE refclassid = 'pg_proc'::regclass
  UNION SELECT o.oprcode FROM implicit_by JOIN pg_operator o ON o.oid = implicit_by.refobjid WHERE refclassid = 'pg_operator'::regclass
  UNION SELECT amproc FROM pg_amproc
  UNION SELECT o.oprcode FROM pg_amop a JOIN pg_operator o ON o.oid = a.amopopr
), dom(oid, target) AS (
  SELECT DISTINCT casttarget, casttarget FROM pg_cast
  UNION SELECT t.oid, dom.target FROM pg_type t JOIN dom ON t.typbasetype = dom.oid
)
SELECT coalesce(json_agg(h ORDER BY h.kind, h.key, h.ctx, h.schema, h.name), '[]') FROM (
  SELECT 'o' AS kind, o.oprname::text AS key, '' AS ctx, f.schema, f.name FROM pg_operator o JOIN f ON f.oid = o.oprcode
  UNION
  SELECT 'c', t.typname::text, c.castcontext::text, f.schema, f.name
    FROM pg_cast c JOIN f ON f.oid = c.castfunc JOIN dom ON dom.target = c.casttarget JOIN pg_type t ON t.oid = dom.oid
  UNION
  SELECT 'i', '', '', f.schema, f.name FROM implicit JOIN f ON f.oid = implicit.fn) h)`

// answer is a lookup's rows and their digests.
type answer[T any] struct {
	Rows []T               `json:"rows"`
	Vers map[string]string `json:"vers"`
}

// relations returns every relation with one of names (in schema, or in any schema when
// schema is ""), from the cache where it can.
func (c *sideCatalog) relations(ctx context.Context, schema string, names []string) ([]*relInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*relInfo
	var missing []string
	for _, n := range names {
		if e, ok := c.rels[n]; ok && c.fresh(e.at) {
			out = append(out, e.v...)
		} else if !contains(missing, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) > 0 {
		arg, _ := json.Marshal(missing)
		b, err := c.query(ctx, `WITH q AS (`+relationColumns+`
  WHERE c.relname IN (SELECT json_array_elements_text($1::json)) AND `+relKinds+`)
SELECT json_build_object('rows', (SELECT coalesce(json_agg(q), '[]') FROM q), 'vers', `+versOf("q", "q.name")+`)`, string(arg))
		if err != nil {
			return nil, err
		}
		var got answer[*relInfo]
		if err := json.Unmarshal(b, &got); err != nil {
			return nil, fmt.Errorf("reading the catalog: %w", err)
		}
		now := c.now()
		for _, n := range missing {
			var these []*relInfo
			for _, r := range got.Rows {
				if r.Name == n {
					these = append(these, r)
				}
			}
			c.rels[n] = cached[[]*relInfo]{these, now, got.Vers[n]}
			out = append(out, these...)
		}
	}
	if schema == "" {
		return out, nil
	}
	kept := out[:0]
	for _, r := range out {
		if r.Schema == schema {
			kept = append(kept, r)
		}
	}
	return kept, nil
}

// relationByOID returns the relation with oid, or nil when there is none.
func (c *sideCatalog) relationByOID(ctx context.Context, oid uint32) (*relInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if e, ok := c.byOID[oid]; ok && c.fresh(e.at) {
		return e.v, nil
	}
	key := strconv.FormatUint(uint64(oid), 10)
	b, err := c.query(ctx, `WITH q AS (`+relationColumns+`
  WHERE c.oid = $1::oid)
SELECT json_build_object('rows', (SELECT coalesce(json_agg(q), '[]') FROM q), 'vers', `+versOf("q", "q.oid::text")+`)`, key)
	if err != nil {
		return nil, err
	}
	var got answer[*relInfo]
	if err := json.Unmarshal(b, &got); err != nil {
		return nil, fmt.Errorf("reading the catalog: %w", err)
	}
	var r *relInfo
	if len(got.Rows) == 1 {
		r = got.Rows[0]
	}
	c.byOID[oid] = cached[*relInfo]{r, c.now(), got.Vers[key]}
	return r, nil
}

// functionResultType returns the result type of the function with oid (0 when there
// is none).
func (c *sideCatalog) functionResultType(ctx context.Context, oid uint32) (uint32, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := c.roundTrip(ctx, `SELECT coalesce((SELECT prorettype FROM pg_proc WHERE oid = $1::oid), 0)::int8::text`,
		strconv.FormatUint(uint64(oid), 10))
	if err != nil {
		return 0, err
	}
	t, err := strconv.ParseUint(string(b), 10, 32)
	if err != nil {
		return 0, fmt.Errorf("reading the catalog: %w", err)
	}
	return uint32(t), nil
}

// functionByOID returns the function with oid as a rule names it (schema.name) and
// as a person reads it (its signature, regprocedure: "public.set_key(text)"); ok is
// false when there is none.
func (c *sideCatalog) functionByOID(ctx context.Context, oid uint32) (name, signature string, ok bool, err error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	b, err := c.roundTrip(ctx, `SELECT coalesce((SELECT json_build_array(n.nspname || '.' || p.proname, p.oid::regprocedure::text)
		FROM pg_proc p JOIN pg_namespace n ON n.oid = p.pronamespace WHERE p.oid = $1::oid), '[]')::text`,
		strconv.FormatUint(uint64(oid), 10))
	if err != nil {
		return "", "", false, err
	}
	var got []string
	if err := json.Unmarshal(b, &got); err != nil {
		return "", "", false, fmt.Errorf("reading the catalog: %w", err)
	}
	if len(got) != 2 {
		return "", "", false, nil
	}
	return got[0], got[1], true, nil
}

// functions returns every function with one of names, in any schema.
func (c *sideCatalog) functions(ctx context.Context, names []string) ([]*funcInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	var out []*funcInfo
	var missing []string
	for _, n := range names {
		if e, ok := c.funcs[n]; ok && c.fresh(e.at) {
			out = append(out, e.v...)
		} else if !contains(missing, n) {
			missing = append(missing, n)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	arg, _ := json.Marshal(missing)
	b, err := c.query(ctx, `WITH q AS (`+funcRows+`
  WHERE p.proname IN (SELECT json_array_elements_text($1::json)))
SELECT json_build_object('rows', (SELECT coalesce(json_agg(q), '[]') FROM q), 'vers', `+versOf("q", "q.name")+`)`, string(arg))
	if err != nil {
		return nil, err
	}
	var got answer[*funcInfo]
	if err := json.Unmarshal(b, &got); err != nil {
		return nil, fmt.Errorf("reading the catalog: %w", err)
	}
	now := c.now()
	for _, n := range missing {
		var these []*funcInfo
		for _, f := range got.Rows {
			if f.Name == n {
				these = append(these, f)
			}
		}
		c.funcs[n] = cached[[]*funcInfo]{these, now, got.Vers[n]}
		out = append(out, these...)
	}
	return out, nil
}

// hooks returns the functions the server may call without the statement naming them
// (see hookInfo).
func (c *sideCatalog) hooks(ctx context.Context) ([]*hookInfo, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.hooksC != nil && c.fresh(c.hooksC.at) {
		return c.hooksC.v, nil
	}
	b, err := c.query(ctx, `SELECT json_build_object('rows', h, 'ver', md5(h::text)) FROM (SELECT `+hooksSQL+` AS h) x`)
	if err != nil {
		return nil, err
	}
	var got struct {
		Rows []*hookInfo `json:"rows"`
		Ver  string      `json:"ver"`
	}
	if err := json.Unmarshal(b, &got); err != nil {
		return nil, fmt.Errorf("reading the catalog: %w", err)
	}
	c.hooksC = &cached[[]*hookInfo]{got.Rows, c.now(), got.Ver}
	return got.Rows, nil
}

// revalidate drops every cached answer when the server would now answer any of them
// differently: one query computes the digests of the answers for every cached name,
// OID and the hooks, as the lookups computed them. A failure drops the cache too (the
// next lookups then fail or read afresh). It runs before each statement's analysis, so
// a definition another session committed is seen by the next statement, and an
// analysis never rests on an answer the server no longer gives.
func (c *sideCatalog) revalidate(ctx context.Context) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.rels) == 0 && len(c.byOID) == 0 && len(c.funcs) == 0 && c.hooksC == nil {
		return
	}
	epoch, now := definitionsEpoch.Load(), c.now()
	if epoch == c.epoch && now.Sub(c.validated) < revalidateEvery && !c.validated.IsZero() {
		return // nothing changed through this process, and the last check is recent
	}
	c.epoch, c.validated = epoch, now
	rels, oids, funcs := []string{}, []string{}, []string{}
	for n := range c.rels {
		rels = append(rels, n)
	}
	for o := range c.byOID {
		oids = append(oids, strconv.FormatUint(uint64(o), 10))
	}
	for n := range c.funcs {
		funcs = append(funcs, n)
	}
	ra, _ := json.Marshal(rels)
	oa, _ := json.Marshal(oids)
	fa, _ := json.Marshal(funcs)
	hooks := "false"
	if c.hooksC != nil {
		hooks = "true"
	}
	b, err := c.roundTrip(ctx, `WITH r AS (`+relationColumns+`
  WHERE c.relname IN (SELECT json_array_elements_text($1::json)) AND `+relKinds+`),
o AS (`+relationColumns+`
  WHERE c.oid IN (SELECT json_array_elements_text($2::json)::oid)),
f AS (`+funcRows+`
  WHERE p.proname IN (SELECT json_array_elements_text($3::json)))
SELECT json_build_object('rels', `+versOf("r", "r.name")+`, 'oids', `+versOf("o", "o.oid::text")+`,
  'funcs', `+versOf("f", "f.name")+`, 'hooks', CASE WHEN $4::bool THEN md5(`+hooksSQL+`::text) END)`,
		string(ra), string(oa), string(fa), hooks)
	var got struct {
		Rels, OIDs, Funcs map[string]string
		Hooks             string
	}
	if err == nil {
		err = json.Unmarshal(b, &got)
	}
	same := err == nil
	for n, e := range c.rels {
		same = same && e.ver == got.Rels[n]
	}
	for o, e := range c.byOID {
		same = same && e.ver == got.OIDs[strconv.FormatUint(uint64(o), 10)]
	}
	for n, e := range c.funcs {
		same = same && e.ver == got.Funcs[n]
	}
	if c.hooksC != nil {
		same = same && c.hooksC.ver == got.Hooks
	}
	if !same {
		c.invalidateLocked()
	}
}

// viewEntry is a view's analysed columns and the catalog answer they were analysed
// from: another answer for the view (a refresh after maxAge, which sees CREATE OR
// REPLACE VIEW by another session under the same OID) is analysed again.
type viewEntry struct {
	rel *relInfo
	t   []taint
}

// viewTaints returns the cached analysis of the view r describes.
func (c *sideCatalog) viewTaints(r *relInfo) ([]taint, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	e, ok := c.views[r.OID]
	if !ok || e.rel != r {
		return nil, false
	}
	return e.t, true
}

func (c *sideCatalog) setViewTaints(r *relInfo, t []taint) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.views[r.OID] = viewEntry{r, t}
}

// dialCatalog opens the side connection: the same dialler, TLS verification and
// credentials as the session's upstream connection.
func (s *session) dialCatalog(ctx context.Context) (*pgconn.PgConn, error) {
	pc, err := pgconn.ParseConfig("host=bastion-upstream port=5432 sslmode=disable")
	if err != nil {
		return nil, err
	}
	pc.User, pc.Database = s.startup.User, s.startup.Database
	pc.Password = ""
	pc.TLSConfig, pc.Fallbacks = nil, nil
	pc.ConnectTimeout = catalogTimeout
	pc.LookupFunc = func(_ context.Context, host string) ([]string, error) { return []string{host}, nil }
	pc.RuntimeParams = map[string]string{
		"application_name":              "bastion (catalog)",
		"search_path":                   "pg_catalog",
		"default_transaction_read_only": "on",
		"statement_timeout":             "10s",
	}
	if s.cfg.Password != nil && s.cfg.ClientCert == nil {
		err := safely(func() (err error) { pc.Password, err = s.cfg.Password(ctx, s.startup.User); return err })
		if err != nil {
			return nil, err
		}
	}
	pc.DialFunc = func(ctx context.Context, _, _ string) (net.Conn, error) {
		var conn net.Conn
		if err := safely(func() (err error) { conn, err = s.cfg.DialUpstream(ctx); return err }); err != nil {
			return nil, err
		}
		if s.cfg.UpstreamTLS == nil {
			return conn, nil
		}
		tc := s.cfg.UpstreamTLS.Clone()
		if s.cfg.ClientCert != nil {
			var cert *tls.Certificate
			err := safely(func() (err error) { cert, err = s.cfg.ClientCert(ctx, s.startup.User); return err })
			if err == nil && cert == nil {
				err = errors.New("no certificate")
			}
			if err != nil {
				conn.Close()
				return nil, err
			}
			tc.Certificates = nil
			tc.GetClientCertificate = func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return cert, nil }
		}
		tconn, err := startTLS(ctx, conn, tc)
		if err != nil {
			conn.Close()
			return nil, err
		}
		return tconn, nil
	}
	return pgconn.ConnectConfig(ctx, pc)
}
