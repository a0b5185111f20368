package stack

import (
	"errors"
	"io"
	"net"
	"os"
	"testing"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/link/loopback"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"
)

// appConnPair connects an appConn to a gonet peer over a loopback gVisor
// stack. The peer's receive buffer is small, so that writes to it block.
func appConnPair(t *testing.T) (*appConn, net.Conn) {
	t.Helper()
	s := gvstack.New(gvstack.Options{
		NetworkProtocols:   []gvstack.NetworkProtocolFactory{ipv4.NewProtocol},
		TransportProtocols: []gvstack.TransportProtocolFactory{tcp.NewProtocol},
	})
	t.Cleanup(func() { s.Close(); s.Wait() })
	if err := s.CreateNIC(1, loopback.New()); err != nil {
		t.Fatal(err)
	}
	addr := tcpip.AddrFrom4([4]byte{127, 0, 0, 1})
	if err := s.AddProtocolAddress(1, tcpip.ProtocolAddress{Protocol: ipv4.ProtocolNumber, AddressWithPrefix: addr.WithPrefix()}, gvstack.AddressProperties{}); err != nil {
		t.Fatal(err)
	}
	s.SetRouteTable([]tcpip.Route{{Destination: header4Any(), NIC: 1}})
	full := tcpip.FullAddress{NIC: 1, Addr: addr, Port: 8080}
	ln, err := gonet.ListenTCP(s, full, ipv4.ProtocolNumber)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			close(accepted)
			return
		}
		accepted <- c
	}()

	c := new(appConn)
	ep, terr := s.NewEndpoint(tcp.ProtocolNumber, ipv4.ProtocolNumber, &c.wq)
	if terr != nil {
		t.Fatal(terr)
	}
	ep.SocketOptions().SetSendBufferSize(16<<10, true)
	entry, ch := waiter.NewChannelEntry(waiter.WritableEvents)
	c.wq.EventRegister(&entry)
	if terr := ep.Connect(full); terr != nil {
		if _, ok := terr.(*tcpip.ErrConnectStarted); !ok {
			t.Fatal(terr)
		}
		<-ch
	}
	c.wq.EventUnregister(&entry)
	if terr := ep.LastError(); terr != nil {
		t.Fatal(terr)
	}
	c.start(ep)
	t.Cleanup(func() { c.Close() })
	peer, ok := <-accepted
	if !ok {
		t.Fatal("no connection accepted")
	}
	t.Cleanup(func() { peer.Close() })
	return c, peer
}

func header4Any() tcpip.Subnet {
	sn, _ := tcpip.NewSubnet(tcpip.AddrFrom4([4]byte{}), tcpip.MaskFromBytes([]byte{0, 0, 0, 0}))
	return sn
}

// TestAppConnReadWriteEOF: bytes both ways, and the peer's FIN reads as
// io.EOF after the bytes before it.
func TestAppConnReadWriteEOF(t *testing.T) {
	c, peer := appConnPair(t)
	if _, err := peer.Write([]byte("hello")); err != nil {
		t.Fatal(err)
	}
	peer.(*gonet.TCPConn).CloseWrite()
	got, err := io.ReadAll(c)
	if err != nil || string(got) != "hello" {
		t.Fatalf("read %q, %v; want hello and EOF", got, err)
	}
	if !c.PeerClosed() {
		t.Fatal("PeerClosed false after the peer's FIN")
	}
	// A write larger than both buffers blocks until the peer reads.
	data := make([]byte, 1<<20)
	for i := range data {
		data[i] = byte(i)
	}
	done := make(chan error, 1)
	go func() {
		_, err := c.Write(data)
		c.CloseWrite()
		done <- err
	}()
	back, err := io.ReadAll(peer)
	if err != nil || len(back) != len(data) || back[len(back)-1] != data[len(data)-1] {
		t.Fatalf("peer read %d bytes, %v; want %d", len(back), err, len(data))
	}
	if err := <-done; err != nil {
		t.Fatalf("Write: %v", err)
	}
}

// TestAppConnDeadlines: a read past its deadline fails with a timeout,
// a deadline set while a read waits wakes it, and clearing it lets reads
// wait again; a write blocked on a full peer times out too.
func TestAppConnDeadlines(t *testing.T) {
	c, peer := appConnPair(t)
	c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
	start := time.Now()
	_, err := c.Read(make([]byte, 10))
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Read: %v; want a deadline error", err)
	}
	var ne net.Error
	if !errors.As(err, &ne) || !ne.Timeout() {
		t.Fatalf("Read: %v is not a net.Error timeout", err)
	}
	if took := time.Since(start); took < 40*time.Millisecond || took > 2*time.Second {
		t.Fatalf("Read timed out after %v; want about 50 ms", took)
	}

	c.SetReadDeadline(time.Time{})
	errs := make(chan error, 1)
	go func() {
		_, err := c.Read(make([]byte, 10))
		errs <- err
	}()
	time.Sleep(50 * time.Millisecond)
	c.SetDeadline(time.Now()) // as forwarder/dns does to end a read
	select {
	case err := <-errs:
		if !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Read: %v; want a deadline error", err)
		}
	case <-time.After(2 * time.Second):
		t.Fatal("a deadline set during a Read did not end it")
	}

	c.SetDeadline(time.Time{})
	go func() {
		n, err := c.Read(make([]byte, 10))
		if n != 2 {
			err = errors.Join(err, errors.New("short read"))
		}
		errs <- err
	}()
	time.Sleep(20 * time.Millisecond)
	peer.Write([]byte("hi"))
	if err := <-errs; err != nil {
		t.Fatalf("Read after the deadline was cleared: %v", err)
	}

	c.SetWriteDeadline(time.Now().Add(100 * time.Millisecond))
	_, err = c.Write(make([]byte, 8<<20)) // the peer does not read
	if !errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("Write: %v; want a deadline error", err)
	}
}

// TestAppConnCloseWakes: Close ends a waiting Read, WaitReadable and an
// armed NotifyReadable, and later calls fail as closed.
func TestAppConnCloseWakes(t *testing.T) {
	c, _ := appConnPair(t)
	readErr, waitErr, notified := make(chan error, 1), make(chan error, 1), make(chan struct{})
	go func() {
		_, err := c.Read(make([]byte, 10))
		readErr <- err
	}()
	go func() { waitErr <- c.WaitReadable() }()
	if !c.NotifyReadable(func() { close(notified) }) {
		t.Fatal("NotifyReadable: readable with nothing sent")
	}
	time.Sleep(50 * time.Millisecond)
	c.Close()
	for name, ch := range map[string]chan error{"Read": readErr, "WaitReadable": waitErr} {
		select {
		case err := <-ch:
			if !errors.Is(err, net.ErrClosed) {
				t.Fatalf("%s: %v; want net.ErrClosed", name, err)
			}
		case <-time.After(2 * time.Second):
			t.Fatalf("%s still waiting after Close", name)
		}
	}
	select {
	case <-notified:
	case <-time.After(2 * time.Second):
		t.Fatal("the armed notification did not run on Close")
	}
	if _, err := c.Write([]byte("x")); !errors.Is(err, net.ErrClosed) {
		t.Fatalf("Write after Close: %v; want net.ErrClosed", err)
	}
	if c.Close() != nil {
		t.Fatal("a second Close failed")
	}
}
