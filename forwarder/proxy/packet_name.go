package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
)

// PacketNameResolver is implemented by PacketListeners whose datagrams to a
// name (the name behind a fake DNS address) go to an address found first:
// a session's one socket carries datagrams to names and to addresses
// alike, so the name is resolved once, before its first datagram leaves,
// the way DialPacket would resolve it.
type PacketNameResolver interface {
	// ResolvePacketName returns the address that datagrams to name and
	// port should go to; network ("udp4" or "udp6") is the family of the
	// listener's sockets. ctx's AddrCheck vets the address. The zero
	// AddrPort with a nil error means the conns carry the name itself
	// (NamePacketConn), for the far end to resolve.
	ResolvePacketName(ctx context.Context, network, name string, port uint16) (netip.AddrPort, error)
}

// NamePacketConn is a PacketConn that can send to a name, which the far
// end resolves: a SOCKS5 association (RFC 1928 §7, ATYP 3).
type NamePacketConn interface {
	PacketConn
	// WriteToName sends p as one datagram to name and port.
	WriteToName(p []byte, name string, port uint16) error
}

var (
	_ PacketNameResolver = (*Direct)(nil)
	_ PacketNameResolver = (*Chain)(nil)
	_ PacketNameResolver = (*SOCKS5)(nil)
	_ NamePacketConn     = (*socks5Packets)(nil)
)

// errNoAddress means a name resolved to no address of the family asked for.
var errNoAddress = errors.New("no address of the family")

// ResolvePacketName implements PacketNameResolver with the resolver that
// DialPacket uses (Go's, leaving with the Interface and Mark options), and
// picks the first address as a UDP dial does.
func (d *Direct) ResolvePacketName(ctx context.Context, network, name string, port uint16) (netip.AddrPort, error) {
	r := d.resolver()
	if r == nil {
		r = net.DefaultResolver
	}
	family := "ip4"
	if network == "udp6" {
		family = "ip6"
	}
	ips, err := r.LookupNetIP(ctx, family, name)
	if err == nil && len(ips) == 0 {
		err = errNoAddress
	}
	if err != nil {
		return netip.AddrPort{}, fmt.Errorf("resolve %s (%s): %w", name, family, err)
	}
	ap := netip.AddrPortFrom(ips[0].Unmap(), port)
	if err := checkAddr(ctx, ap.String()); err != nil {
		return netip.AddrPort{}, err
	}
	return ap, nil
}

// ResolvePacketName implements PacketNameResolver: with a UDPResolver the
// name is resolved here, in network's family; without one the association
// carries the name.
func (s *SOCKS5) ResolvePacketName(ctx context.Context, network, name string, port uint16) (netip.AddrPort, error) {
	hp, err := s.resolveUDP(ctx, network, hostPort{Name: name, Port: port})
	if err != nil || !hp.IP.IsValid() {
		return netip.AddrPort{}, err
	}
	return netip.AddrPortFrom(hp.IP, hp.Port), nil
}

// ResolvePacketName implements PacketNameResolver through the chain's last
// hop, which carries its UDP (a SOCKS5 proxy); errors name the hop.
func (c *Chain) ResolvePacketName(ctx context.Context, network, name string, port uint16) (netip.AddrPort, error) {
	return viaLastHop(c, func(r PacketNameResolver) (netip.AddrPort, error) {
		return r.ResolvePacketName(ctx, network, name, port)
	})
}

// WriteToName sends p to name and port through the relay, which resolves
// the name.
func (c *socks5Packets) WriteToName(p []byte, name string, port uint16) error {
	if len(name) > maxNameLen {
		return fmt.Errorf("name of %d bytes too long for a SOCKS5 relay", len(name))
	}
	bp := udpBufPool.Get().(*[]byte)
	defer udpBufPool.Put(bp)
	buf := *bp
	buf[0], buf[1], buf[2], buf[3] = 0, 0, 0, atypDomain // RSV, FRAG, ATYP
	buf[4] = byte(len(name))
	n := 5 + copy(buf[5:], name)
	buf[n], buf[n+1] = byte(port>>8), byte(port)
	return c.relay(buf, n+2, p)
}
