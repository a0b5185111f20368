// Package forwarder decides what happens to each flow that the stack hands
// over: it dials the flow's destination through an upstream proxy.Dialer,
// completes or refuses the app's connection accordingly, and relays bytes
// both ways. It covers TCP connections, UDP sessions and ICMP echo.
package forwarder

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/tungate/tungate/forwarder/internal/owned"
	"github.com/tungate/tungate/forwarder/proxy"
	"github.com/tungate/tungate/forwarder/udpnat"
	"github.com/tungate/tungate/stack"
)

// Defaults for the zero values of Options, and for the flags that set them.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultUDPTimeout     = 60 * time.Second
)

// Options configures a Forwarder.
type Options struct {
	// Dialer reaches destinations. If it also implements
	// proxy.PacketDialer, UDP is carried; otherwise UDP is refused with
	// ICMP port unreachable. Required.
	Dialer proxy.Dialer
	// Echo forwards ICMP echo requests; nil refuses them silently (no
	// reply, as from a dead host).
	Echo EchoSender
	// ConnectTimeout bounds each upstream TCP dial. Zero means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// UDPTimeout is how long a UDP session that got a reply lives
	// without traffic (--udp-timeout). Zero means DefaultUDPTimeout.
	UDPTimeout time.Duration
	// Allow, if set, is asked before each new flow (network "tcp", "udp"
	// or "icmp"; dst is the address the app sent to). A refused TCP flow is
	// reset, a refused UDP flow gets ICMP port unreachable, a refused echo
	// gets no reply. It runs on the packet path and must not block.
	Allow func(network string, dst netip.AddrPort) bool
	// UDPApp delivers UDP replies and refusals to apps: the stack, through
	// a LateStack. Required.
	UDPApp udpnat.AppSender
	// UDPFilter says which sources may send to a UDP session's mapping
	// (--udp-filter); the zero value admits any (endpoint-independent).
	UDPFilter udpnat.Filter
	// UDPUnrepliedTimeout ends a UDP session that never got a reply after
	// this long without traffic. Zero means udpnat's default.
	UDPUnrepliedTimeout time.Duration
	// UDPMaxSessions caps UDP sessions (app source ports); at the cap the
	// least recently used one is closed. Zero means udpnat's default.
	UDPMaxSessions int
	// SharedUDP, if set, names the upstream whose one socket per session
	// carries datagrams to dst (endpoint-independent mapping); nil sends
	// them through Dialer on a socket of dst's own, for the destinations
	// that a Dialer wrapper answers or renames (in-process DNS, fake
	// addresses, redirects). Without it every destination has its own.
	SharedUDP func(dst netip.AddrPort) proxy.PacketListener
	// Logger receives per-flow messages at debug level and failures at
	// warn level; nil discards them.
	Logger *slog.Logger
}

// Forwarder implements stack.Handler. Its flows live until Close.
type Forwarder struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	flows  owned.Group
	// packets is Dialer's UDP side, nil if it carries none.
	packets proxy.PacketDialer
	udp     *udpnat.Table
	echo    *echoTable
}

var _ stack.Handler = (*Forwarder)(nil)

// New returns a Forwarder, to be given to stack.New as its Handler.
func New(opts Options) (*Forwarder, error) {
	if opts.Dialer == nil || opts.UDPApp == nil {
		return nil, errors.New("forwarder: Dialer and UDPApp are required")
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.UDPTimeout <= 0 {
		opts.UDPTimeout = DefaultUDPTimeout
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Forwarder{opts: opts, log: log, ctx: ctx, cancel: cancel, packets: packetDialer(opts.Dialer)}
	udpTable, err := udpnat.New(udpnat.Options{
		Route:            f.routeUDP,
		App:              opts.UDPApp,
		Filter:           opts.UDPFilter,
		Timeout:          opts.UDPTimeout,
		UnrepliedTimeout: opts.UDPUnrepliedTimeout,
		MaxSessions:      opts.UDPMaxSessions,
		OpenTimeout:      opts.ConnectTimeout,
		Logger:           log,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	f.udp = udpTable
	f.echo = newEchoTable()
	return f, nil
}

// goFlow runs fn as a flow goroutine that Close waits for. It returns
// false (and does not run fn) once Close has begun.
func (f *Forwarder) goFlow(fn func(ctx context.Context)) bool {
	return f.flows.Go(func() { fn(f.ctx) })
}

// allowed applies Options.Allow.
func (f *Forwarder) allowed(network string, dst netip.AddrPort) bool {
	return f.opts.Allow == nil || f.opts.Allow(network, dst)
}

// Close ends every flow and waits for their goroutines. It is idempotent.
func (f *Forwarder) Close() error {
	f.flows.Close()
	f.cancel()
	err := f.udp.Close()
	f.flows.Wait()
	return err
}
