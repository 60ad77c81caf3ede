// Package auditlimit bounds how many refusals of unauthenticated requests
// reach the audit log. A refused SSH login with a forged certificate, or a
// refused certificate request with a garbage token, costs its sender
// nothing but a connection, and each one audited costs the bastion a
// record in the log and at every sink: without a bound, one client could
// fill the disk the recordings live on. A Limiter lets a burst through
// record by record, then a steady rate; what it holds back it counts, and
// a summary record says how many of which kind were held back, when, and
// the last source, so the log still accounts for every refusal.
package auditlimit

import (
	"fmt"
	"maps"
	"net"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"
)

// Defaults: 100 records at once, then 10 a second, and a summary of what
// was held back at most 10 seconds after the first of it.
const (
	DefaultBurst = 100
	DefaultRate  = 10
	DefaultEvery = 10 * time.Second
)

// Summary is what a Limiter held back in one period.
type Summary struct {
	Count       int            // records held back
	First, Last time.Time      // when the first and the last of them came
	LastRemote  string         // the source of the last of them
	Reasons     map[string]int // how many of each reason (a small, fixed set)
	Sources     map[string]int // how many from each source address (no port)
	Burst, Rate int            // the Limiter's bounds
}

// maxReasons and maxSources bound Summary.Reasons and Summary.Sources
// (the rest count as "other").
const (
	maxReasons = 32
	maxSources = 16
)

// Type is the audit event type of a summary.
const Type = "audit.suppressed"

// Fields are a summary's audit fields: the type of the records held back
// (kind), how many, when, the last source and the reasons.
func (s Summary) Fields(kind string) map[string]string {
	return map[string]string{
		"type":        kind,
		"count":       strconv.Itoa(s.Count),
		"first":       s.First.UTC().Format(time.RFC3339Nano),
		"last":        s.Last.UTC().Format(time.RFC3339Nano),
		"last_remote": s.LastRemote,
		"reasons":     list(s.Reasons),
		"sources":     list(s.Sources),
	}
}

// list writes m as "k=n,k=n", most first, "other" last.
func list(m map[string]int) string {
	keys := slices.Collect(maps.Keys(m))
	slices.SortFunc(keys, func(a, b string) int {
		switch {
		case a == "other":
			return 1
		case b == "other":
			return -1
		case m[a] != m[b]:
			return m[b] - m[a]
		}
		return strings.Compare(a, b)
	})
	var b strings.Builder
	for i, k := range keys {
		if i > 0 {
			b.WriteByte(',')
		}
		b.WriteString(k + "=" + strconv.Itoa(m[k]))
	}
	return b.String()
}

// Reason is a summary's audit reason.
func (s Summary) Reason(kind string) string {
	return fmt.Sprintf("%d %s records not written one by one: more came than the audit log takes from unauthenticated clients (%d at once, then %d a second)",
		s.Count, kind, s.Burst, s.Rate)
}

// Limiter is a token bucket over audit records of one kind, safe for
// concurrent use.
type Limiter struct {
	burst, rate float64
	every       time.Duration
	emit        func(Summary)
	now         func() time.Time

	mu     sync.Mutex
	tokens float64
	last   time.Time // when tokens was last brought up to date
	held   Summary
	timer  *time.Timer
}

// New returns a Limiter that lets burst records through at once and rate a
// second after that, and calls emit (on its own goroutine) with what it
// held back, every period with anything held back. Zero values take the
// defaults.
func New(burst int, rate float64, every time.Duration, emit func(Summary)) *Limiter {
	if burst <= 0 {
		burst = DefaultBurst
	}
	if rate <= 0 {
		rate = DefaultRate
	}
	if every <= 0 {
		every = DefaultEvery
	}
	return &Limiter{burst: float64(burst), rate: rate, every: every, emit: emit, now: time.Now, tokens: float64(burst)}
}

// Allow reports whether a record from remote, refused for reason, may be
// written now; if not, it is counted for the next summary.
func (l *Limiter) Allow(remote, reason string) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if !l.last.IsZero() {
		l.tokens = min(l.burst, l.tokens+now.Sub(l.last).Seconds()*l.rate)
	}
	l.last = now
	if l.tokens >= 1 {
		l.tokens--
		return true
	}
	if l.held.Count == 0 {
		l.held.First = now
		if l.timer == nil {
			l.timer = time.AfterFunc(l.every, l.flush)
		}
	}
	l.held.Count++
	l.held.Last, l.held.LastRemote = now, remote
	if l.held.Reasons == nil {
		l.held.Reasons, l.held.Sources = map[string]int{}, map[string]int{}
	}
	count(l.held.Reasons, reason, maxReasons)
	host := remote
	if h, _, err := net.SplitHostPort(remote); err == nil {
		host = h
	}
	count(l.held.Sources, host, maxSources)
	return false
}

// count adds one to m[k]. When m has max keys besides "other" and not k,
// the key with the smallest count makes room, its count moving to
// m["other"]: a source that keeps sending stays in, however many came
// before it.
func count(m map[string]int, k string, max int) {
	if _, ok := m[k]; !ok && len(m)-min(m["other"], 1) >= max {
		least := ""
		for key, n := range m {
			if key != "other" && (least == "" || n < m[least] || n == m[least] && key < least) {
				least = key
			}
		}
		m["other"] += m[least]
		delete(m, least)
	}
	m[k]++
}

// flush emits what was held back since the last summary.
func (l *Limiter) flush() {
	l.mu.Lock()
	s := l.held
	s.Burst, s.Rate = int(l.burst), int(l.rate)
	l.held = Summary{}
	l.timer = nil
	l.mu.Unlock()
	if s.Count > 0 && l.emit != nil {
		l.emit(s)
	}
}

// Close emits what is held back now (at shutdown), and stops the timer.
func (l *Limiter) Close() {
	l.mu.Lock()
	if l.timer != nil {
		l.timer.Stop()
	}
	l.mu.Unlock()
	l.flush()
}
