package bastion

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	"github.com/oklog/ulid/v2"
	gossh "golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/bastion/pgproxy"
	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/auditlimit"
)

// Config configures a Server. Required fields are checked by New.
type Config struct {
	// Authority signs the per-session target certificates and the host
	// certificates the bastion presents. Required.
	Authority *ca.Authority
	// Policy returns the current policy; it is called for every decision,
	// so a reload takes effect on the next channel. Required.
	Policy func() *policy.Policy
	// Recorder records sessions. Required.
	Recorder Recorder
	// Auditor receives audit events. Required.
	Auditor Auditor
	// Revocations lists revoked certificate serials. Required.
	Revocations Revocations
	// Pins stores trust-on-first-use host keys. Required when a target
	// uses trust_on_first_use.
	Pins HostKeyPins
	// Names are the principals of the bastion's own host certificate (the
	// names clients use to reach it). Default: the hostname and "localhost".
	Names []string
	// IdleTimeout ends a session without traffic for this long; 0 = never.
	IdleTimeout time.Duration
	// StartupTimeout bounds a PostgreSQL client's startup through a
	// forward: the client is cut and the upstream closed when it has not
	// finished by then. Default 30s.
	StartupTimeout time.Duration
	// MaxSessionDuration ends any session after this long; 0 = never.
	MaxSessionDuration time.Duration
	// EnvAllow lists environment variables a client may set on targets
	// (globs such as "LC_*"). Default: LANG, LC_*, TERM.
	EnvAllow []string
	// ApprovalWebhook, when set, receives a JSON POST for every new
	// approval request, so a chat bot can relay it.
	ApprovalWebhook string
	// MaxPendingApprovals bounds the approval requests one identity has
	// waiting at once (on this replica, or on the shared board); one more
	// is denied at once, so one user cannot bury the approvers' list or
	// flood the webhook. Default 10.
	MaxPendingApprovals int
	// ApprovalURL, when set, gives the web page of an approval request; the
	// webhook's JSON carries it as "url".
	ApprovalURL func(id string) string
	// Approvals, when set, keeps approval requests in a store that
	// several replicas share; nil keeps them in this process.
	Approvals ApprovalBoard
	// MaskHold is how long masking holds back output that may be the start
	// of a card number before releasing it when nothing follows; default
	// 10ms (a number split across reads arrives within microseconds).
	MaskHold time.Duration
	// Admin holds extra admin commands (run as `ssh bastion NAME`), on top
	// of the built-in whoami and targets.
	Admin map[string]AdminCommand
	// Metrics receives counters; nil makes a private set.
	Metrics *Metrics
	// Logger logs connections; nil discards.
	Logger *slog.Logger
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
	// Dial connects to targets; nil means a net.Dialer. Tests use it to
	// observe connections, never to fake a target.
	Dial func(ctx context.Context, network, addr string) (net.Conn, error)
	// OwnAddrs returns the bastion's other listeners (HTTP, metrics), which
	// targets may never resolve to. The SSH and PostgreSQL listeners are
	// known already.
	OwnAddrs func() []net.Addr
	// HandshakeTimeout bounds the SSH handshake and authentication of a new
	// connection; default 30s. A client that connects and then stalls is
	// dropped instead of holding resources.
	HandshakeTimeout time.Duration
	// MaxStartups bounds the connections each listener (SSH, PostgreSQL)
	// holds before they authenticate; a connection past it is closed at
	// once, so a flood of connections that never authenticate costs a
	// bounded amount of memory, goroutines and file descriptors instead of
	// growing until the process runs out of them; one source (an IPv4
	// address, an IPv6 /64) holds at most a quarter of them. Default 256.
	MaxStartups int
	// MaxChannels bounds the channels open at once on one SSH connection
	// (sessions, forwards, admin commands); one past it is refused with
	// "resource shortage". Default 64.
	MaxChannels int
	// DisconnectExpired ends each session within a second of its
	// certificate's (or access token's) expiry; otherwise only new
	// channels need one that is still valid.
	DisconnectExpired bool
	// MaxSessionsPerUser bounds the sessions (shells, execs, forwards,
	// hops, PostgreSQL sessions, SQL API statements) one identity holds
	// open at once on this bastion, each holding a connection to a
	// target; one more is refused. Zero: no bound.
	MaxSessionsPerUser int
	// DialTimeout bounds connecting and authenticating to a target;
	// default 10s.
	DialTimeout time.Duration
	// HostCertTTL is the lifetime of the host certificates the bastion
	// makes for itself and for intercepted targets; they are renewed at
	// half-life. Default 24h.
	HostCertTTL time.Duration
}

