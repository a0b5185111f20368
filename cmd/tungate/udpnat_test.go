package main

import (
	"bytes"
	"context"
	"github.com/tungate/tungate/forwarder/udpnat"
	"strings"
	"testing"
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
