package recorder

import (
	"bytes"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/bastionhq/bastion/internal/testenv/syncbuf"
	"github.com/bastionhq/bastion/recorder/asciicast"
)

var errDiskFull = errors.New("disk full")

func TestStrictFailure(t *testing.T) {
	cfg, _ := testConfig(t)
	var logs syncbuf.Buffer
	cfg.Logger = slog.New(slog.NewTextHandler(&logs, nil))
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{})
	bystander := begin(t, s, SessionInfo{})
	must(t, r.Output([]byte("before ")))
	s.sync()

	s.setFlushHook(t, func() error { return errDiskFull })
	must(t, r.Output([]byte("lost")))
	s.sync()
	select {
	case <-r.Failed():
	default:
		t.Fatalf("Failed not closed after a failed flush in Strict mode")
	}
	if err := r.Err(); !errors.Is(err, ErrWrite) || !errors.Is(err, errDiskFull) {
		t.Errorf("Err: got %v, want %v wrapping %v", err, ErrWrite, errDiskFull)
	}
	if err := r.Output([]byte("more")); !errors.Is(err, ErrWrite) {
		t.Errorf("Output after failure: got %v, want %v", err, ErrWrite)
	}
	select {
	case <-bystander.Failed():
		t.Errorf("a session with nothing in the failed flush was failed too")
	default:
	}
	if !strings.Contains(logs.String(), "flush failed") || !strings.Contains(logs.String(), "disk full") {
		t.Errorf("log: got %q, want the flush failure", logs.String())
	}
	// End cannot commit while the disk is full; it reports that, and the
	// store keeps trying.
	if err := r.End(ExitInfo{Status: 1}); !errors.Is(err, errDiskFull) {
		t.Errorf("End while failing: got %v, want %v", err, errDiskFull)
	}
	if info, _ := s.Session(r.ID()); info.Status != StatusLive {
		t.Errorf("status: got %q, want still %q", info.Status, StatusLive)
	}

	s.setFlushHook(t, nil)
	s.sync()
	info, err := s.Session(r.ID())
	must(t, err)
	if info.Status != StatusFailed || !strings.Contains(info.Error, "disk full") || info.ExitStatus != 1 {
		t.Errorf("after recovery: got %+v, want failed with the reason", info)
	}
	evs := events(t, s, r.ID())
	if got := output(evs, asciicast.Output); got != "before " {
		t.Errorf("output: got %q, want %q", got, "before ")
	}
	if got := output(evs, asciicast.Marker); !strings.HasPrefix(got, "recording gap: 1 events") {
		t.Errorf("marker: got %q, want a gap marker", got)
	}
	if rep := verify(t, s, r.ID()); !rep.Intact || !rep.Sealed || rep.Status != StatusFailed {
		t.Errorf("verify: got %+v, want intact, sealed, failed", rep)
	}
	must(t, bystander.End(ExitInfo{}))
}

func TestBestEffortGap(t *testing.T) {
	cfg, clk := testConfig(t)
	cfg.Mode = BestEffort
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{})
	must(t, r.Output([]byte("a")))
	s.sync()
	s.setFlushHook(t, func() error { return errDiskFull })
	clk.Advance(1000)
	must(t, r.Output([]byte("lost1")))
	s.sync()
	must(t, r.Output([]byte("lost2")))
	must(t, r.Resize(100, 50))
	s.sync()
	select {
	case <-r.Failed():
		t.Fatalf("Failed closed in BestEffort mode")
	default:
	}
	s.setFlushHook(t, nil)
	clk.Advance(1000)
	must(t, r.Output([]byte("b")))
	must(t, r.End(ExitInfo{}))

	evs := events(t, s, r.ID())
	if got := output(evs, asciicast.Output); got != "ab" {
		t.Errorf("output: got %q, want %q", got, "ab")
	}
	if len(evs) != 3 || evs[1].Type != asciicast.Marker || !strings.HasPrefix(evs[1].Data, "recording gap: 3 events (") {
		t.Errorf("got %q, want a, a gap marker for 3 events, b", evs)
	}
	var gaps []AuditEvent
	must(t, s.AuditEvents(clk.Now().Add(-1e9), func(ev AuditEvent) error {
		if ev.Type == "recording.gap" {
			gaps = append(gaps, ev)
		}
		return nil
	}))
	if len(gaps) != 1 || gaps[0].SessionID != r.ID() || gaps[0].Fields["events_lost"] != "3" {
		t.Errorf("audit: got %+v, want one recording.gap for 3 events", gaps)
	}
	if rep := verify(t, s, r.ID()); !rep.Intact || !rep.Sealed {
		t.Errorf("verify: got %+v", rep)
	}
	if info, _ := s.Session(r.ID()); info.Status != StatusEnded || info.BytesOut != 12 {
		t.Errorf("session: got %+v", info)
	}
}

