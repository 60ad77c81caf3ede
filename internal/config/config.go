// Package config reads the bastion's YAML configuration into typed structs
// and validates it, with errors that name the field and the problem.
//
// # Basics
//
// Load reads a file; Parse reads bytes. Unknown keys are errors (a typo must
// not silently disable a rule). Validation checks every field it can check
// without the network; the components check the rest when they are built.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"net"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/jackc/pgx/v5/pgxpool"
	"go.yaml.in/yaml/v3"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/keyuri"
)

// maxConfigBytes bounds a config file; real ones are a few KiB.
const maxConfigBytes = 4 << 20

// Config is the whole file.
type Config struct {
	Listen    Listen     `yaml:"listen"`
	Public    Public     `yaml:"public"`
	DataDir   string     `yaml:"data_dir"`
	Store     Store      `yaml:"store"`
	CA        CA         `yaml:"ca"`
	OIDC      OIDC       `yaml:"oidc"`
	Certs     Certs      `yaml:"certs"`
	Sessions  Sessions   `yaml:"sessions"`
	Targets   []Target   `yaml:"targets"`
	Roles     []Role     `yaml:"roles"`
	Rules     []Rule     `yaml:"rules"`
	Recording Recording  `yaml:"recording"`
	Approvals Approvals  `yaml:"approvals"`
	Audit     Audit      `yaml:"audit"`
	Log       LogConfig  `yaml:"log"`
	TLS       *TLSConfig `yaml:"tls"` // HTTPS for the HTTP listener
	Console   Console    `yaml:"console"`
	SQLAPI    SQLAPI     `yaml:"sql_api"`
	Metrics   Metrics    `yaml:"metrics"`
}

// Console configures the web console at / on the HTTP listener.
type Console struct {
	// Disabled turns the console off (the HTTP listener then serves only
	// the login API, /healthz and /metrics).
	Disabled bool `yaml:"disabled"`
	// URL is the console's public base URL, e.g.
	// "https://bastion.example.com:8443": the sign-in's redirect URI is
	// URL + "/auth/callback" and approval webhooks link to URL +
	// "/approvals/ID". Default: the scheme and host the browser used, and
	// no link in webhooks.
	URL string `yaml:"url"`
	// ClientID is the OAuth client the console signs in with; default
	// oidc.client_id (a public client, with PKCE).
	ClientID string `yaml:"client_id"`
	// ClientSecretEnv names an environment variable holding the client
	// secret, for an IdP that registers web applications as confidential
	// clients. PKCE is used either way.
	ClientSecretEnv string `yaml:"client_secret_env"`
}

// Store says where sessions, recordings, audit, approvals and the rest of
// the bastion's state live. Absent: the bbolt file in data_dir (one
// bastion). With postgres: a PostgreSQL database that several replicas
// share.
type Store struct {
	Postgres *StorePostgres `yaml:"postgres"`
}

// StorePostgres is a shared PostgreSQL store.
type StorePostgres struct {
	// DSN is a libpq connection string ("host=db dbname=bastion
	// user=bastion sslmode=verify-full") or a postgres:// URL.
	DSN string `yaml:"dsn"`
	// DSNEnv names an environment variable holding the DSN instead, so a
	// password stays out of the file. One of dsn and dsn_env.
	DSNEnv string `yaml:"dsn_env"`
	// Name names this replica in sessions and logs; default the host name.
	Name string `yaml:"name"`
	// Lease is how long a replica counts as alive without renewing; when
	// one dies, another marks its live sessions interrupted after this.
	// Default 10s.
	Lease Duration `yaml:"lease"`
}

// ResolveDSN returns the DSN, read from DSNEnv when that is set.
func (p *StorePostgres) ResolveDSN() string {
	if p.DSNEnv != "" {
		return os.Getenv(p.DSNEnv)
	}
	return p.DSN
}

// SQLAPI is POST /v1/sql, the per-request SQL API on the HTTP listener.
type SQLAPI struct {
	Enabled bool    `yaml:"enabled"`
	Rate    float64 `yaml:"rate"`     // requests per second per identity; default 10
	Burst   int     `yaml:"burst"`    // requests an identity may make at once; default 20
	MaxRows int     `yaml:"max_rows"` // the most rows one answer holds; default 10000
	// MaxBytes bounds the row values and notices one answer holds; default 16MiB.
	MaxBytes ByteSize `yaml:"max_bytes"`
	Timeout  Duration `yaml:"timeout"` // one request's run time, approval waits not counted; default 60s
	// MaxConcurrent bounds one identity's requests in flight, from the request
	// to the last byte of its answer; default 4.
	MaxConcurrent int `yaml:"max_concurrent"`
}

// Metrics says where Prometheus /metrics is served and who may read it.
type Metrics struct {
	// Listen, when set, serves /metrics on this address (plain HTTP, e.g.
	// an internal interface or 127.0.0.1:9100) and no longer on the main
	// HTTP listener, which is open to everyone who may log in.
	Listen string `yaml:"listen"`
	// TokenEnv names an environment variable holding a bearer token that
	// scrapes must send (Authorization: Bearer …); empty: no token.
	TokenEnv string `yaml:"token_env"`
}

// CA says where the CA keys live. A key without a URI is the file in
// data_dir/ca it has always been, created at first start.
type CA struct {
	User   CAKey `yaml:"user"`
	Target CAKey `yaml:"target"`
	Host   CAKey `yaml:"host"`
	DB     CAKey `yaml:"db"`
	// DBClient is the database-client CA: the direct PostgreSQL listener's
	// client and server certificates and the SQL API's access tokens.
	DBClient CAKey `yaml:"dbclient"`
	Seal     CAKey `yaml:"seal"`
}

// CAKey is one CA key held in a PKCS#11 token, a YubiKey or a cloud KMS.
type CAKey struct {
	// Key is the key URI (go.step.sm/crypto/kms syntax, e.g.
	// "pkcs11:token=bastion;object=user-ca?module-path=…&pin-source=…").
	Key string `yaml:"key"`
	// Cert, for ca.db and ca.dbclient only: the CA's certificate (PEM).
	// Default data_dir/ca/db_ca.pem (dbclient_ca.pem), self-signed by the
	// key when missing.
	Cert string `yaml:"cert"`
	// Previous, for ca.seal only: the verifier keys (`bastion ca export
	// --seal`) of earlier seal keys, whose seals and checkpoints stay valid.
	Previous []string `yaml:"previous"`
}

