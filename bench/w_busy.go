package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// busyPeriod is how often each busy session prints a line.
const busyPeriod = 200 * time.Millisecond

// busyTrigger, typed into a session of the light target (idleTarget),
// has it print busyStream's lines.
const busyTrigger = "busy-log-lines"

// busyStream writes what busyCommand prints, with the pty's line ends,
// until a write fails.
func busyStream(w io.Writer) {
	pid := 1000 + rand.IntN(30000)
	// Sessions started together print out of step, as bash's do.
	next := time.Now().Add(rand.N(busyPeriod))
	time.Sleep(time.Until(next))
	var line []byte
	for seq := 1; ; seq++ {
		now := time.Now()
		line = fmt.Appendf(line[:0], "%d.%06d web1 app[%d]: GET /api/v1/items?page=%d status=%d bytes=%d took=0.%03ds seq=%d\r\n",
			now.Unix(), now.Nanosecond()/1000, pid, rand.IntN(32768), 200, rand.IntN(32768), rand.IntN(1000), seq)
		if _, err := w.Write(line); err != nil {
			return
		}
		next = next.Add(busyPeriod)
		time.Sleep(time.Until(next))
	}
}

// busyCommand is typed into each busy session's shell on the target with
// -busy-sshd: bash prints a log-like line of about 100 bytes every
// busyPeriod, forever, without a fork per line (printf and read are
// builtins; read waits on a pipe that bash itself holds open, so it only
// ever times out). It starts at a random point of the first 200 ms, so
// that sessions started together print out of step, and each wait runs to
// the next tick of a fixed schedule, so a line that was held up does not
// move the later ones: the session offers 5 lines a second whatever the
// delays. The line carries the target's clock ($EPOCHREALTIME, the same
// machine's) and a sequence number; busyStream prints the same.
const busyCommand = `exec bash -c 'exec 3<> <(:); printf -v w "0.%06d" $((RANDOM*6)); read -t $w -u 3; ` +
	`n=$((${EPOCHREALTIME/./}+200000)); i=0; ` +
	`while :; do i=$((i+1)); printf "%s web1 app[%d]: GET /api/v1/items?page=%d status=%d bytes=%d took=0.%03ds seq=%d\n" ` +
	`"$EPOCHREALTIME" $$ $RANDOM 200 $RANDOM $((RANDOM%1000)) $i; ` +
	`d=$((n-${EPOCHREALTIME/./})); n=$((n+200000)); ` +
	`((d>0)) && { printf -v w "%d.%06d" $((d/1000000)) $((d%1000000)); read -t $w -u 3; }; done'` + "\n"

// busyLine parses a line busyCommand prints (without its line end): the
// target's time when it was printed and its sequence number. ok is false
// for anything else (the shell's prompt and the echo of the command).
func busyLine(l []byte) (at time.Time, seq int64, ok bool) {
	ts, rest, found := bytes.Cut(l, []byte(" web1 app["))
	if !found || len(ts) < 12 || ts[len(ts)-7] != '.' {
		return time.Time{}, 0, false
	}
	sec, err1 := strconv.ParseInt(string(ts[:len(ts)-7]), 10, 64)
	usec, err2 := strconv.ParseInt(string(ts[len(ts)-6:]), 10, 64)
	i := bytes.LastIndex(rest, []byte(" seq="))
	if err1 != nil || err2 != nil || i < 0 || !bytes.Contains(rest[:i], []byte(" status=200 ")) {
		return time.Time{}, 0, false
	}
	seq, err := strconv.ParseInt(string(rest[i+len(" seq="):]), 10, 64)
	if err != nil || seq < 1 {
		return time.Time{}, 0, false
	}
	return time.Unix(sec, usec*1000), seq, true
}

// busyCounts are what the busy sessions' readers saw.
type busyCounts struct {
	lines, bytes, lost atomic.Int64
	odd                atomic.Int64           // lines that are not busyCommand's after its first
	example            atomic.Pointer[string] // the first odd line or gap
	measuring          atomic.Bool
	mu                 sync.Mutex
	delays             []time.Duration // printed to read, while measuring
}

