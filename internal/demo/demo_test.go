package demo

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"

	"github.com/bastionhq/bastion/bastion/pgproxy"
	"github.com/bastionhq/bastion/bastion/policy"
	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/config"
)

// startDemo starts a demo on free loopback ports in dir and stops it when
// the test ends.
func startDemo(t *testing.T, dir string, edit func(*Config)) *Demo {
	t.Helper()
	cfg := Config{Dir: dir, SSHAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", IssuerAddr: "127.0.0.1:0", NoPostgres: true,
		Logger: slog.New(slog.DiscardHandler)}
	if edit != nil {
		edit(&cfg)
	}
	d, err := Start(context.Background(), cfg)
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	t.Cleanup(func() { closeDemo(t, d) })
	return d
}

func closeDemo(t *testing.T, d *Demo) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := d.Close(ctx); err != nil {
		t.Errorf("Close: %v", err)
	}
}

func TestStartConfigInvalid(t *testing.T) {
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no dir", Config{}},
		{"ssh on all interfaces", Config{Dir: t.TempDir(), SSHAddr: "0.0.0.0:2222"}},
		{"http on a LAN address", Config{Dir: t.TempDir(), HTTPAddr: "10.0.0.1:8443"}},
		{"issuer by name", Config{Dir: t.TempDir(), IssuerAddr: "localhost:8444"}},
		{"not host:port", Config{Dir: t.TempDir(), SSHAddr: "2222"}},
		{"bad port", Config{Dir: t.TempDir(), SSHAddr: "127.0.0.1:99999"}},
		{"IPv6 loopback", Config{Dir: t.TempDir(), SSHAddr: "[::1]:2222"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := Start(context.Background(), tc.cfg); !errors.Is(err, ErrInvalidConfig) {
				t.Errorf("got %v, want %v", err, ErrInvalidConfig)
			}
		})
	}
}

