package tunlink

import (
	"bytes"
	"fmt"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/tungate/tungate/internal/leaktest"
)

func withVnetHdr(h vnetHdr, pkt []byte) []byte {
	b := make([]byte, VnetHdrLen+len(pkt))
	h.encode(b[:VnetHdrLen])
	copy(b[VnetHdrLen:], pkt)
	return b
}

func TestReadDelivers(t *testing.T) {
	payload := []byte("hello through the tun")
	for _, tc := range []struct {
		name  string
		vnet  bool
		hdr   vnetHdr
		pkt   []byte
		proto tcpip.NetworkProtocolNumber
	}{
		{name: "ipv4", pkt: ipv4UDP(payload), proto: header.IPv4ProtocolNumber},
		{name: "ipv6", pkt: ipv6UDP(payload), proto: header.IPv6ProtocolNumber},
		{name: "ipv4 vnet plain", vnet: true, pkt: ipv4UDP(payload), proto: header.IPv4ProtocolNumber},
		{name: "ipv6 vnet partial csum", vnet: true, hdr: vnetHdr{flags: vnetFlagNeedsCsum, csumStart: 40, csumOffset: 6},
			pkt: ipv6UDP(payload), proto: header.IPv6ProtocolNumber},
		{name: "ipv4 vnet data valid", vnet: true, hdr: vnetHdr{flags: vnetFlagDataValid},
			pkt: ipv4UDP(payload), proto: header.IPv4ProtocolNumber},
		{name: "ipv4 vnet gso", vnet: true, hdr: vnetHdr{flags: vnetFlagNeedsCsum, gsoType: vnetGSOTCPv4, gsoSize: 1448, hdrLen: 52},
			pkt: ipv4UDP(make([]byte, 60000)), proto: header.IPv4ProtocolNumber},
		{name: "ipv6 vnet gso ecn", vnet: true, hdr: vnetHdr{flags: vnetFlagNeedsCsum, gsoType: vnetGSOTCPv6 | vnetGSOECN, gsoSize: 1428},
			pkt: ipv6UDP(make([]byte, 65000)), proto: header.IPv6ProtocolNumber},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours, peer := socketPair(t)
			ep := newTestEndpoint(t, ours, tc.vnet)
			d := newRecordingDispatcher()
			ep.Attach(d)

			writePeer(t, peer, onWire(tc.vnet, tc.hdr, tc.pkt))
			got := d.next(t)
			if got.proto != tc.proto {
				t.Errorf("protocol = %d, want %d", got.proto, tc.proto)
			}
			if !bytes.Equal(got.data, tc.pkt) {
				t.Errorf("delivered %d bytes, want %d; differ", len(got.data), len(tc.pkt))
			}
			if st := ep.Stats(); st.RxPackets != 1 || st.RxBytes != uint64(len(tc.pkt)) {
				t.Errorf("stats = %+v, want 1 packet of %d bytes", st, len(tc.pkt))
			}
		})
	}
}