// blockFlushes makes every flush wait inside its transaction until release
// is called; entered is closed when the first one is waiting.
func blockFlushes(t *testing.T, s *Store) (entered <-chan struct{}, release func()) {
	in := make(chan struct{})
	out := make(chan struct{})
	var once, rel sync.Once
	s.setFlushHook(t, func() error {
		once.Do(func() { close(in) })
		<-out
		return nil
	})
	release = func() { rel.Do(func() { close(out) }) }
	t.Cleanup(release)
	return in, release
}

// A flooding session waits for the disk; other sessions do not wait for it.
func TestBackpressurePerSession(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.SessionBuffer = 4 << 10
	cfg.MaxPending = 1 << 20
	s := openStore(t, cfg)
	flood := begin(t, s, SessionInfo{User: "flood"})
	quiet := begin(t, s, SessionInfo{User: "quiet"})
	entered, release := blockFlushes(t, s)
	chunk := bytes.Repeat([]byte("x"), 4<<10)
	must(t, flood.Output(chunk)) // fills the buffer: the flusher takes it and blocks
	<-entered

	const writes = 20
	var peak atomic.Int64
	done := make(chan error, 1)
	go func() {
		for range writes {
			if err := flood.Output(chunk); err != nil {
				done <- err
				return
			}
			storeMax(&peak, flood.uncommitted.Load())
		}
		done <- nil
	}()
	// The flusher is stuck, so the flood cannot get far; the quiet session
	// still writes without waiting.
	for range 10 {
		must(t, quiet.Output([]byte("ls\r\n")))
	}
	select {
	case err := <-done:
		t.Fatalf("the flooding writer finished (%v) while the disk was stuck", err)
	default:
	}
	release()
	must(t, <-done)
	if limit := int64(sessionWindow*cfg.SessionBuffer + len(chunk) + maxEventOverhead); peak.Load() > limit {
		t.Errorf("uncommitted peak: got %d, want at most %d", peak.Load(), limit)
	}
	must(t, flood.End(ExitInfo{}))
	must(t, quiet.End(ExitInfo{}))
	if got := len(output(events(t, s, flood.ID()), asciicast.Output)); got != (writes+1)*len(chunk) {
		t.Errorf("flood output: got %d bytes, want %d", got, (writes+1)*len(chunk))
	}
}

// All sessions together stay under MaxPending (plus one write each).
func TestBackpressureGlobal(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.SessionBuffer = 64 << 10
	cfg.MaxPending = 64 << 10
	s := openStore(t, cfg)
	const sessions, writes, size = 8, 20, 3 << 10
	recs := make([]*Recording, sessions)
	for i := range recs {
		recs[i] = begin(t, s, SessionInfo{})
	}
	_, release := blockFlushes(t, s)
	var peak atomic.Int64
	var wg sync.WaitGroup
	for _, r := range recs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			data := bytes.Repeat([]byte("y"), size)
			for range writes {
				if err := r.Output(data); err != nil {
					t.Error(err)
					return
				}
				storeMax(&peak, s.uncommitted.Load())
			}
		}()
	}
	// 8*20*3 KiB = 480 KiB cannot fit under 64 KiB: writers wait for flushes.
	release()
	wg.Wait()
	if limit := int64(cfg.MaxPending + sessions*(size+maxEventOverhead)); peak.Load() > limit {
		t.Errorf("uncommitted peak: got %d, want at most %d", peak.Load(), limit)
	}
	for _, r := range recs {
		must(t, r.End(ExitInfo{}))
	}
	if n := s.uncommitted.Load(); n != 0 {
		t.Errorf("uncommitted after End: got %d, want 0", n)
	}
}

// A writer blocked on backpressure is released by Close.
func TestCloseReleasesBlockedWriter(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.SessionBuffer = 4 << 10
	s, err := Open(cfg)
	must(t, err)
	r := begin(t, s, SessionInfo{})
	entered, release := blockFlushes(t, s)
	chunk := bytes.Repeat([]byte("z"), 4<<10)
	must(t, r.Output(chunk))
	<-entered
	done := make(chan error, 1)
	go func() {
		var err error
		for err == nil {
			err = r.Output(chunk)
		}
		done <- err
	}()
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	release()
	must(t, <-closed)
	if err := <-done; !errors.Is(err, ErrClosed) {
		t.Errorf("got %v, want %v", err, ErrClosed)
	}
}

// storeMax raises m to v if v is larger.
func storeMax(m *atomic.Int64, v int64) {
	for {
		old := m.Load()
		if v <= old || m.CompareAndSwap(old, v) {
			return
		}
	}
}