// TestStart starts the demo without a database and checks what it left for
// people to read and use, then restarts it on the same directory.
func TestStart(t *testing.T) {
	dir := t.TempDir()
	d := startDemo(t, dir, nil)

	// The generated config is a valid bastion config with the demo's rules.
	cfg, err := config.Load(d.ConfigPath)
	if err != nil {
		t.Fatalf("the generated config does not load: %v", err)
	}
	if _, err := policy.Compile(cfg.PolicySpec()); err != nil {
		t.Fatalf("the generated config does not compile: %v", err)
	}
	var rules []string
	for _, r := range cfg.Rules {
		rules = append(rules, r.Name+":"+r.Action)
	}
	if got, want := strings.Join(rules, " "), "no-rm-rf:block deploys:approve cards:mask no-drop:block no-privilege-change:block no-server-access:block"; got != want {
		t.Errorf("rules: got %q, want %q", got, want)
	}
	checkDemoSQLRules(t, cfg)
	if len(cfg.Targets) != 1 || cfg.Targets[0].Name != TargetName || cfg.Targets[0].Address != d.TargetAddr || cfg.Targets[0].HostKey == "" {
		t.Errorf("targets: got %+v, want only %s at %s with a pinned host key", cfg.Targets, TargetName, d.TargetAddr)
	}
	if cfg.OIDC.Issuer != d.IssuerURL || cfg.DataDir != filepath.Join(dir, "data") {
		t.Errorf("issuer %q data_dir %q", cfg.OIDC.Issuer, cfg.DataDir)
	}
	if !strings.Contains(d.DBSkipped, "--no-postgres") {
		t.Errorf("DBSkipped: got %q, want it to say why", d.DBSkipped)
	}

	// Everything listens on loopback, and the bastion tells clients where
	// the identity provider is.
	for _, a := range []string{d.SSHAddr, strings.TrimPrefix(d.BastionURL, "http://"), strings.TrimPrefix(d.IssuerURL, "http://"), d.TargetAddr} {
		if err := checkLoopback(a); err != nil {
			t.Errorf("%s: %v", a, err)
		}
	}
	var info ca.Info
	getJSON(t, d.BastionURL+ca.PathInfo, &info)
	if info.Issuer != d.IssuerURL || info.ClientID != ClientID || info.SSHAddress != d.SSHAddr {
		t.Errorf("info: got %+v", info)
	}
	var disc struct {
		Issuer              string `json:"issuer"`
		DeviceAuthorization string `json:"device_authorization_endpoint"`
	}
	getJSON(t, d.IssuerURL+"/.well-known/openid-configuration", &disc)
	if disc.Issuer != d.IssuerURL || disc.DeviceAuthorization == "" {
		t.Errorf("discovery: got %+v", disc)
	}
	resp, err := http.Get(d.IssuerURL + "/device")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()

	// The target's home is there to try the rules on.
	for _, f := range []string{"cards.txt", "deploy.sh", "important/keep-me.txt", ".bashrc"} {
		if _, err := os.Stat(filepath.Join(d.Home, f)); err != nil {
			t.Errorf("home: %v", err)
		}
	}
	// A second demo on the same directory is refused while this one runs.
	if _, err := Start(context.Background(), Config{Dir: dir, SSHAddr: "127.0.0.1:0", HTTPAddr: "127.0.0.1:0", IssuerAddr: "127.0.0.1:0", NoPostgres: true}); !errors.Is(err, ErrBusy) {
		t.Errorf("second demo: got %v, want %v", err, ErrBusy)
	}

	// Stopping removes nothing; a restart keeps the keys and the pinned host key.
	hostKey := cfg.Targets[0].HostKey
	closeDemo(t, d)
	for _, p := range []string{d.ConfigPath, filepath.Join(d.DataDir, "bastion.db"), filepath.Join(d.DataDir, "ca", "target_ca"), d.Home} {
		if _, err := os.Stat(p); err != nil {
			t.Errorf("after Close: %v", err)
		}
	}
	os.RemoveAll(filepath.Join(d.Home, "important"))
	d2 := startDemo(t, dir, nil)
	cfg2, err := config.Load(d2.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if cfg2.Targets[0].HostKey != hostKey {
		t.Errorf("host key after restart: got %q, want %q", cfg2.Targets[0].HostKey, hostKey)
	}
	if _, err := os.Stat(filepath.Join(d2.Home, "important", "keep-me.txt")); err != nil {
		t.Errorf("the home was not repaired at restart: %v", err)
	}
}

// TestStartFallsBack takes a free port when a preferred one is busy, and
// says so.
func TestStartFallsBack(t *testing.T) {
	busy, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer busy.Close()
	d := startDemo(t, t.TempDir(), func(c *Config) { c.SSHAddr = busy.Addr().String() })
	if d.SSHAddr == busy.Addr().String() {
		t.Fatalf("got the busy address %s", d.SSHAddr)
	}
	if len(d.Notes) != 1 || !strings.Contains(d.Notes[0], busy.Addr().String()+" is busy; using "+d.SSHAddr) {
		t.Errorf("notes: got %q", d.Notes)
	}
	if g := d.Guide(GuideOptions{}); !strings.Contains(g, "note: bastion SSH: "+busy.Addr().String()+" is busy") {
		t.Errorf("the guide does not mention the fallback:\n%s", g)
	}
}

// TestGuide checks the commands the guide prints, in order, for a demo
// with and without a database.
func TestGuide(t *testing.T) {
	d := &Demo{
		Dir: "/home/u/bastion demo", ConfigPath: "/home/u/bastion demo/bastion.yaml", DataDir: "/home/u/bastion demo/data",
		SSHConfigPath: "/home/u/bastion demo/ssh_config", BobConfigDir: "/home/u/bastion demo/bob",
		BastionURL: "http://127.0.0.1:8443", SSHAddr: "127.0.0.1:2222", IssuerURL: "http://127.0.0.1:8444",
		TargetAddr: "127.0.0.1:40000", DBSkipped: "PostgreSQL not found",
	}
	cmds := func(g string) []string {
		var out []string
		for _, l := range strings.Split(g, "\n") {
			if c, ok := strings.CutPrefix(l, CommandPrefix); ok {
				out = append(out, c)
			}
		}
		return out
	}
	q := "'/home/u/bastion demo/ssh_config'"
	want := []string{
		"export PATH=\"/opt/b/bin:$PATH\"",
		"bastion login --bastion http://127.0.0.1:8443",
		"bastion login --bastion http://127.0.0.1:8443 --device",
		"bastion ssh-config > " + q,
		"ssh -F " + q + " -J 127.0.0.1 demo@web1 'ls; cat cards.txt'",
		"ssh -F " + q + " demo@web1",
		"ssh -F " + q + " demo@web1 'rm -rf important'",
		"ssh -F " + q + " demo@web1 './deploy.sh v2'",
		"XDG_CONFIG_HOME='/home/u/bastion demo/bob' bastion login --bastion http://127.0.0.1:8443 --device",
		"XDG_CONFIG_HOME='/home/u/bastion demo/bob' bastion requests",
		"XDG_CONFIG_HOME='/home/u/bastion demo/bob' bastion approve REQUEST-ID",
		"bastion sessions",
		"bastion replay SESSION-ID",
		"bastion verify SESSION-ID",
	}
	g := d.Guide(GuideOptions{PathDir: "/opt/b/bin"})
	if got := cmds(g); strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("commands:\ngot  %q\nwant %q", got, want)
	}
	if !strings.Contains(g, "not started: PostgreSQL not found") || !strings.Contains(g, "LOCAL USE ONLY") {
		t.Errorf("guide:\n%s", g)
	}

	d.DBAddr, d.DBVersion, d.DBSkipped = "127.0.0.1:40001", "15.8", ""
	g = d.Guide(GuideOptions{CLI: "/opt/b/bastion"})
	got := cmds(g)
	wantDB := []string{
		"ssh -F " + q + " -f -N -o ExitOnForwardFailure=yes -L 5433:shop:40001 127.0.0.1",
		"psql 'host=127.0.0.1 port=5433 user=app dbname=shop' -c 'SELECT * FROM customers'",
		"psql 'host=127.0.0.1 port=5433 user=app dbname=shop' -c 'DROP TABLE customers'",
	}
	if strings.Join(got[6:9], "\n") != strings.Join(wantDB, "\n") {
		t.Errorf("database commands:\ngot  %q\nwant %q", got[6:9], wantDB)
	}
	if got[0] != "/opt/b/bastion login --bastion http://127.0.0.1:8443" {
		t.Errorf("CLI: got %q", got[0])
	}

	// A second demo (its port fell back) names its bastion, since the
	// default is the bastion logged in to last.
	d.BastionURL = "http://127.0.0.1:38443"
	for _, c := range cmds(d.Guide(GuideOptions{})) {
		if strings.HasPrefix(c, "bastion ssh-config") || strings.HasPrefix(c, "bastion sessions") || strings.HasPrefix(c, "bastion replay") {
			if !strings.Contains(c, " --bastion http://127.0.0.1:38443") {
				t.Errorf("a demo on another port: %q does not name its bastion", c)
			}
		}
	}
}

