package ca

import (
	"bytes"
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"strconv"
	"strings"
	"time"
)

// The credentials of the bastion's database doors: a login (the same
// Identity, the same serial as its SSH certificate) can also buy an X.509
// client certificate for the direct PostgreSQL listener and an access token
// for the SQL API. Both are signed by the database-client CA (Keys.DBClientCA),
// which no database trusts: presented to PostgreSQL itself, the certificate
// is refused. Revoking the login's serial revokes all three.

// oidIdentity is the non-critical extension of a database-client
// certificate that carries the rest of the Identity (issuer, subject,
// groups, workload) as a UTF8String holding JSON. The arc is a random one
// under 2.25 (the UUID arc), cut to 31 bits because Go's certificate parser
// takes no longer arcs.
var oidIdentity = asn1.ObjectIdentifier{2, 25, 1460938137, 1}

// identityExt is the JSON inside the identity extension.
type identityExt struct {
	Issuer   string   `json:"iss"`
	Subject  string   `json:"sub"`
	Groups   []string `json:"groups"`
	Workload bool     `json:"workload,omitempty"`
	Actor    string   `json:"actor,omitempty"`
}

// Errors of the database doors' credentials.
var (
	// ErrNoDBClientCA: the keys hold no database-client CA.
	ErrNoDBClientCA = errors.New("ca: no database client CA")
	// ErrAccessToken: an access token was refused; the wrapped text says why.
	ErrAccessToken = errors.New("access token refused")
)

// SignDBAccess certifies pub as the X.509 client certificate of a login
// for the direct PostgreSQL listener: CN is the user, the serial and the
// validity are the login's (id must come from Stamp or SignUser), and the
// identity extension carries the rest of id.
func (a *Authority) SignDBAccess(id Identity, pub crypto.PublicKey) (*x509.Certificate, error) {
	if a.keys.DBClientCA == nil {
		return nil, ErrNoDBClientCA
	}
	if err := CheckX509PublicKey(pub); err != nil {
		return nil, err
	}
	if a.keys.own(pub) {
		return nil, fmt.Errorf("%w: the key is one of the bastion's own", ErrWeakKey)
	}
	if id.User == "" || id.Serial == 0 || id.ValidBefore.IsZero() {
		return nil, errors.New("ca: database client certificate needs a stamped identity")
	}
	groups := id.Groups
	if groups == nil {
		groups = []string{}
	}
	js, err := marshalPlain(identityExt{Issuer: id.Issuer, Subject: id.Subject, Groups: groups, Workload: id.Workload, Actor: id.Actor})
	if err != nil {
		return nil, err
	}
	val, err := asn1.MarshalWithParams(string(js), "utf8")
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber:    new(big.Int).SetUint64(id.Serial),
		Subject:         pkix.Name{CommonName: id.User},
		NotBefore:       id.ValidAfter,
		NotAfter:        id.ValidBefore,
		KeyUsage:        x509.KeyUsageDigitalSignature,
		ExtKeyUsage:     []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth},
		ExtraExtensions: []pkix.Extension{{Id: oidIdentity, Value: val}},
	}
	return a.createX509(a.keys.DBClientCA, tmpl, pub)
}

// SignDBListener issues the direct PostgreSQL listener's server certificate
// for names (DNS names or IP addresses), from the database-client CA, so
// that a client verifies it with the CA certificate login wrote
// (sslrootcert, sslmode=verify-full).
func (a *Authority) SignDBListener(pub crypto.PublicKey, names []string, ttl time.Duration) (*x509.Certificate, error) {
	if a.keys.DBClientCA == nil {
		return nil, ErrNoDBClientCA
	}
	return a.signX509(a.keys.DBClientCA, pub, pkix.Name{CommonName: "bastion postgres listener"}, names, ttl, x509.ExtKeyUsageServerAuth)
}

