package forwarder_test

import (
	"errors"
	"io"
	"net"
	"syscall"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

func TestTCPAppResetResetsUpstream(t *testing.T) {
	got := make(chan error, 1)
	addr := listen(t, func(c *net.TCPConn) {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		_, err := io.Copy(io.Discard, c)
		got <- err
	})
	app := newPair(t, loopbackTo(addr))
	ep, c := dialAppEndpoint(t, app, 83)
	if _, err := c.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	resetApp(ep, c)
	select {
	case err := <-got:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("upstream saw %v; want connection reset", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("upstream saw nothing")
	}
}

// dialAppEndpoint is dialApp that also returns the app's endpoint, for
// tests that end it with a reset.
func dialAppEndpoint(t *testing.T, app *gvstack.Stack, port uint16) (tcpip.Endpoint, *gonet.TCPConn) {
	t.Helper()
	var wq waiter.Queue
	ep, terr := app.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		t.Fatal(terr)
	}
	entry, connected := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&entry)
	if terr := ep.Connect(to(10, 9, 9, 9, port)); terr != nil {
		if _, started := terr.(*tcpip.ErrConnectStarted); !started {
			t.Fatal(terr)
		}
		<-connected
	}
	wq.EventUnregister(&entry)
	c := gonet.NewTCPConn(&wq, ep)
	t.Cleanup(func() { c.Close() })
	return ep, c
}

// resetApp aborts the app's connection: a zero linger turns Close into a
// reset.
func resetApp(ep tcpip.Endpoint, c *gonet.TCPConn) {
	ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: true, Timeout: 0})
	c.Close()
}
