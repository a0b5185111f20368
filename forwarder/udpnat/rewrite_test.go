package udpnat

import (
	"context"
	"errors"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"
)

// Destinations that the route rewrites: the host-loopback address of
// `tungate run`, and two fake addresses standing for names.
var (
	loopMapped = ap("198.18.0.3:7000")
	loopReal   = ap("127.0.0.1:7000")
	fakeName1  = ap("198.19.0.5:3478")
	fakeName2  = ap("198.19.0.6:3478")
	proxySrc   = ap("203.0.113.50:3478") // where a proxy relays name1's replies from
)

// newRewriteTable routes every destination through up, rewriting as
// routes says.
func newRewriteTable(t *testing.T, opts Options, up *fakeUpstream, routes map[netip.AddrPort]Destination) (*Table, *fakeApp) {
	t.Helper()
	app := newFakeApp()
	opts.App = app
	opts.Route = func(_, dst netip.AddrPort) Destination {
		d := routes[dst]
		d.Upstream = up
		return d
	}
	tab, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tab.Close() })
	return tab, app
}

// TestRewrittenDestinationSharesTheMapping: a datagram to an address the
// route maps elsewhere leaves on the session's one conn to the mapped
// address, and the reply reaches the app from the address it sent to,
// with every filter (the app did send there).
func TestRewrittenDestinationSharesTheMapping(t *testing.T) {
	for _, filter := range []Filter{FilterEndpoint, FilterAddress, FilterPort} {
		t.Run(filter.String(), func(t *testing.T) {
			up := &fakeUpstream{}
			tab, app := newRewriteTable(t, Options{Filter: filter}, up, map[netip.AddrPort]Destination{loopMapped: {To: loopReal}})
			tab.Send(app1, peerA, []byte("out"))
			tab.Send(app1, loopMapped, []byte("loop"))
			c := waitConns(t, up, 1)[0]
			if got := sent(t, c); got.addr != peerA {
				t.Fatalf("sent to %v; want %v", got.addr, peerA)
			}
			if got := sent(t, c); got != (inbound{loopReal, "loop"}) {
				t.Fatalf("sent %+v; want %q to %v", got, "loop", loopReal)
			}
			c.in <- inbound{loopReal, "from loopback"}
			app.expect(t, delivery{loopMapped, app1, "from loopback"})
			c.in <- inbound{peerA, "from A"}
			app.expect(t, delivery{peerA, app1, "from A"})
			waitConns(t, up, 1)
		})
	}
}

// TestResolvedNameSharesTheMapping: a datagram to a fake address waits
// for Resolve, then leaves on the session's one conn to the address it
// found; replies from there come from the fake address. Resolve runs once
// per destination.
func TestResolvedNameSharesTheMapping(t *testing.T) {
	up := &fakeUpstream{}
	gate := make(chan struct{})
	var calls atomic.Int32
	resolve := func(ctx context.Context) (netip.AddrPort, error) {
		calls.Add(1)
		select {
		case <-gate:
		case <-ctx.Done():
			return netip.AddrPort{}, ctx.Err()
		}
		return peerB, nil
	}
	tab, app := newRewriteTable(t, Options{Filter: FilterPort}, up, map[netip.AddrPort]Destination{fakeName1: {Resolve: resolve, Name: "one.test"}})
	tab.Send(app1, peerA, []byte("first"))
	tab.Send(app1, fakeName1, []byte("to name 1"))
	tab.Send(app1, fakeName1, []byte("to name 2"))
	c := waitConns(t, up, 1)[0]
	if got := sent(t, c); got.addr != peerA {
		t.Fatalf("sent to %v; want %v", got.addr, peerA)
	}
	select {
	case got := <-c.out:
		t.Fatalf("sent %+v before the name was resolved", got)
	case <-time.After(50 * time.Millisecond):
	}
	close(gate)
	for _, want := range []string{"to name 1", "to name 2"} {
		if got := sent(t, c); got != (inbound{peerB, want}) {
			t.Fatalf("sent %+v; want %q to %v", got, want, peerB)
		}
	}
	tab.Send(app1, fakeName1, []byte("to name 3"))
	if got := sent(t, c); got != (inbound{peerB, "to name 3"}) {
		t.Fatalf("sent %+v; want %q to %v", got, "to name 3", peerB)
	}
	c.in <- inbound{peerB, "reply"}
	app.expect(t, delivery{fakeName1, app1, "reply"})
	if n := calls.Load(); n != 1 {
		t.Fatalf("Resolve ran %d times; want 1", n)
	}
	waitConns(t, up, 1)
}

