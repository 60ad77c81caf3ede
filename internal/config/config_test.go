package config

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Every example under configs/ parses and validates.
func TestExampleConfigs(t *testing.T) {
	files, err := filepath.Glob("../../configs/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no example configs found: %v", err)
	}
	for _, f := range files {
		t.Run(filepath.Base(f), func(t *testing.T) {
			c, err := Load(f)
			if err != nil {
				t.Fatal(err)
			}
			if c.DataDir == "" || len(c.Targets) == 0 {
				t.Errorf("%s: parsed to an empty config", f)
			}
		})
	}
}

const minimal = `
data_dir: /tmp/b
oidc: {issuer: "https://idp.example.com", client_id: bastion}
`

func TestDefaults(t *testing.T) {
	c, err := Parse([]byte(minimal))
	if err != nil {
		t.Fatal(err)
	}
	for name, got := range map[string]any{
		"listen.ssh": c.Listen.SSH, "listen.http": c.Listen.HTTP, "username_claim": c.OIDC.UsernameClaim,
		"user_ttl": c.Certs.UserTTL.D, "max_user_ttl": c.Certs.MaxUserTTL.D, "workload_ttl": c.Certs.WorkloadTTL.D,
		"target_ttl": c.Certs.TargetTTL.D, "mode": c.Recording.Mode, "flush": c.Recording.FlushInterval.D,
	} {
		want := map[string]any{
			"listen.ssh": ":2222", "listen.http": ":8443", "username_claim": "email",
			"user_ttl": time.Hour, "max_user_ttl": 8 * time.Hour, "workload_ttl": 5 * time.Minute,
			"target_ttl": 2 * time.Minute, "mode": "strict", "flush": 200 * time.Millisecond,
		}[name]
		if got != want {
			t.Errorf("%s: got %v, want %v", name, got, want)
		}
	}
}

func TestRetentionDays(t *testing.T) {
	c, err := Parse([]byte(minimal + "recording: {retention: 90d, max_bytes: 64MiB}\n"))
	if err != nil {
		t.Fatal(err)
	}
	if c.Recording.Retention.D != 90*24*time.Hour || c.Recording.MaxBytes != 64<<20 {
		t.Errorf("got %v, %d", c.Recording.Retention.D, c.Recording.MaxBytes)
	}
}

const oneTarget = "targets: [{name: web1, kind: tcp, address: \"h:1\"}]\n"

