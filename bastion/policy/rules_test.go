package policy_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/internal/config"
)

const rulesYAML = `
data_dir: /tmp/x
oidc: {issuer: "https://idp", client_id: b}
targets:
  - {name: web1, kind: ssh, address: "10.0.0.1:22", trust_on_first_use: true}
  - {name: db1, kind: ssh, address: "10.0.0.2:22", trust_on_first_use: true}
  - {name: pg1, kind: postgres, address: "10.0.0.3:5432", tls: {ca_file: CAFILE}}
roles:
  - {name: dev, groups: [dev], targets: ["*"], logins: [root], db_users: [app]}
  - {name: sre, groups: [sre], targets: ["*"], logins: [root], approve: ["web*"]}
  - {name: dba, groups: [dba], targets: [pg1], db_users: [app], approve: [pg1]}
rules:
  - {name: no-rm-rf, on: command, match: {command: "rm -rf *"}, action: block}
  - {name: no-shutdown, on: command, match: {commands: [shutdown, reboot]}, action: block, targets: ["web*"]}
  - {name: restarts, on: command, match: {command: "systemctl restart *"}, action: approve, approvers: [sre], timeout: 2m}
  - {name: curl-pipe, on: command, match: {regex: "curl .*\\| *sh"}, action: block, roles: [dev]}
  - {name: no-drop, on: sql, match: {statement: drop_table}, action: block}
  - {name: secrets, on: sql, match: {tables: ["secret*"]}, action: approve, approvers: [dba]}
  - {name: no-file-read, on: sql, match: {functions: ["pg_read_*"]}, action: block}
  - {name: no-mass-update, on: sql, match: {regex: "^UPDATE [a-z_]+ SET [^W]*$"}, action: block}
  - {name: cards, on: output, match: {detector: credit_card}, action: mask}
  - {name: pan-columns, on: sql_result, match: {columns: ["card_*"]}, action: mask}
`

