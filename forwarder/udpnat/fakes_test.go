package udpnat

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/proxy"
)

// fakeUpstream opens fakeConns and remembers them.
type fakeUpstream struct {
	mu    sync.Mutex
	conns []*fakeConn
	fail  error
	gate  chan struct{} // if set, ListenPacket waits for it to close
}

func (u *fakeUpstream) ListenPacket(_ context.Context, network string) (proxy.PacketConn, error) {
	if u.gate != nil {
		<-u.gate
	}
	if u.fail != nil {
		return nil, u.fail
	}
	c := &fakeConn{network: network, in: make(chan inbound, 16), out: make(chan inbound, 64), done: make(chan struct{})}
	u.mu.Lock()
	u.conns = append(u.conns, c)
	u.mu.Unlock()
	return c, nil
}

func (u *fakeUpstream) opened() []*fakeConn {
	u.mu.Lock()
	defer u.mu.Unlock()
	return append([]*fakeConn(nil), u.conns...)
}

type inbound struct {
	addr netip.AddrPort
	data string
}

// fakeConn is a PacketConn that is not a host socket: the table reads it
// with a goroutine.
type fakeConn struct {
	network string
	in      chan inbound // what the world sends
	out     chan inbound // what the table sent
	done    chan struct{}
	once    sync.Once
}

func (c *fakeConn) WriteTo(p []byte, dst netip.AddrPort) error {
	c.out <- inbound{dst, string(p)}
	return nil
}

// WriteToName records a datagram sent by name as sent to the port alone,
// with the name before the payload.
func (c *fakeConn) WriteToName(p []byte, name string, port uint16) error {
	c.out <- inbound{netip.AddrPortFrom(netip.Addr{}, port), name + "|" + string(p)}
	return nil
}

func (c *fakeConn) ReadFrom(p []byte) (int, netip.AddrPort, error) {
	select {
	case d := <-c.in:
		return copy(p, d.data), d.addr, nil
	case <-c.done:
		return 0, netip.AddrPort{}, net.ErrClosed
	}
}

func (c *fakeConn) Close() error {
	c.once.Do(func() { close(c.done) })
	return nil
}

func (c *fakeConn) isClosed() bool {
	select {
	case <-c.done:
		return true
	default:
		return false
	}
}

// fakeApp records what the table delivers.
type fakeApp struct {
	got         chan delivery
	unreachable chan delivery
}

type delivery struct {
	src, dst netip.AddrPort
	data     string
}

func newFakeApp() *fakeApp {
	return &fakeApp{got: make(chan delivery, 64), unreachable: make(chan delivery, 64)}
}

func (a *fakeApp) SendTo(src, dst netip.AddrPort, p []byte) error {
	a.got <- delivery{src, dst, string(p)}
	return nil
}

func (a *fakeApp) PortUnreachable(app, dst netip.AddrPort) error {
	a.unreachable <- delivery{src: dst, dst: app}
	return nil
}

// expect waits for one delivery.
func (a *fakeApp) expect(t *testing.T, want delivery) {
	t.Helper()
	select {
	case got := <-a.got:
		if got != want {
			t.Fatalf("delivered %+v; want %+v", got, want)
		}
	case <-time.After(5 * time.Second):
		t.Fatalf("nothing delivered; want %+v", want)
	}
}

// expectNone checks that nothing is delivered for a while.
func (a *fakeApp) expectNone(t *testing.T) {
	t.Helper()
	select {
	case got := <-a.got:
		t.Fatalf("delivered %+v; want nothing", got)
	case <-time.After(100 * time.Millisecond):
	}
}

// fakeClock is a settable clock.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	c.now = c.now.Add(d)
	c.mu.Unlock()
}

func ap(s string) netip.AddrPort { return netip.MustParseAddrPort(s) }

// newTestTable returns a table whose every destination goes through up,
// except those in other, which go through that upstream.
func newTestTable(t *testing.T, opts Options, up proxy.PacketListener, other map[netip.AddrPort]proxy.PacketListener) (*Table, *fakeApp) {
	t.Helper()
	app := newFakeApp()
	opts.App = app
	opts.Route = func(_, dst netip.AddrPort) Destination {
		if u, ok := other[dst]; ok {
			return Destination{Upstream: u}
		}
		return Destination{Upstream: up}
	}
	tab, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { tab.Close() })
	return tab, app
}

// sent waits for the datagram the table wrote on c.
func sent(t *testing.T, c *fakeConn) inbound {
	t.Helper()
	select {
	case d := <-c.out:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("nothing sent upstream")
		return inbound{}
	}
}

// waitConns waits for n conns opened on u.
func waitConns(t *testing.T, u *fakeUpstream, n int) []*fakeConn {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		cs := u.opened()
		if len(cs) >= n || time.Now().After(deadline) {
			if len(cs) != n {
				t.Fatalf("%d upstream conns opened; want %d", len(cs), n)
			}
			return cs
		}
		time.Sleep(time.Millisecond)
	}
}

var errDown = errors.New("upstream down")
