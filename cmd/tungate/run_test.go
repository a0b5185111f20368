package main

import (
	"errors"
	"io"
	"slices"
	"strings"
	"testing"

	"github.com/spf13/pflag"
)

func TestParseRunFlags(t *testing.T) {
	rc, err := parseRunFlags([]string{"--dns", "192.0.2.53", "--dns", "[2001:db8::53]:5353", "-p", "8080:80", "--publish", "127.0.0.1:5353:53/udp", "--mtu", "1400", "curl", "-v", "--dns", "x"}, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"curl", "-v", "--dns", "x"}; !slices.Equal(rc.command, want) {
		t.Errorf("command = %q, want %q (flags after it are the command's)", rc.command, want)
	}
	if len(rc.gw.dns.values) != 2 || rc.gw.dns.values[1].Port() != 5353 {
		t.Errorf("dns = %v", rc.gw.dns.values)
	}
	if len(rc.publish.values) != 2 || rc.publish.values[1].Network != "udp" {
		t.Errorf("publish = %v", rc.publish.values)
	}
	if rc.gw.mtu != 1400 || rc.gw.logLevel.level.String() != "WARN" {
		t.Errorf("mtu %d, log level %v", rc.gw.mtu, rc.gw.logLevel.level)
	}
	rc, err = parseRunFlags([]string{"--", "sh", "-c", "true"}, io.Discard)
	if err != nil || !slices.Equal(rc.command, []string{"sh", "-c", "true"}) {
		t.Errorf("with --: %v, %v", rc, err)
	}
}

func TestParseRunFlagsErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{nil, "no command"},
		{[]string{"--netns-path", "/run/netns/x", "true"}, "--netns-path runs no command"},
		{[]string{"--dns", "resolver.example", "true"}, "--dns"},
		{[]string{"-p", "80", "true"}, "--publish"},
		{[]string{"--mtu", "100", "true"}, "--mtu"},
		{[]string{"--device", "tun://x", "true"}, "unknown flag: --device"},
	} {
		_, err := parseRunFlags(tc.args, io.Discard)
		if err == nil || !isUsage(err) || !strings.Contains(err.Error(), tc.want) {
			t.Errorf("%q: %v, want a usage error mentioning %q", tc.args, err, tc.want)
		}
	}
	var out strings.Builder
	if _, err := parseRunFlags([]string{"--help"}, &out); !errors.Is(err, pflag.ErrHelp) || !strings.Contains(out.String(), "--allow-host-loopback") {
		t.Errorf("--help: %v, %q", err, out.String())
	}
}
