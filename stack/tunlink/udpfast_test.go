package tunlink

import (
	"bytes"
	"encoding/binary"
	"errors"
	"net/netip"
	"runtime"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// datagram is what a fake UDPHandler was given.
type datagram struct {
	src, dst netip.AddrPort
	payload  []byte
}

// recordingUDP takes every datagram (or none, if refuse is set) and
// copies it into ch.
type recordingUDP struct {
	ch     chan datagram
	refuse bool
}

func newRecordingUDP() *recordingUDP { return &recordingUDP{ch: make(chan datagram, 64)} }

func (h *recordingUDP) HandleUDP(src, dst netip.AddrPort, payload []byte) bool {
	if h.refuse {
		return false
	}
	h.ch <- datagram{src, dst, bytes.Clone(payload)}
	return true
}

func (h *recordingUDP) next(t *testing.T) datagram {
	t.Helper()
	return within(t, h.ch, "datagram handed to the UDP handler")
}

// ipv6UDPSum is ipv6UDP with a valid UDP checksum.
func ipv6UDPSum(payload []byte) []byte {
	b := ipv6UDP(payload)
	setUDPChecksum(b, header.IPv6MinimumSize)
	return b
}

// setUDPChecksum recomputes the UDP checksum of the whole packet b, whose
// UDP header starts at l4Off (and, for IPv4, the header checksum).
func setUDPChecksum(b []byte, l4Off int) {
	var src, dst tcpip.Address
	if header.IPVersion(b) == header.IPv4Version {
		ip := header.IPv4(b)
		ip.SetChecksum(0)
		ip.SetChecksum(^ip.CalculateChecksum())
		src, dst = ip.SourceAddress(), ip.DestinationAddress()
	} else {
		ip := header.IPv6(b)
		src, dst = ip.SourceAddress(), ip.DestinationAddress()
	}
	u := header.UDP(b[l4Off:])
	u.SetChecksum(0)
	pseudo := header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, dst, uint16(len(u)))
	u.SetChecksum(^checksum.Checksum(u, pseudo))
}

func TestParsePlainUDP(t *testing.T) {
	v4, v6 := ipv4UDP([]byte("payload")), ipv6UDPSum([]byte("payload"))
	mod := func(pkt []byte, f func(b []byte)) []byte {
		b := bytes.Clone(pkt)
		f(b)
		return b
	}
	options := make([]byte, len(v4)+4) // IHL 6: one word of options
	copy(options, v4[:20])
	copy(options[24:], v4[20:])
	options[0] = 0x46
	binary.BigEndian.PutUint16(options[2:], uint16(len(options)))
	for _, tc := range []struct {
		name  string
		pkt   []byte
		ipLen int // 0: len(pkt)
		plain bool
	}{
		{"ipv4", v4, 0, true},
		{"ipv6", v6, 0, true},
		{"ipv4 options", options, 0, false},
		{"ipv4 more fragments", mod(v4, func(b []byte) { b[6] |= 0x20 }), 0, false},
		{"ipv4 fragment offset", mod(v4, func(b []byte) { b[7] = 1 }), 0, false},
		{"ipv4 tcp", mod(v4, func(b []byte) { b[9] = 6 }), 0, false},
		{"ipv6 hop-by-hop", mod(v6, func(b []byte) { b[6] = 0 }), 0, false},
		{"udp length short of the ip length", mod(v4, func(b []byte) { binary.BigEndian.PutUint16(b[24:], 10) }), 0, false},
		{"udp length past the ip length", mod(v4, func(b []byte) { binary.BigEndian.PutUint16(b[24:], 200) }), 0, false},
		{"udp header cut", v4[:24], 24, false},
		{"source port 0", mod(v4, func(b []byte) { b[20], b[21] = 0, 0 }), 0, false},
		{"destination port 0", mod(v6, func(b []byte) { b[42], b[43] = 0, 0 }), 0, false},
		{"loopback destination", withDst(v4, netip.MustParseAddr("127.0.0.1")), 0, false},
		{"loopback ipv6 destination", withDst(v6, netip.MustParseAddr("::1")), 0, false},
		{"broadcast destination", withDst(v4, netip.MustParseAddr("255.255.255.255")), 0, false},
		{"multicast destination", withDst(v4, netip.MustParseAddr("239.1.2.3")), 0, false},
		{"unspecified destination", withDst(v4, netip.MustParseAddr("0.0.0.0")), 0, false},
		{"link-local destination", withDst(v6, netip.MustParseAddr("fe80::1")), 0, false},
		{"ipv4-mapped destination", withDst(v6, netip.MustParseAddr("::ffff:10.0.0.1")), 0, false},
		{"multicast source", mod(v6, func(b []byte) { b[8] = 0xff }), 0, false},
		{"loopback source", mod(v4, func(b []byte) { b[12] = 127 }), 0, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ipLen := tc.ipLen
			if ipLen == 0 {
				ipLen = len(tc.pkt)
			}
			d, ok := parsePlainUDP(tc.pkt, ipLen)
			if ok != tc.plain {
				t.Fatalf("plain = %v, want %v", ok, tc.plain)
			}
			if !ok {
				return
			}
			if d.src.Port() != 1000 || d.dst.Port() != 2000 {
				t.Errorf("ports %v -> %v, want 1000 -> 2000", d.src, d.dst)
			}
			wantSrc, wantDst := netip.MustParseAddr("10.1.0.1"), netip.MustParseAddr("10.1.0.2")
			if !d.v4 {
				wantSrc, wantDst = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
			}
			if d.src.Addr() != wantSrc || d.dst.Addr() != wantDst {
				t.Errorf("addresses %v -> %v, want %v -> %v", d.src, d.dst, wantSrc, wantDst)
			}
		})
	}
}

