package localsvc

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"maps"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"time"

	"golang.org/x/crypto/ssh"
)

// SSHDConfig configures StartSSHD. It is checked once, in StartSSHD.
type SSHDConfig struct {
	// Dir holds the host key, sshd_config, the pid file and the log. It is
	// created (0700) when missing and not removed by Stop. Required.
	Dir string
	// Binary is the sshd to run; empty means /usr/sbin/sshd, else sshd on
	// PATH.
	Binary string
	// Name is the host key's comment and names the server in errors; empty
	// means "sshd".
	Name string
	// TrustedUserCAKeys, when set, is the only way in: user certificates
	// from this CA (a line in authorized_keys format), with
	// AuthorizedKeysFile none. Otherwise AuthorizedKeys (authorized_keys
	// lines) is: plain key authentication. One of them is required.
	TrustedUserCAKeys string
	AuthorizedKeys    string
	// HostCertificate, when set, certifies the generated host key: it is
	// called with the host public key and returns the certificate.
	HostCertificate func(ssh.PublicKey) (*ssh.Certificate, error)
	// Subsystems maps a subsystem name to its command (sftp to an
	// sftp-server); nil means none.
	Subsystems map[string]string
	// Options are sshd_config lines written after the common ones (LogLevel,
	// MaxStartups, Ciphers, AcceptEnv…). sshd keeps the first value of most
	// keywords, so they add settings; they do not override the common ones.
	Options []string
}

// SSHD is a running OpenSSH server.
type SSHD struct {
	Addr        string        // 127.0.0.1:port
	Port        int           // the port
	HostKey     ssh.PublicKey // its host key
	HostKeyLine string        // the host key in authorized_keys format
	Dir         string        // its config directory
	LogPath     string        // its log (-E)

	cmd      *exec.Cmd
	exited   chan struct{}
	stopOnce sync.Once
}

// Log returns what sshd has logged so far.
func (s *SSHD) Log() string {
	b, _ := os.ReadFile(s.LogPath)
	return string(b)
}

// PID is the listener process: its child times collect the CPU of the
// per-connection processes once they exit.
func (s *SSHD) PID() int { return s.cmd.Process.Pid }

// Stop kills sshd and waits for it to exit. Calling it again does nothing.
func (s *SSHD) Stop() {
	s.stopOnce.Do(func() {
		s.cmd.Process.Kill()
		<-s.exited
	})
}

