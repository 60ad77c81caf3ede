package console

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/bastionhq/bastion/recorder"
	"github.com/bastionhq/bastion/recorder/asciicast"
)

// A large recording plays in segments: the page gives the player (its
// segmented source) an index of the whole recording, its duration,
// markers and segments, and the player fetches the segment it plays or
// seeks into, holding only that one and its neighbours. Each segment
// carries a snapshot, the output just before it, that draws the screen
// as it was at the segment's start, so a seek anywhere does not need
// what comes before. Times are cut to the page's idle limit here (the
// segmented source has no idle limit of its own), the same way for the
// index and every segment, so the timeline, the markers and the
// segments agree over the whole recording.
var (
	// segmentedAbove is the recorded size above which a recording plays
	// in segments; below it the page reads it whole (castData).
	segmentedAbove int64 = 16 << 20
	// segmentBytes is about how much event data a segment holds.
	segmentBytes int64 = 1 << 20
)

const (
	// firstSegmentBytes is the first segment's size: small, so the
	// player's first frame does not wait for a whole segment.
	firstSegmentBytes = 64 << 10
	// snapshotBytes is how much output before a segment's start its
	// snapshot replays.
	snapshotBytes = 64 << 10
	// minIdleUS is the smallest idle limit a page may ask for (0.1 s);
	// shorter pauses are never cut, so the index does not keep them.
	minIdleUS = 100_000
	// maxIndexes is how many recordings' indexes the console keeps.
	maxIndexes = 8
	// viewGrantTTL bounds a page view's grant for its segments (it
	// ends with the sign-in, if sooner).
	viewGrantTTL = 12 * time.Hour
)

// segIndex is the index of one ended recording, built by one walk over it
// (which checks its whole chain), in the recording's own times (µs).
type segIndex struct {
	cols, rows int
	segs       []segment
	markers    []marker
	gaps       []gap // pauses longer than minIdleUS, in order
	end        int64 // the recording's duration
}

type segment struct {
	start      int64         // the time of its first event (0 for the first segment)
	from       recorder.Seek // where reading for its snapshot starts
	cols, rows int           // the terminal's size at its start
}

type marker struct {
	at    int64
	label string
}

// gap is a pause of len µs before the event at at.
type gap struct{ at, len int64 }

// errIndexClosed stops an index walk when the console closes.
var errIndexClosed = errors.New("console: closed")

// buildIndex walks recording info once.
func (c *Console) buildIndex(info recorder.SessionInfo) (*segIndex, error) {
	ix := &segIndex{cols: info.Width, rows: info.Height}
	if ix.cols <= 0 || ix.rows <= 0 {
		ix.cols, ix.rows = 80, 24
	}
	cols, rows := ix.cols, ix.rows
	type chunkStart struct {
		at  recorder.Seek
		out int64 // output bytes before it
	}
	var recent []chunkStart // chunks a snapshot may start at
	var out, inSeg, last int64
	chunk := int64(-1)
	ix.segs = append(ix.segs, segment{cols: cols, rows: rows})
	err := c.cfg.Store.EventsSeek(info.ID, recorder.Seek{}, func(at recorder.Seek, ev asciicast.Event, data []byte) error {
		if int64(at.Chunk) != chunk {
			select {
			case <-c.done:
				return errIndexClosed
			default:
			}
			chunk = int64(at.Chunk)
			if len(recent) == 0 && len(ix.segs) == 1 {
				// The first segment reads from here too, not from the
				// start: a read from a Seek of this walk checks each
				// chunk against what the walk checked against the seal,
				// which one from the start that stops at the segment's
				// end would not.
				ix.segs[0].from = at
			}
			recent = append(recent, chunkStart{at, out})
		}
		us := int64(ev.Time / time.Microsecond)
		if us-last > minIdleUS {
			ix.gaps = append(ix.gaps, gap{at: us, len: us - last})
		}
		limit := segmentBytes
		if len(ix.segs) == 1 {
			limit = min(limit, firstSegmentBytes) // the first frame waits for the first segment only
		}
		if inSeg >= limit && us > last {
			// A new segment; its snapshot starts at the last chunk with
			// at least snapshotBytes of output before the segment.
			i := max(sort.Search(len(recent), func(i int) bool { return recent[i].out > out-snapshotBytes })-1, 0)
			ix.segs = append(ix.segs, segment{start: us, from: recent[i].at, cols: cols, rows: rows})
			recent = recent[i:]
			inSeg = 0
		}
		inSeg += int64(len(data)) + 16
		switch ev.Type {
		case asciicast.Output:
			out += int64(len(data))
		case asciicast.Resize:
			if w, h, ok := parseSize(string(data)); ok {
				cols, rows = w, h
			}
		case asciicast.Marker:
			ix.markers = append(ix.markers, marker{at: us, label: string(data)})
		}
		last = us
		return nil
	})
	if err != nil {
		return nil, err
	}
	ix.end = last
	if !info.End.IsZero() {
		ix.end = max(ix.end, int64(info.End.Sub(info.Start)/time.Microsecond))
	}
	if ix.end-last > minIdleUS {
		ix.gaps = append(ix.gaps, gap{at: ix.end, len: ix.end - last}) // the pause before the end
	}
	// Every segment starts before the end (the player's rule): a last
	// one that starts at it joins the one before.
	for len(ix.segs) > 1 && ix.segs[len(ix.segs)-1].start >= ix.end {
		ix.segs = ix.segs[:len(ix.segs)-1]
	}
	return ix, nil
}

