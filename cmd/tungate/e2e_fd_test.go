package main_test

import (
	"context"
	"fmt"
	"net/netip"
	"os"
	"testing"

	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/cmd/internal/netlab"
	"github.com/tungate/tungate/stack/tun"
)

// TestInheritedFD serves a TUN device that the parent opened and
// configured, as Android's VpnService hands one over: `--device fd://3`.
// The fd carries plain packets (no virtio-net header), so this also runs
// the link endpoint's path without offload.
func TestInheritedFD(t *testing.T) {
	t.Parallel()
	netlab.RequireRoot(t)
	sub := netlab.NewSubnet(t)
	app, srv := netlab.NewNS(t, "tga"), netlab.NewNS(t, "tgs")
	netlab.Veth(t, netlab.Root(), srv,
		[]netip.Prefix{sub.Prefix4(hostGateway), sub.Prefix6(hostGateway)},
		[]netip.Prefix{sub.Prefix4(hostServer), sub.Prefix6(hostServer)})
	netlab.DefaultRoutes(t, srv, sub.V4(hostGateway), sub.V6(hostGateway))

	dev, err := tun.Open(tun.Config{Name: netlab.UniqueName("tg"), FD: -1, NetNS: app.Path()})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { dev.Close() })
	err = dev.Configure(tun.NetConfig{MTU: 1500, DefaultRoutes: true, Addresses: []netip.Prefix{
		netip.MustParsePrefix("198.18.0.1/24"), netip.MustParsePrefix("fd74:6761:7465::1/64")}})
	if err != nil {
		t.Fatal(err)
	}
	dup, err := unix.Dup(dev.FD())
	if err != nil {
		t.Fatal(err)
	}
	inherited := os.NewFile(uintptr(dup), "tun")
	defer inherited.Close()

	cmd := netlab.TungateCommand(t, context.Background(), "--device", "fd://3")
	cmd.ExtraFiles = []*os.File{inherited}
	netlab.StartTungateCommand(t, cmd)

	sink := netip.AddrPortFrom(sub.V4(hostServer), portSink)
	sink6 := netip.AddrPortFrom(sub.V6(hostServer), portSink)
	netlab.StartPeer(t, srv, "-tcp-sink", sink.String(), "-tcp-sink", sink6.String())
	for _, addr := range []netip.AddrPort{sink, sink6} {
		if out, err := netlab.RunPeer(t, app, "send", "-addr", addr.String(), "-size", fmt.Sprint(16<<20)); err != nil {
			t.Fatalf("16 MB to %s through fd://3: %v\n%s", addr, err, out)
		}
	}
}
