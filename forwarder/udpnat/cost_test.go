package udpnat

import (
	"context"
	"net"
	"net/netip"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/proxy"
)

// nopApp drops what it is given, without allocating.
type nopApp struct{}

func (nopApp) SendTo(_, _ netip.AddrPort, _ []byte) error { return nil }
func (nopApp) PortUnreachable(_, _ netip.AddrPort) error  { return nil }

// sink is a bound UDP socket that never answers.
func sink(t *testing.T) netip.AddrPort {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Skip(err)
	}
	t.Cleanup(func() { pc.Close() })
	return pc.LocalAddr().(*net.UDPAddr).AddrPort()
}

// countMeter counts what a destination's meter hears.
type countMeter struct {
	opened, sent, received, forgotten, idle atomic.Int64
	openErr                                 atomic.Value
}

func (c *countMeter) Opened(_ time.Duration, err error) {
	c.opened.Add(1)
	if err != nil {
		c.openErr.Store(err)
	}
}
func (c *countMeter) Sent(int)     { c.sent.Add(1) }
func (c *countMeter) Received(int) { c.received.Add(1) }
func (c *countMeter) Forgotten(idle bool) {
	c.forgotten.Add(1)
	if idle {
		c.idle.Add(1)
	}
}

// newNopTable routes everything direct, metering every destination with
// meter if it is not nil.
func newNopTable(t *testing.T, meter *countMeter) *Table {
	t.Helper()
	direct := &proxy.Direct{}
	route := func(_, _ netip.AddrPort) Destination {
		if meter == nil {
			return Destination{Upstream: direct}
		}
		return Destination{Upstream: direct, Meter: meter}
	}
	tab, err := New(Options{App: nopApp{}, Route: route})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tab.Close() })
	return tab
}

// waitMappings waits until n mappings have their socket open.
func waitOpen(t *testing.T, tab *Table, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		open := 0
		tab.mu.Lock()
		for _, m := range tab.byID {
			if m.conn != nil {
				open++
			}
		}
		tab.mu.Unlock()
		if open >= n {
			return
		}
		time.Sleep(time.Millisecond)
	}
	t.Fatalf("fewer than %d upstream sockets opened", n)
}

func TestPerDatagramPathDoesNotAllocate(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	dst := sink(t)
	meter := &countMeter{}
	tab := newNopTable(t, meter)
	src := ap("10.0.0.2:4000")
	payload := make([]byte, 512)
	tab.Send(src, dst, payload)
	waitOpen(t, tab, 1)
	if n := testing.AllocsPerRun(1000, func() { tab.Send(src, dst, payload) }); n != 0 {
		t.Errorf("Send allocates %.1f times per datagram; want 0", n)
	}
	tab.mu.Lock()
	m := tab.sessions[src].dests[dst].m
	tab.mu.Unlock()
	if n := testing.AllocsPerRun(1000, func() { tab.deliver(m, dst, payload) }); n != 0 {
		t.Errorf("deliver allocates %.1f times per datagram; want 0", n)
	}
	if meter.opened.Load() != 1 || meter.sent.Load() < 1000 || meter.received.Load() < 1000 {
		t.Errorf("meter: %d opened, %d sent, %d received; want 1, >= 1000, >= 1000",
			meter.opened.Load(), meter.sent.Load(), meter.received.Load())
	}
	b := newRecvBatch()
	if n := testing.AllocsPerRun(1000, func() { b.recv(m.fd, recvBatchSize) }); n != 0 {
		t.Errorf("recvmmsg allocates %.1f times; want 0", n)
	}
}

// TestCostPerSession measures, and logs, the memory and goroutines that
// idle direct sessions cost (the figures the README quotes), and bounds
// them loosely so that a regression to a goroutine per session fails.
func TestCostPerSession(t *testing.T) {
	const n = 2000
	dst := sink(t)
	tab := newNopTable(t, nil)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	goBefore := runtime.NumGoroutine()
	for i := range n {
		tab.Send(netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), uint16(1000+i)), dst, []byte("x"))
	}
	waitOpen(t, tab, n)
	time.Sleep(50 * time.Millisecond) // let every opening goroutine return
	runtime.GC()
	runtime.ReadMemStats(&after)
	perSession := float64(after.HeapAlloc-before.HeapAlloc) / n
	goroutines := float64(runtime.NumGoroutine()-goBefore) / n
	t.Logf("%d idle direct sessions: %.0f bytes of Go heap and %.3f goroutines per session (plus one host socket each in the kernel)",
		n, perSession, goroutines)
	if goroutines > 0.01 {
		t.Errorf("%.3f goroutines per idle session; want none", goroutines)
	}
	if perSession > 4096 {
		t.Errorf("%.0f bytes per idle session; want under 4 KiB", perSession)
	}
}