// Malformed configs are refused with an error that names the field.
func TestMalformed(t *testing.T) {
	for _, tc := range []struct {
		name, yaml, want string
	}{
		{"empty", ``, "empty"},
		{"not yaml", "{{{", "config:"},
		{"unknown key", minimal + "listne: {}\n", "field listne not found"},
		{"unknown nested key", minimal + "certs: {user_tll: 1h}\n", "user_tll"},
		{"two documents", minimal + "---\n" + minimal, "more than one YAML document"},
		{"no data_dir", `oidc: {issuer: "https://i", client_id: b}`, "data_dir: required"},
		{"no issuer", "data_dir: /x\noidc: {client_id: b}\n", "oidc.issuer: required"},
		{"issuer not a URL", "data_dir: /x\noidc: {issuer: idp, client_id: b}\n", "oidc.issuer"},
		{"hs256", "data_dir: /x\noidc: {issuer: \"https://i\", client_id: b, algorithms: [HS256]}\n", "oidc.algorithms"},
		{"console url not a URL", minimal + "console: {url: bastion.example.com}\n", "console.url"},
		{"console url with a path", minimal + "console: {url: \"https://bastion.example.com/console\"}\n", "console.url"},
		{"console url with a query", minimal + "console: {url: \"https://bastion.example.com/?a=b\"}\n", "console.url"},
		{"gitlab.com without email_domains", "data_dir: /x\noidc: {issuer: \"https://gitlab.com\", client_id: b}\n", "oidc.email_domains"},
		{"workload with the people's issuer and client", "data_dir: /x\noidc: {issuer: \"https://i\", client_id: b, workload: [{issuer: \"https://i\", audience: b, subject: \"*\", name: ci}]}\n", "oidc.workload[0].audience"},
		{"accounts.google.com without email_domains", "data_dir: /x\noidc: {issuer: \"https://accounts.google.com\", client_id: b}\n", "oidc.email_domains"},
		{"email domain with an at", "data_dir: /x\noidc: {issuer: \"https://i\", client_id: b, email_domains: [\"@acme.com\"]}\n", "oidc.email_domains"},
		{"username claim reserved", "data_dir: /x\noidc: {issuer: \"https://i\", client_id: b, username_claim: iss}\n", "oidc.username_claim"},
		{"groups claim reserved", "data_dir: /x\noidc: {issuer: \"https://i\", client_id: b, groups_claim: aud}\n", "oidc.groups_claim"},
		{"workload name not a username", "data_dir: /x\noidc: {issuer: \"https://i\", client_id: b, workload: [{issuer: \"https://ci\", audience: a, subject: s, name: \"CI ETL\"}]}\n", "oidc.workload[0].name"},
		{"alg none", "data_dir: /x\noidc: {issuer: \"https://i\", client_id: b, algorithms: [none]}\n", "only asymmetric"},
		{"bad duration", minimal + "certs: {user_ttl: forever}\n", "not a duration"},
		{"negative duration", minimal + "certs: {user_ttl: -1h}\n", "negative"},
		{"ttl above max", minimal + "certs: {user_ttl: 9h, max_user_ttl: 8h}\n", "certs.user_ttl"},
		{"long target ttl", minimal + "certs: {target_ttl: 1h}\n", "certs.target_ttl"},
		{"bad listen", minimal + "listen: {ssh: \"2222\"}\n", "listen.ssh"},
		{"store without dsn", minimal + "store: {postgres: {}}\n", "store.postgres.dsn: required"},
		{"store with dsn and dsn_env", minimal + "store: {postgres: {dsn: \"host=db\", dsn_env: X}}\n", "exclusive"},
		{"store dsn_env unset", minimal + "store: {postgres: {dsn_env: BASTION_TEST_UNSET_DSN}}\n", "BASTION_TEST_UNSET_DSN is empty"},
		{"store dsn serve would refuse", minimal + "store: {postgres: {dsn: \"host=db sslmode=bogus password=hunter2\"}}\n", "store.postgres.dsn: not a valid PostgreSQL connection string"},
		{"store dsn url serve would refuse", minimal + "store: {postgres: {dsn: \"postgres://u:hunter2@db:notaport/x\"}}\n", "store.postgres.dsn: not a valid"},
		{"store short lease", minimal + "store: {postgres: {dsn: \"host=db\", lease: 10ms}}\n", "store.postgres.lease"},
		{"store unknown key", minimal + "store: {postgress: {dsn: x}}\n", "postgress"},
		{"port out of range", minimal + "listen: {ssh: \":99999\"}\n", "out of range"},
		{"bad postgres listen", minimal + "listen: {postgres: \"5432\"}\n", "listen.postgres"},
		{"public postgres without listener", minimal + "public: {postgres: \"b.example.com:5432\"}\n", "public.postgres: set without listen.postgres"},
		{"sql api max rows", minimal + "sql_api: {enabled: true, max_rows: 2000000}\n", "sql_api.max_rows"},
		{"sql api rate", minimal + "sql_api: {rate: -1}\n", "sql_api.rate"},
		{"sql api max concurrent", minimal + "sql_api: {enabled: true, max_concurrent: -1}\n", "sql_api.max_concurrent"},
		{"dbclient cert without key", minimal + "ca: {dbclient: {cert: /x.pem}}\n", "ca.dbclient.cert"},
		{"target without kind", minimal + "targets: [{name: a, address: \"h:22\"}]\n", "targets[0].kind: required"},
		{"target bad kind", minimal + "targets: [{name: a, kind: rdp, address: \"h:22\"}]\n", "targets[0].kind"},
		{"ssh target without trust", minimal + "targets: [{name: a, kind: ssh, address: \"h:22\"}]\n", "exactly one of host_key"},
		{"ssh target with two trusts", minimal + "targets: [{name: a, kind: ssh, address: \"h:22\", host_key: x, trust_on_first_use: true}]\n", "exactly one"},
		{"target address without port", minimal + "targets: [{name: a, kind: tcp, address: \"h\"}]\n", "targets[0].address"},
		{"target name with slash", minimal + "targets: [{name: \"a/b\", kind: tcp, address: \"h:1\"}]\n", "targets[0].name"},
		{"duplicate target", minimal + "targets: [{name: a, kind: tcp, address: \"h:1\"}, {name: a, kind: tcp, address: \"h:2\"}]\n", "duplicate target"},
		{"postgres without tls", minimal + "targets: [{name: p, kind: postgres, address: \"h:5432\"}]\n", "targets[0].tls"},
		{"recording on an ssh target", minimal + "targets: [{name: a, kind: ssh, address: \"h:22\", trust_on_first_use: true, recording: metadata}]\n", "targets[0].recording: applies to kinds tcp and postgres only"},
		{"recording metadata on a postgres target", minimal + "targets: [{name: a, kind: postgres, address: \"h:5432\", recording: metadata}]\n", "targets[0].recording: \"metadata\" is not content or transcript"},
		{"recording value", minimal + "targets: [{name: a, kind: tcp, address: \"h:1\", recording: all}]\n", "targets[0].recording: \"all\" is not content or metadata"},
		{"tls on tcp", minimal + "targets: [{name: p, kind: tcp, address: \"h:5432\", tls: {ca_file: x}}]\n", "postgres only"},
		{"startup param role", minimal + "targets: [{name: p, kind: postgres, address: \"h:5432\", tls: {ca_file: x}, startup_params: [Role]}]\n", "startup_params[0]"},
		{"startup param not a name", minimal + "targets: [{name: p, kind: postgres, address: \"h:5432\", tls: {ca_file: x}, startup_params: [\"a b\"]}]\n", "not a setting name"},
		{"startup params on tcp", minimal + "targets: [{name: p, kind: tcp, address: \"h:5432\", startup_params: [search_path]}]\n", "postgres only"},
		{"role nobody holds", minimal + "roles: [{name: r, targets: [a]}]\n", "needs groups or users"},
		{"role bad port", minimal + "roles: [{name: r, groups: [g], ports: [0]}]\n", "ports[0]"},
		{"login with comma", minimal + "roles: [{name: r, groups: [g], logins: [\"root,deploy\"]}]\n", "logins[0]"},
		{"rule bad on", minimal + "rules: [{name: x, on: keys, action: block}]\n", "rules[0].on"},
		{"rule mask on command", minimal + "rules: [{name: x, on: command, action: mask}]\n", "rules[0].action"},
		{"approve without approvers", minimal + "rules: [{name: x, on: command, action: approve}]\n", "rules[0].approvers"},
		{"approve unknown role", minimal + "rules: [{name: x, on: command, action: approve, approvers: [ghost]}]\n", "unknown role"},
		{"bad regex", minimal + "rules: [{name: x, on: command, action: block, match: {regex: \"(\"}}]\n", "match.regex"},
		{"bad unknowable", minimal + "rules: [{name: x, on: command, action: block, unknowable: maybe}]\n", "unknowable"},
		{"sql_result unknowable allow", minimal + "rules: [{name: x, on: sql_result, action: mask, match: {columns: [a]}, unknowable: allow}]\n", "never allow"},
		{"mask on a command rule", minimal + "rules: [{name: x, on: command, action: block, unknowable: mask}]\n", "unknowable"},
		// A match field the rule's kind does not read would be ignored: the rule would guard less than it reads.
		{"output rule pattern without the regex detector", minimal + "rules: [{name: x, on: output, action: mask, match: {detector: credit_card, pattern: \"secret\"}}]\n", "rules[0].match.pattern: applies to detector regex only"},
		{"output rule with a regex", minimal + "rules: [{name: x, on: output, action: mask, match: {detector: credit_card, regex: \"secret\"}}]\n", "rules[0].match.regex: not read by on: output rules"},
		{"sql_result rule with tables", minimal + "rules: [{name: x, on: sql_result, action: mask, match: {columns: [ssn], tables: [users]}}]\n", "rules[0].match.tables: not read by on: sql_result rules"},
		{"sql rule with columns", minimal + "rules: [{name: x, on: sql, action: block, match: {statement: select, columns: [ssn]}}]\n", "rules[0].match.columns: not read by on: sql rules"},
		{"command rule with a statement", minimal + "rules: [{name: x, on: command, action: block, match: {command: \"rm *\", statements: [drop_table]}}]\n", "rules[0].match.statements: not read by on: command rules"},
		{"output rule with unknowable", minimal + "rules: [{name: x, on: output, action: mask, match: {detector: credit_card}, unknowable: block}]\n", "rules[0].unknowable: not read by on: output rules"},
		{"sql_result rule without columns with unknowable", minimal + "rules: [{name: x, on: sql_result, action: mask, match: {detector: credit_card}, unknowable: block}]\n", "rules[0].unknowable: applies to match.columns"},
		{"unknown key in a flow list names its own field", minimal + "rules: [{name: a, on: command, action: block, match: {command: a}}, {name: b, acton: block}]\n", "rules[1].acton: field acton not found"},
		{"approval nobody can give", minimal + oneTarget + "roles: [{name: r, groups: [g], approve: [\"db*\"]}]\nrules: [{name: x, on: command, action: approve, approvers: [r], match: {command: a}}]\n", "rules[0].approvers: no approver role's approve scope covers a target the rule applies to"},
		// A rule scoped to targets that do not exist applies nowhere.
		{"rule target not defined", minimal + oneTarget + "rules: [{name: x, on: command, action: block, match: {command: a}, targets: [web-1]}]\n", "rules[0].targets[0]: \"web-1\" names no target"},
		{"rule target glob matching none", minimal + oneTarget + "rules: [{name: x, on: command, action: block, match: {command: a}, targets: [\"prod-*\"]}]\n", "rules[0].targets[0]: \"prod-*\" matches no target"},
		// A rule scoped only to targets of a kind it never reads guards nothing: a command
		// rule on a tcp target (a forward runs no commands the bastion sees), an SQL one
		// on anything but PostgreSQL.
		{"command rule on a tcp target", minimal + oneTarget + "rules: [{name: x, on: command, action: block, match: {command: FLUSHALL}, targets: [web1]}]\n", "rules[0].targets: on: command rules judge ssh targets' commands; the rule's targets (web1) are tcp targets, where it never applies"},
		{"sql rule on a tcp target", minimal + oneTarget + "rules: [{name: x, on: sql, action: block, match: {statement: drop_table}, targets: [\"web*\"]}]\n", "rules[0].targets: on: sql rules judge postgres targets' statements; the rule's targets (web1) are tcp targets"},
		{"sql_result rule on a tcp target", minimal + oneTarget + "rules: [{name: x, on: sql_result, action: mask, match: {columns: [card]}, targets: [web1]}]\n", "rules[0].targets: on: sql_result rules"},
		{"rule target empty", minimal + oneTarget + "rules: [{name: x, on: command, action: block, match: {command: a}, targets: [web1, \"\"]}]\n", "rules[0].targets[1]: empty"},
		// The YAML decoder drops a null list item, and an empty list widens: any database, any target to approve.
		{"role database null", minimal + "roles: [{name: r, groups: [g], databases: [~]}]\n", "roles[0].databases[0]: an empty item (line 4)"},
		{"role approve null", minimal + "roles:\n  - name: r\n    groups: [g]\n    approve:\n      -\n", "roles[0].approve[0]: an empty item (line 8)"},
		{"rule target null", minimal + oneTarget + "rules: [{name: x, on: command, action: block, match: {command: a}, targets: [web1, null]}]\n", "rules[0].targets[1]: an empty item"},
		{"bad recording mode", minimal + "recording: {mode: sometimes}\n", "recording.mode"},
		{"bad size", minimal + "recording: {max_bytes: lots}\n", "not a size"},
		{"negative size", minimal + "recording: {max_bytes: -1MiB}\n", "not a size"},
		// A bare number is bytes: 64 meant as 64MiB would keep nothing of a session.
		{"size without its unit", minimal + "recording: {max_bytes: 64}\n", "recording.max_bytes: 64 bytes would keep next to nothing"},
		{"bad log level", minimal + "log: {level: loud}\n", "log.level"},
		{"huge", strings.Repeat("# padding\n", maxConfigBytes/10+1), "larger than"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := Parse([]byte(tc.yaml))
			if err == nil {
				t.Fatalf("accepted:\n%s", tc.yaml)
			}
			if !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("got %q, want it to mention %q", err, tc.want)
			}
			if strings.Contains(err.Error(), "hunter2") {
				t.Fatalf("the error quotes a password: %q", err)
			}
		})
	}
}

