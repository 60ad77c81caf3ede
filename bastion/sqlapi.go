package bastion

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/time/rate"

	"github.com/bastionhq/bastion/bastion/pgproxy"
	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/safetext"
)

// The per-request SQL API: POST /v1/sql with a bearer access token (`bastion
// login` writes it) runs one SQL text on a PostgreSQL target and answers
// JSON. Each request is a session of its own — its own upstream connection
// and certificate, recording and audit records — that goes through the same
// pgproxy path as psql: pgproxy.Query speaks to Serve over an in-memory
// connection. A statement held for approval answers 202 with the request ID
// and a status URL; the statement keeps waiting and the status URL gives
// the result once it is decided.

// API paths.
const (
	PathSQL       = "/v1/sql"
	PathSQLStatus = "/v1/sql/{id}"
)

// SQLRequest is the body of POST /v1/sql.
type SQLRequest struct {
	Target   string `json:"target"`
	Database string `json:"database"`
	User     string `json:"user"`
	SQL      string `json:"sql"`
	MaxRows  int    `json:"max_rows,omitempty"` // default and cap: SQLAPIConfig.MaxRows
}

// SQLResponse is the answer: the last result set's columns and rows (text,
// masked; null is NULL), or the statement's error, or (202) the approval
// request the statement waits for.
type SQLResponse struct {
	SessionID string      `json:"session_id"`
	Status    string      `json:"status"` // "ok", "error", "held"
	Columns   []string    `json:"columns,omitempty"`
	Rows      [][]*string `json:"rows,omitempty"`
	Truncated bool        `json:"truncated,omitempty"` // rows left out: max_rows or sql_api.max_bytes
	Tags      []string    `json:"tags,omitempty"`
	Notices   []string    `json:"notices,omitempty"`
	Error     *SQLError   `json:"error,omitempty"`
	RequestID string      `json:"request_id,omitempty"` // the approval request (held)
	StatusURL string      `json:"status_url,omitempty"` // poll it (held)
}

// SQLError is a refused or failed statement or connection.
type SQLError struct {
	SQLState string `json:"sqlstate,omitempty"`
	Message  string `json:"message"`
	Detail   string `json:"detail,omitempty"`
	Hint     string `json:"hint,omitempty"`
}

// SQLAPIConfig limits the SQL API.
type SQLAPIConfig struct {
	Rate    float64 // requests per second per identity; default 10
	Burst   int     // default 20
	MaxRows int     // rows one answer holds at most; default 10000
	// MaxBytes bounds the rows' values and the notices one answer holds (the
	// bastion keeps an answer whole until it is sent); default 16 MiB.
	MaxBytes int
	Timeout  time.Duration // a statement's run time, approval waits not counted; default 60s
	// MaxConcurrent bounds the requests of one identity in flight at once,
	// from the request to the last byte of its answer (an answer is held
	// whole until a client, however slow, has read it); default 4.
	MaxConcurrent int
}

type sqlAPI struct {
	s   *Server
	cfg SQLAPIConfig

	mu       sync.Mutex
	limiters map[string]*rate.Limiter
	inflight map[string]int      // requests being answered, by owner
	held     map[string]*heldSQL // by session ID
}

// heldSQL is a statement that waits for an approval.
type heldSQL struct {
	owner string // answerOwner
	done  chan struct{}
	resp  SQLResponse
	code  int
	// The answer is given only while the policy in force would still let
	// the login that fetches it (its groups now) connect and would mask
	// its rows as they were masked.
	recheck func(*policy.Policy, policy.Identity) error
	target  string
	request *atomic.Pointer[string] // the approval request it waits on now
}

