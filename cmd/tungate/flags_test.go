package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

func TestUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string // in the one-line message
	}{
		{[]string{"--bogus"}, "--bogus"},
		{[]string{"--mtu", "abc"}, "--mtu"},
		{[]string{"--mtu", "100"}, "--mtu"},
		{[]string{"--address", "10.0.0.1"}, "--address"},
		{[]string{"--device", "bogus://x"}, "tun://NAME or fd://N"},
		{[]string{"--device", "tun://"}, "--device"},
		{[]string{"--device", "tun://waytoolongname00"}, "1 to 15"},
		{[]string{"--device", "fd://x"}, "fd://N"},
		{[]string{"--udp-timeout", "-1s"}, "--udp-timeout"},
		{[]string{"--log-level", "loud"}, "debug, info, warn or error"},
		{[]string{"--cpus", "-1"}, "--cpus"},
		{[]string{"run", "--cpus", "many", "--", "true"}, "--cpus"},
		{[]string{"--icmp-rate", "0"}, "--icmp-rate"},
		{[]string{"--max-flows", "10", "--max-udp-sessions", "20"}, "--max-udp-sessions 20 is above --max-flows 10"},
		{[]string{"run", "--max-udp-sessions", "40000", "--", "true"}, "is above --max-flows 32768"},
		{[]string{"--tun-queues", "0"}, "from 1 to 256"},
		{[]string{"run", "--tun-queues", "257", "--", "true"}, "--tun-queues"},
		{[]string{"--seccomp=maybe"}, "--seccomp"},
		{[]string{"run", "--seccomp=maybe", "--", "true"}, "--seccomp"},
		{[]string{"extra"}, "unexpected argument"},
	}
	for _, tc := range cases {
		var stderr bytes.Buffer
		err := run(context.Background(), tc.args, &bytes.Buffer{}, &stderr)
		code := exitCode(err, &stderr)
		if code != exitUsage {
			t.Errorf("%v: exit %d, want %d (err %v)", tc.args, code, exitUsage, err)
			continue
		}
		first, _, _ := strings.Cut(stderr.String(), "\n")
		if !strings.HasPrefix(first, "tungate: ") || !strings.Contains(first, tc.want) {
			t.Errorf("%v: message %q; want one line starting with \"tungate: \" mentioning %q", tc.args, first, tc.want)
		}
	}
}

func TestGoodFlags(t *testing.T) {
	var cfg gatewayConfig
	fs := newTestFlagSet(&cfg)
	err := fs.Parse([]string{"-d", "fd://3", "--address", "10.1.0.1/24", "--address", "fd00::1/64",
		"--mtu", "9000", "--fwmark", "0x1", "--log-level", "debug"})
	if err != nil {
		t.Fatal(err)
	}
	if cfg.device.fd != 3 || cfg.mtu != 9000 || cfg.fwmark != 1 || cfg.logLevel.String() != "debug" {
		t.Fatalf("parsed %+v", cfg)
	}
	if got := cfg.addresses.String(); got != "10.1.0.1/24,fd00::1/64" {
		t.Fatalf("addresses %q replace the defaults", got)
	}
	if err := cfg.validate(); err != nil {
		t.Fatal(err)
	}
}

func TestDefaults(t *testing.T) {
	var cfg gatewayConfig
	if err := newTestFlagSet(&cfg).Parse(nil); err != nil {
		t.Fatal(err)
	}
	if cfg.device.String() != "tun://tungate0" || cfg.addresses.String() != "198.18.0.1/24,fd74:6761:7465::1/64" {
		t.Fatalf("defaults: device %s, addresses %s", cfg.device.String(), cfg.addresses.String())
	}
}

func TestVersionAndHelp(t *testing.T) {
	for _, arg := range []string{"--version", "-h"} {
		var out bytes.Buffer
		if err := run(context.Background(), []string{arg}, &out, &bytes.Buffer{}); err != nil {
			t.Fatalf("%s: %v", arg, err)
		}
		if !strings.Contains(out.String(), "tungate") {
			t.Fatalf("%s printed %q", arg, out.String())
		}
	}
}