// indexEntry is a cached index, or one being built.
type indexEntry struct {
	ready chan struct{}
	ix    *segIndex
	err   error
	used  time.Time
}

// recordingIndex returns recording info's index, building it once (concurrent
// callers wait for the same build) and keeping the last maxIndexes used.
func (c *Console) recordingIndex(info recorder.SessionInfo) (*segIndex, error) {
	c.indexMu.Lock()
	e, ok := c.indexes[info.ID]
	if !ok {
		e = &indexEntry{ready: make(chan struct{})}
		c.indexes[info.ID] = e
		if len(c.indexes) > maxIndexes {
			var oldest string
			for id, o := range c.indexes {
				if o != e && (oldest == "" || o.used.Before(c.indexes[oldest].used)) {
					oldest = id
				}
			}
			delete(c.indexes, oldest)
		}
	}
	e.used = c.now()
	c.indexMu.Unlock()
	if !ok {
		e.ix, e.err = c.buildIndex(info)
		if e.err != nil {
			c.indexMu.Lock()
			if c.indexes[info.ID] == e {
				delete(c.indexes, info.ID) // not kept: the next request tries again
			}
			c.indexMu.Unlock()
		}
		close(e.ready)
	}
	<-e.ready
	return e.ix, e.err
}

// prepareIndex starts building info's index in the background (a page
// view does, so the build overlaps the page's load).
func (c *Console) prepareIndex(info recorder.SessionInfo) {
	c.inflight.Add(1)
	go func() {
		defer c.inflight.Done()
		if _, err := c.recordingIndex(info); err != nil && !errors.Is(err, errIndexClosed) {
			c.log.Warn("console: recording index", "session", info.ID, "err", err)
		}
	}()
}

// segmented reports whether info plays in segments: an ended terminal
// recording larger than segmentedAbove.
func segmented(info recorder.SessionInfo) bool {
	return info.Status != recorder.StatusLive && info.Kind != "tcp" && info.Stored > segmentedAbove
}

// axis maps the recording's times to the player's: each pause longer
// than the idle limit cut to it.
type axis struct {
	at, cut []int64 // cut[i]: the time cut from the pauses up to gap i, included
}

func (ix *segIndex) axis(idle int64) axis {
	var a axis
	if idle <= 0 {
		return a
	}
	var cut int64
	for _, g := range ix.gaps {
		if g.len > idle {
			cut += g.len - idle
			a.at = append(a.at, g.at)
			a.cut = append(a.cut, cut)
		}
	}
	return a
}

// seconds is time t (µs) on the player's timeline, in seconds.
func (a axis) seconds(t int64) float64 {
	i := sort.Search(len(a.at), func(i int) bool { return a.at[i] > t })
	if i > 0 {
		t -= a.cut[i-1]
	}
	return float64(t) / 1e6
}

// parseIdle reads a segmented replay's idle limit: empty or 0 for none,
// else seconds from 0.1 to 3600. It returns µs.
func parseIdle(v string) (int64, error) {
	if v == "" {
		return 0, nil
	}
	f, err := strconv.ParseFloat(v, 64)
	if err != nil || !(f == 0 || f >= float64(minIdleUS)/1e6 && f <= 3600) {
		return 0, errors.New("idle is 0 (none) or seconds from 0.1 to 3600")
	}
	return int64(f * 1e6), nil
}

