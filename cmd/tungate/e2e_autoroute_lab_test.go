package main_test

// The --auto-route lab: a namespace H plays the host and runs tungate
// --auto-route; it has a veth to a LAN namespace L (a directly connected
// subnet) and a veth to an upstream router namespace I whose loopback holds
// the "internet" addresses, reached by H's default routes, so that nothing
// about them is on a connected subnet.
//
//	L (lan.2) --- (lan.1) H (up.1) --- (up.2) I, internet addresses on lo

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// Ports of the lab's servers.
const (
	arEchoPort    = 7    // peer TCP and UDP echo in I (internet) and L
	arInboundPort = 2222 // peer TCP echo in H, for inbound clients
)

type arLab struct {
	host, lan, inet *netlab.NS
	lanNet, upNet   netlab.Subnet
	inetNet         netlab.Subnet // on I's loopback
	upVeth          string        // H's end towards I
	inetVeth        string        // I's end
	dev             string        // the TUN device tungate creates in H
	web             *netlab.Nginx // in I
}

func newARLab(t *testing.T) *arLab {
	t.Helper()
	if kernelMode() {
		t.Skip("tests tungate --auto-route itself; TUNGATE_E2E_GATEWAY=kernel")
	}
	netlab.RequireRoot(t)
	netlab.RequireBinary(t, "nft")
	netlab.RequireBinary(t, "curl")
	l := &arLab{
		host: netlab.NewNS(t, "tgah"), lan: netlab.NewNS(t, "tgal"), inet: netlab.NewNS(t, "tgai"),
		lanNet: netlab.NewSubnet(t), upNet: netlab.NewSubnet(t), inetNet: netlab.NewSubnet(t),
		dev: netlab.UniqueName("tga"),
	}
	netlab.Veth(t, l.host, l.lan,
		[]netip.Prefix{l.lanNet.Prefix4(hostGateway), l.lanNet.Prefix6(hostGateway)},
		[]netip.Prefix{l.lanNet.Prefix4(hostServer), l.lanNet.Prefix6(hostServer)})
	l.upVeth, l.inetVeth = netlab.Veth(t, l.host, l.inet,
		[]netip.Prefix{l.upNet.Prefix4(hostGateway), l.upNet.Prefix6(hostGateway)},
		[]netip.Prefix{l.upNet.Prefix4(hostServer), l.upNet.Prefix6(hostServer)})
	netlab.DefaultRoutes(t, l.host, l.upNet.V4(hostServer), l.upNet.V6(hostServer))
	netlab.DefaultRoutes(t, l.lan, l.lanNet.V4(hostGateway), l.lanNet.V6(hostGateway))
	l.inet.MustRun(t, "ip", "addr", "add", netip.PrefixFrom(l.internet(false), 32).String(), "dev", "lo")
	l.inet.MustRun(t, "ip", "addr", "add", netip.PrefixFrom(l.internet(true), 128).String(), "dev", "lo", "nodad")
	// I routes H's LAN back through H (for the LAN's own flows).
	l.inet.MustRun(t, "ip", "route", "add", l.lanNet.Prefix4(0).Masked().String(), "via", l.upNet.V4(hostGateway).String())
	l.inet.MustRun(t, "ip", "-6", "route", "add", l.lanNet.Prefix6(0).Masked().String(), "via", l.upNet.V6(hostGateway).String())
	var listen []string
	for _, v6 := range []bool{false, true} {
		a := netip.AddrPortFrom(l.internet(v6), arEchoPort).String()
		listen = append(listen, "-tcp-echo", a, "-udp-echo", a)
	}
	netlab.StartPeer(t, l.inet, listen...)
	listen = nil
	for _, v6 := range []bool{false, true} {
		a := netip.AddrPortFrom(l.lanAddr(v6), arEchoPort).String()
		listen = append(listen, "-tcp-echo", a, "-udp-echo", a)
	}
	netlab.StartPeer(t, l.lan, listen...)
	l.web = netlab.StartNginx(t, l.inet, 64<<10)
	l.waitDAD(t)
	return l
}

