package linerec

import (
	"runtime"
	"strings"
	"testing"
)

// typingCost is the bytes allocated per key while a line of n keys is
// typed one key per chunk, each echoed as a shell echoes it.
func typingCost(n int) uint64 {
	tr := New(80, 24)
	tr.Output([]byte("$ "))
	k := []byte{'a'}
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	for range n {
		tr.Keys(k)
		tr.Output(k)
	}
	runtime.ReadMemStats(&m1)
	return (m1.TotalAlloc - m0.TotalAlloc) / uint64(n)
}

// The work per key does not grow with the length of the line. Found: Keys
// copied the key model's whole line for every chunk of keys, so typing (or
// sending a key per packet) a line of n keys cost O(n²): 40,000 keys
// allocated 3.2 GB and took seconds of the bastion's CPU, a million keys
// days.
func TestTypingCostPerKeyIsFlat(t *testing.T) {
	short, long := typingCost(4000), typingCost(16000)
	if long > 2*short+64 {
		t.Fatalf("bytes allocated per key: %d for a line of 4,000 keys, %d for 16,000: the cost per key grows with the line", short, long)
	}
}

// The key model's memory is bounded however long a line is typed without
// Enter: past what the screen can hold, the keys' reading is given up.
func TestKeyModelBounded(t *testing.T) {
	tr := New(80, 24)
	tr.Output([]byte("$ "))
	chunk := make([]byte, 64<<10)
	for i := range chunk {
		chunk[i] = 'a'
	}
	for range (maxKeyLine / len(chunk)) + 2 {
		tr.Keys(chunk)
	}
	if n := len(tr.km.buf); n > maxKeyLine || tr.kmOK {
		t.Fatalf("key model holds %d characters (ok %v) after %d typed; want at most %d and the reading given up",
			n, tr.kmOK, (maxKeyLine/len(chunk)+2)*len(chunk), maxKeyLine)
	}
	if l := tr.Line(); l.KeysOK {
		t.Fatal("Line().KeysOK after the key model gave up")
	}
}

// A window change costs O(rows), not O(rows × cols): a client sends them as
// fast as it likes (forty bytes each), so one must not copy the screen.
// Found: every resize copied each drawn row into a new buffer, 2 MB and
// 3.4 ms of CPU for a full 1000×500 screen, so one user sending window
// changes in a loop kept the bastion's CPUs busy.
func TestResizeDoesNotCopyTheScreen(t *testing.T) {
	tr := New(maxCols, maxRows)
	full := make([]byte, maxCols*maxRows)
	for i := range full {
		full[i] = 'x'
	}
	tr.Output(full)
	var m0, m1 runtime.MemStats
	runtime.ReadMemStats(&m0)
	const n = 200
	for i := range n {
		tr.Resize(maxCols-i%2, maxRows-i%2)
	}
	runtime.ReadMemStats(&m1)
	if per := (m1.TotalAlloc - m0.TotalAlloc) / n; per > 64<<10 {
		t.Fatalf("%d bytes allocated per resize of a full %dx%d screen; want O(rows)", per, maxCols, maxRows)
	}
	// The screen still reads right after the resizes.
	tr.Resize(10, 3)
	if got := strings.TrimRight(tr.s.line(2).text(0, 10), " "); got != "xxxxxxxxxx" {
		t.Fatalf("last row after the resizes: %q", got)
	}
}
