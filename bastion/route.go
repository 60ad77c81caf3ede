package bastion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/bastion/mask"
	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/safetext"
)

// route is where a session channel goes: a login on an SSH target.
type route struct {
	id     ca.Identity
	target string
	login  string
	remote net.Addr
}

type ctxKey string

const (
	keyRawConn  ctxKey = "bastion-raw-conn" // the TCP connection, for the handshake deadline
	keyChannels ctxKey = "bastion-channels" // *connChannels, for Config.MaxChannels
)

// handleOuter serves channels of a connection made straight to the bastion.
// Its SSH user says what sessions mean: the identity's own name runs admin
// commands, "login@target" (or a target name) routes to a target.
func (s *Server) handleOuter(ctx gliderssh.Context, conn *gossh.ServerConn, nc gossh.NewChannel) {
	id, err := identityOf(conn)
	if err != nil {
		nc.Reject(gossh.Prohibited, err.Error())
		return
	}
	if err := s.stillValid(id); err != nil {
		s.refuseChannel(nc, nc.ChannelType(), id, "", err.Error())
		return
	}
	switch nc.ChannelType() {
	case "session":
		r, err := s.routeFromUser(id, conn.User())
		if err != nil {
			s.refuseChannel(nc, "session", id, "", err.Error())
			return
		}
		if r == nil {
			s.adminSession(ctx, conn, id, nc)
			return
		}
		r.remote = conn.RemoteAddr()
		s.proxySession(ctx, r, nc)
	case "direct-tcpip":
		s.directTCPIP(ctx, conn, id, nc)
	default:
		s.refuseChannel(nc, nc.ChannelType(), id, "", fmt.Sprintf("channel type \"%s\" is not allowed through the bastion", typeName(nc.ChannelType())))
	}
}

// routeFromUser reads a route from the SSH user name: nil for admin
// commands, a route for "login@target" or a bare target name.
func (s *Server) routeFromUser(id ca.Identity, user string) (*route, error) {
	if user == id.User {
		return nil, nil
	}
	pol := s.cfg.Policy()
	login, target := id.User, user
	if i := strings.LastIndexByte(user, '@'); i >= 0 {
		login, target = user[:i], user[i+1:]
	}
	if _, ok := pol.Target(target); !ok {
		return nil, fmt.Errorf("%q is neither your name (%s, for admin commands) nor login@target for a configured target", safetext.Printable(user), id.User)
	}
	if login == "" {
		return nil, fmt.Errorf("empty login in %q", safetext.Printable(user))
	}
	return &route{id: id, target: target, login: login}, nil
}

// directTCPIPMsg is the payload of a direct-tcpip channel (RFC 4254 §7.2).
type directTCPIPMsg struct {
	Host     string
	Port     uint32
	OrigHost string
	OrigPort uint32
}

// directTCPIP routes ssh -J and ssh -L: a known SSH target is intercepted
// (the bastion answers as the target), a known TCP or PostgreSQL target is
// forwarded, and anything else is refused. Destinations are looked up by
// target name only; addresses are never dialled as given.
func (s *Server) directTCPIP(ctx gliderssh.Context, conn *gossh.ServerConn, id ca.Identity, nc gossh.NewChannel) {
	var msg directTCPIPMsg
	if err := gossh.Unmarshal(nc.ExtraData(), &msg); err != nil {
		s.refuseChannel(nc, "direct-tcpip", id, "", "malformed direct-tcpip request")
		return
	}
	dest := net.JoinHostPort(msg.Host, strconv.Itoa(int(msg.Port)))
	pol := s.cfg.Policy()
	t, ok := pol.Target(msg.Host)
	if !ok {
		s.refuseChannel(nc, "direct-tcpip", id, "", fmt.Sprintf("%s is not a configured target; only targets by name are reachable (see `bastion targets`)", safetext.Printable(dest)))
		return
	}
	if msg.Port > 65535 {
		s.refuseChannel(nc, "direct-tcpip", id, t.Name, "port out of range")
		return
	}
	_, tport, _ := net.SplitHostPort(t.Address)
	targetPort, _ := strconv.Atoi(tport)
	if t.Kind == policy.KindSSH {
		if int(msg.Port) != 22 && int(msg.Port) != targetPort {
			s.refuseChannel(nc, "direct-tcpip", id, t.Name, fmt.Sprintf("SSH target %s is reached on port 22, not %d", t.Name, msg.Port))
			return
		}
		s.intercept(ctx, conn, id, t, nc)
		return
	}
	port := int(msg.Port)
	if t.Kind == policy.KindPostgres && port == 5432 {
		// pg1:5432 means "the database pg1", wherever it listens.
		port = targetPort
	}
	if _, err := pol.CheckForward(policyIdentity(id), t.Name, port, targetPort); err != nil {
		s.refuseChannel(nc, "direct-tcpip", id, t.Name, err.Error())
		return
	}
	s.forward(ctx, conn, id, t, port, nc)
}

