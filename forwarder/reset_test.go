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
	var wq waiter.Queue
	ep, terr := app.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &wq)
	if terr != nil {
		t.Fatal(terr)
	}
	entry, connected := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&entry)
	if terr := ep.Connect(to(10, 9, 9, 9, 83)); terr != nil {
		if _, started := terr.(*tcpip.ErrConnectStarted); !started {
			t.Fatal(terr)
		}
		<-connected
	}
	wq.EventUnregister(&entry)
	c := gonet.NewTCPConn(&wq, ep)
	if _, err := c.Write([]byte("data")); err != nil {
		t.Fatal(err)
	}
	time.Sleep(50 * time.Millisecond)
	// Abort: a zero linger turns Close into a reset.
	ep.SocketOptions().SetLinger(tcpip.LingerOption{Enabled: true, Timeout: 0})
	c.Close()
	select {
	case err := <-got:
		if !errors.Is(err, syscall.ECONNRESET) {
			t.Fatalf("upstream saw %v; want connection reset", err)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("upstream saw nothing")
	}
}
