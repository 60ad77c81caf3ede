package bastion

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
	"unicode/utf8"

	gossh "golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/auditlimit"
)

// authError is a refused user key, with a reason label for metrics.
type authError struct {
	reason string
	err    error
}

func (e *authError) Error() string { return e.err.Error() }

func refuse(reason, format string, args ...any) error {
	return &authError{reason: reason, err: fmt.Errorf(format, args...)}
}

// toldAfterSignature reports whether a refusal is one the client is told
// about, in a banner, once it has signed with the certificate's key: a
// certificate this bastion issued that has expired, is not yet valid or
// has been revoked. Whoever holds its key learns nothing they could not
// read in it; a client without the key is refused without a word.
func toldAfterSignature(err error) bool {
	var ae *authError
	if !errors.As(err, &ae) {
		return false
	}
	switch ae.reason {
	case "expired", "not_yet_valid", "revoked":
		return true
	}
	return false
}

// supportedCriticalOptions are the critical options the bastion enforces;
// a certificate carrying any other is refused, as OpenSSH does.
var supportedCriticalOptions = []string{"source-address"}

// checkUserKey accepts only a user certificate signed by the bastion's user
// CA (exact key comparison), within its validity window, with exactly one
// principal, only understood critical options, a source-address that admits
// remote, and a serial that is not revoked.
func (s *Server) checkUserKey(remote net.Addr, key gossh.PublicKey, check func(ca.Identity) error) (ca.Identity, error) {
	cert, ok := key.(*gossh.Certificate)
	if !ok {
		return ca.Identity{}, refuse("not_certificate", "plain keys are not accepted: log in with `bastion login` to get a certificate")
	}
	if cert.CertType != gossh.UserCert {
		return ca.Identity{}, refuse("host_certificate", "certificate serial %d is a host certificate, not a user certificate", cert.Serial)
	}
	if !bytes.Equal(cert.SignatureKey.Marshal(), s.userCA) {
		return ca.Identity{}, refuse("unknown_ca", "certificate serial %d is not signed by this bastion's user CA", cert.Serial)
	}
	if len(cert.ValidPrincipals) == 0 {
		// x/crypto treats an empty list as "any principal": refuse it.
		return ca.Identity{}, refuse("no_principals", "certificate serial %d has no principals", cert.Serial)
	}
	checker := gossh.CertChecker{
		SupportedCriticalOptions: supportedCriticalOptions,
		Clock:                    s.now,
		IsUserAuthority:          func(k gossh.PublicKey) bool { return bytes.Equal(k.Marshal(), s.userCA) },
	}
	if err := checker.CheckCert(cert.ValidPrincipals[0], cert); err != nil {
		reason := "invalid"
		msg := err.Error()
		switch {
		case strings.Contains(msg, "expired"):
			reason = "expired"
		case strings.Contains(msg, "not yet valid"):
			reason = "not_yet_valid"
		case strings.Contains(msg, "critical option"):
			reason = "critical_option"
		case strings.Contains(msg, "signature"):
			reason = "signature"
		}
		return ca.Identity{}, refuse(reason, "certificate serial %d: %v", cert.Serial, err)
	}
	if src, ok := cert.CriticalOptions["source-address"]; ok {
		if err := checkSourceAddress(remote, src); err != nil {
			return ca.Identity{}, refuse("source_address", "certificate serial %d: %v", cert.Serial, err)
		}
	}
	if s.cfg.Revocations.IsRevoked(cert.Serial) {
		return ca.Identity{}, refuse("revoked", "certificate serial %d has been revoked", cert.Serial)
	}
	id, err := ca.IdentityFromCertificate(cert)
	if err != nil {
		return ca.Identity{}, refuse("identity", "certificate serial %d: %v", cert.Serial, err)
	}
	if err := s.userRevoked(id); err != nil {
		return ca.Identity{}, refuse("revoked", "certificate serial %d: %v", cert.Serial, err)
	}
	if check != nil {
		if err := check(id); err != nil {
			return ca.Identity{}, refuse("identity_mismatch", "%v", err)
		}
	}
	return id, nil
}

