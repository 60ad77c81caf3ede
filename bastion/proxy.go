package bastion

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	gliderssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/bastion/policy"
)

// allowedSubsystems pass through to targets.
var allowedSubsystems = map[string]bool{"sftp": true}

// proxySession relays one session channel to a login on an SSH target. The
// upstream connection is opened first, so a target's refusal reaches the
// user as the reason the channel was rejected.
func (s *Server) proxySession(ctx gliderssh.Context, r *route, nc gossh.NewChannel) {
	pid := policyIdentity(r.id)
	acc, err := s.cfg.Policy().CheckSSH(pid, r.target, r.login)
	if err != nil {
		s.refuseChannel(nc, "session", r.id, r.target, err.Error())
		return
	}
	sid := r.sessionID()
	client, err := s.dialSSH(ctx, acc.Target, r.login, sid, r.id)
	if err != nil {
		s.log.Warn("upstream failed", "session_id", sid, "user", r.id.User, "target", r.target, "err", err)
		s.audit(Event{Type: "session.start", Identity: r.id, SessionID: sid, Target: r.target, Outcome: "failed", Reason: err.Error(), Fields: map[string]string{"login": r.login}})
		nc.Reject(gossh.ConnectionFailed, "bastion: "+err.Error())
		return
	}
	up, upReqs, err := client.OpenChannel("session", nil)
	if err != nil {
		client.Close()
		var oce *gossh.OpenChannelError
		if errors.As(err, &oce) {
			nc.Reject(oce.Reason, "target "+r.target+": "+oce.Message)
		} else {
			nc.Reject(gossh.ConnectionFailed, "target "+r.target+": "+err.Error())
		}
		return
	}
	down, downReqs, err := nc.Accept()
	if err != nil {
		up.Close()
		client.Close()
		return
	}
	ss := s.newSession(ctx, sid, "session", r.id, r.target, r.login, r.remote)
	if ss == nil {
		fmt.Fprintf(down.Stderr(), "bastion: %v\r\n", errShutdown)
		down.Close()
		up.Close()
		client.Close()
		return
	}
	ss.stderr = down.Stderr()
	ss.addCloser(down.Close)
	ss.addCloser(up.Close)
	ss.addCloser(client.Close)
	log := s.log.With("session_id", sid, "user", r.id.User, "target", r.target, "login", r.login)
	log.Info("session opened", "remote", r.remote.String())
	p := &proxy{s: s, ss: ss, acc: acc, down: down, up: up, client: client, log: log}
	p.run(downReqs, upReqs)
}

type proxy struct {
	s       *Server
	ss      *session
	acc     *policy.SSHAccess
	down    gossh.Channel
	up      gossh.Channel
	client  *gossh.Client
	log     *slog.Logger
	started bool
}

// run relays until both sides are done. Teardown order toward the user:
// exit-status as soon as the target sends it, the remaining output, EOF,
// then close (RFC 4254 §6.10). The stdin copier is not waited for: many
// clients never half-close their side.
func (p *proxy) run(downReqs, upReqs <-chan *gossh.Request) {
	defer p.ss.finish()
	defer p.client.Close()
	kind := func() string { return p.ss.kind }
	outDone := make(chan struct{})
	go func() {
		var wg sync.WaitGroup
		wg.Add(2)
		count := func(n int) { p.s.metrics.Bytes.WithLabelValues("down", kind()).Add(float64(n)) }
		go func() {
			defer wg.Done()
			relay(&outputPipeline{ss: p.ss, dst: p.down, down: count}, p.up, nil, &p.ss.act, p.s.now)
		}()
		go func() {
			defer wg.Done()
			relay(&outputPipeline{ss: p.ss, dst: p.down.Stderr(), down: count}, p.up.Stderr(), nil, &p.ss.act, p.s.now)
		}()
		wg.Wait()
		p.down.CloseWrite()
		close(outDone)
	}()
	go func() {
		relay(p.up, p.down, func(n int) { p.s.metrics.Bytes.WithLabelValues("up", kind()).Add(float64(n)) }, &p.ss.act, p.s.now)
	}()
	upDone := make(chan struct{})
	go func() {
		p.upstreamRequests(upReqs)
		close(upDone)
	}()
	go func() {
		p.downstreamRequests(downReqs)
		// The user closed the channel or went away: drop the upstream
		// connection, as the target would see a client's connection drop
		// (closing only the channel leaves sshd waiting for the command).
		p.client.Close()
	}()
	<-outDone
	<-upDone
	p.down.Close()
}

// upstreamRequests forwards the target's requests (exit-status,
// exit-signal, keepalives) to the user.
func (p *proxy) upstreamRequests(reqs <-chan *gossh.Request) {
	for req := range reqs {
		switch req.Type {
		case "exit-status":
			var m exitStatusMsg
			if gossh.Unmarshal(req.Payload, &m) == nil {
				p.ss.mu.Lock()
				p.ss.exit.Status = int(m.Status)
				p.ss.mu.Unlock()
			}
		case "exit-signal":
			var m exitSignalMsg
			if gossh.Unmarshal(req.Payload, &m) == nil {
				p.ss.mu.Lock()
				p.ss.exit.Signal = m.Signal
				p.ss.mu.Unlock()
			}
		}
		ok, err := p.down.SendRequest(req.Type, req.WantReply, req.Payload)
		if req.WantReply {
			if err != nil {
				ok = false
			}
			req.Reply(ok, nil)
		}
	}
}