// VerifyDBAccess checks a client certificate chain presented to the direct
// listener: signed by the database-client CA, within its validity at the
// authority's clock, for client authentication; and reads the Identity
// back. Revocation is the caller's check. The error says what is wrong in
// words a person can act on.
func (a *Authority) VerifyDBAccess(chain []*x509.Certificate) (Identity, error) {
	if a.keys.DBClientCA == nil {
		return Identity{}, ErrNoDBClientCA
	}
	if len(chain) == 0 {
		return Identity{}, errors.New("no client certificate: connect with the certificate `bastion login` wrote (bastion db env)")
	}
	leaf := chain[0]
	now := a.now()
	if now.After(leaf.NotAfter) {
		return Identity{}, fmt.Errorf("the client certificate (serial %s) expired at %s: run `bastion login` again", leaf.SerialNumber, leaf.NotAfter.UTC().Format(time.RFC3339))
	}
	if now.Before(leaf.NotBefore) {
		return Identity{}, fmt.Errorf("the client certificate (serial %s) is not valid before %s", leaf.SerialNumber, leaf.NotBefore.UTC().Format(time.RFC3339))
	}
	roots := x509.NewCertPool()
	roots.AddCert(a.keys.DBClientCA.Cert)
	inter := x509.NewCertPool()
	for _, c := range chain[1:] {
		inter.AddCert(c)
	}
	if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, CurrentTime: now, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		return Identity{}, fmt.Errorf("the client certificate (serial %s) is not one this bastion issued: %v", leaf.SerialNumber, err)
	}
	return IdentityFromX509(leaf)
}

// IdentityFromX509 reads the Identity of a database-client certificate. It
// checks the shape, not the signature (VerifyDBAccess does both).
func IdentityFromX509(c *x509.Certificate) (Identity, error) {
	if c.SerialNumber == nil || c.SerialNumber.Sign() <= 0 || !c.SerialNumber.IsUint64() {
		return Identity{}, errors.New("ca: certificate serial is not a bastion login serial")
	}
	id := Identity{
		User:        c.Subject.CommonName,
		Serial:      c.SerialNumber.Uint64(),
		ValidAfter:  c.NotBefore,
		ValidBefore: c.NotAfter,
	}
	var raw []byte
	for _, e := range c.Extensions {
		if e.Id.Equal(oidIdentity) {
			raw = e.Value
		}
	}
	if raw == nil {
		return Identity{}, errors.New("ca: certificate lacks the bastion identity extension")
	}
	var js string
	if rest, err := asn1.UnmarshalWithParams(raw, &js, "utf8"); err != nil || len(rest) > 0 {
		return Identity{}, errors.New("ca: identity extension is not a UTF8String")
	}
	if err := decodeIdentityJSON([]byte(js), &id); err != nil {
		return Identity{}, err
	}
	return id, nil
}

// decodeIdentityJSON fills id from the identity extension's JSON and checks it.
func decodeIdentityJSON(b []byte, id *Identity) error {
	var ext identityExt
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&ext); err != nil {
		return fmt.Errorf("ca: identity extension: %w", err)
	}
	id.Issuer, id.Subject, id.Groups, id.Workload, id.Actor = ext.Issuer, ext.Subject, ext.Groups, ext.Workload, ext.Actor
	if len(id.Groups) == 0 {
		id.Groups = nil
	}
	return checkIdentity(*id)
}

// checkIdentity checks what every credential's identity must have.
func checkIdentity(id Identity) error {
	if id.Issuer == "" || id.Subject == "" {
		return errors.New("ca: identity lacks the issuer or subject")
	}
	if err := ValidateUsername(id.User); err != nil {
		return err
	}
	if err := checkActor(id); err != nil {
		return err
	}
	for _, g := range id.Groups {
		if err := validateGroup(g); err != nil {
			return err
		}
	}
	return nil
}

// CheckX509PublicKey refuses key types and sizes the bastion will not
// certify for the database doors: ECDSA P-256 and P-384, Ed25519, and RSA
// of at least 2048 bits are accepted.
func CheckX509PublicKey(pub crypto.PublicKey) error {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		if n := k.Curve.Params().Name; n != "P-256" && n != "P-384" {
			return fmt.Errorf("%w: ECDSA curve %s (want P-256 or P-384)", ErrWeakKey, n)
		}
		return nil
	case ed25519.PublicKey:
		return nil
	case *rsa.PublicKey:
		if k.N.BitLen() < minRSABits {
			return fmt.Errorf("%w: RSA key of %d bits, need at least %d", ErrWeakKey, k.N.BitLen(), minRSABits)
		}
		return nil
	case nil:
		return fmt.Errorf("%w: missing", ErrWeakKey)
	}
	return fmt.Errorf("%w: unsupported key type %T", ErrWeakKey, pub)
}

