package stack

import (
	"sync"
	"time"
)

// deadlines are an app connection's read and write deadlines. The relay
// never sets one, so a connection gets its deadlines only on its first
// SetDeadline, and they take one timer, made when a deadline in the
// future is first set, for both directions: gonet's connection made two
// channels per connection up front and a timer per direction, bytes that
// every idle flow kept for nothing.
//
// A change and the timer only wake the connection's waiters (wake); each
// then checks its own deadline again.
type deadlines struct {
	wake func() // wakes whoever waits on the connection; must not block

	mu          sync.Mutex
	read, write time.Time   // zero: none
	timer       *time.Timer // fires at the earlier deadline still ahead
	stopped     bool
}

// set sets the read deadline, the write deadline or both to t (zero: none).
func (d *deadlines) set(read, write bool, t time.Time) {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	if read {
		d.read = t
	}
	if write {
		d.write = t
	}
	d.armLocked()
	d.mu.Unlock()
	d.wake() // waiters check the new deadlines
}

// passed reports whether the write (or read) deadline has passed.
func (d *deadlines) passed(write bool) bool {
	d.mu.Lock()
	t := d.read
	if write {
		t = d.write
	}
	d.mu.Unlock()
	return !t.IsZero() && !time.Now().Before(t)
}

// stop stops the timer for good: the connection is closed.
func (d *deadlines) stop() {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.stopped = true
	if d.timer != nil {
		d.timer.Stop()
	}
}

// fire is the timer's function: the earlier deadline has passed.
func (d *deadlines) fire() {
	d.mu.Lock()
	if d.stopped {
		d.mu.Unlock()
		return
	}
	d.armLocked() // for the other deadline, if still ahead
	d.mu.Unlock()
	d.wake()
}

// armLocked sets the timer to the earlier of the deadlines still ahead,
// or stops it if there is none. A timer that fires late or twice only
// makes the waiters check again.
func (d *deadlines) armLocked() {
	now := time.Now()
	var next time.Time
	for _, t := range [2]time.Time{d.read, d.write} {
		if t.After(now) && (next.IsZero() || t.Before(next)) {
			next = t
		}
	}
	switch {
	case next.IsZero():
		if d.timer != nil {
			d.timer.Stop()
		}
	case d.timer == nil:
		d.timer = time.AfterFunc(next.Sub(now), d.fire)
	default:
		d.timer.Reset(next.Sub(now))
	}
}