// All problems are reported at once, each naming its field.
func TestAllErrorsAtOnce(t *testing.T) {
	_, err := Parse([]byte("oidc: {}\ntargets: [{name: a}]\n"))
	var errs Errors
	if !errors.As(err, &errs) {
		t.Fatalf("got %v, want Errors", err)
	}
	if len(errs) < 4 {
		t.Fatalf("got %d errors, want every problem: %v", len(errs), err)
	}
	for _, e := range errs {
		if e.Field == "" {
			t.Errorf("error without a field: %v", e)
		}
	}
}

func TestLoadResolvesRelativePaths(t *testing.T) {
	dir := t.TempDir()
	p := filepath.Join(dir, "b.yaml")
	os.WriteFile(p, []byte("data_dir: state\noidc: {issuer: \"https://i\", client_id: b}\ntargets: [{name: p, kind: postgres, address: \"h:5432\", tls: {ca_file: ca.pem}}]\n"), 0o600)
	c, err := Load(p)
	if err != nil {
		t.Fatal(err)
	}
	if c.DataDir != filepath.Join(dir, "state") || c.Targets[0].TLS.CAFile != filepath.Join(dir, "ca.pem") {
		t.Errorf("paths not resolved: %q %q", c.DataDir, c.Targets[0].TLS.CAFile)
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{minimal, "", "{{{", minimal + "certs: {user_ttl: 90d}\n", "targets: [{name: a}]", "recording: {max_bytes: 1GiB}",
		minimal + "certs: {user_ttl: forever}\n", "a: [1, {b: c}]\n", "- x\n- y: [z]\n", "&a x: *a\n", minimal + "roles: [{name: r, groups: [g], ports: [ssh]}]\n",
		minimal + "roles: [{name: r, groups: [g], databases: [~], approve: [a, null]}]\n",
		minimal + oneTarget + "rules: [{name: x, on: output, action: mask, match: {detector: credit_card, pattern: p}, targets: [\"web*\", \"\"]}]\n"} {
		f.Add([]byte(s))
	}
	if b, err := os.ReadFile("../../configs/bastion.yaml"); err == nil {
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		c, err := Parse(b)
		if err != nil {
			if !strings.HasPrefix(err.Error(), "config:") {
				t.Fatalf("error %q does not say it is the config's", err)
			}
			return
		}
		// Whatever parses must have validated.
		if err := c.Validate(); err != nil {
			t.Fatalf("Parse accepted a config Validate refuses: %v", err)
		}
	})
}

