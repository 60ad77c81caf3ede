package app

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/duration"
	"github.com/bastionhq/bastion/internal/safetext"
	"github.com/bastionhq/bastion/player"
	"github.com/bastionhq/bastion/recorder"
)

// adminCommands are the admin commands that need the store. They run on
// the bastion (`ssh bastion sessions`); the CLI subcommands are thin
// clients of them, so the bbolt file is only ever opened by the server.
func (a *App) adminCommands() map[string]bastion.AdminCommand {
	return map[string]bastion.AdminCommand{
		"sessions": a.cmdSessions,
		"export":   a.cmdExport,
		"replay":   a.cmdReplay,
		"verify":   a.cmdVerify,
		"audit":    a.cmdAudit,
		"revoke":   a.cmdRevoke,
	}
}

// adminSpecs are the usage of the admin commands above: --help on the
// bastion prints them, and so does the CLI for its thin clients (AdminUsage).
// Each command defines its flags with the same function its usage does.
var adminSpecs = map[string]bastion.AdminUsage{
	"sessions": {Args: "[--user U] [--target T] [--kind K] [--since D] [--limit N] [--json]",
		Summary: "List recorded sessions, newest first: your own, or everyone's for auditors.",
		Flags:   func(fs *flag.FlagSet) { sessionsFlags(fs) }},
	"export": {Args: "ID [--format asciicast|pcap] [--follow [--from start|now]] [--raw]",
		Summary: "Write a session to stdout: asciicast v2 (plays in asciinema, with escape sequences that could attack the terminal neutralised unless --raw; a tcp session as a readable timeline), or pcap for a tcp or postgres session (Wireshark, tshark). Audited.",
		Flags:   func(fs *flag.FlagSet) { exportFlags(fs) }},
	"replay": {Args: "ID [--speed X] [--idle-limit D] [--raw] [--markers=false]",
		Summary: "Replay a session in this terminal with its original timing. Keys: space pauses, left/right seek 5s, +/- change speed, . steps while paused, q quits. Audited.",
		Flags:   func(fs *flag.FlagSet) { replayFlags(fs) }},
	"verify": {Args: "ID | --audit [--against FILE] [--json]",
		Summary: "Check a recording's hash chain, signed checkpoints and seal, or (auditors) the audit log's chain; --against compares the audit log with what a sink received.",
		Flags:   func(fs *flag.FlagSet) { verifyFlags(fs) }},
	"audit": {Args: "[--since D] [--json]",
		Summary: "Read the audit log (auditors).",
		Flags:   func(fs *flag.FlagSet) { auditFlags(fs) }},
	"revoke": {Args: "SERIAL | --user NAME [--reason R]",
		Summary: "Revoke a certificate by its serial, or everything a user holds now (--user: every certificate\n" +
			"issued to them up to this moment, their database and SQL API credentials and ID tokens, their\n" +
			"console sign-ins; their open sessions end within a second; a later login is not affected).\n" +
			"Your own, or anyone's for auditors.",
		Flags: func(fs *flag.FlagSet) { revokeFlags(fs) }},
}

// AdminUsage returns the usage of an admin command, built in or added here.
func AdminUsage(name string) (bastion.AdminUsage, bool) {
	if u, ok := adminSpecs[name]; ok {
		return u, true
	}
	return bastion.BuiltinAdminUsage(name)
}

// parseArgs parses flags that may come before, between or after the
// positional arguments ("revoke 123 --reason lost"), and returns the
// positional ones.
func parseArgs(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			return nil, err
		}
		if fs.NArg() == 0 {
			return pos, nil
		}
		pos = append(pos, fs.Arg(0))
		args = fs.Args()[1:]
	}
}

// newFlags makes a flag set whose errors go to the command's stderr and
// whose --help prints the command's usage to stdout.
func newFlags(name string, aio bastion.AdminIO) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(aio.Stderr)
	fs.Usage = func() {}
	return fs
}

// parseCommand parses a command's arguments. On --help it prints the
// usage to stdout and returns status 0 with done set; on a bad flag it
// says so with the usage line and returns status 2.
func parseCommand(name string, fs *flag.FlagSet, args []string, aio bastion.AdminIO) (pos []string, status int, done bool) {
	pos, err := parseArgs(fs, args)
	switch {
	case errors.Is(err, flag.ErrHelp):
		bastion.PrintAdminUsage(aio.Stdout, name, adminSpecs[name])
		return nil, 0, true
	case err != nil:
		return nil, usageError(name, aio), true
	}
	return pos, 0, false
}