// Server is the SSH side of the bastion.
type Server struct {
	cfg     Config
	log     *slog.Logger
	now     func() time.Time
	metrics *Metrics
	userCA  []byte // marshalled user CA public key, for exact comparison
	srv     *gliderssh.Server

	hostCerts *hostCerts // the host certificates the bastion presents
	approvals *approvals
	env       *sessionEnv // what every session gets
	pg        *pgShared   // what PostgreSQL forwards share

	handshakeTimeout atomic.Int64 // time.Duration, from Config.HandshakeTimeout
	sshStartups      *startups    // unauthenticated SSH connections
	pgStartups       *startups    // direct PostgreSQL listener connections before their startup is done

	// Refused logins with a certificate are audited within a bound, one
	// bucket for certificates the user CA signed (expired, revoked) and
	// one for the rest (forgeries), so a flood of one hides nothing of
	// the other; what a bucket holds back is summed up in the log.
	ownCertRefusals, forgedCertRefusals *auditlimit.Limiter

	revWatch sync.Once     // starts endRevoked with the first listener
	quit     chan struct{} // closed by Shutdown and Close
	quitOnce sync.Once

	mu        sync.Mutex
	listeners []net.Listener
	sessions  map[*session]struct{}
	perUser   map[string]int // live sessions by identity (owner), for MaxSessionsPerUser
	closing   atomic.Bool
	wg        sync.WaitGroup // live sessions
}

