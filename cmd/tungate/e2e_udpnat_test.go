package main_test

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// Hosts of S's extra addresses in the UDP NAT lab: two reflectors, and a
// stranger the app never sends to.
const (
	hostReflector2 = 20
	hostStranger   = 21
	portReflector  = 3478
)

// natLab is an app namespace behind tungate and a server namespace S with
// three addresses per family.
type natLab struct {
	net      netlab.Subnet
	app, srv *netlab.NS
	gw       *netlab.Tungate
}

func newNATLab(t *testing.T, args ...string) *natLab {
	t.Helper()
	if kernelMode() {
		t.Skip("TUNGATE_E2E_GATEWAY=kernel: the kernel routes without NAT here")
	}
	netlab.RequireRoot(t)
	l := &natLab{net: netlab.NewSubnet(t), app: netlab.NewNS(t, "tna"), srv: netlab.NewNS(t, "tns")}
	var srvAddrs []netip.Prefix
	for _, h := range []uint8{hostServer, hostReflector2, hostStranger} {
		srvAddrs = append(srvAddrs, l.net.Prefix4(h), l.net.Prefix6(uint16(h)))
	}
	netlab.Veth(t, netlab.Root(), l.srv, []netip.Prefix{l.net.Prefix4(hostGateway), l.net.Prefix6(hostGateway)}, srvAddrs)
	netlab.DefaultRoutes(t, l.srv, l.net.V4(hostGateway), l.net.V6(hostGateway))
	base := []string{"--netns", l.app.Name, "--device", "tun://" + netlab.UniqueName("tg"), "--connect-timeout", "2s"}
	l.gw = netlab.StartTungate(t, append(base, args...)...)
	return l
}

// addr is S's address host in the given family.
func (l *natLab) addr(host uint8, v6 bool) netip.Addr {
	return l.net.Addr(host, v6)
}

