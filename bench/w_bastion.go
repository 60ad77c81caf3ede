package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"runtime/pprof"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/bastionhq/bastion/ca"
	"github.com/bastionhq/bastion/internal/app"
	"github.com/bastionhq/bastion/internal/localsvc"
	"github.com/bastionhq/bastion/recorder"
)

// benchIssue measures certificate issuance over the HTTP API: ID tokens
// from the development IdP, the IdP's key set cached by a warm-up, 16
// concurrent keep-alive clients.
func (e *env) benchIssue(openLoop bool) result {
	r := result{Workload: "certificate issuance over HTTP with a cached IdP key set, each ID token used once", Goal: ">= 3,000/s, p99 <= 10 ms"}
	const workers = 16
	claims, err := e.idp.IDTokenClaims("u-alice", "bastion")
	if err != nil {
		return failed(r, err)
	}
	keys := make([]string, 64)
	for i := range keys {
		pub, _, err := ed25519.GenerateKey(rand.Reader)
		if err != nil {
			return failed(r, err)
		}
		sp, err := ssh.NewPublicKey(pub)
		if err != nil {
			return failed(r, err)
		}
		keys[i] = string(ssh.MarshalAuthorizedKey(sp))
	}
	// An ID token buys one certificate, so every request carries a fresh
	// one: they are minted before each round, outside the measurement. The
	// store remembers used tokens across restarts, so a second run (the
	// SoftHSM row) needs IDs of its own.
	var minted atomic.Int64
	run := time.Now().UnixNano()
	mint := func(n int) ([][]byte, error) {
		bodies := make([][]byte, n)
		var wg sync.WaitGroup
		var mintErr atomic.Pointer[error]
		for w := range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				for i := w; i < n; i += 4 {
					c := maps.Clone(claims)
					c["jti"] = fmt.Sprintf("bench-%d-%d", run, minted.Add(1))
					tok, err := e.idp.MintIDToken(c)
					if err != nil {
						mintErr.Store(&err)
						return
					}
					bodies[i], _ = json.Marshal(ca.CertRequest{IDToken: tok, PublicKey: keys[i%len(keys)]})
				}
			}()
		}
		wg.Wait()
		if p := mintErr.Load(); p != nil {
			return nil, *p
		}
		return bodies, nil
	}
	// Connections for the 16 clients, and spare ones for the open loop,
	// which has as many requests in flight as it takes.
	client := &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{MaxIdleConnsPerHost: 4 * workers}}
	defer client.CloseIdleConnections()
	url := "http://" + e.bastion.httpAddr + ca.PathCertificate
	issue := func(body []byte) error {
		resp, err := client.Post(url, "application/json", bytes.NewReader(body))
		if err != nil {
			return err
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("issuance: %s: %s", resp.Status, b)
		}
		return nil
	}
	warm, err := mint(100)
	if err != nil {
		return failed(r, err)
	}
	for _, body := range warm { // fetches and caches the key set; warms connections
		if err := issue(body); err != nil {
			return failed(r, err)
		}
	}
	// A token used twice is refused.
	if err := issue(warm[0]); err == nil || !strings.Contains(err.Error(), "already used") {
		return failed(r, fmt.Errorf("a reused token was not refused: %v", err))
	}
	var rates, cpus []float64
	var lat []time.Duration
	want := 8000 // tokens for a round: enough for the rate seen so far, and more
	for round := range e.opt.rounds {
		bodies, err := mint(want)
		if err != nil {
			return failed(r, err)
		}
		var next atomic.Int64
		c0, err := readCPU(e.bastion.pid)
		if err != nil {
			return failed(r, err)
		}
		var mu sync.Mutex
		var firstErr error
		count := 0
		start := time.Now()
		deadline := start.Add(e.opt.issueTime)
		var wg sync.WaitGroup
		for range workers {
			wg.Add(1)
			go func() {
				defer wg.Done()
				var mine []time.Duration
				for time.Now().Before(deadline) {
					i := next.Add(1) - 1
					if i >= int64(len(bodies)) {
						break // out of tokens: the round ends early
					}
					t0 := time.Now()
					if err := issue(bodies[i]); err != nil {
						mu.Lock()
						firstErr = err
						mu.Unlock()
						return
					}
					mine = append(mine, time.Since(t0))
				}
				mu.Lock()
				lat = append(lat, mine...)
				count += len(mine)
				mu.Unlock()
			}()
		}
		wg.Wait()
		elapsed := time.Since(start)
		if firstErr != nil {
			return failed(r, firstErr)
		}
		c1, err := readCPU(e.bastion.pid)
		if err != nil {
			return failed(r, err)
		}
		rate := float64(count) / elapsed.Seconds()
		rates = append(rates, rate)
		want = max(want, int(rate*e.opt.issueTime.Seconds()*1.5))
		cpus = append(cpus, (c1.Own()-c0.Own()).Seconds()/float64(count)*1000)
		logf("  issue round %d: %.0f/s", round+1, rate)
	}
	ms := durationsMS(lat)
	p50, p99 := quantile(ms, 0.5), quantile(ms, 0.99)
	lo, hi := spread(rates)
	// Latency at the goal's rate, open loop (reported beside the row): requests leave on a fixed
	// schedule of issueRate per second whatever the answers, and each
	// latency counts from its scheduled time, so a stall shows in every
	// request it holds up (no coordinated omission). The closed loop above
	// measures the most the bastion issues; its latency is the queue of 16
	// clients on a saturated machine (16 / rate by Little's law).
	r.Bastion = fmt.Sprintf("%s/s, p50 %s ms, p99 %s ms", fmtNum(median(rates)), fmtNum(p50), fmtNum(p99))
	r.Ratio = fmt.Sprintf("%s/s (%s–%s), p99 %s ms", fmtNum(median(rates)), fmtNum(lo), fmtNum(hi), fmtNum(p99))
	r.CPUBast = fmt.Sprintf("%s s per 1,000", fmtNum(median(cpus)))
	r.Mark = mark(median(rates) >= issueRate && p99 <= 10)
	if !openLoop {
		return r
	}
	// Each round starts at the rate after the bastion has idled while the
	// round's tokens were minted, and the first disk flushes after an idle
	// spell are slow on this VM (the first journal fdatasync of a round took
	// 8–47 ms in traces); the round's first half second is its warm-up,
	// reported apart, and the figure is the steady rate's.
	const settle = issueRate / 2
	var open, warmed []time.Duration
	var offeredRates []float64
	for range e.opt.rounds {
		n := settle + int(issueRate*e.opt.issueTime.Seconds())
		bodies, err := mint(n)
		if err != nil {
			return failed(r, err)
		}
		got := make([]time.Duration, n)
		var errs atomic.Pointer[error]
		var wg sync.WaitGroup
		start := time.Now()
		for i := range n {
			at := start.Add(time.Duration(i) * time.Second / issueRate)
			time.Sleep(time.Until(at))
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err := issue(bodies[i]); err != nil {
					errs.Store(&err)
				}
				got[i] = time.Since(at)
			}()
		}
		wg.Wait()
		if p := errs.Load(); p != nil {
			return failed(r, *p)
		}
		offeredRates = append(offeredRates, float64(n)/time.Since(start).Seconds())
		warmed = append(warmed, got[:settle]...)
		open = append(open, got[settle:]...)
	}
	oms, wms := durationsMS(open), durationsMS(warmed)
	op50, op99 := quantile(oms, 0.5), quantile(oms, 0.99)
	r.notef("latency at %s/s offered (open loop, each latency from the request's scheduled time): %d requests over %d rounds after each round's first half second, completed at %s/s (median of rounds), p50 %s ms, p99 %s ms, p99.9 %s ms; in the rounds' first half seconds (%d requests, the bastion idle just before), p50 %s ms, p99 %s ms",
		thousands(issueRate), len(open), len(offeredRates), fmtNum(median(offeredRates)), fmtNum(op50), fmtNum(op99), fmtNum(quantile(oms, 0.999)),
		len(warmed), fmtNum(quantile(wms, 0.5)), fmtNum(quantile(wms, 0.99)))
	return r
}

