package udpnat

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/forwarder/internal/poll"
)

// readBatch bounds the datagrams read from one socket per poller round,
// so that one busy session cannot starve the others.
const readBatch = 64

// recvBatchSize is how many datagrams one recvmmsg reads: a busy socket
// costs one system call per this many datagrams instead of one each. Each
// slot holds a datagram of any size (maxDatagram), so the batch is about
// 1 MiB, once per table.
const recvBatchSize = 16

// poller waits for every raw session socket at once: an epoll set whose
// own descriptor sits in the Go runtime's poller, so that the one goroutine
// reading the table parks like any network read while nothing arrives.
// The sockets are level-triggered; their events carry the mapping's id,
// never its fd, so an event for a socket closed meanwhile finds no mapping.
type poller struct {
	ep    *poll.Epoll
	batch *recvBatch // the read buffers, used by run's goroutine only
}

func newPoller() (*poller, error) {
	ep, err := poll.NewEpoll("udpnat-epoll")
	if err != nil {
		return nil, fmt.Errorf("udpnat: %w", err)
	}
	return &poller{ep: ep, batch: newRecvBatch()}, nil
}

// add watches fd (level-triggered) for the mapping id. The kernel forgets
// fd when it closes.
func (p *poller) add(fd int, id uint64) error {
	if err := p.ep.Ctl(unix.EPOLL_CTL_ADD, fd, unix.EPOLLIN|unix.EPOLLERR, id); err != nil {
		return fmt.Errorf("udpnat: watch socket: %w", err)
	}
	return nil
}

// run hands every ready socket's mapping id and events to handle until
// close.
func (p *poller) run(handle func(id uint64, events uint32, batch *recvBatch)) {
	p.ep.Run(func(id uint64, events uint32) { handle(id, events, p.batch) })
}

func (p *poller) close() error { return p.ep.Close() }

// readRaw reads a ready raw socket on the poller's goroutine, up to
// recvBatchSize datagrams per system call and readBatch per round. What
// it leaves (a budget run out, a refusal in the error queue) the
// level-triggered set reports again at its next wait.
func (t *Table) readRaw(id uint64, events uint32, b *recvBatch) {
	t.mu.Lock()
	m := t.byID[id]
	fd := -1
	if m != nil {
		fd = m.fd
	}
	t.mu.Unlock()
	if fd < 0 {
		return
	}
	if events&unix.EPOLLERR != 0 {
		t.readErrors(m, fd)
	}
	for budget := readBatch; budget > 0; {
		m.mu.RLock()
		if m.closed.Load() {
			m.mu.RUnlock()
			return
		}
		want := min(budget, recvBatchSize)
		n, errno := b.recv(fd, want)
		m.mu.RUnlock()
		switch errno {
		case 0:
			for i := 0; i < n; {
				k := b.run(i, n)
				t.deliverSegments(m, b.src(i), b.runs[i:i+k])
				i += k
			}
			budget -= n
			if n < want {
				return // drained: the poller reports the socket again
			}
		case unix.EINTR, unix.ECONNREFUSED:
			// A refusal also waits in the error queue, with its
			// destination: readErrors passes it on next round.
			budget--
		default:
			return // EAGAIN: drained
		}
	}
}

