package pgproxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"time"
)

// Errors. Serve wraps them with what happened; test with errors.Is.
var (
	// ErrConfig: a Config is incomplete or unsafe (New and Serve).
	ErrConfig = errors.New("pgproxy: invalid config")
	// ErrProtocol: a peer broke the wire protocol (see ProtocolError for the detail).
	ErrProtocol = errors.New("pgproxy: protocol violation")
	// ErrMessageTooLarge: a message exceeded Limits.MaxMessage or Limits.MaxStartup.
	ErrMessageTooLarge = errors.New("pgproxy: message too large")
	// ErrPipelinedTLS: the client sent bytes after SSLRequest before the TLS handshake.
	ErrPipelinedTLS = errors.New("pgproxy: data pipelined before the TLS handshake")
	// ErrRefused: the startup was refused (Authorize, replication, bad parameters).
	ErrRefused = errors.New("pgproxy: connection refused")
	// ErrUpstream: the upstream could not be reached, verified or authenticated to.
	ErrUpstream = errors.New("pgproxy: upstream")
	// ErrTranscript: writing the transcript failed; the connection is ended rather than
	// left running unrecorded.
	ErrTranscript = errors.New("pgproxy: transcript write failed")
	// ErrUnparseable: Classify could not parse the SQL.
	ErrUnparseable = errors.New("pgproxy: cannot parse SQL")
	// ErrUnsafeSetting: Classify refused SQL that would change how the server reads later
	// SQL text (standard_conforming_strings set to anything but on, when or where the
	// proxy cannot see it): what the proxy judged would no longer be what runs. Callers
	// must refuse the statement, as for ErrUnparseable.
	ErrUnsafeSetting = errors.New("pgproxy: statement changes how SQL is read")
)

// ProtocolError says which peer broke the protocol and how. It matches ErrProtocol, or
// ErrMessageTooLarge when a size limit was exceeded.
type ProtocolError struct {
	Side     string // "client" or "server"
	Type     byte   // message type, 0 for startup packets
	Reason   string
	tooLarge bool
}

func (e *ProtocolError) Error() string {
	if e.Type == 0 {
		return fmt.Sprintf("pgproxy: %s protocol violation: %s", e.Side, e.Reason)
	}
	return fmt.Sprintf("pgproxy: %s protocol violation in message %q: %s", e.Side, e.Type, e.Reason)
}

func (e *ProtocolError) Is(target error) bool {
	return target == ErrProtocol || (e.tooLarge && target == ErrMessageTooLarge)
}

func protoErr(side string, typ byte, reason string) error {
	return &ProtocolError{Side: side, Type: typ, Reason: reason}
}

// Action is what Judge decided. The zero value is Block, so a forgotten verdict fails closed.
type Action int

const (
	// Block refuses the statement: it never reaches the server, and the client gets an
	// ErrorResponse (SQLSTATE 42501) naming the rule.
	Block Action = iota
	// Allow sends the statement on.
	Allow
	// Hold needs approval: the client is sent a NoticeResponse with Verdict.RequestID,
	// then Verdict.Wait decides. Nothing of the statement reaches the server meanwhile.
	Hold
)

func (a Action) String() string {
	switch a {
	case Allow:
		return "allow"
	case Block:
		return "block"
	case Hold:
		return "hold"
	}
	return fmt.Sprintf("Action(%d)", int(a))
}

// Verdict is Judge's decision on one statement.
type Verdict struct {
	Action Action
	// Rule names the deciding rule; it appears in errors, notices, the transcript and audit.
	Rule string
	// Message is shown to the client with a block or hold.
	Message string
	// RequestID identifies a held statement's approval request (Hold only).
	RequestID string
	// Wait blocks until a held statement is decided and returns the final verdict (Allow
	// or Block). It must honour ctx. Required with Hold; an error, or a nil Wait, denies.
	Wait func(ctx context.Context) (Verdict, error)
	// AtExecution, with Hold on a statement that only prepares (Prepares: a Parse, an
	// SQL PREPARE), asks nothing now: the statement is prepared, and each execution of
	// it is judged with the values bound (Protocol "execute"; for SQL EXECUTE its
	// text), so that whoever approves sees them. A Judge sets it for a statement with
	// $n parameters (HasPlaceholders): an approval of "SET balance = $1" at Parse would
	// cover an execution with any balance. RequestID and Wait are not used. Without
	// it, such a statement is approved at Parse and its first execution asks again.
	AtExecution bool
}

