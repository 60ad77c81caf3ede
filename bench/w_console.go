package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/chromedp/chromedp"
)

// firstFrameJS runs in the replay page right after navigation: it starts
// the player as soon as the page has one (a click on its start overlay,
// as a person's) and resolves, when the player's terminal first shows the
// fixture's first text, with the page's clock (milliseconds since the
// navigation started) when the first frame was shown: the first screen
// the server drew into the page, if it holds that text, when the browser
// painted it (Element Timing, else the first contentful paint), or else
// the player's terminal. Then when the page's HTML had arrived, when
// DOMContentLoaded was done, when the player was first seen, the page's
// marks (the recording requested, its response, its first part, the
// player's script run, the player created), the player's script's
// arrival and transferred bytes, and last when the player's terminal
// showed the text.
const firstFrameJS = `new Promise((resolve, reject) => {
  let painted = 0;
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) { if (e.identifier === "first-screen") { painted = e.renderTime || e.loadTime; } }
  }).observe({ type: "element", buffered: true });
  let played = false;
  let seen = 0;
  let onPage = 0;
  const want = %q;
  const tick = () => {
    const p = window.bastionPlayer;
    if (p && !played) {
      played = true;
      seen = performance.now();
      const start = document.querySelector("#player .ap-overlay-start");
      if (start) { start.click(); } else { p.play(); }
    }
    // The first screen the server drew into the page: when the browser
    // painted it (Element Timing; else the first contentful paint).
    const pre = document.getElementById("first-screen");
    const screen = pre ? pre.textContent : (window.bastionFirstScreen || "");
    if (!onPage && screen.includes(want) && (painted || pre)) {
      const fcp = performance.getEntriesByName("first-contentful-paint")[0];
      onPage = painted || (fcp && fcp.startTime) || performance.now();
    }
    const term = document.querySelector("#player .ap-term");
    if (term && term.textContent.includes(want)) {
      const nav = performance.getEntriesByType("navigation")[0] || {};
      const mark = (name) => (performance.getEntriesByName(name)[0] || {}).startTime || 0;
      const res = (part) => { const e = performance.getEntriesByType("resource").find((r) => r.name.includes(part)); return e ? e.responseEnd : 0; };
      const xfer = (part) => { const e = performance.getEntriesByType("resource").find((r) => r.name.includes(part)); return e ? e.transferSize : 0; };
      resolve([onPage || performance.now(), nav.responseEnd || 0, nav.domContentLoadedEventEnd || 0, seen, mark("bastion-cast-request"), mark("bastion-cast-response"),
        res("asciinema-player.min.js"), xfer("asciinema-player.min.js"), mark("bastion-player-script"), mark("bastion-first-part"), mark("bastion-player-created"), performance.now()]);
      return;
    }
    const err = document.getElementById("player-error");
    if (err && !err.hidden && !err.textContent.includes("larger than the browser holds")) { reject(new Error(err.textContent)); return; }
    setTimeout(tick, 2);
  };
  tick();
})`

