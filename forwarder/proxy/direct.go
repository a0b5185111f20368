package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Direct dials with the host's own sockets.
type Direct struct {
	// Interface, if set, binds every socket to this interface
	// (SO_BINDTODEVICE) so that routes into the TUN device cannot loop.
	Interface string
	// Mark, if non-zero, sets SO_MARK on every socket for policy routing.
	Mark uint32
	// Timeout bounds the TCP connect. Zero means no bound beyond ctx.
	Timeout time.Duration
}

var (
	_ Dialer       = (*Direct)(nil)
	_ PacketDialer = (*Direct)(nil)
)

// DialContext implements Dialer. ECONNREFUSED matches ErrRefused, and
// EHOSTUNREACH / ENETUNREACH match ErrUnreachable. ctx's AddrCheck
// (WithAddrCheck) vets each address the socket would connect to.
func (d *Direct) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if set := hostSockets(ctx); set != nil {
		if ap, ok := literalTCP(network, address); ok {
			return d.dialHostSocket(ctx, set, ap)
		}
	}
	nd := net.Dialer{Timeout: d.Timeout, ControlContext: d.control, Resolver: d.resolver(), KeepAliveConfig: HostKeepAlive()}
	if keepAliveLater(ctx) {
		nd.KeepAliveConfig, nd.KeepAlive = net.KeepAliveConfig{}, -1 // off: no setsockopt at all
	}
	conn, err := nd.DialContext(ctx, network, address)
	if err != nil {
		return nil, classifyErrno(err)
	}
	return conn, nil
}

// HostKeepAlive is the keepalive of TCP host sockets: package net's
// default (a probe after 15 s idle, then every 15 s, 9 probes) with one
// system call less, as each field is a setsockopt of its own. The probe
// count is left to the kernel (net.ipv4.tcp_keepalive_probes), whose
// default is the same 9. At a high connection rate the dial's 5
// setsockopt calls were a sixth of tungate's system calls.
func HostKeepAlive() net.KeepAliveConfig {
	return net.KeepAliveConfig{Enable: true, Idle: 15 * time.Second, Interval: 15 * time.Second, Count: -1}
}

type keepAliveLaterKey struct{}

// WithKeepAliveLater returns ctx telling Direct to leave keepalive off on
// the TCP sockets it dials under ctx: the caller sets HostKeepAlive itself
// once the connection first idles, so that a short connection, which
// ends long before a probe could be sent, never pays the three setsockopt
// calls. A caller that cannot tell when its connection idles must not use
// it.
func WithKeepAliveLater(ctx context.Context) context.Context {
	return context.WithValue(ctx, keepAliveLaterKey{}, true)
}

func keepAliveLater(ctx context.Context) bool {
	later, _ := ctx.Value(keepAliveLaterKey{}).(bool)
	return later
}

// DialPacket implements PacketDialer: the returned socket is connected to
// address, so the kernel drops datagrams from any other source. ctx's
// AddrCheck vets the address, as for DialContext.
func (d *Direct) DialPacket(ctx context.Context, network, address string) (net.Conn, error) {
	nd := net.Dialer{ControlContext: d.control, Resolver: d.resolver()}
	conn, err := nd.DialContext(ctx, network, address)
	if err != nil {
		return nil, classifyErrno(err)
	}
	return conn, nil
}

// resolver resolves the names given to the Dial methods with Go's own
// resolver, whose queries to the nameservers of /etc/resolv.conf leave
// with the same mark and interface as the flows. Routing that captures the
// host's DNS (the hijack of --auto-route) then lets them out, instead of
// sending them back into the device, where fake DNS would answer a name
// that a rule routes direct with a fake address. Nil (the default
// resolver) without a mark or an interface.
func (d *Direct) resolver() *net.Resolver {
	if d.Interface == "" && d.Mark == 0 {
		return nil
	}
	return &net.Resolver{PreferGo: true, Dial: d.dialNameserver}
}

// dialNameserver is the resolver's dial. A nameserver on loopback (such
// as systemd-resolved's 127.0.0.53) is dialed without the interface, which
// would make it unreachable; the mark does no harm there.
func (d *Direct) dialNameserver(ctx context.Context, network, address string) (net.Conn, error) {
	opts := d
	if ap, err := netip.ParseAddrPort(address); err == nil && ap.Addr().Unmap().IsLoopback() {
		opts = &Direct{Mark: d.Mark}
	}
	nd := net.Dialer{Control: func(_, _ string, rc syscall.RawConn) error { return opts.socketOptions(rc) }}
	return nd.DialContext(ctx, network, address)
}

// control vets the resolved address (ctx's AddrCheck) and applies the
// socket options before connect, so the very first packet (the SYN)
// already leaves through the right interface and mark.
func (d *Direct) control(ctx context.Context, _, address string, rc syscall.RawConn) error {
	if err := checkAddr(ctx, address); err != nil {
		return err
	}
	return d.socketOptions(rc)
}

// socketOptions sets the Interface and Mark options on a new socket.
func (d *Direct) socketOptions(rc syscall.RawConn) error {
	if d.Interface == "" && d.Mark == 0 {
		return nil
	}
	var optErr error
	err := rc.Control(func(fd uintptr) { optErr = d.setSocketOptions(int(fd)) })
	if err != nil {
		return fmt.Errorf("socket options: %w", err)
	}
	return optErr
}

// setSocketOptions is socketOptions on the descriptor itself.
func (d *Direct) setSocketOptions(fd int) error {
	if d.Interface != "" {
		if err := unix.BindToDevice(fd, d.Interface); err != nil {
			return fmt.Errorf("bind socket to interface %q (SO_BINDTODEVICE): %w: check the interface exists and that we have CAP_NET_RAW", d.Interface, err)
		}
	}
	if d.Mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(d.Mark)); err != nil {
			return fmt.Errorf("set socket mark %#x (SO_MARK): %w: needs CAP_NET_ADMIN", d.Mark, err)
		}
	}
	return nil
}

// classifyErrno tags host socket errors with this package's sentinels.
func classifyErrno(err error) error {
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return mark(err, ErrRefused)
	case errors.Is(err, syscall.EHOSTUNREACH), errors.Is(err, syscall.ENETUNREACH):
		return mark(err, ErrUnreachable)
	}
	return err
}
