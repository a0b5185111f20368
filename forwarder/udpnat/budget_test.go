package udpnat

import (
	"errors"
	"net/netip"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/proxy"
)

// fakeBudget is a Budget shared with flows the test holds itself (flows
// preset: TCP connections). Guarded by the table's lock.
type fakeBudget struct {
	max, maxFDs int // maxFDs zero: no bound
	flows, fds  int
	refused     int
}

func (b *fakeBudget) Take(_, _ netip.AddrPort, evict func() bool) Slot {
	for b.flows >= b.max {
		if !evict() {
			b.refused++
			return nil
		}
	}
	b.flows++
	return &fakeSlot{b: b}
}

type fakeSlot struct {
	b        *fakeBudget
	fds      int
	released bool
}

func (s *fakeSlot) AddSocket(_ netip.AddrPort, evict func() bool) bool {
	for s.b.maxFDs > 0 && s.b.fds >= s.b.maxFDs {
		if !evict() {
			s.b.refused++
			return false
		}
	}
	s.b.fds++
	s.fds++
	return true
}

func (s *fakeSlot) DropSocket() {
	if s.fds > 0 {
		s.fds--
		s.b.fds--
	}
}

func (s *fakeSlot) Release() {
	if s.released {
		panic("slot released twice")
	}
	s.released = true
	s.b.flows--
	s.b.fds -= s.fds
}

// held returns the budget's flows and descriptors, under the table's lock.
func held(tab *Table, b *fakeBudget) (flows, fds, refused int) {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return b.flows, b.fds, b.refused
}

func hasSession(tab *Table, app netip.AddrPort) bool {
	tab.mu.Lock()
	defer tab.mu.Unlock()
	return tab.sessions[app] != nil
}

// TestBudgetSharedWithTCP: with TCP holding 2 of 3 flows, one session fits;
// the next is refused (ErrRefused: ICMP port unreachable) while the first
// is busy, and evicts it once it has been idle for EvictIdle.
func TestBudgetSharedWithTCP(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	up := &fakeUpstream{}
	b := &fakeBudget{max: 3, flows: 2}
	tab, _ := newTestTable(t, Options{Now: clock.Now, Budget: b}, up, nil)
	a, c := ap("10.0.0.2:1"), ap("10.0.0.2:2")
	if err := tab.Send(a, peerA, []byte("a")); err != nil {
		t.Fatal(err)
	}
	sent(t, waitConns(t, up, 1)[0]) // a's socket is open
	clock.advance(DefaultEvictIdle / 2)
	if err := tab.Send(c, peerA, []byte("c")); !errors.Is(err, ErrRefused) {
		t.Fatalf("session past the budget with the other one busy: %v; want ErrRefused", err)
	}
	if st := tab.Stats(); st.Refused != 1 || st.Evicted != 0 || st.Sessions != 1 {
		t.Fatalf("stats %+v; want 1 refused, none evicted", st)
	}
	clock.advance(DefaultEvictIdle)
	if err := tab.Send(c, peerA, []byte("c")); err != nil {
		t.Fatalf("session past the budget with an idle one: %v", err)
	}
	conns := waitConns(t, up, 2)
	if !conns[0].isClosed() || hasSession(tab, a) || !hasSession(tab, c) {
		t.Fatal("a should be evicted, its socket closed, c kept")
	}
	if flows, fds, refused := held(tab, b); flows != 3 || fds != 1 || refused != 1 {
		t.Fatalf("budget holds %d flows, %d fds, refused %d; want 3, 1, 1", flows, fds, refused)
	}
	b2 := tab.Stats()
	if b2.Evicted != 1 {
		t.Fatalf("evicted %d; want 1", b2.Evicted)
	}
	// A TCP connection that closes leaves room without an eviction.
	tab.mu.Lock()
	b.flows--
	tab.mu.Unlock()
	if err := tab.Send(a, peerA, []byte("a")); err != nil || tab.Stats().Evicted != 1 {
		t.Fatalf("session after a TCP close: %v, evicted %d; want admitted, no eviction", err, tab.Stats().Evicted)
	}
}

