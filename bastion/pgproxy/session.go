package pgproxy

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// errDone ends a session normally (client Terminate or EOF, server closed after it).
var errDone = errors.New("pgproxy: session done")

const bufSize = 32 << 10

// session is one proxied connection. Two goroutines run it: the frontend loop reads the
// client, judges and forwards to the server (it alone writes upstream); the backend loop
// reads the server, masks and forwards to the client. Both write to the client under
// cwMu. The queue of expectations (one per forwarded message that the server answers)
// lets the backend loop attribute each response to its request, in order.
type session struct {
	cfg    *Config
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelCauseFunc

	connMu    sync.Mutex // guards the three fields below while startup sets them
	rawClient net.Conn
	client    net.Conn // rawClient, or TLS over it
	upstream  net.Conn

	cbr  *bufio.Reader
	cr   *msgReader
	cwMu sync.Mutex
	cw   *bufio.Writer

	ubr *bufio.Reader
	ur  *msgReader
	uw  *bufio.Writer // frontend loop only

	startup      Startup
	catalog      *sideCatalog  // the catalog, over a side connection
	views        viewGuard     // following the views statements write to (views.go)
	lineage      *lineageState // with Config.Masks: cursors, prepared statements, new relations
	unregister   func()
	cancelTarget *cancelTarget // cancels the upstream backend
	nonce        string        // marks the proxy's own refusal statements

	// Shared between the loops, under qmu.
	qmu        sync.Mutex
	queue      []*expect
	pendingRFQ int           // queued messages the server answers with ReadyForQuery
	idle       chan struct{} // closed when pendingRFQ drops to 0
	refusals   map[uint64][]errField
	scs        string // standard_conforming_strings, as the server reported it
	scsStart   string // ...first: its value at startup, which RESET ALL and DISCARD ALL restore
	encoding   string // client_encoding, as the server reported it
	copyEnds   int    // CopyDone/CopyFail messages forwarded
	copyIn     bool   // the server is in copy-in mode...
	copyInEnds int    // ...entered when copyEnds was this
	skipping   bool   // the server ignores everything up to the next Sync

	terminated atomic.Bool // the client is gone or sent Terminate

	holdMu     sync.Mutex
	holdCancel context.CancelCauseFunc // ends the approval wait in progress

	// Frontend loop only.
	unsyncedExec bool // an Execute was forwarded since the last Sync
	refusalSeq   uint64
	fbuf         []byte
	linMemo      map[*cachedTree]linMemo // with Config.Masks: analyses to reuse
	prepCands    map[string][]*prepCand  // statement names that needed approval (held.go)
	heldPortals  map[string]*heldPortal  // portals bound from them
	// With Config.RulesVersion: what portals were bound from, and SQL cursors
	// declared as, with the rules they were judged under (held.go).
	portalRules map[string]*judgedUnder
	cursorRules map[string]*judgedUnder
	segs        uint64                // Syncs and Queries sent: pipeline segments
	fnTypes     map[uint32]uint32     // fastpath functions' result types, by OID
	fnNames     map[uint32]fastpathFn // fastpath functions' names, by OID
	// The client's COPY data not yet in the wire capture (wireCopyData), and whether
	// it is binary or text (neither: not known yet).
	wireCopy                     []byte
	wireCopyBinary, wireCopyText bool

	// Backend loop only.
	stmts    map[string]*prepared
	portals  map[string]*portalState
	cur      *running
	lastDone time.Time
	runBuf   running // s.cur points here: one statement streams at a time
	tbuf     []byte  // transcript lines of the current statement
	// readMasked: since the last ReadyForQuery a statement ran whose messages are
	// withheld; the ParameterStatus the server sends before the next ReadyForQuery
	// may come from it (set_config).
	readMasked bool
	// wroteMasked: the open transaction wrote to a relation with masked columns, whose
	// deferred constraints report rows when it commits, or declared a cursor over masked
	// values, which a WITH HOLD cursor evaluates when it commits.
	wroteMasked bool

	tmu sync.Mutex // transcript writes
}

