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
	"fmt"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/bastionhq/bastion/internal/config"
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

// Target is a configured destination.
type Target struct {
	config.Target
}

// Role is a compiled role.
type Role struct {
	config.Role
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

// Compile checks and compiles the parts of cfg the policy owns.
func Compile(cfg *config.Config) (*Policy, error) {
	p := &Policy{targets: map[string]*Target{}}
	for i := range cfg.Targets {
		t := &Target{cfg.Targets[i]}
		p.targets[t.Name] = t
		p.order = append(p.order, t.Name)
	}
	for i := range cfg.Roles {
		r := &Role{cfg.Roles[i]}
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
	rules, err := compileRules(cfg, p)
	if err != nil {
		return nil, err
	}
	p.rules = rules
	return p, nil
}

// Target returns the named target.
func (p *Policy) Target(name string) (*Target, bool) {
	t, ok := p.targets[name]
	return t, ok
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
func (r *Role) shell() bool { return r.Shell == nil || *r.Shell }

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
	var users []string
	for _, r := range roles {
		users = append(users, r.DBUsers...)
		if !slices.Contains(r.DBUsers, dbUser) {
			continue
		}
		if len(r.Databases) > 0 && !matchAny(r.Databases, database) {
			continue
		}
		if replication && !r.Replication {
			return &Denied{Rule: r.Name, Reason: "replication connections are not allowed"}
		}
		return nil
	}
	return &Denied{Rule: roles[0].Name, Reason: fmt.Sprintf("database user %q on database %q is not allowed (db_users [%s])", dbUser, database, strings.Join(users, ", "))}
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
