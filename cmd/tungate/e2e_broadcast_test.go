package main_test

import (
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// sendUDPScript sends one datagram to each (address, port) of its
// arguments, twice, from a socket that may broadcast; IPv6 link-local
// multicast goes out of the device named by $DEV. A send the kernel refuses
// is reported and skipped.
const sendUDPScript = `
import os, socket, sys
dev = os.environ["DEV"]
port = int(sys.argv[1])
for dst in sys.argv[2:]:
    fam = socket.AF_INET6 if ":" in dst else socket.AF_INET
    s = socket.socket(fam, socket.SOCK_DGRAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_BROADCAST, 1)
    addr = (dst, port, 0, socket.if_nametoindex(dev)) if fam == socket.AF_INET6 else (dst, port)
    for _ in range(2):
        try:
            s.sendto(b"tungate broadcast test", addr)
        except OSError as e:
            print("send", dst, e)
    s.close()
print("sent")
`

// TestBroadcastMulticastNotForwarded sends UDP from the app namespace to
// the limited broadcast address, the host LAN's broadcast address, the
// device's own subnet's broadcast address, an IPv4 and an IPv6 multicast
// group. The "host" is a namespace H (tungate runs in
// it, with --netns A) with a veth to a LAN namespace S and default routes
// into it, so every one of them could be dialed and sent; tcpdump on H's
// veth must see none of them (and does see a unicast datagram sent after
// them), and tungate's exit line counts them as not forwarded.
func TestBroadcastMulticastNotForwarded(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.RequireBinary(t, "tcpdump")
	netlab.RequireBinary(t, "python3")
	sub := netlab.NewSubnet(t)
	host, lan, app := netlab.NewNS(t, "tgh"), netlab.NewNS(t, "tgl"), netlab.NewNS(t, "tga")
	veth, _ := netlab.Veth(t, host, lan,
		[]netip.Prefix{sub.Prefix4(1), sub.Prefix6(1)},
		[]netip.Prefix{sub.Prefix4(2), sub.Prefix6(2)})
	netlab.DefaultRoutes(t, host, sub.V4(2), sub.V6(2))

	dev := netlab.UniqueName("tg")
	gw := host.Start(t, netlab.TungatePath(t), "--netns", app.Name, "--device", "tun://"+dev, "--log-level", "debug")
	if err := gw.WaitOutput("msg=serving", 10*time.Second); err != nil {
		t.Fatalf("tungate did not start: %v\n%s", err, gw.Output())
	}
	dump := host.Start(t, "tcpdump", "-i", veth, "-n", "-l", "-U", "udp port 9999")
	if err := dump.WaitOutput("listening on", 10*time.Second); err != nil {
		t.Fatalf("tcpdump did not start: %v\n%s", err, dump.Output())
	}

	lanBcast := sub.V4(255).String()
	// 198.18.0.255 is the broadcast address of the device's own subnet,
	// which is in A, not among H's interfaces.
	notForwarded := []string{"255.255.255.255", lanBcast, "198.18.0.255", "224.0.0.251", "ff02::1"}
	cmd := app.Exec(t.Context(), "python3", append([]string{"-c", sendUDPScript, "9999"}, notForwarded...)...)
	cmd.Env = append(cmd.Environ(), "DEV="+dev)
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "sent") {
		t.Fatalf("send: %v\n%s", err, out)
	}
	// Sends the kernel refused (say, IPv6 disabled here) never reach
	// tungate.
	sent := 2*len(notForwarded) - strings.Count(string(out), "send ")
	if sent == 0 {
		t.Fatalf("the kernel refused every send:\n%s", out)
	}
	// A unicast datagram behind them reaches the wire: tcpdump is seeing.
	control := sub.V4(2).String()
	cmd = app.Exec(t.Context(), "python3", "-c", sendUDPScript, "9999", control)
	cmd.Env = append(cmd.Environ(), "DEV="+dev)
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("send: %v\n%s", err, out)
	}
	if err := dump.WaitOutput("> "+control+".9999", 10*time.Second); err != nil {
		t.Fatalf("tcpdump on %s did not see the unicast datagram to %s: %v\n%s", veth, control, err, dump.Output())
	}
	for _, dst := range notForwarded {
		if strings.Contains(dump.Output(), "> "+dst+".9999") {
			t.Errorf("tcpdump on the host's veth saw a datagram to %s:\n%s", dst, dump.Output())
		}
	}

	if err := gw.Stop(3 * time.Second); err != nil {
		t.Fatalf("stop tungate: %v\n%s", err, gw.Output())
	}
	m := regexp.MustCompile(`drops\.not_forwarded=(\d+)`).FindStringSubmatch(gw.Output())
	if m == nil {
		t.Fatalf("tungate's exit line has no drops.not_forwarded:\n%s", gw.Output())
	}
	// Two of each; the kernel's own multicast (MLD, router solicitations)
	// may add more.
	t.Logf("sent %d datagrams not to forward; tungate counted drops.not_forwarded=%s", sent, m[1])
	if n, _ := strconv.Atoi(m[1]); n < sent {
		t.Errorf("drops.not_forwarded=%d, want at least %d", n, sent)
	}
}
