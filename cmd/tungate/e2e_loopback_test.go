package main_test

import (
	"encoding/binary"
	"net"
	"net/netip"
	"path/filepath"
	"strconv"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"

	"github.com/tungate/tungate/cmd/internal/netlab"
)

// TestNetnsHostLoopbackCrafted: in --netns mode, root in the app namespace
// writes TCP SYNs and UDP datagrams for every loopback form straight onto
// the device; none may reach the host's loopback services (TCP gets a
// reset), unless --allow-host-loopback.
func TestNetnsHostLoopbackCrafted(t *testing.T) {
	if kernelMode() {
		t.Skip("tests tungate itself")
	}
	netlab.RequireBinary(t, "python3")
	hs := startHostLoopbackServer(t)
	var udpGot atomic.Int64
	for _, a := range []string{"127.0.0.1", "::1"} {
		pc, err := net.ListenPacket("udp", net.JoinHostPort(a, strconv.Itoa(hs.port)))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { pc.Close() })
		go func() {
			buf := make([]byte, 1500)
			for {
				if _, _, err := pc.ReadFrom(buf); err != nil {
					return
				}
				udpGot.Add(1)
			}
		}()
	}
	script, err := filepath.Abs("testdata/craft_syn.py")
	if err != nil {
		t.Fatal(err)
	}
	for _, allow := range []bool{false, true} {
		var extra []string
		if allow {
			extra = []string{"--allow-host-loopback"}
		}
		tp := newTopo(t, extra...)
		var dsts []string
		for _, a := range loopbackForms {
			dsts = append(dsts, a+":"+strconv.Itoa(hs.port))
		}
		out, err := runIn(t, tp.app, 30*time.Second, "env", append([]string{"TUN_DEVICE=" + tp.dev, "python3", script}, dsts...)...)
		if err != nil {
			t.Fatalf("craft_syn.py: %v\n%s", err, out)
		}
		udpBefore := udpGot.Load()
		for _, a := range []string{"0.0.0.0", "127.0.0.1", "::", "::1"} {
			n := udpGot.Load()
			sendCraftedUDP(t, tp.app, tp.dev, netip.MustParseAddr(a), uint16(hs.port))
			time.Sleep(200 * time.Millisecond)
			t.Logf("allow=%v: crafted UDP to %s: %d datagrams reached the host's loopback", allow, a, udpGot.Load()-n)
		}
		udp := udpGot.Load() - udpBefore
		// gVisor itself drops TCP to loopback and unspecified addresses
		// arriving on a NIC (NONE): no SYN may be accepted either way.
		if strings.Contains(out, "SYNACK") || hs.accepted.Load() != 0 {
			t.Errorf("allow=%v: a crafted SYN to the host's loopback was accepted:\n%s", allow, out)
		}
		if !allow && udp != 0 {
			t.Errorf("without --allow-host-loopback, %d crafted datagrams reached the host's loopback; want none", udp)
		}
		if allow && udp == 0 {
			t.Errorf("with --allow-host-loopback, no crafted datagram reached the host's loopback")
		}
		t.Logf("crafted SYNs (allow=%v):\n%s", allow, out)
		tp.gw.Stop()
	}
}

// sendCraftedUDP writes one UDP datagram from the device's address to
// dst:port straight onto dev inside ns (an AF_PACKET socket).
func sendCraftedUDP(t *testing.T, ns *netlab.NS, dev string, dst netip.Addr, port uint16) {
	t.Helper()
	err := ns.Do(func() error {
		ifi, err := net.InterfaceByName(dev)
		if err != nil {
			return err
		}
		proto := uint16(unix.ETH_P_IP)
		if dst.Is6() {
			proto = unix.ETH_P_IPV6
		}
		fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM, int(htons(proto)))
		if err != nil {
			return err
		}
		defer unix.Close(fd)
		return unix.Sendto(fd, udpPacket(dst, port), 0, &unix.SockaddrLinklayer{Ifindex: ifi.Index, Protocol: htons(proto)})
	})
	if err != nil {
		t.Fatalf("crafted UDP to %v: %v", dst, err)
	}
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// udpPacket is an IP packet carrying a UDP datagram "x" from the device's
// address, port 40999, to dst:port.
func udpPacket(dst netip.Addr, port uint16) []byte {
	udp := make([]byte, 9)
	binary.BigEndian.PutUint16(udp[0:], 40999)
	binary.BigEndian.PutUint16(udp[2:], port)
	binary.BigEndian.PutUint16(udp[4:], 9)
	udp[8] = 'x'
	var src netip.Addr
	var ip []byte
	if dst.Is4() {
		src = netip.MustParseAddr("198.18.0.1")
		ip = make([]byte, 20)
		ip[0], ip[8], ip[9] = 0x45, 64, unix.IPPROTO_UDP
		binary.BigEndian.PutUint16(ip[2:], 29)
		s, d := src.As4(), dst.As4()
		copy(ip[12:], s[:])
		copy(ip[16:], d[:])
		binary.BigEndian.PutUint16(ip[10:], checksum(ip, 0))
	} else {
		src = netip.MustParseAddr("fd74:6761:7465::1")
		ip = make([]byte, 40)
		ip[0], ip[6], ip[7] = 0x60, unix.IPPROTO_UDP, 64
		binary.BigEndian.PutUint16(ip[4:], 9)
		s, d := src.As16(), dst.As16()
		copy(ip[8:], s[:])
		copy(ip[24:], d[:])
	}
	var pseudo uint32
	for _, a := range []netip.Addr{src, dst} {
		b := a.AsSlice()
		for i := 0; i < len(b); i += 2 {
			pseudo += uint32(binary.BigEndian.Uint16(b[i:]))
		}
	}
	pseudo += unix.IPPROTO_UDP + 9
	binary.BigEndian.PutUint16(udp[6:], checksum(append(udp[:9:9], 0), pseudo))
	return append(ip, udp...)
}
