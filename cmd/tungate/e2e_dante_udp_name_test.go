package main_test

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/tungate/tungate/cmd/internal/netlab"
	"github.com/tungate/tungate/forwarder/proxy"
)

// TestDanteUDPByName pins down what dante does with a SOCKS5 UDP datagram
// whose destination is a name (ATYP 3): it accepts it, resolves the name
// itself and sends to the first address, IPv6 here (S's hosts file has
// both), whatever family the app looked up. A server on IPv4 only answers
// port unreachable; dante ends the association and the client's next read
// is "connection refused". proxy.SOCKS5.UDPResolver, resolving in the
// family asked for, gets the datagram through.
func TestDanteUDPByName(t *testing.T) {
	t.Parallel()
	l := newProxyLab(t, 1<<10)
	d := l.startDante(t, portDante, false)
	echo4 := netip.AddrPortFrom(l.srvAddr(false), portUDPEcho1)
	echo6 := netip.AddrPortFrom(l.srvAddr(true), portUDPEcho2)
	netlab.StartPeer(t, l.srv, "-udp-echo", echo4.String(), "-udp-echo", echo6.String())
	dante := netip.AddrPortFrom(l.srvAddr(false), portDante).String()
	byName := func(port uint16) string { return net.JoinHostPort(proxyTestName, strconv.Itoa(int(port))) }
	toS := func(_ context.Context, network, host string) (netip.Addr, error) {
		if host != proxyTestName || network == "udp6" {
			return netip.Addr{}, errors.New("unexpected lookup " + network + " " + host)
		}
		return l.srvAddr(false), nil
	}
	cases := []struct {
		name     string
		resolver proxy.UDPResolver
		dst      string
		network  string
		wantErr  error // nil: the echo comes back
	}{
		{"address", nil, echo4.String(), "udp4", nil},
		{"name, server on both families", nil, byName(portUDPEcho2), "udp", nil},
		{"name, server on IPv4 only", nil, byName(portUDPEcho1), "udp4", syscall.ECONNREFUSED},
		{"name resolved for IPv4 first", toS, byName(portUDPEcho1), "udp4", nil},
	}
	for _, tc := range cases {
		s5 := &proxy.SOCKS5{Address: dante, Forward: &proxy.Direct{}, UDPResolver: tc.resolver}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		c, err := s5.DialPacket(ctx, tc.network, tc.dst)
		cancel()
		if err != nil {
			t.Fatalf("%s: UDP ASSOCIATE: %v", tc.name, err)
		}
		c.SetDeadline(time.Now().Add(3 * time.Second))
		if _, err := c.Write([]byte("hello " + tc.name)); err != nil {
			t.Fatalf("%s: write: %v", tc.name, err)
		}
		buf := make([]byte, 200)
		n, err := c.Read(buf)
		c.Close()
		switch {
		case tc.wantErr == nil && (err != nil || string(buf[:n]) != "hello "+tc.name):
			t.Errorf("%s: read %q, %v; want the echo\ndante:\n%s", tc.name, buf[:n], err, d.Log())
		case tc.wantErr != nil && !errors.Is(err, tc.wantErr):
			t.Errorf("%s: read %q, %v; want %v\ndante:\n%s", tc.name, buf[:n], err, tc.wantErr, d.Log())
		}
	}
	// dante says where it sent the datagram: S's IPv6 address, port 7101.
	deadline := time.Now().Add(3 * time.Second)
	want := l.srvAddr(true).String() + "." + strconv.Itoa(portUDPEcho1)
	for !strings.Contains(d.Log(), want) && time.Now().Before(deadline) {
		time.Sleep(50 * time.Millisecond)
	}
	if log := d.Log(); !strings.Contains(log, want) || !strings.Contains(log, "Connection refused") {
		t.Errorf("dante's log does not show the datagram to %s refused:\n%s", want, log)
	}
}

// TestRunDanteUDPByName: an app under `tungate run -x socks5://dante` (fake
// DNS, the default) looks up a name with A and AAAA records, gets a fake
// IPv4 address, and sends UDP to it; the server listens on IPv4 only.
// tungate resolves the name itself, for IPv4 (the fake address's family),
// through its --dns server over dante's TCP, and sends dante the address:
// the echo comes back. A name that does not resolve is refused, and the
// debug log says why.
func TestRunDanteUDPByName(t *testing.T) {
	netlab.RequireBinary(t, "getent")
	l := newProxyLab(t, 1<<10)
	d := l.startDante(t, portDante, false)
	echo4 := netip.AddrPortFrom(l.srvAddr(false), portUDPEcho1)
	netlab.StartPeer(t, l.srv, "-udp-echo", echo4.String())
	netlab.StartDNSMasq(t, l.srv, []netip.Addr{l.srvAddr(false)}, map[string][]netip.Addr{
		proxyTestName: {l.srvAddr(false), l.srvAddr(true)},
	})
	// The app resolves the name (a fake 198.19.x.y) and echoes one datagram.
	script := `a=$(getent ahostsv4 "$1" | awk 'NR==1 {print $1}') && case "$a" in 198.19.*) ;; *) echo "not a fake address: $a"; exit 3;; esac && exec "$2" udp -tries 2 -addr "$a:$3"`
	run := func(name string) runResult {
		return tungateRun(t, nil, "--log-level", "debug", "-x", l.proxyURL("socks5", nil, portDante), "--dns", l.srvAddr(false).String(),
			"--", "sh", "-c", script, "sh", name, netlab.PeerPath(t), strconv.Itoa(portUDPEcho1))
	}
	r := run(proxyTestName)
	if r.code != 0 {
		t.Fatalf("UDP echo by name through dante: exit %d\n%s\ntungate:\n%s\ndante:\n%s", r.code, r.stdout, r.stderr, d.Log())
	}
	// The lookup went over dante's TCP to the --dns server.
	if lookup := l.srvAddr(false).String() + ".53"; !strings.Contains(d.Log(), lookup) {
		t.Errorf("dante's log shows no TCP connection to %s (the lookup):\n%s", lookup, d.Log())
	}
	r = run("nowhere.tungate.test")
	if r.code == 0 || !strings.Contains(r.stderr, "resolve nowhere.tungate.test") {
		t.Errorf("UDP to a name that does not resolve: exit %d, want a failure and the lookup's error logged\n%s\ntungate:\n%s", r.code, r.stdout, r.stderr)
	}
}