func TestUDPChecksumsValid(t *testing.T) {
	v4, v6 := ipv4UDP([]byte("payload!")), ipv6UDPSum([]byte("payload!"))
	noSum4 := bytes.Clone(v4)
	noSum4[26], noSum4[27] = 0, 0
	badUDP := bytes.Clone(v4)
	badUDP[len(badUDP)-1]++
	badIP := bytes.Clone(v4)
	badIP[8]-- // TTL, under the header checksum only
	badUDP6 := bytes.Clone(v6)
	badUDP6[len(badUDP6)-1]++
	for _, tc := range []struct {
		name  string
		pkt   []byte
		valid bool
	}{
		{"ipv4", v4, true},
		{"ipv4 without udp checksum", noSum4, true},
		{"ipv4 bad udp checksum", badUDP, false},
		{"ipv4 bad header checksum", badIP, false},
		{"ipv6", v6, true},
		{"ipv6 without udp checksum", ipv6UDP([]byte("payload!")), false},
		{"ipv6 bad udp checksum", badUDP6, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			d, ok := parsePlainUDP(tc.pkt, len(tc.pkt))
			if !ok {
				t.Fatal("not plain")
			}
			if got := udpChecksumsValid(tc.pkt, d); got != tc.valid {
				t.Errorf("valid = %v, want %v", got, tc.valid)
			}
		})
	}
}

