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

// directRouter dials every flow direct, to the address the app sent to.
type directRouter struct{ up *route.Upstream }

func (r directRouter) Decide(f *route.Flow) route.Decision {
	return route.Decision{Kind: route.Dial, Upstream: r.up, Dst: route.AddrTarget(f.Dst)}
}

// udpEchoServer answers every datagram with itself, on loopback.
func udpEchoServer(t *testing.T) netip.AddrPort {
	t.Helper()
	c, err := net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	go func() {
		buf := make([]byte, 2048)
		for {
			n, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort(buf[:n], from)
		}
	}()
	return c.LocalAddr().(*net.UDPAddr).AddrPort()
}

// TestUDPFlowsPerDestinationOnOneSocket: a session's two destinations are
// two flows in the flow table, counted apart, on one host socket; killing
// one ends the session, and both flows are recorded.
func TestUDPFlowsPerDestinationOnOneSocket(t *testing.T) {
	e1, e2 := udpEchoServer(t), udpEchoServer(t)
	direct := &proxy.Direct{}
	recs := make(chan flows.Record, 8)
	table := flows.New(flows.Options{Sink: func(r flows.Record) { recs <- r }})
	t.Cleanup(table.Close)
	app := &refusalRecorder{refused: make(chan netip.AddrPort, 1)}
	f, err := New(Options{UDPApp: app, Flows: table, Router: directRouter{&route.Upstream{Name: "direct", Dialer: direct, Packets: direct}}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	src := netip.MustParseAddrPort("10.0.0.2:4000")
	f.HandleUDPDatagram(src, e1, []byte("one"))
	f.HandleUDPDatagram(src, e2, []byte("two!"))
	f.HandleUDPDatagram(src, e2, []byte("two!"))
	var snap []flows.Info
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if snap = table.Snapshot(); len(snap) == 2 && packets(snap[0].PacketsDown)+packets(snap[1].PacketsDown) == 3 {
			break
		}
	}
	byDst := map[netip.AddrPort]flows.Info{}
	for _, fl := range snap {
		byDst[fl.Dst] = fl
	}
	if a, b := byDst[e1], byDst[e2]; len(snap) != 2 || packets(a.PacketsUp) != 1 || a.BytesUp != 3 || packets(b.PacketsUp) != 2 || packets(b.PacketsDown) != 2 || a.State != "open" {
		t.Fatalf("snapshot %+v", snap)
	}
	if st := f.UDPStats(); st.Sessions != 1 || st.Mappings != 1 {
		t.Fatalf("udp stats %+v; want one session on one socket", st)
	}
	if err := table.Kill(byDst[e1].ID); err != nil {
		t.Fatal(err)
	}
	ends := map[string]int{}
	for range 2 {
		ends[nextRecord(t, recs).End]++
	}
	if ends["killed"] != 1 || ends["closed"] != 1 {
		t.Fatalf("records end %v; want one killed, one closed", ends)
	}
	if n := f.UDPStats().Sessions; n != 0 {
		t.Fatalf("%d sessions after the kill", n)
	}
}

// packets reads a UDP flow's datagram count (nil for TCP).
func packets(n *uint64) uint64 {
	if n == nil {
		return 0
	}
	return *n
}
