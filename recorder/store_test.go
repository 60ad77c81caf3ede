package recorder

import (
	"bytes"
	"crypto"
	"crypto/ed25519"
	"crypto/elliptic"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/recorder/asciicast"
	"github.com/bastionhq/bastion/recorder/internal/asciinematest"
)

func TestConfigCheck(t *testing.T) {
	good, _ := testConfig(t)
	tests := []struct {
		name string
		edit func(*Config)
	}{
		{name: "no path", edit: func(c *Config) { c.Path = "" }},
		{name: "no seal key", edit: func(c *Config) { c.SealKey = nil }},
		{name: "short seal key", edit: func(c *Config) { c.SealKey = testKey[:10] }},
		{name: "P-384 seal key", edit: func(c *Config) { c.SealKey = mustECDSA(t, elliptic.P384()) }},
		{name: "bad previous key", edit: func(c *Config) { c.PreviousSealKeys = []crypto.PublicKey{[]byte("x")} }},
		{name: "unknown mode", edit: func(c *Config) { c.Mode = 7 }},
		{name: "negative interval", edit: func(c *Config) { c.FlushInterval = -1 }},
		{name: "negative budget", edit: func(c *Config) { c.SessionByteBudget = -1 }},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			tc.edit(&cfg)
			if _, err := Open(cfg); !errors.Is(err, ErrConfig) {
				t.Errorf("got %v, want %v", err, ErrConfig)
			}
		})
	}
	c, err := Config{Path: "x", SealKey: testKey}.check()
	if err != nil {
		t.Fatal(err)
	}
	if c.FlushInterval != DefaultFlushInterval || c.SessionBuffer != DefaultSessionBuffer || c.MaxPending != DefaultMaxPending || c.Now == nil || c.Logger == nil {
		t.Errorf("defaults not applied: %+v", c)
	}
}

