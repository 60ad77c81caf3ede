package recorder

import (
	"bufio"
	"cmp"
	"fmt"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

// The crash tests re-run this test binary as a child process that records
// and is killed with SIGKILL mid-session (the helper-process pattern).
const crashEnv = "RECORDER_CRASH_CHILD"

// TestCrashChild is the child's body; it does nothing unless started by a
// crash test. It prints progress lines on stdout and never returns.
func TestCrashChild(t *testing.T) {
	mode := os.Getenv(crashEnv)
	if mode == "" {
		t.Skip("helper process for the crash tests")
	}
	cfg := Config{Path: os.Getenv("RECORDER_CRASH_DB"), SealKey: testKey, FlushInterval: time.Hour}
	if mode == "stream" || mode == "bulk" {
		cfg.FlushInterval = time.Millisecond
	}
	s, err := Open(cfg)
	if err != nil {
		fmt.Println("ERROR", err)
		os.Exit(1)
	}
	switch mode {
	case "idle":
		done := begin(t, s, SessionInfo{ID: "done"})
		must(t, done.Output([]byte("finished session")))
		must(t, done.End(ExitInfo{}))
		r := begin(t, s, SessionInfo{ID: "crashed", Width: 80, Height: 24})
		must(t, r.Output([]byte("committed \u00e9")))
		must(t, r.Resize(100, 40))
		s.sync()
		must(t, r.Output([]byte(" never flushed")))
		fmt.Println("READY")
	case "bulk":
		// A forward of bytes that do not compress: chunks go to the log.
		id := cmp.Or(os.Getenv("RECORDER_CRASH_ID"), "bulk")
		r := begin(t, s, SessionInfo{ID: id, Kind: "tcp"})
		stream := randomBytes(7, 64<<20)
		for i := 0; ; i++ {
			off := (i * 64 << 10) % len(stream)
			must(t, r.FromServer(stream[off:off+64<<10]))
			if i%8 == 0 {
				s.sync()
				fmt.Println("COMMITTED", i)
			}
		}
	case "stream":
		r := begin(t, s, SessionInfo{ID: "stream"})
		for i := 0; ; i++ {
			must(t, r.Output([]byte(streamLine(i))))
			if i%500 == 0 {
				s.sync()
				// Everything up to line i is now committed.
				fmt.Println("COMMITTED", i)
			}
		}
	}
	select {}
}

func streamLine(i int) string { return fmt.Sprintf("line %d \u2713\r\n", i) }

// runCrashChild starts the child and SIGKILLs it once until() accepts a
// line of its output. It returns the last line seen.
func runCrashChild(t *testing.T, mode, path string, until func(line string) bool) string {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.count=1")
	cmd.Env = append(os.Environ(), crashEnv+"="+mode, "RECORDER_CRASH_DB="+path)
	cmd.Stderr = os.Stderr
	stdout, err := cmd.StdoutPipe()
	must(t, err)
	must(t, cmd.Start())
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	var last string
	for sc.Scan() {
		last = sc.Text()
		if strings.HasPrefix(last, "ERROR") {
			t.Fatalf("child: %s", last)
		}
		if until(last) {
			break
		}
	}
	if err := cmd.Process.Kill(); err != nil { // SIGKILL
		t.Fatal(err)
	}
	err = cmd.Wait()
	if ws, ok := cmd.ProcessState.Sys().(interface{ Signaled() bool }); !ok || !ws.Signaled() {
		t.Fatalf("child did not die by signal: %v (last line %q)", err, last)
	}
	return last
}

func TestCrashRecovery(t *testing.T) {
	cfg, _ := testConfig(t)
	runCrashChild(t, "idle", cfg.Path, func(line string) bool { return line == "READY" })

	s := openStore(t, cfg)
	info, err := s.Session("crashed")
	must(t, err)
	if info.Status != StatusInterrupted || info.Events != 2 || info.Chunks != 1 || info.End.IsZero() {
		t.Errorf("got %+v, want interrupted with the 2 committed events", info)
	}
	evs := events(t, s, "crashed")
	want := []asciicast.Event{{Type: asciicast.Output, Data: "committed \u00e9"}, {Type: asciicast.Resize, Data: "100x40"}}
	if len(evs) != 2 || evs[0].Data != want[0].Data || evs[1].Data != want[1].Data {
		t.Errorf("events: got %q, want %q", evs, want)
	}
	if rep := verify(t, s, "crashed"); !rep.Intact || !rep.Sealed || rep.Status != StatusInterrupted {
		t.Errorf("verify: got %+v, want intact and sealed as interrupted", rep)
	}
	if rep := verify(t, s, "done"); !rep.Intact || !rep.Sealed || rep.Status != StatusEnded {
		t.Errorf("verify the finished session: got %+v", rep)
	}
	var interrupted int
	must(t, s.AuditEvents(time.Time{}, func(ev AuditEvent) error {
		if ev.Type == "session.interrupted" && ev.SessionID == "crashed" {
			interrupted++
		}
		return nil
	}))
	if interrupted != 1 {
		t.Errorf("got %d session.interrupted audit events, want 1", interrupted)
	}
	if rep, err := s.VerifyAudit(); err != nil || !rep.Intact {
		t.Errorf("audit: got %+v, %v", rep, err)
	}
	must(t, s.Close())
	// Opening again changes nothing.
	s2 := openStore(t, cfg)
	if again, _ := s2.Session("crashed"); again.Status != StatusInterrupted || !again.End.Equal(info.End) {
		t.Errorf("second open: got %+v", again)
	}
}

// Killed while flushing continuously: the file opens, the chain is intact,
// and the recording is exactly the stream up to some point at or after the
// last flush the child saw commit.
func TestCrashWhileStreaming(t *testing.T) {
	cfg, _ := testConfig(t)
	last := runCrashChild(t, "stream", cfg.Path, func(line string) bool { return line == "COMMITTED 3000" })
	committed, err := strconv.Atoi(strings.TrimPrefix(last, "COMMITTED "))
	must(t, err)

	s := openStore(t, cfg)
	if rep := verify(t, s, "stream"); !rep.Intact || !rep.Sealed {
		t.Fatalf("verify: got %+v", rep)
	}
	got := output(events(t, s, "stream"), asciicast.Output)
	var want strings.Builder
	i := 0
	for ; want.Len() < len(got); i++ {
		want.WriteString(streamLine(i))
	}
	if !strings.HasPrefix(want.String(), got) {
		t.Fatalf("the recording is not a prefix of the stream (%d bytes)", len(got))
	}
	if i <= committed {
		t.Errorf("got %d lines, want at least the %d committed", i, committed+1)
	}
}
