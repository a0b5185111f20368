package forwarder

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/stack/icmpmsg"
)

// HostPinger opens the host sockets that echo requests leave through: an
// unprivileged ping socket where net.ipv4.ping_group_range allows it, a raw
// ICMP socket (root or CAP_NET_RAW) otherwise.
type HostPinger struct {
	// Interface, if set, binds the sockets to it (SO_BINDTODEVICE).
	Interface string
	// Mark, if non-zero, sets SO_MARK on the sockets.
	Mark uint32
}

// echoSocket is a host ICMP socket connected to one destination.
type echoSocket struct {
	conn net.Conn
	// raw sockets see every ICMP message to the host; ping sockets only
	// the replies to their own identifier.
	raw bool
	v4  bool
	// id is the identifier raw sockets send, chosen at random so that
	// concurrent pingers cannot take each other's replies.
	id uint16
}

// OpenEcho implements EchoSender.
func (p *HostPinger) OpenEcho(dst netip.Addr) (EchoConn, error) {
	family, proto := unix.AF_INET, unix.IPPROTO_ICMP
	if !dst.Is4() {
		family, proto = unix.AF_INET6, unix.IPPROTO_ICMPV6
	}
	raw := false
	fd, err := unix.Socket(family, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
	if err != nil {
		raw = true
		fd, err = unix.Socket(family, unix.SOCK_RAW|unix.SOCK_CLOEXEC|unix.SOCK_NONBLOCK, proto)
	}
	if err != nil {
		return nil, fmt.Errorf("open ICMP socket: %w: allow ping sockets with sysctl net.ipv4.ping_group_range or run with CAP_NET_RAW", err)
	}
	if err := p.setup(fd, dst); err != nil {
		unix.Close(fd)
		return nil, err
	}
	f := os.NewFile(uintptr(fd), "icmp")
	conn, err := net.FileConn(f)
	f.Close()
	if err != nil {
		return nil, fmt.Errorf("wrap ICMP socket: %w", err)
	}
	return &echoSocket{conn: conn, raw: raw, v4: dst.Is4(), id: uint16(rand.Uint32())}, nil
}

func (p *HostPinger) setup(fd int, dst netip.Addr) error {
	if p.Interface != "" {
		if err := unix.SetsockoptString(fd, unix.SOL_SOCKET, unix.SO_BINDTODEVICE, p.Interface); err != nil {
			return fmt.Errorf("bind ICMP socket to %q: %w", p.Interface, err)
		}
	}
	if p.Mark != 0 {
		if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_MARK, int(p.Mark)); err != nil {
			return fmt.Errorf("mark ICMP socket: %w", err)
		}
	}
	var sa unix.Sockaddr
	if dst.Is4() {
		sa = &unix.SockaddrInet4{Addr: dst.As4()}
	} else {
		sa = &unix.SockaddrInet6{Addr: dst.As16()}
	}
	// connect filters what the socket receives to this source address.
	if err := unix.Connect(fd, sa); err != nil {
		return fmt.Errorf("connect ICMP socket to %s: %w", dst, err)
	}
	return nil
}

// Send implements EchoConn. Ping sockets replace the identifier with
// their own; raw ones send the socket's random one.
func (s *echoSocket) Send(seq uint16, payload []byte) error {
	_, err := s.conn.Write(icmpmsg.AppendEcho(nil, s.v4, false, s.id, seq, payload))
	return err
}

// Receive implements EchoConn. Raw sockets see every ICMP message to the
// host (raw IPv4 ones with the IP header); only replies to this socket's
// identifier count. Ping sockets see only their own replies.
func (s *echoSocket) Receive(buf []byte, deadline time.Time) (uint16, []byte, error) {
	s.conn.SetReadDeadline(deadline)
	for {
		n, err := s.conn.Read(buf)
		if err != nil {
			return 0, nil, err
		}
		b := buf[:n]
		if s.v4 && s.raw {
			if b, err = stripIPv4(b); err != nil {
				continue
			}
		}
		id, seq, payload, ok := icmpmsg.ParseEchoReply(b, s.v4)
		if !ok || (s.raw && id != s.id) {
			continue
		}
		return seq, payload, nil
	}
}

// Close implements EchoConn.
func (s *echoSocket) Close() error { return s.conn.Close() }

// errNotReply marks an ICMP message that is not an echo reply for us.
var errNotReply = errors.New("not an echo reply")

func stripIPv4(b []byte) ([]byte, error) {
	rest, ok := icmpmsg.StripIPv4Header(b)
	if !ok {
		return nil, errNotReply
	}
	return rest, nil
}
