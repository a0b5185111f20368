// Package admission decides, before anything is dialed, whether a new flow
// may start: it owns tungate's caps on flows (TCP connections and UDP
// sessions together), on dials in flight ("pending": from the app's SYN
// until the app's handshake is complete), and the fair shares of the
// pending dials that one destination prefix (/24 for IPv4, /64 for IPv6)
// and one app source address may hold, so that one app's flood to one
// unreachable place cannot starve every other flow. A refused flow is to
// be answered at once (a reset, ICMP port unreachable) by the caller; this
// package only counts, by Reason.
//
// The flows are one budget: a TCP connection and a UDP session (one app
// source port) each hold one flow, and every host socket a flow holds (one
// per TCP connection, one per UDP mapping) one file descriptor of the
// FDFlows share. When the budget is full, a Gate asks an evictor (the UDP
// table: its least recently used idle session) to make room before it
// refuses, so that soft UDP state, which would expire anyway, yields to new
// TCP connections and UDP sessions, and a TCP connection is never evicted.
//
// It is pure logic: no sockets, no gVisor, no goroutines.
package admission

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
)

// Reason says why a flow was refused.
type Reason uint8

// The reasons, in the order they are checked.
const (
	// Admitted is not a refusal.
	Admitted Reason = iota
	// Closed: the gate is closed (tungate is stopping).
	Closed
	// Flows: Limits.MaxFlows flows are open.
	Flows
	// UDPSessions: Limits.MaxUDPSessions UDP sessions are open.
	UDPSessions
	// FDs: the flows that the file descriptor limit leaves room for
	// (Limits.FDFlows) are open.
	FDs
	// Pending: Limits.MaxPending dials are in flight.
	Pending
	// Destination: the destination's prefix holds its share of the
	// pending dials (Limits.PendingPerDst).
	Destination
	// Source: the app source address holds its share of the pending dials
	// (Limits.PendingPerSrc).
	Source
	numReasons
)

// NumReasons is the number of Reasons, Admitted included: an array indexed
// by Reason has this length.
const NumReasons = int(numReasons)

var reasonNames = [numReasons]string{"admitted", "closed", "max_flows", "max_udp_sessions", "fd_limit", "max_pending", "pending_per_dst", "pending_per_src"}

// String is the reason's name in counters and logs.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Defaults for the zero values of Limits.
const (
	DefaultMaxFlows       = 32768
	DefaultMaxUDPSessions = 8192
	DefaultMaxPending     = 1024
	// DefaultDstShare and DefaultSrcShare divide MaxPending into the
	// default per-destination-prefix and per-source shares.
	DefaultDstShare = 8
	DefaultSrcShare = 4
	// DefaultReserve is how many flows beyond the caps stay for reserved
	// flows (DNS answered in-process).
	DefaultReserve = 64
	// maxEvictions bounds the evictions one admission asks for (a UDP
	// session may hold no socket, so freeing a descriptor can take more
	// than one).
	maxEvictions = 8
)

// Prefix lengths that group destinations for their share.
const (
	DstPrefix4 = 24
	DstPrefix6 = 64
)

// Limits are a Gate's caps. Zero values take the defaults; a negative
// value is an error.
type Limits struct {
	// MaxFlows bounds the open flows: TCP connections (pending or
	// established) and UDP sessions together. Zero means
	// DefaultMaxFlows.
	MaxFlows int
	// MaxUDPSessions bounds the UDP sessions among the flows. Zero means
	// DefaultMaxUDPSessions; it is never above MaxFlows.
	MaxUDPSessions int
	// FDFlows bounds the host sockets of the open flows (one per TCP
	// connection, one per UDP mapping), as what the file descriptor limit
	// leaves room for (see FlowsForFDs); refusals for it count as FDs.
	// Zero means no such bound.
	FDFlows int
	// Reserve is how many flows past MaxFlows, MaxUDPSessions and
	// FDFlows the reserved
	// flows (DNS, which must keep working when the caps bite) may use.
	// Zero means DefaultReserve.
	Reserve int
	// MaxPending bounds the TCP dials in flight, each held from the app's
	// SYN until the app's handshake completes or the flow is refused.
	// Zero means DefaultMaxPending.
	MaxPending int
	// PendingPerDst bounds the pending dials to one destination prefix
	// (DstPrefix4, DstPrefix6). Zero means MaxPending/DefaultDstShare
	// (at least 1).
	PendingPerDst int
	// PendingPerSrc bounds the pending dials from one app source address.
	// Zero means MaxPending/DefaultSrcShare (at least 1).
	PendingPerSrc int
}

