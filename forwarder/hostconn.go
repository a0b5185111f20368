package forwarder

import (
	"errors"
	"io"
	"net"
	"os"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/forwarder/internal/hostsock"
	"github.com/tungate/tungate/forwarder/internal/poll"
	"github.com/tungate/tungate/forwarder/proxy"
)

// hostConn is the upstream side of a flow when it is a host socket. It lets
// the relay wait for data without holding a buffer (ReadWaiter) and keeps
// half-close and reset working through the wrapper.
//
// For TCP and UDP it also reads and writes with raw system calls inside
// the runtime poller's callbacks. The socket is non-blocking, so a call
// never blocks; a regular one would still tell the runtime it might, which
// hands the thread's P to another thread and keeps the sysmon thread
// waking every 20 µs. In a virtual machine, where each of those wakeups is
// a costly context switch, that cost a busy TCP relay a tenth of the
// gateway's CPU time, and a UDP request/response load half of it.
type hostConn struct {
	net.Conn
	rc       syscall.RawConn
	raw      bool     // a TCP or UDP socket: Read and Write go raw
	datagram bool     // UDP: a read of 0 bytes is an empty datagram, not EOF
	rmode    readMode // the read side's, here in the bools' padding

	// The read side's state, used by the one goroutine that reads: its
	// callback is bound once, because a closure made per call would
	// allocate, and is one for peeks and both kinds of reads (rmode
	// picks), because each bound one is an allocation that an idle flow
	// keeps.
	readFn func(fd uintptr) bool
	rbuf   []byte
	rn     int
	rerr   unix.Errno
	lender bufferLender
	lent   *[]byte

	// Parking (the upstream of a Forwarder's TCP flow): reads give up
	// with errIdle once nothing has been read for between parkAfter and
	// twice that, so that the reading goroutine can exit and the flow
	// wait in watch. A busy socket pays one deadline per parkAfter, not
	// one per read: when the deadline passes, whether anything was read
	// since it was set decides.
	watch       *poll.Watch
	deadlineSet bool
	readSince   bool
	keepAlive   bool // set at the first park: the dial left it off (proxy.WithKeepAliveLater)

	// The write side's state, used by the one goroutine that writes.
	writeFn func(fd uintptr) bool
	wbuf    []byte
	wn      int
	werr    unix.Errno
}

// wrapHost returns c as a hostConn when c is a host socket, else c.
func wrapHost(c net.Conn) net.Conn {
	sc, ok := c.(syscall.Conn)
	if !ok {
		return c
	}
	rc, err := sc.SyscallConn()
	if err != nil {
		return c
	}
	_, stream := c.(*net.TCPConn)
	if _, ok := c.(*hostsock.Conn); ok {
		stream = true
	}
	_, datagram := c.(*net.UDPConn)
	h := &hostConn{Conn: c, rc: rc, raw: stream || datagram, datagram: datagram}
	h.readFn, h.writeFn = h.readAny, h.write
	return h
}

// readMode is what readFn does.
type readMode uint8

const (
	readPeek readMode = iota // peek: WaitReadable
	readBuf                  // read into rbuf: Read
	readLend                 // read into a lent buffer: readLent
)

func (c *hostConn) readAny(fd uintptr) bool {
	switch c.rmode {
	case readPeek:
		return c.peek(fd)
	case readLend:
		return c.readLentFD(fd)
	}
	return c.read(fd)
}

// WaitReadable implements ReadWaiter: it parks in the runtime's poller
// until a one-byte peek would not block (data, EOF or an error pending).
// A pending socket error is returned here: the peek consumed it, so the
// next Read would not see it.
func (c *hostConn) WaitReadable() error {
	c.rmode = readPeek
	if err := c.rc.Read(c.readFn); err != nil {
		return err
	}
	if c.rerr != 0 {
		return c.opError("read", c.rerr)
	}
	return nil
}

func (c *hostConn) peek(fd uintptr) bool {
	var probe [1]byte
	_, _, errno := unix.RawSyscall6(unix.SYS_RECVFROM, fd, uintptr(unsafe.Pointer(&probe[0])), 1,
		unix.MSG_PEEK|unix.MSG_DONTWAIT, 0, 0)
	if errno == unix.EAGAIN || errno == unix.EINTR {
		return false
	}
	c.rerr = errno
	return true
}

// bufferLender lends read buffers, so that a reader takes one only once
// there is data to read.
type bufferLender interface {
	get() *[]byte
	// giveBack returns a buffer that no read used.
	giveBack(bp *[]byte)
}

// readLent is WaitReadable and Read in one system call: it parks in the
// poller until the socket is readable, then reads into a buffer from l.
// A read that would block gives the buffer back before parking, so an idle
// flow holds none. It returns the buffer, or nil if it took none; c must
// be raw.
func (c *hostConn) readLent(l bufferLender) (*[]byte, int, error) {
	c.lender = l
	err := c.readParking()
	bp := c.lent
	c.lender, c.lent = nil, nil
	if err != nil {
		if bp != nil {
			l.giveBack(bp)
		}
		return nil, 0, err
	}
	n, err := c.readResult()
	return bp, n, err
}

func (c *hostConn) readLentFD(fd uintptr) bool {
	bp := c.lender.get()
	if !c.readInto(fd, *bp) {
		c.lender.giveBack(bp)
		return false
	}
	c.lent = bp
	c.readSince = true
	return true
}

// parkAfter is how long the upstream -> app direction of a TCP flow waits
// for data in the runtime's poller, holding its goroutine, before it parks
// in the Forwarder's poll set. A wake-up from the set costs a goroutine
// start, so a flow that pauses for less (a bulk transfer between reads)
// keeps its goroutine; an idle one gives it up within two of these.
const parkAfter = time.Second

