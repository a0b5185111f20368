package main

import (
	"net/netip"

	"github.com/tungate/tungate/forwarder/route"
)

// Addresses inside the namespace where tungate itself answers. They lie in
// the device's default subnets (defaultAddresses), so the namespace routes
// them into the device.
var (
	// nsResolverAddrs answer DNS on port 53; CMD's resolv.conf names them.
	// Flows into published ports come from them too.
	nsResolverAddrs = []netip.Addr{
		netip.MustParseAddr("198.18.0.2"),
		netip.MustParseAddr("fd74:6761:7465::2"),
	}
	// nsHostLoopback maps addresses to the host's loopback, with
	// --allow-host-loopback only.
	nsHostLoopback = map[netip.Addr]netip.Addr{
		netip.MustParseAddr("198.18.0.3"):        netip.MustParseAddr("127.0.0.1"),
		netip.MustParseAddr("fd74:6761:7465::3"): netip.MustParseAddr("::1"),
	}
)

// routing is what `tungate run` adds to the gateway's router: its
// resolver and the host-loopback rule.
func (d *hostDNS) routing(cfg *runConfig) *runRouting {
	return &runRouting{
		resolverAddrs: nsResolverAddrs,
		servers:       d.servers,
		hostLoopback:  route.HostLoopback{Refuse: true, Map: nsHostLoopback, Allow: cfg.allowHostLoopback},
		underRun:      true,
	}
}
