package main

import (
	"bufio"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// goMetrics are the Go runtime gauges the bastion exports on /metrics.
type goMetrics struct {
	Goroutines float64 // go_goroutines
	StackInuse float64 // go_memstats_stack_inuse_bytes
	HeapInuse  float64 // go_memstats_heap_inuse_bytes
	HeapIdle   float64 // go_memstats_heap_idle_bytes
	HeapFreed  float64 // go_memstats_heap_released_bytes (idle and returned to the OS)
}

// parseGoMetrics picks the runtime gauges out of a Prometheus text
// exposition. Unlabelled samples only; a sample that does not parse is an
// error, a missing one stays zero.
func parseGoMetrics(r io.Reader) (goMetrics, error) {
	var m goMetrics
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		if line == "" || line[0] == '#' {
			continue
		}
		name, value, ok := strings.Cut(line, " ")
		var dst *float64
		switch name {
		case "go_goroutines":
			dst = &m.Goroutines
		case "go_memstats_stack_inuse_bytes":
			dst = &m.StackInuse
		case "go_memstats_heap_inuse_bytes":
			dst = &m.HeapInuse
		case "go_memstats_heap_idle_bytes":
			dst = &m.HeapIdle
		case "go_memstats_heap_released_bytes":
			dst = &m.HeapFreed
		default:
			continue
		}
		if !ok {
			return goMetrics{}, fmt.Errorf("metrics line %d: %s has no value", n, name)
		}
		value, _, _ = strings.Cut(strings.TrimSpace(value), " ") // drop a timestamp
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			return goMetrics{}, fmt.Errorf("metrics line %d: %s: %w", n, name, err)
		}
		*dst = v
	}
	if err := sc.Err(); err != nil {
		return goMetrics{}, fmt.Errorf("metrics: %w", err)
	}
	return m, nil
}

// readGoMetrics fetches the bastion's runtime gauges.
func readGoMetrics(httpAddr string) (goMetrics, error) {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return goMetrics{}, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return goMetrics{}, fmt.Errorf("/metrics: %s", resp.Status)
	}
	return parseGoMetrics(io.LimitReader(resp.Body, 16<<20))
}
