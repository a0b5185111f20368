package forwarder

import (
	"sync"
	"sync/atomic"
	"time"
)

// PeerCloser is implemented by connections that can tell whether their
// peer has closed its sending side (its FIN has arrived), even while
// data before the FIN is still unread.
type PeerCloser interface {
	PeerClosed() bool
}

// halfClosed ends a half-dead flow: once one side has closed (a direction
// read EOF, or a direction's write has been stuck while its source's FIN
// has arrived) and no byte has moved either way for timeout, it calls
// kill, which resets both sides. This is the kernel's FIN_WAIT2 and orphan
// limit, and conntrack's CLOSE_WAIT timeout, for a gateway that holds both
// ends.
//
// It costs a flow nothing while no side has closed and no write is in
// progress: the timer is armed only then, and disarms itself.
type halfClosed struct {
	timeout time.Duration
	kill    func()
	// peerClosed reports whether the source of a stuck write has closed.
	peerClosed func() bool
	now        func() time.Time

	lastMoved atomic.Int64 // UnixNano of the last progress
	ended     atomic.Bool  // a direction read EOF
	writing   atomic.Int32 // writes in progress
	armed     atomic.Bool
	killed    atomic.Bool

	mu    sync.Mutex // guards timer creation and stop
	timer *time.Timer
	stop  bool
}

func newHalfClosed(timeout time.Duration, kill func(), peerClosed func() bool) *halfClosed {
	h := new(halfClosed)
	h.init(timeout, kill, peerClosed)
	return h
}

// init sets up h in place, for a relay that holds it in its own struct.
func (h *halfClosed) init(timeout time.Duration, kill func(), peerClosed func() bool) {
	h.timeout, h.kill, h.peerClosed, h.now = timeout, kill, peerClosed, time.Now
	h.lastMoved.Store(h.now().UnixNano())
}

// moved records that bytes moved.
func (h *halfClosed) moved() { h.lastMoved.Store(h.now().UnixNano()) }

// writeStart and writeEnd bracket a write that may block. Like
// sideClosed, they do nothing on a nil *halfClosed (a relay without the
// limit).
func (h *halfClosed) writeStart() {
	if h == nil {
		return
	}
	h.writing.Add(1)
	h.arm()
}

func (h *halfClosed) writeEnd() {
	if h == nil {
		return
	}
	h.writing.Add(-1)
	h.moved()
}

// writeNone ends a write bracket in which nothing was written: no
// progress to record.
func (h *halfClosed) writeNone() {
	if h != nil {
		h.writing.Add(-1)
	}
}

// sideClosed records that a direction read EOF.
func (h *halfClosed) sideClosed() {
	if h == nil {
		return
	}
	h.moved() // the FIN itself is progress: the time counts from it
	h.ended.Store(true)
	h.arm()
}

// arm starts the timer unless it runs.
func (h *halfClosed) arm() {
	if h.armed.Load() || !h.armed.CompareAndSwap(false, true) {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.stop {
		return
	}
	if h.timer == nil {
		h.timer = time.AfterFunc(h.timeout, h.check)
		return
	}
	h.timer.Reset(h.timeout)
}

// check runs when the timer fires.
func (h *halfClosed) check() {
	idle := h.now().Sub(time.Unix(0, h.lastMoved.Load()))
	relevant := h.ended.Load() || h.writing.Load() > 0
	switch {
	case !relevant:
		h.armed.Store(false)
		// A write or an EOF may have come between the load and the
		// store, finding the timer armed: look again.
		if h.ended.Load() || h.writing.Load() > 0 {
			h.arm()
		}
		return
	case idle < h.timeout:
		h.reset(h.timeout - idle)
		return
	case h.ended.Load() || h.peerClosed():
		if h.killed.CompareAndSwap(false, true) {
			h.kill()
		}
		return
	}
	// A write is stuck but its source is still open (a paused reader):
	// that is back-pressure, not a dead flow. Look again later, in case
	// the source closes.
	h.reset(h.timeout)
}

func (h *halfClosed) reset(d time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if !h.stop {
		h.timer.Reset(d)
	}
}

// close stops the timer for good.
func (h *halfClosed) close() {
	if h == nil {
		return
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	h.stop = true
	if h.timer != nil {
		h.timer.Stop()
	}
}

// fired reports whether the flow was ended as half-dead.
func (h *halfClosed) fired() bool { return h != nil && h.killed.Load() }
