package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/testenv"
	"github.com/bastionhq/bastion/recorder"
)

// consoleYAML makes carol an approver of web1, gives the dev group the
// database pg1 as app, and adds a command block, an approval rule, a
// statement block and a masked column.
const consoleYAML = `  - {name: approvers, users: [carol], approve: ["web*"]}
  - {name: console-db, groups: [dev], targets: [pg1], db_users: [app], databases: [shop]}
rules:
  - {name: no-rm-rf, on: command, match: {command: "rm -rf *"}, action: block}
  - {name: held, on: command, match: {regex: "^touch .*/approve"}, action: approve, approvers: [approvers], timeout: 60s}
  - {name: no-drop, on: sql, match: {statements: [drop]}, action: block}
  - {name: card-columns, on: sql_result, match: {columns: ["card"]}, action: mask}
`

// browser is one person's headless Chromium: its own cookie jar.
type browser struct {
	t      *testing.T
	ctx    context.Context
	name   string
	dialog atomic.Bool // a JavaScript dialog opened
}

// startChromium starts one headless Chromium for the test; each browser
// from newBrowser is an isolated context (cookies) in it.
func startChromium(t *testing.T) context.Context {
	t.Helper()
	path := testenv.Require(t, "chromium", "chromium-browser", "google-chrome")
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.WindowSize(1280, 900))
	actx, cancel := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancel)
	bctx, cancelB := chromedp.NewContext(actx)
	t.Cleanup(cancelB)
	if err := chromedp.Do(bctx); err != nil { // starts the browser
		t.Fatalf("chromium: %v", err)
	}
	return bctx
}