// viewGrant makes the grant of an audited page view for its segmented
// replay: unlike the one-use grant of a whole download, it covers every
// fetch of the index and the segments by the same sign-in for that
// session while the page is open (the player fetches a segment again
// when it comes back to it), until the sign-in ends or viewGrantTTL.
func (c *Console) viewGrant(s *websession, id string) string {
	tok := c.grant(s, id)
	c.grantsMu.Lock()
	defer c.grantsMu.Unlock()
	g := c.grants[tok]
	g.view, g.expires = true, minTime(s.expires, c.now().Add(viewGrantTTL))
	c.grants[tok] = g
	return tok
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

// checkView reports whether tok is a valid view grant of s for session id.
func (c *Console) checkView(tok string, s *websession, id string) bool {
	if tok == "" {
		return false
	}
	c.grantsMu.Lock()
	defer c.grantsMu.Unlock()
	g, ok := c.grants[tok]
	return ok && g.view && g.s == s && g.session == id && c.now().Before(g.expires)
}

// segmentedRead authorises a fetch of a segmented replay, as castData
// does a download: the session must be one the caller may see (the
// policy in force now), a recording that plays in segments, and the
// fetch carries its page view's grant or is audited itself (what, the
// index or a segment, in the record), refused when the audit log cannot
// record it. It returns the index and the idle limit, or has answered.
func (c *Console) segmentedRead(w http.ResponseWriter, r *http.Request, s *websession, what string) (recorder.SessionInfo, *segIndex, int64, bool) {
	info, ok := c.visibleSession(r, s)
	if !ok {
		http.Error(w, "no such session", http.StatusNotFound)
		return info, nil, 0, false
	}
	q := r.URL.Query()
	idle, err := parseIdle(q.Get("idle"))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return info, nil, 0, false
	}
	if !segmented(info) {
		http.Error(w, "this recording is not played in segments: /api/sessions/"+info.ID+"/cast sends it whole", http.StatusBadRequest)
		return info, nil, 0, false
	}
	if refuseAnotherSite(w, r) {
		return info, nil, 0, false
	}
	if !c.checkView(q.Get("view"), s, info.ID) {
		if _, err := c.cfg.Store.Audit(recorder.AuditEvent{Type: "session.replay", User: s.identity.User, Issuer: s.identity.Issuer,
			Subject: s.identity.Subject, SessionID: info.ID, Target: info.Target, Outcome: "allowed",
			Fields: map[string]string{"via": "console", "part": what, "client_addr": r.RemoteAddr}}); err != nil {
			http.Error(w, "the audit log cannot be written, so the replay is refused", http.StatusServiceUnavailable)
			return info, nil, 0, false
		}
	}
	ix, err := c.recordingIndex(info)
	if err != nil {
		c.log.Warn("console: recording index", "session", info.ID, "err", err)
		http.Error(w, "the recording cannot be read", http.StatusInternalServerError)
		return info, nil, 0, false
	}
	return info, ix, idle, true
}

