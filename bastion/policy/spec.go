package policy

import "time"

// Spec is what a Policy is compiled from: the deployment's targets, roles
// and rules as plain values. The YAML config is not the policy's model:
// internal/app fills a Spec from it, and tests build one directly.
type Spec struct {
	Targets []TargetSpec
	Roles   []RoleSpec
	Rules   []RuleSpec
	// KnownSQLKind, when set, says which statement kinds the SQL classifier
	// gives (pgproxy.KnownKind): an sql rule naming another kind would match
	// nothing, so it is refused. Every config path sets it.
	KnownSQLKind func(string) bool
}

// TargetSpec describes a destination.
type TargetSpec struct {
	Name    string
	Kind    string // ssh, tcp, postgres
	Address string // host:port
	// kind ssh: exactly one of these.
	HostKey         string // authorized_keys line
	HostCA          string // authorized_keys line of the CA
	TrustOnFirstUse bool
	// kind tcp: "content" (default) or "metadata".
	Recording string
	// kind postgres.
	CAFile        string // PEM bundle that verifies the server
	ServerName    string // default: the host of Address
	PasswordEnv   string // weaker alternative to certificates
	PasswordFile  string
	StartupParams []string
}

// RoleSpec describes a role.
type RoleSpec struct {
	Name        string
	Groups      []string
	Users       []string
	Targets     []string
	Logins      []string
	Ports       []int
	DBUsers     []string
	Databases   []string
	Shell       bool // interactive shells (false: exec only)
	Approve     []string
	Auditor     bool
	Replication bool
}

// RuleSpec describes a rule.
type RuleSpec struct {
	Name       string
	On         string // command, sql, output, sql_result
	Action     string // block, approve, mask
	Targets    []string
	Roles      []string
	Approvers  []string
	Timeout    time.Duration // approval timeout; 0: DefaultApprovalTimeout
	Unknowable string
	Match      MatchSpec
}

// MatchSpec is what a rule matches; which fields apply depends on On.
type MatchSpec struct {
	Command    string
	Commands   []string
	Regex      string
	Statement  string
	Statements []string
	Tables     []string
	Functions  []string
	Detector   string
	Pattern    string
	Columns    []string
}
