package console

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/bastionhq/bastion/bastion"
	"github.com/bastionhq/bastion/bastion/linerec"
	"github.com/bastionhq/bastion/internal/safetext"
	"github.com/bastionhq/bastion/recorder"
	"github.com/bastionhq/bastion/recorder/asciicast"
)

// pageSize is the number of sessions a list page shows.
const pageSize = 50

// user wraps a page handler that needs a signed-in session: a GET without
// one goes to sign-in and comes back; a POST without one is refused, and a
// POST must carry the session's CSRF token.
func (c *Console) user(h func(http.ResponseWriter, *http.Request, *websession)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.auth.session(r)
		if !ok {
			if r.Method == http.MethodGet {
				http.Redirect(w, r, pathLogin+"?next="+url.QueryEscape(r.URL.RequestURI()), http.StatusSeeOther)
				return
			}
			http.Error(w, "not signed in", http.StatusUnauthorized)
			return
		}
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			r.Body = http.MaxBytesReader(w, r.Body, 64<<10)
			if !checkCSRF(r, s) {
				c.fail(w, r, s, http.StatusForbidden, "Refused", "The form was missing its CSRF token or it did not match. Reload the page and try again.")
				return
			}
		}
		h(w, r, s)
	}
}

// api wraps a data handler: without a session it answers 401, never a
// redirect, so scripts see the failure.
func (c *Console) api(h func(http.ResponseWriter, *http.Request, *websession)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		s, ok := c.auth.session(r)
		if !ok {
			http.Error(w, "not signed in", http.StatusUnauthorized)
			return
		}
		h(w, r, s)
	}
}

func (c *Console) caller(r *http.Request, s *websession) bastion.Caller {
	return c.cfg.Caller(s.identity, r.RemoteAddr)
}

// sessionRow is a line of the sessions list.
type sessionRow struct {
	recorder.SessionInfo
	Duration time.Duration
	Blocked  bool
	Held     bool
}

type sessionsData struct {
	Rows                                               []sessionRow
	User, Target, Kind, Since, Until, Outcome, Q, Page string
	Auditor                                            bool
	// Prev and Next are the neighbouring pages' URLs, "" for none: typed
	// as URLs, so html/template does not escape their query strings into
	// one opaque parameter (url.Values.Encode escapes what is in them).
	Prev, Next template.URL
}

// parseDay reads a filter time: a date (UTC midnight) or RFC 3339.
func parseDay(s string) (time.Time, bool) {
	if s == "" {
		return time.Time{}, true
	}
	if t, err := time.Parse("2006-01-02", s); err == nil {
		return t, true
	}
	t, err := time.Parse(time.RFC3339, s)
	return t, err == nil
}

