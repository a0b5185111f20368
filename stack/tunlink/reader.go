package tunlink

import (
	"errors"
	"fmt"
	"sync/atomic"
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
type reader struct {
	e        *Endpoint
	d        stack.NetworkDispatcher
	stopFD   int         // eventfd that wakes the reader from poll
	stopping atomic.Bool // tells a busy reader to stop between packets
	hdrLen   int
	hdr      [maxVnetHdrLen]byte
	views    []*buffer.View // nil where a delivered packet took the view
	iovecs   []unix.Iovec   // [hdr] then one per view
	polls    [2]unix.PollFd // stop eventfd, TUN fd
}

func newReader(e *Endpoint, d stack.NetworkDispatcher) (*reader, error) {
	efd, err := unix.Eventfd(0, unix.EFD_NONBLOCK|unix.EFD_CLOEXEC)
	if err != nil {
		return nil, fmt.Errorf("create eventfd: %w: check the fd limit (ulimit -n)", err)
	}
	r := &reader{
		e:      e,
		d:      d,
		stopFD: efd,
		hdrLen: e.vnetHdrLen,
		views:  make([]*buffer.View, len(e.readSizes)),
		polls: [2]unix.PollFd{
			{Fd: int32(efd), Events: unix.POLLIN},
			{Fd: int32(e.fd), Events: unix.POLLIN},
		},
	}
	r.iovecs = make([]unix.Iovec, len(r.views), len(r.views)+1)
	if r.hdrLen > 0 {
		hdr := unix.Iovec{Base: &r.hdr[0]}
		hdr.SetLen(r.hdrLen)
		r.iovecs = append([]unix.Iovec{hdr}, r.iovecs...)
	}
	return r, nil
}

// stop asks the reader to exit. The Endpoint calls it (under its lock) at
// most once, and only while r is its running reader, so the eventfd is open.
func (r *reader) stop() {
	r.stopping.Store(true)
	one := [8]byte{1}
	// An eventfd write of 1 only fails on counter overflow.
	_, _ = unix.Write(r.stopFD, one[:])
}

func (r *reader) run() {
	defer r.release()
	for !r.stopping.Load() {
		r.refill()
		n, errno := readv(r.e.fd, r.iovecs)
		switch {
		case errno == 0 && n > 0:
			r.deliver(n)
		case errno == 0:
			// An empty packet, or end of file on a socket standing in for
			// the TUN; poll tells the two apart.
			r.e.stats.rxShort.Add(1)
			fallthrough
		case errno == unix.EAGAIN:
			if !r.wait() {
				return
			}
		case errno == unix.EINTR:
		default:
			r.fail("read", errno)
			return
		}
	}
}

// wait blocks until the fd is readable or the endpoint stops. It returns
// false if the reader must exit.
func (r *reader) wait() bool {
	for {
		_, err := unix.Poll(r.polls[:], -1)
		if errors.Is(err, unix.EINTR) {
			continue
		}
		if err != nil {
			r.fail("poll", err)
			return false
		}
		if r.polls[0].Revents&unix.POLLIN != 0 {
			return false
		}
		if r.polls[1].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			r.fail("poll", unix.EPIPE)
			return false
		}
		return true
	}
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

// release frees what the reader holds. After detach (or stop), nothing
// touches r.stopFD any more.
func (r *reader) release() {
	r.e.detach(r)
	_ = unix.Close(r.stopFD)
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