type expKind uint8

const (
	expQuery expKind = iota
	expParse
	expBind
	expDescribe
	expExecute
	expClose
	expSync
	expFunctionCall
)

// expect is one forwarded message awaiting its response.
type expect struct {
	kind    expKind
	name    string     // Parse: statement; Bind, Execute: portal; Describe, Close: target
	stmt    string     // Bind: statement
	target  byte       // Describe, Close: 'S' or 'P'
	formats []int16    // Bind: result formats
	runs    []*stmtRun // Query, Parse: the statements, as judged
	idx     int        // Query: statements completed so far
	refusal bool       // the proxy's own refusal statement, answered by a syntax error
	cand    *prepCand  // Parse, Close: what the answer confirms or fails (held.go)
	// FunctionCall asking for a binary result under MaskValue: the function's result
	// type, which binaryNeedsMask takes the value apart by (0: unknown, masked).
	fnBinary bool
	fnType   uint32
	// Query, FunctionCall: the server has answered something (CommandComplete,
	// EmptyQueryResponse, ErrorResponse, FunctionCallResponse). Their ReadyForQuery
	// never comes alone; one that does answers something else (a Sync the proxy took
	// for ignored), and the session is out of step.
	answered bool
	sent     time.Time
	copyEnds int
	// copyPhases: the COPY FROM STDIN of this Query (or Execute) the server has
	// started so far. The server takes one CopyDone or CopyFail for each, so the
	// client's (copyEnds+copyPhases)th ends the current one.
	copyPhases int
}

// stmtRun is a statement that was allowed, with how.
type stmtRun struct {
	st        Statement
	rule      string
	requestID string
	lin       *lineage // with Config.Masks: what its results derive from
	schema    bool     // it may change the schema: the catalog cache is dropped when it ends
	held      bool     // it needed approval (and got it)
	// atExecution: it needed approval and was prepared without: each execution asks.
	atExecution bool
	rules       any // Config.RulesVersion when it was judged
}

// prepared is a prepared statement the server confirmed.
type prepared struct {
	run       *stmtRun
	desc      []fieldDesc
	described bool
}

// portalState is a portal the server confirmed.
type portalState struct {
	prep      *prepared
	formats   []int16
	desc      []fieldDesc
	described bool
	// replaceable: since the portal was bound, something else ran on the server. SQL
	// (CLOSE, DECLARE, a PL/pgSQL function's CLOSE and OPEN of a refcursor, reached
	// through a trigger, a view or an operator too) can drop a portal and create
	// another of the same name, which an Execute then runs: the proxy no longer knows
	// what the portal is, and treats its results as of unknown origin.
	replaceable bool
}

// ranOtherThan notes that a statement ran on the server (or a Bind evaluated its
// parameters) other than portal's own execution: every other portal may since have
// been replaced by SQL.
func (s *session) ranOtherThan(portal string, fromPortal bool) {
	for name, p := range s.portals {
		if !fromPortal || name != portal {
			p.replaceable = true
		}
	}
}

// replacedPortalWhy is why the rows of a replaceable portal are withheld.
const replacedPortalWhy = "the portal may have been replaced through SQL since it was bound (a cursor of the same name): bind it again"

