package stack

import (
	"bytes"
	"io"
	"net"
	"os"
	"sync"
	"sync/atomic"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// appConn is the app's side of a TCP flow: a net.Conn over gVisor's
// endpoint that can also reset and tell when data is ready without holding
// a buffer or a goroutine. It replaces gonet's connection, which made two
// channels per connection up front and a timer per deadline; an idle flow
// keeps this one struct and its endpoint. Reads and writes use the
// endpoint's non-blocking calls and wait on its queue only when they would
// block.
type appConn struct {
	ep    tcpip.Endpoint
	wq    waiter.Queue  // the endpoint's, here to save an allocation
	state atomic.Uint32 // connClosed, connSending

	// entry stays registered from creation to Close, so that arming a
	// notification costs no registration.
	entry    waiter.Entry
	notifyMu sync.Mutex
	notify   func() // armed by NotifyReadable, nil otherwise

	dl atomic.Pointer[deadlines] // nil until the first SetDeadline
}

// The bits of appConn.state. A Close during a SendVectors leaves closing
// the endpoint, which frees the receive queue's buffers, to the
// SendVectors, once it is done with them (appsend.go).
const (
	connClosed  = 1 << iota // Close was called
	connSending             // SendVectors is using the receive queue's buffers
)

// isClosed reports whether Close was called.
func (c *appConn) isClosed() bool { return c.state.Load()&connClosed != 0 }

// readableEvents are the events after which a read does not block.
const readableEvents = waiter.ReadableEvents | waiter.EventHUp | waiter.EventErr

// writableEvents are the events after which a write does not block.
const writableEvents = waiter.WritableEvents | waiter.EventHUp | waiter.EventErr

// start registers the notification entry once the endpoint exists.
func (c *appConn) start(ep tcpip.Endpoint) {
	c.ep = ep
	c.entry.Init(c, readableEvents)
	c.wq.EventRegister(&c.entry)
}

// Read implements net.Conn: it returns what the endpoint has, waiting on
// its queue only while it has nothing; io.EOF after the app's FIN.
func (c *appConn) Read(b []byte) (int, error) {
	w := tcpip.SliceWriter(b)
	n, blocked, err := c.tryRead(&w)
	if !blocked {
		return n, err
	}
	return c.readWaiting(&w)
}

// readWaiting is Read once the endpoint had nothing: apart, so that the
// wait's entry, which escapes into the queue, is allocated only by reads
// that wait.
func (c *appConn) readWaiting(w *tcpip.SliceWriter) (int, error) {
	// Registered before the read is tried again, so that no event falls
	// between the try and the wait.
	entry, ch := waiter.NewChannelEntry(readableEvents | wakeEvent)
	c.wq.EventRegister(&entry)
	defer c.wq.EventUnregister(&entry)
	for {
		n, blocked, err := c.tryRead(w)
		if !blocked {
			return n, err
		}
		<-ch
	}
}

// tryRead reads what the endpoint has, or reports that it has nothing.
func (c *appConn) tryRead(w *tcpip.SliceWriter) (n int, blocked bool, err error) {
	if err := c.check(false); err != nil {
		return 0, false, c.opError("read", err)
	}
	res, terr := c.ep.Read(w, tcpip.ReadOptions{})
	switch terr.(type) {
	case nil:
		if res.Count != 0 {
			c.ep.ModerateRecvBuf(res.Count)
		}
		return res.Count, false, nil
	case *tcpip.ErrClosedForReceive:
		return 0, false, io.EOF
	case *tcpip.ErrWouldBlock:
		return 0, true, nil
	}
	return 0, false, c.opError("read", AsError(terr))
}

// writers reuse the reader that hands b to the endpoint, which would
// otherwise be allocated per Write (it escapes into the endpoint's
// interface) or kept per connection.
var writers = sync.Pool{New: func() any { return new(bytes.Reader) }}

// Write implements net.Conn: it writes all of b, waiting on the endpoint's
// queue while its send buffer is full.
func (c *appConn) Write(b []byte) (int, error) {
	r := writers.Get().(*bytes.Reader)
	defer func() {
		r.Reset(nil)
		writers.Put(r)
	}()
	written, blocked, err := c.tryWrite(r, b, 0)
	if !blocked {
		return written, err
	}
	return c.writeWaiting(r, b, written)
}

// writeWaiting is Write once the endpoint's send buffer was full: apart,
// as readWaiting is.
func (c *appConn) writeWaiting(r *bytes.Reader, b []byte, written int) (int, error) {
	entry, ch := waiter.NewChannelEntry(writableEvents | wakeEvent)
	c.wq.EventRegister(&entry)
	defer c.wq.EventUnregister(&entry)
	for {
		var err error
		var blocked bool
		if written, blocked, err = c.tryWrite(r, b, written); !blocked {
			return written, err
		}
		<-ch
	}
}

// tryWrite writes b[written:] until it is all written, fails, or the send
// buffer is full (blocked), and returns how much of b is written.
func (c *appConn) tryWrite(r *bytes.Reader, b []byte, written int) (int, bool, error) {
	for written < len(b) {
		if err := c.check(true); err != nil {
			return written, false, c.opError("write", err)
		}
		r.Reset(b[written:])
		n, terr := c.ep.Write(r, tcpip.WriteOptions{})
		written += int(n)
		switch terr.(type) {
		case nil: // a short write: try the rest at once
		case *tcpip.ErrWouldBlock:
			return written, true, nil
		default:
			return written, false, c.opError("write", AsError(terr))
		}
	}
	return written, false, nil
}

// wakeEvent wakes the waiters of Read, Write and WaitReadable (their
// entries add it to their masks) and no one else: gVisor never sends it,
// and the notification entry does not take it. Close and the deadlines
// send it, so that a waiter checks again.
const wakeEvent = waiter.EventInternal

// wakeWaiters wakes every Read, Write and WaitReadable waiting on c.
func (c *appConn) wakeWaiters() { c.wq.Notify(wakeEvent) }

// check returns net.ErrClosed after Close and os.ErrDeadlineExceeded once
// the direction's deadline has passed.
func (c *appConn) check(write bool) error {
	if c.isClosed() {
		return net.ErrClosed
	}
	if d := c.dl.Load(); d != nil && d.passed(write) {
		return os.ErrDeadlineExceeded
	}
	return nil
}

func (c *appConn) opError(op string, err error) error {
	return &net.OpError{Op: op, Net: "tcp", Source: c.LocalAddr(), Addr: c.RemoteAddr(), Err: err}
}

// Close closes the connection and wakes a waiting Read, Write,
// WaitReadable or an armed NotifyReadable.
func (c *appConn) Close() error {
	old := c.state.Load()
	for ; old&connClosed == 0; old = c.state.Load() {
		if c.state.CompareAndSwap(old, old|connClosed) {
			break
		}
	}
	if old&connClosed != 0 {
		return nil
	}
	c.wq.EventUnregister(&c.entry)
	if d := c.dl.Load(); d != nil {
		d.stop()
	}
	c.wakeWaiters() // they see closed
	c.fire()
	if old&connSending == 0 {
		c.ep.Close()
	} // else the SendVectors in progress closes it when it is done
	return nil
}

// CloseWrite sends the app a FIN; reading goes on.
func (c *appConn) CloseWrite() error {
	if err := c.ep.Shutdown(tcpip.ShutdownWrite); err != nil {
		return c.opError("close", AsError(err))
	}
	return nil
}

// CloseRead shuts the reading direction.
func (c *appConn) CloseRead() error {
	if err := c.ep.Shutdown(tcpip.ShutdownRead); err != nil {
		return c.opError("close", AsError(err))
	}
	return nil
}

// LocalAddr is the address the app dialed.
func (c *appConn) LocalAddr() net.Addr {
	a, err := c.ep.GetLocalAddress()
	if err != nil {
		return nil
	}
	return fullToTCPAddr(a)
}

// RemoteAddr is the app's address.
func (c *appConn) RemoteAddr() net.Addr {
	a, err := c.ep.GetRemoteAddress()
	if err != nil {
		return nil
	}
	return fullToTCPAddr(a)
}

func fullToTCPAddr(a tcpip.FullAddress) *net.TCPAddr {
	return &net.TCPAddr{IP: net.IP(a.Addr.AsSlice()), Port: int(a.Port)}
}

// SetDeadline implements net.Conn.
func (c *appConn) SetDeadline(t time.Time) error { c.deadlines().set(true, true, t); return nil }

// SetReadDeadline implements net.Conn.
func (c *appConn) SetReadDeadline(t time.Time) error { c.deadlines().set(true, false, t); return nil }

// SetWriteDeadline implements net.Conn.
func (c *appConn) SetWriteDeadline(t time.Time) error { c.deadlines().set(false, true, t); return nil }

// deadlines returns c's deadlines, making them on first use.
func (c *appConn) deadlines() *deadlines {
	if d := c.dl.Load(); d != nil {
		return d
	}
	c.dl.CompareAndSwap(nil, &deadlines{wake: c.wakeWaiters})
	return c.dl.Load()
}

// Reset ends the connection with RST: a zero linger makes gVisor send it
// on close.
func (c *appConn) Reset() error {
	c.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: true, Timeout: 0})
	return c.Close()
}