// usageError tells the caller how the command is used; status 2.
func usageError(name string, aio bastion.AdminIO) int {
	return fail(aio, 2, "usage: %s %s (--help for more)", name, adminSpecs[name].Args)
}

func fail(aio bastion.AdminIO, status int, format string, args ...any) int {
	fmt.Fprintf(aio.Stderr, "bastion: "+format+"\n", args...)
	return status
}

// mayRead reports whether c may see session info: its own, or all for
// auditors.
func mayRead(c bastion.Caller, info recorder.SessionInfo) bool {
	return c.MaySee(info.User, info.Issuer, info.Actor)
}

func (a *App) session(c bastion.Caller, id string, aio bastion.AdminIO) (recorder.SessionInfo, int) {
	info, err := a.Store.Session(id)
	if err != nil || !mayRead(c, info) {
		// The same answer for "absent" and "not yours": session IDs are
		// not a way to learn who did what.
		return info, fail(aio, 1, "no session %q that you may see", safetext.Printable(id))
	}
	return info, 0
}

// auditAccess records that c reads a recording. A read the audit log cannot
// record does not happen: the caller refuses it.
func (a *App) auditAccess(c bastion.Caller, typ, id, outcome string) error {
	_, err := a.Store.Audit(recorder.AuditEvent{Type: typ, User: c.Identity.User, Issuer: c.Identity.Issuer, Subject: c.Identity.Subject,
		SessionID: id, Outcome: outcome, Fields: map[string]string{"remote": c.RemoteAddr}})
	if err != nil {
		a.Log.Error("audit write failed; access refused", "type", typ, "session_id", id, "user", c.Identity.User, "err", err)
	}
	return err
}

func (a *App) cmdSessions(_ context.Context, c bastion.Caller, args []string, aio bastion.AdminIO) int {
	fs := newFlags("sessions", aio)
	o := sessionsFlags(fs)
	if pos, st, done := parseCommand("sessions", fs, args, aio); done {
		return st
	} else if len(pos) > 0 {
		return usageError("sessions", aio)
	}
	js := o.js
	f := recorder.SessionFilter{User: *o.user, Target: *o.target, Kind: *o.kind, Limit: *o.limit}
	if *o.since != "" {
		d, err := duration.Parse(*o.since)
		if err != nil {
			return fail(aio, 2, "sessions: --since: %v", err)
		}
		f.Since = time.Now().Add(-d)
	}
	if !c.Auditor {
		if f.User != "" && f.User != c.Identity.User {
			return fail(aio, 1, "sessions: only auditors may list other users' sessions")
		}
		f.User = c.Identity.User
		f.ByActor, f.Actor = true, c.Identity.Actor // a CI run: the runs its actor triggered
	}
	list, err := a.Store.Sessions(f)
	if err != nil {
		return fail(aio, 1, "sessions: %v", err)
	}
	if *js {
		enc := json.NewEncoder(safetext.JSONWriter(aio.Stdout))
		for _, s := range list {
			if mayRead(c, s) {
				enc.Encode(s)
			}
		}
		return 0
	}
	tw := tabwriter.NewWriter(aio.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "ID\tSTART\tUSER\tTARGET\tLOGIN\tKIND\tSTATUS\tEXIT\tDETAIL")
	for _, s := range list {
		if !mayRead(c, s) {
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.ID, s.Start.Local().Format("2006-01-02 15:04:05"),
			s.User, s.Target, orDash(s.Login), s.Kind, sessionStatus(s), sessionExit(s), safetext.Printable(sessionDetail(s)))
	}
	tw.Flush()
	return 0
}

// sessionStatus is the STATUS column: live, ended, interrupted or failed,
// with what the rules decided in it ("ended (1 blocked, 2 approved)").
func sessionStatus(s recorder.SessionInfo) string {
	var parts []string
	for _, n := range []struct {
		count int
		what  string
	}{{s.Blocked, "blocked"}, {s.Approved, "approved"}, {s.Denied, "denied"}} {
		if n.count > 0 {
			parts = append(parts, fmt.Sprintf("%d %s", n.count, n.what))
		}
	}
	if len(parts) == 0 {
		return s.Status
	}
	return s.Status + " (" + strings.Join(parts, ", ") + ")"
}