// Listen holds listener addresses.
type Listen struct {
	SSH  string `yaml:"ssh"`  // default ":2222"
	HTTP string `yaml:"http"` // default ":8443"
	// Postgres, when set, is the direct PostgreSQL listener: clients
	// connect with TLS and the client certificate `bastion login` wrote.
	Postgres string `yaml:"postgres"`
}

// Public holds the addresses clients use, when they differ from Listen
// (behind NAT or a load balancer).
type Public struct {
	SSH string `yaml:"ssh"` // host:port clients ssh to; default: host of the login URL + ssh port
	// Postgres is the host:port clients of the direct PostgreSQL listener
	// use; its host is also a name in the listener's TLS certificate.
	// Default: host of the login URL + the listener's port.
	Postgres string `yaml:"postgres"`
}

// TLSConfig is a certificate for the HTTP listener.
type TLSConfig struct {
	CertFile string `yaml:"cert_file"`
	KeyFile  string `yaml:"key_file"`
}

// OIDC configures identity providers.
type OIDC struct {
	Issuer   string `yaml:"issuer"`
	ClientID string `yaml:"client_id"`
	// PublicClientSecret is a native client's published secret, for
	// providers whose token endpoint wants one from desktop apps (Google).
	// It is not confidential: every client reads it from /v1/info.
	PublicClientSecret string `yaml:"public_client_secret"`
	UsernameClaim      string `yaml:"username_claim"` // default "email"
	GroupsClaim        string `yaml:"groups_claim"`   // default "groups"
	// EmailDomains, when set, are the only email domains whose people may
	// log in (with the email username claim).
	EmailDomains []string   `yaml:"email_domains"`
	Scopes       []string   `yaml:"scopes"`     // default openid, email, profile
	Algorithms   []string   `yaml:"algorithms"` // default RS256, ES256
	Workload     []Workload `yaml:"workload"`
}

// Workload is a CI or machine identity exchanging its own OIDC token.
type Workload struct {
	Issuer   string   `yaml:"issuer"`
	Audience string   `yaml:"audience"`
	Subject  string   `yaml:"subject"`
	Name     string   `yaml:"name"`
	Groups   []string `yaml:"groups"`
	// ActorClaim names the token's claim that says who triggered the run
	// (GitHub Actions: actor; GitLab: user_login or user_email). When set,
	// a token without it is refused, and that person cannot approve the
	// run's held commands and statements.
	ActorClaim string `yaml:"actor_claim"`
	// Actors maps the claim's values to bastion usernames, where CI logins
	// differ from them; a value it lacks is refused. Without it, the value
	// is normalised as a username is.
	Actors map[string]string `yaml:"actors"`
}

// Certs holds certificate lifetimes.
type Certs struct {
	UserTTL     Duration `yaml:"user_ttl"`     // default 1h
	MaxUserTTL  Duration `yaml:"max_user_ttl"` // default 8h
	WorkloadTTL Duration `yaml:"workload_ttl"` // default 5m
	TargetTTL   Duration `yaml:"target_ttl"`   // default 2m
}

// Sessions holds limits that apply to every session.
type Sessions struct {
	IdleTimeout   Duration `yaml:"idle_timeout"`   // default 30m; 0 disables ("0s")
	MaxDuration   Duration `yaml:"max_duration"`   // default 12h
	ShutdownGrace Duration `yaml:"shutdown_grace"` // default 30s
	// StartupTimeout bounds a PostgreSQL client's startup (SSL request,
	// startup message, TLS and the upstream connection); default 30s.
	StartupTimeout Duration `yaml:"startup_timeout"`
	EnvAllow       []string `yaml:"env_allow"` // default LANG, LC_*, TERM
	// MaxStartups bounds the connections each listener (SSH, PostgreSQL)
	// holds before they authenticate, a quarter of them per source
	// address (a source's next is closed at once); on a full listener a
	// source holding fewer takes the oldest slot of the one holding the
	// most. Default 256.
	MaxStartups int `yaml:"max_startups"`
	// MaxChannels bounds the channels (sessions, forwards, admin commands)
	// open at once on one SSH connection; more are refused. Default 64.
	MaxChannels int `yaml:"max_channels"`
	// DisconnectExpiredCert ends every session (shell, exec, forward,
	// PostgreSQL, SQL API statement) when the certificate or token it was
	// opened with expires, within a second. Default false: as with
	// OpenSSH, what is open runs on until it ends, idle_timeout or
	// max_duration, and only new channels need a valid certificate.
	DisconnectExpiredCert bool `yaml:"disconnect_expired_cert"`
	// MaxPerUser bounds the sessions (shells, execs, forwards, PostgreSQL
	// sessions, SQL API statements) one identity holds open at once on a
	// replica, each holding a connection to a target. Default 0: no bound.
	MaxPerUser int `yaml:"max_per_user"`
}

// Target is a server or database reachable through the bastion.
type Target struct {
	Name    string `yaml:"name"`
	Kind    string `yaml:"kind"` // ssh, tcp, postgres
	Address string `yaml:"address"`
	// SSH host key trust: exactly one of these for kind ssh.
	HostKey         string `yaml:"host_key"`           // pinned key, authorized_keys format
	HostCA          string `yaml:"host_ca"`            // trust host certificates from this CA
	TrustOnFirstUse bool   `yaml:"trust_on_first_use"` // pin the first key seen, in the store
	// PostgreSQL upstream.
	TLS          *TargetTLS `yaml:"tls"`
	PasswordEnv  string     `yaml:"password_env"`  // weaker alternative to certificates
	PasswordFile string     `yaml:"password_file"` // weaker alternative to certificates
	// Recording, for kind tcp: "content" (the default) records both
	// directions' bytes; "metadata" only the start, end, peer and counts.
	// For kind postgres: "content" (the default) records the transcript and
	// the client-side wire messages (for a pcap export); "transcript" only
	// the transcript.
	Recording string `yaml:"recording"`
	// StartupParams are startup parameters clients may set, besides the built-in
	// allowlist (user, database, application_name, client_encoding, DateStyle,
	// TimeZone, IntervalStyle, extra_float_digits), e.g. [search_path].
	StartupParams []string `yaml:"startup_params"`
}

// TargetTLS verifies a PostgreSQL server.
type TargetTLS struct {
	CAFile     string `yaml:"ca_file"`
	ServerName string `yaml:"server_name"` // default: host of Address
}