// PeerClosed reports whether the app's FIN has arrived (even if data
// before it is unread).
func (c *appConn) PeerClosed() bool {
	switch tcp.EndpointState(c.ep.State()) {
	case tcp.StateCloseWait, tcp.StateLastAck, tcp.StateClosing, tcp.StateTimeWait, tcp.StateClose, tcp.StateError:
		return true
	}
	return false
}

// WaitReadable returns once a read would not block, or net.ErrClosed
// after Close.
func (c *appConn) WaitReadable() error {
	if c.readableNow() {
		return c.closedErr()
	}
	entry, ch := waiter.NewChannelEntry(readableEvents | wakeEvent)
	c.wq.EventRegister(&entry)
	defer c.wq.EventUnregister(&entry)
	for !c.readableNow() {
		<-ch // Close wakes it too
	}
	return c.closedErr()
}

func (c *appConn) closedErr() error {
	if c.isClosed() {
		return net.ErrClosed
	}
	return nil
}

// NotifyReadable arms fn to run once when the connection becomes
// readable (or is closed) and returns true; if it already is, it returns
// false and fn is not armed.
func (c *appConn) NotifyReadable(fn func()) bool {
	c.notifyMu.Lock()
	c.notify = fn
	c.notifyMu.Unlock()
	if !c.readableNow() {
		return true
	}
	// Readable already: disarm, unless an event took fn first (then fn
	// has run or is about to).
	c.notifyMu.Lock()
	armed := c.notify != nil
	c.notify = nil
	c.notifyMu.Unlock()
	return !armed
}

