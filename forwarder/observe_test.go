package forwarder

import (
	"errors"
	"io"
	"net"
	"net/netip"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/forwarder/route"
)

// tableForwarder is a forwarder with a flow table whose records go to the
// returned channel.
func tableForwarder(t *testing.T, d route.Decision, unreachable func(netip.AddrPort) bool) (*Forwarder, *flows.Table, chan flows.Record) {
	t.Helper()
	recs := make(chan flows.Record, 8)
	table := flows.New(flows.Options{Sink: func(r flows.Record) { recs <- r }})
	t.Cleanup(table.Close)
	f, err := New(Options{Router: &fixedRouter{d: d}, Flows: table, Unreachable: unreachable})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, table, recs
}

func nextRecord(t *testing.T, recs chan flows.Record) flows.Record {
	t.Helper()
	select {
	case r := <-recs:
		return r
	case <-time.After(5 * time.Second):
		t.Fatal("no flow record")
	}
	return flows.Record{}
}

func TestTableCountsTCPFlowAndKill(t *testing.T) {
	d := &fakeDialer{far: make(chan net.Conn, 1)}
	dst := netip.MustParseAddrPort("10.0.0.1:80")
	f, table, recs := tableForwarder(t, route.Decision{Kind: route.Dial, Upstream: &route.Upstream{Name: "direct", Dialer: d}, Dst: route.AddrTarget(dst)}, nil)
	r := newFakeRequest(dst.String())
	go f.HandleTCP(r) // an accepted flow runs on it until it ends
	far := <-d.far
	r.wait(t, 1)
	go r.peer.Write([]byte("hello"))
	if _, err := io.ReadFull(far, make([]byte, 5)); err != nil {
		t.Fatal(err)
	}
	go far.Write([]byte("world!!"))
	if _, err := io.ReadFull(r.peer, make([]byte, 7)); err != nil {
		t.Fatal(err)
	}
	// The relay counts a chunk once its write returned, which may be
	// after the reader has it.
	var snap []flows.Info
	for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
		if snap = table.Snapshot(); len(snap) == 1 && snap[0].BytesDown == 7 {
			break
		}
	}
	if len(snap) != 1 || snap[0].State != "open" || snap[0].BytesUp != 5 || snap[0].Dst != dst || snap[0].Route != "direct" {
		t.Fatalf("snapshot %+v", snap)
	}
	if err := table.Kill(snap[0].ID); err != nil {
		t.Fatal(err)
	}
	rec := nextRecord(t, recs)
	if rec.End != "killed" || rec.BytesUp != 5 || rec.BytesDown != 7 || rec.Protocol != "tcp" {
		t.Errorf("record %+v", rec)
	}
	if tt := table.Totals(); tt.Opened[flows.TCP][flows.Relayed] != 1 || tt.DialLatency["direct"].Count != 1 {
		t.Errorf("totals %+v", tt)
	}
}

func TestTableRecordsRefusalsAndFailedDials(t *testing.T) {
	dst := netip.MustParseAddrPort("10.0.0.1:80")
	f, table, recs := tableForwarder(t, route.Decision{Kind: route.Refuse, Builtin: "no-udp"}, nil)
	if f.HandleUDPDatagram(netip.MustParseAddrPort("10.0.0.2:4000"), dst, []byte("q")) {
		t.Error("a refused datagram was taken; want ICMP port unreachable")
	}
	if rec := nextRecord(t, recs); rec.End != "blocked" || rec.Protocol != "udp" {
		t.Errorf("refused flow: %+v", rec)
	}
	if table.Totals().Opened[flows.UDP][flows.Blocked] != 1 {
		t.Error("blocked flow not counted")
	}

	up := &route.Upstream{Name: "direct", Dialer: &fakeDialer{err: &net.OpError{Op: "dial", Err: syscall.ECONNREFUSED}}}
	f, table, recs = tableForwarder(t, route.Decision{Kind: route.Dial, Upstream: up, Dst: route.AddrTarget(dst)}, nil)
	r := newFakeRequest(dst.String())
	f.HandleTCP(r)
	r.wait(t, 1)
	if rec := nextRecord(t, recs); rec.End != "dial_refused" {
		t.Errorf("refused dial: %+v", rec)
	}
	if table.Totals().Opened[flows.TCP][flows.Refused] != 1 {
		t.Error("refused dial not counted")
	}
}

func TestUnreachableIsRefusedBeforeDialing(t *testing.T) {
	api := netip.MustParseAddrPort("127.0.0.1:9467")
	d := &fakeDialer{err: errors.New("must not dial")}
	f, _, recs := tableForwarder(t, route.Decision{Kind: route.Dial, Upstream: &route.Upstream{Name: "host-loopback", Dialer: d}, Dst: route.AddrTarget(api)},
		func(dst netip.AddrPort) bool { return dst == api })
	r := newFakeRequest("198.18.0.3:9467")
	f.HandleTCP(r)
	if got := r.wait(t, 1); got[0] != "refuse" || len(d.dials) != 0 {
		t.Fatalf("events %v, dials %v; want a refusal without a dial", got, d.dials)
	}
	if rec := nextRecord(t, recs); rec.End != "blocked" {
		t.Errorf("record %+v", rec)
	}
}

// named is a dialer that prints as a chain's hops do.
type named struct{ *fakeDialer }

func (named) String() string { return "socks5://bob@p:1080" }

func TestRouteText(t *testing.T) {
	chain := &route.Upstream{Name: "proxy", Dialer: named{&fakeDialer{}}, Packets: &fakeDialer{}, Proxied: true}
	rule := &route.Rule{Text: "domain:example.com=proxy"}
	for _, tc := range []struct {
		d     route.Decision
		proto route.Proto
		want  string
	}{
		{route.Decision{Kind: route.Dial, Upstream: &route.Upstream{Name: "direct", Dialer: &fakeDialer{}}, Builtin: "default"}, route.TCP, "direct"},
		{route.Decision{Kind: route.Dial, Upstream: chain, Rule: rule}, route.TCP, "proxy socks5://bob@p:1080 (rule domain:example.com=proxy)"},
		{route.Decision{Kind: route.Dial, Upstream: chain, Builtin: "default"}, route.UDP, "proxy (udp direct)"},
		{route.Decision{Kind: route.Answer, Builtin: "fake-dns"}, route.UDP, "in-process (fake-dns)"},
	} {
		if got := routeText(tc.d, tc.proto); got != tc.want {
			t.Errorf("routeText = %q, want %q", got, tc.want)
		}
	}
}
