package stack

import (
	"gvisor.dev/gvisor/pkg/tcpip/link/sniffer"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/tungate/tungate/stack/tunlink"
)

// Drop is the count of packets thrown away for one reason.
type Drop struct {
	// Reason is a metric label: malformed_ip, invalid_address,
	// malformed_transport, bad_checksum, no_flow, udp_queue_full,
	// tx_queue_full, and, from the TUN link endpoint,
	// link_short, link_bad_version, link_truncated, link_bad_vnet_hdr,
	// link_bad_checksum, link_tx_error.
	Reason  string
	Packets uint64
}

// linkCounter is implemented by link endpoints that count their own drops
// (tunlink.Endpoint, and a Capture around one).
type linkCounter interface{ Stats() tunlink.Stats }

// Drops returns the drop counts by reason: gVisor's stack counters and
// the link endpoint's own. It reads counters only; call it at scrape time.
func (s *Stack) Drops() []Drop {
	st := s.gv.Stats()
	d := []Drop{
		{"malformed_ip", st.IP.MalformedPacketsReceived.Value() + st.IP.MalformedFragmentsReceived.Value()},
		{"invalid_address", st.IP.InvalidDestinationAddressesReceived.Value() + st.IP.InvalidSourceAddressesReceived.Value()},
		{"malformed_transport", st.TCP.InvalidSegmentsReceived.Value() + st.UDP.MalformedPacketsReceived.Value() + st.NICs.MalformedL4RcvdPackets.Value()},
		{"bad_checksum", st.TCP.ChecksumErrors.Value() + st.UDP.ChecksumErrors.Value()},
		{"no_flow", st.UDP.UnknownPortErrors.Value()},
		{"udp_queue_full", st.UDP.ReceiveBufferErrors.Value()},
		{"tx_queue_full", st.NICs.TxPacketsDroppedNoBufferSpace.Value()},
	}
	if lc, ok := s.link.(linkCounter); ok {
		ls := lc.Stats()
		d = append(d,
			Drop{"link_short", ls.RxShort},
			Drop{"link_bad_version", ls.RxBadVersion},
			Drop{"link_truncated", ls.RxTruncated},
			Drop{"link_bad_vnet_hdr", ls.RxBadVnetHdr},
			Drop{"link_bad_checksum", ls.RxBadChecksum},
			Drop{"link_tx_error", ls.TxErrors},
		)
	}
	return d
}

// Packets are the packets that crossed the stack, by protocol and
// direction: In from the device, Out to it.
type Packets struct {
	TCPIn, TCPOut, UDPIn, UDPOut uint64
	// LinkIn and LinkOut are the link endpoint's packets and bytes, when
	// it counts them (a TCP super-packet counts once).
	LinkIn, LinkOut, LinkBytesIn, LinkBytesOut uint64
	// UDPFastIn counts the datagrams that took the UDP fast path from the
	// device (past gVisor, so not in UDPIn), UDPFastOut the packets
	// written to the device past gVisor (UDP replies and the ICMP errors
	// for refused datagrams).
	UDPFastIn, UDPFastOut uint64
}

// Packets returns the packet counts so far.
func (s *Stack) Packets() Packets {
	st := s.gv.Stats()
	p := Packets{
		TCPIn: st.TCP.ValidSegmentsReceived.Value() + st.TCP.InvalidSegmentsReceived.Value(), TCPOut: st.TCP.SegmentsSent.Value(),
		UDPIn: st.UDP.PacketsReceived.Value(), UDPOut: st.UDP.PacketsSent.Value(),
	}
	if lc, ok := s.link.(linkCounter); ok {
		ls := lc.Stats()
		p.LinkIn, p.LinkOut, p.LinkBytesIn, p.LinkBytesOut = ls.RxPackets, ls.TxPackets, ls.RxBytes, ls.TxBytes
		p.UDPFastIn, p.UDPFastOut = ls.RxUDPFast, ls.TxUDPFast
	}
	return p
}

// captureEndpoint is the sniffer with the wrapped link's own counters
// still in reach. It embeds the concrete sniffer so that its optional
// interfaces (segmentation offload) stay visible to the stack.
type captureEndpoint struct {
	*sniffer.Endpoint
	child gvstack.LinkEndpoint
}

// Stats implements linkCounter when the wrapped link does.
func (e *captureEndpoint) Stats() tunlink.Stats {
	if lc, ok := e.child.(linkCounter); ok {
		return lc.Stats()
	}
	return tunlink.Stats{}
}