// Serve runs the proxy on client until either side ends it or ctx is done, and closes
// client. It returns nil when the client terminated normally or sent a CancelRequest.
func (p *Proxy) Serve(ctx context.Context, client net.Conn) error {
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(errDone)
	var nb [6]byte
	_, _ = rand.Read(nb[:])
	log := p.cfg.Logger
	if addr := client.RemoteAddr(); addr != nil {
		log = log.With("client", addr.String())
	}
	s := &session{
		cfg: &p.cfg, log: log,
		ctx: ctx, cancel: cancel, rawClient: client, client: client,
		nonce:    hex.EncodeToString(nb[:]),
		refusals: map[uint64][]errField{},
		stmts:    map[string]*prepared{}, portals: map[string]*portalState{},
		prepCands: map[string][]*prepCand{}, heldPortals: map[string]*heldPortal{},
	}
	defer s.closeConns()
	// The catalog: for column masks (lineage), and to follow the views statements
	// write to (views.go). The side connection is opened on first use.
	s.catalog = newSideCatalog(s.dialCatalog, p.cfg.Now)
	defer s.catalog.close()
	if p.cfg.Masks != nil {
		s.lineage = newLineageState()
	}
	stop := context.AfterFunc(ctx, s.interrupt)
	defer stop()

	_ = client.SetDeadline(p.cfg.Now().Add(p.cfg.Limits.StartupTimeout))
	cancelled, err := s.startupPhase()
	if err != nil || cancelled {
		return err
	}
	defer s.unregister()
	_ = s.client.SetDeadline(time.Time{})
	_ = s.upstream.SetDeadline(time.Time{})

	berr := make(chan error, 1)
	go func() { berr <- s.backendLoop() }()
	ferr := s.frontendLoop()
	if ferr != nil {
		cancel(ferr)
		<-berr
		if c := context.Cause(ctx); c != nil && !errors.Is(c, errDone) && !errors.Is(ferr, c) {
			return c // the backend loop failed first
		}
		return ferr
	}
	// The client is done: let the server's last words through, then stop.
	select {
	case <-berr:
	case <-time.After(10 * time.Second):
		cancel(errDone)
		<-berr
	}
	return nil
}

// interrupt runs when the session's context ends: tell the client why (unless the end
// is a normal one), then close both connections so the loops return.
func (s *session) interrupt() {
	s.connMu.Lock()
	client, cw := s.client, s.cw
	s.connMu.Unlock()
	cause := context.Cause(s.ctx)
	if cause != nil && !errors.Is(cause, errDone) {
		// The session was ended (by the bastion: a revocation, an
		// expiry, a reload, its time limit; or a broken protocol): what
		// it left running at the server is cancelled there, as for a
		// client that vanished. Closing the connection alone leaves the
		// backend working on it (and committing it) until it next writes
		// to the client.
		cancelled := make(chan struct{})
		go func() {
			defer close(cancelled)
			if err := s.cancelBusy(context.WithoutCancel(s.ctx)); err != nil {
				s.log.Warn("cancelling the statement of an ended session failed", "err", err)
			}
		}()
		defer func() { <-cancelled }()
	}
	if cause != nil && !errors.Is(cause, errDone) && cw != nil {
		_ = client.SetWriteDeadline(time.Now().Add(2 * time.Second))
		msg := "bastion: session ended: " + clean(cause.Error())
		code := "57P01" // admin_shutdown
		var pe *ProtocolError
		if errors.As(cause, &pe) {
			code = "08P01"
			if pe.Side == "server" {
				msg = "bastion: the server broke the protocol; connection closed"
			} else {
				msg = "bastion: " + clean(strings.TrimPrefix(pe.Error(), "pgproxy: ")) + "; connection closed"
			}
		}
		// The backend loop may be stuck writing to a client that does not read (and the
		// connection may not support deadlines): give the message two seconds, then
		// close regardless, which unblocks everything.
		written := make(chan struct{})
		go func() {
			defer close(written)
			s.cwMu.Lock()
			defer s.cwMu.Unlock()
			_, _ = cw.Write(errorMsg('E', "FATAL", code, msg, "", ""))
			_ = cw.Flush()
		}()
		select {
		case <-written:
		case <-time.After(2 * time.Second):
		}
	}
	s.closeConns()
}