// sessionsPage lists the sessions the caller may see, newest first, with
// the filters of the sessions admin command and more: outcome (blocked,
// held, interrupted) and a search over commands and statements.
func (c *Console) sessionsPage(w http.ResponseWriter, r *http.Request, s *websession) {
	caller := c.caller(r, s)
	q := r.URL.Query()
	d := sessionsData{User: q.Get("user"), Target: q.Get("target"), Kind: q.Get("kind"), Since: q.Get("since"), Until: q.Get("until"),
		Outcome: q.Get("outcome"), Q: strings.TrimSpace(q.Get("q")), Page: q.Get("page"), Auditor: caller.Auditor}
	since, ok1 := parseDay(d.Since)
	until, ok2 := parseDay(d.Until)
	if len(d.Until) == len("2006-01-02") {
		until = until.Add(24 * time.Hour) // through the end of that day
	}
	page, err := strconv.Atoi(d.Page)
	if d.Page == "" {
		page, err = 0, nil
	}
	if !ok1 || !ok2 || err != nil || page < 0 || page > 10000 || !slices.Contains([]string{"", "blocked", "held", "interrupted"}, d.Outcome) {
		c.fail(w, r, s, http.StatusBadRequest, "Bad filter", "A filter value is not valid: dates are YYYY-MM-DD, outcome is blocked, held or interrupted.")
		return
	}
	f := recorder.SessionFilter{User: d.User, Target: d.Target, Kind: d.Kind, Since: since}
	if !caller.Auditor {
		f.User = caller.Identity.User // the same visibility as the sessions command
		f.ByActor, f.Actor = true, caller.Identity.Actor
	}
	// The list is every session matching (an auditor's: every one), and
	// the audit log is read whole: both count as an audit log read.
	done, err := c.auditRead(r, s, true)
	if err != nil {
		c.fail(w, r, s, http.StatusTooManyRequests, "Busy", "%v", err)
		return
	}
	defer done()
	list, err := c.cfg.Store.Sessions(f)
	if err != nil {
		c.fail(w, r, s, http.StatusInternalServerError, "Error", "The sessions cannot be read.")
		return
	}
	// What the audit log says happened in the sessions: blocks, holds and
	// the commands and statements, for the outcome filter and the search.
	blocked, held, said := map[string]bool{}, map[string]bool{}, map[string]bool{}
	if len(list) > 0 {
		from := list[len(list)-1].Start
		needle := strings.ToLower(d.Q)
		c.cfg.Store.AuditEvents(from, func(ev recorder.AuditEvent) error {
			if ev.SessionID == "" {
				return nil
			}
			switch ev.Type {
			case "command.block":
				blocked[ev.SessionID] = true
			case "command.hold":
				held[ev.SessionID] = true
			case "sql.statement":
				switch ev.Outcome {
				case "blocked":
					blocked[ev.SessionID] = true
				case "held":
					held[ev.SessionID] = true
				}
			}
			if needle != "" {
				for _, k := range []string{"command", "statement", "sql"} {
					if v := ev.Fields[k]; v != "" && strings.Contains(strings.ToLower(v), needle) {
						said[ev.SessionID] = true // not the text: the whole log's would be held
					}
				}
			}
			return nil
		})
	}
	var rows []sessionRow
	for _, info := range list {
		if !caller.MaySee(info.User, info.Issuer, info.Actor) {
			continue
		}
		if !until.IsZero() && !info.Start.Before(until) {
			continue
		}
		switch d.Outcome {
		case "blocked":
			if !blocked[info.ID] {
				continue
			}
		case "held":
			if !held[info.ID] {
				continue
			}
		case "interrupted":
			if info.Status != recorder.StatusInterrupted {
				continue
			}
		}
		if d.Q != "" && !said[info.ID] && !strings.Contains(strings.ToLower(info.Command), strings.ToLower(d.Q)) {
			continue
		}
		row := sessionRow{SessionInfo: info, Blocked: blocked[info.ID], Held: held[info.ID]}
		if !info.End.IsZero() {
			row.Duration = info.End.Sub(info.Start)
		}
		rows = append(rows, row)
	}
	start := min(page*pageSize, len(rows))
	end := min(start+pageSize, len(rows))
	d.Rows = rows[start:end]
	if page > 0 {
		d.Prev = withPage(q, page-1)
	}
	if end < len(rows) {
		d.Next = withPage(q, page+1)
	}
	c.render(w, r, http.StatusOK, "sessions", s, d)
}

func withPage(q url.Values, page int) template.URL {
	q2 := url.Values{}
	for k, v := range q {
		q2[k] = v
	}
	q2.Set("page", strconv.Itoa(page))
	return template.URL("/sessions?" + q2.Encode())
}

// fromAnotherSite reports whether the browser says a page of another site
// made r (Sec-Fetch-Site): a link or window.open there, or an <img> or
// <script> on a sibling subdomain, which the SameSite=Lax cookie reaches.
// A replay or an export is an audit record in the signed-in person's name,
// so such a request does not make one: pages ask first (askFirst), data
// is refused. Browsers that do not say are taken as the console's own.
func fromAnotherSite(r *http.Request) bool {
	switch r.Header.Get("Sec-Fetch-Site") {
	case "cross-site", "same-site":
		return true
	}
	return false
}

// refuseAnotherSite answers a data request of another site's page.
func refuseAnotherSite(w http.ResponseWriter, r *http.Request) bool {
	if !fromAnotherSite(r) {
		return false
	}
	http.Error(w, "refused: a request from another site's page (open the session in the console)", http.StatusForbidden)
	return true
}

// askFirst answers a page that another site's page navigated to, and
// whose view would be audited, with a link to it on this site.
func (c *Console) askFirst(w http.ResponseWriter, r *http.Request, s *websession, heading, text, linkText string) {
	c.render(w, r, http.StatusOK, "message", s, message{Heading: heading, Text: text, Link: r.URL.RequestURI(), LinkText: linkText})
}

