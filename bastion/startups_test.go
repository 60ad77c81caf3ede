package bastion

import (
	"fmt"
	"net"
	"testing"
)

// TestStartupSource counts an IPv4 client by its address and an IPv6 one
// by its /64, which one host can fill with addresses of its own.
func TestStartupSource(t *testing.T) {
	for _, tc := range []struct {
		addr net.Addr
		want string
	}{
		{&net.TCPAddr{IP: net.ParseIP("192.0.2.7"), Port: 40000}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("::ffff:192.0.2.7"), Port: 40001}, "192.0.2.7"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:aaaa::1"), Port: 22}, "2001:db8:1:2::/64"},
		{&net.TCPAddr{IP: net.ParseIP("2001:db8:1:2:ffff::9"), Port: 23}, "2001:db8:1:2::/64"},
		{&net.UnixAddr{Name: "/run/x.sock", Net: "unix"}, "/run/x.sock"},
	} {
		if got := startupSource(tc.addr); got != tc.want {
			t.Errorf("%v: got %q, want %q", tc.addr, got, tc.want)
		}
	}
}

// TestStartupsShare: a source gets a quarter of the slots, the listener
// all of them, and a release gives a slot back to both. When every slot
// is taken, a source holding fewer than the heaviest takes the heaviest
// source's oldest slot (its connection closed, its release then a no-op);
// a source holding as many as any other is refused.
func TestStartupsShare(t *testing.T) {
	st := newStartups(8)
	ip := func(last byte) *net.TCPAddr { return &net.TCPAddr{IP: net.IPv4(192, 0, 2, last)} }
	closed := map[string]bool{}
	take := func(addr *net.TCPAddr, name string) (func(), bool, bool, string) {
		return st.take(addr, func() { closed[name] = true })
	}
	a := ip(1)
	var rel []func()
	for i := range 2 {
		r, ok, _, ev := take(a, fmt.Sprint("a", i))
		if !ok || ev != "" {
			t.Fatalf("slot %d of the source's 2: ok %v, evicted %q", i, ok, ev)
		}
		rel = append(rel, r)
	}
	if _, ok, per, _ := take(a, "a2"); ok || !per {
		t.Fatalf("a third slot for one source: ok %v, per source %v", ok, per)
	}
	var others []func()
	for i := range 6 { // three sources of two: the listener is full
		r, ok, _, ev := take(ip(byte(10+i/2)), fmt.Sprint("b", i))
		if !ok || ev != "" {
			t.Fatalf("slot %d of 8: ok %v, evicted %q", 3+i, ok, ev)
		}
		others = append(others, r)
	}
	// Full, and every source holds two: a new source holding none takes
	// the oldest slot of all (a's first), whose connection is closed.
	r9, ok, per, ev := take(ip(99), "new")
	if !ok || per || ev != "192.0.2.1" || !closed["a0"] || len(closed) != 1 {
		t.Fatalf("a ninth connection from a new source: ok %v, per source %v, evicted %q, closed %v", ok, per, ev, closed)
	}
	rel[0]() // the closed connection's release: its slot is no longer its own
	if st.n != 8 || len(st.bySource["192.0.2.1"]) != 1 {
		t.Fatalf("after the taken slot's release: %d slots, a holds %d", st.n, len(st.bySource["192.0.2.1"]))
	}
	// Next: 192.0.2.10 holds two and its first is now the oldest of the heaviest.
	if _, ok, _, ev := take(ip(99), "new2"); !ok || ev != "192.0.2.10" || !closed["b0"] {
		t.Fatalf("a second one from the new source: ok %v, evicted %q, closed %v", ok, ev, closed)
	}
	// Now 192.0.2.99 holds its share of two: refused as such.
	if _, ok, per, ev := take(ip(99), "new3"); ok || !per || ev != "" {
		t.Fatalf("a third from the new source: ok %v, per source %v, evicted %q", ok, per, ev)
	}
	// A release gives a slot back: the next one needs no eviction.
	r9()
	if _, ok, _, ev := take(ip(50), "c"); !ok || ev != "" {
		t.Fatalf("after a release: ok %v, evicted %q", ok, ev)
	}
	for _, r := range others {
		r()
	}
	if st.n != 3 {
		t.Fatalf("%d slots held, want 3 (a1, new2, c)", st.n)
	}

	// Twelve slots, three a source, six sources holding two each: one more
	// from any of them holds as many as the heaviest would after, and is
	// refused as full, with nothing closed.
	st = newStartups(12)
	clear(closed)
	for i := range 12 {
		if _, ok, _, _ := take(ip(byte(20+i/2)), "d"); !ok {
			t.Fatalf("slot %d of 12 refused", i)
		}
	}
	if _, ok, per, ev := take(ip(20), "e"); ok || per || ev != "" || len(closed) != 0 {
		t.Fatalf("one more from a source as heavy as any: ok %v, per source %v, evicted %q, closed %v", ok, per, ev, closed)
	}
}
