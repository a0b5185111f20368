package tunlink

import (
	"encoding/binary"
	"errors"
	"net/netip"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// UDPHandler takes UDP datagrams from the device before the stack sees
// them: a gateway that keeps its own UDP sessions needs none of the
// stack's work for them (parsing into a packet buffer, the network
// layer's checks, the transport demultiplexer), only the addresses and
// the payload.
type UDPHandler interface {
	// HandleUDP is called on a reader goroutine for every plain datagram
	// (see plainUDP): from the app at src to dst, with its length and
	// checksums valid. payload is valid only during the call. It must not
	// block. Returning false leaves the packet to the stack, as if there
	// were no handler; true means the handler took it.
	HandleUDP(src, dst netip.AddrPort, payload []byte) bool
}

// errStarted means SetUDPHandler came after the readers started.
var errStarted = errors.New("tunlink: UDP handler set after the endpoint was attached or closed")

// errWriteClosed means WriteIP came after Close.
var errWriteClosed = errors.New("tunlink: write after close")

// ErrNoUSO means WriteUDPSegments cannot write segments as one packet
// here (no virtio-net header, or a kernel without UDP segmentation):
// nothing was written, and the caller sends the datagrams one by one.
var ErrNoUSO = errors.New("tunlink: UDP segmentation offload not available")

// maxUSOSegments bounds the datagrams of one WriteUDPSegments: the
// kernel's UDP_MAX_SEGMENTS on older kernels.
const maxUSOSegments = 64

// SetUDPHandler makes the readers hand plain UDP datagrams to h instead of
// the stack. Call it before the endpoint is attached (stack.CreateNIC):
// the readers read the handler without a lock, so it cannot change once
// they run, and a later call returns an error and changes nothing.
func (e *Endpoint) SetUDPHandler(h UDPHandler) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.started || e.closed {
		return errStarted
	}
	e.udp = h
	return nil
}

// WriteIP writes one whole IPv4 or IPv6 packet, with complete checksums,
// to the device with one system call, on the queue its flow hashes to
// (as WritePackets would). It does not keep pkt. It is safe for
// concurrent use, and refuses (errWriteClosed, nothing written) after
// Close, whose caller may close the fd next. A full device drops the
// packet and returns the errno.
func (e *Endpoint) WriteIP(pkt []byte) error {
	if len(pkt) == 0 {
		return nil
	}
	var iovecs [2]unix.Iovec
	var hdr [maxVnetHdrLen]byte // zero: no offload asked for
	n := 0
	if e.vnetHdrLen > 0 {
		iovecs[0] = unix.Iovec{Base: &hdr[0]}
		iovecs[0].SetLen(e.vnetHdrLen)
		n++
	}
	iovecs[n] = unix.Iovec{Base: &pkt[0]}
	iovecs[n].SetLen(len(pkt))
	n++
	fd := e.fd
	if len(e.fds) > 1 {
		nh, th := splitIP(pkt)
		fd = e.fds[hashFlow(nh, th)%uint32(len(e.fds))]
	}
	errno := e.writev(fd, iovecs[:n])
	if errno == errnoClosed {
		return errWriteClosed
	}
	if errno != 0 {
		e.stats.txErrors.Add(1)
		return errno
	}
	e.stats.txPackets.Add(1)
	e.stats.txBytes.Add(uint64(len(pkt)))
	e.stats.txUDPFast.Add(1)
	return nil
}

