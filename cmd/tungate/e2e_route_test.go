package main_test

// Routing rules end to end: --route and --routes with named chains of
// real proxies (dante, microsocks), block for TCP, UDP, echo and DNS, a
// rules file of 100,000 lines, and `tungate run` with rules.

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// accessLines returns the lines of nginx's access log that hold substr.
func accessLines(t *testing.T, web *netlab.Nginx, substr string) []string {
	t.Helper()
	b, err := os.ReadFile(web.AccessLog)
	if err != nil {
		t.Fatal(err)
	}
	var lines []string
	for _, l := range strings.Split(string(b), "\n") {
		if strings.Contains(l, substr) {
			lines = append(lines, l)
		}
	}
	return lines
}

// wantClient checks that the one request of web holding tag came from
// client (the first field of an access log line).
func wantClient(t *testing.T, web *netlab.Nginx, tag string, client netip.Addr) {
	t.Helper()
	lines := accessLines(t, web, tag)
	if len(lines) != 1 || !strings.HasPrefix(lines[0], client.String()+" ") {
		t.Fatalf("requests with %s: %q, want one from %s", tag, lines, client)
	}
}

// udpExchange sends one datagram to addr from ns and waits for the reply.
func udpExchange(ns *netlab.NS, addr netip.AddrPort) error {
	return ns.Do(func() error {
		c, err := net.Dial("udp", addr.String())
		if err != nil {
			return err
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte("hello")); err != nil {
			return err
		}
		_, err = c.Read(make([]byte, 100))
		return err
	})
}

// TestRouteThreeWaySplit: one CIDR direct, one domain through dante (the
// chain corp), the rest through microsocks (the default chain), in one
// run. nginx's access log tells direct flows (from the gateway's address)
// from proxied ones (from S itself), each proxy's log counts the flows it
// carried, and tungate's debug log names the rule and chain of each.
func TestRouteThreeWaySplit(t *testing.T) {
	t.Parallel()
	l := newProxyLab(t, 1<<20)
	dante := l.startDante(t, portDante, false)
	micro := l.startMicrosocks(t, portMicrosocks, "", "")
	app, gw := l.gateway(t, "--log-level", "debug",
		"-x", "corp="+l.proxyURL("socks5", nil, portDante),
		"-x", l.proxyURL("socks5", nil, portMicrosocks),
		"--route", netip.PrefixFrom(l.srvAddr(false), 32).String()+"=direct",
		"--route", "domain:tungate.test=corp",
		"--route", fmt.Sprintf("udp,port:%d=corp", portUDPEcho1))
	etcFiles(t, app, map[string]string{"resolv.conf": fmt.Sprintf("nameserver %s\n", l.srvAddr(false))})
	netlab.StartPeer(t, l.srv, "-udp-echo", netip.AddrPortFrom(l.srvAddr(true), portUDPEcho1).String())
	// UDP follows its chain too: microsocks has no UDP ASSOCIATE, dante has.
	if err := udpExchange(app, netip.AddrPortFrom(l.srvAddr(true), portUDPEcho1)); err != nil {
		t.Fatalf("UDP echo through the corp chain: %v", err)
	}
	if log := dante.Log(); !strings.Contains(log, "udpassociate") && !strings.Contains(log, "udpreply") {
		t.Fatalf("dante did not carry the UDP flow:\n%s", log)
	}

	l.download(t, app, l.webURL(false)+"?flow=direct")
	l.download(t, app, "http://"+proxyTestName+l.web.Path+"?flow=corp", "-4")
	l.download(t, app, l.webURL(true)+"?flow=rest")

	wantClient(t, l.web, "flow=direct", l.net.V4(hostGateway))
	wantClient(t, l.web, "flow=rest", l.srvAddr(true))
	if lines := accessLines(t, l.web, "flow=corp"); len(lines) != 1 || strings.HasPrefix(lines[0], l.net.V4(hostGateway).String()+" ") {
		t.Fatalf("requests with flow=corp: %q, want one from a proxy on S", lines)
	}
	// Each proxy carried exactly one flow: dante the one by name (which it
	// resolved itself), microsocks the one to S's IPv6 address.
	if n := strings.Count(dante.Log(), "tcp/connect"); n != 1 {
		t.Fatalf("dante carried %d connections, want 1:\n%s", n, dante.Log())
	}
	if out := micro.Output(); strings.Count(out, "connected to") != 1 || !strings.Contains(out, l.srvAddr(true).String()) {
		t.Fatalf("microsocks should have carried one flow, to %s:\n%s", l.srvAddr(true), out)
	}
	for _, want := range []string{"route.upstream=corp route.to=" + proxyTestName + ":80", `route.rule="domain:tungate.test=corp"`,
		"route.origin=--route", "route.upstream=direct", "route.upstream=proxy", "route.rule=builtin:default"} {
		if !strings.Contains(gw.Output(), want) {
			t.Errorf("debug log lacks %q", want)
		}
	}
}