// SQLHandler serves the SQL API (PathSQL, PathSQLStatus) on mux.
func (s *Server) SQLHandler(mux *http.ServeMux, cfg SQLAPIConfig) {
	if cfg.Rate == 0 {
		cfg.Rate = 10
	}
	if cfg.Burst == 0 {
		cfg.Burst = 20
	}
	if cfg.MaxRows == 0 {
		cfg.MaxRows = 10000
	}
	if cfg.MaxBytes == 0 {
		cfg.MaxBytes = defaultSQLMaxBytes
	}
	if cfg.Timeout == 0 {
		cfg.Timeout = time.Minute
	}
	if cfg.MaxConcurrent == 0 {
		cfg.MaxConcurrent = 4
	}
	api := &sqlAPI{s: s, cfg: cfg, limiters: map[string]*rate.Limiter{}, inflight: map[string]int{}, held: map[string]*heldSQL{}}
	mux.HandleFunc("POST "+PathSQL, api.query)
	mux.HandleFunc("GET "+PathSQLStatus, api.status)
}

func writeSQL(w http.ResponseWriter, code int, resp SQLResponse) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(code)
	// Read in terminals too (curl): C1 controls in the database's values
	// as escapes, as encoding/json writes the C0 ones.
	jw := safetext.JSONWriter(w)
	if len(resp.Rows) == 0 {
		json.NewEncoder(jw).Encode(resp)
		return
	}
	// The rows a value at a time: encoded whole, the answer's JSON would be
	// a second copy of it in memory, and up to six times its size (a
	// control character is written \u00XX). Its fields are the same,
	// in another order.
	// Each piece goes through the C1 escapes whole (one split between
	// its two bytes would pass a C1 control raw), then to a buffer.
	head, _ := json.Marshal(sqlHead{resp.SessionID, resp.Status, resp.Columns})
	tail, _ := json.Marshal(sqlTail{resp.Truncated, resp.Tags, resp.Notices, resp.Error, resp.RequestID, resp.StatusURL})
	bw := bufio.NewWriterSize(w, 32<<10)
	jw = safetext.JSONWriter(bw)
	jw.Write(head[:len(head)-1])
	jw.Write([]byte(`,"rows":[`))
	b := []byte{}
	for i, row := range resp.Rows {
		b = b[:0]
		if i > 0 {
			b = append(b, ',')
		}
		b = append(b, '[')
		for j, v := range row {
			if j > 0 {
				b = append(b, ',')
			}
			if v == nil {
				b = append(b, "null"...)
				continue
			}
			vb, _ := json.Marshal(*v)
			if len(b)+len(vb) > 32<<10 {
				if _, err := jw.Write(b); err != nil {
					return // the client is gone
				}
				b = b[:0]
			}
			b = append(b, vb...)
		}
		b = append(b, ']')
		if _, err := jw.Write(b); err != nil {
			return
		}
	}
	if len(tail) > 2 {
		jw.Write(append([]byte("],"), tail[1:]...))
	} else {
		jw.Write([]byte("]}"))
	}
	jw.Write([]byte("\n"))
	bw.Flush()
}

// sqlHead and sqlTail are an SQLResponse's fields before and after its
// rows, for writeSQL.
type sqlHead struct {
	SessionID string   `json:"session_id"`
	Status    string   `json:"status"`
	Columns   []string `json:"columns,omitempty"`
}

type sqlTail struct {
	Truncated bool      `json:"truncated,omitempty"`
	Tags      []string  `json:"tags,omitempty"`
	Notices   []string  `json:"notices,omitempty"`
	Error     *SQLError `json:"error,omitempty"`
	RequestID string    `json:"request_id,omitempty"`
	StatusURL string    `json:"status_url,omitempty"`
}

func sqlFail(w http.ResponseWriter, code int, format string, args ...any) {
	writeSQL(w, code, SQLResponse{Status: "error", Error: &SQLError{Message: fmt.Sprintf(format, args...)}})
}

// authenticate reads the bearer access token.
func (api *sqlAPI) authenticate(r *http.Request) (ca.Identity, int, error) {
	tok, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return ca.Identity{}, http.StatusUnauthorized, errors.New("no access token: send Authorization: Bearer <the access_token file `bastion login` wrote>")
	}
	id, err := api.s.cfg.Authority.VerifyAccessToken(strings.TrimSpace(tok))
	if err != nil {
		return ca.Identity{}, http.StatusUnauthorized, err
	}
	if err := api.s.revocation(id); err != nil {
		return ca.Identity{}, http.StatusUnauthorized, fmt.Errorf("the login's %w", err)
	}
	return id, 0, nil
}

