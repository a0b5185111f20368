package tunlink

import (
	"encoding/binary"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// stackIovecs is how many iovecs a write keeps on the goroutine stack. A
// packet from the stack has one header view and a few payload views; more
// than this takes the (allocating) slow path.
const stackIovecs = 64

// udpChecksumOffset is where the checksum sits in a UDP header.
const udpChecksumOffset = 6

// WritePackets writes each packet with one writev, prefixed by a
// virtio-net header when the fd has one. The payload is never copied. It
// stops at the first packet the fd refuses and returns how many it wrote;
// the rest are dropped (the fd is non-blocking) and the stack's TCP
// retransmits. The caller keeps its references to the packets.
func (e *Endpoint) WritePackets(pkts stack.PacketBufferList) (int, tcpip.Error) {
	written := 0
	for _, pkt := range pkts.AsSlice() {
		if errno := e.writePacket(pkt); errno != 0 {
			e.stats.txErrors.Add(1)
			return written, tcpip.TranslateErrno(errno)
		}
		written++
		e.stats.txPackets.Add(1)
		e.stats.txBytes.Add(uint64(pkt.Size()))
	}
	return written, nil
}

func (e *Endpoint) writePacket(pkt *stack.PacketBuffer) unix.Errno {
	// Both arrays stay on the stack: they are only indexed, never appended
	// to, and their address reaches the kernel as a uintptr.
	var iovecs [stackIovecs]unix.Iovec
	var hdr [maxVnetHdrLen]byte
	n := 0
	if e.vnetHdrLen > 0 {
		h := offloadHdr(pkt)
		h.encode(hdr[:e.vnetHdrLen])
		iovecs[0] = unix.Iovec{Base: &hdr[0]}
		iovecs[0].SetLen(e.vnetHdrLen)
		n++
	}
	views, skip := pkt.AsViewList()
	for v := views.Front(); v != nil; v = v.Next() {
		b := v.AsSlice()
		if skip >= len(b) {
			skip -= len(b)
			continue
		}
		b, skip = b[skip:], 0
		if n == len(iovecs) {
			return e.writePacketSlow(pkt, hdr[:e.vnetHdrLen])
		}
		iovecs[n] = unix.Iovec{Base: &b[0]}
		iovecs[n].SetLen(len(b))
		n++
	}
	if n == 0 {
		return 0
	}
	// Raw: the fd is non-blocking, so the call is short and the runtime
	// need not prepare for it to block (see reader).
	_, _, errno := unix.RawSyscall(unix.SYS_WRITEV, uintptr(e.queueFor(pkt)), uintptr(unsafe.Pointer(&iovecs[0])), uintptr(n))
	return errno
}

// queueFor returns the fd of the queue pkt's flow hashes to. The kernel
// remembers, per flow, the queue last written to and sends the flow's
// packets to us on that queue, so a flow stays on one queue (one reader)
// both ways as long as every packet of it is written to the same one.
func (e *Endpoint) queueFor(pkt *stack.PacketBuffer) int {
	if len(e.fds) == 1 {
		return e.fd
	}
	return e.fds[flowHash(pkt)%uint32(len(e.fds))]
}

// flowHash hashes the addresses and ports of pkt (addresses only for
// protocols without ports): a flow's packets all hash alike.
func flowHash(pkt *stack.PacketBuffer) uint32 {
	return hashFlow(pkt.NetworkHeader().Slice(), pkt.TransportHeader().Slice())
}

// hashFlow hashes a packet's network header nh and the start of what
// follows it, th (the ports of TCP and UDP), the same whether the packet
// is the stack's or a whole one of WriteIP's.
func hashFlow(nh, th []byte) uint32 {
	var h uint32
	switch {
	case header.IPVersion(nh) == header.IPv4Version && len(nh) >= header.IPv4MinimumSize:
		h = binary.LittleEndian.Uint32(nh[12:]) ^ binary.LittleEndian.Uint32(nh[16:])
	case header.IPVersion(nh) == header.IPv6Version && len(nh) >= header.IPv6MinimumSize:
		for i := 8; i < 40; i += 4 {
			h ^= binary.LittleEndian.Uint32(nh[i:])
		}
	}
	if len(th) >= 4 {
		h ^= binary.LittleEndian.Uint32(th)
	}
	// MurmurHash3's finalizer: every input bit reaches the low bits that
	// the modulo takes.
	h ^= h >> 16
	h *= 0x85ebca6b
	h ^= h >> 13
	h *= 0xc2b2ae35
	return h ^ h>>16
}

// writePacketSlow writes a packet made of more views than stackIovecs.
func (e *Endpoint) writePacketSlow(pkt *stack.PacketBuffer, hdr []byte) unix.Errno {
	bufs := make([][]byte, 0, stackIovecs*2)
	if len(hdr) > 0 {
		bufs = append(bufs, append([]byte(nil), hdr...))
	}
	bufs = append(bufs, pkt.AsSlices()...)
	if _, err := unix.Writev(e.queueFor(pkt), bufs); err != nil {
		if errno, ok := err.(unix.Errno); ok {
			return errno
		}
		return unix.EIO
	}
	return 0
}

// offloadHdr says what the kernel must finish: segment a TCP super-packet
// and/or complete a partial TCP or UDP checksum.
func offloadHdr(pkt *stack.PacketBuffer) vnetHdr {
	var h vnetHdr
	gso := pkt.GSOOptions
	if gso.Type == stack.GSONone || !gso.NeedsCsum {
		partialChecksum(pkt, &h)
		return h
	}
	// The stack's TCP wrote the pseudo-header sum into the checksum field
	// (it does so whenever host GSO is on, for every segment).
	h.flags = vnetFlagNeedsCsum
	h.csumStart = uint16(len(pkt.NetworkHeader().Slice()))
	h.csumOffset = gso.CsumOffset
	h.hdrLen = uint16(pkt.HeaderSize())
	if gso.MSS == 0 || pkt.Data().Size() <= int(gso.MSS) {
		return h
	}
	switch gso.Type {
	case stack.GSOTCPv4:
		h.gsoType = vnetGSOTCPv4
	case stack.GSOTCPv6:
		h.gsoType = vnetGSOTCPv6
	default:
		// Not a type we advertise; send it whole and let the kernel cope.
		return h
	}
	h.gsoSize = gso.MSS
	return h
}

// partialChecksum handles a TCP or UDP packet without GSO options (a reset
// sent by the stack itself, any UDP datagram). Because we advertise TX
// checksum offload, the stack left its checksum zero; we put the
// pseudo-header sum there and ask the kernel to add the rest, which keeps
// the payload untouched by the CPU here. A non-zero checksum is already
// complete and left alone.
func partialChecksum(pkt *stack.PacketBuffer, h *vnetHdr) {
	var csumOffset, minLen int
	switch pkt.TransportProtocolNumber {
	case header.TCPProtocolNumber:
		csumOffset, minLen = header.TCPChecksumOffset, header.TCPMinimumSize
	case header.UDPProtocolNumber:
		csumOffset, minLen = udpChecksumOffset, header.UDPMinimumSize
	default:
		return // ICMP and the rest always carry full checksums.
	}
	th := pkt.TransportHeader().Slice()
	if len(th) < minLen || binary.BigEndian.Uint16(th[csumOffset:]) != 0 {
		return
	}
	nh := pkt.NetworkHeader().Slice()
	var src, dst tcpip.Address
	switch pkt.NetworkProtocolNumber {
	case header.IPv4ProtocolNumber:
		if len(nh) < header.IPv4MinimumSize {
			return
		}
		ip := header.IPv4(nh)
		src, dst = ip.SourceAddress(), ip.DestinationAddress()
	case header.IPv6ProtocolNumber:
		if len(nh) < header.IPv6MinimumSize {
			return
		}
		ip := header.IPv6(nh)
		src, dst = ip.SourceAddress(), ip.DestinationAddress()
	default:
		return
	}
	l4Len := pkt.Size() - len(nh)
	sum := header.PseudoHeaderChecksum(pkt.TransportProtocolNumber, src, dst, uint16(l4Len))
	binary.BigEndian.PutUint16(th[csumOffset:], sum)
	h.flags = vnetFlagNeedsCsum
	h.csumStart = uint16(len(nh))
	h.csumOffset = uint16(csumOffset)
	h.hdrLen = uint16(pkt.HeaderSize())
}
