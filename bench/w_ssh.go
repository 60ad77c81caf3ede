package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/bastionhq/bastion/internal/localsvc"

	"github.com/creack/pty"
)

// side is which path a run takes.
type side int

const (
	baseline   side = iota // OpenSSH: sshd -L, or ssh -J through an OpenSSH jump host
	viaBastion             // the bastion
)

func (s side) String() string {
	if s == baseline {
		return "openssh"
	}
	return "bastion"
}

// order alternates which side goes first, round by round, so a drift in
// the machine's load does not always favour the same side.
func order(round int) []side {
	if round%2 == 0 {
		return []side{baseline, viaBastion}
	}
	return []side{viaBastion, baseline}
}

// cpuStart reads the CPU counter of the process that serves a side: the
// jump sshd listener (whose child times collect its per-connection
// processes once reaped) or the bastion.
func (e *env) cpuStart(s side) (procCPU, error) {
	if s == baseline {
		if err := waitNoChildren(e.jump.PID(), 10*time.Second); err != nil {
			return procCPU{}, err
		}
		return readCPU(e.jump.PID())
	}
	return readCPU(e.bastion.pid)
}

// cpuEnd returns the CPU the side used since start. For OpenSSH it waits
// until sshd has reaped the connection's processes.
func (e *env) cpuEnd(s side, start procCPU) (time.Duration, error) {
	if s == baseline {
		if err := waitNoChildren(e.jump.PID(), 10*time.Second); err != nil {
			return 0, err
		}
		c, err := readCPU(e.jump.PID())
		return c.WithChildren() - start.WithChildren(), err
	}
	time.Sleep(50 * time.Millisecond) // let the bastion finish tearing down
	c, err := readCPU(e.bastion.pid)
	return c.Own() - start.Own(), err
}

// stopSSH ends an ssh client and waits for it.
func stopSSH(cmd *exec.Cmd) {
	if cmd.Process == nil {
		return
	}
	cmd.Process.Signal(syscall.SIGTERM)
	done := make(chan struct{})
	go func() { cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		cmd.Process.Kill()
		<-done
	}
}

// forwardOnce moves size bytes from the bulk source through ssh -L on one
// side and returns the transfer time and the serving side's CPU.
func (e *env) forwardOnce(s side, size int64) (time.Duration, time.Duration, error) {
	lport, err := localsvc.FreeLoopbackPort()
	if err != nil {
		return 0, 0, err
	}
	_, bport, _ := net.SplitHostPort(e.bulk.addr)
	spec := fmt.Sprintf("127.0.0.1:%d:127.0.0.1:%s", lport, bport)
	host := "jump"
	if s == viaBastion {
		spec = fmt.Sprintf("127.0.0.1:%d:bulk:%s", lport, bport)
		host = "bastion"
	}
	c0, err := e.cpuStart(s)
	if err != nil {
		return 0, 0, err
	}
	cmd := e.sshCmd("-N", "-o", "ExitOnForwardFailure=yes", "-L", spec, host)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	d, err := pull(fmt.Sprintf("127.0.0.1:%d", lport), size)
	stopSSH(cmd)
	if err != nil {
		return 0, 0, fmt.Errorf("%s -L: %w; ssh: %s", s, err, stderr.String())
	}
	cpu, err := e.cpuEnd(s, c0)
	return d, cpu, err
}

// catOnce runs `cat FILE` on the target through one side (ssh -J) and
// returns the time from the first byte of output to the last, and the
// serving side's CPU.
func (e *env) catOnce(s side, path string, size int64) (time.Duration, time.Duration, error) {
	c0, err := e.cpuStart(s)
	if err != nil {
		return 0, 0, err
	}
	args := []string{"target", "cat " + path}
	if s == viaBastion {
		args = []string{"-l", "root", "web1", "cat " + path}
	}
	cmd := e.sshCmd(args...)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return 0, 0, err
	}
	if err := cmd.Start(); err != nil {
		return 0, 0, err
	}
	buf := make([]byte, 256<<10)
	n, rerr := out.Read(buf)
	first := time.Now()
	got := int64(n)
	if rerr == nil {
		var m int64
		m, rerr = io.CopyBuffer(io.Discard, out, buf)
		got += m
	}
	d := time.Since(first)
	werr := cmd.Wait()
	switch {
	case rerr != nil && rerr != io.EOF:
		return 0, 0, fmt.Errorf("%s cat: %w", s, rerr)
	case werr != nil:
		return 0, 0, fmt.Errorf("%s cat: %v: %s", s, werr, stderr.String())
	case got != size:
		return 0, 0, fmt.Errorf("%s cat: got %d bytes, want %d: %s", s, got, size, stderr.String())
	}
	cpu, err := e.cpuEnd(s, c0)
	return d, cpu, err
}