// WriteUDPSegments writes datagrams that one source sends one
// destination, each seg bytes but the last (which may be shorter), as one
// packet the kernel splits (UDP segmentation offload): one system call and
// one pass through the device for all of them. hdr is the IPv4 or IPv6
// header and the UDP header of the whole, their lengths counting every
// segment, the UDP checksum field holding the pseudo-header sum only (the
// kernel completes each segment's). It does not keep hdr or segs. With
// ErrNoUSO nothing was written; a kernel that refuses the packet makes
// every later call return it too.
func (e *Endpoint) WriteUDPSegments(hdr []byte, segs [][]byte) error {
	if e.vnetHdrLen == 0 || e.noUSO.Load() || len(segs) > maxUSOSegments || len(segs) == 0 {
		return ErrNoUSO
	}
	nh, th := splitIP(hdr)
	if len(th) != header.UDPMinimumSize {
		return ErrNoUSO
	}
	var iovecs [2 + maxUSOSegments]unix.Iovec
	var vh [maxVnetHdrLen]byte
	h := vnetHdr{
		flags: vnetFlagNeedsCsum, gsoType: vnetGSOUDPL4, hdrLen: uint16(len(hdr)), gsoSize: uint16(len(segs[0])),
		csumStart: uint16(len(nh)), csumOffset: udpChecksumOffset,
	}
	h.encode(vh[:e.vnetHdrLen])
	iovecs[0] = unix.Iovec{Base: &vh[0]}
	iovecs[0].SetLen(e.vnetHdrLen)
	iovecs[1] = unix.Iovec{Base: &hdr[0]}
	iovecs[1].SetLen(len(hdr))
	n, size := 2, len(hdr)
	for _, s := range segs {
		if len(s) == 0 {
			continue
		}
		iovecs[n] = unix.Iovec{Base: &s[0]}
		iovecs[n].SetLen(len(s))
		n++
		size += len(s)
	}
	fd := e.fd
	if len(e.fds) > 1 {
		fd = e.fds[hashFlow(nh, th)%uint32(len(e.fds))]
	}
	switch errno := e.writev(fd, iovecs[:n]); errno {
	case 0:
	case errnoClosed:
		return errWriteClosed
	case unix.EINVAL:
		e.noUSO.Store(true)
		return ErrNoUSO
	default:
		e.stats.txErrors.Add(1)
		return errno
	}
	e.stats.txPackets.Add(1)
	e.stats.txBytes.Add(uint64(size))
	e.stats.txUDPFast.Add(uint64(len(segs)))
	return nil
}

// errnoClosed is what writev returns after Close: no errno writev(2)
// itself returns.
const errnoClosed = ^unix.Errno(0)

// writev writes iovecs to fd with one raw system call (the fd is
// non-blocking), unless Close has been called (errnoClosed).
func (e *Endpoint) writev(fd int, iovecs []unix.Iovec) unix.Errno {
	e.wmu.RLock()
	defer e.wmu.RUnlock()
	if e.wclosed {
		return errnoClosed
	}
	_, _, errno := unix.RawSyscall(unix.SYS_WRITEV, uintptr(fd), uintptr(unsafe.Pointer(&iovecs[0])), uintptr(len(iovecs)))
	return errno
}

// splitIP returns the network header of a whole packet and what follows
// it, for hashFlow; a packet too short for its header gives empty slices.
func splitIP(pkt []byte) (nh, th []byte) {
	switch header.IPVersion(pkt) {
	case header.IPv4Version:
		if len(pkt) >= header.IPv4MinimumSize {
			ihl := int(header.IPv4(pkt).HeaderLength())
			if ihl >= header.IPv4MinimumSize && ihl <= len(pkt) {
				return pkt[:ihl], pkt[ihl:]
			}
		}
	case header.IPv6Version:
		if len(pkt) >= header.IPv6MinimumSize {
			return pkt[:header.IPv6MinimumSize], pkt[header.IPv6MinimumSize:]
		}
	}
	return nil, nil
}

// plainUDP is what the fast path knows of a datagram it may take.
type plainUDP struct {
	src, dst netip.AddrPort
	l4Off    int // where the UDP header starts
	v4       bool
}