// benchWebReplay times the web console's replay page on the large fixture:
// from the navigation to the session's page to the first frame's text in
// the player's terminal, in headless Chromium signed in to the console.
func (e *env) benchWebReplay() result {
	r := result{Workload: fmt.Sprintf("time to first frame of the web console's replay page on a %s recording (Chromium)", sizeName(e.opt.replayMiB<<20)), Goal: "<= 500 ms"}
	if e.replayID == "" {
		return failed(r, fmt.Errorf("no replay fixture"))
	}
	bctx, run, stop, err := e.consoleBrowser("")
	if err != nil {
		return failed(r, err)
	}
	defer stop()
	base := "http://" + e.bastion.httpAddr
	js := fmt.Sprintf(firstFrameJS, strings.TrimSpace(firstFrame))
	var ms, ms2, floor []float64 // the first frame on the page, in the player's terminal; the sessions page's first paint
	for i := range e.opt.replays {
		if err := run(20*time.Second, chromedp.Navigate(base+"/sessions/"+e.replayID)); err != nil {
			ctx, cancel := context.WithTimeout(bctx, 10*time.Second)
			st, err2 := chromedp.Run(ctx, chromedp.Evaluate[string](`document.readyState + " " + location.href + " " + document.body.innerText.slice(0, 500)`))
			cancel()
			return failed(r, fmt.Errorf("open the replay page: %w (%s %v)", err, st, err2))
		}
		ctx, cancel := context.WithTimeout(bctx, 15*time.Second)
		v, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](js, chromedp.EvalAwaitPromise))
		cancel()
		if err != nil {
			ctx, cancel := context.WithTimeout(bctx, 10*time.Second)
			st, err2 := chromedp.Run(ctx, chromedp.Evaluate[string](`String(!!window.bastionPlayer) + " " + document.body.dataset.ready + " " + document.getElementById("player").innerHTML.slice(0, 3000)`))
			cancel()
			return failed(r, fmt.Errorf("first frame: %w (%s %v)", err, st, err2))
		}
		ms = append(ms, v[0])
		if len(v) < 12 {
			return failed(r, fmt.Errorf("first frame: the page answered %v", v))
		}
		ms2 = append(ms2, v[11])
		logf("  web replay run %d: %.1f ms, in the player's terminal at %.1f ms (page received at %.0f ms; the player's script received at %.0f (%.0f bytes transferred, 0 = from the cache) and run at %.0f; DOMContentLoaded done at %.0f; the recording requested at %.0f, its response headers at %.0f, its first part at %.0f; the player created at %.0f, seen by the bench at %.0f)",
			i+1, v[0], v[11], v[1], v[6], v[7], v[8], v[2], v[4], v[5], v[9], v[10], v[3])
		// Leave the page, so its download of the rest stops before the
		// next run; then the floor: when the browser first paints the
		// sessions list, a page with neither player nor recording.
		if err := run(30*time.Second, chromedp.Navigate("about:blank")); err != nil {
			return failed(r, err)
		}
		if err := run(30*time.Second, chromedp.Navigate(base+"/sessions"), chromedp.WaitVisible(chromedp.CSS(`#sessions`))); err != nil {
			return failed(r, fmt.Errorf("the sessions page: %w", err))
		}
		ctx, cancel = context.WithTimeout(bctx, 10*time.Second)
		fcp, err := chromedp.Run(ctx, chromedp.Evaluate[float64](`new Promise((resolve) => new PerformanceObserver((l) => resolve(l.getEntries()[0].startTime)).observe({ type: "paint", buffered: true }))`, chromedp.EvalAwaitPromise))
		cancel()
		if err != nil {
			return failed(r, fmt.Errorf("the sessions page's first paint: %w", err))
		}
		floor = append(floor, fcp)
		logf("  the sessions page first painted at %.1f ms", fcp)
		if err := run(30*time.Second, chromedp.Navigate("about:blank")); err != nil {
			return failed(r, err)
		}
	}
	lo, hi := spread(ms)
	r.Bastion = fmt.Sprintf("%s ms", fmtNum(median(ms)))
	r.Ratio = fmt.Sprintf("%s ms (%s–%s)", fmtNum(median(ms)), fmtNum(lo), fmtNum(hi))
	r.Mark = mark(median(ms) <= 500)
	lo2, hi2 := spread(ms2)
	lo3, hi3 := spread(floor)
	r.notef("the page's own clock (performance.now(), zero at the navigation's start) when the fixture's first line is first shown: the first screen the server draws into the page, when the browser painted it (Element Timing); the player's terminal showed it at %s ms (%s–%s), the bench clicking the player's start overlay as soon as it exists, as a person would; the log splits each run (page, the player's script, DOMContentLoaded, the recording's request, response and first part, player created); the floor, the sessions list (no player, no recording) first painted in the same runs at %s ms (%s–%s)",
		fmtNum(median(ms2)), fmtNum(lo2), fmtNum(hi2), fmtNum(median(floor)), fmtNum(lo3), fmtNum(hi3))
	return r
}

