package ca

import (
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/internal/safetext"
)

// Certificate extensions that carry the identity. They are signed with the
// certificate, so the bastion never needs the IdP again to know them.
const (
	ExtGroups   = "groups@bastionhq.dev"   // JSON array of group names
	ExtIssuer   = "issuer@bastionhq.dev"   // OIDC issuer the identity came from
	ExtSubject  = "subject@bastionhq.dev"  // OIDC subject at that issuer
	ExtWorkload = "workload@bastionhq.dev" // present (empty) for workload identities
	ExtActor    = "actor@bastionhq.dev"    // a workload's run: the bastion user who triggered it
)

// Standard OpenSSH extensions granted to login certificates. The bastion
// enforces its own rules on top; these only stop stock sshd semantics from
// refusing a pty or forwarding when a certificate is used with the bastion.
var loginExtensions = map[string]string{
	"permit-pty":             "",
	"permit-port-forwarding": "",
}

// Identity is who a certificate speaks for. It round-trips through
// Certificate and IdentityFromCertificate.
type Identity struct {
	// User is the sanitised login name and the certificate's only principal.
	User string
	// Issuer and Subject identify the person or workload at its IdP; the
	// pair is the stable key of an identity (emails and names change).
	Issuer  string
	Subject string
	// Groups travel in a signed extension and drive role mapping.
	Groups []string
	// Workload is true for machine identities (CI jobs).
	Workload bool
	// Actor, for a workload whose oidc.workload entry names an actor_claim,
	// is the bastion username of the person who triggered the run (the
	// claim's value, through the entry's actors map or normalised as a
	// username). Such a person does not approve the run's requests.
	Actor string
	// Serial is the certificate serial: unique, non-zero.
	Serial uint64
	// ValidAfter and ValidBefore bound the certificate's validity.
	ValidAfter  time.Time
	ValidBefore time.Time
	// SourceAddress, when set, restricts use of the certificate to these
	// CIDRs (the OpenSSH source-address critical option).
	SourceAddress string
}

// Issued is the start of the second the certificate was signed in: the
// authority backdates ValidAfter by DefaultClockSkew (Config.ClockSkew,
// which the bastion leaves at its default) and cuts it to the second.
// Database certificates and SQL API tokens carry their login
// certificate's ValidAfter, so they share its Issued. Zero when ValidAfter
// is.
func (id Identity) Issued() time.Time {
	if id.ValidAfter.IsZero() {
		return time.Time{}
	}
	return id.ValidAfter.Add(DefaultClockSkew)
}

// KeyID is the certificate key ID: it names the user, the issuer and the
// serial, so an sshd or bastion log line identifies the certificate.
func (id Identity) KeyID() string {
	kind := "user"
	if id.Workload {
		kind = "workload"
	}
	iss, sub := keyIDField(id.Issuer), keyIDField(id.Subject)
	if id.Actor != "" {
		return fmt.Sprintf("%s=%s actor=%s iss=%s sub=%s serial=%d", kind, id.User, id.Actor, iss, sub, id.Serial)
	}
	return fmt.Sprintf("%s=%s iss=%s sub=%s serial=%d", kind, id.User, iss, sub, id.Serial)
}

// keyIDField is a value of the key ID as it is when it is printable ASCII
// without spaces, quotes or backslashes, and otherwise quoted (Go syntax,
// ASCII only). The subject is the IdP's text, and a workload's can hold
// what whoever pushes a job chooses (GitHub's customised sub with the
// workflow's name): "x serial=1 actor=bob" must stay one field in the
// sshd logs and audit records that show the key ID, and a right-to-left
// override must not turn the rest of the line around.
func keyIDField(s string) string {
	for i := 0; i < len(s); i++ {
		if c := s[i]; c <= ' ' || c >= 0x7f || c == '"' || c == '\\' {
			return strconv.QuoteToASCII(s)
		}
	}
	return s
}

// Who is the identity as people are shown it: the user, and for a CI run
// the person who triggered it ("ci-etl (triggered by alice)").
func (id Identity) Who() string { return WhoIs(id.User, id.Actor) }

// WhoIs is Identity.Who for a user name and an actor.
func WhoIs(user, actor string) string {
	if actor == "" {
		return user
	}
	return user + " (triggered by " + actor + ")"
}

// Certificate returns the unsigned user certificate for pub.
func (id Identity) Certificate(pub ssh.PublicKey) (*ssh.Certificate, error) {
	if id.User == "" || id.Serial == 0 || id.Issuer == "" || id.Subject == "" {
		return nil, errors.New("ca: identity needs user, issuer, subject and serial")
	}
	groups := id.Groups
	if groups == nil {
		groups = []string{}
	}
	gj, err := marshalPlain(groups)
	if err != nil {
		return nil, fmt.Errorf("ca: groups: %w", err)
	}
	ext := map[string]string{ExtGroups: string(gj), ExtIssuer: id.Issuer, ExtSubject: id.Subject}
	for k, v := range loginExtensions {
		ext[k] = v
	}
	if id.Workload {
		ext[ExtWorkload] = ""
	}
	if id.Actor != "" {
		if !id.Workload {
			return nil, errors.New("ca: only a workload identity has an actor")
		}
		ext[ExtActor] = id.Actor
	}
	cert := &ssh.Certificate{
		Key:             pub,
		Serial:          id.Serial,
		CertType:        ssh.UserCert,
		KeyId:           id.KeyID(),
		ValidPrincipals: []string{id.User},
		ValidAfter:      unixSeconds(id.ValidAfter),
		ValidBefore:     unixSeconds(id.ValidBefore),
		Permissions:     ssh.Permissions{Extensions: ext},
	}
	if id.SourceAddress != "" {
		cert.CriticalOptions = map[string]string{"source-address": id.SourceAddress}
	}
	return cert, nil
}

