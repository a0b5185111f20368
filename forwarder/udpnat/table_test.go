package udpnat

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/proxy"
)

var (
	app1  = ap("10.0.0.2:4000")
	peerA = ap("192.0.2.1:3478")
	peerB = ap("192.0.2.2:3478")
)

func TestOneMappingForEveryDestinationOfAnUpstream(t *testing.T) {
	up, other := &fakeUpstream{}, &fakeUpstream{}
	viaOther := ap("198.51.100.9:53")
	tab, _ := newTestTable(t, Options{}, up, map[netip.AddrPort]proxy.PacketListener{viaOther: other})
	for _, dst := range []netip.AddrPort{peerA, peerB, peerA} {
		if err := tab.Send(app1, dst, []byte("x")); err != nil {
			t.Fatal(err)
		}
	}
	c := waitConns(t, up, 1)[0]
	for _, want := range []netip.AddrPort{peerA, peerB, peerA} {
		if got := sent(t, c); got.addr != want {
			t.Fatalf("sent to %v; want %v", got.addr, want)
		}
	}
	if c.network != "udp4" {
		t.Fatalf("network %q; want udp4", c.network)
	}
	// A destination with another route gets a mapping of its own.
	tab.Send(app1, viaOther, []byte("q"))
	oc := waitConns(t, other, 1)[0]
	if got := sent(t, oc); got.addr != viaOther {
		t.Fatalf("other upstream sent to %v", got.addr)
	}
	if st := tab.Stats(); st.Sessions != 1 || st.Mappings != 2 {
		t.Fatalf("stats %+v; want 1 session, 2 mappings", st)
	}
	waitConns(t, up, 1)
}

func TestFilterModes(t *testing.T) {
	stranger := ap("203.0.113.7:9999")
	peerAOtherPort := netip.AddrPortFrom(peerA.Addr(), 5000)
	for _, tc := range []struct {
		filter Filter
		admit  map[netip.AddrPort]bool
	}{
		{FilterEndpoint, map[netip.AddrPort]bool{peerA: true, peerAOtherPort: true, stranger: true}},
		{FilterAddress, map[netip.AddrPort]bool{peerA: true, peerAOtherPort: true, stranger: false}},
		{FilterPort, map[netip.AddrPort]bool{peerA: true, peerAOtherPort: false, stranger: false}},
	} {
		t.Run(tc.filter.String(), func(t *testing.T) {
			up := &fakeUpstream{}
			tab, app := newTestTable(t, Options{Filter: tc.filter}, up, nil)
			tab.Send(app1, peerA, []byte("hello"))
			c := waitConns(t, up, 1)[0]
			sent(t, c)
			for _, from := range []netip.AddrPort{peerA, peerAOtherPort, stranger} {
				c.in <- inbound{from, "reply"}
				if tc.admit[from] {
					app.expect(t, delivery{from, app1, "reply"})
				} else {
					app.expectNone(t)
				}
			}
		})
	}
}

func TestParseFilter(t *testing.T) {
	for _, f := range []Filter{FilterEndpoint, FilterAddress, FilterPort} {
		got, err := ParseFilter(f.String())
		if err != nil || got != f {
			t.Fatalf("ParseFilter(%q) = %v, %v", f.String(), got, err)
		}
	}
	if _, err := ParseFilter("cone"); err == nil {
		t.Fatal("ParseFilter(cone) succeeded")
	}
}

