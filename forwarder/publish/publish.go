// Package publish makes ports inside an app's namespace reachable from the
// host, as container port mappings do: it listens on host sockets and
// carries each TCP connection, or each UDP client's datagrams, into the
// namespace through the userspace stack (gonet), from an address the stack
// owns.
package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"strings"
	"time"

	"gvisor.dev/gvisor/pkg/tcpip"
	"gvisor.dev/gvisor/pkg/tcpip/adapters/gonet"
	"gvisor.dev/gvisor/pkg/tcpip/header"
	gvstack "gvisor.dev/gvisor/pkg/tcpip/stack"

	"github.com/tungate/tungate/forwarder"
	"github.com/tungate/tungate/forwarder/internal/owned"
)

// Options configures a Publisher.
type Options struct {
	// Stack carries the flows into the namespace. It must own an address
	// of Target's family (stack.Stack.AddAddress), which becomes the
	// source the app sees. Required.
	Stack *gvstack.Stack
	// NIC is the stack's NIC that leads into the namespace.
	NIC tcpip.NICID
	// Target is the namespace's address the ports are reached on (the
	// device's address inside). Required.
	Target netip.Addr
	// Target6, if set, is the namespace's IPv6 address: a TCP connection
	// that Target refuses is tried there, so a server listening on IPv6
	// only is reachable too. The stack must own an IPv6 source address.
	Target6 netip.Addr
	// Ports to publish.
	Ports []Port
	// ConnectTimeout bounds connecting into the namespace; zero means forwarder.DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// UDPTimeout ends a UDP client's session after this long without a
	// datagram; zero means 60 s.
	UDPTimeout time.Duration
	// Logger receives per-flow failures at debug level; nil discards them.
	Logger *slog.Logger
}

// Publisher serves the published ports until Close.
type Publisher struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	owned  owned.Group
	socks  []interface{ Close() error }
}

// Start listens on every port, or on none if one fails.
func Start(opts Options) (*Publisher, error) {
	if opts.Stack == nil || !opts.Target.IsValid() {
		return nil, errors.New("publish: Stack and Target are required")
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = forwarder.DefaultConnectTimeout
	}
	if opts.UDPTimeout <= 0 {
		opts.UDPTimeout = forwarder.DefaultUDPTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Publisher{opts: opts, log: log}
	p.ctx, p.cancel = context.WithCancel(context.Background())
	for _, port := range opts.Ports {
		if err := p.listen(port); err != nil {
			p.Close()
			return nil, err
		}
	}
	return p, nil
}

func (p *Publisher) listen(port Port) error {
	addr := ""
	if port.Host.Addr().IsValid() {
		addr = port.Host.Addr().String()
	}
	addr = net.JoinHostPort(addr, fmt.Sprint(port.Host.Port()))
	target := tcpip.FullAddress{NIC: p.opts.NIC, Addr: tcpip.AddrFromSlice(p.opts.Target.AsSlice()), Port: port.Target}
	if port.Network == "udp" {
		pc, err := net.ListenPacket("udp", addr)
		if err != nil {
			return fmt.Errorf("publish %s: %w", port, err)
		}
		p.socks = append(p.socks, pc)
		p.owned.Go(func() { p.serveUDP(pc.(*net.UDPConn), target) })
		return nil
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("publish %s: %w", port, err)
	}
	p.socks = append(p.socks, ln)
	p.owned.Go(func() { p.serveTCP(ln, target) })
	return nil
}

// refused reports whether a gonet dial failed with a reset (nothing
// listening). gonet keeps only the text of gVisor's error.
func refused(err error) bool {
	return strings.HasSuffix(err.Error(), (&tcpip.ErrConnectionRefused{}).String())
}

// proto is the network protocol that reaches addr.
func proto(addr tcpip.Address) tcpip.NetworkProtocolNumber {
	if addr.Len() == header.IPv4AddressSize {
		return header.IPv4ProtocolNumber
	}
	return header.IPv6ProtocolNumber
}

// dialTCP connects into the namespace at target, and at Target6 if target
// refuses.
func (p *Publisher) dialTCP(target tcpip.FullAddress) (*gonet.TCPConn, error) {
	ctx, cancel := context.WithTimeout(p.ctx, p.opts.ConnectTimeout)
	defer cancel()
	ns, err := gonet.DialContextTCP(ctx, p.opts.Stack, target, proto(target.Addr))
	if err == nil || !p.opts.Target6.IsValid() || !refused(err) {
		return ns, err
	}
	target.Addr = tcpip.AddrFromSlice(p.opts.Target6.AsSlice())
	return gonet.DialContextTCP(ctx, p.opts.Stack, target, proto(target.Addr))
}

func (p *Publisher) serveTCP(ln net.Listener, target tcpip.FullAddress) {
	for {
		c, err := ln.Accept()
		if err != nil {
			if !errors.Is(err, net.ErrClosed) {
				p.log.Warn("publish: accept failed", "listen", ln.Addr(), "err", err)
			}
			return
		}
		if !p.owned.Go(func() { p.forwardTCP(c, target) }) {
			c.Close()
			return
		}
	}
}

func (p *Publisher) forwardTCP(host net.Conn, target tcpip.FullAddress) {
	ns, err := p.dialTCP(target)
	if err != nil {
		p.log.Debug("publish: connect into the namespace failed", "from", host.RemoteAddr(), "port", target.Port, "err", err)
		// A reset tells the host client at once, like a closed port.
		if tc, ok := host.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		host.Close()
		return
	}
	if err := forwarder.Relay(p.ctx, host, ns); err != nil {
		p.log.Debug("publish: relay ended", "from", host.RemoteAddr(), "port", target.Port, "err", err)
	}
}

// Close stops listening, ends every flow and waits for them. It is
// idempotent.
func (p *Publisher) Close() error {
	p.owned.Close()
	p.cancel()
	for _, s := range p.socks {
		s.Close()
	}
	p.owned.Wait()
	return nil
}
