// Package forwarder carries out what happens to each flow that the stack
// hands over: it asks a Router (package forwarder/route) once for the
// flow's fate, then refuses it, answers it in-process, or dials its
// destination through the chosen upstream and only then completes the
// app's side, and relays bytes both ways. It covers TCP connections, UDP
// sessions and ICMP echo. It sees the stack only through package flow's
// types and net.Conn: no gVisor package is imported here, so every part
// can be tested with plain fakes.
//
// # Data path
//
// A newcomer reads, in order: tcp.go (HandleTCP: describe the flow, decide,
// dial first, accept, relay), udp.go (HandleUDPDatagram: each datagram to
// package udpnat's session table, which keeps one mapping per app source
// port and upstream and asks routeUDP once per destination), echo.go (echo
// through host ICMP sockets), dial.go (the one place a Decision becomes a
// connection, and where dial failures are logged); then relay.go and
// hostconn.go for how bytes move without allocating.
// The decision itself is package route's (route.Router.Decide, whose doc
// lists the built-in rules in order); the upstreams are package proxy's.
package forwarder

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"time"

	"github.com/tungate/tungate/forwarder/admission"
	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/forwarder/internal/hostsock"
	"github.com/tungate/tungate/forwarder/internal/owned"
	"github.com/tungate/tungate/forwarder/internal/poll"
	"github.com/tungate/tungate/forwarder/route"
	"github.com/tungate/tungate/forwarder/udpnat"
)

// Defaults for the zero values of Options, and for the flags that set them.
const (
	DefaultConnectTimeout = 10 * time.Second
	DefaultUDPTimeout     = 60 * time.Second
)

// Router decides each new flow's fate; *route.Router is one.
type Router interface {
	// Decide is called once per new flow, on the packet path: it must not
	// block. It may fill in f.Name.
	Decide(f *route.Flow) route.Decision
}

// Options configures a Forwarder.
type Options struct {
	// Router decides each new flow's fate. Required.
	Router Router
	// Echo opens the host sockets that echo requests leave through; nil
	// refuses echo (no reply, as from a dead host).
	Echo EchoSender
	// ConnectTimeout bounds each upstream dial. Zero means
	// DefaultConnectTimeout.
	ConnectTimeout time.Duration
	// UDPTimeout is how long a UDP session that got a reply lives
	// without traffic (--udp-timeout). Zero means DefaultUDPTimeout.
	UDPTimeout time.Duration
	// UDPApp delivers UDP replies and refusals to apps: the stack, through
	// a LateApp. nil drops them (for tests of other flows).
	UDPApp udpnat.AppSender
	// UDPFilter says which sources may send to a UDP session's mapping
	// (--udp-filter); the zero value admits any (endpoint-independent).
	UDPFilter udpnat.Filter
	// UDPUnrepliedTimeout ends a UDP session that never got a reply after
	// this long without traffic. Zero means udpnat's default.
	UDPUnrepliedTimeout time.Duration
	// Flows, if set, is the flow table every TCP and UDP flow and echo
	// conversation is entered in, with its byte counts, and finished into.
	Flows *flows.Table
	// Unreachable, if set, reports addresses no flow may dial whatever
	// the route (tungate's own API listener); such flows are refused.
	Unreachable func(dst netip.AddrPort) bool
	// Limits caps the flows and the dials in flight (package admission);
	// a flow refused for a cap gets a reset or ICMP port unreachable at
	// once, is counted (Refused) and logged at most once a second per
	// reason. Zero fields take admission's defaults. TCP connections and
	// UDP sessions share MaxFlows (and FDFlows, with every UDP host
	// socket); when it is full, the least recently used UDP session idle
	// for a second makes room for a new flow of either kind.
	Limits admission.Limits
	// FDLimit is the file descriptor limit (RLIMIT_NOFILE) that
	// Limits.FDFlows was derived from, named in the log line when it
	// bites; zero if unknown.
	FDLimit int
	// HandshakeTimeout bounds the app's side of a TCP handshake once the
	// upstream dial succeeded. Zero means DefaultHandshakeTimeout.
	HandshakeTimeout time.Duration
	// HalfClosedTimeout is how long a TCP flow lives once one side has
	// closed and no byte has moved since: then both sides are reset. Zero
	// means DefaultHalfClosedTimeout.
	HalfClosedTimeout time.Duration
	// Logger receives each flow's decision and fate at debug level and
	// proxy failures at warn level; nil discards them.
	Logger *slog.Logger
}

