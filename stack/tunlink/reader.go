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

// readViewLadder are the sizes of the views one read scatters into. Small
// packets fill only the first (256 bytes, room for any IP+TCP header) and
// so pin only a small pooled chunk while the stack holds them; an MTU-sized
// packet also takes a 2 KiB view; a TCP super-packet the whole ladder.
// Every size is a pooled chunk size, so appending the views to a
// buffer.Buffer never copies.
var readViewLadder = [...]int{256, 2048, 2048, 4096, 8192, 16384, 32768}

// readViewSizes returns the shortest prefix of readViewLadder holding
// maxPacket bytes (at most the whole ladder, which holds any IP packet).
func readViewSizes(maxPacket int) []int {
	total := 0
	for i, size := range readViewLadder {
		total += size
		if total >= maxPacket {
			return readViewLadder[:i+1]
		}
	}
	return readViewLadder[:]
}

// reader is the goroutine that moves packets from the fd into the stack. It
// reuses its views until a packet is delivered, so dropped packets cost no
// allocation and delivered ones cost only pooled views.
//
// It waits for packets in the Go runtime's poller and reads with raw system
// calls, so that no thread ever blocks in a system call on its behalf. A
// thread blocked in one (as in poll(2)) wakes the runtime's sysmon thread
// each time it returns to an otherwise idle process, and sysmon then polls
// every 20 µs for a millisecond: at tens of thousands of wakeups a second
// that cost about a tenth of the gateway's CPU time in a virtual machine.
type reader struct {
	e        *Endpoint
	d        stack.NetworkDispatcher
	file     *os.File        // a dup of the TUN fd, registered with the poller
	rc       syscall.RawConn // file's, for reads that park in the poller
	readFn   func(fd uintptr) bool
	stopping atomic.Bool // tells the reader to stop between packets
	hdrLen   int
	hdr      [maxVnetHdrLen]byte
	views    []*buffer.View // nil where a delivered packet took the view
	iovecs   []unix.Iovec   // [hdr] then one per view
	n        int            // what readFn's last readv returned
	errno    unix.Errno
}

func newReader(e *Endpoint, d stack.NetworkDispatcher) (*reader, error) {
	// A dup shares the TUN queue (the open file description) but lets the
	// reader hand its own descriptor to the poller and close it when it
	// stops, without touching the fd the Endpoint does not own.
	dup, err := unix.FcntlInt(uintptr(e.fd), unix.F_DUPFD_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("dup fd %d: %w: check the fd limit (ulimit -n)", e.fd, err)
	}
	file := os.NewFile(uintptr(dup), "tun")
	rc, err := file.SyscallConn()
	if err != nil {
		file.Close()
		return nil, fmt.Errorf("register fd %d with the poller: %w", e.fd, err)
	}
	r := &reader{
		e:      e,
		d:      d,
		file:   file,
		rc:     rc,
		hdrLen: e.vnetHdrLen,
		views:  make([]*buffer.View, len(e.readSizes)),
	}
	// Bound once: a method value made per read would allocate.
	r.readFn = r.readOnce
	r.iovecs = make([]unix.Iovec, len(r.views), len(r.views)+1)
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
			if hungUp(r.e.fd) {
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
// park in the poller when there is nothing to read.
func (r *reader) readOnce(fd uintptr) bool {
	r.n, r.errno = readv(int(fd), r.iovecs)
	return r.errno != unix.EAGAIN
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
		"op", op, "fd", r.e.fd, "err", err)
	if r.e.onFatal != nil {
		r.e.onFatal(fmt.Errorf("%s: %w", op, err))
	}
}

// refill replaces the views the last delivered packet took.
func (r *reader) refill() {
	off := len(r.iovecs) - len(r.views)
	for i, v := range r.views {
		if v != nil {
			continue
		}
		v = buffer.NewViewSize(r.e.readSizes[i])
		r.views[i] = v
		r.iovecs[off+i] = unix.Iovec{Base: v.BasePtr()}
		r.iovecs[off+i].SetLen(v.Size())
	}
}

// release frees what the reader holds, its dup of the fd included.
func (r *reader) release() {
	r.e.detach(r)
	r.file.Close()
	for i, v := range r.views {
		if v != nil {
			v.Release()
			r.views[i] = nil
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
	first := r.views[0].AsSlice()
	proto, ipLen, ok := r.checkIP(first, size)
	if !ok {
		return
	}

	var payload buffer.Buffer
	for i, rest := 0, ipLen; rest > 0; i++ {
		v := r.views[i]
		r.views[i] = nil
		if v.Size() > rest {
			v.CapLength(rest)
		}
		rest -= v.Size()
		// The views are full chunks, so Append links them without copying
		// and cannot fail.
		_ = payload.Append(v)
	}
	if !trusted && !checksumsValid(proto, first, &payload) {
		st.rxBadChecksum.Add(1)
		payload.Release()
		return
	}
	pkt := stack.NewPacketBuffer(stack.PacketBufferOptions{Payload: payload})
	st.rxPackets.Add(1)
	st.rxBytes.Add(uint64(ipLen))
	r.d.DeliverNetworkPacket(proto, pkt)
	pkt.DecRef()
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