func TestReadDropsMalformed(t *testing.T) {
	good := ipv4UDP([]byte("ok"))
	longer := ipv4UDP([]byte("claims more than it has"))
	longer = longer[:len(longer)-5]
	v5 := bytes.Clone(good)
	v5[0] = 0x55
	badUDP := bytes.Clone(good)
	badUDP[len(badUDP)-1]++
	badIP := bytes.Clone(good)
	badIP[8]-- // TTL
	v6NoSum := ipv6UDP([]byte("ipv6 needs a UDP checksum"))
	for _, tc := range []struct {
		name  string
		vnet  bool
		wire  []byte
		count func(Stats) uint64
	}{
		{"empty", false, nil, func(s Stats) uint64 { return s.RxShort }},
		{"one byte", false, []byte{0x45}, func(s Stats) uint64 { return s.RxShort }},
		{"short ipv6", false, make6(10), func(s Stats) uint64 { return s.RxShort }},
		{"version 5", false, v5, func(s Stats) uint64 { return s.RxBadVersion }},
		{"truncated", false, longer, func(s Stats) uint64 { return s.RxTruncated }},
		{"vnet empty", true, nil, func(s Stats) uint64 { return s.RxShort }},
		{"vnet hdr truncated", true, make([]byte, 5), func(s Stats) uint64 { return s.RxShort }},
		{"vnet hdr only", true, make([]byte, VnetHdrLen), func(s Stats) uint64 { return s.RxShort }},
		{"vnet one byte", true, withVnetHdr(vnetHdr{}, []byte{0x60}), func(s Stats) uint64 { return s.RxShort }},
		{"vnet udp gso", true, withVnetHdr(vnetHdr{gsoType: 3}, good), func(s Stats) uint64 { return s.RxBadVnetHdr }},
		{"vnet bad udp checksum", true, withVnetHdr(vnetHdr{}, badUDP), func(s Stats) uint64 { return s.RxBadChecksum }},
		{"vnet bad ip checksum", true, withVnetHdr(vnetHdr{}, badIP), func(s Stats) uint64 { return s.RxBadChecksum }},
		{"vnet ipv6 no udp checksum", true, withVnetHdr(vnetHdr{}, v6NoSum), func(s Stats) uint64 { return s.RxBadChecksum }},
		{"vnet version 0", true, withVnetHdr(vnetHdr{}, make([]byte, 40)), func(s Stats) uint64 { return s.RxBadVersion }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours, peer := socketPair(t)
			ep := newTestEndpoint(t, ours, tc.vnet)
			d := newRecordingDispatcher()
			ep.Attach(d)

			writePeer(t, peer, tc.wire)
			// A good packet behind the bad one proves the reader went on.
			next := good
			if tc.vnet {
				next = withVnetHdr(vnetHdr{}, good)
			}
			writePeer(t, peer, next)
			if got := d.next(t); !bytes.Equal(got.data, good) {
				t.Fatalf("delivered %x, want the good packet %x", got.data, good)
			}
			d.none(t)
			st := ep.Stats()
			if tc.count(st) != 1 || st.RxPackets != 1 {
				t.Errorf("stats = %+v, want the drop counted once and 1 packet delivered", st)
			}
		})
	}
}

func make6(n int) []byte {
	b := make([]byte, n)
	b[0] = 0x60
	return b
}