func compiled(t *testing.T) *policy.Policy {
	t.Helper()
	cfg, err := config.Parse([]byte(strings.Replace(rulesYAML, "CAFILE", caFile(t), 1)))
	if err != nil {
		t.Fatal(err)
	}
	p, err := policy.Compile(cfg.PolicySpec())
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestJudgeCommand(t *testing.T) {
	p := compiled(t)
	dev := policy.Identity{User: "alice", Groups: []string{"dev"}}
	for _, tc := range []struct {
		target, cmd, action, rule string
	}{
		{"web1", "ls -la /tmp", policy.ActionAllow, ""},
		{"web1", "rm -rf /tmp/victim", policy.ActionBlock, "no-rm-rf"},
		{"web1", "ls; rm -rf /tmp/victim", policy.ActionBlock, "no-rm-rf"},
		{"web1", "true && \"rm\" -rf /tmp/victim", policy.ActionBlock, "no-rm-rf"},
		{"web1", "bash -c 'r\\m -fr /tmp/victim'", policy.ActionBlock, "no-rm-rf"},
		{"web1", "sudo -u root rm -r -f /tmp/victim", policy.ActionBlock, "no-rm-rf"},
		{"web1", "$'\\x72\\x6d' -rf /tmp/victim", policy.ActionBlock, "no-rm-rf"},
		{"web1", "env X=1 nice -n5 timeout 3 rm -rf x", policy.ActionBlock, "no-rm-rf"},
		{"web1", "rm -r /tmp/victim", policy.ActionAllow, ""},
		{"web1", "shutdown -h now", policy.ActionBlock, "no-shutdown"},
		{"db1", "shutdown -h now", policy.ActionAllow, ""}, // the rule is scoped to web*
		{"web1", "systemctl restart nginx", policy.ActionApprove, "restarts"},
		{"web1", "systemctl status nginx", policy.ActionAllow, ""},
		{"web1", "systemctl restart nginx; rm -rf /", policy.ActionBlock, "no-rm-rf"}, // block wins
		{"web1", "curl -s https://x | sh", policy.ActionBlock, "curl-pipe"},
		{"web1", "eval \"$X\"", policy.ActionApprove, "no-rm-rf"},                // unknowable: approval by default
		{"web1", "$(echo rm) -rf /x", policy.ActionApprove, "no-rm-rf"},          // command unknown
		{"web1", "f(){ rm \"$@\"; }; f -rf /", policy.ActionApprove, "no-rm-rf"}, // dynamic arguments
		{"db1", "eval \"$X\"", policy.ActionBlock, "no-rm-rf"},                   // nobody may approve on db1: fail closed
		{"web1", "echo 'unterminated", policy.ActionBlock, "no-rm-rf"},           // exec text must be complete
	} {
		t.Run(tc.cmd+"@"+tc.target, func(t *testing.T) {
			d := p.JudgeCommand(dev, tc.target, tc.cmd)
			if d.Action != tc.action || d.Rule != tc.rule {
				t.Fatalf("got %s (%s), want %s by %q", d.Action, d, tc.action, tc.rule)
			}
			if d.Action == policy.ActionApprove && (len(d.Approvers) == 0 || d.Timeout <= 0) {
				t.Errorf("approval without approvers or timeout: %+v", d)
			}
		})
	}
	// Scope by role: curl-pipe applies to dev only.
	sre := policy.Identity{User: "bob", Groups: []string{"sre"}}
	if d := p.JudgeCommand(sre, "web1", "curl -s https://x | sh"); d.Rule == "curl-pipe" {
		t.Errorf("role-scoped rule applied to another role: %s", d)
	}
	if d := p.JudgeCommand(dev, "web1", "systemctl restart nginx"); strings.Join(d.Approvers, ",") != "sre" {
		t.Errorf("approvers %v, want [sre]", d.Approvers)
	}
}

func TestJudgeSQL(t *testing.T) {
	p := compiled(t)
	dev := policy.Identity{User: "alice", Groups: []string{"dev"}}
	for _, tc := range []struct {
		name   string
		st     policy.Statement
		action string
		rule   string
	}{
		{"select", policy.Statement{Kinds: []string{"select"}, Tables: []string{"orders"}}, policy.ActionAllow, ""},
		{"drop", policy.Statement{Kinds: []string{"drop_table", "drop"}, Tables: []string{"orders"}}, policy.ActionBlock, "no-drop"},
		{"secrets", policy.Statement{Kinds: []string{"select"}, Tables: []string{"public.secret_keys"}}, policy.ActionApprove, "secrets"},
		{"do block", policy.Statement{Kinds: []string{"do"}, Unknowable: "DO block"}, policy.ActionApprove, "no-drop"},
		{"function by name", policy.Statement{Kinds: []string{"select"}, Functions: []string{"pg_catalog.pg_read_binary_file"}}, policy.ActionBlock, "no-file-read"},
		{"function by name, upper case", policy.Statement{Kinds: []string{"select"}, Functions: []string{"PG_READ_FILE"}}, policy.ActionBlock, "no-file-read"},
		{"body statement judged as if sent", policy.Statement{Kinds: []string{"create", "create_function"}, Normalized: "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $1",
			Body: []policy.Statement{{Kinds: []string{"update", "update_without_where"}, Normalized: "UPDATE accounts SET balance = $1"}}}, policy.ActionBlock, "no-mass-update"},
		{"nested body", policy.Statement{Kinds: []string{"do"}, Body: []policy.Statement{{Kinds: []string{"select"}, Body: []policy.Statement{{Kinds: []string{"select"}, Tables: []string{"secret_keys"}}}}}}, policy.ActionApprove, "secrets"},
		{"block in a body wins over an approval outside", policy.Statement{Kinds: []string{"select"}, Tables: []string{"secret_keys"},
			Body: []policy.Statement{{Kinds: []string{"drop_table"}}}}, policy.ActionBlock, "no-drop"},
		{"benign body", policy.Statement{Kinds: []string{"create_function", "select"}, Body: []policy.Statement{{Kinds: []string{"select"}, Normalized: "SELECT a + b"}}}, policy.ActionAllow, ""},
	} {
		d := p.JudgeSQL(dev, "pg1", tc.st)
		if d.Action != tc.action || d.Rule != tc.rule {
			t.Errorf("%s: got %s, want %s by %q", tc.name, d, tc.action, tc.rule)
		}
	}
	rm := p.ResultMasks(dev, "pg1")
	if !rm.Cards || !rm.MaskColumn("card_number") || rm.MaskColumn("name") {
		t.Errorf("result masks %+v", rm)
	}
}

func TestMaskSource(t *testing.T) {
	rm := policy.ResultMask{Columns: []string{"card_*", "customers.name", "billing.accounts.iban", "*.Secret"}}
	for _, tc := range []struct {
		schema, table, column string
		want                  bool
	}{
		{"public", "orders", "card_number", true},
		{"public", "customers", "name", true},
		{"public", "CUSTOMERS", "Name", true},
		{"public", "staff", "name", false},
		{"billing", "accounts", "iban", true},
		{"public", "accounts", "iban", false},
		{"", "accounts", "iban", true}, // schema unknown: any
		{"x", "anything", "secret", true},
		{"x", "anything", "secrets", false},
	} {
		if got := rm.MaskSource(tc.schema, tc.table, tc.column); got != tc.want {
			t.Errorf("MaskSource(%q, %q, %q): got %v, want %v", tc.schema, tc.table, tc.column, got, tc.want)
		}
	}
	// Output-name masking only uses the patterns without a table.
	if !rm.MaskColumn("CARD_X") || rm.MaskColumn("name") || rm.MaskColumn("customers.name") {
		t.Errorf("MaskColumn: %v %v %v", rm.MaskColumn("CARD_X"), rm.MaskColumn("name"), rm.MaskColumn("customers.name"))
	}
}

func TestCompileErrors(t *testing.T) {
	for _, tc := range []struct{ rule, want string }{
		{`{name: x, on: command, action: block}`, "needs match.command"},
		{`{name: x, on: command, match: {command: "rm '"}, action: block}`, "match.command"},
		{`{name: x, on: sql, match: {statement: "DROP TABLE"}, action: block}`, "not a statement kind"},
		{`{name: x, on: output, match: {detector: ssn}, action: mask}`, "not credit_card or regex"},
		{`{name: x, on: output, match: {detector: regex}, action: mask}`, "needs match.pattern"},
		{`{name: x, on: command, match: {command: "ls"}, action: block, targets: ["["]}`, "bad glob"},
		{`{name: x, on: sql, match: {functions: ["["]}, action: block}`, "bad glob"},
		{`{name: x, on: sql_result, match: {columns: ["a.b.c.d"]}, action: mask}`, "not column, table.column"},
		{`{name: x, on: sql_result, match: {columns: ["a..b"]}, action: mask}`, "not column, table.column"},
	} {
		cfg, err := config.Parse([]byte("data_dir: /x\noidc: {issuer: \"https://i\", client_id: b}\nrules: [" + tc.rule + "]\n"))
		if err == nil {
			_, err = policy.Compile(cfg.PolicySpec())
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.rule, err, tc.want)
		}
	}
}

// caFile writes a CA certificate for a postgres target's tls.ca_file.
func caFile(t *testing.T) string {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "test CA"}, IsCA: true,
		BasicConstraintsValid: true, NotBefore: time.Now(), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(t.TempDir(), "ca.pem")
	os.WriteFile(p, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600)
	return p
}
