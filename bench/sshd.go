package main

import (
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"fmt"
	"github.com/bastionhq/bastion/internal/localsvc"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
)

// sshdOptions configures an OpenSSH server.
type sshdOptions struct {
	// Name names its directory and log.
	Name string
	// TrustedUserCAKeys, when set, is the only way in: certificates from
	// this CA (the target). Otherwise AuthorizedKeys is (the baseline jump
	// host: plain key authentication).
	TrustedUserCAKeys string
	AuthorizedKeys    string
}

// sshd is a running OpenSSH server.
type sshd struct {
	Addr    string
	Port    int
	HostKey ssh.PublicKey
	Log     string
	cmd     *exec.Cmd
	exited  chan struct{}
}

// PID is the listener process: its child times collect the CPU of the
// per-connection processes once they exit.
func (s *sshd) PID() int { return s.cmd.Process.Pid }

func (s *sshd) stop() {
	s.cmd.Process.Kill()
	<-s.exited
}

// startSSHD starts OpenSSH sshd on a free loopback port with the cipher
// pinned to aes128-gcm@openssh.com.
func startSSHD(dir string, opt sshdOptions) (*sshd, error) {
	bin, err := lookTool("/usr/sbin/sshd", "sshd")
	if err != nil {
		return nil, err
	}
	os.MkdirAll("/run/sshd", 0o755) // privilege separation directory
	dir = filepath.Join(dir, opt.Name)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, err
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	block, err := ssh.MarshalPrivateKey(priv, opt.Name)
	if err != nil {
		return nil, err
	}
	hostKey := filepath.Join(dir, "ssh_host_ed25519_key")
	if err := os.WriteFile(hostKey, pem.EncodeToMemory(block), 0o600); err != nil {
		return nil, err
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return nil, err
	}
	lines := []string{
		"ListenAddress 127.0.0.1",
		"HostKey " + hostKey,
		"PidFile " + filepath.Join(dir, "sshd.pid"),
		"PubkeyAuthentication yes",
		"PasswordAuthentication no",
		"KbdInteractiveAuthentication no",
		"HostbasedAuthentication no",
		"UsePAM no",
		"StrictModes no",
		"PermitRootLogin yes",
		"UseDNS no",
		"AllowTcpForwarding yes",
		"Ciphers aes128-gcm@openssh.com",
		"LogLevel ERROR",
		"MaxStartups 200:30:400",
		"PerSourceMaxStartups none",
		"PerSourcePenalties no",
	}
	if opt.TrustedUserCAKeys != "" {
		p := filepath.Join(dir, "trusted_user_ca_keys")
		if err := os.WriteFile(p, []byte(opt.TrustedUserCAKeys+"\n"), 0o644); err != nil {
			return nil, err
		}
		lines = append(lines, "TrustedUserCAKeys "+p, "AuthorizedKeysFile none")
	} else {
		p := filepath.Join(dir, "authorized_keys")
		if err := os.WriteFile(p, []byte(opt.AuthorizedKeys+"\n"), 0o600); err != nil {
			return nil, err
		}
		lines = append(lines, "AuthorizedKeysFile "+p)
	}
	s := &sshd{HostKey: signer.PublicKey(), Log: filepath.Join(dir, "sshd.log")}
	for range 5 {
		port, err := localsvc.FreeLoopbackPort()
		if err != nil {
			return nil, err
		}
		s.Port, s.Addr = port, fmt.Sprintf("127.0.0.1:%d", port)
		cfgPath := filepath.Join(dir, "sshd_config")
		if err := localsvc.WriteSSHDConfig(bin, cfgPath, append([]string{fmt.Sprintf("Port %d", port)}, lines...)); err != nil {
			return nil, err
		}
		cmd := exec.Command(bin, "-D", "-e", "-f", cfgPath, "-E", s.Log)
		var stderr bytes.Buffer
		cmd.Stderr = &stderr
		if err := cmd.Start(); err != nil {
			return nil, fmt.Errorf("start sshd: %w", err)
		}
		exited := make(chan struct{})
		go func() { cmd.Wait(); close(exited) }()
		if localsvc.WaitListening(s.Addr, exited, 10*time.Second) {
			s.cmd, s.exited = cmd, exited
			return s, nil
		}
		cmd.Process.Kill()
		<-exited
		logText, _ := os.ReadFile(s.Log)
		if !strings.Contains(string(logText)+stderr.String(), "Address already in use") {
			return nil, fmt.Errorf("sshd %s did not start: %s%s", opt.Name, stderr.String(), logText)
		}
	}
	return nil, fmt.Errorf("sshd %s: no free port after 5 attempts", opt.Name)
}

// lookTool finds the first of names that exists (absolute) or is on PATH.
func lookTool(names ...string) (string, error) {
	for _, n := range names {
		if filepath.IsAbs(n) {
			if _, err := os.Stat(n); err == nil {
				return n, nil
			}
			continue
		}
		if p, err := exec.LookPath(n); err == nil {
			return p, nil
		}
	}
	return "", fmt.Errorf("%s is not installed", names[0])
}