func TestParseMode(t *testing.T) {
	for in, want := range map[string]Mode{"": Strict, "strict": Strict, "best_effort": BestEffort, "best-effort": BestEffort} {
		if got, err := ParseMode(in); err != nil || got != want {
			t.Errorf("ParseMode(%q): got %v, %v, want %v", in, got, err, want)
		}
	}
	if _, err := ParseMode("lax"); err == nil {
		t.Errorf("ParseMode(lax): got nil error, want one")
	}
	if got, want := BestEffort.String(), "best_effort"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A shell session end to end: events, metadata, export, seal.
func TestRecordShellSession(t *testing.T) {
	cfg, clk := testConfig(t)
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{User: "alice", Issuer: "https://idp", Subject: "u1", Target: "web1", Login: "root",
		ClientAddr: "127.0.0.1:5555", CertSerial: 42, Width: 80, Height: 24, Term: "xterm-256color"})
	if len(r.ID()) != 26 {
		t.Errorf("ID: got %q, want a 26-character ULID", r.ID())
	}
	clk.Advance(100 * time.Millisecond)
	must(t, r.Output([]byte("$ ")))
	clk.Advance(time.Second)
	must(t, r.Input([]byte("secret\r"))) // not recorded: RecordInput is off
	must(t, r.Output([]byte("echo h\xc3")))
	clk.Advance(time.Millisecond)
	must(t, r.Output([]byte("\xa9llo \xe2\x82")))
	must(t, r.Output([]byte("\xac\r\n")))
	clk.Advance(time.Second)
	must(t, r.Resize(120, 40))
	must(t, r.Marker("command blocked: rm -rf /"))
	s.sync() // a first chunk, then more
	clk.Advance(time.Second)
	must(t, r.Output([]byte("bye\r\n")))
	clk.Advance(time.Second)
	must(t, r.End(ExitInfo{Status: 3}))

	want := []asciicast.Event{
		{Time: 100 * time.Millisecond, Type: asciicast.Output, Data: "$ "},
		{Time: 1100 * time.Millisecond, Type: asciicast.Output, Data: "echo h"},
		{Time: 1101 * time.Millisecond, Type: asciicast.Output, Data: "\u00e9llo "},
		{Time: 1101 * time.Millisecond, Type: asciicast.Output, Data: "\u20ac\r\n"},
		{Time: 2101 * time.Millisecond, Type: asciicast.Resize, Data: "120x40"},
		{Time: 2101 * time.Millisecond, Type: asciicast.Marker, Data: "command blocked: rm -rf /"},
		{Time: 3101 * time.Millisecond, Type: asciicast.Output, Data: "bye\r\n"},
	}
	if got := events(t, s, r.ID()); !reflect.DeepEqual(got, want) {
		t.Errorf("events:\ngot  %q\nwant %q", got, want)
	}

	info, err := s.Session(r.ID())
	must(t, err)
	if info.Status != StatusEnded || info.ExitStatus != 3 || info.Events != 7 || info.Chunks != 2 ||
		info.BytesIn != 7 || info.BytesOut != int64(len("$ echo h\xc3\xa9llo \xe2\x82\xac\r\nbye\r\n")) ||
		!info.End.Equal(info.Start.Add(4101*time.Millisecond)) || info.CertSerial != 42 || info.Issuer != "https://idp" {
		t.Errorf("session: got %+v", info)
	}

	data, h, evs := export(t, s, r.ID())
	if !reflect.DeepEqual(evs, want) {
		t.Errorf("export events: got %q, want %q", evs, want)
	}
	if h.Width != 80 || h.Height != 24 || h.Env["TERM"] != "xterm-256color" || h.Duration != 4.101 ||
		h.Bastion == nil || h.Bastion.SessionID != r.ID() || h.Bastion.User != "alice" || h.Bastion.Kind != "shell" {
		t.Errorf("export header: got %+v", h)
	}
	if strings.Contains(string(data), "secret") {
		t.Errorf("export contains input although RecordInput is off")
	}
	path := filepath.Join(t.TempDir(), "session.cast")
	must(t, os.WriteFile(path, data, 0o600))
	got, err := asciinematest.Cat(t, path)
	if err != nil {
		t.Fatal(err)
	}
	if want := output(want, asciicast.Output); got != want {
		t.Errorf("asciinema cat: got %q, want %q", got, want)
	}

	rep := verify(t, s, r.ID())
	if !rep.Intact || !rep.Sealed || rep.Chunks != 2 || rep.Events != 7 || rep.BrokenAt != -1 {
		t.Errorf("verify: got %+v, want intact and sealed", rep)
	}
	signedSeal, err := s.SignedSeal(r.ID())
	must(t, err)
	se, err := VerifySeal(s.SealPublicKey(), signedSeal)
	if err != nil || se.SessionID != r.ID() || se.Events != 7 || se.Status != StatusEnded {
		t.Errorf("seal: got %+v, %v", se, err)
	}
	if _, err := VerifySeal(ed25519.NewKeyFromSeed(make([]byte, 32)).Public().(ed25519.PublicKey), signedSeal); err == nil {
		t.Errorf("seal verified with the wrong key")
	}
	if err := r.Output([]byte("late")); !errors.Is(err, ErrEnded) {
		t.Errorf("Output after End: got %v, want %v", err, ErrEnded)
	}
	if err := r.End(ExitInfo{}); !errors.Is(err, ErrEnded) {
		t.Errorf("End twice: got %v, want %v", err, ErrEnded)
	}
}

func TestRecordInputWhenAsked(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.RecordInput = true
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{})
	must(t, r.Input([]byte("ls\r")))
	must(t, r.Input([]byte{0xe2}))
	must(t, r.End(ExitInfo{}))
	if got, want := output(events(t, s, r.ID()), asciicast.Input), "ls\r\ufffd"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

// A split character still pending at End is written as U+FFFD, never lost.
func TestEndFlushesCarry(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{})
	must(t, r.Output([]byte("ok\xf0\x9f")))
	must(t, r.End(ExitInfo{}))
	if got, want := output(events(t, s, r.ID()), asciicast.Output), "ok\ufffd\ufffd"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestLargeWritesAreSplit(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{})
	big := bytes.Repeat([]byte("\u00e9\u20ac\"\x01"), 100<<10/7)
	must(t, r.Output(big))
	must(t, r.End(ExitInfo{}))
	_, _, evs := export(t, s, r.ID()) // decodes with the default line limit
	if len(evs) < 3 {
		t.Errorf("got %d events, want the write split in several", len(evs))
	}
	for i, ev := range evs {
		if len(ev.Data) > maxEventData {
			t.Errorf("event %d: got %d bytes, want at most %d", i, len(ev.Data), maxEventData)
		}
	}
	if got := output(evs, asciicast.Output); got != string(big) {
		t.Errorf("output differs: got %d bytes, want %d", len(got), len(big))
	}
}