// consoleBrowser starts headless Chromium (with its profile in dataDir,
// if not empty), opens a tab and signs in to the console as alice through
// the development IdP, as a person would. run runs actions in the tab
// with a deadline; stop ends the browser.
func (e *env) consoleBrowser(dataDir string) (ctx context.Context, run func(time.Duration, ...chromedp.Action[chromedp.Void]) error, stop func(), err error) {
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		return nil, nil, nil, fmt.Errorf("no chromium on PATH (Debian: apt-get install chromium)")
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:], chromedp.ExecPath(path), chromedp.NoSandbox,
		chromedp.Flag("disable-dev-shm-usage", true), chromedp.Flag("enable-precise-memory-info", true), chromedp.WindowSize(1280, 900))
	if dataDir != "" {
		opts = append(opts, chromedp.UserDataDir(dataDir))
	}
	actx, cancelA := chromedp.NewExecAllocator(context.Background(), opts...)
	root, cancelR := chromedp.NewContext(actx)
	stop = func() { cancelR(); cancelA() }
	if err := chromedp.Do(root); err != nil { // starts the browser, for as long as root lives
		stop()
		return nil, nil, nil, fmt.Errorf("chromium: %w", err)
	}
	bctx, cancelB := chromedp.NewContext(root)
	stop = func() { cancelB(); cancelR(); cancelA() }
	if err := chromedp.Do(bctx); err != nil { // opens the tab, for as long as bctx lives
		stop()
		return nil, nil, nil, fmt.Errorf("chromium: %w", err)
	}
	run = func(d time.Duration, actions ...chromedp.Action[chromedp.Void]) error {
		ctx, cancel := context.WithTimeout(bctx, d)
		defer cancel()
		return chromedp.Do(ctx, actions...)
	}
	base := "http://" + e.bastion.httpAddr
	if err := run(60*time.Second,
		chromedp.Navigate(base+"/sessions"),
		chromedp.WaitVisible(chromedp.CSS(`button[value="u-alice"]`)),
		chromedp.Click(chromedp.CSS(`button[value="u-alice"]`)),
		chromedp.WaitVisible(chromedp.CSS(`#sessions`)),
	); err != nil {
		stop()
		return nil, nil, nil, fmt.Errorf("sign in to the console: %w", err)
	}
	return bctx, run, stop, nil
}

// seekEndJS waits for the replay page's player, then seeks to the end of
// the recording and resolves with how long (ms) until the player's
// terminal shows the fixture's last line (-1: not within 20 s of the
// seek's end, or 30 s of its start), the markers the page lists, and the
// JavaScript heap in use then.
const seekEndJS = `new Promise((resolve) => {
  const want = %q;
  const ready = () => window.bastionPlayer && document.body.dataset.ready;
  const wait = (cond, ms) => new Promise((ok) => {
    const until = performance.now() + ms;
    const tick = () => { if (cond()) { ok(true); } else if (performance.now() > until) { ok(false); } else { setTimeout(tick, 5); } };
    tick();
  });
  (async () => {
    await wait(ready, 60000);
    const p = window.bastionPlayer;
    const t0 = performance.now();
    await Promise.race([p.seek(await Promise.resolve(p.getDuration())), new Promise((ok) => setTimeout(ok, 30000))]);
    const term = () => (document.querySelector("#player .ap-term") || {}).textContent || "";
    const shown = await wait(() => term().includes(want), 20000);
    const ms = shown ? performance.now() - t0 : -1;
    const markers = [...document.querySelectorAll("button.marker")].map((b) => b.textContent).join("|");
    const heap = (performance.memory || {}).usedJSHeapSize || 0;
    resolve(JSON.stringify({ ms, markers, heap, duration: p.getDuration() }));
  })();
})`

