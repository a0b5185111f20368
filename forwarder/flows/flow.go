// Package flows keeps a gateway's live flow table and its flow totals.
//
// Every TCP connection, UDP session and ICMP echo conversation the
// forwarder carries, and every connection into a published port, is a Flow
// in a Table from the moment it is seen until it ends: protocol, app source,
// destination, the name behind a fake DNS address, the route it takes, its
// state, and byte (and, for UDP, datagram) counters that the relay updates
// with single atomic adds, so counting costs no lock and no allocation on
// the data path. A flow can be ended from outside (Table.Kill). When a flow
// ends, its counts join the Table's totals and a Record of it goes to the
// Table's sink (a Log writes them as JSON lines).
//
// The Table also counts what metrics report: flows opened by protocol and
// outcome, and upstream dial latency by route. Readers (a Prometheus
// collector, the control API) take snapshots; nothing is pushed.
package flows

import (
	"net/netip"
	"sync"
	"sync/atomic"
	"time"
)

// Protocol is a flow's transport protocol.
type Protocol uint8

// Protocols of flows.
const (
	TCP Protocol = iota
	UDP
	// ICMP is an echo conversation: one app source, destination and echo
	// identifier; its packets are echo requests (up) and replies (down).
	ICMP
	numProtocols
)

// Protocols lists every Protocol, for readers that report each.
var Protocols = [...]Protocol{TCP, UDP, ICMP}

// String returns "tcp", "udp" or "icmp".
func (p Protocol) String() string {
	switch p {
	case UDP:
		return "udp"
	case ICMP:
		return "icmp"
	}
	return "tcp"
}

// State is where a flow is in its life.
type State uint32

// States of a flow.
const (
	// Dialing: the upstream is being dialed; the app waits.
	Dialing State = iota
	// Open: bytes are relayed.
	Open
)

// String returns "dialing" or "open".
func (s State) String() string {
	if s == Open {
		return "open"
	}
	return "dialing"
}

// Start describes a new flow.
type Start struct {
	Protocol Protocol
	// Inbound says the flow came from outside to the app (a published
	// port of `tungate run`): Up is still what the app sent, Down what it
	// received. It sits next to Protocol, in the padding before the
	// addresses: a Flow is then 288 bytes, an allocation size class of
	// its own, rather than 296 in the class of 320.
	Inbound bool
	// Src is the app's address, Dst the address it sent to. For ICMP,
	// Src's port is the echo identifier and Dst's is 0. For an Inbound
	// flow, Src is the client that connected and Dst the app's address
	// it was carried to.
	Src, Dst netip.AddrPort
	// Name is the host name behind Dst (fake DNS), or empty.
	Name string
	// Route says how the flow leaves: the upstream, its hops and the rule
	// that chose it. It must hold no password.
	Route string
	// Chain names the upstream alone (a few values, as a metric label
	// must have): the dial latency histogram's label.
	Chain string
}

// Flow is one live flow. Its methods are safe for concurrent use; the
// counters (Up, Down) are meant for the data path.
type Flow struct {
	// The two halves are written by two goroutines, per datagram for
	// UDP: they sit at either end, the rest of the flow between them, so
	// that they never share a cache line (64 bytes; Start alone is twice
	// that) and the flow needs no padding (idle flows are many: every
	// byte counts 10,000 times).
	up Half

	Start
	// ID names the flow in the table, unique for the Table's life.
	ID uint64
	// Began is when the flow was seen.
	Began time.Time

	table *Table
	state atomic.Uint32
	end   atomic.Uint32 // End, first reason recorded wins

	mu       sync.Mutex
	closer   func()
	finished bool

	// Guarded by table.mu: the last second's rate, for snapshots.
	lastUp, lastDown uint64
	rateUp, rateDown float64

	down Half
}

// Half counts one direction of a flow: Up is app -> upstream, Down is
// upstream -> app (for an Inbound flow, app -> client and client -> app). A nil *Half counts nothing, so a relay without a table
// calls it unchecked.
type Half struct {
	flow    *Flow
	up      bool
	bytes   atomic.Uint64
	packets atomic.Uint64
}

// Add counts n bytes carried (one atomic add; no lock, no allocation).
func (h *Half) Add(n int) {
	if h != nil {
		h.bytes.Add(uint64(n))
	}
}

// AddDatagram counts one datagram of n bytes.
func (h *Half) AddDatagram(n int) {
	if h != nil {
		h.bytes.Add(uint64(n))
		h.packets.Add(1)
	}
}

