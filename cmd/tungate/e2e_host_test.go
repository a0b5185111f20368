package main_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// TestWholeHost is the transparent-proxy set-up of a whole host: tungate
// runs in the same namespace as the apps, policy routing sends every
// unmarked flow into its device, and --fwmark keeps tungate's own sockets
// out of that route so they cannot loop. The "host" is a namespace H with
// a veth to a server namespace S. With --interface instead, tungate's
// sockets are bound to the veth, and a route through another device does
// not apply to them.
func TestWholeHost(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.RequireBinary(t, "curl")
	for _, mode := range []string{"fwmark", "interface"} {
		t.Run(mode, func(t *testing.T) {
			t.Parallel()
			testWholeHost(t, mode)
		})
	}
}

func testWholeHost(t *testing.T, mode string) {
	sub := netlab.NewSubnet(t)
	host, srv := netlab.NewNS(t, "tgh"), netlab.NewNS(t, "tgs")
	veth, _ := netlab.Veth(t, host, srv,
		[]netip.Prefix{sub.Prefix4(1), sub.Prefix6(1)},
		[]netip.Prefix{sub.Prefix4(2), sub.Prefix6(2)})
	web := netlab.StartNginx(t, srv, 8<<20)

	dev := netlab.UniqueName("tg")
	args := []string{"--device", "tun://" + dev, "--log-level", "debug"}
	rule := []string{"rule", "add", "table", "166", "priority", "100"}
	if mode == "fwmark" {
		args = append(args, "--fwmark", "0x66")
		rule = append(rule, "not", "fwmark", "0x66")
	} else {
		args = append(args, "--interface", veth)
	}
	gw := host.Start(t, netlab.TungatePath(t), args...)
	if err := gw.WaitOutput("msg=serving", 10*time.Second); err != nil {
		t.Fatalf("tungate did not start: %v\n%s", err, gw.Output())
	}
	for _, fam := range []string{"-4", "-6"} {
		host.MustRun(t, "ip", append([]string{fam}, rule...)...)
		host.MustRun(t, "ip", fam, "route", "add", "default", "dev", dev, "table", "166")
	}

	for _, v6 := range []bool{false, true} {
		addr := sub.V4(2)
		if v6 {
			addr = sub.V6(2)
		}
		url := fmt.Sprintf("http://%s%s", netip.AddrPortFrom(addr, netlab.NginxPort), web.Path)
		ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
		cmd := host.Exec(ctx, "curl", "--silent", "--show-error", "--fail", "--output", "-", url)
		h := sha256.New()
		var stderr strings.Builder
		cmd.Stdout, cmd.Stderr = h, &stderr
		err := cmd.Run()
		cancel()
		if err != nil {
			t.Fatalf("curl %s: %v\n%s\ntungate:\n%s", url, err, stderr.String(), gw.Output())
		}
		if got := hex.EncodeToString(h.Sum(nil)); got != web.SHA256 {
			t.Fatalf("downloaded sha256 %s, want %s", got, web.SHA256)
		}
		// The flow must have gone through tungate, not around it.
		want := fmt.Sprintf("dst=%s", netip.AddrPortFrom(addr, netlab.NginxPort))
		if !strings.Contains(gw.Output(), "msg=\"tcp open\"") || !strings.Contains(gw.Output(), want) {
			t.Fatalf("tungate's log shows no flow to %s:\n%s", addr, gw.Output())
		}
	}
}
