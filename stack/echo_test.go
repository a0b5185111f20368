package stack

import (
	"bytes"
	"net/netip"
	"testing"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/stack/flow"
	"github.com/tungate/tungate/stack/icmpmsg"
)

// buildEchoReply is the reply to req as the stack writes it.
func buildEchoReply(req *flow.EchoRequest, ttl uint8) ([]byte, bool) {
	return icmpmsg.EchoReplyPacket(req.Dst, req.Src, req.ID, req.Seq, req.Payload, ttl), req.Src.Is4()
}

func TestEchoReplyRoundTrip(t *testing.T) {
	for _, tc := range []struct{ src, dst string }{
		{"198.18.0.1", "10.1.2.3"},
		{"fd74:6761:7465::1", "fd00::2"},
	} {
		req := &flow.EchoRequest{
			Src: netip.MustParseAddr(tc.src), Dst: netip.MustParseAddr(tc.dst),
			ID: 0x1234, Seq: 7, Payload: []byte("ping payload"),
		}
		// A reply is an echo packet in the other direction; parse it back by
		// turning it into a request (same layout but the type) and compare.
		pkt, _ := buildEchoReply(req, 64)
		if req.Src.Is4() {
			pkt[20] = 8
			fixICMP4(pkt)
		} else {
			pkt[40] = 128
			fixICMP6(pkt)
		}
		got, ok := parseEcho(pkt)
		if !ok {
			t.Fatalf("%s: reply does not parse", tc.src)
		}
		if got.Src != req.Dst || got.Dst != req.Src || got.ID != req.ID || got.Seq != req.Seq || !bytes.Equal(got.Payload, req.Payload) {
			t.Fatalf("%s: round trip gave %+v", tc.src, got)
		}
	}
}

func TestParseEchoRejectsOthers(t *testing.T) {
	req := &flow.EchoRequest{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), ID: 1, Seq: 1}
	reply, _ := buildEchoReply(req, 64)
	cases := map[string][]byte{
		"empty":         nil,
		"one byte":      {0x45},
		"echo reply":    reply,
		"bad checksum":  append(append([]byte(nil), reply[:22]...), 0, 0, 0, 0, 0, 0),
		"version 5":     {0x55, 0, 0, 20, 0, 0, 0, 0, 64, 1, 0, 0, 1, 1, 1, 1, 2, 2, 2, 2},
		"truncated v6":  {0x60, 0, 0, 0, 0, 8, 58, 64},
		"short v4 icmp": reply[:24],
	}
	for name, b := range cases {
		if _, ok := parseEcho(b); ok {
			t.Errorf("%s: parsed as an echo request", name)
		}
	}
}

func FuzzParseEcho(f *testing.F) {
	req := &flow.EchoRequest{Src: netip.MustParseAddr("10.0.0.1"), Dst: netip.MustParseAddr("10.0.0.2"), ID: 1, Seq: 1, Payload: []byte("x")}
	p4, _ := buildEchoReply(req, 64)
	req6 := &flow.EchoRequest{Src: netip.MustParseAddr("fd00::1"), Dst: netip.MustParseAddr("fd00::2"), ID: 1, Seq: 1}
	p6, _ := buildEchoReply(req6, 64)
	f.Add(p4)
	f.Add(p6)
	f.Add([]byte{0x45})
	f.Fuzz(func(t *testing.T, b []byte) {
		req, ok := parseEcho(b)
		if ok {
			buildEchoReply(req, 64)
		}
	})
}

func fixICMP4(pkt []byte) {
	icmp := pkt[20:]
	icmp[2], icmp[3] = 0, 0
	sum := ^checksum.Checksum(icmp, 0)
	icmp[2], icmp[3] = byte(sum>>8), byte(sum)
}

func fixICMP6(pkt []byte) {
	ip := header.IPv6(pkt)
	icmp := header.ICMPv6(ip.Payload())
	icmp.SetChecksum(0)
	icmp.SetChecksum(header.ICMPv6Checksum(header.ICMPv6ChecksumParams{Header: icmp, Src: ip.SourceAddress(), Dst: ip.DestinationAddress()}))
}