// TestEvictionIsLeastRecentlyUsedFirst: replies count as use; the session
// silent longest goes first, and EvictIdle (for a TCP connection) takes
// only idle ones.
func TestEvictionIsLeastRecentlyUsedFirst(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	up := &fakeUpstream{}
	b := &fakeBudget{max: 3}
	tab, app := newTestTable(t, Options{Now: clock.Now, Budget: b}, up, nil)
	s1, s2, s3 := ap("10.0.0.2:1"), ap("10.0.0.2:2"), ap("10.0.0.2:3")
	for _, s := range []netip.AddrPort{s1, s2, s3} {
		tab.Send(s, peerA, []byte(s.String()))
		clock.advance(time.Second)
	}
	for _, c := range waitConns(t, up, 3) {
		if sent(t, c).data == s1.String() {
			c.in <- inbound{peerA, "reply to s1"} // s1 is now the most recent
		}
	}
	app.expect(t, delivery{peerA, s1, "reply to s1"})
	clock.advance(2 * time.Second)
	if !tab.EvictIdle() || hasSession(tab, s2) {
		t.Fatal("EvictIdle should end s2, the least recently used")
	}
	if !tab.EvictIdle() || hasSession(tab, s3) || !hasSession(tab, s1) {
		t.Fatal("EvictIdle should end s3 next, and keep s1")
	}
	tab.Send(s1, peerA, []byte("busy"))
	if tab.EvictIdle() {
		t.Fatal("EvictIdle ended a session busy within EvictIdle")
	}
	if flows, _, _ := held(tab, b); flows != 1 {
		t.Fatalf("budget holds %d flows; want 1", flows)
	}
}

// TestSocketsTakeDescriptors: each mapping takes a descriptor; at the
// descriptor cap a new mapping evicts an idle session, never its own, or
// its destination is refused (not cached: asked again later).
func TestSocketsTakeDescriptors(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	up, other := &fakeUpstream{}, &fakeUpstream{}
	viaOther := ap("198.51.100.9:53")
	b := &fakeBudget{max: 10, maxFDs: 1}
	tab, _ := newTestTable(t, Options{Now: clock.Now, Budget: b}, up, map[netip.AddrPort]proxy.PacketListener{viaOther: other})
	tab.Send(app1, peerA, []byte("x"))
	waitConns(t, up, 1)
	clock.advance(5 * time.Second) // app1 is idle, but it is the one asking
	if err := tab.Send(app1, viaOther, []byte("q")); !errors.Is(err, ErrRefused) {
		t.Fatalf("second mapping at the descriptor cap: %v; want ErrRefused", err)
	}
	if !hasSession(tab, app1) {
		t.Fatal("a session evicted itself to make room for its own mapping")
	}
	b2 := ap("10.0.0.2:2")
	if err := tab.Send(b2, peerA, []byte("y")); err != nil {
		t.Fatalf("new session evicting idle app1 for its socket: %v", err)
	}
	if hasSession(tab, app1) {
		t.Fatal("idle app1 should have made room")
	}
	if flows, fds, refused := held(tab, b); flows != 1 || fds != 1 || refused != 1 {
		t.Fatalf("budget holds %d flows, %d fds, refused %d; want 1, 1, 1", flows, fds, refused)
	}
}

// TestBudgetReleasedOnEveryEnd: expiry, End, a failed upstream and Close
// give back every slot and descriptor.
func TestBudgetReleasedOnEveryEnd(t *testing.T) {
	clock := &fakeClock{now: time.Unix(1000, 0)}
	up, bad := &fakeUpstream{}, &fakeUpstream{fail: errDown}
	dead := ap("192.0.2.66:1")
	b := &fakeBudget{max: 100}
	tab, _ := newTestTable(t, Options{Now: clock.Now, Budget: b}, up, map[netip.AddrPort]proxy.PacketListener{dead: bad})
	for i := range 5 {
		tab.Send(netip.AddrPortFrom(app1.Addr(), uint16(100+i)), peerA, []byte("x"))
	}
	tab.Send(app1, dead, []byte("x")) // its mapping fails: the descriptor comes back
	waitConns(t, up, 5)
	deadline := time.Now().Add(5 * time.Second)
	for tab.Stats().OpenFailed == 0 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	if flows, fds, _ := held(tab, b); flows != 6 || fds != 5 {
		t.Fatalf("budget holds %d flows, %d fds; want 6, 5", flows, fds)
	}
	tab.End(netip.AddrPortFrom(app1.Addr(), 100))
	clock.advance(DefaultUnrepliedTimeout)
	tab.Send(netip.AddrPortFrom(app1.Addr(), 101), peerA, []byte("keep"))
	tab.expire(clock.Now())
	if flows, fds, _ := held(tab, b); flows != 1 || fds != 1 {
		t.Fatalf("after End and expiry: %d flows, %d fds; want 1, 1", flows, fds)
	}
	tab.Close()
	if flows, fds, _ := held(tab, b); flows != 0 || fds != 0 {
		t.Fatalf("after Close: %d flows, %d fds; want none", flows, fds)
	}
}