// visibleSession returns session id if the caller may see it.
func (c *Console) visibleSession(r *http.Request, s *websession) (recorder.SessionInfo, bool) {
	info, err := c.cfg.Store.Session(r.PathValue("id"))
	if err != nil || !c.caller(r, s).MaySee(info.User, info.Issuer, info.Actor) {
		return recorder.SessionInfo{}, false // the same answer for "none" and "not yours"
	}
	return info, true
}

type replayData struct {
	Info      recorder.SessionInfo
	Duration  time.Duration
	Live      bool
	FromStart bool     // a live session is followed from its start (?from=start)
	Screen    []string // a recorded session's first screen, shown until the player has started
	Cast      string   // the recording's URL, with the page's grant
	Segments  string   // for a recording played in segments: its index's URL, with the page's grant
	Pcap      bool     // the session has TCP content to download as a capture (pcapDownload)
}

// replayPage shows the player. For a recorded session the page view is
// the replay, audited here (and refused when the audit cannot be
// written): the page carries the recording's first screen, drawn on the
// server, so something of the session shows before the player has
// started, and a grant that lets the page's download of the recording
// (castData) go without a second audit record.
func (c *Console) replayPage(w http.ResponseWriter, r *http.Request, s *websession) {
	info, ok := c.visibleSession(r, s)
	if !ok {
		c.fail(w, r, s, http.StatusNotFound, "Not found", "No session with that ID that you may see.")
		return
	}
	d := replayData{Info: info, Live: info.Status == recorder.StatusLive, FromStart: r.URL.Query().Get("from") == "start", Pcap: hasPcap(info)}
	if !d.Live && fromAnotherSite(r) {
		c.askFirst(w, r, s, "Replay session "+info.ID+"?", "You came here from another site. A replay is recorded in the audit log in your name.", "Replay it")
		return
	}
	if !info.End.IsZero() {
		d.Duration = info.End.Sub(info.Start)
	}
	if !d.Live {
		if err := c.auditReplay(r, s, info); err != nil {
			c.fail(w, r, s, http.StatusServiceUnavailable, "Refused", "The audit log cannot be written, so the replay is refused.")
			return
		}
		if segmented(info) {
			c.prepareIndex(info)
			d.Segments = "/api/sessions/" + url.PathEscape(info.ID) + "/segments?view=" + c.viewGrant(s, info.ID)
		} else {
			d.Cast = "/api/sessions/" + url.PathEscape(info.ID) + "/cast?grant=" + c.grant(s, info.ID)
		}
		d.Screen = c.firstScreen(info)
	}
	c.render(w, r, http.StatusOK, "replay", s, d)
}

// auditReplay records a replay by the console.
func (c *Console) auditReplay(r *http.Request, s *websession, info recorder.SessionInfo) error {
	_, err := c.cfg.Store.Audit(recorder.AuditEvent{Type: "session.replay", User: s.identity.User, Issuer: s.identity.Issuer,
		Subject: s.identity.Subject, SessionID: info.ID, Target: info.Target, Outcome: "allowed",
		Fields: map[string]string{"via": "console", "client_addr": r.RemoteAddr}})
	return err
}

// firstScreenBytes and firstScreenEvents bound what is read for a first
// screen (a session that types long before anything is output).
const (
	firstScreenBytes  = 64 << 10
	firstScreenEvents = 10000
)

// firstScreen draws the screen the player shows first: the output
// recorded at the time of the first output (resizes applied), through
// linerec's emulator, as text. Nil when there is none or it cannot be
// read; the player then simply starts on a blank screen.
func (c *Console) firstScreen(info recorder.SessionInfo) []string {
	if info.Kind == "tcp" {
		return nil // its view is a timeline built on export, and its events are all wire data
	}
	cols, rows := info.Width, info.Height
	if cols <= 0 || rows <= 0 {
		cols, rows = 80, 24
	}
	var out []byte
	first := time.Duration(-1)
	errEnough := errors.New("enough")
	n := 0
	err := c.cfg.Store.Events(info.ID, func(ev asciicast.Event) error {
		n++
		if first >= 0 && ev.Time > first || len(out) >= firstScreenBytes || n > firstScreenEvents {
			return errEnough
		}
		switch ev.Type {
		case asciicast.Output:
			if first < 0 {
				first = ev.Time
			}
			out = append(out, ev.Data...)
		case asciicast.Resize:
			if w, h, ok := parseSize(ev.Data); ok && len(out) == 0 {
				cols, rows = w, h
			}
		}
		return nil
	})
	if err != nil && !errors.Is(err, errEnough) {
		c.log.Warn("console: first screen", "session", info.ID, "err", err)
		return nil
	}
	if len(out) > firstScreenBytes {
		out = out[:firstScreenBytes]
	}
	return linerec.Render(cols, rows, out)
}

