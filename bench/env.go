package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/binary"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"text/template"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/internal/config"
	"github.com/bastionhq/bastion/internal/devidp"
	"github.com/bastionhq/bastion/internal/localsvc"
)

// benchUser is the identity the benchmarks log in as.
const benchUser = "alice"

// env is everything the workloads run against: the bastion as its own
// process, OpenSSH sshd as the target (trusting only the bastion's target
// CA) and as the baseline jump host (plain key authentication), the
// development IdP, a bulk TCP source, a light SSH target for idle
// sessions, and OpenSSH client configuration for both paths.
type env struct {
	opt     options
	dir     string // scratch directory, removed at the end
	dataDir string // the bastion's data directory
	keys    *ca.Keys
	auth    *ca.Authority
	idp     *devidp.Provider

	target *localsvc.SSHD // OpenSSH target "web1"
	jump   *localsvc.SSHD // OpenSSH baseline: jump host and -L server

	bulk *bulkSource // TCP target "bulk"
	idle *idleTarget // SSH target "idle"

	bastion    *bastionProc
	bastionBin string
	cfgPath    string // the bastion's config
	sshConfig  string // OpenSSH client config for both paths
	aliceKey   string // user key with a user-CA certificate (bastion path)
	aliceCert  *ssh.Certificate
	aliceSign  ssh.Signer
	home       string // HOME for the bastion CLI (login state)
	obscure    bool   // the ssh client knows ObscureKeystrokeTiming
	replayID   string // the 1 GiB recording for the replay workload
	fixtureMBs float64
	pg         *pgEnv // nil unless the PostgreSQL workload runs
	pgErr      error  // why PostgreSQL could not be set up
	variant    variant
	sshTmpl    []byte // sshConfig before the bastion's port is known

	cleanups []func()
	cleaned  sync.Once
}

// cleanup runs the registered cleanups, newest first, once.
func (e *env) cleanup() {
	e.cleaned.Do(func() {
		for i := len(e.cleanups) - 1; i >= 0; i-- {
			e.cleanups[i]()
		}
		if e.opt.keep {
			logf("kept %s", e.dir)
			return
		}
		os.RemoveAll(e.dir)
	})
}

func (e *env) onCleanup(f func()) { e.cleanups = append(e.cleanups, f) }

// sshdOptions are the benchmark's settings for both OpenSSH servers (the
// target, trusting only the bastion's target CA, and the baseline jump
// host, with plain key authentication): the cipher pinned to
// aes128-gcm@openssh.com, no DNS lookups, and quiet logs.
var sshdOptions = []string{
	"UseDNS no",
	"AllowTcpForwarding yes",
	"Ciphers aes128-gcm@openssh.com",
	"LogLevel ERROR",
	"MaxStartups 200:30:400",
}

