package localsvc

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

func TestTailFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "log")
	os.WriteFile(p, []byte("first line\nsecond line\n\n"), 0o600)
	for _, tc := range []struct {
		n    int
		want string
	}{{100, "first line\nsecond line"}, {4, "line"}} {
		if got := TailFile(p, tc.n); got != tc.want {
			t.Errorf("TailFile(%d): got %q, want %q", tc.n, got, tc.want)
		}
	}
	if got := TailFile(filepath.Join(t.TempDir(), "missing"), 10); got != "" {
		t.Errorf("missing file: got %q", got)
	}
}

func TestReachable(t *testing.T) {
	base := t.TempDir()
	open := filepath.Join(base, "open")
	closed := filepath.Join(base, "closed", "inner")
	os.MkdirAll(open, 0o755)
	os.MkdirAll(closed, 0o755)
	os.Chmod(filepath.Dir(closed), 0o700)
	os.Chmod(base, 0o755)
	if !Reachable(open) && Reachable(filepath.Dir(base)) {
		t.Errorf("%s: want reachable", open)
	}
	if Reachable(closed) {
		t.Errorf("%s: behind a 0700 directory, want unreachable", closed)
	}
}

func TestWaitListening(t *testing.T) {
	port, err := FreeLoopbackPort()
	if err != nil {
		t.Fatal(err)
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	exited := make(chan struct{})
	close(exited)
	if WaitListening(addr, exited, time.Second) {
		t.Error("nothing listens, and the server exited: want false")
	}
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	if !WaitListening(l.Addr().String(), make(chan struct{}), 5*time.Second) {
		t.Error("a listener is there: want true")
	}
}

func TestStartPostgresChecksConfig(t *testing.T) {
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServer(nil, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	for name, cfg := range map[string]PostgresConfig{
		"no server certificate": {ClientCA: ca.PEM, SuperuserTLS: &tls.Config{}},
		"no client CA":          {ServerCert: srv, SuperuserTLS: &tls.Config{}},
		"no superuser TLS":      {ServerCert: srv, ClientCA: ca.PEM},
	} {
		if p, err := StartPostgres(context.Background(), cfg); err == nil {
			p.Stop()
			t.Errorf("%s: got a cluster, want an error", name)
		}
	}
}

func TestAppendSettings(t *testing.T) {
	p := filepath.Join(t.TempDir(), "postgresql.conf")
	os.WriteFile(p, []byte("# initdb\n"), 0o600)
	if err := appendSettings(p, "label", map[string]string{"max_connections": "40", "zz_extra": "'x'"}); err != nil {
		t.Fatal(err)
	}
	b, _ := os.ReadFile(p)
	got := string(b)
	for _, want := range []string{"# initdb\n\n# label\n", "max_connections = 40\n", "ssl = on\n", "zz_extra = 'x'\n"} {
		if !strings.Contains(got, want) {
			t.Errorf("got %q, want it to contain %q", got, want)
		}
	}
	if strings.Contains(got, "max_connections = 60") {
		t.Errorf("the default max_connections survived the override: %q", got)
	}
	if i, j := strings.Index(got, "fsync"), strings.Index(got, "ssl ="); i > j {
		t.Errorf("settings not in name order: %q", got)
	}
}

func TestCAIssue(t *testing.T) {
	ca, err := NewCA("test")
	if err != nil {
		t.Fatal(err)
	}
	srv, err := ca.IssueServer([]string{"localhost"}, []net.IP{net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := srv.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), DNSName: "127.0.0.1"}); err != nil {
		t.Errorf("server certificate: %v", err)
	}
	cli, err := ca.IssueClient("app", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cli.Leaf.Verify(x509.VerifyOptions{Roots: ca.Pool(), KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil || cli.Leaf.Subject.CommonName != "app" {
		t.Errorf("client certificate: CN %q, %v", cli.Leaf.Subject.CommonName, err)
	}
	noKey := &CA{Cert: ca.Cert, PEM: ca.PEM}
	if _, err := noKey.IssueClient("app", time.Hour); err == nil {
		t.Error("a CA without its key issued a certificate")
	}

	dir := t.TempDir()
	certFile, keyFile, rootFile, err := WriteLibpqFiles(dir, "a/b", cli, ca.PEM)
	if err != nil {
		t.Fatal(err)
	}
	if filepath.Base(certFile) != "a_b.crt" || filepath.Base(keyFile) != "a_b.key" || filepath.Base(rootFile) != "server-ca.crt" {
		t.Errorf("files: %s %s %s", certFile, keyFile, rootFile)
	}
	if _, err := tls.LoadX509KeyPair(certFile, keyFile); err != nil {
		t.Errorf("libpq files do not load: %v", err)
	}
}

func TestStartSSHD(t *testing.T) {
	if _, err := LookTool("/usr/sbin/sshd", "sshd"); err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("%v (required in CI)", err)
		}
		t.Skip(err)
	}
	if _, err := StartSSHD(SSHDConfig{Dir: t.TempDir()}); err == nil {
		t.Fatal("started without a way in, want an error")
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	s, err := StartSSHD(SSHDConfig{
		Dir:            t.TempDir(),
		AuthorizedKeys: string(ssh.MarshalAuthorizedKey(signer.PublicKey())),
		Subsystems:     map[string]string{"sftp": SFTPServer()},
		Options:        []string{"LogLevel VERBOSE"},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Stop()
	user := "root"
	if u := os.Getenv("USER"); u != "" && os.Geteuid() != 0 {
		user = u
	}
	c, err := ssh.Dial("tcp", s.Addr, &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: ssh.FixedHostKey(s.HostKey),
		Timeout:         10 * time.Second,
	})
	if err != nil {
		t.Fatalf("dial %s: %v\n%s", s.Addr, err, s.Log())
	}
	c.Close()
	s.Stop()
	s.Stop() // a second Stop does nothing
	if conn, err := net.DialTimeout("tcp", s.Addr, time.Second); err == nil {
		conn.Close()
		t.Errorf("%s still accepts after Stop", s.Addr)
	}
}
