package main

import (
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// TestRestartOverTornChunkLog: a real `bastion serve` is killed after a
// forward's bytes went to the chunk log, the current segment is then cut
// short (as a disk that lost acknowledged writes leaves it), and the
// bastion restarts: verify names the damaged session's first chunk that
// lacks its bytes, and a forward after the restart is recorded intact
// (it failed at its first flush before: the segment's last block could not
// be read).
func TestRestartOverTornChunkLog(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { io.Copy(io.Discard, c); c.Close() }()
		}
	}()
	w := newWorldTargets(t, "", fmt.Sprintf(`{name: websink, kind: tcp, address: %q}`, ln.Addr().String()))
	cfgText, _ := os.ReadFile(w.cfgPath)
	dataDir := strings.TrimSpace(regexp.MustCompile(`(?m)^data_dir: (.*)$`).FindStringSubmatch(string(cfgText))[1])
	serve, sshCfg := w.serveProcess(t)
	proc := serve()

	// forward sends n random bytes through a new forward and waits until
	// the bastion has committed them; it returns the session's ID.
	forward := func(n int, seen map[string]bool) string {
		lport := testenv.FreePort(t)
		testenv.StartPTY(t, 80, 24, "ssh", "-F", sshCfg, "-N", "-o", "ExitOnForwardFailure=yes",
			"-L", fmt.Sprintf("127.0.0.1:%d:websink:%d", lport, ln.Addr().(*net.TCPAddr).Port), hostOf(w.app.SSHAddr()))
		waitPort(t, lport)
		c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", lport))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		buf := make([]byte, n)
		rand.Read(buf)
		if _, err := c.Write(buf); err != nil {
			t.Fatalf("forward: %v", err)
		}
		var id string
		testenv.WaitFor(t, 60*time.Second, "the forward's bytes to be committed", func() bool {
			r := w.run(nil, "sessions", "--json", "--kind", "tcp")
			for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
				var s recorder.SessionInfo
				if json.Unmarshal([]byte(line), &s) != nil || s.Target != "websink" || seen[s.ID] {
					continue
				}
				if s.Status == "failed" {
					t.Fatalf("the forward's recording failed: %s", s.Error)
				}
				if s.Stored >= int64(n) {
					id = s.ID
					return true
				}
			}
			return false
		})
		seen[id] = true
		return id
	}
	seen := map[string]bool{}
	first := forward(2<<20, seen)
	proc.Process.Signal(syscall.SIGKILL)
	proc.Wait()
	segs, _ := filepath.Glob(filepath.Join(dataDir, "*.chunks", "*.seg"))
	if len(segs) != 1 {
		t.Fatalf("segments: %v", segs)
	}
	// Cut to a length inside its last block (a cut at a block boundary
	// happened to work before the fix), then, as a second case below,
	// removed.
	st, err := os.Stat(segs[0])
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(segs[0], st.Size()-5000); err != nil {
		t.Fatal(err)
	}
	proc = serve()
	if v := w.run(nil, "verify", first); v.Code == 0 || !strings.Contains(v.Stdout, "BROKEN at chunk") {
		t.Fatalf("verify of the cut session: %s", v)
	}
	second := forward(2<<20, seen)
	proc.Process.Signal(syscall.SIGKILL)
	proc.Wait()
	segs, _ = filepath.Glob(filepath.Join(dataDir, "*.chunks", "*.seg"))
	for _, seg := range segs {
		if err := os.Remove(seg); err != nil {
			t.Fatal(err)
		}
	}
	proc = serve()
	if v := w.run(nil, "verify", second); v.Code == 0 || !strings.Contains(v.Stdout, "BROKEN at chunk") {
		t.Fatalf("verify of the session whose segment is gone: %s", v)
	}
	third := forward(2<<20, seen)
	proc.Process.Signal(syscall.SIGTERM)
	proc.Wait()
	serve()
	if v := w.run(nil, "verify", third); v.Code != 0 || !strings.Contains(v.Stdout, "intact") {
		t.Fatalf("verify of a forward after the restart: %s", v)
	}
}