func (c *appConn) readableNow() bool {
	return c.isClosed() || c.ep.Readiness(waiter.ReadableEvents) != 0
}

// NotifyEvent implements waiter.EventListener; gVisor calls it on its
// packet path.
func (c *appConn) NotifyEvent(waiter.EventMask) { c.fire() }

// fire runs the armed notification, if any, once.
func (c *appConn) fire() {
	c.notifyMu.Lock()
	fn := c.notify
	c.notify = nil
	c.notifyMu.Unlock()
	if fn != nil {
		fn()
	}
}

// waitReadable returns nil once data, EOF or an error is ready to be read
// from ep, and net.ErrClosed once done is closed.
func waitReadable(ep tcpip.Endpoint, wq *waiter.Queue, done <-chan struct{}) error {
	if ep.Readiness(waiter.ReadableEvents) != 0 {
		return nil
	}
	entry, ch := waiter.NewChannelEntry(waiter.ReadableEvents | waiter.EventHUp | waiter.EventErr)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	if ep.Readiness(waiter.ReadableEvents) != 0 {
		return nil
	}
	select {
	case <-ch:
		return nil
	case <-done:
		return net.ErrClosed
	}
}

// appDatagrams is the app's side of a UDP session.
type appDatagrams struct {
	*gonet.UDPConn
	ep        tcpip.Endpoint
	wq        *waiter.Queue
	done      chan struct{}
	closeOnce sync.Once
}

func newAppDatagrams(wq *waiter.Queue, ep tcpip.Endpoint) *appDatagrams {
	return &appDatagrams{UDPConn: gonet.NewUDPConn(wq, ep), ep: ep, wq: wq, done: make(chan struct{})}
}

// Close closes the endpoint and wakes a waiting WaitReadable.
func (c *appDatagrams) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.done)
		err = c.UDPConn.Close()
	})
	return err
}

// WaitReadable returns once a read would not block, or net.ErrClosed
// after Close.
func (c *appDatagrams) WaitReadable() error { return waitReadable(c.ep, c.wq, c.done) }
