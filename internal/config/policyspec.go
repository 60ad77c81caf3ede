package config

import "github.com/bastionhq/bastion/bastion/policy"

// PolicySpec is the part of the config the policy is compiled from: the
// YAML types stay here, and the policy gets plain values it compiles into
// its own (policy.Compile).
func (cfg *Config) PolicySpec() policy.Spec {
	var s policy.Spec
	for _, t := range cfg.Targets {
		ts := policy.TargetSpec{
			Name: t.Name, Kind: t.Kind, Address: t.Address,
			HostKey: t.HostKey, HostCA: t.HostCA, TrustOnFirstUse: t.TrustOnFirstUse,
			Recording: t.Recording, PasswordEnv: t.PasswordEnv, PasswordFile: t.PasswordFile,
			StartupParams: t.StartupParams,
		}
		if t.TLS != nil {
			ts.CAFile, ts.ServerName = t.TLS.CAFile, t.TLS.ServerName
		}
		s.Targets = append(s.Targets, ts)
	}
	for _, r := range cfg.Roles {
		s.Roles = append(s.Roles, policy.RoleSpec{
			Name: r.Name, Groups: r.Groups, Users: r.Users, Targets: r.Targets, Logins: r.Logins, Ports: r.Ports,
			DBUsers: r.DBUsers, Databases: r.Databases, Shell: r.Shell == nil || *r.Shell, Approve: r.Approve,
			Auditor: r.Auditor, Replication: r.Replication,
		})
	}
	for _, r := range cfg.Rules {
		m := r.Match
		s.Rules = append(s.Rules, policy.RuleSpec{
			Name: r.Name, On: r.On, Action: r.Action, Targets: r.Targets, Roles: r.Roles, Approvers: r.Approvers,
			Timeout: r.Timeout.D, Unknowable: r.Unknowable,
			Match: policy.MatchSpec{Command: m.Command, Commands: m.Commands, Regex: m.Regex, Statement: m.Statement,
				Statements: m.Statements, Tables: m.Tables, Functions: m.Functions, Detector: m.Detector,
				Pattern: m.Pattern, Columns: m.Columns},
		})
	}
	return s
}
