package proxy

import (
	"context"
	"net"
	"net/netip"
	"strconv"
	"testing"

	"github.com/tungate/tungate/forwarder/internal/hostsock"
)

// forEachSocketKind runs check with a context for package net's sockets
// and with one for sockets in a hostsock.Set (WithHostSockets), which
// must behave the same.
func forEachSocketKind(t *testing.T, check func(t *testing.T, ctx context.Context)) {
	t.Run("net", func(t *testing.T) { check(t, testCtx(t)) })
	t.Run("hostsock", func(t *testing.T) { check(t, WithHostSockets(testCtx(t), newHostSockets(t))) })
}

func newHostSockets(t *testing.T) *hostsock.Set {
	t.Helper()
	set, err := hostsock.New()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { set.Close() })
	return set
}

// TestHostSocketsForAddressesOnly: under WithHostSockets, a TCP dial to an
// IP address gets a socket of the set; one to a name, or of another
// family than its network, goes through package net as before.
func TestHostSocketsForAddressesOnly(t *testing.T) {
	echo := startEcho(t)
	set := newHostSockets(t)
	ctx := WithHostSockets(testCtx(t), set)
	port := strconv.Itoa(int(netip.MustParseAddrPort(echo.addr()).Port()))
	for _, tc := range []struct {
		network, address string
		inSet            bool
	}{
		{"tcp", echo.addr(), true},
		{"tcp4", echo.addr(), true},
		{"tcp", "localhost:" + port, false},
	} {
		conn, err := (&Direct{}).DialContext(ctx, tc.network, tc.address)
		if err != nil {
			t.Fatalf("dial %s %s: %v", tc.network, tc.address, err)
		}
		echoRoundTrip(t, conn, tc.address)
		_, isSet := conn.(*hostsock.Conn)
		if _, isNet := conn.(*net.TCPConn); isSet != tc.inSet || isNet == tc.inSet {
			t.Errorf("dial %s %s gave a %T; want a socket of the set: %v", tc.network, tc.address, conn, tc.inSet)
		}
		conn.Close()
	}
	if _, err := (&Direct{}).DialContext(ctx, "tcp6", echo.addr()); err == nil {
		t.Error("tcp6 dial of an IPv4 address: no error")
	}
	if n := set.Sockets(); n != 0 {
		t.Errorf("%d sockets still registered after closing every one", n)
	}
}
