package udpnat

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Limits of one gathered send (UDP generic segmentation offload).
const (
	// maxGatherSegment is the largest datagram that is gathered: one that
	// fits a 1500-byte MTU in either family. The kernel refuses a segment
	// larger than the route's MTU, and larger datagrams (which the kernel
	// fragments) go out one by one as before.
	maxGatherSegment = 1500 - 40 - 8
	// maxGatherSegments bounds the datagrams of one send: the kernel's
	// UDP_MAX_SEGMENTS is 64 on older kernels, 128 on newer.
	maxGatherSegments = 64
	// maxGatherBytes bounds the payload of one send: one UDP length of
	// 16 bits over an IPv6 header, with room to spare.
	maxGatherBytes = 0xffff - 40 - 8
)

// errClosedMapping counts a datagram whose mapping closed before it left.
var errClosedMapping = errors.New("udpnat: mapping closed")

// gatherSlots is how many batches (flows: a mapping and a destination)
// gather at once, so that apps sending side by side (iperf3 -P 4, several
// QUIC connections) each still get batches when their datagrams
// interleave on the device. Each slot's buffer is up to 64 KiB.
const gatherSlots = 8

// gatherer collects consecutive datagrams that one app sends through one
// host socket to one destination, and sends them with one system call
// (sendmsg with UDP_SEGMENT): the kernel routes, filters and crosses the
// veth once per batch rather than once per datagram, which is where most
// of the upload's CPU time went (one sendto per datagram was more than
// half of it under iperf3 -u -b 0). A batch is sent when the next datagram
// of its flow does not fit it, when it is full, when its slot is needed
// for another flow, and at the end of every burst the caller reads from
// the device (Table.Flush): datagrams never wait for a later one, only
// for the rest of the burst already read. Each flow's datagrams leave in
// the order they came; different flows' may not, as across any network.
//
// It is on only once Flush has been called: a caller that never flushes
// gets every datagram sent at once, as before.
type gatherer struct {
	on atomic.Bool

	mu    sync.Mutex
	slots [gatherSlots]batch
	next  int // the slot to empty when every one is taken (round robin)
}

// batch is the datagrams gathered for one flow.
type batch struct {
	m     *mapping // nil when the slot is free
	fd    int
	dst   netip.AddrPort
	meter Meter
	seg   int  // size of every datagram in the batch but maybe the last
	n     int  // datagrams in the batch
	ended bool // the last one was shorter than seg: nothing may follow
	buf   []byte
}

// add sends payload to dst through m's host socket fd, gathered with the
// datagrams before it where it can be. Errors are counted in dropped.
func (g *gatherer) add(m *mapping, fd int, dst netip.AddrPort, meter Meter, payload []byte, dropped *atomic.Uint64) {
	g.mu.Lock()
	defer g.mu.Unlock()
	b := g.slot(m, dst, dropped)
	if b.m != nil && (b.ended || len(payload) > b.seg || b.n == maxGatherSegments ||
		len(b.buf)+len(payload) > maxGatherBytes) {
		b.flush(dropped)
	}
	if len(payload) > maxGatherSegment || len(payload) == 0 {
		// Too large to be a segment (or empty): sent alone, after the
		// flow's batch (flushed above, as it cannot be this one's).
		m.mu.RLock()
		err := errClosedMapping
		if !m.closed.Load() {
			err = errnoOrNil(sendToErrno(fd, payload, dst))
		}
		m.mu.RUnlock()
		countSent(meter, err, len(payload), 1, len(payload), dropped)
		return
	}
	if b.m == nil {
		if b.buf == nil {
			b.buf = make([]byte, 0, maxGatherBytes)
		}
		b.m, b.fd, b.dst, b.meter, b.seg = m, fd, dst, meter, len(payload)
	}
	b.buf = append(b.buf, payload...)
	b.n++
	b.ended = len(payload) < b.seg
}

// slot returns the flow's batch, else a free slot, else the next slot
// after sending what it held.
func (g *gatherer) slot(m *mapping, dst netip.AddrPort, dropped *atomic.Uint64) *batch {
	var free *batch
	for i := range g.slots {
		b := &g.slots[i]
		if b.m == m && b.dst == dst {
			return b
		}
		if b.m == nil && free == nil {
			free = b
		}
	}
	if free != nil {
		return free
	}
	b := &g.slots[g.next]
	g.next = (g.next + 1) % gatherSlots
	b.flush(dropped)
	return b
}

