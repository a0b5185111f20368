package forwarder

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/forwarder/internal/poll"
)

// The relay copies through pooled buffers of two sizes, held only while
// data is ready, never while a flow is idle. A direction reads into the
// small one; once a read fills it (a bulk transfer with more waiting) it
// reads into the large one until a read no longer fills the small size.
// Large writes let gVisor build full 64 KiB TSO segments (download
// throughput doubled from 32 KiB to 256 KiB here), and 2 MiB chunks cut
// the system calls and peer wakeups per byte: single-stream throughput
// rose about 10% both ways over 256 KiB, with less CPU per byte. The
// app -> upstream direction of a flow to a host TCP socket uses neither:
// it sends from gVisor's receive queue itself (sendvec.go).
const (
	relayBufSmall = 256 << 10
	relayBufLarge = 2 << 20
)

var (
	relayBufsSmall = sync.Pool{New: func() any { b := make([]byte, relayBufSmall); return &b }}
	relayBufsLarge = sync.Pool{New: func() any { b := make([]byte, relayBufLarge); return &b }}
)

// relayBuf is one direction's choice of buffer size.
type relayBuf struct{ large bool }

func (r *relayBuf) get() *[]byte {
	if r.large {
		return relayBufsLarge.Get().(*[]byte)
	}
	return relayBufsSmall.Get().(*[]byte)
}

// giveBack returns a buffer that no read used.
func (r *relayBuf) giveBack(bp *[]byte) {
	if r.large {
		relayBufsLarge.Put(bp)
	} else {
		relayBufsSmall.Put(bp)
	}
}

// put returns bp to its pool and picks the size of the next read from n,
// the bytes the last read returned.
func (r *relayBuf) put(bp *[]byte, n int) {
	r.giveBack(bp)
	r.large = n >= relayBufSmall
}

// Resetter is implemented by connections that can end with a reset (RST)
// instead of an orderly FIN.
type Resetter interface {
	Reset() error
}

// ReadWaiter is implemented by connections that can wait until they are
// readable without holding a buffer, so idle flows own no relay buffer.
type ReadWaiter interface {
	WaitReadable() error
}

// ReadNotifier is implemented by connections that can call back when they
// become readable, so that an idle direction of a flow holds no goroutine
// (whose stack is most of an idle flow's memory).
type ReadNotifier interface {
	// NotifyReadable arranges for fn to be called once when the connection
	// has data, EOF or an error to read, or is closed, and returns true;
	// fn runs on the stack's packet path and must not block. If the
	// connection is readable already it arranges nothing and returns
	// false.
	NotifyReadable(fn func()) bool
}

// Relay copies bytes between app and upstream in both directions until
// both have ended, then closes both. An orderly end (EOF) in one direction
// half-closes the other side's write direction and lets the other direction
// go on; an error in one direction resets the other side and ends both.
// Cancelling ctx resets both at once (tungate is stopping: no app is left
// waiting for a FIN or its own timeout). The error names the direction
// that failed.
func Relay(ctx context.Context, app, upstream net.Conn) error {
	return relay(ctx, app, upstream, 0, nil)
}

// errHalfClosed ends a flow that was half-closed and idle too long.
var errHalfClosed = errors.New("half-closed and idle: reset")

// relay is Relay that also resets both sides once one side has closed and
// nothing has moved for halfClosedTimeout (if not zero), and counts into
// fl's halves (nil counts nothing). The down direction runs on the
// caller's goroutine; without a poll set it never parks.
func relay(ctx context.Context, app, upstream net.Conn, halfClosedTimeout time.Duration, fl *flows.Flow) error {
	done := make(chan error, 1)
	r := startRelay(ctx, app, upstream, halfClosedTimeout, fl, nil, func(err error) { done <- err })
	r.runDown()
	return <-done
}

// relayRun is one relay. startRelay arms the stop and the half-closed
// limit and starts the app -> upstream direction; the caller starts the
// upstream -> app one (runDown), on a fresh goroutine where the flow may
// park, so that it starts shallow; each wake-up from the poll set starts
// a fresh one. Neither direction holds a goroutine
// while its source is idle: app -> upstream waits in the stack's waiter
// (ReadNotifier), upstream -> app, after parkAfter without data, in the
// Forwarder's poll set. Whichever direction ends last closes both sides
// and reports the result to onEnd. A parked goroutine's stack and record
// are most of an idle flow's cost (2 KiB and more each).
type relayRun struct {
	ctx            context.Context
	app, upstream  net.Conn
	w              *halfClosed
	fl             *flows.Flow
	stop           func() bool
	onEnd          func(error)
	left           atomic.Int32 // directions still running
	errUp, errDown error

	// The down direction's state, used by one goroutine at a time.
	downBuf relayBuf
	goDown  func() // bound once: starts runDown when the parked upstream is readable

	upHalf notifiedHalf // the app -> upstream direction, when the app notifies
	half   halfClosed   // w's storage, when the relay has the limit
}

