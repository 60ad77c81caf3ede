package main

import (
	"bytes"
	"io"
	"math"
	"strings"
	"testing"
	"time"
)

// A real /proc/PID/stat line (an sshd listener), with utime 12, stime 34,
// cutime 560, cstime 78.
const statLine = "4242 (sshd) S 1 4242 4242 0 -1 4194560 1234 5678 0 0 12 34 560 78 20 0 1 0 12345 15000000 2000 18446744073709551615 1 1 0 0 0 0 0 4096 81926 0 0 0 17 1 0 0 0 0 0\n"

var statTests = []struct {
	name    string
	in      string
	want    procCPU
	wantErr string
}{
	{name: "sshd", in: statLine, want: procCPU{User: 120 * time.Millisecond, System: 340 * time.Millisecond, ChildUser: 5600 * time.Millisecond, ChildSys: 780 * time.Millisecond}},
	{name: "comm with spaces and parens", in: strings.Replace(statLine, "(sshd)", "(a) b (c))", 1), want: procCPU{User: 120 * time.Millisecond, System: 340 * time.Millisecond, ChildUser: 5600 * time.Millisecond, ChildSys: 780 * time.Millisecond}},
	{name: "empty", in: "", wantErr: "no (comm)"},
	{name: "no open paren", in: "4242 sshd) S 1", wantErr: "no (comm)"},
	{name: "no close paren", in: "4242 (sshd S 1 2 3", wantErr: "no (comm)"},
	{name: "paren order", in: "4242 )sshd( S 1 2 3", wantErr: "no (comm)"},
	{name: "too few fields", in: "4242 (sshd) S 1 4242 4242 0 -1 4194560 1234 5678 0 0 12 34 560", wantErr: "fields after comm"},
	{name: "not a number", in: strings.Replace(statLine, " 12 34 ", " x 34 ", 1), wantErr: `field 14 is "x"`},
	{name: "negative", in: strings.Replace(statLine, " 12 34 ", " 12 -34 ", 1), wantErr: `field 15 is "-34"`},
	{name: "overflow", in: strings.Replace(statLine, " 12 34 ", " 99999999999999999999 34 ", 1), wantErr: "field 14"},
}

func TestParseStat(t *testing.T) {
	for _, tt := range statTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseStat([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
			if got.WithChildren()-got.Own() != tt.want.ChildUser+tt.want.ChildSys {
				t.Fatalf("got children %v, want %v", got.WithChildren()-got.Own(), tt.want.ChildUser+tt.want.ChildSys)
			}
		})
	}
}

func FuzzParseStat(f *testing.F) {
	for _, tt := range statTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		c, err := parseStat([]byte(s))
		if err == nil && (c.User < 0 || c.System < 0 || c.ChildUser < 0 || c.ChildSys < 0) {
			t.Fatalf("negative times %+v from %q", c, s)
		}
	})
}

const statusText = "Name:\tbastion\nUmask:\t0022\nState:\tS (sleeping)\nVmPeak:\t 1300000 kB\nVmRSS:\t   22016 kB\nRssAnon:\t   14000 kB\nRssFile:\t    8016 kB\nThreads:\t8\n"

// parseCase is one table test of a parser of /proc text.
type parseCase[T comparable] struct {
	name    string
	in      string
	want    T
	wantErr string
}

