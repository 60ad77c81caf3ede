package policy_test

import (
	"crypto/x509"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/bastionhq/bastion/bastion/policy"
)

const hostKey = "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMb5/GAfGQ0eFzO3mjZmVFJ3smr5m0IKn0Xv1/gu/6pH"

// Targets are compiled once: keys parsed, CA pools and passwords read; a
// target that cannot be compiled is refused with its name and field.
func TestCompileTargets(t *testing.T) {
	dir := t.TempDir()
	ca := caFile(t)
	pw := filepath.Join(dir, "pw")
	os.WriteFile(pw, []byte("s3cret\n"), 0o600)
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, nil, 0o600)
	t.Setenv("PG_PASSWORD", "from-env")
	p, err := policy.Compile(policy.Spec{Targets: []policy.TargetSpec{
		{Name: "web1", Kind: "ssh", Address: "10.0.0.1:22", HostKey: hostKey},
		{Name: "web2", Kind: "ssh", Address: "10.0.0.2:2222", HostCA: hostKey},
		{Name: "redis", Kind: "tcp", Address: "10.0.0.3:6379", Recording: "metadata"},
		{Name: "web", Kind: "tcp", Address: "10.0.0.4:80"},
		{Name: "pg1", Kind: "postgres", Address: "db.internal:5432", CAFile: ca},
		{Name: "pg2", Kind: "postgres", Address: "10.0.0.6:5432", PasswordFile: pw},
		{Name: "pg3", Kind: "postgres", Address: "10.0.0.7:5432", PasswordEnv: "PG_PASSWORD"},
	}})
	if err != nil {
		t.Fatal(err)
	}
	get := func(n string) *policy.Target {
		tg, ok := p.Target(n)
		if !ok {
			t.Fatalf("no target %s", n)
		}
		return tg
	}
	if tg := get("web1"); tg.HostKey == nil || tg.HostKey.Type() != "ssh-ed25519" || tg.Port != 22 {
		t.Errorf("web1: %+v", tg)
	}
	if tg := get("web2"); tg.HostCA == nil || tg.HostKey != nil || tg.Port != 2222 {
		t.Errorf("web2: %+v", tg)
	}
	if get("redis").RecordContent || !get("web").RecordContent {
		t.Error("recording: metadata turns content off, content is the default")
	}
	if tg := get("pg1"); tg.ServerCAs == nil || tg.ServerName != "db.internal" {
		t.Errorf("pg1: %+v", tg)
	}
	if v, ok := get("pg2").Password(); !ok || v != "s3cret" {
		t.Errorf("pg2 password: %q %v", v, ok)
	}
	if v, ok := get("pg3").Password(); !ok || v != "from-env" {
		t.Errorf("pg3 password: %q %v", v, ok)
	}
	if _, ok := get("pg1").Password(); ok {
		t.Error("pg1 has a password")
	}

	for _, tc := range []struct {
		name string
		spec policy.TargetSpec
		want string
	}{
		{"bad host key", policy.TargetSpec{Name: "a", Kind: "ssh", Address: "h:22", HostKey: "ssh-ed25519 AAAA"}, "targets[0] (a): host_key"},
		{"bad host ca", policy.TargetSpec{Name: "a", Kind: "ssh", Address: "h:22", HostCA: "nonsense"}, "host_ca"},
		{"missing ca file", policy.TargetSpec{Name: "a", Kind: "postgres", Address: "h:5432", CAFile: filepath.Join(dir, "nope")}, "tls.ca_file"},
		{"ca file without pem", policy.TargetSpec{Name: "a", Kind: "postgres", Address: "h:5432", CAFile: pw}, "holds no PEM certificate"},
		{"empty password env", policy.TargetSpec{Name: "a", Kind: "postgres", Address: "h:5432", PasswordEnv: "NO_SUCH_VAR_X"}, "is empty"},
		{"empty password file", policy.TargetSpec{Name: "a", Kind: "postgres", Address: "h:5432", PasswordFile: empty}, "is empty"},
		{"no port", policy.TargetSpec{Name: "a", Kind: "tcp", Address: "h"}, "address"},
		{"bad port", policy.TargetSpec{Name: "a", Kind: "tcp", Address: "h:99999"}, "bad port"},
	} {
		_, err := policy.Compile(policy.Spec{Targets: []policy.TargetSpec{tc.spec}})
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.name, err, tc.want)
		}
	}
}

