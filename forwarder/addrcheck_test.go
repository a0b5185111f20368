package forwarder

import (
	"net"
	"net/netip"
	"testing"

	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/forwarder/route"
)

// TestNameResolvingToAPIIsRefused: a flow dialed direct by a name that
// the host resolves to tungate's API listener ("localhost") is refused
// at connect time, counted and logged as blocked, as a flow to the
// address would be.
func TestNameResolvingToAPIIsRefused(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	api := ln.Addr().(*net.TCPAddr).AddrPort()
	host := &proxy.Direct{}
	d := route.Decision{Kind: route.Dial, Upstream: &route.Upstream{Name: "direct", Dialer: host, Packets: host},
		Dst: route.NameTarget("localhost", api.Port())}
	f, table, recs := tableForwarder(t, d, func(dst netip.AddrPort) bool { return dst == api })
	r := newFakeRequest(netip.AddrPortFrom(netip.MustParseAddr("198.19.0.5"), api.Port()).String())
	f.HandleTCP(r)
	if got := r.wait(t, 1); got[0] != "refuse" {
		t.Fatalf("events %v, want a refusal", got)
	}
	if rec := nextRecord(t, recs); rec.End != "blocked" {
		t.Errorf("record %+v", rec)
	}
	if table.Totals().Opened[flows.TCP][flows.Blocked] != 1 {
		t.Error("refused name not counted as blocked")
	}
}
