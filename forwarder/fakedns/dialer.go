package fakedns

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"strconv"

	"github.com/tungate/tungate/forwarder/proxy"
)

// Port is the DNS port: every flow to it is answered by the Resolver.
const Port = 53

// ErrUnknownAddress is returned for a flow to an address of the reserved
// ranges that has no name: one never handed out, forgotten to make room, or
// handed out before tungate restarted. The flow is refused (a reset), since
// guessing would send it to the wrong place.
var ErrUnknownAddress = errors.New("fake DNS address with no name behind it (forgotten or from before a restart): look the name up again")

// Dialer is the upstream dialer wrapper that makes fake DNS work: flows to
// port 53, whatever their address, UDP and TCP, are answered by Resolver
// in-process, so no DNS query leaves the host; flows to an address Resolver
// handed out are dialed through Next as "name:port", so a proxy gets the
// name; every other flow goes to Next unchanged.
type Dialer struct {
	// Resolver answers the queries and maps addresses to names. Required.
	Resolver *Resolver
	// Next dials everything else. If it is not a proxy.PacketDialer, UDP
	// other than DNS fails with proxy.ErrUDPUnsupported. Required.
	Next proxy.Dialer
}

var (
	_ proxy.Dialer       = (*Dialer)(nil)
	_ proxy.PacketDialer = (*Dialer)(nil)
)

// DialContext implements proxy.Dialer.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	network, address, local, err := d.route(network, address)
	switch {
	case err != nil:
		return nil, err
	case local.IsValid():
		return newLocalConn(d.Resolver, net.TCPAddrFromAddrPort(local), true), nil
	}
	return d.Next.DialContext(ctx, network, address)
}

// DialPacket implements proxy.PacketDialer.
func (d *Dialer) DialPacket(ctx context.Context, network, address string) (net.Conn, error) {
	network, address, local, err := d.route(network, address)
	switch {
	case err != nil:
		return nil, err
	case local.IsValid():
		return newLocalConn(d.Resolver, net.UDPAddrFromAddrPort(local), false), nil
	}
	pd, ok := d.Next.(proxy.PacketDialer)
	if !ok {
		return nil, fmt.Errorf("dial %s %s: %w", network, address, proxy.ErrUDPUnsupported)
	}
	return pd.DialPacket(ctx, network, address)
}

// route says where a flow goes: answered here (local is valid), or dialed
// through Next at network and address, which for a fake address become the
// bare protocol ("tcp", "udp": the name may have addresses of either
// family) and "name:port".
func (d *Dialer) route(network, address string) (string, string, netip.AddrPort, error) {
	dst, err := netip.ParseAddrPort(address)
	switch {
	case err != nil:
		return network, address, netip.AddrPort{}, nil
	case dst.Port() == Port:
		return network, address, dst, nil
	case !d.Resolver.Contains(dst.Addr()):
		return network, address, netip.AddrPort{}, nil
	}
	name, ok := d.Resolver.Name(dst.Addr())
	if !ok {
		return "", "", netip.AddrPort{}, fmt.Errorf("dial %s %s: %w", network, address, ErrUnknownAddress)
	}
	return baseNetwork(network), net.JoinHostPort(name, strconv.Itoa(int(dst.Port()))), netip.AddrPort{}, nil
}

// baseNetwork drops the family from "tcp4", "udp6" and the like.
func baseNetwork(network string) string {
	if n := len(network); n > 0 && (network[n-1] == '4' || network[n-1] == '6') {
		return network[:n-1]
	}
	return network
}