// startRelay starts the app -> upstream direction of a relay whose
// upstream, if it is a host TCP socket and set is not nil, parks in set
// while it is idle; onEnd gets the relay's result once both directions
// have ended and both sides are closed. The error names the direction
// that failed.
func startRelay(ctx context.Context, app, upstream net.Conn, halfClosedTimeout time.Duration, fl *flows.Flow,
	set *poll.Set, onEnd func(error)) *relayRun {
	r := new(relayRun)
	r.start(ctx, app, upstream, halfClosedTimeout, fl, set, onEnd)
	return r
}

// start is startRelay for a relay held in its caller's struct (a TCP
// flow's tcpFlow), which saves the flow an allocation.
func (r *relayRun) start(ctx context.Context, app, upstream net.Conn, halfClosedTimeout time.Duration, fl *flows.Flow,
	set *poll.Set, onEnd func(error)) {
	r.ctx, r.app, r.upstream, r.fl, r.onEnd = ctx, app, upstream, fl, onEnd
	r.left.Store(2)
	// Method values, one each, rather than closures per use: an idle
	// flow keeps them all.
	kill := r.abort
	r.stop = noStop
	if ctx.Done() != nil { // a context that can end
		r.stop = context.AfterFunc(ctx, kill)
	}
	if halfClosedTimeout > 0 {
		r.w = &r.half
		r.w.init(halfClosedTimeout, kill, r.peerClosed)
	}
	if h, ok := upstream.(*hostConn); ok && set != nil && h.raw && !h.datagram {
		r.goDown = func() { go r.runDown() }
		h.parkIn(set, r.goDown)
	}
	if n, ok := app.(ReadNotifier); ok {
		h := &r.upHalf
		*h = notifiedHalf{dst: upstream, src: app, notifier: n, dir: "app -> upstream", count: fl.Up(), r: r}
		h.resume = func() { go h.run() }
		// Armed from here: an app that has sent nothing yet (most,
		// a moment after its handshake) costs no goroutine until it
		// does.
		if !n.NotifyReadable(h.resume) {
			h.resume()
		}
	} else {
		go func() {
			var buf relayBuf
			_, err := copyHalf(upstream, app, "app -> upstream", fl.Up(), r, &buf)
			r.ended(&r.errUp, err)
		}()
	}
}

// noStop is the stop of a relay whose context never ends.
func noStop() bool { return true }

// abort resets both sides.
func (r *relayRun) abort() {
	abort(r.app)
	abort(r.upstream)
}

// peerClosed reports whether either side's peer has closed.
func (r *relayRun) peerClosed() bool { return peerClosed(r.app) || peerClosed(r.upstream) }

// runDown copies upstream -> app until the direction ends, or until the
// upstream has been idle long enough to park: then it returns, and the
// poll set calls goDown once the upstream is readable again.
func (r *relayRun) runDown() {
	parked, err := copyHalf(r.app, r.upstream, "upstream -> app", r.fl.Down(), r, &r.downBuf)
	if !parked {
		r.ended(&r.errDown, err)
	}
}

// ended records a direction's result in its slot; the last direction to
// end closes both sides and reports the relay's result.
func (r *relayRun) ended(slot *error, err error) {
	*slot = err
	if r.left.Add(-1) > 0 {
		return
	}
	r.app.Close()
	r.upstream.Close()
	r.stop()
	r.w.close()
	r.onEnd(r.result())
}

func (r *relayRun) result() error {
	if r.ctx.Err() != nil {
		return nil
	}
	if r.w.fired() {
		return errHalfClosed
	}
	return errors.Join(r.errUp, r.errDown)
}

// peerClosed reports whether c's peer has closed, where c can tell.
func peerClosed(c net.Conn) bool {
	p, ok := c.(PeerCloser)
	return ok && p.PeerClosed()
}

// copyHalf copies src to dst through buf until EOF, then half-closes dst,
// counting into count, for relay r. If src is a parking host socket that has been
// idle, it arms src's watch and returns parked instead: the watch's
// callback goes on.
func copyHalf(dst, src net.Conn, dir string, count *flows.Half, r *relayRun, buf *relayBuf) (parked bool, err error) {
	grown := false
	for {
		bp, n, err := readReady(src, buf)
		if err == errIdle {
			if src.(*hostConn).park() {
				return true, nil
			}
			continue // not armed: the next read tells why, or waits on
		}
		if !grown && n > 0 {
			// Writing into gVisor goes deep: grow once, here, only when
			// there is data (stackgrow.go).
			growStack()
			grown = true
		}
		if end, err := writeChunk(dst, src, dir, count, buf, r, bp, n, err); end {
			return false, err
		}
	}
}

