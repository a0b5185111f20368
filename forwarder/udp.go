package forwarder

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/forwarder/route"
	"github.com/tungate/tungate/forwarder/udpnat"
	"github.com/tungate/tungate/stack/flow"
)

var _ flow.DatagramHandler = (*Forwarder)(nil)

// maxDatagram holds any datagram payload (the echo relay's buffers).
const maxDatagram = 64 << 10

// HandleUDPDatagram implements flow.DatagramHandler: every datagram goes
// through the session table, which keeps one mapping per app source port
// and upstream. A destination that the router refuses, or whose upstream
// cannot be opened, gets ICMP port unreachable, and so does every datagram
// once the Forwarder is closing.
func (f *Forwarder) HandleUDPDatagram(src, dst netip.AddrPort, payload []byte) bool {
	err := f.udp.Send(src, dst, payload)
	switch {
	case err == nil:
		return true
	case errors.Is(err, udpnat.ErrRefused), errors.Is(err, udpnat.ErrClosed):
		return false
	}
	f.log.Debug("udp datagram lost", "src", src, "dst", dst, "err", err)
	return true
}

// FlushUDP sends the datagrams HandleUDPDatagram gathered for batched
// host socket writes (udpnat.Table.Flush). The device reader calls it at
// the end of every burst it reads.
func (f *Forwarder) FlushUDP() { f.udp.Flush() }

// UDPStats returns the UDP session table's counters.
func (f *Forwarder) UDPStats() udpnat.Stats { return f.udp.Stats() }

// HandleUDP implements stack.Handler. The stack never calls it, since the
// Forwarder takes datagrams one by one (HandleUDPDatagram).
func (f *Forwarder) HandleUDP(r flow.UDPRequest) { r.Refuse() }

// routeUDP is the session table's route, asked once per destination of a
// session (the table caches the answer): the router's decision, entered
// in the flow table as one flow per (app source, destination) as before,
// and carried on the session's one socket toward the chosen upstream when
// the upstream can send to any address: to the address the app sent to,
// to the address the router mapped it to (the host's loopback), or to the
// name behind a fake address, resolved as the upstream resolves names
// (or, through a SOCKS5 proxy without a resolver, sent by name). The
// table delivers the replies from the address the app sent to. In-process
// DNS answers share one conversation with the server per session
// (answerUpstream); only servers and upstreams that cannot serve any
// address get a conn of the destination's own. It runs under the table's
// lock.
func (f *Forwarder) routeUDP(src, dst netip.AddrPort) udpnat.Destination {
	fl := route.Flow{Proto: route.UDP, Src: src, Dst: dst}
	d := f.guard(f.decide(&fl))
	t := f.track(&fl, d)
	if d.Kind == route.Refuse {
		return udpnat.Destination{}
	}
	var meter udpnat.Meter
	if t != nil {
		meter = &flowMeter{flow: t, timed: d.Kind == route.Dial}
		// Killing one destination's flow ends the session; not here and
		// now, under the table's lock.
		t.SetCloser(func() { f.goFlow(func(context.Context) { f.udp.End(src) }) })
	}
	switch d.Kind {
	case route.Dial:
		if l, ok := d.Upstream.Packets.(proxy.PacketListener); ok {
			return f.sharedDestination(&fl, d, l, meter)
		}
	case route.Answer:
		if ps, ok := d.Server.(packetServer); ok {
			return udpnat.Destination{Upstream: answerUpstream{ps}, Meter: meter}
		}
	}
	return udpnat.Destination{Upstream: pairUpstream{fw: f, fl: fl, d: d}, Meter: meter}
}

// packetServer is a route.Server that answers a session's datagrams to
// any of its addresses on one conn (dns.Resolver.OpenPackets).
type packetServer interface {
	OpenPackets() (proxy.PacketConn, error)
}

// answerUpstream opens a session's one in-process conversation with a
// server, for all its destinations there: no host socket, and one reader.
// Its values are equal for the same server.
type answerUpstream struct{ s packetServer }

func (u answerUpstream) ListenPacket(context.Context, string) (proxy.PacketConn, error) {
	return u.s.OpenPackets()
}

// sharedDestination carries fl's datagrams on the session's socket
// toward l, the upstream's listener: the upstreams that share a listener
// (the direct one and host-loopback's, both host sockets) share the
// socket, and so the app's mapping.
func (f *Forwarder) sharedDestination(fl *route.Flow, d route.Decision, l proxy.PacketListener, meter udpnat.Meter) udpnat.Destination {
	up := sharedUpstream{fw: f, l: l}
	if d.Upstream.Proxied && !d.Upstream.FromHost(route.UDP) {
		up.up = d.Upstream // a chain's listener is its own: no upstream shares it
	}
	dst := udpnat.Destination{Upstream: up, Meter: meter}
	switch {
	case d.Dst.Name != "":
		dst.Name = d.Dst.Name
		if r, ok := l.(proxy.PacketNameResolver); ok {
			dst.Resolve = f.resolveUDPName(*fl, d, r)
		}
	case d.Dst.Addr != fl.Dst:
		dst.To = d.Dst.Addr
	}
	return dst
}

// resolveUDPName resolves the name of d.Dst for a session's socket, in the
// family of the app's socket, as the upstream resolves names (the host's
// resolver, vetted as a dial would be, or a SOCKS5 chain's resolver). A
// failure through a proxy is logged as a failed dial is.
func (f *Forwarder) resolveUDPName(fl route.Flow, d route.Decision, r proxy.PacketNameResolver) func(context.Context) (netip.AddrPort, error) {
	network := "udp6"
	if fl.Src.Addr().Unmap().Is4() {
		network = "udp4"
	}
	return func(ctx context.Context) (netip.AddrPort, error) {
		if check := f.addrCheck(d); check != nil && d.Upstream.FromHost(route.UDP) {
			ctx = proxy.WithAddrCheck(ctx, check)
		}
		to, err := r.ResolvePacketName(ctx, network, d.Dst.Name, d.Dst.Port)
		if err != nil && d.Upstream.Proxied {
			f.failures.report(ctx, &fl, d, err)
		}
		return to, err
	}
}

