package main

import (
	"bytes"
	"errors"
	"fmt"
	"math"
	"os"
	"strconv"
	"strings"
	"time"
)

// clockTicks is USER_HZ, the unit of the times in /proc/PID/stat. Linux
// has reported 100 on every architecture Go supports for decades.
const clockTicks = 100

// procCPU is the CPU time a process has used, from /proc/PID/stat.
type procCPU struct {
	User, System        time.Duration // the process itself
	ChildUser, ChildSys time.Duration // children it has waited for
}

// Own is the process's own CPU time.
func (c procCPU) Own() time.Duration { return c.User + c.System }

// WithChildren adds the time of reaped children (and their reaped
// children): how the CPU of sshd's per-connection processes is counted
// once they have exited.
func (c procCPU) WithChildren() time.Duration {
	return c.User + c.System + c.ChildUser + c.ChildSys
}

var errStat = errors.New("malformed /proc stat line")

// parseStat parses the contents of /proc/PID/stat. The command name (field
// 2) is in parentheses and may itself hold spaces and parentheses, so the
// fields are counted from the last ')'.
func parseStat(b []byte) (procCPU, error) {
	end := bytes.LastIndexByte(b, ')')
	if end < 0 || bytes.IndexByte(b, '(') < 0 || bytes.IndexByte(b, '(') > end {
		return procCPU{}, fmt.Errorf("%w: no (comm)", errStat)
	}
	// After ")": state is field 3; utime, stime, cutime, cstime are 14-17.
	f := strings.Fields(string(b[end+1:]))
	const utime = 14 - 3
	if len(f) < utime+4 {
		return procCPU{}, fmt.Errorf("%w: %d fields after comm, want at least %d", errStat, len(f), utime+4)
	}
	var v [4]int64
	for i := range v {
		n, err := strconv.ParseInt(f[utime+i], 10, 64)
		if err != nil || n < 0 || n > 1<<36 { // 21 years of CPU: no overflow below
			return procCPU{}, fmt.Errorf("%w: field %d is %q", errStat, utime+i+3, f[utime+i])
		}
		v[i] = n
	}
	tick := func(n int64) time.Duration { return time.Duration(n) * (time.Second / clockTicks) }
	return procCPU{User: tick(v[0]), System: tick(v[1]), ChildUser: tick(v[2]), ChildSys: tick(v[3])}, nil
}

// readCPU reads a process's CPU times.
func readCPU(pid int) (procCPU, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return procCPU{}, err
	}
	c, err := parseStat(b)
	if err != nil {
		return procCPU{}, fmt.Errorf("/proc/%d/stat: %w", pid, err)
	}
	return c, nil
}

// memory is a process's resident memory, from /proc/PID/status.
type memory struct {
	RSS  int64 // VmRSS, bytes: anonymous, file-backed and shared pages
	Anon int64 // RssAnon, bytes: anonymous pages (heap, stacks)
}

// parseStatus reads VmRSS and RssAnon from the contents of
// /proc/PID/status.
func parseStatus(b []byte) (memory, error) {
	var m memory
	var seen int
	for _, line := range strings.Split(string(b), "\n") {
		name, rest, ok := strings.Cut(line, ":")
		var dst *int64
		switch {
		case !ok:
			continue
		case name == "VmRSS":
			dst = &m.RSS
		case name == "RssAnon":
			dst = &m.Anon
		default:
			continue
		}
		f := strings.Fields(rest)
		if len(f) != 2 || f[1] != "kB" {
			return memory{}, fmt.Errorf("malformed %s line %q", name, line)
		}
		n, err := strconv.ParseInt(f[0], 10, 64)
		if err != nil || n < 0 || n > 1<<40 {
			return memory{}, fmt.Errorf("malformed %s line %q", name, line)
		}
		*dst = n << 10
		seen++
	}
	if seen != 2 {
		return memory{}, errors.New("no VmRSS and RssAnon lines")
	}
	return m, nil
}

// readMemory reads a process's resident memory.
func readMemory(pid int) (memory, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return memory{}, err
	}
	return parseStatus(b)
}

// children lists the direct children of pid (Linux 3.5+ with
// CONFIG_PROC_CHILDREN; elsewhere an error).
func children(pid int) ([]int, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/task/%d/children", pid, pid))
	if err != nil {
		return nil, err
	}
	var out []int
	for _, f := range strings.Fields(string(b)) {
		n, err := strconv.Atoi(f)
		if err != nil {
			return nil, fmt.Errorf("/proc/%d children: %q", pid, f)
		}
		out = append(out, n)
	}
	return out, nil
}

// waitNoChildren waits until pid has no children left: sshd has reaped its
// per-connection processes and their CPU time is in its child times.
func waitNoChildren(pid int, timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		c, err := children(pid)
		if err != nil {
			return err
		}
		if len(c) == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("process %d still has children %v after %s", pid, c, timeout)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// machineCPU is the whole machine's CPU time, from the "cpu" line of
// /proc/stat: Busy is every state but idle and iowait, Total all of them
// (so Total grows by the wall time times the number of CPUs).
type machineCPU struct {
	Busy, Total time.Duration
}

// parseProcStat reads the aggregate "cpu" line of /proc/stat's contents:
//
//	cpu  user nice system idle iowait irq softirq steal [guest guest_nice]
//
// guest and guest_nice are already counted in user and nice.
func parseProcStat(b []byte) (machineCPU, error) {
	line, _, _ := bytes.Cut(b, []byte("\n"))
	f := strings.Fields(string(line))
	if len(f) == 0 || f[0] != "cpu" {
		return machineCPU{}, errors.New("/proc/stat: no aggregate cpu line first")
	}
	if len(f) < 9 {
		return machineCPU{}, fmt.Errorf("/proc/stat: %d fields on the cpu line, want at least 8", len(f)-1)
	}
	var busy, total uint64 // ticks
	for i, s := range f[1:9] {
		n, err := strconv.ParseUint(s, 10, 63)
		if err != nil || n > 1<<40 {
			return machineCPU{}, fmt.Errorf("/proc/stat: cpu field %d is %q", i+1, s)
		}
		total += n
		if i != 3 && i != 4 { // idle, iowait
			busy += n
		}
	}
	if total > maxStatTicks {
		return machineCPU{}, fmt.Errorf("/proc/stat: the cpu line's times add up to %d ticks, more than a duration holds", total)
	}
	tick := time.Second / clockTicks
	return machineCPU{Busy: time.Duration(busy) * tick, Total: time.Duration(total) * tick}, nil
}

// maxStatTicks is the most ticks a time.Duration holds (about 290 years of
// one CPU's time).
const maxStatTicks = uint64(math.MaxInt64 / int64(time.Second/clockTicks))

// readMachineCPU reads the whole machine's CPU time.
func readMachineCPU() (machineCPU, error) {
	b, err := os.ReadFile("/proc/stat")
	if err != nil {
		return machineCPU{}, err
	}
	return parseProcStat(b)
}