// ReadFailed records that reading this direction's source failed (not at
// an orderly end): Up's source is the app, Down's the upstream.
func (h *Half) ReadFailed() {
	if h != nil {
		h.flow.endAs(h.resetBy(h.up))
	}
}

// WriteFailed records that writing this direction's destination failed.
func (h *Half) WriteFailed() {
	if h != nil {
		h.flow.endAs(h.resetBy(!h.up))
	}
}

func (h *Half) resetBy(app bool) End {
	if app {
		return EndResetByApp
	}
	return EndResetByUpstream
}

// Bytes and Packets return the counts so far.
func (h *Half) Bytes() uint64   { return h.bytes.Load() }
func (h *Half) Packets() uint64 { return h.packets.Load() }

// Up is the app -> upstream direction's counter.
func (f *Flow) Up() *Half {
	if f == nil {
		return nil
	}
	return &f.up
}

// Down is the upstream -> app direction's counter.
func (f *Flow) Down() *Half {
	if f == nil {
		return nil
	}
	return &f.down
}

// State returns the flow's state.
func (f *Flow) State() State { return State(f.state.Load()) }

// endAs records why the flow ends, unless a reason is recorded already.
func (f *Flow) endAs(e End) { f.end.CompareAndSwap(uint32(endNone), uint32(e)) }

// Dialed records the result of the flow's upstream dial, which took d:
// its latency (by route) and the flow's outcome. After an error the flow
// is finished (as Finish would), so that the caller only has to refuse the
// app. A nil *Flow records nothing.
func (f *Flow) Dialed(d time.Duration, err error) {
	if f == nil {
		return
	}
	f.table.dialLatency(f.Chain).observe(d)
	f.Opened(err)
}

// Opened is Dialed for a flow with no dial to time (one served
// in-process): err is why it could not be opened, nil if it was.
func (f *Flow) Opened(err error) {
	if f == nil {
		return
	}
	o, hop := Classify(err)
	f.table.countOpened(f.Protocol, o, hop)
	if err != nil {
		f.endAs(o.end())
		f.Finish(EndClosed)
		return
	}
	f.state.Store(uint32(Open))
}

// Ending records why the flow is about to end (EndIdle, say), unless a
// reason is recorded already; Finish makes it final.
func (f *Flow) Ending(e End) {
	if f != nil {
		f.endAs(e)
	}
}

// SetCloser sets what Table.Kill calls to end the flow (for TCP: reset both
// sides); a flow without one cannot be killed. If the flow was killed
// before, fn runs at once.
func (f *Flow) SetCloser(fn func()) {
	if f == nil {
		return
	}
	f.mu.Lock()
	f.closer = fn
	killed := End(f.end.Load()) == EndKilled && !f.finished
	f.mu.Unlock()
	if killed {
		fn()
	}
}

// kill ends the flow with EndKilled through its closer.
func (f *Flow) kill() {
	f.endAs(EndKilled)
	f.mu.Lock()
	fn := f.closer
	f.mu.Unlock()
	if fn != nil {
		fn()
	}
}

// Finish takes the flow out of the table, adds its counts to the totals
// and hands its Record to the sink. e is how it ended unless a reason was
// recorded before (a reset, a kill, a failed dial). Only the first call
// counts; a nil *Flow does nothing.
func (f *Flow) Finish(e End) {
	if f == nil {
		return
	}
	f.mu.Lock()
	done := f.finished
	f.finished = true
	f.closer = nil
	f.mu.Unlock()
	if done {
		return
	}
	f.endAs(e)
	f.table.finish(f)
}

// summary returns what f says now.
func (f *Flow) summary() Summary {
	s := Summary{
		Protocol: f.Protocol.String(), Src: f.Src, Dst: f.Dst, Name: f.Name, Route: f.Route,
		Start: f.Began, BytesUp: f.up.Bytes(), BytesDown: f.down.Bytes(),
	}
	if f.Inbound {
		s.Direction = "inbound"
	}
	if f.Protocol != TCP {
		up, down := f.up.Packets(), f.down.Packets()
		s.PacketsUp, s.PacketsDown = &up, &down
	}
	return s
}

// record returns what the flow log says of f, ended now.
func (f *Flow) record(now time.Time) Record {
	return Record{Summary: f.summary(), Duration: now.Sub(f.Began).Seconds(), End: End(f.end.Load()).String()}
}
