package main

import (
	"bytes"
	"context"
	"strings"
	"testing"

	"github.com/tungate/tungate/stack/hostroute"
)

func TestAutoRouteUsageErrors(t *testing.T) {
	cases := []struct {
		args []string
		want string
	}{
		{[]string{"--auto-route", "--netns", "x"}, "--netns"},
		{[]string{"--auto-route", "--no-routes"}, "--no-routes"},
		{[]string{"--auto-route", "--device", "fd://3"}, "tun://NAME"},
		{[]string{"--exclude", "10.0.0.0/8"}, "--exclude only applies with --auto-route"},
		{[]string{"--exclude-uid", "1000"}, "--exclude-uid only applies"},
		{[]string{"--include-uid", "1000"}, "--include-uid only applies"},
		{[]string{"--route-lan"}, "--route-lan only applies"},
		{[]string{"--no-dns-hijack"}, "--no-dns-hijack only applies"},
		{[]string{"--fail-open"}, "--fail-open only applies"},
		{[]string{"--route-table", "5"}, "--route-table only applies"},
		{[]string{"--rule-priority", "5"}, "--rule-priority only applies"},
		{[]string{"--auto-route", "--include-uid", "10-5"}, "10-5 is empty"},
		{[]string{"--auto-route", "--exclude-uid", "x"}, "--exclude-uid"},
		{[]string{"--auto-route", "--exclude", "10.0.0.1"}, "--exclude"},
		{[]string{"--auto-route", "--route-table", "0"}, "--route-table"},
		{[]string{"--auto-route", "--rule-priority", "32760"}, "--rule-priority"},
		{[]string{"cleanup", "--route-table", "x"}, "--route-table"},
		{[]string{"cleanup", "extra"}, "unexpected argument"},
	}
	for _, tc := range cases {
		var stderr bytes.Buffer
		err := run(context.Background(), tc.args, &bytes.Buffer{}, &stderr)
		if code := exitCode(err, &stderr); code != exitUsage {
			t.Errorf("%v: exit %d, want %d (err %v)", tc.args, code, exitUsage, err)
			continue
		}
		if msg := stderr.String(); strings.Count(msg, "\n") != 1 || !strings.Contains(msg, tc.want) {
			t.Errorf("%v: message %q; want one line mentioning %q", tc.args, msg, tc.want)
		}
	}
}

func TestAutoRouteDefaults(t *testing.T) {
	cases := []struct {
		name      string
		iface     string
		fwmark    uint32
		wantMark  uint32
		wantTable int
	}{
		{"default mark", "", 0, hostroute.DefaultMark, hostroute.DefaultTable},
		{"explicit mark", "", 0x66, 0x66, hostroute.DefaultTable},
		{"interface, no mark", "eth0", 0, 0, hostroute.DefaultTable},
	}
	for _, tc := range cases {
		c := gatewayConfig{device: deviceURL{name: "tg0", fd: -1}, iface: tc.iface, fwmark: tc.fwmark}
		c.autoRoute.on = true
		if err := c.validateAutoRoute(); err != nil {
			t.Fatalf("%s: %v", tc.name, err)
		}
		if c.fwmark != tc.wantMark || c.autoRoute.table != tc.wantTable || c.autoRoute.priority != hostroute.DefaultPriority {
			t.Errorf("%s: fwmark %#x table %d priority %d; want %#x, %d, %d", tc.name, c.fwmark, c.autoRoute.table, c.autoRoute.priority,
				tc.wantMark, tc.wantTable, hostroute.DefaultPriority)
		}
	}
}

func FuzzUIDRange(f *testing.F) {
	for _, s := range []string{"0", "1000", "1000-1999", "10-5", "-", "1-", "-1", "4294967295", "4294967296", "1--2", " 1"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		var l uidRangeList
		if err := l.Set(s); err != nil {
			if len(l) != 0 {
				t.Fatalf("%q: error %v but a range was added", s, err)
			}
			return
		}
		if len(l) != 1 || l[0].First > l[0].Last {
			t.Fatalf("%q: parsed as %v", s, l)
		}
	})
}
