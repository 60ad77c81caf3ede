package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/devidp"
	"github.com/bastionhq/bastion/internal/localsvc"
	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

const hsmWorldConfig = `
listen: {ssh: "127.0.0.1:0", http: "127.0.0.1:0"}
data_dir: {{.DataDir}}
oidc: {issuer: "{{.Issuer}}", client_id: bastion}
ca:
  user:   {key: "{{.User}}"}
  target: {key: "{{.Target}}"}
  host:   {key: "{{.Host}}"}
  db:     {key: "{{.DB}}", cert: "{{.DBCert}}"}
  dbclient: {key: "{{.DBClient}}", cert: "{{.DBClientCert}}"}
  seal:   {key: "{{.Seal}}"}
targets:
  - {name: web1, kind: ssh, address: "{{.SSHD}}", host_key: "{{.HostKey}}"}
  - {name: pg1, kind: postgres, address: "{{.PG}}", tls: {ca_file: "{{.PGCA}}", server_name: localhost}}
roles:
  - {name: dev, groups: [dev], targets: [web1, pg1], logins: [root], db_users: [app], databases: [shop]}
`

// caKeyFiles are the CA private key files the bastion makes in data_dir/ca
// when no key URI is configured.
var caKeyFiles = []string{"user_ca", "target_ca", "host_ca", "db_ca.key", "dbclient_ca.key", "seal_key"}

// hsmInit creates every CA key in the SoftHSM token with the real `bastion
// ca init` and returns the key URIs and what the commands printed.
func hsmInit(t *testing.T, h *localsvc.SoftHSM, dbCert string) (uris, printed map[ca.Purpose]string) {
	t.Helper()
	uris, printed = map[ca.Purpose]string{}, map[ca.Purpose]string{}
	for i, p := range ca.Purposes {
		uris[p] = h.KeyURI("bastion-"+string(p), byte(0x10+i))
		args := []string{"ca", "init", "--" + string(p), "--key", uris[p]}
		switch p {
		case ca.PurposeDB:
			args = append(args, "--cert", dbCert)
		case ca.PurposeDBClient:
			args = append(args, "--cert", filepath.Join(filepath.Dir(dbCert), "dbclient_ca.pem"))
		}
		cmd := exec.Command(os.Args[0], args...)
		cmd.Env = append(os.Environ(), "BASTION_TEST_AS_CLI=1")
		var out, errb bytes.Buffer
		cmd.Stdout, cmd.Stderr = &out, &errb
		if err := cmd.Run(); err != nil {
			t.Fatalf("bastion %s: %v\n%s", strings.Join(args, " "), err, errb.String())
		}
		if !strings.Contains(errb.String(), "(ecdsa-p256)") || !strings.Contains(errb.String(), string(p)+": {key: ") {
			t.Errorf("ca init --%s said:\n%s", p, errb.String())
		}
		printed[p] = strings.TrimSpace(out.String())
	}
	return uris, printed
}

