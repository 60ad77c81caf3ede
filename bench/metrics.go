package main

import (
	"bufio"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"slices"
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
	var m goMetrics
	err := withMetrics(httpAddr, func(r io.Reader) (err error) {
		m, err = parseGoMetrics(r)
		return err
	})
	return m, err
}

// withMetrics fetches the bastion's /metrics and hands the body to parse.
func withMetrics(httpAddr string, parse func(io.Reader) error) error {
	c := &http.Client{Timeout: 10 * time.Second}
	resp, err := c.Get("http://" + httpAddr + "/metrics")
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("/metrics: %s", resp.Status)
	}
	return parse(io.LimitReader(resp.Body, 16<<20))
}

// histogram is one series of a Prometheus histogram: cumulative counts by
// upper bound, ascending, the +Inf bucket last.
type histogram struct {
	Le    []float64
	Count []float64
	Sum   float64
}

// parseHistogram picks the series of histogram name whose labels, other
// than le, are exactly labels (as written: `result="ok"`) out of a
// Prometheus text exposition. A histogram that is not there is an error.
func parseHistogram(r io.Reader, name, labels string) (histogram, error) {
	var h histogram
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	bucket, sum := name+"_bucket{", name+"_sum"
	if labels != "" {
		sum += "{" + labels + "}"
	}
	for n := 1; sc.Scan(); n++ {
		line := sc.Text()
		rest, ok := strings.CutPrefix(line, bucket)
		if !ok {
			if v, ok := strings.CutPrefix(line, sum+" "); ok {
				var err error
				if h.Sum, err = sampleValue(v); err != nil {
					return histogram{}, fmt.Errorf("metrics line %d: %w", n, err)
				}
			}
			continue
		}
		ls, value, ok := strings.Cut(rest, "}")
		if !ok {
			return histogram{}, fmt.Errorf("metrics line %d: unterminated labels", n)
		}
		var le string
		var others []string
		for _, l := range strings.Split(ls, ",") {
			if v, ok := strings.CutPrefix(l, "le="); ok {
				le = strings.Trim(v, `"`)
			} else if l != "" {
				others = append(others, l)
			}
		}
		if strings.Join(others, ",") != labels {
			continue
		}
		bound, err := strconv.ParseFloat(le, 64) // "+Inf" parses
		if err != nil {
			return histogram{}, fmt.Errorf("metrics line %d: le %q", n, le)
		}
		v, err := sampleValue(value)
		if err != nil {
			return histogram{}, fmt.Errorf("metrics line %d: %w", n, err)
		}
		if k := len(h.Le); k > 0 && (bound <= h.Le[k-1] || v < h.Count[k-1]) {
			return histogram{}, fmt.Errorf("metrics line %d: buckets out of order", n)
		}
		h.Le, h.Count = append(h.Le, bound), append(h.Count, v)
	}
	if err := sc.Err(); err != nil {
		return histogram{}, fmt.Errorf("metrics: %w", err)
	}
	if len(h.Le) == 0 || !math.IsInf(h.Le[len(h.Le)-1], 1) {
		return histogram{}, fmt.Errorf("metrics: no histogram %s{%s} ending in a +Inf bucket", name, labels)
	}
	return h, nil
}

// sampleValue parses a sample's value, dropping a timestamp after it.
func sampleValue(s string) (float64, error) {
	f := strings.Fields(s)
	if len(f) == 0 {
		return 0, errors.New("no value")
	}
	return strconv.ParseFloat(f[0], 64)
}

// readHistogram fetches one histogram series from the bastion's /metrics.
func readHistogram(httpAddr, name, labels string) (histogram, error) {
	var h histogram
	err := withMetrics(httpAddr, func(r io.Reader) (err error) {
		h, err = parseHistogram(r, name, labels)
		return err
	})
	return h, err
}

// Total is the number of observations.
func (h histogram) Total() float64 {
	if len(h.Count) == 0 {
		return 0
	}
	return h.Count[len(h.Count)-1]
}

// Since is what was observed after earlier (the same series, read
// before), or an error if the buckets differ.
func (h histogram) Since(earlier histogram) (histogram, error) {
	if !slices.Equal(h.Le, earlier.Le) {
		return histogram{}, errors.New("histogram buckets changed between readings")
	}
	d := histogram{Le: h.Le, Count: make([]float64, len(h.Count)), Sum: h.Sum - earlier.Sum}
	for i := range h.Count {
		d.Count[i] = h.Count[i] - earlier.Count[i]
	}
	return d, nil
}

// plus adds the observations of another reading with the same buckets
// (another window's Since); with other buckets, h unchanged.
func (h histogram) plus(o histogram) histogram {
	if !slices.Equal(h.Le, o.Le) {
		return h
	}
	s := histogram{Le: h.Le, Count: make([]float64, len(h.Count)), Sum: h.Sum + o.Sum}
	for i := range h.Count {
		s.Count[i] = h.Count[i] + o.Count[i]
	}
	return s
}

// Quantile estimates the q-quantile as Prometheus's histogram_quantile
// does: linear within the bucket it falls in, from 0 for the first; in the
// +Inf bucket, the largest finite bound. NaN for no observations.
func (h histogram) Quantile(q float64) float64 {
	total := h.Total()
	if total <= 0 || q < 0 || q > 1 {
		return math.NaN()
	}
	rank := q * total
	for i, c := range h.Count {
		if c < rank {
			continue
		}
		if math.IsInf(h.Le[i], 1) {
			if i == 0 {
				return math.NaN()
			}
			return h.Le[i-1]
		}
		lo, below := 0.0, 0.0
		if i > 0 {
			lo, below = h.Le[i-1], h.Count[i-1]
		}
		if c == below {
			return h.Le[i]
		}
		return lo + (h.Le[i]-lo)*(rank-below)/(c-below)
	}
	return math.NaN()
}
