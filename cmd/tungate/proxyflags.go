package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"sync"
	"time"

	"github.com/spf13/pflag"

	"github.com/tungate/tungate/forwarder/dns"
	"github.com/tungate/tungate/forwarder/fakedns"
	"github.com/tungate/tungate/forwarder/proxy"
)

// proxyConfig is what the upstream proxy flags say.
type proxyConfig struct {
	hops             proxyList
	udp              udpMode
	dns              dnsMode
	handshakeTimeout time.Duration
}

func addProxyFlags(fs *pflag.FlagSet, c *proxyConfig) {
	fs.VarP(&c.hops, "proxy", "x", "leave through this proxy, repeatable for a chain (first hop dialed from the host): direct://, socks5://[USER:PASS@]HOST:PORT (socks5h:// is the same: names always go to the proxy unresolved), socks4://[USER@]HOST:PORT, socks4a://[USER@]HOST:PORT or http://[USER:PASS@]HOST:PORT (default direct://)")
	fs.Var(&c.udp, "udp", "where UDP goes: proxy (SOCKS5 UDP ASSOCIATE), direct (host sockets, around the proxy) or block (refused with ICMP port unreachable) (default proxy if the proxy path carries UDP, else block)")
	fs.Var(&c.dns, "dns-mode", "fake: answer DNS in tungate with addresses from 198.19.0.0/16 and fd74:6761:7465:fa4e::/64 and send the proxy the name; forward: DNS flows are ordinary flows (default fake with a proxy, else forward)")
	c.handshakeTimeout = proxy.DefaultHandshakeTimeout
	fs.Var(durationValue{&c.handshakeTimeout}, "handshake-timeout", "give up on a proxy that has not finished its handshake after this long, per hop")
}

// validate checks the flags together and settles the defaults that depend
// on the chain.
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
	if c.dns.mode == "" {
		c.dns.mode = "forward"
		if c.proxied() {
			c.dns.mode = "fake"
		}
	}
	return nil
}

// proxied reports whether any hop is a proxy.
func (c *proxyConfig) proxied() bool {
	for _, h := range c.hops.hops {
		if h.Kind != proxy.KindDirect {
			return true
		}
	}
	return false
}

// upstream is the dialer side of the gateway that the proxy flags shape.
type upstream struct {
	// dialer is the chain, with --udp applied and failures logged. The
	// wrappers of `tungate run` go around it, and fake DNS (outer) around
	// them.
	dialer proxy.Dialer
	// fake answers every DNS flow in-process from the fake DNS table, in
	// front of rename, which dials flows to the table's addresses by name;
	// outer sets rename's Next. Both are nil without --dns-mode fake. fake
	// answers inline, so it starts no goroutine, and its flows end with the
	// forwarder's: it needs no Close.
	fake     *dns.Resolver
	rename   *fakedns.Dialer
	blockUDP bool
	proxied  bool
}

// newUpstream builds the dialers; direct reaches the first hop (or
// everything, with no proxy).
func newUpstream(c *proxyConfig, direct *proxy.Direct, log *slog.Logger) (*upstream, error) {
	u := &upstream{proxied: c.proxied(), blockUDP: c.udp.mode == "block"}
	chain := proxy.NewChain(c.hops.hops, direct, c.handshakeTimeout)
	if u.proxied {
		chain = &failLog{next: chain, log: log, last: make(map[string]time.Time)}
		log.Info("upstream proxy", "chain", c.hops.String(), "udp", c.udp.mode, "dns_mode", c.dns.mode)
	}
	var packets proxy.PacketDialer
	switch c.udp.mode {
	case "direct":
		packets = direct
	case "proxy":
		packets, _ = chain.(proxy.PacketDialer)
	}
	u.dialer = &udpVia{Dialer: chain, packets: packets}
	if c.dns.mode == "fake" {
		table, err := fakedns.New(fakedns.Options{})
		if err != nil {
			return nil, fmt.Errorf("fake DNS: %w", err)
		}
		u.rename = &fakedns.Dialer{Resolver: table}
		u.fake, err = dns.New(dns.Options{EveryAddr: true, Inline: true, Answerer: table, Next: u.rename, Logger: log})
		if err != nil {
			return nil, fmt.Errorf("fake DNS: %w", err)
		}
	}
	return u, nil
}

