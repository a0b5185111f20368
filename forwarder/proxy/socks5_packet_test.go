package proxy

import (
	"bytes"
	"net/netip"
	"testing"
	"time"
)

func TestSOCKS5ListenPacketCarriesEveryDestination(t *testing.T) {
	echo1, echo2 := netip.MustParseAddrPort(startUDPEcho(t)), netip.MustParseAddrPort(startUDPEcho(t))
	srv := startSOCKS5(t, &fakeSOCKS5{junkFirst: true})
	d := &SOCKS5{Address: srv.addr(), Forward: &Direct{}}
	pc, err := d.ListenPacket(testCtx(t), "udp4")
	if err != nil {
		t.Fatal(err)
	}
	defer pc.Close()
	c := pc.(*socks5Packets)
	c.assoc.udp.SetDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 65536)
	for _, dst := range []netip.AddrPort{echo1, echo2} {
		msg := "to " + dst.String()
		if err := pc.WriteTo([]byte(msg), dst); err != nil {
			t.Fatal(err)
		}
		// The relay sends a fragment (dropped), a stranger's datagram
		// (delivered from the stranger: the proxy's word is taken), then
		// the echo.
		n, from, err := pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		stranger := netip.AddrPortFrom(dst.Addr(), dst.Port()+1)
		if string(buf[:n]) != "stranger" || from != stranger {
			t.Fatalf("first delivery %q from %v; want \"stranger\" from %v", buf[:n], from, stranger)
		}
		n, from, err = pc.ReadFrom(buf)
		if err != nil {
			t.Fatal(err)
		}
		if string(buf[:n]) != msg || from != dst {
			t.Fatalf("got %q from %v; want %q from %v", buf[:n], from, msg, dst)
		}
	}
	if got := c.Dropped(); got != 2 {
		t.Fatalf("dropped %d; want the 2 fragments", got)
	}
	if srv.lastTarget() == "" {
		t.Fatal("no association was made")
	}
}

func TestPutSOCKS5UDPHeader(t *testing.T) {
	buf := make([]byte, maxUDPHeader)
	for _, s := range []string{"192.0.2.1:53", "[2001:db8::1]:3478", "[::ffff:192.0.2.1]:1"} {
		dst := netip.MustParseAddrPort(s)
		want := appendSOCKS5Addr([]byte{0, 0, 0}, hostPort{IP: dst.Addr().Unmap(), Port: dst.Port()})
		if n := putSOCKS5UDPHeader(buf, dst); !bytes.Equal(buf[:n], want) {
			t.Errorf("%s: header %x; want %x", s, buf[:n], want)
		}
	}
	dst := netip.MustParseAddrPort("[2001:db8::1]:3478")
	if n := testing.AllocsPerRun(100, func() { putSOCKS5UDPHeader(buf, dst) }); n != 0 {
		t.Errorf("putSOCKS5UDPHeader allocates %.0f times", n)
	}
}
