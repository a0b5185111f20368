package udpnat

import (
	"context"
	"log/slog"
	"net/netip"
	"time"

	"github.com/tungate/tungate/forwarder/proxy"
)

// The table's interfaces to the rest of tungate, its options and its
// counters.

// AppSender delivers to apps. *stack.Stack implements it.
type AppSender interface {
	// SendTo delivers payload to the app at dst as a UDP datagram from
	// src. It must not block and must not keep payload.
	SendTo(src, dst netip.AddrPort, payload []byte) error
	// PortUnreachable tells the app at app that dst refused its datagrams
	// (an ICMP port unreachable from dst). It must not block.
	PortUnreachable(app, dst netip.AddrPort) error
}

// SegmentSender is an AppSender that can deliver a run of datagrams from
// one source to one app at once (the stack writes them to the device as
// one packet the kernel splits). The table uses it for the runs that one
// read of a host socket returns.
type SegmentSender interface {
	// SendSegments delivers segs from src to the app at dst, in order;
	// every one is as long as the first but the last, which may be
	// shorter. It must not block and must not keep segs.
	SendSegments(src, dst netip.AddrPort, segs [][]byte) error
}

// Route decides where datagrams from src to dst go. It is asked once per
// destination of a session, under the table's lock: it must not block or
// call the table.
type Route func(src, dst netip.AddrPort) Destination

// Destination is Route's answer for one destination of a session.
type Destination struct {
	// Upstream carries the datagrams; nil refuses them. Upstreams are
	// compared with ==, so equal values must mean the same path and their
	// dynamic types must be comparable (pointers or small structs of
	// comparable fields).
	Upstream proxy.PacketListener
	// Meter, if set, hears of the destination's datagrams and end (the
	// flow table's entry for it).
	Meter Meter
	// To, if valid, is where the datagrams go instead of the address the
	// app sent to (an address the route maps it to, such as the host's
	// loopback); replies from To reach the app from the address it sent
	// to.
	To netip.AddrPort
	// Resolve, if set, finds To before the first datagram leaves (the
	// name behind a fake address, resolved as the upstream resolves
	// names). It may block: it runs on a goroutine of the table's, within
	// Options.OpenTimeout, while the datagrams wait. The zero AddrPort
	// with a nil error sends them by Name instead; an error refuses the
	// destination (ICMP port unreachable), and its next datagram asks
	// the route again.
	Resolve func(ctx context.Context) (netip.AddrPort, error)
	// Name is what the datagrams carry when Resolve leaves the name to
	// the upstream (a SOCKS5 proxy resolves it); the upstream's conns
	// must be proxy.NamePacketConns.
	Name string
}

// Meter hears of one destination of a session. Its methods must not
// block; Sent and Received are called per datagram.
type Meter interface {
	// Opened says the socket toward the destination's upstream is open
	// (err nil) or could not be opened; took is how long the opening took
	// that the destination waited for, zero if the socket was open
	// already.
	Opened(took time.Duration, err error)
	// Sent counts a datagram of n bytes sent to the destination.
	Sent(n int)
	// Received counts a datagram of n bytes from it delivered to the app.
	Received(n int)
	// Forgotten says the session forgot the destination (it ended, or
	// its cache started over); idle says it expired.
	Forgotten(idle bool)
}

// Options configures a Table.
type Options struct {
	// Route decides each destination's upstream. Required.
	Route Route
	// App delivers replies and refusals to apps. Required.
	App AppSender
	// Filter says which sources may send to a session's mapping. The zero
	// value is FilterEndpoint.
	Filter Filter
	// Timeout ends a session that got a reply after this long without a
	// datagram in either direction (--udp-timeout). Zero means
	// DefaultTimeout.
	Timeout time.Duration
	// UnrepliedTimeout ends a session that never got a reply after this
	// long without a datagram, so that scans and floods free their
	// sessions early. Zero means DefaultUnrepliedTimeout; it is never
	// longer than Timeout.
	UnrepliedTimeout time.Duration
	// Budget holds every session's slot and sockets, shared with other
	// flows; nil means a budget of MaxSessions sessions for this table
	// alone.
	Budget Budget
	// MaxSessions caps the sessions (app source ports) of a table without
	// a Budget. Zero means DefaultMaxSessions.
	MaxSessions int
	// EvictIdle is how long a session must have been silent before it
	// may be evicted to make room in the budget: a busier one is never
	// evicted, so a flood of new sessions cannot break live ones. Zero
	// means DefaultEvictIdle.
	EvictIdle time.Duration
	// OpenTimeout bounds opening an upstream socket (a SOCKS5 association's
	// handshake). Zero means DefaultOpenTimeout.
	OpenTimeout time.Duration
	// Now is the clock; nil means time.Now. Tests set a fake one.
	Now func() time.Time
	// Logger receives per-session messages at debug level and the cap's
	// evictions at warn level (at most once a second); nil discards them.
	Logger *slog.Logger
}

// Stats are the table's counters.
type Stats struct {
	Sessions   int    // live sessions
	Mappings   int    // live upstream sockets
	Opened     uint64 // sessions created
	Expired    uint64 // sessions ended by a timeout
	Evicted    uint64 // idle sessions closed to make room in the budget
	Refused    uint64 // sessions and sockets the full budget refused
	Filtered   uint64 // inbound datagrams the filter dropped
	Dropped    uint64 // datagrams lost: queue full while opening, socket full
	OpenFailed uint64 // upstream sockets that could not be opened
}

// LogValue implements slog.LogValuer.
func (s Stats) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Int("sessions", s.Sessions), slog.Int("mappings", s.Mappings), slog.Uint64("opened", s.Opened),
		slog.Uint64("expired", s.Expired), slog.Uint64("evicted", s.Evicted),
		slog.Uint64("refused", s.Refused),
		slog.Uint64("filtered", s.Filtered), slog.Uint64("dropped", s.Dropped),
		slog.Uint64("open_failed", s.OpenFailed),
	)
}
