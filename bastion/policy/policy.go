// Package policy decides who may reach what: targets, roles and rules,
// compiled once from the configuration and consulted on every channel.
//
// # Basics
//
// Compile turns the config's targets, roles and rules into a Policy. A
// Policy is immutable; a reload compiles a new one and swaps it in, so a
// decision never sees half of an old config and half of a new one.
//
// Every refusal is a *Denied that says which rule or role refused what, so
// the user's error message names the reason.
package policy

import (
	"crypto/x509"
	"fmt"
	"net"
	"os"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"

	"golang.org/x/crypto/ssh"
)

// Identity is who asks: a username and the groups from the certificate.
type Identity struct {
	User   string
	Groups []string
}

// Target kinds.
const (
	KindSSH      = "ssh"
	KindTCP      = "tcp"
	KindPostgres = "postgres"
)

// Target is a compiled destination: what the bastion needs to reach it,
// parsed once, when the policy is compiled.
type Target struct {
	Name    string
	Kind    string // KindSSH, KindTCP or KindPostgres
	Address string // host:port
	Port    int    // the port of Address

	// SSH: how to trust the target's host key (exactly one is set).
	HostKey         ssh.PublicKey // a pinned key
	HostCA          ssh.PublicKey // host certificates signed by this CA
	TrustOnFirstUse bool          // the first key seen, pinned in the store

	// TCP: whether the payload is recorded (the default) or only its size.
	// PostgreSQL: whether the client-side wire messages are recorded besides
	// the transcript (the default).
	RecordContent bool

	// PostgreSQL: the server's certificate is verified against ServerCAs
	// for ServerName (default: the host of Address); StartupParams are the
	// extra startup parameters clients may set.
	ServerCAs     *x509.CertPool
	ServerName    string
	CAFile        string // where ServerCAs came from, for messages
	StartupParams []string
	password      string // from password_env or password_file, read at compile
	hasPassword   bool
}

// Password returns the password a PostgreSQL target authenticates with
// (the weaker alternative to a client certificate), read when the policy
// was compiled.
func (t *Target) Password() (string, bool) { return t.password, t.hasPassword }

// Role is a compiled role.
type Role struct {
	Name        string
	Groups      []string // certificate groups that hold the role
	Users       []string // or individual usernames
	Targets     []string // target name globs
	Logins      []string // SSH logins on targets
	Ports       []int    // for tcp targets; empty = the target's port
	DBUsers     []string // database users
	Databases   []string // database name globs; empty = any
	Shell       bool     // interactive shells (false: exec only)
	Approve     []string // target globs whose requests this role may decide
	Auditor     bool     // sees every session and the audit log
	Replication bool     // PostgreSQL replication connections
}

// Policy is a compiled, immutable set of targets, roles and rules.
type Policy struct {
	targets map[string]*Target
	order   []string // target names in config order
	roles   []*Role
	rules   *Rules
}

// Denied is a refusal that names the reason.
type Denied struct {
	Rule   string // the role or rule that decided, when one did
	Reason string
}

func (d *Denied) Error() string {
	if d.Rule != "" {
		return d.Rule + ": " + d.Reason
	}
	return d.Reason
}

// Compile checks the spec and compiles it: globs, patterns and regular
// expressions, host keys and CAs, certificate pools, passwords. Files the
// spec names are read here, once; a reload compiles a new Policy and
// swaps it in whole.
func Compile(spec Spec) (*Policy, error) {
	p := &Policy{targets: map[string]*Target{}}
	for i := range spec.Targets {
		t, err := compileTarget(spec.Targets[i])
		if err != nil {
			return nil, fmt.Errorf("policy: targets[%d] (%s): %w", i, spec.Targets[i].Name, err)
		}
		if _, dup := p.targets[t.Name]; dup {
			return nil, fmt.Errorf("policy: targets[%d]: duplicate target %q", i, t.Name)
		}
		p.targets[t.Name] = t
		p.order = append(p.order, t.Name)
	}
	for i, rs := range spec.Roles {
		r := &Role{Name: rs.Name, Groups: rs.Groups, Users: rs.Users, Targets: rs.Targets, Logins: rs.Logins,
			Ports: rs.Ports, DBUsers: rs.DBUsers, Databases: rs.Databases, Shell: rs.Shell, Approve: rs.Approve,
			Auditor: rs.Auditor, Replication: rs.Replication}
		for j, g := range r.Targets {
			if _, err := path.Match(g, ""); err != nil {
				return nil, fmt.Errorf("policy: roles[%d].targets[%d]: bad glob %q: %v", i, j, g, err)
			}
		}
		for j, g := range r.Databases {
			if _, err := path.Match(g, ""); err != nil {
				return nil, fmt.Errorf("policy: roles[%d].databases[%d]: bad glob %q: %v", i, j, g, err)
			}
		}
		p.roles = append(p.roles, r)
	}
	rules, err := compileRules(spec.Rules, spec.KnownSQLKind)
	if err != nil {
		return nil, err
	}
	p.rules = rules
	return p, nil
}