// issueRate is the issuance goal's rate, and the open-loop rate its
// latency is measured at.
const issueRate = 3000

// benchIngest measures the recorder's group-commit ingest directly: 8
// concurrent sessions writing 4 KiB outputs into a fresh store. When
// PostgreSQL runs, rounds alternate between a fresh bbolt file and a fresh
// PostgreSQL database (the shared store replicas use), and a second row
// compares the two.
func (e *env) benchIngest() []result {
	r := result{Workload: "recording ingest, group commit", Goal: ">= 150 MB/s"}
	pr := result{Workload: "recording ingest into PostgreSQL (replicas' store)", Baseline: "bbolt, same rounds", Goal: ">= 100 MB/s"}
	var rates, cpus, pgRates, pgCPUs []float64
	for round := range e.opt.rounds {
		path := filepath.Join(e.dir, fmt.Sprintf("ingest-%d.db", round))
		rate, cpu, err := e.ingestRound(recorder.Config{Path: path, SealKey: e.keys.SealKey})
		os.Remove(path)
		if err != nil {
			return []result{failed(r, err)}
		}
		rates, cpus = append(rates, rate), append(cpus, cpu)
		logf("  ingest round %d: %.0f MB/s", round+1, rate)
		if e.pg == nil {
			continue
		}
		rate, cpu, err = e.ingestRoundPG(round)
		if err != nil {
			pr = failed(pr, err)
			continue
		}
		pgRates, pgCPUs = append(pgRates, rate), append(pgCPUs, cpu)
		logf("  ingest round %d into PostgreSQL: %.0f MB/s", round+1, rate)
	}
	lo, hi := spread(rates)
	r.Bastion = fmt.Sprintf("%s MB/s", fmtNum(median(rates)))
	r.Ratio = fmt.Sprintf("%s MB/s (%s–%s)", fmtNum(median(rates)), fmtNum(lo), fmtNum(hi))
	r.CPUBast = fmt.Sprintf("%s s/GiB", fmtNum(median(cpus)))
	r.Mark = mark(median(rates) >= 150)
	if e.fixtureMBs > 0 {
		r.notef("one session alone (the replay fixture, %d MiB in 4 KiB outputs): %s MB/s", e.opt.replayMiB, fmtNum(e.fixtureMBs))
	}
	out := []result{r}
	switch {
	case e.pg == nil:
		pr.Mark = markPending
		pr.notef("PostgreSQL ingest: not run (PostgreSQL starts with the pgbench workload: %v)", e.pgErr)
	case len(pgRates) > 0 && pr.Mark != markError:
		ratios := make([]float64, len(pgRates))
		for i := range pgRates {
			ratios[i] = pgRates[i] / rates[i]
		}
		pr.Base, pr.Bastion = r.Bastion, fmt.Sprintf("%s MB/s", fmtNum(median(pgRates)))
		pr.Ratio = ratioCell(ratios) + " of bbolt"
		pr.CPUBase, pr.CPUBast = r.CPUBast, fmt.Sprintf("%s s/GiB (bastion process only)", fmtNum(median(pgCPUs)))
		pr.Mark = mark(median(pgRates) >= 100)
		pr.notef("PostgreSQL ingest: the same 8 sessions into a fresh database of the local PostgreSQL 15 (fsync and synchronous_commit on, TLS over loopback); the server's CPU is not in the bastion's figure")
	}
	return append(out, pr)
}

