package stack

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// PortUnreachable tells the app at src that dst refused its UDP datagrams,
// as the real destination told us: an ICMP port unreachable (ICMPv6 type 1
// code 4) from dst's address, quoting the headers of a datagram from src to
// dst, so the app's socket reports "connection refused".
func (s *Stack) PortUnreachable(src, dst netip.AddrPort) error {
	pkt, proto := buildPortUnreachable(src, dst)
	return AsError(s.gv.WriteRawPacket(nicID, proto, buffer.MakeWithData(pkt)))
}

func buildPortUnreachable(src, dst netip.AddrPort) ([]byte, tcpip.NetworkProtocolNumber) {
	app := tcpip.AddrFromSlice(src.Addr().AsSlice())
	far := tcpip.AddrFromSlice(dst.Addr().AsSlice())
	udp := make([]byte, header.UDPMinimumSize)
	header.UDP(udp).Encode(&header.UDPFields{SrcPort: src.Port(), DstPort: dst.Port(), Length: header.UDPMinimumSize})
	if src.Addr().Is4() {
		quote := make([]byte, header.IPv4MinimumSize, header.IPv4MinimumSize+len(udp))
		header.IPv4(quote).Encode(&header.IPv4Fields{
			TotalLength: header.IPv4MinimumSize + header.UDPMinimumSize, TTL: 64,
			Protocol: uint8(header.UDPProtocolNumber), SrcAddr: app, DstAddr: far,
		})
		header.IPv4(quote).SetChecksum(^header.IPv4(quote).CalculateChecksum())
		quote = append(quote, udp...)
		pkt := make([]byte, header.IPv4MinimumSize+header.ICMPv4MinimumSize+len(quote))
		ip := header.IPv4(pkt)
		ip.Encode(&header.IPv4Fields{
			TotalLength: uint16(len(pkt)), TTL: 64, Protocol: uint8(header.ICMPv4ProtocolNumber),
			SrcAddr: far, DstAddr: app,
		})
		ip.SetChecksum(^ip.CalculateChecksum())
		icmp := header.ICMPv4(ip.Payload())
		icmp.SetType(header.ICMPv4DstUnreachable)
		icmp.SetCode(header.ICMPv4PortUnreachable)
		copy(icmp[header.ICMPv4MinimumSize:], quote)
		icmp.SetChecksum(^checksum.Checksum(icmp, 0))
		return pkt, header.IPv4ProtocolNumber
	}
	quote := make([]byte, header.IPv6MinimumSize, header.IPv6MinimumSize+len(udp))
	header.IPv6(quote).Encode(&header.IPv6Fields{
		PayloadLength: header.UDPMinimumSize, TransportProtocol: header.UDPProtocolNumber,
		HopLimit: 64, SrcAddr: app, DstAddr: far,
	})
	quote = append(quote, udp...)
	pkt := make([]byte, header.IPv6MinimumSize+header.ICMPv6DstUnreachableMinimumSize+len(quote))
	ip := header.IPv6(pkt)
	ip.Encode(&header.IPv6Fields{
		PayloadLength: uint16(len(pkt) - header.IPv6MinimumSize), TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit: 64, SrcAddr: far, DstAddr: app,
	})
	icmp := header.ICMPv6(ip.Payload())
	icmp.SetType(header.ICMPv6DstUnreachable)
	icmp.SetCode(header.ICMPv6PortUnreachable)
	copy(icmp[header.ICMPv6DstUnreachableMinimumSize:], quote)
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: far, Dst: app}))
	return pkt, header.IPv6ProtocolNumber
}
