package main

import (
	"log/slog"
	"net/netip"

	"github.com/tungate/tungate/forwarder/dns"
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

// runDNS configures what answers the namespace's resolver: --dns servers,
// or else the host's resolv.conf, whose search and options lines CMD gets
// too.
type runDNS struct {
	servers []netip.AddrPort
	keep    []string
}

func newRunDNS(flagServers []netip.AddrPort, log *slog.Logger) *runDNS {
	d := &runDNS{servers: flagServers}
	host, err := dns.ReadResolvConf(dns.HostResolvConf)
	if err != nil {
		if len(d.servers) == 0 {
			log.Warn("no DNS server: name lookups inside will fail; give one with --dns ADDR", "err", err)
		}
		return d
	}
	d.keep = host.Keep
	if len(d.servers) == 0 {
		d.servers = host.Servers
		if len(d.servers) == 0 {
			log.Warn("no DNS server: " + dns.HostResolvConf + " has no nameserver line; name lookups inside will fail; give one with --dns ADDR")
		}
	}
	return d
}

// routing is what `tungate run` adds to the gateway's router: its
// resolver and the host-loopback rule.
func (d *runDNS) routing(cfg *runConfig) *runRouting {
	return &runRouting{
		resolverAddrs: nsResolverAddrs,
		servers:       d.servers,
		hostLoopback:  route.HostLoopback{Refuse: true, Map: nsHostLoopback, Allow: cfg.allowHostLoopback},
	}
}
