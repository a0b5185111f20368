package hostsock

import (
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// Conn is a connected host TCP socket whose readiness comes from its Set.
// It is a net.Conn and a syscall.Conn; its RawConn's Read and Write wait
// in the set, as package net's wait in the runtime's poller. Reads and
// writes may run at once from two goroutines, one each.
type Conn struct {
	set        *Set
	fd         int
	index, gen uint32 // slot in set
	raddr      netip.AddrPort

	// mu is held shared around each system call on fd and exclusively
	// to close it, so that no call ever reaches a descriptor number that
	// was closed and perhaps reused.
	mu     sync.RWMutex
	closed atomic.Bool

	rd, wr waiter
}

var (
	_ net.Conn     = (*Conn)(nil)
	_ syscall.Conn = (*Conn)(nil)
)

// Read reads with raw system calls (the socket never blocks; a regular
// call would hand the thread's P away), waiting in the set while there is
// nothing to read. A read of 0 bytes is EOF.
func (c *Conn) Read(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	for {
		c.mu.RLock()
		if c.closed.Load() {
			c.mu.RUnlock()
			return 0, c.opError("read", net.ErrClosed)
		}
		n, _, errno := unix.RawSyscall(unix.SYS_READ, uintptr(c.fd), uintptr(unsafe.Pointer(&b[0])), uintptr(len(b)))
		c.mu.RUnlock()
		switch errno {
		case 0:
			if n == 0 {
				return 0, io.EOF
			}
			return int(n), nil
		case unix.EINTR:
			continue
		case unix.EAGAIN:
			if err := c.wait(&c.rd, "read"); err != nil {
				return 0, err
			}
		default:
			return 0, c.opError("read", os.NewSyscallError("read", errno))
		}
	}
}

// Write writes all of b, waiting in the set while the socket buffer is
// full.
func (c *Conn) Write(b []byte) (int, error) {
	written := 0
	for written < len(b) {
		c.mu.RLock()
		if c.closed.Load() {
			c.mu.RUnlock()
			return written, c.opError("write", net.ErrClosed)
		}
		rest := b[written:]
		n, _, errno := unix.RawSyscall(unix.SYS_WRITE, uintptr(c.fd), uintptr(unsafe.Pointer(&rest[0])), uintptr(len(rest)))
		c.mu.RUnlock()
		switch errno {
		case 0:
			written += int(n)
		case unix.EINTR:
		case unix.EAGAIN:
			if err := c.wait(&c.wr, "write"); err != nil {
				return written, err
			}
		default:
			return written, c.opError("write", os.NewSyscallError("write", errno))
		}
	}
	return written, nil
}

// wait parks after EAGAIN until w may try again: an event, the deadline or
// Close. It fails once the deadline has passed or the socket or the set
// is closed.
func (c *Conn) wait(w *waiter, op string) error {
	if w.expired() {
		return c.opError(op, os.ErrDeadlineExceeded)
	}
	// Checked before parking too: Close of the set wakes only the
	// sockets that it finds after it marked itself closed.
	if c.closed.Load() || c.set.closed.Load() {
		return c.opError(op, net.ErrClosed)
	}
	<-w.ready
	if c.closed.Load() || c.set.closed.Load() {
		return c.opError(op, net.ErrClosed)
	}
	return nil
}

// Close closes the socket and wakes its waiters, which then fail. A
// second Close fails, as package net's does.
func (c *Conn) Close() error {
	if c.closed.Swap(true) {
		return c.opError("close", net.ErrClosed)
	}
	c.rd.wake()
	c.wr.wake()
	c.mu.Lock()
	err := unix.Close(c.fd)
	c.mu.Unlock()
	c.set.remove(c)
	c.rd.stop()
	c.wr.stop()
	if err != nil {
		return c.opError("close", os.NewSyscallError("close", err))
	}
	return nil
}

// CloseWrite shuts the sending side down: the peer reads EOF.
func (c *Conn) CloseWrite() error {
	return c.control("shutdown", func(fd int) error { return unix.Shutdown(fd, unix.SHUT_WR) })
}

// SetLinger is net.TCPConn's: sec 0 makes Close send a reset.
func (c *Conn) SetLinger(sec int) error {
	l := unix.Linger{Onoff: 1, Linger: int32(sec)}
	if sec < 0 {
		l = unix.Linger{}
	}
	return c.control("setsockopt", func(fd int) error { return unix.SetsockoptLinger(fd, unix.SOL_SOCKET, unix.SO_LINGER, &l) })
}

// SetKeepAliveConfig is net.TCPConn's, with one difference: a zero Idle,
// Interval or Count leaves the kernel's setting, like a negative one.
func (c *Conn) SetKeepAliveConfig(cfg net.KeepAliveConfig) error {
	return c.control("setsockopt", func(fd int) error { return setKeepAlive(fd, cfg) })
}

func setKeepAlive(fd int, cfg net.KeepAliveConfig) error {
	on := 0
	if cfg.Enable {
		on = 1
	}
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_KEEPALIVE, on); err != nil || !cfg.Enable {
		return err
	}
	opts := []struct {
		opt int
		v   int
	}{
		{unix.TCP_KEEPIDLE, int(cfg.Idle / time.Second)},
		{unix.TCP_KEEPINTVL, int(cfg.Interval / time.Second)},
		{unix.TCP_KEEPCNT, cfg.Count},
	}
	for _, o := range opts {
		if o.v <= 0 {
			continue
		}
		if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, o.opt, o.v); err != nil {
			return err
		}
	}
	return nil
}

