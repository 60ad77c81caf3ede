package demo

import (
	"bytes"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"time"

	gliderssh "github.com/gliderlabs/ssh"
	gossh "golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/internal/safetext"
)

// TargetConfig configures a demo SSH target. It is checked once, in NewTarget.
type TargetConfig struct {
	// Name is the target's name as the bastion's config knows it; it shows in the
	// shell prompt. Required.
	Name string
	// TrustedCA is the only key whose user certificates are accepted: the
	// bastion's target CA. Keys are compared exactly. Required.
	TrustedCA gossh.PublicKey
	// HostKey is the target's host key, which the bastion's config pins. Required.
	HostKey gossh.Signer
	// Home is the working directory and $HOME of every session. Required.
	Home string
	// Shell runs shells (`-i` on a pty) and commands (`-c`). Empty means bash
	// from PATH, else /bin/sh.
	Shell string
	// Path is $PATH for sessions; empty means this process's PATH, else a
	// standard one.
	Path string
	// SFTPServer is OpenSSH's sftp-server, run for the sftp subsystem (scp
	// and sftp use it). Empty means the first found in the usual places
	// (FindSFTPServer); when there is none, the sftp subsystem is refused.
	SFTPServer string
	// DrainTimeout bounds how long output is still read after the process
	// exits (a background child may hold the terminal open); zero means 2s.
	DrainTimeout time.Duration
	// Now is the clock for certificate validity; nil means time.Now.
	Now func() time.Time
	// Logger receives one line per refused login and per session; nil discards.
	Logger *slog.Logger
}

// Target is a small SSH server that runs a real shell for sessions, and
// accepts only user certificates from one CA.
type Target struct {
	cfg      TargetConfig
	srv      *gliderssh.Server
	log      *slog.Logger
	mu       sync.Mutex
	closing  bool
	sessions sync.WaitGroup // session channels being served; Add under mu, before closing
}

// ctxKeyPermitPty carries, per connection, whether the accepted certificate
// allows a terminal (the permit-pty extension).
type ctxKey string

const ctxKeyPermitPty ctxKey = "demo-permit-pty"

