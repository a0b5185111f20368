package stack

import (
	"fmt"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
)

// AddAddress gives the NIC an address of its own, so that connections the
// stack itself opens into the device (gonet dials) have a source address.
// Flows that apps send to that address still reach the Handler like any
// other, because no endpoint listens on it.
func (s *Stack) AddAddress(p netip.Prefix) error {
	proto := header.IPv4ProtocolNumber
	if p.Addr().Is6() {
		proto = header.IPv6ProtocolNumber
	}
	pa := tcpip.ProtocolAddress{
		Protocol: proto,
		AddressWithPrefix: tcpip.AddressWithPrefix{
			Address:   tcpip.AddrFromSlice(p.Addr().AsSlice()),
			PrefixLen: p.Bits(),
		},
	}
	if err := s.gv.AddProtocolAddress(nicID, pa, gvstack.AddressProperties{}); err != nil {
		return fmt.Errorf("add address %s to the stack: %w", p, AsError(err))
	}
	return nil
}
