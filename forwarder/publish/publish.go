// Package publish makes ports inside an app's namespace reachable from the
// host, as container port mappings do: it owns the host listeners and
// carries each TCP connection, or each UDP client's datagrams, into the
// namespace through a Dialer (the userspace stack, stack.Stack, dialing
// from an address it owns), entering each in the flow table as an inbound
// flow (Options.Flows). It imports no gVisor package.
package publish

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"time"

	"github.com/tungate/tungate/forwarder"
	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/forwarder/internal/owned"
	"github.com/tungate/tungate/stack/flow"
)

// Options configures a Publisher.
type Options struct {
	// Stack carries the flows into the namespace. It must own an address
	// of Target's family (stack.Stack.AddAddress), which becomes the
	// source the app sees. Required.
	Stack Dialer
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
	// Flows, if set, is the flow table every connection and UDP client
	// session is entered in, as an inbound flow: its source is the host
	// client, its destination the namespace's address, its route
	// "published HOSTADDR:PORT" (the host address the client reached).
	Flows *flows.Table
	// Logger receives per-flow failures at debug level; nil discards them.
	Logger *slog.Logger
}

// Dialer opens connections into the namespace; *stack.Stack is one.
type Dialer interface {
	// DialTCP connects to dst; a reset (nothing listening) fails with an
	// error matching flow.ErrConnectionRefused.
	DialTCP(ctx context.Context, dst netip.AddrPort) (net.Conn, error)
	// DialUDP opens a UDP socket connected to dst.
	DialUDP(dst netip.AddrPort) (net.Conn, error)
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
	target := netip.AddrPortFrom(p.opts.Target, port.Target)
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

// dialTCP connects into the namespace at target, and at Target6 if target
// refuses.
func (p *Publisher) dialTCP(target netip.AddrPort) (net.Conn, error) {
	ctx, cancel := context.WithTimeout(p.ctx, p.opts.ConnectTimeout)
	defer cancel()
	ns, err := p.opts.Stack.DialTCP(ctx, target)
	if err == nil || !p.opts.Target6.IsValid() || !errors.Is(err, flow.ErrConnectionRefused) {
		return ns, err
	}
	return p.opts.Stack.DialTCP(ctx, netip.AddrPortFrom(p.opts.Target6, target.Port()))
}

func (p *Publisher) serveTCP(ln net.Listener, target netip.AddrPort) {
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

func (p *Publisher) forwardTCP(host net.Conn, target netip.AddrPort) {
	fl := p.track(flows.TCP, host.RemoteAddr(), host.LocalAddr(), target)
	ns, err := p.dialTCP(target)
	fl.Opened(err)
	if err != nil {
		p.log.Debug("publish: connect into the namespace failed", "from", host.RemoteAddr(), "port", target.Port(), "err", err)
		// A reset tells the host client at once, like a closed port.
		if tc, ok := host.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		host.Close()
		return
	}
	defer fl.Finish(flows.EndClosed)
	// Killing the flow resets both sides, as for the forwarder's flows.
	fl.SetCloser(func() {
		if tc, ok := host.(*net.TCPConn); ok {
			tc.SetLinger(0)
		}
		host.Close()
		ns.Close()
	})
	// The namespace's side is the app: Up counts what it sends.
	if err := forwarder.RelayFlow(p.ctx, ns, host, fl); err != nil {
		p.log.Debug("publish: relay ended", "from", host.RemoteAddr(), "port", target.Port(), "err", err)
	}
}

// track enters a flow from the host client from, which reached the host
// address at, into the flow table; nil without one.
func (p *Publisher) track(proto flows.Protocol, from, at net.Addr, target netip.AddrPort) *flows.Flow {
	if p.opts.Flows == nil {
		return nil
	}
	return p.opts.Flows.Begin(flows.Start{
		Protocol: proto, Src: addrPort(from), Dst: target, Inbound: true,
		Route: "published " + addrPort(at).String(),
	})
}

// addrPort is a TCP or UDP socket address as a netip.AddrPort, unmapped.
func addrPort(a net.Addr) netip.AddrPort {
	var ap netip.AddrPort
	switch a := a.(type) {
	case *net.TCPAddr:
		ap = a.AddrPort()
	case *net.UDPAddr:
		ap = a.AddrPort()
	}
	return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
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
