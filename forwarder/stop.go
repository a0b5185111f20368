package forwarder

import (
	"net"
	"runtime"
	"sync"
)

// resetBatch is how many connections a stop resets before it yields, so
// that the stack's reader gets to answer what the apps send back (an app
// whose receive window is full answers an inexact reset with an ACK) well
// before the TUN device's queue toward tungate (txqueuelen, 500 by
// default) could overflow.
const resetBatch = 256

// liveTCP is the set of relayed TCP flows. Close resets them from here,
// through their connections and not through their relay goroutines: an
// idle flow may have no goroutine running, and 10,000 goroutines woken at
// once to reset one flow each cost more (stack growth, scheduling) than
// the resets themselves.
//
// The contract it relies on: resetting or closing a flow's two
// connections from outside ends its relay, which then calls remove.
type liveTCP struct {
	mu     sync.Mutex
	head   *liveFlow // a list rather than a map: no rehashing, no per-flow map cell
	closed bool
}

// liveFlow is one entry of liveTCP.
type liveFlow struct {
	app, host  net.Conn
	prev, next *liveFlow
}

// add enters f, whose app and host are set (the entry lives in the
// flow's own struct). Once resetAll has begun it enters nothing and
// returns false: the caller resets the flow itself.
func (l *liveTCP) add(f *liveFlow) bool {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return false
	}
	f.next = l.head
	if l.head != nil {
		l.head.prev = f
	}
	l.head = f
	return true
}

// remove takes f (which may be nil) out of the set.
func (l *liveTCP) remove(f *liveFlow) {
	if f == nil {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.closed {
		return // resetAll owns the list now
	}
	if f.prev != nil {
		f.prev.next = f.next
	} else {
		l.head = f.next
	}
	if f.next != nil {
		f.next.prev = f.prev
	}
	f.prev, f.next = nil, nil
}

// resetAll closes the set and resets every flow in it and returns how
// many. Every app connection is reset first, since apps are what wait on
// a stop, then every upstream one. The app resets are split over one
// goroutine per processor (GOMAXPROCS), each yielding every resetBatch
// resets: a stop is CPU-bound (each reset is a write to the TUN device,
// within which the app's kernel takes it in), so it should use every
// core. On the loaded test machine one goroutine and two measured the
// same within the noise.
func (l *liveTCP) resetAll() int {
	l.mu.Lock()
	l.closed = true
	var all []*liveFlow
	for f := l.head; f != nil; f = f.next {
		all = append(all, f)
	}
	l.head = nil
	l.mu.Unlock()
	workers := min(runtime.GOMAXPROCS(0), max(1, len(all)/resetBatch))
	each := func(end func(*liveFlow)) {
		var wg sync.WaitGroup
		for w := range workers {
			part := all[w*len(all)/workers : (w+1)*len(all)/workers]
			wg.Go(func() {
				for i, f := range part {
					end(f)
					if i%resetBatch == resetBatch-1 {
						runtime.Gosched()
					}
				}
			})
		}
		wg.Wait()
	}
	each(func(f *liveFlow) { abort(f.app) })
	each(func(f *liveFlow) { abort(f.host) })
	return len(all)
}
