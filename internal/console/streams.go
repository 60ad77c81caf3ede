package console

import (
	"errors"
	"net/http"
	"strconv"
	"time"
)

// Long responses, the approval and live streams and the recording,
// capture and audit downloads, are the only ones the server's write
// timeout does not end. Two bounds keep them from being a way to hold the
// bastion's connections, goroutines and store reads without end:
//
//   - one identity (issuer and subject, over all its sign-ins) holds at
//     most maxLongResponses at once; one more is refused with 429, and
//     nobody else's are affected;
//   - a response whose reader takes nothing for stallTimeout ends (the
//     write deadline moves on with each write, rather than being lifted);
//   - a response ends with its sign-in: signed out, expired or revoked
//     (bastion ca revoke --user) since it began, as a live view does.
const (
	maxLongResponses    = 16
	defaultStallTimeout = time.Minute
)

// stallTimeout is a variable for the tests.
var stallTimeout = defaultStallTimeout

func identityKey(s *websession) string { return s.identity.Issuer + "\x00" + s.identity.Subject }

// longResponse takes one of s's identity's places for a long response,
// answering 429 when it holds them all. On success the returned writer
// keeps a write deadline stallTimeout past each write, and release gives
// the place back.
func (c *Console) longResponse(w http.ResponseWriter, s *websession) (http.ResponseWriter, func(), bool) {
	k := identityKey(s)
	c.longMu.Lock()
	if c.long[k] >= maxLongResponses {
		c.longMu.Unlock()
		w.Header().Set("Retry-After", strconv.Itoa(10))
		http.Error(w, "too many streams and downloads open at once for this user: close some (other tabs) and try again", http.StatusTooManyRequests)
		return w, nil, false
	}
	c.long[k]++
	c.longMu.Unlock()
	release := func() {
		c.longMu.Lock()
		if c.long[k]--; c.long[k] <= 0 {
			delete(c.long, k)
		}
		c.longMu.Unlock()
	}
	sw := &stallWriter{ResponseWriter: w, rc: http.NewResponseController(w),
		alive: func() bool { return c.auth.stillSignedIn(s) }, checked: time.Now()}
	sw.rc.SetWriteDeadline(time.Now().Add(stallTimeout))
	return sw, release, true
}

// stallWriter moves the write deadline stallTimeout on before each write
// and flush: a reader that keeps reading keeps its response, one that
// stops loses it.
// It also fails once the sign-in is over (asked at most once a second).
type stallWriter struct {
	http.ResponseWriter
	rc      *http.ResponseController
	alive   func() bool
	checked time.Time
	over    bool
}

// errSignInOver fails the writes of a response whose sign-in is over.
var errSignInOver = errors.New("console: the sign-in is over (signed out, expired or revoked)")

func (sw *stallWriter) extend() error {
	if now := time.Now(); !sw.over && now.Sub(sw.checked) >= time.Second {
		sw.checked, sw.over = now, !sw.alive()
	}
	if sw.over {
		return errSignInOver
	}
	sw.rc.SetWriteDeadline(time.Now().Add(stallTimeout))
	return nil
}

func (sw *stallWriter) Write(p []byte) (int, error) {
	if err := sw.extend(); err != nil {
		return 0, err
	}
	return sw.ResponseWriter.Write(p)
}

func (sw *stallWriter) FlushError() error {
	if err := sw.extend(); err != nil {
		return err
	}
	return sw.rc.Flush()
}

// Unwrap lets http.ResponseController reach the connection's writer.
func (sw *stallWriter) Unwrap() http.ResponseWriter { return sw.ResponseWriter }

// Reading the audit log is the console's heaviest work, and the store
// reads it whole whatever the date asked for: the sessions page reads it
// (blocked and held marks, the search), the audit page and its download
// too. One identity makes at most maxAuditReadsPerIdentity such reads at
// once, one more refused with 429, and the console at most maxAuditReads,
// one more waiting its turn: reloading pages in a loop does not take the
// bastion's CPU, and one identity's reads leave room for everyone else's.
const (
	maxAuditReadsPerIdentity = 2
	maxAuditReads            = 4
)

// errTooManyReads is auditRead's refusal.
var errTooManyReads = errors.New("too many audit log reads at once for this user: wait for the pages you opened, then try again")

// auditRead takes a turn to read the audit log for s's identity, and
// with shared, waits for one of the console's. It fails with
// errTooManyReads past the identity's bound, or with the request's
// context error. A download does not take one of the console's turns: it
// reads as fast as its reader takes it, and a reader that barely reads
// would hold the turn the sessions pages of everyone else wait for.
func (c *Console) auditRead(r *http.Request, s *websession, shared bool) (func(), error) {
	k := identityKey(s)
	c.longMu.Lock()
	if c.auditReads[k] >= maxAuditReadsPerIdentity {
		c.longMu.Unlock()
		return nil, errTooManyReads
	}
	c.auditReads[k]++
	c.longMu.Unlock()
	mine := func() {
		c.longMu.Lock()
		if c.auditReads[k]--; c.auditReads[k] <= 0 {
			delete(c.auditReads, k)
		}
		c.longMu.Unlock()
	}
	if !shared {
		return mine, nil
	}
	select {
	case c.auditTurns <- struct{}{}:
		return func() { <-c.auditTurns; mine() }, nil
	case <-r.Context().Done():
		mine()
		return nil, r.Context().Err()
	}
}
