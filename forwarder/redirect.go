package forwarder

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/tungate/tungate/forwarder/proxy"
)

// ReachesHostLoopback reports whether dialing dst from the host would reach
// the host's own loopback services: all of 127.0.0.0/8 and ::1, the
// unspecified addresses 0.0.0.0 and :: (which Linux connects to loopback),
// the rest of 0.0.0.0/8, and all of these in IPv4-mapped IPv6 form
// (::ffff:127.0.0.1). A policy that keeps apps off the host uses it.
func ReachesHostLoopback(dst netip.Addr) bool {
	a := dst.Unmap()
	if a.IsLoopback() || a.IsUnspecified() {
		return true
	}
	return a.Is4() && a.As4()[0] == 0
}

// Redirect is an upstream dialer that sends the flows addressed to some
// addresses to other addresses (same port) through Via, and every other
// flow to Next unchanged. `tungate run --allow-host-loopback` uses it to map
// one address inside the namespace to the host's 127.0.0.1 and ::1.
type Redirect struct {
	// To maps a destination address the app uses to the address dialed
	// instead.
	To map[netip.Addr]netip.Addr
	// Via dials the mapped flows; normally host sockets (proxy.Direct),
	// since a proxy cannot reach this host's loopback.
	Via proxy.Dialer
	// Next dials every other flow.
	Next proxy.Dialer
}

var (
	_ proxy.Dialer       = (*Redirect)(nil)
	_ proxy.PacketDialer = (*Redirect)(nil)
)

// DialContext implements proxy.Dialer.
func (r *Redirect) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	if to, ok := r.target(address); ok {
		return r.Via.DialContext(ctx, familyOf(network, to), to)
	}
	return r.Next.DialContext(ctx, network, address)
}

// DialPacket implements proxy.PacketDialer.
func (r *Redirect) DialPacket(ctx context.Context, network, address string) (net.Conn, error) {
	d, addr := r.Next, address
	if to, ok := r.target(address); ok {
		d, addr, network = r.Via, to, familyOf(network, to)
	}
	pd, ok := d.(proxy.PacketDialer)
	if !ok {
		return nil, fmt.Errorf("dial %s %s: %w", network, addr, proxy.ErrUDPUnsupported)
	}
	return pd.DialPacket(ctx, network, addr)
}

// target returns the mapped "host:port" for address, if it is mapped.
func (r *Redirect) target(address string) (string, bool) {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return "", false
	}
	to, ok := r.To[ap.Addr()]
	if !ok {
		return "", false
	}
	return net.JoinHostPort(to.String(), strconv.Itoa(int(ap.Port()))), true
}

// familyOf keeps network's protocol but picks the family of address, since
// an IPv4 address may map to an IPv6 one and back.
func familyOf(network, address string) string {
	base := network
	if n := len(base); n > 0 && (base[n-1] == '4' || base[n-1] == '6') {
		base = base[:n-1]
	}
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return network
	}
	if ap.Addr().Is4() {
		return base + "4"
	}
	return base + "6"
}
