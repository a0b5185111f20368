package icmpmsg

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

func TestEchoRoundTrip(t *testing.T) {
	for _, v4 := range []bool{true, false} {
		msg := AppendEcho(nil, v4, true, 0x1234, 7, []byte("payload"))
		if v4 && Sum(msg, 0) != 0xffff {
			t.Errorf("v4: checksum does not verify")
		}
		id, seq, payload, ok := ParseEchoReply(msg, v4)
		if !ok || id != 0x1234 || seq != 7 || !bytes.Equal(payload, []byte("payload")) {
			t.Errorf("v4=%v: parsed %d %d %q %v", v4, id, seq, payload, ok)
		}
		if _, _, _, ok := ParseEchoReply(AppendEcho(nil, v4, false, 1, 1, nil), v4); ok {
			t.Errorf("v4=%v: a request parsed as a reply", v4)
		}
	}
}

// TestPacketsVerify checks the IP header and ICMP checksums of the whole
// packets (the IPv6 one over its pseudo-header).
func TestPacketsVerify(t *testing.T) {
	app4, far4 := netip.MustParseAddrPort("198.18.0.1:5353"), netip.MustParseAddrPort("10.9.9.9:53")
	app6, far6 := netip.MustParseAddrPort("[fd74:6761:7465::1]:5353"), netip.MustParseAddrPort("[fd00::9]:53")
	for _, pkt := range [][]byte{
		PortUnreachablePacket(app4, far4),
		EchoReplyPacket(far4.Addr(), app4.Addr(), 1, 2, []byte("x"), 64),
	} {
		if Sum(pkt[:ipv4HeaderLen], 0) != 0xffff || Sum(pkt[ipv4HeaderLen:], 0) != 0xffff || int(binary.BigEndian.Uint16(pkt[2:])) != len(pkt) {
			t.Errorf("IPv4 packet % x does not verify", pkt)
		}
	}
	for _, pkt := range [][]byte{
		PortUnreachablePacket(app6, far6),
		EchoReplyPacket(far6.Addr(), app6.Addr(), 1, 2, []byte("xyz"), 64),
	} {
		src, _ := netip.AddrFromSlice(pkt[8:24])
		dst, _ := netip.AddrFromSlice(pkt[24:40])
		msg := pkt[ipv6HeaderLen:]
		if Sum(msg, pseudoSum6(src, dst, len(msg), protoICMP6)) != 0xffff || int(binary.BigEndian.Uint16(pkt[4:])) != len(msg) {
			t.Errorf("IPv6 packet % x does not verify", pkt)
		}
	}
}

func FuzzParse(f *testing.F) {
	f.Add(AppendEcho(nil, true, true, 1, 2, []byte("x")), true)
	f.Add(append([]byte{0x45, 0, 0, 28, 0, 0, 0, 0, 64, 1, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2}, AppendEcho(nil, true, true, 1, 2, nil)...), true)
	f.Add([]byte{0x4f}, true)
	f.Fuzz(func(t *testing.T, b []byte, v4 bool) {
		if rest, ok := StripIPv4Header(b); ok {
			b = rest
		}
		ParseEchoReply(b, v4)
	})
}
