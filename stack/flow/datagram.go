package flow

import "net/netip"

// DatagramHandler is implemented by a stack Handler that takes UDP one
// datagram at a time instead of as sessions of (source, destination)
// pairs (HandleUDP, then never called): the stack creates no UDP
// endpoints, so the handler can give an app source port one mapping
// whatever it sends to, and answer from any address (the stack's SendTo).
type DatagramHandler interface {
	// HandleUDPDatagram is called on the packet-dispatch path for every
	// UDP datagram from the device whose length and checksum are valid
	// (malformed ones are dropped and counted first). payload is valid
	// only during the call. It must not block. Returning false makes the
	// stack answer with ICMP port unreachable.
	HandleUDPDatagram(src, dst netip.AddrPort, payload []byte) bool
}