// ingestRound writes e.opt.ingest bytes through 8 concurrent recordings
// into the store cfg opens and returns MB/s and CPU s/GiB.
func (e *env) ingestRound(cfg recorder.Config) (rate, cpuGiB float64, err error) {
	const sessions = 8
	data := bytes.Repeat([]byte("0123456789abcdef ls -la /var/log\r\n"), 4096/34+1)[:4096]
	s, err := recorder.Open(cfg)
	if err != nil {
		return 0, 0, err
	}
	recs := make([]*recorder.Recording, sessions)
	for i := range recs {
		if recs[i], err = s.Begin(recorder.SessionInfo{Kind: "shell", User: benchUser, Target: "web1", Width: 80, Height: 24}); err != nil {
			s.Close()
			return 0, 0, err
		}
	}
	per := e.opt.ingest / sessions / int64(len(data))
	c0 := selfCPU()
	start := time.Now()
	errs := make(chan error, sessions)
	for _, rec := range recs {
		go func() {
			for range per {
				if err := rec.Output(data); err != nil {
					errs <- err
					return
				}
			}
			errs <- rec.End(recorder.ExitInfo{})
		}()
	}
	var firstErr error
	for range sessions {
		if err := <-errs; err != nil && firstErr == nil {
			firstErr = err
		}
	}
	elapsed := time.Since(start)
	cpu := selfCPU() - c0
	s.Close()
	if firstErr != nil {
		return 0, 0, firstErr
	}
	total := per * sessions * int64(len(data))
	return float64(total) / 1e6 / elapsed.Seconds(), cpuPerGiB(cpu, total), nil
}