// TestStartPostgres starts the demo with its database and reaches it the
// way the bastion will: TLS verified against the database CA, a client
// certificate for the demo user, no password.
func TestStartPostgres(t *testing.T) {
	if _, err := findPostgres(""); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (required in CI)", err)
		}
		t.Skip(err)
	}
	d := startDemo(t, t.TempDir(), func(c *Config) { c.NoPostgres = false })
	if d.DBAddr == "" {
		t.Fatalf("no database: %s", d.DBSkipped)
	}
	cfg, err := config.Load(d.ConfigPath)
	if err != nil {
		t.Fatal(err)
	}
	if len(cfg.Targets) != 2 || cfg.Targets[1].Name != DBTarget || cfg.Targets[1].Kind != "postgres" || cfg.Targets[1].Address != d.DBAddr {
		t.Fatalf("targets: %+v", cfg.Targets)
	}
	keys := d.App.Keys
	pool := x509.NewCertPool()
	pool.AddCert(keys.DBCA.Cert)
	certPEM, keyPEM, err := issueX509(d.App.Authority, "client", DBUser)
	if err != nil {
		t.Fatal(err)
	}
	pair, err := tls.X509KeyPair(certPEM, keyPEM)
	if err != nil {
		t.Fatal(err)
	}
	connect := func(certs []tls.Certificate) (*pgx.Conn, error) {
		host, port, _ := net.SplitHostPort(d.DBAddr)
		pc, err := pgx.ParseConfig("host=" + host + " port=" + port + " user=" + DBUser + " dbname=" + DBName + " sslmode=disable")
		if err != nil {
			t.Fatal(err)
		}
		pc.TLSConfig = &tls.Config{RootCAs: pool, ServerName: "127.0.0.1", Certificates: certs, MinVersion: tls.VersionTLS12}
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		return pgx.ConnectConfig(ctx, pc)
	}
	if c, err := connect(nil); err == nil {
		c.Close(context.Background())
		t.Fatal("connected without a client certificate")
	}
	c, err := connect([]tls.Certificate{pair})
	if err != nil {
		t.Fatalf("connect with a database CA certificate: %v", err)
	}
	defer c.Close(context.Background())
	var n int
	var card string
	if err := c.QueryRow(context.Background(), "SELECT count(*), min(card_number) FROM customers").Scan(&n, &card); err != nil {
		t.Fatal(err)
	}
	if n != 4 || card != "378282246310005" {
		t.Errorf("got %d rows, min card %q; want 4 and %q", n, card, "378282246310005")
	}
}