// TestReadHandsPlainUDPToHandler checks which packets the reader gives
// the UDP handler and which it leaves to the stack.
func TestReadHandsPlainUDPToHandler(t *testing.T) {
	small, large := []byte("a DNS-sized query"), bytes.Repeat([]byte("QUIC"), 350) // past the head view
	frag := ipv4UDP(small)
	frag[6] |= 0x20
	setUDPChecksum(frag, header.IPv4MinimumSize)
	badSum := ipv4UDP(small)
	badSum[len(badSum)-1]++
	partial := ipv6UDPSum(small) // a partial checksum: only the pseudo-header sum
	binary.BigEndian.PutUint16(partial[46:], header.PseudoHeaderChecksum(header.UDPProtocolNumber, addr6a, addr6b, uint16(len(partial)-40)))
	for _, tc := range []struct {
		name    string
		vnet    bool
		hdr     vnetHdr
		pkt     []byte
		refuse  bool   // the handler leaves every datagram to the stack
		payload []byte // handed to the handler; nil: left to the stack
		dropped bool   // neither: dropped as a bad checksum
	}{
		{name: "ipv4", pkt: ipv4UDP(small), payload: small},
		{name: "ipv6", pkt: ipv6UDPSum(small), payload: small},
		{name: "ipv4 large", pkt: ipv4UDP(large), payload: large},
		{name: "ipv6 large vnet", vnet: true, pkt: ipv6UDPSum(large), payload: large},
		{name: "vnet partial checksum", vnet: true, hdr: vnetHdr{flags: vnetFlagNeedsCsum, csumStart: 40, csumOffset: 6}, pkt: partial, payload: small},
		{name: "handler refuses", pkt: ipv4UDP(small), refuse: true},
		{name: "fragment", pkt: frag},
		{name: "bad checksum, stack checks", pkt: badSum},
		{name: "bad checksum, vnet", vnet: true, pkt: badSum, dropped: true},
		{name: "ipv6 without checksum", pkt: ipv6UDP(small)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ours, peer := socketPair(t)
			ep := newTestEndpoint(t, ours, tc.vnet)
			h := newRecordingUDP()
			h.refuse = tc.refuse
			if err := ep.SetUDPHandler(h); err != nil {
				t.Fatal(err)
			}
			d := newRecordingDispatcher()
			ep.Attach(d)
			writePeer(t, peer, onWire(tc.vnet, tc.hdr, tc.pkt))
			// A TCP packet behind it proves the reader went on (its
			// checksum is left undone: the kernel's vouches for it).
			tcp := outboundTCP(header.IPv4ProtocolNumber, []byte("x"))
			writePeer(t, peer, onWire(tc.vnet, vnetHdr{flags: vnetFlagDataValid}, tcp.ToView().AsSlice()))
			tcp.DecRef()
			switch {
			case tc.payload != nil:
				got := h.next(t)
				if !bytes.Equal(got.payload, tc.payload) || got.src.Port() != 1000 || got.dst.Port() != 2000 {
					t.Errorf("handed %v -> %v %q, want ports 1000 -> 2000 and %d bytes", got.src, got.dst, got.payload, len(tc.payload))
				}
			case !tc.dropped:
				if got := d.next(t); !bytes.Equal(got.data, tc.pkt) {
					t.Errorf("the stack got %x, want the datagram %x", got.data, tc.pkt)
				}
			}
			if got := d.next(t); header.IPv4(got.data).Protocol() != uint8(header.TCPProtocolNumber) {
				t.Errorf("the stack got %x, want the TCP packet", got.data)
			}
			d.none(t)
			st := ep.Stats()
			fast := uint64(0)
			if tc.payload != nil {
				fast = 1
			}
			if st.RxUDPFast != fast || st.RxPackets != 2-uint64(btoi(tc.dropped)) {
				t.Errorf("stats = %+v, want %d datagram(s) past the stack and every packet counted", st, fast)
			}
		})
	}
}

func btoi(b bool) int {
	if b {
		return 1
	}
	return 0
}

func TestSetUDPHandlerOnlyBeforeAttach(t *testing.T) {
	ours, _ := socketPair(t)
	ep := newTestEndpoint(t, ours, false)
	if err := ep.SetUDPHandler(newRecordingUDP()); err != nil {
		t.Fatalf("before Attach: %v", err)
	}
	ep.Attach(newRecordingDispatcher())
	if err := ep.SetUDPHandler(nil); !errors.Is(err, errStarted) {
		t.Errorf("after Attach: %v, want errStarted", err)
	}
	ep.Attach(nil) // the NIC removed: readers stop, but they ran
	if err := ep.SetUDPHandler(nil); !errors.Is(err, errStarted) {
		t.Errorf("after Attach(nil): %v, want errStarted", err)
	}
}

func TestWriteIP(t *testing.T) {
	for _, vnet := range []bool{false, true} {
		ours, peer := socketPair(t)
		ep := newTestEndpoint(t, ours, vnet)
		pkt := ipv6UDPSum([]byte("reply"))
		if err := ep.WriteIP(pkt); err != nil {
			t.Fatalf("vnet %v: WriteIP: %v", vnet, err)
		}
		got := readPeer(t, peer)
		want := pkt
		if vnet {
			want = withVnetHdr(vnetHdr{}, pkt) // no offload asked for
		}
		if !bytes.Equal(got, want) {
			t.Errorf("vnet %v: wrote %x, want %x", vnet, got, want)
		}
		if st := ep.Stats(); st.TxPackets != 1 || st.TxUDPFast != 1 || st.TxBytes != uint64(len(pkt)) {
			t.Errorf("vnet %v: stats = %+v", vnet, st)
		}
		ep.Close()
		if err := ep.WriteIP(pkt); !errors.Is(err, errWriteClosed) {
			t.Errorf("vnet %v: WriteIP after Close = %v, want errWriteClosed", vnet, err)
		}
	}
}

