package main_test

import (
	"errors"
	"net/netip"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// TestAutoRouteCapture: with --auto-route, TCP, UDP and ping to the internet
// from every program of H enter the device (tungate's log shows the TCP
// flows; the device's counters, the UDP datagrams and echoes), IPv4 and
// IPv6, while tungate's own sockets leave by the normal route; and SIGTERM
// leaves the rule, route and nft listings byte-identical to before.
func TestAutoRouteCapture(t *testing.T) {
	t.Parallel()
	l := newARLab(t)
	netlab.RequireBinary(t, "ping")
	before := l.tables(t)
	gw, startup := l.start(t)
	for _, fam := range families {
		dst := netip.AddrPortFrom(l.internet(fam.v6), arEchoPort)
		echoFrom(t, l.host, dst)
		if !opened(gw, dst) {
			t.Fatalf("TCP to %s did not go through tungate:\n%s", dst, gw.Output())
		}
		if n := l.udpFrom(t, dst); n < 1 {
			t.Errorf("UDP echo to %s: no packet went into the device", dst)
		}
		txBefore := l.tunTX(t)
		if out, err := runIn(t, l.host, 20*time.Second, "ping", "-c", "3", "-i", "0.2", "-W", "2", l.internet(fam.v6).String()); err != nil {
			t.Errorf("ping %s: %v\n%s", l.internet(fam.v6), err, out)
		}
		if n := l.tunTX(t) - txBefore; n < 3 {
			t.Errorf("ping %s: %d packets into the device, want at least 3", l.internet(fam.v6), n)
		}
	}
	stopped := stopClean(t, gw)
	if after := l.tables(t); after != before {
		t.Fatalf("after a clean stop the tables differ.\nbefore:\n%s\nafter:\n%s", before, after)
	}
	t.Logf("--auto-route start-up (exec to msg=serving) %v, clean stop (SIGTERM to exit) %v", startup, stopped)
}

// TestAutoRouteProxy: with a SOCKS5 proxy whose own address is routed into
// the device (--route-lan captures its subnet), every flow reaches the proxy
// (dante logs it), tungate's connection to the proxy does not loop, and a
// query to the LAN resolver gets a fake answer while the resolver sees no
// query.
func TestAutoRouteProxy(t *testing.T) {
	t.Parallel()
	l := newARLab(t)
	// dante listens on I's veth address, on a connected subnet of H: only
	// --route-lan sends it into the device.
	pl := &proxyLab{srv: l.inet, net: l.upNet, srvVeth: l.inetVeth}
	d := pl.startDante(t, portDante, false)
	resolver := l.startResolver(t)
	gw, _ := l.start(t, "--route-lan", "--proxy", pl.proxyURL("socks5", nil, portDante))
	for _, fam := range families {
		dst := netip.AddrPortFrom(l.internet(fam.v6), arEchoPort)
		echoFrom(t, l.host, dst)
		if !strings.Contains(d.Log(), dst.Addr().String()) {
			t.Fatalf("dante did not connect to %s:\n%s\ntungate:\n%s", dst, d.Log(), gw.Output())
		}
		// UDP goes through dante's UDP ASSOCIATE relay.
		if n := l.udpFrom(t, dst); n < 1 {
			t.Errorf("UDP echo to %s: no packet went into the device", dst)
		}
	}
	if !strings.Contains(d.Log(), "udp/udpassociate") {
		t.Errorf("dante relayed no UDP:\n%s", d.Log())
	}
	answer, err := dig(t, l.host, l.lanAddr(false), arResolverName)
	if err != nil {
		t.Fatalf("dig: %v\n%s", err, answer)
	}
	if a, err := netip.ParseAddr(answer); err != nil || !netip.MustParsePrefix("198.19.0.0/16").Contains(a) {
		t.Fatalf("the LAN resolver's answer %q is not a fake address: DNS was not hijacked", answer)
	}
	if strings.Contains(resolver.Output(), "query[") {
		t.Fatalf("the LAN resolver saw a query:\n%s", resolver.Output())
	}
	stopClean(t, gw)
}

// arResolverName is a name that only the LAN resolver knows.
const arResolverName = "lan.tungate.test"

// startResolver starts dnsmasq in L, logging every query, answering
// arResolverName with 192.0.2.53.
func (l *arLab) startResolver(t *testing.T) *netlab.Proc {
	t.Helper()
	netlab.RequireBinary(t, "dnsmasq")
	netlab.RequireBinary(t, "dig")
	p := l.lan.Start(t, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--bind-interfaces", "--user=root", "--group=root", "--log-facility=-", "--log-queries",
		"--pid-file=", "--listen-address="+l.lanAddr(false).String(),
		"--address=/"+arResolverName+"/192.0.2.53")
	if err := l.lan.WaitTCP(netip.AddrPortFrom(l.lanAddr(false), 53).String(), 10*time.Second); err != nil {
		t.Fatalf("dnsmasq: %v\n%s", err, p.Output())
	}
	return p
}

// TestAutoRouteDNS: without a proxy, a query to the LAN resolver still
// enters the device (DNS hijack) and is forwarded as an ordinary flow, so the
// real answer comes back; with --no-dns-hijack it goes to the LAN directly.
func TestAutoRouteDNS(t *testing.T) {
	t.Parallel()
	l := newARLab(t)
	resolver := l.startResolver(t)
	for _, tc := range []struct {
		name     string
		args     []string
		captured bool
	}{{"hijack", nil, true}, {"no-dns-hijack", []string{"--no-dns-hijack"}, false}} {
		t.Run(tc.name, func(t *testing.T) {
			gw, _ := l.start(t, tc.args...)
			txBefore := l.tunTX(t)
			answer, err := dig(t, l.host, l.lanAddr(false), arResolverName)
			if err != nil || answer != "192.0.2.53" {
				t.Fatalf("dig: %q, %v; want the LAN resolver's answer 192.0.2.53", answer, err)
			}
			if got := l.tunTX(t) > txBefore; got != tc.captured {
				t.Errorf("the query went into the device: %v, want %v", got, tc.captured)
			}
			if !strings.Contains(resolver.Output(), "query[A] "+arResolverName) {
				t.Errorf("the LAN resolver logged no query:\n%s", resolver.Output())
			}
			stopClean(t, gw)
		})
	}
}

// TestAutoRouteIPv6Disabled: with IPv6 disabled on new devices, tungate
// serves IPv4 and captured IPv6 fails with "network unreachable" instead of
// going around it.
func TestAutoRouteIPv6Disabled(t *testing.T) {
	t.Parallel()
	l := newARLab(t)
	netlab.RequireBinary(t, "sysctl")
	l.host.MustRun(t, "sysctl", "-q", "-w", "net.ipv6.conf.default.disable_ipv6=1")
	gw, _ := l.start(t)
	if !strings.Contains(gw.Output(), "IPv6 is disabled on the device") {
		t.Errorf("no warning about IPv6:\n%s", gw.Output())
	}
	dst := netip.AddrPortFrom(l.internet(false), arEchoPort)
	echoFrom(t, l.host, dst)
	if !opened(gw, dst) {
		t.Fatalf("TCP to %s did not go through tungate:\n%s", dst, gw.Output())
	}
	if err := l.dial(netip.AddrPortFrom(l.internet(true), arEchoPort)); !errors.Is(err, syscall.ENETUNREACH) {
		t.Errorf("IPv6 connect: %v, want network unreachable", err)
	}
	stopClean(t, gw)
}