// Role maps identities to what they may do.
type Role struct {
	Name        string   `yaml:"name"`
	Groups      []string `yaml:"groups"`      // certificate groups that hold the role
	Users       []string `yaml:"users"`       // or individual usernames
	Targets     []string `yaml:"targets"`     // target name globs
	Logins      []string `yaml:"logins"`      // SSH logins on targets
	Ports       []int    `yaml:"ports"`       // for tcp targets; empty = the target's port
	DBUsers     []string `yaml:"db_users"`    // database users
	Databases   []string `yaml:"databases"`   // database names (globs); empty = any
	Shell       *bool    `yaml:"shell"`       // false: exec only; default true
	Approve     []string `yaml:"approve"`     // target globs whose requests this role may decide
	Auditor     bool     `yaml:"auditor"`     // sees every session and the audit log
	Replication bool     `yaml:"replication"` // PostgreSQL replication connections
}

// Rule is a command, SQL or output rule.
type Rule struct {
	Name       string    `yaml:"name"`
	On         string    `yaml:"on"` // command, sql, output, sql_result
	Match      RuleMatch `yaml:"match"`
	Action     string    `yaml:"action"` // block, approve, mask
	Targets    []string  `yaml:"targets"`
	Roles      []string  `yaml:"roles"`
	Approvers  []string  `yaml:"approvers"` // role names
	Timeout    Duration  `yaml:"timeout"`   // approval timeout; default 5m
	Unknowable string    `yaml:"unknowable"`
}

// RuleMatch is what a rule matches; which fields apply depends on Rule.On.
type RuleMatch struct {
	Command    string   `yaml:"command"`    // glob over normalised argv, e.g. "rm -rf *"
	Commands   []string `yaml:"commands"`   // command names
	Regex      string   `yaml:"regex"`      // over the normalised text
	Statement  string   `yaml:"statement"`  // SQL statement kind
	Statements []string `yaml:"statements"` // SQL statement kinds
	Tables     []string `yaml:"tables"`     // table name globs
	Functions  []string `yaml:"functions"`  // function name globs (sql)
	Detector   string   `yaml:"detector"`   // credit_card, regex
	Pattern    string   `yaml:"pattern"`    // regex for detector: regex
	Columns    []string `yaml:"columns"`    // masked source columns: col, table.col or schema.table.col globs (sql_result)
}

// Recording configures session recording.
type Recording struct {
	Mode          string   `yaml:"mode"`           // strict (default), best_effort
	FlushInterval Duration `yaml:"flush_interval"` // default 200ms
	Retention     Duration `yaml:"retention"`      // 0 keeps forever
	MaxBytes      ByteSize `yaml:"max_bytes"`      // per-session budget; 0 = unlimited, else at least 1KiB
	Input         bool     `yaml:"input"`          // record keystrokes (off: people type passwords)
}

// Audit ships the audit log, as it is written, to sinks off the box.
type Audit struct {
	Syslog  *AuditSyslog  `yaml:"syslog"`
	Webhook *AuditWebhook `yaml:"webhook"`
}

// AuditSyslog is an RFC 5424 syslog receiver.
type AuditSyslog struct {
	Address  string   `yaml:"address"`  // tcp://HOST:PORT, udp://HOST:PORT or unix:///dev/log
	Facility int      `yaml:"facility"` // default 10 (authpriv)
	AppName  string   `yaml:"app_name"` // default "bastion"
	Spool    ByteSize `yaml:"spool"`    // how far behind it may fall; default 1GiB
}

// AuditWebhook is an HTTPS endpoint that takes JSON lines.
type AuditWebhook struct {
	URL      string   `yaml:"url"`
	CAFile   string   `yaml:"ca_file"`   // default: the system's roots
	TokenEnv string   `yaml:"token_env"` // environment variable holding a bearer token
	Spool    ByteSize `yaml:"spool"`     // default 1GiB
}

// Approvals configures the approval workflow.
type Approvals struct {
	Webhook string `yaml:"webhook"` // JSON POST for every new request
	// MaxPending bounds the requests one identity has waiting at once;
	// one more is denied at once. Default 10.
	MaxPending int `yaml:"max_pending"`
}

// LogConfig configures logging.
type LogConfig struct {
	Level  string `yaml:"level"`  // debug, info (default), warn, error
	Format string `yaml:"format"` // text (default), json
}

// Load reads and validates a config file.
func Load(path string) (*Config, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxConfigBytes+1))
	if err != nil {
		return nil, fmt.Errorf("config: read %s: %w", path, err)
	}
	c, err := Parse(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	// Relative paths in the file are relative to the file.
	c.resolvePaths(filepath.Dir(path))
	return c, nil
}

// Parse decodes and validates YAML.
func Parse(b []byte) (*Config, error) {
	if len(b) > maxConfigBytes {
		return nil, fmt.Errorf("config: larger than %d bytes", maxConfigBytes)
	}
	dec := yaml.NewDecoder(bytes.NewReader(b))
	dec.KnownFields(true)
	var c Config
	if err := dec.Decode(&c); err != nil {
		if errors.Is(err, io.EOF) {
			return nil, errors.New("config: empty")
		}
		if errs := fieldErrors(b, err); len(errs) > 0 {
			return nil, errs
		}
		return nil, fmt.Errorf("config: %w", err)
	}
	var extra yaml.Node
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, errors.New("config: more than one YAML document")
	}
	nulls := nullItems(b)
	c.setDefaults()
	if err := c.Validate(); err != nil || len(nulls) > 0 {
		var errs Errors
		if err != nil && !errors.As(err, &errs) {
			return nil, err
		}
		return nil, append(nulls, errs...)
	}
	return &c, nil
}

