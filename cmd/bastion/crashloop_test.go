package main

import (
	"encoding/json"
	"fmt"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// TestCrashRepeatedly kills a real `bastion serve` with SIGKILL at
// different points of streaming sessions, restarting it each time (and
// twice in a row at the end): every session is there, interrupted, verifies
// intact and exports exactly the lines it streamed, from the first, in
// order and without a gap.
func TestCrashRepeatedly(t *testing.T) {
	w := newWorld(t)
	serve, sshCfg := w.serveProcess(t)
	proc := serve()
	kills := []int{1, 60, 5, 200}
	for round, at := range kills {
		cmdline := fmt.Sprintf("for i in $(seq 1 100000); do echo r%d-line-$i; done", round)
		if round%2 == 1 {
			cmdline = fmt.Sprintf("for i in $(seq 1 100000); do echo r%d-line-$i; sleep 0.001; done", round)
		}
		p := testenv.StartPTY(t, 80, 24, "ssh", "-F", sshCfg, "root@web1", cmdline)
		p.Expect(fmt.Sprintf("r%d-line-%d\r", round, at), 30*time.Second)
		time.Sleep(time.Duration(round*150) * time.Millisecond)
		proc.Process.Signal(syscall.SIGKILL)
		proc.Wait()
		p.Wait(10 * time.Second)
		proc = serve()
	}
	proc.Process.Signal(syscall.SIGKILL)
	proc.Wait()
	proc = serve()

	r := w.run(nil, "sessions", "--json")
	if r.Code != 0 {
		t.Fatalf("sessions: %s", r)
	}
	seen := 0
	for _, line := range strings.Split(strings.TrimSpace(r.Stdout), "\n") {
		var info recorder.SessionInfo
		if json.Unmarshal([]byte(line), &info) != nil || info.ID == "" {
			continue
		}
		seen++
		if info.Status != "interrupted" {
			t.Errorf("session %s: status %s", info.ID, info.Status)
		}
		if v := w.run(nil, "verify", info.ID); v.Code != 0 || !strings.Contains(v.Stdout, "intact") {
			t.Errorf("verify %s: %s", info.ID, v)
		}
		e := w.run(nil, "export", info.ID)
		if e.Code != 0 {
			t.Errorf("export %s: %s", info.ID, e)
			continue
		}
		var out strings.Builder
		for i, ln := range strings.Split(e.Stdout, "\n") {
			var ev []any
			if i == 0 || json.Unmarshal([]byte(ln), &ev) != nil || len(ev) != 3 || ev[1] != "o" {
				continue
			}
			out.WriteString(ev[2].(string))
		}
		round, next := -1, 1
		for _, ln := range strings.Split(out.String(), "\n") {
			var rd, n int
			if k, _ := fmt.Sscanf(strings.TrimSuffix(ln, "\r"), "r%d-line-%d", &rd, &n); k != 2 {
				continue
			}
			if round == -1 {
				round = rd
			}
			if rd != round || n != next {
				t.Errorf("session %s: line r%d-line-%d after line %d of round %d", info.ID, rd, n, next-1, round)
				break
			}
			next++
		}
		t.Logf("session %s: round %d, %d lines recorded", info.ID, round, next-1)
	}
	if seen != len(kills) {
		t.Errorf("%d sessions after the crashes, want %d", seen, len(kills))
	}
}
