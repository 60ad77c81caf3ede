package player

import (
	"bufio"
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/bastionhq/bastion/recorder/asciicast"
)

// writeLargeCast writes a recording of about size bytes of coloured shell output.
func writeLargeCast(tb testing.TB, size int64) string {
	tb.Helper()
	path := filepath.Join(tb.TempDir(), "large.cast")
	f, err := os.Create(path)
	if err != nil {
		tb.Fatal(err)
	}
	bw := bufio.NewWriterSize(f, 1<<20)
	enc, err := asciicast.NewEncoder(bw, asciicast.Header{Version: 2, Width: 120, Height: 40})
	if err != nil {
		tb.Fatal(err)
	}
	line := "\x1b[01;34mdir\x1b[0m  file.txt  résumé.pdf  " + strings.Repeat("lorem ipsum ", 30) + "\r\n"
	var written int64
	for i := 0; written < size; i++ {
		if err := enc.Event(asciicast.Event{Time: time.Duration(i) * time.Millisecond, Type: asciicast.Output, Data: line}); err != nil {
			tb.Fatal(err)
		}
		written += int64(len(line)) + 40 // escaping and framing, roughly
	}
	if err := bw.Flush(); err != nil {
		tb.Fatal(err)
	}
	if err := f.Close(); err != nil {
		tb.Fatal(err)
	}
	return path
}

var errFirstFrame = errors.New("first frame")

// BenchmarkTimeToFirstFrame measures how long Play takes to put the first frame of
// a 256 MiB recording on the terminal: it streams, so this does not grow with the
// file.
func BenchmarkTimeToFirstFrame(b *testing.B) {
	path := writeLargeCast(b, 256<<20)
	src := FileSource(path)
	stop := writerFunc(func(p []byte) (int, error) { return 0, errFirstFrame })
	for b.Loop() {
		if err := Play(context.Background(), src, stop, Options{}); !errors.Is(err, errFirstFrame) {
			b.Fatalf("got %v, want %v", err, errFirstFrame)
		}
	}
	if fi, err := os.Stat(path); err == nil {
		b.ReportMetric(float64(fi.Size())/(1<<20), "cast_MiB")
	}
}

// BenchmarkFastForward measures playback throughput with no waiting (as when
// seeking), decoder and sanitiser included.
func BenchmarkFastForward(b *testing.B) {
	path := writeLargeCast(b, 32<<20)
	fi, err := os.Stat(path)
	if err != nil {
		b.Fatal(err)
	}
	src := FileSource(path)
	b.SetBytes(fi.Size())
	instant := func(time.Duration) <-chan time.Time {
		ch := make(chan time.Time, 1)
		ch <- time.Time{}
		return ch
	}
	for b.Loop() {
		if err := Play(context.Background(), src, discard{}, Options{After: instant}); err != nil {
			b.Fatal(err)
		}
	}
}
