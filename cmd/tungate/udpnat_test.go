package main

import (
	"bytes"
	"context"
	"net/netip"
	"strings"
	"testing"

	"github.com/tungate/tungate/forwarder/dns"
	"github.com/tungate/tungate/forwarder/fakedns"
	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/forwarder/udpnat"
)

func TestUDPFilterFlag(t *testing.T) {
	var cfg gatewayConfig
	if err := newTestFlagSet(&cfg).Parse(nil); err != nil {
		t.Fatal(err)
	}
	if cfg.udpFilter != udpnat.FilterEndpoint {
		t.Fatalf("default --udp-filter %v; want endpoint", cfg.udpFilter)
	}
	for _, mode := range []string{"endpoint", "address", "port"} {
		var cfg gatewayConfig
		if err := newTestFlagSet(&cfg).Parse([]string{"--udp-filter", mode}); err != nil || cfg.udpFilter.String() != mode {
			t.Fatalf("--udp-filter %s: %v, parsed %v", mode, err, cfg.udpFilter)
		}
	}
	var stderr bytes.Buffer
	err := run(context.Background(), []string{"--udp-filter", "cone"}, &bytes.Buffer{}, &stderr)
	code := exitCode(err, &stderr)
	first, _, _ := strings.Cut(stderr.String(), "\n")
	if code != exitUsage || !strings.Contains(first, "endpoint, address or port") {
		t.Fatalf("--udp-filter cone: %v, %q; want a usage error naming the modes", err, first)
	}
}

func TestSharedUDPLeavesInterceptedDestinationsTheirOwnSocket(t *testing.T) {
	table, err := fakedns.New(fakedns.Options{})
	if err != nil {
		t.Fatal(err)
	}
	direct := &proxy.Direct{}
	fake, _ := table.Lookup("example.com")
	plain := &upstream{listener: direct}
	// Only whether fake DNS is on matters here.
	withFake := &upstream{listener: direct, fake: new(dns.Resolver), fakeTable: table}
	for _, tc := range []struct {
		u      *upstream
		own    func(netip.AddrPort) bool
		dst    string
		shared bool
	}{
		{plain, nil, "192.0.2.1:3478", true},
		{plain, nil, "192.0.2.1:53", true},
		{withFake, nil, "192.0.2.1:3478", true},
		{withFake, nil, "192.0.2.1:53", false},
		{withFake, nil, netip.AddrPortFrom(fake, 443).String(), false},
		{plain, runOwnsUDP, "198.18.0.2:53", false},
		{plain, runOwnsUDP, "198.18.0.3:9", false},
	} {
		got := tc.u.sharedUDP(tc.own)(netip.MustParseAddrPort(tc.dst)) != nil
		if got != tc.shared {
			t.Errorf("%s: shared %v; want %v", tc.dst, got, tc.shared)
		}
	}
	if (&upstream{}).sharedUDP(nil) != nil {
		t.Error("an upstream without a listener shares nothing")
	}
}