// ingestRoundPG is ingestRound into a fresh PostgreSQL database, dropped
// afterwards.
func (e *env) ingestRoundPG(round int) (float64, float64, error) {
	db := fmt.Sprintf("ingest_%d", round)
	ctx := context.Background()
	if err := e.pg.pg.Exec(ctx, "postgres", "CREATE DATABASE "+db+" OWNER bench"); err != nil {
		return 0, 0, err
	}
	defer e.pg.pg.Exec(ctx, "postgres", "DROP DATABASE "+db)
	dsn := strings.Replace(e.pg.directConn(e.pg.pg.Port), "dbname=bench", "dbname="+db, 1)
	return e.ingestRound(recorder.Config{Postgres: &recorder.PostgresConfig{DSN: dsn, Name: "bench"}, SealKey: e.keys.SealKey})
}

// writeHeapProfile writes a heap profile after a GC, with the idle
// sessions open (with -inprocess, the bastion's heap is this process's),
// and a goroutine profile to path+".goroutines".
func writeHeapProfile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	runtime.GC()
	if err := pprof.WriteHeapProfile(f); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	// And where the goroutines wait, grouped by stack, beside it.
	g, err := os.Create(path + ".goroutines")
	if err != nil {
		return err
	}
	if err := pprof.Lookup("goroutine").WriteTo(g, 1); err != nil {
		g.Close()
		return err
	}
	return g.Close()
}

