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
	// UDPTimeout is how long a UDP session lives without traffic. Zero
	// means DefaultUDPTimeout.
	UDPTimeout time.Duration
	// Allow, if set, is asked before each new flow (network "tcp", "udp"
	// or "icmp"; dst is the address the app sent to). A refused TCP flow is
	// reset, a refused UDP flow gets ICMP port unreachable, a refused echo
	// gets no reply. It runs on the packet path and must not block.
	Allow func(network string, dst netip.AddrPort) bool
	// PortUnreachable, if set, is called when a UDP destination refuses a
	// session's datagrams (the host socket got ICMP port unreachable), so
	// the app can be told the same; see stack.Stack.PortUnreachable. It
	// must not block.
	PortUnreachable func(src, dst netip.AddrPort)
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
	udp    *udpTable
	echo   *echoTable
}

var _ stack.Handler = (*Forwarder)(nil)

// New returns a Forwarder, to be given to stack.New as its Handler.
func New(opts Options) (*Forwarder, error) {
	if opts.Dialer == nil {
		return nil, errors.New("forwarder: Dialer is required")
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
	f := &Forwarder{opts: opts, log: log, ctx: ctx, cancel: cancel}
	f.udp = newUDPTable()
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
	f.flows.Wait()
	return nil
}
