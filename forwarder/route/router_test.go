package route

import (
	"context"
	"net"
	"net/netip"
	"strings"
	"testing"
)

// nopDialer is an upstream dialer that is never dialed here.
type nopDialer struct{}

func (nopDialer) DialContext(context.Context, string, string) (net.Conn, error) {
	return nil, net.ErrClosed
}
func (nopDialer) DialPacket(context.Context, string, string) (net.Conn, error) {
	return nil, net.ErrClosed
}

// fakeServer is an in-process server that is never opened here.
type fakeServer struct{ name string }

func (fakeServer) Open(netip.AddrPort, bool) (net.Conn, error) { return nil, net.ErrClosed }

// fakeNames is a table of fake addresses: 198.19.0.0/16, with the names
// it knows.
type fakeNames map[netip.Addr]string

func (n fakeNames) Contains(a netip.Addr) bool {
	return netip.MustParsePrefix("198.19.0.0/16").Contains(a.Unmap())
}

func (n fakeNames) Name(a netip.Addr) (string, bool) {
	name, ok := n[a.Unmap()]
	return name, ok
}

func mustTable(t testing.TB, text string) *Table { return NewTable(mustRules(t, text)) }

type routerFixture struct {
	direct, def, corp, tcpOnly *Upstream
	fake, resolver             fakeServer
	r                          *Router
}

func newRouterFixture(t testing.TB, rules string) *routerFixture {
	t.Helper()
	x := &routerFixture{
		direct:   &Upstream{Name: "direct", Dialer: nopDialer{}, Packets: nopDialer{}, Echo: true},
		def:      &Upstream{Name: "proxy", Dialer: nopDialer{}, Packets: nopDialer{}, Proxied: true},
		corp:     &Upstream{Name: "corp", Dialer: nopDialer{}, Packets: nopDialer{}, Proxied: true},
		tcpOnly:  &Upstream{Name: "web", Dialer: nopDialer{}, Proxied: true},
		fake:     fakeServer{"fake"},
		resolver: fakeServer{"resolver"},
	}
	loopVia := &Upstream{Name: "host-loopback", Dialer: nopDialer{}, Packets: nopDialer{}}
	r, err := New(Options{
		Direct:  x.direct,
		Default: x.def,
		Chains:  map[string]*Upstream{"corp": x.corp, "web": x.tcpOnly},
		Rules:   mustTable(t, rules),
		FakeDNS: &FakeDNS{Server: x.fake, Names: fakeNames{
			netip.MustParseAddr("198.19.0.5"): "a.corp.example",
			netip.MustParseAddr("198.19.0.6"): "ads.example",
			netip.MustParseAddr("198.19.0.7"): "www.example",
		}},
		Resolver: &Resolver{Addrs: []netip.Addr{netip.MustParseAddr("198.18.0.2")}, Server: x.resolver},
		HostLoopback: HostLoopback{
			Refuse: true, Allow: true, Via: loopVia,
			Map: map[netip.Addr]netip.Addr{netip.MustParseAddr("198.18.0.3"): netip.MustParseAddr("127.0.0.1")},
		},
	})
	if err != nil {
		t.Fatal(err)
	}
	x.r = r
	return x
}

const fixtureRules = `
10.0.0.0/8=direct
10.1.0.0/16=block        # never wins: the /8 comes first
domain:corp.example=corp
domain:ads.example=block
udp,port:443=block
192.0.2.0/24=web
all=proxy
`

func TestRouterDecides(t *testing.T) {
	x := newRouterFixture(t, fixtureRules)
	cases := []struct {
		proto    Proto
		dst      string
		kind     Kind
		upstream string
		to       string
		why      string // rule text or builtin:NAME
	}{
		{TCP, "10.1.2.3:80", Dial, "direct", "10.1.2.3:80", "10.0.0.0/8=direct"},
		{TCP, "198.19.0.5:443", Dial, "corp", "a.corp.example:443", "domain:corp.example=corp"},
		{TCP, "198.19.0.6:443", Refuse, "", "", "domain:ads.example=block"},
		{TCP, "198.19.0.7:443", Dial, "proxy", "www.example:443", "all=proxy"},
		{TCP, "198.19.0.9:443", Refuse, "", "", "builtin:fake-unknown"},
		{UDP, "203.0.113.1:443", Refuse, "", "", "udp,port:443=block"},
		{UDP, "192.0.2.1:4000", Refuse, "web", "", "builtin:no-udp"},
		{TCP, "192.0.2.1:4000", Dial, "web", "192.0.2.1:4000", "192.0.2.0/24=web"},
		{UDP, "8.8.8.8:53", Answer, "", "", "builtin:fake-dns"},
		{TCP, "198.18.0.2:53", Answer, "", "", "builtin:fake-dns"},
		{TCP, "198.18.0.2:80", Refuse, "", "", "builtin:resolver"},
		{TCP, "127.0.0.1:22", Refuse, "", "", "builtin:host-loopback"},
		{TCP, "[::ffff:198.18.0.3]:22", Dial, "host-loopback", "127.0.0.1:22", "builtin:host-loopback"},
		{ICMP, "198.18.0.3:0", Refuse, "", "", "builtin:host-loopback"},
		{ICMP, "10.1.1.1:0", Dial, "direct", "10.1.1.1:0", "10.0.0.0/8=direct"},
		{ICMP, "203.0.113.1:0", Refuse, "proxy", "", "builtin:no-icmp"},
		{ICMP, "198.19.0.5:0", Refuse, "corp", "", "builtin:no-icmp"},
	}
	for _, tc := range cases {
		f := Flow{Proto: tc.proto, Src: netip.MustParseAddrPort("198.18.0.1:40000"), Dst: netip.MustParseAddrPort(tc.dst)}
		d := x.r.Decide(&f)
		why := "builtin:" + d.Builtin
		if d.Rule != nil && d.Builtin == "" {
			why = d.Rule.Text
		}
		name := ""
		if d.Upstream != nil {
			name = d.Upstream.Name
		}
		to := ""
		if d.Kind == Dial {
			to = d.Dst.String()
		}
		if d.Kind != tc.kind || name != tc.upstream || to != tc.to || why != tc.why {
			t.Errorf("%s %s: %v via %q to %q by %q; want %v via %q to %q by %q",
				tc.proto, tc.dst, d.Kind, name, to, why, tc.kind, tc.upstream, tc.to, tc.why)
		}
	}
}

