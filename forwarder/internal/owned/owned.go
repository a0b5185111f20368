// Package owned runs goroutines for an owner that stops them and waits for
// them: the forwarder's flows, the resolver's conversations, the
// publisher's listeners.
package owned

import "sync"

// Group counts goroutines. Its zero value is ready to use.
type Group struct {
	mu     sync.Mutex
	closed bool
	wg     sync.WaitGroup
}

// Go runs fn on a new goroutine that Wait joins. Once Close has been
// called it does not run fn and returns false, so nothing starts after the
// owner began to stop.
func (g *Group) Go(fn func()) bool {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return false
	}
	g.wg.Add(1)
	go func() {
		defer g.wg.Done()
		fn()
	}()
	return true
}

// Hold counts one task that Wait joins but that holds no goroutine while
// it waits (a parked flow, whose goroutines come and go), until release
// is called once. Once Close has been called it counts nothing and
// returns false.
func (g *Group) Hold() (release func(), ok bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed {
		return nil, false
	}
	g.wg.Add(1)
	return g.wg.Done, true
}

// Close refuses new goroutines. It does not stop running ones: the owner
// does that (cancelling their context, closing their sockets), then Waits.
func (g *Group) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// Wait returns once every goroutine started by Go has returned.
func (g *Group) Wait() { g.wg.Wait() }
