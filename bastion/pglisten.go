package bastion

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/bastionhq/bastion/bastion/pgproxy"
	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/safetext"
)

// The direct PostgreSQL listener: programs connect with stock drivers over
// TLS (sslmode=verify-full against the database-client CA) and the client
// certificate `bastion login` wrote; the database parameter names the
// target, "TARGET/DATABASE". From there a connection is a PostgreSQL
// forward like one through ssh -L: the same policy checks, statement
// rules, masking, approvals, recording and per-connection upstream
// certificate.

// ParsePGDatabase splits a direct listener's database parameter
// "TARGET/DATABASE" (the database may itself contain '/').
func ParsePGDatabase(s string) (target, database string, err error) {
	target, database, ok := strings.Cut(s, "/")
	switch {
	case !ok:
		return "", "", fmt.Errorf("database %q names no target: connect with dbname=TARGET/DATABASE, e.g. pg1/shop (`bastion db env` sets it)", safetext.Printable(s))
	case target == "":
		return "", "", fmt.Errorf("database %q: the target before '/' is empty", safetext.Printable(s))
	case database == "":
		return "", "", fmt.Errorf("database %q: the database after '/' is empty", safetext.Printable(s))
	}
	return target, database, nil
}

// listenerCert is the direct listener's server certificate, from the
// database-client CA, renewed at half-life.
type listenerCert struct {
	authority *ca.Authority
	names     []string
	ttl       time.Duration
	now       func() time.Time

	mu   sync.Mutex
	cert *tls.Certificate
}

func (l *listenerCert) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if c := l.cert; c != nil && l.now().Before(c.Leaf.NotBefore.Add(c.Leaf.NotAfter.Sub(c.Leaf.NotBefore)/2)) {
		return c, nil
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	leaf, err := l.authority.SignDBListener(key.Public(), l.names, l.ttl)
	if err != nil {
		return nil, err
	}
	l.cert = &tls.Certificate{Certificate: [][]byte{leaf.Raw}, PrivateKey: key, Leaf: leaf}
	return l.cert, nil
}