// New checks cfg and returns a Server.
func New(cfg Config) (*Server, error) {
	switch {
	case cfg.Authority == nil:
		return nil, errors.New("bastion: Config.Authority is required")
	case cfg.Policy == nil || cfg.Policy() == nil:
		return nil, errors.New("bastion: Config.Policy is required")
	case cfg.Recorder == nil:
		return nil, errors.New("bastion: Config.Recorder is required")
	case cfg.Auditor == nil:
		return nil, errors.New("bastion: Config.Auditor is required")
	case cfg.Revocations == nil:
		return nil, errors.New("bastion: Config.Revocations is required")
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.Metrics == nil {
		cfg.Metrics = NewMetrics()
	}
	if cfg.HandshakeTimeout == 0 {
		cfg.HandshakeTimeout = 30 * time.Second
	}
	if cfg.DialTimeout == 0 {
		cfg.DialTimeout = 10 * time.Second
	}
	if cfg.MaxStartups == 0 {
		cfg.MaxStartups = 256
	}
	if cfg.MaxChannels == 0 {
		cfg.MaxChannels = 64
	}
	if cfg.MaxPendingApprovals == 0 {
		cfg.MaxPendingApprovals = 10
	}
	if cfg.MaxStartups < 0 || cfg.MaxChannels < 0 {
		return nil, errors.New("bastion: Config.MaxStartups and MaxChannels must not be negative")
	}
	if cfg.MaskHold == 0 {
		cfg.MaskHold = 10 * time.Millisecond
	}
	if cfg.HostCertTTL == 0 {
		cfg.HostCertTTL = 24 * time.Hour
	}
	if cfg.EnvAllow == nil {
		cfg.EnvAllow = []string{"LANG", "LC_*", "TERM"}
	}
	if len(cfg.Names) == 0 {
		cfg.Names = []string{"localhost"}
		if h, err := os.Hostname(); err == nil && h != "" {
			cfg.Names = append(cfg.Names, h)
		}
	}
	if cfg.Dial == nil {
		d := &net.Dialer{}
		cfg.Dial = d.DialContext
	}
	s := &Server{
		cfg:      cfg,
		log:      cfg.Logger,
		now:      cfg.Now,
		metrics:  cfg.Metrics,
		userCA:   cfg.Authority.Keys().UserCA.PublicKey().Marshal(),
		sessions: map[*session]struct{}{},
		perUser:  map[string]int{},
		quit:     make(chan struct{}),
	}
	s.approvals = &approvals{audit: s.audit, policy: cfg.Policy, webhook: cfg.ApprovalWebhook, link: cfg.ApprovalURL, log: s.log, m: map[string]*approval{},
		board: cfg.Approvals, now: s.now, maxPending: cfg.MaxPendingApprovals}
	s.env = s.newSessionEnv()
	s.handshakeTimeout.Store(int64(cfg.HandshakeTimeout))
	s.sshStartups = newStartups(cfg.MaxStartups)
	s.ownCertRefusals = s.refusalLimiter()
	s.forgedCertRefusals = s.refusalLimiter()
	s.pgStartups = newStartups(cfg.MaxStartups)
	s.pg = &pgShared{cancels: pgproxy.NewCancelRegistry(), authority: cfg.Authority,
		names: func() []string { return append(slices.Clone(cfg.Names), cfg.Policy().TargetNames()...) }}
	s.hostCerts = &hostCerts{authority: cfg.Authority, ttl: cfg.HostCertTTL, now: s.now}
	if _, err := s.hostSigner(cfg.Names); err != nil {
		return nil, err
	}
	s.srv = s.newSSHServer(cfg.Names, nil, s.handleOuter)
	s.srv.ConnCallback = s.acceptOuter(s.srv.ConnCallback)
	return s, nil
}

// sshConfig is the server-side algorithm choice. AES-GCM comes first:
// x/crypto has no fast ChaCha20-Poly1305 on amd64, and OpenSSH clients
// otherwise pick it.
func sshConfig() gossh.Config {
	return gossh.Config{
		Ciphers: []string{
			gossh.CipherAES128GCM, gossh.CipherAES256GCM,
			gossh.CipherChaCha20Poly1305,
			gossh.CipherAES128CTR, gossh.CipherAES192CTR, gossh.CipherAES256CTR,
		},
	}
}

// newSSHServer builds a gliderlabs server that presents a host
// certificate for names, accepts only user certificates (and, when check is
// non-nil, only identities it accepts), and hands each authenticated
// connection's channels to handle.
func (s *Server) newSSHServer(names []string, check func(ca.Identity) error, handle func(gliderssh.Context, *gossh.ServerConn, gossh.NewChannel)) *gliderssh.Server {
	return &gliderssh.Server{
		Version: "bastion",
		// Called for every key a client offers, including queries: refuse
		// early so the client moves on to its next key. It decides nothing
		// about identity; see VerifiedPublicKeyCallback below.
		PublicKeyHandler: func(ctx gliderssh.Context, key gliderssh.PublicKey) bool {
			_, err := s.checkUserKey(ctx.RemoteAddr(), key, check)
			if err != nil && toldAfterSignature(err) {
				// Ours, but expired or revoked: taken on to the signature,
				// after which the client is told why (below).
				return true
			}
			if err != nil {
				s.authFailed(ctx.RemoteAddr(), key, err)
			}
			return err == nil
		},
		ServerConfigCallback: func(ctx gliderssh.Context) *gossh.ServerConfig {
			cfg := &gossh.ServerConfig{Config: sshConfig(), MaxAuthTries: 10}
			if hs, err := s.hostSigner(names); err == nil {
				cfg.AddHostKey(hs)
			} else {
				s.log.Error("host certificate", "err", err)
			}
			// The identity comes from the key that actually signed the
			// authentication, not from whichever key was offered last.
			cfg.VerifiedPublicKeyCallback = func(conn gossh.ConnMetadata, key gossh.PublicKey, _ *gossh.Permissions, _ string) (*gossh.Permissions, error) {
				id, err := s.checkUserKey(conn.RemoteAddr(), key, check)
				if err != nil {
					s.authFailed(conn.RemoteAddr(), key, err)
					if toldAfterSignature(err) {
						// ssh prints a banner: the user reads why rather
						// than a bare "Permission denied (publickey)".
						return nil, &gossh.BannerError{Err: err, Message: "bastion: " + err.Error() + ": run `bastion login` for a new certificate\r\n"}
					}
					return nil, err
				}
				// Authenticated: the handshake deadline no longer applies.
				if c, ok := ctx.Value(keyRawConn).(*handshakeConn); ok {
					c.authenticated()
				}
				return identityPermissions(id), nil
			}
			return cfg
		},
		ChannelHandlers: map[string]gliderssh.ChannelHandler{
			"default": func(_ *gliderssh.Server, conn *gossh.ServerConn, ch gossh.NewChannel, ctx gliderssh.Context) {
				defer s.containPanic(conn)
				lc, ok := s.limitChannel(ctx, conn, ch)
				if !ok {
					return
				}
				defer lc.handled()
				handle(ctx, conn, lc)
			},
		},
		RequestHandlers: map[string]gliderssh.RequestHandler{
			"keepalive@openssh.com": func(gliderssh.Context, *gliderssh.Server, *gossh.Request) (bool, []byte) {
				return true, nil
			},
		},
		ConnCallback: func(ctx gliderssh.Context, conn net.Conn) net.Conn {
			hc := &handshakeConn{Conn: conn, until: time.Now().Add(time.Duration(s.handshakeTimeout.Load()))}
			hc.Conn.SetDeadline(hc.until)
			ctx.SetValue(keyRawConn, hc)
			ctx.SetValue(keyChannels, &connChannels{})
			return hc
		},
		ConnectionFailedCallback: func(conn net.Conn, err error) {
			if !isClosedErr(err) {
				s.log.Debug("handshake failed", "remote", conn.RemoteAddr().String(), "err", err)
			}
		},
	}
}

// acceptOuter wraps the SSH listener's ConnCallback: a connection that
// finds MaxStartups others still unauthenticated is closed before the
// handshake starts (as sshd's MaxStartups does at its full mark), and the
// slot a connection takes is given back when it authenticates or closes.
// Nested handshakes inside an intercepted ssh -J hop ride on an
// authenticated connection and are bounded by MaxChannels instead.
func (s *Server) acceptOuter(next gliderssh.ConnCallback) gliderssh.ConnCallback {
	return func(ctx gliderssh.Context, conn net.Conn) net.Conn {
		release, ok, perSource, evicted := s.sshStartups.take(conn.RemoteAddr(), func() { conn.Close() })
		if !ok {
			s.startupsFull("ssh", conn.RemoteAddr(), perSource)
			return nil
		}
		if evicted != "" {
			s.startupsEvicted("ssh", conn.RemoteAddr(), evicted)
		}
		c := next(ctx, conn)
		hc, _ := c.(*handshakeConn)
		if hc == nil {
			release()
			return c
		}
		hc.release = release
		return hc
	}
}

// connChannels counts the channels open on one SSH connection.
type connChannels struct {
	n       atomic.Int64
	refused atomic.Bool // one refusal was logged
}

// limitChannel takes one of the connection's MaxChannels slots for a new
// channel, or refuses the channel with "resource shortage" when all are
// taken. The slot is given back when the channel is rejected or, once
// accepted, closed by the bastion (every session and forward closes its
// channel when it ends), or when the handler returns having done neither.
func (s *Server) limitChannel(ctx gliderssh.Context, conn *gossh.ServerConn, nc gossh.NewChannel) (*limitedNewChannel, bool) {
	cc, _ := ctx.Value(keyChannels).(*connChannels) // set by the ConnCallback
	if cc == nil || cc.n.Add(1) > int64(s.cfg.MaxChannels) {
		if cc == nil {
			cc = &connChannels{}
		} else {
			cc.n.Add(-1)
		}
		s.metrics.ChannelsRefused.WithLabelValues(refusalLabel(nc.ChannelType())).Inc()
		if !cc.refused.Swap(true) {
			s.log.Info("channel refused: too many channels on one connection", "user", conn.User(),
				"remote", conn.RemoteAddr().String(), "max_channels", s.cfg.MaxChannels)
		}
		nc.Reject(gossh.ResourceShortage, fmt.Sprintf("bastion: at most %d channels may be open on one connection (sessions.max_channels)", s.cfg.MaxChannels))
		return nil, false
	}
	return &limitedNewChannel{NewChannel: nc, cc: cc}, true
}

// limitedNewChannel is a new channel holding one of its connection's
// MaxChannels slots.
type limitedNewChannel struct {
	gossh.NewChannel
	cc   *connChannels
	once sync.Once
	mu   sync.Mutex
	used bool // accepted or rejected
}

func (c *limitedNewChannel) release() { c.once.Do(func() { c.cc.n.Add(-1) }) }

func (c *limitedNewChannel) Accept() (gossh.Channel, <-chan *gossh.Request, error) {
	c.mu.Lock()
	c.used = true
	c.mu.Unlock()
	ch, reqs, err := c.NewChannel.Accept()
	if err != nil {
		c.release()
		return nil, nil, err
	}
	return &limitedChannel{Channel: ch, release: c.release}, reqs, nil
}

func (c *limitedNewChannel) Reject(reason gossh.RejectionReason, message string) error {
	c.mu.Lock()
	c.used = true
	c.mu.Unlock()
	defer c.release()
	return c.NewChannel.Reject(reason, message)
}

// handled runs when the channel's handler returns: a channel it neither
// accepted nor rejected holds no slot.
func (c *limitedNewChannel) handled() {
	c.mu.Lock()
	used := c.used
	c.mu.Unlock()
	if !used {
		c.release()
	}
}

// limitedChannel gives its connection's slot back when it is closed.
type limitedChannel struct {
	gossh.Channel
	release func()
}

func (c *limitedChannel) Close() error {
	c.release()
	return c.Channel.Close()
}

// startupsFull counts and logs a connection dropped at MaxStartups.
func (s *Server) startupsFull(listener string, remote net.Addr, perSource bool) {
	s.metrics.StartupsDropped.WithLabelValues(listener).Inc()
	why := "too many unauthenticated connections"
	if perSource {
		why = "too many unauthenticated connections from this source"
	}
	s.log.Debug("connection dropped: "+why, "listener", listener,
		"remote", remote.String(), "max_startups", s.cfg.MaxStartups)
}

// startupsEvicted counts and logs a connection that took over the oldest
// startup slot of the source holding the most (its connection closed).
func (s *Server) startupsEvicted(listener string, remote net.Addr, from string) {
	s.metrics.StartupsDropped.WithLabelValues(listener).Inc()
	s.log.Debug("unauthenticated connection dropped: the listener was full and a connection from a source holding fewer took the slot of its oldest",
		"listener", listener, "source", from, "newcomer", remote.String(), "max_startups", s.cfg.MaxStartups)
}

// containPanic, deferred at the top of a goroutine serving a channel of
// conn, keeps a bug in one channel from taking the bastion down with every
// other session: it logs the panic and drops that connection.
func (s *Server) containPanic(conn io.Closer) {
	if v := recover(); v != nil {
		s.panicked(conn, v)
	}
}

// panicked logs a recovered panic and closes the connection it came from.
func (s *Server) panicked(conn io.Closer, v any) {
	s.log.Error("panic in channel handler", "panic", v, "stack", string(debug.Stack()))
	conn.Close()
}

// hostSigner returns a signer that presents the bastion's host key with a
// certificate for principals.
func (s *Server) hostSigner(principals []string) (gossh.Signer, error) {
	return s.hostCerts.signer(principals)
}

// Serve accepts SSH connections on ln until Shutdown or Close.
func (s *Server) Serve(ln net.Listener) error {
	s.mu.Lock()
	if s.closing.Load() {
		// Shutdown ran before this Serve got going.
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	s.revWatch.Do(func() { go s.endRevoked() })
	err := s.srv.Serve(ln)
	if errors.Is(err, gliderssh.ErrServerClosed) || s.closing.Load() {
		return nil
	}
	return err
}

// ListenAddrs returns the addresses the server listens on.
func (s *Server) ListenAddrs() []net.Addr {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []net.Addr
	for _, l := range s.listeners {
		out = append(out, l.Addr())
	}
	return out
}

// Shutdown stops accepting connections, lets sessions finish until ctx is
// done, then ends the remaining ones with a message and closes everything.
func (s *Server) Shutdown(ctx context.Context) error {
	s.approvals.stop()
	defer s.ownCertRefusals.Close()
	defer s.forgedCertRefusals.Close()
	s.quitOnce.Do(func() { close(s.quit) })
	s.mu.Lock()
	s.closing.Store(true)
	for _, l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.mu.Lock()
		live := make([]*session, 0, len(s.sessions))
		for ss := range s.sessions {
			live = append(live, ss)
		}
		s.mu.Unlock()
		for _, ss := range live {
			ss.stop(errShutdown)
		}
		<-done
	}
	// The listeners are closed already; closing them again is not an error.
	if err := s.srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

// Close closes every connection at once.
func (s *Server) Close() error {
	s.quitOnce.Do(func() { close(s.quit) })
	defer s.ownCertRefusals.Close()
	defer s.forgedCertRefusals.Close()
	s.mu.Lock()
	s.closing.Store(true)
	for _, l := range s.listeners {
		l.Close()
	}
	s.mu.Unlock()
	if err := s.srv.Close(); err != nil && !errors.Is(err, net.ErrClosed) {
		return err
	}
	return nil
}

var errShutdown = errors.New("the bastion is shutting down")

// expiry reports, when Config.DisconnectExpired is set, that id's
// certificate has expired.
func (s *Server) expiry(id ca.Identity) error {
	if !s.cfg.DisconnectExpired || id.ValidBefore.IsZero() || s.now().Before(id.ValidBefore) {
		return nil
	}
	return fmt.Errorf("certificate serial %d expired at %s (sessions.disconnect_expired_cert): run `bastion login` for a new certificate",
		id.Serial, id.ValidBefore.UTC().Format(time.RFC3339))
}

// sessionOver reports what ends id's sessions at endRevoked's next tick
// (a revocation, or an expiry with Config.DisconnectExpired), for what
// must not wait for that tick: a held command or statement released by an
// approval in the meantime.
func (s *Server) sessionOver(id ca.Identity) error {
	if err := s.revocation(id); err != nil {
		return err
	}
	return s.expiry(id)
}

// endRevoked ends, within a second, every live session whose certificate
// has been revoked (a lost laptop's open shell), here or on another
// replica: a revocation is refused at the next login and at the next
// channel, and this reaches what is already running. An expired
// certificate's sessions run on (max_duration bounds them) unless
// Config.DisconnectExpired ends them too.
func (s *Server) endRevoked() {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		select {
		case <-s.quit:
			return
		case <-t.C:
		}
		type ending struct {
			ss  *session
			err error
		}
		var revoked []ending
		s.mu.Lock()
		for ss := range s.sessions {
			if err := s.revocation(ss.identity); err != nil {
				revoked = append(revoked, ending{ss, err})
			} else if err := s.expiry(ss.identity); err != nil {
				revoked = append(revoked, ending{ss, err})
			}
		}
		s.mu.Unlock()
		for _, e := range revoked {
			go e.ss.stop(e.err)
		}
		s.checkPolicy()
	}
}

// errMasksChanged ends a PostgreSQL session whose result masks a reload
// changed: its masking (column lineage, prepared statements, portals) was
// set up for the old ones, so it cannot take new ones mid-session; a client
// (or a pool) that reconnects gets the new masks.
var errMasksChanged = errors.New("a reload changed the masking rules for this session: reconnect to continue under the new rules")

// PolicyReloaded applies a new policy to what is already running: a session
// the new policy would not allow (its target, login or shell withdrawn from
// the user's roles, a PostgreSQL session's masks changed) is ended. Shell and
// exec output follow the new masks at their next output, and every command
// and statement is judged by the policy in force anyway.
func (s *Server) PolicyReloaded() { s.checkPolicy() }

// checkPolicy ends every session the policy in force no longer allows.
func (s *Server) checkPolicy() {
	cur := s.cfg.Policy()
	if cur == nil {
		return
	}
	type check struct {
		ss      *session
		recheck func(*policy.Policy) error
	}
	var todo []check
	s.mu.Lock()
	for ss := range s.sessions {
		ss.mu.Lock()
		if ss.recheck != nil && ss.pol != cur && !ss.stopped {
			todo = append(todo, check{ss, ss.recheck})
		}
		ss.mu.Unlock()
	}
	s.mu.Unlock()
	// The sessions are stopped side by side, and the reload returns once
	// each has been told and cut off (stop bounds its message to the user
	// at a second): a statement or command sent after the reload returned
	// does not reach the target.
	var stopping sync.WaitGroup
	defer stopping.Wait()
	for _, c := range todo {
		if err := c.recheck(cur); err != nil {
			if !errors.Is(err, errMasksChanged) {
				err = fmt.Errorf("a reload withdrew this access: %w", err)
			}
			s.log.Info("ending a session the reloaded policy does not allow", "session_id", c.ss.id, "user", c.ss.identity.User, "target", c.ss.target, "err", err)
			s.audit(Event{Type: "session.policy", Identity: c.ss.identity, SessionID: c.ss.id, Target: c.ss.target, Outcome: "ended", Reason: err.Error()})
			stopping.Go(func() { c.ss.stop(err) })
			continue
		}
		c.ss.mu.Lock()
		c.ss.pol = cur
		c.ss.mu.Unlock()
	}
}

// newSessionID returns a sortable unique session ID.
func newSessionID() string { return ulid.Make().String() }

// track registers a live session for graceful shutdown, within its
// identity's MaxSessionsPerUser.
func (s *Server) track(ss *session) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing.Load() {
		return errShutdown
	}
	if err := s.sessionLimitLocked(ss.identity); err != nil {
		return err
	}
	s.sessions[ss] = struct{}{}
	s.perUser[owner(ss.identity)]++
	s.wg.Add(1)
	return nil
}

