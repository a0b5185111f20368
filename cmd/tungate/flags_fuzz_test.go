package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// FuzzGatewayFlags feeds arbitrary values to every typed flag: parsing
// must never panic, and a rejected value is a one-line usage error.
func FuzzGatewayFlags(f *testing.F) {
	for _, seed := range []string{"tun://tg0", "fd://3", "10.0.0.1/24", "1500", "0x10", "10s", "debug", "socks5://u:p@h:1", "", "://", "fd://-1", "corp=socks5://h:1", "=x", "10.0.0.0/8,tcp=direct", "domain:a.example=block"} {
		f.Add(seed)
	}
	flags := []string{"--device", "--address", "--mtu", "--fwmark", "--udp-timeout", "--log-level", "--proxy", "--udp", "--dns-mode", "--route"}
	f.Fuzz(func(t *testing.T, value string) {
		for _, flag := range flags {
			var cfg gatewayConfig
			fs := newTestFlagSet(&cfg)
			if err := fs.Parse([]string{flag, value}); err == nil {
				continue
			}
			var stderr bytes.Buffer
			err := run(context.Background(), []string{flag, value}, &bytes.Buffer{}, &stderr)
			if code := exitCode(err, &stderr); code != exitUsage {
				t.Fatalf("%s %q: exit %d, want %d", flag, value, code, exitUsage)
			}
			if n := strings.Count(stderr.String(), "\n"); n != 1 {
				t.Fatalf("%s %q: %d lines of error:\n%s", flag, value, n, stderr.String())
			}
		}
	})
}
