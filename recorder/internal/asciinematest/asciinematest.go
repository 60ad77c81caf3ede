// Package asciinematest runs the real asciinema player in tests, to check
// that recordings bastion writes are accepted by the tool people use.
package asciinematest

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// Cat runs `asciinema cat path` and returns what it printed. The test is
// skipped if asciinema is not installed, unless the CI environment variable
// is set, in which case it fails: CI installs asciinema.
//
// asciinema cat opens /dev/tty, so the command gets a new pseudo-terminal as
// its controlling terminal while its stdout goes to a buffer.
func Cat(t testing.TB, path string) (string, error) {
	t.Helper()
	bin, err := exec.LookPath("asciinema")
	if err != nil {
		if os.Getenv("CI") != "" {
			t.Fatalf("asciinema is not installed but CI is set: %v", err)
		}
		t.Skipf("asciinema not installed: %v", err)
	}
	tty := openPTY(t)
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "cat", path)
	var stdout, stderr bytes.Buffer
	cmd.Stdin, cmd.Stdout, cmd.Stderr = tty, &stdout, &stderr
	cmd.Env = append(os.Environ(), "LANG=C.UTF-8", "LC_ALL=C.UTF-8", "PYTHONIOENCODING=utf-8")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setsid: true, Setctty: true, Ctty: 0}
	if err := cmd.Run(); err != nil {
		return stdout.String(), fmt.Errorf("asciinema cat %s: %v: %s", filepath.Base(path), err, stderr.String())
	}
	return stdout.String(), nil
}

// openPTY returns the terminal side of a new pseudo-terminal.
func openPTY(t testing.TB) *os.File {
	t.Helper()
	ptm, err := os.OpenFile("/dev/ptmx", os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Skipf("no pseudo-terminals: %v", err)
	}
	t.Cleanup(func() { ptm.Close() })
	var unlock int32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ptm.Fd(), syscall.TIOCSPTLCK, uintptr(unsafe.Pointer(&unlock))); e != 0 {
		t.Fatalf("unlockpt: %v", e)
	}
	var n uint32
	if _, _, e := syscall.Syscall(syscall.SYS_IOCTL, ptm.Fd(), syscall.TIOCGPTN, uintptr(unsafe.Pointer(&n))); e != 0 {
		t.Fatalf("ptsname: %v", e)
	}
	pts, err := os.OpenFile(fmt.Sprintf("/dev/pts/%d", n), os.O_RDWR|syscall.O_NOCTTY, 0)
	if err != nil {
		t.Fatalf("open pts: %v", err)
	}
	t.Cleanup(func() { pts.Close() })
	return pts
}
