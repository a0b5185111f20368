package proxy

import (
	"context"
	"fmt"
	"golang.org/x/sys/unix"
	"net"
	"net/netip"
	"syscall"
	"time"
)

// PacketListener is implemented by upstreams that carry UDP to any
// destination from one socket, so that an app's source port keeps one
// mapping whatever it talks to (endpoint-independent mapping). Callers find
// it by type assertion, like PacketDialer.
//
// ListenPacket opens such a socket; network is "udp4" or "udp6" and fixes
// the family of every destination. It honours ctx while it sets up (a
// SOCKS5 association needs a handshake); the caller owns and closes the
// returned PacketConn.
type PacketListener interface {
	ListenPacket(ctx context.Context, network string) (PacketConn, error)
}

// PacketConn sends datagrams to any destination and receives them from any
// source, message boundaries kept.
type PacketConn interface {
	// WriteTo sends p as one datagram to dst.
	WriteTo(p []byte, dst netip.AddrPort) error
	// ReadFrom blocks until a datagram arrives and copies it into p, which
	// should hold 64 KiB. src is where the datagram came from. An error
	// about one destination (ECONNREFUSED after an ICMP port unreachable)
	// comes with that destination as src, and the conn stays usable.
	ReadFrom(p []byte) (n int, src netip.AddrPort, err error)
	// Close releases the socket (and a SOCKS5 association's control
	// connection) and unblocks ReadFrom. It is idempotent.
	Close() error
}

var (
	_ PacketListener = (*Direct)(nil)
	_ PacketListener = (*Chain)(nil)
)

// ListenPacket implements PacketListener with an unconnected host UDP
// socket bound to an ephemeral port, with the Interface and Mark options.
// The returned conn is also a syscall.Conn, so a caller may read and write
// it with raw system calls.
func (d *Direct) ListenPacket(ctx context.Context, network string) (PacketConn, error) {
	if err := checkNetwork(network, "udp"); err != nil {
		return nil, err
	}
	// An unconnected socket has no destination to vet (checkAddr): it
	// carries datagrams to addresses the router already decided on.
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		if err := d.socketOptions(rc); err != nil {
			return err
		}
		return setReceiveBuffer(rc)
	}}
	pc, err := lc.ListenPacket(ctx, network, "")
	if err != nil {
		return nil, fmt.Errorf("listen %s: %w", network, err)
	}
	return &hostPackets{UDPConn: pc.(*net.UDPConn)}, nil
}

// hostPackets is a PacketConn on an unconnected host UDP socket.
type hostPackets struct{ *net.UDPConn }

var _ syscall.Conn = (*hostPackets)(nil)

func (c *hostPackets) WriteTo(p []byte, dst netip.AddrPort) error {
	_, err := c.UDPConn.WriteToUDPAddrPort(p, dst)
	return classifyErrno(err)
}

func (c *hostPackets) ReadFrom(p []byte) (int, netip.AddrPort, error) {
	n, src, err := c.UDPConn.ReadFromUDPAddrPort(p)
	return n, netip.AddrPortFrom(src.Addr().Unmap(), src.Port()), err
}

// ListenPacket implements PacketListener. Only a chain of exactly one
// SOCKS5 hop carries UDP; otherwise the error matches ErrUDPUnsupported.
func (c *Chain) ListenPacket(ctx context.Context, network string) (PacketConn, error) {
	return viaLastHop(c, func(pl PacketListener) (PacketConn, error) { return pl.ListenPacket(ctx, network) })
}

// viaLastHop opens UDP through the chain's last hop, which must be a T
// (PacketDialer or PacketListener): it refuses at once what the chain
// cannot carry or what the proxy refused less than UDPRefusalMemory ago,
// and remembers a fresh refusal. Errors name the hop.
func viaLastHop[T, C any](c *Chain, open func(T) (C, error)) (C, error) {
	var none C
	if err := c.udpUnsupported(); err != nil {
		return none, err
	}
	hop, ok := c.outer.inner.(T)
	if !ok {
		return none, c.outer.wrap(ErrUDPUnsupported)
	}
	if err := c.udpRefused.check(time.Now()); err != nil {
		return none, c.outer.wrap(err)
	}
	conn, err := open(hop)
	if err != nil {
		return none, c.outer.wrap(c.udpRefused.note(err, time.Now()))
	}
	return conn, nil
}

// udpReceiveBuffer is what a session's host socket asks for (SO_RCVBUF,
// capped by net.core.rmem_max): with the default ~200 KiB, a burst of
// replies that arrives while tungate is descheduled for a few milliseconds
// overflows it, and the kernel drops them before tungate sees them. The
// kernel only charges what is queued, so an idle session costs nothing more.
const udpReceiveBuffer = 4 << 20

func setReceiveBuffer(rc syscall.RawConn) error {
	var optErr error
	if err := rc.Control(func(fd uintptr) {
		optErr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, udpReceiveBuffer)
	}); err != nil {
		return fmt.Errorf("socket options: %w", err)
	}
	if optErr != nil {
		return fmt.Errorf("set receive buffer (SO_RCVBUF): %w", optErr)
	}
	return nil
}
