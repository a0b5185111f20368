package udpnat

import (
	"fmt"
	"net/netip"
	"time"
)

// DefaultEvictIdle is how long a session must have been silent before it
// may be evicted to make room (Options.EvictIdle).
const DefaultEvictIdle = time.Second

// errNoSocket is what a destination's meter hears when the budget had no
// descriptor left for its socket.
var errNoSocket = fmt.Errorf("%w: no file descriptor left in the flow budget", ErrRefused)

// Budget is the gateway's budget of flows, which the table's sessions
// share with other flows (TCP connections): a session holds one Slot from
// its first datagram until it ends, and the Slot one descriptor for each
// host socket (mapping) the session opens.
//
// When the budget is full it calls evict, which ends the table's least
// recently used idle session (silent for Options.EvictIdle at least) and
// reports whether it did, and tries again; with nothing to evict it
// refuses, and the app gets ICMP port unreachable at once. Counting and
// logging refusals is the Budget's. Its methods are called under the
// table's lock, and so is evict: they must not block or call the table.
type Budget interface {
	// Take takes a slot for a new session of app, whose first datagram
	// goes to dst; nil refuses the session.
	Take(app, dst netip.AddrPort, evict func() bool) Slot
}

// Slot is one session's hold on a Budget.
type Slot interface {
	// AddSocket takes a descriptor for one more host socket of the
	// session, which first goes to dst; false refuses it.
	AddSocket(dst netip.AddrPort, evict func() bool) bool
	// DropSocket gives one back: the mapping ended before the session.
	DropSocket()
	// Release gives back the session and every descriptor it holds.
	Release()
}

// sessionCap is the Budget of a table given none: Options.MaxSessions
// sessions, and no count of descriptors. Guarded by the table's lock.
type sessionCap struct{ max, n int }

func (c *sessionCap) Take(_, _ netip.AddrPort, evict func() bool) Slot {
	for c.n >= c.max {
		if !evict() {
			return nil
		}
	}
	c.n++
	return capSlot{c}
}

// capSlot is a session's hold on a sessionCap.
type capSlot struct{ c *sessionCap }

func (capSlot) AddSocket(netip.AddrPort, func() bool) bool { return true }
func (capSlot) DropSocket()                                {}
func (s capSlot) Release()                                 { s.c.n-- }

// newSessionLocked adds a session for app, whose first datagram goes to
// dst, if the budget has room for it (evicting idle sessions, which the
// caller releases after unlocking: takeEvictedLocked); nil if not.
func (t *Table) newSessionLocked(app, dst netip.AddrPort, now time.Time) *session {
	slot := t.budget.Take(app, dst, t.evictForNew)
	if slot == nil {
		t.refusedN.Add(1)
		return nil
	}
	s := &session{app: app, last: now, slot: slot, dests: make(map[netip.AddrPort]*dest, 1)}
	t.sessions[app] = s
	t.lru.pushFront(s)
	t.opened.Add(1)
	return s
}

// takeSocketLocked takes a descriptor from the budget for a new mapping of
// s toward dst, evicting idle sessions other than s to make room if it
// must. Refused, it tells meter (if any) as a failed opening and returns
// false; the caller tells meter it is forgotten after unlocking.
func (t *Table) takeSocketLocked(s *session, dst netip.AddrPort, meter Meter) bool {
	if s.slot.AddSocket(dst, func() bool { return t.evictIdleLocked(s) }) {
		return true
	}
	t.refusedN.Add(1)
	if meter != nil {
		meter.Opened(0, errNoSocket)
	}
	return false
}

// evictIdleLocked ends the least recently used session other than keep if
// it has been silent for Options.EvictIdle, to make room in the budget; it
// reports whether it did. The caller releases the session after unlocking
// (takeEvictedLocked).
func (t *Table) evictIdleLocked(keep *session) bool {
	s := t.lru.back
	if s != nil && s == keep {
		s = s.next
	}
	now := t.opts.Now()
	if s == nil || now.Sub(s.last) < t.opts.EvictIdle {
		return false
	}
	t.removeLocked(s)
	t.evictq = append(t.evictq, s)
	t.evicted.Add(1)
	if now.Sub(t.lastCapLog) >= time.Second {
		t.lastCapLog = now
		t.log.Warn("flow budget full: closing the least recently used idle UDP sessions to make room; raise --max-flows or --max-udp-sessions if apps need more",
			"idle", now.Sub(s.last).Round(time.Millisecond), "evicted_total", t.evicted.Load())
	}
	return true
}

// takeEvictedLocked returns the sessions evicted since the last call, for
// the caller to release after unlocking.
func (t *Table) takeEvictedLocked() []*session {
	ev := t.evictq
	t.evictq = nil
	return ev
}

// releaseAll releases removed sessions; call it unlocked.
func (t *Table) releaseAll(ss []*session) {
	for _, s := range ss {
		t.release(s, false)
	}
}

// EvictIdle ends the least recently used session if it has been silent
// for Options.EvictIdle, so that another flow (a TCP connection) may take
// its place in the budget, and reports whether it did. It must not be
// called under the budget's own lock.
func (t *Table) EvictIdle() bool {
	t.mu.Lock()
	ok := !t.closed && t.evictIdleLocked(nil)
	ev := t.takeEvictedLocked()
	t.mu.Unlock()
	t.releaseAll(ev)
	return ok
}
