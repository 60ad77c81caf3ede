package main

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"strings"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
	"golang.org/x/term"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/internal/login"
)

// clientState loads the login a client command uses: the bastion named by
// --bastion (a URL, host or host:port of a login), or the default, the one
// logged in to last.
func clientState(sel string) (*login.State, error) {
	base, err := login.DefaultDir()
	if err != nil {
		return nil, err
	}
	st, err := login.Resolve(base, sel)
	if err != nil {
		return nil, err
	}
	again := "bastion login"
	if sel != "" || len(mustStates(base)) > 1 {
		again += " --bastion " + shellQuote([]string{st.BastionURL})
	}
	if time.Now().After(st.ValidBefore) {
		return nil, fmt.Errorf("your certificate for %s expired at %s: run `%s`", st.BastionURL, st.ValidBefore.Local().Format(time.RFC3339), again)
	}
	if st.InAgent && st.KeyPath == "" {
		if _, err := agentSigner(mustCert(st)); err != nil {
			return nil, fmt.Errorf("%v (bastion %s)", err, st.BastionURL)
		}
	}
	return st, nil
}

func mustStates(base string) []*login.State {
	list, _ := login.States(base)
	return list
}

// mustCert reads the login's certificate; nil when it cannot.
func mustCert(st *login.State) *ssh.Certificate {
	b, err := os.ReadFile(st.CertPath)
	if err != nil {
		return nil
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(b)
	if err != nil {
		return nil
	}
	c, _ := pub.(*ssh.Certificate)
	return c
}

// exitWith makes run print err and exit with code.
func exitWith(code int, err error) error {
	fmt.Fprintf(os.Stderr, "bastion: %s\n", err)
	return exitError{code}
}

// dialBastion opens an SSH connection to the bastion with the login
// certificate, verifying the bastion's host certificate against the host CA
// that login saved.
func dialBastion(st *login.State) (*ssh.Client, error) {
	certBytes, err := os.ReadFile(st.CertPath)
	if err != nil {
		return nil, fmt.Errorf("certificate: %w", err)
	}
	pub, _, _, _, err := ssh.ParseAuthorizedKey(certBytes)
	if err != nil {
		return nil, fmt.Errorf("certificate %s: %w", st.CertPath, err)
	}
	cert, ok := pub.(*ssh.Certificate)
	if !ok {
		return nil, fmt.Errorf("%s is not a certificate", st.CertPath)
	}
	var signer ssh.Signer
	if st.KeyPath != "" {
		kb, err := os.ReadFile(st.KeyPath)
		if err != nil {
			return nil, fmt.Errorf("key: %w", err)
		}
		key, err := ssh.ParsePrivateKey(kb)
		if err != nil {
			return nil, fmt.Errorf("key %s: %w", st.KeyPath, err)
		}
		if signer, err = ssh.NewCertSigner(cert, key); err != nil {
			return nil, err
		}
	} else {
		if signer, err = agentSigner(cert); err != nil {
			return nil, err
		}
	}
	hostCA, err := hostCAOf(st.KnownHostsPath)
	if err != nil {
		return nil, err
	}
	checker := &ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool { return bytes.Equal(k.Marshal(), hostCA) }}
	c, err := ssh.Dial("tcp", st.SSHAddress, &ssh.ClientConfig{
		User:            st.User,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(signer)},
		HostKeyCallback: checker.CheckHostKey,
		Timeout:         20 * time.Second,
		Config:          ssh.Config{Ciphers: []string{ssh.CipherAES128GCM, ssh.CipherAES256GCM, ssh.CipherChaCha20Poly1305}},
	})
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", st.SSHAddress, err)
	}
	return c, nil
}

// hostCAOf reads the bastion's host CA from the known_hosts file login
// wrote. (x/crypto's knownhosts matches a "*" pattern on port 22 only,
// while the bastion usually listens elsewhere.)
func hostCAOf(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("known hosts: %w", err)
	}
	for len(b) > 0 {
		marker, _, key, _, rest, err := ssh.ParseKnownHosts(b)
		if err != nil {
			break
		}
		if marker == "cert-authority" {
			return key.Marshal(), nil
		}
		b = rest
	}
	return nil, fmt.Errorf("known hosts %s: no @cert-authority line: run `bastion login` again", path)
}

