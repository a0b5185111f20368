package tunlink

import (
	"encoding/binary"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// checksumsValid checks the IPv4 header checksum and the TCP or UDP checksum
// of an inbound packet the kernel did not vouch for. first is the packet's
// first view (it holds the IP header); pkt is the whole packet. What it
// cannot check it passes: IPv4 fragments (the checksum covers the reassembled
// datagram), IPv6 packets with extension headers, and lengths the stack will
// reject as malformed anyway. ICMP the stack always checks itself.
func checksumsValid(proto tcpip.NetworkProtocolNumber, first []byte, pkt *buffer.Buffer) bool {
	var trans tcpip.TransportProtocolNumber
	var src, dst tcpip.Address
	var l4Off int
	switch proto {
	case header.IPv4ProtocolNumber:
		ip := header.IPv4(first)
		l4Off = int(ip.HeaderLength())
		if l4Off < header.IPv4MinimumSize || l4Off > int(pkt.Size()) {
			return true
		}
		if !ip.IsChecksumValid() {
			return false
		}
		if ip.More() || ip.FragmentOffset() != 0 {
			return true
		}
		trans, src, dst = ip.TransportProtocol(), ip.SourceAddress(), ip.DestinationAddress()
	case header.IPv6ProtocolNumber:
		ip := header.IPv6(first)
		l4Off = header.IPv6MinimumSize
		trans, src, dst = ip.TransportProtocol(), ip.SourceAddress(), ip.DestinationAddress()
	default:
		return true
	}
	l4Len := int(pkt.Size()) - l4Off
	switch trans {
	case header.TCPProtocolNumber:
		if l4Len < header.TCPMinimumSize {
			return true
		}
	case header.UDPProtocolNumber:
		if l4Len < header.UDPMinimumSize {
			return true
		}
		// A zero UDP checksum over IPv4 means the sender made none.
		if proto == header.IPv4ProtocolNumber && binary.BigEndian.Uint16(first[l4Off+udpChecksumOffset:]) == 0 {
			return true
		}
	default:
		return true
	}
	pseudo := header.PseudoHeaderChecksum(trans, src, dst, uint16(l4Len))
	return checksum.Combine(pseudo, pkt.Checksum(l4Off)) == 0xffff
}
