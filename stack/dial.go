package stack

import (
	"context"
	"fmt"
	"net"
	"net/netip"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/tungate/tungate/stack/flow"
)

// The stack also opens connections of its own into the device, for ports
// published from the app's namespace: their source is an address given
// with AddAddress.

var _ flow.EchoReplier = (*Stack)(nil)

// DialTCP connects to dst through the device. A reset (nothing listening
// at dst) fails with an error matching flow.ErrConnectionRefused; ctx
// bounds the handshake.
func (s *Stack) DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error) {
	var wq waiter.Queue
	ep, err := s.gv.NewEndpoint(tcp.ProtocolNumber, protocolOfAddr(dst.Addr()), &wq)
	if err != nil {
		return nil, fmt.Errorf("connect to %s: %w", dst, AsError(err))
	}
	entry, ready := waiter.NewChannelEntry(waiter.WritableEvents)
	wq.EventRegister(&entry)
	defer wq.EventUnregister(&entry)
	err = ep.Connect(fullAddress(dst))
	if _, started := err.(*tcpip.ErrConnectStarted); started {
		select {
		case <-ctx.Done():
			ep.Close()
			return nil, fmt.Errorf("connect to %s: %w", dst, ctx.Err())
		case <-ready:
		}
		err = ep.LastError()
	}
	if err != nil {
		ep.Close()
		return nil, fmt.Errorf("connect to %s: %w", dst, AsError(err))
	}
	return gonet.NewTCPConn(&wq, ep), nil
}

// DialUDP opens a UDP socket through the device connected to dst.
func (s *Stack) DialUDP(dst netip.AddrPort) (net.Conn, error) {
	full := fullAddress(dst)
	// Counted first, so that the fast path looks for the socket as soon
	// as it can receive.
	s.ownUDP.Add(1)
	c, err := gonet.DialUDP(s.gv, nil, &full, protocolOfAddr(dst.Addr()))
	if err != nil {
		s.ownUDP.Add(-1)
		return nil, fmt.Errorf("open UDP socket to %s: %w", dst, err)
	}
	return &ownUDPConn{UDPConn: c, s: s}, nil
}

func fullAddress(ap netip.AddrPort) tcpip.FullAddress {
	return tcpip.FullAddress{NIC: nicID, Addr: tcpip.AddrFromSlice(ap.Addr().AsSlice()), Port: ap.Port()}
}

func protocolOfAddr(a netip.Addr) tcpip.NetworkProtocolNumber {
	if a.Is4() {
		return header.IPv4ProtocolNumber
	}
	return header.IPv6ProtocolNumber
}
