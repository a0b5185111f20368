package main_test

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
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
	// As the README's recipe does: routes only once tungate says it is
	// ready (--ready-fd), and a blackhole behind the device's route so that
	// traffic fails closed when the device is gone.
	ready, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer ready.Close()
	cmd := host.Exec(context.Background(), netlab.TungatePath(t), append(args, "--ready-fd", "3")...)
	cmd.ExtraFiles = []*os.File{w}
	gw := netlab.StartTungateCommand(t, cmd)
	w.Close()
	if line, err := bufio.NewReader(ready).ReadString('\n'); line != "ready\n" {
		t.Fatalf("--ready-fd: %q, %v", line, err)
	}
	for _, fam := range []string{"-4", "-6"} {
		host.MustRun(t, "ip", append([]string{fam}, rule...)...)
		host.MustRun(t, "ip", fam, "route", "add", "default", "dev", dev, "table", "166")
		host.MustRun(t, "ip", fam, "route", "add", "blackhole", "default", "table", "166", "metric", "65535")
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
	// Fail closed: with tungate gone, its device and route go with it, and
	// the blackhole keeps the host's traffic from leaving around it.
	gw.Stop()
	for _, addr := range []netip.Addr{sub.V4(2), sub.V6(2)} {
		url := fmt.Sprintf("http://%s/", netip.AddrPortFrom(addr, netlab.NginxPort))
		if out, err := runIn(t, host, 20*time.Second, "curl", "--silent", "--show-error", "--max-time", "5", url); err == nil {
			t.Fatalf("curl %s with tungate stopped got through:\n%s", url, out)
		}
	}
}
