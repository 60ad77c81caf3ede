package console

import (
	"crypto/ed25519"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/bastionhq/bastion/recorder"
	"github.com/bastionhq/bastion/recorder/asciicast"
)

// smallSegments makes every recording play in segments of about n bytes
// for the test.
func smallSegments(t *testing.T, n int64) {
	above, bytes := segmentedAbove, segmentBytes
	segmentedAbove, segmentBytes = 0, n
	t.Cleanup(func() { segmentedAbove, segmentBytes = above, bytes })
}

// getAs fetches path with cookie ck.
func getAs(c *Console, path string, ck *http.Cookie) *httptest.ResponseRecorder {
	req := httptest.NewRequest("GET", path, nil)
	if ck != nil {
		req.AddCookie(ck)
	}
	return serve(c, req)
}

// viewURL opens session id's page as ck and returns its segments URL.
func viewURL(t *testing.T, c *Console, id string, ck *http.Cookie) string {
	t.Helper()
	page := getAs(c, "/sessions/"+id, ck)
	body := page.Body.String()
	i := strings.Index(body, `data-segments="`)
	if page.Code != http.StatusOK || i < 0 || strings.Contains(body, `/cast`) {
		t.Fatalf("the page of a segmented recording: %d\n%s", page.Code, body)
	}
	body = body[i+len(`data-segments="`):]
	return strings.ReplaceAll(body[:strings.IndexByte(body, '"')], "&amp;", "&")
}

// TestSegmentRequests: the index and segment routes answer malformed
// parameters with 400 and say why, refuse what the caller may not see
// (404) or without a sign-in (401), and audit a fetch unless it carries
// its audited page view's grant.
func TestSegmentRequests(t *testing.T) {
	smallSegments(t, 64)
	c, st, _ := newTestConsole(t, false)
	st.sessions["s-alice"] = recorder.SessionInfo{ID: "s-alice", User: "alice", Issuer: issuer, Target: "web1", Kind: "shell", Stored: 1 << 10, Status: recorder.StatusEnded}
	st.sessions["s-tcp"] = recorder.SessionInfo{ID: "s-tcp", User: "alice", Issuer: issuer, Target: "db", Kind: "tcp", Stored: 1 << 10, Status: recorder.StatusEnded}
	st.sessions["s-live"] = recorder.SessionInfo{ID: "s-live", User: "alice", Issuer: issuer, Target: "web1", Kind: "shell", Stored: 1 << 10, Status: recorder.StatusLive}
	for i := range 20 {
		st.events = append(st.events, asciicast.Event{Time: time.Duration(i) * time.Second, Type: asciicast.Output, Data: strings.Repeat("x", 40) + "\r\n"})
	}
	alice, _ := signIn(c, "alice")
	carol, _ := signIn(c, "carol")
	index := viewURL(t, c, "s-alice", alice)
	view := index[strings.Index(index, "view="):]
	base := "/api/sessions/s-alice/segments"
	for _, tc := range []struct {
		path string
		code int
		says string
	}{
		{index, 200, `"version":1`},
		{index + "&idle=0", 200, `"version":1`},
		{index + "&idle=2", 200, `"version":1`},
		{index + "&idle=abc", 400, "idle is"},
		{index + "&idle=-1", 400, "idle is"},
		{index + "&idle=0.05", 400, "idle is"},
		{index + "&idle=3601", 400, "idle is"},
		{index + "&idle=NaN", 400, "idle is"},
		{index + "&idle=Inf", 400, "idle is"},
		{base + "/0?" + view, 200, `"snapshot"`},
		{base + "/1?" + view + "&idle=0.5", 200, `"snapshot"`},
		{base + "/x?" + view, 400, "a segment is a number"},
		{base + "/-1?" + view, 400, "a segment is a number"},
		{base + "/01?" + view, 400, "a segment is a number"},
		{base + "/+1?" + view, 400, "a segment is a number"},
		{base + "/99999999999999999999?" + view, 400, "a segment is a number"},
		{base + "/9999?" + view, 400, "segments"},
		{base + "/0?" + view + "&idle=x", 400, "idle is"},
		{"/api/sessions/s-tcp/segments", 400, "not played in segments"},
		{"/api/sessions/s-live/segments/0", 400, "not played in segments"},
		{"/api/sessions/nonesuch/segments/0", 404, "no such session"},
	} {
		r := getAs(c, tc.path, alice)
		if r.Code != tc.code || !strings.Contains(r.Body.String(), tc.says) {
			t.Errorf("GET %s: %d %q, want %d saying %q", tc.path, r.Code, shorten(r.Body.String(), 200), tc.code, tc.says)
		}
	}
	// Someone who may not see the session, even with the grant; nobody
	// signed in.
	for _, p := range []string{index, base + "/0?" + view} {
		if r := getAs(c, p, carol); r.Code != http.StatusNotFound {
			t.Errorf("carol's %s: %d", p, r.Code)
		}
		if r := getAs(c, p, nil); r.Code != http.StatusUnauthorized {
			t.Errorf("%s without a sign-in: %d", p, r.Code)
		}
	}

	// Audit: the page view was the one record so far (the fetches above
	// carried its grant, or were refused before reading).
	records := func() (n int, parts []string) {
		for _, ev := range st.audited {
			if ev.Type == "session.replay" && ev.SessionID == "s-alice" {
				n++
				if p := ev.Fields["part"]; p != "" {
					parts = append(parts, p)
				}
			}
		}
		return
	}
	if n, parts := records(); n != 1 || len(parts) != 0 {
		t.Fatalf("after the page view and its fetches: %d records, parts %q", n, parts)
	}
	// Without the grant, or with another sign-in's, a fetch is audited
	// itself, naming the part.
	other, _ := signIn(c, "alice")
	getAs(c, base+"/1", alice)
	getAs(c, index, other)
	if n, parts := records(); n != 3 || strings.Join(parts, ",") != "segment 1,index" {
		t.Errorf("two fetches without a grant: %d records, parts %q", n, parts)
	}
	// The grant of a download of the whole recording is not a view
	// grant, nor the other way round.
	castGrant := c.grant(c.auth.sessions[sessionKey(alice.Value)], "s-alice")
	getAs(c, base+"/0?view="+castGrant, alice)
	if n, _ := records(); n != 4 {
		t.Errorf("a download's grant as a view grant: %d records", n)
	}
	// The audit log cannot be written: a fetch without the grant is
	// refused; the page's own fetches, covered by its audited view, go on.
	st.auditErr = errors.New("disk full")
	if r := getAs(c, base+"/0", alice); r.Code != http.StatusServiceUnavailable {
		t.Errorf("a fetch the audit cannot record: %d", r.Code)
	}
	if r := getAs(c, base+"/0?"+view, alice); r.Code != http.StatusOK {
		t.Errorf("the page's fetch while the audit log fails: %d", r.Code)
	}
}

