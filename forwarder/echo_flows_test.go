package forwarder

import (
	"net/netip"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/forwarder/route"
	"github.com/tungate/tungate/stack/flow"
)

// echoTableForwarder is a forwarder that carries echo as d says, through
// fake sockets that answer at once, into a flow table whose records go to
// the returned channel; echo sessions idle out after 100 ms.
func echoTableForwarder(t *testing.T, d route.Decision) (*Forwarder, *flows.Table, chan flows.Record) {
	t.Helper()
	recs := make(chan flows.Record, 8)
	table := flows.New(flows.Options{Sink: func(r flows.Record) { recs <- r }})
	t.Cleanup(table.Close)
	f, err := New(Options{Router: &fixedRouter{d: d}, Echo: &fakeEcho{}, Flows: table, UDPTimeout: 100 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f, table, recs
}

func TestEchoFlowCountedAndIdledOut(t *testing.T) {
	up := &route.Upstream{Name: "direct", Dialer: &fakeDialer{}, Echo: true}
	f, table, recs := echoTableForwarder(t, route.Decision{Kind: route.Dial, Upstream: up, Builtin: "default"})
	src, dst := netip.MustParseAddr("198.18.0.1"), netip.MustParseAddr("10.0.0.1")
	rep := make(replies, 2)
	for seq := range uint16(2) {
		f.HandleEcho(&flow.EchoRequest{Src: src, Dst: dst, ID: 7, Seq: seq, Payload: []byte("ping!"), Replier: rep})
		<-rep
	}
	snap := table.Snapshot()
	if len(snap) != 1 || snap[0].Protocol != "icmp" || snap[0].Src != netip.AddrPortFrom(src, 7) ||
		snap[0].Dst != netip.AddrPortFrom(dst, 0) || snap[0].Route != "direct" || snap[0].State != "open" {
		t.Fatalf("snapshot %+v", snap)
	}
	if tt := table.Totals(); tt.Opened[flows.ICMP][flows.Relayed] != 1 || tt.Open[flows.ICMP] != 1 {
		t.Errorf("totals %+v", tt)
	}
	rec := nextRecord(t, recs)
	if rec.End != "idle" || rec.BytesUp != 10 || rec.BytesDown != 8 || *rec.PacketsUp != 2 || *rec.PacketsDown != 2 {
		t.Errorf("record %+v", rec)
	}
	if tt := table.Totals(); tt.Open[flows.ICMP] != 0 || tt.Packets[flows.ICMP] != [2]uint64{2, 2} {
		t.Errorf("totals after the end %+v", tt)
	}
}

func TestEchoRefusedIsBlocked(t *testing.T) {
	f, table, recs := echoTableForwarder(t, route.Decision{Kind: route.Refuse, Builtin: "no-icmp"})
	f.HandleEcho(&flow.EchoRequest{Src: netip.MustParseAddr("198.18.0.1"), Dst: netip.MustParseAddr("10.0.0.1"), ID: 7, Replier: make(replies, 1)})
	if rec := nextRecord(t, recs); rec.End != "blocked" || rec.Protocol != "icmp" || rec.Route != "refuse (no-icmp)" {
		t.Errorf("record %+v", rec)
	}
	if table.Totals().Opened[flows.ICMP][flows.Blocked] != 1 {
		t.Error("blocked echo not counted")
	}
}