// Startup is what the client asked for in its startup packet.
type Startup struct {
	User     string
	Database string // defaults to User, as PostgreSQL does
	// Replication is true for replication=true/on/yes/1 and replication=database.
	Replication bool
	// Params are the startup parameters as sent (user, database, replication,
	// application_name, client_encoding, ...), all of which are forwarded upstream: a
	// parameter outside the allowlist (see Config.StartupParams) ends the startup before
	// Authorize is called, and protocol extensions (_pq_.*) are declined.
	Params map[string]string
}

// Statement is one SQL statement as the classifier understood it.
type Statement struct {
	// SQL is the exact text of this statement as the client sent it.
	SQL string
	// Kinds are the statement's kinds, its own first, then those of statements nested in
	// it (CTEs, EXPLAIN ANALYZE, PREPARE, rule actions, bodies): "select", "insert",
	// "update", "update_without_where", "delete", "delete_without_where", "merge",
	// "truncate", "drop", "drop_table" (drop_<object>), "drop_database", "create",
	// "create_table" (create_<object>), "create_function", "alter", "alter_table"
	// (alter_<object>), "rename", "grant", "revoke", "set", "reset", "set_config" (a call
	// to set_config()), "copy", "copy_from", "copy_to", "copy_program", "copy_from_stdin",
	// "copy_to_stdout", "do", "execute", "prepare", "call", "explain", "transaction" with
	// "begin"/"commit"/"rollback"/..., "lock", "vacuum", "load", "values", "function_call"
	// (fastpath), "replication_command"; what the statement can do beyond tables
	// (KindRoleChange, KindFileRead, KindFileWrite, KindServerProgram,
	// KindRemoteConnection, KindServerAdmin, by statement or by function call); and for
	// other statements PostgreSQL's node name in snake case (e.g. "checkpoint").
	Kinds []string
	// Tables are the relations named, schema-qualified when written so ("public.t");
	// for a relation the statement writes to that is a view, also the relations the view
	// reads, through views of views, schema-qualified as the catalog spells them (see
	// views.go: where they cannot be known, Unknowable says why).
	Tables []string
	// Functions are the functions called, schema-qualified when written so. They include
	// the last name of each column reference or field selection with a qualifier (t.f,
	// (x).f): PostgreSQL calls f(t) when f is no column or field of t.
	Functions []string
	// AttrFunctions are the names in Functions read only in attribute notation: each is a
	// call only if a function of that name exists, and a column or field otherwise.
	AttrFunctions []string
	// Normalized is the statement with constants replaced by $n, in canonical spelling
	// for regex rules: keywords upper case, unquoted identifiers lower case, comments
	// gone, one space where the text had any whitespace ("DROP TABLE public.t").
	Normalized string
	// Unknowable is non-empty when the statement's effect cannot be known from its text
	// (EXECUTE of a string built at run time in a body, a body in another language, a
	// function that executes an SQL string, set_config() of a computed setting name, a
	// fastpath function call).
	Unknowable string
	// Protocol is "simple" (Query), "parse" (extended protocol Parse), "fastpath", or
	// "body" for a statement of a Body; "execute" for the execution of a prepared
	// statement that needed approval (an Execute of a portal bound from it: SQL is the
	// prepared text, Params the values bound), judged again for each execution; and
	// "prepared" for the prepared statement in the Body of an SQL EXECUTE of one.
	Protocol string
	// Params are the parameter values bound for an "execute" statement, as SQL literals
	// ('text', NULL, or '\x...' for a value sent in binary), in order.
	Params []string
	// Body lists the statements of the function, procedure and DO bodies this statement
	// writes (depth first, bodies within bodies included), each classified as if sent
	// directly: SQL is the body statement's text ("SELECT " + expression for a PL/pgSQL
	// expression). Kinds, Tables and Functions above already include theirs, and
	// Unknowable is set when any part of a body is unknowable (dynamic EXECUTE, another
	// language). A Judge that matches more than kinds and tables (a regex over
	// Normalized) must judge each body statement as well, the strictest verdict winning.
	Body []Statement
}