func TestByteBudget(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.SessionByteBudget = 10
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{})
	must(t, r.Output([]byte("12345678\u00e9\u00e9"))) // the budget ends inside the second é
	must(t, r.Output([]byte("more")))
	must(t, r.Resize(100, 30))
	must(t, r.Marker("still recorded"))
	must(t, r.End(ExitInfo{}))
	evs := events(t, s, r.ID())
	if got, want := output(evs, asciicast.Output), "12345678\u00e9"; got != want {
		t.Errorf("output: got %q, want %q", got, want)
	}
	if got, want := output(evs, asciicast.Marker), "recording truncated: session byte budget of 10 bytes reached"+"still recorded"; got != want {
		t.Errorf("markers: got %q, want %q", got, want)
	}
	if output(evs, asciicast.Resize) != "" {
		t.Errorf("resize recorded after truncation")
	}
	info, _ := s.Session(r.ID())
	if !info.Truncated || info.BytesOut != 16 {
		t.Errorf("got truncated=%v bytes_out=%d, want true, 16", info.Truncated, info.BytesOut)
	}
	if rep := verify(t, s, r.ID()); !rep.Intact {
		t.Errorf("verify: %+v", rep)
	}
}

func TestResizeAndMarkerInput(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{Width: 5000, Height: -3})
	if info := r.Info(); info.Width != asciicast.DefaultMaxWidth || info.Height != 0 {
		t.Errorf("geometry: got %dx%d, want clamped", info.Width, info.Height)
	}
	if err := r.Resize(0, 24); !errors.Is(err, ErrInvalid) {
		t.Errorf("Resize(0, 24): got %v, want %v", err, ErrInvalid)
	}
	must(t, r.Resize(99999, 99999))
	must(t, r.Marker("bad \xff utf8 "+strings.Repeat("x", 40<<10)))
	must(t, r.End(ExitInfo{}))
	_, h, evs := export(t, s, r.ID())
	if h.Width != 80 || h.Height != 24 {
		t.Errorf("header: got %dx%d, want 80x24 for a session without a terminal size", h.Width, h.Height)
	}
	if evs[0].Data != "1000x1000" || !strings.HasPrefix(evs[1].Data, "bad \ufffd utf8 ") || len(evs[1].Data) > maxEventData {
		t.Errorf("got %q..., want clamped resize and a bounded valid marker", evs[0].Data)
	}
}

func TestAddBytes(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{Kind: "tcp", Target: "pg1"})
	r.AddBytes(100, 2000)
	s.sync()
	if info, _ := s.Session(r.ID()); info.BytesIn != 100 || info.BytesOut != 2000 || info.Status != StatusLive {
		t.Errorf("live: got in=%d out=%d status=%s", info.BytesIn, info.BytesOut, info.Status)
	}
	r.AddBytes(1, 1)
	must(t, r.End(ExitInfo{Reason: "client closed"}))
	info, _ := s.Session(r.ID())
	if info.BytesIn != 101 || info.BytesOut != 2001 || info.Events != 0 || info.Reason != "client closed" {
		t.Errorf("ended: got %+v", info)
	}
	if rep := verify(t, s, r.ID()); !rep.Intact || !rep.Sealed || rep.Chunks != 0 {
		t.Errorf("verify: got %+v", rep)
	}
}