// openUDP opens an unconnected UDP socket in ns, bound to laddr (the
// zero value binds any address and port of the family v6 says).
func openUDP(t testing.TB, ns *netlab.NS, v6 bool, laddr netip.AddrPort) *net.UDPConn {
	t.Helper()
	network := "udp4"
	if v6 {
		network = "udp6"
	}
	var c *net.UDPConn
	err := ns.Do(func() error {
		var err error
		c, err = net.ListenUDP(network, net.UDPAddrFromAddrPort(laddr))
		return err
	})
	if err != nil {
		t.Fatalf("open UDP socket in %s: %v", ns, err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// startReflector answers every datagram to addr in ns with the address
// and port it came from, as a STUN server does. It returns the address it
// listens on (addr with the port picked if addr's is 0).
func startReflector(t testing.TB, ns *netlab.NS, addr netip.AddrPort) netip.AddrPort {
	t.Helper()
	c := openUDP(t, ns, addr.Addr().Is6(), addr)
	go func() {
		buf := make([]byte, 2048)
		for {
			_, from, err := c.ReadFromUDPAddrPort(buf)
			if err != nil {
				return
			}
			c.WriteToUDPAddrPort([]byte(unmapped(from).String()), from)
		}
	}()
	return unmapped(c.LocalAddr().(*net.UDPAddr).AddrPort())
}

func unmapped(a netip.AddrPort) netip.AddrPort { return netip.AddrPortFrom(a.Addr().Unmap(), a.Port()) }

// receive reads one datagram within limit; ok is false if none came.
func receive(t testing.TB, c *net.UDPConn, limit time.Duration) (payload string, from netip.AddrPort, ok bool) {
	t.Helper()
	buf := make([]byte, 2048)
	c.SetReadDeadline(time.Now().Add(limit))
	n, from, err := c.ReadFromUDPAddrPort(buf)
	var timeout net.Error
	if errors.As(err, &timeout) && timeout.Timeout() {
		return "", netip.AddrPort{}, false
	}
	if err != nil {
		t.Fatalf("read: %v", err)
	}
	return string(buf[:n]), unmapped(from), true
}

// mappedBy asks the reflector at dst which address and port it sees c as,
// and checks that the answer comes from dst.
func mappedBy(t testing.TB, c *net.UDPConn, dst netip.AddrPort) netip.AddrPort {
	t.Helper()
	for range 3 {
		if _, err := c.WriteToUDPAddrPort([]byte("who am i"), dst); err != nil {
			t.Fatalf("send to %v: %v", dst, err)
		}
		got, from, ok := receive(t, c, 2*time.Second)
		if !ok {
			continue
		}
		if from != dst {
			t.Fatalf("reflector's answer came from %v; want %v", from, dst)
		}
		mapped, err := netip.ParseAddrPort(got)
		if err != nil {
			t.Fatalf("reflector %v answered %q", dst, got)
		}
		return mapped
	}
	t.Fatalf("no answer from the reflector at %v", dst)
	return netip.AddrPort{}
}

// TestUDPEndpointIndependentMappingAndFiltering: one app socket, two
// reflectors on two addresses of S: both see the same mapping. A third
// address that the app never contacted sends to that mapping: the app gets
// it (from that address) with --udp-filter endpoint, not with address or
// port. With address, a reflector's other port gets through; with port it
// does not.
func TestUDPEndpointIndependentMappingAndFiltering(t *testing.T) {
	t.Parallel()
	for _, filter := range []string{"endpoint", "address", "port"} {
		t.Run(filter, func(t *testing.T) {
			t.Parallel()
			l := newNATLab(t, "--udp-filter", filter)
			for _, fam := range families {
				t.Run(fam.name, func(t *testing.T) {
					r1 := netip.AddrPortFrom(l.addr(hostServer, fam.v6), portReflector)
					r2 := netip.AddrPortFrom(l.addr(hostReflector2, fam.v6), portReflector)
					startReflector(t, l.srv, r1)
					startReflector(t, l.srv, r2)
					app := openUDP(t, l.app, fam.v6, netip.AddrPort{})
					m1, m2 := mappedBy(t, app, r1), mappedBy(t, app, r2)
					if m1 != m2 {
						t.Fatalf("the reflectors saw %v and %v; want one mapping", m1, m2)
					}
					t.Logf("mapping %v for both reflectors", m1)
					for _, tc := range []struct {
						from netip.AddrPort
						want map[string]bool
					}{
						{netip.AddrPortFrom(l.addr(hostStranger, fam.v6), 5000),
							map[string]bool{"endpoint": true, "address": false, "port": false}},
						{netip.AddrPortFrom(r1.Addr(), 5001),
							map[string]bool{"endpoint": true, "address": true, "port": false}},
					} {
						other := openUDP(t, l.srv, fam.v6, tc.from)
						if _, err := other.WriteToUDPAddrPort([]byte("unsolicited"), m1); err != nil {
							t.Fatal(err)
						}
						got, from, ok := receive(t, app, time.Second)
						switch {
						case ok != tc.want[filter]:
							t.Fatalf("from %v with --udp-filter %s: delivered %v; want %v", tc.from, filter, ok, tc.want[filter])
						case ok && (got != "unsolicited" || from != tc.from):
							t.Fatalf("delivered %q from %v; want \"unsolicited\" from %v", got, from, tc.from)
						}
					}
				})
			}
		})
	}
}

// fdCount is the number of open descriptors of process pid.
func fdCount(t testing.TB, pid int) int {
	t.Helper()
	ents, err := os.ReadDir(fmt.Sprintf("/proc/%d/fd", pid))
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// TestUDPScanFromOnePortIsOneSession: 10,000 datagrams from one app port
// to 10,000 destinations open one host socket, and the session still
// works afterwards with the same mapping.
func TestUDPScanFromOnePortIsOneSession(t *testing.T) {
	t.Parallel()
	l := newNATLab(t)
	pid := l.gw.Pid()
	r1 := netip.AddrPortFrom(l.addr(hostServer, false), portReflector)
	startReflector(t, l.srv, r1)
	before := fdCount(t, pid)
	app := openUDP(t, l.app, false, netip.AddrPort{})
	mapped := mappedBy(t, app, r1)
	const n = 10000
	start := time.Now()
	for i := range n {
		dst := netip.AddrPortFrom(l.addr(hostReflector2, false), uint16(20000+i))
		if _, err := app.WriteToUDPAddrPort([]byte("scan"), dst); err != nil {
			t.Fatalf("datagram %d: %v", i, err)
		}
	}
	sent := time.Since(start)
	peak := 0
	for deadline := time.Now().Add(time.Second); time.Now().Before(deadline); time.Sleep(50 * time.Millisecond) {
		peak = max(peak, fdCount(t, pid))
	}
	t.Logf("%d datagrams to %d destinations from one port in %v: tungate's descriptors %d before, at most %d after",
		n, n, sent.Round(time.Millisecond), before, peak)
	if peak > before+1 {
		t.Fatalf("descriptors went from %d to %d; want one socket for the one session", before, peak)
	}
	if again := mappedBy(t, app, r1); again != mapped {
		t.Fatalf("mapping %v after the scan; want %v", again, mapped)
	}
}

// TestUDPThroughDanteOneAssociation: through dante's UDP ASSOCIATE, one
// app socket sends to two destinations; both reply through the one
// association (both see the same relay address and port).
func TestUDPThroughDanteOneAssociation(t *testing.T) {
	t.Parallel()
	l := newProxyLab(t, 1<<10)
	l.startDante(t, portDante, false)
	app, _ := l.gateway(t, "--proxy", l.proxyURL("socks5", nil, portDante))
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			r1 := netip.AddrPortFrom(l.srvAddr(fam.v6), portReflector)
			r2 := netip.AddrPortFrom(l.srvAddr(fam.v6), portReflector+1)
			startReflector(t, l.srv, r1)
			startReflector(t, l.srv, r2)
			c := openUDP(t, app, fam.v6, netip.AddrPort{})
			m1, m2 := mappedBy(t, c, r1), mappedBy(t, c, r2)
			if m1 != m2 {
				t.Fatalf("the reflectors saw %v and %v; want one association's relay", m1, m2)
			}
			t.Logf("dante's relay %v carried both destinations", m1)
		})
	}
}

// TestUDPLargeDatagramsPassWhole: replies larger than the MTU reach the
// app whole (the stack writes them into the device as one packet, which
// the kernel delivers as it is).
func TestUDPLargeDatagramsPassWhole(t *testing.T) {
	t.Parallel()
	tp := newTopo(t)
	var listen []string
	for _, fam := range families {
		listen = append(listen, "-udp-echo", tp.srvPort(fam.v6, portUDPEcho1))
	}
	netlab.StartPeer(t, tp.srv, listen...)
	for _, fam := range families {
		for _, size := range []int{4000, 65000} {
			t.Run(fmt.Sprintf("%s/%d-bytes", fam.name, size), func(t *testing.T) {
				tp.peer(t, "udp", "-size", fmt.Sprint(size), "-addr", tp.srvPort(fam.v6, portUDPEcho1))
			})
		}
	}
}

// TestUDPOneMappingPerUpstream: a rule sends one destination of a session
// direct while the other goes through dante: each keeps its own stable
// mapping (dante's relay for one, the host's socket for the other), and
// both reply to the one app socket.
func TestUDPOneMappingPerUpstream(t *testing.T) {
	t.Parallel()
	l := newProxyLab(t, 1<<10)
	l.startDante(t, portDante, false)
	viaProxy := netip.AddrPortFrom(l.srvAddr(false), portReflector)
	direct := netip.AddrPortFrom(l.srvAddr(false), portReflector+1)
	app, _ := l.gateway(t, "--proxy", l.proxyURL("socks5", nil, portDante),
		"--route", fmt.Sprintf("udp,port:%d=direct", direct.Port()))
	startReflector(t, l.srv, viaProxy)
	startReflector(t, l.srv, direct)
	c := openUDP(t, app, false, netip.AddrPort{})
	relay, host := mappedBy(t, c, viaProxy), mappedBy(t, c, direct)
	if relay == host {
		t.Fatalf("both destinations saw %v; want dante's relay for one and the host's socket for the other", relay)
	}
	if relay.Addr() != l.srvAddr(false) || host.Addr() != l.net.V4(hostGateway) {
		t.Fatalf("mappings %v (through dante) and %v (direct); want dante's address and the host's", relay, host)
	}
	for range 2 {
		if again := mappedBy(t, c, viaProxy); again != relay {
			t.Fatalf("through dante: mapping %v, then %v", relay, again)
		}
		if again := mappedBy(t, c, direct); again != host {
			t.Fatalf("direct: mapping %v, then %v", host, again)
		}
	}
	t.Logf("one session, two mappings: %v through dante, %v direct", relay, host)
}

// TestUDPPortUnreachableForThatDestinationOnly: one app socket talks to a
// reflector and to a closed port on S. The closed port's ICMP port
// unreachable reaches the app naming that destination (the socket's error
// queue, IP_RECVERR), and the reflector goes on answering.
func TestUDPPortUnreachableForThatDestinationOnly(t *testing.T) {
	t.Parallel()
	l := newNATLab(t)
	for _, fam := range families {
		t.Run(fam.name, func(t *testing.T) {
			live := netip.AddrPortFrom(l.addr(hostServer, fam.v6), portReflector)
			closed := netip.AddrPortFrom(l.addr(hostReflector2, fam.v6), 9)
			startReflector(t, l.srv, live)
			c := openUDP(t, l.app, fam.v6, netip.AddrPort{})
			recvErr(t, c, fam.v6)
			mapped := mappedBy(t, c, live)
			if _, err := c.WriteToUDPAddrPort([]byte("anyone?"), closed); err != nil {
				t.Fatal(err)
			}
			if got := refusedBy(t, c); got != closed {
				t.Fatalf("port unreachable from %v; want %v", got, closed)
			}
			if again := mappedBy(t, c, live); again != mapped {
				t.Fatalf("mapping %v after the refusal; want %v", again, mapped)
			}
		})
	}
}

// recvErr turns on c's error queue, which names the destination of each
// ICMP error even on an unconnected socket.
func recvErr(t *testing.T, c *net.UDPConn, v6 bool) {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	level, opt := unix.SOL_IP, unix.IP_RECVERR
	if v6 {
		level, opt = unix.SOL_IPV6, unix.IPV6_RECVERR
	}
	var setErr error
	if err := rc.Control(func(fd uintptr) { setErr = unix.SetsockoptInt(int(fd), level, opt, 1) }); err != nil || setErr != nil {
		t.Fatalf("IP_RECVERR: %v %v", err, setErr)
	}
}

// refusedBy waits for an ECONNREFUSED in c's error queue and returns the
// destination it names.
func refusedBy(t *testing.T, c *net.UDPConn) netip.AddrPort {
	t.Helper()
	rc, err := c.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(5 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		var from unix.Sockaddr
		var readErr error
		oob := make([]byte, 512)
		rc.Control(func(fd uintptr) {
			var oobn int
			_, oobn, _, from, readErr = unix.Recvmsg(int(fd), make([]byte, 64), oob, unix.MSG_ERRQUEUE|unix.MSG_DONTWAIT)
			oob = oob[:oobn]
		})
		if readErr != nil {
			continue
		}
		msgs, err := unix.ParseSocketControlMessage(oob)
		if err != nil || len(msgs) == 0 || len(msgs[0].Data) < 4 {
			t.Fatalf("error queue: %v, %d messages", err, len(msgs))
		}
		if errno := unix.Errno(binary.NativeEndian.Uint32(msgs[0].Data)); errno != unix.ECONNREFUSED {
			t.Fatalf("error queue: %v; want ECONNREFUSED", errno)
		}
		switch sa := from.(type) {
		case *unix.SockaddrInet4:
			return netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), uint16(sa.Port))
		case *unix.SockaddrInet6:
			return netip.AddrPortFrom(netip.AddrFrom16(sa.Addr).Unmap(), uint16(sa.Port))
		}
		t.Fatalf("error queue names %T", from)
	}
	t.Fatal("no ICMP port unreachable reached the app")
	return netip.AddrPort{}
}
