package main_test

import (
	"net/netip"
	"testing"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// arOtherUID is the uid the uid tests run a client as (no account needed).
const arOtherUID = 1234

// TestAutoRouteExclusions: what --exclude, --exclude-uid, --include-uid and
// --route-lan leave out or add, each with its own tungate, checked by
// whether tungate's log shows the TCP flow.
func TestAutoRouteExclusions(t *testing.T) {
	t.Parallel()
	l := newARLab(t)
	netlab.RequireBinary(t, "setpriv")
	web := func(v6 bool) netip.AddrPort { return netip.AddrPortFrom(l.internet(v6), netlab.NginxPort) }
	lanEcho := func(v6 bool) netip.AddrPort { return netip.AddrPortFrom(l.lanAddr(v6), arEchoPort) }
	// check runs each flow and wants it captured or not.
	type flow struct {
		name     string
		run      func(t *testing.T)
		dst      netip.AddrPort
		captured bool
	}
	cases := []struct {
		name  string
		args  []string
		flows []flow
	}{
		{"exclude", []string{"--exclude", netip.PrefixFrom(l.internet(false), 32).String(), "--exclude", netip.PrefixFrom(l.internet(true), 64).Masked().String()},
			[]flow{
				{"v4 excluded", func(t *testing.T) { l.curlAs(t, 0, l.internet(false)) }, web(false), false},
				{"v6 excluded", func(t *testing.T) { l.curlAs(t, 0, l.internet(true)) }, web(true), false},
				{"LAN direct", func(t *testing.T) { echoFrom(t, l.host, lanEcho(false)) }, lanEcho(false), false},
				{"LAN v6 direct", func(t *testing.T) { echoFrom(t, l.host, lanEcho(true)) }, lanEcho(true), false},
			}},
		{"exclude-uid", []string{"--exclude-uid", "1000-1999"},
			[]flow{
				{"other uid", func(t *testing.T) { l.curlAs(t, arOtherUID, l.internet(false)) }, web(false), false},
				{"root", func(t *testing.T) { l.curlAs(t, 0, l.internet(true)) }, web(true), true},
			}},
		{"include-uid", []string{"--include-uid", "1234"},
			[]flow{
				{"root", func(t *testing.T) { l.curlAs(t, 0, l.internet(false)) }, web(false), false},
				{"included uid", func(t *testing.T) { l.curlAs(t, arOtherUID, l.internet(true)) }, web(true), true},
			}},
		{"interface", []string{"--interface", l.upVeth},
			[]flow{
				{"v4 captured", func(t *testing.T) { l.curlAs(t, 0, l.internet(false)) }, web(false), true},
				{"v6 captured", func(t *testing.T) { l.curlAs(t, 0, l.internet(true)) }, web(true), true},
			}},
		{"route-lan", []string{"--route-lan"},
			[]flow{
				{"LAN captured", func(t *testing.T) { echoFrom(t, l.host, lanEcho(false)) }, lanEcho(false), true},
				{"LAN v6 captured", func(t *testing.T) { echoFrom(t, l.host, lanEcho(true)) }, lanEcho(true), true},
			}},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			gw, _ := l.start(t, tc.args...)
			t.Cleanup(func() {
				if t.Failed() {
					t.Logf("tungate %v:\n%s", tc.args, gw.Output())
				}
			})
			for _, f := range tc.flows {
				f.run(t)
				if got := f.captured && opened(gw, f.dst) || !f.captured && !notOpened(gw, f.dst); got != f.captured {
					t.Errorf("%s: flow to %s went through tungate: %v, want %v", f.name, f.dst, got, f.captured)
				}
			}
			stopClean(t, gw)
		})
	}
}
