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

var reasonNames = [numReasons]string{"admitted", "closed", "max_flows", "fd_limit", "max_pending", "pending_per_dst", "pending_per_src"}

// String is the reason's name in counters and logs.
func (r Reason) String() string {
	if r < numReasons {
		return reasonNames[r]
	}
	return "unknown"
}

// Defaults for the zero values of Limits.
const (
	DefaultMaxFlows   = 32768
	DefaultMaxPending = 1024
	// DefaultDstShare and DefaultSrcShare divide MaxPending into the
	// default per-destination-prefix and per-source shares.
	DefaultDstShare = 8
	DefaultSrcShare = 4
	// DefaultReserve is how many flows beyond the caps stay for reserved
	// flows (DNS answered in-process).
	DefaultReserve = 64
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
	// FDFlows bounds the open flows too, as what the file descriptor
	// limit leaves room for (see FlowsForFDs); refusals for it count as
	// FDs. Zero means no such bound.
	FDFlows int
	// Reserve is how many flows past MaxFlows and FDFlows the reserved
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
	if l.MaxFlows < 0 || l.FDFlows < 0 || l.Reserve < 0 || l.MaxPending < 0 || l.PendingPerDst < 0 || l.PendingPerSrc < 0 {
		return l, ErrNegative
	}
	if l.MaxFlows == 0 {
		l.MaxFlows = DefaultMaxFlows
	}
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
	flows   int
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

// Ticket is one admitted flow's hold on the gate. Done releases its
// pending share (the dial and handshake are over), Release everything; both
// are idempotent and safe to call in any order.
type Ticket struct {
	g       *Gate
	src     netip.Addr
	dst     netip.Prefix
	pending bool // holds a pending share
	flow    bool // holds a flow
}

// flowRefusal is the reason a flow of class c is refused by the flow caps,
// or Admitted.
func (g *Gate) flowRefusal(c Class) Reason {
	extra := 0
	if c == Reserved {
		extra = g.lim.Reserve
	}
	if g.flows >= g.lim.MaxFlows+extra {
		return Flows
	}
	if g.lim.FDFlows > 0 && g.flows >= g.lim.FDFlows+extra {
		return FDs
	}
	return Admitted
}

// Dial admits a TCP flow from src to dst, which holds a flow and a pending
// share until its ticket says Done. It returns the ticket, or nil and the
// reason it was refused (also counted).
func (g *Gate) Dial(src, dst netip.Addr, c Class) (*Ticket, Reason) {
	src, dst = src.Unmap(), dst.Unmap()
	p := DstPrefixOf(dst)
	g.mu.Lock()
	r := Closed
	if !g.closed {
		r = g.flowRefusal(c)
	}
	switch {
	case r != Admitted:
	case g.pending >= g.lim.MaxPending:
		r = Pending
	case g.perDst[p] >= g.lim.PendingPerDst:
		r = Destination
	case g.perSrc[src] >= g.lim.PendingPerSrc:
		r = Source
	}
	if r != Admitted {
		g.mu.Unlock()
		g.refused[r].Add(1)
		return nil, r
	}
	g.flows++
	g.pending++
	g.perDst[p]++
	g.perSrc[src]++
	g.mu.Unlock()
	return &Ticket{g: g, src: src, dst: p, pending: true, flow: true}, Admitted
}

// Session admits a flow that dials nothing that can hang (a UDP session):
// it holds a flow only.
func (g *Gate) Session(c Class) (*Ticket, Reason) {
	g.mu.Lock()
	r := Closed
	if !g.closed {
		r = g.flowRefusal(c)
	}
	if r != Admitted {
		g.mu.Unlock()
		g.refused[r].Add(1)
		return nil, r
	}
	g.flows++
	g.mu.Unlock()
	return &Ticket{g: g, flow: true}, Admitted
}

// Count counts a refusal for r that was decided outside the gate (a dial
// that failed for lack of file descriptors counts as FDs).
func (g *Gate) Count(r Reason) {
	if r > Admitted && r < numReasons {
		g.refused[r].Add(1)
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
	if t.flow {
		t.flow = false
		g.flows--
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
	Flows, Pending int
}

// Usage returns the flows and pending dials held now.
func (g *Gate) Usage() Usage {
	g.mu.Lock()
	defer g.mu.Unlock()
	return Usage{Flows: g.flows, Pending: g.pending}
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
// at one descriptor per flow (the host socket), never below 1.
func FlowsForFDs(limit, open, reserve int) int {
	return max(1, limit-open-reserve)
}