// selfCPU is this process's CPU time so far.
func selfCPU() time.Duration {
	var ru syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// benchIdle opens many idle sessions through the bastion and divides the
// growth of its resident memory by their number.
func (e *env) benchIdle() result {
	r := result{Workload: fmt.Sprintf("%s concurrent idle sessions through the bastion", thousands(e.opt.sessions)), Goal: "<= 120 KiB RSS per session"}
	cfg := e.terminalConfig("root@idle")
	time.Sleep(time.Second)
	mem0, err := readMemory(e.bastion.pid)
	if err != nil {
		return failed(r, err)
	}
	gm0, err := readGoMetrics(e.bastion.httpAddr)
	if err != nil {
		return failed(r, err)
	}
	opened := make([]terminal, e.opt.sessions)
	defer closeTerminals(opened)
	open := func(i int) error {
		t, err := openTerminal(e.bastion.sshAddr, cfg, &opened[i])
		if err != nil {
			return err
		}
		// The target's prompt, through the bastion: the session is whole.
		buf := make([]byte, 64)
		var got []byte
		for !bytes.Contains(got, []byte("idle$ ")) {
			n, err := t.out.Read(buf)
			got = append(got, buf[:n]...)
			if err != nil {
				return fmt.Errorf("session %d: %w (got %q)", i, err, got)
			}
		}
		go io.Copy(io.Discard, t.out)
		return nil
	}
	openRange := func(from, to int) error { return openEach(from, to, open) }
	// Half the sessions, settle, read; the other half, settle, read: the
	// growth over the second half is what a session adds once the
	// bastion's start-up garbage (which the first sessions' memory reuses,
	// so the row's starting RSS moves the first figure) is behind it.
	half := e.opt.sessions / 2
	start := time.Now()
	if err := openRange(0, half); err != nil {
		return failed(r, err)
	}
	took := time.Since(start)
	time.Sleep(2 * time.Second) // let the bastion settle
	memHalf, err := readMemory(e.bastion.pid)
	if err != nil {
		return failed(r, err)
	}
	start = time.Now()
	if err := openRange(half, e.opt.sessions); err != nil {
		return failed(r, err)
	}
	took += time.Since(start)
	time.Sleep(2 * time.Second) // let the bastion settle
	mem1, err := readMemory(e.bastion.pid)
	if err != nil {
		return failed(r, err)
	}
	rss0, rss1 := mem0.RSS, mem1.RSS
	per := float64(rss1-rss0) / float64(e.opt.sessions) / 1024
	if n := e.opt.sessions - half; n > 0 {
		r.notef("the second %d sessions added %s KiB of RSS each (%s MiB with %d open, settled)", n, fmtNum(float64(rss1-memHalf.RSS)/float64(n)/1024), fmtNum(float64(memHalf.RSS)/(1<<20)), half)
	}
	if gm1, err := readGoMetrics(e.bastion.httpAddr); err == nil && !e.opt.inProcess {
		n := float64(e.opt.sessions)
		unreturned := func(g goMetrics) float64 { return g.HeapIdle - g.HeapFreed }
		r.notef("per session: %s KiB of anonymous memory (RssAnon); from the bastion's /metrics, %s goroutines, %s KiB of goroutine stacks, %s KiB of heap in use (live and not yet collected), %s KiB of heap free but not yet returned to the OS",
			fmtNum(float64(mem1.Anon-mem0.Anon)/n/1024), fmtNum((gm1.Goroutines-gm0.Goroutines)/n), fmtNum((gm1.StackInuse-gm0.StackInuse)/n/1024), fmtNum((gm1.HeapInuse-gm0.HeapInuse)/n/1024), fmtNum((unreturned(gm1)-unreturned(gm0))/n/1024))
	}
	if e.opt.inProcess {
		r.notef("in-process: %d goroutines with the sessions open (harness and target included)", runtime.NumGoroutine())
		if e.opt.memProfile != "" {
			if err := writeHeapProfile(e.opt.memProfile); err != nil {
				return failed(r, err)
			}
		}
	}
	r.Bastion = fmt.Sprintf("RSS %s → %s MiB", fmtNum(float64(rss0)/(1<<20)), fmtNum(float64(rss1)/(1<<20)))
	r.Ratio = fmt.Sprintf("%s KiB per session", fmtNum(per))
	r.Mark = mark(per <= 120)
	r.notef("%d sessions (each a downstream and an upstream SSH connection, a pty and a recording) opened in %s by 16 clients at a time", e.opt.sessions, took.Round(10*time.Millisecond))
	return r
}

// terminal is one of the harness's own sessions through the bastion: an
// x/crypto client with a pty and a shell, its input held open.
type terminal struct {
	c   *ssh.Client
	s   *ssh.Session
	in  io.WriteCloser
	out io.Reader
}

// terminalConfig is the x/crypto client config of alice's terminals
// through the bastion, user naming login@target.
func (e *env) terminalConfig(user string) *ssh.ClientConfig {
	hostCA := e.keys.HostCA.PublicKey().Marshal()
	checker := &ssh.CertChecker{IsHostAuthority: func(k ssh.PublicKey, _ string) bool { return bytes.Equal(k.Marshal(), hostCA) }}
	return &ssh.ClientConfig{
		User:            user,
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(e.aliceSign)},
		HostKeyCallback: checker.CheckHostKey,
		Timeout:         60 * time.Second,
		Config:          ssh.Config{Ciphers: []string{ssh.CipherAES128GCM}},
	}
}

