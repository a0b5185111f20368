package main

import (
	"log/slog"
	"net/netip"
	"slices"
	"time"

	"github.com/tungate/tungate/forwarder/dns"
	"github.com/tungate/tungate/forwarder/proxy"
)

// hostDNS is what tungate's resolver (at the resolver addresses in the
// device's subnet) forwards to: the --dns servers, or else the host's
// resolv.conf nameservers, whose search and options lines the
// namespace's resolv.conf gets too.
type hostDNS struct {
	servers []netip.AddrPort
	keep    []string
}

// newHostDNS reads the host's resolv.conf; flagServers, if any, replace
// its nameservers.
func newHostDNS(flagServers []netip.AddrPort, log *slog.Logger) *hostDNS {
	d := &hostDNS{servers: flagServers}
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

// gatewayRouting is the gateway's resolver: it answers DNS at
// resolverAddrs(cfg's addresses) and forwards as `tungate run` does.
func (d *hostDNS) gatewayRouting(cfg *gatewayConfig, log *slog.Logger) *runRouting {
	addrs, none := resolverAddrs(cfg.addresses.values)
	for _, p := range none {
		log.Warn("no resolver address in this --address prefix: it is too small to hold one beside the device's own address", "prefix", p)
	}
	return &runRouting{resolverAddrs: addrs, servers: d.servers}
}

// resolverAddrs picks, for each of the device's prefixes, the address
// where tungate's resolver answers: the prefix's second address (network
// + 2: 198.18.0.2 for 198.18.0.1/24, fd74:6761:7465::2 for
// fd74:6761:7465::1/64), or its first (network + 1) when the device holds
// the second. A prefix with neither free (a /32 or /128; a /31 or /127,
// which holds network + 0 and + 1 only, when the device is at + 1) gets
// none and is returned in none. Prefixes that share a network give one
// address.
func resolverAddrs(prefixes []netip.Prefix) (addrs []netip.Addr, none []netip.Prefix) {
	own := func(a netip.Addr) bool {
		return slices.ContainsFunc(prefixes, func(p netip.Prefix) bool { return p.Addr() == a })
	}
	for _, p := range prefixes {
		network := p.Masked()
		first := network.Addr().Next()
		picked := netip.Addr{}
		for _, a := range []netip.Addr{first.Next(), first} {
			if a.IsValid() && network.Contains(a) && !own(a) {
				picked = a
				break
			}
		}
		switch {
		case !picked.IsValid():
			none = append(none, p)
		case !slices.Contains(addrs, picked):
			addrs = append(addrs, picked)
		}
	}
	return addrs, none
}

// udpChain is the chain through hops (a single SOCKS5 proxy) that carries
// UDP. A datagram to a name (behind a fake address) goes to an address
// that tungate resolved in the family the app looked up, by asking
// servers over tcp, the chain's TCP path, so that the lookup leaves where
// the flow does; a name that does not resolve refuses the flow. A proxy
// given the name may resolve it in the other family (proxy.UDPResolver
// says why that fails with dante). Without servers names go to the proxy.
func udpChain(hops []*proxy.Hop, host *proxy.Direct, tcp proxy.Dialer, handshakeTimeout time.Duration, servers []netip.AddrPort) proxy.PacketDialer {
	opts := proxy.ChainOptions{Hops: hops, Base: host, HandshakeTimeout: handshakeTimeout}
	if len(servers) > 0 {
		lookup := &dns.Lookup{Forward: &dns.Forward{Servers: servers, Dialer: tcp}, Network: "tcp"}
		opts.UDPResolver = lookup.ResolveUDP
	}
	pd, _ := proxy.NewChainWith(opts).(proxy.PacketDialer)
	return pd
}