// ErrNegative is returned by New for a negative limit.
var ErrNegative = errors.New("admission: a limit is negative")

// WithDefaults returns l with every zero field set to its default.
func (l Limits) WithDefaults() (Limits, error) {
	if l.MaxFlows < 0 || l.MaxUDPSessions < 0 || l.FDFlows < 0 || l.Reserve < 0 || l.MaxPending < 0 || l.PendingPerDst < 0 || l.PendingPerSrc < 0 {
		return l, ErrNegative
	}
	if l.MaxFlows == 0 {
		l.MaxFlows = DefaultMaxFlows
	}
	if l.MaxUDPSessions == 0 {
		l.MaxUDPSessions = DefaultMaxUDPSessions
	}
	l.MaxUDPSessions = min(l.MaxUDPSessions, l.MaxFlows)
	if l.Reserve == 0 {
		l.Reserve = DefaultReserve
	}
	if l.MaxPending == 0 {
		l.MaxPending = DefaultMaxPending
	}
	if l.PendingPerDst == 0 {
		l.PendingPerDst = max(1, l.MaxPending/DefaultDstShare)
	}
	if l.PendingPerSrc == 0 {
		l.PendingPerSrc = max(1, l.MaxPending/DefaultSrcShare)
	}
	return l, nil
}

// Gate admits flows within Limits. Its methods are safe for concurrent
// use.
type Gate struct {
	lim     Limits
	refused [numReasons]atomic.Uint64

	mu      sync.Mutex
	closed  bool
	evict   func() bool
	flows   int // TCP connections and UDP sessions
	udp     int // UDP sessions
	fds     int // host sockets of the flows
	pending int
	perDst  map[netip.Prefix]int
	perSrc  map[netip.Addr]int
}

// New returns a Gate with the limits l (zero fields take defaults).
func New(l Limits) (*Gate, error) {
	l, err := l.WithDefaults()
	if err != nil {
		return nil, err
	}
	return &Gate{lim: l, perDst: make(map[netip.Prefix]int), perSrc: make(map[netip.Addr]int)}, nil
}

// Limits returns the gate's limits, defaults filled in.
func (g *Gate) Limits() Limits { return g.lim }

// Class says which caps a flow is held to.
type Class uint8

const (
	// Ordinary flows are held to every cap.
	Ordinary Class = iota
	// Reserved flows (DNS answered in-process) may also use
	// Limits.Reserve flows beyond MaxFlows and FDFlows, so that names
	// still resolve while the caps bite.
	Reserved
)

// SetEvictor names the function that Dial asks to make room when the
// flows or their descriptors are at a cap: it ends one idle flow (the UDP
// table's least recently used idle session) and reports whether it did.
// It is called without the gate's lock; it may release tickets but must
// not ask the gate for one.
func (g *Gate) SetEvictor(evict func() bool) {
	g.mu.Lock()
	g.evict = evict
	g.mu.Unlock()
}

// extra is how far past MaxFlows, MaxUDPSessions and FDFlows a flow of
// class c may go.
func (g *Gate) extra(c Class) int {
	if c == Reserved {
		return g.lim.Reserve
	}
	return 0
}

// flowCheckLocked is the refusal of any new flow allowed extra flows past
// MaxFlows: Closed, Flows, or Admitted.
func (g *Gate) flowCheckLocked(extra int) Reason {
	switch {
	case g.closed:
		return Closed
	case g.flows >= g.lim.MaxFlows+extra:
		return Flows
	}
	return Admitted
}

// evictable reports whether an eviction can lift a refusal for r.
func evictable(r Reason) bool { return r == Flows || r == UDPSessions || r == FDs }

// admitLocked runs check under the gate's lock and, while it refuses for a
// reason an eviction can lift, asks evict (without the lock) to make room
// and checks again, up to maxEvictions times. It returns with the lock
// held and check's last answer.
func (g *Gate) admitLocked(check func() Reason, evict func() bool) Reason {
	g.mu.Lock()
	r := check()
	for i := 0; i < maxEvictions && evict != nil && evictable(r); i++ {
		g.mu.Unlock()
		freed := evict()
		g.mu.Lock()
		if !freed {
			break
		}
		r = check()
	}
	return r
}

// refuseUnlock counts a refusal for r, unlocks and returns r.
func (g *Gate) refuseUnlock(r Reason) (*Ticket, Reason) {
	g.mu.Unlock()
	g.refused[r].Add(1)
	return nil, r
}