func (s *Server) untrack(ss *session) {
	s.mu.Lock()
	delete(s.sessions, ss)
	if k := owner(ss.identity); s.perUser[k] <= 1 {
		delete(s.perUser, k)
	} else {
		s.perUser[k]--
	}
	s.mu.Unlock()
	s.wg.Done()
}

// sessionLimit reports whether id already holds MaxSessionsPerUser
// sessions. Doors ask before they connect to the target, so a refusal
// costs the target nothing; track has the last word.
func (s *Server) sessionLimit(id ca.Identity) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.sessionLimitLocked(id)
}

func (s *Server) sessionLimitLocked(id ca.Identity) error {
	if max := s.cfg.MaxSessionsPerUser; max > 0 && s.perUser[owner(id)] >= max {
		return fmt.Errorf("%s already has %d sessions open on this bastion (%w): end one to open another", id.User, max, errMaxPerUser)
	}
	return nil
}

// errMaxPerUser is wrapped by the refusals of Config.MaxSessionsPerUser.
var errMaxPerUser = errors.New("sessions.max_per_user")

// envAllowed reports whether a client may set name on a target: a name
// env_allow admits, and never one that changes what a judged command runs
// (runsCode), whatever env_allow says.
func (s *Server) envAllowed(name string) bool {
	if runsCode(name) {
		return false
	}
	for _, g := range s.cfg.EnvAllow {
		if g == name || strings.HasSuffix(g, "*") && strings.HasPrefix(name, strings.TrimSuffix(g, "*")) {
			return true
		}
	}
	return false
}

