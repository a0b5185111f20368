package stack

import (
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"

	"github.com/tungate/tungate/stack/flow"
)

// countingHandler counts the UDP sessions it is offered.
type countingHandler struct {
	recordingHandler
	udp atomic.Int32
}

func (h *countingHandler) HandleUDP(r flow.UDPRequest) {
	h.udp.Add(1)
	r.Refuse()
}

// udp4 is an IPv4 UDP datagram whose length field says length.
func udp4(src, dst netip.AddrPort, payload []byte, length uint16) []byte {
	pkt := make([]byte, header.IPv4MinimumSize+header.UDPMinimumSize+len(payload))
	ip := header.IPv4(pkt)
	s, d := tcpip.AddrFrom4(src.Addr().As4()), tcpip.AddrFrom4(dst.Addr().As4())
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(pkt)), TTL: 64, Protocol: uint8(header.UDPProtocolNumber), SrcAddr: s, DstAddr: d})
	ip.SetChecksum(^ip.CalculateChecksum())
	u := header.UDP(ip.Payload())
	u.Encode(&header.UDPFields{SrcPort: src.Port(), DstPort: dst.Port(), Length: length})
	copy(u.Payload(), payload)
	xsum := header.PseudoHeaderChecksum(header.UDPProtocolNumber, s, d, uint16(len(u)))
	u.SetChecksum(^checksum.Checksum(u, xsum))
	return pkt
}

// TestMalformedUDPNeverReachesHandler: a datagram whose length field
// disagrees with the packet is dropped before the handler is asked for a
// session (so no host socket is ever opened for it); a good one is offered.
func TestMalformedUDPNeverReachesHandler(t *testing.T) {
	link := channel.New(64, 1500, "")
	h := &countingHandler{}
	s, err := New(Options{Link: link, Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	src, dst := netip.MustParseAddrPort("198.18.0.1:40000"), netip.MustParseAddrPort("10.9.9.9:53")
	payload := []byte("query")
	for _, length := range []uint16{3, 200, header.UDPMinimumSize + 2} {
		inject(link, udp4(src, dst, payload, length))
	}
	time.Sleep(100 * time.Millisecond)
	if n := h.udp.Load(); n != 0 {
		t.Fatalf("%d malformed datagrams reached the handler", n)
	}
	inject(link, udp4(src, dst, payload, uint16(header.UDPMinimumSize+len(payload))))
	time.Sleep(100 * time.Millisecond)
	if n := h.udp.Load(); n != 1 {
		t.Fatalf("a good datagram reached the handler %d times, want once", n)
	}
}