func (c *Config) setDefaults() {
	def := func(s *string, v string) {
		if *s == "" {
			*s = v
		}
	}
	def(&c.Listen.SSH, ":2222")
	def(&c.Listen.HTTP, ":8443")
	def(&c.OIDC.UsernameClaim, "email")
	def(&c.OIDC.GroupsClaim, "groups")
	def(&c.Recording.Mode, "strict")
	def(&c.Log.Level, "info")
	def(&c.Log.Format, "text")
	if len(c.OIDC.Scopes) == 0 {
		c.OIDC.Scopes = []string{"openid", "email", "profile"}
	}
	defd := func(d *Duration, v time.Duration) {
		if !d.Set {
			d.D, d.Set = v, true
		}
	}
	defd(&c.Certs.UserTTL, time.Hour)
	defd(&c.Certs.MaxUserTTL, 8*time.Hour)
	defd(&c.Certs.WorkloadTTL, 5*time.Minute)
	defd(&c.Certs.TargetTTL, 2*time.Minute)
	defd(&c.Sessions.IdleTimeout, 30*time.Minute)
	defd(&c.Sessions.MaxDuration, 12*time.Hour)
	defd(&c.Sessions.ShutdownGrace, 30*time.Second)
	defd(&c.Sessions.StartupTimeout, 30*time.Second)
	defd(&c.Recording.FlushInterval, 200*time.Millisecond)
	defd(&c.SQLAPI.Timeout, time.Minute)
	if c.SQLAPI.Rate == 0 {
		c.SQLAPI.Rate = 10
	}
	if c.SQLAPI.Burst == 0 {
		c.SQLAPI.Burst = 20
	}
	if c.Approvals.MaxPending == 0 {
		c.Approvals.MaxPending = 10
	}
	if c.Sessions.MaxStartups == 0 {
		c.Sessions.MaxStartups = 256
	}
	if c.Sessions.MaxChannels == 0 {
		c.Sessions.MaxChannels = 64
	}
	if c.SQLAPI.MaxRows == 0 {
		c.SQLAPI.MaxRows = 10000
	}
	if c.SQLAPI.MaxBytes == 0 {
		c.SQLAPI.MaxBytes = 16 << 20
	}
	if c.SQLAPI.MaxConcurrent == 0 {
		c.SQLAPI.MaxConcurrent = 4
	}
	if c.Sessions.EnvAllow == nil {
		c.Sessions.EnvAllow = []string{"LANG", "LC_*", "TERM"}
	}
	for i := range c.Rules {
		if c.Rules[i].Action == "approve" {
			defd(&c.Rules[i].Timeout, 5*time.Minute)
		}
	}
}

func (c *Config) resolvePaths(dir string) {
	abs := func(p *string) {
		if *p != "" && !filepath.IsAbs(*p) {
			*p = filepath.Join(dir, *p)
		}
	}
	abs(&c.DataDir)
	abs(&c.CA.DB.Cert)
	abs(&c.CA.DBClient.Cert)
	if c.TLS != nil {
		abs(&c.TLS.CertFile)
		abs(&c.TLS.KeyFile)
	}
	for i := range c.Targets {
		if c.Targets[i].TLS != nil {
			abs(&c.Targets[i].TLS.CAFile)
		}
		abs(&c.Targets[i].PasswordFile)
	}
	if c.Audit.Webhook != nil {
		abs(&c.Audit.Webhook.CAFile)
	}
}

// FieldError names the field a problem is in.
type FieldError struct {
	Field string // e.g. "targets[1].address"
	Err   error
}

func (e *FieldError) Error() string { return "config: " + e.Field + ": " + e.Err.Error() }
func (e *FieldError) Unwrap() error { return e.Err }

// Errors is every problem found, in file order.
type Errors []*FieldError

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,62}$`)

// settingRE matches a PostgreSQL setting name (custom settings have a dot).
var settingRE = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_.]{0,62}$`)

// Validate checks the whole config and reports every problem at once, in
// file order: one checker per section, each adding to the same list.
func (c *Config) Validate() error {
	var v validator
	v.listen(c)
	v.dataDir(c)
	v.ca(c)
	v.tls(c)
	v.oidc(c)
	v.console(c)
	v.certs(c)
	v.targets(c)
	v.roles(c)
	v.rules(c)
	v.recording(c)
	v.approvals(c)
	v.store(c)
	v.audit(c)
	v.metrics(c)
	v.log(c)
	v.sqlAPI(c)
	v.sessions(c)
	if len(v.errs) > 0 {
		return v.errs
	}
	return nil
}

// validator collects the problems Validate finds.
type validator struct {
	errs Errors
}

// bad records a problem in field.
func (v *validator) bad(field, format string, args ...any) {
	v.errs = append(v.errs, &FieldError{Field: field, Err: fmt.Errorf(format, args...)})
}

// addr checks a host:port address; needHost requires the host part.
func (v *validator) addr(field, a string, needHost bool) {
	host, port, err := net.SplitHostPort(a)
	if err != nil {
		v.bad(field, "%q is not host:port", a)
		return
	}
	if n, err := strconv.Atoi(port); err != nil || n < 0 || n > 65535 {
		v.bad(field, "port %q out of range", port)
	}
	if needHost && host == "" {
		v.bad(field, "%q needs a host", a)
	}
}

// listen checks listen and public.
func (v *validator) listen(c *Config) {
	v.addr("listen.ssh", c.Listen.SSH, false)
	v.addr("listen.http", c.Listen.HTTP, false)
	if c.Public.SSH != "" {
		v.addr("public.ssh", c.Public.SSH, true)
	}
	if c.Listen.Postgres != "" {
		v.addr("listen.postgres", c.Listen.Postgres, false)
	}
	if c.Public.Postgres != "" {
		v.addr("public.postgres", c.Public.Postgres, true)
		if c.Listen.Postgres == "" {
			v.bad("public.postgres", "set without listen.postgres")
		}
	}
}

func (v *validator) sessions(c *Config) {
	if c.Approvals.MaxPending < 0 || c.Approvals.MaxPending > 100000 {
		v.bad("approvals.max_pending", "%d out of range 1..100000", c.Approvals.MaxPending)
	}
	if c.Sessions.MaxStartups < 0 || c.Sessions.MaxStartups > 100000 {
		v.bad("sessions.max_startups", "%d out of range 1..100000", c.Sessions.MaxStartups)
	}
	if c.Sessions.MaxPerUser < 0 || c.Sessions.MaxPerUser > 1000000 {
		v.bad("sessions.max_per_user", "%d out of range 0..1000000 (0: no bound)", c.Sessions.MaxPerUser)
	}
	if c.Sessions.MaxChannels < 0 || c.Sessions.MaxChannels > 100000 {
		v.bad("sessions.max_channels", "%d out of range 1..100000", c.Sessions.MaxChannels)
	}
}

