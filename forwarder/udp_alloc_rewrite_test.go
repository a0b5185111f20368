package forwarder

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/forwarder/route"
)

// TestUDPRewrittenPathDoesNotAllocate: a destination the router rewrites
// (an address mapped elsewhere, as run's host loopback; a name behind a
// fake address, resolved once) costs no allocation per datagram either,
// and leaves from the session's one socket.
func TestUDPRewrittenPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	sink, real := loopbackUDPSink(t)
	direct := &proxy.Direct{}
	up := &route.Upstream{Name: "direct", Dialer: direct, Packets: direct}
	for _, tc := range []struct {
		name string
		dst  route.Target
	}{
		{"address", route.AddrTarget(real)},
		{"name", route.Target{Name: "localhost", Port: real.Port(), Fake: netip.MustParseAddr("198.19.0.9")}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			f, err := New(Options{Router: &fixedRouter{d: route.Decision{Kind: route.Dial, Dst: tc.dst, Upstream: up}}})
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			src := netip.MustParseAddrPort("10.0.0.2:4000")
			mapped := netip.MustParseAddrPort("198.19.0.9:7000") // what the app sent to
			payload := make([]byte, 60)
			f.HandleUDPDatagram(src, mapped, payload)
			sink.SetReadDeadline(time.Now().Add(5 * time.Second))
			if _, _, err := sink.ReadFromUDPAddrPort(make([]byte, 128)); err != nil {
				t.Fatalf("the first datagram did not arrive at %v: %v", real, err)
			}
			if n := testing.AllocsPerRun(1000, func() { f.HandleUDPDatagram(src, mapped, payload) }); n != 0 {
				t.Errorf("HandleUDPDatagram allocates %.1f times per datagram; want 0", n)
			}
			if st := f.UDPStats(); st.Mappings != 1 {
				t.Errorf("UDP stats %+v; want one mapping", st)
			}
		})
	}
}