// control runs f on the open descriptor and dresses its error.
func (c *Conn) control(op string, f func(fd int) error) error {
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed.Load() {
		return c.opError(op, net.ErrClosed)
	}
	if err := f(c.fd); err != nil {
		return c.opError(op, os.NewSyscallError(op, err))
	}
	return nil
}

// LocalAddr asks the kernel (it is needed only for error messages); a
// closed socket has the zero address.
func (c *Conn) LocalAddr() net.Addr {
	var sa unix.Sockaddr
	c.control("getsockname", func(fd int) (err error) { sa, err = unix.Getsockname(fd); return err })
	switch sa := sa.(type) {
	case *unix.SockaddrInet4:
		return &net.TCPAddr{IP: sa.Addr[:], Port: sa.Port}
	case *unix.SockaddrInet6:
		return &net.TCPAddr{IP: sa.Addr[:], Port: sa.Port}
	}
	return &net.TCPAddr{}
}

// RemoteAddr is the address the socket was connected to.
func (c *Conn) RemoteAddr() net.Addr { return net.TCPAddrFromAddrPort(c.raddr) }

// SetDeadline sets both deadlines.
func (c *Conn) SetDeadline(t time.Time) error {
	c.rd.setDeadline(t)
	c.wr.setDeadline(t)
	return nil
}

// SetReadDeadline bounds waits for reading; zero removes the bound.
func (c *Conn) SetReadDeadline(t time.Time) error { c.rd.setDeadline(t); return nil }

// SetWriteDeadline bounds waits for writing; zero removes the bound.
func (c *Conn) SetWriteDeadline(t time.Time) error { c.wr.setDeadline(t); return nil }

// SyscallConn implements syscall.Conn.
func (c *Conn) SyscallConn() (syscall.RawConn, error) { return (*rawConn)(c), nil }

// opError dresses err as package net does, so that errors.Is and
// net.Error's Timeout work on it as on any socket's error.
func (c *Conn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Addr: net.TCPAddrFromAddrPort(c.raddr), Err: err}
}

// rawConn is Conn's syscall.RawConn.
type rawConn Conn

// Control runs f on the open descriptor.
func (r *rawConn) Control(f func(fd uintptr)) error {
	c := (*Conn)(r)
	c.mu.RLock()
	defer c.mu.RUnlock()
	if c.closed.Load() {
		return c.opError("raw-control", net.ErrClosed)
	}
	f(uintptr(c.fd))
	return nil
}

// Read calls f until it reports done, waiting for readability between
// calls that are not.
func (r *rawConn) Read(f func(fd uintptr) bool) error {
	return (*Conn)(r).raw(&r.rd, "raw-read", f)
}

// Write calls f until it reports done, waiting for writability between
// calls that are not.
func (r *rawConn) Write(f func(fd uintptr) bool) error {
	return (*Conn)(r).raw(&r.wr, "raw-write", f)
}

func (c *Conn) raw(w *waiter, op string, f func(fd uintptr) bool) error {
	for {
		c.mu.RLock()
		if c.closed.Load() {
			c.mu.RUnlock()
			return c.opError(op, net.ErrClosed)
		}
		done := f(uintptr(c.fd))
		c.mu.RUnlock()
		if done {
			return nil
		}
		if err := c.wait(w, op); err != nil {
			return err
		}
	}
}