func TestWritePackets(t *testing.T) {
	payload := bytes.Repeat([]byte("0123456789"), 400)
	for _, tc := range []struct {
		name  string
		proto tcpip.NetworkProtocolNumber
		gso   stack.GSO
		want  vnetHdr // with vnet; csumStart/hdrLen checked too
	}{
		{name: "ipv4 gso", proto: header.IPv4ProtocolNumber,
			gso:  stack.GSO{Type: stack.GSOTCPv4, NeedsCsum: true, CsumOffset: 16, MSS: 1460, L3HdrLen: 20},
			want: vnetHdr{flags: vnetFlagNeedsCsum, gsoType: vnetGSOTCPv4, gsoSize: 1460, hdrLen: 40, csumStart: 20, csumOffset: 16}},
		{name: "ipv6 gso", proto: header.IPv6ProtocolNumber,
			gso:  stack.GSO{Type: stack.GSOTCPv6, NeedsCsum: true, CsumOffset: 16, MSS: 1440, L3HdrLen: 40},
			want: vnetHdr{flags: vnetFlagNeedsCsum, gsoType: vnetGSOTCPv6, gsoSize: 1440, hdrLen: 60, csumStart: 40, csumOffset: 16}},
		{name: "ipv4 gso below mss", proto: header.IPv4ProtocolNumber,
			gso:  stack.GSO{Type: stack.GSOTCPv4, NeedsCsum: true, CsumOffset: 16, MSS: 9000, L3HdrLen: 20},
			want: vnetHdr{flags: vnetFlagNeedsCsum, hdrLen: 40, csumStart: 20, csumOffset: 16}},
		{name: "ipv4 no gso", proto: header.IPv4ProtocolNumber,
			want: vnetHdr{flags: vnetFlagNeedsCsum, hdrLen: 40, csumStart: 20, csumOffset: 16}},
	} {
		for _, vnet := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s vnet=%v", tc.name, vnet), func(t *testing.T) {
				ours, peer := socketPair(t)
				ep := newTestEndpoint(t, ours, vnet)
				pkt := outboundTCP(tc.proto, payload)
				defer pkt.DecRef()
				pkt.GSOOptions = tc.gso
				if tc.gso.NeedsCsum {
					pseudo := tcpPseudo(pkt)
					header.TCP(pkt.TransportHeader().Slice()).SetChecksum(pseudo)
				}
				want := bytes.Clone(pkt.ToView().AsSlice())

				var pkts stack.PacketBufferList
				pkts.PushBack(pkt)
				if n, err := ep.WritePackets(pkts); n != 1 || err != nil {
					t.Fatalf("WritePackets = %d, %v; want 1, nil", n, err)
				}
				got := readPeer(t, peer)
				if !vnet {
					if !bytes.Equal(got, want) {
						t.Fatalf("peer got %x\nwant %x", got, want)
					}
					return
				}
				if len(got) < VnetHdrLen {
					t.Fatalf("peer got %d bytes, want a virtio-net header", len(got))
				}
				h := decodeVnetHdr(got)
				if h != tc.want {
					t.Errorf("virtio-net header = %+v, want %+v", h, tc.want)
				}
				ip := got[VnetHdrLen:]
				finishChecksum(ip, h)
				checkTCPChecksum(t, tc.proto, ip)
				if !bytes.Equal(ip[:h.csumStart+16], want[:h.csumStart+16]) || !bytes.Equal(ip[h.csumStart+18:], want[h.csumStart+18:]) {
					t.Errorf("packet after the header differs outside the checksum field")
				}
			})
		}
	}
}

// tcpPseudo is the partial checksum the stack's TCP writes with GSO on.
func tcpPseudo(pkt *stack.PacketBuffer) uint16 {
	nh := pkt.NetworkHeader().Slice()
	l4 := uint16(pkt.Size() - len(nh))
	if pkt.NetworkProtocolNumber == header.IPv4ProtocolNumber {
		return header.PseudoHeaderChecksum(header.TCPProtocolNumber, header.IPv4(nh).SourceAddress(), header.IPv4(nh).DestinationAddress(), l4)
	}
	return header.PseudoHeaderChecksum(header.TCPProtocolNumber, header.IPv6(nh).SourceAddress(), header.IPv6(nh).DestinationAddress(), l4)
}

func checkTCPChecksum(t *testing.T, proto tcpip.NetworkProtocolNumber, ip []byte) {
	t.Helper()
	var src, dst tcpip.Address
	var l4 []byte
	if proto == header.IPv4ProtocolNumber {
		src, dst, l4 = header.IPv4(ip).SourceAddress(), header.IPv4(ip).DestinationAddress(), ip[header.IPv4MinimumSize:]
	} else {
		src, dst, l4 = header.IPv6(ip).SourceAddress(), header.IPv6(ip).DestinationAddress(), ip[header.IPv6MinimumSize:]
	}
	pseudo := header.PseudoHeaderChecksum(header.TCPProtocolNumber, src, dst, uint16(len(l4)))
	if sum := checksumFold(l4, pseudo); sum != 0xffff {
		t.Errorf("TCP checksum does not verify after the kernel's step: sum %#x", sum)
	}
}

