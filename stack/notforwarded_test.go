package stack

import (
	"net"
	"net/netip"
	"testing"

	"github.com/vishvananda/netlink"
)

func TestDirectedBroadcast(t *testing.T) {
	for _, tc := range []struct {
		cidr, bcast, want string // want "" means none
	}{
		{"192.168.1.7/24", "", "192.168.1.255"},
		{"10.0.0.1/8", "", "10.255.255.255"},
		{"172.16.5.9/20", "", "172.16.15.255"},
		{"192.168.1.7/24", "192.168.1.127", "192.168.1.127"}, // the kernel's wins
		{"10.1.1.1/31", "", ""},
		{"10.1.1.1/32", "", ""},
		{"fd00::1/64", "", ""},
	} {
		ip, ipnet, err := net.ParseCIDR(tc.cidr)
		if err != nil {
			t.Fatal(err)
		}
		ipnet.IP = ip
		a := netlink.Addr{IPNet: ipnet}
		if tc.bcast != "" {
			a.Broadcast = net.ParseIP(tc.bcast)
		}
		got, ok := directedBroadcast(a)
		switch {
		case tc.want == "" && ok:
			t.Errorf("%s: broadcast %s, want none", tc.cidr, got)
		case tc.want != "" && (!ok || got != netip.MustParseAddr(tc.want)):
			t.Errorf("%s: broadcast %s (%v), want %s", tc.cidr, got, ok, tc.want)
		}
	}
}

func TestSubnetBroadcasts(t *testing.T) {
	var ps []netip.Prefix
	for _, p := range []string{"198.18.0.1/24", "fd74:6761:7465::1/64", "10.1.0.1/30", "10.2.0.1/31", "10.3.0.1/32", "::ffff:10.4.0.1/112"} {
		ps = append(ps, netip.MustParsePrefix(p))
	}
	got := subnetBroadcasts(ps)
	want := []netip.Addr{netip.MustParseAddr("198.18.0.255"), netip.MustParseAddr("10.1.0.3")}
	if len(got) != len(want) || got[0] != want[0] || got[1] != want[1] {
		t.Errorf("subnetBroadcasts = %v, want %v", got, want)
	}
}
