package forwarder

import (
	"net"
	"syscall"

	"golang.org/x/sys/unix"
)

// hostConn is the upstream side of a TCP flow when it is a host socket. It
// lets the relay wait for data without holding a buffer (ReadWaiter) and
// keeps half-close and reset working through the wrapper.
type hostConn struct {
	net.Conn
	rc syscall.RawConn
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
	return &hostConn{Conn: c, rc: rc}
}

// WaitReadable implements ReadWaiter: it parks in the runtime's poller
// until a one-byte peek would not block (data, EOF or an error pending).
// A pending socket error is returned here: the peek consumed it, so the
// next Read would not see it.
func (c *hostConn) WaitReadable() error {
	var probe [1]byte
	var sockErr error
	err := c.rc.Read(func(fd uintptr) bool {
		_, _, err := unix.Recvfrom(int(fd), probe[:], unix.MSG_PEEK|unix.MSG_DONTWAIT)
		if err == unix.EAGAIN || err == unix.EINTR {
			return false
		}
		sockErr = err
		return true
	})
	if err != nil {
		return err
	}
	if sockErr != nil {
		return &net.OpError{Op: "read", Net: c.LocalAddr().Network(), Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: sockErr}
	}
	return nil
}

// CloseWrite half-closes when the socket can.
func (c *hostConn) CloseWrite() error {
	if cw, ok := c.Conn.(closeWriter); ok {
		return cw.CloseWrite()
	}
	return c.Conn.Close()
}

// Reset implements Resetter: a zero linger makes the kernel send RST.
func (c *hostConn) Reset() error {
	if l, ok := c.Conn.(interface{ SetLinger(int) error }); ok {
		l.SetLinger(0)
	}
	return c.Conn.Close()
}
