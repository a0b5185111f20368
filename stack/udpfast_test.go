package stack

import (
	"bytes"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gvisor.dev/gvisor/pkg/tcpip/header"

	"github.com/tungate/tungate/stack/tunlink"
)

// newFastStack is newDatagramStack over a tunlink endpoint on a socket
// pair standing in for the TUN device, so that the UDP fast path is on.
// It returns the stack, the test's end of the pair and the handler.
func newFastStack(t *testing.T, capture bool) (*Stack, int, *datagramHandler) {
	t.Helper()
	fds, err := unix.Socketpair(unix.AF_UNIX, unix.SOCK_SEQPACKET|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		t.Fatal(err)
	}
	ep, err := tunlink.New(tunlink.Options{FD: fds[0], MTU: 1500})
	if err != nil {
		t.Fatal(err)
	}
	h := &datagramHandler{got: make(chan datagram, 8)}
	opts := Options{Link: ep, Handler: h}
	if capture {
		c, pc, err := NewCapture(ep, CaptureOptions{Out: &memFile{}})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		opts.Link = c
	}
	s, err := New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		s.Close()
		unix.Close(fds[0])
		unix.Close(fds[1])
	})
	if err := unix.SetsockoptTimeval(fds[1], unix.SOL_SOCKET, unix.SO_RCVTIMEO, &unix.Timeval{Sec: 5}); err != nil {
		t.Fatal(err)
	}
	return s, fds[1], h
}

// readPeer reads the next packet the stack wrote to the device.
func readPeer(t *testing.T, fd int) []byte {
	t.Helper()
	buf := make([]byte, 65600)
	n, err := unix.Read(fd, buf)
	if err != nil {
		t.Fatalf("read the device: %v", err)
	}
	return buf[:n]
}

func (h *datagramHandler) next(t *testing.T) datagram {
	t.Helper()
	select {
	case d := <-h.got:
		return d
	case <-time.After(5 * time.Second):
		t.Fatal("no datagram reached the handler")
		return datagram{}
	}
}

func TestFastPathCarriesDatagramsBothWays(t *testing.T) {
	for _, tc := range []struct{ app, far string }{
		{"10.0.0.2:4000", "192.0.2.1:3478"},
		{"[fd00::2]:4000", "[2001:db8::1]:3478"},
	} {
		s, peer, h := newFastStack(t, false)
		app, far := netip.MustParseAddrPort(tc.app), netip.MustParseAddrPort(tc.far)
		if _, err := unix.Write(peer, udpPacket(t, app, far, "ping")); err != nil {
			t.Fatal(err)
		}
		if d := h.next(t); d != (datagram{app, far, "ping"}) {
			t.Fatalf("handler got %+v", d)
		}
		if err := s.SendTo(far, app, []byte("pong")); err != nil {
			t.Fatal(err)
		}
		if got, want := readPeer(t, peer), udpPacket(t, far, app, "pong"); !bytes.Equal(got, want) {
			t.Fatalf("reply %x, want %x", got, want)
		}
		if p := s.Packets(); p.UDPFastIn != 1 || p.UDPFastOut != 1 || p.UDPIn != 0 {
			t.Errorf("%s: packets %+v, want one datagram each way past gVisor", tc.app, p)
		}
	}
}

func TestFastPathRefusalGetsPortUnreachable(t *testing.T) {
	s, peer, _ := newFastStack(t, false)
	app, far := netip.MustParseAddrPort("10.0.0.2:4000"), netip.MustParseAddrPort("192.0.2.1:9")
	if _, err := unix.Write(peer, udpPacket(t, app, far, "x")); err != nil {
		t.Fatal(err)
	}
	out := readPeer(t, peer)
	icmp := header.ICMPv4(header.IPv4(out).Payload())
	if icmp.Type() != header.ICMPv4DstUnreachable || icmp.Code() != header.ICMPv4PortUnreachable {
		t.Fatalf("answer: ICMP type %d code %d; want port unreachable", icmp.Type(), icmp.Code())
	}
	if n := s.gv.Stats().UDP.UnknownPortErrors.Value(); n != 1 {
		t.Errorf("no_flow = %d, want 1", n)
	}
}

func TestFastPathLeavesOwnSocketsToGVisor(t *testing.T) {
	s, peer, h := newFastStack(t, false)
	if err := s.AddAddress(netip.MustParsePrefix("10.0.0.1/24")); err != nil {
		t.Fatal(err)
	}
	app := netip.MustParseAddrPort("10.0.0.2:5353")
	c, err := s.DialUDP(app)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := c.Write([]byte("into the namespace")); err != nil {
		t.Fatal(err)
	}
	out := readPeer(t, peer)
	ip := header.IPv4(out)
	u := header.UDP(ip.Payload())
	local := netip.AddrPortFrom(netip.AddrFrom4(ip.SourceAddress().As4()), u.SourcePort())
	if _, err := unix.Write(peer, udpPacket(t, app, local, "answer")); err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	buf := make([]byte, 100)
	n, err := c.Read(buf)
	if err != nil || string(buf[:n]) != "answer" {
		t.Fatalf("own socket read %q, %v; want the answer", buf[:n], err)
	}
	select {
	case d := <-h.got:
		t.Fatalf("the answer to an own socket reached the handler: %+v", d)
	default:
	}
	c.Close()
	c.Close()
	if n := s.ownUDP.Load(); n != 0 {
		t.Errorf("%d own sockets counted after Close, want 0", n)
	}
}

func TestCaptureTurnsTheFastPathOff(t *testing.T) {
	s, peer, h := newFastStack(t, true)
	app, far := netip.MustParseAddrPort("10.0.0.2:4000"), netip.MustParseAddrPort("192.0.2.1:3478")
	if _, err := unix.Write(peer, udpPacket(t, app, far, "ping")); err != nil {
		t.Fatal(err)
	}
	h.next(t)
	if err := s.SendTo(far, app, []byte("pong")); err != nil {
		t.Fatal(err)
	}
	readPeer(t, peer)
	if p := s.Packets(); p.UDPFastIn != 0 || p.UDPFastOut != 0 {
		t.Errorf("packets %+v: with a capture nothing may pass gVisor's sniffer", p)
	}
}