// benchWebSeek opens the large fixture's replay page, seeks to its end and
// times until the player shows the fixture's last line; it reports the
// markers the page lists (the fixture has one at 90%), the bytes the page
// fetched of the recording and the memory the tab uses (its renderer
// processes' resident memory, and the JavaScript heap).
func (e *env) benchWebSeek() result {
	r := result{Workload: fmt.Sprintf("seek to the end of a %s recording in the web console's player (Chromium)", sizeName(e.opt.replayMiB<<20)), Goal: "the end shows; the tab holds a bounded part"}
	if e.replayID == "" {
		return failed(r, fmt.Errorf("no replay fixture"))
	}
	dir, err := os.MkdirTemp("", "bench-webseek-")
	if err != nil {
		return failed(r, err)
	}
	defer os.RemoveAll(dir)
	bctx, run, stop, err := e.consoleBrowser(dir)
	if err != nil {
		return failed(r, err)
	}
	defer stop()
	if err := run(20*time.Second, chromedp.Navigate("http://"+e.bastion.httpAddr+"/sessions/"+e.replayID)); err != nil {
		return failed(r, fmt.Errorf("open the replay page: %w", err))
	}
	ctx, cancel := context.WithTimeout(bctx, 180*time.Second)
	out, err := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(seekEndJS, strings.TrimSpace(lastLine)), chromedp.EvalAwaitPromise))
	cancel()
	rss, rssMax := rendererRSS(dir)
	v := struct {
		MS       float64 `json:"ms"`
		Markers  string  `json:"markers"`
		Heap     float64 `json:"heap"`
		Duration float64 `json:"duration"`
	}{MS: -1}
	if err != nil {
		// The page did not answer: say so, with what the tab holds.
		ctx, cancel = context.WithTimeout(bctx, 10*time.Second)
		msg, err2 := chromedp.Run(ctx, chromedp.Evaluate[string](`document.getElementById("player-error").textContent`))
		cancel()
		logf("  web seek: %v; the page says %q (%v)", err, msg, err2)
		r.notef("the seek did not finish in 180 s (%v); the page said %q; the browser's renderer processes' resident memory %s MiB, the largest (the tab's) %s MiB", err, msg, fmtNum(float64(rss)/(1<<20)), fmtNum(float64(rssMax)/(1<<20)))
	} else if err := json.Unmarshal([]byte(out), &v); err != nil {
		return failed(r, fmt.Errorf("seek to the end: %s: %w", out, err))
	}
	ctx, cancel = context.WithTimeout(bctx, 10*time.Second)
	fetched, _ := chromedp.Run(ctx, chromedp.Evaluate[float64](`performance.getEntriesByType("resource").filter((r) => /\/api\/sessions\/[^/]+\/(cast|segments)/.test(r.name)).reduce((n, r) => n + r.decodedBodySize, 0)`))
	cancel()
	logf("  web seek: %s; fetched %.0f bytes; renderers' RSS %d, the largest %d", out, fetched, rss, rssMax)
	shown := v.MS >= 0
	if shown {
		r.Bastion = fmt.Sprintf("%s ms", fmtNum(v.MS))
	} else {
		r.Bastion = "the end never showed"
	}
	r.Ratio = r.Bastion
	r.Mark = mark(shown && strings.Contains(v.Markers, fixtureMarker) && rssMax < 256<<20)
	if err == nil {
		r.notef("the player's duration %.0f s, the markers listed %q (the fixture has %q at 90%%); the page fetched %s MiB of the recording; the browser's renderer processes' resident memory %s MiB, the largest (the tab's) %s MiB, its JavaScript heap %s MiB",
			v.Duration, v.Markers, fixtureMarker, fmtNum(fetched/(1<<20)), fmtNum(float64(rss)/(1<<20)), fmtNum(float64(rssMax)/(1<<20)), fmtNum(v.Heap/(1<<20)))
	}
	return r
}

// rendererRSS sums the resident memory of the Chromium renderer processes
// of the browser whose profile is dataDir, from /proc (the processes under
// the one started with that profile), and gives the largest, the tab's.
func rendererRSS(dataDir string) (sum, largest int64) {
	type proc struct {
		ppid     int
		renderer bool
		rss      int64
	}
	procs := map[int]proc{}
	ours := map[int]bool{}
	dirs, _ := filepath.Glob("/proc/[0-9]*")
	for _, d := range dirs {
		pid, err := strconv.Atoi(filepath.Base(d))
		if err != nil {
			continue
		}
		cmd, err1 := os.ReadFile(filepath.Join(d, "cmdline"))
		st, err2 := os.ReadFile(filepath.Join(d, "status"))
		if err1 != nil || err2 != nil {
			continue
		}
		var p proc
		p.renderer = bytes.Contains(cmd, []byte("--type=renderer"))
		for _, line := range strings.Split(string(st), "\n") {
			f := strings.Fields(line)
			switch {
			case len(f) == 2 && f[0] == "PPid:":
				p.ppid, _ = strconv.Atoi(f[1])
			case len(f) == 3 && f[0] == "VmRSS:":
				kb, _ := strconv.ParseInt(f[1], 10, 64)
				p.rss = kb << 10
			}
		}
		procs[pid] = p
		if bytes.Contains(cmd, []byte(dataDir)) {
			ours[pid] = true
		}
	}
	for pid, p := range procs {
		if !p.renderer {
			continue
		}
		for up, n := pid, 0; up > 1 && n < 10; up, n = procs[up].ppid, n+1 {
			if ours[up] {
				sum += p.rss
				largest = max(largest, p.rss)
				break
			}
		}
	}
	return sum, largest
}