// setConns replaces the client connection, the upstream connection or the client
// writer (nil leaves one as is).
func (s *session) setConns(client, upstream net.Conn, cw *bufio.Writer) {
	s.connMu.Lock()
	defer s.connMu.Unlock()
	if client != nil {
		s.client = client
	}
	if upstream != nil {
		s.upstream = upstream
	}
	if cw != nil {
		s.cw = cw
	}
}

func (s *session) closeConns() {
	s.connMu.Lock()
	raw, client, upstream := s.rawClient, s.client, s.upstream
	s.connMu.Unlock()
	_ = raw.Close()
	if client != raw {
		_ = client.Close()
	}
	if upstream != nil {
		_ = upstream.Close()
	}
}

// writeClient writes whole messages to the client (buffered).
func (s *session) writeClient(p []byte) error {
	s.cwMu.Lock()
	_, err := s.cw.Write(p)
	s.cwMu.Unlock()
	return err
}

// sendClient writes messages to the client and flushes.
func (s *session) sendClient(p []byte) error {
	s.cwMu.Lock()
	defer s.cwMu.Unlock()
	if _, err := s.cw.Write(p); err != nil {
		return err
	}
	return s.cw.Flush()
}

func (s *session) flushClient() error {
	s.cwMu.Lock()
	defer s.cwMu.Unlock()
	return s.cw.Flush()
}

// --- the expectation queue ---

func answersWithReady(k expKind) bool {
	return k == expQuery || k == expSync || k == expFunctionCall
}

// enqueue records an expectation before its message is written upstream. A Sync that the
// server will ignore (it arrives while the server is in copy-in mode) is not recorded.
func (s *session) enqueue(e *expect) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	e.copyEnds = s.copyEnds
	if e.kind == expSync && s.copyIn && s.copyEnds == s.copyInEnds {
		return
	}
	if s.skipping {
		// After an error in the extended protocol the server ignores every message up
		// to Sync, and answers nothing for them.
		if e.kind != expSync {
			e.failed()
			return
		}
		s.skipping = false
	}
	s.queue = append(s.queue, e)
	if answersWithReady(e.kind) {
		s.views.sentReady()
		if s.pendingRFQ == 0 {
			s.idle = make(chan struct{})
		}
		s.pendingRFQ++
	}
}

// failed notes that the server skipped or refused e.
func (e *expect) failed() {
	if e.cand != nil {
		e.cand.state.CompareAndSwap(candPending, candFailed)
	}
}

func (s *session) head() *expect {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if len(s.queue) == 0 {
		return nil
	}
	return s.queue[0]
}

func (s *session) pop() {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	s.popLocked()
}

func (s *session) popLocked() {
	if len(s.queue) == 0 {
		return
	}
	e := s.queue[0]
	s.queue[0] = nil
	s.queue = s.queue[1:]
	if answersWithReady(e.kind) {
		s.pendingRFQ--
		if s.pendingRFQ == 0 {
			close(s.idle)
			s.idle = nil
		}
	}
}

// skipToSync drops the expectations the server skips after an error in the extended
// protocol: everything up to the next Sync, including what the client has yet to send.
func (s *session) skipToSync() {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	for len(s.queue) > 0 && s.queue[0].kind != expSync {
		s.queue[0].failed()
		s.popLocked()
	}
	if len(s.queue) == 0 {
		s.skipping = true // the Sync is yet to come
	}
}

// waitIdle waits until the server has answered everything that ends in ReadyForQuery.
func (s *session) waitIdle() error {
	s.qmu.Lock()
	ch := s.idle
	s.qmu.Unlock()
	if ch == nil {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-s.ctx.Done():
		return context.Cause(s.ctx)
	}
}

