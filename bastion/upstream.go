package bastion

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	gossh "golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/ca"
)

// errDestination refuses a destination address.
type errDestination struct{ msg string }

func (e *errDestination) Error() string { return e.msg }

// dialTarget connects to a configured target. It resolves the name itself
// and checks every resolved address, then dials the checked address (not
// the name again, which could resolve elsewhere the second time):
// unspecified, multicast and link-local addresses are refused, loopback
// only when the config names a loopback IP literally, and never one of the
// bastion's own listeners.
func (s *Server) dialTarget(ctx context.Context, t *policy.Target, port int) (net.Conn, error) {
	host, portStr, err := net.SplitHostPort(t.Address)
	if err != nil {
		return nil, fmt.Errorf("target %s: address %q: %w", t.Name, t.Address, err)
	}
	if port == 0 {
		if port, err = strconv.Atoi(portStr); err != nil {
			return nil, fmt.Errorf("target %s: port %q: %w", t.Name, portStr, err)
		}
	}
	literal := net.ParseIP(host)
	var ips []net.IP
	if literal != nil {
		ips = []net.IP{literal}
	} else {
		addrs, err := net.DefaultResolver.LookupIPAddr(ctx, host)
		if err != nil {
			return nil, fmt.Errorf("target %s: resolve %s: %w", t.Name, host, err)
		}
		for _, a := range addrs {
			ips = append(ips, a.IP)
		}
	}
	var firstErr error
	for _, ip := range ips {
		if err := s.checkDestination(ip, port, literal != nil); err != nil {
			if firstErr == nil {
				firstErr = fmt.Errorf("target %s: %w", t.Name, err)
			}
			continue
		}
		conn, err := s.cfg.Dial(ctx, "tcp", net.JoinHostPort(ip.String(), strconv.Itoa(port)))
		if err == nil {
			return conn, nil
		}
		if firstErr == nil {
			firstErr = fmt.Errorf("target %s: %w", t.Name, err)
		}
	}
	if firstErr == nil {
		firstErr = fmt.Errorf("target %s: %s resolves to no address", t.Name, host)
	}
	return nil, firstErr
}

func (s *Server) checkDestination(ip net.IP, port int, literal bool) error {
	switch {
	case ip.IsUnspecified() || ip.IsMulticast():
		return &errDestination{fmt.Sprintf("address %s is not a destination", ip)}
	case ip.IsLinkLocalUnicast() || ip.IsLinkLocalMulticast():
		return &errDestination{fmt.Sprintf("link-local address %s is refused", ip)}
	case isMetadataIP(ip):
		return &errDestination{fmt.Sprintf("address %s is a cloud instance metadata service", ip)}
	case ip.IsLoopback() && !literal:
		return &errDestination{fmt.Sprintf("the target's name resolves to loopback address %s; write the address literally in the config to allow it", ip)}
	case !literal && isLocalIP(ip):
		return &errDestination{fmt.Sprintf("the target's name resolves to %s, this host's own address; write the address literally in the config to allow it", ip)}
	}
	for _, a := range s.ownAddrs() {
		ta, ok := a.(*net.TCPAddr)
		if !ok || ta.Port != port {
			continue
		}
		if ta.IP.Equal(ip) || (ta.IP.IsUnspecified() || ta.IP == nil) && isLocalIP(ip) {
			return &errDestination{fmt.Sprintf("%s is the bastion's own listener", net.JoinHostPort(ip.String(), strconv.Itoa(port)))}
		}
	}
	return nil
}

func (s *Server) ownAddrs() []net.Addr {
	addrs := s.ListenAddrs()
	if s.cfg.OwnAddrs != nil {
		addrs = append(addrs, s.cfg.OwnAddrs()...)
	}
	return addrs
}

// metadataIPs are cloud instance metadata services that are not link-local
// (169.254.169.254 is refused as link-local): they hand out the bastion
// host's credentials, so no target reaches them, even written literally.
var metadataIPs = []net.IP{
	net.ParseIP("fd00:ec2::254"),   // AWS IMDS over IPv6 (unique-local)
	net.ParseIP("100.100.100.200"), // Alibaba Cloud (shared address space)
}

func isMetadataIP(ip net.IP) bool {
	for _, m := range metadataIPs {
		if m.Equal(ip) {
			return true
		}
	}
	return false
}

func isLocalIP(ip net.IP) bool {
	if ip.IsLoopback() {
		return true
	}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return false
	}
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && n.IP.Equal(ip) {
			return true
		}
	}
	return false
}