// sessionExit is the EXIT column: the remote command's exit status or
// signal; "-" while live and for forwards, which have none.
func sessionExit(s recorder.SessionInfo) string {
	switch {
	case s.Status == recorder.StatusLive, s.ExitStatus < 0 && s.ExitSignal == "":
		return "-"
	case s.ExitSignal != "":
		return "SIG" + s.ExitSignal
	}
	return strconv.Itoa(s.ExitStatus)
}

// sessionDetail is the DETAIL column: the command of a shell, exec or
// subsystem; the database and statements of a PostgreSQL session; the bytes
// each way and the content stored of a TCP forward.
func sessionDetail(s recorder.SessionInfo) string {
	switch s.Kind {
	case "postgres":
		if s.Database == "" {
			return truncate(s.Reason, 60) // refused at startup: why
		}
		return fmt.Sprintf("database %s, %d statement%s", s.Database, s.Statements, plural(s.Statements))
	case "tcp":
		d := fmt.Sprintf("%s up, %s down", byteCount(s.BytesIn), byteCount(s.BytesOut))
		if s.Stored > 0 {
			d += ", " + byteCount(s.Stored) + " stored"
		}
		return d
	}
	return truncate(s.Command, 40)
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int64) string {
	if n == 1 {
		return ""
	}
	return "s"
}

// byteCount writes n in B, KiB, MiB or GiB.
func byteCount(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit && exp < 2; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMG"[exp])
}

func (a *App) cmdExport(ctx context.Context, c bastion.Caller, args []string, aio bastion.AdminIO) int {
	fs := newFlags("export", aio)
	format, follow, from, raw := exportFlags(fs)
	pos, st, done := parseCommand("export", fs, args, aio)
	if done {
		return st
	}
	if len(pos) != 1 {
		return usageError("export", aio)
	}
	if *format != "asciicast" && *format != "pcap" {
		return fail(aio, 2, "export: --format %q: want asciicast or pcap", safetext.Printable(*format))
	}
	if *follow && (*format != "asciicast" || *from != "start" && *from != "now") {
		return fail(aio, 2, "export: --follow writes asciicast, --from start or now")
	}
	if *raw && *format != "asciicast" {
		return fail(aio, 2, "export: --raw is for asciicast (a pcap holds the recorded bytes)")
	}
	id := pos[0]
	info, st := a.session(c, id, aio)
	if st != 0 {
		return st
	}
	if *format == "pcap" && info.Kind != "tcp" && info.Kind != "postgres" {
		return fail(aio, 2, "export: session %s is a %s session; --format pcap exports tcp and postgres sessions", id, info.Kind)
	}
	if err := a.auditAccess(c, "session.export", id, "allowed"); err != nil {
		return fail(aio, 1, "export: refused: the audit log cannot record this export (%v)", err)
	}
	var export func(io.Writer) error
	switch {
	case *follow:
		export = func(w io.Writer) error { return a.Store.ExportFollow(ctx, id, w, *from == "now") }
	case *format == "pcap":
		export = func(w io.Writer) error { return a.Store.ExportPcap(id, w) }
	default:
		export = func(w io.Writer) error { return a.Store.Export(id, w) }
	}
	var err error
	if *format == "asciicast" && !*raw {
		// What the recorded user printed is played by asciinema straight
		// to the auditor's terminal: neutralise it as replay does.
		err = player.SanitizeExport(export, aio.Stdout)
	} else {
		err = export(aio.Stdout)
	}
	if err != nil {
		return fail(aio, 1, "export: %v", err)
	}
	return 0
}