// enterCopyIn notes that the server entered copy-in mode for the head expectation and
// forgets the Syncs already queued behind it that the server will ignore.
func (s *session) enterCopyIn(head *expect) {
	s.qmu.Lock()
	defer s.qmu.Unlock()
	// A Query with several COPY FROM STDIN: the CopyDones of the ones before count.
	s.copyIn, s.copyInEnds = true, head.copyEnds+head.copyPhases
	head.copyPhases++
	kept := s.queue[:1]
	for _, e := range s.queue[1:] {
		if e.kind == expSync && e.copyEnds == s.copyInEnds {
			s.pendingRFQ--
			continue
		}
		kept = append(kept, e)
	}
	clear(s.queue[len(kept):])
	s.queue = kept
	if s.pendingRFQ == 0 && s.idle != nil {
		close(s.idle)
		s.idle = nil
	}
}

func (s *session) leaveCopyIn() {
	s.qmu.Lock()
	s.copyIn = false
	s.qmu.Unlock()
}

// unsafeEncodings are client encodings in which a multibyte character can end in the
// byte 0x5C (backslash): the server would see a character where pg_query sees an escape.
var unsafeEncodings = map[string]bool{
	"SJIS": true, "SHIFT_JIS_2004": true, "BIG5": true, "GBK": true, "UHC": true, "GB18030": true, "JOHAB": true,
}

// noteParam records the server settings the classifier's soundness depends on.
func (s *session) noteParam(name, value string) {
	switch name {
	case "standard_conforming_strings", "client_encoding":
	default:
		return
	}
	s.qmu.Lock()
	defer s.qmu.Unlock()
	if name == "client_encoding" {
		s.encoding = value
	} else {
		s.scs = value
		if s.scsStart == "" {
			s.scsStart = value
		}
	}
}

// backslashSafe reports whether a statement containing a backslash will be tokenised by
// the server as pg_query tokenised it. pg_query assumes standard_conforming_strings=on
// and an ASCII-safe encoding; a backslash is the only byte whose meaning differs
// otherwise. The state is only known when nothing is in flight: a pipelined SET (or
// set_config()) ahead of the statement could change it.
func (s *session) backslashSafe() error {
	if s.uw.Buffered() > 0 { // what is forwarded must reach the server before we wait on it
		if err := s.uw.Flush(); err != nil {
			return s.upstreamGone(err)
		}
	}
	if err := s.waitIdle(); err != nil {
		return err
	}
	if s.unsyncedExec {
		return errors.New("a statement containing a backslash cannot be checked while earlier statements of the same pipeline are unsynchronised; send Sync first")
	}
	s.qmu.Lock()
	scs, scsStart, enc := s.scs, s.scsStart, s.encoding
	s.qmu.Unlock()
	if scs != "on" {
		return errors.New("statements containing a backslash are refused while standard_conforming_strings is off")
	}
	if scsStart != "on" {
		// The session began with it off: RESET ALL, DISCARD ALL or a rollback earlier
		// in the same Query would turn it off again before a body is read.
		return errors.New("statements containing a backslash are refused in a session that began with standard_conforming_strings off")
	}
	if unsafeEncodings[enc] || enc == "" {
		return fmt.Errorf("statements containing a backslash are refused with client_encoding %s", clean(enc))
	}
	return nil
}

// safely runs a caller's callback, turning a panic into an error: a bug in a policy
// callback must not take down every session in the process.
func safely(f func() error) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("callback panicked: %v", r)
		}
	}()
	return f()
}

// audit passes an event to Config.Audit.
func (s *session) audit(ev Event) {
	// Normalisation leaves the constants of DDL as written (PREPARE p AS SELECT … WHERE
	// card = '4111…', CREATE VIEW, a DEFAULT, a CHECK) and identifiers: the audit log
	// has them masked, as the transcript does.
	ev.Statement.SQL = s.maskedText(ev.Statement.SQL)
	ev.Statement.Normalized = s.maskedText(ev.Statement.Normalized)
	ev.Message = s.maskedText(ev.Message)
	if err := safely(func() error { s.cfg.Audit(ev); return nil }); err != nil {
		s.log.Error("audit callback failed", "err", err)
	}
}