// Has reports whether kind is among st.Kinds.
func (st *Statement) Has(kind string) bool {
	for _, k := range st.Kinds {
		if k == kind {
			return true
		}
	}
	return false
}

// Outcome is what became of a statement.
type Outcome string

const (
	OutcomeOK      Outcome = "ok"      // the server completed it
	OutcomeError   Outcome = "error"   // the server returned an error
	OutcomeBlocked Outcome = "blocked" // refused by a rule, or failed closed
	OutcomeDenied  Outcome = "denied"  // held for approval and not approved
	OutcomeNotRun  Outcome = "not_run" // part of a query another statement of which failed or was refused
)

// Event is one statement outcome, for the audit log.
type Event struct {
	Time      time.Time
	User      string
	Database  string
	Statement Statement
	Outcome   Outcome
	Rule      string // the deciding rule, if any
	Message   string // the rule's message, or the server's error message
	RequestID string // approval request, for held statements
	Tag       string // command tag ("INSERT 0 1")
	Rows      int64  // rows returned or affected
	Duration  time.Duration
	SQLState  string
	// Withheld rows (masking failed) and NulledBinary values (binary cells that had to be
	// masked) in this statement's result.
	Withheld     int
	NulledBinary int
}

// Limits bound what a peer can make the proxy hold. Zero values take the defaults.
type Limits struct {
	// MaxMessage is the largest message body accepted from either side; default 1 GiB - 1,
	// PostgreSQL's own limit.
	MaxMessage int
	// MaxStartup is the largest startup packet; default 10 KiB (PostgreSQL's is 10000 bytes).
	MaxStartup int
	// MaxSQL is the longest SQL text classified; longer statements fail closed (default 16 MiB).
	MaxSQL int
	// StartupTimeout bounds the whole startup: client packets, TLS, upstream connection and
	// authentication (default 30s). It works through the connections' deadlines.
	StartupTimeout time.Duration
}

const (
	defaultMaxMessage     = 1<<30 - 1
	defaultMaxStartup     = 10 << 10
	defaultMaxSQL         = 16 << 20
	defaultStartupTimeout = 30 * time.Second
	defaultTranscriptRows = 20
)

