package forwarder_test

import (
	"context"
	"net"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/link/pipe"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/tungate/tungate/forwarder"
	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/forwarder/route"
	"github.com/tungate/tungate/stack"
)

// appAddr is the address of the fake app stack; everything it sends goes
// to tungate's stack over an in-memory pipe instead of a TUN device.
var appAddr = tcpip.AddrFrom4([4]byte{10, 0, 0, 1})

// dialerFunc adapts a function to proxy.Dialer.
type dialerFunc func(ctx context.Context, network, address string) (net.Conn, error)

func (f dialerFunc) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return f(ctx, network, address)
}

// packetDialer is a dialerFunc that also carries UDP.
type packetDialer struct {
	dialerFunc
	packet dialerFunc
}

func (p packetDialer) DialPacket(ctx context.Context, network, address string) (net.Conn, error) {
	return p.packet(ctx, network, address)
}

// newPair builds an app stack wired to a tungate stack and forwarder that
// dial through d. Everything is closed when the test ends.
func newPair(t testing.TB, d proxy.Dialer) *gvstack.Stack {
	t.Helper()
	fwd, app, closeGW := newGateway(t, d)
	t.Cleanup(func() {
		fwd.Close()
		closeGW()
	})
	return app
}

// newGateway is newPair that leaves closing to the caller.
func newGateway(t testing.TB, d proxy.Dialer) (*forwarder.Forwarder, *gvstack.Stack, func()) {
	t.Helper()
	return newGatewayWith(t, d, nil)
}

// newGatewayWith is newGateway whose stack hands its flows to
// wrap(forwarder) when wrap is not nil.
func newGatewayWith(t testing.TB, d proxy.Dialer, wrap func(stack.Handler) stack.Handler) (*forwarder.Forwarder, *gvstack.Stack, func()) {
	t.Helper()
	appLink, gwLink := pipe.New("", "", 1500)
	app := gvstack.New(gvstack.Options{
		NetworkProtocols:   []gvstack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []gvstack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol},
	})
	if err := app.CreateNIC(1, appLink); err != nil {
		t.Fatalf("app NIC: %v", err)
	}
	if err := app.AddProtocolAddress(1, tcpip.ProtocolAddress{
		Protocol:          ipv4.ProtocolNumber,
		AddressWithPrefix: appAddr.WithPrefix(),
	}, gvstack.AddressProperties{}); err != nil {
		t.Fatalf("app address: %v", err)
	}
	app.SetRouteTable([]tcpip.Route{{Destination: header.IPv4EmptySubnet, NIC: 1}})

	var udpApp forwarder.LateApp
	fwd, err := forwarder.New(forwarder.Options{Router: routeAllTo(t, d), UDPApp: &udpApp})
	if err != nil {
		t.Fatal(err)
	}
	var h stack.Handler = fwd
	if wrap != nil {
		h = wrap(fwd)
	}
	gw, err := stack.New(stack.Options{Link: gwLink, Handler: h})
	if err != nil {
		t.Fatal(err)
	}
	udpApp.Set(gw)
	return fwd, app, func() {
		gw.Close()
		app.Close()
		app.Wait()
	}
}

var _ stack.Handler = (*forwarder.Forwarder)(nil)

// routeAllTo is a router that dials every flow through d, and UDP too if
// d is a proxy.PacketDialer.
func routeAllTo(t testing.TB, d proxy.Dialer) *route.Router {
	t.Helper()
	up := &route.Upstream{Name: "direct", Dialer: d}
	up.Packets, _ = d.(proxy.PacketDialer)
	r, err := route.New(route.Options{Direct: up})
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// to returns a destination in the app's view.
func to(a, b, c, d byte, port uint16) tcpip.FullAddress {
	return tcpip.FullAddress{NIC: 1, Addr: tcpip.AddrFrom4([4]byte{a, b, c, d}), Port: port}
}

// loopbackTo returns a dialer that sends every flow to addr on loopback.
func loopbackTo(addr string) dialerFunc {
	return func(ctx context.Context, network, _ string) (net.Conn, error) {
		var d net.Dialer
		return d.DialContext(ctx, network[:3], addr)
	}
}

// dialApp connects from the app stack through the gateway to 10.9.9.9:port;
// the connection is closed when the test ends.
func dialApp(t testing.TB, app *gvstack.Stack, port uint16) *gonet.TCPConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c, err := gonet.DialContextTCP(ctx, app, to(10, 9, 9, 9, port), ipv4.ProtocolNumber)
	if err != nil {
		t.Fatalf("dial through gateway: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}