// maskClientText masks the card numbers in a refusal's text, which may
// quote what the client sent (a target, database or user name), before the
// audit log, the log or a session's record stores it. No target's output
// rules are in force for a name that may name no target, so card numbers
// are masked whatever the rules: a refusal's reason has no need of them.
func maskClientText(text string) string {
	out, _ := mask.MaskString(mask.Config{Cards: true}, text)
	return out
}

func (s *Server) refuseChannel(nc gossh.NewChannel, kind string, id ca.Identity, target, why string) {
	why = maskClientText(why) // it may quote the destination the client asked for
	s.metrics.ChannelsRefused.WithLabelValues(refusalLabel(kind)).Inc()
	kind = typeName(kind)
	s.log.Info("channel refused", "type", kind, "user", id.User, "target", target, "reason", why)
	s.audit(Event{Type: "channel.refuse", Identity: id, Target: target, Outcome: "refused", Reason: why, Fields: map[string]string{"channel": kind}})
	nc.Reject(gossh.Prohibited, "bastion: "+why)
}

// intercept answers an ssh -J hop to an SSH target as that target: the
// channel carries a second SSH connection, which the bastion terminates
// with a host certificate for the target's name and authenticates with the
// same user certificate again.
func (s *Server) intercept(ctx gliderssh.Context, outer *gossh.ServerConn, id ca.Identity, t *policy.Target, nc gossh.NewChannel) {
	// The login is known only inside the hop; refuse early when no role
	// covers the target at all.
	if err := s.cfg.Policy().CheckTarget(policyIdentity(id), t.Name, policy.KindSSH); err != nil {
		s.refuseChannel(nc, "direct-tcpip", id, t.Name, err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		return
	}
	go gossh.DiscardRequests(reqs)
	same := func(nested ca.Identity) error {
		if nested.Issuer != id.Issuer || nested.Subject != id.Subject {
			return fmt.Errorf("the certificate for the target hop (%s) is not the one used for the bastion (%s)", nested.User, id.User)
		}
		return nil
	}
	target := t.Name
	srv := s.newSSHServer([]string{target}, same, func(nctx gliderssh.Context, nconn *gossh.ServerConn, nnc gossh.NewChannel) {
		nid, err := identityOf(nconn)
		if err != nil {
			nnc.Reject(gossh.Prohibited, err.Error())
			return
		}
		if err := s.stillValid(nid); err != nil {
			s.refuseChannel(nnc, nnc.ChannelType(), nid, target, err.Error())
			return
		}
		switch nnc.ChannelType() {
		case "session":
			s.proxySession(nctx, &route{id: nid, target: target, login: nconn.User(), remote: outer.RemoteAddr()}, nnc)
		default:
			s.refuseChannel(nnc, nnc.ChannelType(), nid, target, fmt.Sprintf("%s channels inside a session to %s are not allowed; forward to a configured target through the bastion instead", typeName(nnc.ChannelType()), target))
		}
	})
	srv.HandleConn(&channelConn{Channel: ch, local: outer.LocalAddr(), remote: outer.RemoteAddr()})
}

// channelConn presents an SSH channel as a net.Conn: for the nested SSH
// connection of an intercepted ssh -J, and for the PostgreSQL proxy on a
// forward. An SSH channel has no deadlines of its own, so these are timers:
// when one passes, the channel is closed, and a blocked Read or Write
// returns. (A net.Conn would let a caller go on after a timeout; every
// caller here treats a passed deadline as the end of the connection.)
type channelConn struct {
	gossh.Channel
	local, remote net.Addr

	mu          sync.Mutex
	read, write *time.Timer
	expired     bool
}

func (c *channelConn) LocalAddr() net.Addr  { return c.local }
func (c *channelConn) RemoteAddr() net.Addr { return c.remote }

func (c *channelConn) SetDeadline(t time.Time) error {
	c.SetReadDeadline(t)
	return c.SetWriteDeadline(t)
}

func (c *channelConn) SetReadDeadline(t time.Time) error  { return c.arm(&c.read, t) }
func (c *channelConn) SetWriteDeadline(t time.Time) error { return c.arm(&c.write, t) }

// arm replaces one of the deadline timers; the zero time disarms it.
func (c *channelConn) arm(timer **time.Timer, t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.expired {
		return os.ErrDeadlineExceeded
	}
	if *timer != nil {
		(*timer).Stop()
		*timer = nil
	}
	if t.IsZero() {
		return nil
	}
	d := time.Until(t)
	if d <= 0 {
		c.expireLocked()
		return nil
	}
	*timer = time.AfterFunc(d, c.expire)
	return nil
}

func (c *channelConn) expire() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.expireLocked()
}

