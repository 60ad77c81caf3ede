package policy

import (
	"strings"
	"testing"

	"github.com/bastionhq/bastion/internal/config"
)

const rulesYAML = `
data_dir: /tmp/x
oidc: {issuer: "https://idp", client_id: b}
targets:
  - {name: web1, kind: ssh, address: "10.0.0.1:22", trust_on_first_use: true}
  - {name: db1, kind: ssh, address: "10.0.0.2:22", trust_on_first_use: true}
  - {name: pg1, kind: postgres, address: "10.0.0.3:5432", tls: {ca_file: ca.pem}}
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

func compiled(t *testing.T) *Policy {
	t.Helper()
	cfg, err := config.Parse([]byte(rulesYAML))
	if err != nil {
		t.Fatal(err)
	}
	p, err := Compile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func TestJudgeCommand(t *testing.T) {
	p := compiled(t)
	dev := Identity{User: "alice", Groups: []string{"dev"}}
	for _, tc := range []struct {
		target, cmd, action, rule string
	}{
		{"web1", "ls -la /tmp", ActionAllow, ""},
		{"web1", "rm -rf /tmp/victim", ActionBlock, "no-rm-rf"},
		{"web1", "ls; rm -rf /tmp/victim", ActionBlock, "no-rm-rf"},
		{"web1", "true && \"rm\" -rf /tmp/victim", ActionBlock, "no-rm-rf"},
		{"web1", "bash -c 'r\\m -fr /tmp/victim'", ActionBlock, "no-rm-rf"},
		{"web1", "sudo -u root rm -r -f /tmp/victim", ActionBlock, "no-rm-rf"},
		{"web1", "$'\\x72\\x6d' -rf /tmp/victim", ActionBlock, "no-rm-rf"},
		{"web1", "env X=1 nice -n5 timeout 3 rm -rf x", ActionBlock, "no-rm-rf"},
		{"web1", "rm -r /tmp/victim", ActionAllow, ""},
		{"web1", "shutdown -h now", ActionBlock, "no-shutdown"},
		{"db1", "shutdown -h now", ActionAllow, ""}, // the rule is scoped to web*
		{"web1", "systemctl restart nginx", ActionApprove, "restarts"},
		{"web1", "systemctl status nginx", ActionAllow, ""},
		{"web1", "systemctl restart nginx; rm -rf /", ActionBlock, "no-rm-rf"}, // block wins
		{"web1", "curl -s https://x | sh", ActionBlock, "curl-pipe"},
		{"web1", "eval \"$X\"", ActionApprove, "no-rm-rf"},                // unknowable: approval by default
		{"web1", "$(echo rm) -rf /x", ActionApprove, "no-rm-rf"},          // command unknown
		{"web1", "f(){ rm \"$@\"; }; f -rf /", ActionApprove, "no-rm-rf"}, // dynamic arguments
		{"db1", "eval \"$X\"", ActionBlock, "no-rm-rf"},                   // nobody may approve on db1: fail closed
		{"web1", "echo 'unterminated", ActionBlock, "no-rm-rf"},           // exec text must be complete
	} {
		t.Run(tc.cmd+"@"+tc.target, func(t *testing.T) {
			d := p.JudgeCommand(dev, tc.target, tc.cmd)
			if d.Action != tc.action || d.Rule != tc.rule {
				t.Fatalf("got %s (%s), want %s by %q", d.Action, d, tc.action, tc.rule)
			}
			if d.Action == ActionApprove && (len(d.Approvers) == 0 || d.Timeout <= 0) {
				t.Errorf("approval without approvers or timeout: %+v", d)
			}
		})
	}
	// Scope by role: curl-pipe applies to dev only.
	sre := Identity{User: "bob", Groups: []string{"sre"}}
	if d := p.JudgeCommand(sre, "web1", "curl -s https://x | sh"); d.Rule == "curl-pipe" {
		t.Errorf("role-scoped rule applied to another role: %s", d)
	}
	if d := p.JudgeCommand(dev, "web1", "systemctl restart nginx"); strings.Join(d.Approvers, ",") != "sre" {
		t.Errorf("approvers %v, want [sre]", d.Approvers)
	}
}

func TestJudgeSQL(t *testing.T) {
	p := compiled(t)
	dev := Identity{User: "alice", Groups: []string{"dev"}}
	for _, tc := range []struct {
		name   string
		st     Statement
		action string
		rule   string
	}{
		{"select", Statement{Kinds: []string{"select"}, Tables: []string{"orders"}}, ActionAllow, ""},
		{"drop", Statement{Kinds: []string{"drop_table", "drop"}, Tables: []string{"orders"}}, ActionBlock, "no-drop"},
		{"secrets", Statement{Kinds: []string{"select"}, Tables: []string{"public.secret_keys"}}, ActionApprove, "secrets"},
		{"do block", Statement{Kinds: []string{"do"}, Unknowable: "DO block"}, ActionApprove, "no-drop"},
		{"function by name", Statement{Kinds: []string{"select"}, Functions: []string{"pg_catalog.pg_read_binary_file"}}, ActionBlock, "no-file-read"},
		{"function by name, upper case", Statement{Kinds: []string{"select"}, Functions: []string{"PG_READ_FILE"}}, ActionBlock, "no-file-read"},
		{"body statement judged as if sent", Statement{Kinds: []string{"create", "create_function"}, Normalized: "CREATE FUNCTION f() RETURNS void LANGUAGE sql AS $1",
			Body: []Statement{{Kinds: []string{"update", "update_without_where"}, Normalized: "UPDATE accounts SET balance = $1"}}}, ActionBlock, "no-mass-update"},
		{"nested body", Statement{Kinds: []string{"do"}, Body: []Statement{{Kinds: []string{"select"}, Body: []Statement{{Kinds: []string{"select"}, Tables: []string{"secret_keys"}}}}}}, ActionApprove, "secrets"},
		{"block in a body wins over an approval outside", Statement{Kinds: []string{"select"}, Tables: []string{"secret_keys"},
			Body: []Statement{{Kinds: []string{"drop_table"}}}}, ActionBlock, "no-drop"},
		{"benign body", Statement{Kinds: []string{"create_function", "select"}, Body: []Statement{{Kinds: []string{"select"}, Normalized: "SELECT a + b"}}}, ActionAllow, ""},
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
	rm := ResultMask{Columns: []string{"card_*", "customers.name", "billing.accounts.iban", "*.Secret"}}
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
			_, err = Compile(cfg)
		}
		if err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%s: got %v, want %q", tc.rule, err, tc.want)
		}
	}
}
