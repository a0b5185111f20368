// Package stack runs gVisor's userspace TCP/IP stack on top of a link
// endpoint (normally a TUN device) and hands every flow that arrives to a
// Handler: TCP connection requests, UDP datagrams of new sessions, and ICMP
// echo requests. It accepts packets for any destination (promiscuous) and
// answers from any source (spoofing), for IPv4 and IPv6. It never decides
// what happens to a flow; that is package forwarder's job.
package stack

import (
	"errors"
	"fmt"
	"log/slog"
	"sync"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv4"
	"gvisor.dev/gvisor/pkg/tcpip/network/ipv6"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"
	"gvisor.dev/gvisor/pkg/tcpip/transport/icmp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/tcp"
	"gvisor.dev/gvisor/pkg/tcpip/transport/udp"
)

// Handler receives the flows that arrive at the stack. Each method is called
// on gVisor's packet path or on a goroutine gVisor starts per request; see
// each method for what it may do.
type Handler interface {
	// HandleTCP is called on its own goroutine for every new connection
	// request (a SYN). It must call exactly one of r.Complete or
	// r.CreateEndpoint (followed by Complete(false)) and may block to dial
	// the destination first; at most Options.TCPMaxInFlight calls run at
	// once.
	HandleTCP(r *tcp.ForwarderRequest)
	// HandleUDP is called on the packet-dispatch path for the first
	// datagram of a session that has no endpoint yet. It must not block.
	// Returning false makes the stack answer with ICMP port unreachable.
	HandleUDP(r *udp.ForwarderRequest) bool
	// HandleEcho is called on the packet-dispatch path for every ICMP or
	// ICMPv6 echo request, which the stack never answers itself. It must
	// not block; req is owned by the handler.
	HandleEcho(req *EchoRequest)
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
	// TCPMaxInFlight bounds the connection requests being dialed at once;
	// further SYNs are dropped (the app retransmits). Zero means 1024.
	TCPMaxInFlight int
	// TCPReceiveWindow is the initial receive window offered to apps, in
	// bytes. Zero lets gVisor choose (and auto-tune).
	TCPReceiveWindow int
}

const nicID tcpip.NICID = 1

// Stack is a running gVisor stack with one NIC.
type Stack struct {
	gv        *gvstack.Stack
	link      gvstack.LinkEndpoint // for its own counters (Drops)
	log       *slog.Logger
	closeOnce sync.Once
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
		opts.TCPMaxInFlight = 1024
	}
	gv := gvstack.New(gvstack.Options{
		NetworkProtocols:   []gvstack.NetworkProtocolFactory{ipv4.NewProtocol, ipv6.NewProtocol},
		TransportProtocols: []gvstack.TransportProtocolFactory{tcp.NewProtocol, udp.NewProtocol, icmp.NewProtocol4, icmp.NewProtocol6},
		// Packets the app sends to itself never reach the TUN device, so
		// there is nothing local to loop back.
		HandleLocal: false,
	})
	s := &Stack{gv: gv, log: log, link: opts.Link}
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
	tcpFwd := tcp.NewForwarder(s.gv, opts.TCPReceiveWindow, opts.TCPMaxInFlight, opts.Handler.HandleTCP)
	s.gv.SetTransportProtocolHandler(tcp.ProtocolNumber, tcpFwd.HandlePacket)
	udpFwd := udp.NewForwarder(s.gv, opts.Handler.HandleUDP)
	s.gv.SetTransportProtocolHandler(udp.ProtocolNumber, udpFwd.HandlePacket)
	// Packets flow as soon as the NIC exists, and gVisor does not lock
	// handler installation against delivery: the NIC comes last.
	link := newEchoTap(opts.Link, s.gv, opts.Handler)
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

// GVisor returns the underlying gVisor stack, for creating endpoints with
// gonet. It stays owned by the Stack.
func (s *Stack) GVisor() *gvstack.Stack { return s.gv }

// NIC returns the ID of the stack's only NIC.
func (s *Stack) NIC() tcpip.NICID { return nicID }

// Stats returns gVisor's counters (drops of malformed packets among them).
func (s *Stack) Stats() tcpip.Stats { return s.gv.Stats() }

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
