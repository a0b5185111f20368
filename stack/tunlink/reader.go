package tunlink

import (
	"fmt"
	"os"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/buffer"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/stack"
)

// headViewSize is the size of the first view a read scatters into: room
// for any IP and TCP header, so that the stack parses headers from one
// view, and all that a small packet (an ACK, a DNS query) pins while the
// stack holds it.
const headViewSize = 256

// bodyViewSize returns the size of the second view, which takes the rest of
// a packet of up to maxPacket bytes: the smallest pooled chunk size that
// holds it, so appending the view to a buffer.Buffer never copies. A TCP
// super-packet fits the two views, so the stack handles two views per
// 64 KiB instead of a ladder of seven (fewer pool, reference-count and
// copy steps per packet).
func bodyViewSize(maxPacket int) int {
	size := 64 // the smallest pooled chunk
	for size < maxPacket-headViewSize && size < buffer.MaxChunkSize {
		size <<= 1
	}
	return size
}

// reader is the goroutine that moves packets from the fd into the stack. It
// reuses its views until a packet is delivered, so dropped packets cost no
// allocation and delivered ones cost only pooled views. A packet that
// fills only a small part of the body view is copied out instead, so that
// it does not pin a mostly empty 64 KiB chunk while the stack holds it.
//
// It waits for packets in the Go runtime's poller and reads with raw system
// calls, so that no thread ever blocks in a system call on its behalf. A
// thread blocked in one (as in poll(2)) wakes the runtime's sysmon thread
// each time it returns to an otherwise idle process, and sysmon then polls
// every 20 µs for a millisecond: at tens of thousands of wakeups a second
// that cost about a tenth of the gateway's CPU time in a virtual machine.
type reader struct {
	e        *Endpoint
	fd       int // the queue read (the Endpoint's)
	d        stack.NetworkDispatcher
	file     *os.File        // a dup of the TUN fd, registered with the poller
	rc       syscall.RawConn // file's, for reads that park in the poller
	readFn   func(fd uintptr) bool
	stopping atomic.Bool   // tells the reader to stop between packets
	packets  atomic.Uint64 // delivered from this queue (the tests look)
	hdrLen   int
	hdr      [maxVnetHdrLen]byte
	head     *buffer.View // nil once a delivered packet took it
	body     *buffer.View // likewise
	bodySize int
	iovecs   []unix.Iovec // [vnet hdr,] head, body
	n        int          // what readFn's last readv returned
	errno    unix.Errno
	burst    int // packets read since the burst-end hook last ran
	udp      UDPHandler
	scratch  []byte // a datagram larger than the head view, made whole for udp
}

// maxBurst bounds how many packets a reader reads between two calls of
// the burst-end hook: a device that never runs dry (an upload that keeps
// the reader busy) would otherwise hold what the hook sends (datagrams
// gathered for other flows) for as long as the load lasts.
const maxBurst = 256

func newReader(e *Endpoint, fd int, d stack.NetworkDispatcher) (*reader, error) {
	// A dup shares the TUN queue (the open file description) but lets the
	// reader hand its own descriptor to the poller and close it when it
	// stops, without touching the fd the Endpoint does not own.
	dup, err := unix.FcntlInt(uintptr(fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup fd %d: %w: check the fd limit (ulimit -n)", fd, err)
	}
	file := os.NewFile(uintptr(dup), "tun")
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("register fd %d with the poller: %w", fd, err)
	}
	r := &reader{
		e:        e,
		fd:       fd,
		d:        d,
		file:     file,
		rc:       rc,
		hdrLen:   e.vnetHdrLen,
		bodySize: bodyViewSize(e.maxReadPacket()),
		udp:      e.udp,
	}
	// Bound once: a method value made per read would allocate.
	r.readFn = r.readOnce
	r.iovecs = make([]unix.Iovec, 2, 3)
	if r.hdrLen > 0 {
		hdr := unix.Iovec{Base: &r.hdr[0]}
		hdr.SetLen(r.hdrLen)
		r.iovecs = append([]unix.Iovec{hdr}, r.iovecs...)
	}
	return r, nil
}

