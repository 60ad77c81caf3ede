package bastion_test

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"text/template"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/testenv"
)

// env is a bastion started through the same wiring as `bastion serve`,
// with a real OpenSSH sshd as target web1 and the OpenSSH client set up
// the way `bastion login` and `bastion ssh-config` set it up.
type env struct {
	t       *testing.T
	app     *app.App
	sshd    *testenv.SSHD
	dataDir string
	dir     string // client files
	echo    string // address of the TCP echo target
	alice   *testenv.UserKey
	cfgPath string // ssh_config
	logs    *testenv.SyncBuffer
	pg      *testenv.Postgres
}

type envOptions struct {
	targets   []string      // extra target lines (YAML flow maps)
	pgTarget  bool          // start PostgreSQL as target pg1
	extraYAML string        // appended to the config
	idle      time.Duration // sessions.idle_timeout
	sshdExtra []string      // extra sshd_config lines for web1
	startup   time.Duration // sessions.startup_timeout
	envAllow  []string      // sessions.env_allow
	// pgVia, when set, maps PostgreSQL's address to the one pg1 names, so a
	// test can watch the bastion's upstream connections.
	pgVia func(addr string) string
	// pgListen serves the direct PostgreSQL listener too (App.PostgresAddr).
	pgListen bool
	// sessions is added to the sessions map (", max_channels: 4").
	sessions string
	// now, when set, is the bastion's clock (app.Options.Now).
	now func() time.Time
}

const configTmpl = `
listen: {ssh: "127.0.0.1:0", http: "127.0.0.1:0"}
data_dir: {{.DataDir}}
oidc: {issuer: "http://127.0.0.1:9", client_id: bastion}
sessions: {idle_timeout: {{.Idle}}, shutdown_grace: 5s, startup_timeout: {{.Startup}}{{.Sessions}}}
targets:
  - {name: web1, kind: ssh, address: "{{.SSHD}}", host_key: "{{.HostKey}}"}
  - {name: echo, kind: tcp, address: "{{.Echo}}"}
  - {name: lo, kind: tcp, address: "127.0.0.1:{{.SSHPort}}"}
{{range .Targets}}  - {{.}}
{{end}}roles:
  - {name: dev, groups: [dev], targets: ["web*", echo, pg1], logins: [root], db_users: [app], databases: [shop]}
  - {name: ops, groups: [ops], targets: ["web*"], logins: [root], shell: false}
  - {name: audit, groups: [sec], targets: [], auditor: true}
  - {name: approvers, groups: [sre], targets: ["web*"], logins: [root], approve: ["*"]}
{{.Extra}}
`

func newEnv(t *testing.T, opt envOptions) *env {
	t.Helper()
	testenv.Require(t, "ssh")
	e := &env{t: t, dataDir: t.TempDir(), dir: t.TempDir(), logs: &testenv.SyncBuffer{}}
	keys, err := ca.LoadOrCreateKeys(e.dataDir)
	if err != nil {
		t.Fatal(err)
	}
	e.sshd = testenv.StartSSHD(t, testenv.SSHDOptions{TrustedUserCAKeys: keys.TargetCALine(), Extra: opt.sshdExtra})
	e.echo = startEcho(t)
	if opt.pgTarget {
		e.pg = testenv.StartPostgres(t, testenv.PostgresOptions{
			ClientCA:  &testenv.PostgresCA{Cert: keys.DBCA.Cert, Key: keys.DBCA.Key, PEM: keys.DBCA.PEM},
			Roles:     []string{"app"},
			Databases: []string{"shop"},
			SeedSQLIn: map[string]string{"shop": pgSeed},
		})
		addr := e.pg.Addr
		if opt.pgVia != nil {
			addr = opt.pgVia(addr)
		}
		opt.targets = append(opt.targets, fmt.Sprintf(`{name: pg1, kind: postgres, address: "%s", tls: {ca_file: "%s", server_name: localhost}}`,
			addr, pgCAFile(t, e.pg.ServerCA.PEM)))
	}
	idle := "30m"
	if opt.idle > 0 {
		idle = opt.idle.String()
	}
	startup := "30s"
	if opt.startup > 0 {
		startup = opt.startup.String()
	}
	var buf bytes.Buffer
	template.Must(template.New("").Parse(configTmpl)).Execute(&buf, map[string]any{
		"DataDir": e.dataDir, "SSHD": e.sshd.Addr, "HostKey": e.sshd.HostKeyLine, "Echo": e.echo,
		"Idle": idle, "Startup": startup, "Extra": opt.extraYAML, "SSHPort": 0, "Targets": opt.targets, "Sessions": opt.sessions,
	})
	cfg, err := config.Parse(buf.Bytes())
	if err != nil {
		t.Fatalf("config: %v\n%s", err, buf.String())
	}
	if opt.envAllow != nil {
		cfg.Sessions.EnvAllow = opt.envAllow
	}
	sshLn, _ := net.Listen("tcp", "127.0.0.1:0")
	httpLn, _ := net.Listen("tcp", "127.0.0.1:0")
	// The "lo" target points at the bastion's own SSH port: a loop the
	// bastion must refuse.
	cfg.Targets[2].Address = sshLn.Addr().String()
	log := slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var pgLn net.Listener
	if opt.pgListen {
		pgLn, _ = net.Listen("tcp", "127.0.0.1:0")
	}
	a, err := app.New(cfg, app.Options{Logger: log, SSHListener: sshLn, HTTPListener: httpLn, PostgresListener: pgLn, Now: opt.now})
	if err != nil {
		t.Fatal(err)
	}
	if err := a.Start(); err != nil {
		t.Fatal(err)
	}
	e.app = a
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		defer cancel()
		a.Shutdown(ctx)
		if t.Failed() {
			t.Logf("bastion log:\n%s", e.logs.String())
		}
	})
	e.alice = e.userKey("alice", ca.Identity{User: "alice", Issuer: "https://idp.test", Subject: "u-alice", Groups: []string{"dev"}}, 0)
	e.cfgPath = e.writeSSHConfig("alice", e.alice)
	return e
}

