// Package gcfloor shapes the garbage collector's heap goal to the bastion's
// two regimes: a small live heap under bursts of requests, and a large live
// heap of many open sessions.
//
// Go's default, GOGC=100, starts a collection when the heap has grown by as
// much as was live after the previous one. A bastion's live heap is small
// while few sessions are open (a few MiB), yet a burst of certificate
// requests or SQL statements allocates tens of MB a second, so it collects
// many times a second and each collection takes a CPU from the requests for
// its mark phase. A floor raises GOGC while the live heap is small, so that
// a collection waits until the heap reaches about Floor bytes; a quiet
// process holds up to the floor in garbage until the next collection or the
// runtime's forced one.
//
// Once the live heap is past half the floor it is mostly open sessions
// (each holds its connections' buffers, cipher states and goroutines), and
// GOGC=100 would let the heap grow by all of it again before a collection:
// a thousand idle sessions held about 140 KiB each, half of it room for
// garbage. There the tuner gives the heap half the live heap as room (but
// never less than half the floor), GOGC 50 for a large heap. A collection's
// CPU grows with the live heap and collections come as often as the room
// fills, so the GC's share of the CPU grows with the allocation rate over the
// room: twice Go's default for a busy bastion with a large heap, next to
// nothing for idle sessions, which allocate next to nothing.
//
// The operator's GOGC wins: Start does nothing when GOGC is set in the
// environment (any value, "off" included); GOGC=100 runs Go's default.
package gcfloor

import (
	"math"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"sync"
)

// Default is the floor the bastion runs with. Measured with `make bench`'s
// issuance row (live heap 3-5 MiB): main collected 25-30 times a second,
// with 32 MiB about 8 times, at about 15% less CPU per certificate. A floor of
// 64 MiB gained no more there, and cost the idle-sessions row 15-25 KiB per
// session (a thousand sessions opened in a few seconds interleave with the
// garbage of their handshakes when collections are that far apart); 32 MiB
// stayed within that row's noise.
const Default = 32 << 20

// maxPercent bounds the GOGC the tuner sets (a live heap of under
// Floor/maxPercent*100 bytes gets this); the runtime takes larger values, but
// nothing is gained beyond it.
const maxPercent = 5000

// Tuner adjusts GOGC after every collection.
type Tuner struct {
	floor uint64
	base  int

	mu      sync.Mutex
	stopped bool
	current int
	sample  []metrics.Sample
}

// Start starts a tuner with the given floor in bytes, unless GOGC is set in
// the environment; it returns nil then. Stop it with Stop.
func Start(floor uint64) *Tuner {
	if _, set := os.LookupEnv("GOGC"); set || floor == 0 {
		return nil
	}
	t := &Tuner{floor: floor, base: 100, current: 100,
		sample: []metrics.Sample{{Name: "/gc/heap/live:bytes"}}}
	t.tune()
	t.arm()
	return t
}

// Stop stops adjusting and gives GOGC its base value back.
func (t *Tuner) Stop() {
	if t == nil {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	t.stopped = true
	debug.SetGCPercent(t.base)
}

// Percent returns the GOGC the tuner set last.
func (t *Tuner) Percent() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.current
}

// sentinel is an object whose only use is to become garbage: its cleanup
// runs after the collection that finds it, which is the tuner's cue. It has a
// pointer so that it is not tiny-allocated beside other objects, which
// could keep it alive.
type sentinel struct{ _ *byte }

func (t *Tuner) arm() {
	runtime.AddCleanup(new(sentinel), func(t *Tuner) {
		t.tune()
		t.mu.Lock()
		stopped := t.stopped
		t.mu.Unlock()
		if !stopped {
			t.arm()
		}
	}, t)
}

// tune sets GOGC from the live heap the last collection measured.
func (t *Tuner) tune() {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.stopped {
		return
	}
	metrics.Read(t.sample)
	live := uint64(0)
	if t.sample[0].Value.Kind() == metrics.KindUint64 {
		live = t.sample[0].Value.Uint64()
	}
	if live == 0 {
		live = 4 << 20 // before the first collection: the runtime's minimum heap
	}
	p := percentFor(live, t.floor, t.base)
	// Small moves are not worth a change of pace: within an eighth of the
	// current value, keep it.
	if d := p - t.current; d > t.current/8 || -d > t.current/8 || (p == t.base && t.current != t.base) {
		debug.SetGCPercent(p)
		t.current = p
	}
}

// percentFor returns the GOGC for a live heap of live bytes, as the room it
// leaves for garbage: base's room (live*base/100) but no more than half the
// live heap or half the floor, whichever is larger; and at least enough to
// reach the floor.
func percentFor(live, floor uint64, base int) int {
	if live == 0 {
		return maxPercent
	}
	l := float64(live)
	room := l * float64(base) / 100
	room = math.Min(room, math.Max(float64(floor)/2, l/2))
	room = math.Max(room, float64(floor)-l)
	p := room / l * 100
	return int(math.Min(math.Max(p, 1), maxPercent))
}