func getJSON(t *testing.T, url string, v any) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: HTTP %d", url, resp.StatusCode)
	}
	if err := json.NewDecoder(resp.Body).Decode(v); err != nil {
		t.Fatalf("GET %s: %v", url, err)
	}
}

// TestServeCannotReachTheDevIDP: what `bastion serve` is built from (the
// app wiring and the config) does not link the development identity
// provider or the demo, so no config can turn them on.
func TestServeCannotReachTheDevIDP(t *testing.T) {
	goBin, err := exec.LookPath("go")
	if err != nil {
		t.Skip("go not on PATH")
	}
	out, err := exec.Command(goBin, "list", "-deps", "github.com/bastionhq/bastion/internal/app", "github.com/bastionhq/bastion/internal/config").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	for _, pkg := range strings.Fields(string(out)) {
		if pkg == "github.com/bastionhq/bastion/internal/devidp" || pkg == "github.com/bastionhq/bastion/internal/demo" {
			t.Errorf("internal/app or internal/config depends on %s", pkg)
		}
	}
}

// checkDemoSQLRules: the demo's SQL rules block privilege changes, the server's files
// and programs and dynamic SQL, and let ordinary work through.
func checkDemoSQLRules(t *testing.T, cfg *config.Config) {
	t.Helper()
	p, err := policy.Compile(cfg.PolicySpec())
	if err != nil {
		t.Fatal(err)
	}
	id := policy.Identity{User: "alice", Groups: []string{"dev"}}
	for _, tc := range []struct{ sql, action string }{
		{"SELECT * FROM customers WHERE id = 1", policy.ActionAllow},
		{"UPDATE customers SET name = 'x' WHERE id = 1", policy.ActionAllow},
		{"CREATE FUNCTION add(a int, b int) RETURNS int LANGUAGE sql AS 'SELECT a + b'", policy.ActionAllow},
		{"DROP TABLE customers", policy.ActionBlock},
		{"SET ROLE postgres", policy.ActionBlock},
		{"SELECT set_config('role', 'postgres', false)", policy.ActionBlock},
		{"SELECT set_config(current_user, 'postgres', false)", policy.ActionBlock},
		{"SELECT pg_read_file('/etc/passwd')", policy.ActionBlock},
		{"SELECT lo_export(1, '/tmp/x')", policy.ActionBlock},
		{"COPY customers TO PROGRAM 'sh'", policy.ActionBlock},
		{"SELECT dblink_exec('dbname=shop', 'DROP TABLE customers')", policy.ActionBlock},
		{"SELECT pg_terminate_backend(1)", policy.ActionBlock},
		{"ALTER SYSTEM SET work_mem = '1GB'", policy.ActionBlock},
		{"CREATE FUNCTION f() RETURNS void LANGUAGE plpgsql AS $$BEGIN DROP TABLE customers; END$$", policy.ActionBlock},
		{"DO $$BEGIN EXECUTE 'DROP TABLE ' || 'customers'; END$$", policy.ActionBlock},
	} {
		sts, err := pgproxy.Classify(tc.sql)
		if err != nil || len(sts) != 1 {
			t.Fatalf("%s: %v", tc.sql, err)
		}
		st := sts[0]
		ps := policy.Statement{Kinds: st.Kinds, Tables: st.Tables, Functions: st.Functions, Normalized: st.Normalized, Unknowable: st.Unknowable}
		if d := p.JudgeSQL(id, DBTarget, ps); d.Action != tc.action {
			t.Errorf("%s: got %s, want %s", tc.sql, d, tc.action)
		}
	}
}