// TestRouteBlock: a blocked address resets TCP at once, answers UDP with
// ICMP port unreachable and drops echo; a blocked domain gets NXDOMAIN
// (fake DNS is on without a proxy because a rule needs names); the
// address's IPv6 twin, not blocked, works.
func TestRouteBlock(t *testing.T) {
	t.Parallel()
	l := newProxyLab(t, 1<<20)
	netlab.StartPeer(t, l.srv, "-udp-echo", netip.AddrPortFrom(l.srvAddr(false), portUDPEcho1).String(),
		"-udp-echo", netip.AddrPortFrom(l.srvAddr(true), portUDPEcho1).String())
	app, _ := l.gateway(t,
		"--route", l.srvAddr(false).String()+"=block",
		"--route", "domain:blocked.test=block")
	wantRefused(t, app, netip.AddrPortFrom(l.srvAddr(false), netlab.NginxPort).String(), time.Second)
	if err := udpExchange(app, netip.AddrPortFrom(l.srvAddr(false), portUDPEcho1)); !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("UDP to a blocked address: %v, want connection refused", err)
	}
	if out, err := runIn(t, app, 10*time.Second, "ping", "-c", "1", "-W", "1", l.srvAddr(false).String()); err == nil {
		t.Fatalf("ping of a blocked address got a reply:\n%s", out)
	}
	if err := udpExchange(app, netip.AddrPortFrom(l.srvAddr(true), portUDPEcho1)); err != nil {
		t.Fatalf("UDP to an address no rule blocks: %v", err)
	}
	l.download(t, app, l.webURL(true))
	if out, err := runIn(t, app, 10*time.Second, "ping", "-6", "-c", "1", "-W", "2", l.srvAddr(true).String()); err != nil {
		t.Fatalf("ping of an address no rule blocks: %v\n%s", err, out)
	}
	for _, transport := range []string{"+notcp", "+tcp"} {
		out, err := runIn(t, app, 20*time.Second, "dig", "@192.0.2.53", "+time=2", "+tries=1", transport, "ads.blocked.test", "A")
		if err != nil || !strings.Contains(out, "status: NXDOMAIN") {
			t.Fatalf("dig %s ads.blocked.test: %v, want NXDOMAIN\n%s", transport, err, out)
		}
		got, err := dig(t, app, netip.MustParseAddr("192.0.2.53"), "fine.test", "A", transport)
		if err != nil || !strings.HasPrefix(got, "198.19.") {
			t.Fatalf("dig %s fine.test: %q (err %v), want a fake address", transport, got, err)
		}
	}
}

// writeBigRules writes a rules file of n lines: comments, CIDR and domain
// rules that match nothing here, and last the rule that blocks block.
func writeBigRules(t *testing.T, n int, block netip.Addr) string {
	t.Helper()
	var b strings.Builder
	b.WriteString("# generated by TestRouteFile100k\n\n")
	lines := 2
	for i := 0; lines < n-1; i++ {
		if i%2 == 0 {
			fmt.Fprintf(&b, "100.%d.%d.0/24=direct\n", 64+i>>16&63, i>>8&255)
		} else {
			fmt.Fprintf(&b, "domain:d%d.example=block # a comment\n", i)
		}
		lines++
	}
	fmt.Fprintf(&b, "%s,tcp=block\n", block)
	path := filepath.Join(t.TempDir(), "big.rules")
	if err := os.WriteFile(path, []byte(b.String()), 0o644); err != nil {
		t.Fatal(err)
	}
	return path
}

