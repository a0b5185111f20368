package forwarder

import (
	"context"
	"net"
	"net/netip"
	"slices"
	"testing"
)

func TestReachesHostLoopback(t *testing.T) {
	for _, a := range []string{"127.0.0.1", "127.255.0.9", "::1", "0.0.0.0", "0.1.2.3", "::", "::ffff:127.0.0.1", "::ffff:0.0.0.0", "::ffff:127.1.1.1"} {
		if !ReachesHostLoopback(netip.MustParseAddr(a)) {
			t.Errorf("%s: not caught", a)
		}
	}
	for _, a := range []string{"198.18.0.3", "10.0.0.1", "::2", "fd74:6761:7465::3", "::ffff:10.0.0.1", "128.0.0.1", "1.0.0.0"} {
		if ReachesHostLoopback(netip.MustParseAddr(a)) {
			t.Errorf("%s: caught", a)
		}
	}
}

// namingDialer records the dials it is asked for and fails them.
type namingDialer struct {
	name string
	got  *[]string
}

func (d namingDialer) DialContext(_ context.Context, network, address string) (net.Conn, error) {
	*d.got = append(*d.got, d.name+" "+network+" "+address)
	return nil, net.ErrClosed
}

func (d namingDialer) DialPacket(_ context.Context, network, address string) (net.Conn, error) {
	*d.got = append(*d.got, d.name+" "+network+" "+address)
	return nil, net.ErrClosed
}

func TestRedirect(t *testing.T) {
	var got []string
	r := &Redirect{
		To: map[netip.Addr]netip.Addr{
			netip.MustParseAddr("198.18.0.3"):        netip.MustParseAddr("127.0.0.1"),
			netip.MustParseAddr("fd74:6761:7465::3"): netip.MustParseAddr("::1"),
			netip.MustParseAddr("198.18.0.4"):        netip.MustParseAddr("::1"),
		},
		Via:  namingDialer{"via", &got},
		Next: namingDialer{"next", &got},
	}
	ctx := context.Background()
	r.DialContext(ctx, "tcp4", "198.18.0.3:8080")
	r.DialPacket(ctx, "udp6", "[fd74:6761:7465::3]:53")
	r.DialContext(ctx, "tcp4", "198.18.0.4:22")
	r.DialContext(ctx, "tcp4", "198.18.0.5:22")
	r.DialPacket(ctx, "udp4", "10.0.0.1:53")
	want := []string{
		"via tcp4 127.0.0.1:8080",
		"via udp6 [::1]:53",
		"via tcp6 [::1]:22",
		"next tcp4 198.18.0.5:22",
		"next udp4 10.0.0.1:53",
	}
	if !slices.Equal(got, want) {
		t.Errorf("dials:\n%q\nwant\n%q", got, want)
	}
}
