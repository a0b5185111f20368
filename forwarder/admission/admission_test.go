package admission

import (
	"net/netip"
	"sync"
	"testing"
	"time"
)

var (
	app1 = netip.MustParseAddr("10.0.0.1")
	app2 = netip.MustParseAddr("10.0.0.2")
)

func dst(s string) netip.Addr { return netip.MustParseAddr(s) }

func newGate(t *testing.T, l Limits) *Gate {
	t.Helper()
	g, err := New(l)
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func mustDial(t *testing.T, g *Gate, src, d netip.Addr) *Ticket {
	t.Helper()
	tk, r := g.Dial(src, d, Ordinary)
	if tk == nil {
		t.Fatalf("Dial(%v, %v) refused: %v", src, d, r)
	}
	return tk
}

func TestDefaults(t *testing.T) {
	g := newGate(t, Limits{MaxPending: 100})
	l := g.Limits()
	if l.MaxFlows != DefaultMaxFlows || l.PendingPerDst != 12 || l.PendingPerSrc != 25 || l.Reserve != DefaultReserve {
		t.Fatalf("defaults: %+v", l)
	}
	if _, err := New(Limits{MaxFlows: -1}); err == nil {
		t.Fatal("negative limit accepted")
	}
}

func TestDestinationShare(t *testing.T) {
	g := newGate(t, Limits{MaxPending: 16, PendingPerDst: 2, PendingPerSrc: 16})
	a := mustDial(t, g, app1, dst("192.0.2.1"))
	mustDial(t, g, app1, dst("192.0.2.200")) // same /24
	if tk, r := g.Dial(app2, dst("192.0.2.7"), Ordinary); tk != nil || r != Destination {
		t.Fatalf("third dial to one /24: %v, want refused for %v", r, Destination)
	}
	mustDial(t, g, app1, dst("192.0.3.1")) // another /24 is not starved
	a.Done()
	mustDial(t, g, app2, dst("192.0.2.7"))
	if got := g.Refused()["pending_per_dst"]; got != 1 {
		t.Fatalf("refused pending_per_dst = %d, want 1", got)
	}
}

func TestDestinationShareIPv6(t *testing.T) {
	g := newGate(t, Limits{MaxPending: 16, PendingPerDst: 1, PendingPerSrc: 16})
	mustDial(t, g, app1, dst("2001:db8:0:1::1"))
	if tk, _ := g.Dial(app1, dst("2001:db8:0:1:ffff::2"), Ordinary); tk != nil {
		t.Fatal("second dial to one /64 admitted")
	}
	mustDial(t, g, app1, dst("2001:db8:0:2::1"))
	// IPv4-mapped addresses share their IPv4 /24.
	mustDial(t, g, app1, dst("198.51.100.1"))
	if tk, _ := g.Dial(app1, dst("::ffff:198.51.100.9"), Ordinary); tk != nil {
		t.Fatal("IPv4-mapped address escaped its /24's share")
	}
}

func TestSourceShareAndPending(t *testing.T) {
	g := newGate(t, Limits{MaxPending: 3, PendingPerDst: 3, PendingPerSrc: 2})
	mustDial(t, g, app1, dst("192.0.2.1"))
	mustDial(t, g, app1, dst("192.0.3.1"))
	if _, r := g.Dial(app1, dst("192.0.4.1"), Ordinary); r != Source {
		t.Fatalf("third dial from one source: %v, want %v", r, Source)
	}
	mustDial(t, g, app2, dst("192.0.4.1"))
	if _, r := g.Dial(app2, dst("192.0.5.1"), Ordinary); r != Pending {
		t.Fatalf("dial past MaxPending: %v, want %v", r, Pending)
	}
}

func TestFlowsAndReserve(t *testing.T) {
	g := newGate(t, Limits{MaxFlows: 2, Reserve: 1, MaxPending: 8})
	a := mustDial(t, g, app1, dst("192.0.2.1"))
	a.Done() // established: still a flow, no longer pending
	if u := g.Usage(); u.Flows != 1 || u.Pending != 0 {
		t.Fatalf("usage after Done: %+v", u)
	}
	s, _ := g.Session(Ordinary, nil)
	if s == nil {
		t.Fatal("session refused below MaxFlows")
	}
	if _, r := g.Dial(app1, dst("192.0.3.1"), Ordinary); r != Flows {
		t.Fatalf("dial at MaxFlows: %v, want %v", r, Flows)
	}
	if _, r := g.Session(Ordinary, nil); r != Flows {
		t.Fatalf("session at MaxFlows: %v, want %v", r, Flows)
	}
	dns, _ := g.Session(Reserved, nil)
	if dns == nil {
		t.Fatal("reserved flow refused within the reserve")
	}
	if _, r := g.Session(Reserved, nil); r != Flows {
		t.Fatalf("reserved flow past the reserve: %v", r)
	}
	s.Release()
	s.Release() // idempotent
	if u := g.Usage(); u.Flows != 2 {
		t.Fatalf("flows after one release: %d, want 2", u.Flows)
	}
	a.Release()
	dns.Release()
	a.Done()
	if u := g.Usage(); u != (Usage{}) {
		t.Fatalf("usage after all released: %+v", u)
	}
	if len(g.perDst) != 0 || len(g.perSrc) != 0 {
		t.Fatalf("share maps keep keys: %v %v", g.perDst, g.perSrc)
	}
}

func TestFDFlows(t *testing.T) {
	g := newGate(t, Limits{MaxFlows: 100, FDFlows: 1, Reserve: 1})
	mustDial(t, g, app1, dst("192.0.2.1"))
	if _, r := g.Dial(app1, dst("192.0.3.1"), Ordinary); r != FDs {
		t.Fatalf("dial at FDFlows: %v, want %v", r, FDs)
	}
	tk, _ := g.Session(Reserved, nil)
	if tk == nil {
		t.Fatal("DNS session refused at the fd limit")
	}
	if r := tk.AddSocket(Reserved, nil); r != Admitted {
		t.Fatalf("DNS socket refused within the reserve at the fd limit: %v", r)
	}
	if r := tk.AddSocket(Reserved, nil); r != FDs {
		t.Fatalf("DNS socket past the reserve: %v, want %v", r, FDs)
	}
	if n := FlowsForFDs(200, 20, 64); n != 116 {
		t.Fatalf("FlowsForFDs(200, 20, 64) = %d", n)
	}
	if n := FlowsForFDs(50, 20, 64); n != 1 {
		t.Fatalf("FlowsForFDs below zero = %d, want 1", n)
	}
}

func TestClose(t *testing.T) {
	g := newGate(t, Limits{})
	tk := mustDial(t, g, app1, dst("192.0.2.1"))
	g.Close()
	if _, r := g.Dial(app1, dst("192.0.3.1"), Reserved); r != Closed {
		t.Fatalf("dial after Close: %v", r)
	}
	if _, r := g.Session(Reserved, nil); r != Closed {
		t.Fatalf("session after Close: %v", r)
	}
	tk.Release()
	if u := g.Usage(); u != (Usage{}) {
		t.Fatalf("usage: %+v", u)
	}
}

// TestConcurrent holds the caps under many goroutines (run with -race).
func TestConcurrent(t *testing.T) {
	g := newGate(t, Limits{MaxFlows: 50, MaxPending: 20, PendingPerDst: 5, PendingPerSrc: 10})
	var wg sync.WaitGroup
	for i := range 64 {
		wg.Go(func() {
			src := netip.AddrFrom4([4]byte{10, 0, 0, byte(i % 4)})
			for j := range 200 {
				d := netip.AddrFrom4([4]byte{192, 0, byte(j % 7), 1})
				tk, _ := g.Dial(src, d, Ordinary)
				if tk == nil {
					continue
				}
				if u := g.Usage(); u.Pending > 20 || u.Flows > 50 {
					t.Errorf("caps exceeded: %+v", u)
				}
				tk.Done()
				tk.Release()
			}
		})
	}
	wg.Wait()
	if u := g.Usage(); u != (Usage{}) {
		t.Fatalf("usage after all released: %+v", u)
	}
}

func TestThrottle(t *testing.T) {
	var th Throttle
	t0 := time.Unix(1000, 0)
	if ok, _ := th.Allow(t0); !ok {
		t.Fatal("first event held")
	}
	for i := range 5 {
		if ok, _ := th.Allow(t0.Add(time.Duration(i) * 100 * time.Millisecond)); ok {
			t.Fatal("event within a second allowed")
		}
	}
	ok, held := th.Allow(t0.Add(time.Second))
	if !ok || held != 5 {
		t.Fatalf("after a second: ok=%v held=%d, want true 5", ok, held)
	}
}
