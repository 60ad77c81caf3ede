package localsvc

import (
	"net"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"
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