func owner(id ca.Identity) string { return id.Issuer + "\x00" + id.Subject }

// answerOwner is who may fetch a held statement's answer: the account that
// asked and, for a CI run (oidc.workload actor_claim), the person who
// triggered it. Runs of one job share the workload's issuer and subject
// (every push to main is one subject); the bastion tells runs triggered by
// different people apart for approvals, and an answer an approver let out
// for one run is not another run's.
func answerOwner(id ca.Identity) string { return owner(id) + "\x00" + id.Actor }

func (api *sqlAPI) allow(id ca.Identity) bool {
	api.mu.Lock()
	defer api.mu.Unlock()
	l := api.limiters[owner(id)]
	if l == nil {
		if len(api.limiters) > 10000 {
			clear(api.limiters) // bounded memory; a reset only forgives
		}
		l = rate.NewLimiter(rate.Limit(api.cfg.Rate), api.cfg.Burst)
		api.limiters[owner(id)] = l
	}
	return l.Allow()
}

// enter counts a request of id in flight, if id has fewer than
// MaxConcurrent; leave ends it. The rate limit alone does not bound what
// an identity makes the bastion hold: an answer is held whole until it is
// written, and a client that reads slowly keeps it for as long as the
// write deadline lets it (the statement's session has ended by then, so
// no session limit counts it).
func (api *sqlAPI) enter(id ca.Identity) bool {
	api.mu.Lock()
	defer api.mu.Unlock()
	if api.inflight[owner(id)] >= api.cfg.MaxConcurrent {
		return false
	}
	api.inflight[owner(id)]++
	return true
}

func (api *sqlAPI) leave(id ca.Identity) {
	api.mu.Lock()
	defer api.mu.Unlock()
	if api.inflight[owner(id)]--; api.inflight[owner(id)] <= 0 {
		delete(api.inflight, owner(id))
	}
}

