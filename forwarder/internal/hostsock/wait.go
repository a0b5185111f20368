package hostsock

import (
	"sync"
	"sync/atomic"
	"time"
)

// waiter is one direction of a socket: the goroutine that reads (or
// writes) waits here after a system call said EAGAIN, until the set
// reports an event, the deadline passes or the socket closes.
//
// ready holds at most one token: an event that comes while no one
// waits, or while the system call runs, leaves it there, so the next
// wait returns at once and the call is tried again. A wake-up is never
// lost; a spare one costs one more EAGAIN.
type waiter struct {
	ready    chan struct{}
	deadline atomic.Int64 // UnixNano; 0: none

	mu    sync.Mutex // guards timer
	timer *time.Timer
}

func (w *waiter) init() { w.ready = make(chan struct{}, 1) }

// wake leaves a token for the waiter, if none is there.
func (w *waiter) wake() {
	select {
	case w.ready <- struct{}{}:
	default:
	}
}

// expired reports whether the deadline has passed.
func (w *waiter) expired() bool {
	d := w.deadline.Load()
	return d != 0 && time.Now().UnixNano() >= d
}

// setDeadline sets the deadline (zero: none) and wakes the waiter when
// it passes; a deadline in the past wakes it now.
func (w *waiter) setDeadline(t time.Time) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if t.IsZero() {
		w.deadline.Store(0)
		if w.timer != nil {
			w.timer.Stop()
		}
		return
	}
	w.deadline.Store(t.UnixNano())
	d := time.Until(t)
	if d <= 0 {
		w.wake()
		return
	}
	if w.timer == nil {
		// Made on the first deadline only: most sockets never get one
		// for writes, and a timer is the biggest part of a waiter.
		w.timer = time.AfterFunc(d, w.wake)
		return
	}
	w.timer.Reset(d)
}

// stop releases the timer.
func (w *waiter) stop() {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.timer != nil {
		w.timer.Stop()
	}
}