func (v *validator) sqlAPI(c *Config) {
	if c.SQLAPI.Rate < 0 {
		v.bad("sql_api.rate", "%v must be positive", c.SQLAPI.Rate)
	}
	if c.SQLAPI.Burst < 0 {
		v.bad("sql_api.burst", "%d must be positive", c.SQLAPI.Burst)
	}
	if c.SQLAPI.MaxRows < 0 || c.SQLAPI.MaxRows > 1000000 {
		v.bad("sql_api.max_rows", "%d out of range 1..1000000", c.SQLAPI.MaxRows)
	}
	if c.SQLAPI.MaxBytes < 0 || c.SQLAPI.MaxBytes > 1<<30 {
		v.bad("sql_api.max_bytes", "%d out of range 1..1GiB", c.SQLAPI.MaxBytes)
	}
	if c.SQLAPI.MaxConcurrent < 0 || c.SQLAPI.MaxConcurrent > 10000 {
		v.bad("sql_api.max_concurrent", "%d out of range 1..10000", c.SQLAPI.MaxConcurrent)
	}
	if c.SQLAPI.Timeout.D < 0 {
		v.bad("sql_api.timeout", "must be positive")
	}
}

func (v *validator) dataDir(c *Config) {
	if c.DataDir == "" {
		v.bad("data_dir", "required")
	}
}

// ca checks the key URIs without opening them (serve opens them and says
// which key cannot sign). Errors never quote a URI: it may hold a PIN.
func (v *validator) ca(c *Config) {
	// One key named for two purposes: serve refuses it (by the public keys
	// it opens); the config names it here already, when the URIs say so.
	seen := map[string]string{}
	for _, k := range []struct {
		name string
		key  CAKey
	}{{"user", c.CA.User}, {"target", c.CA.Target}, {"host", c.CA.Host}, {"db", c.CA.DB}, {"dbclient", c.CA.DBClient}, {"seal", c.CA.Seal}} {
		field := "ca." + k.name
		if k.key.Key != "" {
			if u, err := keyuri.Parse(k.key.Key); err != nil {
				v.bad(field+".key", "%v", err)
			} else if other, dup := seen[u.Key()]; dup {
				v.bad(field+".key", "the same key as %s.key: each CA needs its own (a user CA key that is also the target or host CA makes every login certificate a target or host credential)", other)
			} else {
				seen[u.Key()] = field
			}
		}
		if k.key.Cert != "" && (k.name != "db" && k.name != "dbclient" || k.key.Key == "") {
			v.bad(field+".cert", "only ca.db and ca.dbclient have a certificate, and only with their key")
		}
		if len(k.key.Previous) > 0 && k.name != "seal" {
			v.bad(field+".previous", "only ca.seal has previous keys")
		}
		for i, p := range k.key.Previous {
			if !strings.HasPrefix(p, "bastion-seal+") || strings.Count(p, "+") != 2 {
				v.bad(fmt.Sprintf("%s.previous[%d]", field, i), "%q is not a seal verifier key (bastion-seal+KEYID+KEY, from bastion ca export --seal)", p)
			}
		}
	}
}

func (v *validator) tls(c *Config) {
	if c.TLS != nil && (c.TLS.CertFile == "" || c.TLS.KeyFile == "") {
		v.bad("tls", "cert_file and key_file are both required")
	}
}

// oidc checks oidc, its workload issuers included.
func (v *validator) oidc(c *Config) {
	if c.OIDC.Issuer == "" {
		v.bad("oidc.issuer", "required")
	} else if err := checkURL(c.OIDC.Issuer); err != nil {
		v.bad("oidc.issuer", "%v", err)
	}
	if c.OIDC.ClientID == "" {
		v.bad("oidc.client_id", "required")
	}
	if err := ca.CheckEmailDomains(c.OIDC.Issuer, c.OIDC.UsernameClaim, c.OIDC.EmailDomains); err != nil {
		v.bad("oidc.email_domains", "%v", err)
	}
	for _, cl := range []struct{ field, claim string }{{"oidc.username_claim", c.OIDC.UsernameClaim}, {"oidc.groups_claim", c.OIDC.GroupsClaim}} {
		if ca.ReservedClaim(cl.claim) {
			v.bad(cl.field, "%q is a claim the bastion reads for its own meaning (iss, aud, jti, azp, email_verified)", cl.claim)
		}
	}
	for _, a := range c.OIDC.Algorithms {
		if a == "none" || strings.HasPrefix(strings.ToUpper(a), "HS") {
			v.bad("oidc.algorithms", "%q is not allowed: only asymmetric signatures", a)
		}
	}
	for i, w := range c.OIDC.Workload {
		f := fmt.Sprintf("oidc.workload[%d]", i)
		if err := checkURL(w.Issuer); err != nil {
			v.bad(f+".issuer", "%v", err)
		}
		if w.Audience == "" {
			v.bad(f+".audience", "required")
		} else if err := ca.CheckWorkloadAudience(c.OIDC.Issuer, c.OIDC.ClientID, w.Issuer, w.Audience); err != nil {
			v.bad(f+".audience", "%v", err)
		}
		if w.Subject == "" {
			v.bad(f+".subject", "required (a glob such as \"repo:acme/etl:*\")")
		}
		if w.Name == "" {
			v.bad(f+".name", "required")
		} else if err := ca.ValidateUsername(w.Name); err != nil {
			v.bad(f+".name", "%v: the workload's identity is a username", err)
		}
		v.workloadActor(c, f, w)
	}
}

// notActorClaims are the claims a token has for its own meaning, none of
// which names the person who triggered a run.
var notActorClaims = []string{"iss", "sub", "aud", "exp", "iat", "nbf", "jti", "azp", "email_verified"}

// workloadActor checks a workload's actor_claim and actors.
func (v *validator) workloadActor(c *Config, f string, w Workload) {
	if w.ActorClaim != "" && slices.Contains(notActorClaims, w.ActorClaim) {
		v.bad(f+".actor_claim", "%q names no person (GitHub Actions: actor; GitLab: user_login)", w.ActorClaim)
	}
	if err := ca.CheckWorkloadActors(w.Issuer, w.ActorClaim, len(w.Actors)); err != nil {
		v.bad(f+".actors", "%v", err)
	}
	if len(w.Actors) == 0 {
		return
	}
	if w.ActorClaim == "" {
		v.bad(f+".actors", "needs actor_claim (the claim whose values it maps)")
	}
	keys := slices.Sorted(maps.Keys(w.Actors))
	seen := map[string]string{}
	for _, k := range keys {
		u := w.Actors[k]
		if k == "" {
			v.bad(f+".actors", "an empty claim value")
			continue
		}
		if prev, dup := seen[strings.ToLower(k)]; dup {
			v.bad(f+".actors", "%q and %q are named twice (values are compared without regard to case)", prev, k)
		}
		seen[strings.ToLower(k)] = k
		if err := ca.ValidateUsername(u); err != nil {
			v.bad(fmt.Sprintf("%s.actors[%q]", f, k), "%v", err)
		}
		for _, o := range c.OIDC.Workload {
			if o.Name == u {
				v.bad(fmt.Sprintf("%s.actors[%q]", f, k), "%q is the name of a workload, not a person", u)
			}
		}
	}
}