// audit writes an audit record. Callers whose action the record vouches
// for (a session, a forward, an allowed command, an approval) refuse the
// action when it fails; for refusals and endings the log line is all that
// can be done.
func (s *Server) audit(ev Event) error {
	err := s.cfg.Auditor.Audit(ev)
	if err != nil {
		s.log.Error("audit write failed", "type", ev.Type, "err", err)
	}
	return err
}

// policyIdentity converts a certificate identity for policy decisions.
func policyIdentity(id ca.Identity) policy.Identity {
	return policy.Identity{User: id.User, Groups: slices.Clone(id.Groups)}
}

// SetRefusalAuditLimitForTest changes the bound on audit records of
// refused logins (tests only; before the first login).
func (s *Server) SetRefusalAuditLimitForTest(burst int, rate float64, every time.Duration) {
	for _, l := range []**auditlimit.Limiter{&s.ownCertRefusals, &s.forgedCertRefusals} {
		(*l).Close()
		*l = auditlimit.New(burst, rate, every, s.refusalSummary)
	}
}

// SetHandshakeTimeoutForTest changes the handshake timeout of new
// connections (tests only).
func (s *Server) SetHandshakeTimeoutForTest(d time.Duration) { s.handshakeTimeout.Store(int64(d)) }

// handshakeConn holds a deadline on a connection until it authenticates.
// gliderlabs resets deadlines on every read and write (to none, when it has
// no timeouts of its own), so the deadline is enforced here.
type handshakeConn struct {
	net.Conn
	mu      sync.Mutex
	until   time.Time // zero once authenticated
	release func()    // gives back the connection's MaxStartups slot; nil once given
}

