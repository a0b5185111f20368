package fakedns

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"slices"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/dns"
	"github.com/tungate/tungate/forwarder/proxy"
)

// recorder is a next dialer that remembers what it was asked to dial.
type recorder struct{ dials []string }

var errRecorded = errors.New("recorded")

func (r *recorder) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	r.dials = append(r.dials, network+" "+address)
	return nil, errRecorded
}

func (r *recorder) DialPacket(ctx context.Context, network, address string) (net.Conn, error) {
	r.dials = append(r.dials, "packet "+network+" "+address)
	return nil, errRecorded
}

func TestDialerRoutes(t *testing.T) {
	res := mustNew(t, Options{})
	next := &recorder{}
	d := &Dialer{Resolver: res, Next: next}
	v4, v6 := res.Lookup("web.test")
	ctx := context.Background()

	d.DialContext(ctx, "tcp4", netip.AddrPortFrom(v4, 80).String())
	d.DialContext(ctx, "tcp6", netip.AddrPortFrom(v6, 443).String())
	d.DialPacket(ctx, "udp4", netip.AddrPortFrom(v4, 443).String())
	d.DialContext(ctx, "tcp4", "10.0.0.1:80")
	d.DialPacket(ctx, "udp6", "[2001:db8::1]:53")
	want := []string{"tcp web.test:80", "tcp web.test:443", "packet udp web.test:443", "tcp4 10.0.0.1:80", "packet udp6 [2001:db8::1]:53"}
	if !slices.Equal(next.dials, want) {
		t.Fatalf("next dialed %q, want %q", next.dials, want)
	}

	_, err := d.DialContext(ctx, "tcp4", "198.19.3.3:80")
	if !errors.Is(err, ErrUnknownAddress) {
		t.Fatalf("unknown fake address: %v", err)
	}
	if len(next.dials) != len(want) {
		t.Fatalf("an unknown fake address reached the next dialer: %q", next.dials[len(want):])
	}

	tcpOnly := &Dialer{Resolver: res, Next: struct{ proxy.Dialer }{next}}
	if _, err := tcpOnly.DialPacket(ctx, "udp4", "10.0.0.1:443"); !errors.Is(err, proxy.ErrUDPUnsupported) {
		t.Fatalf("UDP through a TCP-only dialer: %v", err)
	}
}

// newStack is fake DNS as tungate wires it: a forwarder/dns Resolver
// answering every port-53 flow from res, in front of a Dialer.
func newStack(t *testing.T, res *Resolver, next proxy.Dialer) *dns.Resolver {
	t.Helper()
	r, err := dns.New(dns.Options{EveryAddr: true, Inline: true, Answerer: res, Next: &Dialer{Resolver: res, Next: next}})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { r.Close() })
	return r
}

// datagrams shows a flow to Go's resolver as a net.PacketConn, which it
// needs to speak DNS over UDP rather than over TCP.
type datagrams struct{ net.Conn }

func (c datagrams) ReadFrom(b []byte) (int, net.Addr, error) {
	n, err := c.Read(b)
	return n, c.RemoteAddr(), err
}

func (c datagrams) WriteTo(b []byte, _ net.Addr) (int, error) { return c.Write(b) }

// Go's own resolver, speaking DNS over UDP and over TCP to the in-process
// server at an arbitrary address, gets addresses that map back to the
// name; no DNS flow reaches the next dialer, and a flow to the answer
// reaches it by name.
func TestGoResolverThroughStack(t *testing.T) {
	res := mustNew(t, Options{})
	next := &recorder{}
	d := newStack(t, res, next)
	for _, network := range []string{"udp", "tcp"} {
		gr := &net.Resolver{PreferGo: true, Dial: func(ctx context.Context, _, _ string) (net.Conn, error) {
			if network == "udp" {
				c, err := d.DialPacket(ctx, "udp4", "192.0.2.53:53")
				return datagrams{c}, err
			}
			return d.DialContext(ctx, "tcp6", "[2001:db8::53]:53")
		}}
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		addrs, err := gr.LookupNetIP(ctx, "ip", "svc.corp.example")
		cancel()
		if err != nil {
			t.Fatalf("%s: %v", network, err)
		}
		if len(addrs) != 2 {
			t.Fatalf("%s: got %v, want one IPv4 and one IPv6 address", network, addrs)
		}
		for _, a := range addrs {
			if name, ok := res.Name(a); !ok || name != "svc.corp.example" {
				t.Errorf("%s: %s names %q", network, a, name)
			}
		}
	}
	if len(next.dials) != 0 {
		t.Fatalf("DNS flows reached the next dialer: %q", next.dials)
	}
	v4, _ := res.Lookup("svc.corp.example")
	d.DialContext(context.Background(), "tcp4", netip.AddrPortFrom(v4, 443).String())
	if want := []string{"tcp svc.corp.example:443"}; !slices.Equal(next.dials, want) {
		t.Fatalf("next dialed %q, want %q", next.dials, want)
	}
}