// IdentityFromCertificate reads the identity back from a user certificate.
// It checks the shape (one principal, the bastion's extensions), not the
// signature or validity: that is the caller's certificate checker's job.
func IdentityFromCertificate(c *ssh.Certificate) (Identity, error) {
	if c.CertType != ssh.UserCert {
		return Identity{}, errors.New("ca: not a user certificate")
	}
	if len(c.ValidPrincipals) != 1 {
		return Identity{}, fmt.Errorf("ca: certificate has %d principals, want exactly 1", len(c.ValidPrincipals))
	}
	ext := c.Permissions.Extensions
	id := Identity{
		User:          c.ValidPrincipals[0],
		Issuer:        ext[ExtIssuer],
		Subject:       ext[ExtSubject],
		Serial:        c.Serial,
		ValidAfter:    fromUnixSeconds(c.ValidAfter),
		ValidBefore:   fromUnixSeconds(c.ValidBefore),
		SourceAddress: c.CriticalOptions["source-address"],
	}
	_, id.Workload = ext[ExtWorkload]
	id.Actor = ext[ExtActor]
	if id.Issuer == "" || id.Subject == "" {
		return Identity{}, errors.New("ca: certificate lacks the issuer or subject extension")
	}
	if err := checkActor(id); err != nil {
		return Identity{}, err
	}
	if g, ok := ext[ExtGroups]; ok {
		if err := json.Unmarshal([]byte(g), &id.Groups); err != nil {
			return Identity{}, fmt.Errorf("ca: groups extension: %w", err)
		}
		if len(id.Groups) == 0 {
			id.Groups = nil
		}
	}
	if err := ValidateUsername(id.User); err != nil {
		return Identity{}, err
	}
	for _, g := range id.Groups {
		if err := validateGroup(g); err != nil {
			return Identity{}, err
		}
	}
	return id, nil
}

func unixSeconds(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	if t.Unix() < 0 {
		return 0
	}
	return uint64(t.Unix())
}

func fromUnixSeconds(s uint64) time.Time {
	if s == 0 || s > 1<<62 {
		return time.Time{}
	}
	return time.Unix(int64(s), 0)
}

// ErrBadUsername is returned for names that cannot be a login principal.
var ErrBadUsername = errors.New("unsafe username")

const maxUsername = 32

// SanitizeUsername turns an IdP claim into a login name: the local part of
// an email address, lower-cased. It refuses, rather than rewrites, anything
// that is not then a plain POSIX-style login name, so "root,deploy" or a
// name with control characters never becomes a principal.
func SanitizeUsername(claim string, fromEmail bool) (string, error) {
	u := claim
	if fromEmail {
		at := strings.LastIndexByte(u, '@')
		if at <= 0 {
			return "", fmt.Errorf("%w: email %q has no local part", ErrBadUsername, safetext.Printable(claim))
		}
		u = u[:at]
		// Sub-addressing (alice+ci@) names the same person.
		if plus := strings.IndexByte(u, '+'); plus > 0 {
			u = u[:plus]
		}
	}
	// ASCII letters only: strings.ToLower folds some other characters
	// into ASCII (the Kelvin sign U+212A into 'k'), which would make a
	// different name at the IdP this one; ValidateUsername refuses what
	// is left that is not ASCII.
	u = asciiLower(u)
	if err := ValidateUsername(u); err != nil {
		return "", err
	}
	return u, nil
}

// ValidateUsername checks that u is a safe login name: 1–32 characters of
// [a-z0-9._-], starting with a letter or underscore.
func ValidateUsername(u string) error {
	if u == "" {
		return fmt.Errorf("%w: empty", ErrBadUsername)
	}
	if len(u) > maxUsername {
		return fmt.Errorf("%w: longer than %d characters", ErrBadUsername, maxUsername)
	}
	for i, r := range u {
		ok := r >= 'a' && r <= 'z' || r == '_' || i > 0 && (r >= '0' && r <= '9' || r == '.' || r == '-')
		if !ok {
			return fmt.Errorf("%w: %q: character %q at %d not allowed (want [a-z_][a-z0-9._-]*)", ErrBadUsername, safetext.Printable(u), r, i)
		}
	}
	return nil
}

// checkActor checks an identity's actor: only a workload has one, and it
// is a username.
func checkActor(id Identity) error {
	if id.Actor == "" {
		return nil
	}
	if !id.Workload {
		return errors.New("ca: only a workload identity has an actor")
	}
	if err := ValidateUsername(id.Actor); err != nil {
		return fmt.Errorf("ca: actor: %w", err)
	}
	return nil
}

// validateGroup refuses group names that could confuse logs or matching.
func validateGroup(g string) error {
	if g == "" || len(g) > 128 {
		return fmt.Errorf("ca: group name length %d out of range 1..128", len(g))
	}
	for _, r := range g {
		if unicode.IsControl(r) || r == ',' || unicode.IsSpace(r) {
			return fmt.Errorf("ca: group %q contains %q", safetext.Printable(g), r)
		}
	}
	return nil
}