func TestBeginValidation(t *testing.T) {
	cfg, _ := testConfig(t)
	s := openStore(t, cfg)
	for _, id := range []string{"a/b", "a\x00b", "../../etc", strings.Repeat("x", 65), "sp ace", "\u00e9"} {
		if _, err := s.Begin(SessionInfo{ID: id}); !errors.Is(err, ErrInvalid) {
			t.Errorf("Begin(%q): got %v, want %v", id, err, ErrInvalid)
		}
		if _, err := s.Session(id); !errors.Is(err, ErrNotFound) {
			t.Errorf("Session(%q): got %v, want %v", id, err, ErrNotFound)
		}
	}
	begin(t, s, SessionInfo{ID: "custom-1"})
	if _, err := s.Begin(SessionInfo{ID: "custom-1"}); !errors.Is(err, ErrExists) {
		t.Errorf("duplicate: got %v, want %v", err, ErrExists)
	}
	// A prefix of another ID does not see its chunks.
	a := begin(t, s, SessionInfo{ID: "ab"})
	b := begin(t, s, SessionInfo{ID: "abc"})
	must(t, a.Output([]byte("A")))
	must(t, b.Output([]byte("B")))
	must(t, a.End(ExitInfo{}))
	must(t, b.End(ExitInfo{}))
	if got := output(events(t, s, "ab"), asciicast.Output); got != "A" {
		t.Errorf("got %q, want %q", got, "A")
	}
	if _, err := s.Session("nope"); !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v, want %v", err, ErrNotFound)
	}
	if err := s.Export("nope", new(bytes.Buffer)); !errors.Is(err, ErrNotFound) {
		t.Errorf("got %v, want %v", err, ErrNotFound)
	}
}

func TestSessionsFilter(t *testing.T) {
	cfg, clk := testConfig(t)
	s := openStore(t, cfg)
	var ids []string
	for _, u := range []struct{ user, target, kind string }{
		{"alice", "web1", "shell"}, {"bob", "web1", "exec"}, {"alice", "pg1", "postgres"}, {"alice", "web1", "shell"},
	} {
		clk.Advance(time.Minute)
		ids = append(ids, begin(t, s, SessionInfo{User: u.user, Target: u.target, Kind: u.kind}).ID())
	}
	t0 := newClock().Now()
	tests := []struct {
		name string
		f    SessionFilter
		want []string
	}{
		{name: "all newest first", want: []string{ids[3], ids[2], ids[1], ids[0]}},
		{name: "user", f: SessionFilter{User: "alice"}, want: []string{ids[3], ids[2], ids[0]}},
		{name: "target", f: SessionFilter{Target: "web1"}, want: []string{ids[3], ids[1], ids[0]}},
		{name: "kind", f: SessionFilter{Kind: "exec"}, want: []string{ids[1]}},
		{name: "since", f: SessionFilter{Since: t0.Add(3 * time.Minute)}, want: []string{ids[3], ids[2]}},
		{name: "limit", f: SessionFilter{User: "alice", Limit: 2}, want: []string{ids[3], ids[2]}},
		{name: "none", f: SessionFilter{User: "mallory"}, want: nil},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := s.Sessions(tc.f)
			must(t, err)
			var gotIDs []string
			for _, info := range got {
				gotIDs = append(gotIDs, info.ID)
			}
			if !reflect.DeepEqual(gotIDs, tc.want) {
				t.Errorf("got %q, want %q", gotIDs, tc.want)
			}
		})
	}
}

// Sessions recorded concurrently each get exactly their own output.
func TestConcurrentSessions(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.FlushInterval = time.Millisecond
	cfg.SessionBuffer = 8 << 10
	cfg.MaxPending = 32 << 10
	s := openStore(t, cfg)
	const sessions, writes = 6, 300
	recs := make([]*Recording, sessions)
	for i := range recs {
		recs[i] = begin(t, s, SessionInfo{})
	}
	errc := make(chan error, sessions)
	for i, r := range recs {
		go func() {
			line := bytes.Repeat([]byte{byte('a' + i)}, 500)
			for range writes {
				if err := r.Output(line); err != nil {
					errc <- err
					return
				}
			}
			errc <- r.End(ExitInfo{})
		}()
	}
	for range recs {
		must(t, <-errc)
	}
	for i, r := range recs {
		got := output(events(t, s, r.ID()), asciicast.Output)
		if want := strings.Repeat(string(rune('a'+i)), 500*writes); got != want {
			t.Errorf("session %d: got %d bytes, want %d", i, len(got), len(want))
		}
		if rep := verify(t, s, r.ID()); !rep.Intact || !rep.Sealed {
			t.Errorf("session %d: verify %+v", i, rep)
		}
	}
	if n := s.uncommitted.Load(); n != 0 {
		t.Errorf("uncommitted: got %d, want 0", n)
	}
}

