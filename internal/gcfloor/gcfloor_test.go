package gcfloor

import (
	"os"
	"runtime"
	"runtime/debug"
	"testing"
	"time"
)

func TestPercentFor(t *testing.T) {
	const MiB = 1 << 20
	for _, c := range []struct {
		live, floor uint64
		base, want  int
	}{
		{live: 4 * MiB, floor: 32 * MiB, base: 100, want: 700},
		{live: 8 * MiB, floor: 32 * MiB, base: 100, want: 300},
		{live: 16 * MiB, floor: 32 * MiB, base: 100, want: 100}, // the base reaches the floor
		{live: 20 * MiB, floor: 32 * MiB, base: 100, want: 80},  // room for half the floor
		{live: 32 * MiB, floor: 32 * MiB, base: 100, want: 50},  // room for half the live heap
		{live: 100 * MiB, floor: 32 * MiB, base: 100, want: 50}, // a large heap: many sessions
		{live: 12 * MiB, floor: 32 * MiB, base: 200, want: 166}, // the floor, not base's room
		{live: 1024, floor: 32 * MiB, base: 100, want: maxPercent},
		{live: 0, floor: 32 * MiB, base: 100, want: maxPercent},
		{live: 20 * MiB, floor: 32 * MiB, base: 50, want: 60},
	} {
		if got := percentFor(c.live, c.floor, c.base); got != c.want {
			t.Errorf("percentFor(%d, %d, %d) = %d, want %d", c.live, c.floor, c.base, got, c.want)
		}
	}
}

// unsetGOGC runs the test without GOGC in the environment, restoring it
// after.
func unsetGOGC(t *testing.T) {
	t.Setenv("GOGC", "")
	os.Unsetenv("GOGC")
}

func TestOperatorGOGCWins(t *testing.T) {
	t.Setenv("GOGC", "100")
	if tn := Start(Default); tn != nil {
		tn.Stop()
		t.Fatal("Start ran a tuner although GOGC is set")
	}
	tn := Start(0)
	tn.Stop() // a nil tuner stops without harm
}

// TestRaisesAndLowers: with a small live heap the tuner raises GOGC after
// a collection; with a live heap over the floor it leaves room for half of
// it; Stop restores the base.
func TestRaisesAndLowers(t *testing.T) {
	unsetGOGC(t)
	defer debug.SetGCPercent(debug.SetGCPercent(100))
	tn := Start(64 << 20)
	defer tn.Stop()
	waitPercent(t, tn, func(p int) bool { return p > 200 }, "a raised GOGC with a small live heap")

	big := make([][]byte, 0, 200)
	for range 200 { // 200 MiB live, over the floor
		big = append(big, make([]byte, 1<<20))
	}
	waitPercent(t, tn, func(p int) bool { return p >= 50 && p < 60 }, "GOGC near 50 with a live heap over the floor")
	runtime.KeepAlive(big)

	tn.Stop()
	if p := debug.SetGCPercent(100); p != 100 {
		t.Errorf("GOGC after Stop = %d, want 100", p)
	}
}

func waitPercent(t *testing.T, tn *Tuner, ok func(int) bool, what string) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		runtime.GC() // the tuner runs after a collection, on the cleanup goroutine
		time.Sleep(10 * time.Millisecond)
		if ok(tn.Percent()) {
			return
		}
	}
	t.Fatalf("no %s: GOGC %d", what, tn.Percent())
}
