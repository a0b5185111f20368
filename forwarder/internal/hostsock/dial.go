package hostsock

import (
	"context"
	"net"
	"net/netip"
	"os"
	"syscall"

	"golang.org/x/sys/unix"
)

// Dial connects a new TCP socket to raddr and registers it in s. control,
// if not nil, runs on the socket before connect (binding it to an
// interface, marking it). It waits for the handshake until ctx is done.
// Errors are *net.OpError wrapping the errno (errors.Is(err,
// syscall.ECONNREFUSED)) or ctx's error.
func (s *Set) Dial(ctx context.Context, raddr netip.AddrPort, control func(fd int) error) (*Conn, error) {
	raddr = netip.AddrPortFrom(raddr.Addr().Unmap(), raddr.Port())
	c := &Conn{set: s, fd: -1, raddr: raddr}
	pending, err := c.connect(control)
	if err != nil {
		return nil, err
	}
	c.rd.init()
	c.wr.init()
	if err := s.add(c); err != nil {
		unix.Close(c.fd)
		return nil, c.opError("dial", err)
	}
	if !pending {
		return c, nil
	}
	if err := c.awaitConnect(ctx); err != nil {
		c.Close()
		return nil, c.opError("dial", err)
	}
	return c, nil
}

// connect makes the socket and starts the handshake, and reports whether
// the handshake goes on; c.fd is -1 after a failure.
func (c *Conn) connect(control func(fd int) error) (pending bool, err error) {
	family, sa := unix.AF_INET6, unix.Sockaddr(nil)
	if a := c.raddr.Addr(); a.Is4() {
		family, sa = unix.AF_INET, &unix.SockaddrInet4{Port: int(c.raddr.Port()), Addr: a.As4()}
	} else {
		sa = &unix.SockaddrInet6{Port: int(c.raddr.Port()), Addr: a.As16(), ZoneId: zoneID(a.Zone())}
	}
	fd, err := unix.Socket(family, unix.SOCK_STREAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, unix.IPPROTO_TCP)
	if err != nil {
		return false, c.opError("dial", os.NewSyscallError("socket", err))
	}
	fail := func(err error) error {
		unix.Close(fd)
		return c.opError("dial", err)
	}
	if control != nil {
		if err := control(fd); err != nil {
			return false, fail(err)
		}
	}
	// As package net does: flows relay what their apps wrote when they
	// wrote it, and the app's own stack already coalesced.
	if err := unix.SetsockoptInt(fd, unix.IPPROTO_TCP, unix.TCP_NODELAY, 1); err != nil {
		return false, fail(os.NewSyscallError("setsockopt", err))
	}
	switch err := unix.Connect(fd, sa); err {
	case nil:
	case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
		pending = true
	default:
		return false, fail(os.NewSyscallError("connect", err))
	}
	c.fd = fd
	return pending, nil
}

// awaitConnect waits until the handshake has ended. The socket was
// registered after connect, so the set reports its state then (a fast
// handshake may be over already) and every change after.
func (c *Conn) awaitConnect(ctx context.Context) error {
	for {
		select {
		case <-c.wr.ready:
		case <-ctx.Done():
			return ctx.Err()
		}
		if c.set.closed.Load() {
			return ErrClosed
		}
		errno, err := unix.GetsockoptInt(c.fd, unix.SOL_SOCKET, unix.SO_ERROR)
		if err != nil {
			return os.NewSyscallError("getsockopt", err)
		}
		switch e := syscall.Errno(errno); e {
		case 0:
			// Connected. Package net asks getpeername too, because its
			// wake-ups may be spare ones; here only the set wakes a
			// dial, for the handshake's end (writable) or failure (an
			// error, which SO_ERROR holds), and a socket in SYN_SENT
			// reports nothing when it is registered.
			return nil
		case unix.EINPROGRESS, unix.EALREADY, unix.EINTR:
		case unix.EISCONN:
			return nil
		default:
			return os.NewSyscallError("connect", e)
		}
	}
}

// zoneID is the interface index of an IPv6 zone; 0 if there is none or
// it is unknown.
func zoneID(zone string) uint32 {
	if zone == "" {
		return 0
	}
	if ifi, err := net.InterfaceByName(zone); err == nil {
		return uint32(ifi.Index)
	}
	return 0
}