// replayGrant lets one download of a session's recording by one sign-in
// go unaudited, because the page view that made it was audited.
type replayGrant struct {
	s       *websession
	session string
	expires time.Time
	view    bool // a page view's grant for a segmented replay (viewGrant), not used up
}

const grantTTL = time.Minute

// maxGrantsPerSignIn bounds the grants one sign-in holds: a page view
// makes one, a segmented replay's lasts hours, and reloading a page in a
// loop would otherwise grow the table (and the sweep each grant makes of
// it) without bound. Past it, the grant that expires first goes.
const maxGrantsPerSignIn = 64

// grant makes a grant for s to download session id once.
func (c *Console) grant(s *websession, id string) string {
	tok := randomToken()
	now := c.now()
	c.grantsMu.Lock()
	defer c.grantsMu.Unlock()
	held, first := 0, ""
	for k, g := range c.grants {
		if !now.Before(g.expires) {
			delete(c.grants, k)
			continue
		}
		if g.s == s {
			held++
			if first == "" || g.expires.Before(c.grants[first].expires) {
				first = k
			}
		}
	}
	if held >= maxGrantsPerSignIn {
		delete(c.grants, first)
	}
	c.grants[tok] = replayGrant{s: s, session: id, expires: now.Add(grantTTL)}
	return tok
}

// takeGrant uses up grant tok, reporting whether it was s's for session id
// and still valid.
func (c *Console) takeGrant(tok string, s *websession, id string) bool {
	if tok == "" {
		return false
	}
	c.grantsMu.Lock()
	defer c.grantsMu.Unlock()
	g, ok := c.grants[tok]
	if !ok || g.view || g.s != s || g.session != id {
		return false
	}
	delete(c.grants, tok)
	return c.now().Before(g.expires)
}

// castData sends the recording as asciicast v2 for the player, once the
// replay is in the audit log: a replay the audit log cannot record is
// refused, as the replay admin command's is. The page's own download
// carries the grant of its audited page view instead.
func (c *Console) castData(w http.ResponseWriter, r *http.Request, s *websession) {
	info, ok := c.visibleSession(r, s)
	if !ok {
		http.Error(w, "no such session", http.StatusNotFound)
		return
	}
	if refuseAnotherSite(w, r) {
		return
	}
	w, release, ok := c.longResponse(w, s)
	if !ok {
		return
	}
	defer release()
	if !c.takeGrant(r.URL.Query().Get("grant"), s, info.ID) {
		if err := c.auditReplay(r, s, info); err != nil {
			http.Error(w, "the audit log cannot be written, so the replay is refused", http.StatusServiceUnavailable)
			return
		}
	}
	// A recording that cannot be read to its end (a damaged or cut chunk
	// log) is never ended as if whole: before its first byte it is an
	// error, after it the response is aborted, and the page says so.
	dw := &downloadWriter{w: w, header: func(h http.Header) {
		h.Set("Content-Type", "application/x-asciicast")
		h.Set("Cache-Control", "no-store")
	}}
	if err := c.cfg.Store.Export(info.ID, dw); err != nil {
		c.log.Warn("console: export", "session", info.ID, "err", err)
		if !dw.started {
			http.Error(w, "the recording cannot be read; the bastion's log has the reason", http.StatusInternalServerError)
			return
		}
		panic(http.ErrAbortHandler)
	}
}

// hasPcap reports whether info's session can be downloaded as a capture:
// a tcp session's content, a PostgreSQL session's wire messages.
func hasPcap(info recorder.SessionInfo) bool { return info.Kind == "tcp" || info.Kind == "postgres" }