// Forwarder implements stack.Handler. Its flows live until Close.
type Forwarder struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context // dials, handshakes, echo: cancelled first on Close
	cancel context.CancelFunc
	// live is every relayed TCP flow, which Close resets itself; the
	// relays have no context of their own to cancel (one costs an idle
	// flow about 300 bytes).
	live     liveTCP
	flows    owned.Group
	udp      *udpnat.Table
	poll     *poll.Set     // where idle TCP flows wait for their upstream
	sockets  *hostsock.Set // where direct TCP upstreams wait, outside the runtime's poller
	echo     *echoTable
	failures *failureLog
	lim      limiter
}

// New returns a Forwarder, to be given to stack.New as its Handler.
func New(opts Options) (*Forwarder, error) {
	if opts.Router == nil {
		return nil, errors.New("forwarder: Router is required")
	}
	if opts.UDPApp == nil {
		opts.UDPApp = &LateApp{} // never Set: drops everything
	}
	if opts.ConnectTimeout <= 0 {
		opts.ConnectTimeout = DefaultConnectTimeout
	}
	if opts.UDPTimeout <= 0 {
		opts.UDPTimeout = DefaultUDPTimeout
	}
	if opts.HandshakeTimeout <= 0 {
		opts.HandshakeTimeout = DefaultHandshakeTimeout
	}
	if opts.HalfClosedTimeout <= 0 {
		opts.HalfClosedTimeout = DefaultHalfClosedTimeout
	}
	gate, err := admission.New(opts.Limits)
	if err != nil {
		return nil, fmt.Errorf("forwarder: %w", err)
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	ctx, cancel := context.WithCancel(context.Background())
	f := &Forwarder{opts: opts, log: log, ctx: ctx, cancel: cancel, failures: newFailureLog(log)}
	f.lim = limiter{gate: gate, fdLimit: opts.FDLimit}
	udpTable, err := udpnat.New(udpnat.Options{
		Route:            f.routeUDP,
		App:              opts.UDPApp,
		Filter:           opts.UDPFilter,
		Timeout:          opts.UDPTimeout,
		UnrepliedTimeout: opts.UDPUnrepliedTimeout,
		Budget:           udpBudget{f},
		OpenTimeout:      opts.ConnectTimeout,
		Logger:           log,
	})
	if err != nil {
		cancel()
		return nil, err
	}
	f.udp = udpTable
	gate.SetEvictor(udpTable.EvictIdle) // a TCP connection takes an idle session's place
	if f.poll, err = poll.New(); err != nil {
		cancel()
		udpTable.Close()
		return nil, fmt.Errorf("forwarder: %w", err)
	}
	if f.sockets, err = hostsock.New(); err != nil {
		cancel()
		udpTable.Close()
		f.poll.Close()
		return nil, fmt.Errorf("forwarder: %w", err)
	}
	f.echo = newEchoTable()
	return f, nil
}

// goFlow runs fn as a flow goroutine that Close waits for. It returns
// false (and does not run fn) once Close has begun.
func (f *Forwarder) goFlow(fn func(ctx context.Context)) bool {
	return f.flows.Go(func() { fn(f.ctx) })
}

// Close ends every flow and waits for their goroutines. It is idempotent.
// Every app-side TCP connection is reset, pending dials and handshakes are
// abandoned, and flows that arrive from now on are refused at once (a
// reset, ICMP port unreachable), so no app is left waiting for its own
// timeout; the stack must still be running meanwhile, and a while after
// (Stack.Settle), to answer what the apps send back.
//
// The resets are sent from here, in one pass over the live flows, app
// sides first, rather than by each flow's relay: with 10,000 flows that
// cut the stop's CPU time by about a third (liveTCP).
func (f *Forwarder) Close() error {
	f.lim.gate.Close()
	f.flows.Close()
	f.cancel() // pending dials and handshakes are abandoned at once
	f.live.resetAll()
	err := f.udp.Close()
	f.flows.Wait()
	// After the flows: each was reset above and woke from the set.
	return errors.Join(err, f.poll.Close(), f.sockets.Close())
}
