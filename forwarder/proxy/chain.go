package proxy

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strings"
	"time"
)

// Chain dials through proxy hops in order: the first hop is reached from the
// host through the base dialer, each hop is asked to connect to the next, and
// the last connects to the destination. Every error is a *HopError naming
// the failing hop.
type Chain struct {
	hops  []*Hop     // the proxy hops, without direct ones
	outer *hopDialer // the last hop, which dials through all the others
	// udpRefused remembers a refused UDP ASSOCIATE (see UDPRefusalMemory).
	udpRefused udpRefusal
}

var (
	_ Dialer       = (*Chain)(nil)
	_ PacketDialer = (*Chain)(nil)
)

// NewChain builds a dialer through hops (direct:// hops are skipped), whose
// first proxy is reached through base. handshakeTimeout bounds each hop's
// handshake; zero means DefaultHandshakeTimeout. With no proxy hop it returns
// base itself. base must not be nil; it should be a PacketDialer (Direct) for
// UDP through a single SOCKS5 hop.
func NewChain(hops []*Hop, base Dialer, handshakeTimeout time.Duration) Dialer {
	return NewChainWith(ChainOptions{Hops: hops, Base: base, HandshakeTimeout: handshakeTimeout})
}

// ChainOptions configures NewChainWith.
type ChainOptions struct {
	// Hops are the hops in order; direct:// ones are skipped.
	Hops []*Hop
	// Base reaches the first proxy. Required; it should be a
	// PacketDialer (Direct) for UDP through a single SOCKS5 hop.
	Base Dialer
	// HandshakeTimeout bounds each hop's handshake; zero means
	// DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// UDPResolver, if set, is the SOCKS5 hops' UDPResolver: UDP to a name
	// is sent to the address it returns. Nil sends names.
	UDPResolver UDPResolver
}

// NewChainWith is NewChain with every option.
func NewChainWith(opts ChainOptions) Dialer {
	c := &Chain{}
	d := opts.Base
	for i, hop := range opts.Hops {
		if hop.Kind == KindDirect {
			continue
		}
		inner := hop.Dialer(d, opts.HandshakeTimeout)
		if s5, ok := inner.(*SOCKS5); ok {
			s5.UDPResolver = opts.UDPResolver
		}
		c.outer = &hopDialer{index: i + 1, hop: hop, inner: inner}
		c.hops = append(c.hops, hop)
		d = c.outer
	}
	if c.outer == nil {
		return opts.Base
	}
	return c
}

// DialContext implements Dialer.
func (c *Chain) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	return c.outer.DialContext(ctx, network, address)
}

// DialPacket implements PacketDialer. Only a chain of exactly one SOCKS5 hop
// carries UDP; otherwise the error matches ErrUDPUnsupported. After the
// proxy refused UDP ASSOCIATE, dials fail at once for UDPRefusalMemory with
// ErrUDPRefused and ErrUDPRefusedRecently.
func (c *Chain) DialPacket(ctx context.Context, network, address string) (net.Conn, error) {
	return viaLastHop(c, func(pd PacketDialer) (net.Conn, error) { return pd.DialPacket(ctx, network, address) })
}

// CanCarryUDP reports whether DialPacket can work, so that callers can warn
// once at start rather than per flow.
func (c *Chain) CanCarryUDP() bool { return c.udpUnsupported() == nil }

func (c *Chain) udpUnsupported() error {
	if why := WhyNoUDP(c.hops); why != "" {
		return fmt.Errorf("%w: %s", ErrUDPUnsupported, why)
	}
	return nil
}

// WhyNoUDP says why a path through hops cannot carry UDP, or "" if it can.
// Only a single SOCKS5 proxy can (direct:// hops aside): UDP ASSOCIATE needs
// datagrams from this host to the proxy's relay, which a second hop would
// not pass.
func WhyNoUDP(hops []*Hop) string {
	var kinds []Kind
	for _, h := range hops {
		if h.Kind != KindDirect {
			kinds = append(kinds, h.Kind)
		}
	}
	switch {
	case len(kinds) > 1:
		return fmt.Sprintf("a chain of %d proxies carries TCP only", len(kinds))
	case len(kinds) == 1 && kinds[0] != KindSOCKS5:
		return fmt.Sprintf("%s proxies carry TCP only", kinds[0])
	}
	return ""
}

// String lists the hops without passwords, for logs.
func (c *Chain) String() string {
	names := make([]string, len(c.hops))
	for i, hop := range c.hops {
		names[i] = hop.String()
	}
	return strings.Join(names, " -> ")
}

// hopDialer names its hop in errors that are not already some hop's.
type hopDialer struct {
	index int
	hop   *Hop
	inner Dialer
}

func (h *hopDialer) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	conn, err := h.inner.DialContext(ctx, network, address)
	if err != nil {
		return nil, h.wrap(err)
	}
	return conn, nil
}

func (h *hopDialer) wrap(err error) error {
	if _, ok := errors.AsType[*HopError](err); ok {
		return err // an earlier hop failed and has said so
	}
	return &HopError{Index: h.index, Hop: h.hop.String(), Err: err}
}