// ParsePublicKeyPEM reads one PEM "PUBLIC KEY" (PKIX) block.
func ParsePublicKeyPEM(s string) (crypto.PublicKey, error) {
	blk, rest := pem.Decode([]byte(s))
	if blk == nil || blk.Type != "PUBLIC KEY" {
		return nil, fmt.Errorf("%w: want one PEM PUBLIC KEY block", ErrWeakKey)
	}
	if len(bytes.TrimSpace(rest)) > 0 {
		return nil, fmt.Errorf("%w: data after the PEM block", ErrWeakKey)
	}
	pub, err := x509.ParsePKIXPublicKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrWeakKey, err)
	}
	return pub, CheckX509PublicKey(pub)
}

// Access tokens for the SQL API: "bat1." + base64url(JSON claims) + "." +
// base64url(signature), the signature by the database-client CA over
// SHA-256 of a domain-separation prefix and the first two parts. They
// expire with the login (workloads: at most the workload TTL).
const (
	accessTokenPrefix = "bat1."
	accessTokenDomain = "bastion access token v1\x00"
	// MaxAccessTokenBytes bounds a token before any decoding: room for
	// the largest identity a login may have (maxGroups groups of the
	// longest name each, every byte of it one JSON writes escaped, '"' or
	// '\\': about 90 KiB encoded), which was issued a token no door would
	// take when this was 8 KiB, and again at 64 KiB for names of '"', or
	// of '<' and '&' while the claims were written with HTML escapes
	// (six bytes each). IssueAccessToken refuses to issue a longer one.
	MaxAccessTokenBytes = 128 << 10
)

// accessClaims is the JSON inside an access token.
type accessClaims struct {
	User      string   `json:"usr"`
	Issuer    string   `json:"iss"`
	Subject   string   `json:"sub"`
	Groups    []string `json:"groups"`
	Workload  bool     `json:"workload,omitempty"`
	Actor     string   `json:"actor,omitempty"`
	Serial    string   `json:"serial"` // decimal
	NotBefore int64    `json:"nbf"`
	Expires   int64    `json:"exp"`
}

// IssueAccessToken makes the SQL API access token of a login (id from
// Stamp or SignUser): it speaks for id until id.ValidBefore.
func (a *Authority) IssueAccessToken(id Identity) (string, error) {
	if a.keys.DBClientCA == nil {
		return "", ErrNoDBClientCA
	}
	if id.Serial == 0 || id.ValidBefore.IsZero() {
		return "", errors.New("ca: access token needs a stamped identity")
	}
	if err := checkIdentity(id); err != nil {
		return "", err
	}
	groups := id.Groups
	if groups == nil {
		groups = []string{}
	}
	js, err := marshalPlain(accessClaims{User: id.User, Issuer: id.Issuer, Subject: id.Subject, Groups: groups, Workload: id.Workload, Actor: id.Actor,
		Serial: strconv.FormatUint(id.Serial, 10), NotBefore: id.ValidAfter.Unix(), Expires: id.ValidBefore.Unix()})
	if err != nil {
		return "", err
	}
	signed := accessTokenPrefix + base64.RawURLEncoding.EncodeToString(js)
	sig, err := signDigest(a.keys.DBClientCA.Key, accessTokenDigest(signed))
	if err != nil {
		return "", fmt.Errorf("ca: sign access token: %w: %w", ErrCAUnavailable, err)
	}
	tok := signed + "." + base64.RawURLEncoding.EncodeToString(sig)
	if len(tok) > MaxAccessTokenBytes {
		// No door would take it: say so at login rather than at each use.
		return "", fmt.Errorf("ca: the access token of this identity would be %d bytes, more than the %d any door takes", len(tok), MaxAccessTokenBytes)
	}
	return tok, nil
}