// TestWriteIPQueueMatchesWritePackets checks that WriteIP puts a flow on
// the queue WritePackets puts it on, so that replies written either way
// keep the flow on one queue.
func TestWriteIPQueueMatchesWritePackets(t *testing.T) {
	ours, peers := socketPairs(t, 4)
	ep, err := New(Options{FD: ours[0], Queues: ours[1:], MTU: 1500})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(ep.Close)
	used := map[int]bool{}
	for port := range 32 {
		pkt := outboundUDP(header.IPv4ProtocolNumber, []byte("x"))
		header.UDP(pkt.TransportHeader().Slice()).SetDestinationPort(uint16(40000 + port))
		raw := bytes.Clone(pkt.ToView().AsSlice())
		if _, err := ep.WritePackets(listOf(pkt)); err != nil {
			t.Fatal(err)
		}
		pkt.DecRef()
		want := queueWritten(t, peers)
		if err := ep.WriteIP(raw); err != nil {
			t.Fatal(err)
		}
		if got := queueWritten(t, peers); got != want {
			t.Fatalf("port %d: WriteIP used queue %d, WritePackets %d", 40000+port, got, want)
		}
		used[want] = true
	}
	if len(used) < 2 {
		t.Errorf("32 flows used queues %v: the hash did not spread them", used)
	}
}

// countingUDP takes every datagram and counts it.
type countingUDP struct {
	n      atomic.Int64
	target int64
	done   chan struct{}
}

func (h *countingUDP) HandleUDP(netip.AddrPort, netip.AddrPort, []byte) bool {
	if h.n.Add(1) == h.target {
		h.done <- struct{}{}
	}
	return true
}

// TestReadUDPFastDoesNotAllocate counts the heap allocations of the
// whole process while the reader hands 2,000 datagrams to the handler.
func TestReadUDPFastDoesNotAllocate(t *testing.T) {
	const n = 2000
	ours, peer := socketPair(t)
	ep := newTestEndpoint(t, ours, true)
	h := &countingUDP{target: n + 1, done: make(chan struct{}, 1)}
	if err := ep.SetUDPHandler(h); err != nil {
		t.Fatal(err)
	}
	ep.Attach(&countingDispatcher{})
	wire := withVnetHdr(vnetHdr{flags: vnetFlagDataValid}, ipv4UDP(make([]byte, 1400)))
	writePeer(t, peer, wire) // the first makes the scratch buffer
	for h.n.Load() < 1 {
		time.Sleep(time.Millisecond)
	}
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range n {
		writePeer(t, peer, wire)
	}
	<-h.done
	runtime.ReadMemStats(&after)
	if allocs := after.Mallocs - before.Mallocs; allocs > n/100 {
		t.Errorf("%d allocations for %d datagrams, want none per datagram", allocs, n)
	}
}

func TestWriteIPDoesNotAllocate(t *testing.T) {
	ours, peer := socketPair(t)
	ep := newTestEndpoint(t, ours, true)
	drainPeer(t, peer)
	pkt := ipv4UDP(make([]byte, 60))
	if allocs := testing.AllocsPerRun(1000, func() { _ = ep.WriteIP(pkt) }); allocs != 0 {
		t.Errorf("WriteIP: %v allocations per packet, want 0", allocs)
	}
	hdr, segs := usoHeaders([4]byte(addr4b.AsSlice()), 2000, 200), [][]byte{make([]byte, 100), make([]byte, 100)}
	if allocs := testing.AllocsPerRun(1000, func() { _ = ep.WriteUDPSegments(hdr, segs) }); allocs != 0 {
		t.Errorf("WriteUDPSegments: %v allocations per packet, want 0", allocs)
	}
}

