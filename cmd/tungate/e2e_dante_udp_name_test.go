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