// TestRouteFile100k: a --routes file of 100,000 lines loads, its last
// rule decides, and everything else still flows.
func TestRouteFile100k(t *testing.T) {
	t.Parallel()
	l := newProxyLab(t, 1<<20)
	path := writeBigRules(t, 100000, l.srvAddr(false))
	start := time.Now()
	app, gw := l.gateway(t, "--routes", path)
	if err := gw.WaitOutput("serving", 20*time.Second); err != nil {
		t.Fatal(err)
	}
	t.Logf("tungate with 100,000 rules was serving after %v", time.Since(start))
	wantRefused(t, app, netip.AddrPortFrom(l.srvAddr(false), netlab.NginxPort).String(), time.Second)
	l.download(t, app, l.webURL(true))
	out, err := runIn(t, app, 20*time.Second, "dig", "@192.0.2.53", "+time=2", "+tries=1", "d99.example", "A")
	if err != nil || !strings.Contains(out, "status: NXDOMAIN") {
		t.Fatalf("dig d99.example: %v, want NXDOMAIN\n%s", err, out)
	}
}

// TestRunRoutes: `tungate run` takes the rules too: a blocked address is
// refused at once, its IPv6 twin is reached, and a blocked name gets
// NXDOMAIN while others get fake addresses.
func TestRunRoutes(t *testing.T) {
	netlab.RequireBinary(t, "curl")
	netlab.RequireBinary(t, "dig")
	srv := newRunServer(t)
	web := netlab.StartNginx(t, srv.ns, 1<<16)
	v4 := "http://" + netip.AddrPortFrom(srv.addr(false), netlab.NginxPort).String() + web.Path
	v6 := "http://" + netip.AddrPortFrom(srv.addr(true), netlab.NginxPort).String() + web.Path
	script := fmt.Sprintf(`curl -sS --max-time 5 -o /dev/null %s; echo "v4=$?"
curl -sS --fail --max-time 20 -o /dev/null %s; echo "v6=$?"
dig +tries=1 ads.blocked.test A | grep -o 'status: [A-Z]*'
dig +short +tries=1 fine.test A`, v4, v6)
	r := tungateRun(t, nil, "--route", srv.addr(false).String()+"=block", "--route", "domain:blocked.test=block",
		"--", "sh", "-c", script).mustSucceed(t, "tungate run with routes")
	for _, want := range []string{"v4=7", "v6=0", "status: NXDOMAIN", "198.19."} {
		if !strings.Contains(r.stdout, want) {
			t.Errorf("output lacks %q:\n%s\nstderr:\n%s", want, r.stdout, r.stderr)
		}
	}
}

// TestUDPDialFailureRefusedAtOnce: in --netns mode too, a UDP flow whose
// upstream dial fails (here UDP ASSOCIATE at a dead SOCKS5 proxy) is
// answered with ICMP port unreachable at once, not left to time out.
func TestUDPDialFailureRefusedAtOnce(t *testing.T) {
	t.Parallel()
	l := newProxyLab(t, 1<<10)
	app, gw := l.gateway(t, "-x", l.proxyURL("socks5", nil, portDeadProxy))
	start := time.Now()
	err := udpExchange(app, netip.AddrPortFrom(l.srvAddr(false), portUDPEcho1))
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("UDP through a dead proxy: %v, want connection refused", err)
	}
	if took := time.Since(start); took > 2*time.Second {
		t.Fatalf("refused after %v, want at once", took)
	}
	if err := gw.WaitOutput("proxy dial failed", 5*time.Second); err != nil {
		t.Fatal(err)
	}
}
