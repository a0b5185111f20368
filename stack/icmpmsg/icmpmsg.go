// Package icmpmsg builds and parses the ICMP and ICMPv6 messages tungate
// writes itself: echo requests sent from host sockets, and the echo
// replies and port unreachable errors written to apps as whole IPv4 or
// IPv6 packets. It is the one place that knows their byte layout, and it
// imports no gVisor package, so both the stack and the forwarder use it.
package icmpmsg

import (
	"encoding/binary"
	"net/netip"
)

// ICMP and ICMPv6 message types and codes used here.
const (
	typeEchoReply4         = 0
	typeUnreachable4       = 3
	typeEchoRequest4       = 8
	codePortUnreach4       = 3
	typeUnreachable6       = 1
	codePortUnreach6       = 4
	typeEchoRequest6       = 128
	typeEchoReply6         = 129
	protoICMP4             = 1
	protoUDP               = 17
	protoICMP6             = 58
	ipv4HeaderLen          = 20
	ipv6HeaderLen          = 40
	icmpHeaderLen          = 8
	udpHeaderLen           = 8
	defaultTTL       uint8 = 64
)

// Sum is the Internet checksum's one's complement sum of b, added to
// initial, folded to 16 bits (not inverted). An odd trailing byte counts
// as its high half.
func Sum(b []byte, initial uint32) uint16 {
	s := initial
	for len(b) >= 2 {
		s += uint32(b[0])<<8 | uint32(b[1])
		b = b[2:]
	}
	if len(b) == 1 {
		s += uint32(b[0]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}

// AppendEcho appends an echo request (or, with reply, an echo reply)
// message to b: ICMP for IPv4 with its checksum set, ICMPv6 otherwise with
// a zero checksum (the kernel, or the packet builders here, fill it in:
// it covers addresses).
func AppendEcho(b []byte, v4, reply bool, id, seq uint16, payload []byte) []byte {
	typ := byte(typeEchoRequest4)
	switch {
	case v4 && reply:
		typ = typeEchoReply4
	case !v4 && reply:
		typ = typeEchoReply6
	case !v4:
		typ = typeEchoRequest6
	}
	start := len(b)
	b = append(b, typ, 0, 0, 0, byte(id>>8), byte(id), byte(seq>>8), byte(seq))
	b = append(b, payload...)
	if v4 {
		binary.BigEndian.PutUint16(b[start+2:], ^Sum(b[start:], 0))
	}
	return b
}

// ParseEchoReply returns the identifier, sequence number and payload of
// an echo reply message (ICMP for v4, ICMPv6 otherwise); ok is false for
// any other message. payload aliases b.
func ParseEchoReply(b []byte, v4 bool) (id, seq uint16, payload []byte, ok bool) {
	want := byte(typeEchoReply4)
	if !v4 {
		want = typeEchoReply6
	}
	if len(b) < icmpHeaderLen || b[0] != want || b[1] != 0 {
		return 0, 0, nil, false
	}
	return binary.BigEndian.Uint16(b[4:]), binary.BigEndian.Uint16(b[6:]), b[icmpHeaderLen:], true
}

// StripIPv4Header returns what follows the IPv4 header at the start of b
// (raw IPv4 sockets read it along with the message); ok is false if b does
// not start with a whole IPv4 header.
func StripIPv4Header(b []byte) ([]byte, bool) {
	if len(b) < ipv4HeaderLen || b[0]>>4 != 4 {
		return nil, false
	}
	n := int(b[0]&0xf) * 4
	if n < ipv4HeaderLen || len(b) < n {
		return nil, false
	}
	return b[n:], true
}

// EchoReplyPacket is a whole IPv4 or IPv6 packet from src to dst (both of
// one family) carrying an echo reply with id, seq and payload, sent with
// the given TTL (hop limit).
func EchoReplyPacket(src, dst netip.Addr, id, seq uint16, payload []byte, ttl uint8) []byte {
	v4 := src.Is4()
	return packet(src, dst, ttl, AppendEcho(make([]byte, 0, icmpHeaderLen+len(payload)), v4, true, id, seq, payload))
}

// PortUnreachablePacket is a whole IPv4 or IPv6 packet from far's address
// to app's telling app that far refused its UDP datagrams: an ICMP port
// unreachable (ICMPv6 type 1 code 4) quoting the headers of a datagram from
// app to far, so that the app's socket reports "connection refused".
func PortUnreachablePacket(app, far netip.AddrPort) []byte {
	v4 := app.Addr().Is4()
	udp := make([]byte, udpHeaderLen)
	binary.BigEndian.PutUint16(udp[0:], app.Port())
	binary.BigEndian.PutUint16(udp[2:], far.Port())
	binary.BigEndian.PutUint16(udp[4:], udpHeaderLen)
	quote := ipHeader(nil, app.Addr(), far.Addr(), defaultTTL, protoUDP, udpHeaderLen)
	quote = append(quote, udp...)
	msg := []byte{typeUnreachable4, codePortUnreach4, 0, 0, 0, 0, 0, 0}
	if !v4 {
		msg[0], msg[1] = typeUnreachable6, codePortUnreach6
	}
	msg = append(msg, quote...)
	if v4 {
		binary.BigEndian.PutUint16(msg[2:], ^Sum(msg, 0))
	}
	return packet(far.Addr(), app.Addr(), defaultTTL, msg)
}

// packet puts the ICMP (v4) or ICMPv6 message msg into an IP packet from
// src to dst, filling in the ICMPv6 checksum.
func packet(src, dst netip.Addr, ttl uint8, msg []byte) []byte {
	proto := byte(protoICMP4)
	if !src.Is4() {
		proto = protoICMP6
		msg[2], msg[3] = 0, 0
		binary.BigEndian.PutUint16(msg[2:], ^Sum(msg, pseudoSum6(src, dst, len(msg), protoICMP6)))
	}
	pkt := ipHeader(make([]byte, 0, ipv6HeaderLen+len(msg)), src, dst, ttl, proto, len(msg))
	return append(pkt, msg...)
}

// ipHeader appends an IPv4 header (with its checksum) or an IPv6 header
// for a payload of n bytes of protocol proto.
func ipHeader(b []byte, src, dst netip.Addr, ttl, proto uint8, n int) []byte {
	if src.Is4() {
		start := len(b)
		total := ipv4HeaderLen + n
		b = append(b, 0x45, 0, byte(total>>8), byte(total), 0, 0, 0, 0, ttl, proto, 0, 0)
		s, d := src.As4(), dst.As4()
		b = append(b, s[:]...)
		b = append(b, d[:]...)
		binary.BigEndian.PutUint16(b[start+10:], ^Sum(b[start:], 0))
		return b
	}
	b = append(b, 0x60, 0, 0, 0, byte(n>>8), byte(n), proto, ttl)
	s, d := src.As16(), dst.As16()
	b = append(b, s[:]...)
	return append(b, d[:]...)
}

// pseudoSum6 is the sum of the IPv6 pseudo-header (RFC 8200 8.1).
func pseudoSum6(src, dst netip.Addr, n int, proto uint8) uint32 {
	s, d := src.As16(), dst.As16()
	sum := uint32(Sum(s[:], 0)) + uint32(Sum(d[:], 0))
	return sum + uint32(n>>16) + uint32(n&0xffff) + uint32(proto)
}
