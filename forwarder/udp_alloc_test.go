package forwarder

import (
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/forwarder/route"
)

// TestUDPDatagramPathDoesNotAllocate: once a session has its socket, a
// datagram from the app costs no allocation and no new routing decision
// (the table caches it per destination), counted in the flow table.
func TestUDPDatagramPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	sink, dst := loopbackUDPSink(t)
	direct := &proxy.Direct{}
	router := &fixedRouter{d: route.Decision{Kind: route.Dial, Dst: route.AddrTarget(dst),
		Upstream: &route.Upstream{Name: "direct", Dialer: direct, Packets: direct}}}
	table := flows.New(flows.Options{})
	defer table.Close()
	f, err := New(Options{Router: router, Flows: table})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	src := netip.MustParseAddrPort("10.0.0.2:4000")
	payload := make([]byte, 60)
	if !f.HandleUDPDatagram(src, dst, payload) {
		t.Fatal("refused")
	}
	sink.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, _, err := sink.ReadFromUDPAddrPort(make([]byte, 128)); err != nil {
		t.Fatalf("the first datagram did not arrive: %v", err)
	}
	if n := testing.AllocsPerRun(1000, func() { f.HandleUDPDatagram(src, dst, payload) }); n != 0 {
		t.Errorf("HandleUDPDatagram allocates %.1f times per datagram; want 0", n)
	}
	// With the device reader flushing (gathered host socket writes): a
	// burst of one datagram, and one of three sent in one system call.
	f.FlushUDP()
	burst := func(n int) func() {
		return func() {
			for range n {
				f.HandleUDPDatagram(src, dst, payload)
			}
			f.FlushUDP()
		}
	}
	for _, n := range []int{1, 3} {
		if a := testing.AllocsPerRun(300, burst(n)); a != 0 {
			t.Errorf("a gathered burst of %d datagrams allocates %.1f times; want 0", n, a)
		}
	}
	router.mu.Lock()
	decided := len(router.flows)
	router.mu.Unlock()
	if decided != 1 {
		t.Errorf("%d routing decisions for one destination; want 1", decided)
	}
	if snap := table.Snapshot(); len(snap) != 1 || packets(snap[0].PacketsUp) < 2200 {
		t.Errorf("flow table %+v; want one flow with every datagram counted", snap)
	}
}

// loopbackUDPSink is a UDP socket on 127.0.0.1 for a test's datagrams,
// closed at the test's end, and its address.
func loopbackUDPSink(t *testing.T) (*net.UDPConn, netip.AddrPort) {
	t.Helper()
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { sink.Close() })
	return sink, sink.LocalAddr().(*net.UDPAddr).AddrPort()
}
