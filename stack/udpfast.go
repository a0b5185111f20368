package stack

import (
	"net/netip"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/tungate/tungate/stack/flow"
	"github.com/tungate/tungate/stack/tunlink"
)

// fastLink is a link that can take UDP datagrams past gVisor and write
// whole packets to the device (*tunlink.Endpoint). A Capture around one is
// not: with --pcap every packet crosses gVisor's sniffer, so the capture
// stays complete.
type fastLink interface {
	SetUDPHandler(tunlink.UDPHandler) error
	WriteIP(pkt []byte) error
	WriteUDPSegments(hdr []byte, segs [][]byte) error
}

var _ fastLink = (*tunlink.Endpoint)(nil)

// fastUDP is the UDP fast path: datagrams from the device go from the
// link's reader straight to the flow.DatagramHandler, with none of
// gVisor's per-packet work (packet buffer, IP checks, demultiplexing);
// replies go from SendTo straight to the link (WriteIP). What the link
// does not take as plain (fragments, options, odd addresses, bad
// checksums) still goes through gVisor and datagramPath, to the same
// handler, so each datagram is handled once either way.
type fastUDP struct {
	s *Stack
	h flow.DatagramHandler
}

// HandleUDP implements tunlink.UDPHandler. A datagram for one of the
// stack's own UDP sockets (DialUDP's) is left to gVisor, which delivers
// it there; a refused one is answered with ICMP port unreachable within
// the stack's ICMP rate, and counted as gVisor counts datagrams for no
// endpoint.
func (f *fastUDP) HandleUDP(src, dst netip.AddrPort, payload []byte) bool {
	if f.s.ownUDP.Load() > 0 && f.s.ownsUDP(src, dst) {
		return false
	}
	if f.h.HandleUDPDatagram(src, dst, payload) {
		return true
	}
	f.s.gv.Stats().UDP.UnknownPortErrors.Increment()
	if f.s.gv.AllowICMPMessage() {
		_ = f.s.PortUnreachable(src, dst)
	}
	return true
}

// ownsUDP reports whether a datagram from src to dst is for a UDP
// endpoint of gVisor's own.
func (s *Stack) ownsUDP(src, dst netip.AddrPort) bool {
	id := gvstack.TransportEndpointID{
		LocalAddress: tcpipAddr(dst.Addr()), LocalPort: dst.Port(),
		RemoteAddress: tcpipAddr(src.Addr()), RemotePort: src.Port(),
	}
	return s.gv.FindTransportEndpoint(protocolOfAddr(dst.Addr()), udp.ProtocolNumber, id, nicID) != nil
}

// startFastUDP turns the fast path on when link can take it and the
// handler takes datagrams one by one; before the NIC exists, as the link
// requires.
func (s *Stack) startFastUDP(link gvstack.LinkEndpoint, h Handler) error {
	dh, ok := h.(flow.DatagramHandler)
	fl, canFast := link.(fastLink)
	if !ok || !canFast {
		return nil
	}
	if err := fl.SetUDPHandler(&fastUDP{s: s, h: dh}); err != nil {
		return err
	}
	s.fast = fl
	return nil
}

// ownUDPConn is a UDP socket of the stack's own (DialUDP): while any is
// open, the fast path asks gVisor whether a datagram is for one.
type ownUDPConn struct {
	*gonet.UDPConn
	s    *Stack
	once sync.Once
}

func (c *ownUDPConn) Close() error {
	err := c.UDPConn.Close()
	c.once.Do(func() { c.s.ownUDP.Add(-1) })
	return err
}
