package forwarder_test

import (
	"bytes"
	"net"
	"strings"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"

	"github.com/tungate/tungate/forwarder"
	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/internal/leaktest"
)

// udpEcho starts a loopback UDP echo server.
func udpEcho(t *testing.T) string {
	t.Helper()
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { pc.Close() })
	go func() {
		buf := make([]byte, 65536)
		for {
			n, from, err := pc.ReadFrom(buf)
			if err != nil {
				return
			}
			pc.WriteTo(buf[:n], from)
		}
	}()
	return pc.LocalAddr().String()
}

func TestUDPEchoComesFromTheDestination(t *testing.T) {
	addr := udpEcho(t)
	app := newPair(t, packetDialer{loopbackTo(addr), loopbackTo(addr)})
	dst := to(10, 9, 9, 9, 53)
	c, err := gonet.DialUDP(app, nil, &dst, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	for _, size := range []int{1, 512, 1400} {
		msg := bytes.Repeat([]byte{byte(size)}, size)
		if _, err := c.Write(msg); err != nil {
			t.Fatal(err)
		}
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		buf := make([]byte, 2048)
		n, from, err := c.ReadFrom(buf)
		if err != nil {
			t.Fatalf("read %d-byte echo: %v", size, err)
		}
		if !bytes.Equal(buf[:n], msg) {
			t.Fatalf("echo of %d bytes differs", size)
		}
		if from.String() != "10.9.9.9:53" {
			t.Fatalf("reply from %v; want 10.9.9.9:53", from)
		}
	}
}

func TestUDPRefusedWithoutPacketDialer(t *testing.T) {
	app := newPair(t, loopbackTo("127.0.0.1:1"))
	dst := to(10, 9, 9, 9, 53)
	c, err := gonet.DialUDP(app, nil, &dst, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.Write([]byte("q"))
	c.SetReadDeadline(time.Now().Add(2 * time.Second))
	_, err = c.Read(make([]byte, 16))
	if err == nil || !strings.Contains(err.Error(), "refused") {
		t.Fatalf("read: %v; want connection refused (ICMP port unreachable)", err)
	}
}

func TestUDPRefusedByDestinationReachesApp(t *testing.T) {
	// A port nobody listens on: the host socket gets ICMP port
	// unreachable, and the app must hear of it as its own socket would.
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	closed := pc.LocalAddr().String()
	pc.Close()
	app := newPair(t, packetDialer{loopbackTo(closed), loopbackTo(closed)})
	dst := to(10, 9, 9, 9, 9999)
	c, err := gonet.DialUDP(app, nil, &dst, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().Before(deadline) {
		// The socket reports the refusal on its next call, read or write.
		if _, err = c.Write([]byte("anyone?")); err == nil {
			c.SetReadDeadline(time.Now().Add(200 * time.Millisecond))
			_, err = c.Read(make([]byte, 64))
		}
		if err != nil && strings.Contains(err.Error(), "refused") {
			return
		}
	}
	t.Fatalf("last read: %v; want connection refused", err)
}

func TestCloseStopsEveryFlow(t *testing.T) {
	leaks := leaktest.Take()
	tcpAddr := listen(t, func(c *net.TCPConn) { time.Sleep(time.Hour) })
	udpAddr := udpEcho(t)
	fwd, app, closeGW := newGateway(t, packetDialer{loopbackTo(tcpAddr), loopbackTo(udpAddr)})
	c := dialApp(t, app, 80)
	dst := to(10, 9, 9, 9, 53)
	u, _ := gonet.DialUDP(app, nil, &dst, ipv4.ProtocolNumber)
	u.Write([]byte("x"))
	time.Sleep(100 * time.Millisecond)
	done := make(chan struct{})
	go func() { fwd.Close(); close(done) }()
	select {
	case <-done:
	case <-time.After(3 * time.Second):
		t.Fatal("Forwarder.Close did not return within 3s")
	}
	closeGW()
	u.Close()
	c.Close()
	// Server goroutines of this test (the sleeping handler, listeners)
	// account for a few; flows must not.
	leaks.Wait(t, 4)
}

var _ proxy.PacketDialer = packetDialer{}
var _ = forwarder.Relay