// pcapDownload sends a tcp session's content, or a PostgreSQL session's
// wire messages, as a pcap capture (recorder.Store.ExportPcap, what
// `bastion export --format pcap` writes), once the export is in the audit
// log: an export the audit log cannot record is refused, as the export
// admin command's is. Headers go out with the first bytes, so an export
// that fails before writing anything (a PostgreSQL session recorded with
// `recording: transcript` has no wire messages) is answered with an error
// page, and one that fails later aborts the response rather than end a
// truncated capture as if it were whole.
func (c *Console) pcapDownload(w http.ResponseWriter, r *http.Request, s *websession) {
	info, ok := c.visibleSession(r, s)
	if !ok {
		c.fail(w, r, s, http.StatusNotFound, "Not found", "No session with that ID that you may see.")
		return
	}
	if !hasPcap(info) {
		c.fail(w, r, s, http.StatusNotFound, "No capture", "A %s session has no TCP content to download as a capture (tcp and PostgreSQL sessions do).", info.Kind)
		return
	}
	if fromAnotherSite(r) {
		c.askFirst(w, r, s, "Download the capture of session "+info.ID+"?", "You came here from another site. An export is recorded in the audit log in your name.", "Download it")
		return
	}
	w, release, ok := c.longResponse(w, s)
	if !ok {
		return
	}
	defer release()
	_, err := c.cfg.Store.Audit(recorder.AuditEvent{Type: "session.export", User: s.identity.User, Issuer: s.identity.Issuer,
		Subject: s.identity.Subject, SessionID: info.ID, Target: info.Target, Outcome: "allowed",
		Fields: map[string]string{"via": "console", "format": "pcap", "client_addr": r.RemoteAddr}})
	if err != nil {
		c.fail(w, r, s, http.StatusServiceUnavailable, "Refused", "The audit log cannot be written, so the export is refused.")
		return
	}
	dw := &downloadWriter{w: w, header: func(h http.Header) {
		h.Set("Content-Type", "application/vnd.tcpdump.pcap")
		h.Set("Content-Disposition", `attachment; filename="`+info.ID+`.pcap"`)
		h.Set("Cache-Control", "no-store")
	}}
	if err := c.cfg.Store.ExportPcap(info.ID, dw); err != nil {
		c.log.Warn("console: pcap export", "session", info.ID, "err", err)
		switch {
		case dw.started:
		case errors.Is(err, recorder.ErrNoCapture):
			c.fail(w, r, s, http.StatusConflict, "No capture", "%v", err)
			return
		case errors.Is(err, recorder.ErrBroken):
			// Found before anything is written: no capture of a damaged
			// recording reads as the session.
			c.fail(w, r, s, http.StatusConflict, "No capture", "The recording of this session is damaged, so no capture of it is given: bastion verify %s names the damage.", info.ID)
			return
		default: // the reason is in the log, not for the page (paths, the store's state)
			c.fail(w, r, s, http.StatusInternalServerError, "No capture", "The capture could not be read; the bastion's log has the reason.")
			return
		}
		panic(http.ErrAbortHandler) // the browser shows the download as failed
	}
}

// downloadWriter sets a download's headers with its first bytes.
type downloadWriter struct {
	w       http.ResponseWriter
	header  func(http.Header)
	started bool
}

func (d *downloadWriter) Write(p []byte) (int, error) {
	if !d.started {
		d.started = true
		d.header(d.w.Header())
	}
	return d.w.Write(p)
}

type approvalsData struct {
	Requests []bastion.Request
	Focus    string // the request the page was opened for
}

// approvalsPage lists the pending requests the caller may decide, and the
// caller's own (which they may not).
func (c *Console) approvalsPage(w http.ResponseWriter, r *http.Request, s *websession) {
	caller := c.caller(r, s)
	c.render(w, r, http.StatusOK, "approvals", s, approvalsData{Requests: c.cfg.Approvals.Requests(caller), Focus: r.PathValue("id")})
}