// flush sends every batch.
func (g *gatherer) flush(dropped *atomic.Uint64) {
	g.mu.Lock()
	for i := range g.slots {
		g.slots[i].flush(dropped)
	}
	g.mu.Unlock()
}

// flush sends the batch, if any, and frees its slot.
func (b *batch) flush(dropped *atomic.Uint64) {
	if b.m == nil {
		return
	}
	m := b.m
	m.mu.RLock() // keeps the socket open until the write is done
	err := errClosedMapping
	if !m.closed.Load() {
		err = sendSegments(b.fd, b.buf, b.seg, b.n, b.dst)
	}
	m.mu.RUnlock()
	countSent(b.meter, err, b.seg, b.n, len(b.buf), dropped)
	b.m, b.meter, b.buf, b.n, b.ended = nil, nil, b.buf[:0], 0, false
}

// countSent counts n datagrams of seg bytes each but the last (total bytes in
// all) as sent to meter, or as dropped if err is set.
func countSent(meter Meter, err error, seg, n, total int, dropped *atomic.Uint64) {
	if err != nil {
		dropped.Add(uint64(n))
		return
	}
	if meter == nil {
		return
	}
	for range n - 1 {
		meter.Sent(seg)
	}
	meter.Sent(total - (n-1)*seg)
}

// sendSegments sends the n datagrams in p (each seg bytes, the last maybe
// shorter) to dst. More than one go in one sendmsg with UDP_SEGMENT; where
// the kernel or the route does not take that (EINVAL, EIO: no checksum
// offload on the way out, a segment above the route's MTU), one by one.
// It does not allocate.
func sendSegments(fd int, p []byte, seg, n int, dst netip.AddrPort) error {
	if n == 1 {
		return errnoOrNil(sendToErrno(fd, p, dst))
	}
	switch errno := sendGSO(fd, p, seg, dst); errno {
	case 0:
		return nil
	case unix.EINVAL, unix.EIO:
	default:
		return errno
	}
	for len(p) > 0 {
		k := min(seg, len(p))
		if errno := sendToErrno(fd, p[:k], dst); errno != 0 {
			return errno
		}
		p = p[k:]
	}
	return nil
}

// udpSegmentCmsg is a control message carrying UDP_SEGMENT's uint16,
// padded to the kernel's alignment.
type udpSegmentCmsg struct {
	hdr  unix.Cmsghdr
	size uint16
	_    [6]byte
}

// sendGSO sends p to dst as datagrams of seg bytes with one raw,
// non-blocking sendmsg.
func sendGSO(fd int, p []byte, seg int, dst netip.AddrPort) unix.Errno {
	var sa rawSockaddr
	var msg unix.Msghdr
	msg.Namelen = sa.set(dst)
	msg.Name = (*byte)(unsafe.Pointer(&sa))
	iov := unix.Iovec{Base: &p[0]}
	iov.SetLen(len(p))
	msg.Iov, msg.Iovlen = &iov, 1
	var cm udpSegmentCmsg
	cm.hdr.Level, cm.hdr.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	cm.hdr.SetLen(unix.CmsgLen(2))
	cm.size = uint16(seg)
	msg.Control = (*byte)(unsafe.Pointer(&cm))
	msg.SetControllen(unix.CmsgSpace(2))
	for retried := false; ; retried = true {
		_, _, errno := unix.RawSyscall(unix.SYS_SENDMSG, uintptr(fd), uintptr(unsafe.Pointer(&msg)), unix.MSG_DONTWAIT)
		switch {
		case errno == unix.EINTR, errno == unix.ECONNREFUSED && !retried:
			continue // as in sendToErrno
		}
		return errno
	}
}

// errnoOrNil turns 0 into a nil error without allocating.
func errnoOrNil(errno unix.Errno) error {
	if errno == 0 {
		return nil
	}
	return errno
}

// Flush sends the datagrams Send has gathered. The stack's device reader
// calls it at the end of every burst it reads (when the device has nothing
// more for it); from the first call on, Send gathers consecutive datagrams
// to one destination into one system call until the next Flush. It never
// blocks on the network.
func (t *Table) Flush() {
	if !t.gather.on.Load() {
		t.gather.on.Store(true)
		return
	}
	t.gather.flush(&t.dropped)
}
