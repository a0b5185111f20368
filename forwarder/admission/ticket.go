package admission

import "net/netip"

// Ticket is one admitted flow's hold on the gate: a flow, its host
// sockets, and while it dials a pending share. Done releases the pending
// share (the dial and handshake are over), Release everything; both are
// idempotent and safe to call in any order. Its methods are safe for
// concurrent use (they run under the gate's lock).
type Ticket struct {
	g       *Gate
	src     netip.Addr
	dst     netip.Prefix
	pending bool // holds a pending share
	flow    bool // holds a flow
	udp     bool // the flow is a UDP session
	sockets int  // host sockets held
}

// AddSocket takes one more host socket (a UDP mapping) for t's flow from
// the descriptors that FDFlows leaves, asking evict as Session does if
// there are none left. It returns Admitted, or the reason it refused
// (counted): FDs, or Closed once the gate is closed or t released.
func (t *Ticket) AddSocket(c Class, evict func() bool) Reason {
	g := t.g
	extra := g.extra(c)
	check := func() Reason {
		switch {
		case g.closed || !t.flow:
			return Closed
		case g.lim.FDFlows > 0 && g.fds >= g.lim.FDFlows+extra:
			return FDs
		}
		return Admitted
	}
	if r := g.admitLocked(check, evict); r != Admitted {
		g.refuseUnlock(r)
		return r
	}
	g.fds++
	t.sockets++
	g.mu.Unlock()
	return Admitted
}

// DropSocket gives back one host socket that AddSocket took (the mapping
// ended before its flow did).
func (t *Ticket) DropSocket() {
	g := t.g
	g.mu.Lock()
	defer g.mu.Unlock()
	if t.sockets > 0 {
		t.sockets--
		g.fds--
	}
}

// Done releases t's pending share: its dial and handshake are over and it
// is an open flow now.
func (t *Ticket) Done() {
	g := t.g
	g.mu.Lock()
	defer g.mu.Unlock()
	t.donePendingLocked()
}

func (t *Ticket) donePendingLocked() {
	if !t.pending {
		return
	}
	t.pending = false
	g := t.g
	g.pending--
	decrement(g.perDst, t.dst)
	decrement(g.perSrc, t.src)
}

// Release releases everything t holds.
func (t *Ticket) Release() {
	g := t.g
	g.mu.Lock()
	defer g.mu.Unlock()
	t.donePendingLocked()
	g.fds -= t.sockets
	t.sockets = 0
	if t.flow {
		t.flow = false
		g.flows--
		if t.udp {
			g.udp--
		}
	}
}