// decide approves or denies a request, by the rules of the approve and
// deny admin commands.
func (c *Console) decide(w http.ResponseWriter, r *http.Request, s *websession) {
	var approve bool
	switch r.PathValue("decision") {
	case "approve":
		approve = true
	case "deny":
	default:
		http.NotFound(w, r)
		return
	}
	note := strings.TrimSpace(r.PostFormValue("reason"))
	if len(note) > 500 {
		note = note[:500]
	}
	// The request as this page showed it: one changed since (a shared
	// store edited in between) is not what the approver saw.
	shown := r.PostFormValue("shown")
	if approve && shown == "" {
		shown = "none" // a form that does not say what it showed approves nothing
	}
	ap, err := c.cfg.Approvals.DecideShown(c.caller(r, s), r.PathValue("id"), approve, note, shown)
	switch {
	case errors.Is(err, bastion.ErrRequestChanged):
		c.fail(w, r, s, http.StatusConflict, "Changed", "%v", err)
		return
	case errors.Is(err, bastion.ErrSelfApprove), errors.Is(err, bastion.ErrTriggeredApprove), errors.Is(err, bastion.ErrNotApprover):
		c.fail(w, r, s, http.StatusForbidden, "Refused", "%v", err)
		return
	case errors.Is(err, bastion.ErrNoRequest):
		c.fail(w, r, s, http.StatusNotFound, "Not found", "%v", err)
		return
	case err != nil:
		c.fail(w, r, s, http.StatusInternalServerError, "Error", "%v", err)
		return
	}
	c.log.Info("console: request decided", "request", ap.ID, "approve", approve, "by", s.identity.User)
	http.Redirect(w, r, "/approvals", http.StatusSeeOther)
}

// approvalsStream tells the approvals page, as server-sent events, when
// the pending requests change, so it updates without reloading.
func (c *Console) approvalsStream(w http.ResponseWriter, r *http.Request, s *websession) {
	w, release, ok := c.longResponse(w, s)
	if !ok {
		return
	}
	defer release()
	c.inflight.Add(1)
	defer c.inflight.Done()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	check := time.NewTicker(time.Second)
	defer check.Stop()
	for {
		ch := c.cfg.Approvals.RequestsChanged()
		if _, err := w.Write([]byte("event: changed\ndata: {}\n\n")); err != nil {
			return
		}
		if rc.Flush() != nil {
			return
		}
		for changed := false; !changed; {
			select {
			case <-ch:
				changed = true
			case <-r.Context().Done():
				return
			case <-c.done:
				return
			case <-check.C:
			}
			if !c.auth.stillSignedIn(s) {
				return // signed out, expired or revoked
			}
		}
	}
}

type auditData struct {
	Events                     []recorder.AuditEvent
	Since, Type, User, Session string
	More                       bool
}

const auditPageSize = 500

// auditFilter reads the audit filters; ok is false for a bad date.
func auditFilter(r *http.Request) (d auditData, since time.Time, ok bool) {
	q := r.URL.Query()
	d = auditData{Since: q.Get("since"), Type: q.Get("type"), User: q.Get("user"), Session: q.Get("session")}
	since, ok = parseDay(d.Since)
	if d.Since == "" {
		since = time.Now().Add(-24 * time.Hour)
	}
	return d, since, ok
}

func (d auditData) match(ev recorder.AuditEvent) bool {
	return (d.Type == "" || strings.HasPrefix(ev.Type, d.Type)) && (d.User == "" || ev.User == d.User) && (d.Session == "" || ev.SessionID == d.Session)
}

// auditPage shows the audit log to auditors.
func (c *Console) auditPage(w http.ResponseWriter, r *http.Request, s *websession) {
	if !c.caller(r, s).Auditor {
		c.fail(w, r, s, http.StatusForbidden, "Refused", "Only auditors see the audit log.")
		return
	}
	d, since, ok := auditFilter(r)
	if !ok {
		c.fail(w, r, s, http.StatusBadRequest, "Bad filter", "Dates are YYYY-MM-DD.")
		return
	}
	done, err := c.auditRead(r, s, true)
	if err != nil {
		c.fail(w, r, s, http.StatusTooManyRequests, "Busy", "%v", err)
		return
	}
	defer done()
	// Only the newest auditPageSize matches are kept as the log is read:
	// a date years back does not bring the whole log into memory.
	matched := 0
	c.cfg.Store.AuditEvents(since, func(ev recorder.AuditEvent) error {
		if d.match(ev) {
			matched++
			if len(d.Events) == 2*auditPageSize {
				d.Events = append(d.Events[:0], d.Events[auditPageSize:]...)
			}
			d.Events = append(d.Events, ev)
		}
		return nil
	})
	if len(d.Events) > auditPageSize {
		d.Events = d.Events[len(d.Events)-auditPageSize:]
	}
	slices.Reverse(d.Events)
	d.More = matched > auditPageSize
	c.render(w, r, http.StatusOK, "audit", s, d)
}