// Config is one forwarded connection's configuration. The SSH server builds it per
// direct-tcpip channel, with callbacks bound to the session's identity and policy.
type Config struct {
	// DialUpstream connects to the target's PostgreSQL port. Required.
	DialUpstream func(ctx context.Context) (net.Conn, error)
	// UpstreamTLS verifies the target: RootCAs = the target's CA and ServerName set;
	// InsecureSkipVerify is refused. Required unless Password is set (then nil means a
	// plaintext upstream connection, which is only as private as the network).
	UpstreamTLS *tls.Config
	// ClientCert returns the client certificate presented upstream for dbUser (CN = dbUser,
	// short-lived): the server needs only `hostssl ... cert`. Called once per connection,
	// after Authorize. Either ClientCert or Password is required.
	ClientCert func(ctx context.Context, dbUser string) (*tls.Certificate, error)
	// Password is the weaker alternative for servers that cannot do certificate
	// authentication: SCRAM-SHA-256 or MD5 with a long-lived secret the server also holds.
	// Cleartext password requests are answered only over TLS.
	Password func(ctx context.Context, dbUser string) (string, error)
	// ServerTLS is offered to clients that send SSLRequest; nil answers 'N' (the SSH
	// tunnel already encrypts).
	ServerTLS *tls.Config
	// StartupParams names startup parameters forwarded to the server besides the
	// built-in allowlist (user, database, replication, application_name,
	// client_encoding, DateStyle, TimeZone, IntervalStyle, extra_float_digits), e.g.
	// "search_path". Names are case-insensitive. Any other parameter, "options" and
	// "role" included, ends the startup with a FATAL error naming it. nil adds none.
	StartupParams []string
	// Authorize decides whether this user, database and replication mode are allowed; its
	// error text is sent to the client. Required.
	Authorize func(ctx context.Context, s Startup) error
	// Judge decides on each statement before any of it reaches the server. It may block
	// (approval) and must honour ctx. Required.
	Judge func(ctx context.Context, st Statement) Verdict
	// RulesVersion identifies the rules Judge applies now (a comparable value, such as a
	// pointer to the policy in force), or nil when they never change. A statement
	// prepared under other rules (Parse, SQL PREPARE) is judged again, as the execution
	// it is, when it next runs (Bind, SQL EXECUTE): what was prepared before a reload
	// that blocks it must not run after it. nil judges prepared statements only where
	// they are prepared (and each execution of one that needed approval).
	RulesVersion func() any
	// MaskColumn reports whether a result column (by its name in RowDescription) is masked
	// entirely. nil masks no column.
	MaskColumn func(column string) bool
	// Masks masks result columns by lineage: a column whose value derives from a masked
	// source column (through renaming, expressions, whole-row references, subqueries,
	// CTEs, views, RETURNING, cursors, prepared statements) is masked like a column
	// MaskColumn names, and statements that would copy masked values where no mask
	// follows them are refused. The proxy reads the catalog over a side connection of
	// its own (same dialler, TLS and credentials). nil: only MaskColumn applies.
	Masks *ColumnMasks
	// MaskValue inspects one result value (text cells; also COPY data, notifications and
	// error messages) and returns the replacement and true when it must be masked. It
	// must not modify or keep v. nil masks nothing.
	MaskValue func(v []byte) ([]byte, bool)
	// Transcript receives the readable transcript ("shop=> SELECT ...\r\n(3 rows,
	// 1.2 ms)\r\n", CRLF line ends, control characters escaped) for the recording. A write
	// error ends the connection. nil discards it.
	Transcript io.Writer
	// Wire, when set, receives the client side of the conversation, for a capture of
	// it: the StartupMessage, then each whole message the client sent, through
	// MaskValue (fromClient), and every byte written to the client, which is after
	// masking (!fromClient). TLS is already removed; the SSLRequest and GSSENCRequest
	// exchanges are left out, so the bytes read as a plaintext connection. Calls for
	// one direction come from one goroutine at a time, in order; p must not be kept. An
	// error ends the connection (like a transcript write error).
	Wire func(fromClient bool, p []byte) error
	// TranscriptRows is how many rows of each result go into the transcript (after
	// masking); 0 means 20, negative none.
	TranscriptRows int
	// Audit is called once per statement outcome, from the connection's goroutines; it
	// must not block for long. nil discards events.
	Audit func(ev Event)
	// Cancels maps the backend keys the proxy hands out to upstream ones. Share one
	// registry across all connections so a CancelRequest arriving on any forward reaches
	// the right backend. nil disables query cancellation.
	Cancels *CancelRegistry
	// Classifier caches statement classification; nil uses a process-wide default.
	Classifier *Classifier
	// Limits bound sizes and the startup time.
	Limits Limits
	// Now is the clock; nil means time.Now.
	Now func() time.Time
	// Logger receives debug and warning logs; nil discards them.
	Logger *slog.Logger
}

// ColumnMasks says which source columns are masked.
type ColumnMasks struct {
	// Source reports whether a column of a relation (table, view, materialized view,
	// foreign table) is masked. The relation's own name and schema are given, and for a
	// partition or inheritance child also each of its ancestors'. Required; a panic
	// counts as masked.
	Source func(schema, table, column string) bool
	// Rule names the masking rule(s), for refusals and the audit log.
	Rule string
	// Block refuses a statement with a result column whose lineage cannot be known (a
	// function whose body cannot be read, a cursor the proxy did not see...) instead of
	// masking that column, and refuses writing values of unknowable lineage too.
	Block bool
}

