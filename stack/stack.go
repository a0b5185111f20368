// Package stack runs gVisor's userspace TCP/IP stack on top of a link
// endpoint (normally a TUN device) and hands every flow that arrives to a
// Handler: TCP connection requests, UDP datagrams of new sessions, and ICMP
// echo requests. It accepts packets for any destination (promiscuous) and
// answers from any source (spoofing), for IPv4 and IPv6. It never decides
// what happens to a flow; that is package forwarder's job.
//
// It owns every use of gVisor: the requests it hands out are package
// flow's interfaces and the connections are net.Conn (the waiter queues
// and gonet adapters stay here, appconn.go), its errors match flow's
// sentinels (errors.go), it writes the ICMP messages that package icmpmsg
// builds (echo.go, unreachable.go), and it dials into the device for
// published ports (dial.go).
package stack

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/time/rate"
	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"

	"github.com/tungate/tungate/stack/flow"
)

// Handler receives the flows that arrive at the stack, in tungate's own
// types (package flow): nothing of gVisor reaches it.
type Handler interface {
	// HandleTCP is called on its own goroutine for every new connection
	// request (a SYN). It must call exactly one of r.Accept or r.Refuse,
	// and may block to dial the destination first (dial-first: the SYN is
	// answered only then); at most Options.TCPMaxInFlight requests wait
	// for that answer at once. The goroutine is the handler's from then
	// on: it may go on to serve the accepted connection, for as long as
	// it lives, before it returns.
	HandleTCP(r flow.TCPRequest)
	// HandleUDP is called on the packet-dispatch path for the first
	// datagram of a session that has no endpoint yet. It must not block.
	// It calls r.Accept, or r.Refuse (ICMP port unreachable), or neither
	// (the datagram is dropped). A Handler that is also a
	// flow.DatagramHandler gets every datagram there instead, and this is
	// never called.
	HandleUDP(r flow.UDPRequest)
	// HandleEcho is called on the packet-dispatch path for every ICMP or
	// ICMPv6 echo request, which the stack never answers itself. It must
	// not block; req is owned by the handler.
	HandleEcho(req *flow.EchoRequest)
}

// Options configures a Stack.
type Options struct {
	// Link is the endpoint packets come from and go to. The Stack takes
	// ownership: Close closes it.
	Link gvstack.LinkEndpoint
	// Handler receives flows. Required.
	Handler Handler
	// Logger receives the stack's own messages; nil discards them.
	Logger *slog.Logger
	// TCPMaxInFlight bounds the connection requests handed to the Handler
	// and not yet answered. gVisor drops further SYNs silently (the app
	// retransmits for minutes), so it is a backstop only: the Handler does
	// its own admission and refuses with a reset well before it (package
	// forwarder/admission). Zero means DefaultTCPMaxInFlight.
	TCPMaxInFlight int
	// TCPReceiveWindow is the initial receive window offered to apps, in
	// bytes. Zero lets gVisor choose (and auto-tune).
	TCPReceiveWindow int
	// ICMPErrorRate bounds the ICMP errors the stack sends apps per second
	// (port unreachable for refused UDP, mostly), with bursts of a tenth
	// of it (at least 50). They only ever go to the apps on the device,
	// so the bound is against a flood's CPU cost, not amplification; a
	// refusal beyond it leaves the app to its own timeout. Zero means
	// DefaultICMPErrorRate.
	ICMPErrorRate int
}

const nicID tcpip.NICID = 1

// DefaultTCPMaxInFlight is the zero value of Options.TCPMaxInFlight: room
// for the forwarder's pending dials and a burst of SYNs being refused.
const DefaultTCPMaxInFlight = 16384

// DefaultICMPErrorRate is the zero value of Options.ICMPErrorRate: ten
// times the kernel's icmp_msgs_per_sec, so that a burst of a thousand
// refused sessions (a cap biting) is told at once.
const DefaultICMPErrorRate = 10000

// Stack is a running gVisor stack with one NIC.
type Stack struct {
	gv        *gvstack.Stack
	link      gvstack.LinkEndpoint // Options.Link, for its counters
	log       *slog.Logger
	closeOnce sync.Once
	// fast is the link when the UDP fast path is on (udpfast.go), else
	// nil; set before the NIC exists.
	fast fastLink
	// ownUDP counts the stack's own open UDP sockets (DialUDP), whose
	// datagrams the fast path leaves to gVisor.
	ownUDP atomic.Int64
}

