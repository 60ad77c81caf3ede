package recorder

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/bastionhq/bastion/internal/testenv/syncbuf"
	"github.com/bastionhq/bastion/recorder/asciicast"
)

// collector gathers followed output and lets a test wait for it.
type collector struct {
	mu      sync.Mutex
	out     strings.Builder
	changed chan struct{}
}

func newCollector() *collector { return &collector{changed: make(chan struct{}, 1)} }

func (c *collector) event(ev asciicast.Event) error {
	if ev.Type == asciicast.Output {
		c.mu.Lock()
		c.out.WriteString(ev.Data)
		c.mu.Unlock()
		select {
		case c.changed <- struct{}{}:
		default:
		}
	}
	return nil
}

func (c *collector) String() string {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.out.String()
}

// waitFor waits until the collected output contains want.
func (c *collector) waitFor(t *testing.T, want string) {
	t.Helper()
	deadline := time.After(20 * time.Second)
	for !strings.Contains(c.String(), want) {
		select {
		case <-c.changed:
		case <-deadline:
			t.Fatalf("followed output %q never contained %q", c.String(), want)
		}
	}
}

// TestFollow follows a live session: what was committed before arrives
// first, then caughtUp, then each flush's events as they are committed, and
// Follow returns once the session has ended and everything was delivered.
func TestFollow(t *testing.T) {
	cfg, clk := testConfig(t)
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{})
	must(t, r.Output([]byte("before ")))
	s.sync()

	c := newCollector()
	var atCatchUp string
	done := make(chan error, 1)
	go func() {
		done <- s.Follow(context.Background(), r.ID(), c.event, func() error {
			atCatchUp = c.String()
			return nil
		})
	}()
	c.waitFor(t, "before ")
	for i, chunk := range []string{"one ", "two ", "three"} {
		clk.Advance(time.Second)
		must(t, r.Output([]byte(chunk)))
		s.sync()
		c.waitFor(t, strings.Join([]string{"before ", "one ", "two ", "three"}[:i+2], ""))
	}
	clk.Advance(time.Second)
	must(t, r.Output([]byte(" last words")))
	must(t, r.End(ExitInfo{}))
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Follow: %v", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Follow did not return after the session ended")
	}
	if got, want := c.String(), "before one two three last words"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if atCatchUp != "before " {
		t.Errorf("caughtUp saw %q, want %q", atCatchUp, "before ")
	}
}

// TestFollowEnded follows a session that already ended: it is Events.
func TestFollowEnded(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{})
	must(t, r.Output([]byte("all of it")))
	must(t, r.End(ExitInfo{}))
	c := newCollector()
	if err := s.Follow(context.Background(), r.ID(), c.event, nil); err != nil {
		t.Fatal(err)
	}
	if got := c.String(); got != "all of it" {
		t.Errorf("got %q, want %q", got, "all of it")
	}
}

// TestFollowStops: cancelling, an error from the callback, an unknown
// session and a closed store each end Follow with their error.
func TestFollowStops(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{})
	must(t, r.Output([]byte("x")))
	s.sync()

	stop := errors.New("viewer left")
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Follow(ctx, r.ID(), func(asciicast.Event) error { return nil }, nil) }()
	cancel(stop)
	if err := <-done; !errors.Is(err, stop) {
		t.Errorf("cancelled: got %v, want %v", err, stop)
	}

	boom := errors.New("boom")
	if err := s.Follow(context.Background(), r.ID(), func(asciicast.Event) error { return boom }, nil); !errors.Is(err, boom) {
		t.Errorf("callback error: got %v, want %v", err, boom)
	}
	if err := s.Follow(context.Background(), "01NOSUCHSESSION0000000000", func(asciicast.Event) error { return nil }, nil); !errors.Is(err, ErrNotFound) {
		t.Errorf("unknown session: got %v, want ErrNotFound", err)
	}

	go func() {
		done <- s.Follow(context.Background(), r.ID(), func(asciicast.Event) error { return nil }, nil)
	}()
	s.Close()
	select {
	case err := <-done:
		if !errors.Is(err, ErrClosed) {
			t.Errorf("closed store: got %v, want ErrClosed", err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("Follow did not return when the store closed")
	}
}

// TestExportFollowFromNow: following "from now", what was recorded before
// comes at time 0 and later events at their time since the follow began,
// so a player shows the present screen and then keeps pace.
func TestExportFollowFromNow(t *testing.T) {
	cfg, clk := testConfig(t)
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{Width: 80, Height: 24})
	clk.Advance(5 * time.Second)
	must(t, r.Output([]byte("before")))
	s.sync()
	clk.Advance(5 * time.Second) // the follow begins 10s into the session
	var buf syncbuf.Buffer
	done := make(chan error, 1)
	go func() { done <- s.ExportFollow(context.Background(), r.ID(), &buf, true) }()
	waitContains(t, &buf, `[0.000000, "o", "before"]`)
	clk.Advance(2 * time.Second)
	must(t, r.Output([]byte("after")))
	s.sync()
	waitContains(t, &buf, `[2.000000, "o", "after"]`)
	must(t, r.End(ExitInfo{}))
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(20 * time.Second):
		t.Fatal("ExportFollow did not return after the session ended")
	}
	dec, err := asciicast.NewDecoder(strings.NewReader(buf.String()), asciicast.Limits{})
	if err != nil || dec.Header().Width != 80 {
		t.Fatalf("header: %v %+v", err, dec.Header())
	}
}

func waitContains(t *testing.T, b *syncbuf.Buffer, want string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(b.String(), want) {
		if time.Now().After(deadline) {
			t.Fatalf("the export %q never contained %q", b.String(), want)
		}
		time.Sleep(5 * time.Millisecond)
	}
}