// openTerminal opens a session through the bastion at addr with an 80x24
// xterm pty and a shell, into *t (set as soon as there is a session, so
// that closeTerminals closes what a failure left open), and returns it.
func openTerminal(addr string, cfg *ssh.ClientConfig, t *terminal) (*terminal, error) {
	c, err := ssh.Dial("tcp", addr, cfg)
	if err != nil {
		return nil, err
	}
	s, err := c.NewSession()
	if err != nil {
		c.Close()
		return nil, err
	}
	*t = terminal{c: c, s: s}
	if t.out, err = s.StdoutPipe(); err != nil {
		return nil, err
	}
	// Input stays open, as a person's ssh keeps it: with no Stdin,
	// x/crypto sends EOF at once, and the bastion's input reader and
	// command guard end, which an idle terminal's never do.
	if t.in, err = s.StdinPipe(); err != nil {
		return nil, err
	}
	if err := s.RequestPty("xterm", 24, 80, ssh.TerminalModes{}); err != nil {
		return nil, err
	}
	if err := s.Shell(); err != nil {
		return nil, err
	}
	return t, nil
}

// closeTerminals closes every opened terminal, concurrently.
func closeTerminals(ts []terminal) {
	var wg sync.WaitGroup
	for _, t := range ts {
		if t.c != nil {
			wg.Go(func() { t.s.Close(); t.c.Close() })
		}
	}
	wg.Wait()
}

// openEach runs open(i) for i in [from, to) with 16 clients at a time,
// stopping at the first error.
func openEach(from, to int, open func(i int) error) error {
	const workers = 16
	jobs := make(chan int)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				if err := open(i); err != nil {
					errs <- err
					for range jobs {
					}
					return
				}
			}
		}()
	}
	for i := from; i < to; i++ {
		jobs <- i
	}
	close(jobs)
	wg.Wait()
	select {
	case err := <-errs:
		return err
	default:
		return nil
	}
}

func thousands(n int) string {
	s := fmt.Sprint(n)
	if len(s) > 3 {
		return s[:len(s)-3] + "," + s[len(s)-3:]
	}
	return s
}

// firstFrame opens the replay fixture, so the harness can tell the first
// frame from anything the player writes before it.
const firstFrame = "FIRST-FRAME-OF-THE-REPLAY-FIXTURE\r\n"

// lastLine ends the replay fixture, and fixtureMarker marks it at 90%, for
// the web console's seek (benchWebSeek).
const (
	lastLine      = "LAST-LINE-OF-THE-REPLAY-FIXTURE\r\n"
	fixtureMarker = "ninety percent"
)

