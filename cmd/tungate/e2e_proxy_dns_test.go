package main_test

import (
	"errors"
	"fmt"
	"net/netip"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// capture records packets matching filter on iface (in the root namespace)
// until stopped.
type capture struct {
	proc *netlab.Proc
	file string
}

func startCapture(t *testing.T, iface, filter string) *capture {
	t.Helper()
	netlab.RequireBinary(t, "tcpdump")
	file := filepath.Join(t.TempDir(), "capture.pcap")
	p := netlab.Root().Start(t, "tcpdump", "-i", iface, "-n", "-U", "-w", file, filter)
	if err := p.WaitOutput("listening on", 10*time.Second); err != nil {
		t.Fatal(err)
	}
	return &capture{proc: p, file: file}
}

// stop ends the capture and returns the packets, one summary line each,
// followed by their contents in ASCII if ascii is set. It may be called
// again, for the other form.
func (c *capture) stop(t *testing.T, ascii bool) string {
	t.Helper()
	c.proc.Stop(3 * time.Second)
	args := []string{"-r", c.file, "-n"}
	if ascii {
		args = append(args, "-A")
	}
	out, err := exec.Command("tcpdump", args...).Output()
	if err != nil {
		t.Fatalf("tcpdump -r: %v", err)
	}
	return strings.TrimSpace(string(out))
}

// dig runs dig in app against server and returns its +short answer.
func dig(t *testing.T, app *netlab.NS, server netip.Addr, args ...string) (string, error) {
	t.Helper()
	netlab.RequireBinary(t, "dig")
	return runIn(t, app, 20*time.Second, "dig", append([]string{"@" + server.String(), "+short", "+time=2", "+tries=1"}, args...)...)
}

// TestProxyUDPAndDNS: with --dns-mode forward, UDP (an echo, and DNS to a
// real server) goes through dante's UDP ASSOCIATE and DNS over TCP through
// its CONNECT; nothing to those ports crosses the veth pair directly.
func TestProxyUDPAndDNS(t *testing.T) {
	t.Parallel()
	l := newProxyLab(t, 1<<20)
	d := l.startDante(t, portDante, false)
	netlab.StartPeer(t, l.srv, "-udp-echo", netip.AddrPortFrom(l.srvAddr(false), portUDPEcho1).String(),
		"-udp-echo", netip.AddrPortFrom(l.srvAddr(true), portUDPEcho1).String())
	netlab.StartDNSMasq(t, l.srv, []netip.Addr{l.srvAddr(false)}, map[string][]netip.Addr{"dns.tungate.test": {l.net.V4(99)}})
	capt := startCapture(t, l.rootVeth, fmt.Sprintf("port 53 or port %d", portUDPEcho1))
	app, _ := l.gateway(t, "--proxy", l.proxyURL("socks5", nil, portDante), "--dns-mode", "forward")

	for _, v6 := range []bool{false, true} {
		out, err := netlab.RunPeer(t, app, "udp", "-size", "1200", "-addr", netip.AddrPortFrom(l.srvAddr(v6), portUDPEcho1).String())
		if err != nil {
			t.Fatalf("UDP echo through dante: %v\n%s", err, out)
		}
	}
	for _, transport := range []string{"+notcp", "+tcp"} {
		out, err := dig(t, app, l.srvAddr(false), "dns.tungate.test", "A", transport)
		if err != nil || out != l.net.V4(99).String() {
			t.Fatalf("dig %s through dante: %q (err %v), want %s", transport, out, err, l.net.V4(99))
		}
	}
	if pkts := capt.stop(t, false); pkts != "" {
		t.Fatalf("UDP echo or DNS went around the proxy:\n%s", pkts)
	}
	if log := d.Log(); !strings.Contains(log, "udpassociate") && !strings.Contains(log, "udpreply") {
		t.Fatalf("dante logged no UDP association:\n%s", log)
	}
}

// TestProxyRemoteDNS: with fake DNS (the default with a proxy), the app
// looks up a name that only S's hosts file knows, gets an address from the
// fake range, and its connection reaches dante with the name, which dante
// resolves. No DNS packet leaves the host.
func TestProxyRemoteDNS(t *testing.T) {
	t.Parallel()
	l := newProxyLab(t, proxyDownloadSize)
	l.startDante(t, portDante, false)
	capt := startCapture(t, l.rootVeth, fmt.Sprintf("port 53 or tcp port %d", portDante))
	app, _ := l.gateway(t, "--proxy", l.proxyURL("socks5", nil, portDante))
	// The app's resolver is S, which runs no DNS server: only tungate can
	// answer.
	etcFiles(t, app, map[string]string{"resolv.conf": fmt.Sprintf("nameserver %s\n", l.srvAddr(false))})

	out, err := runIn(t, app, 10*time.Second, "getent", "ahosts", proxyTestName)
	if err != nil {
		t.Fatalf("getent ahosts %s: %v\n%s", proxyTestName, err, out)
	}
	for _, fake := range []string{"198.19.", "fd74:6761:7465:fa4e::"} {
		if !strings.Contains(out, fake) {
			t.Fatalf("getent ahosts %s: %q, want an address in %s", proxyTestName, out, fake)
		}
	}
	for _, fam := range []string{"-4", "-6"} {
		mbps := l.download(t, app, "http://"+proxyTestName+l.web.Path, fam)
		t.Logf("curl %s by name: %.0f MB/s", fam, mbps)
	}
	for _, transport := range []string{"+notcp", "+tcp"} {
		got, err := dig(t, app, netip.MustParseAddr("192.0.2.53"), proxyTestName, "A", transport)
		if err != nil || !strings.HasPrefix(got, "198.19.") {
			t.Fatalf("dig %s A %s: %q (err %v), want a fake address", proxyTestName, transport, got, err)
		}
		if got, err := dig(t, app, l.srvAddr(false), proxyTestName, "MX", transport); err != nil || got != "" {
			t.Fatalf("dig %s MX %s: %q (err %v), want an empty answer", proxyTestName, transport, got, err)
		}
	}

	for _, line := range strings.Split(capt.stop(t, false), "\n") {
		if strings.Contains(line, ".53:") || strings.Contains(line, ".53 >") {
			t.Fatalf("a DNS packet crossed the veth pair: %s", line)
		}
	}
	if !strings.Contains(capt.stop(t, true), proxyTestName) {
		t.Fatalf("no SOCKS request carried the name %s", proxyTestName)
	}
}

// TestProxyUDPRefused: a chain of two proxies cannot carry UDP, so UDP is
// refused with ICMP port unreachable rather than sent around the proxies;
// DNS still works, answered by fake DNS; ping is not forwarded.
func TestProxyUDPRefused(t *testing.T) {
	t.Parallel()
	l := newProxyLab(t, 1<<20)
	l.startDante(t, portDante, false)
	l.startMicrosocks(t, portMicrosocks, "", "")
	netlab.StartPeer(t, l.srv, "-udp-echo", netip.AddrPortFrom(l.srvAddr(false), portUDPEcho1).String())
	capt := startCapture(t, l.rootVeth, fmt.Sprintf("udp port 53 or udp port %d or icmp or (icmp6 and ip6[40] == 128)", portUDPEcho1))
	app, gw := l.gateway(t, "--proxy", l.proxyURL("socks5", nil, portMicrosocks), "--proxy", l.proxyURL("socks5", nil, portDante))
	if !strings.Contains(gw.Output(), "udp=block") {
		t.Fatalf("a two-hop chain should block UDP by default:\n%s", gw.Output())
	}
	// A connected socket learns of ICMP port unreachable as ECONNREFUSED.
	echo := netip.AddrPortFrom(l.srvAddr(false), portUDPEcho1)
	err := udpExchange(app, echo)
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("UDP echo through a two-hop chain: %v, want connection refused (ICMP port unreachable)", err)
	}
	got, err := dig(t, app, l.srvAddr(false), proxyTestName, "A", "+notcp")
	if err != nil || !strings.HasPrefix(got, "198.19.") {
		t.Fatalf("fake DNS over UDP with UDP blocked: %q (err %v)", got, err)
	}
	l.download(t, app, l.webURL(false))
	// A proxy carries no ICMP: echo requests get no reply.
	if out, err := runIn(t, app, 10*time.Second, "ping", "-c", "1", "-W", "1", l.srvAddr(false).String()); err == nil {
		t.Fatalf("ping through a proxy got a reply:\n%s", out)
	}
	if pkts := capt.stop(t, false); pkts != "" {
		t.Fatalf("UDP or ICMP went around the proxies:\n%s", pkts)
	}
}
