package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"time"

	"github.com/tungate/tungate/forwarder/proxy"
)

// ErrNoServers is returned by Forward.Answer when it has no server to ask.
var ErrNoServers = errors.New("no upstream DNS server: give one with --dns ADDR")

// Forward answers queries by asking real DNS servers, in order, until one
// answers: a UDP query over UDP (a truncated answer is passed back as it
// is, so the client retries over TCP) and a TCP query over TCP.
type Forward struct {
	// Servers are asked in order.
	Servers []netip.AddrPort
	// Dialer reaches them; it must also be a proxy.PacketDialer for UDP.
	// Normally host sockets (proxy.Direct), so that a server on the host's
	// loopback (127.0.0.53) is reachable.
	Dialer proxy.Dialer
	// Timeout bounds the exchange with one server; zero means 3 s.
	Timeout time.Duration
}

var _ Answerer = (*Forward)(nil)

// Answer implements Answerer.
func (f *Forward) Answer(ctx context.Context, network string, query []byte) ([]byte, error) {
	id, ok := idOf(query)
	if !ok {
		return nil, fmt.Errorf("query of %d bytes is not a DNS message", len(query))
	}
	if len(f.Servers) == 0 {
		return nil, ErrNoServers
	}
	var errs []error
	for _, s := range f.Servers {
		ans, err := f.exchange(ctx, network, s, query, id)
		if err == nil {
			return ans, nil
		}
		errs = append(errs, fmt.Errorf("%s %s: %w", network, s, err))
		if ctx.Err() != nil {
			break
		}
	}
	return nil, errors.Join(errs...)
}

func (f *Forward) exchange(ctx context.Context, network string, s netip.AddrPort, q []byte, id uint16) ([]byte, error) {
	timeout := f.Timeout
	if timeout <= 0 {
		timeout = 3 * time.Second
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	family := "4"
	if s.Addr().Is6() && !s.Addr().Is4In6() {
		family = "6"
	}
	if network != "tcp" && !carriesUDP(f.Dialer) {
		// A path without UDP (an HTTP proxy, a chain) still carries the
		// same question over TCP.
		network = "tcp"
	}
	var c net.Conn
	var err error
	if network == "tcp" {
		c, err = f.Dialer.DialContext(ctx, "tcp"+family, s.String())
	} else {
		c, err = f.Dialer.(proxy.PacketDialer).DialPacket(ctx, "udp"+family, s.String())
		if errors.Is(err, proxy.ErrUDPUnsupported) {
			network = "tcp"
			c, err = f.Dialer.DialContext(ctx, "tcp"+family, s.String())
		}
	}
	if err != nil {
		return nil, err
	}
	defer c.Close()
	stop := context.AfterFunc(ctx, func() { c.SetDeadline(time.Now()) })
	defer stop()
	if network == "tcp" {
		return exchangeStream(c, q, id)
	}
	return exchangePacket(c, q, id)
}

func exchangePacket(c net.Conn, q []byte, id uint16) ([]byte, error) {
	if _, err := c.Write(q); err != nil {
		return nil, err
	}
	buf := make([]byte, 64<<10)
	for {
		n, err := c.Read(buf)
		if err != nil {
			return nil, err
		}
		// A stray or spoofed datagram is skipped, not taken as the answer.
		if isResponse(buf[:n], id) {
			return append([]byte(nil), buf[:n]...), nil
		}
	}
}

func exchangeStream(c net.Conn, q []byte, id uint16) ([]byte, error) {
	if len(q) > 0xffff {
		return nil, fmt.Errorf("query of %d bytes is too large for TCP", len(q))
	}
	msg := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(q)), uint16(len(q)))
	if _, err := c.Write(append(msg, q...)); err != nil {
		return nil, err
	}
	var hdr [2]byte
	if _, err := io.ReadFull(c, hdr[:]); err != nil {
		return nil, err
	}
	ans := make([]byte, binary.BigEndian.Uint16(hdr[:]))
	if _, err := io.ReadFull(c, ans); err != nil {
		return nil, err
	}
	if !isResponse(ans, id) {
		return nil, errors.New("answer does not match the query's ID")
	}
	return ans, nil
}

// carriesUDP reports whether d can dial UDP at all.
func carriesUDP(d proxy.Dialer) bool {
	if _, ok := d.(proxy.PacketDialer); !ok {
		return false
	}
	c, ok := d.(interface{ CanCarryUDP() bool })
	return !ok || c.CanCarryUDP()
}