func (c *handshakeConn) SetDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.until.IsZero() && (t.IsZero() || t.After(c.until)) {
		t = c.until
	}
	return c.Conn.SetDeadline(t)
}

func (c *handshakeConn) authenticated() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.until = time.Time{}
	c.Conn.SetDeadline(time.Time{})
	c.releaseLocked()
}

func (c *handshakeConn) Close() error {
	c.mu.Lock()
	c.releaseLocked()
	c.mu.Unlock()
	return c.Conn.Close()
}

func (c *handshakeConn) releaseLocked() {
	if c.release != nil {
		c.release()
		c.release = nil
	}
}

// startups counts a listener's connections that have not yet
// authenticated, up to a limit, and up to a quarter of it from one source
// (an IPv4 address, an IPv6 /64), so that one client cannot take every
// slot and keep everyone else from logging in (sshd's
// PerSourceMaxStartups). When every slot is taken, a connection from a
// source that holds fewer than the source holding the most takes that
// source's oldest slot, whose connection is closed: a few sources that
// flood the listener share it with everyone else rather than keep them
// out, and a client that authenticates in milliseconds gets in even while
// they flood. Only a connection from a source holding as many as any
// other is refused when the listener is full.
type startups struct {
	mu        sync.Mutex
	max       int
	perSource int
	n         int
	seq       uint64                    // orders slots by age
	bySource  map[string][]*startupSlot // oldest first
}