var idleCases = []struct {
	in   string
	want int64
	ok   bool
}{
	{"", 0, true}, {"0", 0, true}, {"0.1", 100_000, true}, {"2", 2_000_000, true}, {"3600", 3_600_000_000, true},
	{"0.09", 0, false}, {"-1", 0, false}, {"3600.5", 0, false}, {"x", 0, false}, {"NaN", 0, false}, {"Inf", 0, false},
	{"1e400", 0, false}, {" 2", 0, false}, {"2s", 0, false},
}

func TestParseIdle(t *testing.T) {
	for _, tc := range idleCases {
		got, err := parseIdle(tc.in)
		if (err == nil) != tc.ok || tc.ok && got != tc.want {
			t.Errorf("parseIdle(%q) = %d, %v", tc.in, got, err)
		}
	}
}

func FuzzParseIdle(f *testing.F) {
	for _, tc := range idleCases {
		f.Add(tc.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if us, err := parseIdle(s); err == nil && (us != 0 && us < minIdleUS || us > 3600e6) {
			t.Fatalf("parseIdle(%q) = %d", s, us)
		}
	})
}

// testClock is a clock the test moves (the recorder's flusher reads it
// too).
type testClock struct{ ns atomic.Int64 }

func (c *testClock) Now() time.Time      { return time.Unix(0, c.ns.Load()).UTC() }
func (c *testClock) Add(d time.Duration) { c.ns.Add(int64(d)) }

// realStore is a recorder store as the console's Store, on a clock the
// test moves.
func realStore(t *testing.T) (*recorder.Store, *testClock) { return realStoreTB(t, 4<<10) }