// errIdle is readLent's answer for a parking socket that had nothing to
// read for parkAfter.
var errIdle = errors.New("host socket idle")

// parkIn makes c a parking socket: readLent may answer errIdle, and park
// then arms c's watch in set, which calls fn once c is readable.
func (c *hostConn) parkIn(set *poll.Set, fn func()) { c.watch = set.Watch(c.rc, fn) }

// readParking is the raw read of readLent, with the idle deadline of a
// parking socket.
func (c *hostConn) readParking() error {
	for {
		if c.watch != nil && !c.deadlineSet {
			c.Conn.SetReadDeadline(time.Now().Add(parkAfter))
			c.deadlineSet, c.readSince = true, false
		}
		c.rmode = readLend
		err := c.rc.Read(c.readFn)
		if err == nil || !c.deadlineSet || !errors.Is(err, os.ErrDeadlineExceeded) {
			return err
		}
		c.deadlineSet = false
		if !c.readSince {
			return errIdle
		}
	}
}

// park arms c's watch after readLent answered errIdle and reports whether
// it did; if not (c or the set is closed), the caller reads on and finds
// out. The first park turns keepalive on: only a flow that idles can
// outlive a dead peer unnoticed, and most flows end before they idle.
func (c *hostConn) park() bool {
	if !c.keepAlive {
		tc, ok := c.Conn.(interface {
			SetKeepAliveConfig(net.KeepAliveConfig) error
		})
		if ok && tc.SetKeepAliveConfig(proxy.HostKeepAlive()) != nil {
			return false // closed meanwhile, most likely: the next read tells
		}
		c.keepAlive = true
	}
	return c.watch.Arm() == nil
}

// Read reads from a TCP or connected UDP socket with a raw system call;
// other sockets read as usual.
func (c *hostConn) Read(b []byte) (int, error) {
	if !c.raw || len(b) == 0 {
		return c.Conn.Read(b)
	}
	c.rbuf, c.rmode = b, readBuf
	err := c.rc.Read(c.readFn)
	c.rbuf = nil
	if err != nil {
		return 0, err
	}
	return c.readResult()
}

func (c *hostConn) read(fd uintptr) bool { return c.readInto(fd, c.rbuf) }

// readInto is one raw read of fd into b, retried on EINTR. It returns
// false if the read would block, else records the outcome for readResult.
func (c *hostConn) readInto(fd uintptr, b []byte) bool {
	for {
		n, _, errno := unix.RawSyscall(unix.SYS_READ, fd, uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		switch errno {
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			return false
		}
		c.rn, c.rerr = int(n), errno
		return true
	}
}

// readResult turns the outcome of the last raw read into Read's results:
// a read of 0 bytes is EOF on a stream, an empty datagram on UDP.
func (c *hostConn) readResult() (int, error) {
	switch {
	case c.rerr != 0:
		return 0, c.opError("read", c.rerr)
	case c.rn == 0 && !c.datagram:
		return 0, io.EOF
	}
	return c.rn, nil
}

// Write writes all of b to a TCP socket, or b as one datagram to a
// connected UDP socket, with raw system calls, parking in the poller while
// the socket buffer is full; other sockets write as usual. A datagram is
// never split: the kernel sends all of it or fails.
func (c *hostConn) Write(b []byte) (int, error) {
	if !c.raw || len(b) == 0 {
		return c.Conn.Write(b)
	}
	c.wbuf, c.wn, c.werr = b, 0, 0
	err := c.rc.Write(c.writeFn)
	n := c.wn
	c.wbuf = nil
	switch {
	case err != nil:
		return n, err
	case c.werr != 0:
		return n, c.opError("write", c.werr)
	}
	return n, nil
}

func (c *hostConn) write(fd uintptr) bool {
	for c.wn < len(c.wbuf) {
		rest := c.wbuf[c.wn:]
		n, _, errno := unix.RawSyscall(unix.SYS_WRITE, fd, uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
		switch errno {
		case 0:
			c.wn += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			return false
		default:
			c.werr = errno
			return true
		}
	}
	return true
}

// opError dresses errno the way package net does, so that callers can
// match it with errors.Is like any socket error.
func (c *hostConn) opError(op string, errno unix.Errno) error {
	return &net.OpError{Op: op, Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(),
		Err: os.NewSyscallError(op, errno)}
}

// CloseWrite half-closes when the socket can.
func (c *hostConn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// Close closes the socket and wakes the flow if it is parked, so that it
// finds the socket closed.
func (c *hostConn) Close() error {
	err := c.Conn.Close()
	if c.watch != nil {
		c.watch.Close()
	}
	return err
}

// Reset implements Resetter: a zero linger makes the kernel send RST.
func (c *hostConn) Reset() error {
	if l, ok := c.Conn.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
	return c.Close()
}

// PeerClosed implements PeerCloser for a TCP socket: the kernel has the
// peer's FIN (CLOSE_WAIT or later), even if data before it is unread.
func (c *hostConn) PeerClosed() bool {
	if !c.raw || c.datagram {
		return false
	}
	var state uint8
	c.rc.Control(func(fd uintptr) {
		if info, err := unix.GetsockoptTCPInfo(int(fd), unix.IPPROTO_TCP, unix.TCP_INFO); err == nil {
			state = info.State
		}
	})
	switch state {
	case tcpCloseWait, tcpLastAck, tcpClosing, tcpTimeWait, tcpClose:
		return true
	}
	return false
}

// Linux's TCP states (include/net/tcp_states.h) after the peer's FIN.
const (
	tcpTimeWait  = 6
	tcpClose     = 7
	tcpCloseWait = 8
	tcpLastAck   = 9
	tcpClosing   = 11
)
