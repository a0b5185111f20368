package tunlink

import (
	"sync/atomic"
	"testing"
	"time"
)

// TestBurstEndHookRunsWithinLongBursts: a device that never runs dry
// still gets the burst-end hook every maxBurst packets, so that what the
// hook sends (datagrams gathered for other flows) does not wait for the
// load to stop. The packets are queued before the reader starts, so the
// reader reads them in one burst with no EAGAIN until the last.
func TestBurstEndHookRunsWithinLongBursts(t *testing.T) {
	const total = 4*maxBurst + 10
	ours, peer := socketPair(t)
	pkt := ipv4UDP([]byte("x"))
	for range total {
		writePeer(t, peer, pkt)
	}
	d := &countingDispatcher{target: total, done: make(chan struct{}, 1)}
	var within atomic.Int64 // hook calls before the last packet was delivered
	ep, err := New(Options{FD: ours, MTU: 1500, OnBurstEnd: func() {
		if d.n.Load() < total {
			within.Add(1)
		}
	}})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(ep.Close)
	ep.Attach(d)
	select {
	case <-d.done:
	case <-time.After(5 * time.Second):
		t.Fatalf("%d of %d packets delivered within 5s", d.n.Load(), total)
	}
	if got, want := within.Load(), int64(total/maxBurst); got < want {
		t.Fatalf("burst-end hook ran %d times within a burst of %d packets; want at least %d (one per %d)", got, total, want, maxBurst)
	}
}
