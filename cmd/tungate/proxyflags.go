package main

import (
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/spf13/pflag"

	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/forwarder/route"
)

// proxyConfig is what the upstream proxy and routing flags say.
type proxyConfig struct {
	hops             proxyList
	udp              udpMode
	dns              dnsMode
	handshakeTimeout time.Duration
	routes           routeConfig
}

func addProxyFlags(fs *pflag.FlagSet, c *proxyConfig) {
	fs.VarP(&c.hops, "proxy", "x", "leave through this proxy, repeatable for a chain (first hop dialed from the host); NAME=URL hops form the chain NAME, for --route: direct://, socks5://[USER:PASS@]HOST:PORT, socks4://[USER@]HOST:PORT, socks4a://[USER@]HOST:PORT or http://[USER:PASS@]HOST:PORT (default direct://)")
	fs.Var(&c.udp, "udp", "where UDP goes: proxy (SOCKS5 UDP ASSOCIATE), direct (host sockets, around the proxy) or block (refused with ICMP port unreachable) (default proxy if the proxy path carries UDP, else block)")
	fs.Var(&c.dns, "dns-mode", "fake: answer DNS in tungate with addresses from 198.19.0.0/16 and fd74:6761:7465:fa4e::/64 and send the proxy the name; forward: DNS flows are ordinary flows (default fake with a proxy or with domain: routes, else forward)")
	c.handshakeTimeout = proxy.DefaultHandshakeTimeout
	fs.Var(durationValue{&c.handshakeTimeout}, "handshake-timeout", "give up on a proxy that has not finished its handshake after this long, per hop")
	addRouteFlags(fs, &c.routes)
}

// validate checks the flags together and settles the defaults that depend
// on the chains and the rules.
func (c *proxyConfig) validate() error {
	why := proxy.WhyNoUDP(c.hops.hops)
	switch {
	case c.udp.mode == "":
		c.udp.mode = "proxy"
		if why != "" {
			c.udp.mode = "block"
		}
	case c.udp.mode == "proxy" && why != "":
		return usageErrorf("--udp proxy: %s; use --udp block or --udp direct", why)
	}
	if err := c.routes.load(); err != nil {
		return err
	}
	if err := c.checkActions(); err != nil {
		return err
	}
	return c.settleDNSMode()
}

// checkActions makes sure that every rule's action is a chain that exists.
func (c *proxyConfig) checkActions() error {
	for _, r := range c.routes.rules {
		if route.IsActionName(r.Action) {
			continue
		}
		if _, ok := c.hops.named[r.Action]; !ok {
			return usageErrorf("%s: no chain named %q: define it with -x %s=URL, or use direct, block or proxy", ruleWhere(r), r.Action, r.Action)
		}
	}
	return nil
}

// settleDNSMode picks the --dns-mode default and checks the mode against
// the chains: fake DNS sends flows by name, which a chain ending in a
// socks4:// hop cannot carry.
func (c *proxyConfig) settleDNSMode() error {
	var named *route.Rule // the first rule that needs names
	for _, r := range c.routes.rules {
		if r.NeedsName() {
			named = r
			break
		}
	}
	explicit := c.dns.mode != ""
	switch {
	case named != nil && c.dns.mode == "forward":
		return usageErrorf("%s: domain: rules need the names behind fake addresses, which --dns-mode forward does not know: use --dns-mode fake", ruleWhere(named))
	case named != nil:
		c.dns.mode = "fake"
	case !explicit:
		c.dns.mode = "forward"
		if c.proxied() && carriesNames(c.hops.hops) {
			c.dns.mode = "fake"
		}
	}
	if c.dns.mode != "fake" {
		return nil
	}
	// Under fake DNS every chain a flow can take gets names.
	if !carriesNames(c.hops.hops) {
		why := "--dns-mode fake"
		if !explicit {
			why = ruleWhere(named) + " turns on fake DNS, but"
		}
		return usageErrorf("%s: the default chain ends in a socks4:// hop, which cannot carry the names fake DNS sends; use socks4a:// instead", why)
	}
	for _, r := range c.routes.rules {
		if hops, ok := c.hops.named[r.Action]; ok && !carriesNames(hops) {
			return usageErrorf("%s: chain %q ends in a socks4:// hop, which cannot carry the names fake DNS sends; use socks4a:// instead", ruleWhere(r), r.Action)
		}
	}
	return nil
}