// startupSlot is one connection's slot.
type startupSlot struct {
	src   string
	seq   uint64
	close func() // closes the connection that holds it
	taken bool   // given to a newcomer: releasing it does nothing
}

func newStartups(limit int) *startups {
	return &startups{max: limit, perSource: max(1, limit/4), bySource: map[string][]*startupSlot{}}
}

// take reserves a slot for a connection from addr, closed by close if a
// newcomer takes the slot over; release gives it back (call it once).
// perSource says a refusal was the source's share; evicted names the
// source whose oldest connection's slot was taken over, if one was.
func (st *startups) take(addr net.Addr, close func()) (release func(), ok, perSource bool, evicted string) {
	src := startupSource(addr)
	st.mu.Lock()
	held := len(st.bySource[src])
	if held >= st.perSource {
		st.mu.Unlock()
		return nil, false, true, ""
	}
	var victim *startupSlot
	if st.n >= st.max {
		for _, slots := range st.bySource {
			if len(slots) > held && (victim == nil || len(slots) > len(st.bySource[victim.src]) ||
				len(slots) == len(st.bySource[victim.src]) && slots[0].seq < victim.seq) {
				victim = slots[0]
			}
		}
		if victim == nil {
			st.mu.Unlock()
			return nil, false, false, ""
		}
		victim.taken = true
		st.remove(victim)
	}
	st.seq++
	slot := &startupSlot{src: src, seq: st.seq, close: close}
	st.bySource[src] = append(st.bySource[src], slot)
	st.n++
	st.mu.Unlock()
	if victim != nil {
		victim.close()
		evicted = victim.src
	}
	return func() {
		st.mu.Lock()
		defer st.mu.Unlock()
		if !slot.taken {
			slot.taken = true
			st.remove(slot)
		}
	}, true, false, evicted
}