// userKey issues a login certificate through the real authority.
func (e *env) userKey(name string, id ca.Identity, ttl time.Duration) *testenv.UserKey {
	return testenv.NewUserKey(e.t, e.dir, name, func(pub ssh.PublicKey) (*ssh.Certificate, error) {
		c, _, err := e.app.Authority.SignUser(id, pub, ttl)
		return c, err
	})
}

// writeSSHConfig writes the ssh_config `bastion ssh-config` would print.
func (e *env) writeSSHConfig(user string, k *testenv.UserKey) string {
	kh := filepath.Join(e.dir, "known_hosts")
	os.WriteFile(kh, []byte(e.app.Keys.HostCALine("*")+"\n"), 0o600)
	host, port, _ := net.SplitHostPort(e.app.SSHAddr())
	common := fmt.Sprintf(`    IdentityFile %s
    CertificateFile %s
    IdentitiesOnly yes
    UserKnownHostsFile %s
    GlobalKnownHostsFile /dev/null
    StrictHostKeyChecking yes
    BatchMode yes
    LogLevel INFO
    ConnectTimeout 20
`, k.KeyPath, k.CertPath, kh)
	cfg := fmt.Sprintf("Host bastion\n    HostName %s\n    Port %s\n    User %s\n%s\nHost web1 web2 web9 echo\n    ProxyJump bastion\n%s\nHost %s\n%s", host, port, user, common, common, host, common)
	p := filepath.Join(e.dir, "ssh_config-"+user)
	if err := os.WriteFile(p, []byte(cfg), 0o600); err != nil {
		e.t.Fatal(err)
	}
	return p
}

// ssh runs the real OpenSSH client with the env's ssh_config.
func (e *env) ssh(stdin string, args ...string) testenv.Result {
	e.t.Helper()
	return testenv.Run(e.t, 60*time.Second, stdin, "ssh", append([]string{"-F", e.cfgPath}, args...)...)
}

func (e *env) sshPort() string {
	_, port, _ := net.SplitHostPort(e.app.SSHAddr())
	return port
}

// startEcho starts a TCP target that reads everything until EOF, then
// writes it back followed by "<tail>" and closes: a forward that drops the
// tail of a half-closed stream fails against it.
func startEcho(t *testing.T) string {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { l.Close() })
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				b, _ := io.ReadAll(c)
				c.Write(b)
				c.Write([]byte("<tail>"))
			}()
		}
	}()
	return l.Addr().String()
}

func mustContain(t *testing.T, what, got string, wants ...string) {
	t.Helper()
	for _, w := range wants {
		if !strings.Contains(got, w) {
			t.Errorf("%s: got %q, want it to contain %q", what, got, w)
		}
	}
}

type targetT = config.Target

func targetWith(name, addr string, f func(*targetT)) config.Target {
	t := config.Target{Name: name, Kind: "ssh", Address: addr}
	if f != nil {
		f(&t)
	}
	return t
}
