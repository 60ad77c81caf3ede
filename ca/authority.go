package ca

import (
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// Defaults for certificate lifetimes.
const (
	DefaultUserTTL     = time.Hour
	DefaultMaxUserTTL  = 8 * time.Hour
	DefaultWorkloadTTL = 5 * time.Minute
	DefaultTargetTTL   = 2 * time.Minute
	DefaultClockSkew   = 2 * time.Minute
	minRSABits         = 2048
)

// Sentinel errors. Callers match them with errors.Is.
var (
	// ErrTTL means the caller asked for a longer certificate than allowed.
	ErrTTL = errors.New("requested lifetime exceeds the maximum")
	// ErrWeakKey means the public key to certify is of a refused type or size.
	ErrWeakKey = errors.New("public key refused")
)

// Config configures an Authority. Zero values take the defaults above.
type Config struct {
	// Keys is the key material from LoadOrCreateKeys. Required.
	Keys *Keys
	// UserTTL is the default lifetime of a person's login certificate.
	UserTTL time.Duration
	// MaxUserTTL caps the lifetime a person may ask for.
	MaxUserTTL time.Duration
	// WorkloadTTL is the default and maximum lifetime for workload identities.
	WorkloadTTL time.Duration
	// TargetTTL is the lifetime of per-session target certificates; they
	// only have to survive the handshake.
	TargetTTL time.Duration
	// ClockSkew backdates ValidAfter so a target or client whose clock is a
	// little behind still accepts a fresh certificate.
	ClockSkew time.Duration
	// Now returns the current time; nil means time.Now.
	Now func() time.Time
}

// Authority signs certificates with the bastion's CA keys.
type Authority struct {
	cfg  Config
	keys *Keys
	now  func() time.Time
}

// New checks cfg and returns an Authority.
func New(cfg Config) (*Authority, error) {
	if cfg.Keys == nil || cfg.Keys.UserCA == nil || cfg.Keys.TargetCA == nil || cfg.Keys.HostCA == nil {
		return nil, errors.New("ca: Config.Keys with user, target and host CA is required")
	}
	def := func(d *time.Duration, v time.Duration) {
		if *d == 0 {
			*d = v
		}
	}
	def(&cfg.UserTTL, DefaultUserTTL)
	def(&cfg.MaxUserTTL, DefaultMaxUserTTL)
	def(&cfg.WorkloadTTL, DefaultWorkloadTTL)
	def(&cfg.TargetTTL, DefaultTargetTTL)
	def(&cfg.ClockSkew, DefaultClockSkew)
	switch {
	case cfg.UserTTL < 0 || cfg.MaxUserTTL < 0 || cfg.WorkloadTTL < 0 || cfg.TargetTTL < 0 || cfg.ClockSkew < 0:
		return nil, errors.New("ca: lifetimes must be positive")
	case cfg.UserTTL > cfg.MaxUserTTL:
		return nil, fmt.Errorf("ca: user_ttl %s exceeds max_user_ttl %s", cfg.UserTTL, cfg.MaxUserTTL)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Authority{cfg: cfg, keys: cfg.Keys, now: now}, nil
}

// Keys returns the authority's key material.
func (a *Authority) Keys() *Keys { return a.keys }

// TTL decides a certificate lifetime: the default for the kind of identity
// when the caller asked for none, the request when it is within the maximum,
// and ErrTTL otherwise. This is the one place lifetimes are derived.
func (a *Authority) TTL(workload bool, requested time.Duration) (time.Duration, error) {
	def, maxTTL := a.cfg.UserTTL, a.cfg.MaxUserTTL
	if workload {
		def, maxTTL = a.cfg.WorkloadTTL, a.cfg.WorkloadTTL
	}
	switch {
	case requested < 0:
		return 0, fmt.Errorf("%w: negative lifetime %s", ErrTTL, requested)
	case requested == 0:
		return def, nil
	case requested > maxTTL:
		return 0, fmt.Errorf("%w: asked for %s, maximum is %s", ErrTTL, requested, maxTTL)
	}
	return requested, nil
}

// SignUser issues a login certificate for id and pub. It assigns the serial
// and validity window; id's own Serial and validity are ignored.
func (a *Authority) SignUser(id Identity, pub ssh.PublicKey, requested time.Duration) (*ssh.Certificate, Identity, error) {
	if err := CheckPublicKey(pub); err != nil {
		return nil, Identity{}, err
	}
	id, err := a.Stamp(id, requested)
	if err != nil {
		return nil, Identity{}, err
	}
	cert, err := a.SignStamped(id, pub)
	if err != nil {
		return nil, Identity{}, err
	}
	return cert, id, nil
}

// Stamp makes a login of id: a fresh serial and the validity window, the
// lifetime from TTL. The login's credentials (SSH certificate, database
// client certificate, access token) all carry this serial and window, so
// revoking the serial revokes them all.
func (a *Authority) Stamp(id Identity, requested time.Duration) (Identity, error) {
	ttl, err := a.TTL(id.Workload, requested)
	if err != nil {
		return Identity{}, err
	}
	serial, err := randomSerial()
	if err != nil {
		return Identity{}, err
	}
	now := a.now()
	id.Serial = serial
	id.ValidAfter = now.Add(-a.cfg.ClockSkew).Truncate(time.Second)
	id.ValidBefore = now.Add(ttl).Truncate(time.Second)
	return id, nil
}

// SignStamped signs the SSH login certificate of a stamped identity.
func (a *Authority) SignStamped(id Identity, pub ssh.PublicKey) (*ssh.Certificate, error) {
	cert, _, err := a.signStamped(id, pub)
	return cert, err
}

// signStamped is SignStamped, also returning the certificate's wire
// encoding (cert.Marshal()), made while signing it.
func (a *Authority) signStamped(id Identity, pub ssh.PublicKey) (*ssh.Certificate, []byte, error) {
	if err := CheckPublicKey(pub); err != nil {
		return nil, nil, err
	}
	if c, ok := pub.(ssh.CryptoPublicKey); ok && a.keys.own(c.CryptoPublicKey()) {
		return nil, nil, fmt.Errorf("%w: the key is one of the bastion's own", ErrWeakKey)
	}
	cert, err := id.Certificate(pub)
	if err != nil {
		return nil, nil, err
	}
	wire, err := signCert(cert, rand.Reader, a.keys.UserCA)
	if err != nil {
		return nil, nil, fmt.Errorf("ca: sign %s: %w: %w", cert.KeyId, ErrCAUnavailable, err)
	}
	return cert, wire, nil
}

// TargetCert describes a per-session certificate toward a target.
type TargetCert struct {
	Login      string   // the one principal: the login on the target
	KeyID      string   // names the user and the session
	Extensions []string // OpenSSH extensions the session needs, e.g. "permit-pty"
}

// SignTarget certifies pub (a fresh per-session key) with the target CA.
func (a *Authority) SignTarget(pub ssh.PublicKey, tc TargetCert) (*ssh.Certificate, error) {
	if tc.Login == "" {
		return nil, errors.New("ca: target certificate needs a login")
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	ext := make(map[string]string, len(tc.Extensions))
	for _, e := range tc.Extensions {
		ext[e] = ""
	}
	now := a.now()
	cert := &ssh.Certificate{
		Key:             pub,
		Serial:          serial,
		CertType:        ssh.UserCert,
		KeyId:           tc.KeyID,
		ValidPrincipals: []string{tc.Login},
		ValidAfter:      unixSeconds(now.Add(-a.cfg.ClockSkew)),
		ValidBefore:     unixSeconds(now.Add(a.cfg.TargetTTL)),
		Permissions:     ssh.Permissions{Extensions: ext},
	}
	if _, err := signCert(cert, rand.Reader, a.keys.TargetCA); err != nil {
		return nil, fmt.Errorf("ca: sign target %s: %w", tc.KeyID, err)
	}
	return cert, nil
}

// SignHost certifies a host key for the given host names with the host CA.
func (a *Authority) SignHost(pub ssh.PublicKey, keyID string, principals []string, ttl time.Duration) (*ssh.Certificate, error) {
	if len(principals) == 0 {
		return nil, errors.New("ca: host certificate needs principals")
	}
	serial, err := randomSerial()
	if err != nil {
		return nil, err
	}
	now := a.now()
	cert := &ssh.Certificate{
		Key:             pub,
		Serial:          serial,
		CertType:        ssh.HostCert,
		KeyId:           keyID,
		ValidPrincipals: principals,
		ValidAfter:      unixSeconds(now.Add(-a.cfg.ClockSkew)),
		ValidBefore:     unixSeconds(now.Add(ttl)),
	}
	if _, err := signCert(cert, rand.Reader, a.keys.HostCA); err != nil {
		return nil, fmt.Errorf("ca: sign host %s: %w", keyID, err)
	}
	return cert, nil
}

// SignDBClient issues a short-lived X.509 client certificate for a database
// user (CN = user), for PostgreSQL "hostssl ... cert" authentication.
func (a *Authority) SignDBClient(pub crypto.PublicKey, user string, ttl time.Duration) (*x509.Certificate, error) {
	if user == "" {
		return nil, errors.New("ca: database certificate needs a user")
	}
	if a.keys.DBCA == nil {
		return nil, errors.New("ca: no database CA")
	}
	return a.signX509(a.keys.DBCA, pub, pkix.Name{CommonName: user}, nil, ttl, x509.ExtKeyUsageClientAuth)
}

// SignDBServer issues a server certificate for the bastion's PostgreSQL
// endpoint (offered to clients that insist on TLS inside the tunnel).
func (a *Authority) SignDBServer(pub crypto.PublicKey, names []string, ttl time.Duration) (*x509.Certificate, error) {
	if a.keys.DBCA == nil {
		return nil, errors.New("ca: no database CA")
	}
	return a.signX509(a.keys.DBCA, pub, pkix.Name{CommonName: "bastion"}, names, ttl, x509.ExtKeyUsageServerAuth)
}

func (a *Authority) signX509(ca *X509CA, pub crypto.PublicKey, subject pkix.Name, names []string, ttl time.Duration, usage x509.ExtKeyUsage) (*x509.Certificate, error) {
	serial, err := randomSerialBig()
	if err != nil {
		return nil, err
	}
	now := a.now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      subject,
		NotBefore:    now.Add(-a.cfg.ClockSkew),
		NotAfter:     now.Add(ttl),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{usage},
	}
	x509Names(tmpl, names)
	return a.createX509(ca, tmpl, pub)
}

// createX509 signs tmpl for pub with ca.
func (a *Authority) createX509(ca *X509CA, tmpl *x509.Certificate, pub crypto.PublicKey) (*x509.Certificate, error) {
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.Cert, pub, ca.Key)
	if err != nil {
		return nil, fmt.Errorf("ca: sign %s: %w: %w", tmpl.Subject.CommonName, ErrCAUnavailable, err)
	}
	return x509.ParseCertificate(der)
}

// CheckPublicKey refuses key types and sizes the bastion will not certify:
// DSA, RSA under 2048 bits, certificates, and unknown types.
func CheckPublicKey(pub ssh.PublicKey) error {
	if pub == nil {
		return fmt.Errorf("%w: missing", ErrWeakKey)
	}
	switch pub.Type() {
	case ssh.KeyAlgoED25519, ssh.KeyAlgoECDSA256, ssh.KeyAlgoECDSA384, ssh.KeyAlgoECDSA521,
		ssh.KeyAlgoSKED25519, ssh.KeyAlgoSKECDSA256:
		return nil
	case ssh.KeyAlgoRSA:
		cpk, ok := pub.(ssh.CryptoPublicKey)
		if !ok {
			return fmt.Errorf("%w: unreadable RSA key", ErrWeakKey)
		}
		rk, ok := cpk.CryptoPublicKey().(*rsa.PublicKey)
		if !ok || rk.N.BitLen() < minRSABits {
			bits := 0
			if ok {
				bits = rk.N.BitLen()
			}
			return fmt.Errorf("%w: RSA key of %d bits, need at least %d", ErrWeakKey, bits, minRSABits)
		}
		return nil
	case ssh.KeyAlgoDSA:
		return fmt.Errorf("%w: DSA keys are insecure", ErrWeakKey)
	}
	if strings.Contains(pub.Type(), "-cert-") {
		return fmt.Errorf("%w: a certificate cannot be certified", ErrWeakKey)
	}
	return fmt.Errorf("%w: unsupported key type %q", ErrWeakKey, pub.Type())
}

// randomSerial returns a random non-zero 63-bit serial. Random serials need
// no coordination between bastion replicas and cannot be guessed.
func randomSerial() (uint64, error) {
	var b [8]byte
	for {
		if _, err := rand.Read(b[:]); err != nil {
			return 0, fmt.Errorf("ca: serial: %w", err)
		}
		if s := binary.BigEndian.Uint64(b[:]) >> 1; s != 0 {
			return s, nil
		}
	}
}

// Public parts, each in the format its consumer reads.

// UserCALine is the user CA as an authorized_keys / TrustedUserCAKeys line.
func (k *Keys) UserCALine() string { return authorizedLine(k.UserCA.PublicKey(), "bastion-user-ca") }

// TargetCALine is the target CA as a TrustedUserCAKeys line for targets' sshd.
func (k *Keys) TargetCALine() string {
	return authorizedLine(k.TargetCA.PublicKey(), "bastion-target-ca")
}

// HostCALine is the host CA as a known_hosts @cert-authority line for hosts.
func (k *Keys) HostCALine(hosts string) string {
	if hosts == "" {
		hosts = "*"
	}
	return "@cert-authority " + hosts + " " + authorizedLine(k.HostCA.PublicKey(), "bastion-host-ca")
}

func authorizedLine(pub ssh.PublicKey, comment string) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(pub))) + " " + comment
}