// carriesNames reports whether a chain can be asked for a destination by
// name: its last proxy is not socks4:// (socks4a:// can).
func carriesNames(hops []*proxy.Hop) bool {
	for i := len(hops) - 1; i >= 0; i-- {
		if hops[i].Kind != proxy.KindDirect {
			return hops[i].Kind != proxy.KindSOCKS4
		}
	}
	return true
}

// proxied reports whether the default chain has a proxy hop.
func (c *proxyConfig) proxied() bool { return proxiedHops(c.hops.hops) }

// proxiedHops reports whether any of hops is a proxy.
func proxiedHops(hops []*proxy.Hop) bool {
	return slices.ContainsFunc(hops, func(h *proxy.Hop) bool { return h.Kind != proxy.KindDirect })
}

// proxyList is the repeatable -x, --proxy [NAME=]URL flag: the hops of
// the default chain, and of each named chain, in order.
type proxyList struct {
	hops  []*proxy.Hop
	named map[string][]*proxy.Hop
	names []string // the named chains, in the order first given
}

func (l *proxyList) String() string {
	var parts []string
	if len(l.hops) > 0 {
		parts = append(parts, redactedChain(l.hops))
	}
	for _, n := range l.names {
		parts = append(parts, n+"="+redactedChain(l.named[n]))
	}
	return strings.Join(parts, ", ")
}

// redactedChain lists hops without passwords.
func redactedChain(hops []*proxy.Hop) string {
	s := make([]string, len(hops))
	for i, h := range hops {
		s[i] = h.Redacted()
	}
	return strings.Join(s, " -> ")
}

func (l *proxyList) Set(s string) error {
	if strings.HasPrefix(s, "=") {
		return errors.New("empty chain name before '=': want [NAME=]URL")
	}
	name, url := splitChainName(s)
	if route.IsActionName(name) {
		return fmt.Errorf("chain name %q is an action (direct, block, proxy): give the chain another name", name)
	}
	hop, err := proxy.ParseURL(url)
	if err != nil {
		return err
	}
	if name == "" {
		l.hops = append(l.hops, hop)
		return nil
	}
	if l.named == nil {
		l.named = make(map[string][]*proxy.Hop)
	}
	if _, ok := l.named[name]; !ok {
		l.names = append(l.names, name)
	}
	l.named[name] = append(l.named[name], hop)
	return nil
}

// splitChainName splits NAME=URL. A URL may itself hold '=' (in a
// password, say), so the part before the first '=' is a NAME only if it
// is a plain name: no ':' or '/', only letters, digits, '-', '_' and '.'.
func splitChainName(s string) (name, url string) {
	before, after, ok := strings.Cut(s, "=")
	if !ok || before == "" {
		return "", s
	}
	for _, c := range before {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.') {
			return "", s
		}
	}
	return before, after
}

func (l *proxyList) Type() string { return "[NAME=]URL" }

// udpMode is the value of --udp; "" until validate settles the default.
type udpMode struct{ mode string }

func (m *udpMode) String() string { return m.mode }

func (m *udpMode) Set(s string) error {
	switch s {
	case "direct", "proxy", "block":
		m.mode = s
		return nil
	}
	return errors.New("want direct, proxy or block")
}

func (m *udpMode) Type() string { return "MODE" }

// dnsMode is the value of --dns-mode; "" until validate settles the
// default.
type dnsMode struct{ mode string }

func (m *dnsMode) String() string { return m.mode }

func (m *dnsMode) Set(s string) error {
	switch s {
	case "fake", "forward":
		m.mode = s
		return nil
	}
	return errors.New("want fake or forward")
}

func (m *dnsMode) Type() string { return "MODE" }