func (v *validator) console(c *Config) {
	u := c.Console.URL
	if u == "" {
		return
	}
	if err := checkURL(u); err != nil {
		v.bad("console.url", "%v", err)
		return
	}
	p, err := url.Parse(u)
	if err != nil || p.Host == "" || (p.Path != "" && p.Path != "/") || p.RawQuery != "" || p.Fragment != "" {
		v.bad("console.url", "%q must be scheme://host[:port], without a path (the console lives at the root)", u)
	}
}

func (v *validator) certs(c *Config) {
	if c.Certs.UserTTL.D <= 0 || c.Certs.MaxUserTTL.D <= 0 || c.Certs.WorkloadTTL.D <= 0 || c.Certs.TargetTTL.D <= 0 {
		v.bad("certs", "lifetimes must be positive")
	}
	if c.Certs.UserTTL.D > c.Certs.MaxUserTTL.D {
		v.bad("certs.user_ttl", "%s exceeds max_user_ttl %s", c.Certs.UserTTL.D, c.Certs.MaxUserTTL.D)
	}
	if c.Certs.TargetTTL.D > 10*time.Minute {
		v.bad("certs.target_ttl", "%s is too long: per-session certificates only need to survive the handshake (at most 10m)", c.Certs.TargetTTL.D)
	}
}

func (v *validator) targets(c *Config) {
	targets := map[string]bool{}
	for i, t := range c.Targets {
		f := fmt.Sprintf("targets[%d]", i)
		if !nameRE.MatchString(t.Name) {
			v.bad(f+".name", "%q must be 1-63 characters of [A-Za-z0-9._-]", t.Name)
		} else if targets[t.Name] {
			v.bad(f+".name", "duplicate target %q", t.Name)
		}
		targets[t.Name] = true
		v.addr(f+".address", t.Address, true)
		switch t.Kind {
		case "ssh":
			n := 0
			for _, set := range []bool{t.HostKey != "", t.HostCA != "", t.TrustOnFirstUse} {
				if set {
					n++
				}
			}
			if n != 1 {
				v.bad(f, "kind ssh needs exactly one of host_key, host_ca or trust_on_first_use: true (got %d)", n)
			}
		case "tcp":
		case "postgres":
			if t.TLS == nil && t.PasswordEnv == "" && t.PasswordFile == "" {
				v.bad(f+".tls", "kind postgres needs tls.ca_file (certificate auth) or password_env/password_file")
			}
			if t.TLS != nil && t.TLS.CAFile == "" {
				v.bad(f+".tls.ca_file", "required: the bastion verifies the database server")
			}
			if t.PasswordEnv != "" && t.PasswordFile != "" {
				v.bad(f, "password_env and password_file are exclusive")
			}
			for j, p := range t.StartupParams {
				switch lp := strings.ToLower(p); {
				case !settingRE.MatchString(p):
					v.bad(fmt.Sprintf("%s.startup_params[%d]", f, j), "%q is not a setting name", p)
				case lp == "role" || lp == "session_authorization" || lp == "options":
					v.bad(fmt.Sprintf("%s.startup_params[%d]", f, j), "%q would let clients choose their privileges or any setting; grant database users through roles' db_users instead", p)
				}
			}
		case "":
			v.bad(f+".kind", "required: ssh, tcp or postgres")
		default:
			v.bad(f+".kind", "%q is not ssh, tcp or postgres", t.Kind)
		}
		if t.Kind != "ssh" && (t.HostKey != "" || t.HostCA != "" || t.TrustOnFirstUse) {
			v.bad(f, "host_key, host_ca and trust_on_first_use apply to kind ssh only")
		}
		if t.Kind != "postgres" && (t.TLS != nil || t.PasswordEnv != "" || t.PasswordFile != "" || len(t.StartupParams) > 0) {
			v.bad(f, "tls, password and startup_params settings apply to kind postgres only")
		}
		switch {
		case t.Recording == "":
		case t.Kind == "tcp" && t.Recording != "content" && t.Recording != "metadata":
			v.bad(f+".recording", "%q is not content or metadata", t.Recording)
		case t.Kind == "postgres" && t.Recording != "content" && t.Recording != "transcript":
			v.bad(f+".recording", "%q is not content or transcript (a postgres session always records its transcript)", t.Recording)
		case t.Kind != "tcp" && t.Kind != "postgres":
			v.bad(f+".recording", "applies to kinds tcp and postgres only (ssh sessions record the terminal)")
		}
	}
}

func (v *validator) roles(c *Config) {
	roles := map[string]bool{}
	for i, r := range c.Roles {
		f := fmt.Sprintf("roles[%d]", i)
		if !nameRE.MatchString(r.Name) {
			v.bad(f+".name", "%q must be 1-63 characters of [A-Za-z0-9._-]", r.Name)
		} else if roles[r.Name] {
			v.bad(f+".name", "duplicate role %q", r.Name)
		}
		roles[r.Name] = true
		if len(r.Groups) == 0 && len(r.Users) == 0 {
			v.bad(f, "needs groups or users: a role nobody holds does nothing")
		}
		for j, p := range r.Ports {
			if p < 1 || p > 65535 {
				v.bad(fmt.Sprintf("%s.ports[%d]", f, j), "%d out of range", p)
			}
		}
		for j, l := range r.Logins {
			if l == "" || strings.ContainsAny(l, ", \t\n\x00") {
				v.bad(fmt.Sprintf("%s.logins[%d]", f, j), "%q is not a login name", l)
			}
		}
	}
}