// remove takes slot out of the count; st.mu is held.
func (st *startups) remove(slot *startupSlot) {
	slots := st.bySource[slot.src]
	if i := slices.Index(slots, slot); i >= 0 {
		slots = slices.Delete(slots, i, i+1)
	}
	if len(slots) == 0 {
		delete(st.bySource, slot.src)
	} else {
		st.bySource[slot.src] = slots
	}
	st.n--
}

// startupSource names the source a startup slot is counted against: the
// IPv4 address, or the IPv6 /64 (one host's share of addresses).
func startupSource(a net.Addr) string {
	tcp, ok := a.(*net.TCPAddr)
	if !ok {
		return a.String()
	}
	if ip4 := tcp.IP.To4(); ip4 != nil {
		return ip4.String()
	}
	return tcp.IP.Mask(net.CIDRMask(64, 128)).String() + "/64"
}

// codeVars are environment variables that change what a command runs
// rather than what it works on: the shell's startup files, options and
// prompt code, where it looks commands up, the dynamic loader's and the C
// library's modules, and the helpers and start-up code of common programs
// and interpreters. An env request cannot set them, so the command the
// bastion judged is the command that runs. codePrefixes are families of
// them.
var (
	codeVars = map[string]bool{
		"BASH_ENV": true, "ENV": true, "SHELLOPTS": true, "BASHOPTS": true, "POSIXLY_CORRECT": true,
		"PATH": true, "IFS": true, "CDPATH": true, "GLOBIGNORE": true, "EXECIGNORE": true, "FIGNORE": true,
		"PROMPT_COMMAND": true, "PS0": true, "PS1": true, "PS2": true, "PS3": true, "PS4": true,
		"MAILPATH": true, "MAIL": true, "INPUTRC": true, "HISTFILE": true, "HOME": true, "SHELL": true,
		"TERMINFO": true, "TERMINFO_DIRS": true, "TERMCAP": true, // what readline takes keys to mean
		"GCONV_PATH": true, "LOCPATH": true, "NLSPATH": true, "HOSTALIASES": true, "TMPDIR": true,
		"PAGER": true, "EDITOR": true, "VISUAL": true, "BROWSER": true, "LESSOPEN": true, "LESSCLOSE": true,
		"MANPAGER": true, "SYSTEMD_PAGER": true, "SUDO_ASKPASS": true, "SSH_ASKPASS": true,
		"JAVA_TOOL_OPTIONS": true, "_JAVA_OPTIONS": true, "NODE_OPTIONS": true, "NODE_PATH": true,
		"PERL5OPT": true, "PERL5LIB": true, "PERLLIB": true, "RUBYOPT": true, "RUBYLIB": true,
	}
	codePrefixes = []string{"LD_", "BASH_", "GIT_", "PYTHON", "MALLOC_", "GLIBC_", "XDG_CONFIG"}
)

// runsCode reports whether setting name may change what a command runs: a
// name that is not a shell identifier (bash reads exported functions from
// BASH_FUNC_name%% and, in older versions, BASH_FUNC_name()), or one of
// codeVars and codePrefixes.
func runsCode(name string) bool {
	if name == "" || codeVars[name] {
		return true
	}
	for i := 0; i < len(name); i++ {
		c := name[i]
		if !(c == '_' || c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || i > 0 && c >= '0' && c <= '9') {
			return true
		}
	}
	if strings.HasPrefix(name, "GIT_AUTHOR_") || strings.HasPrefix(name, "GIT_COMMITTER_") {
		return false // who a commit is by (often sent with SendEnv), not what runs
	}
	for _, p := range codePrefixes {
		if strings.HasPrefix(name, p) {
			return true
		}
	}
	return false
}