// downstreamRequests handles the user's channel requests.
func (p *proxy) downstreamRequests(reqs <-chan *gossh.Request) {
	for req := range reqs {
		ok := p.handle(req)
		if req.WantReply {
			req.Reply(ok, nil)
		}
	}
}

// forward sends a request to the target and returns its answer.
func (p *proxy) forward(req *gossh.Request) bool {
	ok, err := p.up.SendRequest(req.Type, req.WantReply, req.Payload)
	return err == nil && (ok || !req.WantReply)
}

func (p *proxy) refuse(req *gossh.Request, why string) bool {
	p.s.metrics.ChannelsRefused.WithLabelValues(req.Type).Inc()
	p.log.Info("request refused", "request", req.Type, "reason", why)
	return false
}

func (p *proxy) handle(req *gossh.Request) bool {
	ss := p.ss
	switch req.Type {
	case "pty-req":
		var m ptyRequestMsg
		if err := gossh.Unmarshal(req.Payload, &m); err != nil || !validSize(m.Columns, m.Rows) || len(m.Term) > 64 {
			return p.refuse(req, "malformed pty-req")
		}
		ss.mu.Lock()
		ss.width, ss.height, ss.term = int(m.Columns), int(m.Rows), m.Term
		ss.mu.Unlock()
		return p.forward(req)
	case "env":
		var m envMsg
		if err := gossh.Unmarshal(req.Payload, &m); err != nil {
			return p.refuse(req, "malformed env")
		}
		if !p.s.envAllowed(m.Name) {
			return p.refuse(req, fmt.Sprintf("environment variable %q is not in env_allow", printable(m.Name)))
		}
		return p.forward(req)
	case "window-change":
		var m windowChangeMsg
		if err := gossh.Unmarshal(req.Payload, &m); err != nil || !validSize(m.Columns, m.Rows) {
			return p.refuse(req, "malformed window-change")
		}
		ss.mu.Lock()
		ss.width, ss.height = int(m.Columns), int(m.Rows)
		ss.mu.Unlock()
		ss.recMu.Lock()
		if ss.rec != nil {
			ss.rec.Resize(int(m.Columns), int(m.Rows))
		}
		ss.recMu.Unlock()
		return p.forward(req)
	case "shell", "exec", "subsystem":
		return p.start(req)
	case "signal", "break", "keepalive@openssh.com":
		return p.forward(req)
	case "auth-agent-req@openssh.com":
		return p.refuse(req, "agent forwarding is not allowed through the bastion")
	case "x11-req":
		return p.refuse(req, "X11 forwarding is not allowed through the bastion")
	}
	return p.refuse(req, "unsupported request")
}

// start handles the one shell, exec or subsystem request of a session.
func (p *proxy) start(req *gossh.Request) bool {
	if p.started {
		return p.refuse(req, "session already started")
	}
	var kind, command string
	switch req.Type {
	case "shell":
		kind = "shell"
		if !p.acc.Shell {
			p.tell("your roles (%v) allow only commands on %s, not an interactive shell: run `ssh ... %s@%s COMMAND`", p.acc.Roles, p.ss.target, p.ss.login, p.ss.target)
			return p.refuse(req, "shell not allowed (exec-only role)")
		}
	case "exec":
		var m execMsg
		if err := gossh.Unmarshal(req.Payload, &m); err != nil {
			return p.refuse(req, "malformed exec")
		}
		kind, command = "exec", m.Command
	case "subsystem":
		var m subsystemMsg
		if err := gossh.Unmarshal(req.Payload, &m); err != nil {
			return p.refuse(req, "malformed subsystem")
		}
		if !allowedSubsystems[m.Name] {
			p.tell("subsystem %q is not allowed through the bastion", printable(m.Name))
			return p.refuse(req, "subsystem not allowed")
		}
		kind, command = "subsystem", m.Name
	}
	if err := p.ss.begin(kind, command); err != nil {
		p.tell("cannot record this session, so it does not start: %v", err)
		p.log.Warn("recording failed to start", "err", err)
		return p.refuse(req, "recording unavailable")
	}
	p.started = true
	p.s.audit(Event{Type: "session.start", Identity: p.ss.identity, SessionID: p.ss.id, Target: p.ss.target, Outcome: "allowed",
		Fields: map[string]string{"kind": kind, "login": p.ss.login, "command": command, "client": p.ss.remote.String()}})
	return p.forward(req)
}

// tell writes a bastion message to the user's stderr.
func (p *proxy) tell(format string, args ...any) {
	fmt.Fprintf(p.down.Stderr(), "bastion: "+format+"\r\n", args...)
}