// Proxy serves connections with one checked Config.
type Proxy struct {
	cfg Config
}

// New checks cfg, fills in defaults and returns a Proxy.
func New(cfg Config) (*Proxy, error) {
	switch {
	case cfg.DialUpstream == nil:
		return nil, fmt.Errorf("%w: DialUpstream is required", ErrConfig)
	case cfg.Authorize == nil:
		return nil, fmt.Errorf("%w: Authorize is required", ErrConfig)
	case cfg.Judge == nil:
		return nil, fmt.Errorf("%w: Judge is required", ErrConfig)
	case cfg.ClientCert == nil && cfg.Password == nil:
		return nil, fmt.Errorf("%w: ClientCert or Password is required", ErrConfig)
	case cfg.UpstreamTLS == nil && cfg.Password == nil:
		return nil, fmt.Errorf("%w: UpstreamTLS is required with certificate authentication", ErrConfig)
	case cfg.ClientCert != nil && cfg.UpstreamTLS == nil:
		return nil, fmt.Errorf("%w: ClientCert needs UpstreamTLS", ErrConfig)
	}
	if t := cfg.UpstreamTLS; t != nil {
		if t.InsecureSkipVerify {
			return nil, fmt.Errorf("%w: UpstreamTLS.InsecureSkipVerify is not allowed: the target must be verified", ErrConfig)
		}
		if t.ServerName == "" {
			return nil, fmt.Errorf("%w: UpstreamTLS.ServerName is required to verify the target", ErrConfig)
		}
	}
	if cfg.Masks != nil && cfg.Masks.Source == nil {
		return nil, fmt.Errorf("%w: Masks.Source is required", ErrConfig)
	}
	if t := cfg.ServerTLS; t != nil && len(t.Certificates) == 0 && t.GetCertificate == nil && t.GetConfigForClient == nil {
		return nil, fmt.Errorf("%w: ServerTLS has no certificate", ErrConfig)
	}
	if cfg.Limits.MaxMessage < 0 || cfg.Limits.MaxStartup < 0 || cfg.Limits.MaxSQL < 0 || cfg.Limits.StartupTimeout < 0 {
		return nil, fmt.Errorf("%w: negative limit", ErrConfig)
	}
	if cfg.Limits.MaxMessage == 0 {
		cfg.Limits.MaxMessage = defaultMaxMessage
	}
	if cfg.Limits.MaxStartup == 0 {
		cfg.Limits.MaxStartup = defaultMaxStartup
	}
	if cfg.Limits.MaxStartup < 16 {
		return nil, fmt.Errorf("%w: Limits.MaxStartup %d is below 16 bytes", ErrConfig, cfg.Limits.MaxStartup)
	}
	if cfg.Limits.MaxSQL == 0 {
		cfg.Limits.MaxSQL = defaultMaxSQL
	}
	if cfg.Limits.StartupTimeout == 0 {
		cfg.Limits.StartupTimeout = defaultStartupTimeout
	}
	if cfg.TranscriptRows == 0 {
		cfg.TranscriptRows = defaultTranscriptRows
	}
	if cfg.Transcript == nil {
		cfg.Transcript = io.Discard
	}
	if cfg.Audit == nil {
		cfg.Audit = func(Event) {}
	}
	if cfg.Classifier == nil {
		cfg.Classifier = defaultClassifier
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	return &Proxy{cfg: cfg}, nil
}

// Serve runs the proxy on one client connection until either side ends it or ctx is
// done, and closes client. It returns nil when the client terminated normally or the
// connection was a CancelRequest.
func Serve(ctx context.Context, client net.Conn, cfg Config) error {
	p, err := New(cfg)
	if err != nil {
		client.Close()
		return err
	}
	return p.Serve(ctx, client)
}