// auditDownload sends the filtered audit log as JSON lines.
func (c *Console) auditDownload(w http.ResponseWriter, r *http.Request, s *websession) {
	if !c.caller(r, s).Auditor {
		http.Error(w, "only auditors see the audit log", http.StatusForbidden)
		return
	}
	d, since, ok := auditFilter(r)
	if !ok {
		http.Error(w, "bad date", http.StatusBadRequest)
		return
	}
	w, release, ok := c.longResponse(w, s)
	if !ok {
		return
	}
	defer release()
	done, err := c.auditRead(r, s, false)
	if err != nil {
		http.Error(w, err.Error(), http.StatusTooManyRequests)
		return
	}
	defer done()
	w.Header().Set("Content-Type", "application/jsonl")
	w.Header().Set("Content-Disposition", `attachment; filename="audit.jsonl"`)
	w.Header().Set("Cache-Control", "no-store")
	enc := json.NewEncoder(safetext.JSONWriter(w)) // read in terminals too: C1 controls as escapes
	if err := c.cfg.Store.AuditEvents(since, func(ev recorder.AuditEvent) error {
		if d.match(ev) {
			return enc.Encode(ev)
		}
		return nil
	}); err != nil {
		// A log cut short must not read as the whole log: end the response
		// without its proper close, as the capture download does.
		c.log.Warn("console: audit download", "err", err)
		panic(http.ErrAbortHandler)
	}
}

// maxLiveInit bounds the history a live view from now starts with: the
// tail of the output so far, which draws the present screen.
const maxLiveInit = 4 << 20

// liveEndMargin is how long after the player should have shown the last
// event the stream says "done": the player's eventsource driver ends at
// once on "done", dropping what it still holds in its buffer.
const liveEndMargin = time.Second

// liveOptions are a live view's query: from "now" (the present screen,
// then each event as it is recorded) or "start" (the session from its
// beginning with its own timing, then live), and for "start" the speed
// and idle limit the events' times are sent with (the player's live
// driver plays events at the times it is given and has no speed of its
// own).
type liveOptions struct {
	fromStart bool
	speed     float64
	idle      time.Duration // 0: none
}

// parseLiveOptions reads from=start|now, speed=X (0.1 to 16) and idle=S
// (seconds, 0 or empty for none, at most an hour).
func parseLiveOptions(q url.Values) (liveOptions, error) {
	o := liveOptions{speed: 1}
	switch q.Get("from") {
	case "", "now":
	case "start":
		o.fromStart = true
	default:
		return o, errors.New("from is start or now")
	}
	if v := q.Get("speed"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0.1 && f <= 16) {
			return o, errors.New("speed is a number from 0.1 to 16")
		}
		o.speed = f
	}
	if v := q.Get("idle"); v != "" {
		f, err := strconv.ParseFloat(v, 64)
		if err != nil || !(f >= 0 && f <= 3600) {
			return o, errors.New("idle is seconds from 0 to 3600")
		}
		o.idle = time.Duration(f * float64(time.Second))
	}
	return o, nil
}

// timeline maps a session's event times to the times a live view from
// the start sends: gaps cut to the idle limit, then divided by the speed.
type timeline struct {
	speed  float64
	idle   time.Duration
	lastIn time.Duration
	out    time.Duration
}

func (tl *timeline) at(t time.Duration) time.Duration {
	d := max(t-tl.lastIn, 0)
	if tl.idle > 0 && d > tl.idle {
		d = tl.idle
	}
	tl.lastIn, tl.out = max(t, tl.lastIn), tl.out+d
	return time.Duration(float64(tl.out) / tl.speed)
}

