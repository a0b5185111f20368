package main_test

// End-to-end tests of UDP sessions whose destinations are rewritten: names
// behind fake addresses (through dante, and direct with a domain: rule) and
// the host-loopback address of `tungate run` share the session's one
// mapping with destinations given by address, and their replies come from
// the address the app sent to.

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
	"github.com/tungate/tungate/forwarder/proxy"
)

// Names of the reflectors in the name tests, and the host of a third
// reflector reached by address.
const (
	natName1      = "stun1.nat.tungate.test"
	natName2      = "stun2.nat.tungate.test"
	hostReflector = 22
)

// namesLab is S with three reflectors: name 1 on hostServer, name 2 on
// hostReflector2 (same port), and one reached by address on hostReflector.
type namesLab struct {
	net   netlab.Subnet
	srv   *netlab.NS
	r1    netip.AddrPort // natName1's
	r2    netip.AddrPort // natName2's
	r3    netip.AddrPort // by address
	hosts string         // a hosts file naming r1 and r2, IPv4 only
}

// newNamesLab makes S behind ns (a veth pair, S's default route through
// ns), with the three reflectors running if reflect is set; srvVeth is S's
// end.
func newNamesLab(t *testing.T, ns *netlab.NS, reflect bool) (l *namesLab, srvVeth string) {
	t.Helper()
	l = &namesLab{net: netlab.NewSubnet(t), srv: netlab.NewNS(t, "tnn")}
	// IPv6 on S's first address only, for dante's configuration.
	addrs := []netip.Prefix{l.net.Prefix6(hostServer)}
	for _, h := range []uint8{hostServer, hostReflector2, hostReflector} {
		addrs = append(addrs, l.net.Prefix4(h))
	}
	_, srvVeth = netlab.Veth(t, ns, l.srv, []netip.Prefix{l.net.Prefix4(hostGateway), l.net.Prefix6(hostGateway)}, addrs)
	netlab.DefaultRoutes(t, l.srv, l.net.V4(hostGateway), l.net.V6(hostGateway))
	l.r1 = netip.AddrPortFrom(l.net.V4(hostServer), portReflector)
	l.r2 = netip.AddrPortFrom(l.net.V4(hostReflector2), portReflector)
	l.r3 = netip.AddrPortFrom(l.net.V4(hostReflector), portReflector+1)
	for _, r := range []netip.AddrPort{l.r1, l.r2, l.r3} {
		if reflect {
			startReflector(t, l.srv, r)
		}
	}
	// IPv4 only: dante tries a name's IPv6 address first, and the
	// reflectors listen on IPv4.
	l.hosts = fmt.Sprintf("127.0.0.1 localhost\n%s %s\n%s %s\n", l.r1.Addr(), natName1, l.r2.Addr(), natName2)
	return l, srvVeth
}

// newNamesDanteLab is a names lab (with its reflectors if reflect is set)
// whose S runs dante and a DNS server for the names (dnsmasq on name 1's
// address), and an app namespace behind a tungate through dante (fake DNS,
// the default) that resolves UDP names at that server (--dns).
func newNamesDanteLab(t *testing.T, reflect bool) (*namesLab, *dante, *netlab.NS, *netlab.Tungate) {
	t.Helper()
	if kernelMode() {
		t.Skip("TUNGATE_E2E_GATEWAY=kernel: proxies are tungate's alone")
	}
	netlab.RequireRoot(t)
	nl, srvVeth := newNamesLab(t, netlab.Root(), reflect)
	etcFiles(t, nl.srv, map[string]string{"hosts": nl.hosts, "resolv.conf": "nameserver 127.0.0.1\n"})
	l := &proxyLab{srv: nl.srv, net: nl.net, srvVeth: srvVeth}
	d := l.startDante(t, portDante, false)
	netlab.StartDNSMasq(t, nl.srv, []netip.Addr{nl.r1.Addr()}, map[string][]netip.Addr{natName1: {nl.r1.Addr()}, natName2: {nl.r2.Addr()}})
	app, gw := l.gateway(t, "--proxy", l.proxyURL("socks5", nil, portDante), "--dns", nl.r1.Addr().String())
	return nl, d, app, gw
}