func (api *sqlAPI) query(w http.ResponseWriter, r *http.Request) {
	s := api.s
	// The answer may take as long as the statement may run, beyond the
	// HTTP server's own write timeout.
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(api.cfg.Timeout + 30*time.Second))
	id, code, err := api.authenticate(r)
	if err != nil {
		sqlFail(w, code, "%v", err)
		return
	}
	if !api.allow(id) {
		// A token comes back every 1/rate seconds.
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(1/api.cfg.Rate))))
		sqlFail(w, http.StatusTooManyRequests, "rate limit: at most %g requests per second (burst %d) per identity", api.cfg.Rate, api.cfg.Burst)
		return
	}
	if !api.enter(id) {
		w.Header().Set("Retry-After", "1")
		sqlFail(w, http.StatusTooManyRequests, "%s already has %d requests in flight (sql_api.max_concurrent): read their answers first", safetext.Printable(id.User), api.cfg.MaxConcurrent)
		return
	}
	defer api.leave(id)
	// Read to its end: only then does the server watch the connection, and
	// end the request's context when the client goes away.
	body, err := io.ReadAll(io.LimitReader(r.Body, maxSQLBody+1))
	if err != nil {
		sqlFail(w, http.StatusBadRequest, "body: %v", err)
		return
	}
	req, err := decodeSQLRequest(body)
	if err != nil {
		sqlFail(w, http.StatusBadRequest, "body: %v", err)
		return
	}
	if req.SQL == "" || req.Target == "" || req.Database == "" || req.User == "" {
		sqlFail(w, http.StatusBadRequest, "target, database, user and sql are required")
		return
	}
	// They travel as C strings: a NUL would end one early and make what
	// follows a startup parameter (or statement) of its own.
	for _, f := range [...]struct{ name, v string }{{"target", req.Target}, {"database", req.Database}, {"user", req.User}, {"sql", req.SQL}} {
		if strings.IndexByte(f.v, 0) >= 0 {
			sqlFail(w, http.StatusBadRequest, "%s contains a NUL byte", f.name)
			return
		}
	}
	maxRows := api.cfg.MaxRows
	if req.MaxRows > 0 && req.MaxRows < maxRows {
		maxRows = req.MaxRows
	}
	pol := s.cfg.Policy()
	pid := policyIdentity(id)
	t, ok := pol.Target(req.Target)
	if !ok || t.Kind != policy.KindPostgres {
		sqlFail(w, http.StatusNotFound, "%q is not a configured PostgreSQL target", safetext.Printable(req.Target))
		return
	}
	_, tport, _ := net.SplitHostPort(t.Address)
	port, _ := strconv.Atoi(tport)
	if _, err := pol.CheckForward(pid, t.Name, port, port); err != nil {
		s.audit(Event{Type: "channel.refuse", Identity: id, Target: t.Name, Outcome: "refused", Reason: err.Error(), Fields: map[string]string{"channel": "sql api"}})
		sqlFail(w, http.StatusForbidden, "%v", err)
		return
	}

	// The session outlives the HTTP request when its statement is held.
	ctx, cancel := context.WithCancel(context.Background())
	fields := map[string]string{"via": "sql api"}
	sid := newSessionID()
	up, err := s.dialForward(ctx, sid, id, t, port, fields)
	if err != nil {
		cancel()
		code := http.StatusBadGateway
		if errors.Is(err, errMaxPerUser) {
			code = http.StatusTooManyRequests
		}
		sqlFail(w, code, "%v", err)
		return
	}
	client, server := net.Pipe()
	remote := r.RemoteAddr
	ss, err := s.beginForward(ctx, sid, id, t, sqlAddr(remote), up, server.Close, fields)
	if ss == nil || err != nil {
		if ss != nil {
			ss.finish()
		}
		cancel()
		up.Close()
		server.Close()
		client.Close()
		code := http.StatusServiceUnavailable
		if ss == nil && !errors.Is(err, errShutdown) {
			code = http.StatusTooManyRequests
		}
		sqlFail(w, code, "%v", err)
		return
	}
	held := make(chan string, 1)
	// The statement's own run time is bounded; a hold stops the clock and
	// the decision starts it again with the time that was left. At the
	// limit the statement is cancelled in PostgreSQL (as a client's
	// CancelRequest would: the backend stops working on it) before the
	// session ends, so a timed-out query does not run on unseen.
	var timedOut atomic.Bool
	var key atomic.Pointer[[2]uint32]
	clock := newRunClock(api.cfg.Timeout, func() {
		timedOut.Store(true)
		if k := key.Load(); k != nil {
			s.pg.cancels.Forward(ctx, k[0], k[1])
		}
		ss.stop(fmt.Errorf("the SQL API's time limit (%s) was reached", api.cfg.Timeout))
	})
	// The request a held statement waits on now: a text may hold several.
	waitsOn := new(atomic.Pointer[string])
	ss.onHold = func(requestID string) {
		waitsOn.Store(&requestID)
		clock.pause()
		select {
		case held <- requestID: // the first hold answers 202
		default:
		}
	}
	ss.onDecided = clock.resume
	go func() {
		defer ss.finish()
		s.postgresForward(ss, server, up, t, port)
	}()
	type answer struct {
		resp SQLResponse
		code int
	}
	done := make(chan answer, 1)
	go func() {
		defer cancel()
		res, err := pgproxy.Query(ctx, client, req.User, req.Database, req.SQL, maxRows, api.cfg.MaxBytes, func(pid, secret uint32) {
			key.Store(&[2]uint32{pid, secret})
		})
		clock.stop()
		a := answer{SQLResponse{SessionID: sid, Status: "ok"}, http.StatusOK}
		var qe *pgproxy.QueryError
		switch {
		case err != nil && timedOut.Load():
			a.resp.Status, a.resp.Error, a.code = "error", &SQLError{SQLState: "57014", Message: fmt.Sprintf("bastion: the SQL API's time limit (sql_api.timeout, %s) was reached", api.cfg.Timeout)}, http.StatusGatewayTimeout
		case errors.As(err, &qe):
			a.resp.Status, a.resp.Error = "error", &SQLError{SQLState: qe.SQLState, Message: qe.Message, Detail: qe.Detail, Hint: qe.Hint}
			a.code = http.StatusUnprocessableEntity // the statement failed or was refused
			if qe.Fatal {
				a.code = http.StatusForbidden // the connection was refused
			}
		case err != nil:
			a.resp.Status, a.resp.Error, a.code = "error", &SQLError{Message: err.Error()}, http.StatusBadGateway
		}
		if res != nil {
			a.resp.Columns, a.resp.Rows, a.resp.Truncated, a.resp.Tags, a.resp.Notices = res.Columns, res.Rows, res.Truncated, res.Tags, res.Notices
		}
		done <- a
	}()
	select {
	case a := <-done:
		writeSQL(w, a.code, a.resp)
	case <-r.Context().Done():
		// The client went away before its answer: the statement is
		// cancelled in PostgreSQL, as when psql closes its connection,
		// rather than running on (and committing) until the time limit for
		// a client that gave up on it and may send it again.
		if k := key.Load(); k != nil {
			s.pg.cancels.Forward(ctx, k[0], k[1])
		}
		ss.stop(errors.New("the SQL API client went away before its answer"))
		<-done
	case reqID := <-held:
		maskKey := pol.ResultMasks(pid, t.Name).Key()
		h := &heldSQL{owner: answerOwner(id), done: make(chan struct{}), target: t.Name, request: waitsOn, recheck: func(p *policy.Policy, pid policy.Identity) error {
			if err := recheckForward(p, pid, t, port); err != nil {
				return err
			}
			if err := p.CheckDB(pid, t.Name, req.User, req.Database, false); err != nil {
				return err
			}
			if p.ResultMasks(pid, t.Name).Key() != maskKey {
				return errors.New("a reload changed the masking rules since the statement ran")
			}
			return nil
		}}
		api.mu.Lock()
		api.held[sid] = h
		api.mu.Unlock()
		go func() {
			a := <-done
			h.resp, h.code = a.resp, a.code
			close(h.done)
			// An answer nobody fetches is dropped after a while.
			time.AfterFunc(heldAnswerTTL, func() {
				api.mu.Lock()
				delete(api.held, sid)
				api.mu.Unlock()
			})
		}()
		writeSQL(w, http.StatusAccepted, SQLResponse{SessionID: sid, Status: "held", RequestID: reqID,
			StatusURL: strings.Replace(PathSQLStatus, "{id}", sid, 1)})
	}
}