// usoHeaders returns the IPv4 and UDP headers of datagrams of total
// payload bytes from 10.1.0.1:1000 to dst, with the pseudo-header sum in
// the checksum field, as WriteUDPSegments takes them.
func usoHeaders(dst [4]byte, port uint16, total int) []byte {
	b := make([]byte, header.IPv4MinimumSize+header.UDPMinimumSize)
	to := tcpip.AddrFrom4(dst)
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{TotalLength: uint16(len(b) + total), TTL: 64, Protocol: uint8(header.UDPProtocolNumber), SrcAddr: addr4a, DstAddr: to})
	ip.SetChecksum(^ip.CalculateChecksum())
	u := header.UDP(b[header.IPv4MinimumSize:])
	u.Encode(&header.UDPFields{SrcPort: 1000, DstPort: port, Length: uint16(header.UDPMinimumSize + total)})
	u.SetChecksum(header.PseudoHeaderChecksum(header.UDPProtocolNumber, addr4a, to, u.Length()))
	return b
}

func TestWriteUDPSegmentsLayout(t *testing.T) {
	segs := [][]byte{bytes.Repeat([]byte{1}, 100), bytes.Repeat([]byte{2}, 100), []byte("end")}
	hdr := usoHeaders([4]byte(addr4b.AsSlice()), 2000, 203)
	ours, peer := socketPair(t)
	ep := newTestEndpoint(t, ours, true)
	if err := ep.WriteUDPSegments(hdr, segs); err != nil {
		t.Fatal(err)
	}
	got := readPeer(t, peer)
	h := decodeVnetHdr(got)
	want := vnetHdr{flags: vnetFlagNeedsCsum, gsoType: vnetGSOUDPL4, hdrLen: 28, gsoSize: 100, csumStart: 20, csumOffset: 6}
	if h != want {
		t.Errorf("virtio-net header %+v, want %+v", h, want)
	}
	if !bytes.Equal(got[VnetHdrLen:], slices.Concat(append([][]byte{hdr}, segs...)...)) {
		t.Errorf("packet %x: want the headers and the segments in order", got[VnetHdrLen:])
	}
	if st := ep.Stats(); st.TxPackets != 1 || st.TxUDPFast != 3 {
		t.Errorf("stats %+v: want one packet of 3 datagrams", st)
	}
	plain, _ := socketPair(t)
	if err := newTestEndpoint(t, plain, false).WriteUDPSegments(hdr, segs); !errors.Is(err, ErrNoUSO) {
		t.Errorf("without a virtio-net header: %v, want ErrNoUSO", err)
	}
}

// TestTUNWriteUDPSegments writes one segmented packet into a real TUN
// device and checks that a socket behind it reads each datagram.
func TestTUNWriteUDPSegments(t *testing.T) {
	requireNetAdmin(t)
	ns := newNetns(t)
	fd := openTUN(t, ns, "uso0", true)
	run(t, "ip", "-n", ns, "addr", "add", "10.1.0.2/24", "dev", "uso0")
	run(t, "ip", "-n", ns, "link", "set", "uso0", "up")
	var sock int
	if err := inNetns(ns, func() error {
		var err error
		if sock, err = unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0); err != nil {
			return err
		}
		return unix.Bind(sock, &unix.SockaddrInet4{Port: 2000, Addr: [4]byte{10, 1, 0, 2}})
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { unix.Close(sock) })
	ep := newTestEndpoint(t, fd, true)
	segs := [][]byte{bytes.Repeat([]byte("a"), 1400), bytes.Repeat([]byte("b"), 1400), bytes.Repeat([]byte("c"), 1400), []byte("last")}
	total := 0
	for _, s := range segs {
		total += len(s)
	}
	if err := ep.WriteUDPSegments(usoHeaders([4]byte{10, 1, 0, 2}, 2000, total), segs); err != nil {
		t.Fatalf("WriteUDPSegments: %v (a kernel before 6.2 has no UDP segmentation)", err)
	}
	if err := unix.SetsockoptTimeval(sock, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5}); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 65536)
	for i, want := range segs {
		n, from, err := unix.Recvfrom(sock, buf, 0)
		if err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
		if sa := from.(*unix.SockaddrInet4); sa.Port != 1000 || sa.Addr != [4]byte{10, 1, 0, 1} {
			t.Errorf("datagram %d from %v:%d", i, sa.Addr, sa.Port)
		}
		if !bytes.Equal(buf[:n], want) {
			t.Fatalf("datagram %d: %d bytes %.8q, want %d bytes %.8q", i, n, buf[:n], len(want), want)
		}
	}
}