// writeReplayFixture records a large session straight into the bastion's
// store before the bastion opens it.
func (e *env) writeReplayFixture() error {
	// The fixture's clock: the first frame at the start, the flood of
	// output a second later and then a millisecond per 4 KiB, so a player
	// shows the first frame before the rest scrolls it away and the
	// recording has the shape of a long, busy session (1 GiB: about 4.5
	// minutes).
	var skew atomic.Int64
	now := func() time.Time { return time.Now().Add(time.Duration(skew.Load())) }
	s, err := recorder.Open(recorder.Config{Path: filepath.Join(e.dataDir, app.StoreFile), SealKey: e.keys.SealKey, Now: now})
	if err != nil {
		return err
	}
	defer s.Close()
	rec, err := s.Begin(recorder.SessionInfo{Kind: "shell", User: benchUser, Issuer: e.idp.Issuer(), Subject: "u-alice", Target: "web1", Login: "root", Width: 120, Height: 40, Term: "xterm"})
	if err != nil {
		return err
	}
	start := time.Now()
	if err := rec.Output([]byte(firstFrame)); err != nil {
		return err
	}
	skew.Add(int64(time.Second))
	line := []byte("\x1b[32m2026-01-02T03:04:05Z\x1b[0m web1 app[4242]: GET /api/v1/items?page=7 status=200 bytes=5123 took=0.004s\r\n")
	chunk := bytes.Repeat(line, 4096/len(line)+1)[:4096]
	total := e.opt.replayMiB << 20
	marked := false
	for n := int64(len(firstFrame)); n < total; n += int64(len(chunk)) {
		if !marked && n >= total/10*9 {
			if err := rec.Marker(fixtureMarker); err != nil {
				return err
			}
			marked = true
		}
		if err := rec.Output(chunk); err != nil {
			return err
		}
		skew.Add(int64(time.Millisecond))
	}
	if err := rec.Output([]byte(lastLine)); err != nil {
		return err
	}
	if err := rec.End(recorder.ExitInfo{}); err != nil {
		return err
	}
	e.fixtureMBs = float64(total) / 1e6 / time.Since(start).Seconds()
	e.replayID = rec.ID()
	return nil
}

// cliEnv is the environment of the bastion CLI run as the bench user.
func (e *env) cliEnv(extra ...string) []string {
	env := []string{"HOME=" + e.home, "XDG_CONFIG_HOME=" + filepath.Join(e.home, ".config"), "SSH_AUTH_SOCK=", "PATH=" + os.Getenv("PATH"), "TERM=dumb"}
	return append(env, extra...)
}

// benchReplay times `bastion replay ID` on the large fixture until the
// first frame's text appears on its stdout.
func (e *env) benchReplay() result {
	r := result{Workload: fmt.Sprintf("time to first frame of `bastion replay` on a %s recording", sizeName(e.opt.replayMiB<<20)), Goal: "<= 100 ms"}
	if e.replayID == "" {
		return failed(r, fmt.Errorf("no replay fixture"))
	}
	claims, err := e.idp.IDTokenClaims("u-alice", "bastion")
	if err != nil {
		return failed(r, err)
	}
	tok, err := e.idp.MintIDToken(claims)
	if err != nil {
		return failed(r, err)
	}
	login := exec.Command(e.bastionBin, "login", "--bastion", "http://"+e.bastion.httpAddr, "--id-token-env", "BENCH_ID_TOKEN")
	login.Env = e.cliEnv("BENCH_ID_TOKEN=" + tok)
	if out, err := login.CombinedOutput(); err != nil {
		return failed(r, fmt.Errorf("bastion login: %v: %s", err, out))
	}
	var ms []float64
	for i := range e.opt.replays {
		d, err := e.replayOnce()
		if err != nil {
			return failed(r, err)
		}
		ms = append(ms, float64(d)/float64(time.Millisecond))
		logf("  replay run %d: %.1f ms", i+1, ms[len(ms)-1])
	}
	lo, hi := spread(ms)
	r.Bastion = fmt.Sprintf("%s ms", fmtNum(median(ms)))
	r.Ratio = fmt.Sprintf("%s ms (%s–%s)", fmtNum(median(ms)), fmtNum(lo), fmtNum(hi))
	r.Mark = mark(median(ms) <= 100)
	r.notef("measured from starting the CLI process: it includes the process start, reading the login state, the SSH handshake with the bastion and the export admin command's first chunk")
	return r
}

func (e *env) replayOnce() (time.Duration, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, e.bastionBin, "replay", e.replayID)
	cmd.Env = e.cliEnv()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, err
	}
	start := time.Now()
	if err := cmd.Start(); err != nil {
		return 0, err
	}
	defer func() {
		cmd.Process.Kill()
		cmd.Wait()
	}()
	want := strings.TrimSpace(firstFrame)
	var got []byte
	buf := make([]byte, 4096)
	for !bytes.Contains(got, []byte(want)) {
		n, err := out.Read(buf)
		got = append(got, buf[:n]...)
		if err != nil {
			return 0, fmt.Errorf("bastion replay: %v before the first frame; stdout %q, stderr %q", err, got, stderr.String())
		}
	}
	return time.Since(start), nil
}

