package stack

import (
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/stack/icmpmsg"
)

func TestPortUnreachablePacket(t *testing.T) {
	app, far := netip.MustParseAddrPort("198.18.0.1:5353"), netip.MustParseAddrPort("10.9.9.9:53")
	pkt, _ := icmpmsg.PortUnreachablePacket(app, far), 0
	ip := header.IPv4(pkt)
	if !ip.IsValid(len(pkt)) || ip.CalculateChecksum() != 0xffff {
		t.Fatal("outer IPv4 header invalid")
	}
	if ip.SourceAddress().String() != "10.9.9.9" || ip.DestinationAddress().String() != "198.18.0.1" {
		t.Fatalf("from %v to %v", ip.SourceAddress(), ip.DestinationAddress())
	}
	icmp := header.ICMPv4(ip.Payload())
	if icmp.Type() != header.ICMPv4DstUnreachable || icmp.Code() != header.ICMPv4PortUnreachable || checksum.Checksum(icmp, 0) != 0xffff {
		t.Fatalf("ICMP type %d code %d, checksum ok %v", icmp.Type(), icmp.Code(), checksum.Checksum(icmp, 0) == 0xffff)
	}
	quoted := header.IPv4(icmp[header.ICMPv4MinimumSize:])
	udp := header.UDP(quoted.Payload())
	if quoted.SourceAddress().String() != "198.18.0.1" || udp.SourcePort() != 5353 || udp.DestinationPort() != 53 {
		t.Fatalf("quotes %v:%d -> %d", quoted.SourceAddress(), udp.SourcePort(), udp.DestinationPort())
	}

	app6, far6 := netip.MustParseAddrPort("[fd74:6761:7465::1]:5353"), netip.MustParseAddrPort("[fd00::9]:53")
	pkt6, _ := icmpmsg.PortUnreachablePacket(app6, far6), 0
	ip6 := header.IPv6(pkt6)
	icmp6 := header.ICMPv6(ip6.Payload())
	sum := header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp6, Src: ip6.SourceAddress(), Dst: ip6.DestinationAddress()})
	if !ip6.IsValid(len(pkt6)) || icmp6.Type() != header.ICMPv6DstUnreachable || icmp6.Code() != header.ICMPv6PortUnreachable || sum != icmp6.Checksum() {
		t.Fatal("ICMPv6 port unreachable invalid")
	}
}