// flowMeter counts a destination's datagrams into its flow table entry.
type flowMeter struct {
	flow  *flows.Flow
	timed bool // a dial (not an in-process answer): its latency counts
}

func (m *flowMeter) Opened(took time.Duration, err error) {
	if m.timed && took > 0 {
		m.flow.Dialed(took, err)
		return
	}
	m.flow.Opened(err)
}

func (m *flowMeter) Sent(n int)     { m.flow.Up().AddDatagram(n) }
func (m *flowMeter) Received(n int) { m.flow.Down().AddDatagram(n) }

func (m *flowMeter) Forgotten(idle bool) {
	if idle {
		m.flow.Ending(flows.EndIdle)
	}
	m.flow.Finish(flows.EndClosed)
}

// sharedUpstream opens a session's one socket toward a listener. Its
// values are equal for the same listener, so a session keeps one.
type sharedUpstream struct {
	fw *Forwarder
	l  proxy.PacketListener
	up *route.Upstream // a proxied upstream, for its failures' log; else nil
}

func (u sharedUpstream) ListenPacket(ctx context.Context, network string) (proxy.PacketConn, error) {
	c, err := u.l.ListenPacket(ctx, network)
	if err != nil && u.up != nil {
		// The socket serves every destination: the log names none.
		u.fw.failures.report(ctx, &route.Flow{Proto: route.UDP}, route.Decision{Upstream: u.up, Dst: route.NameTarget("*", 0)}, err)
	}
	return c, err
}

// pairUpstream carries one destination's datagrams on a conn of its own,
// opened as the decision says (Forwarder.open).
type pairUpstream struct {
	fw *Forwarder
	fl route.Flow
	d  route.Decision
}

func (u pairUpstream) ListenPacket(ctx context.Context, _ string) (proxy.PacketConn, error) {
	// The table times the opening for the flow table (flowMeter).
	c, err := u.fw.open(ctx, &u.fl, u.d, nil)
	if err != nil {
		return nil, err
	}
	return &pairConn{conn: c, dst: u.fl.Dst}, nil
}

// pairConn is a conn to one destination as a PacketConn: what it reads
// comes from the address the app sent to. It is never a syscall.Conn, so
// the table reads it with a goroutine of its own; that goroutine waits
// without a buffer when the conn can (ReadWaiter: host sockets, the DNS
// resolver's flows).
type pairConn struct {
	conn net.Conn
	dst  netip.AddrPort
	// refused is a refusal that WaitReadable consumed, for the next
	// ReadFrom to report; the table's one reader uses it.
	refused bool
}

// WaitReadable waits as conn does, if it can, else returns at once.
func (c *pairConn) WaitReadable() error {
	w, ok := c.conn.(ReadWaiter)
	if !ok {
		return nil
	}
	err := w.WaitReadable()
	if errors.Is(err, syscall.ECONNREFUSED) {
		c.refused = true
		return nil
	}
	return err
}

func (c *pairConn) WriteTo(p []byte, _ netip.AddrPort) error {
	_, err := c.conn.Write(p)
	return err
}

// ReadFrom returns a refusal (ECONNREFUSED) with the destination, which
// the table passes on to the app; the conn stays usable, as a UDP socket
// does.
func (c *pairConn) ReadFrom(p []byte) (int, netip.AddrPort, error) {
	if c.refused {
		c.refused = false
		return 0, c.dst, syscall.ECONNREFUSED
	}
	n, err := c.conn.Read(p)
	if err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
		return 0, netip.AddrPort{}, err
	}
	return n, c.dst, err
}

func (c *pairConn) Close() error { return c.conn.Close() }

// LateApp delivers UDP replies to apps through a stack that is made after
// the forwarder (the stack takes the forwarder as its Handler). What comes
// before Set is dropped.
type LateApp struct {
	app atomic.Pointer[udpnat.AppSender]
}

var (
	_ udpnat.AppSender     = (*LateApp)(nil)
	_ udpnat.SegmentSender = (*LateApp)(nil)
)

// errNoApp means a datagram came back before the stack was Set.
var errNoApp = errors.New("forwarder: no stack to deliver UDP to yet")

// Set names the stack (*stack.Stack); call it once, right after stack.New.
func (l *LateApp) Set(app udpnat.AppSender) { l.app.Store(&app) }

// SendTo implements udpnat.AppSender.
func (l *LateApp) SendTo(src, dst netip.AddrPort, payload []byte) error {
	if app := l.app.Load(); app != nil {
		return (*app).SendTo(src, dst, payload)
	}
	return errNoApp
}

// SendSegments implements udpnat.SegmentSender, through the stack's own
// SendSegments when it has one.
func (l *LateApp) SendSegments(src, dst netip.AddrPort, segs [][]byte) error {
	app := l.app.Load()
	if app == nil {
		return errNoApp
	}
	if ss, ok := (*app).(udpnat.SegmentSender); ok {
		return ss.SendSegments(src, dst, segs)
	}
	var errs error
	for _, p := range segs {
		if err := (*app).SendTo(src, dst, p); err != nil && errs == nil {
			errs = err
		}
	}
	return errs
}

// PortUnreachable implements udpnat.AppSender.
func (l *LateApp) PortUnreachable(app, dst netip.AddrPort) error {
	if a := l.app.Load(); a != nil {
		return (*a).PortUnreachable(app, dst)
	}
	return errNoApp
}