// testParse runs a parser over its table: each case gives the value or an
// error containing wantErr.
func testParse[T comparable](t *testing.T, cases []parseCase[T], parse func([]byte) (T, error)) {
	for _, tt := range cases {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parse([]byte(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

var statusTests = []parseCase[memory]{
	{name: "bastion", in: statusText, want: memory{RSS: 22016 << 10, Anon: 14000 << 10}},
	{name: "empty", in: "", wantErr: "no VmRSS and RssAnon"},
	{name: "kernel thread", in: "Name:\tkthreadd\nState:\tS (sleeping)\n", wantErr: "no VmRSS and RssAnon"},
	{name: "only VmRSS", in: "VmRSS:\t 1 kB\n", wantErr: "no VmRSS and RssAnon"},
	{name: "unit", in: strings.Replace(statusText, "22016 kB", "22016 MB", 1), wantErr: "malformed VmRSS"},
	{name: "not a number", in: strings.Replace(statusText, "14000 kB", "lots kB", 1), wantErr: "malformed RssAnon"},
	{name: "negative", in: strings.Replace(statusText, "22016 kB", "-1 kB", 1), wantErr: "malformed VmRSS"},
	{name: "huge", in: strings.Replace(statusText, "22016 kB", "9223372036854775807 kB", 1), wantErr: "malformed VmRSS"},
	{name: "missing value", in: strings.Replace(statusText, "   22016 kB", "", 1), wantErr: "malformed VmRSS"},
}

func TestParseStatus(t *testing.T) { testParse(t, statusTests, parseStatus) }

func FuzzParseStatus(f *testing.F) {
	for _, tt := range statusTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseStatus([]byte(s))
		if err == nil && (m.RSS < 0 || m.Anon < 0) {
			t.Fatalf("negative memory %+v from %q", m, s)
		}
	})
}

const procStatText = "cpu  1000 20 300 5000 40 5 6 7 0 0\ncpu0 500 10 150 2500 20 2 3 3 0 0\nintr 12345\n"

var procStatTests = []parseCase[machineCPU]{
	{name: "two cpus", in: procStatText, want: machineCPU{Busy: 13380 * time.Millisecond, Total: 63780 * time.Millisecond}},
	{name: "old kernel, no guest fields", in: "cpu 1 2 3 4 5 6 7 8\n", want: machineCPU{Busy: 270 * time.Millisecond, Total: 360 * time.Millisecond}},
	{name: "empty", in: "", wantErr: "no aggregate cpu line"},
	{name: "per-cpu line first", in: "cpu0 1 2 3 4 5 6 7 8\n", wantErr: "no aggregate cpu line"},
	{name: "too few fields", in: "cpu 1 2 3 4 5 6 7\n", wantErr: "7 fields"},
	{name: "not a number", in: "cpu 1 2 x 4 5 6 7 8\n", wantErr: `cpu field 3 is "x"`},
	{name: "negative", in: "cpu 1 2 3 -4 5 6 7 8\n", wantErr: `cpu field 4 is "-4"`},
	{name: "huge", in: "cpu 1 2 3 4 5 6 7 99999999999999\n", wantErr: "cpu field 8"},
	// Found by FuzzParseProcStat: ticks times a second overflowed before
	// the division by the tick rate.
	{name: "large steal", in: "cpu 0 0 0 0 0 0 0 9227000000\n", want: machineCPU{Busy: 9227000000 * 10 * time.Millisecond, Total: 9227000000 * 10 * time.Millisecond}},
	{name: "sum past a duration", in: "cpu 1099511627776 1099511627776 1099511627776 1099511627776 1099511627776 1099511627776 1099511627776 1099511627776\n", wantErr: "more than a duration holds"},
}

func TestParseProcStat(t *testing.T) { testParse(t, procStatTests, parseProcStat) }

func FuzzParseProcStat(f *testing.F) {
	for _, tt := range procStatTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		m, err := parseProcStat([]byte(s))
		if err == nil && (m.Busy < 0 || m.Busy > m.Total) {
			t.Fatalf("busy %v of %v from %q", m.Busy, m.Total, s)
		}
	})
}

const metricsText = `# HELP go_goroutines Number of goroutines that currently exist.
# TYPE go_goroutines gauge
go_goroutines 18042
# HELP go_memstats_heap_inuse_bytes Number of heap bytes that are in use.
go_memstats_heap_inuse_bytes 1.52e+08
go_memstats_stack_inuse_bytes 7.3728e+07 1700000000000
go_gc_duration_seconds{quantile="0"} 1.2e-05
bastion_sessions_active{kind="shell"} 1000
`

var metricsTests = []struct {
	name    string
	in      string
	want    goMetrics
	wantErr string
}{
	{name: "bastion", in: metricsText, want: goMetrics{Goroutines: 18042, HeapInuse: 1.52e8, StackInuse: 7.3728e7}},
	{name: "empty", in: ""},
	{name: "labelled and other metrics only", in: "go_goroutines_total{x=\"1\"} 5\nfoo 1\n"},
	{name: "no value", in: "go_goroutines\n", wantErr: "line 1: go_goroutines has no value"},
	{name: "bad value", in: "# c\ngo_memstats_heap_inuse_bytes lots\n", wantErr: "line 2: go_memstats_heap_inuse_bytes"},
}

func TestParseGoMetrics(t *testing.T) {
	for _, tt := range metricsTests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseGoMetrics(strings.NewReader(tt.in))
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tt.want {
				t.Fatalf("got %+v, want %+v", got, tt.want)
			}
		})
	}
}

func FuzzParseGoMetrics(f *testing.F) {
	for _, tt := range metricsTests {
		f.Add(tt.in)
	}
	f.Fuzz(func(t *testing.T, s string) {
		parseGoMetrics(strings.NewReader(s))
	})
}