// Dial admits a TCP flow from src to dst, which holds a flow, a host
// socket and a pending share until its ticket says Done. At the flow or
// descriptor cap it first asks the evictor (SetEvictor) for room. It
// returns the ticket, or nil and the reason it was refused (also counted).
func (g *Gate) Dial(src, dst netip.Addr, c Class) (*Ticket, Reason) {
	src, dst = src.Unmap(), dst.Unmap()
	p := DstPrefixOf(dst)
	extra := g.extra(c)
	check := func() Reason {
		switch r := g.flowCheckLocked(extra); {
		case r != Admitted:
			return r
		case g.lim.FDFlows > 0 && g.fds >= g.lim.FDFlows+extra:
			return FDs
		case g.pending >= g.lim.MaxPending:
			return Pending
		case g.perDst[p] >= g.lim.PendingPerDst:
			return Destination
		case g.perSrc[src] >= g.lim.PendingPerSrc:
			return Source
		}
		return Admitted
	}
	g.mu.Lock()
	evict := g.evict
	g.mu.Unlock()
	if r := g.admitLocked(check, evict); r != Admitted {
		return g.refuseUnlock(r)
	}
	g.flows++
	g.fds++
	g.pending++
	g.perDst[p]++
	g.perSrc[src]++
	g.mu.Unlock()
	return &Ticket{g: g, src: src, dst: p, pending: true, flow: true, sockets: 1}, Admitted
}

// Session admits a UDP session: a flow that dials nothing that can hang.
// It holds a flow and no socket yet (AddSocket takes each). At the flow or
// UDP session cap it first asks evict, if not nil, for room: evict is the
// caller's (the UDP table ends its least recently used idle session) and
// runs without the gate's lock, so the caller may hold its own.
func (g *Gate) Session(c Class, evict func() bool) (*Ticket, Reason) {
	extra := g.extra(c)
	check := func() Reason {
		switch r := g.flowCheckLocked(extra); {
		case r != Admitted:
			return r
		case g.udp >= g.lim.MaxUDPSessions+extra:
			return UDPSessions
		}
		return Admitted
	}
	if r := g.admitLocked(check, evict); r != Admitted {
		return g.refuseUnlock(r)
	}
	g.flows++
	g.udp++
	g.mu.Unlock()
	return &Ticket{g: g, flow: true, udp: true}, Admitted
}

// Count counts a refusal for r that was decided outside the gate (a dial
// that failed for lack of file descriptors counts as FDs).
func (g *Gate) Count(r Reason) {
	if r > Admitted && r < numReasons {
		g.refused[r].Add(1)
	}
}

func decrement[K comparable](m map[K]int, k K) {
	if m[k] <= 1 {
		delete(m, k) // the maps hold only the keys in use
		return
	}
	m[k]--
}

// Close refuses every flow from now on (as Closed). Tickets already out
// still release normally.
func (g *Gate) Close() {
	g.mu.Lock()
	g.closed = true
	g.mu.Unlock()
}

// Usage is a snapshot of what a Gate holds.
type Usage struct {
	// Flows are the TCP connections and UDP sessions, UDPSessions the
	// latter, Sockets their host sockets, Pending the dials in flight.
	Flows, UDPSessions, Sockets, Pending int
}

// Usage returns what the gate's tickets hold now.
func (g *Gate) Usage() Usage {
	g.mu.Lock()
	defer g.mu.Unlock()
	return Usage{Flows: g.flows, UDPSessions: g.udp, Sockets: g.fds, Pending: g.pending}
}

// Refused returns how many flows were refused for each reason, by the
// reason's name; reasons never seen are left out.
func (g *Gate) Refused() map[string]uint64 {
	m := make(map[string]uint64)
	for r := Closed; r < numReasons; r++ {
		if n := g.refused[r].Load(); n > 0 {
			m[r.String()] = n
		}
	}
	return m
}

// DstPrefixOf is the prefix whose share dst's dials count against: its
// /24 (IPv4, also IPv4-mapped IPv6) or /64 (IPv6).
func DstPrefixOf(dst netip.Addr) netip.Prefix {
	dst = dst.Unmap()
	bits := DstPrefix6
	if dst.Is4() {
		bits = DstPrefix4
	}
	p, err := dst.Prefix(bits)
	if err != nil {
		return netip.Prefix{} // the invalid address: one shared group
	}
	return p
}

// FlowsForFDs is how many flows a file descriptor limit leaves room for:
// limit minus the descriptors open now (open), minus reserve kept for
// everything that is not a flow (DNS queries, echo sockets, listeners),
// at one descriptor per host socket of a flow (a TCP connection's, each
// of a UDP session's mappings), never below 1.
func FlowsForFDs(limit, open, reserve int) int {
	return max(1, limit-open-reserve)
}