// TestNameSentToTheProxy: Resolve leaves the name to the upstream: the
// datagrams carry it. A reply from an address the app never sent to by
// address comes from the fake address of the name it most recently sent
// to at that port; one from an address it did send to keeps its source;
// one at another port keeps its source too, and only the endpoint filter
// admits it.
func TestNameSentToTheProxy(t *testing.T) {
	byName := func(context.Context) (netip.AddrPort, error) { return netip.AddrPort{}, nil }
	routes := map[netip.AddrPort]Destination{
		fakeName1: {Resolve: byName, Name: "one.test"},
		fakeName2: {Resolve: byName, Name: "two.test"},
	}
	for _, filter := range []Filter{FilterEndpoint, FilterAddress, FilterPort} {
		t.Run(filter.String(), func(t *testing.T) {
			up := &fakeUpstream{}
			tab, app := newRewriteTable(t, Options{Filter: filter}, up, routes)
			tab.Send(app1, fakeName1, []byte("hello"))
			c := waitConns(t, up, 1)[0]
			if got := sent(t, c); got.addr.Port() != fakeName1.Port() || got.data != "one.test|hello" {
				t.Fatalf("sent %+v; want \"hello\" to one.test port %d", got, fakeName1.Port())
			}
			c.in <- inbound{proxySrc, "from one"}
			app.expect(t, delivery{fakeName1, app1, "from one"})
			tab.Send(app1, fakeName2, []byte("hello"))
			if got := sent(t, c); got.data != "two.test|hello" {
				t.Fatalf("sent %+v; want \"hello\" to two.test", got)
			}
			c.in <- inbound{ap("203.0.113.51:3478"), "from two"}
			app.expect(t, delivery{fakeName2, app1, "from two"})
			tab.Send(app1, peerA, []byte("by address"))
			sent(t, c)
			c.in <- inbound{peerA, "from A"}
			app.expect(t, delivery{peerA, app1, "from A"})
			other := netip.AddrPortFrom(proxySrc.Addr(), 9)
			c.in <- inbound{other, "elsewhere"}
			if filter == FilterEndpoint {
				app.expect(t, delivery{other, app1, "elsewhere"})
			} else {
				app.expectNone(t)
			}
		})
	}
}

// TestUnresolvedNameIsRefused: a failed Resolve tells the app port
// unreachable for the fake address, and the next datagram asks again.
func TestUnresolvedNameIsRefused(t *testing.T) {
	up := &fakeUpstream{}
	var calls atomic.Int32
	fail := func(context.Context) (netip.AddrPort, error) {
		calls.Add(1)
		return netip.AddrPort{}, errors.New("no such name")
	}
	tab, app := newRewriteTable(t, Options{}, up, map[netip.AddrPort]Destination{fakeName1: {Resolve: fail, Name: "none.test"}})
	for round := 1; round <= 2; round++ {
		tab.Send(app1, fakeName1, []byte("x"))
		select {
		case got := <-app.unreachable:
			if got.src != fakeName1 || got.dst != app1 {
				t.Fatalf("port unreachable %+v; want from %v to %v", got, fakeName1, app1)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("round %d: no port unreachable", round)
		}
		if n := calls.Load(); n != int32(round) {
			t.Fatalf("Resolve ran %d times after %d datagrams", n, round)
		}
	}
	if st := tab.Stats(); st.OpenFailed != 2 {
		t.Fatalf("stats %+v; want 2 failed opens", st)
	}
}

// TestResolvingDestinationForgottenByTheCache: the cache starts over
// (maxDests) while a name is being resolved: the datagrams that waited for
// it are dropped and counted rather than held for ever, and the next
// datagram to the name resolves it again.
func TestResolvingDestinationForgottenByTheCache(t *testing.T) {
	up := &fakeUpstream{}
	gate := make(chan struct{}, 1)
	resolve := func(ctx context.Context) (netip.AddrPort, error) {
		select {
		case <-gate:
		case <-ctx.Done():
			return netip.AddrPort{}, ctx.Err()
		}
		return peerB, nil
	}
	routes := map[netip.AddrPort]Destination{fakeName1: {Resolve: resolve, Name: "one.test"}}
	tab, _ := newRewriteTable(t, Options{}, up, routes)
	tab.Send(app1, fakeName1, []byte("waits"))
	c := waitConns(t, up, 1)[0]
	// Fill the cache past maxDests; the fake conn's queue takes 64.
	go func() {
		for {
			select {
			case <-c.out:
			case <-c.done:
				return
			}
		}
	}()
	for i := range maxDests {
		tab.Send(app1, netip.AddrPortFrom(netip.AddrFrom4([4]byte{192, 0, 2, 1}), uint16(10000+i)), []byte("x"))
	}
	gate <- struct{}{}
	deadline := time.Now().Add(5 * time.Second)
	for tab.Stats().Dropped == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if st := tab.Stats(); st.Dropped != 1 {
		t.Fatalf("stats %+v; want the one datagram that waited dropped", st)
	}
	tab.mu.Lock()
	pending := len(tab.sessions[app1].maps[0].pending)
	tab.mu.Unlock()
	if pending != 0 {
		t.Fatalf("%d datagrams still pending", pending)
	}
	gate <- struct{}{}
	if err := tab.Send(app1, fakeName1, []byte("again")); err != nil {
		t.Fatal(err)
	}
	deadline = time.Now().Add(5 * time.Second)
	for {
		tab.mu.Lock()
		d := tab.sessions[app1].dests[fakeName1]
		resolved := d != nil && !d.resolving && d.to == peerB
		tab.mu.Unlock()
		if resolved {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the name was not resolved again")
		}
		time.Sleep(time.Millisecond)
	}
}