// compileTarget parses what a target needs to be reached.
func compileTarget(ts TargetSpec) (*Target, error) {
	t := &Target{Name: ts.Name, Kind: ts.Kind, Address: ts.Address, TrustOnFirstUse: ts.TrustOnFirstUse,
		RecordContent: ts.Recording != "metadata" && ts.Recording != "transcript", ServerName: ts.ServerName, CAFile: ts.CAFile,
		StartupParams: slices.Clone(ts.StartupParams)}
	host, port, err := net.SplitHostPort(ts.Address)
	if err != nil {
		return nil, fmt.Errorf("address %q: %v", ts.Address, err)
	}
	if t.Port, err = strconv.Atoi(port); err != nil || t.Port < 1 || t.Port > 65535 {
		return nil, fmt.Errorf("address %q: bad port", ts.Address)
	}
	key := func(field, line string) (ssh.PublicKey, error) {
		k, _, _, _, err := ssh.ParseAuthorizedKey([]byte(line))
		if err != nil {
			return nil, fmt.Errorf("%s: not a public key in authorized_keys format: %v", field, err)
		}
		return k, nil
	}
	if ts.HostKey != "" {
		if t.HostKey, err = key("host_key", ts.HostKey); err != nil {
			return nil, err
		}
	}
	if ts.HostCA != "" {
		if t.HostCA, err = key("host_ca", ts.HostCA); err != nil {
			return nil, err
		}
	}
	if ts.CAFile != "" {
		pem, err := os.ReadFile(ts.CAFile)
		if err != nil {
			return nil, fmt.Errorf("tls.ca_file: %v", err)
		}
		t.ServerCAs = x509.NewCertPool()
		if !t.ServerCAs.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("tls.ca_file %s holds no PEM certificate", ts.CAFile)
		}
		if t.ServerName == "" {
			t.ServerName = host
		}
	}
	switch {
	case ts.PasswordEnv != "":
		v := os.Getenv(ts.PasswordEnv)
		if v == "" {
			return nil, fmt.Errorf("password_env: the environment variable %s is empty", ts.PasswordEnv)
		}
		t.password, t.hasPassword = v, true
	case ts.PasswordFile != "":
		b, err := os.ReadFile(ts.PasswordFile)
		if err != nil {
			return nil, fmt.Errorf("password_file: %v", err)
		}
		v := strings.TrimRight(string(b), "\r\n")
		if v == "" {
			return nil, fmt.Errorf("password_file %s is empty", ts.PasswordFile)
		}
		t.password, t.hasPassword = v, true
	}
	return t, nil
}

// Target returns the named target.
func (p *Policy) Target(name string) (*Target, bool) {
	t, ok := p.targets[name]
	return t, ok
}

// Changed says how other, the target of the same name in a newer policy,
// differs from t in where it leads or how a session to it is handled — its
// kind, address, host key or TLS trust, or whether its content is recorded — or ""
// when it does not. A live session to t is not one to other when it does.
func (t *Target) Changed(other *Target) string {
	keyOf := func(k ssh.PublicKey) string {
		if k == nil {
			return ""
		}
		return string(k.Marshal())
	}
	switch {
	case other == nil:
		return fmt.Sprintf("target %s is no longer configured", t.Name)
	case other.Kind != t.Kind:
		return fmt.Sprintf("target %s is now of kind %s, not %s", t.Name, other.Kind, t.Kind)
	case !strings.EqualFold(other.Address, t.Address): // host names are case-insensitive
		return fmt.Sprintf("target %s is now at %s, not %s", t.Name, other.Address, t.Address)
	case keyOf(other.HostKey) != keyOf(t.HostKey) || keyOf(other.HostCA) != keyOf(t.HostCA) || other.TrustOnFirstUse != t.TrustOnFirstUse:
		return fmt.Sprintf("target %s's host key trust changed", t.Name)
	case !other.ServerCAs.Equal(t.ServerCAs) || !strings.EqualFold(other.ServerName, t.ServerName):
		// A PostgreSQL target's TLS trust is its host key trust: a session
		// verified by a CA the config no longer trusts is not one the
		// config allows.
		return fmt.Sprintf("target %s's TLS trust changed (tls.ca_file or tls.server_name)", t.Name)
	case other.RecordContent != t.RecordContent:
		return fmt.Sprintf("target %s's recording changed", t.Name)
	}
	return ""
}