// newEnv builds the environment; the bastion is started by startBastion.
func newEnv(opt options) (_ *env, err error) {
	e := &env{opt: opt}
	if e.dir, err = os.MkdirTemp(opt.workDir, "bastion-bench-"); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			e.cleanup()
		}
	}()
	// The PostgreSQL server runs as the postgres user and must reach its
	// directory below ours.
	os.Chmod(e.dir, 0o711)
	e.dataDir = filepath.Join(e.dir, "data")
	e.home = filepath.Join(e.dir, "home")
	os.MkdirAll(e.home, 0o700)
	if e.keys, err = ca.LoadOrCreateKeys(e.dataDir); err != nil {
		return nil, err
	}
	if e.auth, err = ca.New(ca.Config{Keys: e.keys}); err != nil {
		return nil, err
	}
	verified := true
	e.idp, err = devidp.Start(devidp.Config{
		Users:           []devidp.User{{Subject: "u-alice", Email: benchUser + "@example.com", EmailVerified: &verified, Name: "Alice", Groups: []string{"bench"}}},
		Clients:         []devidp.Client{{ID: "bastion", RedirectURIs: []string{"http://127.0.0.1/callback", "http://127.0.0.1/auth/callback"}}},
		IDTokenLifetime: time.Hour,
	})
	if err != nil {
		return nil, err
	}
	e.onCleanup(func() { e.idp.Close() })

	e.bastionBin = opt.bastionBin
	if e.bastionBin == "" {
		e.bastionBin = filepath.Join(e.dir, "bastion")
		logf("building the bastion binary")
		if out, err := exec.Command("go", "build", "-o", e.bastionBin, "./cmd/bastion").CombinedOutput(); err != nil {
			return nil, fmt.Errorf("go build ./cmd/bastion: %v\n%s", err, out)
		}
	}
	if e.bastionBin, err = filepath.Abs(e.bastionBin); err != nil {
		return nil, err
	}

	// Client keys: alice's login certificate for the bastion; a plain key
	// for the baseline jump host; a target-CA certificate for the baseline
	// client's end-to-end login to the target.
	keyDir := filepath.Join(e.dir, "client")
	os.MkdirAll(keyDir, 0o700)
	id := ca.Identity{User: benchUser, Issuer: e.idp.Issuer(), Subject: "u-alice", Groups: []string{"bench"}}
	alice, err := writeKey(keyDir, "alice", func(pub ssh.PublicKey) (*ssh.Certificate, error) {
		c, _, err := e.auth.SignUser(id, pub, 4*time.Hour)
		return c, err
	})
	if err != nil {
		return nil, err
	}
	e.aliceKey, e.aliceCert = alice.path, alice.cert
	if e.aliceSign, err = ssh.NewCertSigner(alice.cert, alice.signer); err != nil {
		return nil, err
	}
	plain, err := writeKey(keyDir, "plain", nil)
	if err != nil {
		return nil, err
	}
	direct, err := writeKey(keyDir, "direct", func(pub ssh.PublicKey) (*ssh.Certificate, error) {
		return signTargetCert(e.keys.TargetCA, pub)
	})
	if err != nil {
		return nil, err
	}

	if e.target, err = localsvc.StartSSHD(localsvc.SSHDConfig{
		Dir: filepath.Join(e.dir, "target"), Name: "target", Options: sshdOptions,
		TrustedUserCAKeys: e.keys.TargetCALine(),
	}); err != nil {
		return nil, err
	}
	e.onCleanup(e.target.Stop)
	plainLine := strings.TrimSpace(string(ssh.MarshalAuthorizedKey(plain.signer.PublicKey())))
	if e.jump, err = localsvc.StartSSHD(localsvc.SSHDConfig{
		Dir: filepath.Join(e.dir, "jump"), Name: "jump", Options: sshdOptions,
		AuthorizedKeys: plainLine,
	}); err != nil {
		return nil, err
	}
	e.onCleanup(e.jump.Stop)
	if e.bulk, err = startBulkSource(); err != nil {
		return nil, err
	}
	e.onCleanup(e.bulk.close)
	if e.idle, err = startIdleTarget(e.keys.TargetCA.PublicKey()); err != nil {
		return nil, err
	}
	e.onCleanup(e.idle.close)

	e.obscure = exec.Command("ssh", "-G", "-o", "ObscureKeystrokeTiming=no", "x").Run() == nil
	if err := e.writeSSHConfig(alice, plain, direct); err != nil {
		return nil, err
	}
	return e, nil
}

// key is a client key written for the OpenSSH client.
type key struct {
	path   string
	signer ssh.Signer
	cert   *ssh.Certificate
}

func writeKey(dir, name string, sign func(ssh.PublicKey) (*ssh.Certificate, error)) (key, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return key{}, err
	}
	block, err := ssh.MarshalPrivateKey(priv, name)
	if err != nil {
		return key{}, err
	}
	k := key{path: filepath.Join(dir, name)}
	if k.signer, err = ssh.NewSignerFromKey(priv); err != nil {
		return key{}, err
	}
	if err := os.WriteFile(k.path, pem.EncodeToMemory(block), 0o600); err != nil {
		return key{}, err
	}
	if sign != nil {
		if k.cert, err = sign(k.signer.PublicKey()); err != nil {
			return key{}, err
		}
		if err := os.WriteFile(k.path+"-cert.pub", ssh.MarshalAuthorizedKey(k.cert), 0o600); err != nil {
			return key{}, err
		}
	}
	return k, nil
}