// waitDAD waits until H's link-local addresses have passed duplicate
// address detection: until then the local table is still changing, and
// before/after listings would differ for reasons of their own.
func (l *arLab) waitDAD(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for strings.TrimSpace(l.host.MustRun(t, "ip", "-6", "addr", "show", "tentative")) != "" {
		if time.Now().After(deadline) {
			t.Fatal("IPv6 addresses of H still tentative after 10s")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// internet is I's address that H reaches by its default route only.
func (l *arLab) internet(v6 bool) netip.Addr {
	return l.inetNet.Addr(1, v6)
}

// lanAddr is L's address, on H's directly connected LAN.
func (l *arLab) lanAddr(v6 bool) netip.Addr {
	return l.lanNet.Addr(hostServer, v6)
}

// hostUp is H's address on the veth towards I.
func (l *arLab) hostUp(v6 bool) netip.Addr {
	return l.upNet.Addr(hostGateway, v6)
}

// start runs tungate --auto-route in H with args and waits until it serves.
// It returns the process and how long start-up took.
func (l *arLab) start(t *testing.T, args ...string) (*netlab.Proc, time.Duration) {
	t.Helper()
	// A control socket of the test's own: a kill -9 would leave the
	// default one behind in /run/tungate. A --control in args wins.
	base := []string{"--device", "tun://" + l.dev, "--auto-route", "--log-level", "debug", "--connect-timeout", "3s",
		"--control", filepath.Join(t.TempDir(), "ctl.sock")}
	bin := netlab.TungatePath(t)
	began := time.Now()
	p := l.host.Start(t, bin, append(base, args...)...)
	if err := p.WaitOutput("msg=serving", netlab.ServingTimeout); err != nil {
		t.Fatalf("tungate --auto-route did not start: %v", err)
	}
	return p, time.Since(began)
}

// stop stops p with SIGTERM, which must end it with status 0, and returns
// how long it took.
func stopClean(t *testing.T, p *netlab.Proc) time.Duration {
	t.Helper()
	began := time.Now()
	if err := p.Stop(netlab.StopTimeout); err != nil {
		t.Fatalf("tungate after SIGTERM: %v\n%s", err, p.Output())
	}
	return time.Since(began)
}

// tables is everything a clean stop must leave as it was.
func (l *arLab) tables(t *testing.T) string {
	t.Helper()
	var b strings.Builder
	for _, cmd := range [][]string{
		{"ip", "rule"}, {"ip", "-6", "rule"},
		{"ip", "route", "show", "table", "all"}, {"ip", "-6", "route", "show", "table", "all"},
		{"nft", "list", "ruleset"},
	} {
		fmt.Fprintf(&b, "$ %s\n%s", strings.Join(cmd, " "), l.host.MustRun(t, cmd[0], cmd[1:]...))
	}
	return b.String()
}

// tunTX is how many packets H has sent into the device so far.
func (l *arLab) tunTX(t *testing.T) int {
	t.Helper()
	out := l.host.MustRun(t, "cat", "/sys/class/net/"+l.dev+"/statistics/tx_packets")
	n, err := strconv.Atoi(strings.TrimSpace(out))
	if err != nil {
		t.Fatalf("tx_packets of %s: %q", l.dev, out)
	}
	return n
}

// opened reports whether tungate's log shows a TCP flow to dst.
func opened(p *netlab.Proc, dst netip.AddrPort) bool {
	// The log line may reach the test's reader a moment after the echo
	// has finished, on a loaded machine.
	for end := time.Now().Add(3 * time.Second); !seen(p, dst); time.Sleep(50 * time.Millisecond) {
		if time.Now().After(end) {
			return false
		}
	}
	return true
}

// notOpened reports that p has not logged a TCP flow to dst, after a
// moment for a late log line to arrive.
func notOpened(p *netlab.Proc, dst netip.AddrPort) bool {
	time.Sleep(300 * time.Millisecond)
	return !seen(p, dst)
}

// seen reports whether p's output holds the "tcp open" line of dst now.
func seen(p *netlab.Proc, dst netip.AddrPort) bool {
	for _, line := range strings.Split(p.Output(), "\n") {
		if strings.Contains(line, `msg="tcp open"`) && strings.Contains(line, "dst="+dst.String()) {
			return true
		}
	}
	return false
}

// echoFrom runs a TCP echo round trip from ns to dst and fails the test if
// it does not work.
func echoFrom(t *testing.T, ns *netlab.NS, dst netip.AddrPort) {
	t.Helper()
	if out, err := netlab.RunPeer(t, ns, "echo", "-addr", dst.String(), "-conns", "1", "-size", "10000"); err != nil {
		t.Fatalf("TCP echo to %s from %s: %v\n%s", dst, ns, err, out)
	}
}

// udpFrom runs UDP echoes from H to dst and returns how many packets went
// into the device meanwhile.
func (l *arLab) udpFrom(t *testing.T, dst netip.AddrPort) int {
	t.Helper()
	before := l.tunTX(t)
	if out, err := netlab.RunPeer(t, l.host, "udp", "-addr", dst.String(), "-size", "200"); err != nil {
		t.Fatalf("UDP echo to %s: %v\n%s", dst, err, out)
	}
	return l.tunTX(t) - before
}

// curlAs fetches the lab's web file from I at addr as uid (0: as root) and
// fails the test unless it arrives.
func (l *arLab) curlAs(t *testing.T, uid int, addr netip.Addr) {
	t.Helper()
	args := []string{"curl", "--silent", "--show-error", "--fail", "--max-time", "10", "--output", "/dev/null",
		fmt.Sprintf("http://%s%s", netip.AddrPortFrom(addr, netlab.NginxPort), l.web.Path)}
	if uid != 0 {
		id := strconv.Itoa(uid)
		args = append([]string{"setpriv", "--reuid", id, "--regid", id, "--clear-groups"}, args...)
	}
	if out, err := runIn(t, l.host, 20*time.Second, args[0], args[1:]...); err != nil {
		t.Fatalf("%s: %v\n%s", strings.Join(args, " "), err, out)
	}
}

// dialFrom connects to dst from src (an address of ns), for clients that
// must come from a particular address.
func dialFrom(ctx context.Context, ns *netlab.NS, src netip.Addr, dst netip.AddrPort) (net.Conn, error) {
	var conn net.Conn
	err := ns.Do(func() error {
		d := net.Dialer{LocalAddr: net.TCPAddrFromAddrPort(netip.AddrPortFrom(src, 0))}
		var err error
		conn, err = d.DialContext(ctx, "tcp", dst.String())
		return err
	})
	return conn, err
}