func TestQuantile(t *testing.T) {
	for _, tt := range []struct {
		name string
		xs   []float64
		q    float64
		want float64
	}{
		{"median odd", []float64{3, 1, 2}, 0.5, 2},
		{"median even", []float64{4, 1, 3, 2}, 0.5, 2.5},
		{"min", []float64{4, 1, 3}, 0, 1},
		{"max", []float64{4, 1, 3}, 1, 4},
		{"p99 of 1..101", seq(101), 0.99, 100},
		{"one", []float64{7}, 0.99, 7},
	} {
		t.Run(tt.name, func(t *testing.T) {
			if got := quantile(tt.xs, tt.q); got != tt.want {
				t.Fatalf("got %v, want %v", got, tt.want)
			}
		})
	}
	for _, q := range []float64{-0.1, 1.1, math.NaN()} {
		if got := quantile([]float64{1}, q); !math.IsNaN(got) {
			t.Errorf("quantile(q=%v): got %v, want NaN", q, got)
		}
	}
	if got := median(nil); !math.IsNaN(got) {
		t.Errorf("median(nil): got %v, want NaN", got)
	}
	xs := []float64{3, 1, 2}
	quantile(xs, 0.5)
	if xs[0] != 3 {
		t.Errorf("quantile sorted its argument: got %v, want [3 1 2]", xs)
	}
}

func seq(n int) []float64 {
	out := make([]float64, n)
	for i := range out {
		out[i] = float64(i + 1)
	}
	return out
}

func TestRatioCellAndFormat(t *testing.T) {
	if got, want := ratioCell([]float64{0.91, 0.95, 0.93}), "0.93x (0.91–0.95)"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	for _, tt := range []struct {
		v    float64
		want string
	}{{1234.5, "1234"}, {12.34, "12.3"}, {1.234, "1.23"}, {math.NaN(), "n/a"}} {
		if got := fmtNum(tt.v); got != tt.want {
			t.Errorf("fmtNum(%v): got %q, want %q", tt.v, got, tt.want)
		}
	}
	if got, want := sizeName(1<<30), "1 GiB"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
	if got, want := sizeName(512<<20), "512 MiB"; got != want {
		t.Errorf("got %q, want %q", got, want)
	}
}

func TestTableEscapesPipes(t *testing.T) {
	got := table([]result{{Workload: "a|b", Mark: markPass}})
	if !strings.Contains(got, `a\|b`) || !strings.Contains(got, "| — |") {
		t.Fatalf("got %q, want the pipe escaped and empty cells as —", got)
	}
}

// flushText is the recorder's histogram as the bastion's /metrics gives it
// (client_golang's text format), cut to four buckets.
const flushText = `# HELP bastion_recording_flush_seconds Duration of each group commit of recordings, by result.
# TYPE bastion_recording_flush_seconds histogram
bastion_recording_flush_seconds_bucket{result="error",le="0.001"} 0
bastion_recording_flush_seconds_bucket{result="error",le="+Inf"} 0
bastion_recording_flush_seconds_sum{result="error"} 0
bastion_recording_flush_seconds_count{result="error"} 0
bastion_recording_flush_seconds_bucket{result="ok",le="0.001"} 10
bastion_recording_flush_seconds_bucket{result="ok",le="0.002"} 30
bastion_recording_flush_seconds_bucket{result="ok",le="0.004"} 40
bastion_recording_flush_seconds_bucket{result="ok",le="+Inf"} 40
bastion_recording_flush_seconds_sum{result="ok"} 0.05
bastion_recording_flush_seconds_count{result="ok"} 40
bastion_recording_flush_seconds_other{result="ok",le="1"} 99
`

