package stack

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/nested"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// EchoRequest is an ICMP or ICMPv6 echo request that an app sent through
// the device. The stack never answers it itself: a reply must come from the
// real destination, through Reply.
type EchoRequest struct {
	// Src is the app's address, Dst the address it pinged.
	Src, Dst netip.Addr
	// ID and Seq are the echo identifier and sequence number.
	ID, Seq uint16
	// Payload is the echo data, owned by the request.
	Payload []byte

	write func(proto tcpip.NetworkProtocolNumber, pkt []byte) tcpip.Error
}

// Reply sends an echo reply from Dst to Src carrying the request's ID,
// Seq and payload, with the given TTL (hop limit).
func (r *EchoRequest) Reply(ttl uint8) error {
	pkt, proto := buildEchoReply(r, ttl)
	return AsError(r.write(proto, pkt))
}

// echoTap sits between the link endpoint and the stack and takes echo
// requests out of the inbound path before gVisor, which would answer every
// ping itself in promiscuous mode.
type echoTap struct {
	nested.Endpoint
	gv      *gvstack.Stack
	handler Handler
}

func newEchoTap(child gvstack.LinkEndpoint, gv *gvstack.Stack, h Handler) *echoTap {
	t := &echoTap{gv: gv, handler: h}
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
			req.write = t.writeRaw
			t.handler.HandleEcho(req)
			return
		}
	}
	t.Endpoint.DeliverNetworkPacket(proto, pkt)
}

func (t *echoTap) writeRaw(proto tcpip.NetworkProtocolNumber, pkt []byte) tcpip.Error {
	return t.gv.WriteRawPacket(nicID, proto, buffer.MakeWithData(pkt))
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
func parseEcho(b []byte) (*EchoRequest, bool) {
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

func parseEcho4(b []byte) (*EchoRequest, bool) {
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

func parseEcho6(b []byte) (*EchoRequest, bool) {
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

func newEchoRequest(src, dst tcpip.Address, id, seq uint16, payload []byte) *EchoRequest {
	s, _ := netip.AddrFromSlice(src.AsSlice())
	d, _ := netip.AddrFromSlice(dst.AsSlice())
	return &EchoRequest{Src: s, Dst: d, ID: id, Seq: seq, Payload: append([]byte(nil), payload...)}
}

func buildEchoReply(r *EchoRequest, ttl uint8) ([]byte, tcpip.NetworkProtocolNumber) {
	src := tcpip.AddrFromSlice(r.Dst.AsSlice())
	dst := tcpip.AddrFromSlice(r.Src.AsSlice())
	if r.Src.Is4() {
		pkt := make([]byte, header.IPv4MinimumSize+header.ICMPv4MinimumSize+len(r.Payload))
		ip := header.IPv4(pkt)
		ip.Encode(&header.IPv4Fields{
			TotalLength: uint16(len(pkt)), TTL: ttl, Protocol: uint8(header.ICMPv4ProtocolNumber),
			SrcAddr: src, DstAddr: dst,
		})
		ip.SetChecksum(^ip.CalculateChecksum())
		icmp := header.ICMPv4(ip.Payload())
		icmp.SetType(header.ICMPv4EchoReply)
		icmp.SetIdent(r.ID)
		icmp.SetSequence(r.Seq)
		copy(icmp.Payload(), r.Payload)
		icmp.SetChecksum(^checksum.Checksum(icmp, 0))
		return pkt, header.IPv4ProtocolNumber
	}
	pkt := make([]byte, header.IPv6MinimumSize+header.ICMPv6EchoMinimumSize+len(r.Payload))
	ip := header.IPv6(pkt)
	ip.Encode(&header.IPv6Fields{
		PayloadLength: uint16(len(pkt) - header.IPv6MinimumSize), TransportProtocol: header.ICMPv6ProtocolNumber,
		HopLimit: ttl, SrcAddr: src, DstAddr: dst,
	})
	icmp := header.ICMPv6(ip.Payload())
	icmp.SetType(header.ICMPv6EchoReply)
	icmp.SetIdent(r.ID)
	icmp.SetSequence(r.Seq)
	copy(icmp.Payload(), r.Payload)
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: src, Dst: dst}))
	return pkt, header.IPv6ProtocolNumber
}
