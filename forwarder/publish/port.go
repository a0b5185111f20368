package publish

import (
	"fmt"
	"net"
	"net/netip"
	"strconv"
	"strings"
)

// Port is one published port: a host address to listen on and the port
// inside the namespace it leads to.
type Port struct {
	// Network is "tcp" or "udp".
	Network string
	// Host is where to listen; an unspecified (zero) address means every
	// host address, IPv4 and IPv6.
	Host netip.AddrPort
	// Target is the port inside the namespace.
	Target uint16
}

func (p Port) String() string {
	host := strconv.Itoa(int(p.Host.Port()))
	if p.Host.Addr().IsValid() {
		host = p.Host.String()
	}
	return fmt.Sprintf("%s:%d/%s", host, p.Target, p.Network)
}

// ParsePort parses [HOSTADDR:]HOSTPORT:NSPORT[/tcp|/udp], with an IPv6
// HOSTADDR in brackets. The default protocol is TCP.
func ParsePort(s string) (Port, error) {
	const form = "want [HOSTADDR:]HOSTPORT:NSPORT[/tcp|/udp], such as 8080:80, 127.0.0.1:8080:80/tcp or [::1]:5353:53/udp"
	p := Port{Network: "tcp"}
	spec, proto, hasProto := strings.Cut(s, "/")
	if hasProto {
		switch proto {
		case "tcp", "udp":
			p.Network = proto
		default:
			return Port{}, fmt.Errorf("unknown protocol %q: %s", proto, form)
		}
	}
	i := strings.LastIndexByte(spec, ':')
	if i < 0 {
		return Port{}, fmt.Errorf("no namespace port: %s", form)
	}
	target, err := parsePortNumber(spec[i+1:])
	if err != nil {
		return Port{}, fmt.Errorf("namespace port: %w: %s", err, form)
	}
	p.Target = target
	host := spec[:i]
	var addr netip.Addr
	portText := host
	if strings.ContainsRune(host, ':') {
		h, port, err := net.SplitHostPort(host)
		if err != nil {
			return Port{}, fmt.Errorf("host address: %s", form)
		}
		if addr, err = netip.ParseAddr(h); err != nil || addr.Zone() != "" {
			return Port{}, fmt.Errorf("host address %q is not an IP address: %s", h, form)
		}
		addr = addr.Unmap()
		portText = port
	}
	hostPort, err := parsePortNumber(portText)
	if err != nil {
		return Port{}, fmt.Errorf("host port: %w: %s", err, form)
	}
	p.Host = netip.AddrPortFrom(addr, hostPort)
	return p, nil
}

func parsePortNumber(s string) (uint16, error) {
	n, err := strconv.ParseUint(s, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("%q is not a port number from 1 to 65535", s)
	}
	return uint16(n), nil
}
