// Package pgproxy is the bastion's PostgreSQL-aware forward: it terminates a client's
// PostgreSQL connection (downstream: psql, pgx, any libpq program, arriving over an SSH
// direct-tcpip channel), opens its own verified TLS connection to the database (upstream)
// authenticated with a per-connection client certificate, judges every SQL statement
// before any of it reaches the server, masks result values before they reach the client
// or the recording, and writes a readable transcript and one audit event per statement.
//
//	psql ──(plain or TLS)──▶ pgproxy ──(TLS, client cert CN=db user)──▶ PostgreSQL
//	                            │ Authorize(user, database, replication)
//	                            │ Classify ─▶ Judge: allow / block / hold (approval)
//	                            │ MaskColumn, MaskValue on RowDescription/DataRow
//	                            └ Transcript (asciicast-ready text), Audit events
//
// # Basics
//
// The SSH server calls Serve (or New once and Proxy.Serve) on each channel to a
// `kind: postgres` target, with a Config whose callbacks are bound to that session: it
// knows nothing of SSH, the CA, the policy engine or the recorder. The bastion's own
// PostgreSQL listener first calls Accept (direct.go: TLS required, the StartupMessage
// read so the caller can learn who and which target) and then Serve on Front.Conn, which
// replays the StartupMessage. Startup:
//
//   - SSLRequest is answered 'S' and TLS with Config.ServerTLS, or 'N' when it is nil;
//     bytes pipelined behind an SSLRequest drop the connection (CVE-2021-23214).
//     GSSENCRequest is answered 'N'. Protocol 3.x beyond 3.0 and _pq_ options are
//     declined with NegotiateProtocolVersion.
//   - CancelRequest: the proxy hands each client a random backend key of its own and
//     keeps the mapping in the shared CancelRegistry, so a cancel arriving on any forward
//     reaches the right upstream backend; unknown keys are dropped silently.
//   - Startup parameters: only user, database, replication and the display settings
//     drivers send by default (application_name, client_encoding, DateStyle, TimeZone,
//     IntervalStyle, extra_float_digits) are forwarded, plus Config.StartupParams;
//     anything else (role, options, session_authorization, search_path, ...) ends the
//     startup with FATAL 42501 naming it.
//   - Authorize sees user, database, replication and all parameters; its error goes to
//     the client as FATAL 28000.
//   - Upstream: SSLRequest and a fully verified handshake (InsecureSkipVerify refused),
//     presenting ClientCert(user); or, weaker, a password from Password (SCRAM-SHA-256,
//     MD5, cleartext only over TLS). The client is told AuthenticationOk by the proxy,
//     then gets the server's ParameterStatus, the proxy's BackendKeyData and
//     ReadyForQuery.
//
// Statements: a simple Query is classified (Classify: pg_query, PostgreSQL's own parser;
// function, procedure and DO bodies included, see Statement.Body) and every statement in
// it judged before any is sent; in the extended protocol each
// Parse is judged, so a prepared statement blocked at Parse can never be executed; a
// fastpath FunctionCall is judged as kind "function_call". COPY data is forwarded as data
// and never parsed. A refused statement never reaches the server: the proxy sends in its
// place a statement the server rejects with a syntax error, so that the server does what
// it does after any error (aborts the transaction, skips to Sync, answers
// ReadyForQuery) and client and server stay in step; the client sees the proxy's own
// ErrorResponse instead (42501 naming the rule; 42601 when the SQL does not parse). A
// held statement sends the client a NoticeResponse with the request ID, then waits for
// Verdict.Wait; a CancelRequest from the client (Ctrl-C) ends the wait and the
// statement fails with 57014. An approval covers one execution: a prepared statement
// that needed approval (Parse, SQL PREPARE) is judged again, with Protocol "execute"
// and its bound values, at every later execution (the first Execute of each portal
// bound from it, every SQL EXECUTE of it), its preparation's approval covering the
// first (held.go).
//
// Masking: a result column is masked when Config.Masks traces its value to a masked
// source column (lineage.go: renaming, expressions, whole rows, subqueries, CTEs, views,
// RETURNING, cursors, prepared statements; the catalog is read over a side connection,
// catalog.go) or when MaskColumn names its output name. The analysis reuses the parse
// tree the Classifier cached for the statement's key (cache.go), so a statement repeated
// with other constants is parsed once; an analysis that reads a constant's value on the
// tree of another text is discarded and the statement parsed after all
// (FuzzLineageCachedTree). A session also reuses the analysis itself for a statement
// shape it ran before (a read-only statement without bodies that read no constant),
// while the catalog answers and its own definitions are unchanged and every catalog
// answer is still fresh (masking.go, linMemo). Masked columns are replaced by
// ColumnMask (their RowDescription type becomes text so the mask decodes); text values
// go through MaskValue; a binary value that must be masked (by column, or because
// MaskValue matches its bytes or the decimal form of a number in it, inside arrays,
// records and ranges too, or because it is of a type the proxy cannot take apart) is sent
// as NULL and the client gets one NoticeResponse per statement. Rows stream one at a
// time; a row that cannot be masked (MaskValue panics, the row does not match its
// description) is withheld, never sent, and the client is told how many. Notifications,
// text COPY TO data, function results, ParameterStatus values and every field of error
// messages but the structural ones (severity, SQLSTATE, position) go through MaskValue
// too; with MaskValue, binary COPY TO STDOUT is refused. With Masks, statements that
// would copy masked values where no mask follows them are refused, COPY TO STDOUT only
// when it would send a masked column, and the text of errors and notices raised by a
// statement that reads masked columns or writes to (alters) a relation with masked
// columns is withheld, all fields but the structural ones (constraint violations quote
// the row), as is that of a COMMIT after such a write (deferred constraints) and of any
// error naming a relation with masked columns (a cascade, a trigger); without
// Masks, COPY TO STDOUT is refused while MaskColumn is set.
//
// # Concurrency
//
// Each connection runs two goroutines: one reads the client, judges and writes upstream
// (only it writes upstream); the other reads the server, masks and writes to the client.
// With Config.Masks both read the catalog through one side connection (opened on first
// use, closed with the session), one query at a time under its lock.
// A queue of expectations, one per forwarded message the server answers, lets the second
// attribute every response to its request. Where the server's answers could not be
// foreseen, the proxy fails closed rather than guess: a ReadyForQuery that answers a
// Query or FunctionCall with nothing before it ends the session (a Sync sent during a
// COPY FROM STDIN is answered or not depending on whether the COPY has already failed);
// a portal is trusted to be what was bound only until something else runs on the server
// (SQL can close it and open a cursor of the same name), and prepared statements'
// descriptions are dropped after SQL that may replace them (DEALLOCATE, PREPARE,
// DISCARD, anything unknowable); results of unknown origin are withheld under masking. Judge, Wait, MaskColumn, MaskValue, Audit and
// the Transcript writer are called from these goroutines and must be safe for concurrent
// use across connections; a callback that panics fails closed (Judge blocks, Authorize
// refuses, MaskColumn masks, MaskValue withholds the row) instead of taking the process
// down. A Config's CancelRegistry and Classifier are shared across
// connections. Serve returns when both goroutines are done; cancelling its context ends
// the connection with a FATAL message carrying context.Cause.
//
// # Caveats
//
//   - The parser is PostgreSQL 17's (pg_query v6); statements only an older server
//     accepts fail closed, and a newer server's new syntax is refused as unparseable.
//   - pg_query is C code running in the bastion's process: a crash there takes the
//     process down. Only its parser, normaliser and lexer are used (its deparser crashes
//     on some trees, found by FuzzClassify), and the classifier is fuzzed.
//   - pg_query reads text as standard_conforming_strings=on in an ASCII-safe encoding.
//     The proxy tracks both settings from the server's ParameterStatus and refuses any
//     statement containing a backslash (the only byte whose meaning changes) unless both
//     are safe and nothing is in flight that could have changed them. A change it could
//     not see that way (earlier in the same Query, before a DO body is read; a
//     function's SET clause, applied when its body is read at each call; a role's or
//     database's setting) is refused outright: every statement that would set
//     standard_conforming_strings to anything but on, in any form (SET, RESET,
//     set_config, CREATE/ALTER FUNCTION ... SET, ALTER ROLE/DATABASE/SYSTEM), fails with
//     ErrUnsafeSetting; a function whose catalog definition sets it is unknowable to the
//     lineage analysis; and a session that began with it off refuses backslashes
//     throughout (RESET ALL would restore off).
//   - pg_query redirects the process's stderr around each call, which is not safe from
//     two threads at once: every call into it is serialised (pgquery.go).
//   - Kinds are syntactic: "delete_without_where" means no WHERE that refers to a column
//     (in a body, a reference to one of its variables or parameters does not count).
//     A drop has the kinds of what it drops with it: DROP SCHEMA ... CASCADE and DROP
//     OWNED are drop_table, drop_view, drop_function, ... too, and unknowable (which
//     tables is not in the text).
//     Bodies are judged where they are written (CREATE FUNCTION/PROCEDURE, DO); a
//     function created outside the proxy is opaque when called. EXECUTE of a string
//     built at run time, bodies in languages other than sql and plpgsql, dblink and
//     query_to_xml-style functions are marked Unknowable.
//   - MaskColumn sees result column names, which a query can rename ("SELECT card AS
//     x"): on its own it is a guardrail; Masks follows the values. Lineage is computed
//     from the parse tree and the catalog as the side connection sees it (committed;
//     cached answers are revalidated against the server at the next statement or Bind
//     after any proxied session may have changed a definition, and at least every
//     revalidateEvery (definitionsEpoch); relations the session created are remembered); a
//     name that could mean several columns takes all of them, and what cannot be traced
//     is unknowable (masked, or refused with Masks.Block). Operators, casts, domain
//     checks and attribute notation are followed to their functions (lineage_hooks.go);
//     after a statement that may change a definition, the catalog is suspect until the
//     transaction ends (lineage_txn.go).
//     Masking hides values, not what a WHERE clause over them selects. MaskValue (a
//     content detector) catches card numbers however they are selected.
//   - Replication connections are refused unless Authorize allows them; replication
//     commands are then judged as kind "replication_command". With MaskValue, the
//     streams (START_REPLICATION, BASE_BACKUP) are refused: WAL and data files hold
//     values in binary form the value masker cannot see, as binary COPY is refused.
//   - Password authentication means the server holds a long-lived secret and the bastion
//     a copy of it: prefer client certificates. SCRAM passwords are not SASLprep'd.
package pgproxy