// agentSigner finds the certificate's key in the running ssh-agent.
func agentSigner(cert *ssh.Certificate) (ssh.Signer, error) {
	if cert == nil {
		return nil, errors.New("the login certificate cannot be read: run `bastion login` again")
	}
	sock := os.Getenv("SSH_AUTH_SOCK")
	if sock == "" {
		return nil, errors.New("the key is in an ssh-agent, but SSH_AUTH_SOCK is not set: run `bastion login` again")
	}
	conn, err := net.Dial("unix", sock)
	if err != nil {
		return nil, fmt.Errorf("ssh-agent: %w", err)
	}
	signers, err := agent.NewClient(conn).Signers()
	if err != nil {
		return nil, fmt.Errorf("ssh-agent: %w", err)
	}
	want := cert.Marshal()
	for _, s := range signers {
		if bytes.Equal(s.PublicKey().Marshal(), want) {
			return s, nil
		}
	}
	return nil, errors.New("the login certificate is no longer in the ssh-agent (expired or removed): run `bastion login` again")
}

// shellQuote quotes args for the bastion's admin command line.
func shellQuote(args []string) string {
	q := make([]string, len(args))
	for i, a := range args {
		if a != "" && strings.Trim(a, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_=.,:/@") == "" {
			q[i] = a
			continue
		}
		q[i] = "'" + strings.ReplaceAll(a, "'", `'\''`) + "'"
	}
	return strings.Join(q, " ")
}

// remote runs an admin command on the bastion, streaming its output, and
// returns its exit status as an exitError when it is not zero.
func remote(ctx context.Context, st *login.State, args []string, stdin io.Reader, stdout, stderr io.Writer, tty bool) error {
	c, err := dialBastion(st)
	if err != nil {
		return err
	}
	defer c.Close()
	s, err := c.NewSession()
	if err != nil {
		return err
	}
	defer s.Close()
	s.Stdin, s.Stdout, s.Stderr = stdin, stdout, stderr
	if tty {
		w, h, err := term.GetSize(int(os.Stdout.Fd()))
		if err != nil {
			w, h = 80, 24
		}
		if err := s.RequestPty(os.Getenv("TERM"), h, w, ssh.TerminalModes{ssh.ECHO: 0}); err != nil {
			return err
		}
	}
	stop := context.AfterFunc(ctx, func() { c.Close() })
	defer stop()
	err = s.Run(shellQuote(args))
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return exitError{ee.ExitStatus()}
	}
	return err
}

// thin returns a subcommand that runs the admin command of the same name on
// the bastion: the bbolt store is only ever opened by the server.
func thin(name string) func([]string) error { return thinAs(name, name) }

// thinAs is thin for a command the CLI names differently (ca revoke).
func thinAs(cli, name string) func([]string) error {
	return func(args []string) error {
		if bastion.WantsHelp(args) {
			// Answered here, without a login or the network.
			thinHelp(os.Stdout, cli, name)
			return nil
		}
		override := ""
		var rest []string
		for i := 0; i < len(args); i++ {
			switch {
			case args[i] == "--bastion" && i+1 < len(args):
				override = args[i+1]
				i++
			case strings.HasPrefix(args[i], "--bastion="):
				override = strings.TrimPrefix(args[i], "--bastion=")
			default:
				rest = append(rest, args[i])
			}
		}
		st, err := clientState(override)
		if err != nil {
			return err
		}
		stdin := io.Reader(os.Stdin)
		if name == "verify" {
			// --against FILE: the sink's copy is on this machine; the
			// bastion reads it from stdin.
			for i := 0; i < len(rest); i++ {
				file := ""
				switch {
				case rest[i] == "--against" && i+1 < len(rest):
					file = rest[i+1]
					rest[i+1] = "-"
				case strings.HasPrefix(rest[i], "--against="):
					file = strings.TrimPrefix(rest[i], "--against=")
					rest[i] = "--against=-"
				}
				if file != "" && file != "-" {
					f, err := os.Open(file)
					if err != nil {
						return fmt.Errorf("--against: %w", err)
					}
					defer f.Close()
					stdin = f
				}
			}
		}
		return remote(context.Background(), st, append([]string{name}, rest...), stdin, os.Stdout, os.Stderr, false)
	}
}