// echoOnce starts an interactive session under a pty on one side, with a
// program on the target that echoes every byte it reads (raw mode, like a
// shell's line editor), types n keystrokes one at a time and returns each
// one's round trip: from the write into the local terminal to the echo
// coming out of it.
func (e *env) echoOnce(s side, n int) ([]time.Duration, error) {
	const remote = "stty raw -echo; printf READY; exec cat"
	args := []string{"-tt", "target", remote}
	if s == viaBastion {
		args = []string{"-tt", "-l", "root", "web1", remote}
	}
	cmd := e.sshCmd(args...)
	f, err := pty.StartWithSize(cmd, &pty.Winsize{Cols: 80, Rows: 24})
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
	timeout := time.After(30 * time.Second)
	for !bytes.Contains(seen, []byte("READY")) {
		select {
		case c, ok := <-ch:
			if !ok {
				return nil, fmt.Errorf("%s echo: session ended before it was ready: %q", s, seen)
			}
			seen = append(seen, c.b...)
		case <-timeout:
			return nil, fmt.Errorf("%s echo: not ready after 30s: %q", s, seen)
		}
	}
	// Drain anything that followed the marker.
	for quiet := false; !quiet; {
		select {
		case <-ch:
		case <-time.After(100 * time.Millisecond):
			quiet = true
		}
	}
	lat := make([]time.Duration, 0, n)
	key := []byte{'x'}
	for range n {
		t0 := time.Now()
		if _, err := f.Write(key); err != nil {
			return nil, err
		}
		select {
		case c, ok := <-ch:
			if !ok {
				return nil, fmt.Errorf("%s echo: session ended", s)
			}
			if !bytes.Equal(c.b, key) {
				return nil, fmt.Errorf("%s echo: got %q, want %q", s, c.b, key)
			}
			lat = append(lat, c.at.Sub(t0))
		case <-time.After(10 * time.Second):
			return nil, fmt.Errorf("%s echo: no echo within 10s", s)
		}
		// A typist's pace, not a pipeline: one keystroke in flight.
		time.Sleep(2 * time.Millisecond)
	}
	return lat, nil
}

// maskingActive runs a command printing a test card number through the
// bastion and reports whether it came back masked.
func (e *env) maskingActive() (bool, error) {
	out, err := e.sshCmd("-l", "root", "web1", "echo 4111 1111 1111 1111").Output()
	if err != nil {
		return false, fmt.Errorf("masking probe: %w", err)
	}
	return !strings.Contains(string(out), "4111 1111 1111 1111"), nil
}

// writeShellOutput writes size bytes of log-like text (timestamps, paths,
// status codes, sizes: digits among words, as `cat` of a log shows) to
// path. No line holds a card number, so masking changes nothing and the
// byte count checks the transfer.
func writeShellOutput(path string, size int64) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	w := bufio.NewWriterSize(f, 1<<20)
	writeLogLines(w, size)
	if err := w.Flush(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// writeLogLines writes size bytes of nginx-like access log lines (the same
// lines for the same size): times that only move forward, a few worker
// processes, as a real log has, and random methods, paths, statuses,
// sizes, users and durations.
func writeLogLines(w io.Writer, size int64) {
	rng := rand.New(rand.NewPCG(1, 2))
	paths := []string{"/api/v1/items", "/api/v1/orders", "/static/app.js", "/healthz", "/api/v1/users/me", "/login"}
	methods := []string{"GET", "GET", "GET", "POST", "PUT", "DELETE"}
	users := []string{"alice", "bob", "carol", "dave", "-"}
	workers := []int64{3108, 3109, 3110, 3111}
	at := time.Date(2026, 1, 10, 0, 0, 0, 0, time.UTC)
	var line []byte
	var written int64
	for written < size {
		at = at.Add(time.Duration(rng.IntN(40)) * time.Millisecond)
		line = line[:0]
		line = at.AppendFormat(line, "2006-01-02T15:04:05.000Z")
		line = append(line, " web1 nginx["...)
		line = strconv.AppendInt(line, workers[rng.IntN(len(workers))], 10)
		line = append(line, "]: "...)
		line = append(line, methods[rng.IntN(len(methods))]...)
		line = append(line, ' ')
		line = append(line, paths[rng.IntN(len(paths))]...)
		line = append(line, "?page="...)
		line = strconv.AppendInt(line, int64(rng.IntN(100)), 10)
		line = append(line, " status="...)
		line = strconv.AppendInt(line, int64(200+rng.IntN(4)*100), 10)
		line = append(line, " bytes="...)
		line = strconv.AppendInt(line, int64(rng.IntN(100000)), 10)
		line = append(line, " user="...)
		line = append(line, users[rng.IntN(len(users))]...)
		line = append(line, " took=0."...)
		line = strconv.AppendInt(line, int64(100+rng.IntN(900)), 10)
		line = append(line, "s\n"...)
		if rem := size - written; int64(len(line)) > rem {
			line = line[:rem]
		}
		w.Write(line)
		written += int64(len(line))
	}
}
