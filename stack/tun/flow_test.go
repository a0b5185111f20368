package tun

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Addresses inside the test's own namespace only.
var (
	flowLocal  = netip.MustParsePrefix("10.202.0.1/24")
	flowRemote = netip.MustParseAddr("10.202.0.2") // routed into the device
)

// TestPacketsFlow checks both directions through a configured device: a UDP
// datagram sent inside the namespace comes out of the fd, and an IPv4/UDP
// packet written to the fd reaches a socket inside the namespace.
func TestPacketsFlow(t *testing.T) {
	t.Parallel()
	for _, offload := range []bool{false, true} {
		name := "plain"
		if offload {
			name = "vnethdr"
		}
		t.Run(name, func(t *testing.T) {
			ns := newNetNS(t)
			d := openDevice(t, Config{Name: "tgtest0", FD: -1, NetNS: ns, Offload: offload})
			if d.VnetHdr() != offload {
				t.Fatalf("VnetHdr() = %v, want %v (%v)", d.VnetHdr(), offload, d.OffloadErr())
			}
			if err := d.Configure(NetConfig{Addresses: []netip.Prefix{flowLocal}}); err != nil {
				t.Fatal(err)
			}
			testRead(t, d, ns)
			testWrite(t, d, ns)
		})
	}
}

// socketInNS runs open inside namespace ns, so the socket it makes lives there.
func socketInNS(t *testing.T, ns string, open func() (net.Conn, error)) net.Conn {
	t.Helper()
	h, err := openNetNS(ns)
	if err != nil {
		t.Fatal(err)
	}
	defer h.Close()
	var conn net.Conn
	if err := inNetNS(h, func() error {
		var err error
		conn, err = open()
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	return conn
}

func testRead(t *testing.T, d *Device, ns string) {
	const port = 5555
	payload := []byte("hello from the namespace")
	conn := socketInNS(t, ns, func() (net.Conn, error) {
		return net.DialUDP("udp4", nil, net.UDPAddrFromAddrPort(netip.AddrPortFrom(flowRemote, port)))
	})
	if _, err := conn.Write(payload); err != nil {
		t.Fatalf("send in netns: %v", err)
	}
	deadline := time.Now().Add(5 * time.Second)
	buf := make([]byte, 65536)
	for {
		pkt := readPacket(t, d, buf, deadline)
		// Skip what the kernel sends on its own (IPv6 router solicitations...).
		if len(pkt) < 28 || pkt[0]>>4 != 4 || pkt[9] != unix.IPPROTO_UDP {
			continue
		}
		ihl := int(pkt[0]&0xf) * 4
		dst, _ := netip.AddrFromSlice(pkt[16:20])
		udp := pkt[ihl:]
		if dst != flowRemote || binary.BigEndian.Uint16(udp[2:4]) != port {
			continue
		}
		if got := udp[8:]; !bytes.Equal(got, payload) {
			t.Fatalf("payload %q, want %q", got, payload)
		}
		return
	}
}

// readPacket reads one packet from the non-blocking fd, stripping the
// virtio_net_hdr if there is one.
func readPacket(t *testing.T, d *Device, buf []byte, deadline time.Time) []byte {
	t.Helper()
	for {
		wait := time.Until(deadline)
		if wait <= 0 {
			t.Fatal("no packet from the device before the deadline")
		}
		fds := []unix.PollFd{{Fd: int32(d.FD()), Events: unix.POLLIN}}
		if _, err := unix.Poll(fds, int(wait.Milliseconds())+1); err != nil && err != unix.EINTR {
			t.Fatalf("poll: %v", err)
		}
		n, err := unix.Read(d.FD(), buf)
		if err == unix.EAGAIN || err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("read tun: %v", err)
		}
		if !d.VnetHdr() {
			return buf[:n]
		}
		if n < VnetHdrLen {
			t.Fatalf("read %d bytes, shorter than the virtio_net_hdr", n)
		}
		if gsoType := buf[1]; gsoType != 0 {
			t.Fatalf("gso_type %d on a small UDP datagram, want 0 (none)", gsoType)
		}
		return buf[VnetHdrLen:n]
	}
}

func testWrite(t *testing.T, d *Device, ns string) {
	payload := []byte("hello from the fd")
	conn := socketInNS(t, ns, func() (net.Conn, error) {
		return net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.AddrPortFrom(flowLocal.Addr(), 0)))
	})
	dst := conn.LocalAddr().(*net.UDPAddr).AddrPort()
	pkt := ipv4UDP(netip.AddrPortFrom(flowRemote, 4242), dst, payload)
	if d.VnetHdr() {
		pkt = append(make([]byte, VnetHdrLen), pkt...)
	}
	if _, err := unix.Write(d.FD(), pkt); err != nil {
		t.Fatalf("write tun: %v", err)
	}
	if err := conn.SetReadDeadline(time.Now().Add(5 * time.Second)); err != nil {
		t.Fatal(err)
	}
	buf := make([]byte, 1500)
	n, from, err := conn.(*net.UDPConn).ReadFromUDPAddrPort(buf)
	if err != nil {
		t.Fatalf("receive in netns: %v", err)
	}
	if !bytes.Equal(buf[:n], payload) || from != netip.AddrPortFrom(flowRemote, 4242) {
		t.Fatalf("got %q from %v, want %q from %v:4242", buf[:n], from, payload, flowRemote)
	}
}

// ipv4UDP builds an IPv4/UDP packet (UDP checksum 0: none, allowed on IPv4).
func ipv4UDP(src, dst netip.AddrPort, payload []byte) []byte {
	const ipLen, udpLen = 20, 8
	pkt := make([]byte, ipLen+udpLen+len(payload))
	pkt[0] = 0x45
	binary.BigEndian.PutUint16(pkt[2:], uint16(len(pkt)))
	pkt[8] = 64
	pkt[9] = unix.IPPROTO_UDP
	s, dd := src.Addr().As4(), dst.Addr().As4()
	copy(pkt[12:], s[:])
	copy(pkt[16:], dd[:])
	binary.BigEndian.PutUint16(pkt[10:], ipChecksum(pkt[:ipLen]))
	udp := pkt[ipLen:]
	binary.BigEndian.PutUint16(udp[0:], src.Port())
	binary.BigEndian.PutUint16(udp[2:], dst.Port())
	binary.BigEndian.PutUint16(udp[4:], uint16(udpLen+len(payload)))
	copy(udp[udpLen:], payload)
	return pkt
}

func ipChecksum(hdr []byte) uint16 {
	var sum uint32
	for i := 0; i+1 < len(hdr); i += 2 {
		sum += uint32(binary.BigEndian.Uint16(hdr[i:]))
	}
	for sum > 0xffff {
		sum = sum>>16 + sum&0xffff
	}
	return ^uint16(sum)
}
