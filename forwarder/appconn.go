package forwarder

import (
	"net"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/waiter"
)

// appConn is the app's side of a TCP flow: a gonet connection that can also
// reset and wait for data without holding a buffer.
type appConn struct {
	*gonet.TCPConn
	ep        tcpip.Endpoint
	wq        *waiter.Queue
	done      chan struct{}
	closeOnce sync.Once
}

func newAppConn(wq *waiter.Queue, ep tcpip.Endpoint) *appConn {
	return &appConn{TCPConn: gonet.NewTCPConn(wq, ep), ep: ep, wq: wq, done: make(chan struct{})}
}

// Close closes the connection and wakes a waiting WaitReadable.
func (c *appConn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.done)
		err = c.TCPConn.Close()
	})
	return err
}

// Reset implements Resetter: a zero linger makes gVisor send RST on close.
func (c *appConn) Reset() error {
	c.ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: true, Timeout: 0})
	return c.Close()
}

// WaitReadable implements ReadWaiter.
func (c *appConn) WaitReadable() error { return waitReadable(c.ep, c.wq, c.done) }

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

// WaitReadable implements ReadWaiter.
func (c *appDatagrams) WaitReadable() error { return waitReadable(c.ep, c.wq, c.done) }