func (c *channelConn) expireLocked() {
	if !c.expired {
		c.expired = true
		c.Channel.Close()
	}
}

// Close stops the timers and closes the channel.
func (c *channelConn) Close() error {
	c.mu.Lock()
	for _, t := range []*time.Timer{c.read, c.write} {
		if t != nil {
			t.Stop()
		}
	}
	c.mu.Unlock()
	return c.Channel.Close()
}

// forward relays a direct-tcpip channel to a TCP target, half-closing each
// direction on EOF so the tail of a stream is never lost, and records the
// forward's start, end, peer and byte counts.
func (s *Server) forward(ctx context.Context, conn *gossh.ServerConn, id ca.Identity, t *policy.Target, port int, nc gossh.NewChannel) {
	sid := newSessionID()
	up, err := s.dialForward(ctx, sid, id, t, port, nil)
	if err != nil {
		s.metrics.ChannelsRefused.WithLabelValues("direct-tcpip").Inc()
		why := gossh.ConnectionFailed
		if errors.Is(err, errMaxPerUser) {
			why = gossh.ResourceShortage
		}
		nc.Reject(why, "bastion: "+err.Error())
		return
	}
	ch, reqs, err := nc.Accept()
	if err != nil {
		up.Close()
		return
	}
	go gossh.DiscardRequests(reqs)
	ss, err := s.beginForward(ctx, sid, id, t, conn.RemoteAddr(), up, ch.Close, nil)
	if ss == nil { // shutting down, or at the identity's session limit
		fmt.Fprintf(ch.Stderr(), "bastion: %v\n", err)
		ch.Close()
		up.Close()
		return
	}
	defer ss.finish()
	if err != nil {
		fmt.Fprintf(ch.Stderr(), "bastion: %v\n", err)
		ch.Close()
		up.Close()
		return
	}
	rec := ss.rec
	if t.Kind == policy.KindPostgres {
		s.postgresForward(ss, &channelConn{Channel: ch, local: conn.LocalAddr(), remote: conn.RemoteAddr()}, up, t, port)
		return
	}
	// A reload that withdraws the forward ends it (checked within a second).
	pid := policyIdentity(id)
	ss.policyCheck(nil, func(p *policy.Policy) error {
		return recheckForward(p, pid, t, port)
	})
	var in, out atomic.Int64
	var fromClient, fromServer io.Reader = ch, up
	content := t.RecordContent
	var storeClient, storeServer *maskedStore
	if content {
		// Both directions are recorded before they are forwarded; a
		// strict recording that fails ends the forward. Output rules
		// mask what is stored (recordings at rest hold no card
		// numbers); the stream itself passes as sent. No terminal draws
		// it: the masker reads it as a protocol, not as a screen.
		m := s.cfg.Policy().OutputMasks(policyIdentity(id), t.Name)
		mcfg := mask.Config{Cards: m.Cards, Patterns: m.Patterns, Binary: true}
		var err1, err2 error
		storeClient, err1 = newMaskedStore(mcfg, rec.FromClient, ss)
		storeServer, err2 = newMaskedStore(mcfg, rec.FromServer, ss)
		if err := errors.Join(err1, err2); err != nil {
			ss.setEndReason("masking: " + err.Error())
			fmt.Fprintf(ch.Stderr(), "bastion: masking: %v\n", err)
			ch.Close()
			up.Close()
			return
		}
		rec.ConnEvent("open " + conn.RemoteAddr().String() + " " + up.RemoteAddr().String())
		fromClient = &recordingReader{r: ch, rec: storeClient.record, ss: ss}
		fromServer = &recordingReader{r: up, rec: storeServer.record, ss: ss}
	}
	// Each side's end is recorded before it is passed on (the half-close):
	// recorded after, the other side's answer to it (an echo's FIN to the
	// client's) could come first in the recording and its capture.
	// A side that ends because the bastion stopped the session (idle
	// timeout, a withdrawn grant...) did not close it: the connection is
	// recorded as cut, once, not as that side's FIN.
	var endClient, endServer func(error)
	if content {
		var cut atomic.Bool
		end := func(side string, st *maskedStore) func(error) {
			return func(err error) {
				st.flush()
				if ss.wasStopped() {
					if cut.CompareAndSwap(false, true) {
						rec.ConnEvent("cut")
					}
					return
				}
				rec.ConnEvent(closeEvent(side, err))
			}
		}
		endClient, endServer = end("client", storeClient), end("server", storeServer)
	}
	done := make(chan struct{})
	go func() {
		relayThen(up, fromClient, func(n int) { in.Add(int64(n)); s.metrics.Bytes.WithLabelValues("up", t.Kind).Add(float64(n)) }, &ss.act, s.now, endClient)
		close(done)
	}()
	relayThen(ch, fromServer, func(n int) { out.Add(int64(n)); s.metrics.Bytes.WithLabelValues("down", t.Kind).Add(float64(n)) }, &ss.act, s.now, endServer)
	<-done
	ch.Close()
	up.Close()
	if !content {
		rec.AddBytes(in.Load(), out.Load())
	}
	ss.exit = Exit{Status: -1}
}