// ServePostgres accepts PostgreSQL clients on ln until Shutdown or Close.
// names are the host names and addresses clients use to reach ln (the
// server certificate's names; loopback is always added).
func (s *Server) ServePostgres(ln net.Listener, names []string) error {
	if s.cfg.Authority.Keys().DBClientCA == nil {
		ln.Close()
		return ca.ErrNoDBClientCA
	}
	s.mu.Lock()
	if s.closing.Load() {
		s.mu.Unlock()
		ln.Close()
		return nil
	}
	s.listeners = append(s.listeners, ln)
	s.mu.Unlock()
	s.revWatch.Do(func() { go s.endRevoked() })
	lc := &listenerCert{authority: s.cfg.Authority, names: append([]string{"localhost", "127.0.0.1", "::1"}, names...), ttl: s.cfg.HostCertTTL, now: s.now}
	if _, err := lc.get(nil); err != nil {
		ln.Close()
		return err
	}
	tlsCfg := &tls.Config{
		GetCertificate: lc.get,
		// The certificate is verified after the handshake, so that a
		// refusal reaches the client as a PostgreSQL error it shows.
		ClientAuth: tls.RequestClientCert,
		MinVersion: tls.VersionTLS12,
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var delay time.Duration
	for {
		c, err := ln.Accept()
		if err != nil {
			if s.closing.Load() || errors.Is(err, net.ErrClosed) {
				return nil
			}
			// Out of file descriptors and the like: back off, as net/http does.
			delay = min(max(2*delay, 5*time.Millisecond), time.Second)
			s.log.Warn("postgres listener: accept", "err", err)
			time.Sleep(delay)
			continue
		}
		delay = 0
		release, ok, perSource, evicted := s.pgStartups.take(c.RemoteAddr(), func() { c.Close() })
		if !ok {
			s.startupsFull("postgres", c.RemoteAddr(), perSource)
			c.Close()
			continue
		}
		if evicted != "" {
			s.startupsEvicted("postgres", c.RemoteAddr(), evicted)
		}
		go s.servePostgresConn(ctx, c, tlsCfg, release)
	}
}

// servePostgresConn serves one direct listener connection. release gives
// back its MaxStartups slot, once the client has authenticated (or failed).
func (s *Server) servePostgresConn(ctx context.Context, c net.Conn, tlsCfg *tls.Config, release func()) {
	remote := c.RemoteAddr()
	front, err := pgproxy.Accept(ctx, c, pgproxy.AcceptConfig{TLS: tlsCfg, Cancels: s.pg.cancels, Timeout: s.cfg.StartupTimeout})
	if err != nil {
		release()
		if !errors.Is(err, pgproxy.ErrCancelRequest) {
			s.log.Debug("postgres listener: startup", "client", remote.String(), "err", err)
		}
		return
	}
	id, t, port, database, err := s.directRoute(front)
	release()
	if err != nil {
		s.metrics.ChannelsRefused.WithLabelValues("postgres").Inc()
		target := ""
		if t != nil {
			target = t.Name
		}
		// The reason may quote the unverified certificate (its serial): cut;
		// and the target or database name the client sent: masked.
		why := maskClientText(err.Error())
		s.log.Info("postgres connection refused", "client", remote.String(), "user", id.User, "target", target, "reason", why)
		s.audit(Event{Type: "channel.refuse", Identity: id, Target: target, Outcome: "refused", Reason: clip(why, maxAuditText),
			Fields: map[string]string{"channel": "postgres", "client": remote.String()}})
		front.Refuse("28000", why, err)
		return
	}
	front.SetParam("database", database)
	fields := map[string]string{"via": "postgres listener"}
	sid := newSessionID()
	up, err := s.dialForward(ctx, sid, id, t, port, fields)
	if err != nil {
		code := "08001" // sqlclient_unable_to_establish_sqlconnection
		if errors.Is(err, errMaxPerUser) {
			code = "53300" // too_many_connections
		}
		front.Refuse(code, err.Error(), err)
		return
	}
	client := front.Conn()
	ss, err := s.beginForward(ctx, sid, id, t, remote, up, client.Close, fields)
	if ss == nil {
		code := "57P01" // admin_shutdown
		if !errors.Is(err, errShutdown) {
			code = "53300" // too_many_connections
		}
		front.Refuse(code, err.Error(), err)
		up.Close()
		return
	}
	defer ss.finish()
	if err != nil {
		front.Refuse("58000", err.Error(), err)
		up.Close()
		return
	}
	s.postgresForward(ss, client, up, t, port)
}

// directRoute authenticates a direct listener's client by its certificate
// and finds the target its database parameter names. The identity is
// returned as far as it is known, for the audit record of a refusal.
func (s *Server) directRoute(front *pgproxy.Front) (ca.Identity, *policy.Target, int, string, error) {
	id, err := s.cfg.Authority.VerifyDBAccess(front.TLS().PeerCertificates)
	if err != nil {
		return ca.Identity{}, nil, 0, "", err
	}
	if err := s.revocation(id); err != nil {
		return id, nil, 0, "", fmt.Errorf("the client %w", err)
	}
	db := front.Param("database")
	if db == "" {
		db = front.Param("user")
	}
	name, database, err := ParsePGDatabase(db)
	if err != nil {
		return id, nil, 0, "", err
	}
	pol := s.cfg.Policy()
	t, ok := pol.Target(name)
	if !ok || t.Kind != policy.KindPostgres {
		return id, nil, 0, "", fmt.Errorf("%q is not a configured PostgreSQL target (see `ssh bastion targets`)", safetext.Printable(name))
	}
	_, tport, _ := net.SplitHostPort(t.Address)
	port, _ := strconv.Atoi(tport)
	if _, err := pol.CheckForward(policyIdentity(id), t.Name, port, port); err != nil {
		return id, t, 0, "", err
	}
	return id, t, port, database, nil
}
