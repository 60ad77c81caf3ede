package testenv

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
)

// UserKey is a client key pair with its certificate, written to files the
// OpenSSH client reads.
type UserKey struct {
	Signer   ssh.Signer
	Cert     *ssh.Certificate
	KeyPath  string // private key, 0600
	CertPath string // KeyPath + "-cert.pub"
}

// NewUserKey generates an ed25519 key in dir and certifies it with sign.
func NewUserKey(t testing.TB, dir, name string, sign func(ssh.PublicKey) (*ssh.Certificate, error)) *UserKey {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, name)
	if err != nil {
		t.Fatal(err)
	}
	k := &UserKey{Signer: signer, KeyPath: filepath.Join(dir, name)}
	k.CertPath = k.KeyPath + "-cert.pub"
	if err := os.WriteFile(k.KeyPath, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	if sign != nil {
		if k.Cert, err = sign(signer.PublicKey()); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(k.CertPath, ssh.MarshalAuthorizedKey(k.Cert), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	return k
}

// CertSigner returns an ssh.Signer that presents the certificate.
func (k *UserKey) CertSigner(t testing.TB) ssh.Signer {
	t.Helper()
	s, err := ssh.NewCertSigner(k.Cert, k.Signer)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Result is a finished command.
type Result struct {
	Stdout, Stderr string
	Code           int // exit code; -1 if it did not exit normally
	Err            error
}

func (r Result) String() string {
	return fmt.Sprintf("exit %d (%v)\nstdout: %q\nstderr: %q", r.Code, r.Err, r.Stdout, r.Stderr)
}

// Run runs a command with a timeout and captures its output.
func Run(t testing.TB, timeout time.Duration, stdin string, name string, args ...string) Result {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if stdin != "" {
		cmd.Stdin = strings.NewReader(stdin)
	}
	cmd.WaitDelay = 5 * time.Second
	err := cmd.Run()
	r := Result{Stdout: out.String(), Stderr: errb.String(), Code: -1, Err: err}
	var ee *exec.ExitError
	switch {
	case err == nil:
		r.Code = 0
	case errors.As(err, &ee):
		r.Code = ee.ExitCode()
	}
	if ctx.Err() != nil {
		r.Err = fmt.Errorf("timed out after %s: %w", timeout, err)
	}
	return r
}
