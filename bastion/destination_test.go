package bastion

import (
	"net"
	"strings"
	"testing"
)

// A target's name that resolves to one of the bastion host's own addresses
// reaches the host's services as loopback would (everything bound to all
// interfaces, past a firewall that trusts local traffic): it is refused
// like loopback unless the address is written literally.
func TestNameResolvingToOwnAddressRefused(t *testing.T) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	var own net.IP
	for _, a := range addrs {
		if n, ok := a.(*net.IPNet); ok && !n.IP.IsLoopback() && !n.IP.IsLinkLocalUnicast() {
			own = n.IP
			break
		}
	}
	if own == nil {
		t.Skip("no non-loopback interface address")
	}
	s := &Server{}
	err = s.checkDestination(own, 5432, false)
	if err == nil || !strings.Contains(err.Error(), "this host's own address") {
		t.Fatalf("a name resolving to %s (this host) was allowed: %v", own, err)
	}
	if err := s.checkDestination(own, 5432, true); err != nil {
		t.Fatalf("%s written literally: %v", own, err)
	}
}