// SFTPServer returns the installed sftp-server, else "internal-sftp".
func SFTPServer() string {
	for _, p := range []string{"/usr/lib/openssh/sftp-server", "/usr/libexec/openssh/sftp-server", "/usr/libexec/sftp-server"} {
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return "internal-sftp"
}

// StartSSHD starts the real OpenSSH sshd on a free loopback port (another
// one when the port is taken meanwhile, up to 5 times) with a fresh ed25519
// host key, password and keyboard-interactive authentication off, and waits
// until it listens.
func StartSSHD(cfg SSHDConfig) (*SSHD, error) {
	if cfg.Name == "" {
		cfg.Name = "sshd"
	}
	switch {
	case cfg.Dir == "":
		return nil, fmt.Errorf("%s: a directory is required", cfg.Name)
	case cfg.TrustedUserCAKeys == "" && cfg.AuthorizedKeys == "":
		return nil, fmt.Errorf("%s: TrustedUserCAKeys or AuthorizedKeys is required", cfg.Name)
	}
	bin := cfg.Binary
	if bin == "" {
		var err error
		if bin, err = LookTool("/usr/sbin/sshd", "sshd"); err != nil {
			return nil, err
		}
	}
	// sshd's privilege separation directory.
	if os.Geteuid() == 0 {
		os.MkdirAll("/run/sshd", 0o755)
	}
	dir := cfg.Dir
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, cfg.Name)
	if err != nil {
		return nil, err
	}
	hostKeyPath := filepath.Join(dir, "ssh_host_ed25519_key")
	if err := os.WriteFile(hostKeyPath, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	lines := []string{
		"ListenAddress 127.0.0.1",
		"HostKey " + hostKeyPath,
	}
	if cfg.HostCertificate != nil {
		cert, err := cfg.HostCertificate(signer.PublicKey())
		if err != nil {
			return nil, fmt.Errorf("%s: host certificate: %w", cfg.Name, err)
		}
		p := hostKeyPath + "-cert.pub"
		if err := os.WriteFile(p, ssh.MarshalAuthorizedKey(cert), 0o644); err != nil {
			return nil, err
		}
		lines = append(lines, "HostCertificate "+p)
	}
	if cfg.TrustedUserCAKeys != "" {
		p := filepath.Join(dir, "trusted_user_ca_keys")
		if err := os.WriteFile(p, []byte(cfg.TrustedUserCAKeys+"\n"), 0o644); err != nil {
			return nil, err
		}
		lines = append(lines, "TrustedUserCAKeys "+p, "AuthorizedKeysFile none")
	} else {
		p := filepath.Join(dir, "authorized_keys")
		if err := os.WriteFile(p, []byte(cfg.AuthorizedKeys+"\n"), 0o600); err != nil {
			return nil, err
		}
		lines = append(lines, "AuthorizedKeysFile "+p)
	}
	// A home of its own: sessions must not run the machine's shell startup
	// files (bash runs ~/.bashrc for every ssh command, and a stale lock
	// in one of them, pyenv's rehash for one, hangs every command for a
	// minute). sshd still starts sessions in the user's real home.
	home := filepath.Join(dir, "home")
	if err := os.MkdirAll(home, 0o700); err != nil {
		return nil, err
	}
	// sshd takes the first SetEnv line only: SetEnv options join it.
	setenv := "SetEnv HOME=" + home
	var options []string
	for _, o := range cfg.Options {
		if v, ok := strings.CutPrefix(o, "SetEnv "); ok {
			setenv += " " + v
			continue
		}
		options = append(options, o)
	}
	lines = append(lines,
		setenv,
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"HostbasedAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"PermitRootLogin yes",
		"PidFile "+filepath.Join(dir, "sshd.pid"),
		"PerSourceMaxStartups none",
		"PerSourcePenalties no",
	)
	for _, name := range slices.Sorted(maps.Keys(cfg.Subsystems)) {
		lines = append(lines, "Subsystem "+name+" "+cfg.Subsystems[name])
	}
	lines = append(lines, options...)

	s := &SSHD{Dir: dir, LogPath: filepath.Join(dir, "sshd.log"), HostKey: signer.PublicKey()}
	s.HostKeyLine = strings.TrimSpace(string(ssh.MarshalAuthorizedKey(signer.PublicKey())))
	for range 5 {
		port, err := FreeLoopbackPort()
		if err != nil {
			return nil, err
		}
		s.Port, s.Addr = port, fmt.Sprintf("127.0.0.1:%d", port)
		cfgPath := filepath.Join(dir, "sshd_config")
		if err := WriteSSHDConfig(bin, cfgPath, append([]string{fmt.Sprintf("Port %d", port)}, lines...)); err != nil {
			return nil, fmt.Errorf("%s: %w", cfg.Name, err)
		}
		cmd := exec.Command(bin, "-D", "-e", "-f", cfgPath, "-E", s.LogPath)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start %s: %w", cfg.Name, err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if WaitListening(s.Addr, exited, 10*time.Second) {
			s.cmd, s.exited = cmd, exited
			return s, nil
		}
		cmd.Process.Kill()
		<-exited
		if !strings.Contains(s.Log()+stderr.String(), "Address already in use") {
			return nil, fmt.Errorf("%s did not start: %s\n%s", cfg.Name, stderr.String(), s.Log())
		}
	}
	return nil, errors.New(cfg.Name + ": no free port after 5 attempts")
}
