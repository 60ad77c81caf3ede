// Package bastion is the bastion's SSH server: it authenticates users by
// their certificate, routes every channel to a configured target or to an
// admin command, opens its own connection to the target with a certificate
// minted for that session, and puts the policy (command rules, approvals,
// masking) and the recording on the data path.
//
// Downstream is the user's side (the OpenSSH client, psql inside a
// forward); upstream is the target's (a server's sshd, a PostgreSQL
// server, a TCP service). The bastion terminates both: it never just
// tunnels.
//
// # The life of a connection
//
// [Server.Serve] accepts TCP connections; gliderlabs/ssh runs the handshake
// with the bastion's host certificate and calls back for the user key.
// Authentication (auth.go) accepts only certificates from the user CA:
// exact CA key, validity window, one principal, known critical options,
// source-address, revocation list. The [ca.Identity] read from the
// certificate rides in the connection's permissions. Each new channel then
// goes to handleOuter (route.go), which picks one of five paths:
//
//	"session", SSH user = own name     → adminSession (admin.go): whoami, targets,
//	                                     requests, approve, deny, and Config.Admin
//	"session", user = login@target     → proxySession (proxy.go): a shell, exec or
//	                                     sftp on an SSH target
//	"direct-tcpip" to an SSH target    → intercept (route.go): ssh -J. The channel
//	                                     carries a second SSH connection that the
//	                                     bastion terminates as the target (a host
//	                                     certificate for the target's name) and whose
//	                                     session channels go to proxySession
//	"direct-tcpip" to a tcp target     → forward (route.go): a byte relay
//	"direct-tcpip" to a postgres target→ forward, then postgres (postgres.go): the
//	                                     PostgreSQL-aware relay of package pgproxy
//	the PostgreSQL listener            → ServePostgres (pglisten.go): TLS and the
//	                                     StartupMessage (pgproxy.Accept); the client
//	                                     certificate from the database-client CA is
//	                                     the identity (ca.VerifyDBAccess, revocation),
//	                                     dbname=TARGET/DATABASE the target; then the
//	                                     same beginForward and postgres as a forward
//
// Anything else is refused with a reason naming the role or rule. Routing
// is by target name only; addresses are never dialled as given
// (upstream.go checks every resolved address).
//
// # A session
//
// proxySession checks the role (policy.CheckSSH), dials the target first
// (so its refusal reaches the user as the reason), opens the upstream
// channel, then accepts the user's. A [session] (session.go) is what every
// path shares: its ID, identity, target, context (cancelled with a cause),
// recording, timers for idle and maximum duration, and closers. A
// [proxy] relays one session channel:
//
//   - the session's own goroutine (started fresh once the target is
//     dialled, so an idle session does not keep the dial's stack) relays
//     upstream stdout through an outputPipeline: the shell guard's terminal emulator (raw), masking,
//     the recording, downstream. Every byte of target output takes this one
//     path;
//   - one goroutine relays stderr through a second pipeline;
//   - the user's input (a userInput, input.go) is read on its consumer's
//     goroutine: pumpStdin forwards it unjudged (exec, sftp), or a
//     shellGuard (guard.go) judges it line by line (shells, and execs of a
//     shell that reads its input), holding each submit key until the
//     line's verdict; a wait for an approver watches the keys through a
//     reader goroutine started then;
//   - one loop (proxy.requests, over upstreamConn.serve) receives both
//     sides' channel requests and hands each side's to a requestQueue
//     (requests.go), which handles them in order on a goroutine that runs
//     only while some are queued: the user's with downstreamRequest
//     (pty-req, env, window-change, signal, and the one
//     shell/exec/subsystem request, which start judges and begins the
//     recording for), the target's with upstreamRequest (exit-status,
//     exit-signal). The loop never waits on a handler, so a forwarded
//     request waiting for its answer cannot hold up the requests x/crypto
//     delivers before that answer. The upstream connection is an
//     upstreamConn, not an ssh.Client: the same loop answers what the
//     target sends on the connection itself (global requests fail, channel
//     opens are rejected), saving ssh.Client's three goroutines.
//
// A decision on a command goes through proxy.enforce: audit, marker, the
// message to the user, and for approve rules the wait on [approvals]
// (approval.go), which fails closed (no decision by the timeout is a
// denial).
//
// # Teardown
//
// The order toward the user is a tested contract (RFC 4254 §6.10, as
// OpenSSH's sshd does it): exit-status as soon as the target sends it, the
// remaining output, EOF, then close. The stdin reader is not waited for:
// many clients never half-close their side. A session ended by the bastion
// (a rule, an approval timeout, a failed strict recording, idle or maximum
// duration, shutdown) is stopped with a cause: the user sees it on stderr,
// the context is cancelled with it, the closers run, and finish ends the
// recording (seal) and writes the audit record.
//
// # Who holds what
//
// [Server] holds the configuration, the listeners and the live sessions,
// and three parts with state of their own: the host certificates it
// presents (hostCerts), what PostgreSQL forwards share (pgShared: the
// cancel registry, the certificate offered inside tunnels) and the
// approvals. It never holds a session's state. A session gets a
// sessionEnv when it starts (env.go): the policy, the audit log, the
// approvals, the recorder, metrics, the clock and the logger; the session,
// its proxy and its shellGuard reach nothing else of the Server. The
// policy is a function there, read at each decision, so a reload reaches
// the next command of every live session. The recorder and
// the audit log are reached only through the small interfaces in iface.go
// ([Recorder], [Auditor], [Revocations], [HostKeyPins]); internal/app
// adapts the store to them, so this package never imports it.
//
// # Concurrency
//
// A Server is safe for concurrent use. A session's fields are guarded by
// its mutex; its recording by recMu. The shell guard owns its tracker under
// its own lock, fed by the output goroutine and the input goroutine.
package bastion
