package recorder

import (
	"bytes"
	"fmt"
	"path/filepath"
	"runtime"
	"sync"
	"testing"
)

// benchStore opens a store with the default flush settings.
func benchStore(b *testing.B) *Store {
	b.Helper()
	s, err := Open(Config{Path: filepath.Join(b.TempDir(), "bench.db"), SealKey: testKey})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	return s
}

// BenchmarkIngest measures recording throughput with group commit: several
// sessions writing 4 KiB outputs concurrently, until every byte is committed
// (End waits for the commit). MB/s is the figure to watch.
func BenchmarkIngest(b *testing.B) {
	for _, sessions := range []int{1, 8} {
		b.Run(fmt.Sprintf("sessions=%d", sessions), func(b *testing.B) {
			s := benchStore(b)
			data := bytes.Repeat([]byte("0123456789abcdef ls -la /var/log\r\n"), 4096/34+1)[:4096]
			recs := make([]*Recording, sessions)
			for i := range recs {
				r, err := s.Begin(SessionInfo{Kind: "shell", User: "bench", Target: "t"})
				if err != nil {
					b.Fatal(err)
				}
				recs[i] = r
			}
			b.SetBytes(int64(len(data)))
			b.ReportAllocs()
			b.ResetTimer()
			var wg sync.WaitGroup
			for i, r := range recs {
				n := b.N / sessions
				if i < b.N%sessions {
					n++
				}
				wg.Add(1)
				go func() {
					defer wg.Done()
					for range n {
						if err := r.Output(data); err != nil {
							b.Error(err)
							return
						}
					}
					if err := r.End(ExitInfo{}); err != nil {
						b.Error(err)
					}
				}()
			}
			wg.Wait()
		})
	}
}

// BenchmarkOutput measures the hot path of one session: allocations per
// Output call must be zero in the steady state (buffers are pooled).
func BenchmarkOutput(b *testing.B) {
	for _, size := range []int{64, 4096} {
		b.Run(fmt.Sprintf("bytes=%d", size), func(b *testing.B) {
			s := benchStore(b)
			r, err := s.Begin(SessionInfo{Kind: "shell", User: "bench", Target: "t"})
			if err != nil {
				b.Fatal(err)
			}
			data := bytes.Repeat([]byte("x\u00e9"), size/3+1)[:size] // often ends mid-character
			b.SetBytes(int64(size))
			b.ReportAllocs()
			b.ResetTimer()
			for range b.N {
				if err := r.Output(data); err != nil {
					b.Fatal(err)
				}
			}
			b.StopTimer()
			if err := r.End(ExitInfo{}); err != nil {
				b.Fatal(err)
			}
		})
	}
}

// Output allocates nothing once its buffer exists: streaming a 1 GiB `cat`
// costs no garbage per write (the pooled buffers are reused across flushes).
func TestOutputDoesNotAllocate(t *testing.T) {
	cfg, _ := testConfig(t)
	cfg.SessionBuffer = 16 << 20 // no flush during the measurement
	cfg.MaxPending = 64 << 20
	s := openStore(t, cfg)
	r := begin(t, s, SessionInfo{})
	data := bytes.Repeat([]byte("x\u00e9"), 4096/3+1)[:4096] // ends mid-character: the carry works too
	must(t, r.Output(data))
	if allocs := testing.AllocsPerRun(1000, func() { r.Output(data) }); allocs != 0 {
		t.Errorf("got %v allocations per Output, want 0", allocs)
	}
	must(t, r.End(ExitInfo{}))
}

// BenchmarkStream is one session streaming like `cat` of a large file, in
// 32 KiB reads; it reports the peak Go heap seen while doing so. Run it with
// -benchtime 32768x to stream 1 GiB.
func BenchmarkStream(b *testing.B) {
	s := benchStore(b)
	r, err := s.Begin(SessionInfo{Kind: "exec", User: "bench", Target: "t", Command: "cat big"})
	if err != nil {
		b.Fatal(err)
	}
	data := bytes.Repeat([]byte("2025-03-01 12:00:00 GET /index.html 200 \u2713\n"), 32<<10/44+1)[:32<<10]
	var ms runtime.MemStats
	runtime.GC()
	runtime.ReadMemStats(&ms)
	base, peak := ms.HeapInuse, ms.HeapInuse
	b.SetBytes(int64(len(data)))
	b.ResetTimer()
	for i := range b.N {
		if err := r.Output(data); err != nil {
			b.Fatal(err)
		}
		if i%1024 == 0 { // every 32 MiB
			runtime.ReadMemStats(&ms)
			peak = max(peak, ms.HeapInuse)
		}
	}
	if err := r.End(ExitInfo{}); err != nil {
		b.Fatal(err)
	}
	b.StopTimer()
	b.ReportMetric(float64(peak-base)/(1<<20), "peak-heap-MiB")
}

// BenchmarkForwardContent is one TCP session streaming incompressible
// bytes (a forward's content recording) in 32 KiB reads, its chunks going
// to the chunk log, written with O_DIRECT and, as the baseline in the same
// run, through the page cache: the recorder alone, without the relay
// beside it. MB/s is the figure to compare; -benchtime 8192x streams
// 256 MiB into a fresh store, 131072x 4 GiB (the page-cache path slows
// once the store holds a few GiB on the bench machine).
func BenchmarkForwardContent(b *testing.B) {
	data := randomBytes(41, 4<<20)
	for _, mode := range []string{"direct", "page-cache"} {
		b.Run(mode, func(b *testing.B) {
			directIO = mode == "direct"
			defer func() { directIO = true }()
			s := benchStore(b)
			r, err := s.Begin(SessionInfo{Kind: "tcp", User: "bench", Target: "t"})
			if err != nil {
				b.Fatal(err)
			}
			b.SetBytes(32 << 10)
			b.ResetTimer()
			for i := range b.N {
				off := (i * 32 << 10) % len(data)
				if err := r.FromServer(data[off : off+32<<10]); err != nil {
					b.Fatal(err)
				}
			}
			if err := r.End(ExitInfo{}); err != nil {
				b.Fatal(err)
			}
		})
	}
}