// issueHSM measures issuance again with the user CA inside a SoftHSM2
// token (PKCS#11, ECDSA P-256: crypto11 has no Ed25519), in the same run
// as the file-key row fileRow, so the two compare on the same machine at
// the same moment. The bastion is restarted for it and again after.
func (e *env) issueHSM(fileRow result) result {
	r := result{Workload: "certificate issuance over HTTP, the user CA in SoftHSM2 (PKCS#11, ECDSA P-256)", Goal: "(beside the file key's row)"}
	h, err := localsvc.InitSoftHSM(filepath.Join(e.dir, "softhsm"), "bastion", "bench-pin")
	if err != nil {
		return failed(r, err)
	}
	// CreateKey loads the module in this process: it must see the token.
	os.Setenv("SOFTHSM2_CONF", h.Conf)
	uri := h.KeyURI("user-ca", 1)
	_, closeKMS, err := ca.CreateKey(uri, ca.PurposeUser, "")
	if err != nil {
		return failed(r, err)
	}
	closeKMS()
	if err := e.restartBastion(variant{name: "user CA in SoftHSM2", userKey: uri, env: []string{h.Env()}}); err != nil {
		return failed(r, err)
	}
	defer func() {
		if err := e.restartBastion(variant{}); err != nil {
			logf("restart the bastion: %v", err)
		}
	}()
	hsm := e.benchIssue(false)
	if hsm.Mark == markError {
		hsm.Workload = r.Workload
		return hsm
	}
	hsm.Workload, hsm.Goal, hsm.Mark = r.Workload, r.Goal, "—"
	var fileRate, hsmRate float64
	fmt.Sscanf(strings.ReplaceAll(fileRow.Bastion, ",", ""), "%g/s", &fileRate)
	fmt.Sscanf(strings.ReplaceAll(hsm.Bastion, ",", ""), "%g/s", &hsmRate)
	if fileRate > 0 {
		hsm.Ratio = fmt.Sprintf("%.2fx the file key; %s", hsmRate/fileRate, hsm.Ratio)
	}
	return hsm
}

// issuePG runs the issuance workload again with the store in a fresh
// PostgreSQL database (store.postgres, what replicas share): every
// issuance's audit record is committed there before it is answered.
func (e *env) issuePG(fileRow result) result {
	r := result{Workload: "certificate issuance over HTTP, store in PostgreSQL", Goal: ">= 3,000/s, p99 <= 10 ms"}
	ctx := context.Background()
	if err := e.pg.pg.Exec(ctx, "postgres", "CREATE DATABASE issue_pg OWNER bench"); err != nil {
		return failed(r, err)
	}
	dsn := strings.Replace(e.pg.directConn(e.pg.pg.Port), "dbname=bench", "dbname=issue_pg", 1)
	if err := e.restartBastion(variant{name: "store in PostgreSQL", storeDSN: dsn}); err != nil {
		return failed(r, err)
	}
	defer func() {
		if err := e.restartBastion(variant{}); err != nil {
			logf("restart the bastion: %v", err)
		}
		e.pg.pg.Exec(ctx, "postgres", "DROP DATABASE issue_pg")
	}()
	pgRow := e.benchIssue(false)
	pgRow.Workload, pgRow.Goal = r.Workload, r.Goal
	if pgRow.Mark == markError {
		return pgRow
	}
	var fileRate, pgRate float64
	fmt.Sscanf(strings.ReplaceAll(fileRow.Bastion, ",", ""), "%g/s", &fileRate)
	fmt.Sscanf(strings.ReplaceAll(pgRow.Bastion, ",", ""), "%g/s", &pgRate)
	if fileRate > 0 {
		pgRow.Ratio = fmt.Sprintf("%.2fx bbolt; %s", pgRate/fileRate, pgRow.Ratio)
	}
	return pgRow
}