// TargetNames returns every target name in config order.
func (p *Policy) TargetNames() []string { return slices.Clone(p.order) }

// RolesOf returns the roles id holds, in config order.
func (p *Policy) RolesOf(id Identity) []*Role {
	var out []*Role
	for _, r := range p.roles {
		if r.heldBy(id) {
			out = append(out, r)
		}
	}
	return out
}

// RoleNames returns the names of the roles id holds.
func (p *Policy) RoleNames(id Identity) []string {
	var out []string
	for _, r := range p.RolesOf(id) {
		out = append(out, r.Name)
	}
	return out
}

func (r *Role) heldBy(id Identity) bool {
	if slices.Contains(r.Users, id.User) {
		return true
	}
	for _, g := range id.Groups {
		if slices.Contains(r.Groups, g) {
			return true
		}
	}
	return false
}

func (r *Role) coversTarget(name string) bool {
	for _, g := range r.Targets {
		if ok, _ := path.Match(g, name); ok {
			return true
		}
	}
	return false
}

// shell reports whether the role allows interactive shells.
func (r *Role) shell() bool { return r.Shell }

func (p *Policy) lookup(id Identity, target, kind string) (*Target, []*Role, error) {
	t, ok := p.targets[target]
	if !ok {
		return nil, nil, &Denied{Reason: fmt.Sprintf("%q is not a configured target", target)}
	}
	if kind != "" && t.Kind != kind {
		return nil, nil, &Denied{Reason: fmt.Sprintf("target %q is of kind %s, not %s", target, t.Kind, kind)}
	}
	var roles []*Role
	for _, r := range p.RolesOf(id) {
		if r.coversTarget(target) {
			roles = append(roles, r)
		}
	}
	if len(roles) == 0 {
		held := p.RoleNames(id)
		if len(held) == 0 {
			return nil, nil, &Denied{Reason: fmt.Sprintf("user %s (groups %s) holds no role", id.User, groupList(id.Groups))}
		}
		return nil, nil, &Denied{Reason: fmt.Sprintf("none of your roles (%s) covers target %q", strings.Join(held, ", "), target)}
	}
	return t, roles, nil
}

// CheckTarget decides whether any of id's roles covers target (of kind,
// when kind is not empty).
func (p *Policy) CheckTarget(id Identity, target, kind string) error {
	_, _, err := p.lookup(id, target, kind)
	return err
}

// SSHAccess is what an identity may do on an SSH target.
type SSHAccess struct {
	Target *Target
	Login  string
	Shell  bool     // interactive shells allowed (otherwise exec only)
	Roles  []string // the roles that granted access
}

// CheckSSH decides whether id may log in to target as login.
func (p *Policy) CheckSSH(id Identity, target, login string) (*SSHAccess, error) {
	t, roles, err := p.lookup(id, target, KindSSH)
	if err != nil {
		return nil, err
	}
	acc := &SSHAccess{Target: t, Login: login}
	for _, r := range roles {
		if slices.Contains(r.Logins, login) {
			acc.Roles = append(acc.Roles, r.Name)
			acc.Shell = acc.Shell || r.shell()
		}
	}
	if len(acc.Roles) == 0 {
		var parts []string
		for _, r := range roles {
			parts = append(parts, fmt.Sprintf("role %s allows logins [%s]", r.Name, strings.Join(r.Logins, ", ")))
		}
		return nil, &Denied{Rule: roles[0].Name, Reason: fmt.Sprintf("login %q on %s is not allowed (%s)", login, target, strings.Join(parts, "; "))}
	}
	return acc, nil
}