func TestParseHistogram(t *testing.T) {
	h, err := parseHistogram(strings.NewReader(flushText), "bastion_recording_flush_seconds", `result="ok"`)
	if err != nil {
		t.Fatal(err)
	}
	if h.Total() != 40 || h.Sum != 0.05 || len(h.Le) != 4 || !math.IsInf(h.Le[3], 1) {
		t.Fatalf("got %+v", h)
	}
	for _, tt := range []struct{ q, want float64 }{
		{0.25, 0.001},   // the 10th of 40: the first bucket's bound
		{0.5, 0.0015},   // the 20th: half way through the second
		{0.875, 0.003},  // the 35th: half way through the third
		{0.125, 0.0005}, // the 5th: half way from 0 through the first
	} {
		if got := h.Quantile(tt.q); math.Abs(got-tt.want) > 1e-12 {
			t.Errorf("quantile %v: got %v, want %v", tt.q, got, tt.want)
		}
	}
	// What was observed between two readings.
	later := histogram{Le: h.Le, Count: []float64{10, 30, 40, 42}, Sum: 0.5}
	d, err := later.Since(h)
	if err != nil {
		t.Fatal(err)
	}
	if d.Total() != 2 || d.Quantile(0.5) != 0.004 { // only in +Inf: the largest finite bound
		t.Errorf("since: got %+v, quantile %v", d, d.Quantile(0.5))
	}
	if s := d.plus(d); s.Total() != 4 || s.Sum != 0.9 {
		t.Errorf("plus: got %+v", s)
	}
	if !math.IsNaN((histogram{Le: h.Le, Count: make([]float64, 4)}).Quantile(0.5)) {
		t.Error("no observations: want NaN")
	}
	if _, err := later.Since(histogram{Le: []float64{1, math.Inf(1)}, Count: []float64{0, 0}}); err == nil {
		t.Error("other buckets: want an error")
	}
	for _, tt := range []struct{ name, in, labels, wantErr string }{
		{"absent", flushText, `result="other"`, "no histogram"},
		{"no +Inf", "h_bucket{le=\"1\"} 3\n", "", "no histogram"},
		{"bad le", "h_bucket{le=\"x\"} 3\n", "", `le "x"`},
		{"bad value", "h_bucket{le=\"1\"} many\n", "", "line 1"},
		{"out of order", "h_bucket{le=\"2\"} 3\nh_bucket{le=\"1\"} 3\n", "", "out of order"},
		{"decreasing", "h_bucket{le=\"1\"} 3\nh_bucket{le=\"2\"} 2\n", "", "out of order"},
		{"unterminated", "h_bucket{le=\"1\" 3\n", "", "unterminated"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := parseHistogram(strings.NewReader(tt.in), "h", tt.labels)
			if tt.name == "absent" {
				_, err = parseHistogram(strings.NewReader(tt.in), "bastion_recording_flush_seconds", tt.labels)
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("got error %v, want one containing %q", err, tt.wantErr)
			}
		})
	}
}

func FuzzParseHistogram(f *testing.F) {
	f.Add(flushText)
	f.Fuzz(func(t *testing.T, s string) {
		if h, err := parseHistogram(strings.NewReader(s), "bastion_recording_flush_seconds", `result="ok"`); err == nil {
			h.Quantile(0.99)
		}
	})
}

func TestBusyLine(t *testing.T) {
	// What busyStream writes is what the bash of busyCommand prints.
	var b bytes.Buffer
	r, w := io.Pipe()
	go func() { busyStream(w) }()
	line := make([]byte, 256)
	n, err := r.Read(line)
	r.Close()
	if err != nil {
		t.Fatal(err)
	}
	b.Write(line[:n])
	l := bytes.TrimSuffix(b.Bytes(), []byte("\r\n"))
	if len(l) == b.Len() || len(l) < 90 || len(l) > 110 {
		t.Fatalf("busyStream wrote %q: want a line of about 100 bytes ending in CRLF", b.Bytes())
	}
	at, seq, ok := busyLine(l)
	if !ok || seq != 1 || time.Since(at) > time.Minute || time.Since(at) < 0 {
		t.Fatalf("busyLine(%q) = %v, %d, %v", l, at, seq, ok)
	}
	bash := "1796678721.905734 web1 app[16749]: GET /api/v1/items?page=14512 status=200 bytes=21661 took=0.636s seq=12"
	if at, seq, ok := busyLine([]byte(bash)); !ok || seq != 12 || at.UnixMicro() != 1796678721905734 {
		t.Errorf("busyLine(bash's line) = %v, %d, %v", at, seq, ok)
	}
	for _, l := range []string{
		"", "idle$ ", strings.TrimSuffix(busyCommand, "\n"),
		strings.Replace(bash, "seq=12", "seq=x", 1),
		strings.Replace(bash, "seq=12", "seq=0", 1),
		strings.Replace(bash, "status=200", "status=%d", 1),
		strings.Replace(bash, ".905734", "905734", 1),
		strings.Replace(bash, "1796678721.", "17966x8721.", 1),
	} {
		if _, _, ok := busyLine([]byte(l)); ok {
			t.Errorf("busyLine(%q): ok, want not a line of ours", l)
		}
	}
}
