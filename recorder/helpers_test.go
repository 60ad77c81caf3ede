package recorder

import (
	"bytes"
	"crypto/ed25519"
	"errors"
	"io"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/bastionhq/bastion/recorder/asciicast"
	bolt "go.etcd.io/bbolt"
)

// testKey is a fixed seal key.
var testKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{7}, ed25519.SeedSize))

// clock is a manual clock for Config.Now.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func newClock() *clock { return &clock{t: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)} }

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

// testConfig returns a config for a new store in a temporary directory,
// with a manual clock and a flush interval long enough that tests decide
// when flushes happen (sync).
func testConfig(t testing.TB) (Config, *clock) {
	t.Helper()
	clk := newClock()
	return Config{
		Path:          filepath.Join(t.TempDir(), "bastion.db"),
		SealKey:       testKey,
		FlushInterval: time.Hour,
		Now:           clk.Now,
	}, clk
}

func openStore(t testing.TB, cfg Config) *Store {
	t.Helper()
	s, err := Open(cfg)
	if err != nil {
		t.Fatalf("Open: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// sync waits until a flush that started after the call has finished.
func (s *Store) sync() {
	for range 2 {
		s.mu.Lock()
		ch := s.flushed
		s.mu.Unlock()
		s.requestFlush()
		select {
		case <-ch:
		case <-s.done:
			return
		}
	}
}

func begin(t testing.TB, s *Store, info SessionInfo) *Recording {
	t.Helper()
	if info.Kind == "" {
		info.Kind = "shell"
	}
	if info.User == "" {
		info.User = "alice"
	}
	if info.Target == "" {
		info.Target = "web1"
	}
	r, err := s.Begin(info)
	if err != nil {
		t.Fatalf("Begin: %v", err)
	}
	return r
}

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// events returns a session's events.
func events(t testing.TB, s *Store, id string) []asciicast.Event {
	t.Helper()
	var out []asciicast.Event
	if err := s.Events(id, func(ev asciicast.Event) error {
		out = append(out, ev)
		return nil
	}); err != nil {
		t.Fatalf("Events: %v", err)
	}
	return out
}

// output concatenates the data of a session's events of one type.
func output(evs []asciicast.Event, typ asciicast.EventType) string {
	var b bytes.Buffer
	for _, ev := range evs {
		if ev.Type == typ {
			b.WriteString(ev.Data)
		}
	}
	return b.String()
}

// export returns the exported recording, checked by the asciicast decoder.
func export(t testing.TB, s *Store, id string) ([]byte, asciicast.Header, []asciicast.Event) {
	t.Helper()
	var buf bytes.Buffer
	if err := s.Export(id, &buf); err != nil {
		t.Fatalf("Export: %v", err)
	}
	dec, err := asciicast.NewDecoder(bytes.NewReader(buf.Bytes()), asciicast.Limits{})
	if err != nil {
		t.Fatalf("decode export: %v", err)
	}
	var evs []asciicast.Event
	for {
		ev, err := dec.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("decode export: %v", err)
		}
		evs = append(evs, ev)
	}
	return buf.Bytes(), dec.Header(), evs
}

func verify(t testing.TB, s *Store, id string) Report {
	t.Helper()
	rep, err := s.Verify(id)
	if err != nil {
		t.Fatalf("Verify: %v", err)
	}
	return rep
}

// setFlushHook installs fn in every flush transaction until the test ends.
func (s *Store) setFlushHook(t testing.TB, fn func() error) {
	t.Helper()
	if fn == nil {
		s.flushHook.Store(nil)
		return
	}
	s.flushHook.Store(&fn)
	t.Cleanup(func() { s.flushHook.Store(nil) })
}

// boltDB is the bbolt file of a store on the bbolt backend, for tests that
// look at or edit it directly.
func (s *Store) boltDB() *bolt.DB { return s.b.(*boltBackend).db }