// maxSQLBody bounds a POST /v1/sql body.
const maxSQLBody = 1 << 20

// sqlRequestFields are SQLRequest's JSON names.
var sqlRequestFields = []string{"target", "database", "user", "sql", "max_rows"}

// decodeSQLRequest reads a POST /v1/sql body: one JSON object of
// SQLRequest's fields, each named exactly once as it is spelled, and
// nothing after it. encoding/json alone matches names in any case, keeps
// the last of a name given twice and stops reading after the first value,
// so {"sql": "SELECT 1", "SQL": "DELETE FROM t"} ran the DELETE while
// anything else that read the request (a gateway's log, a tool-call review,
// a parser that keeps the first) saw the SELECT: the bastion runs only a
// request that reads one way.
func decodeSQLRequest(body []byte) (SQLRequest, error) {
	var req SQLRequest
	if len(body) > maxSQLBody {
		return req, fmt.Errorf("larger than %d bytes", maxSQLBody)
	}
	if !utf8.Valid(body) {
		return req, errors.New("not UTF-8 (JSON is)")
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	if tok, err := dec.Token(); err != nil || tok != json.Delim('{') {
		return req, errors.New("not a JSON object")
	}
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return req, err
		}
		name, _ := tok.(string)
		switch {
		case !slices.Contains(sqlRequestFields, name):
			return req, fmt.Errorf("unknown field %q (fields: %s)", safetext.Printable(clip(name, 64)), strings.Join(sqlRequestFields, ", "))
		case seen[name]:
			return req, fmt.Errorf("field %q given twice", name)
		}
		seen[name] = true
		var v json.RawMessage
		if err := dec.Decode(&v); err != nil {
			return req, err
		}
	}
	if _, err := dec.Token(); err != nil { // the closing brace
		return req, err
	}
	if _, err := dec.Token(); err != io.EOF {
		return req, errors.New("data after the JSON object")
	}
	strict := json.NewDecoder(bytes.NewReader(body))
	strict.DisallowUnknownFields()
	if err := strict.Decode(&req); err != nil {
		return req, err
	}
	return req, nil
}