// signTargetCert certifies pub with the target CA for login root, the way
// the bastion does per session: the baseline client logs in to the same
// target end to end through the OpenSSH jump host.
func signTargetCert(caKey ssh.Signer, pub ssh.PublicKey) (*ssh.Certificate, error) {
	now := time.Now()
	c := &ssh.Certificate{
		Key: pub, CertType: ssh.UserCert, KeyId: "bench-baseline", ValidPrincipals: []string{"root"},
		ValidAfter: uint64(now.Add(-time.Minute).Unix()), ValidBefore: uint64(now.Add(4 * time.Hour).Unix()),
		Permissions: ssh.Permissions{Extensions: map[string]string{"permit-pty": ""}},
	}
	if err := c.SignCert(rand.Reader, caKey); err != nil {
		return nil, err
	}
	return c, nil
}

// writeSSHConfig writes one ssh_config for both paths: "bastion" and
// "web1" (jump through the bastion) with alice's certificate; "jump" and
// "target" (jump through OpenSSH) with the plain key and the target-CA
// certificate. The cipher is pinned for every hop.
func (e *env) writeSSHConfig(alice, plain, direct key) error {
	kh := filepath.Join(e.dir, "client", "known_hosts")
	khLines := []string{
		e.keys.HostCALine("*"),
		fmt.Sprintf("[127.0.0.1]:%d %s", e.jump.Port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(e.jump.HostKey)))),
		fmt.Sprintf("[127.0.0.1]:%d %s", e.target.Port, strings.TrimSpace(string(ssh.MarshalAuthorizedKey(e.target.HostKey)))),
	}
	if err := os.WriteFile(kh, []byte(strings.Join(khLines, "\n")+"\n"), 0o600); err != nil {
		return err
	}
	var obscure string
	if e.obscure {
		obscure = "    ObscureKeystrokeTiming no\n"
	}
	cfg := fmt.Sprintf(`Host bastion
    HostName 127.0.0.1
    Port {{BASTION_PORT}}
    User %[1]s
    IdentityFile %[2]s
    CertificateFile %[2]s-cert.pub
Host web1 idle
    ProxyJump bastion
    IdentityFile %[2]s
    CertificateFile %[2]s-cert.pub
Host jump
    HostName 127.0.0.1
    Port %[3]d
    User root
    IdentityFile %[4]s
Host target
    HostName 127.0.0.1
    Port %[5]d
    User root
    ProxyJump jump
    IdentityFile %[6]s
    CertificateFile %[6]s-cert.pub
Host *
    Ciphers aes128-gcm@openssh.com
    IdentitiesOnly yes
    BatchMode yes
    StrictHostKeyChecking yes
    UserKnownHostsFile %[7]s
    GlobalKnownHostsFile /dev/null
    UpdateHostKeys no
    ControlMaster no
    ControlPath none
    LogLevel ERROR
    ConnectTimeout 20
    ServerAliveInterval 0
%[8]s`, benchUser, alice.path, e.jump.Port, plain.path, e.target.Port, direct.path, kh, obscure)
	e.sshConfig = filepath.Join(e.dir, "client", "ssh_config")
	e.sshTmpl = []byte(cfg)
	return nil
}

