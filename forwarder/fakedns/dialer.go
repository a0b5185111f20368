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

// ErrUnknownAddress is returned for a flow to an address of the reserved
// ranges that has no name: one never handed out, forgotten to make room, or
// handed out before tungate restarted. The flow is refused (a reset), since
// guessing would send it to the wrong place.
var ErrUnknownAddress = errors.New("fake DNS address with no name behind it (forgotten or from before a restart): look the name up again")

// Dialer is the upstream dialer wrapper that turns handed-out addresses
// back into names: a flow to an address Resolver handed out is dialed
// through Next as "name:port", so a proxy gets the name; every other flow
// goes to Next unchanged. The DNS flows themselves are answered before they
// reach it, by a forwarder/dns Resolver (with EveryAddr and Inline) whose
// Answerer is Resolver.
type Dialer struct {
	// Resolver maps addresses to names. Required.
	Resolver *Resolver
	// Next dials every flow. If it is not a proxy.PacketDialer, UDP fails
	// with proxy.ErrUDPUnsupported. Required.
	Next proxy.Dialer
}

var (
	_ proxy.Dialer       = (*Dialer)(nil)
	_ proxy.PacketDialer = (*Dialer)(nil)
)

// DialContext implements proxy.Dialer.
func (d *Dialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	network, address, err := d.route(network, address)
	if err != nil {
		return nil, err
	}
	return d.Next.DialContext(ctx, network, address)
}

// DialPacket implements proxy.PacketDialer.
func (d *Dialer) DialPacket(ctx context.Context, network, address string) (net.Conn, error) {
	network, address, err := d.route(network, address)
	if err != nil {
		return nil, err
	}
	pd, ok := d.Next.(proxy.PacketDialer)
	if !ok {
		return nil, fmt.Errorf("dial %s %s: %w", network, address, proxy.ErrUDPUnsupported)
	}
	return pd.DialPacket(ctx, network, address)
}

// route says where Next dials a flow: for a fake address, the bare
// protocol ("tcp", "udp": the name may have addresses of either family)
// and "name:port"; for any other, network and address unchanged.
func (d *Dialer) route(network, address string) (string, string, error) {
	dst, err := netip.ParseAddrPort(address)
	if err != nil || !d.Resolver.Contains(dst.Addr()) {
		return network, address, nil
	}
	name, ok := d.Resolver.Name(dst.Addr())
	if !ok {
		return "", "", fmt.Errorf("dial %s %s: %w", network, address, ErrUnknownAddress)
	}
	return baseNetwork(network), net.JoinHostPort(name, strconv.Itoa(int(dst.Port()))), nil
}

// baseNetwork drops the family from "tcp4", "udp6" and the like.
func baseNetwork(network string) string {
	if n := len(network); n > 0 && (network[n-1] == '4' || network[n-1] == '6') {
		return network[:n-1]
	}
	return network
}
