package proxy

import (
	"context"
	"fmt"
	"net/netip"
)

var _ PacketListener = (*SOCKS5)(nil)

// ListenPacket implements PacketListener with one UDP ASSOCIATE that
// carries datagrams to every destination: each datagram names its own
// destination in its SOCKS5 header (RFC 1928 §7), and whatever the relay
// sends back is delivered with the source it names. The mapping the world
// sees is the proxy's.
func (s *SOCKS5) ListenPacket(ctx context.Context, network string) (PacketConn, error) {
	// The association does not depend on a destination: DialPacket's only
	// use of it is the header and the check of replies, which the packet
	// conn does per datagram instead.
	c, err := s.DialPacket(ctx, network, anyDestination)
	if err != nil {
		return nil, err
	}
	return &socks5Packets{assoc: c.(*socks5PacketConn)}, nil
}

// anyDestination stands for "no destination yet" in DialPacket.
const anyDestination = "0.0.0.0:0"

// socks5Packets is a PacketConn on one UDP association.
type socks5Packets struct{ assoc *socks5PacketConn }

// WriteTo sends p to dst through the relay.
func (c *socks5Packets) WriteTo(p []byte, dst netip.AddrPort) error {
	bp := udpBufPool.Get().(*[]byte)
	defer udpBufPool.Put(bp)
	return c.relay(*bp, putSOCKS5UDPHeader(*bp, dst), p)
}

// relay sends p to the relay behind the header of n bytes at the start of
// buf (from udpBufPool).
func (c *socks5Packets) relay(buf []byte, n int, p []byte) error {
	if len(p) > len(buf)-n {
		return fmt.Errorf("datagram of %d bytes too large for a SOCKS5 relay", len(p))
	}
	n += copy(buf[n:], p)
	if _, err := c.assoc.udp.Write(buf[:n]); err != nil {
		return c.assoc.ioErr(err)
	}
	return nil
}

// putSOCKS5UDPHeader writes RSV FRAG ATYP ADDR PORT for dst at the start
// of b (which holds maxUDPHeader bytes) and returns its length. It does
// not allocate, unlike appendSOCKS5Addr.
func putSOCKS5UDPHeader(b []byte, dst netip.AddrPort) int {
	b[0], b[1], b[2] = 0, 0, 0 // RSV, FRAG: no fragmentation
	n := 4
	if a := dst.Addr().Unmap(); a.Is4() {
		b[3] = atypIPv4
		a4 := a.As4()
		n += copy(b[n:], a4[:])
	} else {
		b[3] = atypIPv6
		a16 := a.As16()
		n += copy(b[n:], a16[:])
	}
	b[n], b[n+1] = byte(dst.Port()>>8), byte(dst.Port())
	return n + 2
}

// ReadFrom returns the next datagram the relay sends back, from the source
// the relay names. Fragments and datagrams from a source given by name
// (which cannot be an IP packet's source) are dropped and counted.
func (c *socks5Packets) ReadFrom(p []byte) (int, netip.AddrPort, error) {
	bp := udpBufPool.Get().(*[]byte)
	defer udpBufPool.Put(bp)
	for {
		n, err := c.assoc.udp.Read(*bp)
		if err != nil {
			return 0, netip.AddrPort{}, c.assoc.ioErr(err)
		}
		frag, from, payload, err := parseSOCKS5UDP((*bp)[:n])
		if err != nil || frag != 0 || !from.IP.IsValid() {
			c.assoc.dropped.Add(1)
			continue
		}
		return copy(p, payload), netip.AddrPortFrom(from.IP, from.Port), nil
	}
}

// Close ends the association.
func (c *socks5Packets) Close() error { return c.assoc.Close() }

// Dropped counts the datagrams from the relay that could not be delivered.
func (c *socks5Packets) Dropped() uint64 { return c.assoc.dropped.Load() }