// readErrors drains the socket's error queue (IP_RECVERR), passing port
// unreachable on to the app for the destination that sent it.
func (t *Table) readErrors(m *mapping, fd int) {
	var oob [256]byte
	var probe [64]byte
	for range readBatch {
		m.mu.RLock()
		if m.closed.Load() {
			m.mu.RUnlock()
			return
		}
		_, oobn, _, from, err := unix.Recvmsg(fd, probe[:], oob[:], unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
		m.mu.RUnlock()
		if err != nil {
			return
		}
		if dst, ok := portUnreachable(oob[:oobn], from); ok {
			t.refused(m, dst)
		}
	}
}

// portUnreachable finds an ICMP or ICMPv6 port unreachable in the control
// messages of an error-queue read; from is the datagram's destination.
func portUnreachable(oob []byte, from unix.Sockaddr) (netip.AddrPort, bool) {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return netip.AddrPort{}, false
	}
	for _, msg := range msgs {
		if len(msg.Data) < int(unsafe.Sizeof(unix.SockExtendedErr{})) {
			continue
		}
		e := (*unix.SockExtendedErr)(unsafe.Pointer(&msg.Data[0]))
		v4 := msg.Header.Level == unix.SOL_IP && msg.Header.Type == unix.IP_RECVERR &&
			e.Origin == unix.SO_EE_ORIGIN_ICMP && e.Type == 3 && e.Code == 3
		v6 := msg.Header.Level == unix.SOL_IPV6 && msg.Header.Type == unix.IPV6_RECVERR &&
			e.Origin == unix.SO_EE_ORIGIN_ICMP6 && e.Type == 1 && e.Code == 4
		if !v4 && !v6 {
			continue
		}
		switch sa := from.(type) {
		case *unix.SockaddrInet4:
			return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port)), true
		case *unix.SockaddrInet6:
			return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port)), true
		}
	}
	return netip.AddrPort{}, false
}

// rawSocket returns the fd of conn if it is a host socket, with the error
// queue turned on so that ICMP errors name their destination; -1 if conn
// is not a host socket. The fd stays conn's.
func rawSocket(conn any) (int, error) {
	sc, ok := conn.(syscall.Conn)
	if !ok {
		return -1, nil
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return -1, fmt.Errorf("udpnat: raw socket: %w", err)
	}
	fd := -1
	if err := rc.Control(func(f uintptr) { fd = int(f) }); err != nil {
		return -1, fmt.Errorf("udpnat: raw socket: %w", err)
	}
	domain, err := unix.GetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_DOMAIN)
	if err != nil {
		return -1, fmt.Errorf("udpnat: socket domain: %w", err)
	}
	level, opt := unix.SOL_IP, unix.IP_RECVERR
	if domain == unix.AF_INET6 {
		level, opt = unix.SOL_IPV6, unix.IPV6_RECVERR
	}
	if err := unix.SetsockoptInt(fd, level, opt, 1); err != nil {
		return -1, fmt.Errorf("udpnat: turn on the socket's error queue: %w", err)
	}
	return fd, nil
}

// sendTo sends p to dst with one raw, non-blocking system call: a full
// socket buffer loses the datagram (EAGAIN) rather than block the packet
// path. It does not allocate unless it fails.
func sendTo(fd int, p []byte, dst netip.AddrPort) error {
	if errno := sendToErrno(fd, p, dst); errno != 0 {
		return fmt.Errorf("send to %s: %w", dst, errno)
	}
	return nil
}

// sendToErrno is sendTo returning the bare errno (0: sent), which never
// allocates.
func sendToErrno(fd int, p []byte, dst netip.AddrPort) unix.Errno {
	var sa rawSockaddr
	salen := sa.set(dst)
	var base unsafe.Pointer
	if len(p) > 0 {
		base = unsafe.Pointer(&p[0])
	}
	for retried := false; ; retried = true {
		_, _, errno := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(fd), uintptr(base), uintptr(len(p)),
			unix.MSG_DONTWAIT, uintptr(unsafe.Pointer(&sa)), uintptr(salen))
		switch {
		case errno == unix.EINTR, errno == unix.ECONNREFUSED && !retried:
			// A refusal pending from an earlier datagram is reported
			// (and cleared) here; it has its own way to the app.
			continue
		}
		return errno
	}
}

// rawSockaddr holds a destination as the kernel reads it, on the caller's
// stack.
type rawSockaddr struct {
	unix.RawSockaddrInet6 // the larger; an IPv4 address is laid over it
}