func (a *App) cmdReplay(ctx context.Context, c bastion.Caller, args []string, aio bastion.AdminIO) int {
	fs := newFlags("replay", aio)
	o := replayFlags(fs)
	speed, idle, raw, markers := o.speed, o.idle, o.raw, o.markers
	pos, st, done := parseCommand("replay", fs, args, aio)
	if done {
		return st
	}
	if len(pos) != 1 {
		return usageError("replay", aio)
	}
	id := pos[0]
	if _, st := a.session(c, id, aio); st != 0 {
		return st
	}
	opt := player.Options{Speed: *speed, Raw: *raw, ShowMarkers: *markers}
	if *idle != "" {
		d, err := duration.Parse(*idle)
		if err != nil {
			return fail(aio, 2, "replay: --idle-limit: %v", err)
		}
		opt.IdleLimit = d
	}
	if aio.Pty != nil {
		opt.Keys, opt.StatusLine = aio.Stdin, true
	}
	if err := a.auditAccess(c, "session.replay", id, "allowed"); err != nil {
		return fail(aio, 1, "replay: refused: the audit log cannot record this replay (%v)", err)
	}
	src := player.SourceFunc(func() (io.ReadCloser, error) {
		pr, pw := io.Pipe()
		go func() { pw.CloseWithError(a.Store.Export(id, pw)) }()
		return pr, nil
	})
	if err := player.Play(ctx, src, aio.Stdout, opt); err != nil && !errors.Is(err, context.Canceled) {
		return fail(aio, 1, "replay: %v", err)
	}
	return 0
}

func (a *App) cmdVerify(_ context.Context, c bastion.Caller, args []string, aio bastion.AdminIO) int {
	fs := newFlags("verify", aio)
	auditLog, against, js := verifyFlags(fs)
	pos, st, done := parseCommand("verify", fs, args, aio)
	if done {
		return st
	}
	var err error
	if *against != "" {
		if !*auditLog || len(pos) != 0 {
			return fail(aio, 2, "usage: verify --audit --against FILE")
		}
		if !c.Auditor {
			return fail(aio, 1, "verify --audit: only auditors may read the audit log")
		}
		if *against != "-" {
			return fail(aio, 2, "verify --audit --against: the bastion reads the sink's copy from stdin (-); `bastion verify --audit --against FILE` sends it")
		}
		cmp, err := a.Store.CompareAudit(&capReader{r: aio.Stdin, n: maxAgainstBytes})
		if err != nil {
			return fail(aio, 1, "verify --audit --against: %v", err)
		}
		if *js {
			json.NewEncoder(safetext.JSONWriter(aio.Stdout)).Encode(cmp)
		} else if cmp.Intact {
			fmt.Fprintf(aio.Stdout, "intact: the local audit log agrees with the sink's copy: %d records received, all matching; %d signed checkpoints verified; local log ends at record %d\n", cmp.Received, cmp.Checkpoints, cmp.LocalLast)
		} else {
			fmt.Fprintf(aio.Stdout, "BROKEN at record %d: %s\n", cmp.BrokenAt, cmp.Problem)
		}
		for _, n := range cmp.Notes {
			fmt.Fprintf(aio.Stdout, "note: %s\n", n)
		}
		if !cmp.Intact {
			return 1
		}
		return 0
	}
	var rep recorder.Report
	switch {
	case *auditLog:
		if !c.Auditor {
			return fail(aio, 1, "verify --audit: only auditors may read the audit log")
		}
		rep, err = a.Store.VerifyAudit()
	case len(pos) == 1:
		if _, st := a.session(c, pos[0], aio); st != 0 {
			return st
		}
		rep, err = a.Store.Verify(pos[0])
	default:
		return fail(aio, 2, "usage: verify SESSION-ID | verify --audit [--against FILE]")
	}
	if err != nil && !errors.Is(err, recorder.ErrBroken) {
		return fail(aio, 1, "verify: %v", err)
	}
	switch {
	case *js:
		json.NewEncoder(safetext.JSONWriter(aio.Stdout)).Encode(rep)
	case rep.Intact && *auditLog:
		fmt.Fprintf(aio.Stdout, "intact: audit log, %d records, every signed checkpoint verified\n", rep.Chunks)
	case rep.Intact:
		sealed := "sealed"
		if !rep.Sealed {
			sealed = "not sealed yet (live); every chunk is covered by a signed checkpoint"
		}
		fmt.Fprintf(aio.Stdout, "intact: session %s, %d chunks, %d events, %s, status %s\n", rep.ID, rep.Chunks, rep.Events, sealed, rep.Status)
	case rep.BrokenAt >= 0:
		fmt.Fprintf(aio.Stdout, "BROKEN at %s %d: %s\n", map[bool]string{true: "record", false: "chunk"}[*auditLog], rep.BrokenAt, rep.Problem)
	default:
		fmt.Fprintf(aio.Stdout, "BROKEN: %s\n", rep.Problem)
	}
	if !rep.Intact {
		return 1
	}
	return 0
}

