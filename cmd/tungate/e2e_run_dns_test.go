package main_test

// End-to-end tests of DNS under `tungate run`: the namespace's resolver,
// fake DNS with a proxy, and a host resolver on loopback.

import (
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

func TestRunDNS(t *testing.T) {
	netlab.RequireBinary(t, "dig")
	netlab.RequireBinary(t, "getent")
	srv := newRunServer(t)
	v4, v6 := netip.MustParseAddr("192.0.2.10"), netip.MustParseAddr("2001:db8::10")
	netlab.StartDNSMasq(t, srv.ns, []netip.Addr{srv.addr(false), srv.addr(true)}, map[string][]netip.Addr{"web.tungate.test": {v4, v6}})
	for _, dnsArg := range []string{srv.addr(false).String(), "[" + srv.addr(true).String() + "]:53"} {
		cases := []struct {
			cmd  []string
			want string
		}{
			{[]string{"dig", "+short", "+tries=1", "web.tungate.test", "A"}, v4.String()},
			{[]string{"dig", "+short", "+tries=1", "+tcp", "web.tungate.test", "AAAA"}, v6.String()},
			{[]string{"getent", "ahostsv4", "web.tungate.test"}, v4.String()},
			{[]string{"getent", "hosts", "web.tungate.test"}, v6.String()},
		}
		for _, c := range cases {
			r := tungateRun(t, nil, append([]string{"--dns", dnsArg, "--"}, c.cmd...)...).mustSucceed(t, strings.Join(c.cmd, " "))
			if !strings.Contains(r.stdout, c.want) {
				t.Errorf("--dns %s: %s: got %q, want %s", dnsArg, strings.Join(c.cmd, " "), r.stdout, c.want)
			}
		}
	}
}

// TestRunFakeDNS: with a proxy, `tungate run` answers every port-53 flow
// itself with fake addresses, over UDP and TCP, whatever the address asked:
// the proxy (here nothing listens) is never needed for DNS.
func TestRunFakeDNS(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.RequireBinary(t, "dig")
	cases := []struct {
		cmd  []string
		want string
	}{
		{[]string{"dig", "+short", "+tries=1", "web.tungate.test", "A"}, "198.19."},
		{[]string{"dig", "+short", "+tries=1", "+tcp", "web.tungate.test", "AAAA"}, "fd74:6761:7465:fa4e::"},
		{[]string{"dig", "+short", "+tries=1", "@192.0.2.53", "web.tungate.test", "A"}, "198.19."},
		{[]string{"dig", "+short", "+tries=1", "+tcp", "@2001:db8::53", "web.tungate.test", "AAAA"}, "fd74:6761:7465:fa4e::"},
	}
	for _, c := range cases {
		r := tungateRun(t, nil, append([]string{"--proxy", "socks5://127.0.0.1:9", "--"}, c.cmd...)...).mustSucceed(t, strings.Join(c.cmd, " "))
		if !strings.HasPrefix(r.stdout, c.want) {
			t.Errorf("%s: got %q, want an address starting %s", strings.Join(c.cmd, " "), r.stdout, c.want)
		}
	}
}

// TestRunDNSHostLoopback checks that an upstream resolver on the host's
// loopback (as systemd-resolved's 127.0.0.53) works: tungate dials it from
// the host's namespace.
func TestRunDNSHostLoopback(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.RequireBinary(t, "dig")
	netlab.RequireBinary(t, "dnsmasq")
	port := freePort(t)
	dir := t.TempDir()
	dnsmasq := netlab.Root().Start(t, "dnsmasq", "--no-daemon", "--conf-file=/dev/null", "--no-resolv", "--no-hosts",
		"--bind-interfaces", "--listen-address=127.0.0.1", "--port="+strconv.Itoa(port), "--user=root", "--group=root",
		"--pid-file="+filepath.Join(dir, "pid"), "--address=/loop.tungate.test/192.0.2.77")
	if err := netlab.Root().WaitTCP(fmt.Sprintf("127.0.0.1:%d", port), 10*time.Second); err != nil {
		t.Fatalf("dnsmasq: %v\n%s", err, dnsmasq.Output())
	}
	r := tungateRun(t, nil, "--dns", fmt.Sprintf("127.0.0.1:%d", port), "--", "dig", "+short", "+tries=1", "loop.tungate.test").mustSucceed(t, "dig")
	if strings.TrimSpace(r.stdout) != "192.0.2.77" {
		t.Errorf("dig through a host-loopback resolver: %q", r.stdout)
	}
}

// freePort returns a port that TCP and UDP can bind on every address,
// below the kernel's ephemeral range: a port from that range (what
// listening on port 0 gives) can be taken by any outgoing connection of
// the tests running in parallel before the caller binds it
// (TestObserveAPIUnreachableFromAppNamespace failed so: "bind: address
// already in use").
func freePort(t *testing.T) int {
	t.Helper()
	low := 32768
	if b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range"); err == nil {
		fmt.Sscan(string(b), &low)
	}
	for range 200 {
		port := 10000 + rand.IntN(max(low-10000, 1000))
		if portFree(port) {
			return port
		}
	}
	t.Fatalf("no free port below the ephemeral range (%d)", low)
	return 0
}

func portFree(port int) bool {
	var closers []io.Closer
	defer func() {
		for _, c := range closers {
			c.Close()
		}
	}()
	for _, network := range []string{"tcp4", "tcp6", "udp4", "udp6"} {
		addr := net.JoinHostPort("", strconv.Itoa(port))
		var c io.Closer
		var err error
		if strings.HasPrefix(network, "tcp") {
			c, err = net.Listen(network, addr)
		} else {
			c, err = net.ListenPacket(network, addr)
		}
		if err != nil {
			return false
		}
		closers = append(closers, c)
	}
	return true
}