// Close interrupts live recordings, seals them, and everything reopens.
func TestCloseInterruptsAndReopen(t *testing.T) {
	cfg, _ := testConfig(t)
	s, err := Open(cfg)
	must(t, err)
	r := begin(t, s, SessionInfo{})
	must(t, r.Output([]byte("unflushed")))
	must(t, s.Close())
	select {
	case <-r.Failed():
	default:
		t.Errorf("Failed not closed after Close")
	}
	if err := r.Output([]byte("x")); !errors.Is(err, ErrClosed) {
		t.Errorf("Output after Close: got %v, want %v", err, ErrClosed)
	}
	if err := r.End(ExitInfo{}); !errors.Is(err, ErrClosed) {
		t.Errorf("End after Close: got %v, want %v", err, ErrClosed)
	}
	if _, err := s.Begin(SessionInfo{}); !errors.Is(err, ErrClosed) {
		t.Errorf("Begin after Close: got %v, want %v", err, ErrClosed)
	}
	must(t, s.Close()) // idempotent

	s2 := openStore(t, cfg)
	info, err := s2.Session(r.ID())
	must(t, err)
	if info.Status != StatusInterrupted || info.Events != 1 {
		t.Errorf("got %+v, want interrupted with 1 event", info)
	}
	if rep := verify(t, s2, r.ID()); !rep.Intact || !rep.Sealed {
		t.Errorf("verify: %+v", rep)
	}
	if got := output(events(t, s2, r.ID()), asciicast.Output); got != "unflushed" {
		t.Errorf("got %q, want %q", got, "unflushed")
	}
}

func TestOpenLockTimeout(t *testing.T) {
	cfg, _ := testConfig(t)
	openStore(t, cfg)
	cfg.OpenTimeout = 50 * time.Millisecond
	if s, err := Open(cfg); err == nil {
		s.Close()
		t.Fatalf("second Open of a locked file succeeded")
	} else if !strings.Contains(err.Error(), "timeout") {
		t.Errorf("got %v, want a lock timeout", err)
	}
}

func TestSealKeyChange(t *testing.T) {
	cfg, _ := testConfig(t)
	s, err := Open(cfg)
	must(t, err)
	r := begin(t, s, SessionInfo{})
	must(t, r.End(ExitInfo{}))
	must(t, s.Close())
	cfg.SealKey = ed25519.NewKeyFromSeed(bytes.Repeat([]byte{9}, 32))
	s2 := openStore(t, cfg)
	rep := verify(t, s2, r.ID())
	if rep.Intact || !strings.Contains(rep.Problem, "different key") {
		t.Errorf("got %+v, want a seal signed by a different key", rep)
	}
}

// A slow replay does not hold the store: Close completes while an Events
// callback is still running.
func TestCloseDuringSlowReplay(t *testing.T) {
	cfg, _ := testConfig(t)
	s, err := Open(cfg)
	must(t, err)
	r := begin(t, s, SessionInfo{})
	must(t, r.Output([]byte("a")))
	must(t, r.Output([]byte("b")))
	must(t, r.End(ExitInfo{}))
	inCallback, resume := make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		first := true
		done <- s.Events(r.ID(), func(asciicast.Event) error {
			if first {
				first = false
				close(inCallback)
				<-resume
			}
			return nil
		})
	}()
	<-inCallback
	must(t, s.Close())
	close(resume)
	if err := <-done; err != nil && !errors.Is(err, ErrClosed) {
		t.Errorf("got %v, want nil or %v", err, ErrClosed)
	}
	if err := s.Events(r.ID(), func(asciicast.Event) error { return nil }); !errors.Is(err, ErrClosed) {
		t.Errorf("after Close: got %v, want %v", err, ErrClosed)
	}
}