// maxAgainstBytes bounds a sink's copy read by verify --audit --against.
// A longer copy is refused, not compared in part: its newest records, the
// ones that show a deleted tail or a rolled-back store, are at its end.
var maxAgainstBytes int64 = 4 << 30

// capReader reads r and fails once more than n bytes came from it.
type capReader struct {
	r io.Reader
	n int64
}

func (c *capReader) Read(p []byte) (int, error) {
	n := 0
	var err error
	if c.n >= 0 {
		n, err = c.r.Read(p)
		c.n -= int64(n)
	}
	if c.n < 0 {
		return 0, fmt.Errorf("the sink's copy is larger than %s: compare its newest part (tail -c 1G FILE > PART)", byteCount(maxAgainstBytes))
	}
	return n, err
}

func (a *App) cmdAudit(_ context.Context, c bastion.Caller, args []string, aio bastion.AdminIO) int {
	fs := newFlags("audit", aio)
	since, js := auditFlags(fs)
	if pos, st, done := parseCommand("audit", fs, args, aio); done {
		return st
	} else if len(pos) > 0 {
		return usageError("audit", aio)
	}
	if !c.Auditor {
		return fail(aio, 1, "audit: only auditors may read the audit log")
	}
	d, err := duration.Parse(*since)
	if err != nil {
		return fail(aio, 2, "audit: --since: %v", err)
	}
	enc := json.NewEncoder(safetext.JSONWriter(aio.Stdout))
	tw := tabwriter.NewWriter(aio.Stdout, 0, 0, 2, ' ', 0)
	if !*js {
		fmt.Fprintln(tw, "TIME\tTYPE\tUSER\tSESSION\tTARGET\tOUTCOME\tREASON")
	}
	err = a.Store.AuditEvents(time.Now().Add(-d), func(ev recorder.AuditEvent) error {
		if *js {
			return enc.Encode(ev)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", ev.Time.Local().Format(time.RFC3339), ev.Type, ev.User, ev.SessionID, ev.Target, ev.Outcome, safetext.Printable(truncate(ev.Reason, 60)))
		return nil
	})
	tw.Flush()
	if err != nil {
		return fail(aio, 1, "audit: %v", err)
	}
	return 0
}

func (a *App) cmdRevoke(_ context.Context, c bastion.Caller, args []string, aio bastion.AdminIO) int {
	fs := newFlags("revoke", aio)
	reason, user := revokeFlags(fs)
	pos, st, done := parseCommand("revoke", fs, args, aio)
	if done {
		return st
	}
	if *user != "" {
		if len(pos) != 0 {
			return fail(aio, 2, "revoke: give a serial or --user, not both")
		}
		return a.revokeUser(c, *user, *reason, aio)
	}
	if len(pos) != 1 {
		return usageError("revoke", aio)
	}
	serial, err := strconv.ParseUint(pos[0], 10, 64)
	if err != nil || serial == 0 {
		return fail(aio, 2, "revoke: %q is not a certificate serial", safetext.Printable(pos[0]))
	}
	// Anyone may revoke their own certificate; auditors any.
	if !c.Auditor && serial != c.Identity.Serial {
		return fail(aio, 1, "revoke: only auditors may revoke other certificates")
	}
	// One audit record, in the revocation's transaction (a serial revoked
	// before is not revoked again and not audited again).
	if err := a.Store.RevokeSerial(serial, recorder.AuditEvent{User: c.Identity.User, Issuer: c.Identity.Issuer, Subject: c.Identity.Subject,
		Outcome: "revoked", Reason: *reason}); err != nil {
		return fail(aio, 1, "revoke: %v", err)
	}
	fmt.Fprintf(aio.Stdout, "revoked certificate serial %d\n", serial)
	return 0
}

// revokeUser revokes everything user holds now (recorder.Store.RevokeUser).
func (a *App) revokeUser(c bastion.Caller, user, reason string, aio bastion.AdminIO) int {
	if err := ca.ValidateUsername(user); err != nil {
		// An email address or a name in capitals: say which login name it
		// makes, rather than revoke a guess.
		if name, err2 := ca.SanitizeUsername(user, strings.Contains(user, "@")); err2 == nil && name != user {
			return fail(aio, 2, "revoke: --user takes a login name (as bastion whoami and the audit log show it): %q logs in as %q", safetext.Printable(user), name)
		}
		return fail(aio, 2, "revoke: --user: %v", err)
	}
	if !c.Auditor && user != c.Identity.User {
		return fail(aio, 1, "revoke: only auditors may revoke another user")
	}
	// Every run of a workload shares its name, whatever job or ref it came
	// from: one run revoking it would revoke all the others (a pull
	// request's job the main branch's deploy). A run revokes its serial.
	if !c.Auditor && c.Identity.Workload {
		return fail(aio, 1, "revoke: only auditors may revoke a workload's name (every run of %s shares it); revoke this run's serial %d instead", user, c.Identity.Serial)
	}
	at, err := a.Store.RevokeUser(user, recorder.AuditEvent{User: c.Identity.User, Issuer: c.Identity.Issuer, Subject: c.Identity.Subject,
		Outcome: "revoked", Reason: reason, Fields: map[string]string{"revoked_user": user}})
	if err != nil {
		return fail(aio, 1, "revoke: %v", err)
	}
	fmt.Fprintf(aio.Stdout, "revoked everything user %s held at %s: certificates issued up to then, their database and SQL API credentials, their ID tokens issued by then, their console sign-ins; open sessions end within a second\n",
		user, at.Format(time.RFC3339))
	if user == c.Identity.User {
		fmt.Fprintln(aio.Stdout, "this session is one of them")
	}
	return 0
}

// The flags of each admin command, defined once for parsing and --help.

type sessionsOpts struct {
	user, target, kind, since *string
	limit                     *int
	js                        *bool
}

func sessionsFlags(fs *flag.FlagSet) sessionsOpts {
	return sessionsOpts{
		user:   fs.String("user", "", "only sessions of this user (auditors)"),
		target: fs.String("target", "", "only sessions to this target"),
		kind:   fs.String("kind", "", "only sessions of this kind (shell, exec, subsystem, tcp, postgres)"),
		since:  fs.String("since", "", "only sessions started within this duration (e.g. 24h, 7d)"),
		limit:  fs.Int("limit", 100, "at most this many, newest first (0 = all)"),
		js:     fs.Bool("json", false, "JSON lines, one session per line"),
	}
}

func exportFlags(fs *flag.FlagSet) (format *string, follow *bool, from *string, raw *bool) {
	return fs.String("format", "asciicast", "asciicast (plays in asciinema; a TCP session as a readable timeline) or pcap (a TCP or PostgreSQL session as a capture for Wireshark and tshark)"),
		fs.Bool("follow", false, "while the session is live, go on writing its events as they are recorded, until it ends"),
		fs.String("from", "start", "with --follow: start (the session's own times) or now (what came before at time 0, then live)"),
		fs.Bool("raw", false, "asciicast with the recorded output unchanged, escape sequences included (dangerous to play in a terminal)")
}

type replayOpts struct {
	speed        *float64
	idle         *string
	raw, markers *bool
}

func replayFlags(fs *flag.FlagSet) replayOpts {
	return replayOpts{
		speed:   fs.Float64("speed", 1, "playback speed (2 = twice as fast)"),
		idle:    fs.String("idle-limit", "", "cap pauses at this duration (e.g. 2s)"),
		raw:     fs.Bool("raw", false, "pass escape sequences through unchanged (dangerous)"),
		markers: fs.Bool("markers", true, "show bastion markers (blocked commands, approvals)"),
	}
}

func verifyFlags(fs *flag.FlagSet) (auditLog *bool, against *string, js *bool) {
	return fs.Bool("audit", false, "verify the audit log's chain instead of a session (auditors)"),
		fs.String("against", "", "with --audit: compare the local log with what a sink received (a file; on the bastion, - reads it from stdin)"),
		fs.Bool("json", false, "one JSON object")
}

func auditFlags(fs *flag.FlagSet) (since *string, js *bool) {
	return fs.String("since", "24h", "events within this duration (e.g. 1h, 7d)"),
		fs.Bool("json", false, "JSON lines, one event per line, for a SIEM")
}

func revokeFlags(fs *flag.FlagSet) (reason, user *string) {
	return fs.String("reason", "", "why (recorded in the audit log)"),
		fs.String("user", "", "revoke everything this user holds now, instead of one serial")
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}