// newHSMWorld is a bastion whose five CA keys are all in a SoftHSM2 token,
// with an sshd target trusting the target CA and a PostgreSQL target
// trusting the database CA (certificate-only).
func newHSMWorld(t *testing.T) (*world, map[ca.Purpose]string) {
	t.Helper()
	testenv.Require(t, "ssh")
	testenv.RequirePostgres(t)
	h := testenv.SoftHSM(t)
	dbCert := filepath.Join(t.TempDir(), "db_ca.pem")
	uris, printed := hsmInit(t, h, dbCert)

	w := &world{t: t, home: t.TempDir(), logs: &testenv.SyncBuffer{}}
	var err error
	w.idp, err = devidp.Start(devidp.Config{
		Users:   []devidp.User{{Subject: "u-alice", Email: "alice@example.com", EmailVerified: boolp(true), Name: "Alice", Groups: []string{"dev"}}},
		Clients: []devidp.Client{{ID: "bastion", RedirectURIs: []string{"http://127.0.0.1/callback"}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.idp.Close() })
	w.sshd = testenv.StartSSHD(t, testenv.SSHDOptions{TrustedUserCAKeys: printed[ca.PurposeTarget]})

	// PostgreSQL trusts the database CA; its key is in the token, so the
	// test opens it there to seed the cluster, as an operator would not.
	seedKeys, err := ca.LoadKeys(t.TempDir(), ca.KeyConfig{DB: uris[ca.PurposeDB], DBCert: dbCert})
	if err != nil {
		t.Fatal(err)
	}
	pg := testenv.StartPostgres(t, testenv.PostgresOptions{
		ClientCA:  &testenv.PostgresCA{Cert: seedKeys.DBCA.Cert, Key: seedKeys.DBCA.Key, PEM: seedKeys.DBCA.PEM},
		Roles:     []string{"app"},
		Databases: []string{"shop"},
		SeedSQLIn: map[string]string{"shop": "CREATE TABLE t (x int); INSERT INTO t VALUES (42); GRANT SELECT ON t TO app;"},
	})
	seedKeys.Close()
	pgCA := filepath.Join(t.TempDir(), "pg-ca.pem")
	os.WriteFile(pgCA, pg.ServerCA.PEM, 0o600)

	dataDir := t.TempDir()
	var buf bytes.Buffer
	template.Must(template.New("").Parse(hsmWorldConfig)).Execute(&buf, map[string]string{
		"DataDir": dataDir, "Issuer": w.idp.Issuer(), "SSHD": w.sshd.Addr, "HostKey": w.sshd.HostKeyLine,
		"PG": pg.Addr, "PGCA": pgCA, "DBCert": dbCert,
		"User": uris[ca.PurposeUser], "Target": uris[ca.PurposeTarget], "Host": uris[ca.PurposeHost],
		"DB": uris[ca.PurposeDB], "Seal": uris[ca.PurposeSeal],
		"DBClient": uris[ca.PurposeDBClient], "DBClientCert": filepath.Join(filepath.Dir(dbCert), "dbclient_ca.pem"),
	})
	w.cfgPath = filepath.Join(t.TempDir(), "bastion.yaml")
	os.WriteFile(w.cfgPath, buf.Bytes(), 0o600)
	cfg, err := config.Load(w.cfgPath)
	if err != nil {
		t.Fatal(err)
	}
	w.app, err = app.New(cfg, app.Options{Logger: slog.New(slog.NewTextHandler(w.logs, nil))})
	if err != nil {
		t.Fatal(err)
	}
	if err := w.app.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		defer cancel()
		w.app.Shutdown(ctx)
		if t.Failed() {
			t.Logf("bastion log:\n%s", w.logs.String())
		}
	})
	return w, printed
}

