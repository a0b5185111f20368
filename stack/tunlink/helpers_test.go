package tunlink

import (
	"bytes"
	"sync"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

var (
	addr4a = tcpip.AddrFrom4([4]byte{10, 1, 0, 1})
	addr4b = tcpip.AddrFrom4([4]byte{10, 1, 0, 2})
	addr6a = tcpip.AddrFrom16([16]byte{0xfd, 0, 15: 1})
	addr6b = tcpip.AddrFrom16([16]byte{0xfd, 0, 15: 2})
)

// socketPair returns two ends of a SOCK_SEQPACKET pair, which keeps packet
// boundaries like a TUN fd: ours (non-blocking, for the Endpoint) and the
// test's peer (blocking).
func socketPair(t testing.TB) (ours, peer int) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatalf("socketpair: %v", err)
	}
	for _, fd := range fds {
		// Room for a burst of 64 KiB packets.
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20); err != nil {
			t.Fatalf("SO_SNDBUF: %v", err)
		}
	}
	t.Cleanup(func() {
		unix.Close(fds[0])
		unix.Close(fds[1])
	})
	return fds[0], fds[1]
}

func newTestEndpoint(t testing.TB, fd int, vnet bool) *Endpoint {
	t.Helper()
	ep, err := New(Options{FD: fd, MTU: 1500, VnetHdr: vnet})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(ep.Close)
	return ep
}

// delivered is a packet as the fake dispatcher saw it.
type delivered struct {
	proto tcpip.NetworkProtocolNumber
	data  []byte
}

// recordingDispatcher copies every packet it is given into ch.
type recordingDispatcher struct{ ch chan delivered }

func newRecordingDispatcher() *recordingDispatcher {
	return &recordingDispatcher{ch: make(chan delivered, 64)}
}

func (d *recordingDispatcher) DeliverNetworkPacket(proto tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	v := pkt.ToView()
	d.ch <- delivered{proto: proto, data: bytes.Clone(v.AsSlice())}
	v.Release()
}

func (*recordingDispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

// holdingDispatcher keeps every packet it is given, as a stack holding
// segments in a receive queue does, and reads them only when asked.
type holdingDispatcher struct {
	mu   sync.Mutex
	pkts []*stack.PacketBuffer
}

func (d *holdingDispatcher) DeliverNetworkPacket(_ tcpip.NetworkProtocolNumber, pkt *stack.PacketBuffer) {
	d.mu.Lock()
	d.pkts = append(d.pkts, pkt.IncRef())
	d.mu.Unlock()
}

func (*holdingDispatcher) DeliverLinkPacket(tcpip.NetworkProtocolNumber, *stack.PacketBuffer) {}

// wait waits for n packets and returns their bytes now, releasing them.
func (d *holdingDispatcher) wait(t *testing.T, n int) [][]byte {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d.mu.Lock()
		got := len(d.pkts)
		d.mu.Unlock()
		if got >= n {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d packets delivered within 5s", got, n)
		}
		time.Sleep(time.Millisecond)
	}
	d.mu.Lock()
	defer d.mu.Unlock()
	var out [][]byte
	for _, pkt := range d.pkts {
		v := pkt.ToView()
		out = append(out, bytes.Clone(v.AsSlice()))
		v.Release()
		pkt.DecRef()
	}
	d.pkts = nil
	return out
}

func (d *recordingDispatcher) next(t *testing.T) delivered {
	t.Helper()
	return within(t, d.ch, "packet delivered")
}

// within returns the next value from ch, failing the test if none comes
// within 5 seconds: "no WHAT within 5s".
func within[T any](t *testing.T, ch <-chan T, what string) T {
	t.Helper()
	select {
	case v := <-ch:
		return v
	case <-time.After(5 * time.Second):
		t.Fatalf("no %s within 5s", what)
		var zero T
		return zero
	}
}

func (d *recordingDispatcher) none(t *testing.T) {
	t.Helper()
	select {
	case p := <-d.ch:
		t.Fatalf("unexpected packet delivered: %x", p.data)
	case <-time.After(50 * time.Millisecond):
	}
}

// ipv4UDP returns a whole IPv4/UDP packet with a valid checksum.
func ipv4UDP(payload []byte) []byte {
	b := make([]byte, header.IPv4MinimumSize+header.UDPMinimumSize+len(payload))
	ip := header.IPv4(b)
	ip.Encode(&header.IPv4Fields{
		TotalLength: uint16(len(b)),
		TTL:         64,
		Protocol:    uint8(header.UDPProtocolNumber),
		SrcAddr:     addr4a,
		DstAddr:     addr4b,
	})
	ip.SetChecksum(^ip.CalculateChecksum())
	udp := header.UDP(b[header.IPv4MinimumSize:])
	udp.Encode(&header.UDPFields{SrcPort: 1000, DstPort: 2000, Length: uint16(len(udp))})
	copy(udp.Payload(), payload)
	pseudo := header.PseudoHeaderChecksum(header.UDPProtocolNumber, addr4a, addr4b, uint16(len(udp)))
	udp.SetChecksum(^udp.CalculateChecksum(checksum.Combine(pseudo, checksum.Checksum(payload, 0))))
	return b
}

