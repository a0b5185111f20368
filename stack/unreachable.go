package stack

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/stack/icmpmsg"
)

// PortUnreachable tells the app at src that dst refused its UDP datagrams,
// as the real destination told us: an ICMP port unreachable from dst's
// address (icmpmsg.PortUnreachablePacket), so the app's socket reports
// "connection refused".
func (s *Stack) PortUnreachable(src, dst netip.AddrPort) error {
	return s.writeRaw(icmpmsg.PortUnreachablePacket(src, dst))
}

// writeRaw writes one whole IPv4 or IPv6 packet to the device: straight
// to the link on the fast path, else through gVisor's NIC.
func (s *Stack) writeRaw(pkt []byte) error {
	if s.fast != nil {
		return s.fast.WriteIP(pkt)
	}
	return AsError(s.gv.WriteRawPacket(nicID, protocolOf(pkt), buffer.MakeWithData(pkt)))
}

// protocolOf is the network protocol of a whole packet, from its version.
func protocolOf(pkt []byte) tcpip.NetworkProtocolNumber {
	if len(pkt) > 0 && pkt[0]>>4 == 6 {
		return header.IPv6ProtocolNumber
	}
	return header.IPv4ProtocolNumber
}
