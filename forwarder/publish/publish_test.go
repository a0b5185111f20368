package publish

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/netip"
	"sync"
	"testing"
	"time"

	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/stack/flow"
)

// fakeNamespace is a Dialer into a pretend namespace where only the IPv6
// address listens on TCP (the IPv4 one refuses, as a reset would) and UDP
// echoes.
type fakeNamespace struct {
	v6 netip.Addr
	mu sync.Mutex
	// dialed lists the TCP destinations tried, in order.
	dialed []netip.AddrPort
}

func (n *fakeNamespace) DialTCP(_ context.Context, dst netip.AddrPort) (net.Conn, error) {
	n.mu.Lock()
	n.dialed = append(n.dialed, dst)
	n.mu.Unlock()
	if dst.Addr() != n.v6 {
		return nil, fmt.Errorf("connect to %s: %w", dst, flow.ErrConnectionRefused)
	}
	inside, outside := net.Pipe()
	go func() {
		defer inside.Close()
		io.Copy(inside, inside) // an echo server
	}()
	return outside, nil
}

func (n *fakeNamespace) DialUDP(netip.AddrPort) (net.Conn, error) {
	inside, outside := net.Pipe()
	go func() {
		defer inside.Close()
		buf := make([]byte, 1500)
		for {
			k, err := inside.Read(buf)
			if err != nil {
				return
			}
			inside.Write(buf[:k])
		}
	}()
	return outside, nil
}

// startFake publishes a free host port to port 80 of ns, entering its
// flows in table (nil: none).
func startFake(t *testing.T, ns *fakeNamespace, network string, table *flows.Table) netip.AddrPort {
	t.Helper()
	// A free port: listen, note it, close, and publish it.
	var host netip.AddrPort
	if network == "udp" {
		pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		host = pc.LocalAddr().(*net.UDPAddr).AddrPort()
		pc.Close()
	} else {
		ln, err := net.Listen("tcp4", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		host = ln.Addr().(*net.TCPAddr).AddrPort()
		ln.Close()
	}
	p, err := Start(Options{
		Stack: ns, Target: netip.MustParseAddr("198.18.0.1"), Target6: ns.v6,
		Ports: []Port{{Network: network, Host: host, Target: 80}}, ConnectTimeout: time.Second, Flows: table,
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { p.Close() })
	return host
}

// TestPublishTCPTriesIPv6WhenIPv4Refuses, with a fake namespace: no
// userspace stack, and the refusal told by flow.ErrConnectionRefused.
func TestPublishTCPTriesIPv6WhenIPv4Refuses(t *testing.T) {
	ns := &fakeNamespace{v6: netip.MustParseAddr("fd74:6761:7465::1")}
	host := startFake(t, ns, "tcp", nil)
	c, err := net.Dial("tcp4", host.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Write([]byte("ping")); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 4)
	if _, err := io.ReadFull(c, buf); err != nil || string(buf) != "ping" {
		t.Fatalf("echo %q, %v", buf, err)
	}
	ns.mu.Lock()
	defer ns.mu.Unlock()
	want := []netip.AddrPort{netip.MustParseAddrPort("198.18.0.1:80"), netip.MustParseAddrPort("[fd74:6761:7465::1]:80")}
	if len(ns.dialed) != 2 || ns.dialed[0] != want[0] || ns.dialed[1] != want[1] {
		t.Fatalf("dialed %v, want %v", ns.dialed, want)
	}
}

func TestPublishUDP(t *testing.T) {
	host := startFake(t, &fakeNamespace{}, "udp", nil)
	c, err := net.Dial("udp4", host.String())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(time.Now().Add(5 * time.Second))
	c.Write([]byte("hello"))
	buf := make([]byte, 16)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "hello" {
		t.Fatalf("echo %q, %v", buf[:n], err)
	}
}
