package bastion

import (
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
// all of them, and a release gives a slot back to both.
func TestStartupsShare(t *testing.T) {
	st := newStartups(8)
	a := &net.TCPAddr{IP: net.ParseIP("192.0.2.1")}
	var rel []func()
	for i := range 2 {
		r, ok, _ := st.take(a)
		if !ok {
			t.Fatalf("slot %d of the source's 2 refused", i)
		}
		rel = append(rel, r)
	}
	if _, ok, per := st.take(a); ok || !per {
		t.Fatalf("a third slot for one source: ok %v, per source %v", ok, per)
	}
	for i := range 6 {
		if _, ok, _ := st.take(&net.TCPAddr{IP: net.IPv4(192, 0, 2, byte(10+i/2))}); !ok {
			t.Fatalf("slot %d of 8 refused", 3+i)
		}
	}
	if _, ok, per := st.take(&net.TCPAddr{IP: net.ParseIP("192.0.2.99")}); ok || per {
		t.Fatalf("a ninth slot: ok %v, per source %v; want refused as full", ok, per)
	}
	rel[0]()
	if _, ok, _ := st.take(a); !ok {
		t.Fatal("a released slot was not given back to its source")
	}
	if len(st.bySource) != 4 {
		t.Fatalf("%d sources counted, want 4", len(st.bySource))
	}
}
