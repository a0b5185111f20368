package main

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/fakedns"
	"github.com/tungate/tungate/forwarder/proxy"
)

func TestProxyFlagDefaults(t *testing.T) {
	cases := []struct {
		args              []string
		wantUDP, wantDNS  string
		wantHops, proxied int
	}{
		{nil, "proxy", "forward", 0, 0},
		{[]string{"-x", "direct://"}, "proxy", "forward", 1, 0},
		{[]string{"-x", "socks5://u:p%40ss@h:1080"}, "proxy", "fake", 1, 1},
		{[]string{"--proxy", "http://h:3128"}, "block", "fake", 1, 1},
		{[]string{"-x", "socks4a://h:1", "--udp", "direct", "--dns-mode", "forward"}, "direct", "forward", 1, 1},
		{[]string{"-x", "socks5://a:1", "-x", "socks5://b:2"}, "block", "fake", 2, 1},
		{[]string{"--udp", "block"}, "block", "forward", 0, 0},
	}
	for _, tc := range cases {
		var cfg gatewayConfig
		fs := newTestFlagSet(&cfg)
		if err := fs.Parse(tc.args); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		if err := cfg.validate(); err != nil {
			t.Fatalf("%v: %v", tc.args, err)
		}
		p := &cfg.proxy
		if p.udp.mode != tc.wantUDP || p.dns.mode != tc.wantDNS || len(p.hops.hops) != tc.wantHops || p.proxied() != (tc.proxied == 1) {
			t.Errorf("%v: udp %s dns %s hops %d proxied %v", tc.args, p.udp.mode, p.dns.mode, len(p.hops.hops), p.proxied())
		}
	}
}

func TestProxyUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--proxy", "socks5://h"}, "--proxy"},
		{[]string{"-x", "ftp://h:1"}, "unknown scheme"},
		{[]string{"-x", "socks5://h:1", "-x", "socks5://i:2", "--udp", "proxy"}, "a chain of 2 proxies carries TCP only"},
		{[]string{"-x", "http://h:1", "--udp", "proxy"}, "http proxies carry TCP only"},
		{[]string{"--udp", "sometimes"}, "--udp"},
		{[]string{"--dns-mode", "real"}, "--dns-mode"},
		{[]string{"--handshake-timeout", "0s"}, "--handshake-timeout"},
	}
	for _, tc := range cases {
		var stderr bytes.Buffer
		err := run(context.Background(), tc.args, &bytes.Buffer{}, &stderr)
		if code := exitCode(err, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (err %v)", tc.args, code, exitUsage, err)
			continue
		}
		if first, _, _ := strings.Cut(stderr.String(), "\n"); !strings.Contains(first, tc.want) {
			t.Errorf("%v: message %q lacks %q", tc.args, first, tc.want)
		}
	}
}

// hopFails is a dialer whose every dial fails at hop 2.
type hopFails struct{ calls int }

func (h *hopFails) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	h.calls++
	return nil, &proxy.HopError{Index: 2, Hop: "socks5://bob@h:1080", Err: proxy.ErrRefused}
}

func TestFailLogRateLimited(t *testing.T) {
	var buf bytes.Buffer
	f := &failLog{next: &hopFails{}, log: slog.New(slog.NewTextHandler(&buf, nil)), last: make(map[string]time.Time)}
	for range 5 {
		if _, err := f.DialContext(context.Background(), "tcp4", "10.0.0.1:80"); !errors.Is(err, proxy.ErrRefused) {
			t.Fatal(err)
		}
	}
	if n := strings.Count(buf.String(), "proxy dial failed"); n != 1 {
		t.Fatalf("%d warnings for 5 failures within a second:\n%s", n, buf.String())
	}
	if line := buf.String(); !strings.Contains(line, "hop=2") || !strings.Contains(line, "bob@h:1080") || !strings.Contains(line, "dst=10.0.0.1:80") {
		t.Fatalf("warning %q does not name the hop and destination", line)
	}
}

func TestUpstreamBlockAllowsFakeDNSOnly(t *testing.T) {
	c := proxyConfig{handshakeTimeout: time.Second}
	c.hops.Set("http://127.0.0.1:3128")
	if err := c.validate(); err != nil {
		t.Fatal(err)
	}
	u, err := newUpstream(&c, &proxy.Direct{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	allow := u.allow(func(network string, dst netip.AddrPort) bool { return dst.Addr() != netip.MustParseAddr("10.9.9.9") })
	for _, tc := range []struct {
		network, dst string
		want         bool
	}{
		{"udp", "10.0.0.1:443", false},
		{"udp", "10.0.0.1:53", true},
		{"udp", "10.9.9.9:53", false}, // the next policy still applies
		{"tcp", "10.0.0.1:443", true},
	} {
		if got := allow(tc.network, netip.MustParseAddrPort(tc.dst)); got != tc.want {
			t.Errorf("allow(%s, %s) = %v, want %v", tc.network, tc.dst, got, tc.want)
		}
	}
	outer := u.outer(u.dialer)
	if outer != u.fake || u.rename.Next != u.dialer {
		t.Fatal("fake DNS is not the outermost dialer")
	}
	// A query to any address on port 53 is answered with a fake address
	// that names what was asked, though the proxy carries no UDP.
	dc, err := outer.(proxy.PacketDialer).DialPacket(context.Background(), "udp4", "10.0.0.1:53")
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
	if name, ok := u.rename.Resolver.Name(a); !fakedns.DefaultPrefix4.Contains(a) || !ok || name != "web.test" {
		t.Fatalf("answered %s, which names %q", a, name)
	}
	pd := u.dialer.(proxy.PacketDialer)
	if _, err := pd.DialPacket(context.Background(), "udp4", "10.0.0.1:443"); !errors.Is(err, proxy.ErrUDPUnsupported) {
		t.Fatalf("UDP through an HTTP proxy: %v", err)
	}
}
