package stack

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"sync"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
	"gvisor.dev/gvisor/pkg/waiter"

	"github.com/tungate/tungate/stack/flow"
)

// endpoints turns gVisor's view of a flow (local = the destination the app
// dialed, remote = the app) into app source and destination.
func endpoints(id gvstack.TransportEndpointID) (src, dst netip.AddrPort) {
	return addrPort(id.RemoteAddress, id.RemotePort), addrPort(id.LocalAddress, id.LocalPort)
}

func addrPort(a tcpip.Address, port uint16) netip.AddrPort {
	ip, _ := netip.AddrFromSlice(a.AsSlice())
	return netip.AddrPortFrom(ip, port)
}

// tcpRequest is a flow.TCPRequest over gVisor's forwarder request.
type tcpRequest struct {
	r        *tcp.ForwarderRequest
	src, dst netip.AddrPort
}

var _ flow.TCPRequest = (*tcpRequest)(nil)

func newTCPRequest(r *tcp.ForwarderRequest) *tcpRequest {
	src, dst := endpoints(r.ID())
	return &tcpRequest{r: r, src: src, dst: dst}
}

func (t *tcpRequest) Src() netip.AddrPort { return t.src }
func (t *tcpRequest) Dst() netip.AddrPort { return t.dst }

// Refuse answers the SYN with a reset.
func (t *tcpRequest) Refuse() { t.r.Complete(true) }

// Accept completes the handshake, or abandons it once ctx ends (see
// flow.TCPRequest). Keepalive is on, so that a dead app does not hold its
// flow forever.
func (t *tcpRequest) Accept(ctx context.Context) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		t.r.Complete(true)
		return nil, fmt.Errorf("app handshake not started: %w", err)
	}
	c := new(appConn) // holds the endpoint's queue
	returned := make(chan struct{})
	stop := context.AfterFunc(ctx, func() { abandonHandshake(&c.wq, returned) })
	ep, err := t.r.CreateEndpoint(&c.wq)
	close(returned)
	stop()
	if err != nil {
		// The app gave up (or the stack is closing, or ctx ended)
		// meanwhile: the reset tells an app that is still there.
		t.r.Complete(true)
		if ctx.Err() != nil {
			return nil, fmt.Errorf("app handshake abandoned: %w (%w)", ctx.Err(), AsError(err))
		}
		return nil, AsError(err)
	}
	t.r.Complete(false)
	ep.SocketOptions().SetKeepAlive(true)
	c.start(ep)
	return c, nil
}

// abandonRetry is how often abandonHandshake repeats its wake-up.
const abandonRetry = 10 * time.Millisecond

// abandonHandshake makes a CreateEndpoint that waits on wq for the app's
// handshake give up. gVisor waits there for one writable event and then
// closes the endpoint if the handshake is not complete, whatever its SYN-ACK
// retransmissions would still do; so a writable event of our own is an
// abort. The wake-up can come before gVisor has registered its waiter (a
// window of a few instructions), so it repeats until CreateEndpoint has
// returned.
func abandonHandshake(wq *waiter.Queue, returned <-chan struct{}) {
	tick := time.NewTicker(abandonRetry)
	defer tick.Stop()
	for {
		wq.Notify(waiter.WritableEvents)
		select {
		case <-returned:
			return
		case <-tick.C:
		}
	}
}

// udpRequest is a flow.UDPRequest over gVisor's forwarder request. Until
// the handler returns, a refusal is left to gVisor (which quotes the real
// datagram); after, it is written as a packet of our own. gVisor's request
// (and the first datagram it holds) is let go when the handler returns,
// since a session may keep the request, for Refuse, as long as it lives.
type udpRequest struct {
	s        *Stack
	r        *udp.ForwarderRequest
	src, dst netip.AddrPort

	mu       sync.Mutex
	inHandle bool // the handler has not returned yet
	refused  bool // Refuse was called while inHandle
}

var _ flow.UDPRequest = (*udpRequest)(nil)

// errAcceptLate is a handler's mistake: Accept after HandleUDP returned.
var errAcceptLate = errors.New("stack: UDP request accepted after HandleUDP returned")

// handleUDP hands r to h and tells gVisor whether to answer it with ICMP
// port unreachable (false).
func (s *Stack) handleUDP(h Handler, r *udp.ForwarderRequest) bool {
	src, dst := endpoints(r.ID())
	req := &udpRequest{s: s, r: r, src: src, dst: dst, inHandle: true}
	h.HandleUDP(req)
	req.mu.Lock()
	defer req.mu.Unlock()
	req.inHandle, req.r = false, nil
	return !req.refused
}

func (u *udpRequest) Src() netip.AddrPort { return u.src }
func (u *udpRequest) Dst() netip.AddrPort { return u.dst }

func (u *udpRequest) Accept() (net.Conn, error) {
	u.mu.Lock()
	r := u.r
	u.mu.Unlock()
	if r == nil {
		return nil, errAcceptLate
	}
	var wq waiter.Queue
	ep, err := r.CreateEndpoint(&wq)
	if err != nil {
		return nil, AsError(err)
	}
	return newAppDatagrams(&wq, ep), nil
}

func (u *udpRequest) Refuse() {
	u.mu.Lock()
	if u.inHandle {
		u.refused = true
		u.mu.Unlock()
		return
	}
	u.mu.Unlock()
	u.s.PortUnreachable(u.src, u.dst)
}

// validUDP checks a datagram's length field and checksum, which gVisor
// checks only after its forwarder's handler has run.
func validUDP(pkt *gvstack.PacketBuffer) bool {
	hdr := header.UDP(pkt.TransportHeader().Slice())
	if len(hdr) < header.UDPMinimumSize {
		return false
	}
	netHdr := pkt.Network()
	lengthValid, csumValid := header.UDPValid(hdr, func() uint16 { return pkt.Data().Checksum() },
		uint16(pkt.Data().Size()), pkt.NetworkProtocolNumber,
		netHdr.SourceAddress(), netHdr.DestinationAddress(), pkt.RXChecksumValidated)
	return lengthValid && csumValid
}