// readBusy reads a busy session's output until it ends, counting the
// lines of busyCommand and the bytes into c; first is closed after the
// first such line.
func readBusy(rd *bufio.Reader, c *busyCounts, first chan<- struct{}) {
	var last int64
	for {
		l, err := rd.ReadSlice('\n')
		c.bytes.Add(int64(len(l)))
		if err != nil && err != bufio.ErrBufferFull {
			return
		}
		now := time.Now()
		at, seq, ok := busyLine(bytes.TrimRight(l, "\r\n"))
		switch {
		case !ok && last > 0: // after the first line, every line is one
			c.odd.Add(1)
			c.example.CompareAndSwap(nil, ptr(fmt.Sprintf("after seq=%d: %q", last, l)))
			continue
		case !ok:
			continue
		case last == 0:
			close(first)
		case seq != last+1:
			c.lost.Add(seq - last - 1)
			c.example.CompareAndSwap(nil, ptr(fmt.Sprintf("seq=%d after seq=%d", seq, last)))
		}
		last = seq
		c.lines.Add(1)
		if c.measuring.Load() {
			c.mu.Lock()
			c.delays = append(c.delays, now.Sub(at))
			c.mu.Unlock()
		}
	}
}

func ptr[T any](v T) *T { return &v }

// busyWindow is what one measurement window of the streaming sessions
// read.
type busyWindow struct {
	elapsed   time.Duration
	lines     int64
	bytes     int64
	cpu       time.Duration // the bastion's
	machine   float64       // the machine's busy CPU, s per s
	flushes   histogram     // the recorder's group commits in the window
	flushErrs float64
}

