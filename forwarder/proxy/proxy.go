// Package proxy holds the upstream dialers that the forwarder reaches the
// world through: the host's own sockets (Direct), SOCKS5, SOCKS4/4a, HTTP
// CONNECT, and chains of them. It knows nothing of gVisor or TUN devices; every
// type here has the standard library's dialing shape.
package proxy

import (
	"context"
	"errors"
	"net"
)

// Dialer opens stream connections. It has the shape of net.Dialer.
//
// network is "tcp", "tcp4" or "tcp6"; address is "host:port" where host is an
// IP literal or a name. A name is passed to a proxy as a name (remote DNS);
// only Direct resolves it on the host. DialContext returns once the
// connection to address is established end to end (every proxy hop has
// answered), or with an error; it honours ctx's deadline and cancellation.
// The caller owns and closes the returned net.Conn.
type Dialer interface {
	DialContext(ctx context.Context, network, address string) (net.Conn, error)
}

// PacketDialer is implemented by upstreams that can carry UDP. Callers find it
// by type assertion on a Dialer.
//
// DialPacket returns a connection bound to one destination: each Write sends
// one datagram to address and each Read returns one datagram from it,
// message boundaries kept. network is "udp", "udp4" or "udp6". The caller owns
// and closes the returned net.Conn; closing it releases everything behind it
// (for SOCKS5, the UDP ASSOCIATE control connection too).
type PacketDialer interface {
	DialPacket(ctx context.Context, network, address string) (net.Conn, error)
}

// Errors that callers test with errors.Is. Dialers wrap them with the hop and
// the operation that failed.
var (
	// ErrUDPUnsupported means the path cannot carry UDP (HTTP or SOCKS4 hops,
	// or a chain of several hops).
	ErrUDPUnsupported = errors.New("upstream cannot carry UDP")
	// ErrRefused means the destination refused the connection (a proxy's
	// "connection refused" reply or the host's ECONNREFUSED).
	ErrRefused = errors.New("connection refused")
	// ErrAuth means a proxy rejected the credentials or offered no method
	// that we support.
	ErrAuth = errors.New("proxy authentication failed")
	// ErrUnreachable means a proxy or the host could not reach the
	// destination's network or host.
	ErrUnreachable = errors.New("destination unreachable")
	// ErrNotAllowed means a proxy's rules forbid the connection.
	ErrNotAllowed = errors.New("connection not allowed by proxy rules")
	// ErrHandshakeTimeout means a proxy accepted the TCP connection but did
	// not finish its handshake within the handshake timeout.
	ErrHandshakeTimeout = errors.New("proxy handshake timed out")
	// ErrProtocol means a proxy answered something that is not the protocol
	// we speak to it (wrong version byte, malformed reply, oversized header).
	ErrProtocol = errors.New("proxy protocol violation")
)
