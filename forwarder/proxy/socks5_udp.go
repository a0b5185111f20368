package proxy

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// DialPacket implements PacketDialer with UDP ASSOCIATE. The returned conn
// owns the TCP control connection and the UDP socket to the relay: closing it
// closes both, and when the proxy closes the control connection the UDP
// socket is closed too (the association is over).
//
// It needs Forward to be a PacketDialer (the host), because the datagrams to
// the relay leave from here; behind another hop it returns ErrUDPUnsupported.
func (s *SOCKS5) DialPacket(ctx context.Context, network, address string) (_ net.Conn, err error) {
	if err := checkNetwork(network, "udp"); err != nil {
		return nil, err
	}
	pd, ok := s.Forward.(PacketDialer)
	if !ok {
		return nil, fmt.Errorf("%w: SOCKS5 UDP works only when the proxy is the first hop, dialed from the host", ErrUDPUnsupported)
	}
	target, err := parseHostPort(address)
	if err != nil {
		return nil, err
	}
	if target, err = s.resolveUDP(ctx, network, target); err != nil {
		return nil, err
	}
	ctrl, err := s.Forward.DialContext(ctx, "tcp", s.Address)
	if err != nil {
		return nil, err
	}
	defer closeOnError(ctrl, &err)
	var relay hostPort
	err = runHandshake(ctx, ctrl, s.HandshakeTimeout, func() error {
		if err := s.negotiate(ctrl); err != nil {
			return err
		}
		// We do not know our UDP source yet, so we send zeros (RFC 1928 §7).
		var err error
		relay, err = socks5Request(ctrl, cmdUDPAssociate, hostPort{IP: netip.IPv4Unspecified()})
		return err
	})
	if err != nil {
		return nil, err
	}
	relayAddr, err := relayAddress(relay, ctrl.RemoteAddr())
	if err != nil {
		return nil, err
	}
	udp, err := pd.DialPacket(ctx, "udp", relayAddr)
	if err != nil {
		return nil, fmt.Errorf("udp associate: dial relay %s: %w", relayAddr, err)
	}
	return newSOCKS5PacketConn(ctrl, udp, target), nil
}

// relayAddress is where to send datagrams: the relay the proxy named, or the
// proxy's own IP when it answered with an unspecified address.
func relayAddress(relay hostPort, proxy net.Addr) (string, error) {
	if relay.Port == 0 {
		return "", fmt.Errorf("%w: udp associate: proxy gave relay port 0", ErrProtocol)
	}
	if relay.IP.IsValid() && relay.IP.IsUnspecified() {
		ap, err := netip.ParseAddrPort(proxy.String())
		if err != nil {
			return "", fmt.Errorf("udp associate: proxy address %q: %w", proxy, err)
		}
		relay.IP = ap.Addr().Unmap()
	}
	return relay.String(), nil
}

// maxUDPHeader is the longest SOCKS5 UDP header: RSV FRAG ATYP LEN NAME PORT.
const maxUDPHeader = 2 + 1 + 1 + 1 + maxNameLen + 2

// udpBufPool holds buffers big enough for any datagram plus its header; a
// cache shared by all conns, holding no state between uses.
var udpBufPool = sync.Pool{New: func() any {
	b := make([]byte, 65535+maxUDPHeader)
	return &b
}}

// socks5PacketConn is one UDP association bound to one destination.
type socks5PacketConn struct {
	udp      net.Conn // connected to the relay
	ctrl     net.Conn // the TCP connection that keeps the association alive
	target   hostPort
	header   []byte // the SOCKS5 UDP header for target, prepended to writes
	ctrlDone chan struct{}
	closed   atomic.Bool
	dropped  atomic.Uint64 // fragments and datagrams from other sources
	wg       sync.WaitGroup
	once     sync.Once
	closeErr error
}

func newSOCKS5PacketConn(ctrl, udp net.Conn, target hostPort) *socks5PacketConn {
	c := &socks5PacketConn{
		udp:      udp,
		ctrl:     ctrl,
		target:   target,
		header:   appendSOCKS5Addr([]byte{0, 0, 0}, target),
		ctrlDone: make(chan struct{}),
	}
	c.wg.Add(1)
	go c.watchControl()
	return c
}

// watchControl ends the association when the proxy closes the control
// connection; it runs until then or until Close closes ctrl.
func (c *socks5PacketConn) watchControl() {
	defer c.wg.Done()
	_, _ = io.Copy(io.Discard, c.ctrl) // the proxy sends nothing; any end is final
	close(c.ctrlDone)
	_ = c.udp.Close()
}

// Read returns the payload of the next datagram from the destination.
func (c *socks5PacketConn) Read(b []byte) (int, error) {
	bp := udpBufPool.Get().(*[]byte)
	defer udpBufPool.Put(bp)
	for {
		n, err := c.udp.Read(*bp)
		if err != nil {
			return 0, c.ioErr(err)
		}
		payload, ok := c.accept((*bp)[:n])
		if !ok {
			c.dropped.Add(1)
			continue
		}
		return copy(b, payload), nil
	}
}