// readReady waits until src has data, EOF or an error, then reads into a
// buffer from l, so that no buffer is held while waiting. It returns the
// buffer, or nil if it took none.
func readReady(src net.Conn, l bufferLender) (*[]byte, int, error) {
	if h, ok := src.(*hostConn); ok && h.raw {
		return h.readLent(l) // one system call where a peek and a read were two
	}
	if w, ok := src.(ReadWaiter); ok {
		if err := w.WaitReadable(); err != nil {
			return nil, 0, err
		}
	}
	bp := l.get()
	n, err := src.Read(*bp)
	return bp, n, err
}

// notifiedHalf is copyHalf for a source that notifies: a goroutine copies
// while data is ready and exits when there is none; the notification
// starts the next one. The last one records the direction's result in
// its relay.
type notifiedHalf struct {
	dst, src net.Conn
	notifier ReadNotifier
	dir      string
	count    *flows.Half
	r        *relayRun
	resume   func() // bound once: a closure made per wait would allocate
	buf      relayBuf
}

func (h *notifiedHalf) run() {
	for !h.notifier.NotifyReadable(h.resume) {
		// Found per chunk, not kept: an idle flow's relay state stays
		// small. With a host TCP socket to send to, no relay buffer.
		var end bool
		var err error
		if host, vs := vectorTarget(h.src, h.dst); host != nil {
			end, err = sendChunk(host, vs, h.src, h.dir, h.count, h.r)
		} else {
			end, err = copyChunk(h.dst, h.src, h.dir, h.count, &h.buf, h.r)
		}
		if end {
			h.r.ended(&h.r.errUp, err)
			return
		}
	}
}

// copyChunk does one read from src, which should be readable so that it
// does not hold the buffer while waiting, and passes the result to
// writeChunk.
func copyChunk(dst, src net.Conn, dir string, count *flows.Half, buf *relayBuf, r *relayRun) (bool, error) {
	bp := buf.get()
	n, err := src.Read(*bp)
	return writeChunk(dst, src, dir, count, buf, r, bp, n, err)
}

// writeChunk writes the n bytes read into bp (nil if the read took no
// buffer) to dst, gives bp back, and reports whether the direction has
// ended, and how: an orderly end (EOF) half-closes dst (unless it is the
// last of r's directions to end: the close that follows sends the FIN
// without a shutdown first, and starts no half-closed timer); on an error it
// resets both conns at once, which also ends the other direction (its
// reads then fail as closed), so a reset on one side becomes a reset on
// the other even while the other direction is idle. Bytes written, and
// which side failed, are counted into count.
func writeChunk(dst, src net.Conn, dir string, count *flows.Half, buf *relayBuf, r *relayRun, bp *[]byte, n int, rerr error) (bool, error) {
	w := r.w
	if n > 0 {
		w.writeStart()
		_, werr := dst.Write((*bp)[:n])
		w.writeEnd()
		if werr != nil {
			buf.put(bp, n)
			count.WriteFailed()
			return true, failHalf(dst, src, dir, fmt.Errorf("write: %w", werr))
		}
		count.Add(n)
	}
	if bp != nil {
		buf.put(bp, n)
	}
	return readEnded(dst, src, dir, count, r, rerr)
}

// readEnded reports whether a read's error rerr ends the direction, and
// how: see writeChunk.
func readEnded(dst, src net.Conn, dir string, count *flows.Half, r *relayRun, rerr error) (bool, error) {
	w := r.w
	switch {
	case rerr == nil:
		return false, nil
	case rerr == io.EOF:
		// With the other direction ended (it decremented left before
		// calling ended), ended's closes come next and nobody waits
		// for the half-close.
		if r.left.Load() > 1 {
			closeWrite(dst)
			w.sideClosed()
		}
		return true, nil
	case errors.Is(rerr, net.ErrClosed):
		return true, nil
	}
	count.ReadFailed()
	return true, failHalf(dst, src, dir, fmt.Errorf("read: %w", rerr))
}

// failHalf resets both conns and names the direction in err.
func failHalf(dst, src net.Conn, dir string, err error) error {
	abort(dst)
	abort(src)
	return fmt.Errorf("%s: %w", dir, err)
}

type closeWriter interface{ CloseWrite() error }

func closeWrite(c net.Conn) {
	if cw, ok := c.(closeWriter); ok {
		cw.CloseWrite()
		return
	}
	c.Close()
}

// abort ends c with a reset where it can.
func abort(c net.Conn) {
	switch c := c.(type) {
	case Resetter:
		c.Reset()
	case *net.TCPConn:
		c.SetLinger(0)
		c.Close()
	default:
		c.Close()
	}
}