// ipv6UDP returns a whole IPv6/UDP packet.
func ipv6UDP(payload []byte) []byte {
	b := make([]byte, header.IPv6MinimumSize+header.UDPMinimumSize+len(payload))
	ip := header.IPv6(b)
	ip.Encode(&header.IPv6Fields{
		PayloadLength:     uint16(len(b) - header.IPv6MinimumSize),
		TransportProtocol: header.UDPProtocolNumber,
		HopLimit:          64,
		SrcAddr:           addr6a,
		DstAddr:           addr6b,
	})
	udp := header.UDP(b[header.IPv6MinimumSize:])
	udp.Encode(&header.UDPFields{SrcPort: 1000, DstPort: 2000, Length: uint16(len(udp))})
	copy(udp.Payload(), payload)
	return b
}

// outboundTCP builds a packet the way the stack's TCP does: headers pushed
// into reserved space in front of the payload, checksum left to the caller.
func outboundTCP(proto tcpip.NetworkProtocolNumber, payload []byte) *stack.PacketBuffer {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: header.IPv6MinimumSize + header.TCPMinimumSize,
		Payload:            buffer.MakeWithData(payload),
	})
	tcp := header.TCP(pkt.TransportHeader().Push(header.TCPMinimumSize))
	tcp.Encode(&header.TCPFields{SrcPort: 80, DstPort: 40000, SeqNum: 1, AckNum: 1, DataOffset: header.TCPMinimumSize, Flags: header.TCPFlagAck, WindowSize: 1000})
	pkt.TransportProtocolNumber = header.TCPProtocolNumber
	pushIP(pkt, proto, header.TCPProtocolNumber)
	return pkt
}

// outboundUDP builds a UDP packet with its checksum left zero, as the stack
// does when the link offloads checksums.
func outboundUDP(proto tcpip.NetworkProtocolNumber, payload []byte) *stack.PacketBuffer {
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{
		ReserveHeaderBytes: header.IPv6MinimumSize + header.UDPMinimumSize,
		Payload:            buffer.MakeWithData(payload),
	})
	udp := header.UDP(pkt.TransportHeader().Push(header.UDPMinimumSize))
	udp.Encode(&header.UDPFields{SrcPort: 53, DstPort: 40000, Length: uint16(header.UDPMinimumSize + len(payload))})
	pkt.TransportProtocolNumber = header.UDPProtocolNumber
	pushIP(pkt, proto, header.UDPProtocolNumber)
	return pkt
}

func pushIP(pkt *stack.PacketBuffer, proto tcpip.NetworkProtocolNumber, trans tcpip.TransportProtocolNumber) {
	pkt.NetworkProtocolNumber = proto
	if proto == header.IPv4ProtocolNumber {
		size := pkt.Size()
		ip := header.IPv4(pkt.NetworkHeader().Push(header.IPv4MinimumSize))
		ip.Encode(&header.IPv4Fields{
			TotalLength: uint16(size + header.IPv4MinimumSize),
			TTL:         64,
			Protocol:    uint8(trans),
			SrcAddr:     addr4b,
			DstAddr:     addr4a,
		})
		ip.SetChecksum(^ip.CalculateChecksum())
		return
	}
	size := pkt.Size()
	ip := header.IPv6(pkt.NetworkHeader().Push(header.IPv6MinimumSize))
	ip.Encode(&header.IPv6Fields{
		PayloadLength:     uint16(size),
		TransportProtocol: trans,
		HopLimit:          64,
		SrcAddr:           addr6b,
		DstAddr:           addr6a,
	})
}

// readPeer reads one packet from the test's end of the pair.
func readPeer(t *testing.T, fd int) []byte {
	t.Helper()
	buf := make([]byte, 1<<17)
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5}); err != nil {
		t.Fatalf("SO_RCVTIMEO: %v", err)
	}
	n, err := unix.Read(fd, buf)
	if err != nil {
		t.Fatalf("read peer: %v", err)
	}
	return buf[:n]
}

// onWire is pkt as it crosses the fd: after the virtio-net header h when
// the fd has one (vnet).
func onWire(vnet bool, h vnetHdr, pkt []byte) []byte {
	if vnet {
		return withVnetHdr(h, pkt)
	}
	return pkt
}

func writePeer(t testing.TB, fd int, b []byte) {
	t.Helper()
	if _, err := unix.Write(fd, b); err != nil {
		t.Fatalf("write peer: %v", err)
	}
}

// finishChecksum does what the kernel does for VIRTIO_NET_HDR_F_NEEDS_CSUM:
// sum from csumStart to the end, seeded by what is in the checksum field,
// and store the complement there.
func finishChecksum(pkt []byte, h vnetHdr) {
	field := pkt[h.csumStart+h.csumOffset:]
	seed := uint16(field[0])<<8 | uint16(field[1])
	field[0], field[1] = 0, 0
	sum := ^checksumFold(pkt[h.csumStart:], seed)
	field[0], field[1] = byte(sum>>8), byte(sum)
}

func checksumFold(b []byte, seed uint16) uint16 {
	s := uint32(seed)
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s > 0xffff {
		s = s>>16 + s&0xffff
	}
	return uint16(s)
}
