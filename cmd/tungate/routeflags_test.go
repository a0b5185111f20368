package main

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// validatedConfig parses args as gateway flags and validates them.
func validatedConfig(t *testing.T, args []string) *gatewayConfig {
	t.Helper()
	var cfg gatewayConfig
	fs := newTestFlagSet(&cfg)
	if err := fs.Parse(args); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	if err := cfg.validate(); err != nil {
		t.Fatalf("%v: %v", args, err)
	}
	return &cfg
}

// TestRouteUsageErrors: bad rules and chains stop tungate with exit 2 and
// one line naming the rule (and for a file, the line) and what to do.
func TestRouteUsageErrors(t *testing.T) {
	dir := t.TempDir()
	bad := filepath.Join(dir, "bad.rules")
	unknown := filepath.Join(dir, "unknown.rules")
	for path, text := range map[string]string{
		bad:     "# ok\n10.0.0.0/8=direct\n10.0.0.0/33=direct\n",
		unknown: "\n\n10.0.0.0/8=corp\n",
	} {
		if err := os.WriteFile(path, []byte(text), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	cases := []struct {
		args []string
		want []string
	}{
		{[]string{"--routes", bad}, []string{bad + ":3", "10.0.0.0/33"}},
		{[]string{"--routes", unknown}, []string{unknown + ":3", `no chain named "corp"`, "-x corp=URL"}},
		{[]string{"--route", "10.0.0.0/8=nowhere"}, []string{`--route "10.0.0.0/8=nowhere"`, `no chain named "nowhere"`}},
		{[]string{"--route", "domain:=direct"}, []string{"--route"}},
		{[]string{"--route", "port:0-5=direct"}, []string{"port"}},
		{[]string{"--route", "10.0.0.0/8"}, []string{"'='"}},
		{[]string{"--route", "10.0.0.0/8=", "-x", "socks5://h:1"}, []string{"--route"}},
		{[]string{"--dns-mode", "forward", "--route", "domain:a.example=direct"}, []string{`"domain:a.example=direct"`, "use --dns-mode fake"}},
		{[]string{"-x", "block=socks5://h:1"}, []string{`chain name "block"`}},
		{[]string{"-x", "direct=socks5://h:1"}, []string{`chain name "direct"`}},
		{[]string{"-x", "=socks5://h:1"}, []string{"empty chain name"}},
		{[]string{"-x", "socks4://h:1", "--dns-mode", "fake"}, []string{"socks4a://"}},
		{[]string{"-x", "old=socks4://h:1", "--route", "domain:a.example=old"}, []string{"socks4a://", `chain "old"`}},
		{[]string{"-x", "socks4://h:1", "--route", "domain:a.example=direct"}, []string{`"domain:a.example=direct" turns on fake DNS`, "socks4a://"}},
		{[]string{"--routes", filepath.Join(dir, "missing")}, []string{"--routes", "missing"}},
	}
	for _, tc := range cases {
		for _, prefix := range [][]string{nil, {"run"}} {
			args := append(append(prefix, tc.args...), "--", "true")
			if prefix == nil {
				args = tc.args
			}
			var stderr bytes.Buffer
			err := run(context.Background(), args, &bytes.Buffer{}, &stderr)
			if code := exitCode(err, &stderr); code != exitUsage {
				t.Errorf("%v: exit %d, want %d (err %v)", args, code, exitUsage, err)
				continue
			}
			if n := strings.Count(stderr.String(), "\n"); n != 1 {
				t.Errorf("%v: %d lines of error:\n%s", args, n, stderr.String())
			}
			for _, w := range tc.want {
				if !strings.Contains(stderr.String(), w) {
					t.Errorf("%v: %q lacks %q", args, stderr.String(), w)
				}
			}
		}
	}
}

// TestChainsAndDNSModeDefaults: NAME=URL hops form chains (a URL's own
// '=' stays in the URL), and --dns-mode defaults to fake only where the
// names can be carried (issue 16: not through a socks4:// last hop), or
// where a domain: rule needs them.
func TestChainsAndDNSModeDefaults(t *testing.T) {
	cases := []struct {
		args    []string
		dns     string
		chains  string // "name:hops ..." of the named chains
		deflen  int
		proxied bool
	}{
		{[]string{"-x", "socks4://h:1"}, "forward", "", 1, true},
		{[]string{"-x", "socks4a://h:1"}, "fake", "", 1, true},
		{[]string{"-x", "socks5://h:1", "-x", "socks4://i:2"}, "forward", "", 2, true},
		{[]string{"-x", "socks4://h:1", "-x", "socks5://i:2"}, "fake", "", 2, true},
		{[]string{"--route", "domain:a.example=direct"}, "fake", "", 0, false},
		{[]string{"-x", "corp=http://10.0.0.5:3128", "-x", "tor=socks5://127.0.0.1:9050", "-x", "socks5://a:1080", "-x", "socks5://b:1080", "--route", "10.0.0.0/8=corp"},
			"fake", "corp:1 tor:1", 2, true},
		{[]string{"-x", "socks5://user:pa=ss@h:1"}, "fake", "", 1, true},
		{[]string{"-x", "corp=socks5://u:a=b@h:1", "-x", "corp=http://i:2"}, "forward", "corp:2", 0, false},
	}
	for _, tc := range cases {
		p := &validatedConfig(t, tc.args).proxy
		var chains []string
		for _, n := range p.hops.names {
			chains = append(chains, n+":"+string(rune('0'+len(p.hops.named[n]))))
		}
		if p.dns.mode != tc.dns || strings.Join(chains, " ") != tc.chains || len(p.hops.hops) != tc.deflen || p.proxied() != tc.proxied {
			t.Errorf("%v: dns %s chains %q default hops %d proxied %v", tc.args, p.dns.mode, chains, len(p.hops.hops), p.proxied())
		}
	}
}
