package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
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
		p := &validatedConfig(t, tc.args).proxy
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
