package fakedns

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"sync"
	"time"
)

// Bounds on what one DNS flow may leave unread. Answers are made at once on
// the writer's goroutine, so a client that sends and never reads is the
// only way to pile them up.
const (
	maxQueuedDatagrams = 64       // further answers are dropped, as by a busy server
	maxPendingStream   = 64 << 10 // further queries end the connection
)

// errNoDeadlines: the forwarder ends flows by closing them, never by
// deadlines.
var errNoDeadlines = errors.New("fakedns: deadlines are not supported on in-process DNS flows")

// errTooMuchUnread ends a DNS-over-TCP connection whose client does not read.
var errTooMuchUnread = errors.New("fakedns: client sent queries without reading the answers")

// localConn is the resolver's side of one flow, answered without any
// goroutine of its own: each Write makes the answers, each Read returns
// them. It is a datagram conn (one query per Write, one answer per Read)
// or, with stream set, DNS over TCP (RFC 1035 4.2.2: a two-byte length,
// then the message), where CloseWrite from the client ends the reads once
// every answer is out, as half-close should.
type localConn struct {
	r      *Resolver
	stream bool
	addr   net.Addr

	mu          sync.Mutex
	ready       sync.Cond
	datagrams   [][]byte // answers to read, datagram mode
	in, out     []byte   // partial query and unread answers, stream mode
	writeClosed bool
	closed      bool
}

func newLocalConn(r *Resolver, addr net.Addr, stream bool) *localConn {
	c := &localConn{r: r, stream: stream, addr: addr}
	c.ready.L = &c.mu
	return c
}

// Write takes queries; it never blocks.
func (c *localConn) Write(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.closed || c.writeClosed {
		return 0, net.ErrClosed
	}
	if !c.stream {
		if ans := c.r.answer(b); ans != nil && len(c.datagrams) < maxQueuedDatagrams {
			c.datagrams = append(c.datagrams, ans)
			c.ready.Signal()
		}
		return len(b), nil
	}
	c.in = append(c.in, b...)
	for len(c.in) >= 2 {
		n := 2 + int(binary.BigEndian.Uint16(c.in))
		if len(c.in) < n {
			break
		}
		if ans := c.r.answer(c.in[2:n]); ans != nil {
			c.out = binary.BigEndian.AppendUint16(c.out, uint16(len(ans)))
			c.out = append(c.out, ans...)
		}
		c.in = c.in[n:]
	}
	c.in = append([]byte(nil), c.in...) // let the consumed bytes go
	c.ready.Broadcast()
	if len(c.out) > maxPendingStream {
		c.closed = true
		return 0, errTooMuchUnread
	}
	return len(b), nil
}

// Read returns the next answer (cut to b in datagram mode, as a datagram
// socket would), io.EOF after CloseWrite once all are read, and
// net.ErrClosed after Close.
func (c *localConn) Read(b []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for !c.closed && len(c.datagrams) == 0 && len(c.out) == 0 && !c.writeClosed {
		c.ready.Wait()
	}
	switch {
	case c.closed:
		return 0, net.ErrClosed
	case len(c.datagrams) > 0:
		n := copy(b, c.datagrams[0])
		c.datagrams[0] = nil
		c.datagrams = c.datagrams[1:]
		return n, nil
	case len(c.out) > 0:
		n := copy(b, c.out)
		c.out = c.out[n:]
		return n, nil
	}
	return 0, io.EOF
}

// CloseWrite is the client's half-close: no more queries.
func (c *localConn) CloseWrite() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.writeClosed = true
	c.ready.Broadcast()
	return nil
}

// Close ends the flow and wakes a blocked Read. It is idempotent.
func (c *localConn) Close() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.closed = true
	c.datagrams, c.in, c.out = nil, nil, nil
	c.ready.Broadcast()
	return nil
}

func (c *localConn) LocalAddr() net.Addr              { return c.addr }
func (c *localConn) RemoteAddr() net.Addr             { return c.addr }
func (c *localConn) SetDeadline(time.Time) error      { return errNoDeadlines }
func (c *localConn) SetReadDeadline(time.Time) error  { return errNoDeadlines }
func (c *localConn) SetWriteDeadline(time.Time) error { return errNoDeadlines }