// recheckForward decides whether a reloaded policy still allows a live
// forward to t:port: the target still leads where the forward goes (a
// target pointed elsewhere, or made another kind, is not the one the
// forward reached), and a role still grants the port, judged against the
// target's port in the new policy.
func recheckForward(p *policy.Policy, pid policy.Identity, t *policy.Target, port int) error {
	nt, _ := p.Target(t.Name)
	if why := t.Changed(nt); why != "" {
		return errors.New(why)
	}
	_, err := p.CheckForward(pid, t.Name, port, nt.Port)
	return err
}

// dialForward connects a forward (or a direct PostgreSQL listener's
// client) to its target, timing the dial; a failure is audited. fields are
// added to the audit event.
func (s *Server) dialForward(ctx context.Context, sid string, id ca.Identity, t *policy.Target, port int, fields map[string]string) (net.Conn, error) {
	if err := s.sessionLimit(id); err != nil {
		s.audit(Event{Type: "forward.start", Identity: id, SessionID: sid, Target: t.Name, Outcome: "refused", Reason: err.Error(), Fields: fields})
		return nil, err
	}
	dctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	start := s.now()
	up, err := s.dialTarget(dctx, t, port)
	cancel()
	result := "ok"
	if err != nil {
		result = "error"
	}
	s.metrics.UpstreamDial.WithLabelValues(t.Kind, result).Observe(s.now().Sub(start).Seconds())
	if err != nil {
		s.audit(Event{Type: "forward.start", Identity: id, SessionID: sid, Target: t.Name, Outcome: "failed", Reason: err.Error(), Fields: fields})
	}
	return up, err
}

