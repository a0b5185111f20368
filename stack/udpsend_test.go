package stack

import (
	"bytes"
	"context"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
)

// datagramHandler records datagrams and refuses those to port 9.
type datagramHandler struct {
	recordingHandler
	got chan datagram
}

type datagram struct {
	src, dst netip.AddrPort
	payload  string
}

func (h *datagramHandler) HandleUDPDatagram(src, dst netip.AddrPort, payload []byte) bool {
	select {
	case h.got <- datagram{src, dst, string(payload)}:
	default:
	}
	return dst.Port() != 9
}

func newDatagramStack(t *testing.T) (*Stack, *channel.Endpoint, *datagramHandler) {
	t.Helper()
	link := channel.New(64, 1500, "")
	h := &datagramHandler{got: make(chan datagram, 8)}
	s, err := New(Options{Link: link, Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return s, link, h
}

func udpPacket(t *testing.T, src, dst netip.AddrPort, payload string) []byte {
	t.Helper()
	pkt, _, err := buildUDP(make([]byte, 65600), src, dst, []byte(payload))
	if err != nil {
		t.Fatal(err)
	}
	return append([]byte(nil), pkt...)
}

// readOut returns the next packet the stack wrote to the device.
func readOut(t *testing.T, link *channel.Endpoint) []byte {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	p := link.ReadContext(ctx)
	if p == nil {
		t.Fatal("the stack wrote nothing")
	}
	defer p.DecRef()
	buf := p.ToBuffer()
	return buf.Flatten()
}

func TestDatagramsReachTheHandlerAndRepliesLeaveFromAnySource(t *testing.T) {
	for _, tc := range []struct{ app, far string }{
		{"10.0.0.2:4000", "192.0.2.1:3478"},
		{"[fd00::2]:4000", "[2001:db8::1]:3478"},
	} {
		app, far := netip.MustParseAddrPort(tc.app), netip.MustParseAddrPort(tc.far)
		s, link, h := newDatagramStack(t)
		inject(link, udpPacket(t, app, far, "ping"))
		select {
		case d := <-h.got:
			if d != (datagram{app, far, "ping"}) {
				t.Fatalf("handler got %+v", d)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no datagram reached the handler")
		}
		// A reply from an address the app never sent to.
		other := netip.AddrPortFrom(far.Addr().Next(), 5555)
		if err := s.SendTo(other, app, []byte("pong")); err != nil {
			t.Fatal(err)
		}
		out := readOut(t, link)
		var u header.UDP
		var sum uint16
		if app.Addr().Is4() {
			ip := header.IPv4(out)
			if !ip.IsChecksumValid() || ip.SourceAddress() != tcpipAddr(other.Addr()) || ip.DestinationAddress() != tcpipAddr(app.Addr()) {
				t.Fatalf("bad IPv4 header %x", out[:20])
			}
			u = header.UDP(ip.Payload())
			sum = header.PseudoHeaderChecksum(header.UDPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), u.Length())
		} else {
			ip := header.IPv6(out)
			u = header.UDP(ip.Payload())
			sum = header.PseudoHeaderChecksum(header.UDPProtocolNumber, ip.SourceAddress(), ip.DestinationAddress(), u.Length())
		}
		if checksum.Checksum(u, sum) != 0xffff {
			t.Fatal("bad UDP checksum")
		}
		if u.SourcePort() != other.Port() || u.DestinationPort() != app.Port() || !bytes.Equal(u.Payload(), []byte("pong")) {
			t.Fatalf("reply %d -> %d %q", u.SourcePort(), u.DestinationPort(), u.Payload())
		}
	}
}

func TestMalformedDatagramsNeverReachTheHandler(t *testing.T) {
	_, link, h := newDatagramStack(t)
	app, far := netip.MustParseAddrPort("10.0.0.2:4000"), netip.MustParseAddrPort("192.0.2.1:53")
	badSum := udpPacket(t, app, far, "x")
	badSum[len(badSum)-1] ^= 0xff
	badLen := udpPacket(t, app, far, "x")
	header.UDP(badLen[20:]).SetLength(200)
	for _, p := range [][]byte{badSum, badLen} {
		inject(link, p)
	}
	select {
	case d := <-h.got:
		t.Fatalf("a malformed datagram reached the handler: %+v", d)
	case <-time.After(100 * time.Millisecond):
	}
}

func TestRefusedDatagramGetsPortUnreachable(t *testing.T) {
	_, link, _ := newDatagramStack(t)
	app, far := netip.MustParseAddrPort("10.0.0.2:4000"), netip.MustParseAddrPort("192.0.2.1:9")
	inject(link, udpPacket(t, app, far, "x"))
	out := readOut(t, link)
	icmp := header.ICMPv4(header.IPv4(out).Payload())
	if icmp.Type() != header.ICMPv4DstUnreachable || icmp.Code() != header.ICMPv4PortUnreachable {
		t.Fatalf("answer: ICMP type %d code %d; want port unreachable", icmp.Type(), icmp.Code())
	}
}

func TestSendToAllocations(t *testing.T) {
	if raceEnabled {
		t.Skip("allocation counts are meaningless under the race detector")
	}
	s, link, _ := newDatagramStack(t)
	app, far := netip.MustParseAddrPort("10.0.0.2:4000"), netip.MustParseAddrPort("192.0.2.1:53")
	payload := make([]byte, 512)
	n := testing.AllocsPerRun(100, func() {
		s.SendTo(far, app, payload)
		link.Read().DecRef()
	})
	t.Logf("SendTo: %.1f allocations per datagram (with the channel link's own)", n)
	if n > 2 {
		t.Errorf("SendTo allocates %.1f times per datagram; want at most 2", n)
	}
}