// TestScanIsOneSessionWithABoundedCache: 10,000 destinations from one
// source port are one session on one socket, and the routing cache stays
// within maxDests.
func TestScanIsOneSessionWithABoundedCache(t *testing.T) {
	sinkAddr := sink(t)
	tab := newNopTable(t, nil)
	src := ap("10.0.0.2:4000")
	tab.Send(src, sinkAddr, []byte("x"))
	waitOpen(t, tab, 1)
	for i := range 10000 {
		tab.Send(src, netip.AddrPortFrom(sinkAddr.Addr(), uint16(20000+i)), []byte("x"))
	}
	st := tab.Stats()
	tab.mu.Lock()
	cached := len(tab.sessions[src].dests)
	tab.mu.Unlock()
	if st.Sessions != 1 || st.Mappings != 1 || cached > maxDests {
		t.Fatalf("stats %+v, %d cached destinations; want 1 session, 1 mapping, at most %d", st, cached, maxDests)
	}
}

// waitingConn is a fakeConn that can wait for a datagram without a
// buffer, as the DNS resolver's flows and host sockets can.
type waitingConn struct {
	*fakeConn
	next *inbound
}

func (c *waitingConn) WaitReadable() error {
	select {
	case d := <-c.in:
		c.next = &d
		return nil
	case <-c.done:
		return net.ErrClosed
	}
}

func (c *waitingConn) ReadFrom(p []byte) (int, netip.AddrPort, error) {
	d := c.next
	c.next = nil
	return copy(p, d.data), d.addr, nil
}

// waitingUpstream opens waitingConns.
type waitingUpstream struct{ fakeUpstream }

func (u *waitingUpstream) ListenPacket(ctx context.Context, network string) (proxy.PacketConn, error) {
	c, err := u.fakeUpstream.ListenPacket(ctx, network)
	if err != nil {
		return nil, err
	}
	return &waitingConn{fakeConn: c.(*fakeConn)}, nil
}

// TestIdleReaderHoldsNoBuffer: a mapping read by a goroutine (not a host
// socket) whose conn can wait holds no datagram buffer while idle; the
// figure is logged for the README.
func TestIdleReaderHoldsNoBuffer(t *testing.T) {
	const n = 1000
	up := &waitingUpstream{}
	tab, app := newTestTable(t, Options{}, up, nil)
	runtime.GC()
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	goBefore := runtime.NumGoroutine()
	for i := range n {
		tab.Send(netip.AddrPortFrom(netip.MustParseAddr("10.0.0.2"), uint16(1000+i)), peerA, []byte("q"))
	}
	conns := waitConns(t, &up.fakeUpstream, n)
	for _, c := range conns {
		<-c.out
	}
	runtime.GC()
	runtime.ReadMemStats(&after)
	perSession := float64(after.HeapAlloc-before.HeapAlloc) / n
	goroutines := float64(runtime.NumGoroutine()-goBefore) / n
	stack := float64(after.StackInuse-before.StackInuse) / n
	t.Logf("%d idle sessions read by a goroutine each: %.0f bytes of Go heap (the fakes' channels included), %.0f bytes of goroutine stack, %.2f goroutines per session",
		n, perSession, stack, goroutines)
	if perSession > 16<<10 {
		t.Errorf("%.0f bytes per idle session: a read buffer is held while waiting", perSession)
	}
	// The readers still deliver.
	conns[0].in <- inbound{peerA, "answer"}
	select {
	case d := <-app.got:
		if d.data != "answer" {
			t.Fatalf("delivered %q", d.data)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("a waiting reader delivered nothing")
	}
}
