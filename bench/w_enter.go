package main

import (
	"bytes"
	"fmt"
	"time"

	"github.com/creack/pty"
)

// benchEnter measures what the interactive guard adds to an allowed line:
// the time from the Enter, typed as its own keystroke after the line's echo
// has arrived (as a person types), to the shell's next prompt, with command
// rules in force against the same bastion with none. Both sides run `true`
// at a real bash prompt on the OpenSSH target through `ssh -tt`.
func (e *env) benchEnter() result {
	r := result{
		Workload: "Enter to prompt at an interactive shell, command rules in force",
		Baseline: "the same bastion with no command rule",
		Goal:     "added median <= 5 ms, p99 <= 20 ms",
	}
	defer func() {
		if err := e.restartBastion(variant{}); err != nil {
			logf("restart the bastion: %v", err)
		}
	}()
	var all [2][]float64
	var added []float64
	for round := range e.opt.rounds {
		var med [2]float64
		for _, s := range order(round) {
			// baseline: no command rule; viaBastion: rules in force.
			if err := e.restartBastion(variant{commandRules: s == viaBastion}); err != nil {
				return failed(r, err)
			}
			lat, err := e.enterOnce(e.opt.enters)
			if err != nil {
				return failed(r, fmt.Errorf("%s: %w", map[side]string{baseline: "no rules", viaBastion: "rules"}[s], err))
			}
			ms := durationsMS(lat)
			all[s] = append(all[s], ms...)
			med[s] = median(ms)
			logf("  enter round %d rules=%v: median %.3f ms, p99 %.3f ms", round+1, s == viaBastion, med[s], quantile(ms, 0.99))
		}
		added = append(added, med[viaBastion]-med[baseline])
	}
	addMed := median(all[viaBastion]) - median(all[baseline])
	addP99 := quantile(all[viaBastion], 0.99) - quantile(all[baseline], 0.99)
	lo, hi := spread(added)
	r.Base = fmt.Sprintf("median %s ms, p99 %s ms", fmtNum(median(all[baseline])), fmtNum(quantile(all[baseline], 0.99)))
	r.Bastion = fmt.Sprintf("median %s ms, p99 %s ms", fmtNum(median(all[viaBastion])), fmtNum(quantile(all[viaBastion], 0.99)))
	r.Ratio = fmt.Sprintf("added median %s ms (rounds %s–%s), added p99 %s ms", fmtNum(addMed), fmtNum(lo), fmtNum(hi), fmtNum(addP99))
	r.Mark = mark(addMed <= 5 && addP99 <= 20)
	r.notef("each line is `true`, typed a key at a time after the previous echo, then the Enter 50 ms later; the clock runs from the Enter's write into the pty to the next prompt coming out of it")
	return r
}

// enterOnce opens an interactive bash on web1 through the bastion and
// returns, for n lines, the time from the Enter to the next prompt.
func (e *env) enterOnce(n int) ([]time.Duration, error) {
	cmd := e.sshCmd("-tt", "-l", "root", "web1", "exec bash --norc --noprofile -i")
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 120, Rows: 40})
	if err != nil {
		return nil, err
	}
	defer func() {
		f.Close()
		stopSSH(cmd)
	}()
	type chunk struct {
		at time.Time
		b  []byte
	}
	ch := make(chan chunk, 256)
	go func() {
		defer close(ch)
		buf := make([]byte, 4096)
		for {
			k, err := f.Read(buf)
			if k > 0 {
				ch <- chunk{time.Now(), bytes.Clone(buf[:k])}
			}
			if err != nil {
				return
			}
		}
	}()
	var seen []byte
	// wait reads output until want has arrived, and returns when it did.
	wait := func(want string, d time.Duration) (time.Time, error) {
		timeout := time.After(d)
		for {
			if i := bytes.Index(seen, []byte(want)); i >= 0 {
				seen = seen[i+len(want):]
				return time.Now(), nil
			}
			select {
			case c, ok := <-ch:
				if !ok {
					return time.Time{}, fmt.Errorf("session ended waiting for %q: %q", want, seen)
				}
				seen = append(seen, c.b...)
				if bytes.Contains(seen, []byte(want)) {
					i := bytes.Index(seen, []byte(want))
					seen = seen[i+len(want):]
					return c.at, nil
				}
			case <-timeout:
				return time.Time{}, fmt.Errorf("no %q within %s: %q", want, d, seen)
			}
		}
	}
	if _, err := f.Write([]byte("PS1='P''> '\r")); err != nil {
		return nil, err
	}
	if _, err := wait("P> ", 30*time.Second); err != nil {
		return nil, err
	}
	lat := make([]time.Duration, 0, n)
	for range n {
		for _, k := range []byte("true") {
			if _, err := f.Write([]byte{k}); err != nil {
				return nil, err
			}
			if _, err := wait(string(k), 10*time.Second); err != nil {
				return nil, err
			}
			time.Sleep(5 * time.Millisecond)
		}
		time.Sleep(50 * time.Millisecond)
		t0 := time.Now()
		if _, err := f.Write([]byte{'\r'}); err != nil {
			return nil, err
		}
		at, err := wait("P> ", 10*time.Second)
		if err != nil {
			return nil, err
		}
		lat = append(lat, at.Sub(t0))
	}
	return lat, nil
}
