package netlab

import (
	"context"
	"net/netip"
	"os/exec"
	"testing"
)

// Veth connects namespaces a and b with a veth pair, gives each end its
// addresses (IPv6 ones without duplicate address detection, so they are
// usable at once) and brings both ends up. It returns the names of the ends
// in a and in b. The pair disappears with either namespace; if both ends are
// in the root namespace it is deleted on t's cleanup.
func Veth(t testing.TB, a, b *NS, aAddrs, bAddrs []netip.Prefix) (aName, bName string) {
	t.Helper()
	aName, bName = UniqueName("ve"), UniqueName("ve")
	args := []string{"link", "add", aName}
	if !a.IsRoot() {
		args = append(args, "netns", a.Name)
	}
	args = append(args, "type", "veth", "peer", "name", bName)
	if !b.IsRoot() {
		args = append(args, "netns", b.Name)
	}
	Root().MustRun(t, "ip", args...)
	if a.IsRoot() && b.IsRoot() {
		t.Cleanup(func() { _ = exec.Command("ip", "link", "del", aName).Run() })
	}
	LinkUp(t, a, aName, aAddrs...)
	LinkUp(t, b, bName, bAddrs...)
	return aName, bName
}

// LinkUp adds addrs to the link called name in ns and brings it up.
func LinkUp(t testing.TB, ns *NS, name string, addrs ...netip.Prefix) {
	t.Helper()
	for _, p := range addrs {
		args := []string{"addr", "add", p.String(), "dev", name}
		if p.Addr().Is6() {
			args = append(args, "nodad")
		}
		ns.MustRun(t, "ip", args...)
	}
	ns.MustRun(t, "ip", "link", "set", name, "up")
}

// DefaultRoutes adds a default route via each gateway (IPv4 or IPv6) in ns.
func DefaultRoutes(t testing.TB, ns *NS, gateways ...netip.Addr) {
	t.Helper()
	for _, gw := range gateways {
		family := "-4"
		if gw.Is6() {
			family = "-6"
		}
		ns.MustRun(t, "ip", family, "route", "add", "default", "via", gw.String())
	}
}

// Routes returns "ip route show" and "ip -6 route show" of ns, for tests that
// check what a program left behind.
func Routes(ctx context.Context, ns *NS) (string, error) {
	v4, err := ns.Run(ctx, "ip", "-4", "route", "show")
	if err != nil {
		return "", err
	}
	v6, err := ns.Run(ctx, "ip", "-6", "route", "show")
	return v4 + v6, err
}