const bastionConfig = `listen: {ssh: "{{.SSH}}", http: "{{.HTTP}}"{{if .PGListen}}, postgres: "{{.PGListen}}"{{end}}}
data_dir: {{.DataDir}}
log: {level: warn}
oidc: {issuer: "{{.Issuer}}", client_id: bastion}
{{- if .UserKey}}
ca: {user: {key: "{{.UserKey}}"}}
{{- end}}
certs: {user_ttl: 1h}
sessions: {idle_timeout: 30m, shutdown_grace: 5s}
targets:
  - {name: web1, kind: ssh, address: "{{.Target}}", host_key: "{{.TargetKey}}"}
  - {name: idle, kind: ssh, address: "{{.Idle}}", host_key: "{{.IdleKey}}"}
  - {name: bulk, kind: tcp, address: "{{.Bulk}}"{{if .TCPMetadata}}, recording: metadata{{end}}}
{{- if .PG}}
  - {name: pg1, kind: postgres, address: "{{.PG}}", tls: {ca_file: "{{.PGCA}}"}}
  - {name: pgtcp, kind: tcp, address: "{{.PG}}", recording: metadata}
{{- end}}
roles:
  - {name: bench, groups: [bench], targets: ["*"], logins: [root], db_users: [bench], auditor: true}
rules:
{{- if not .NoMask}}
  - {name: cards, on: output, match: {detector: credit_card}, action: mask}
{{- end}}
  - {name: no-drop, on: sql, match: {statement: drop_table}, action: block}
{{- if .CommandRules}}
  - {name: no-rm-rf, on: command, match: {command: "rm -rf *"}, action: block}
  - {name: no-shutdown, on: command, match: {commands: [shutdown, reboot, halt]}, action: block}
{{- end}}
  - {name: card-columns, on: sql_result, match: {columns: ["card*"]}, action: mask}
{{- if .PG}}
sql_api: {enabled: true, rate: 1000000, burst: 1000000, max_concurrent: 1000}
{{- end}}
recording: {mode: strict, flush_interval: 200ms{{if .MaxBytes}}, max_bytes: {{.MaxBytes}}{{end}}}
{{- if .StoreDSN}}
store: {postgres: {dsn: "{{.StoreDSN}}"}}
{{- end}}
`

// variant changes the bastion's config for the -diagnose rows.
type variant struct {
	name         string
	maxBytes     string   // recording.max_bytes: content beyond it is counted, not stored
	noMask       bool     // no masking rule
	commandRules bool     // command rules in force (the interactive guard judges every line)
	userKey      string   // ca.user.key: the user CA in a PKCS#11 token
	storeDSN     string   // store.postgres.dsn: the store in PostgreSQL
	env          []string // added to the bastion's environment (SOFTHSM2_CONF)
	tcpMetadata  bool     // the tcp target records metadata only
}

// writeBastionConfig writes the bastion's config: the three targets (and
// pg1 once the PostgreSQL workload has a server), a role for the bench
// user that is also an auditor (so it may replay the fixture), a masking
// rule on output and SQL rules, and strict recording.
func (e *env) writeBastionConfig(sshAddr, httpAddr string) error {
	var buf bytes.Buffer
	data := map[string]any{
		"SSH": sshAddr, "HTTP": httpAddr, "DataDir": e.dataDir, "Issuer": e.idp.Issuer(),
		"Target": e.target.Addr, "TargetKey": authorizedLine(e.target.HostKey),
		"Idle": e.idle.addr, "IdleKey": authorizedLine(e.idle.hostKey), "Bulk": e.bulk.addr,
		"MaxBytes": e.variant.maxBytes, "NoMask": e.variant.noMask, "CommandRules": e.variant.commandRules, "TCPMetadata": e.variant.tcpMetadata,
		"UserKey": e.variant.userKey, "StoreDSN": e.variant.storeDSN,
	}
	if e.pg != nil {
		data["PG"], data["PGCA"], data["PGListen"] = e.pg.addr, e.pg.serverCAFile, e.pg.listenAddr
	}
	if err := template.Must(template.New("").Parse(bastionConfig)).Execute(&buf, data); err != nil {
		return err
	}
	e.cfgPath = filepath.Join(e.dir, "bastion.yaml")
	if err := os.WriteFile(e.cfgPath, buf.Bytes(), 0o600); err != nil {
		return err
	}
	if _, err := config.Load(e.cfgPath); err != nil {
		return fmt.Errorf("bench config: %w", err)
	}
	return nil
}

func authorizedLine(k ssh.PublicKey) string {
	return strings.TrimSpace(string(ssh.MarshalAuthorizedKey(k)))
}

// bastionProc is the running bastion: `bastion serve` as its own process,
// or (with -inprocess, for profiling) internal/app in this process.
type bastionProc struct {
	pid      int
	sshAddr  string
	httpAddr string
	log      string
	cmd      *exec.Cmd
	exited   chan struct{}
	app      *app.App
}

