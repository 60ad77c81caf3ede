package demo

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"text/template"
)

// configTemplate is the bastion config the demo writes to Dir/bastion.yaml
// on every start, for people to read. Strings are JSON-quoted (JSON strings
// are YAML strings), so no path or key can break the YAML.
var configTemplate = template.Must(template.New("config").Funcs(template.FuncMap{"q": quote}).Parse(
	`# bastion demo — written by ` + "`bastion demo`" + ` at every start (edits are overwritten).
# A complete bastion config; ` + "`bastion config check --config`" + ` this file, or copy it as a start.
# LOCAL USE ONLY: the identity provider below signs in anyone who can reach it,
# as any demo user, and the demo target runs a shell as the user who started the demo.

listen: {ssh: {{q .SSHAddr}}, http: {{q .HTTPAddr}}{{if .PGAddr}}, postgres: {{q .PGAddr}}{{end}}}
data_dir: {{q .DataDir}}    # CA keys (ca/, 0600) and the recordings (bastion.db); kept between runs

oidc:
  issuer: {{q .Issuer}}    # the development identity provider, in the demo process
  client_id: {{q .ClientID}}

certs: {user_ttl: 8h, max_user_ttl: 8h, target_ttl: 2m}
sessions: {shutdown_grace: 5s}

targets:
  # A small SSH server in the demo process: a real shell on a pty, trusting only
  # the bastion's target CA. Its host key is pinned here.
  - {name: {{q .Target}}, kind: ssh, address: {{q .TargetAddr}}, host_key: {{q .HostKey}}}
{{- if .DBAddr}}
  # PostgreSQL {{.DBVersion}}: certificate authentication only (hostssl … cert), the
  # bastion's database CA as ssl_ca_file; the bastion verifies the server with it too.
  - {name: {{q .DBTarget}}, kind: postgres, address: {{q .DBAddr}}, tls: {ca_file: {{q .DBCAFile}}}}
{{- end}}

roles:
  - {name: developers, groups: [dev], targets: [{{q .Target}}, {{q .DBTarget}}], logins: [{{q .Login}}], db_users: [{{q .DBUser}}], databases: [{{q .DBName}}]}
  - {name: approvers, groups: [sre], approve: ["*"]}
  - {name: auditors, groups: [sre], auditor: true}

rules:
  - {name: no-rm-rf, on: command, match: {command: "rm -rf *"}, action: block}
  - {name: deploys, on: command, match: {command: "deploy.sh *"}, action: approve, approvers: [approvers], timeout: 5m}
  - {name: cards, on: output, match: {detector: credit_card}, action: mask}
  - {name: no-drop, on: sql, match: {statement: drop_table}, action: block}
  # Privilege changes (SET ROLE, set_config('role', ...)), the server's files and programs,
  # other servers and server administration are never needed through the demo. The
  # unknowable option blocks what cannot be judged from the text (EXECUTE of a string built
  # at run time, a body in another language) instead of holding it for approval.
  - {name: no-privilege-change, on: sql, match: {statements: [role_change]}, action: block, unknowable: block}
  - {name: no-server-access, on: sql, match: {statements: [file_read, file_write, server_program, remote_connection, server_admin]}, action: block}

recording: {mode: strict, flush_interval: 200ms}
log: {level: info, format: text}
`))

func quote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// writeConfig renders the config for the running parts.
func (d *Demo) writeConfig(hostKeyLine string) error {
	var buf bytes.Buffer
	err := configTemplate.Execute(&buf, map[string]string{
		"SSHAddr": d.SSHAddr, "HTTPAddr": d.BastionURL[len("http://"):], "DataDir": d.DataDir,
		"Issuer": d.IssuerURL, "ClientID": ClientID,
		"Target": TargetName, "TargetAddr": d.TargetAddr, "HostKey": hostKeyLine, "Login": TargetLogin,
		"DBTarget": DBTarget, "DBAddr": d.DBAddr, "DBVersion": d.DBVersion, "DBUser": DBUser, "DBName": DBName,
		"DBCAFile": filepath.Join(d.DataDir, "ca", "db_ca.pem"), "PGAddr": d.PostgresAddr,
	})
	if err != nil {
		return fmt.Errorf("demo: config: %w", err)
	}
	if err := os.WriteFile(d.ConfigPath, buf.Bytes(), 0o600); err != nil {
		return fmt.Errorf("demo: config: %w", err)
	}
	return nil
}

// homeFiles are the demo target's home: something to look at, card numbers
// to see masked, a script whose runs need approval, and a directory to try
// deleting. They are written at every start, so a demo run that deleted
// them (with rules not in force) is repaired.
var homeFiles = []struct {
	name string
	mode os.FileMode
	body string
}{
	{".bashrc", 0o644, "# bastion demo target: a real shell on this machine, in this directory.\n" +
		"PS1='${USER}@" + TargetName + ":\\w\\$ '\nHISTFILE=\"$HOME/.bash_history\"\n"},
	{".shrc", 0o644, "PS1='${USER}@" + TargetName + "$ '\n"},
	{"README", 0o644, "This is the home directory of the bastion demo's SSH target, " + TargetName + ".\n" +
		"Sessions here run a real shell, as the user who started `bastion demo`; every one\n" +
		"goes through the bastion, which records it and applies the demo's rules:\n\n" +
		"  cat cards.txt          card numbers come back masked (rule cards)\n" +
		"  rm -rf important       blocked (rule no-rm-rf), exit status 126\n" +
		"  ./deploy.sh v2         held until an approver approves (rule deploys)\n"},
	{"cards.txt", 0o644, "Test card numbers (the card networks' published test numbers):\n" +
		"visa        4111 1111 1111 1111\n" +
		"mastercard  5555-5555-5555-4444\n" +
		"amex        378282246310005\n"},
	{"deploy.sh", 0o755, "#!/bin/sh\n# A stand-in for a deployment: harmless, but the demo's rule deploys holds it for approval.\n" +
		"echo \"deploying ${1:-latest} to $DEMO_TARGET … done\"\n"},
	{"important/keep-me.txt", 0o644, "The demo's rule no-rm-rf keeps this file: `rm -rf important` is blocked.\n"},
}

func writeHome(home string) error {
	for _, f := range homeFiles {
		path := filepath.Join(home, f.name)
		if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
			return fmt.Errorf("demo: target home: %w", err)
		}
		if err := os.WriteFile(path, []byte(f.body), f.mode); err != nil {
			return fmt.Errorf("demo: target home: %w", err)
		}
		if err := os.Chmod(path, f.mode); err != nil {
			return fmt.Errorf("demo: target home: %w", err)
		}
	}
	return nil
}