// CheckForward decides whether id may open a TCP forward to target:port.
// The port must be the target's own, or one a covering role lists.
func (p *Policy) CheckForward(id Identity, target string, port int, targetPort int) (*Target, error) {
	t, roles, err := p.lookup(id, target, "")
	if err != nil {
		return nil, err
	}
	if t.Kind == KindSSH {
		return nil, &Denied{Reason: fmt.Sprintf("target %q is an SSH server: use ssh -J, not a port forward", target)}
	}
	if port == targetPort {
		return t, nil
	}
	for _, r := range roles {
		if slices.Contains(r.Ports, port) {
			return t, nil
		}
	}
	return nil, &Denied{Rule: roles[0].Name, Reason: fmt.Sprintf("port %d on %s is not allowed (the target's port is %d)", port, target, targetPort)}
}

// CheckDB decides whether id may connect to a PostgreSQL target as dbUser to
// database.
func (p *Policy) CheckDB(id Identity, target, dbUser, database string, replication bool) error {
	_, roles, err := p.lookup(id, target, KindPostgres)
	if err != nil {
		return err
	}
	var users, databases []string
	var userRole *Role // the first role that allows dbUser
	for _, r := range roles {
		users = append(users, r.DBUsers...)
		if !slices.Contains(r.DBUsers, dbUser) {
			continue
		}
		if userRole == nil {
			userRole = r
		}
		if len(r.Databases) > 0 && !matchAny(r.Databases, database) {
			databases = append(databases, r.Databases...)
			continue
		}
		if replication && !r.Replication {
			return &Denied{Rule: r.Name, Reason: "replication connections are not allowed"}
		}
		return nil
	}
	if userRole != nil {
		// The user was allowed, the database was not: say which.
		return &Denied{Rule: userRole.Name, Reason: fmt.Sprintf("database %q on %s is not allowed for database user %q (databases [%s])", database, target, dbUser, strings.Join(databases, ", "))}
	}
	return &Denied{Rule: roles[0].Name, Reason: fmt.Sprintf("database user %q on %s is not allowed (db_users [%s])", dbUser, target, strings.Join(users, ", "))}
}

// TargetAccess is one line of the `targets` admin command.
type TargetAccess struct {
	Name      string   `json:"name"`
	Kind      string   `json:"kind"`
	Logins    []string `json:"logins,omitempty"`
	DBUsers   []string `json:"db_users,omitempty"`
	ExecOnly  bool     `json:"exec_only,omitempty"`
	Roles     []string `json:"roles"`
	Addressed string   `json:"address"`
}

// Targets lists the targets id may reach.
func (p *Policy) Targets(id Identity) []TargetAccess {
	var out []TargetAccess
	for _, name := range p.order {
		t, roles, err := p.lookup(id, name, "")
		if err != nil {
			continue
		}
		ta := TargetAccess{Name: name, Kind: t.Kind, Addressed: t.Address, ExecOnly: true}
		for _, r := range roles {
			ta.Roles = append(ta.Roles, r.Name)
			ta.Logins = appendUnique(ta.Logins, r.Logins...)
			ta.DBUsers = appendUnique(ta.DBUsers, r.DBUsers...)
			if r.shell() {
				ta.ExecOnly = false
			}
		}
		if t.Kind != KindSSH {
			ta.ExecOnly = false
		}
		out = append(out, ta)
	}
	return out
}

// IsAuditor reports whether id may see every session and the audit log.
func (p *Policy) IsAuditor(id Identity) bool {
	for _, r := range p.RolesOf(id) {
		if r.Auditor {
			return true
		}
	}
	return false
}

// CanApprove reports whether id holds one of approverRoles with an approve
// scope that covers target.
func (p *Policy) CanApprove(id Identity, approverRoles []string, target string) bool {
	for _, r := range p.RolesOf(id) {
		if !slices.Contains(approverRoles, r.Name) {
			continue
		}
		if len(r.Approve) == 0 || matchAny(r.Approve, target) {
			return true
		}
	}
	return false
}

func matchAny(globs []string, s string) bool {
	for _, g := range globs {
		if ok, _ := path.Match(g, s); ok {
			return true
		}
	}
	return false
}

func appendUnique(dst []string, src ...string) []string {
	for _, s := range src {
		if !slices.Contains(dst, s) {
			dst = append(dst, s)
		}
	}
	sort.Strings(dst)
	return dst
}

func groupList(g []string) string {
	if len(g) == 0 {
		return "none"
	}
	return strings.Join(g, ", ")
}
