package main

import (
	"bytes"
	"fmt"
	"log/slog"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
)

func TestResolverAddrs(t *testing.T) {
	cases := []struct {
		prefixes []string
		want     []string
		none     []string
	}{
		{[]string{"198.18.0.1/24", "fd74:6761:7465::1/64"}, []string{"198.18.0.2", "fd74:6761:7465::2"}, nil},
		{[]string{"10.1.0.2/24"}, []string{"10.1.0.1"}, nil},
		{[]string{"10.1.0.7/16", "10.1.0.9/16"}, []string{"10.1.0.2"}, nil},
		{[]string{"10.1.0.1/24", "10.1.0.2/24"}, nil, []string{"10.1.0.1/24", "10.1.0.2/24"}},
		{[]string{"10.1.0.1/30"}, []string{"10.1.0.2"}, nil},
		{[]string{"10.1.0.0/31"}, []string{"10.1.0.1"}, nil},
		{[]string{"10.1.0.1/31"}, nil, []string{"10.1.0.1/31"}},
		{[]string{"10.1.0.1/32", "fd00::1/128"}, nil, []string{"10.1.0.1/32", "fd00::1/128"}},
		{[]string{"fd00::5/127"}, nil, []string{"fd00::5/127"}},
		{[]string{"fd00::4/127"}, []string{"fd00::5"}, nil},
	}
	for _, c := range cases {
		var ps []netip.Prefix
		for _, p := range c.prefixes {
			ps = append(ps, netip.MustParsePrefix(p))
		}
		addrs, none := resolverAddrs(ps)
		if got := fmt.Sprint(addrs); got != fmt.Sprint(parseAll(c.want, netip.MustParseAddr)) {
			t.Errorf("%v: resolvers %s, want %v", c.prefixes, got, c.want)
		}
		if got := fmt.Sprint(none); got != fmt.Sprint(parseAll(c.none, netip.MustParsePrefix)) {
			t.Errorf("%v: none %s, want %v", c.prefixes, got, c.none)
		}
	}
}

func parseAll[T any](ss []string, parse func(string) T) []T {
	var out []T
	for _, s := range ss {
		out = append(out, parse(s))
	}
	return out
}

func TestResolverAddrsRunDefaults(t *testing.T) {
	addrs, _ := resolverAddrs(defaultAddresses)
	if !slices.Equal(addrs, nsResolverAddrs) {
		t.Errorf("the gateway's default resolver addresses %v are not run's %v", addrs, nsResolverAddrs)
	}
}

func TestNamedNetNS(t *testing.T) {
	cases := map[string]string{
		"app": "app", "/run/netns/app": "app", "/var/run/netns/app": "app", "/run/netns//app/": "app",
		"/proc/1/ns/net": "", "/tmp/app": "", "..": "", ".": "", "": "", "/run/netns/a/b": "",
	}
	for spec, want := range cases {
		got, ok := namedNetNS(spec)
		if got != want || ok != (want != "") {
			t.Errorf("namedNetNS(%q) = %q, %v; want %q", spec, got, ok, want)
		}
	}
}

func TestWriteNetNSDNS(t *testing.T) {
	base := filepath.Join(t.TempDir(), "netns")
	var logs bytes.Buffer
	log := slog.New(slog.NewTextHandler(&logs, nil))
	e := writeNetNSDNS(base, "app", nsResolverAddrs, []string{"search corp.example"}, log)
	b, err := os.ReadFile(filepath.Join(base, "app", "resolv.conf"))
	if err != nil || !strings.Contains(string(b), "nameserver 198.18.0.2\nnameserver fd74:6761:7465::2\nsearch corp.example\n") {
		t.Errorf("resolv.conf: %q, %v", b, err)
	}
	e.remove()
	if _, err := os.Stat(base); !os.IsNotExist(err) {
		t.Errorf("after remove, %s: %v; want the directories tungate made gone", base, err)
	}

	// A file that was there stays, with a warning; the directory too.
	dir := filepath.Join(base, "app")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "resolv.conf"), []byte("mine\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	writeNetNSDNS(base, "/run/netns/app", nsResolverAddrs, nil, log).remove()
	if b, err := os.ReadFile(filepath.Join(dir, "resolv.conf")); err != nil || string(b) != "mine\n" {
		t.Errorf("a resolv.conf that was there: %q, %v; want it untouched", b, err)
	}
	if !strings.Contains(logs.String(), "was there before tungate started") {
		t.Errorf("no warning; log:\n%s", logs.String())
	}

	// A namespace by path only gets a line saying which address to use.
	logs.Reset()
	writeNetNSDNS(base, "/proc/1/ns/net", nsResolverAddrs, nil, log).remove()
	if !strings.Contains(logs.String(), "198.18.0.2") {
		t.Errorf("no resolver named for a namespace by path; log:\n%s", logs.String())
	}
}