// benchBusy opens e.opt.sessions recorded terminal sessions through the
// bastion to the light target (with -busy-sshd, to the OpenSSH target),
// each printing a line every 200 ms that the harness reads, and measures the bastion's CPU, the recorder's flush
// time and the lines delivered while they stream, and keystroke echo in
// one more session beside them against the same echo with them closed,
// the two alternating round by round.
func (e *env) benchBusy() result {
	n := e.opt.sessions
	offered := float64(n) * float64(time.Second/busyPeriod)
	r := result{
		Workload: fmt.Sprintf("%s busy recorded terminal sessions, each printing a 100-byte line every 200 ms (%s lines/s offered): keystroke echo in one more", thousands(n), thousands(int(offered))),
		Baseline: "the same echo, same bastion, the sessions closed",
		Goal:     "(reported)",
		Mark:     "—",
	}
	// The light target prints the lines itself; -busy-sshd runs bash
	// under OpenSSH's sshd instead, which costs the target's side more
	// CPU than two cores leave for a thousand sessions (see method).
	cfg, command, target := e.terminalConfig("root@idle"), busyTrigger+"\n", "the harness's light SSH target, which prints the lines itself"
	if e.opt.busySSHD {
		cfg, command, target = e.terminalConfig("root@web1"), busyCommand, "OpenSSH sshd, where bash prints the lines"
	}
	var all [2][]float64 // echo ms: baseline = sessions closed, viaBastion = streaming
	var added []float64
	var windows []busyWindow
	var opens []float64 // s
	var lost, odd int64
	var example string // the first odd line or gap
	var delays []time.Duration
	var log0 int64
	if fi, err := os.Stat(e.bastion.log); err == nil {
		log0 = fi.Size()
	}
	// loaded opens the sessions, measures a window, runs the echo beside
	// them and closes them.
	loaded := func(round int) ([]time.Duration, error) {
		var c busyCounts
		opened := make([]terminal, n)
		defer func() {
			closeTerminals(opened)
			// The sessions' ends (and with -busy-sshd their sshd
			// processes' exits) are not the next figure's to share
			// the CPU with.
			if e.opt.busySSHD {
				if err := waitNoChildren(e.target.PID(), 60*time.Second); err != nil {
					logf("  busy: %v", err)
				}
			}
			time.Sleep(time.Second)
		}()
		// The sessions open idle, and then every one is set printing at
		// once: opening them while the first ones stream would take the
		// CPU the streams take.
		firsts := make([]chan struct{}, n)
		open := func(i int) error {
			t, err := openTerminal(e.bastion.sshAddr, cfg, &opened[i])
			if err != nil {
				return err
			}
			firsts[i] = make(chan struct{})
			go readBusy(bufio.NewReaderSize(t.out, 4096), &c, firsts[i])
			return nil
		}
		start := time.Now()
		if err := openEach(0, n, open); err != nil {
			return nil, err
		}
		opens = append(opens, time.Since(start).Seconds())
		start = time.Now()
		for i := range opened {
			if _, err := opened[i].in.Write([]byte(command)); err != nil {
				return nil, fmt.Errorf("busy session %d: %w", i, err)
			}
		}
		timeout := time.After(60 * time.Second)
		for i, f := range firsts {
			select {
			case <-f:
			case <-timeout:
				return nil, fmt.Errorf("busy session %d: no line within 60 s", i)
			}
		}
		logf("  busy round %d: %d sessions opened in %.1f s, all streaming %.1f s later", round+1, n, opens[len(opens)-1], time.Since(start).Seconds())
		time.Sleep(2 * time.Second) // past the last sessions' start
		w, err := e.busyMeasure(&c)
		if err != nil {
			return nil, err
		}
		windows = append(windows, w)
		logf("  busy round %d: %.0f lines/s, bastion %.2f CPU s/s, machine %.2f", round+1, float64(w.lines)/w.elapsed.Seconds(), w.cpu.Seconds()/w.elapsed.Seconds(), w.machine)
		lat, err := e.echoOnce(viaBastion, e.opt.keys)
		if err != nil {
			return nil, err
		}
		lost += c.lost.Load()
		odd += c.odd.Load()
		if x := c.example.Load(); x != nil && example == "" {
			example = *x
		}
		c.mu.Lock()
		delays = append(delays, c.delays...)
		c.mu.Unlock()
		return lat, nil
	}
	for round := range e.opt.busyRounds {
		var med [2]float64
		for _, s := range order(round) {
			var lat []time.Duration
			var err error
			if s == viaBastion {
				lat, err = loaded(round)
			} else {
				lat, err = e.echoOnce(viaBastion, e.opt.keys)
			}
			if err != nil {
				return failed(r, err)
			}
			ms := durationsMS(lat)
			all[s] = append(all[s], ms...)
			med[s] = median(ms)
			logf("  busy round %d echo, sessions %s: median %.3f ms, p99 %.3f ms", round+1, map[side]string{baseline: "closed", viaBastion: "streaming"}[s], med[s], quantile(ms, 0.99))
		}
		added = append(added, med[viaBastion]-med[baseline])
	}
	addMed := median(all[viaBastion]) - median(all[baseline])
	addP99 := quantile(all[viaBastion], 0.99) - quantile(all[baseline], 0.99)
	lo, hi := spread(added)
	var rates, byteRates, cpuRates, cpuLines, machine []float64
	var flushes histogram
	var flushErrs float64
	for i, w := range windows {
		s := w.elapsed.Seconds()
		rates = append(rates, float64(w.lines)/s)
		byteRates = append(byteRates, float64(w.bytes)/s/1e3)
		cpuRates = append(cpuRates, w.cpu.Seconds()/s)
		cpuLines = append(cpuLines, w.cpu.Seconds()/float64(w.lines)*1000)
		machine = append(machine, w.machine)
		flushErrs += w.flushErrs
		if i == 0 {
			flushes = w.flushes
		} else {
			flushes = flushes.plus(w.flushes)
		}
	}
	r.Base = fmt.Sprintf("median %s ms, p99 %s ms", fmtNum(median(all[baseline])), fmtNum(quantile(all[baseline], 0.99)))
	r.Bastion = fmt.Sprintf("median %s ms, p99 %s ms; %s of %s lines/s delivered", fmtNum(median(all[viaBastion])), fmtNum(quantile(all[viaBastion], 0.99)), thousands(int(median(rates)+0.5)), thousands(int(offered)))
	r.Ratio = fmt.Sprintf("added median %s ms (rounds %s–%s), added p99 %s ms", fmtNum(addMed), fmtNum(lo), fmtNum(hi), fmtNum(addP99))
	r.CPUBast = fmt.Sprintf("%s s/s, %s s per 1,000 lines", fmtNum(median(cpuRates)), fmtNum(median(cpuLines)))
	var total time.Duration
	for _, w := range windows {
		total += w.elapsed
	}
	rlo, rhi := spread(rates)
	var above string
	if rhi > offered*1.002 {
		above = " (more than offered where lines held up before a window arrived in it)"
	}
	r.notef("lines delivered to the clients: %s/s (rounds %s–%s; %s kB/s) of %s/s offered over %s of measurement once every session streamed%s; from printing on the target to reading in the client (the same clock), median %s ms, p99 %s ms, max %s ms",
		fmtNum(median(rates)), fmtNum(rlo), fmtNum(rhi), fmtNum(median(byteRates)), thousands(int(offered)), total.Round(100*time.Millisecond), above,
		fmtNum(quantile(durationsMS(delays), 0.5)), fmtNum(quantile(durationsMS(delays), 0.99)), fmtNum(quantile(durationsMS(delays), 1)))
	if lost > 0 || odd > 0 {
		r.notef("**lines lost or changed on the way**: %d missing from the sessions' sequences, %d lines not as printed (the first: %s)", lost, odd, example)
	} else {
		r.notef("every line arrived as printed, none missing from the sessions' sequences")
	}
	if ft := flushes.Total(); ft > 0 {
		r.notef("the recorder's group commits while they streamed (bastion_recording_flush_seconds, the bastion's /metrics; flush_interval 200ms): %s/s, p50 %s ms, p99 %s ms (estimated within the histogram's buckets), mean %s ms; %s failed",
			fmtNum(ft/total.Seconds()), fmtNum(flushes.Quantile(0.5)*1000), fmtNum(flushes.Quantile(0.99)*1000), fmtNum(flushes.Sum/ft*1000), fmtNum(flushErrs))
	} else {
		r.notef("the recorder's flush time: no group commit observed in bastion_recording_flush_seconds while they streamed")
	}
	olo, ohi := spread(opens)
	clo, chi := spread(cpuRates)
	r.notef("bastion CPU while they streamed: %s s per s of wall time (rounds %s–%s); the whole machine's busy CPU %s s per s of its %d cores (the target and the harness's clients too); the %s sessions (each a downstream and an upstream SSH connection, a pty and a recording, to %s) opened in %s–%s s by 16 clients at a time",
		fmtNum(median(cpuRates)), fmtNum(clo), fmtNum(chi), fmtNum(median(machine)), runtime.NumCPU(), thousands(n), target, fmtNum(olo), fmtNum(ohi))
	if text := logSince(e.bastion.log, log0); text != "" {
		r.notef("the bastion logged during the row (level warn): %q", text)
	}
	return r
}

