package admission

import (
	"sync"
	"time"
)

// Throttle lets an event through at most once per interval, so that a
// flood of refusals becomes one log line a second that says how many it
// stands for. Its zero value lets one event through per second.
type Throttle struct {
	// Every is the interval; zero means one second.
	Every time.Duration

	mu     sync.Mutex
	last   time.Time
	passed bool
	held   uint64
}

// Allow reports whether an event at now may be logged, and if so how many
// events it held back since the last one it allowed.
func (t *Throttle) Allow(now time.Time) (ok bool, held uint64) {
	every := t.Every
	if every <= 0 {
		every = time.Second
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.passed && now.Sub(t.last) < every {
		t.held++
		return false, 0
	}
	t.passed, t.last = true, now
	held, t.held = t.held, 0
	return true, held
}
