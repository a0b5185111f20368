package route

import (
	"net/netip"
	"testing"

	"github.com/tungate/tungate/forwarder/proxy"
)

// TestNameDialsRefuseLoopback: with the host-loopback rule on, a flow
// dialed by name carries RefuseLoopback, for the host dialer to check
// what the name resolves to; a flow to an address does not need it.
func TestNameDialsRefuseLoopback(t *testing.T) {
	x := newRouterFixture(t, fixtureRules)
	for _, tc := range []struct {
		dst  string
		want bool
	}{{"198.19.0.7:443", true}, {"10.1.2.3:80", false}} {
		f := &Flow{Proto: TCP, Src: netip.MustParseAddrPort("198.18.0.1:4000"), Dst: netip.MustParseAddrPort(tc.dst)}
		if d := x.r.Decide(f); d.Kind != Dial || d.RefuseLoopback != tc.want {
			t.Errorf("%s: decision %+v, want RefuseLoopback %v", tc.dst, d, tc.want)
		}
	}
}

func TestUpstreamFromHost(t *testing.T) {
	host := &proxy.Direct{}
	direct := &Upstream{Name: "direct", Dialer: host, Packets: host}
	chainUDPDirect := &Upstream{Name: "proxy", Dialer: nopDialer{}, Packets: host, Proxied: true}
	chain := &Upstream{Name: "proxy", Dialer: nopDialer{}, Packets: nopDialer{}, Proxied: true}
	for _, tc := range []struct {
		up       *Upstream
		tcp, udp bool
	}{{direct, true, true}, {chainUDPDirect, false, true}, {chain, false, false}} {
		if tc.up.FromHost(TCP) != tc.tcp || tc.up.FromHost(UDP) != tc.udp || tc.up.FromHost(ICMP) {
			t.Errorf("%+v: FromHost tcp %v udp %v, want %v %v", tc.up, tc.up.FromHost(TCP), tc.up.FromHost(UDP), tc.tcp, tc.udp)
		}
	}
}