// stop asks the reader to exit. It never blocks: the Endpoint calls it
// holding its lock, and from Attach under the stack's lock, which a reader
// in the middle of a delivery may be waiting for. An expired deadline
// wakes a reader parked in the poller.
func (r *reader) stop() {
	r.stopping.Store(true)
	_ = r.file.SetReadDeadline(time.Unix(1, 0))
}

func (r *reader) run() {
	defer r.release()
	for !r.stopping.Load() {
		r.refill()
		if err := r.rc.Read(r.readFn); err != nil {
			if !r.stopping.Load() {
				r.fail("wait", err)
			}
			return
		}
		switch n, errno := r.n, r.errno; {
		case errno == 0 && n > 0:
			r.deliver(n)
		case errno == 0:
			r.e.stats.rxShort.Add(1)
			// An empty packet, or end of file on a socket standing in
			// for the TUN device.
			if hungUp(r.fd) {
				r.fail("read", unix.EPIPE)
				return
			}
		case errno == unix.EINTR:
		default:
			r.fail("read", errno)
			return
		}
	}
}

// readOnce is the reader's RawConn.Read callback: one readv, or false to
// park in the poller when there is nothing to read, after the burst-end
// hook has sent what the burst left gathered. The hook also runs every
// maxBurst packets of a burst that does not end.
func (r *reader) readOnce(fd uintptr) bool {
	r.n, r.errno = readv(int(fd), r.iovecs)
	if r.errno != unix.EAGAIN {
		if r.burst++; r.burst >= maxBurst && r.e.onBurstEnd != nil {
			r.burst = 0
			r.e.onBurstEnd() // before this packet: it is not delivered yet
		}
		return true
	}
	r.burst = 0
	if r.e.onBurstEnd != nil {
		r.e.onBurstEnd()
	}
	return false
}

// hungUp reports whether fd's peer is gone, without waiting.
func hungUp(fd int) bool {
	polls := [1]unix.PollFd{{Fd: int32(fd), Events: unix.POLLIN}}
	n, _, errno := unix.RawSyscall6(unix.SYS_PPOLL, uintptr(unsafe.Pointer(&polls[0])), 1,
		uintptr(unsafe.Pointer(&unix.Timespec{})), 0, 0, 0)
	return errno == 0 && n == 1 && polls[0].Revents&(unix.POLLHUP|unix.POLLERR|unix.POLLNVAL) != 0
}

// fail reports a read error the reader cannot get past (the device was
// deleted, the fd closed under us). The reader then exits and detaches, so
// IsAttached says so.
func (r *reader) fail(op string, err error) {
	r.e.log.Error("tunlink: reader stopped: the TUN device is gone or its fd was closed",
		"op", op, "fd", r.fd, "err", err)
	if r.e.onFatal != nil && !r.e.fatal.Swap(true) {
		r.e.onFatal(fmt.Errorf("%s: %w", op, err))
	}
}

// refill replaces the views the last delivered packet took.
func (r *reader) refill() {
	off := len(r.iovecs) - 2
	if r.head == nil {
		r.head = newReadView(headViewSize, &r.iovecs[off])
	}
	if r.body == nil {
		r.body = newReadView(r.bodySize, &r.iovecs[off+1])
	}
}

func newReadView(size int, iov *unix.Iovec) *buffer.View {
	v := buffer.NewViewSize(size)
	*iov = unix.Iovec{Base: v.BasePtr()}
	iov.SetLen(size)
	return v
}

// release frees what the reader holds, its dup of the fd included.
func (r *reader) release() {
	r.e.detach(r)
	r.file.Close()
	for _, v := range []**buffer.View{&r.head, &r.body} {
		if *v != nil {
			(*v).Release()
			*v = nil
		}
	}
}

