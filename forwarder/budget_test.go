package forwarder

import (
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/admission"
	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/forwarder/route"
	"github.com/tungate/tungate/forwarder/udpnat"
)

// TestOneBudgetForTCPAndUDP: with MaxFlows 3, two UDP sessions and one TCP
// connection fill the budget; a third session is refused (ICMP) and a
// second connection reset while the sessions are busy; once they have
// been idle for udpnat.DefaultEvictIdle a connection takes the least
// recently used one's place. When everything ends, the gate holds nothing.
func TestOneBudgetForTCPAndUDP(t *testing.T) {
	sink, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer sink.Close()
	dst := sink.LocalAddr().(*net.UDPAddr).AddrPort()
	d := &fakeDialer{far: make(chan net.Conn, 16)}
	up := &route.Upstream{Name: "direct", Dialer: d, Packets: &proxy.Direct{}}
	f, err := New(Options{
		Router: &fixedRouter{d: route.Decision{Kind: route.Dial, Upstream: up, Dst: route.AddrTarget(dst)}},
		Limits: admission.Limits{MaxFlows: 3},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	udp := func(port uint16) bool {
		return f.HandleUDPDatagram(netip.AddrPortFrom(netip.MustParseAddr("198.18.0.1"), port), dst, []byte("x"))
	}
	tcp := func() string {
		r := newFakeRequest(dst.String())
		go f.HandleTCP(r) // an accepted flow runs on it until it ends
		got := r.wait(t, 1)[0]
		if r.peer != nil {
			t.Cleanup(func() { r.peer.Close() })
		}
		return got
	}
	if !udp(1) || !udp(2) {
		t.Fatal("UDP sessions refused within the budget")
	}
	if got := tcp(); got != "accept" {
		t.Fatalf("TCP within the budget: %s", got)
	}
	if u := f.Usage(); u.Flows != 3 || u.UDPSessions != 2 {
		t.Fatalf("usage %+v; want 3 flows, 2 of them UDP", u)
	}
	if udp(3) {
		t.Fatal("a third UDP session with the budget full of busy flows was not refused")
	}
	if got := tcp(); got != "refuse" {
		t.Fatalf("TCP with the budget full of busy flows: %s; want refuse", got)
	}
	if r := f.Refused(); r["max_flows"] != 2 {
		t.Fatalf("refusals %v; want max_flows 2", r)
	}
	time.Sleep(udpnat.DefaultEvictIdle + 100*time.Millisecond)
	if got := tcp(); got != "accept" {
		t.Fatalf("TCP with idle UDP sessions to evict: %s; want accept", got)
	}
	if st := f.UDPStats(); st.Evicted != 1 || st.Sessions != 1 {
		t.Fatalf("UDP stats %+v; want 1 evicted, 1 left", st)
	}
	if !udp(4) {
		t.Fatal("a UDP session with an idle one to evict was refused")
	}
	if u := f.Usage(); u.Flows != 3 || u.UDPSessions != 1 || u.Sockets != 3 {
		t.Fatalf("usage %+v; want 3 flows, 1 UDP, 3 sockets", u)
	}
	f.Close()
	if u := f.Usage(); u != (admission.Usage{}) {
		t.Fatalf("usage after Close: %+v; want nothing held", u)
	}
	if !strings.Contains(strings.Join(keys(f.Refused()), ","), "max_flows") {
		t.Fatal("refusals lost")
	}
}

func keys(m map[string]uint64) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestRefusedUDPSessionDoesNotAllocate: a flood of new sessions past the
// budget is refused (ICMP port unreachable) at no allocation per datagram.
func TestRefusedUDPSessionDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	direct := &proxy.Direct{}
	dst := netip.MustParseAddrPort("127.0.0.1:9")
	f, err := New(Options{
		Router: &fixedRouter{d: route.Decision{Kind: route.Dial, Dst: route.AddrTarget(dst),
			Upstream: &route.Upstream{Name: "direct", Dialer: direct, Packets: direct}}},
		Limits: admission.Limits{MaxFlows: 1},
	})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	busy, flood := netip.MustParseAddrPort("10.0.0.2:1"), netip.MustParseAddrPort("10.0.0.2:2")
	payload := make([]byte, 60)
	if !f.HandleUDPDatagram(busy, dst, payload) || f.HandleUDPDatagram(flood, dst, payload) {
		t.Fatal("want the first session admitted, the second refused")
	}
	if n := testing.AllocsPerRun(1000, func() { f.HandleUDPDatagram(flood, dst, payload) }); n != 0 {
		t.Errorf("a refused new session allocates %.1f times per datagram; want 0", n)
	}
	if got := f.Refused()["max_flows"]; got < 1000 {
		t.Errorf("%d refusals counted; want every datagram", got)
	}
}