func TestUnrepliedSessionsExpireSooner(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	up := &fakeUpstream{}
	tab, app := newTestTable(t, Options{Now: clock.Now, Timeout: 60 * time.Second, UnrepliedTimeout: 30 * time.Second}, up, nil)
	quiet, talker := ap("10.0.0.2:1"), ap("10.0.0.2:2")
	tab.Send(quiet, peerA, []byte("q"))
	tab.Send(talker, peerA, []byte("t"))
	var quietConn, talk *fakeConn
	for _, c := range waitConns(t, up, 2) {
		if sent(t, c).data == "t" {
			talk = c
		} else {
			quietConn = c
		}
	}
	talk.in <- inbound{peerA, "r"}
	app.expect(t, delivery{peerA, talker, "r"})

	clock.advance(29 * time.Second)
	tab.expire(clock.Now())
	if n := tab.Stats().Sessions; n != 2 {
		t.Fatalf("%d sessions after 29 s; want 2", n)
	}
	clock.advance(time.Second)
	tab.expire(clock.Now())
	if n := tab.Stats().Sessions; n != 1 {
		t.Fatalf("%d sessions after 30 s; want 1 (the replied one)", n)
	}
	if !quietConn.isClosed() || talk.isClosed() {
		t.Fatal("the unreplied session's conn should be closed, the replied one's open")
	}
	clock.advance(29 * time.Second)
	tab.expire(clock.Now())
	if n := tab.Stats().Sessions; n != 1 {
		t.Fatalf("%d sessions after 59 s; want 1", n)
	}
	clock.advance(time.Second)
	tab.expire(clock.Now())
	if st := tab.Stats(); st.Sessions != 0 || st.Expired != 2 || !talk.isClosed() {
		t.Fatalf("after 60 s: %+v, closed %v; want every session expired", st, talk.isClosed())
	}
}

func TestTrafficKeepsASessionAlive(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	up := &fakeUpstream{}
	tab, _ := newTestTable(t, Options{Now: clock.Now, UnrepliedTimeout: 30 * time.Second}, up, nil)
	for range 5 {
		tab.Send(app1, peerA, []byte("k"))
		clock.advance(20 * time.Second)
		tab.expire(clock.Now())
	}
	if n := tab.Stats().Sessions; n != 1 {
		t.Fatalf("%d sessions; a session sending every 20 s must live", n)
	}
}

func TestLeastRecentlyUsedSessionMakesRoomAtTheCap(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	up := &fakeUpstream{}
	tab, _ := newTestTable(t, Options{Now: clock.Now, MaxSessions: 2}, up, nil)
	a, b, c := ap("10.0.0.2:1"), ap("10.0.0.2:2"), ap("10.0.0.2:3")
	tab.Send(a, peerA, []byte("a"))
	clock.advance(time.Second)
	tab.Send(b, peerA, []byte("b"))
	clock.advance(time.Second)
	tab.Send(a, peerA, []byte("a again")) // b is now the least recently used
	conns := waitConns(t, up, 2)
	clock.advance(time.Second)
	tab.Send(c, peerA, []byte("c"))
	waitConns(t, up, 3)
	st := tab.Stats()
	if st.Sessions != 2 || st.Evicted != 1 {
		t.Fatalf("stats %+v; want 2 sessions, 1 evicted", st)
	}
	var bConn *fakeConn
	for _, cn := range conns {
		if d := sent(t, cn); d.data == "b" {
			bConn = cn
		}
	}
	if bConn == nil || !bConn.isClosed() {
		t.Fatal("b's conn should be closed by the eviction")
	}
	tab.mu.Lock()
	_, hasA := tab.sessions[a]
	_, hasB := tab.sessions[b]
	tab.mu.Unlock()
	if !hasA || hasB {
		t.Fatalf("sessions: a %v, b %v; want a kept, b evicted", hasA, hasB)
	}
}

func TestRefusedDestination(t *testing.T) {
	up := &fakeUpstream{}
	blocked := ap("192.0.2.99:1")
	tab, _ := newTestTable(t, Options{}, up, map[netip.AddrPort]proxy.PacketListener{blocked: nil})
	if err := tab.Send(app1, blocked, []byte("x")); !errors.Is(err, ErrRefused) {
		t.Fatalf("Send to a refused destination: %v; want ErrRefused", err)
	}
	if err := tab.Send(app1, peerA, []byte("x")); err != nil {
		t.Fatalf("Send to an allowed destination of the same session: %v", err)
	}
}