func TestWriteUDPChecksumOffload(t *testing.T) {
	for _, proto := range []tcpip.NetworkProtocolNumber{header.IPv4ProtocolNumber, header.IPv6ProtocolNumber} {
		t.Run(fmt.Sprint(proto), func(t *testing.T) {
			ours, peer := socketPair(t)
			ep := newTestEndpoint(t, ours, true)
			pkt := outboundUDP(proto, []byte("an answer of odd length"))
			defer pkt.DecRef()
			var pkts stack.PacketBufferList
			pkts.PushBack(pkt)
			if _, err := ep.WritePackets(pkts); err != nil {
				t.Fatalf("WritePackets: %v", err)
			}
			got := readPeer(t, peer)
			h := decodeVnetHdr(got)
			ipLen := header.IPv4MinimumSize
			var src, dst tcpip.Address
			ip := got[VnetHdrLen:]
			if proto == header.IPv6ProtocolNumber {
				ipLen = header.IPv6MinimumSize
				src, dst = header.IPv6(ip).SourceAddress(), header.IPv6(ip).DestinationAddress()
			} else {
				src, dst = header.IPv4(ip).SourceAddress(), header.IPv4(ip).DestinationAddress()
			}
			if h.flags != vnetFlagNeedsCsum || int(h.csumStart) != ipLen || h.csumOffset != udpChecksumOffset {
				t.Fatalf("virtio-net header = %+v, want NEEDS_CSUM at %d+6", h, ipLen)
			}
			finishChecksum(ip, h)
			udp := header.UDP(ip[ipLen:])
			if !udp.IsChecksumValid(src, dst, checksumFold(udp.Payload(), 0)) {
				t.Errorf("UDP checksum %#x does not verify after the kernel's step", udp.Checksum())
			}
		})
	}
}

func TestWriteToFullSocketFails(t *testing.T) {
	ours, _ := socketPair(t)
	ep := newTestEndpoint(t, ours, false)
	pkt := outboundTCP(header.IPv4ProtocolNumber, make([]byte, 60000))
	defer pkt.DecRef()
	var pkts stack.PacketBufferList
	pkts.PushBack(pkt)
	var err tcpip.Error
	for i := 0; i < 1000 && err == nil; i++ {
		_, err = ep.WritePackets(pkts)
	}
	if _, ok := err.(*tcpip.ErrWouldBlock); !ok {
		t.Fatalf("WritePackets into a full socket: %v, want ErrWouldBlock", err)
	}
	if ep.Stats().TxErrors == 0 {
		t.Error("TxErrors = 0 after a refused write")
	}
}

func TestCloseStopsReader(t *testing.T) {
	leaks := leaktest.Take()
	ours, peer := socketPair(t)
	ep, err := New(Options{FD: ours, MTU: 1500})
	if err != nil {
		t.Fatal(err)
	}
	d := newRecordingDispatcher()
	ep.Attach(d)
	if !ep.IsAttached() {
		t.Fatal("IsAttached = false after Attach")
	}
	// Detach and attach again: the reader restarts and still delivers.
	ep.Attach(nil)
	if ep.IsAttached() {
		t.Fatal("IsAttached = true after Attach(nil)")
	}
	ep.Attach(d)
	writePeer(t, peer, ipv4UDP(nil))
	d.next(t)

	closes := 0
	ep.SetOnCloseAction(func() {
		closes++
		ep.Close() // the stack's action removes the NIC, which closes again
		ep.Attach(nil)
	})
	ep.Close()
	ep.Close()
	if closes != 1 {
		t.Errorf("close action ran %d times, want 1", closes)
	}
	if ep.IsAttached() {
		t.Error("IsAttached = true after Close")
	}
	ep.Attach(d)
	if ep.IsAttached() {
		t.Error("Attach after Close started a reader")
	}
	leaks.Wait(t, 0)
	if _, err := unix.FcntlInt(uintptr(ours), unix.F_GETFD, 0); err != nil {
		t.Errorf("Close closed the fd it does not own: %v", err)
	}
}