// accept decapsulates a datagram from the relay, rejecting fragments and
// datagrams whose source is not our destination.
func (c *socks5PacketConn) accept(datagram []byte) ([]byte, bool) {
	frag, from, payload, err := parseSOCKS5UDP(datagram)
	if err != nil || frag != 0 || from.Port != c.target.Port {
		return nil, false
	}
	switch {
	case c.target.IP.IsValid():
		return payload, from.IP == c.target.IP
	case from.Name != "":
		return payload, strings.EqualFold(from.Name, c.target.Name)
	default:
		// We sent a name; the proxy answers with the IP it resolved, which
		// we cannot check.
		return payload, true
	}
}

// Write sends b as one datagram to the destination.
func (c *socks5PacketConn) Write(b []byte) (int, error) {
	bp := udpBufPool.Get().(*[]byte)
	defer udpBufPool.Put(bp)
	buf := *bp
	n := copy(buf, c.header)
	if len(b) > len(buf)-n {
		return 0, fmt.Errorf("datagram of %d bytes too large for a SOCKS5 relay", len(b))
	}
	n += copy(buf[n:], b)
	if _, err := c.udp.Write(buf[:n]); err != nil {
		return 0, c.ioErr(err)
	}
	return len(b), nil
}

// ErrUDPAssociationEnded is returned by reads and writes of a SOCKS5 UDP
// association once the proxy has closed its control connection, which
// ends the association for good. It does not match net.ErrClosed, so
// that callers tell it from their own Close (and log it).
var ErrUDPAssociationEnded = errors.New("socks5 UDP association ended: the proxy closed the control connection")

// ioErr explains a closed socket that we did not close ourselves, and a
// refusal from the relay.
func (c *socks5PacketConn) ioErr(err error) error {
	if c.closed.Load() {
		return err
	}
	select {
	case <-c.ctrlDone:
		return fmt.Errorf("%w (%v)", ErrUDPAssociationEnded, err)
	default:
	}
	if errors.Is(err, syscall.ECONNREFUSED) {
		// The relay's port, not the destination, answered port
		// unreachable: the proxy has ended the association (dante does
		// when the destination refused its datagram).
		return fmt.Errorf("socks5 UDP relay %s refused the datagram: %w", c.udp.RemoteAddr(), err)
	}
	return err
}

// Close ends the association and waits for its watcher. It is idempotent.
func (c *socks5PacketConn) Close() error {
	c.once.Do(func() {
		c.closed.Store(true)
		errCtrl := c.ctrl.Close()
		errUDP := c.udp.Close()
		c.wg.Wait()
		if errors.Is(errUDP, net.ErrClosed) {
			errUDP = nil // the watcher closed it first
		}
		c.closeErr = errors.Join(errCtrl, errUDP)
	})
	return c.closeErr
}

// LocalAddr is the local address of the UDP socket to the relay.
func (c *socks5PacketConn) LocalAddr() net.Addr { return c.udp.LocalAddr() }

// RemoteAddr is the destination (not the relay).
func (c *socks5PacketConn) RemoteAddr() net.Addr {
	if c.target.IP.IsValid() {
		return net.UDPAddrFromAddrPort(netip.AddrPortFrom(c.target.IP, c.target.Port))
	}
	return nameAddr{network: "udp", address: c.target.String()}
}

// SetDeadline sets the read and write deadlines of the UDP socket.
func (c *socks5PacketConn) SetDeadline(t time.Time) error { return c.udp.SetDeadline(t) }

// SetReadDeadline sets the read deadline of the UDP socket.
func (c *socks5PacketConn) SetReadDeadline(t time.Time) error { return c.udp.SetReadDeadline(t) }

// SetWriteDeadline sets the write deadline of the UDP socket.
func (c *socks5PacketConn) SetWriteDeadline(t time.Time) error { return c.udp.SetWriteDeadline(t) }

// nameAddr is a net.Addr for a destination known only by name.
type nameAddr struct{ network, address string }

func (a nameAddr) Network() string { return a.network }
func (a nameAddr) String() string  { return a.address }

// parseSOCKS5UDP splits a relayed datagram: RSV(2) FRAG ATYP ADDR PORT DATA.
func parseSOCKS5UDP(b []byte) (frag byte, from hostPort, payload []byte, err error) {
	if len(b) < 3 {
		return 0, hostPort{}, nil, fmt.Errorf("%w: SOCKS5 UDP datagram of %d bytes", ErrProtocol, len(b))
	}
	frag = b[2]
	from, payload, err = parseSOCKS5Addr(b[3:])
	if err != nil {
		return 0, hostPort{}, nil, err
	}
	return frag, from, payload, nil
}