// segmentsIndex sends a segmented recording's index, in the format of
// asciinema-player's segmented source: the duration, the size, every
// marker and every segment's start and URL (which carries the page's
// grant and the idle limit on).
func (c *Console) segmentsIndex(w http.ResponseWriter, r *http.Request, s *websession) {
	info, ix, idle, ok := c.segmentedRead(w, r, s, "index")
	if !ok {
		return
	}
	a := ix.axis(idle)
	q := url.Values{}
	if v := r.URL.Query().Get("view"); v != "" {
		q.Set("view", v)
	}
	if idle > 0 {
		q.Set("idle", r.URL.Query().Get("idle"))
	}
	type seg struct {
		Start float64 `json:"start"`
		URL   string  `json:"url"`
	}
	type term struct {
		Cols int `json:"cols"`
		Rows int `json:"rows"`
	}
	out := struct {
		Version  int      `json:"version"`
		Duration float64  `json:"duration"`
		Term     term     `json:"term"`
		Segments []seg    `json:"segments"`
		Markers  [][2]any `json:"markers"`
	}{Version: 1, Duration: a.seconds(ix.end), Term: term{ix.cols, ix.rows}, Markers: [][2]any{}}
	base := "/api/sessions/" + url.PathEscape(info.ID) + "/segments/"
	for i, sg := range ix.segs {
		u := base + strconv.Itoa(i)
		if len(q) > 0 {
			u += "?" + q.Encode()
		}
		out.Segments = append(out.Segments, seg{Start: a.seconds(sg.start), URL: u})
	}
	for _, m := range ix.markers {
		out.Markers = append(out.Markers, [2]any{a.seconds(m.at), m.label})
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	json.NewEncoder(w).Encode(out)
}

// errSegmentDone ends a segment's walk at the next segment's start.
var errSegmentDone = errors.New("segment done")

// segmentData sends one segment: its snapshot (the terminal's size at its
// start and the output just before it) and its events, with times on the
// idle-limited timeline; the last segment ends with an event at the
// recording's end.
func (c *Console) segmentData(w http.ResponseWriter, r *http.Request, s *websession) {
	n, err := strconv.Atoi(r.PathValue("n"))
	if err != nil || n < 0 || strconv.Itoa(n) != r.PathValue("n") {
		http.Error(w, "a segment is a number from 0", http.StatusBadRequest)
		return
	}
	info, ix, idle, ok := c.segmentedRead(w, r, s, "segment "+strconv.Itoa(n))
	if !ok {
		return
	}
	if n >= len(ix.segs) {
		http.Error(w, fmt.Sprintf("the recording has %d segments", len(ix.segs)), http.StatusBadRequest)
		return
	}
	sg := ix.segs[n]
	next := int64(-1)
	if n+1 < len(ix.segs) {
		next = ix.segs[n+1].start
	}
	a := ix.axis(idle)
	var tail []byte
	var events []byte
	count := 0
	err = c.cfg.Store.EventsSeek(info.ID, sg.from, func(_ recorder.Seek, ev asciicast.Event, data []byte) error {
		us := int64(ev.Time / time.Microsecond)
		if next >= 0 && us >= next {
			return errSegmentDone
		}
		if us < sg.start {
			if ev.Type == asciicast.Output {
				tail = append(tail, data...)
				if len(tail) > 2*snapshotBytes {
					tail = append(tail[:0], tail[len(tail)-snapshotBytes:]...)
				}
			}
			return nil
		}
		switch ev.Type {
		case asciicast.Output, asciicast.Resize, asciicast.Marker:
		default:
			return nil
		}
		b, err := json.Marshal([]any{a.seconds(us), ev.Type.String(), string(data)})
		if err != nil {
			return err
		}
		if count > 0 {
			events = append(events, ',')
		}
		events = append(events, b...)
		count++
		return nil
	})
	if err != nil && !errors.Is(err, errSegmentDone) {
		c.log.Warn("console: segment", "session", info.ID, "segment", n, "err", err)
		http.Error(w, "the recording cannot be read", http.StatusInternalServerError)
		return
	}
	if next < 0 {
		if count > 0 {
			events = append(events, ',')
		}
		b, _ := json.Marshal([]any{a.seconds(ix.end), "o", ""})
		events = append(events, b...)
	}
	snap, _ := json.Marshal(map[string]any{"cols": sg.cols, "rows": sg.rows, "init": snapshot(tail)})
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	bw := bufio.NewWriterSize(w, 64<<10)
	bw.WriteString(`{"snapshot":`)
	bw.Write(snap)
	bw.WriteString(`,"events":[`)
	bw.Write(events)
	bw.WriteString("]}\n")
	bw.Flush()
}

// snapshot is the output a segment's snapshot replays: the last
// snapshotBytes of tail, from a line's start when it was cut (not in the
// middle of an escape sequence), after a reset of the terminal's modes.
func snapshot(tail []byte) string {
	if len(tail) > snapshotBytes {
		tail = tail[len(tail)-snapshotBytes:]
		if i := slices.Index(tail, '\n'); i >= 0 {
			tail = tail[i+1:]
		}
		for len(tail) > 0 && !utf8.RuneStart(tail[0]) {
			tail = tail[1:]
		}
	}
	return strings.ToValidUTF8(string(tail), "\uFFFD")
}

// indexCache is the Console's cache of recording indexes.
type indexCache struct {
	indexMu sync.Mutex
	indexes map[string]*indexEntry
}
