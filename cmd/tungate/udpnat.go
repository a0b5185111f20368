package main

import (
	"net/netip"
	"slices"

	"github.com/spf13/pflag"

	"github.com/tungate/tungate/forwarder/dns"
	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/forwarder/udpnat"
)

// addUDPNATFlags registers the UDP session table's flags.
func addUDPNATFlags(fs *pflag.FlagSet, c *gatewayConfig) {
	fs.Var(&udpFilterValue{&c.udpFilter}, "udp-filter", "which sources reach an app's UDP port once it has sent from it: endpoint (anyone: full cone, for calls, games and peer-to-peer), address (only addresses it sent to) or port (only the address and port pairs it sent to)")
}

// udpFilterValue is the value of --udp-filter.
type udpFilterValue struct{ f *udpnat.Filter }

func (v *udpFilterValue) String() string { return v.f.String() }

func (v *udpFilterValue) Set(s string) error {
	f, err := udpnat.ParseFilter(s)
	if err != nil {
		return err
	}
	*v.f = f
	return nil
}

func (v *udpFilterValue) Type() string { return "MODE" }

// sharedUDP returns forwarder.Options.SharedUDP: the upstream that carries
// every destination of a UDP session on one socket (endpoint-independent
// mapping), except the destinations that a dialer wrapper answers or
// renames, which keep a socket of their own through the dialer: DNS that
// fake DNS answers, fake addresses (dialed by name), and what own (may be
// nil) claims.
func (u *upstream) sharedUDP(own func(netip.AddrPort) bool) func(netip.AddrPort) proxy.PacketListener {
	if u.listener == nil {
		return nil
	}
	return func(dst netip.AddrPort) proxy.PacketListener {
		switch {
		case u.fake != nil && (dst.Port() == dns.Port || u.fakeTable.Contains(dst.Addr())):
			return nil
		case own != nil && own(dst):
			return nil
		}
		return u.listener
	}
}

// runOwnsUDP claims the destinations that `tungate run` answers or
// redirects itself: its resolver and the host-loopback addresses.
func runOwnsUDP(dst netip.AddrPort) bool {
	a := dst.Addr().Unmap()
	if _, ok := nsHostLoopback[a]; ok {
		return true
	}
	return slices.Contains(nsResolverAddrs, a)
}