// TestEveryCAKeyInSoftHSM is issue 20 end to end: every CA key inside a
// SoftHSM2 token, created with `bastion ca init`; `bastion login`, ssh -J
// to a target that trusts the target CA, a PostgreSQL session with a
// database certificate, and sealed recordings that `bastion verify`
// accepts, with no CA private key anywhere under data_dir.
func TestEveryCAKeyInSoftHSM(t *testing.T) {
	w, printed := newHSMWorld(t)
	for _, p := range []string{"user", "target", "host", "db", "dbclient", "seal"} {
		if !strings.Contains(w.logs.String(), fmt.Sprintf("purpose=%s where=\"pkcs11:", p)) {
			t.Errorf("the log does not say the %s key is in the token:\n%s", p, w.logs.String())
		}
	}
	sshCfg := w.loginAlice(t)

	// The login certificate is signed by the user CA in the token.
	out, err := exec.Command("ssh-keygen", "-L", "-f", filepath.Join(w.home, ".config", "bastion", "id_ed25519-cert.pub")).CombinedOutput()
	if err == nil && !strings.Contains(string(out), "Signing CA: ECDSA") {
		t.Errorf("ssh-keygen -L: want an ECDSA signing CA:\n%s", out)
	}

	// ssh -J to the target, which trusts only the target CA in the token;
	// the client trusts the bastion's host certificate from the host CA.
	cmd := exec.Command("ssh", "-F", sshCfg, "root@web1", "echo through-the-bastion")
	got, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(got), "through-the-bastion") {
		t.Fatalf("ssh -J: %v\n%s", err, got)
	}

	// PostgreSQL through ssh -L: the bastion presents a per-session client
	// certificate from the database CA in the token.
	lport := testenv.FreePort(t)
	testenv.StartPTY(t, 80, 24, "ssh", "-F", sshCfg, "-N", "-o", "ExitOnForwardFailure=yes",
		"-L", fmt.Sprintf("127.0.0.1:%d:pg1:5432", lport), "127.0.0.1")
	waitPort(t, lport)
	psql, err := localsvc.LookTool(filepath.Join(testenv.PostgresBinDir, "psql"), "psql")
	if err != nil {
		t.Fatal(err)
	}
	r := testenv.Run(t, 60*time.Second, "", psql, "-X", "-At", "-v", "ON_ERROR_STOP=1",
		fmt.Sprintf("host=127.0.0.1 port=%d user=app dbname=shop sslmode=disable connect_timeout=20", lport), "-c", "SELECT x FROM t")
	if r.Code != 0 || strings.TrimSpace(r.Stdout) != "42" {
		t.Fatalf("psql through the bastion: %s", r)
	}

	// Both sessions are recorded and sealed by the seal key in the token.
	var ids []string
	deadline := time.Now().Add(20 * time.Second)
	for len(ids) < 2 && time.Now().Before(deadline) {
		ids = ids[:0]
		r = w.run(nil, "sessions", "--json")
		for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
			var s recorder.SessionInfo
			if json.Unmarshal([]byte(line), &s) == nil && s.Status == "ended" {
				ids = append(ids, s.ID)
			}
		}
		if len(ids) < 2 {
			time.Sleep(200 * time.Millisecond)
		}
	}
	if len(ids) < 2 {
		t.Fatalf("want the ssh and the PostgreSQL session ended and sealed: %s", r)
	}
	for _, id := range ids {
		if r := w.run(nil, "verify", id); r.Code != 0 || !strings.Contains(r.Stdout, "intact") {
			t.Errorf("verify %s: %s", id, r)
		}
	}

	// ca export reads the public parts through the config's key URIs and
	// prints what ca init printed.
	for _, p := range ca.Purposes {
		r := w.run(nil, "ca", "export", "--"+string(p), "--config", w.cfgPath)
		if r.Code != 0 || strings.TrimSpace(r.Stdout) != printed[p] {
			t.Errorf("ca export --%s: %s\nwant %s", p, r, printed[p])
		}
	}
	if !strings.HasPrefix(printed[ca.PurposeSeal], "bastion-seal+") {
		t.Errorf("seal verifier key %q", printed[ca.PurposeSeal])
	}

	// No CA private key sits under data_dir.
	filepath.WalkDir(w.app.Config.DataDir, func(path string, d os.DirEntry, err error) error {
		for _, name := range caKeyFiles {
			if err == nil && d.Name() == name {
				t.Errorf("a CA key file exists: %s", path)
			}
		}
		return nil
	})
}

