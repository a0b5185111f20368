package proxy

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// maxNameLen is the longest host name SOCKS can carry: its length is one byte.
const maxNameLen = 255

// hostPort is a destination as proxies carry it: an IP or a name, and a port.
type hostPort struct {
	IP   netip.Addr // valid when the destination is an IP literal
	Name string     // set when the destination is a name
	Port uint16
}

// parseHostPort splits a "host:port" dial address. A name stays a name: it is
// resolved by the proxy, not here.
func parseHostPort(address string) (hostPort, error) {
	host, portText, err := net.SplitHostPort(address)
	if err != nil {
		return hostPort{}, fmt.Errorf("address %q: %w: want HOST:PORT", address, err)
	}
	port, err := strconv.ParseUint(portText, 10, 16)
	if err != nil {
		return hostPort{}, fmt.Errorf("address %q: port %q is not a number from 0 to 65535", address, portText)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		return hostPort{IP: ip.Unmap().WithZone(""), Port: uint16(port)}, nil
	}
	switch {
	case host == "":
		return hostPort{}, fmt.Errorf("address %q: empty host", address)
	case len(host) > maxNameLen:
		return hostPort{}, fmt.Errorf("address %q: host name is %d bytes, proxies carry at most %d", address[:32]+"...", len(host), maxNameLen)
	case strings.IndexFunc(host, func(r rune) bool { return r <= ' ' || r == 0x7f }) >= 0:
		// Such a name cannot exist, and would let it smuggle bytes into
		// an HTTP request line.
		return hostPort{}, fmt.Errorf("address %q: host name contains spaces or control characters", address)
	}
	return hostPort{Name: host, Port: uint16(port)}, nil
}

// String formats the destination as a dial address.
func (a hostPort) String() string {
	host := a.Name
	if a.IP.IsValid() {
		host = a.IP.String()
	}
	return net.JoinHostPort(host, strconv.Itoa(int(a.Port)))
}

// SOCKS5 address types (RFC 1928 section 5).
const (
	atypIPv4   = 0x01
	atypDomain = 0x03
	atypIPv6   = 0x04
)

// appendSOCKS5Addr appends ATYP, DST.ADDR and DST.PORT.
func appendSOCKS5Addr(b []byte, a hostPort) []byte {
	switch {
	case a.IP.Is4():
		b = append(b, atypIPv4)
		b = append(b, a.IP.AsSlice()...)
	case a.IP.Is6():
		b = append(b, atypIPv6)
		b = append(b, a.IP.AsSlice()...)
	default:
		b = append(b, atypDomain, byte(len(a.Name)))
		b = append(b, a.Name...)
	}
	return append(b, byte(a.Port>>8), byte(a.Port))
}

var errShortAddr = fmt.Errorf("%w: truncated SOCKS5 address", ErrProtocol)

// parseSOCKS5Addr reads ATYP, ADDR and PORT from the front of b and returns
// the rest of b.
func parseSOCKS5Addr(b []byte) (hostPort, []byte, error) {
	if len(b) < 1 {
		return hostPort{}, nil, errShortAddr
	}
	var a hostPort
	atyp, b := b[0], b[1:]
	switch atyp {
	case atypIPv4:
		if len(b) < 4 {
			return hostPort{}, nil, errShortAddr
		}
		a.IP = netip.AddrFrom4([4]byte(b[:4]))
		b = b[4:]
	case atypIPv6:
		if len(b) < 16 {
			return hostPort{}, nil, errShortAddr
		}
		a.IP = netip.AddrFrom16([16]byte(b[:16])).Unmap()
		b = b[16:]
	case atypDomain:
		if len(b) < 1 || len(b) < 1+int(b[0]) {
			return hostPort{}, nil, errShortAddr
		}
		n := int(b[0])
		if n == 0 {
			return hostPort{}, nil, fmt.Errorf("%w: empty domain name in SOCKS5 address", ErrProtocol)
		}
		a.Name = string(b[1 : 1+n])
		b = b[1+n:]
	default:
		return hostPort{}, nil, fmt.Errorf("%w: unknown SOCKS5 address type %#x", ErrProtocol, atyp)
	}
	if len(b) < 2 {
		return hostPort{}, nil, errShortAddr
	}
	a.Port = uint16(b[0])<<8 | uint16(b[1])
	return a, b[2:], nil
}