func TestReaderExitsWhenPeerCloses(t *testing.T) {
	leaks := leaktest.Take()
	ours, peer := socketPair(t)
	ep := newTestEndpoint(t, ours, false)
	ep.Attach(newRecordingDispatcher())
	unix.Close(peer)
	for deadline := time.Now().Add(5 * time.Second); ep.IsAttached(); time.Sleep(10 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatal("still attached 5s after the peer closed")
		}
	}
	ep.Close()
	leaks.Wait(t, 0)
}

func TestNewRejectsBadOptions(t *testing.T) {
	for _, opts := range []Options{
		{FD: -1, MTU: 1500},
		{FD: 0, MTU: 0},
		{FD: 0, MTU: 1500, VnetHdr: true, VnetHdrLen: 11},
	} {
		if ep, err := New(opts); err == nil {
			ep.Close()
			t.Errorf("New(%+v) succeeded, want an error", opts)
		}
	}
}

func TestBodyViewSize(t *testing.T) {
	for _, tc := range []struct{ max, want int }{
		{100, 64}, {256, 64}, {1500, 2048}, {9000, 16384}, {maxIPPacket, 65536},
	} {
		if got := bodyViewSize(tc.max); got != tc.want {
			t.Errorf("bodyViewSize(%d) = %d, want %d", tc.max, got, tc.want)
		}
	}
}

// Packets the stack still holds keep their bytes while the reader goes on
// reading: a packet that fills little of the body view is copied out, and
// the view it leaves behind is what the next read overwrites.
func TestReadKeepsHeldPackets(t *testing.T) {
	for _, vnet := range []bool{false, true} {
		t.Run(fmt.Sprintf("vnet=%v", vnet), func(t *testing.T) {
			ours, peer := socketPair(t)
			ep := newTestEndpoint(t, ours, vnet)
			d := &holdingDispatcher{}
			ep.Attach(d)
			sizes := []int{100, 256, 257, 1000, 1500}
			if vnet {
				sizes = append(sizes, 3000, 16000, 17000, 65000, 2000)
			}
			var want [][]byte
			for i, size := range sizes {
				payload := bytes.Repeat([]byte{byte(i + 1)}, size-header.IPv4MinimumSize-header.UDPMinimumSize)
				pkt := ipv4UDP(payload)
				want = append(want, pkt)
				wire := pkt
				if vnet {
					wire = withVnetHdr(vnetHdr{flags: vnetFlagDataValid}, pkt)
				}
				writePeer(t, peer, wire)
			}
			got := d.wait(t, len(want))
			for i := range want {
				if !bytes.Equal(got[i], want[i]) {
					t.Errorf("packet %d (%d bytes) changed while held: got %d bytes", i, len(want[i]), len(got[i]))
				}
			}
		})
	}
}

func TestReadTrustsKernelChecksums(t *testing.T) {
	// A partial checksum (pseudo-header only) is what the kernel sends; it
	// must reach the stack although it would not verify.
	pkt := ipv4UDP(make([]byte, 3000))
	udp := header.UDP(pkt[header.IPv4MinimumSize:])
	udp.SetChecksum(header.PseudoHeaderChecksum(header.UDPProtocolNumber, addr4a, addr4b, uint16(len(udp))))
	ours, peer := socketPair(t)
	ep := newTestEndpoint(t, ours, true)
	if want := stack.CapabilityTXChecksumOffload | stack.CapabilityRXChecksumOffload; ep.Capabilities() != want {
		t.Errorf("Capabilities = %v, want %v", ep.Capabilities(), want)
	}
	d := newRecordingDispatcher()
	ep.Attach(d)
	writePeer(t, peer, withVnetHdr(vnetHdr{flags: vnetFlagNeedsCsum, csumStart: 20, csumOffset: 6}, pkt))
	if got := d.next(t); !bytes.Equal(got.data, pkt) {
		t.Errorf("delivered %x, want %x", got.data, pkt)
	}
}