func TestRouterDefaultsWithoutRules(t *testing.T) {
	direct := &Upstream{Name: "direct", Dialer: nopDialer{}, Packets: nopDialer{}, Echo: true}
	r, err := New(Options{Direct: direct})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []Proto{TCP, UDP, ICMP} {
		f := Flow{Proto: p, Dst: netip.MustParseAddrPort("[2001:db8::1]:53")}
		if d := r.Decide(&f); d.Kind != Dial || d.Upstream != direct || d.Builtin != "default" || d.Dst.Addr != f.Dst {
			t.Errorf("%s: %+v", p, d)
		}
	}
}

func TestRouterRejectsBadChains(t *testing.T) {
	direct := &Upstream{Name: "direct", Dialer: nopDialer{}}
	_, err := New(Options{Direct: direct, Rules: mustTable(t, "10.0.0.0/8=nosuch\n")})
	if err == nil || !strings.Contains(err.Error(), "test:1") || !strings.Contains(err.Error(), `"nosuch"`) {
		t.Fatalf("unknown chain: %v", err)
	}
	if _, err := New(Options{Direct: direct, Chains: map[string]*Upstream{"block": direct}}); err == nil {
		t.Fatal("a chain named block was accepted")
	}
}

func TestBlocksName(t *testing.T) {
	rules := mustTable(t, "domain:ads.example=block\ntcp,domain:x.example=block\ndomain:ok.example=direct\n")
	for name, want := range map[string]bool{
		"ads.example": true, "a.ads.example": true, "badads.example": false,
		"x.example": false, "ok.example": false, "other": false,
	} {
		if got := BlocksName(rules, name); got != want {
			t.Errorf("BlocksName(%q) = %v, want %v", name, got, want)
		}
	}
	if BlocksName(nil, "ads.example") {
		t.Error("a nil table blocks")
	}
}

func TestReachesHostLoopback(t *testing.T) {
	for _, a := range []string{"127.0.0.1", "127.255.0.9", "::1", "0.0.0.0", "0.1.2.3", "::", "::ffff:127.0.0.1", "::ffff:0.0.0.0", "::ffff:127.1.1.1"} {
		if !ReachesHostLoopback(netip.MustParseAddr(a)) {
			t.Errorf("%s: not caught", a)
		}
	}
	for _, a := range []string{"198.18.0.3", "10.0.0.1", "::2", "fd74:6761:7465::3", "::ffff:10.0.0.1", "128.0.0.1", "1.0.0.0"} {
		if ReachesHostLoopback(netip.MustParseAddr(a)) {
			t.Errorf("%s: caught", a)
		}
	}
}

func TestDecideDoesNotAllocate(t *testing.T) {
	x := newRouterFixture(t, fixtureRules)
	f := Flow{Proto: TCP, Src: netip.MustParseAddrPort("198.18.0.1:40000"), Dst: netip.MustParseAddrPort("198.19.0.5:443")}
	if n := testing.AllocsPerRun(100, func() {
		g := f
		x.r.Decide(&g)
	}); n != 0 {
		t.Fatalf("%v allocations per decision", n)
	}
}

// TestTargetNetworkFamily: UDP to a name behind a fake address goes to the
// fake address's family (the one the app looked up); TCP to a name, and a
// name without a fake address, may use either.
func TestTargetNetworkFamily(t *testing.T) {
	x := newRouterFixture(t, fixtureRules)
	f := Flow{Proto: UDP, Src: netip.MustParseAddrPort("198.18.0.1:40000"), Dst: netip.MustParseAddrPort("198.19.0.7:4000")}
	d := x.r.Decide(&f)
	if d.Kind != Dial || d.Dst.Name != "www.example" || d.Dst.Fake != netip.MustParseAddr("198.19.0.7") {
		t.Fatalf("UDP to a fake address: %+v", d)
	}
	cases := []struct {
		dst        Target
		base, want string
	}{
		{d.Dst, "udp", "udp4"},
		{d.Dst, "tcp", "tcp"},
		{Target{Name: "www.example", Port: 1, Fake: netip.MustParseAddr("fd74:6761:7465:fa4e::5")}, "udp", "udp6"},
		{NameTarget("www.example", 1), "udp", "udp"},
		{AddrTarget(netip.MustParseAddrPort("[::ffff:10.0.0.1]:1")), "udp", "udp6"},
	}
	for _, c := range cases {
		if got := c.dst.network(c.base); got != c.want {
			t.Errorf("%+v network(%s) = %s, want %s", c.dst, c.base, got, c.want)
		}
	}
}
