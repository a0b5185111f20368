package main

import (
	"bytes"
	"log/slog"
	"net/netip"
	"testing"

	"github.com/tungate/tungate/forwarder/dns"
	"github.com/tungate/tungate/forwarder/fakedns"
	"github.com/tungate/tungate/forwarder/route"
)

// routingFor parses args as gateway flags and builds their routing, with
// run's additions if run is set.
func routingFor(t *testing.T, args []string, run *runRouting) *routing {
	t.Helper()
	r, err := newRouting(validatedConfig(t, args), run, new(dns.QueryCounts), slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	t.Cleanup(r.Close)
	return r
}

func decide(r *routing, proto route.Proto, dst string) route.Decision {
	f := route.Flow{Proto: proto, Src: netip.MustParseAddrPort("198.18.0.1:40000"), Dst: netip.MustParseAddrPort(dst)}
	return r.router.Decide(&f)
}

func testRun(allow bool) *runRouting {
	d := &hostDNS{servers: []netip.AddrPort{netip.MustParseAddrPort("127.0.0.53:53")}}
	return d.routing(&runConfig{allowHostLoopback: allow})
}

// TestRunRouting is what the run-mode policy was: the host's loopback
// stays out of reach in every form, and tungate's own addresses take
// only what they serve.
func TestRunRouting(t *testing.T) {
	refusedAlways := []string{
		"127.0.0.1:80", "127.3.2.1:80", "0.0.0.0:80", "0.1.2.3:80", "[::1]:80", "[::]:80",
		"[::ffff:127.0.0.1]:80", "[::ffff:0.0.0.0]:80",
		"198.18.0.2:80", "[fd74:6761:7465::2]:443",
	}
	hostLoop := []string{"198.18.0.3:80", "[fd74:6761:7465::3]:22", "[::ffff:198.18.0.3]:80"}
	answered := []string{"198.18.0.2:53", "[fd74:6761:7465::2]:53"}
	dialed := []string{"10.0.0.1:80", "[2001:db8::1]:443", "198.18.0.9:80"}
	for _, allow := range []bool{false, true} {
		r := routingFor(t, nil, testRun(allow))
		check := func(dsts []string, proto route.Proto, want route.Kind) {
			for _, d := range dsts {
				if got := decide(r, proto, d); got.Kind != want {
					t.Errorf("allow-host-loopback=%v: %s %s: %v, want %v", allow, proto, d, got.Kind, want)
				}
			}
		}
		loopKind := route.Refuse
		if allow {
			loopKind = route.Dial
		}
		for _, p := range []route.Proto{route.TCP, route.UDP} {
			check(refusedAlways, p, route.Refuse)
			check(answered, p, route.Answer)
			check(dialed, p, route.Dial)
			check(hostLoop, p, loopKind)
		}
		check(hostLoop, route.ICMP, route.Refuse)
		check([]string{"198.18.0.2:0", "127.0.0.1:0"}, route.ICMP, route.Refuse)
		if allow {
			d := decide(r, route.TCP, "[::ffff:198.18.0.3]:80")
			if d.Dst.Addr != netip.MustParseAddrPort("127.0.0.1:80") || d.Upstream.Proxied || d.Upstream.Name != "host-loopback" {
				t.Errorf("host loopback dialed %v through %s", d.Dst, d.Upstream.Name)
			}
		}
	}
}

// TestBlockedUDPAllowsFakeDNSOnly: through an HTTP proxy (no UDP), DNS
// to any address is still answered by fake DNS, and other UDP refused.
func TestBlockedUDPAllowsFakeDNSOnly(t *testing.T) {
	r := routingFor(t, []string{"-x", "http://127.0.0.1:3128"}, nil)
	for _, tc := range []struct {
		proto route.Proto
		dst   string
		want  route.Kind
	}{
		{route.UDP, "10.0.0.1:443", route.Refuse},
		{route.UDP, "10.0.0.1:53", route.Answer},
		{route.TCP, "10.0.0.1:53", route.Answer},
		{route.TCP, "10.0.0.1:443", route.Dial},
		{route.ICMP, "10.0.0.1:0", route.Refuse},
	} {
		if got := decide(r, tc.proto, tc.dst); got.Kind != tc.want {
			t.Errorf("%s %s: %v, want %v", tc.proto, tc.dst, got.Kind, tc.want)
		}
	}
	// A query is answered with a fake address that names what was asked,
	// and a flow to it is dialed by name through the proxy.
	d := decide(r, route.UDP, "10.0.0.1:53")
	dc, err := d.Server.Open(netip.MustParseAddrPort("10.0.0.1:53"), false)
	if err != nil {
		t.Fatal(err)
	}
	defer dc.Close()
	q := []byte{0xab, 0xcd, 1, 0, 0, 1, 0, 0, 0, 0, 0, 0, 3, 'w', 'e', 'b', 4, 't', 'e', 's', 't', 0, 0, 1, 0, 1}
	dc.Write(q)
	buf := make([]byte, 512)
	n, err := dc.Read(buf)
	if err != nil || n < len(q)+4 || !bytes.Equal(buf[:2], q[:2]) {
		t.Fatalf("answer % x, %v", buf[:n], err)
	}
	a, _ := netip.AddrFromSlice(buf[n-4 : n])
	if !fakedns.DefaultPrefix4.Contains(a) {
		t.Fatalf("answered %s, not a fake address", a)
	}
	d = decide(r, route.TCP, netip.AddrPortFrom(a, 443).String())
	if d.Kind != route.Dial || d.Dst.Name != "web.test" || d.Dst.Port != 443 || !d.Upstream.Proxied {
		t.Fatalf("flow to %s: %+v", a, d)
	}
}