// sessionCertExtensions are the OpenSSH extensions a per-session target
// certificate carries: a pty, nothing else (no agent, X11, port or user-rc
// forwarding on the target).
var sessionCertExtensions = []string{"permit-pty"}

// upstreamConn is an SSH connection to a target without ssh.Client's three
// helper goroutines (global requests, channel opens, and one waiting to
// close forwards the bastion never asks for): the session's request
// goroutine answers the connection's requests and channel opens itself
// (proxy.requests), so an idle session holds three goroutines fewer. What the target may send on the connection is answered as
// ssh.Client answers it: global requests fail, channel opens are rejected.
type upstreamConn struct {
	gossh.Conn
	chans <-chan gossh.NewChannel
	reqs  <-chan *gossh.Request
}

// dialSSH opens an authenticated SSH connection to t as login with a fresh
// key certified by the target CA for this session only. The caller must
// drain the connection's chans and reqs until they close.
func (s *Server) dialSSH(ctx context.Context, t *policy.Target, login, sessionID string, id ca.Identity) (*upstreamConn, error) {
	start := s.now()
	c, err := s.dialSSHOnce(ctx, t, login, sessionID, id)
	result := "ok"
	if err != nil {
		result = "error"
	}
	s.metrics.UpstreamDial.WithLabelValues(policy.KindSSH, result).Observe(s.now().Sub(start).Seconds())
	return c, err
}

func (s *Server) dialSSHOnce(ctx context.Context, t *policy.Target, login, sessionID string, id ca.Identity) (*upstreamConn, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("session key: %w", err)
	}
	signer, err := gossh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	cert, err := s.cfg.Authority.SignTarget(signer.PublicKey(), ca.TargetCert{
		Login:      login,
		KeyID:      fmt.Sprintf("bastion session=%s user=%s iss=%s target=%s", sessionID, id.User, id.Issuer, t.Name),
		Extensions: sessionCertExtensions,
	})
	if err != nil {
		return nil, err
	}
	certSigner, err := gossh.NewCertSigner(cert, signer)
	if err != nil {
		return nil, err
	}
	hostKeyCB, algos, err := s.hostKeyCallback(t)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DialTimeout)
	defer cancel()
	conn, err := s.dialTarget(ctx, t, 0)
	if err != nil {
		return nil, err
	}
	// Bound the handshake; x/crypto has no context for it.
	if dl, ok := ctx.Deadline(); ok {
		conn.SetDeadline(dl)
	}
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()
	auth := []gossh.AuthMethod{gossh.PublicKeys(certSigner)}
	cc, chans, reqs, err := gossh.NewClientConn(conn, t.Address, &gossh.ClientConfig{
		Config:            sshConfig(),
		User:              login,
		Auth:              auth,
		HostKeyCallback:   hostKeyCB,
		HostKeyAlgorithms: algos,
		ClientVersion:     "SSH-2.0-bastion",
	})
	// x/crypto keeps its copy of the config for the connection's life (a
	// re-key needs its algorithms and host key check), and with it this
	// slice, but authenticates only in the handshake: let the session's
	// key, certificate and signer go (about 1 KiB per session).
	clear(auth)
	if err != nil {
		conn.Close()
		if ctx.Err() != nil {
			return nil, fmt.Errorf("target %s: connection timed out", t.Name)
		}
		return nil, fmt.Errorf("target %s: %w", t.Name, err)
	}
	conn.SetDeadline(time.Time{})
	return &upstreamConn{Conn: cc, chans: chans, reqs: reqs}, nil
}

// serve answers what the target sends on the connection itself, as
// ssh.Client does: a global request fails (OpenSSH's keepalives take a
// failure as an answer) and a channel the target opens (forwarded ports,
// agent, X11: none was asked for) is rejected. A session passes its
// channel's requests from the user (downReqs) and from the target
// (upReqs) with the queues that handle them, and what to run once each
// side's have ended and been handled. serve never waits on a handler, and
// returns when the connection has closed and every source has ended.
// Until it runs, the target can fill x/crypto's queues and stall the
// connection, so every connection is served or drained.
func (u *upstreamConn) serve(downReqs, upReqs <-chan *gossh.Request, down, up *requestQueue, downEnd, upEnd func()) {
	connReqs, connChans := u.reqs, u.chans
	for downReqs != nil || upReqs != nil || connReqs != nil || connChans != nil {
		select {
		case req, ok := <-downReqs:
			if !ok {
				downReqs = nil
				down.end(downEnd)
				continue
			}
			down.push(req)
		case req, ok := <-upReqs:
			if !ok {
				upReqs = nil
				up.end(upEnd)
				continue
			}
			up.push(req)
		case req, ok := <-connReqs:
			if !ok {
				connReqs = nil
			} else if req.WantReply {
				req.Reply(false, nil)
			}
		case nc, ok := <-connChans:
			if !ok {
				connChans = nil
			} else {
				nc.Reject(gossh.UnknownChannelType, "unknown channel type: "+nc.ChannelType())
			}
		}
	}
}

