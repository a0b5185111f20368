package forwarder

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"sync/atomic"
	"syscall"

	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/forwarder/udpnat"
	"github.com/tungate/tungate/stack"
)

var _ stack.DatagramHandler = (*Forwarder)(nil)

// maxDatagram holds any datagram payload (the echo relay's buffers).
const maxDatagram = 64 << 10

// HandleUDPDatagram implements stack.DatagramHandler: every datagram goes
// through the session table, which keeps one mapping per app source port
// and upstream. A destination that the policy or the upstream refuses gets
// ICMP port unreachable.
func (f *Forwarder) HandleUDPDatagram(src, dst netip.AddrPort, payload []byte) bool {
	err := f.udp.Send(src, dst, payload)
	if err != nil && !errors.Is(err, udpnat.ErrRefused) {
		f.log.Debug("udp datagram lost", "src", src, "dst", dst, "err", err)
	}
	return !errors.Is(err, udpnat.ErrRefused)
}

// HandleUDP implements stack.Handler. The stack never calls it, since the
// Forwarder takes datagrams one by one (HandleUDPDatagram).
func (f *Forwarder) HandleUDP(*udp.ForwarderRequest) bool { return false }

// udpCapable is implemented by dialers that are PacketDialers in type but
// may not be able to carry UDP in fact (a chain of HTTP hops, say).
type udpCapable interface{ CanCarryUDP() bool }

// packetDialer returns the dialer's UDP side, or nil if it carries none.
func packetDialer(d proxy.Dialer) proxy.PacketDialer {
	pd, ok := d.(proxy.PacketDialer)
	if c, isChain := d.(udpCapable); isChain && !c.CanCarryUDP() {
		ok = false
	}
	if !ok {
		return nil
	}
	return pd
}

// routeUDP is the session table's route: the policy first, then the
// shared upstream socket if Options.SharedUDP names one for dst, else a
// socket of dst's own through Dialer. It runs under the table's lock, once
// per destination of a session.
func (f *Forwarder) routeUDP(_, dst netip.AddrPort) (proxy.PacketListener, bool) {
	if f.packets == nil || !f.allowed("udp", dst) {
		return nil, false
	}
	if f.opts.SharedUDP != nil {
		if l := f.opts.SharedUDP(dst); l != nil {
			return l, true
		}
	}
	return pairUpstream{dialer: f.packets, dst: dst}, true
}

// pairUpstream carries one destination's datagrams through a
// PacketDialer, for paths that know only connected conns (in-process DNS,
// fake DNS names, redirects). Its values compare equal for the same
// destination, so a session keeps one such conn per destination.
type pairUpstream struct {
	dialer proxy.PacketDialer
	dst    netip.AddrPort
}

func (u pairUpstream) ListenPacket(ctx context.Context, network string) (proxy.PacketConn, error) {
	c, err := u.dialer.DialPacket(ctx, network, u.dst.String())
	if err != nil {
		return nil, err
	}
	return &pairConn{conn: wrapHost(c), dst: u.dst}, nil
}

// pairConn is a conn to one destination as a PacketConn. It is never a
// syscall.Conn, so the table reads it with a goroutine of its own.
type pairConn struct {
	conn net.Conn
	dst  netip.AddrPort
}

func (c *pairConn) WriteTo(p []byte, _ netip.AddrPort) error {
	_, err := c.conn.Write(p)
	return err
}

// ReadFrom returns a refusal (ECONNREFUSED) with the destination, which
// the table passes on to the app; the conn stays usable, as a UDP socket
// does.
func (c *pairConn) ReadFrom(p []byte) (int, netip.AddrPort, error) {
	n, err := c.conn.Read(p)
	if err != nil && !errors.Is(err, syscall.ECONNREFUSED) {
		return 0, netip.AddrPort{}, err
	}
	return n, c.dst, err
}

func (c *pairConn) Close() error { return c.conn.Close() }

// LateStack delivers UDP replies to apps through a stack that is made
// after the forwarder (the stack takes the forwarder as its Handler). What
// comes before Set is dropped.
type LateStack struct{ s atomic.Pointer[stack.Stack] }

var _ udpnat.AppSender = (*LateStack)(nil)

// errNoStack means a datagram came back before the stack was Set.
var errNoStack = errors.New("forwarder: no stack yet")

// Set names the stack; call it once, right after stack.New.
func (l *LateStack) Set(s *stack.Stack) { l.s.Store(s) }

// SendTo implements udpnat.AppSender.
func (l *LateStack) SendTo(src, dst netip.AddrPort, payload []byte) error {
	if s := l.s.Load(); s != nil {
		return s.SendTo(src, dst, payload)
	}
	return errNoStack
}

// PortUnreachable implements udpnat.AppSender.
func (l *LateStack) PortUnreachable(app, dst netip.AddrPort) error {
	if s := l.s.Load(); s != nil {
		return s.PortUnreachable(app, dst)
	}
	return errNoStack
}