// defaultSQLMaxBytes is SQLAPIConfig.MaxBytes's default.
const defaultSQLMaxBytes = 16 << 20

// runClock is a statement's run-time budget: it runs, except while a
// statement waits for approval, and calls expire once when the budget is
// spent.
type runClock struct {
	mu      sync.Mutex
	left    time.Duration // budget not spent when the clock last stopped
	since   time.Time     // when it last started
	timer   *time.Timer   // nil while paused or stopped
	stopped bool
	expire  func()
}

// newRunClock starts a clock of d.
func newRunClock(d time.Duration, expire func()) *runClock {
	c := &runClock{left: d, expire: expire}
	c.resume()
	return c
}

// pause stops the clock, keeping what is left of the budget.
func (c *runClock) pause() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.timer != nil {
		if !c.timer.Stop() {
			c.stopped = true // it fired: the budget is spent, expire ran
		}
		c.left -= time.Since(c.since)
		c.timer = nil
	}
}

// resume starts the clock again with what is left of the budget.
func (c *runClock) resume() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.stopped || c.timer != nil {
		return
	}
	c.since = time.Now()
	c.timer = time.AfterFunc(max(c.left, 0), c.expire)
}

// stop stops the clock for good.
func (c *runClock) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.stopped = true
	if c.timer != nil {
		c.timer.Stop()
		c.timer = nil
	}
}

// heldAnswerTTL is how long the answer of a held statement waits to be fetched.
const heldAnswerTTL = time.Hour

func (api *sqlAPI) status(w http.ResponseWriter, r *http.Request) {
	id, code, err := api.authenticate(r)
	if err != nil {
		sqlFail(w, code, "%v", err)
		return
	}
	if !api.enter(id) {
		w.Header().Set("Retry-After", "1")
		sqlFail(w, http.StatusTooManyRequests, "%s already has %d requests in flight (sql_api.max_concurrent): read their answers first", safetext.Printable(id.User), api.cfg.MaxConcurrent)
		return
	}
	defer api.leave(id)
	sid := r.PathValue("id")
	api.mu.Lock()
	h := api.held[sid]
	api.mu.Unlock()
	if h == nil || h.owner != answerOwner(id) {
		sqlFail(w, http.StatusNotFound, "no held statement %s of yours (answers are given once)", safetext.Printable(sid))
		return
	}
	select {
	case <-h.done:
		api.mu.Lock()
		mine := api.held[sid] == h // not taken by a request of the same moment
		delete(api.held, sid)
		api.mu.Unlock()
		if !mine {
			sqlFail(w, http.StatusNotFound, "no held statement %s of yours (answers are given once)", safetext.Printable(sid))
			return
		}
		// An answer waits up to heldAnswerTTL: a reload meanwhile that
		// withdrew the access or changed the masks it was computed under
		// keeps it, as it ends a live session; so does a login of the same
		// person whose groups no longer give it that access.
		if err := h.recheck(api.s.cfg.Policy(), policyIdentity(id)); err != nil {
			api.s.audit(Event{Type: "channel.refuse", Identity: id, SessionID: sid, Target: h.target, Outcome: "refused",
				Reason: "held statement's answer withheld: " + err.Error(), Fields: map[string]string{"channel": "sql api"}})
			sqlFail(w, http.StatusForbidden, "the answer of %s is withheld: the policy changed since its statement ran (%v)", sid, err)
			return
		}
		writeSQL(w, h.code, h.resp)
	default:
		writeSQL(w, http.StatusAccepted, SQLResponse{SessionID: sid, Status: "held", RequestID: *h.request.Load(), StatusURL: r.URL.Path})
	}
}

// sqlAddr is the HTTP client's address as a net.Addr for the session.
func sqlAddr(remote string) net.Addr {
	if a, err := net.ResolveTCPAddr("tcp", remote); err == nil {
		return a
	}
	return &net.TCPAddr{}
}