// A key the bastion cannot use stops `bastion serve` before it listens or
// opens the store, with a message naming the key and the reason, never
// the PIN.
func TestServeRefusesUnusableHSMKey(t *testing.T) {
	h := testenv.SoftHSM(t)
	good := h.KeyURI("bastion-user", 0x10)
	if _, closeKMS, err := ca.CreateKey(good, ca.PurposeUser, ""); err != nil {
		t.Fatal(err)
	} else {
		closeKMS()
	}
	wrongPIN := filepath.Join(t.TempDir(), "pin")
	os.WriteFile(wrongPIN, []byte("0000-not-it\n"), 0o600)
	tests := []struct{ name, uri, want string }{
		{"wrong PIN", strings.Replace(good, h.PINFile, wrongPIN, 1), "the PIN is wrong"},
		{"wrong pin-value", "pkcs11:token=bastion;object=bastion-user?module-path=" + h.Module + "&pin-value=0000-not-it", "pin-value=REDACTED"},
		{"missing object", strings.Replace(good, "object=bastion-user", "object=nope", 1), "not found"},
		{"no module", strings.Replace(good, h.Module, "/nonexistent/libsofthsm2.so", 1), "module-path: stat /nonexistent/libsofthsm2.so: no such file or directory"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			dataDir := t.TempDir()
			port := testenv.FreePort(t)
			cfgPath := filepath.Join(t.TempDir(), "bastion.yaml")
			os.WriteFile(cfgPath, []byte(fmt.Sprintf("listen: {ssh: \"127.0.0.1:0\", http: \"127.0.0.1:%d\"}\ndata_dir: %s\noidc: {issuer: \"https://idp.example.com\", client_id: bastion}\nca: {user: {key: %q}}\n", port, dataDir, tc.uri)), 0o600)
			cmd := exec.Command(os.Args[0], "serve", "--config", cfgPath)
			cmd.Env = append(os.Environ(), "BASTION_TEST_AS_CLI=1")
			var errb bytes.Buffer
			cmd.Stderr = &errb
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			done := make(chan error, 1)
			go func() { done <- cmd.Wait() }()
			select {
			case err := <-done:
				if err == nil {
					t.Fatal("serve exited 0")
				}
			case <-time.After(30 * time.Second):
				cmd.Process.Kill()
				t.Fatalf("serve is still running: %s", errb.String())
			}
			msg := errb.String()
			if !strings.Contains(msg, "user CA key pkcs11:token=bastion;") || !strings.Contains(msg, tc.want) {
				t.Errorf("serve said %q, want the user CA key and %q", msg, tc.want)
			}
			if strings.Contains(msg, "0000-not-it") || strings.Contains(msg, h.PIN) {
				t.Errorf("serve's message shows a PIN: %q", msg)
			}
			if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
				c.Close()
				t.Error("something listens on the HTTP port")
			}
			for _, f := range append([]string{app.StoreFile}, caKeyFiles...) {
				if _, err := os.Stat(filepath.Join(dataDir, f)); err == nil {
					t.Errorf("%s was created", f)
				}
				if _, err := os.Stat(filepath.Join(dataDir, "ca", f)); err == nil {
					t.Errorf("ca/%s was created", f)
				}
			}
		})
	}
}

// ca init --db with a certificate file already there must fail before it
// makes the key: otherwise the token keeps a key no certificate names, and
// the next ca init with the same URI is refused ("already in the token").
func TestCAInitCertThereMakesNoKey(t *testing.T) {
	h := testenv.SoftHSM(t)
	uri := h.KeyURI("bastion-db", 0x20)
	there := filepath.Join(t.TempDir(), "db_ca.pem")
	os.WriteFile(there, []byte("an older certificate\n"), 0o644)
	run := func(cert string) (string, error) {
		cmd := exec.Command(os.Args[0], "ca", "init", "--db", "--key", uri, "--cert", cert)
		cmd.Env = append(os.Environ(), "BASTION_TEST_AS_CLI=1")
		out, err := cmd.CombinedOutput()
		return string(out), err
	}
	if out, err := run(there); err == nil || !strings.Contains(out, there) {
		t.Fatalf("ca init over %s: %v\n%s", there, err, out)
	}
	if b, _ := os.ReadFile(there); string(b) != "an older certificate\n" {
		t.Errorf("%s was changed", there)
	}
	if out, err := run(filepath.Join(t.TempDir(), "db_ca.pem")); err != nil {
		t.Fatalf("ca init with a free certificate path after the refusal: %v\n%s", err, out)
	}
}