// set writes dst into sa and returns the length to pass with it.
func (sa *rawSockaddr) set(dst netip.AddrPort) uint32 {
	if a := dst.Addr(); a.Is4() {
		sa4 := (*unix.RawSockaddrInet4)(unsafe.Pointer(sa))
		sa4.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa4.Port))[:], dst.Port())
		sa4.Addr = a.As4()
		return unix.SizeofSockaddrInet4
	}
	sa.Family = unix.AF_INET6
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], dst.Port())
	sa.Addr = dst.Addr().As16()
	return unix.SizeofSockaddrInet6
}

// addrPortOf reads the address a datagram came from.
func addrPortOf(rsa *unix.RawSockaddrAny) netip.AddrPort {
	switch rsa.Addr.Family {
	case unix.AF_INET:
		sa := (*unix.RawSockaddrInet4)(unsafe.Pointer(rsa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
	case unix.AF_INET6:
		sa := (*unix.RawSockaddrInet6)(unsafe.Pointer(rsa))
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), port)
	}
	return netip.AddrPort{}
}

// recvBatch is the buffers of one recvmmsg: recvBatchSize datagrams of up
// to maxDatagram bytes with their source addresses.
type recvBatch struct {
	hdrs  [recvBatchSize]unix.Mmsghdr
	iovs  [recvBatchSize]unix.Iovec
	names [recvBatchSize]unix.RawSockaddrAny
	bufs  [recvBatchSize][]byte
	runs  [recvBatchSize][]byte // the datagrams of the last recv, for deliverSegments
}

// maxSegment is the largest datagram delivered in a run of several: one
// that fits a 1500-byte MTU in either family, as the datagrams the app
// would get from the kernel (the stack writes a run as one packet that the
// kernel splits into datagrams of this size).
const maxSegment = 1500 - 40 - 8

// maxRunBytes bounds the payload of a run: one UDP length of 16 bits over
// an IPv6 header.
const maxRunBytes = 0xffff - 40 - 8

// run returns how many datagrams from i on (of the n the last recv read)
// make one run: from one source, each as long as the first but the last,
// which may be shorter; it fills runs[i:] with them.
func (b *recvBatch) run(i, n int) int {
	first := b.datagram(i)
	b.runs[i] = first
	seg, total := len(first), len(first)
	if seg == 0 || seg > maxSegment {
		return 1
	}
	src := b.src(i)
	k := 1
	for j := i + 1; j < n; j++ {
		p := b.datagram(j)
		if len(p) == 0 || len(p) > seg || total+len(p) > maxRunBytes || b.src(j) != src {
			break
		}
		b.runs[j] = p
		total += len(p)
		k++
		if len(p) < seg {
			break // a shorter one ends the run
		}
	}
	return k
}

func newRecvBatch() *recvBatch {
	b := &recvBatch{}
	for i := range b.bufs {
		b.bufs[i] = make([]byte, maxDatagram)
		b.iovs[i] = unix.Iovec{Base: &b.bufs[i][0]}
		b.iovs[i].SetLen(maxDatagram)
		b.hdrs[i].Hdr.Iov, b.hdrs[i].Hdr.Iovlen = &b.iovs[i], 1
		b.hdrs[i].Hdr.Name = (*byte)(unsafe.Pointer(&b.names[i]))
	}
	return b
}

// recv reads up to want datagrams without blocking, with one raw system
// call. It does not allocate.
func (b *recvBatch) recv(fd, want int) (int, unix.Errno) {
	for i := range want {
		b.hdrs[i].Hdr.Namelen = unix.SizeofSockaddrAny // the kernel shortens it
	}
	n, _, errno := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(fd), uintptr(unsafe.Pointer(&b.hdrs[0])), uintptr(want),
		unix.MSG_DONTWAIT, 0, 0)
	if errno != 0 {
		return 0, errno
	}
	return int(n), 0
}

// src is where datagram i of the last recv came from.
func (b *recvBatch) src(i int) netip.AddrPort { return addrPortOf(&b.names[i]) }

// datagram is datagram i of the last recv.
func (b *recvBatch) datagram(i int) []byte { return b.bufs[i][:b.hdrs[i].Len] }
