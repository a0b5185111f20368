package main

import (
	"log/slog"
	"net/netip"
	"slices"

	"github.com/tungate/tungate/forwarder"
	"github.com/tungate/tungate/forwarder/dns"
	"github.com/tungate/tungate/forwarder/proxy"
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

// runPolicy is the forwarder's Allow hook under `tungate run`: the host's
// loopback stays out of reach in every form, and tungate's own addresses
// take only what they serve. A refused TCP flow is reset at once and a
// refused UDP flow gets ICMP port unreachable, so nothing hangs.
func runPolicy(allowHostLoopback bool) func(network string, dst netip.AddrPort) bool {
	return func(network string, dst netip.AddrPort) bool {
		a := dst.Addr().Unmap()
		switch {
		case forwarder.ReachesHostLoopback(a):
			return false
		case slices.Contains(nsResolverAddrs, a):
			return network != "icmp" && dst.Port() == dns.Port
		}
		if _, ok := nsHostLoopback[a]; ok {
			return allowHostLoopback && network != "icmp"
		}
		return true
	}
}

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

// wrapDialer puts the resolver and, if asked, the host-loopback mapping in
// front of the gateway's dialer. The resolver is returned for the caller to
// close after the gateway.
func (d *runDNS) wrapDialer(cfg *runConfig, base proxy.Dialer, log *slog.Logger) (proxy.Dialer, *dns.Resolver, error) {
	next := base
	if cfg.allowHostLoopback {
		// Host sockets, never a proxy: only this host has this loopback.
		next = &forwarder.Redirect{
			To:   nsHostLoopback,
			Via:  &proxy.Direct{Mark: cfg.gw.fwmark, Timeout: cfg.gw.connectTimeout},
			Next: base,
		}
	}
	// Upstream DNS servers are dialed from the host too (a host resolver
	// on 127.0.0.53 must work); binding to --interface would cut off one
	// on loopback. With a proxy, queries go through it like any other
	// flow, so no DNS leaves the host directly.
	var upstream proxy.Dialer = base
	if !cfg.gw.proxy.proxied() {
		direct := &proxy.Direct{Interface: cfg.gw.iface, Mark: cfg.gw.fwmark, Timeout: cfg.gw.connectTimeout}
		if slices.ContainsFunc(d.servers, func(s netip.AddrPort) bool { return s.Addr().IsLoopback() }) {
			direct.Interface = ""
		}
		upstream = direct
	}
	r, err := dns.New(dns.Options{
		Addrs:    nsResolverAddrs,
		Answerer: &dns.Forward{Servers: d.servers, Dialer: upstream},
		Next:     next,
		Logger:   log,
	})
	if err != nil {
		return nil, nil, err
	}
	return r, r, nil
}
