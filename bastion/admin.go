package bastion

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"text/tabwriter"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/safetext"
)

// adminSession runs admin commands: `ssh -p 2222 alice@bastion whoami`.
func (s *Server) adminSession(ctx gliderssh.Context, conn *gossh.ServerConn, id ca.Identity, nc gossh.NewChannel) {
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	defer ch.Close()
	caller := s.Caller(id, conn.RemoteAddr().String())
	cctx, cancel := context.WithCancel(ctx)
	defer cancel()

	var pty *Pty
	resize := make(chan [2]int, 4)
	run := make(chan []string, 1)
	go func() {
		defer cancel() // the client closed the channel
		started := false
		for req := range reqs {
			ok := false
			var start []string // the command to run, once the request is answered
			switch req.Type {
			case "pty-req":
				var m ptyRequestMsg
				if gossh.Unmarshal(req.Payload, &m) == nil && validPtySize(m.Columns, m.Rows) && !started {
					w, h := termSize(m.Columns, m.Rows)
					pty = &Pty{Term: m.Term, Width: w, Height: h, Resize: resize}
					ok = true
				}
			case "window-change":
				var m windowChangeMsg
				if gossh.Unmarshal(req.Payload, &m) == nil && validPtySize(m.Columns, m.Rows) {
					w, h := termSize(m.Columns, m.Rows)
					select {
					case resize <- [2]int{w, h}:
					default:
					}
				}
			case "env":
				ok = true // accepted and ignored: admin commands use no environment
			case "shell", "exec":
				if started {
					break
				}
				var args []string
				if req.Type == "exec" {
					var m execMsg
					if gossh.Unmarshal(req.Payload, &m) != nil {
						break
					}
					var err error
					if args, err = splitArgs(m.Command); err != nil {
						fmt.Fprintf(ch.Stderr(), "bastion: %v\n", err)
						break
					}
				}
				started, ok = true, true
				start = args
				if start == nil {
					start = []string{}
				}
			}
			if req.WantReply {
				req.Reply(ok, nil)
			}
			// Only now: a command that ends at once closes the channel,
			// and a client whose exec was not yet answered would see the
			// connection's EOF instead of its output ("list targets: EOF").
			if start != nil {
				run <- start
			}
		}
	}()
	var args []string
	select {
	case args = <-run:
	case <-cctx.Done():
		return
	}
	// A channel may be opened long before it runs a command.
	if err := s.stillValid(id); err != nil {
		s.log.Info("admin command refused", "user", id.User, "reason", err)
		s.audit(Event{Type: "channel.refuse", Identity: id, Outcome: "refused", Reason: err.Error(), Fields: map[string]string{"channel": "session"}})
		fmt.Fprintf(ch.Stderr(), "bastion: %v\r\n", err)
		ch.SendRequest("exit-status", false, gossh.Marshal(exitStatusMsg{Status: 1}))
		ch.CloseWrite()
		return
	}
	ran := make(chan struct{})
	var revoked atomic.Bool
	go func() {
		// A command that runs on (export --follow, a replay) ends with a
		// revocation of its certificate or user, and with its expiry
		// under Config.DisconnectExpired, as sessions do (endRevoked):
		// an auditor's follow of a live shell is one.
		t := time.NewTicker(time.Second)
		defer t.Stop()
		for {
			select {
			case <-ran:
				return
			case <-t.C:
			}
			err := s.sessionOver(id)
			if err == nil {
				continue
			}
			revoked.Store(true)
			name := "help"
			if len(args) > 0 {
				name = safetext.Printable(args[0])
			}
			s.log.Info("admin command ended", "user", id.User, "command", name, "reason", err)
			fmt.Fprintf(ch.Stderr(), "bastion: %v\r\n", err)
			cancel()
			select {
			case <-ran:
			case <-time.After(2 * time.Second):
				ch.Close() // a command blocked writing does not see cctx
			}
			return
		}
	}()
	status := s.runAdmin(cctx, caller, args, AdminIO{Stdin: ch, Stdout: ch, Stderr: ch.Stderr(), Pty: pty})
	close(ran)
	if revoked.Load() && status == 0 {
		status = 1
	}
	ch.SendRequest("exit-status", false, gossh.Marshal(exitStatusMsg{Status: uint32(status)}))
	ch.CloseWrite()
}

// Caller is the admin identity of id under the policy in force: its roles
// and whether it is an auditor. The SSH admin commands and the web console
// both decide with it, so they agree on who may see and decide what.
func (s *Server) Caller(id ca.Identity, remoteAddr string) Caller {
	pol := s.cfg.Policy()
	pid := policyIdentity(id)
	return Caller{Identity: id, Roles: pol.RoleNames(pid), Auditor: pol.IsAuditor(pid), RemoteAddr: remoteAddr}
}

// runAdmin dispatches one admin command and returns its exit status.
func (s *Server) runAdmin(ctx context.Context, c Caller, args []string, aio AdminIO) int {
	if len(args) == 0 {
		args = []string{"help"}
	}
	name, rest := args[0], args[1:]
	if name == "targets" && len(rest) > 0 && rest[0] == "hostkey" {
		name, rest = "targets hostkey", rest[1:]
	}
	if u, ok := builtinUsage[name]; ok && WantsHelp(rest) {
		PrintAdminUsage(aio.Stdout, name, u)
		return 0
	}
	switch name {
	case "whoami":
		return s.adminWhoami(c, rest, aio)
	case "targets":
		return s.adminTargets(c, rest, aio)
	case "targets hostkey":
		return s.adminTargetHostKey(ctx, c, rest, aio)
	case "requests":
		return s.adminRequests(c, rest, aio)
	case "approve":
		return s.adminDecide(c, rest, aio, true)
	case "deny":
		return s.adminDecide(c, rest, aio, false)
	case "help", "--help", "-h":
		s.adminHelp(aio.Stdout)
		return 0
	}
	if cmd, ok := s.cfg.Admin[name]; ok {
		return cmd(ctx, c, rest, aio)
	}
	fmt.Fprintf(aio.Stderr, "bastion: unknown command %q; try `help`\n", safetext.Printable(name))
	return 127
}