func realStoreTB(t testing.TB, buffer int) (*recorder.Store, *testClock) {
	t.Helper()
	clk := &testClock{}
	clk.ns.Store(time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixNano())
	_, key, _ := ed25519.GenerateKey(nil)
	s, err := recorder.Open(recorder.Config{Path: filepath.Join(t.TempDir(), "bastion.db"), SealKey: key, SessionBuffer: buffer, Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s, clk
}

type segIndexJSON struct {
	Version  int     `json:"version"`
	Duration float64 `json:"duration"`
	Term     struct{ Cols, Rows int }
	Segments []struct {
		Start float64
		URL   string
	}
	Markers [][2]any
}

type segJSON struct {
	Snapshot struct {
		Cols, Rows int
		Init       string
	}
	Events [][3]any
}

// TestSegmentsPlayTheRecording plays a recording (pauses, resizes,
// markers, many chunks) through its index and segments as the player
// does, checking the player's rules for them, and that together they are
// the recording: its events in order, times cut to the idle limit, each
// segment's snapshot the output before it.
func TestSegmentsPlayTheRecording(t *testing.T) {
	smallSegments(t, 3<<10)
	st, clk := realStore(t)
	c, _, _ := newTestConsole(t, false)
	c.cfg.Store = st
	rec, err := st.Begin(recorder.SessionInfo{Kind: "shell", User: "alice", Issuer: issuer, Target: "web1", Width: 80, Height: 24})
	if err != nil {
		t.Fatal(err)
	}
	step := clk.Add
	for i := range 400 {
		step(10 * time.Millisecond)
		switch {
		case i%97 == 0:
			step(7 * time.Second) // a pause the idle limit cuts
		case i%150 == 1:
			rec.Resize(100+i%7, 30)
		case i%61 == 0:
			rec.Marker("marker " + string(rune('a'+i%26)))
		}
		rec.Output([]byte(strings.Repeat(string(rune('a'+i%26)), 60) + "\r\n"))
	}
	step(3 * time.Second)
	if err := rec.End(recorder.ExitInfo{}); err != nil {
		t.Fatal(err)
	}
	info, _ := st.Session(rec.ID())
	var want []asciicast.Event
	st.Events(rec.ID(), func(ev asciicast.Event) error {
		want = append(want, ev)
		return nil
	})
	alice, _ := signIn(c, "alice")
	index := viewURL(t, c, rec.ID(), alice)
	for _, idle := range []float64{0, 1} {
		u := index
		if idle > 0 {
			u += "&idle=1"
		}
		r := getAs(c, u, alice)
		var ix segIndexJSON
		if err := json.Unmarshal(r.Body.Bytes(), &ix); err != nil || r.Code != 200 {
			t.Fatalf("index: %d %v\n%s", r.Code, err, r.Body)
		}
		if len(ix.Segments) < 5 || ix.Segments[0].Start != 0 || ix.Term.Cols != 80 || ix.Term.Rows != 24 {
			t.Fatalf("index: %+v", ix)
		}
		// The player's timeline: the recording's times with pauses cut to
		// the idle limit.
		cutAt := func(d time.Duration) float64 {
			var out, last time.Duration
			for _, ev := range want {
				if ev.Time > d {
					break
				}
				g := ev.Time - last
				if idle > 0 && g > time.Second {
					g = time.Second
				}
				out, last = out+g, ev.Time
			}
			g := d - last
			if idle > 0 && g > time.Second {
				g = time.Second
			}
			return (out + g).Seconds()
		}
		if d := info.End.Sub(info.Start); !near(ix.Duration, cutAt(d)) {
			t.Errorf("idle %v: duration %v, want %v", idle, ix.Duration, cutAt(d))
		}
		var got []asciicast.Event
		var times []float64
		var markers []string
		for n, sg := range ix.Segments {
			if n > 0 && sg.Start <= ix.Segments[n-1].Start || sg.Start >= ix.Duration {
				t.Fatalf("segment %d starts at %v (duration %v)", n, sg.Start, ix.Duration)
			}
			r := getAs(c, sg.URL, alice)
			var seg segJSON
			if err := json.Unmarshal(r.Body.Bytes(), &seg); err != nil || r.Code != 200 || len(seg.Events) == 0 {
				t.Fatalf("segment %d: %d %v", n, r.Code, err)
			}
			end := ix.Duration
			if n+1 < len(ix.Segments) {
				end = ix.Segments[n+1].Start
			}
			if n > 0 && seg.Events[0][0].(float64) != sg.Start {
				t.Errorf("segment %d's first event at %v, it starts at %v", n, seg.Events[0][0], sg.Start)
			}
			// Its snapshot draws the screen at its start: the output just
			// before it, at the size then.
			var before strings.Builder
			cols := 80
			for _, ev := range want[:len(got)] {
				switch ev.Type {
				case asciicast.Output:
					before.WriteString(ev.Data)
				case asciicast.Resize:
					cols, _, _ = parseSize(ev.Data)
				}
			}
			if !strings.HasSuffix(before.String(), seg.Snapshot.Init) || n > 0 && len(seg.Snapshot.Init) < 1000 || seg.Snapshot.Cols != cols {
				t.Errorf("segment %d's snapshot (%dx%d, %d bytes) is not the output before it", n, seg.Snapshot.Cols, seg.Snapshot.Rows, len(seg.Snapshot.Init))
			}
			for i, ev := range seg.Events {
				at := ev[0].(float64)
				if at < sg.Start || (n+1 < len(ix.Segments) && at >= end) || at > end {
					t.Fatalf("segment %d event %d at %v, outside [%v, %v)", n, i, at, sg.Start, end)
				}
				times = append(times, at)
				typ := asciicast.EventType(ev[1].(string)[0])
				got = append(got, asciicast.Event{Type: typ, Data: ev[2].(string)})
				if typ == asciicast.Marker {
					markers = append(markers, ev[2].(string))
				}
			}
		}
		if last := times[len(times)-1]; last != ix.Duration {
			t.Errorf("the last event at %v, the duration is %v", last, ix.Duration)
		}
		got, times = got[:len(got)-1], times[:len(times)-1] // the end
		if len(got) != len(want) {
			t.Fatalf("idle %v: %d events in the segments, %d in the recording", idle, len(got), len(want))
		}
		for i := range want {
			if got[i].Type != want[i].Type || got[i].Data != want[i].Data || !near(times[i], cutAt(want[i].Time)) {
				t.Fatalf("idle %v: event %d is %v at %v, want %v at %v", idle, i, got[i], times[i], want[i], cutAt(want[i].Time))
			}
		}
		var listed []string
		for i, m := range ix.Markers {
			listed = append(listed, m[1].(string))
			if i < len(markers) && m[1] != markers[i] {
				t.Errorf("marker %d: %v in the index, %q in the segments", i, m, markers[i])
			}
		}
		if len(listed) != len(markers) || len(markers) < 5 {
			t.Errorf("markers: index %q, segments %q", listed, markers)
		}
	}
}

func near(a, b float64) bool { return a-b < 1e-6 && b-a < 1e-6 }

// A segment's snapshot starts at a line when it had to be cut, never in
// an escape sequence or a character.
func TestSnapshot(t *testing.T) {
	if got := snapshot([]byte("short\r\n\x1b[1mtail")); got != "short\r\n\x1b[1mtail" {
		t.Errorf("a short tail: %q", got)
	}
	long := "\x1b[31mé" + strings.Repeat("x", snapshotBytes) + "\nlast line\x1b[0m"
	if got := snapshot([]byte(long)); got != "last line\x1b[0m" {
		t.Errorf("a long tail: %q", shorten(got, 40))
	}
	noLine := strings.Repeat("é", snapshotBytes)
	if got := snapshot([]byte(noLine)); !strings.HasPrefix(got, "é") || len(got) > snapshotBytes {
		t.Errorf("a tail without a line: %q", shorten(got, 10))
	}
}

// BenchmarkBuildIndex walks a 64 MiB recording of 4 KiB outputs (the
// bench's replay fixture's shape) into its index.
func BenchmarkBuildIndex(b *testing.B) {
	st, clk := realStoreTB(b, 0)
	rec, err := st.Begin(recorder.SessionInfo{Kind: "shell", User: "alice", Issuer: issuer, Target: "web1", Width: 80, Height: 24})
	if err != nil {
		b.Fatal(err)
	}
	line := strings.Repeat("\x1b[32m2026-01-02T03:04:05Z\x1b[0m web1 app[4242]: GET /api/v1/items?page=7 status=200\r\n", 50)[:4096]
	for range (64 << 20) / 4096 {
		clk.Add(time.Millisecond)
		rec.Output([]byte(line))
	}
	rec.End(recorder.ExitInfo{})
	info, _ := st.Session(rec.ID())
	c := &Console{cfg: Config{Store: st}, done: make(chan struct{})}
	if ix, err := c.buildIndex(info); err != nil || len(ix.segs) < 60 {
		b.Fatalf("index of %+v: %d segments, %v", info, len(ix.segs), err)
	}
	b.SetBytes(info.Stored)
	for b.Loop() {
		if _, err := c.buildIndex(info); err != nil {
			b.Fatal(err)
		}
	}
}
