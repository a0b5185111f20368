package tun

import (
	"errors"
	"net/netip"
	"os/exec"
	"testing"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

var testNetConfig = NetConfig{
	MTU: 1400,
	Addresses: []netip.Prefix{
		netip.MustParsePrefix("10.201.0.1/24"),
		netip.MustParsePrefix("fd00:201::1/64"),
	},
	DefaultRoutes: true,
}

// addrsOn returns the global addresses on the link, with their flags.
func addrsOn(t *testing.T, nl *netlink.Handle, link netlink.Link) map[netip.Prefix]int {
	t.Helper()
	addrs, err := nl.AddrList(link, netlink.FAMILY_ALL)
	if err != nil {
		t.Fatal(err)
	}
	got := map[netip.Prefix]int{}
	for _, a := range addrs {
		ip, _ := netip.AddrFromSlice(a.IP)
		ones, _ := a.Mask.Size()
		if ip.Unmap().IsLinkLocalUnicast() {
			continue
		}
		got[netip.PrefixFrom(ip.Unmap(), ones)] = a.Flags
	}
	return got
}

// defaultRoutesVia returns which families have a default route via link.
func defaultRoutesVia(t *testing.T, nl *netlink.Handle, link netlink.Link) (v4, v6 bool) {
	t.Helper()
	for _, family := range []int{netlink.FAMILY_V4, netlink.FAMILY_V6} {
		routes, err := nl.RouteList(link, family)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range routes {
			if r.Dst != nil {
				if ones, _ := r.Dst.Mask.Size(); ones != 0 {
					continue
				}
			}
			if r.Gw != nil {
				t.Errorf("default route %v has a gateway", r)
			}
			if family == netlink.FAMILY_V4 {
				v4 = true
			} else {
				v6 = true
			}
		}
	}
	return v4, v6
}

func TestConfigureCreated(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	d := openDevice(t, Config{Name: "tgtest0", FD: -1, NetNS: ns})
	if err := d.Configure(testNetConfig); err != nil {
		t.Fatal(err)
	}
	// Again: addresses and routes already there are not errors.
	if err := d.Configure(testNetConfig); err != nil {
		t.Fatalf("second Configure: %v", err)
	}
	nl := netlinkInNS(t, ns)
	link, err := nl.LinkByName("tgtest0")
	if err != nil {
		t.Fatal(err)
	}
	if link.Attrs().MTU != 1400 || link.Attrs().Flags&unix.IFF_UP == 0 {
		t.Errorf("MTU %d flags %v, want 1400 and up", link.Attrs().MTU, link.Attrs().Flags)
	}
	addrs := addrsOn(t, nl, link)
	for _, p := range testNetConfig.Addresses {
		flags, ok := addrs[p]
		if !ok {
			t.Errorf("address %s missing; have %v", p, addrs)
		}
		if flags&unix.IFA_F_TENTATIVE != 0 {
			t.Errorf("address %s is tentative (DAD), want usable at once", p)
		}
	}
	if v4, v6 := defaultRoutesVia(t, nl, link); !v4 || !v6 {
		t.Errorf("default routes via device: v4=%v v6=%v, want both", v4, v6)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if linkExists(t, nl, "tgtest0") {
		t.Fatal("device still exists after Close")
	}
}

func TestConfigurePersistentIsRestored(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	runIP(t, "-n", ns, "tuntap", "add", "dev", "tgtest0", "mode", "tun")
	runIP(t, "-n", ns, "addr", "add", "10.201.0.1/24", "dev", "tgtest0")
	d := openDevice(t, Config{Name: "tgtest0", FD: -1, NetNS: ns})
	if err := d.Configure(testNetConfig); err != nil {
		t.Fatal(err)
	}
	nl := netlinkInNS(t, ns)
	link, err := nl.LinkByName("tgtest0")
	if err != nil {
		t.Fatal(err)
	}
	if v4, v6 := defaultRoutesVia(t, nl, link); !v4 || !v6 {
		t.Fatalf("default routes via device: v4=%v v6=%v, want both", v4, v6)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	link, err = nl.LinkByName("tgtest0")
	if err != nil {
		t.Fatalf("persistent device gone after Close: %v", err)
	}
	if link.Attrs().MTU != 1500 {
		t.Errorf("MTU %d after Close, want 1500 restored", link.Attrs().MTU)
	}
	addrs := addrsOn(t, nl, link)
	if _, ok := addrs[netip.MustParsePrefix("10.201.0.1/24")]; !ok || len(addrs) != 1 {
		t.Errorf("addresses after Close %v, want only the pre-existing 10.201.0.1/24", addrs)
	}
	if v4, v6 := defaultRoutesVia(t, nl, link); v4 || v6 {
		t.Errorf("default routes left after Close: v4=%v v6=%v", v4, v6)
	}
}

// TestConfigureDefaultRouteTaken also checks that Close undoes a Configure
// that failed half-way on a device Open did not create.
func TestConfigureDefaultRouteTaken(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	runIP(t, "-n", ns, "link", "add", "tgtest1", "type", "veth", "peer", "name", "tgtest2")
	runIP(t, "-n", ns, "link", "set", "tgtest1", "up")
	runIP(t, "-n", ns, "route", "add", "default", "dev", "tgtest1")
	runIP(t, "-n", ns, "tuntap", "add", "dev", "tgtest0", "mode", "tun")
	d := openDevice(t, Config{Name: "tgtest0", FD: -1, NetNS: ns})
	err := d.Configure(testNetConfig)
	if !errors.Is(err, ErrRouteExists) {
		t.Errorf("error %v, want ErrRouteExists", err)
	}
	wantErrText(t, err, `add route 0.0.0.0/0 dev "tgtest0": `, `a route to 0.0.0.0/0 already goes through another interface`)
	nl := netlinkInNS(t, ns)
	link, err := nl.LinkByName("tgtest0")
	if err != nil {
		t.Fatal(err)
	}
	if got := addrsOn(t, nl, link); len(got) != 2 {
		t.Fatalf("addresses before Close %v, want the 2 configured", got)
	}
	if err := d.Close(); err != nil {
		t.Fatal(err)
	}
	if got := addrsOn(t, nl, link); len(got) != 0 {
		t.Errorf("addresses after Close %v, want none", got)
	}
}

func TestConfigureIPv6Disabled(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	for _, key := range []string{"net.ipv6.conf.all.disable_ipv6=1", "net.ipv6.conf.default.disable_ipv6=1"} {
		if out, err := exec.Command("ip", "netns", "exec", ns, "sysctl", "-w", key).CombinedOutput(); err != nil {
			t.Skipf("skipping: cannot disable IPv6 in the namespace: %v: %s", err, out)
		}
	}
	d := openDevice(t, Config{Name: "tgtest0", FD: -1, NetNS: ns})
	err := d.Configure(testNetConfig)
	if !errors.Is(err, ErrIPv6Disabled) {
		t.Fatalf("got %v, want ErrIPv6Disabled", err)
	}
	wantErrText(t, err, "skipped fd00:201::1/64, route ::/0", "disable_ipv6=0")
	nl := netlinkInNS(t, ns)
	link, err := nl.LinkByName("tgtest0")
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := addrsOn(t, nl, link)[netip.MustParsePrefix("10.201.0.1/24")]; !ok {
		t.Error("IPv4 address not applied")
	}
	if v4, _ := defaultRoutesVia(t, nl, link); !v4 {
		t.Error("IPv4 default route not applied")
	}
}

func TestConfigureAfterClose(t *testing.T) {
	t.Parallel()
	ns := newNetNS(t)
	d := openDevice(t, Config{Name: "tgtest0", FD: -1, NetNS: ns})
	d.Close()
	wantErrText(t, d.Configure(testNetConfig), "device is closed")
}

func TestNetlinkAddrRejects(t *testing.T) {
	t.Parallel()
	for _, p := range []netip.Prefix{{}, netip.MustParsePrefix("::ffff:10.0.0.1/128")} {
		if _, err := netlinkAddr(p); err == nil {
			t.Errorf("netlinkAddr(%v) accepted", p)
		}
	}
}
