package udpnat

import (
	"testing"
	"time"
)

// TestBatchedReadsDeliverEveryDatagramWhole: a burst from the upstream,
// read recvBatchSize at a time, reaches the app whole, in order, from its
// source, with a datagram of nearly 64 KiB among small ones.
func TestBatchedReadsDeliverEveryDatagramWhole(t *testing.T) {
	tab, app := hostTable(t, Options{})
	peer, dst := gatherSink(t)
	if err := tab.Send(app1, dst, []byte("open")); err != nil {
		t.Fatal(err)
	}
	peer.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, mapped, err := peer.ReadFromUDPAddrPort(make([]byte, 16))
	if err != nil {
		t.Fatal(err)
	}
	sizes := make([]int, 3*recvBatchSize)
	for i := range sizes {
		sizes[i] = 100 + i
	}
	sizes[recvBatchSize+1] = 60000
	for i, n := range sizes {
		if _, err := peer.WriteToUDPAddrPort(datagram(i, n), mapped); err != nil {
			t.Fatal(err)
		}
	}
	for i, n := range sizes {
		select {
		case d := <-app.got:
			if d.src != dst || d.dst != app1 || d.data != string(datagram(i, n)) {
				t.Fatalf("delivery %d: %v -> %v, %d bytes; want %v -> %v, %d bytes of datagram %d",
					i, d.src, d.dst, len(d.data), dst, app1, n, i)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("delivery %d of %d did not come", i, len(sizes))
		}
	}
}