// NewTarget checks cfg and builds a Target. Nothing listens until Serve.
func NewTarget(cfg TargetConfig) (*Target, error) {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("demo: target: %w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case cfg.Name == "":
		return nil, bad("name is required")
	case cfg.TrustedCA == nil:
		return nil, bad("a trusted CA is required")
	case cfg.HostKey == nil:
		return nil, bad("a host key is required")
	case cfg.Home == "":
		return nil, bad("home is required")
	case cfg.DrainTimeout < 0:
		return nil, bad("negative drain timeout %v", cfg.DrainTimeout)
	}
	if _, isCert := cfg.TrustedCA.(*gossh.Certificate); isCert {
		return nil, bad("the trusted CA must be a plain key, not a certificate")
	}
	if fi, err := os.Stat(cfg.Home); err != nil || !fi.IsDir() {
		return nil, bad("home %q is not a directory", cfg.Home)
	}
	if cfg.Shell == "" {
		cfg.Shell = findShell()
	}
	if cfg.SFTPServer == "" {
		cfg.SFTPServer = FindSFTPServer()
	}
	if cfg.Path == "" {
		cfg.Path = os.Getenv("PATH")
	}
	if cfg.Path == "" {
		cfg.Path = "/usr/local/bin:/usr/bin:/bin"
	}
	if cfg.DrainTimeout == 0 {
		cfg.DrainTimeout = 2 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	log := cfg.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	t := &Target{cfg: cfg, log: log.With("component", "demo-target", "target", cfg.Name)}
	t.srv = &gliderssh.Server{
		Version:     "bastion-demo-target",
		HostSigners: []gliderssh.Signer{cfg.HostKey},
		PublicKeyHandler: func(ctx gliderssh.Context, key gliderssh.PublicKey) bool {
			cert, err := t.checkCert(key, ctx.User())
			if err != nil {
				t.log.Info("login refused", "login", safetext.Printable(ctx.User()), "remote", ctx.RemoteAddr().String(), "reason", err.Error())
				return false
			}
			_, pty := cert.Permissions.Extensions["permit-pty"]
			ctx.SetValue(ctxKeyPermitPty, pty)
			return true
		},
		// Only sessions (shell, exec, the sftp subsystem): no forwarding of
		// any kind, no other subsystems, no global requests.
		ChannelHandlers: map[string]gliderssh.ChannelHandler{"session": t.handleSession},
	}
	return t, nil
}

// Serve accepts connections on ln until Close. It returns nil after Close.
func (t *Target) Serve(ln net.Listener) error {
	err := t.srv.Serve(ln)
	if errors.Is(err, gliderssh.ErrServerClosed) {
		return nil
	}
	return err
}

// Close stops listening, closes every connection, and returns once the
// sessions' processes have been hung up and have exited.
func (t *Target) Close() error {
	t.mu.Lock()
	t.closing = true
	t.mu.Unlock()
	err := t.srv.Close()
	t.sessions.Wait()
	return err
}

// HostKeyLine is the host key in authorized_keys form, for the bastion's
// `host_key` pin.
func (t *Target) HostKeyLine() string {
	return strings.TrimSpace(string(gossh.MarshalAuthorizedKey(t.cfg.HostKey.PublicKey())))
}

// checkCert decides whether key may log in as login: it must be a user
// certificate signed by exactly the trusted CA, valid now, for a principal
// equal to login, with no critical option (the target supports none, so a
// restriction it cannot enforce is refused rather than ignored).
func (t *Target) checkCert(key gossh.PublicKey, login string) (*gossh.Certificate, error) {
	cert, ok := key.(*gossh.Certificate)
	if !ok {
		return nil, fmt.Errorf("%w: a plain %s key; only certificates from the bastion's target CA are accepted", ErrRefused, key.Type())
	}
	if cert.CertType != gossh.UserCert {
		return nil, fmt.Errorf("%w: a host certificate offered as a user certificate", ErrRefused)
	}
	if cert.SignatureKey == nil || !bytes.Equal(cert.SignatureKey.Marshal(), t.cfg.TrustedCA.Marshal()) {
		return nil, fmt.Errorf("%w: certificate %q is not signed by the bastion's target CA", ErrRefused, safetext.Printable(cert.KeyId))
	}
	if !slices.Contains(cert.ValidPrincipals, login) {
		return nil, fmt.Errorf("%w: certificate %q is not valid for login %q", ErrRefused, safetext.Printable(cert.KeyId), safetext.Printable(login))
	}
	checker := gossh.CertChecker{Clock: t.cfg.Now}
	// CheckCert checks the validity window, the critical options (none are
	// supported) and the CA's signature over the certificate.
	if err := checker.CheckCert(login, cert); err != nil {
		return nil, fmt.Errorf("%w: certificate %q: %v", ErrRefused, safetext.Printable(cert.KeyId), err)
	}
	return cert, nil
}

// findShell is bash from PATH, else /bin/sh.
func findShell() string {
	if p, err := exec.LookPath("bash"); err == nil {
		return p
	}
	return "/bin/sh"
}

// sftpServerPaths are where distributions install OpenSSH's sftp-server.
var sftpServerPaths = []string{
	"/usr/lib/openssh/sftp-server",     // Debian, Ubuntu
	"/usr/libexec/openssh/sftp-server", // Fedora, RHEL
	"/usr/libexec/sftp-server",         // macOS, Alpine
	"/usr/lib/ssh/sftp-server",         // Arch
	"/usr/lib/misc/sftp-server",        // Gentoo
}

// FindSFTPServer returns the first sftp-server found, or "".
func FindSFTPServer() string {
	for _, p := range sftpServerPaths {
		if fi, err := os.Stat(p); err == nil && fi.Mode().IsRegular() && fi.Mode()&0o111 != 0 {
			return p
		}
	}
	if p, err := exec.LookPath("sftp-server"); err == nil {
		return p
	}
	return ""
}
