package stack

import (
	"net"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// appConn is the app's side of a TCP flow: a gonet connection that can also
// reset and tell when data is ready without holding a buffer or a
// goroutine.
type appConn struct {
	*gonet.TCPConn
	ep        tcpip.Endpoint
	wq        *waiter.Queue
	done      chan struct{}
	closeOnce sync.Once

	// entry stays registered from creation to Close, so that arming a
	// notification costs no registration.
	entry    waiter.Entry
	notifyMu sync.Mutex
	notify   func() // armed by NotifyReadable, nil otherwise
}

// readableEvents are the events after which a read does not block.
const readableEvents = waiter.ReadableEvents | waiter.EventHUp | waiter.EventErr

func newAppConn(wq *waiter.Queue, ep tcpip.Endpoint) *appConn {
	c := &appConn{TCPConn: gonet.NewTCPConn(wq, ep), ep: ep, wq: wq, done: make(chan struct{})}
	c.entry.Init(c, readableEvents)
	wq.EventRegister(&c.entry)
	return c
}

// Close closes the connection and wakes a waiting WaitReadable or an armed
// NotifyReadable.
func (c *appConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		c.wq.EventUnregister(&c.entry)
		close(c.done)
		c.fire()
		err = c.TCPConn.Close()
	})
	return err
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
func (c *appConn) WaitReadable() error { return waitReadable(c.ep, c.wq, c.done) }

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
	select {
	case <-c.done:
		return true
	default:
		return c.ep.Readiness(waiter.ReadableEvents) != 0
	}
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
