package main

import (
	"bytes"
	"context"
	"github.com/tungate/tungate/forwarder/udpnat"
	"strings"
	"testing"
	"time"
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

// TestUDPUnrepliedTimeoutFlag: 30s by default (cut to a shorter
// --udp-timeout), any positive duration up to --udp-timeout, and a
// one-line usage error (exit 2) for a bad value or one given longer than
// --udp-timeout, in the gateway and in `tungate run`.
func TestUDPUnrepliedTimeoutFlag(t *testing.T) {
	var cfg gatewayConfig
	if err := newTestFlagSet(&cfg).Parse(nil); err != nil {
		t.Fatal(err)
	}
	if cfg.udpUnreplied.d != 30*time.Second || cfg.validateUDP() != nil || cfg.udpUnreplied.d != 30*time.Second {
		t.Fatalf("default --udp-unreplied-timeout %v; want 30s", cfg.udpUnreplied.d)
	}
	// The default is cut to a shorter --udp-timeout, not refused.
	cfg = gatewayConfig{}
	if err := newTestFlagSet(&cfg).Parse([]string{"--udp-timeout", "1s"}); err != nil {
		t.Fatal(err)
	}
	if err := cfg.validateUDP(); err != nil || cfg.udpUnreplied.d != time.Second {
		t.Fatalf("--udp-timeout 1s alone: %v, unreplied timeout %v; want accepted, 1s", err, cfg.udpUnreplied.d)
	}
	cfg = gatewayConfig{}
	fs := newTestFlagSet(&cfg)
	if err := fs.Parse([]string{"--udp-unreplied-timeout", "5s", "--udp-timeout", "5s"}); err != nil || cfg.udpUnreplied.d != 5*time.Second {
		t.Fatalf("--udp-unreplied-timeout 5s: %v, parsed %v", err, cfg.udpUnreplied.d)
	}
	if err := cfg.validateUDP(); err != nil {
		t.Fatalf("equal timeouts: %v; want accepted", err)
	}
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"--udp-unreplied-timeout", "soon"}, "want a positive duration"},
		{[]string{"--udp-unreplied-timeout", "0s"}, "want a positive duration"},
		{[]string{"--udp-unreplied-timeout", "90s"}, "--udp-unreplied-timeout 1m30s is longer than --udp-timeout 1m0s"},
		{[]string{"--udp-timeout", "10s", "--udp-unreplied-timeout", "11s"}, "is longer than --udp-timeout 10s"},
		{[]string{"run", "--udp-unreplied-timeout", "2m", "--", "true"}, "is longer than --udp-timeout"},
	} {
		var stderr bytes.Buffer
		err := run(context.Background(), tc.args, &bytes.Buffer{}, &stderr)
		code := exitCode(err, &stderr)
		lines := strings.Split(strings.TrimSpace(stderr.String()), "\n")
		if code != exitUsage || len(lines) != 1 || !strings.Contains(lines[0], tc.want) {
			t.Errorf("%q: exit %d, stderr %q; want exit %d and one line containing %q", tc.args, code, stderr.String(), exitUsage, tc.want)
		}
	}
}