// VerifyAccessToken checks an access token's signature and validity at the
// authority's clock and returns the identity it speaks for. Revocation of
// its serial is the caller's check. Errors wrap ErrAccessToken.
func (a *Authority) VerifyAccessToken(tok string) (Identity, error) {
	if a.keys.DBClientCA == nil {
		return Identity{}, ErrNoDBClientCA
	}
	bad := func(format string, args ...any) (Identity, error) {
		return Identity{}, fmt.Errorf("%w: %s", ErrAccessToken, fmt.Sprintf(format, args...))
	}
	if len(tok) > MaxAccessTokenBytes {
		return bad("longer than %d bytes", MaxAccessTokenBytes)
	}
	if !strings.HasPrefix(tok, accessTokenPrefix) {
		return bad("not a bastion access token (run `bastion login` and use the token it wrote)")
	}
	dot := strings.LastIndexByte(tok, '.')
	if dot <= len(accessTokenPrefix) {
		return bad("malformed")
	}
	signed, sigPart := tok[:dot], tok[dot+1:]
	payload, err := base64.RawURLEncoding.Strict().DecodeString(signed[len(accessTokenPrefix):])
	if err != nil {
		return bad("malformed claims")
	}
	sig, err := base64.RawURLEncoding.Strict().DecodeString(sigPart)
	if err != nil {
		return bad("malformed signature")
	}
	if !verifyDigest(a.keys.DBClientCA.Cert.PublicKey, accessTokenDigest(signed), sig) {
		return bad("signature does not verify (not issued by this bastion)")
	}
	var c accessClaims
	dec := json.NewDecoder(bytes.NewReader(payload))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&c); err != nil {
		return bad("claims: %v", err)
	}
	serial, err := strconv.ParseUint(c.Serial, 10, 64)
	if err != nil || serial == 0 {
		return bad("serial %q", c.Serial)
	}
	id := Identity{User: c.User, Issuer: c.Issuer, Subject: c.Subject, Groups: c.Groups, Workload: c.Workload, Actor: c.Actor, Serial: serial,
		ValidAfter: time.Unix(c.NotBefore, 0), ValidBefore: time.Unix(c.Expires, 0)}
	if len(id.Groups) == 0 {
		id.Groups = nil
	}
	if err := checkIdentity(id); err != nil {
		return bad("%v", err)
	}
	now := a.now()
	if !now.Before(id.ValidBefore) {
		return bad("expired at %s: run `bastion login` again", id.ValidBefore.UTC().Format(time.RFC3339))
	}
	if now.Before(id.ValidAfter) {
		return bad("not valid before %s", id.ValidAfter.UTC().Format(time.RFC3339))
	}
	return id, nil
}

func accessTokenDigest(signed string) []byte {
	h := sha256.New()
	h.Write([]byte(accessTokenDomain))
	h.Write([]byte(signed))
	return h.Sum(nil)
}

// signDigest signs a SHA-256 digest with an ECDSA key (ASN.1 signature) or
// an Ed25519 key (over the digest as the message).
func signDigest(key crypto.Signer, digest []byte) ([]byte, error) {
	if _, ok := key.Public().(ed25519.PublicKey); ok {
		return key.Sign(rand.Reader, digest, crypto.Hash(0))
	}
	return key.Sign(rand.Reader, digest, crypto.SHA256)
}

func verifyDigest(pub crypto.PublicKey, digest, sig []byte) bool {
	switch k := pub.(type) {
	case *ecdsa.PublicKey:
		return ecdsa.VerifyASN1(k, digest, sig)
	case ed25519.PublicKey:
		return ed25519.Verify(k, digest, sig)
	}
	return false
}

// x509Names splits names into DNS names and IP addresses.
func x509Names(tmpl *x509.Certificate, names []string) {
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			tmpl.IPAddresses = append(tmpl.IPAddresses, ip)
		} else {
			tmpl.DNSNames = append(tmpl.DNSNames, n)
		}
	}
}

// marshalPlain is json.Marshal without HTML escapes: a group name's '<',
// '>' and '&' would take six bytes each, and a login with many such groups
// would get a certificate or token several times its size.
func marshalPlain(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}
