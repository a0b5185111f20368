package proxy

import (
	"context"
	"fmt"
	"net/netip"
)

// UDPResolver resolves host, a name, to the address that SOCKS5 UDP
// datagrams to it should carry. network is DialPacket's: "udp4" or "udp6"
// ask for that family; "udp" (a name behind a fake DNS address, which may
// have addresses of either family) leaves the choice to the resolver.
//
// Why it exists: RFC 1928 lets a UDP request carry a name (ATYP 3), and
// dante accepts one, but it then resolves the name itself and sends the
// datagram to the first address it gets, IPv6 when the name has one and
// dante has an IPv6 route, whichever family the app looked up. A server
// that listens on IPv4 only answers that with port unreachable, which dante
// passes on by ending the association: the app sees "connection refused".
// Resolving here, in the family the app used, avoids that, at the price of
// the lookup leaving from wherever the resolver asks instead of the proxy.
type UDPResolver func(ctx context.Context, network, host string) (netip.Addr, error)

// resolveUDP applies UDPResolver to a name target; an address, or a nil
// UDPResolver, leaves target as it is.
func (s *SOCKS5) resolveUDP(ctx context.Context, network string, target hostPort) (hostPort, error) {
	if target.IP.IsValid() || s.UDPResolver == nil {
		return target, nil
	}
	ip, err := s.UDPResolver(ctx, network, target.Name)
	if err != nil {
		return hostPort{}, fmt.Errorf("udp associate: resolve %s: %w", target.Name, err)
	}
	return hostPort{IP: ip, Port: target.Port}, nil
}