// stillValid repeats, for each new channel, the checks of authentication
// that time can change: a connection stays up as long as the client keeps
// it (ssh ControlMaster/ControlPersist, for hours) and opens sessions,
// forwards and hops on it without authenticating again, so a certificate
// that has expired or been revoked since opens nothing more. (Channels
// already open run on: idle_timeout and max_duration bound them.)
func (s *Server) stillValid(id ca.Identity) error {
	if !id.ValidBefore.IsZero() && !s.now().Before(id.ValidBefore) {
		return fmt.Errorf("your certificate (serial %d) expired at %s: run `bastion login` and connect again", id.Serial, id.ValidBefore.UTC().Format(time.RFC3339))
	}
	if err := s.revocation(id); err != nil {
		return fmt.Errorf("your %w", err)
	}
	return nil
}

// revocation reports whether id's certificate has been revoked, by its
// serial or with everything its user held: what ends a session or a
// command already running (an expired certificate's run on).
func (s *Server) revocation(id ca.Identity) error {
	if s.cfg.Revocations.IsRevoked(id.Serial) {
		return fmt.Errorf("certificate serial %d has been revoked", id.Serial)
	}
	if err := s.userRevoked(id); err != nil {
		return fmt.Errorf("certificate serial %d: %v", id.Serial, err)
	}
	return nil
}

// userRevoked reports whether id's certificate was issued before (or in
// the second of) a revocation of everything its user held, `bastion ca
// revoke --user`. Its login certificate's database certificates and SQL
// API tokens go with it.
//
// A CI run's certificate (oidc.workload actor_claim) speaks for the person
// who triggered it too: revoking that person ends the runs they started
// before the revocation, as it ends their own logins.
func (s *Server) userRevoked(id ca.Identity) error {
	if at, ok := s.cfg.Revocations.UserRevoked(id.User); ok && !id.Issued().After(at) {
		return fmt.Errorf("the certificates of user %s issued up to %s have been revoked", id.User, at.UTC().Format(time.RFC3339))
	}
	if id.Actor == "" {
		return nil
	}
	if at, ok := s.cfg.Revocations.UserRevoked(id.Actor); ok && !id.Issued().After(at) {
		return fmt.Errorf("user %s, who triggered this run, has been revoked (certificates issued up to %s)", id.Actor, at.UTC().Format(time.RFC3339))
	}
	return nil
}

// Bounds on what an audit record keeps of text a client chose before it
// authenticated.
const (
	maxAuditName = 256     // a key ID, a principal
	maxAuditText = 4 << 10 // a reason quoting such text
)

// clip cuts s to at most n bytes on a character boundary, marking the cut
// with "…".
func clip(s string, n int) string {
	if len(s) <= n {
		return s
	}
	n -= len("…")
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}

func checkSourceAddress(remote net.Addr, list string) error {
	tcp, ok := remote.(*net.TCPAddr)
	if !ok {
		return fmt.Errorf("source-address restriction needs a TCP client address, have %s", remote)
	}
	for _, part := range strings.Split(list, ",") {
		if _, n, err := net.ParseCIDR(part); err == nil {
			if n.Contains(tcp.IP) {
				return nil
			}
			continue
		}
		if ip := net.ParseIP(part); ip != nil && ip.Equal(tcp.IP) {
			return nil
		}
	}
	return fmt.Errorf("client address %s is not in the certificate's source-address %q", tcp.IP, list)
}

