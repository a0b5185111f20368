package publish

import (
	"io"
	"net"
	"net/netip"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/flows"
)

// TestPublishedFlowsInTable: a connection into a published port is an
// inbound flow from the host client, routed "published HOST:PORT", whose
// Up counts what the namespace's app sent; a UDP client's session too,
// with datagrams.
func TestPublishedFlowsInTable(t *testing.T) {
	for _, network := range []string{"tcp", "udp"} {
		t.Run(network, func(t *testing.T) {
			recs := make(chan flows.Record, 4)
			table := flows.New(flows.Options{Sink: func(r flows.Record) { recs <- r }})
			t.Cleanup(table.Close)
			ns := &fakeNamespace{v6: netip.MustParseAddr("fd74:6761:7465::1")}
			host := startFake(t, ns, network, table)
			c, err := net.Dial(network+"4", host.String())
			if err != nil {
				t.Fatal(err)
			}
			c.SetDeadline(time.Now().Add(5 * time.Second))
			if _, err := c.Write([]byte("hello")); err != nil {
				t.Fatal(err)
			}
			if _, err := io.ReadFull(c, make([]byte, 5)); err != nil {
				t.Fatal(err)
			}
			var snap []flows.Info
			for end := time.Now().Add(5 * time.Second); time.Now().Before(end); time.Sleep(time.Millisecond) {
				if snap = table.Snapshot(); len(snap) == 1 && snap[0].BytesUp == 5 {
					break
				}
			}
			local := c.LocalAddr().String()
			if len(snap) != 1 || snap[0].Protocol != network || snap[0].Direction != "inbound" ||
				snap[0].Src.String() != local || snap[0].Route != "published "+host.String() ||
				snap[0].Dst != netip.MustParseAddrPort("198.18.0.1:80") || snap[0].BytesDown != 5 {
				t.Fatalf("snapshot %+v, want an inbound flow from %s", snap, local)
			}
			if err := table.Kill(snap[0].ID); err != nil {
				t.Fatal(err)
			}
			select {
			case r := <-recs:
				if r.End != "killed" || r.BytesUp != 5 || (network == "udp") != (r.PacketsUp != nil) {
					t.Errorf("record %+v", r)
				}
			case <-time.After(5 * time.Second):
				t.Fatal("no record after the kill")
			}
			c.Close()
		})
	}
}
