// Package localsvc starts throwaway local servers on loopback: the real
// OpenSSH sshd ([StartSSHD]) and a PostgreSQL cluster that accepts only TLS
// with client certificates ([StartPostgres]), plus the small X.509 CA
// ([CA]) that certifies them. The test harness (internal/testenv), `bastion
// demo` (internal/demo) and the benchmarks (bench) all start their servers
// here.
//
// # Basics
//
// Everything returns errors and nothing here imports package testing:
// internal/testenv wraps these functions with t.Fatal and t.Cleanup. Each
// server runs in a directory of its own, on a free loopback port (retried
// when another process takes the port first), and is stopped with its Stop
// method.
//
// # Caveats
//
// initdb and postgres refuse to run as root: as root, they run as the
// postgres system user ([Credential]), whose data directory must be
// reachable ([Reachable]).
package localsvc

import (
	"bytes"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// Credential is whom to run initdb and postgres as: ourselves (nil),
// unless we are root, which they refuse; then the postgres system user.
func Credential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, errors.New("running as root, and there is no postgres system user to run PostgreSQL as")
	}
	uid, err1 := strconv.ParseUint(u.Uid, 10, 32)
	gid, err2 := strconv.ParseUint(u.Gid, 10, 32)
	if err1 != nil || err2 != nil {
		return nil, fmt.Errorf("the postgres user has uid %q gid %q", u.Uid, u.Gid)
	}
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), NoSetGroups: true}, nil
}

// Reachable reports whether every directory from / down to dir lets other
// users through (the postgres user must reach its data directory).
func Reachable(dir string) bool {
	dir, err := filepath.Abs(dir)
	if err != nil {
		return false
	}
	for {
		fi, err := os.Stat(dir)
		if err != nil || fi.Mode().Perm()&0o001 == 0 {
			return false
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			return true
		}
		dir = parent
	}
}

// Env is a minimal, predictable environment for initdb and postgres.
func Env() []string {
	env := []string{"LC_ALL=C", "LANG=C", "TZ=UTC"}
	if path := os.Getenv("PATH"); path != "" {
		env = append(env, "PATH="+path)
	}
	return env
}

// FreeLoopbackPort returns a loopback TCP port that was free a moment ago.
func FreeLoopbackPort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, err
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// TailFile returns at most the last n bytes of a file (a server log), trimmed.
func TailFile(path string, n int) string {
	b, err := os.ReadFile(path)
	if err != nil {
		return ""
	}
	return tail(b, n)
}

// tail returns at most the last n bytes of b, trimmed.
func tail(b []byte, n int) string {
	b = bytes.TrimSpace(b)
	if len(b) > n {
		b = b[len(b)-n:]
	}
	return string(b)
}

// WaitListening waits until addr accepts connections, exited is closed (the
// server died), or the timeout passes.
func WaitListening(addr string, exited <-chan struct{}, timeout time.Duration) bool {
	deadline := time.Now().Add(timeout)
	for time.Now().Before(deadline) {
		select {
		case <-exited:
			return false
		default:
		}
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return true
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}

// LookTool returns the first of names that exists (an absolute path) or is
// on PATH.
func LookTool(names ...string) (string, error) {
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

// WriteSSHDConfig writes an sshd_config and drops keywords this sshd does
// not know (PerSourcePenalties appeared in OpenSSH 9.8), as `sshd -t`
// reports them, so one config works across the versions machines have.
func WriteSSHDConfig(sshd, path string, lines []string) error {
	for range 5 {
		if err := os.WriteFile(path, []byte(strings.Join(lines, "\n")+"\n"), 0o644); err != nil {
			return err
		}
		out, err := exec.Command(sshd, "-t", "-f", path).CombinedOutput()
		if err == nil {
			return nil
		}
		dropped := false
		for i, l := range lines {
			kw := strings.Fields(l)[0]
			if strings.Contains(string(out), "Bad configuration option: "+kw) || strings.Contains(string(out), "Unsupported option "+kw) {
				lines = append(lines[:i:i], lines[i+1:]...)
				dropped = true
				break
			}
		}
		if !dropped {
			return fmt.Errorf("sshd -t rejects the config: %v\n%s", err, out)
		}
	}
	return fmt.Errorf("sshd -t keeps rejecting %s", path)
}