// fakeAddr looks name up at tungate's resolver in app: fake DNS answers
// with an address of its range.
func fakeAddr(t *testing.T, app *netlab.NS, name string) netip.Addr {
	t.Helper()
	out, err := dig(t, app, netip.MustParseAddr("198.18.0.2"), name, "A")
	a, perr := netip.ParseAddr(strings.TrimSpace(out))
	if err != nil || perr != nil || !netip.MustParsePrefix("198.19.0.0/16").Contains(a) {
		t.Fatalf("dig %s A: %q (%v); want one fake address", name, out, err)
	}
	return a
}

// sameMappingByName sends from one app socket to both names (by their fake
// addresses) and to r3 by address, and checks that every reflector sees
// one mapping and that each answer comes from the address the app sent
// to; then a connected socket to name 1's fake address gets its answer
// (the kernel drops what comes from any other source). It returns the
// mapping.
func (l *namesLab) sameMappingByName(t *testing.T, app *netlab.NS) netip.AddrPort {
	t.Helper()
	f1 := netip.AddrPortFrom(fakeAddr(t, app, natName1), portReflector)
	f2 := netip.AddrPortFrom(fakeAddr(t, app, natName2), portReflector)
	c := openUDP(t, app, false, netip.AddrPort{})
	m1, m2, m3 := mappedBy(t, c, f1), mappedBy(t, c, f2), mappedBy(t, c, l.r3)
	if m1 != m2 || m2 != m3 {
		t.Fatalf("%s (%v) saw %v, %s (%v) saw %v, %v saw %v; want one mapping", natName1, f1, m1, natName2, f2, m2, l.r3, m3)
	}
	if again := mappedBy(t, c, f1); again != m1 {
		t.Fatalf("%s saw %v, then %v", natName1, m1, again)
	}
	var conn *net.UDPConn
	if err := app.Do(func() error {
		var err error
		conn, err = net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(f1))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	for try := 0; ; try++ {
		conn.Write([]byte("connected"))
		conn.SetReadDeadline(time.Now().Add(2 * time.Second))
		buf := make([]byte, 100)
		n, err := conn.Read(buf)
		if err == nil {
			t.Logf("connected socket to %v got %q", f1, buf[:n])
			break
		}
		if try == 2 {
			t.Fatalf("a socket connected to %v got no answer: %v", f1, err)
		}
	}
	return m1
}

// stoppedUDPStats stops gw and returns the UDP sessions and mappings its
// last log line counted.
func stoppedUDPStats(t *testing.T, stop func(), output func() string) (sessions, mappings int) {
	t.Helper()
	stop()
	m := regexp.MustCompile(`udp\.sessions=(\d+) udp\.mappings=(\d+)`).FindStringSubmatch(output())
	if m == nil {
		t.Fatalf("tungate's stop line counts no UDP sessions and mappings:\n%s", output())
	}
	sessions, _ = strconv.Atoi(m[1])
	mappings, _ = strconv.Atoi(m[2])
	return sessions, mappings
}

// TestUDPNamesShareTheAssociationThroughDante: through dante with fake DNS
// (the default with a proxy), one app socket sends to two names and to an
// address: all three go through one UDP ASSOCIATE (the reflectors see
// dante's one relay port). tungate resolves the names through dante's TCP
// at the --dns server (dnsmasq on S), in the app's family, and replies
// from those addresses reach the app from the names' fake addresses.
func TestUDPNamesShareTheAssociationThroughDante(t *testing.T) {
	t.Parallel()
	nl, d, app, gw := newNamesDanteLab(t, true)
	mapped := nl.sameMappingByName(t, app)
	if mapped.Addr() != nl.r1.Addr() {
		t.Errorf("the reflectors saw %v; want dante's relay on %v", mapped, nl.r1.Addr())
	}
	// The shared socket, the connected one and dig's two: one mapping
	// (an association, or dig's in-process answers) per app socket.
	sessions, mappings := stoppedUDPStats(t, func() { gw.Stop() }, gw.Output)
	if sessions != 4 || mappings != sessions {
		t.Errorf("%d UDP sessions with %d mappings at stop; want 4 with one mapping each\ndante:\n%s", sessions, mappings, d.Log())
	}
	// dante logs each association once: the shared socket's, the
	// connected one's.
	if n := strings.Count(d.Log(), "udp/udpassociate ["); n != 2 {
		t.Errorf("dante logged %d UDP associations; want 2 (one per app socket):\n%s", n, d.Log())
	}
}

// TestUDPNamesShareTheMappingDirect: with a domain: rule sending names
// direct (fake DNS without a proxy), tungate resolves each name with the
// host's resolver (S's addresses in the gateway namespace's hosts file)
// and sends on the session's one host socket: the reflectors by name and
// the one by address see the same host port, and the answers come from
// the fake addresses.
func TestUDPNamesShareTheMappingDirect(t *testing.T) {
	t.Parallel()
	if kernelMode() {
		t.Skip("TUNGATE_E2E_GATEWAY=kernel: fake DNS is tungate's alone")
	}
	netlab.RequireRoot(t)
	gwNS := netlab.NewNS(t, "tng")
	nl, _ := newNamesLab(t, gwNS, true)
	// "ip netns exec" shows these as the gateway's /etc: its resolver
	// reads the names from the hosts file.
	netlab.CleanEtcNetNS(t, gwNS.Name)
	etcFiles(t, gwNS, map[string]string{"hosts": nl.hosts, "resolv.conf": "nameserver 127.0.0.1\n", "nsswitch.conf": "hosts: files dns\n"})
	app := netlab.NewNS(t, "tna")
	gw := gwNS.Start(t, netlab.TungatePath(t), "--netns", app.Name, "--device", "tun://"+netlab.UniqueName("tg"),
		"--connect-timeout", "2s", "--route", "domain:nat.tungate.test=direct", "--control", "none")
	if err := gw.WaitOutput("msg=serving", netlab.ServingTimeout); err != nil {
		t.Fatalf("tungate did not start: %v", err)
	}
	mapped := nl.sameMappingByName(t, app)
	if mapped.Addr() != nl.net.V4(hostGateway) {
		t.Errorf("the reflectors saw %v; want the gateway's address %v", mapped, nl.net.V4(hostGateway))
	}
	sessions, mappings := stoppedUDPStats(t, func() {
		if err := gw.Stop(netlab.StopTimeout); err != nil {
			t.Errorf("tungate after SIGTERM: %v", err)
		}
	}, gw.Output)
	if sessions != 4 || mappings != sessions {
		t.Errorf("%d UDP sessions with %d mappings at stop; want 4 with one mapping each (a host socket, or dig's in-process answers)\n%s", sessions, mappings, gw.Output())
	}
}

// hostLoopbackUDPScript asks a reflector at 198.18.0.3 (the host's
// loopback under `tungate run --allow-host-loopback`), one outside and the
// first again, from one socket, printing "DST SEEN FROM" for each; then a
// socket connected to 198.18.0.3 prints "connected SEEN".
const hostLoopbackUDPScript = `
import socket, sys
lb = ("198.18.0.3", int(sys.argv[1]))
out = (sys.argv[2], int(sys.argv[3]))
def ask(s, dst):
    for _ in range(3):
        s.sendto(b"who am i", dst)
        try:
            data, src = s.recvfrom(2048)
        except socket.timeout:
            continue
        return data.decode(), "%s:%d" % src[:2]
    return "none", "none"
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
s.settimeout(2)
for dst in (lb, out, lb):
    seen, src = ask(s, dst)
    print("%s:%d %s %s" % (dst[0], dst[1], seen, src))
c = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
c.settimeout(2)
c.connect(lb)
seen, _ = ask(c, lb)
print("connected " + seen)
`

// TestRunHostLoopbackUDPSharesThePort: under `tungate run
// --allow-host-loopback`, one app socket asks a reflector on the host's
// 127.0.0.1 (through 198.18.0.3) and one outside: both see the same host
// port (one host socket), and the loopback's answers come from 198.18.0.3,
// which a connected socket accepts.
func TestRunHostLoopbackUDPSharesThePort(t *testing.T) {
	netlab.RequireRoot(t)
	netlab.RequireBinary(t, "python3")
	sub := netlab.NewSubnet(t)
	srv := netlab.NewNS(t, "tnl")
	netlab.Veth(t, netlab.Root(), srv, []netip.Prefix{sub.Prefix4(hostGateway)}, []netip.Prefix{sub.Prefix4(hostServer)})
	netlab.DefaultRoutes(t, srv, sub.V4(hostGateway))
	lb := startReflector(t, netlab.Root(), netip.MustParseAddrPort("127.0.0.1:0"))
	out := startReflector(t, srv, netip.AddrPortFrom(sub.V4(hostServer), portReflector))
	r := tungateRun(t, nil, "--allow-host-loopback", "--", "python3", "-c", hostLoopbackUDPScript,
		strconv.Itoa(int(lb.Port())), out.Addr().String(), strconv.Itoa(int(out.Port()))).mustSucceed(t, "the UDP script")
	lines := strings.Split(strings.TrimSpace(r.stdout), "\n")
	if len(lines) != 4 {
		t.Fatalf("script printed:\n%s\ntungate:\n%s", r.stdout, r.stderr)
	}
	mapped := netip.AddrPortFrom(netip.MustParseAddr("198.18.0.3"), lb.Port())
	var ports []uint16
	for i, want := range []netip.AddrPort{mapped, out, mapped} {
		f := strings.Fields(lines[i])
		if len(f) != 3 || f[0] != want.String() || f[2] != want.String() {
			t.Fatalf("line %q; want an answer from %v", lines[i], want)
		}
		seen, err := netip.ParseAddrPort(f[1])
		if err != nil {
			t.Fatalf("line %q: the reflector answered %q", lines[i], f[1])
		}
		ports = append(ports, seen.Port())
	}
	if ports[0] != ports[1] || ports[1] != ports[2] {
		t.Fatalf("the loopback reflector and the outside one saw host ports %v; want one port\n%s", ports, r.stdout)
	}
	if !strings.HasPrefix(lines[3], "connected 127.0.0.1:") {
		t.Fatalf("the connected socket: %q; want the loopback reflector's answer", lines[3])
	}
	t.Logf("one host port %d for 198.18.0.3 and %v:\n%s", ports[0], out, r.stdout)
}

// TestUDPUnrepliedSessionsExpireSooner: with --udp-unreplied-timeout 1s, a session
// that never got a reply ends within a few seconds, while one that did
// lives on (--udp-timeout 30s): tungate's stop line counts one expired
// session and one still open.
func TestUDPUnrepliedSessionsExpireSooner(t *testing.T) {
	t.Parallel()
	l := newNATLab(t, "--udp-unreplied-timeout", "1s", "--udp-timeout", "30s")
	r := netip.AddrPortFrom(l.addr(hostServer, false), portReflector)
	startReflector(t, l.srv, r)
	replied := openUDP(t, l.app, false, netip.AddrPort{})
	mappedBy(t, replied, r)
	silent := openUDP(t, l.app, false, netip.AddrPort{})
	if _, err := silent.WriteToUDPAddrPort([]byte("anyone?"), netip.AddrPortFrom(l.addr(hostStranger, false), 5555)); err != nil {
		t.Fatal(err)
	}
	time.Sleep(3 * time.Second)
	out := func() string { return l.gw.Output() }
	l.gw.Stop()
	m := regexp.MustCompile(`udp\.sessions=(\d+) udp\.mappings=\d+ udp\.opened=(\d+) udp\.expired=(\d+)`).FindStringSubmatch(out())
	if m == nil || m[1] != "1" || m[2] != "2" || m[3] != "1" {
		t.Fatalf("stop line %q; want 2 sessions opened, 1 expired (the unreplied one), 1 open:\n%s", m, out())
	}
}

// TestNATDiscoveryByNameThroughDante: coturn's turnutils_natdiscovery asks
// turnserver by name (a fake address, with fake DNS through dante), then
// its other address by address: one association carries both, so it
// reports endpoint-independent mapping.
func TestNATDiscoveryByNameThroughDante(t *testing.T) {
	t.Parallel()
	netlab.RequireBinary(t, "turnserver")
	netlab.RequireBinary(t, "turnutils_natdiscovery")
	nl, d, app, gw := newNamesDanteLab(t, false)
	a1, a2 := nl.r1.Addr(), nl.r2.Addr()
	// The app's resolver is tungate's, which answers with fake addresses.
	etcFiles(t, app, map[string]string{"resolv.conf": "nameserver 198.18.0.2\n"})
	if got, err := runIn(t, app, 10*time.Second, "getent", "ahostsv4", natName1); err != nil || !strings.HasPrefix(got, "198.19.") {
		t.Fatalf("getent ahostsv4 %s in the app: %q (%v); want a fake address", natName1, got, err)
	}
	out := natDiscoveryAt(t, nl.srv, app, a1, a2, natName1, "-m")
	if !strings.Contains(out, "NAT with Endpoint Independent Mapping") {
		t.Fatalf("natdiscovery -m %s through dante did not report endpoint-independent mapping:\n%s\ntungate:\n%s\ndante:\n%s", natName1, out, gw.Output(), d.Log())
	}
	t.Logf("natdiscovery -m %s:\n%s", natName1, out)
}

// TestDanteUDPWriteToName: a SOCKS5 association's WriteToName (ATYP 3, the
// name for the proxy to resolve, as tungate sends a name behind a fake
// address when it has no server to resolve it with) reaches the reflector
// that dante resolved the name to, and the reply comes back from that
// address on the same association as datagrams by address.
func TestDanteUDPWriteToName(t *testing.T) {
	t.Parallel()
	nl, d, _, _ := newNamesDanteLab(t, true)
	s5 := &proxy.SOCKS5{Address: netip.AddrPortFrom(nl.r1.Addr(), portDante).String(), Forward: &proxy.Direct{}}
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	pc, err := s5.ListenPacket(ctx, "udp4")
	cancel()
	if err != nil {
		t.Fatalf("UDP ASSOCIATE: %v", err)
	}
	defer pc.Close()
	nc, ok := pc.(proxy.NamePacketConn)
	if !ok {
		t.Fatalf("%T cannot send to a name", pc)
	}
	var seen []string
	for _, send := range []struct {
		what string
		from netip.AddrPort
		fn   func() error
	}{
		{natName2, nl.r2, func() error { return nc.WriteToName([]byte("who am i"), natName2, nl.r2.Port()) }},
		{nl.r3.String(), nl.r3, func() error { return pc.WriteTo([]byte("who am i"), nl.r3) }},
	} {
		if err := send.fn(); err != nil {
			t.Fatalf("send to %s: %v", send.what, err)
		}
		got := make(chan string, 1)
		go func() {
			buf := make([]byte, 200)
			n, from, err := pc.ReadFrom(buf)
			got <- fmt.Sprintf("%s from %v (%v)", buf[:n], from, err)
		}()
		select {
		case g := <-got:
			if !strings.HasSuffix(g, "from "+send.from.String()+" (<nil>)") {
				t.Fatalf("to %s: got %s; want an answer from %v\ndante:\n%s", send.what, g, send.from, d.Log())
			}
			seen = append(seen, strings.Fields(g)[0])
		case <-time.After(5 * time.Second):
			pc.Close()
			t.Fatalf("no answer from %s\ndante:\n%s", send.what, d.Log())
		}
	}
	if seen[0] != seen[1] {
		t.Fatalf("the reflectors saw %v; want one relay address and port", seen)
	}
}