func newBrowser(t *testing.T, root context.Context, name string) *browser {
	ctx, cancel := chromedp.NewContext(root, chromedp.WithNewBrowserContext())
	t.Cleanup(cancel)
	b := &browser{t: t, ctx: ctx, name: name}
	err := chromedp.Listen(ctx, func(ev any) {
		switch ev.(type) {
		case *page.EventJavascriptDialogOpening, page.EventJavascriptDialogOpening:
			b.dialog.Store(true)
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// run runs actions with a deadline; on failure it saves a screenshot.
func (b *browser) run(what string, actions ...chromedp.Action[chromedp.Void]) {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	if err := chromedp.Do(ctx, actions...); err != nil {
		b.screenshot(what)
		b.t.Fatalf("%s (%s): %v", what, b.name, err)
	}
}

// screenshot writes the page to $BASTION_SCREENSHOTS (default a directory
// under the system temp dir) and logs where.
func (b *browser) screenshot(what string) {
	dir := os.Getenv("BASTION_SCREENSHOTS")
	if dir == "" {
		dir = filepath.Join(os.TempDir(), "bastion-console-screenshots")
	}
	os.MkdirAll(dir, 0o755)
	ctx, cancel := context.WithTimeout(b.ctx, 10*time.Second)
	defer cancel()
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		b.t.Logf("screenshot: %v", err)
		return
	}
	name := strings.NewReplacer("/", "_", " ", "_").Replace(b.t.Name() + "-" + b.name + "-" + what)
	p := filepath.Join(dir, name+".png")
	os.WriteFile(p, png, 0o644)
	b.t.Logf("screenshot of %s (%s) at %s", loc, what, p)
}

// signIn opens the console, goes through the development IdP as subject
// and lands on the sessions page.
func (b *browser) signIn(consoleURL, subject string) {
	b.t.Helper()
	b.run("sign in",
		chromedp.Navigate(consoleURL+"/sessions"),
		chromedp.WaitVisible(chromedp.CSS(`button[value="`+subject+`"]`)),
		chromedp.Click(chromedp.CSS(`button[value="`+subject+`"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#sessions`)),
	)
}

func (b *browser) text(sel string) string {
	b.t.Helper()
	return eval[string](b, fmt.Sprintf(`(document.querySelector(%q)||{}).innerText||""`, sel))
}

// eval runs JavaScript in the page, awaiting a promise.
func eval[T any](b *browser, js string) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, 30*time.Second)
	defer cancel()
	v, err := chromedp.Run(ctx, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
	if err != nil {
		b.screenshot("eval")
		b.t.Fatalf("%s: eval %s: %v", b.name, js, err)
	}
	return v
}

// waitText polls sel's text for want.
func (b *browser) waitText(sel, want string) string {
	b.t.Helper()
	var got string
	deadline := time.Now().Add(20 * time.Second)
	for {
		ctx, cancel := context.WithTimeout(b.ctx, 5*time.Second)
		got, _ = chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`(document.querySelector(%q)||{}).innerText||""`, sel)))
		cancel()
		if strings.Contains(got, want) {
			return got
		}
		if time.Now().After(deadline) {
			b.screenshot("wait " + want)
			b.t.Fatalf("%s: %q never showed %q; it shows:\n%s", b.name, sel, want, got)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestConsole drives the web console in headless Chromium against a real
// bastion, sshd, PostgreSQL and the development IdP: sign-in, visibility,
// replay with a blocked-command marker, a PostgreSQL session's replay
// (masked card numbers, the blocked statement), the audit page and its
// download, the live view from now and from the start, approving a held
// command from the page, inert attacker-controlled text, and the refusals
// (no cookie, no CSRF token, one's own request, a non-auditor's audit).
func TestConsole(t *testing.T) {
	testenv.RequirePostgres(t)
	for _, tool := range []string{"tshark", "python3", "curl"} {
		testenv.Require(t, tool)
	}
	root := startChromium(t)
	var pg *testenv.Postgres
	httpPort := testenv.FreePort(t)
	w := newWorldListen(t, "", func(k *ca.Keys) []string {
		var target string
		pg, target = startShopPostgres(t, k)
		return []string{target, fmt.Sprintf(`{name: webhttp, kind: tcp, address: "127.0.0.1:%d"}`, httpPort)}
	}, consoleYAML)
	sshCfg := w.loginAlice(t)
	base := w.url()

	// A recorded shell session with a blocked command.
	p := testenv.StartPTY(t, 100, 30, "ssh", "-F", sshCfg, "-tt", "root@web1")
	p.Send("PS1='$ '\r")
	p.Send("echo hello-$((6*7))-console\r")
	p.Expect("hello-42-console", 20*time.Second)
	p.Send("rm -rf /tmp/nothing-here\r")
	p.Expect("blocked by rule no-rm-rf", 20*time.Second)
	p.Expect("$ ", 20*time.Second) // the shell's next prompt, before typing on
	p.Send("exit\r")
	p.Wait(20 * time.Second)
	// A session whose command and output are attacker-controlled markup
	// and terminal escapes (OSC 52 clipboard, OSC 0 title).
	xss := `echo '<script>window.pwned=1</script>' '"><img src=x onerror="window.pwned=2">'; printf '\033]52;c;cHduZWQ=\a\033]0;pwned\a<b>done</b>\n'`
	if out, err := exec.Command("ssh", "-F", sshCfg, "root@web1", xss).CombinedOutput(); err != nil {
		t.Fatalf("ssh: %v\n%s", err, out)
	}
	// A PostgreSQL session through ssh -L: a SELECT of the masked card
	// column and a DROP the rule blocks.
	lport := testenv.FreePort(t)
	testenv.StartPTY(t, 80, 24, "ssh", "-F", sshCfg, "-N", "-o", "ExitOnForwardFailure=yes",
		"-L", fmt.Sprintf("127.0.0.1:%d:pg1:5432", lport), "127.0.0.1")
	waitPort(t, lport)
	r := testenv.Run(t, 60*time.Second, "", pg.Tool(t, "psql"), "-X", "-At",
		fmt.Sprintf("host=127.0.0.1 port=%d user=app dbname=shop sslmode=disable connect_timeout=20", lport),
		"-c", "SELECT name, card FROM customers ORDER BY id", "-c", "DROP TABLE customers")
	if !strings.Contains(r.Stdout, "Ada|********") || !strings.Contains(r.Stderr, "no-drop") {
		t.Fatalf("psql through the bastion: %s", r)
	}
	// A tcp session through ssh -L: a GET to Python's http.server.
	webDir := t.TempDir()
	os.WriteFile(filepath.Join(webDir, "hello.txt"), []byte("hello from the console's capture\n"), 0o644)
	web := exec.Command("python3", "-m", "http.server", fmt.Sprint(httpPort), "--bind", "127.0.0.1", "--directory", webDir)
	if err := web.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { web.Process.Kill(); web.Wait() })
	waitPort(t, httpPort)
	hport := testenv.FreePort(t)
	testenv.StartPTY(t, 80, 24, "ssh", "-F", sshCfg, "-N", "-o", "ExitOnForwardFailure=yes",
		"-L", fmt.Sprintf("127.0.0.1:%d:webhttp:%d", hport, httpPort), "127.0.0.1")
	waitPort(t, hport)
	if out, err := exec.Command("curl", "-sS", fmt.Sprintf("http://127.0.0.1:%d/hello.txt?via=console", hport)).CombinedOutput(); err != nil ||
		string(out) != "hello from the console's capture\n" {
		t.Fatalf("curl through the bastion: %v %s", err, out)
	}
	var shell, hostile, pgSession, tcpSession recorder.SessionInfo
	var list []recorder.SessionInfo
	testenv.WaitFor(t, 20*time.Second, "the PostgreSQL session ended", func() bool {
		list, _ = w.app.Store.Sessions(recorder.SessionFilter{})
		pgSession, tcpSession = recorder.SessionInfo{}, recorder.SessionInfo{}
		for _, s := range list {
			switch {
			case s.Kind == "tcp" && s.BytesIn > 0: // not waitPort's empty one
				tcpSession = s
			case s.Kind == "shell":
				shell = s
			case strings.Contains(s.Command, "<script>"):
				hostile = s
			case s.Kind == "postgres" && s.Start.After(pgSession.Start): // not waitPort's empty one
				pgSession = s
			}
		}
		return pgSession.Status == recorder.StatusEnded && tcpSession.Status == recorder.StatusEnded
	})
	if shell.ID == "" || hostile.ID == "" {
		t.Fatalf("sessions %+v", list)
	}

	t.Run("refusals without a session", func(t *testing.T) {
		c := &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
		resp, err := c.Get(base + "/sessions/" + shell.ID)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if loc := resp.Header.Get("Location"); resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/login?next=") {
			t.Errorf("a page without a cookie: %d %q", resp.StatusCode, loc)
		}
		for _, r := range []struct{ method, path string }{
			{"GET", "/api/sessions/" + shell.ID + "/cast"},
			{"POST", "/approvals/x/approve"},
		} {
			req, _ := http.NewRequest(r.method, base+r.path, nil)
			resp, err := c.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != http.StatusUnauthorized {
				t.Errorf("%s %s without a cookie: %d", r.method, r.path, resp.StatusCode)
			}
		}
	})

	alice := newBrowser(t, root, "alice")
	carol := newBrowser(t, root, "carol")
	alice.signIn(base, "u-alice")
	carol.signIn(base, "u-carol")

	t.Run("sign-in and visibility", func(t *testing.T) {
		var seen string
		seen = eval[string](alice, `document.cookie`) // HttpOnly: the page does not see it
		if strings.Contains(seen, "bastion_console") {
			t.Errorf("the session cookie is visible to scripts: %q", seen)
		}
		if got := alice.text("#whoami"); !strings.Contains(got, "alice") {
			t.Errorf("alice's header says %q", got)
		}
		// alice is an auditor: she sees every session; carol sees her own
		// only, and has none.
		if got := alice.text("#sessions"); !strings.Contains(got, "web1") {
			t.Errorf("alice's list:\n%s", got)
		}
		var n int
		n = eval[int](alice, `document.querySelectorAll('#sessions tr[data-session]').length`)
		if n != len(list) {
			t.Errorf("alice sees %d sessions, want %d", n, len(list))
		}
		n = eval[int](carol, `document.querySelectorAll('#sessions tr[data-session]').length`)
		if n != 0 {
			t.Errorf("carol sees %d of alice's sessions", n)
		}
		carol.run("open alice's session", chromedp.Navigate(base+"/sessions/"+shell.ID), chromedp.WaitVisible(chromedp.CSS(`.message`)))
		if got := carol.text(".message"); !strings.Contains(got, "No session") {
			t.Errorf("carol opening alice's session: %q", got)
		}
		// Filters: the blocked outcome finds the shell session and the
		// PostgreSQL one (its DROP), newest first.
		alice.run("filter", chromedp.Navigate(base+"/sessions?outcome=blocked"), chromedp.WaitVisible(chromedp.CSS(`#sessions`)))
		seen = eval[string](alice, `[...document.querySelectorAll('#sessions tr[data-session]')].map(r => r.dataset.session).join(",")`)
		if seen != pgSession.ID+","+shell.ID {
			t.Errorf("outcome=blocked lists %q, want %s,%s", seen, pgSession.ID, shell.ID)
		}
		// Search: over the commands the audit log recorded, and the exec's.
		for q, want := range map[string]string{"nothing-here": shell.ID, "pwned": hostile.ID} {
			alice.run("search", chromedp.Navigate(base+"/sessions?q="+q), chromedp.WaitVisible(chromedp.CSS(`#sessions`)))
			if seen = eval[string](alice, `[...document.querySelectorAll('#sessions tr[data-session]')].map(r => r.dataset.session).join(",")`); seen != want {
				t.Errorf("q=%s lists %q, want %s", q, seen, want)
			}
		}
	})

	// A recording larger than the page's first part: the player starts on
	// that part, the rest is swapped in, and a marker past the first part
	// is listed and jumpable.
	t.Run("replay of a large recording", func(t *testing.T) {
		rec, err := w.app.Store.Begin(recorder.SessionInfo{Kind: "shell", User: "alice", Target: "web1", Login: "root", Width: 100, Height: 30})
		if err != nil {
			t.Fatal(err)
		}
		rec.Output([]byte("big-first-frame\r\n"))
		line := []byte("log line of a long session, nothing to see here\r\n")
		for range (1 << 20) / len(line) {
			rec.Output(line)
		}
		rec.Output([]byte("big-late-part\r\n"))
		rec.Marker("late marker")
		rec.Output([]byte("big-after-marker\r\n"))
		if err := rec.End(recorder.ExitInfo{}); err != nil {
			t.Fatal(err)
		}
		alice.run("open the large session", chromedp.Navigate(base+"/sessions/"+rec.ID()), chromedp.WaitVisible(chromedp.CSS(`body[data-ready]`)),
			chromedp.WaitVisible(chromedp.CSS(`button.marker`)))
		if got := alice.text("#markers"); !strings.Contains(got, "late marker") {
			t.Fatalf("markers:\n%s", got)
		}
		alice.run("jump to the late marker", chromedp.Click(chromedp.CSS(`button.marker[data-marker="0"]`)))
		alice.waitText("#marker-now", "late marker")
		alice.waitText("#player", "big-late-part")
		// Started at once, on the first part, it plays on to the end of
		// the whole recording.
		alice.run("open it again", chromedp.Navigate(base+"/sessions/"+rec.ID()))
		_ = eval[bool](alice, `new Promise((resolve) => {
			const tick = () => {
				const start = document.querySelector("#player .ap-overlay-start");
				if (start) { start.click(); resolve(true); } else { setTimeout(tick, 5); }
			};
			tick();
		})`)
		alice.waitText("#player", "big-after-marker")
		// Opened twice, downloaded twice: the page's preload of the
		// recording and its read of it are one request.
		replays := 0
		w.app.Store.AuditEvents(time.Time{}, func(ev recorder.AuditEvent) error {
			if ev.Type == "session.replay" && ev.SessionID == rec.ID() {
				replays++
			}
			return nil
		})
		if replays != 2 {
			t.Errorf("two openings of the page made %d replays", replays)
		}
	})

	// A recording larger than the page reads whole plays in segments: the
	// markers of the whole recording are listed, a seek near its end shows
	// the text written there, and the browser has fetched only some
	// segments, not the recording. It is dave's: alice, an auditor, may
	// replay it; carol may not fetch a part of it.
	t.Run("seek in a recording played in segments", func(t *testing.T) {
		rec, err := w.app.Store.Begin(recorder.SessionInfo{Kind: "shell", User: "dave", Target: "web1", Login: "root", Width: 100, Height: 30})
		if err != nil {
			t.Fatal(err)
		}
		// The recorder's clock is the real one: a pause of a few
		// milliseconds keeps the marked moments apart from what follows.
		apart := func() { time.Sleep(3 * time.Millisecond) }
		rec.Output([]byte("seg-first-frame\r\n"))
		apart()
		rec.Marker("early marker")
		apart()
		block := []byte(strings.Repeat("log line of a very long session, nothing to see here\r\n", 4096/55))
		for range (20 << 20) / len(block) {
			rec.Output(block)
		}
		rec.Output([]byte("\x1b[1mseg-near-the-end\x1b[0m\r\n"))
		apart()
		rec.Marker("late marker")
		apart()
		rec.Output(block)
		rec.Output([]byte("seg-last-line\r\n"))
		if err := rec.End(recorder.ExitInfo{}); err != nil {
			t.Fatal(err)
		}
		info, err := w.app.Store.Session(rec.ID())
		if err != nil || info.Stored <= 16<<20 {
			t.Fatalf("the recording: %+v %v", info, err)
		}
		alice.run("open the segmented session", chromedp.Navigate(base+"/sessions/"+rec.ID()), chromedp.WaitVisible(chromedp.CSS(`body[data-ready]`)),
			chromedp.WaitVisible(chromedp.CSS(`button.marker[data-marker="1"]`)))
		if got := alice.text("#markers"); !strings.Contains(got, "early marker") || !strings.Contains(got, "late marker") {
			t.Fatalf("markers:\n%s", got)
		}
		if n := eval[int](alice, `document.querySelectorAll('#player .ap-marker-container, #player .ap-marker').length`); n < 2 {
			t.Errorf("%d markers on the player's timeline, want 2", n)
		}
		alice.run("jump to the late marker", chromedp.Click(chromedp.CSS(`button.marker[data-marker="1"]`)))
		alice.waitText("#marker-now", "late marker")
		alice.waitText("#player .ap-term", "seg-near-the-end")
		// The very end, by time.
		_ = eval[bool](alice, `Promise.resolve(window.bastionPlayer.getDuration()).then((d) => window.bastionPlayer.seek(d)).then(() => true)`)
		alice.waitText("#player .ap-term", "seg-last-line")
		// Back to the start: the first segment again.
		alice.run("jump to the early marker", chromedp.Click(chromedp.CSS(`button.marker[data-marker="0"]`)))
		alice.waitText("#marker-now", "early marker")
		alice.waitText("#player .ap-term", "seg-first-frame")
		// Another idle limit: the bastion cuts the pauses, so the index
		// and the segments come again, with the page's grant.
		_ = eval[bool](alice, `(() => { delete document.body.dataset.ready; const s = document.getElementById("idle"); s.value = ""; s.dispatchEvent(new Event("change")); return true; })()`)
		alice.run("the index again", chromedp.WaitVisible(chromedp.CSS(`body[data-ready]`)), chromedp.WaitVisible(chromedp.CSS(`button.marker[data-marker="1"]`)))
		alice.run("jump to the late marker again", chromedp.Click(chromedp.CSS(`button.marker[data-marker="1"]`)))
		alice.waitText("#player .ap-term", "seg-near-the-end")
		fetched := eval[float64](alice, `performance.getEntriesByType("resource").filter((r) => r.name.includes("/segments")).reduce((n, r) => n + r.decodedBodySize, 0)`)
		if fetched <= 0 || fetched >= float64(info.Stored)/2 {
			t.Errorf("the page fetched %.0f bytes of segments for a %d-byte recording", fetched, info.Stored)
		}
		if n := eval[int](alice, `performance.getEntriesByType("resource").filter((r) => r.name.includes("/cast")).length`); n != 0 {
			t.Errorf("the page downloaded the whole recording %d times", n)
		}
		// Authorisation and audit of the parts: the page view is the one
		// replay record; a part fetched without the page's grant is
		// audited itself; carol, who may not see dave's session, is
		// refused the index and a segment, and not recorded.
		count := func() (all, parts int) {
			w.app.Store.AuditEvents(time.Time{}, func(ev recorder.AuditEvent) error {
				if ev.Type == "session.replay" && ev.SessionID == rec.ID() {
					all++
					if ev.Fields["part"] != "" {
						parts++
					}
				}
				return nil
			})
			return
		}
		if all, parts := count(); all != 1 || parts != 0 {
			t.Errorf("one page view: %d replay records, %d of parts", all, parts)
		}
		fetch := func(b *browser, path string) int {
			return eval[int](b, fmt.Sprintf(`fetch(%q, { credentials: "same-origin" }).then((r) => r.status)`, path))
		}
		segURL := "/api/sessions/" + rec.ID() + "/segments"
		if code := fetch(alice, segURL+"/3"); code != http.StatusOK {
			t.Errorf("alice's segment without a grant: %d", code)
		}
		if all, parts := count(); all != 2 || parts != 1 {
			t.Errorf("after a segment without a grant: %d replay records, %d of parts", all, parts)
		}
		grant := eval[string](alice, `new URL(document.getElementById("player").dataset.segments, location.href).searchParams.get("view")`)
		for _, p := range []string{segURL + "?view=" + grant, segURL + "/3?view=" + grant, segURL + "/3"} {
			if code := fetch(carol, p); code != http.StatusNotFound {
				t.Errorf("carol's %s: %d", p, code)
			}
		}
		if all, _ := count(); all != 2 {
			t.Errorf("carol's refused fetches were recorded: %d replay records", all)
		}
	})

	t.Run("replay with a blocked-command marker", func(t *testing.T) {
		alice.run("open the session", chromedp.Navigate(base+"/sessions/"+shell.ID), chromedp.WaitVisible(chromedp.CSS(`body[data-ready]`)),
			chromedp.WaitVisible(chromedp.CSS(`button.marker`)))
		markers := alice.text("#markers")
		if !strings.Contains(markers, "blocked by rule no-rm-rf: rm -rf /tmp/nothing-here") {
			t.Fatalf("markers:\n%s", markers)
		}
		var timeline int
		timeline = eval[int](alice, `document.querySelectorAll('#player .ap-marker-container, #player .ap-marker').length`)
		if timeline == 0 {
			t.Error("no marker on the player's timeline")
		}
		// Jump to the block: the screen is the moment of the blocked line,
		// and the page shows the block message.
		alice.run("jump to the marker", chromedp.Click(chromedp.CSS(`button.marker[data-marker="0"]`)))
		screen := alice.waitText("#player", "rm -rf /tmp/nothing-here")
		alice.waitText("#marker-now", "bastion: blocked by rule no-rm-rf: rm -rf /tmp/nothing-here")
		// Playing on from there, the bastion's message is on the screen too.
		_ = eval[bool](alice, `window.bastionPlayer.play().then(() => true)`)
		screen = alice.waitText("#player", "blocked by rule no-rm-rf")
		if !strings.Contains(screen, "hello-42-console") {
			t.Errorf("the player's screen lacks the session's text:\n%s", screen)
		}
		replayed := false
		w.app.Store.AuditEvents(time.Time{}, func(ev recorder.AuditEvent) error {
			replayed = replayed || ev.Type == "session.replay" && ev.SessionID == shell.ID && ev.User == "alice"
			return nil
		})
		if !replayed {
			t.Error("the replay is not in the audit log")
		}
	})

	// A PostgreSQL session's transcript plays like a shell's: the rows
	// with the card column masked, and the blocked DROP as a marker and a
	// message.
	t.Run("PostgreSQL replay", func(t *testing.T) {
		alice.run("open the PostgreSQL session", chromedp.Navigate(base+"/sessions/"+pgSession.ID), chromedp.WaitVisible(chromedp.CSS(`body[data-ready]`)),
			chromedp.WaitVisible(chromedp.CSS(`button.marker`)))
		markers := alice.text("#markers")
		if !strings.Contains(markers, "no-drop") || !strings.Contains(markers, "DROP TABLE customers") {
			t.Fatalf("markers:\n%s", markers)
		}
		_ = eval[bool](alice, `window.bastionPlayer.play().then(() => true)`)
		screen := alice.waitText("#player", "Ada")
		screen = alice.waitText("#player", "no-drop")
		t.Logf("the PostgreSQL session's screen:\n%s", screen)
		if !strings.Contains(screen, "********") {
			t.Errorf("the masked card column is not shown masked:\n%s", screen)
		}
		if page := eval[string](alice, `document.body.innerText`); strings.Contains(page, "4111 1111") || strings.Contains(page, "5500 0000") {
			t.Errorf("a card number reached the page:\n%s", page)
		}
		blockMarker := eval[string](alice, `[...document.querySelectorAll("button.marker")].find(b => b.textContent.includes("no-drop")).dataset.marker`)
		alice.run("jump to the blocked statement", chromedp.Click(chromedp.CSS(`button.marker[data-marker="`+blockMarker+`"]`)))
		alice.waitText("#marker-now", "DROP TABLE customers")
	})

	// The capture download of a tcp and of a PostgreSQL session, fetched as
	// the browser would from the session's page and read by the real
	// tshark; audited; offered for neither a shell session nor another's.
	t.Run("capture download", func(t *testing.T) {
		type capture struct {
			Status      int    `json:"status"`
			Type        string `json:"type"`
			Disposition string `json:"disposition"`
			Body        string `json:"body"`
		}
		const fetchPcap = `(async () => {
			const r = await fetch(document.querySelector("#pcap").href);
			const b = new Uint8Array(await r.arrayBuffer());
			let s = "";
			for (const x of b) s += String.fromCharCode(x);
			return {status: r.status, type: r.headers.get("Content-Type") || "", disposition: r.headers.get("Content-Disposition") || "", body: btoa(s)};
		})()`
		download := func(id string) string {
			alice.run("open "+id, chromedp.Navigate(base+"/sessions/"+id), chromedp.WaitVisible(chromedp.CSS(`#pcap`)))
			got := eval[capture](alice, fetchPcap)
			data, err := base64.StdEncoding.DecodeString(got.Body)
			if err != nil || got.Status != http.StatusOK || got.Type != "application/vnd.tcpdump.pcap" || !strings.Contains(got.Disposition, id+".pcap") {
				t.Fatalf("the capture of %s: %d %q %q, %d bytes (%v)", id, got.Status, got.Type, got.Disposition, len(data), err)
			}
			p := filepath.Join(t.TempDir(), id+".pcap")
			if err := os.WriteFile(p, data, 0o600); err != nil {
				t.Fatal(err)
			}
			return p
		}
		tshark := func(pcap string, args ...string) string {
			t.Helper()
			r := testenv.Run(t, 60*time.Second, "", "tshark", append([]string{"-r", pcap}, args...)...)
			if r.Code != 0 {
				t.Fatalf("tshark %v: %s", args, r)
			}
			return r.Stdout
		}
		webPcap := download(tcpSession.ID)
		fields := tshark(webPcap, "-Y", "http", "-T", "fields", "-e", "http.request.uri", "-e", "http.response.code", "-e", "http.file_data")
		if !strings.Contains(fields, "/hello.txt?via=console") || !strings.Contains(fields, "200") {
			t.Errorf("tshark on the tcp session's capture:\n%s", fields)
		}
		follow := tshark(webPcap, "-q", "-z", "follow,tcp,ascii,0")
		if !strings.Contains(follow, "GET /hello.txt?via=console HTTP/1.1") || !strings.Contains(follow, "hello from the console's capture") {
			t.Errorf("tshark's follow of the tcp session:\n%s", follow)
		}
		pgPcap := download(pgSession.ID)
		queries := tshark(pgPcap, "-d", fmt.Sprintf("tcp.port==%d,pgsql", pg.Port), "-Y", "pgsql", "-T", "fields", "-e", "pgsql.query")
		if !strings.Contains(queries, "SELECT name, card FROM customers ORDER BY id") || !strings.Contains(queries, "DROP TABLE customers") {
			t.Errorf("tshark on the PostgreSQL session's capture:\n%s", queries)
		}
		pgFollow := tshark(pgPcap, "-q", "-z", "follow,tcp,ascii,0")
		if !strings.Contains(pgFollow, "********") || strings.Contains(pgFollow, "4111 1111") || strings.Contains(pgFollow, "5500 0000") {
			t.Errorf("the PostgreSQL capture's rows are not masked:\n%s", pgFollow)
		}
		exports := 0
		w.app.Store.AuditEvents(time.Time{}, func(ev recorder.AuditEvent) error {
			if ev.Type == "session.export" && ev.Fields["via"] == "console" && ev.Fields["format"] == "pcap" && ev.User == "alice" {
				exports++
			}
			return nil
		})
		if exports != 2 {
			t.Errorf("%d console pcap exports audited, want 2", exports)
		}
		alice.run("the shell session", chromedp.Navigate(base+"/sessions/"+shell.ID), chromedp.WaitVisible(chromedp.CSS(`#player`)))
		if n := eval[int](alice, `document.querySelectorAll("#pcap").length`); n != 0 {
			t.Error("a shell session's page offers a capture")
		}
		if status := eval[int](alice, `fetch("/sessions/`+shell.ID+`/pcap").then(r => r.status)`); status != http.StatusNotFound {
			t.Errorf("a shell session's capture: %d", status)
		}
		carol.run("carol's sessions", chromedp.Navigate(base+"/sessions"), chromedp.WaitVisible(chromedp.CSS(`#sessions`)))
		if status := eval[int](carol, `fetch("/sessions/`+tcpSession.ID+`/pcap").then(r => r.status)`); status != http.StatusNotFound {
			t.Errorf("carol's capture of alice's session: %d", status)
		}
	})

	// The audit page: an auditor sees the events and filters them, the
	// download is JSON lines of the same events, and a non-auditor is
	// refused both.
	t.Run("audit page", func(t *testing.T) {
		alice.run("audit", chromedp.Navigate(base+"/audit?type=command.block"), chromedp.WaitVisible(chromedp.CSS(`#audit`)))
		rows := eval[[]string](alice, `[...document.querySelectorAll("#audit tbody tr")].map(r => r.innerText)`)
		if len(rows) != 1 || !strings.Contains(rows[0], "command.block") || !strings.Contains(rows[0], "rm -rf /tmp/nothing-here") {
			t.Errorf("alice's audit page filtered by command.block:\n%s", strings.Join(rows, "\n"))
		}
		alice.run("audit, all", chromedp.Navigate(base+"/audit"), chromedp.WaitVisible(chromedp.CSS(`#audit`)))
		all := alice.text("#audit")
		for _, want := range []string{"session.replay", "command.block", "sql.statement", "login"} {
			if !strings.Contains(all, want) {
				t.Errorf("alice's audit page lacks %s:\n%s", want, all)
			}
		}
		// The page's download link, fetched as the browser would.
		type download struct {
			Status      int      `json:"status"`
			Type        string   `json:"type"`
			Disposition string   `json:"disposition"`
			Cache       string   `json:"cache"`
			Lines       []string `json:"lines"`
		}
		const fetchLink = `(async () => {
			const r = await fetch(document.querySelector('a[href^="/audit.jsonl"]').href);
			return {status: r.status, type: r.headers.get("Content-Type") || "", disposition: r.headers.get("Content-Disposition") || "",
				cache: r.headers.get("Cache-Control") || "", lines: (await r.text()).split("\n").filter(l => l)};
		})()`
		alice.run("audit filtered to sql", chromedp.Navigate(base+"/audit?type=sql."), chromedp.WaitVisible(chromedp.CSS(`#audit`)))
		got := eval[download](alice, fetchLink)
		if got.Status != http.StatusOK || got.Type != "application/jsonl" || !strings.Contains(got.Disposition, "audit.jsonl") || got.Cache != "no-store" || len(got.Lines) == 0 {
			t.Fatalf("the download: %+v", got)
		}
		blockedDrop := false
		for _, l := range got.Lines {
			var ev recorder.AuditEvent
			if err := json.Unmarshal([]byte(l), &ev); err != nil || !strings.HasPrefix(ev.Type, "sql.") {
				t.Errorf("a line of the download filtered to sql.: %q (%v)", l, err)
			}
			blockedDrop = blockedDrop || ev.Outcome == "blocked" && strings.Contains(ev.Fields["statement"]+ev.Fields["sql"], "DROP TABLE customers")
		}
		if !blockedDrop {
			t.Errorf("the download lacks the blocked DROP:\n%s", strings.Join(got.Lines, "\n"))
		}
		// carol is no auditor: no link, the page and the download refused.
		carol.run("carol's sessions", chromedp.Navigate(base+"/sessions"), chromedp.WaitVisible(chromedp.CSS(`#sessions`)))
		if n := eval[int](carol, `document.querySelectorAll('header a[href="/audit"]').length`); n != 0 {
			t.Error("carol's header links to the audit log")
		}
		carol.run("carol's audit", chromedp.Navigate(base+"/audit"), chromedp.WaitVisible(chromedp.CSS(`.message`)))
		if got := carol.text(".message"); !strings.Contains(got, "Only auditors") {
			t.Errorf("carol's audit page: %q", got)
		}
		if status := eval[int](carol, `fetch("/audit.jsonl").then(r => r.status)`); status != http.StatusForbidden {
			t.Errorf("carol's download: %d", status)
		}
	})

	t.Run("live view", func(t *testing.T) {
		p := testenv.StartPTY(t, 100, 30, "ssh", "-F", sshCfg, "-tt", "root@web1")
		p.Send("PS1='$ '; echo live-$((1+1))-before\r")
		p.Expect("live-2-before", 20*time.Second)
		var live recorder.SessionInfo
		testenv.WaitFor(t, 20*time.Second, "the live session", func() bool {
			l, _ := w.app.Store.Sessions(recorder.SessionFilter{Kind: "shell"})
			for _, s := range l {
				if s.Status == recorder.StatusLive {
					live = s
					return true
				}
			}
			return false
		})
		alice.run("open the live session", chromedp.Navigate(base+"/sessions/"+live.ID), chromedp.WaitVisible(chromedp.CSS(`body[data-ready]`)))
		alice.waitText("#player", "live-2-before")
		// The terminal follows it too: bastion replay --follow, from now.
		replayDone, replay := w.startCLI(nil, "replay", live.ID, "--follow", "--from", "now")
		replay.next(t, func(l string) bool { return strings.Contains(l, "live-2-before") })
		start := time.Now()
		p.Send("echo live-$((2*3))-after\r")
		alice.waitText("#player", "live-6-after")
		t.Logf("typed output reached the live page in %v", time.Since(start))
		replay.next(t, func(l string) bool { return strings.Contains(l, "live-6-after") })
		t.Logf("and bastion replay --follow in %v", time.Since(start))
		// From the start: the history plays (with its own timing, pauses
		// cut to the page's idle limit), then the page goes on live, and
		// it says so when the session ends.
		alice.run("follow it from the start", chromedp.Navigate(base+"/sessions/"+live.ID+"?from=start"), chromedp.WaitVisible(chromedp.CSS(`body[data-ready]`)))
		if got := eval[string](alice, `document.getElementById("from").value`); got != "start" {
			t.Errorf("the page follows from %q", got)
		}
		alice.waitText("#player", "live-2-before")
		alice.waitText("#player", "live-6-after")
		p.Send("echo live-$((4*6))-later\r")
		alice.waitText("#player", "live-24-later")
		p.Send("exit\r")
		p.Wait(20 * time.Second)
		if err := waitCmd(replayDone); err != nil { // it ends with the session
			t.Errorf("replay --follow: %v\n%s", err, replay)
		}
		alice.run("the live view ends with the session", chromedp.WaitVisible(chromedp.CSS(`#live-ended`)))
		fromStart := false
		w.app.Store.AuditEvents(time.Time{}, func(ev recorder.AuditEvent) error {
			fromStart = fromStart || ev.Type == "session.replay" && ev.SessionID == live.ID && ev.Fields["from"] == "start"
			return nil
		})
		if !fromStart {
			t.Error("the live view from the start is not in the audit log")
		}
	})

	t.Run("attacker-controlled text is inert", func(t *testing.T) {
		alice.run("list", chromedp.Navigate(base+"/sessions"), chromedp.WaitVisible(chromedp.CSS(`#sessions`)))
		alice.run("replay", chromedp.Navigate(base+"/sessions/"+hostile.ID), chromedp.WaitVisible(chromedp.CSS(`body[data-ready]`)))
		_ = eval[bool](alice, `window.bastionPlayer.play().then(() => true)`)
		alice.waitText("#player", "<b>done")
		type effects struct {
			Pwned   bool   `json:"pwned"`
			Imgs    int    `json:"imgs"`
			Title   string `json:"title"`
			Scripts int    `json:"scripts"`
		}
		got := eval[effects](alice, `({pwned: window.pwned !== undefined, imgs: document.querySelectorAll('img').length,
			title: document.title, scripts: document.scripts.length})`)
		if got.Pwned || got.Imgs != 0 || alice.dialog.Load() || !strings.HasSuffix(got.Title, "· bastion") {
			t.Errorf("the hostile session had an effect: %+v dialog=%v", got, alice.dialog.Load())
		}
		if cmd := alice.text(".info .cmd"); !strings.Contains(cmd, "<script>window.pwned=1</script>") {
			t.Errorf("the command is not shown as text: %q", cmd)
		}
	})

	t.Run("approve a held command from the page", func(t *testing.T) {
		dir := t.TempDir()
		os.Chmod(dir, 0o777)
		target := filepath.Join(dir, "approve-me")
		carol.run("approvals", chromedp.Navigate(base+"/approvals"), chromedp.WaitVisible(chromedp.CSS(`#requests`)))
		done := make(chan error, 1)
		var out strings.Builder
		cmd := exec.Command("ssh", "-F", sshCfg, "root@web1", "touch "+target)
		cmd.Stdout, cmd.Stderr = &out, &out
		if err := cmd.Start(); err != nil {
			t.Fatal(err)
		}
		go func() { done <- cmd.Wait() }()
		t.Cleanup(func() { cmd.Process.Kill() })

		// carol's page shows the request without a reload.
		carol.waitText("#requests", "touch "+target)
		var id string
		id = eval[string](carol, `document.querySelector('section.request').dataset.request`)

		// alice, the requester, sees it as her own, without buttons, and
		// a POST with her valid CSRF token is refused.
		alice.run("approvals", chromedp.Navigate(base+"/approvals/"+id), chromedp.WaitVisible(chromedp.CSS(`#request-`+id)))
		if got := alice.text(`#request-` + id); !strings.Contains(got, "Your own request") {
			t.Errorf("alice's view of her request:\n%s", got)
		}
		var status int
		status = eval[int](alice, fmt.Sprintf(`fetch('/approvals/%s/approve', {method: 'POST', body: new URLSearchParams({csrf: document.querySelector('meta[name=csrf]').content})}).then(r => r.status)`, id))
		if status != http.StatusForbidden {
			t.Errorf("alice approving her own request: %d", status)
		}
		// A POST without the CSRF token is refused, even from carol.
		status = eval[int](carol, fmt.Sprintf(`fetch('/approvals/%s/approve', {method: 'POST', body: new URLSearchParams({})}).then(r => r.status)`, id))
		if status != http.StatusForbidden {
			t.Errorf("a POST without the CSRF token: %d", status)
		}
		select {
		case err := <-done:
			t.Fatalf("the held command ended before approval: %v\n%s", err, out.String())
		default:
		}

		carol.run("approve", chromedp.Click(chromedp.CSS(`#request-`+id+` button.approve`)), chromedp.WaitVisible(chromedp.CSS(`#requests`)))
		select {
		case err := <-done:
			if err != nil {
				t.Fatalf("ssh after approval: %v\n%s", err, out.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatalf("the held command did not run after approval:\n%s", out.String())
		}
		if !exists(target) {
			t.Errorf("%s was not created after approval", target)
		}
		if got := carol.text("#requests"); strings.Contains(got, target) {
			t.Errorf("the decided request is still listed:\n%s", got)
		}
	})

	if t.Failed() {
		alice.screenshot("end")
		carol.screenshot("end")
	}
}

func exists(p string) bool { _, err := os.Stat(p); return err == nil }
