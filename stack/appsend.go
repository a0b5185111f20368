package stack

import (
	"errors"
	"io"
	"net"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
)

// Sending what the app wrote without copying it: SendVectors lends the
// relay the slices of gVisor's receive queue, so that one writev moves
// them to a host socket, where Read would first copy them into a relay
// buffer (a fifth of an upload's CPU time). The slices stay valid while
// their segments are queued: only a non-peeking read takes segments off
// the queue, and the endpoint's Close purges it, so appConn.Close leaves
// that to a SendVectors in progress (connSending). gVisor's own purge, when
// the whole stack is closed, comes after the forwarder has stopped every
// relay.

// MaxSendVectors and MaxSendBytes bound one SendVectors call: at most this
// many slices (well under the kernel's 1,024 per writev) holding at most
// this many bytes, the relay's large buffer.
const (
	MaxSendVectors = 256
	MaxSendBytes   = 2 << 20
)

// errVectorsFull stops gVisor's walk of the queue once the vectors are
// full, or a consuming read once it has taken its count; it never leaves
// this file.
var errVectorsFull = errors.New("vectors full")

// vectorPeeker records the slices gVisor hands it (an io.Writer), up to
// the bounds; pooled, because it escapes into the endpoint's Read.
type vectorPeeker struct {
	vecs  [][]byte
	total int
}

func (p *vectorPeeker) Write(b []byte) (int, error) {
	if len(b) == 0 {
		return 0, nil
	}
	room := MaxSendBytes - p.total
	if len(p.vecs) == cap(p.vecs) || room == 0 {
		return 0, errVectorsFull
	}
	n := min(len(b), room)
	p.vecs = append(p.vecs, b[:n])
	p.total += n
	if n < len(b) {
		return n, errVectorsFull // a peek: the rest stays queued
	}
	return n, nil
}

// forget drops the slices, so that the pool keeps no pointers into
// gVisor's buffers.
func (p *vectorPeeker) forget() { clear(p.vecs) }

// vectorConsumer takes left bytes off the queue and drops them: they are
// sent already.
type vectorConsumer struct{ left int }

func (d *vectorConsumer) Write(b []byte) (int, error) {
	if len(b) <= d.left {
		d.left -= len(b)
		return len(b), nil
	}
	n := d.left
	d.left = 0
	return n, errVectorsFull
}

// sendState is one SendVectors call's writers.
type sendState struct {
	peek    vectorPeeker
	consume vectorConsumer
}

var sendStates = sync.Pool{New: func() any {
	return &sendState{peek: vectorPeeker{vecs: make([][]byte, 0, MaxSendVectors)}}
}}

// SendVectors passes send the bytes the app has sent and no read has
// taken yet, in order, as at most MaxSendVectors slices of at most
// MaxSendBytes in all, then takes off the queue the n bytes send reports
// as sent, and returns n and send's error. The slices are gVisor's own
// buffers: send must not keep them, change them or block (a Close
// meanwhile leaves closing the endpoint to SendVectors). With nothing
// queued it returns 0 and nil without calling send; after the app's FIN,
// io.EOF; a failed read returns the read's error as Read does.
func (c *appConn) SendVectors(send func(vecs [][]byte) (int, error)) (int, error) {
	if !c.startSending() {
		return 0, c.opError("read", net.ErrClosed)
	}
	defer c.stopSending()
	if err := c.check(false); err != nil {
		return 0, c.opError("read", err)
	}
	st := sendStates.Get().(*sendState)
	defer sendStates.Put(st)
	p := &st.peek
	p.vecs, p.total = p.vecs[:0], 0
	defer p.forget()
	_, terr := c.ep.Read(p, tcpip.ReadOptions{Peek: true})
	switch terr.(type) {
	case nil:
	case *tcpip.ErrClosedForReceive:
		return 0, io.EOF
	case *tcpip.ErrWouldBlock:
		return 0, nil
	default:
		return 0, c.opError("read", AsError(terr))
	}
	n, err := send(p.vecs)
	if n > 0 {
		if cerr := c.consume(&st.consume, n); cerr != nil {
			return 0, cerr
		}
	}
	return n, err
}

// startSending marks c as sending unless it is closed, and reports
// whether it did.
func (c *appConn) startSending() bool {
	for {
		old := c.state.Load()
		if old&connClosed != 0 {
			return false
		}
		if c.state.CompareAndSwap(old, old|connSending) {
			return true
		}
	}
}

// stopSending ends what startSending began, and closes the endpoint if a
// Close came meanwhile and left that to it.
func (c *appConn) stopSending() {
	for {
		old := c.state.Load()
		if c.state.CompareAndSwap(old, old&^connSending) {
			if old&connClosed != 0 {
				c.ep.Close()
			}
			return
		}
	}
}

// errConsumed reports a consuming read that took fewer bytes than were
// peeked and sent, which the queue's rules exclude.
var errConsumed = errors.New("receive queue shorter than what was sent")

// consume takes the n bytes just sent off the receive queue, which opens
// the window again as a read does.
func (c *appConn) consume(d *vectorConsumer, n int) error {
	d.left = n
	res, terr := c.ep.Read(d, tcpip.ReadOptions{})
	if terr != nil {
		return c.opError("read", AsError(terr))
	}
	c.ep.ModerateRecvBuf(res.Count)
	if res.Count != n {
		return c.opError("read", errConsumed)
	}
	return nil
}
