package proxy

import (
	"context"
	"fmt"
	"io"
	"net"
	"time"
)

// SOCKS4 dials through a SOCKS4 or SOCKS4a proxy. It carries TCP only, and
// is deliberately not a PacketDialer.
type SOCKS4 struct {
	// Address is the proxy's "host:port".
	Address string
	// UserID is sent as the USERID field; empty is allowed.
	UserID string
	// RemoteNames (SOCKS4a) sends host names to the proxy. Without it only
	// IPv4 destinations can be reached.
	RemoteNames bool
	// Forward reaches the proxy: the host (Direct) or the previous hop.
	Forward Dialer
	// HandshakeTimeout bounds the exchange after the TCP connection is up;
	// zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
}

var _ Dialer = (*SOCKS4)(nil)

const (
	socks4Version   = 0x04
	socks4Granted   = 0x5a // 90
	socks4Rejected  = 0x5b // 91
	socks4NoIdentd  = 0x5c // 92
	socks4BadUserID = 0x5d // 93
	socks4ReplyLen  = 8
)

// DialContext implements Dialer with a CONNECT request.
func (s *SOCKS4) DialContext(ctx context.Context, network, address string) (conn net.Conn, err error) {
	if err := checkNetwork(network, "tcp"); err != nil {
		return nil, err
	}
	target, err := parseHostPort(address)
	if err != nil {
		return nil, err
	}
	req, err := s.request(target)
	if err != nil {
		return nil, err
	}
	conn, err = s.Forward.DialContext(ctx, "tcp", s.Address)
	if err != nil {
		return nil, err
	}
	defer closeOnError(conn, &err)
	err = runHandshake(ctx, conn, s.HandshakeTimeout, func() error {
		if _, err := conn.Write(req); err != nil {
			return fmt.Errorf("connect to %s: send request: %w", target, err)
		}
		if err := readSOCKS4Reply(conn); err != nil {
			return fmt.Errorf("connect to %s: %w", target, err)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return conn, nil
}

// request builds VN CD DSTPORT DSTIP USERID NUL [HOST NUL].
func (s *SOCKS4) request(target hostPort) ([]byte, error) {
	if len(s.UserID) > maxNameLen {
		return nil, fmt.Errorf("socks4 user id is %d bytes; keep it under %d", len(s.UserID), maxNameLen)
	}
	req := []byte{socks4Version, cmdConnect, byte(target.Port >> 8), byte(target.Port)}
	switch {
	case target.IP.Is4():
		req = append(req, target.IP.AsSlice()...)
		req = append(req, s.UserID...)
		return append(req, 0), nil
	case target.IP.IsValid():
		return nil, fmt.Errorf("connect to %s: SOCKS4 carries only IPv4 destinations: use a socks5:// proxy for IPv6", target)
	case !s.RemoteNames:
		return nil, fmt.Errorf("connect to %s: SOCKS4 needs an IPv4 address: use socks4a:// to let the proxy resolve names", target)
	}
	// SOCKS4a: the IP 0.0.0.x (x != 0) says "a name follows".
	req = append(req, 0, 0, 0, 1)
	req = append(req, s.UserID...)
	req = append(req, 0)
	req = append(req, target.Name...)
	return append(req, 0), nil
}

// readSOCKS4Reply reads VN CD DSTPORT DSTIP and maps CD to an error.
func readSOCKS4Reply(r io.Reader) error {
	var b [socks4ReplyLen]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return fmt.Errorf("read reply: %w", truncated(err))
	}
	// The spec says VN is 0; some servers echo 4.
	if b[0] != 0 && b[0] != socks4Version {
		return fmt.Errorf("%w: version %#x in reply, want 0: is this a SOCKS4 proxy?", ErrProtocol, b[0])
	}
	switch b[1] {
	case socks4Granted:
		return nil
	case socks4Rejected:
		return fmt.Errorf("request rejected or failed (reply 91): %w", ErrRefused)
	case socks4NoIdentd:
		return fmt.Errorf("%w: proxy cannot reach our identd (reply 92)", ErrAuth)
	case socks4BadUserID:
		return fmt.Errorf("%w: proxy's identd check failed for the user id (reply 93)", ErrAuth)
	default:
		return fmt.Errorf("%w: unknown reply code %#x", ErrProtocol, b[1])
	}
}
