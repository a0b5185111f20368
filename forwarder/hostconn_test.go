package forwarder

import (
	"errors"
	"net"
	"syscall"
	"testing"
	"time"
)

// TestHostConnDatagrams checks the raw UDP path: datagram boundaries,
// empty datagrams (not EOF), and a refusal that errors.Is can match.
func TestHostConnDatagrams(t *testing.T) {
	srv, err := net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(127, 0, 0, 1)})
	if err != nil {
		t.Fatal(err)
	}
	defer srv.Close()
	up, err := net.Dial("udp", srv.LocalAddr().String())
	if err != nil {
		t.Fatal(err)
	}
	c := wrapHost(up)
	defer c.Close()
	if h, ok := c.(*hostConn); !ok || !h.raw || !h.datagram {
		t.Fatalf("wrapHost(udp) = %T %+v, want a raw datagram hostConn", c, c)
	}

	for _, msg := range []string{"first", "", "third datagram"} {
		if n, err := c.Write([]byte(msg)); err != nil || n != len(msg) {
			t.Fatalf("write %q: %d, %v", msg, n, err)
		}
	}
	buf := make([]byte, 64)
	_ = srv.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []string{"first", "", "third datagram"} {
		n, from, err := srv.ReadFrom(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("server got %q, %v; want %q", buf[:n], err, want)
		}
		if _, err := srv.WriteTo(buf[:n], from); err != nil {
			t.Fatal(err)
		}
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	for _, want := range []string{"first", "", "third datagram"} {
		if err := c.(ReadWaiter).WaitReadable(); err != nil {
			t.Fatalf("wait for %q: %v", want, err)
		}
		n, err := c.Read(buf)
		if err != nil || string(buf[:n]) != want {
			t.Fatalf("read %q, %v; want %q", buf[:n], err, want)
		}
	}

	srv.Close() // the next datagram meets ICMP port unreachable
	if _, err := c.Write([]byte("anyone?")); err != nil {
		t.Fatal(err)
	}
	err = c.(ReadWaiter).WaitReadable()
	if err == nil {
		_, err = c.Read(buf)
	}
	if !errors.Is(err, syscall.ECONNREFUSED) {
		t.Fatalf("after the server closed: %v, want ECONNREFUSED", err)
	}
}