// New builds the stack, attaches Link, and starts delivering flows to
// Handler.
func New(opts Options) (*Stack, error) {
	if opts.Link == nil || opts.Handler == nil {
		return nil, errors.New("stack: Link and Handler are required")
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if opts.TCPMaxInFlight <= 0 {
		opts.TCPMaxInFlight = DefaultTCPMaxInFlight
	}
	gv := gvstack.New(gvstack.Options{
		NetworkProtocols:   []gvstack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []gvstack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		// Packets the app sends to itself never reach the TUN device, so
		// there is nothing local to loop back.
		HandleLocal: false,
	})
	s := &Stack{gv: gv, link: opts.Link, log: log}
	if err := s.configure(opts); err != nil {
		gv.Close()
		gv.Wait()
		return nil, err
	}
	return s, nil
}

func (s *Stack) configure(opts Options) error {
	if err := setTCPOptions(s.gv); err != nil {
		return err
	}
	icmpRate := opts.ICMPErrorRate
	if icmpRate <= 0 {
		icmpRate = DefaultICMPErrorRate
	}
	s.gv.SetICMPLimit(rate.Limit(icmpRate))
	s.gv.SetICMPBurst(max(50, icmpRate/10))
	tcpFwd := tcp.NewForwarder(s.gv, opts.TCPReceiveWindow, opts.TCPMaxInFlight, func(r *tcp.ForwarderRequest) {
		opts.Handler.HandleTCP(newTCPRequest(r))
	})
	s.gv.SetTransportProtocolHandler(tcp.ProtocolNumber, tcpFwd.HandlePacket)
	udpFwd := udp.NewForwarder(s.gv, func(r *udp.ForwarderRequest) bool { return s.handleUDP(opts.Handler, r) })
	udpPath := func(id gvstack.TransportEndpointID, pkt *gvstack.PacketBuffer) bool {
		// Not handled: gVisor's own path then drops a malformed datagram
		// (and counts it), before any session or host socket exists.
		return validUDP(pkt) && udpFwd.HandlePacket(id, pkt)
	}
	if dh, ok := opts.Handler.(flow.DatagramHandler); ok {
		udpPath = s.datagramPath(dh) // which checks length and checksum itself
	}
	s.gv.SetTransportProtocolHandler(udp.ProtocolNumber, udpPath)
	if err := s.startFastUDP(opts.Link, opts.Handler); err != nil {
		return fmt.Errorf("UDP fast path: %w", err)
	}
	// Packets flow as soon as the NIC exists, and gVisor does not lock
	// handler installation against delivery: the NIC comes last.
	link := newEchoTap(opts.Link, s, opts.Handler)
	if err := s.gv.CreateNICWithOptions(nicID, link, gvstack.NICOptions{Name: "tun", Disabled: true}); err != nil {
		return fmt.Errorf("create NIC: %w", AsError(err))
	}
	// Promiscuous: accept packets for every destination address.
	// Spoofing: send replies from those addresses.
	if err := s.gv.SetPromiscuousMode(nicID, true); err != nil {
		return fmt.Errorf("set promiscuous mode: %w", AsError(err))
	}
	if err := s.gv.SetSpoofing(nicID, true); err != nil {
		return fmt.Errorf("set spoofing: %w", AsError(err))
	}
	s.gv.SetRouteTable([]tcpip.Route{
		{Destination: header.IPv4EmptySubnet, NIC: nicID},
		{Destination: header.IPv6EmptySubnet, NIC: nicID},
	})
	if err := s.gv.EnableNIC(nicID); err != nil {
		return fmt.Errorf("enable NIC: %w", AsError(err))
	}
	return nil
}

// Settle returns once no packet has arrived from the device for quiet, or
// once limit has passed. A stop calls it between the flows' resets and
// Close, so that the stack answers what apps send back in the meantime:
// an app whose receive window is full takes a reset only at the exact
// sequence number it expects, answers any other with an ACK (RFC 5961),
// and the stack answers that ACK, for a connection it no longer has, with
// a reset at the ACK's own number, which the app accepts.
func (s *Stack) Settle(quiet, limit time.Duration) {
	deadline := time.Now().Add(limit)
	received := s.gv.Stats().IP.PacketsReceived
	last := received.Value()
	for {
		wait := min(quiet, time.Until(deadline))
		if wait <= 0 {
			return
		}
		time.Sleep(wait)
		n := received.Value()
		if n == last {
			return
		}
		last = n
	}
}

// Close tears down every endpoint, closes the link endpoint and waits for
// the stack's goroutines to finish. It is idempotent.
func (s *Stack) Close() {
	s.closeOnce.Do(func() {
		// Removing the NIC closes the link endpoint, which joins its
		// reader before the stack waits for its own goroutines.
		s.gv.RemoveNIC(nicID)
		s.gv.Close()
		s.gv.Wait()
	})
}
