package stack

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/tungate/tungate/stack/flow"
	"github.com/tungate/tungate/stack/icmpmsg"
)

// echoTap sits between the link endpoint and the stack and takes echo
// requests out of the inbound path before gVisor, which would answer every
// ping itself in promiscuous mode.
type echoTap struct {
	nested.Endpoint
	s       *Stack
	handler Handler
}

func newEchoTap(child gvstack.LinkEndpoint, s *Stack, h Handler) *echoTap {
	t := &echoTap{s: s, handler: h}
	t.Endpoint.Init(child, t)
	return t
}

// DeliverNetworkPacket implements gvstack.NetworkDispatcher.
func (t *echoTap) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *gvstack.PacketBuffer) {
	if mayBeEcho(pkt) {
		buf := pkt.Data().ToBuffer()
		req, ok := parseEcho(buf.Flatten())
		buf.Release()
		if ok {
			req.Replier = t.s
			t.handler.HandleEcho(req)
			return
		}
	}
	t.Endpoint.DeliverNetworkPacket(proto, pkt)
}

// ReplyEcho implements flow.EchoReplier.
func (s *Stack) ReplyEcho(req *flow.EchoRequest, ttl uint8) error {
	return s.writeRaw(icmpmsg.EchoReplyPacket(req.Dst, req.Src, req.ID, req.Seq, req.Payload, ttl))
}

// mayBeEcho looks at the first bytes only, so that the common path (TCP,
// UDP) costs no copy.
func mayBeEcho(pkt *gvstack.PacketBuffer) bool {
	b, ok := pkt.Data().PullUp(1)
	if !ok {
		return false
	}
	switch b[0] >> 4 {
	case 4:
		h, ok := pkt.Data().PullUp(header.IPv4MinimumSize)
		return ok && h[9] == uint8(header.ICMPv4ProtocolNumber)
	case 6:
		h, ok := pkt.Data().PullUp(header.IPv6MinimumSize)
		return ok && h[6] == uint8(header.ICMPv6ProtocolNumber)
	}
	return false
}

// parseEcho recognises an unfragmented ICMP/ICMPv6 echo request with a valid
// checksum. Anything else is left to gVisor.
func parseEcho(b []byte) (*flow.EchoRequest, bool) {
	if len(b) == 0 {
		return nil, false
	}
	switch b[0] >> 4 {
	case 4:
		return parseEcho4(b)
	case 6:
		return parseEcho6(b)
	}
	return nil, false
}

func parseEcho4(b []byte) (*flow.EchoRequest, bool) {
	ip := header.IPv4(b)
	if !ip.IsValid(len(b)) || ip.Protocol() != uint8(header.ICMPv4ProtocolNumber) ||
		ip.More() || ip.FragmentOffset() != 0 || ip.CalculateChecksum() != 0xffff {
		return nil, false
	}
	icmp := header.ICMPv4(ip.Payload())
	if len(icmp) < header.ICMPv4MinimumSize || icmp.Type() != header.ICMPv4Echo || icmp.Code() != 0 ||
		checksum.Checksum(icmp, 0) != 0xffff {
		return nil, false
	}
	return newEchoRequest(ip.SourceAddress(), ip.DestinationAddress(), icmp.Ident(), icmp.Sequence(), icmp.Payload()), true
}

func parseEcho6(b []byte) (*flow.EchoRequest, bool) {
	ip := header.IPv6(b)
	if !ip.IsValid(len(b)) || ip.TransportProtocol() != header.ICMPv6ProtocolNumber {
		return nil, false
	}
	icmp := header.ICMPv6(ip.Payload())
	if len(icmp) < header.ICMPv6EchoMinimumSize || icmp.Type() != header.ICMPv6EchoRequest || icmp.Code() != 0 {
		return nil, false
	}
	sum := header.ICMPv6Checksum(header.ICMPv6ChecksumParams{
		Header: icmp, Src: ip.SourceAddress(), Dst: ip.DestinationAddress(),
	})
	if sum != icmp.Checksum() {
		return nil, false
	}
	return newEchoRequest(ip.SourceAddress(), ip.DestinationAddress(), icmp.Ident(), icmp.Sequence(), icmp.Payload()), true
}

func newEchoRequest(src, dst tcpip.Address, id, seq uint16, payload []byte) *flow.EchoRequest {
	s, _ := netip.AddrFromSlice(src.AsSlice())
	d, _ := netip.AddrFromSlice(dst.AsSlice())
	return &flow.EchoRequest{Src: s, Dst: d, ID: id, Seq: seq, Payload: append([]byte(nil), payload...)}
}