// deliver checks the n bytes just read and hands the packet to the stack.
func (r *reader) deliver(n int) {
	st := &r.e.stats
	if n < r.hdrLen {
		st.rxShort.Add(1)
		return
	}
	size := n - r.hdrLen
	trusted := true
	if r.hdrLen > 0 {
		h := decodeVnetHdr(r.hdr[:])
		switch h.gsoType &^ vnetGSOECN {
		case vnetGSONone, vnetGSOTCPv4, vnetGSOTCPv6:
		default:
			st.rxBadVnetHdr.Add(1)
			return
		}
		// A partial checksum means the packet was made by this host's
		// kernel and never crossed a wire; DATA_VALID means the kernel
		// checked it. Anything else (say, forwarded from a NIC that does
		// not verify checksums) we check before the stack, which with
		// CapabilityRXChecksumOffload no longer does.
		trusted = h.flags&(vnetFlagNeedsCsum|vnetFlagDataValid) != 0
	}
	first := r.head.AsSlice()
	proto, ipLen, ok := r.checkIP(first, size)
	if !ok {
		return
	}
	if r.e.filter.drops(first) {
		st.rxNotForwarded.Add(1)
		return
	}
	// Without a virtio-net header the stack checks checksums itself, so
	// a datagram it does not see is checked here.
	if r.udp != nil && r.takeUDP(first, ipLen, !trusted || r.hdrLen == 0) {
		return
	}
	payload := r.takePacket(ipLen)
	if !trusted && !checksumsValid(proto, first, &payload) {
		st.rxBadChecksum.Add(1)
		payload.Release()
		return
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: payload})
	st.rxPackets.Add(1)
	st.rxBytes.Add(uint64(ipLen))
	r.packets.Add(1)
	r.d.DeliverNetworkPacket(proto, pkt)
	pkt.DecRef()
}

// takePacket returns the ipLen bytes just read as a buffer, taking the
// views it needs (refill replaces them). Appending a full view (the head)
// or a view of one pooled chunk links it without copying and cannot fail.
func (r *reader) takePacket(ipLen int) buffer.Buffer {
	var payload buffer.Buffer
	head := r.head
	r.head = nil
	if ipLen < headViewSize {
		head.CapLength(ipLen)
	}
	_ = payload.Append(head)
	rest := ipLen - headViewSize
	switch {
	case rest <= 0:
	case rest >= r.bodySize/4:
		body := r.body
		r.body = nil
		body.CapLength(rest)
		_ = payload.Append(body)
	default:
		_ = payload.Append(buffer.NewViewWithData(r.body.AsSlice()[:rest]))
	}
	return payload
}

// checkIP reads the IP version and length from the first view (which holds
// any IP header) and counts the packet as dropped if it is not a whole IPv4
// or IPv6 packet within the size bytes read. It returns the packet's length
// by its header; bytes after that are not part of it.
func (r *reader) checkIP(first []byte, size int) (tcpip.NetworkProtocolNumber, int, bool) {
	st := &r.e.stats
	if size == 0 {
		st.rxShort.Add(1)
		return 0, 0, false
	}
	var proto tcpip.NetworkProtocolNumber
	var ipLen int
	switch header.IPVersion(first) {
	case header.IPv4Version:
		if size < header.IPv4MinimumSize {
			st.rxShort.Add(1)
			return 0, 0, false
		}
		proto, ipLen = header.IPv4ProtocolNumber, int(header.IPv4(first).TotalLength())
	case header.IPv6Version:
		if size < header.IPv6MinimumSize {
			st.rxShort.Add(1)
			return 0, 0, false
		}
		proto, ipLen = header.IPv6ProtocolNumber, header.IPv6MinimumSize+int(header.IPv6(first).PayloadLength())
	default:
		st.rxBadVersion.Add(1)
		return 0, 0, false
	}
	if ipLen > size {
		st.rxTruncated.Add(1)
		return 0, 0, false
	}
	if ipLen < header.IPv4MinimumSize {
		// A bogus IPv4 total length; let the stack count it as malformed.
		ipLen = size
	}
	return proto, ipLen, true
}

func readv(fd int, iovecs []unix.Iovec) (int, unix.Errno) {
	n, _, errno := unix.RawSyscall(unix.SYS_READV, uintptr(fd), uintptr(unsafe.Pointer(&iovecs[0])), uintptr(len(iovecs)))
	return int(n), errno
}
