package proxy

import (
	"context"
	"errors"
	"net"
	"net/netip"
	"strconv"
	"testing"
)

// TestDirectAppliesAddrCheck: a name that resolves to loopback is dialed
// without a check and refused with one, for TCP and UDP, while the check
// sees the resolved address.
func TestDirectAppliesAddrCheck(t *testing.T) {
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	port := ln.Addr().(*net.TCPAddr).Port
	addr := net.JoinHostPort("localhost", strconv.Itoa(port))
	var seen []netip.AddrPort
	refuseLoopback := WithAddrCheck(context.Background(), func(dst netip.AddrPort) error {
		seen = append(seen, dst)
		if dst.Addr().IsLoopback() {
			return errors.New("loopback")
		}
		return nil
	})
	d := &Direct{}
	c, err := d.DialContext(context.Background(), "tcp4", addr)
	if err != nil {
		t.Fatalf("dial %s without a check: %v", addr, err)
	}
	c.Close()
	if _, err := d.DialContext(refuseLoopback, "tcp4", addr); !errors.Is(err, ErrAddressRefused) {
		t.Errorf("dial with the check: %v, want a match for ErrAddressRefused", err)
	}
	if _, err := d.DialPacket(refuseLoopback, "udp4", addr); !errors.Is(err, ErrAddressRefused) {
		t.Errorf("UDP dial with the check: %v, want a match for ErrAddressRefused", err)
	}
	if len(seen) == 0 || seen[0] != netip.AddrPortFrom(netip.MustParseAddr("127.0.0.1"), uint16(port)) {
		t.Errorf("the check saw %v", seen)
	}
}
