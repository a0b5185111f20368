package dns

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"

	"golang.org/x/sys/unix"
)

// packetConn is the resolver's side of one UDP flow: each Write is a query
// answered on a goroutine of its own, each Read an answer.
type packetConn struct {
	r       *Resolver
	remote  net.Addr
	ctx     context.Context
	cancel  context.CancelFunc
	answers chan []byte
	slots   chan struct{}
	mu      sync.Mutex
	closed  bool
	wg      sync.WaitGroup
}

func (r *Resolver) newPacketConn(dst netip.AddrPort) (net.Conn, error) {
	c := &packetConn{
		r:       r,
		remote:  net.UDPAddrFromAddrPort(dst),
		answers: make(chan []byte, maxInFlight),
		slots:   make(chan struct{}, maxInFlight),
	}
	c.ctx, c.cancel = context.WithCancel(r.ctx)
	return c, nil
}

// Write takes one query. It never blocks: with too many queries unanswered
// it drops this one.
func (c *packetConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed {
		return 0, net.ErrClosed
	}
	select {
	case c.slots <- struct{}{}:
	default:
		return len(b), nil
	}
	q := append([]byte(nil), b...)
	c.wg.Add(1)
	go func() {
		defer c.wg.Done()
		defer func() { <-c.slots }()
		ans := c.r.answer(c.ctx, "udp", q)
		if ans == nil {
			return
		}
		select {
		case c.answers <- ans:
		case <-c.ctx.Done():
		}
	}()
	return len(b), nil
}

// Read returns the next answer; one too large for b is cut, as a datagram
// socket would.
func (c *packetConn) Read(b []byte) (int, error) {
	select {
	case ans := <-c.answers:
		return copy(b, ans), nil
	case <-c.ctx.Done():
		return 0, net.ErrClosed
	}
}

// Close stops the queries in flight and waits for them.
func (c *packetConn) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	c.mu.Unlock()
	c.cancel()
	c.wg.Wait()
	return nil
}

func (c *packetConn) LocalAddr() net.Addr  { return c.remote }
func (c *packetConn) RemoteAddr() net.Addr { return c.remote }

// errNoDeadlines: the forwarder ends UDP flows by closing them, never by
// deadlines.
var errNoDeadlines = errors.New("dns: deadlines are not supported on resolver flows")

func (c *packetConn) SetDeadline(time.Time) error      { return errNoDeadlines }
func (c *packetConn) SetReadDeadline(time.Time) error  { return errNoDeadlines }
func (c *packetConn) SetWriteDeadline(time.Time) error { return errNoDeadlines }

// dialStream returns one end of a socketpair; the resolver serves DNS over
// TCP (RFC 1035 4.2.2: two-byte length, then the message) on the other. A
// real socket, unlike net.Pipe, keeps half-close for the relay.
func (r *Resolver) dialStream(dst netip.AddrPort) (net.Conn, error) {
	app, srv, err := streamPair()
	if err != nil {
		return nil, fmt.Errorf("dial resolver %s: %w", dst, err)
	}
	if !r.talks.Go(func() { r.serveStream(srv) }) {
		app.Close()
		srv.Close()
		return nil, fmt.Errorf("dial resolver %s: %w", dst, net.ErrClosed)
	}
	return app, nil
}

func (r *Resolver) serveStream(c net.Conn) {
	defer c.Close()
	stop := context.AfterFunc(r.ctx, func() { c.Close() })
	defer stop()
	var hdr [2]byte
	for {
		c.SetReadDeadline(time.Now().Add(tcpIdle))
		if _, err := io.ReadFull(c, hdr[:]); err != nil {
			return
		}
		q := make([]byte, binary.BigEndian.Uint16(hdr[:]))
		if _, err := io.ReadFull(c, q); err != nil {
			return
		}
		ans := r.answer(r.ctx, "tcp", q)
		if ans == nil || len(ans) > 0xffff {
			return
		}
		out := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(ans)), uint16(len(ans)))
		if _, err := c.Write(append(out, ans...)); err != nil {
			return
		}
	}
}

// streamPair returns two connected stream sockets.
func streamPair() (net.Conn, net.Conn, error) {
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_STREAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, nil, fmt.Errorf("socketpair: %w", err)
	}
	a, err := fileConn(fds[0])
	if err != nil {
		unix.Close(fds[1])
		return nil, nil, err
	}
	b, err := fileConn(fds[1])
	if err != nil {
		a.Close()
		return nil, nil, err
	}
	return a, b, nil
}

func fileConn(fd int) (net.Conn, error) {
	f := os.NewFile(uintptr(fd), "dns-stream")
	defer f.Close()
	c, err := net.FileConn(f)
	if err != nil {
		return nil, fmt.Errorf("socketpair: %w", err)
	}
	return c, nil
}
