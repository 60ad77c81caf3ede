// Package demo is `bastion demo`: a complete local bastion for a first look,
// started in one process on loopback, and the small SSH server it uses as a
// target. It is for local use only and is reachable only through the demo
// command; `bastion serve` cannot enable any part of it.
//
// # Basics
//
// Start brings up, in this order:
//
//   - the development OpenID provider (internal/devidp) with two users: alice, a
//     developer (group dev), and bob, an approver and auditor (group sre);
//   - a demo SSH target (Target): a gliderlabs/ssh server that runs a real shell
//     (bash, else sh) on a pty from creack/pty for `shell`, `shell -c` for `exec`,
//     passes window changes and signals and returns the exit status or signal. It
//     accepts only user certificates signed by exactly the bastion's target CA,
//     valid now, for a principal equal to the login, and presents a host key the
//     generated config pins;
//   - when PostgreSQL is installed, a throwaway cluster with a database holding
//     test card numbers, accepting only client certificates from the bastion's
//     database CA (`hostssl all all 127.0.0.1/32 cert`);
//   - the bastion itself through internal/app, exactly as `bastion serve` runs it,
//     from a config written to Dir/bastion.yaml with a block rule, an approval
//     rule, card masking and an SQL rule.
//
// Guide then says what to type next, each command working as printed.
//
// Everything the demo keeps lives in Config.Dir: the config, the CA keys and the
// recordings (data/), the log, the target's host key and home directory. Close
// stops every part and removes nothing from it; the database cluster, which is
// re-created at every start, lives in a temporary directory of its own and is
// removed.
//
// # Concurrency
//
// A Demo is started and closed from one goroutine; its parts serve connections
// concurrently. A Target serves any number of connections; each session runs
// its process in its own process group (its own session on a pty) and is hung
// up (SIGHUP, then SIGKILL) when its client goes away.
//
// # Caveats
//
//   - The identity provider authenticates nobody: anyone who can reach its
//     loopback port signs in as any demo user, and the demo target then runs a
//     shell as the user who started the demo. Every listener is on loopback.
//   - The target ignores the terminal modes of a pty request and supports no
//     subsystem (no sftp), no forwarding and no agent.
//   - A Target records which certificate extensions the last accepted key
//     carried, per connection; the bastion offers exactly one key.
package demo
