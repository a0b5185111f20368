package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"
)

// With a UDPResolver, datagrams to a name carry the address it resolves to
// in the family DialPacket was asked for; the fake relay, like a proxy that
// mishandles names, forwards address datagrams only.
func TestSOCKS5UDPResolver(t *testing.T) {
	echo := startUDPEcho(t)
	host, port, _ := net.SplitHostPort(echo)
	srv := startSOCKS5(t, &fakeSOCKS5{})
	var asked []string
	d := &SOCKS5{Address: srv.addr(), Forward: &Direct{}, UDPResolver: func(_ context.Context, network, name string) (netip.Addr, error) {
		asked = append(asked, network+" "+name)
		if name != "echo.test" {
			return netip.Addr{}, errors.New("no such host")
		}
		return netip.MustParseAddr(host), nil
	}}
	conn, err := d.DialPacket(testCtx(t), "udp4", net.JoinHostPort("echo.test", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	echoRoundTrip(t, conn, "by name")
	if len(asked) != 1 || asked[0] != "udp4 echo.test" {
		t.Errorf("resolver asked %q, want [udp4 echo.test]", asked)
	}
	// An address is sent as it is, without asking.
	conn2, err := d.DialPacket(testCtx(t), "udp", echo)
	if err != nil {
		t.Fatal(err)
	}
	defer conn2.Close()
	echoRoundTrip(t, conn2, "by address")
	if len(asked) != 1 {
		t.Errorf("resolver asked for an address: %q", asked)
	}
	// A name that does not resolve fails before any handshake.
	before := srv.requests()
	if _, err := d.DialPacket(testCtx(t), "udp", "nowhere.test:53"); err == nil {
		t.Fatal("dial to an unresolvable name succeeded")
	}
	if srv.requests() != before {
		t.Errorf("a failed resolution still asked the proxy")
	}
}

// Without a UDPResolver the name goes to the proxy (remote DNS), which this
// fake drops: no echo.
func TestSOCKS5UDPNameSentByDefault(t *testing.T) {
	echo := startUDPEcho(t)
	_, port, _ := net.SplitHostPort(echo)
	srv := startSOCKS5(t, &fakeSOCKS5{})
	d := &SOCKS5{Address: srv.addr(), Forward: &Direct{}}
	conn, err := d.DialPacket(testCtx(t), "udp", net.JoinHostPort("echo.test", port))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.Write([]byte("x"))
	conn.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
	if _, err := conn.Read(make([]byte, 10)); err == nil {
		t.Fatal("the fake relay answered a name datagram; this test no longer shows the default")
	}
}
