package main

import (
	"fmt"
	"log/slog"
	"net/netip"
	"slices"

	"github.com/tungate/tungate/forwarder/dns"
	"github.com/tungate/tungate/forwarder/fakedns"
	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/forwarder/route"
)

// runRouting is what a mode adds to a gateway's routing: tungate's
// resolver (every mode) and, under `tungate run`, the host-loopback rule.
// Both parts are router options, so any mode can use them.
type runRouting struct {
	// resolverAddrs answer DNS by asking servers.
	resolverAddrs []netip.Addr
	servers       []netip.AddrPort
	// hostLoopback refuses the host's loopback and maps the addresses of
	// --allow-host-loopback.
	hostLoopback route.HostLoopback
	// underRun says the gateway is `tungate run`'s.
	underRun bool
}

// routing is the decision side of a gateway: the router and the
// in-process DNS servers it sends flows to, which Close ends.
type routing struct {
	router  *route.Router
	servers []*dns.Resolver
	// fakeNames is the fake DNS table, for its metrics; nil without.
	fakeNames *fakedns.Resolver
}

// Close ends the flows of the in-process servers.
func (r *routing) Close() {
	for _, s := range r.servers {
		s.Close()
	}
}

// newRouting builds the upstreams the flags name and the router that
// chooses between them. The in-process DNS servers count their answers
// into counts.
func newRouting(cfg *gatewayConfig, run *runRouting, counts *dns.QueryCounts, log *slog.Logger) (*routing, error) {
	p := &cfg.proxy
	hostDirect := &proxy.Direct{Interface: cfg.iface, Mark: cfg.fwmark, Timeout: cfg.connectTimeout}
	direct := directUpstream("direct", hostDirect, p.udp.mode)
	opts := route.Options{Direct: direct, Default: direct, Chains: make(map[string]*route.Upstream)}
	var servers []netip.AddrPort // what resolves UDP to names through a proxy
	if run != nil {
		servers = run.servers
	}
	if p.proxied() {
		opts.Default = chainUpstream(route.ActionProxy, p.hops.hops, hostDirect, p, servers)
	}
	for _, name := range p.hops.names {
		opts.Chains[name] = chainUpstream(name, p.hops.named[name], hostDirect, p, servers)
	}
	if p.proxied() || len(p.hops.names) > 0 {
		log.Info("upstream proxy", "chain", p.hops.String(), "udp", p.udp.mode, "dns_mode", p.dns.mode, "routes", len(p.routes.rules))
	}
	rules := route.NewTable(p.routes.rules)
	opts.Rules = rules
	r := &routing{}
	if p.dns.mode == "fake" {
		fake, err := newFakeDNS(rules, counts, log)
		if err != nil {
			return nil, err
		}
		r.fakeNames = fake.Names.(*fakedns.Resolver)
		r.servers = append(r.servers, fake.Server.(*dns.Resolver))
		opts.FakeDNS = fake
	}
	if run != nil {
		res, err := newRunResolver(cfg, run, opts.Default, counts, log)
		if err != nil {
			r.Close()
			return nil, err
		}
		r.servers = append(r.servers, res)
		opts.Resolver = &route.Resolver{Addrs: run.resolverAddrs, Server: res}
		opts.HostLoopback = run.hostLoopback
		if opts.HostLoopback.Allow {
			// Host sockets, never a proxy, and no --interface: only this
			// host has this loopback. Without --interface they are the
			// direct upstream's own, so that a UDP session's datagrams
			// to the loopback and out leave from one host port.
			lb := hostDirect
			if cfg.iface != "" {
				lb = &proxy.Direct{Mark: cfg.fwmark, Timeout: cfg.connectTimeout}
			}
			opts.HostLoopback.Via = directUpstream("host-loopback", lb, p.udp.mode)
		}
	}
	if (run == nil || !run.underRun) && cfg.netns != "" && !cfg.allowHostLoopback {
		// The app namespace's root can write packets to 0.0.0.0 or
		// 127.0.0.1 straight onto the device: dialed from the host, they
		// would reach its loopback services.
		opts.HostLoopback = route.HostLoopback{Refuse: true}
	}
	var err error
	if r.router, err = route.New(opts); err != nil {
		r.Close()
		return nil, usageErrorf("%w", err)
	}
	return r, nil
}

// directUpstream is an upstream of host sockets; --udp block leaves it no
// UDP.
func directUpstream(name string, d *proxy.Direct, udpMode string) *route.Upstream {
	up := &route.Upstream{Name: name, Dialer: d, Echo: true}
	if udpMode != "block" {
		up.Packets = d
	}
	return up
}

// chainUpstream is the upstream through hops, first reached from host:
// its UDP goes as --udp says (through the chain where it can carry UDP,
// from host sockets with --udp direct, else nowhere). servers resolve the
// names of its UDP flows (udpChain).
func chainUpstream(name string, hops []*proxy.Hop, host *proxy.Direct, p *proxyConfig, servers []netip.AddrPort) *route.Upstream {
	if !proxiedHops(hops) {
		return directUpstream(name, host, p.udp.mode)
	}
	chain := proxy.NewChain(hops, host, p.handshakeTimeout)
	up := &route.Upstream{Name: name, Dialer: chain, Proxied: true}
	switch p.udp.mode {
	case "direct":
		up.Packets = host
	case "proxy":
		if proxy.WhyNoUDP(hops) == "" {
			up.Packets = udpChain(hops, host, chain, p.handshakeTimeout, servers)
		}
	}
	return up
}

// newFakeDNS builds remote DNS: the table of fake addresses, answering
// NXDOMAIN for names the rules block, and the in-process resolver that
// answers every DNS flow from it. It answers inline, so it starts no
// goroutine.
func newFakeDNS(rules *route.Table, counts *dns.QueryCounts, log *slog.Logger) (*route.FakeDNS, error) {
	table, err := fakedns.New(fakedns.Options{Blocked: func(name string) bool { return route.BlocksName(rules, name) }})
	if err != nil {
		return nil, fmt.Errorf("fake DNS: %w", err)
	}
	res, err := dns.New(dns.Options{Inline: true, Answerer: &dns.Counting{Answerer: table, Counts: counts}, Logger: log})
	if err != nil {
		return nil, fmt.Errorf("fake DNS: %w", err)
	}
	return &route.FakeDNS{Server: res, Names: table}, nil
}

// newRunResolver is the resolver at the namespace's resolver addresses. Its
// queries go to the servers from the host (a host resolver on 127.0.0.53
// must work, so --interface is dropped when one is on loopback), or with
// a proxy through the default chain, so that no DNS leaves the host
// directly.
func newRunResolver(cfg *gatewayConfig, run *runRouting, def *route.Upstream, counts *dns.QueryCounts, log *slog.Logger) (*dns.Resolver, error) {
	var upstream proxy.Dialer = def
	if !cfg.proxy.proxied() {
		direct := &proxy.Direct{Interface: cfg.iface, Mark: cfg.fwmark, Timeout: cfg.connectTimeout}
		if slices.ContainsFunc(run.servers, func(s netip.AddrPort) bool { return s.Addr().IsLoopback() }) {
			direct.Interface = ""
		}
		upstream = direct
	}
	return dns.New(dns.Options{
		Answerer: &dns.Counting{Answerer: &dns.Forward{Servers: run.servers, Dialer: upstream}, Counts: counts},
		Logger:   log,
	})
}