func (s *Server) adminHelp(w io.Writer) {
	names := []string{"help", "targets", "whoami", "requests", "approve", "deny"}
	for n := range s.cfg.Admin {
		names = append(names, n)
	}
	sort.Strings(names)
	fmt.Fprintf(w, "bastion admin commands: %s\n", strings.Join(names, ", "))
	fmt.Fprintf(w, "To reach a target: ssh -J <bastion> login@target, or ssh -p <port> login@target@<bastion>.\n")
}

func wantJSON(args []string) (bool, error) {
	js := false
	for _, a := range args {
		switch a {
		case "--json":
			js = true
		default:
			return false, fmt.Errorf("unknown argument %q", safetext.Printable(a))
		}
	}
	return js, nil
}

func (s *Server) adminWhoami(c Caller, args []string, aio AdminIO) int {
	js, err := wantJSON(args)
	if err != nil {
		fmt.Fprintf(aio.Stderr, "bastion: whoami: %v\n", err)
		return 2
	}
	out := struct {
		User        string    `json:"user"`
		Issuer      string    `json:"issuer"`
		Subject     string    `json:"subject"`
		Groups      []string  `json:"groups"`
		Roles       []string  `json:"roles"`
		Workload    bool      `json:"workload"`
		Actor       string    `json:"actor,omitempty"` // a CI run: who triggered it
		Serial      string    `json:"serial"`
		ValidBefore time.Time `json:"valid_before"`
	}{c.Identity.User, c.Identity.Issuer, c.Identity.Subject, c.Identity.Groups, c.Roles, c.Identity.Workload, c.Identity.Actor,
		strconv.FormatUint(c.Identity.Serial, 10), c.Identity.ValidBefore.UTC()}
	if js {
		return writeJSONLine(aio, out)
	}
	tw := tabwriter.NewWriter(aio.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "user\t%s\n", out.User)
	fmt.Fprintf(tw, "issuer\t%s\n", out.Issuer)
	fmt.Fprintf(tw, "subject\t%s\n", safetext.Printable(out.Subject))
	fmt.Fprintf(tw, "groups\t%s\n", strings.Join(out.Groups, ", "))
	fmt.Fprintf(tw, "roles\t%s\n", strings.Join(out.Roles, ", "))
	if out.Workload {
		fmt.Fprintf(tw, "kind\tworkload\n")
	}
	if out.Actor != "" {
		fmt.Fprintf(tw, "triggered by\t%s\n", out.Actor)
	}
	fmt.Fprintf(tw, "certificate\tserial %s, valid until %s\n", out.Serial, out.ValidBefore.Format(time.RFC3339))
	tw.Flush()
	return 0
}

func (s *Server) adminTargets(c Caller, args []string, aio AdminIO) int {
	js, err := wantJSON(args)
	if err != nil {
		fmt.Fprintf(aio.Stderr, "bastion: targets: %v\n", err)
		return 2
	}
	list := s.cfg.Policy().Targets(policyIdentity(c.Identity))
	if js {
		// JSON lines, as every --json output: one target per line.
		for _, t := range list {
			if st := writeJSONLine(aio, t); st != 0 {
				return st
			}
		}
		return 0
	}
	if len(list) == 0 {
		fmt.Fprintf(aio.Stdout, "no targets: none of your roles (%s) covers a target\n", strings.Join(c.Roles, ", "))
		return 0
	}
	tw := tabwriter.NewWriter(aio.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "TARGET\tKIND\tLOGINS / DB USERS\tNOTES\n")
	for _, t := range list {
		who := strings.Join(t.Logins, ",")
		if t.Kind == "postgres" {
			who = strings.Join(t.DBUsers, ",")
		}
		note := ""
		if t.ExecOnly {
			note = "exec only"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", t.Name, t.Kind, who, note)
	}
	tw.Flush()
	return 0
}

func writeJSONLine(aio AdminIO, v any) int {
	b, err := json.Marshal(v)
	if err != nil {
		fmt.Fprintf(aio.Stderr, "bastion: %v\n", err)
		return 1
	}
	aio.Stdout.Write(safetext.EscapeC1(append(b, '\n')))
	return 0
}

// splitArgs splits an admin command line like a POSIX shell would, with
// single and double quotes and backslash escapes, and nothing else: no
// expansion of any kind.
func splitArgs(s string) ([]string, error) {
	var args []string
	var cur strings.Builder
	inArg := false
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == ' ' || c == '\t' || c == '\n':
			if inArg {
				args = append(args, cur.String())
				cur.Reset()
				inArg = false
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, errors.New("unterminated single quote")
			}
			cur.WriteString(s[i+1 : i+1+j])
			i += j + 1
			inArg = true
		case c == '"':
			i++
			for ; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$`", s[i+1]) >= 0 {
					i++
				}
				cur.WriteByte(s[i])
			}
			if i >= len(s) {
				return nil, errors.New("unterminated double quote")
			}
			inArg = true
		case c == '\\':
			if i+1 >= len(s) {
				return nil, errors.New("trailing backslash")
			}
			i++
			cur.WriteByte(s[i])
			inArg = true
		default:
			cur.WriteByte(c)
			inArg = true
		}
	}
	if inArg {
		args = append(args, cur.String())
	}
	if len(args) > 64 {
		return nil, errors.New("too many arguments")
	}
	return args, nil
}