// startBastion writes the config and starts the bastion, waiting until
// both listeners answer.
func (e *env) startBastion() error {
	sp, err := localsvc.FreeLoopbackPort()
	if err != nil {
		return err
	}
	hp, err := localsvc.FreeLoopbackPort()
	if err != nil {
		return err
	}
	b := &bastionProc{sshAddr: fmt.Sprintf("127.0.0.1:%d", sp), httpAddr: fmt.Sprintf("127.0.0.1:%d", hp), log: filepath.Join(e.dir, "bastion.log")}
	if err := e.writeBastionConfig(b.sshAddr, b.httpAddr); err != nil {
		return err
	}
	if e.opt.inProcess {
		for _, kv := range e.variant.env {
			k, v, _ := strings.Cut(kv, "=")
			os.Setenv(k, v)
		}
		cfg, err := config.Load(e.cfgPath)
		if err != nil {
			return err
		}
		lf, err := os.Create(b.log)
		if err != nil {
			return err
		}
		b.app, err = app.New(cfg, app.Options{Logger: slog.New(slog.NewTextHandler(lf, &slog.HandlerOptions{Level: slog.LevelWarn}))})
		if err != nil {
			return err
		}
		if err := b.app.Start(); err != nil {
			return err
		}
		b.pid = os.Getpid()
	} else {
		lf, err := os.Create(b.log)
		if err != nil {
			return err
		}
		b.cmd = exec.Command(e.bastionBin, "serve", "--config", e.cfgPath)
		b.cmd.Env = append(os.Environ(), e.variant.env...)
		b.cmd.Stdout, b.cmd.Stderr = lf, lf
		if err := b.cmd.Start(); err != nil {
			lf.Close()
			return fmt.Errorf("start bastion: %w", err)
		}
		b.exited = make(chan struct{})
		go func() { b.cmd.Wait(); lf.Close(); close(b.exited) }()
		b.pid = b.cmd.Process.Pid
		if !localsvc.WaitListening(b.sshAddr, b.exited, 30*time.Second) {
			b.stop()
			logText, _ := os.ReadFile(b.log)
			return fmt.Errorf("the bastion did not start:\n%s", logText)
		}
	}
	if err := waitHTTP("http://"+b.httpAddr+"/healthz", 10*time.Second); err != nil {
		b.stop()
		return err
	}
	e.bastion = b
	// The bastion port is only known now.
	raw := bytes.ReplaceAll(e.sshTmpl, []byte("{{BASTION_PORT}}"), []byte(fmt.Sprint(sp)))
	if err := os.WriteFile(e.sshConfig, raw, 0o600); err != nil {
		return err
	}
	e.onCleanup(b.stop)
	return nil
}

// restartBastion stops the bastion and starts it again with config v.
func (e *env) restartBastion(v variant) error {
	e.bastion.stop()
	e.variant = v
	return e.startBastion()
}

// stop ends the bastion gracefully (SIGTERM), killing it if it lingers.
func (b *bastionProc) stop() {
	if b.app != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		b.app.Shutdown(ctx)
		cancel()
		b.app = nil
		return
	}
	if b.cmd == nil || b.cmd.Process == nil {
		return
	}
	select {
	case <-b.exited:
		return
	default:
	}
	b.cmd.Process.Signal(os.Interrupt)
	select {
	case <-b.exited:
	case <-time.After(10 * time.Second):
		b.cmd.Process.Kill()
		<-b.exited
	}
}

func waitHTTP(url string, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		resp, err := http.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s did not answer within %s: %v", url, timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// sshCmd prepares the real OpenSSH client with the bench config.
func (e *env) sshCmd(args ...string) *exec.Cmd {
	return exec.Command("ssh", append([]string{"-F", e.sshConfig}, args...)...)
}

// bulkSource is a TCP target that sends as many bytes as a client asks
// for: the client writes a big-endian uint64, the source writes that many
// bytes and closes.
type bulkSource struct {
	ln   net.Listener
	addr string
}

func startBulkSource() (*bulkSource, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	b := &bulkSource{ln: ln, addr: ln.Addr().String()}
	// 4 MiB, larger than a recording chunk, so that what the store
	// compresses is what such traffic would give, not a repeated block.
	block := make([]byte, 4<<20)
	rand.Read(block) // incompressible, as the forwarded traffic usually is
	var text bytes.Buffer
	writeLogLines(&text, 4<<20) // log-like text, for the stored-bytes figure
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				var hdr [8]byte
				if _, err := io.ReadFull(c, hdr[:]); err != nil {
					return
				}
				n := int64(binary.BigEndian.Uint64(hdr[:]) &^ textBit)
				src := block
				if binary.BigEndian.Uint64(hdr[:])&textBit != 0 {
					src = text.Bytes()
				}
				for n > 0 {
					w := src
					if int64(len(w)) > n {
						w = w[:n]
					}
					if _, err := c.Write(w); err != nil {
						return
					}
					n -= int64(len(w))
				}
				c.(*net.TCPConn).CloseWrite()
				io.Copy(io.Discard, c)
			}()
		}
	}()
	return b, nil
}

