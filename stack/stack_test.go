package stack

import (
	"context"
	"net/netip"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/channel"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/tungate/tungate/stack/flow"
)

// recordingHandler refuses every flow and records what it saw.
type recordingHandler struct {
	tcp  chan flow.TCPRequest
	echo chan *flow.EchoRequest
}

// Sends never block: HandleEcho runs on the dispatch path.
func (h *recordingHandler) HandleTCP(r flow.TCPRequest) {
	select {
	case h.tcp <- r:
	default:
	}
	r.Refuse()
}

func (h *recordingHandler) HandleUDP(r flow.UDPRequest) { r.Refuse() }

func (h *recordingHandler) HandleEcho(req *flow.EchoRequest) {
	select {
	case h.echo <- req:
	default:
	}
}

func newTestStack(t testing.TB) (*channel.Endpoint, *recordingHandler) {
	link := channel.New(64, 1500, "")
	h := &recordingHandler{tcp: make(chan flow.TCPRequest, 8), echo: make(chan *flow.EchoRequest, 8)}
	s, err := New(Options{Link: link, Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(s.Close)
	return link, h
}

func inject(link *channel.Endpoint, pkt []byte) {
	proto := header.IPv4ProtocolNumber
	if len(pkt) > 0 && pkt[0]>>4 == 6 {
		proto = header.IPv6ProtocolNumber
	}
	p := gvstack.NewPacketBuffer(gvstack.PacketBufferOptions{Payload: buffer.MakeWithData(pkt)})
	link.InjectInbound(proto, p)
	p.DecRef()
}

func syn4(src, dst netip.AddrPort) []byte {
	pkt := make([]byte, header.IPv4MinimumSize+header.TCPMinimumSize)
	ip := header.IPv4(pkt)
	s, d := tcpip.AddrFrom4(src.Addr().As4()), tcpip.AddrFrom4(dst.Addr().As4())
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(pkt)), TTL: 64, Protocol: uint8(header.TCPProtocolNumber), SrcAddr: s, DstAddr: d})
	ip.SetChecksum(^ip.CalculateChecksum())
	tc := header.TCP(ip.Payload())
	tc.Encode(&header.TCPFields{SrcPort: src.Port(), DstPort: dst.Port(), SeqNum: 1, DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagSyn, WindowSize: 65535})
	xsum := header.PseudoHeaderChecksum(header.TCPProtocolNumber, s, d, uint16(len(tc)))
	tc.SetChecksum(^checksum.Checksum(tc, xsum))
	return pkt
}

func TestSYNToAnyAddressReachesHandlerAndRefusalResets(t *testing.T) {
	link, h := newTestStack(t)
	src, dst := netip.MustParseAddrPort("198.18.0.1:40000"), netip.MustParseAddrPort("10.9.9.9:80")
	inject(link, syn4(src, dst))
	select {
	case r := <-h.tcp:
		if r.Dst() != dst || r.Src() != src {
			t.Fatalf("handler got %v -> %v", r.Src(), r.Dst())
		}
	case <-time.After(2 * time.Second):
		t.Fatal("no TCP request reached the handler")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	out := link.ReadContext(ctx)
	if out == nil {
		t.Fatal("no reset written back")
	}
	defer out.DecRef()
	b := out.ToView().AsSlice()
	ip := header.IPv4(b)
	tc := header.TCP(ip.Payload())
	if ip.SourceAddress().String() != "10.9.9.9" || !tc.Flags().Contains(header.TCPFlagRst) {
		t.Fatalf("wrote %v from %v; want RST from 10.9.9.9", tc.Flags(), ip.SourceAddress())
	}
}

func TestEchoRequestGoesToHandlerNotAnsweredByStack(t *testing.T) {
	link, h := newTestStack(t)
	req := &flow.EchoRequest{Src: netip.MustParseAddr("10.9.9.9"), Dst: netip.MustParseAddr("198.18.0.1"), ID: 9, Seq: 3, Payload: []byte("hi")}
	pkt, _ := buildEchoReply(req, 64) // a reply from 198.18.0.1 to 10.9.9.9...
	pkt[20] = byte(header.ICMPv4Echo) // ...turned into a request
	fixICMP4(pkt)
	inject(link, pkt)
	select {
	case got := <-h.echo:
		if got.Dst.String() != "10.9.9.9" || got.ID != 9 || got.Seq != 3 {
			t.Fatalf("handler got %+v", got)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("echo request did not reach the handler")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	if out := link.ReadContext(ctx); out != nil {
		out.DecRef()
		t.Fatal("the stack answered the ping itself")
	}
}

// FuzzInbound feeds arbitrary bytes from the TUN side: nothing may panic.
func FuzzInbound(f *testing.F) {
	f.Add(syn4(netip.MustParseAddrPort("198.18.0.1:1"), netip.MustParseAddrPort("10.0.0.1:2")))
	f.Add([]byte{0x45, 0, 0, 20})
	f.Add([]byte{0x60, 0, 0, 0, 0, 0, 58, 64})
	link, _ := newTestStack(f)
	f.Fuzz(func(t *testing.T, b []byte) {
		inject(link, b)
		link.Drain()
	})
}