// Access decisions for each Check*, by table.
func TestChecks(t *testing.T) {
	p, err := policy.Compile(policy.Spec{
		Targets: []policy.TargetSpec{
			{Name: "web1", Kind: "ssh", Address: "10.0.0.1:22", HostKey: hostKey},
			{Name: "prod-db", Kind: "ssh", Address: "10.0.0.2:22", HostKey: hostKey},
			{Name: "redis", Kind: "tcp", Address: "10.0.0.3:6379"},
			{Name: "pg1", Kind: "postgres", Address: "10.0.0.4:5432", CAFile: caFile(t)},
		},
		Roles: []policy.RoleSpec{
			{Name: "dev", Groups: []string{"dev"}, Targets: []string{"web*", "redis"}, Logins: []string{"deploy"}, Shell: true, Ports: []int{6380}},
			{Name: "ops", Groups: []string{"ops"}, Targets: []string{"*"}, Logins: []string{"root"}, Shell: false},
			{Name: "dba", Users: []string{"dora"}, Targets: []string{"pg1"}, DBUsers: []string{"app_ro"}, Databases: []string{"shop*"}, Shell: true},
			{Name: "sec", Groups: []string{"sec"}, Auditor: true, Shell: true},
			{Name: "approvers", Groups: []string{"sre"}, Approve: []string{"web*"}, Shell: true},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	dev := policy.Identity{User: "alice", Groups: []string{"dev"}}
	ops := policy.Identity{User: "olga", Groups: []string{"ops"}}
	dora := policy.Identity{User: "dora"}
	nobody := policy.Identity{User: "mallory", Groups: []string{"guests"}}
	for _, tc := range []struct {
		name string
		err  error
		want string // "" for allowed, else a substring of the refusal
	}{
		{"dev ssh web1 as deploy", func() error { _, err := p.CheckSSH(dev, "web1", "deploy"); return err }(), ""},
		{"dev ssh web1 as root", func() error { _, err := p.CheckSSH(dev, "web1", "root"); return err }(), `dev: login "root" on web1 is not allowed (role dev allows logins [deploy])`},
		{"dev ssh prod-db", func() error { _, err := p.CheckSSH(dev, "prod-db", "deploy"); return err }(), `none of your roles (dev) covers target "prod-db"`},
		{"nobody", func() error { _, err := p.CheckSSH(nobody, "web1", "x"); return err }(), "holds no role"},
		{"unknown target", func() error { _, err := p.CheckSSH(dev, "nope", "deploy"); return err }(), "is not a configured target"},
		{"ssh to a tcp target", func() error { _, err := p.CheckSSH(dev, "redis", "deploy"); return err }(), "is of kind tcp"},
		{"forward to its port", func() error { _, err := p.CheckForward(dev, "redis", 6379, 6379); return err }(), ""},
		{"forward to a role's port", func() error { _, err := p.CheckForward(dev, "redis", 6380, 6379); return err }(), ""},
		{"forward to another port", func() error { _, err := p.CheckForward(dev, "redis", 22, 6379); return err }(), "port 22 on redis is not allowed"},
		{"forward to an ssh target", func() error { _, err := p.CheckForward(ops, "web1", 22, 22); return err }(), "use ssh -J"},
		{"db allowed", p.CheckDB(dora, "pg1", "app_ro", "shop_eu", false), ""},
		{"db other user", p.CheckDB(dora, "pg1", "postgres", "shop", false), `dba: database user "postgres" on pg1 is not allowed (db_users [app_ro])`},
		// The database is what was refused: the message names databases, not db_users.
		{"db other database", p.CheckDB(dora, "pg1", "app_ro", "hr", false), `dba: database "hr" on pg1 is not allowed for database user "app_ro" (databases [shop*])`},
		{"db replication", p.CheckDB(dora, "pg1", "app_ro", "shop", true), "replication connections are not allowed"},
		{"target check", p.CheckTarget(ops, "pg1", policy.KindPostgres), ""},
	} {
		switch {
		case tc.want == "" && tc.err != nil:
			t.Errorf("%s: refused: %v", tc.name, tc.err)
		case tc.want != "" && (tc.err == nil || !strings.Contains(tc.err.Error(), tc.want)):
			t.Errorf("%s: got %v, want %q", tc.name, tc.err, tc.want)
		}
		var d *policy.Denied
		if tc.err != nil && !errors.As(tc.err, &d) {
			t.Errorf("%s: %T is not a *Denied", tc.name, tc.err)
		}
	}
	acc, _ := p.CheckSSH(ops, "web1", "root")
	if acc.Shell {
		t.Error("an exec-only role got a shell")
	}
	if !p.IsAuditor(policy.Identity{User: "s", Groups: []string{"sec"}}) || p.IsAuditor(dev) {
		t.Error("auditor")
	}
	sre := policy.Identity{User: "s", Groups: []string{"sre"}}
	if !p.CanApprove(sre, []string{"approvers"}, "web1") || p.CanApprove(sre, []string{"approvers"}, "pg1") || p.CanApprove(dev, []string{"approvers"}, "web1") {
		t.Error("approve scope")
	}
}

// Changed names what a reload changed about a target that a live session
// relies on, and nothing cosmetic: a host name in another case is the
// same host.
func TestTargetChanged(t *testing.T) {
	base := policy.Target{Name: "db", Kind: "tcp", Address: "db.internal:5432"}
	for _, c := range []struct {
		other *policy.Target
		want  string
	}{
		{&policy.Target{Name: "db", Kind: "tcp", Address: "DB.Internal:5432"}, ""},
		{&base, ""},
		{nil, "no longer configured"},
		{&policy.Target{Name: "db", Kind: "postgres", Address: "db.internal:5432"}, "kind postgres"},
		{&policy.Target{Name: "db", Kind: "tcp", Address: "db.internal:5433"}, "now at db.internal:5433"},
		{&policy.Target{Name: "db", Kind: "tcp", Address: "db.internal:5432", RecordContent: true}, "recording changed"},
	} {
		got := base.Changed(c.other)
		if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
			t.Errorf("Changed(%+v) = %q, want %q", c.other, got, c.want)
		}
	}
}

// A PostgreSQL target's TLS trust is its host key trust: a reload that
// trusts another CA, or expects another server name, ends live sessions
// verified by the old one, as a changed host key does for ssh.
func TestTargetChangedTLSTrust(t *testing.T) {
	pool := func(file string) *x509.CertPool {
		b, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		p := x509.NewCertPool()
		p.AppendCertsFromPEM(b)
		return p
	}
	caA, caB := caFile(t), caFile(t)
	base := policy.Target{Name: "pg", Kind: "postgres", Address: "db:5432", ServerName: "db", CAFile: caA, ServerCAs: pool(caA)}
	for _, c := range []struct {
		name  string
		other policy.Target
		want  string
	}{
		{"same CA read again", policy.Target{Name: "pg", Kind: "postgres", Address: "db:5432", ServerName: "db", CAFile: caA, ServerCAs: pool(caA)}, ""},
		{"another CA", policy.Target{Name: "pg", Kind: "postgres", Address: "db:5432", ServerName: "db", CAFile: caB, ServerCAs: pool(caB)}, "TLS trust changed"},
		{"another server name", policy.Target{Name: "pg", Kind: "postgres", Address: "db:5432", ServerName: "db2", CAFile: caA, ServerCAs: pool(caA)}, "TLS trust changed"},
		{"TLS dropped", policy.Target{Name: "pg", Kind: "postgres", Address: "db:5432"}, "TLS trust changed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := base.Changed(&c.other)
			if c.want == "" && got != "" || c.want != "" && !strings.Contains(got, c.want) {
				t.Errorf("Changed = %q, want %q", got, c.want)
			}
		})
	}
}
