package forwarder

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/checksum"
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
}

func (p *HostPinger) open(dst netip.Addr) (*echoSocket, error) {
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
	return &echoSocket{conn: conn, raw: raw, v4: dst.Is4()}, nil
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

// send writes an echo request. Ping sockets replace id with their own; the
// kernel computes the checksum except for raw IPv4.
func (s *echoSocket) send(id, seq uint16, payload []byte) error {
	typ := byte(8)
	if !s.v4 {
		typ = 128
	}
	msg := make([]byte, 8+len(payload))
	msg[0] = typ
	msg[4], msg[5] = byte(id>>8), byte(id)
	msg[6], msg[7] = byte(seq>>8), byte(seq)
	copy(msg[8:], payload)
	if s.v4 && s.raw {
		sum := ^checksum.Checksum(msg, 0)
		msg[2], msg[3] = byte(sum>>8), byte(sum)
	}
	_, err := s.conn.Write(msg)
	return err
}

// errNotReply marks an ICMP message that is not an echo reply for us.
var errNotReply = errors.New("not an echo reply")

// parseReply extracts an echo reply's id, seq and payload from what the
// socket read (raw IPv4 sockets include the IP header).
func (s *echoSocket) parseReply(b []byte) (id, seq uint16, payload []byte, err error) {
	if s.v4 && s.raw {
		if len(b) < 20 || b[0]>>4 != 4 || len(b) < int(b[0]&0xf)*4 {
			return 0, 0, nil, errNotReply
		}
		b = b[int(b[0]&0xf)*4:]
	}
	want := byte(0)
	if !s.v4 {
		want = 129
	}
	if len(b) < 8 || b[0] != want || b[1] != 0 {
		return 0, 0, nil, errNotReply
	}
	return uint16(b[4])<<8 | uint16(b[5]), uint16(b[6])<<8 | uint16(b[7]), b[8:], nil
}
