package asciicast

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
	"unsafe"
)

// asciinemaCat runs the real `asciinema cat` on path and returns its output.
// asciinema opens /dev/tty, so the command gets a pseudo-terminal as its
// controlling terminal while its stdout goes to a buffer.
func asciinemaCat(t *testing.T, path string) (string, error) {
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
func openPTY(t *testing.T) *os.File {
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

// The real asciinema accepts every golden file and prints the same text.
func TestAsciinemaCatGolden(t *testing.T) {
	files, err := filepath.Glob(filepath.Join(goldenDir, "*.cast"))
	if err != nil || len(files) == 0 {
		t.Fatalf("no golden files: %v", err)
	}
	for _, path := range files {
		t.Run(filepath.Base(path), func(t *testing.T) {
			data, err := os.ReadFile(path)
			if err != nil {
				t.Fatal(err)
			}
			_, events := decodeAll(t, data)
			var want strings.Builder
			for _, ev := range events {
				if ev.Type == Output {
					want.WriteString(ev.Data)
				}
			}
			got, err := asciinemaCat(t, path)
			if err != nil {
				t.Fatal(err)
			}
			if got != want.String() {
				t.Errorf("got %q, want %q", got, want.String())
			}
		})
	}
}

// And it refuses a file our decoder refuses, so the check has teeth.
func TestAsciinemaCatRefusesGarbage(t *testing.T) {
	path := filepath.Join(t.TempDir(), "bad.cast")
	if err := os.WriteFile(path, []byte(`{"version": 1, "width": 80, "height": 24}`+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if out, err := asciinemaCat(t, path); err == nil {
		t.Errorf("got success with output %q, want an error", out)
	}
}
