// Package console is the bastion's web console, served at the root of the
// HTTP listener by `bastion serve` and `bastion demo` (internal/app wires
// it; Register adds its routes to the listener's mux).
//
// # Sign-in
//
// /login starts the OIDC authorization code flow with PKCE (S256) and a
// nonce; state, nonce and verifier travel in a short-lived login cookie
// sealed with a key only this process holds (AES-GCM), which binds the
// callback to the browser that started it and keeps nothing on the server
// for a sign-in in progress (a flood of /login cannot crowd one out). The ID
// token is checked by ca.Verifier.VerifyLogin (the people IdP, the
// console's client, the nonce), so a console user is the same identity,
// with the same roles, as over SSH. The session is server-side, named by a
// random HttpOnly SameSite=Lax cookie (Secure and __Host- with TLS) and
// lasts no longer than Config.SessionTTL (the user certificate lifetime)
// nor the ID token.
//
// # Authorisation
//
// Every request is decided with Config.Caller (bastion.Server.Caller) at
// the time of the request, so a policy reload applies at once: sessions are
// visible as with the sessions admin command (Caller.MaySee), approvals are
// listed and decided by bastion.Server.Requests and Decide (the rules of
// approve and deny), the audit log is for auditors. Pages without a
// session redirect to sign-in; API routes answer 401.
//
// # Browser security
//
// Pages are html/template; the Content-Security-Policy allows the
// console's own scripts and styles only (and WebAssembly, for the player's
// terminal emulator). State-changing requests are POSTs that must carry the
// session's CSRF token, behind http.CrossOriginProtection. Recordings reach
// the page only through asciinema-player, which draws them as text.
//
// # Replay and live view
//
// The player (internal/console/static/player, the asciinema-player npm
// package's built files; `make player-assets` refreshes them) loads the
// session's asciicast from /api/sessions/ID/cast. Opening a recorded
// session's page is the replay: the page writes a session.replay audit
// event first and refuses when it cannot, and gives the page a one-use
// grant for its download, which is then not recorded twice (a download
// without a grant is audited itself). The page carries the recording's
// first screen, drawn by linerec.Render, shown until the player is ready;
// it preloads the download in its head and reads it as a stream: the
// player, created as soon as its script has run, starts on its first 64
// KiB, so the first frame does not depend on the recording's size, and the
// whole recording replaces it at the same position once it has arrived
// (static/console.js).
// The player's script is preloaded by the page's head but run only once
// the page has painted its first frame (a script in the page, even
// deferred, holds the first paint until it has run).
// Static files are named by their hash (static.go), cached for a year and
// served gzip-compressed.
//
// A recording larger than segmentedAbove (16 MiB) is never downloaded
// whole (segments.go): one walk over it (recorder.Store.EventsSeek, which
// checks the chain) builds an index of its duration, markers, pauses and
// segments (each noting the recorder.Seek its snapshot starts reading
// from), cached for the last few recordings; /api/sessions/ID/segments
// sends it in asciinema-player's segmented format, and
// /api/sessions/ID/segments/N one segment: its events, and a snapshot, the
// output just before it, that redraws the screen there. The player holds
// three segments at most, so memory does not grow with the recording, and
// a seek anywhere is one fetch. Times are cut to the idle limit on the
// server, alike for the index and every segment. The page view grants its
// fetches (a view grant: every fetch of that session by that sign-in,
// while it lasts); each is authorised as the page is, and one without the
// grant is audited itself, naming the part.
//
// A live session is followed over server-sent events
// (/api/sessions/ID/live, recorder.Store.Follow) in the player's
// eventsource format. From now (the default): a reset with the output so
// far, then each event. From the start (?from=start&speed=X&idle=S): a
// reset at time 0, then every event from the first with its time cut to
// the idle limit and divided by the speed (the player's live driver has
// neither). Then "done", once the player has had time to show the last
// event.
//
// # Captures
//
// The page of a tcp or PostgreSQL session links /sessions/ID/pcap, the
// capture recorder.Store.ExportPcap writes (what `bastion export --format
// pcap` prints), audited as a session.export and refused when the audit
// cannot be written. Its headers go out with the first bytes, so an export
// that fails before writing gets an error page and one that fails later
// aborts the response (http.ErrAbortHandler).
//
// # Approvals
//
// The approvals page listens to /api/approvals/stream, server-sent events
// that say "changed" whenever Approvals.RequestsChanged fires, and fetches
// its list again. With replicas sharing a PostgreSQL store, the server's
// RequestsChanged fires for requests held or decided on any replica (the
// shared approval board's notifications, with a poll as the fallback).
package console
