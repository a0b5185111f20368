package stack

import (
	"log/slog"

	"github.com/tungate/tungate/stack/tunlink"
)

// Counters are the stack's drop counts: what arrived from the device and
// was thrown away.
type Counters struct {
	// MalformedIP counts IPv4/IPv6 packets with bad headers.
	MalformedIP uint64
	// MalformedTransport counts TCP and UDP packets with bad headers or
	// checksums.
	MalformedTransport uint64
	// SYNsDropped counts connection requests dropped because
	// Options.TCPMaxInFlight dials were already under way.
	SYNsDropped uint64
	// NotForwarded counts packets to broadcast and multicast destinations,
	// which the link drops on arrival (see NewTUNLink); 0 for a link that
	// is not a TUN link.
	NotForwarded uint64
}

// linkStats is what a link that counts its own drops offers.
type linkStats interface{ Stats() tunlink.Stats }

// Counters returns the drop counts so far.
func (s *Stack) Counters() Counters {
	st := s.gv.Stats()
	var notFwd uint64
	if l, ok := s.link.(linkStats); ok {
		notFwd = l.Stats().RxNotForwarded
	}
	return Counters{
		NotForwarded:       notFwd,
		MalformedIP:        st.IP.MalformedPacketsReceived.Value() + st.IP.MalformedFragmentsReceived.Value(),
		MalformedTransport: st.TCP.InvalidSegmentsReceived.Value() + st.TCP.ChecksumErrors.Value() + st.UDP.MalformedPacketsReceived.Value() + st.UDP.ChecksumErrors.Value(),
		SYNsDropped:        st.TCP.ForwardMaxInFlightDrop.Value(),
	}
}

// LogValue implements slog.LogValuer.
func (c Counters) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Uint64("malformed_ip", c.MalformedIP),
		slog.Uint64("malformed_transport", c.MalformedTransport),
		slog.Uint64("syns_dropped", c.SYNsDropped),
		slog.Uint64("not_forwarded", c.NotForwarded),
	)
}