func (s *Server) authFailed(remote net.Addr, key gossh.PublicKey, err error) {
	reason := "invalid"
	var ae *authError
	if errors.As(err, &ae) {
		reason = ae.reason
	}
	s.metrics.AuthFailures.WithLabelValues(reason).Inc()
	s.log.Info("authentication refused", "remote", remote.String(), "reason", reason, "err", maskClientText(err.Error()))
	// Audit refusals of certificates (someone holds a credential of ours
	// or a forgery); plain-key attempts are scanner noise, counted only.
	// Everything in a refused certificate is the client's to choose and
	// unverified: what is recorded of it is cut, so an unauthenticated
	// client cannot write large records to the audit log.
	//
	// A forged certificate costs its sender nothing, so refusals are
	// audited within a bound (auditlimit): past it they are counted, and a
	// summary record says how many, why and from where.
	//
	// What the client chose (the key ID, a principal, a reason quoting
	// them) is masked too: a card number there is not kept (the audit log
	// is masked before storing, as everything the bastion keeps).
	if cert, ok := key.(*gossh.Certificate); ok {
		ev := Event{Type: "ssh.login", Outcome: "refused", Reason: clip(maskClientText(err.Error()), maxAuditText), Fields: map[string]string{
			"remote": remote.String(), "serial": fmt.Sprint(cert.Serial), "key_id": clip(maskClientText(cert.KeyId), maxAuditName), "reason": reason,
		}}
		// Whoever made the certificate chose its principal: it names a
		// user only when the user CA signed it (an expired or revoked
		// certificate of ours), else it is only a claim.
		own := s.signedByUserCA(cert)
		if len(cert.ValidPrincipals) > 0 {
			if own {
				ev.Identity.User = clip(cert.ValidPrincipals[0], maxAuditName)
			} else {
				ev.Fields["claimed_principal"] = clip(maskClientText(cert.ValidPrincipals[0]), maxAuditName)
			}
		}
		lim := s.forgedCertRefusals
		if own {
			lim = s.ownCertRefusals
		}
		if lim.Allow(remote.String(), reason) {
			s.audit(ev)
		}
	}
}

// refusalLimiter bounds the audit records of one kind of refused login,
// summing up what it holds back.
func (s *Server) refusalLimiter() *auditlimit.Limiter {
	return auditlimit.New(0, 0, 0, s.refusalSummary)
}

// refusalSummary audits what a refusalLimiter held back.
func (s *Server) refusalSummary(sum auditlimit.Summary) {
	s.audit(Event{Type: auditlimit.Type, Outcome: "refused", Reason: sum.Reason("ssh.login"), Fields: sum.Fields("ssh.login")})
}

// signedByUserCA reports whether the bastion's user CA signed cert,
// whatever else is wrong with it. (x/crypto checks the signature last,
// after the validity window and the options, and says nothing of it when
// an earlier check fails.)
func (s *Server) signedByUserCA(cert *gossh.Certificate) bool {
	if cert.SignatureKey == nil || cert.Signature == nil || !bytes.Equal(cert.SignatureKey.Marshal(), s.userCA) {
		return false
	}
	c := *cert
	c.Signature = nil
	signed := c.Marshal()
	signed = signed[:len(signed)-4] // the empty signature's length
	return cert.SignatureKey.Verify(signed, cert.Signature) == nil
}

// The identity travels from authentication to the channel handlers in the
// connection's Permissions, set for the key that signed.
const permIdentity = "identity@bastionhq.dev"

func identityPermissions(id ca.Identity) *gossh.Permissions {
	b, _ := json.Marshal(id)
	p := &gossh.Permissions{Extensions: map[string]string{permIdentity: string(b)}}
	if id.SourceAddress != "" {
		p.CriticalOptions = map[string]string{"source-address": id.SourceAddress}
	}
	return p
}

func identityOf(conn *gossh.ServerConn) (ca.Identity, error) {
	if conn.Permissions == nil {
		return ca.Identity{}, errors.New("bastion: connection has no verified identity")
	}
	raw, ok := conn.Permissions.Extensions[permIdentity]
	if !ok {
		return ca.Identity{}, errors.New("bastion: connection has no verified identity")
	}
	var id ca.Identity
	if err := json.Unmarshal([]byte(raw), &id); err != nil {
		return ca.Identity{}, fmt.Errorf("bastion: identity: %w", err)
	}
	return id, nil
}