// liveData follows a live session for the player's eventsource driver, as
// `bastion replay --follow --from now|start` does in a terminal. From now:
// a reset carrying the output so far (the present screen), then each event
// as the recorder commits it. From the start: a reset to the session's
// first size at time 0, then every event from the first, with its own
// (idle-limited, sped-up) time, so the player plays the history and goes
// on live. Either way "done" follows when the session has ended and the
// player has had time to show the last event. Like every replay it is
// audited first.
func (c *Console) liveData(w http.ResponseWriter, r *http.Request, s *websession) {
	info, ok := c.visibleSession(r, s)
	if !ok {
		http.Error(w, "no such session", http.StatusNotFound)
		return
	}
	if refuseAnotherSite(w, r) {
		return
	}
	opt, err := parseLiveOptions(r.URL.Query())
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	from := "now"
	if opt.fromStart {
		from = "start"
	}
	w, release, ok := c.longResponse(w, s)
	if !ok {
		return
	}
	defer release()
	if _, err := c.cfg.Store.Audit(recorder.AuditEvent{Type: "session.replay", User: s.identity.User, Issuer: s.identity.Issuer,
		Subject: s.identity.Subject, SessionID: info.ID, Target: info.Target, Outcome: "allowed",
		Fields: map[string]string{"via": "console", "live": "true", "from": from, "client_addr": r.RemoteAddr}}); err != nil {
		http.Error(w, "the audit log cannot be written, so the live view is refused", http.StatusServiceUnavailable)
		return
	}
	c.inflight.Add(1)
	defer c.inflight.Done()
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	go func() {
		// The view ends with the console, and with the sign-in: signed
		// out, expired or revoked (bastion ca revoke --user) since.
		check := time.NewTicker(time.Second)
		defer check.Stop()
		for {
			select {
			case <-c.done:
				cancel()
				return
			case <-ctx.Done():
				return
			case <-check.C:
				if !c.auth.stillSignedIn(s) {
					cancel()
					return
				}
			}
		}
	}()
	w.Header().Set("Content-Type", "text/event-stream")
	w.Header().Set("Cache-Control", "no-store")
	rc := http.NewResponseController(w)
	send := func(event string, v any) error {
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		if event != "" {
			fmt.Fprintf(w, "event: %s\n", event)
		}
		if _, err := fmt.Fprintf(w, "data: %s\n\n", b); err != nil {
			return err
		}
		return rc.Flush()
	}
	cols, rows := max(info.Width, 1), max(info.Height, 1)
	if info.Width == 0 || info.Height == 0 {
		cols, rows = 80, 24
	}
	// base is the time the reset carried, sent when it was sent, and
	// lastSent the last event's time: the player shows an event at
	// about resetAt + (its time - base).
	var base, lastSent time.Duration
	var resetAt time.Time
	sendEvent := func(t time.Duration, ev asciicast.Event) error {
		switch ev.Type {
		case asciicast.Output, asciicast.Resize, asciicast.Marker:
			lastSent = t
			return send("", []any{t.Seconds(), ev.Type.String(), ev.Data})
		}
		return nil
	}
	if opt.fromStart {
		tl := &timeline{speed: opt.speed, idle: opt.idle}
		resetAt = time.Now()
		if err := send("", map[string]any{"cols": cols, "rows": rows, "time": 0}); err != nil {
			return
		}
		err = c.cfg.Store.Follow(ctx, info.ID, func(ev asciicast.Event) error { return sendEvent(tl.at(ev.Time), ev) }, nil)
	} else {
		var init []byte
		caught := false
		err = c.cfg.Store.Follow(ctx, info.ID, func(ev asciicast.Event) error {
			if caught {
				return sendEvent(ev.Time, ev)
			}
			base = ev.Time
			switch ev.Type {
			case asciicast.Output:
				init = append(init, ev.Data...)
				if len(init) > 2*maxLiveInit {
					init = append(init[:0], init[len(init)-maxLiveInit:]...)
				}
			case asciicast.Resize:
				if w, h, ok := parseSize(ev.Data); ok {
					cols, rows = w, h
				}
			}
			return nil
		}, func() error {
			caught, resetAt, lastSent = true, time.Now(), base
			return send("", map[string]any{"cols": cols, "rows": rows, "time": base.Seconds(), "init": strings.ToValidUTF8(string(init), "\uFFFD")})
		})
	}
	if err != nil {
		if ctx.Err() == nil {
			c.log.Warn("console: live view", "session", info.ID, "err", err)
		}
		return
	}
	wait := time.NewTimer(lastSent - base - time.Since(resetAt) + liveEndMargin)
	defer wait.Stop()
	select {
	case <-wait.C:
		send("done", map[string]any{})
	case <-ctx.Done():
	}
}

// parseSize reads a resize event's "COLSxROWS".
func parseSize(s string) (cols, rows int, ok bool) {
	a, b, found := strings.Cut(s, "x")
	if !found {
		return 0, 0, false
	}
	cols, err1 := strconv.Atoi(a)
	rows, err2 := strconv.Atoi(b)
	if err1 != nil || err2 != nil || cols < 1 || rows < 1 || cols > 1000 || rows > 1000 {
		return 0, 0, false
	}
	return cols, rows, true
}