// rules checks rules; the roles they name must exist in c.Roles.
func (v *validator) rules(c *Config) {
	rules := map[string]bool{}
	for i, r := range c.Rules {
		f := fmt.Sprintf("rules[%d]", i)
		if !nameRE.MatchString(r.Name) {
			v.bad(f+".name", "%q must be 1-63 characters of [A-Za-z0-9._-]", r.Name)
		} else if rules[r.Name] {
			v.bad(f+".name", "duplicate rule %q", r.Name)
		}
		rules[r.Name] = true
		switch r.On {
		case "command", "sql":
			if r.Action != "block" && r.Action != "approve" {
				v.bad(f+".action", "%q: on %s rules take block or approve", r.Action, r.On)
			}
		case "output", "sql_result":
			if r.Action != "mask" {
				v.bad(f+".action", "%q: on %s rules take mask", r.Action, r.On)
			}
		default:
			v.bad(f+".on", "%q is not command, sql, output or sql_result", r.On)
		}
		if r.Action == "approve" {
			if len(r.Approvers) == 0 {
				v.bad(f+".approvers", "an approve rule needs approver roles")
			}
			for _, a := range r.Approvers {
				if !hasRole(c.Roles, a) {
					v.bad(f+".approvers", "unknown role %q", a)
				}
			}
			if r.Timeout.D <= 0 {
				v.bad(f+".timeout", "must be positive")
			}
			if !someoneCanApprove(c, r) {
				v.bad(f+".approvers", "no approver role's approve scope covers a target the rule applies to: every request would wait for nobody and be denied (use action: block, or widen the roles' approve)")
			}
		} else if len(r.Approvers) > 0 {
			v.bad(f+".approvers", "only approve rules have approvers")
		}
		for _, ro := range r.Roles {
			if !hasRole(c.Roles, ro) {
				v.bad(f+".roles", "unknown role %q", ro)
			}
		}
		switch {
		case r.On == "sql_result":
			if r.Unknowable != "" && r.Unknowable != "mask" && r.Unknowable != "block" {
				v.bad(f+".unknowable", "%q: an sql_result rule masks (mask, the default) or blocks (block) what it cannot trace; never allow", r.Unknowable)
			}
		case r.Unknowable != "" && r.Unknowable != "approve" && r.Unknowable != "block" && r.Unknowable != "allow":
			v.bad(f+".unknowable", "%q is not approve, block or allow", r.Unknowable)
		}
		v.ruleMatchFields(f, r)
		switch {
		case r.Unknowable == "":
		case r.On == "output":
			v.bad(f+".unknowable", "not read by on: output rules (masking reads every line)")
		case r.On == "sql_result" && len(r.Match.Columns) == 0:
			v.bad(f+".unknowable", "applies to match.columns (a value whose source column cannot be known); this rule has none, so it would change nothing")
		}
		// A rule scoped to targets that do not exist applies nowhere: a
		// misspelt name would leave the targets it meant unguarded.
		for j, g := range r.Targets {
			ft := fmt.Sprintf("%s.targets[%d]", f, j)
			lg := strings.ToLower(g) // the policy compares target scopes in lower case
			switch {
			case g == "":
				v.bad(ft, "empty: it names no target, so the rule would apply nowhere")
			case !validGlob(lg):
				// the policy refuses it with the glob's error
			case !slices.ContainsFunc(c.Targets, func(t Target) bool { ok, _ := path.Match(lg, strings.ToLower(t.Name)); return ok }):
				if strings.ContainsAny(g, "*?[\\") {
					v.bad(ft, "%q matches no target, so the rule would apply nowhere", g)
				} else {
					v.bad(ft, "%q names no target, so the rule would apply nowhere", g)
				}
			}
		}
		v.ruleTargetKinds(f, r, c.Targets)
		if r.Match.Regex != "" {
			if _, err := regexp.Compile(r.Match.Regex); err != nil {
				v.bad(f+".match.regex", "%v", err)
			}
		}
		if r.Match.Pattern != "" {
			if _, err := regexp.Compile(r.Match.Pattern); err != nil {
				v.bad(f+".match.pattern", "%v", err)
			}
		}
	}
}

// ruleTargetKinds refuses a rule scoped only to targets of a kind it never
// reads: a command rule on tcp targets (a forward runs no command the
// bastion sees), an SQL rule on anything but PostgreSQL. The operator
// believes it guards them; it would guard nothing.
func (v *validator) ruleTargetKinds(f string, r Rule, targets []Target) {
	kind, what := map[string]string{"command": "ssh", "sql": "postgres", "sql_result": "postgres"}[r.On], map[string]string{"command": "commands", "sql": "statements", "sql_result": "results"}[r.On]
	if kind == "" || len(r.Targets) == 0 {
		return
	}
	var names []string
	kinds := map[string]bool{}
	for _, t := range targets {
		for _, g := range r.Targets {
			if ok, _ := path.Match(strings.ToLower(g), strings.ToLower(t.Name)); ok {
				if t.Kind == kind {
					return
				}
				names = append(names, t.Name)
				kinds[t.Kind] = true
				break
			}
		}
	}
	if len(names) == 0 {
		return // the targets' own checks say so
	}
	v.bad(f+".targets", "on: %s rules judge %s targets' %s; the rule's targets (%s) are %s targets, where it never applies, so it would guard nothing", r.On, kind, what, strings.Join(names, ", "), strings.Join(slices.Sorted(maps.Keys(kinds)), " and "))
}

// ruleMatchFields refuses match fields the rule's kind does not read: they
// would be ignored, and the rule would guard other than it reads.
func (v *validator) ruleMatchFields(f string, r Rule) {
	m := r.Match
	reads := map[string][]string{
		"command":    {"command", "commands", "regex"},
		"sql":        {"statement", "statements", "tables", "functions", "regex"},
		"output":     {"detector", "pattern"},
		"sql_result": {"columns", "detector", "pattern"},
	}[r.On]
	if reads == nil {
		return // on itself is refused
	}
	for _, fv := range []struct {
		name string
		set  bool
	}{
		{"command", m.Command != ""}, {"commands", len(m.Commands) > 0}, {"regex", m.Regex != ""},
		{"statement", m.Statement != ""}, {"statements", len(m.Statements) > 0}, {"tables", len(m.Tables) > 0},
		{"functions", len(m.Functions) > 0}, {"detector", m.Detector != ""}, {"pattern", m.Pattern != ""},
		{"columns", len(m.Columns) > 0},
	} {
		switch {
		case !fv.set:
		case !slices.Contains(reads, fv.name):
			v.bad(f+".match."+fv.name, "not read by on: %s rules (they read match.%s)", r.On, strings.Join(reads, ", match."))
		case fv.name == "pattern" && m.Detector != "regex":
			v.bad(f+".match.pattern", "applies to detector regex only (detector is %q): the pattern would mask nothing", m.Detector)
		}
	}
}