// closeDrain closes a connection no session serves and answers what the
// target sent meanwhile, so that x/crypto's goroutines end.
func (u *upstreamConn) closeDrain() {
	u.Close()
	u.serve(nil, nil, nil, nil, nil, nil)
}

// hostKeyCallback verifies a target's host key as its config says: a
// pinned key, a host CA, or a key pinned on first use in the store.
func (s *Server) hostKeyCallback(t *policy.Target) (gossh.HostKeyCallback, []string, error) {
	switch {
	case t.HostKey != nil:
		pinned := t.HostKey
		want := pinned.Marshal()
		cb := func(_ string, _ net.Addr, key gossh.PublicKey) error {
			if !bytes.Equal(key.Marshal(), want) {
				return fmt.Errorf("host key mismatch for target %s: got %s, pinned %s", t.Name, gossh.FingerprintSHA256(key), gossh.FingerprintSHA256(pinned))
			}
			return nil
		}
		return cb, hostKeyAlgorithms(pinned.Type()), nil
	case t.HostCA != nil:
		want := t.HostCA.Marshal()
		checker := &gossh.CertChecker{
			Clock:           s.now,
			IsHostAuthority: func(k gossh.PublicKey, _ string) bool { return bytes.Equal(k.Marshal(), want) },
		}
		cb := func(addr string, remote net.Addr, key gossh.PublicKey) error {
			cert, ok := key.(*gossh.Certificate)
			if !ok {
				return fmt.Errorf("target %s presented a plain host key; its config trusts only certificates from a host CA", t.Name)
			}
			// As OpenSSH's client: a user certificate from the same CA
			// (one CA for users and hosts, a user choosing its
			// principals) vouches for no host.
			if cert.CertType != gossh.HostCert {
				return fmt.Errorf("target %s presented a certificate that is not a host certificate (type %d)", t.Name, cert.CertType)
			}
			if !checker.IsHostAuthority(cert.SignatureKey, addr) {
				return fmt.Errorf("target %s host certificate is not signed by the configured host CA", t.Name)
			}
			host, _, _ := net.SplitHostPort(addr)
			err := checker.CheckCert(host, cert)
			if err != nil {
				if err2 := checker.CheckCert(t.Name, cert); err2 == nil {
					return nil
				}
				return fmt.Errorf("target %s host certificate: %w", t.Name, err)
			}
			return nil
		}
		return cb, nil, nil
	case t.TrustOnFirstUse:
		if s.cfg.Pins == nil {
			return nil, nil, fmt.Errorf("target %s: trust_on_first_use needs a store", t.Name)
		}
		cb := func(_ string, _ net.Addr, key gossh.PublicKey) error {
			if cert, ok := key.(*gossh.Certificate); ok {
				key = cert.Key
			}
			pinned, ok, err := s.cfg.Pins.PinnedHostKey(t.Name)
			if err != nil {
				return fmt.Errorf("target %s: host key store: %w", t.Name, err)
			}
			if ok {
				if !bytes.Equal(pinned, key.Marshal()) {
					return fmt.Errorf("host key of target %s changed since it was first pinned (now %s); if that is expected, remove the pin", t.Name, gossh.FingerprintSHA256(key))
				}
				return nil
			}
			if err := s.cfg.Pins.PinHostKey(t.Name, key.Marshal()); err != nil {
				return fmt.Errorf("target %s: pin host key: %w", t.Name, err)
			}
			s.log.Warn("pinned host key on first use", "target", t.Name, "fingerprint", gossh.FingerprintSHA256(key))
			s.audit(Event{Type: "hostkey.pin", Target: t.Name, Outcome: "pinned", Fields: map[string]string{"fingerprint": gossh.FingerprintSHA256(key)}})
			return nil
		}
		return cb, nil, nil
	}
	return nil, nil, errors.New("target " + t.Name + ": no host key trust configured")
}

// hostKeyAlgorithms makes the client ask for the pinned key's own
// algorithm, so a target that also has a host certificate does not offer
// the certificate instead.
func hostKeyAlgorithms(keyType string) []string {
	if keyType == gossh.KeyAlgoRSA {
		return []string{gossh.KeyAlgoRSASHA512, gossh.KeyAlgoRSASHA256}
	}
	return []string{keyType}
}