// outer puts fake DNS, if on, around d: it must see every port-53 flow
// before anything else does. It is called once, while wiring.
func (u *upstream) outer(d proxy.Dialer) proxy.Dialer {
	if u.fake == nil {
		return d
	}
	u.rename.Next = d
	return u.fake
}

// allow adds --udp block to the forwarder's policy next (which may be nil):
// UDP is refused, with ICMP port unreachable, before it reaches a dialer,
// except DNS that fake DNS answers in-process.
func (u *upstream) allow(next func(string, netip.AddrPort) bool) func(string, netip.AddrPort) bool {
	if !u.blockUDP {
		return next
	}
	return func(network string, dst netip.AddrPort) bool {
		if network == "udp" && (u.fake == nil || dst.Port() != dns.Port) {
			return false
		}
		return next == nil || next(network, dst)
	}
}

// udpVia dials TCP through the embedded dialer and UDP through packets;
// nil packets carries no UDP.
type udpVia struct {
	proxy.Dialer
	packets proxy.PacketDialer
}

func (u *udpVia) DialPacket(ctx context.Context, network, address string) (net.Conn, error) {
	if u.packets == nil {
		return nil, fmt.Errorf("dial %s %s: %w", network, address, proxy.ErrUDPUnsupported)
	}
	return u.packets.DialPacket(ctx, network, address)
}

// failLog logs each failed dial through the proxies at warn level, naming
// the hop that failed and never a password, at most once a second per hop
// so that a dead proxy cannot flood the log.
type failLog struct {
	next proxy.Dialer
	log  *slog.Logger
	mu   sync.Mutex
	last map[string]time.Time
}

// maxFailKeys bounds failLog's memory; past it, it starts over.
const maxFailKeys = 256

func (f *failLog) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	c, err := f.next.DialContext(ctx, network, address)
	if err != nil {
		f.report(ctx, network, address, err)
	}
	return c, err
}

func (f *failLog) DialPacket(ctx context.Context, network, address string) (net.Conn, error) {
	pd, ok := f.next.(proxy.PacketDialer)
	if !ok {
		return nil, fmt.Errorf("dial %s %s: %w", network, address, proxy.ErrUDPUnsupported)
	}
	c, err := pd.DialPacket(ctx, network, address)
	if err != nil {
		f.report(ctx, network, address, err)
	}
	return c, err
}

func (f *failLog) report(ctx context.Context, network, address string, err error) {
	if errors.Is(err, context.Canceled) && ctx.Err() != nil {
		return // tungate is stopping
	}
	if warnUDPRefused(f.log, address, err) {
		return
	}
	hop, index := "", 0
	if he, ok := errors.AsType[*proxy.HopError](err); ok {
		hop, index = he.Hop, he.Index
	}
	now := time.Now()
	f.mu.Lock()
	if now.Sub(f.last[hop]) < time.Second {
		f.mu.Unlock()
		return
	}
	if len(f.last) >= maxFailKeys {
		clear(f.last)
	}
	f.last[hop] = now
	f.mu.Unlock()
	f.log.Warn("proxy dial failed", "hop", index, "proxy", hop, "network", network, "dst", address, "err", err)
}

// proxyList is the repeatable --proxy flag: the hops in order.
type proxyList struct{ hops []*proxy.Hop }

func (l *proxyList) String() string {
	if len(l.hops) == 0 {
		return ""
	}
	s := make([]string, len(l.hops))
	for i, h := range l.hops {
		s[i] = h.Redacted()
	}
	return strings.Join(s, " -> ")
}

func (l *proxyList) Set(s string) error {
	hop, err := proxy.ParseURL(s)
	if err != nil {
		return err
	}
	l.hops = append(l.hops, hop)
	return nil
}

func (l *proxyList) Type() string { return "URL" }

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