// beginForward starts the session of a forward whose upstream up is
// connected: registered, recorded and audited. A nil session means the
// server is shutting down or the identity holds as many sessions as it
// may (the error says which); a session with an error (which the client
// should read) must still be finished, and the forward not run.
func (s *Server) beginForward(ctx context.Context, sid string, id ca.Identity, t *policy.Target, remote net.Addr, up net.Conn, closeClient func() error, fields map[string]string) (*session, error) {
	ss, err := s.newSession(ctx, sid, t.Kind, id, t.Name, "", remote)
	if err != nil {
		return nil, err
	}
	rec, err := s.cfg.Recorder.Begin(ss.meta(""))
	if err != nil {
		ss.setEndReason(err.Error())
		return ss, fmt.Errorf("cannot record this forward: %w", err)
	}
	ss.rec = rec
	ss.closers = append(ss.closers, closeClient, up.Close)
	ss.watch()
	f := map[string]string{"peer": up.RemoteAddr().String(), "client": remote.String()}
	for k, v := range fields {
		f[k] = v
	}
	if err := s.audit(Event{Type: "forward.start", Identity: id, SessionID: sid, Target: t.Name, Outcome: "allowed", Fields: f}); err != nil {
		ss.setEndReason("audit unavailable")
		return ss, errors.New("the audit log cannot record this forward, so it does not start")
	}
	return ss, nil
}

// postgresForward runs an inspected PostgreSQL session on client and up
// and closes both.
func (s *Server) postgresForward(ss *session, client, up net.Conn, t *policy.Target, port int) {
	err := s.postgres(ss.ctx, ss, client, up, t, port)
	client.Close()
	up.Close()
	if err != nil && !isClosedErr(err) {
		ss.setEndReason(err.Error())
		s.log.Info("postgres forward ended", "session_id", ss.id, "user", ss.identity.User, "target", t.Name, "err", err)
	}
	ss.exit = Exit{Status: -1}
}

// recordingReader records what it reads before returning it, so nothing is
// forwarded that the recording has not taken; a recording that fails (in
// strict mode) ends the forward with its reason.
type recordingReader struct {
	r   io.Reader
	rec func([]byte) error
	ss  *session
}

func (rr *recordingReader) Read(p []byte) (int, error) {
	n, err := rr.r.Read(p)
	if n > 0 {
		if rerr := rr.rec(p[:n]); rerr != nil && rr.ss.recordingFailed() {
			rr.ss.stop(fmt.Errorf("recording failed: %w", rerr))
			return 0, rerr
		}
	}
	return n, err
}

// maskedStore stores one direction of a TCP forward's content masked as
// output rules say (nothing to mask: as it is). A masked copy has the
// length of the original, so a capture's sequence numbers hold; the masker
// holds back at most a short tail that may still turn out to be part of a
// card number, stored with the next bytes or at the close (flush).
type maskedStore struct {
	m      *mask.Masker // nil: nothing to mask
	store  func([]byte) error
	ss     *session
	masked int
}

func newMaskedStore(cfg mask.Config, store func([]byte) error, ss *session) (*maskedStore, error) {
	ms := &maskedStore{store: store, ss: ss}
	if !cfg.Cards && len(cfg.Patterns) == 0 {
		return ms, nil
	}
	m, err := mask.New(cfg)
	if err != nil {
		return nil, err
	}
	ms.m = m
	return ms, nil
}

func (ms *maskedStore) record(p []byte) error {
	if ms.m == nil {
		return ms.store(p)
	}
	return ms.put(ms.m.Write(p))
}

// flush stores what the masker still holds, at the end of the direction.
func (ms *maskedStore) flush() error {
	if ms.m == nil {
		return nil
	}
	return ms.put(ms.m.Flush())
}

func (ms *maskedStore) put(p []byte) error {
	if n := ms.m.Masked(); n > ms.masked {
		ms.ss.addMasked(n - ms.masked)
		ms.masked = n
	}
	if len(p) == 0 {
		return nil
	}
	return ms.store(p)
}

// closeEvent names how one side of a TCP forward ended: its half-close
// (FIN), or a reset or error (RST).
func closeEvent(side string, err error) string {
	if isClosedErr(err) {
		return side + " fin"
	}
	return side + " rst"
}