// parsePlainUDP reports whether the IP packet of ipLen bytes whose headers
// are in first (which checkIP found to hold a whole IPv4 or IPv6 header)
// is a datagram the fast path may take: UDP right after a fixed IPv4
// header (no options) or IPv6 header (no extension headers), not a
// fragment, its UDP length exactly what the IP length leaves, both ports
// non-zero and both addresses plain unicast (not loopback, multicast,
// broadcast, unspecified, link-local or IPv4-mapped). Everything else goes
// to the stack, whose checks and counters then apply as before.
// Checksums are checked apart (udpChecksumsValid), over the whole packet.
func parsePlainUDP(first []byte, ipLen int) (plainUDP, bool) {
	var d plainUDP
	switch header.IPVersion(first) {
	case header.IPv4Version:
		ip := header.IPv4(first)
		if ip.HeaderLength() != header.IPv4MinimumSize || ip.Protocol() != uint8(header.UDPProtocolNumber) ||
			ip.More() || ip.FragmentOffset() != 0 || int(ip.TotalLength()) != ipLen {
			return d, false
		}
		d.v4, d.l4Off = true, header.IPv4MinimumSize
		d.src = netip.AddrPortFrom(netip.AddrFrom4([4]byte(first[12:16])), 0)
		d.dst = netip.AddrPortFrom(netip.AddrFrom4([4]byte(first[16:20])), 0)
	case header.IPv6Version:
		ip := header.IPv6(first)
		if ip.NextHeader() != uint8(header.UDPProtocolNumber) {
			return d, false
		}
		d.l4Off = header.IPv6MinimumSize
		d.src = netip.AddrPortFrom(netip.AddrFrom16([16]byte(first[8:24])), 0)
		d.dst = netip.AddrPortFrom(netip.AddrFrom16([16]byte(first[24:40])), 0)
	default:
		return d, false
	}
	if ipLen < d.l4Off+header.UDPMinimumSize || len(first) < d.l4Off+header.UDPMinimumSize {
		return d, false
	}
	u := header.UDP(first[d.l4Off:])
	if int(u.Length()) != ipLen-d.l4Off || u.SourcePort() == 0 || u.DestinationPort() == 0 ||
		!plainUnicast(d.src.Addr()) || !plainUnicast(d.dst.Addr()) {
		return d, false
	}
	d.src = netip.AddrPortFrom(d.src.Addr(), u.SourcePort())
	d.dst = netip.AddrPortFrom(d.dst.Addr(), u.DestinationPort())
	return d, true
}

// plainUnicast reports whether a is an address the stack would accept
// without a second look: the stack drops loopback addresses from a
// device and treats the others below specially.
func plainUnicast(a netip.Addr) bool {
	return a.IsGlobalUnicast() && !a.Is4In6()
}

// udpChecksumsValid checks the IPv4 header checksum and the UDP checksum
// of the whole packet pkt, which parsePlainUDP described as d. A zero UDP
// checksum over IPv4 means the sender made none; over IPv6 it is invalid.
func udpChecksumsValid(pkt []byte, d plainUDP) bool {
	u := pkt[d.l4Off:]
	var src, dst tcpip.Address
	if d.v4 {
		if !header.IPv4(pkt).IsChecksumValid() {
			return false
		}
		if binary.BigEndian.Uint16(u[udpChecksumOffset:]) == 0 {
			return true
		}
		src, dst = tcpip.AddrFrom4(d.src.Addr().As4()), tcpip.AddrFrom4(d.dst.Addr().As4())
	} else {
		if binary.BigEndian.Uint16(u[udpChecksumOffset:]) == 0 {
			return false
		}
		src, dst = tcpip.AddrFrom16(d.src.Addr().As16()), tcpip.AddrFrom16(d.dst.Addr().As16())
	}
	pseudo := header.PseudoHeaderChecksum(header.UDPProtocolNumber, src, dst, uint16(len(u)))
	return checksum.Checksum(u, pseudo) == 0xffff
}

// takeUDP offers the packet just read (ipLen bytes, headers in first) to
// the UDP handler if it is a plain datagram, and reports whether the
// handler took it. verify says the checksums are the reader's to check
// (no virtio-net header, or a packet the kernel did not vouch for); a
// datagram that fails them is left to the usual path, which drops and
// counts it. The views stay the reader's: the handler does not keep the
// payload.
func (r *reader) takeUDP(first []byte, ipLen int, verify bool) bool {
	d, ok := parsePlainUDP(first, ipLen)
	if !ok {
		return false
	}
	pkt := r.contiguous(ipLen)
	if verify && !udpChecksumsValid(pkt, d) {
		return false
	}
	if !r.udp.HandleUDP(d.src, d.dst, pkt[d.l4Off+header.UDPMinimumSize:]) {
		return false
	}
	st := &r.e.stats
	st.rxPackets.Add(1)
	st.rxBytes.Add(uint64(ipLen))
	st.rxUDPFast.Add(1)
	r.packets.Add(1)
	return true
}

// contiguous returns the ipLen bytes just read as one slice: the head
// view when it holds them all, else a copy of head and body into the
// reader's scratch buffer.
func (r *reader) contiguous(ipLen int) []byte {
	head := r.head.AsSlice()
	if ipLen <= len(head) {
		return head[:ipLen]
	}
	if r.scratch == nil {
		r.scratch = make([]byte, headViewSize+r.bodySize)
	}
	n := copy(r.scratch, head)
	copy(r.scratch[n:], r.body.AsSlice()[:ipLen-n])
	return r.scratch[:ipLen]
}