// flushMetric is the bastion's histogram of the recorder's group commits.
const flushMetric = "bastion_recording_flush_seconds"

// busyReading is what busyMeasure reads at each end of its window.
type busyReading struct {
	at           time.Time
	lines, bytes int64
	cpu          procCPU
	machine      machineCPU
	ok, failed   histogram
}

func (e *env) busyRead(c *busyCounts) (busyReading, error) {
	r := busyReading{at: time.Now(), lines: c.lines.Load(), bytes: c.bytes.Load()}
	var err error
	if r.cpu, err = readCPU(e.bastion.pid); err != nil {
		return r, err
	}
	if r.machine, err = readMachineCPU(); err != nil {
		return r, err
	}
	if r.ok, err = readHistogram(e.bastion.httpAddr, flushMetric, `result="ok"`); err != nil {
		return r, err
	}
	r.failed, err = readHistogram(e.bastion.httpAddr, flushMetric, `result="error"`)
	return r, err
}

// busyMeasure reads the bastion's CPU and flush histogram, the machine's
// CPU and the sessions' counts around e.opt.busyTime of streaming.
func (e *env) busyMeasure(c *busyCounts) (busyWindow, error) {
	r0, err := e.busyRead(c)
	if err != nil {
		return busyWindow{}, err
	}
	c.measuring.Store(true)
	time.Sleep(e.opt.busyTime)
	c.measuring.Store(false)
	r1, err := e.busyRead(c)
	if err != nil {
		return busyWindow{}, err
	}
	w := busyWindow{
		elapsed: r1.at.Sub(r0.at), lines: r1.lines - r0.lines, bytes: r1.bytes - r0.bytes,
		cpu:       r1.cpu.Own() - r0.cpu.Own(),
		flushErrs: r1.failed.Total() - r0.failed.Total(),
	}
	w.machine = (r1.machine.Busy - r0.machine.Busy).Seconds() / w.elapsed.Seconds()
	w.flushes, err = r1.ok.Since(r0.ok)
	return w, err
}

// logSince is what a log file holds after offset, cut to 600 bytes.
func logSince(path string, offset int64) string {
	b, err := os.ReadFile(path)
	if err != nil || int64(len(b)) <= offset {
		return ""
	}
	b = bytes.TrimSpace(b[offset:])
	if len(b) > 600 {
		b = append(b[:600:600], "…"...)
	}
	return string(b)
}