// someoneCanApprove reports whether one of r's approver roles may decide a
// request on some configured target r applies to, as the policy decides it
// (a role's empty approve covers every target).
func someoneCanApprove(c *Config, r Rule) bool {
	inScope := 0
	for _, t := range c.Targets {
		if len(r.Targets) > 0 && !slices.ContainsFunc(r.Targets, func(g string) bool {
			ok, _ := path.Match(strings.ToLower(g), strings.ToLower(t.Name))
			return ok
		}) {
			continue
		}
		inScope++
		for _, ro := range c.Roles {
			if !slices.Contains(r.Approvers, ro.Name) {
				continue
			}
			if len(ro.Approve) == 0 || slices.ContainsFunc(ro.Approve, func(g string) bool { ok, _ := path.Match(g, t.Name); return ok }) {
				return true
			}
		}
	}
	return inScope == 0 // a rule scoped to no target is refused for that
}

// validGlob reports whether g is a glob path.Match accepts.
func validGlob(g string) bool {
	_, err := path.Match(g, "")
	return err == nil
}

func (v *validator) recording(c *Config) {
	switch c.Recording.Mode {
	case "strict", "best_effort":
	default:
		v.bad("recording.mode", "%q is not strict or best_effort", c.Recording.Mode)
	}
	if c.Recording.FlushInterval.D <= 0 || c.Recording.FlushInterval.D > time.Minute {
		v.bad("recording.flush_interval", "%s out of range (0, 1m]", c.Recording.FlushInterval.D)
	}
	// A bare number is bytes: "max_bytes: 64" meant as 64MiB would keep
	// next to nothing of each session (a TCP session's open event alone
	// takes about 50), while its traffic goes on unstored.
	if n := c.Recording.MaxBytes; n > 0 && n < 1<<10 {
		v.bad("recording.max_bytes", "%d bytes would keep next to nothing of a session (a size without a unit is bytes: write 64MiB, not 64); at least 1KiB, or 0 (or unset) for no cap", n)
	}
}

func (v *validator) approvals(c *Config) {
	if c.Approvals.Webhook != "" {
		if err := checkURL(c.Approvals.Webhook); err != nil {
			v.bad("approvals.webhook", "%v", err)
		}
	}
}

// store checks the store section. Errors never quote the DSN: it may hold
// a password.
func (v *validator) store(c *Config) {
	p := c.Store.Postgres
	if p == nil {
		return
	}
	switch {
	case p.DSN != "" && p.DSNEnv != "":
		v.bad("store.postgres", "dsn and dsn_env are exclusive")
	case p.DSN == "" && p.DSNEnv == "":
		v.bad("store.postgres.dsn", "required (or dsn_env)")
	case p.DSNEnv != "" && os.Getenv(p.DSNEnv) == "":
		v.bad("store.postgres.dsn_env", "the environment variable %s is empty", p.DSNEnv)
	default:
		// The parser serve uses: `config check` passes only what serve
		// takes. pgx's message can quote the DSN, password included: say
		// less.
		key, dsn := "store.postgres.dsn", p.DSN
		if p.DSNEnv != "" {
			key, dsn = "store.postgres.dsn_env", os.Getenv(p.DSNEnv)
		}
		if _, err := pgxpool.ParseConfig(dsn); err != nil {
			v.bad(key, "not a valid PostgreSQL connection string (a key=value list or a postgres:// URL; sslmode one of disable, allow, prefer, require, verify-ca, verify-full)")
		}
	}
	if p.Lease.D < 0 || (p.Lease.Set && p.Lease.D < time.Second) || p.Lease.D > 10*time.Minute {
		v.bad("store.postgres.lease", "%s out of range [1s, 10m]", p.Lease.D)
	}
}

func (v *validator) audit(c *Config) {
	if s := c.Audit.Syslog; s != nil {
		u, err := url.Parse(s.Address)
		switch {
		case s.Address == "":
			v.bad("audit.syslog.address", "required: tcp://HOST:PORT, udp://HOST:PORT or unix:///PATH")
		case err != nil || (u.Scheme != "tcp" && u.Scheme != "udp" && u.Scheme != "unix"):
			v.bad("audit.syslog.address", "%q: want tcp://HOST:PORT, udp://HOST:PORT or unix:///PATH", s.Address)
		case u.Scheme != "unix" && !validHostPort(u.Host):
			v.bad("audit.syslog.address", "%q: want %s://HOST:PORT", s.Address, u.Scheme)
		}
		if s.Facility < 0 || s.Facility > 23 {
			v.bad("audit.syslog.facility", "%d is not a syslog facility (0 to 23)", s.Facility)
		}
	}
	if w := c.Audit.Webhook; w != nil {
		if err := checkURL(w.URL); err != nil {
			v.bad("audit.webhook.url", "%v", err)
		} else if u, _ := url.Parse(w.URL); u.Scheme != "https" && !isLoopbackHost(u.Hostname()) {
			v.bad("audit.webhook.url", "%q: use https (plain http only to a loopback address)", w.URL)
		}
		if w.TokenEnv != "" && os.Getenv(w.TokenEnv) == "" {
			v.bad("audit.webhook.token_env", "the environment variable %s is not set", w.TokenEnv)
		}
	}
}

func (v *validator) metrics(c *Config) {
	if c.Metrics.Listen != "" {
		v.addr("metrics.listen", c.Metrics.Listen, false)
	}
	if c.Metrics.TokenEnv != "" && os.Getenv(c.Metrics.TokenEnv) == "" {
		v.bad("metrics.token_env", "the environment variable %s is not set", c.Metrics.TokenEnv)
	}
}

func validHostPort(a string) bool {
	h, p, err := net.SplitHostPort(a)
	return err == nil && h != "" && p != ""
}

func isLoopbackHost(h string) bool {
	ip := net.ParseIP(h)
	return h == "localhost" || ip != nil && ip.IsLoopback()
}

func (v *validator) log(c *Config) {
	switch c.Log.Level {
	case "debug", "info", "warn", "error":
	default:
		v.bad("log.level", "%q is not debug, info, warn or error", c.Log.Level)
	}
	switch c.Log.Format {
	case "text", "json":
	default:
		v.bad("log.format", "%q is not text or json", c.Log.Format)
	}
}

func hasRole(rs []Role, name string) bool {
	for _, r := range rs {
		if r.Name == name {
			return true
		}
	}
	return false
}

func checkURL(s string) error {
	if !strings.HasPrefix(s, "https://") && !strings.HasPrefix(s, "http://") {
		return fmt.Errorf("%q must be an http(s) URL", s)
	}
	if strings.ContainsAny(s, " \t\n") {
		return fmt.Errorf("%q contains white space", s)
	}
	return nil
}