func (b *bulkSource) close() { b.ln.Close() }

// textBit in a bulk request asks for log-like text instead of random bytes.
const textBit = 1 << 63

// pull connects to addr (a forward's local end), asks for n bytes and
// reads them, returning the time from the request to the last byte.
func pull(addr string, n int64) (time.Duration, error) { return pullKind(addr, n, false) }

func pullKind(addr string, n int64, text bool) (time.Duration, error) {
	var c net.Conn
	var err error
	for range 100 {
		if c, err = net.Dial("tcp", addr); err == nil {
			break
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err != nil {
		return 0, err
	}
	defer c.Close()
	var hdr [8]byte
	req := uint64(n)
	if text {
		req |= textBit
	}
	binary.BigEndian.PutUint64(hdr[:], req)
	start := time.Now()
	if _, err := c.Write(hdr[:]); err != nil {
		return 0, err
	}
	got, err := io.CopyBuffer(io.Discard, c, make([]byte, 256<<10))
	d := time.Since(start)
	if err != nil {
		return 0, err
	}
	if got != n {
		return 0, fmt.Errorf("got %d bytes through the forward, want %d", got, n)
	}
	return d, nil
}

// idleTarget is a light SSH server standing in for 1,000 targets' sshd:
// it accepts per-session certificates from the bastion's target CA,
// grants pty and shell requests and then keeps the session open, idle,
// or busy once busyTrigger is typed.
type idleTarget struct {
	ln      net.Listener
	addr    string
	hostKey ssh.PublicKey
}

func startIdleTarget(targetCA ssh.PublicKey) (*idleTarget, error) {
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	checker := &ssh.CertChecker{IsUserAuthority: func(k ssh.PublicKey) bool { return bytes.Equal(k.Marshal(), targetCA.Marshal()) }}
	cfg := &ssh.ServerConfig{PublicKeyCallback: checker.Authenticate}
	cfg.AddHostKey(signer)
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return nil, err
	}
	t := &idleTarget{ln: ln, addr: ln.Addr().String(), hostKey: signer.PublicKey()}
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go serveIdle(c, cfg)
		}
	}()
	return t, nil
}

func serveIdle(c net.Conn, cfg *ssh.ServerConfig) {
	defer c.Close()
	conn, chans, reqs, err := ssh.NewServerConn(c, cfg)
	if err != nil {
		return
	}
	defer conn.Close()
	go ssh.DiscardRequests(reqs)
	for nc := range chans {
		if nc.ChannelType() != "session" {
			nc.Reject(ssh.UnknownChannelType, "sessions only")
			continue
		}
		ch, creqs, err := nc.Accept()
		if err != nil {
			continue
		}
		go func() {
			for r := range creqs {
				if r.WantReply {
					r.Reply(true, nil)
				}
				if r.Type == "shell" {
					ch.Write([]byte("idle$ "))
				}
			}
		}()
		go readInput(ch)
	}
}

// readInput discards what is typed into a session of the light target,
// until busyTrigger is: then the session prints log lines (busyStream).
func readInput(ch ssh.Channel) {
	buf := make([]byte, 512)
	var typed []byte
	for {
		n, err := ch.Read(buf)
		if typed = append(typed, buf[:n]...); bytes.Contains(typed, []byte(busyTrigger+"\n")) {
			go busyStream(ch)
			io.Copy(io.Discard, ch)
			return
		}
		if len(typed) > 1024 {
			typed = typed[:0]
		}
		if err != nil {
			return
		}
	}
}

func (t *idleTarget) close() { t.ln.Close() }

// errPending marks a workload that cannot run yet.
var errPending = errors.New("pending")
