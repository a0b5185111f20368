package tunlink

import (
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip/header"
)

// Destinations are what a gateway does not forward: packets to them are
// dropped as they arrive, before the stack parses them, and counted in
// Stats.RxNotForwarded. The zero value drops nothing.
type Destinations struct {
	// BroadcastMulticast drops IPv4 limited broadcast (255.255.255.255),
	// IPv4 multicast (224.0.0.0/4) and IPv6 multicast (ff00::/8).
	BroadcastMulticast bool
	// Broadcasts are further IPv4 addresses to drop: the directed
	// broadcast addresses of the host's subnets. Other families are
	// ignored.
	Broadcasts []netip.Addr
}

// destFilter is Destinations in the form the reader checks without
// allocating.
type destFilter struct {
	bcastMcast bool
	bcast4     [][4]byte
}

func newDestFilter(d Destinations) destFilter {
	f := destFilter{bcastMcast: d.BroadcastMulticast}
	for _, a := range d.Broadcasts {
		if a = a.Unmap(); a.Is4() {
			f.bcast4 = append(f.bcast4, a.As4())
		}
	}
	return f
}

// drops reports whether the IP packet starting at first (which holds its
// whole IP header, as checkIP made sure) is for a destination the filter
// drops.
func (f *destFilter) drops(first []byte) bool {
	switch header.IPVersion(first) {
	case header.IPv4Version:
		dst := [4]byte(first[16:20])
		if f.bcastMcast && (dst == [4]byte{255, 255, 255, 255} || dst[0]&0xf0 == 0xe0) {
			return true
		}
		for _, b := range f.bcast4 {
			if dst == b {
				return true
			}
		}
	case header.IPv6Version:
		return f.bcastMcast && first[24] == 0xff
	}
	return false
}