// oidc.workload's actor_claim and actors: who triggered a CI run, so that
// person does not approve its requests.
func TestWorkloadActor(t *testing.T) {
	const wl = "data_dir: /x\noidc:\n  issuer: \"https://i\"\n  client_id: b\n  workload:\n    - {issuer: \"https://ci\", audience: a, subject: \"repo:*\", name: ci-etl"
	for _, tc := range []struct {
		name, entry, want string // want "" is accepted
	}{
		{"claim", ", actor_claim: actor}", ""},
		{"claim and map", ", actor_claim: actor, actors: {Alice-Acme: alice, bob@acme.com: bob}}", ""},
		{"map without claim", ", actors: {Alice-Acme: alice}}", "oidc.workload[0].actors: needs actor_claim"},
		{"claim that names no person", ", actor_claim: sub}", "oidc.workload[0].actor_claim: \"sub\""},
		{"map to no username", ", actor_claim: actor, actors: {Alice-Acme: \"Alice Smith\"}}", "oidc.workload[0].actors[\"Alice-Acme\"]"},
		{"map to a workload", ", actor_claim: actor, actors: {robot: ci-etl}}", "the name of a workload"},
		{"map with an empty value", ", actor_claim: actor, actors: {\"\": alice}}", "oidc.workload[0].actors: an empty claim value"},
		{"map naming a value twice", ", actor_claim: actor, actors: {alice: alice, ALICE: alice}}", "named twice"},
		{"github without a map", ", actor_claim: actor}", "oidc.workload[0].actors: required"},
		{"github with a map", ", actor_claim: actor, actors: {Alice-Acme: alice}}", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			y := wl + tc.entry + "\n"
			if strings.HasPrefix(tc.name, "github") {
				y = strings.Replace(y, `"https://ci"`, `"https://token.actions.githubusercontent.com"`, 1)
			}
			c, err := Parse([]byte(y))
			switch {
			case tc.want == "" && err != nil:
				t.Fatalf("refused: %v", err)
			case tc.want == "":
				if w := c.OIDC.Workload[0]; w.ActorClaim != "actor" {
					t.Fatalf("actor_claim not read: %+v", w)
				}
			case err == nil:
				t.Fatalf("accepted: %s", tc.entry)
			case !strings.Contains(err.Error(), tc.want):
				t.Fatalf("got %q, want it to mention %q", err, tc.want)
			}
		})
	}
}