func TestFailedUpstreamAnswersPortUnreachable(t *testing.T) {
	up := &fakeUpstream{fail: errDown, gate: make(chan struct{})}
	tab, app := newTestTable(t, Options{}, up, nil)
	tab.Send(app1, peerA, []byte("1"))
	tab.Send(app1, peerA, []byte("2"))
	tab.Send(app1, peerB, []byte("3"))
	close(up.gate) // all three wait for the one opening, which fails
	got := map[netip.AddrPort]int{}
	for range 2 {
		select {
		case d := <-app.unreachable:
			got[d.src]++
		case <-time.After(5 * time.Second):
			t.Fatalf("port unreachable for %v only; want %v and %v", got, peerA, peerB)
		}
	}
	if got[peerA] != 1 || got[peerB] != 1 {
		t.Fatalf("port unreachable %v; want one for each destination", got)
	}
	if st := tab.Stats(); st.OpenFailed != 1 || st.Mappings != 0 {
		t.Fatalf("stats %+v; want 1 failed open and the mapping forgotten", st)
	}
}

func TestCloseEndsEverything(t *testing.T) {
	up := &fakeUpstream{}
	tab, _ := newTestTable(t, Options{}, up, nil)
	for i := range 10 {
		tab.Send(netip.AddrPortFrom(app1.Addr(), uint16(100+i)), peerA, []byte("x"))
	}
	conns := waitConns(t, up, 10)
	done := make(chan struct{})
	go func() { tab.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(5 * time.Second):
		t.Fatal("Close hangs")
	}
	for _, c := range conns {
		if !c.isClosed() {
			t.Fatal("a conn outlived Close")
		}
	}
	if err := tab.Send(app1, peerA, nil); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Close: %v; want ErrClosed", err)
	}
}

func TestMetersHearOfTheirDestination(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	up, down := &fakeUpstream{}, &fakeUpstream{fail: errDown}
	byDst := map[netip.AddrPort]*countMeter{peerA: {}, peerB: {}}
	failing := ap("192.0.2.9:1")
	byDst[failing] = &countMeter{}
	app := newFakeApp()
	tab, err := New(Options{App: app, Now: clock.Now, Route: func(_, dst netip.AddrPort) Destination {
		if dst == failing {
			return Destination{Upstream: down, Meter: byDst[dst]}
		}
		return Destination{Upstream: up, Meter: byDst[dst]}
	}})
	if err != nil {
		t.Fatal(err)
	}
	defer tab.Close()
	tab.Send(app1, peerA, []byte("a"))
	c := waitConns(t, up, 1)[0]
	sent(t, c)
	tab.Send(app1, peerB, []byte("b")) // the socket is open already
	sent(t, c)
	c.in <- inbound{peerB, "reply"}
	app.expect(t, delivery{peerB, app1, "reply"})
	tab.Send(app1, failing, []byte("x"))
	<-app.unreachable
	a, b, f := byDst[peerA], byDst[peerB], byDst[failing]
	if a.opened.Load() != 1 || b.opened.Load() != 1 || a.sent.Load() != 1 || b.sent.Load() != 1 || b.received.Load() != 1 {
		t.Fatalf("meters: a opened %d sent %d; b opened %d sent %d received %d", a.opened.Load(), a.sent.Load(),
			b.opened.Load(), b.sent.Load(), b.received.Load())
	}
	if f.openErr.Load() == nil || f.forgotten.Load() != 1 {
		t.Fatalf("the failing destination's meter: error %v, forgotten %d; want the error, then forgotten", f.openErr.Load(), f.forgotten.Load())
	}
	clock.advance(DefaultTimeout)
	tab.expire(clock.Now())
	if a.idle.Load() != 1 || b.idle.Load() != 1 {
		t.Fatalf("after expiry: a idle %d, b idle %d; want both forgotten as idle", a.idle.Load(), b.idle.Load())
	}
}

func TestEndClosesTheSession(t *testing.T) {
	up := &fakeUpstream{}
	tab, _ := newTestTable(t, Options{}, up, nil)
	tab.Send(app1, peerA, []byte("a"))
	c := waitConns(t, up, 1)[0]
	tab.End(app1)
	if !c.isClosed() || tab.Stats().Sessions != 0 {
		t.Fatalf("after End: conn closed %v, %d sessions", c.isClosed(), tab.Stats().Sessions)
	}
}
