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
// dial first, accept, relay), udp.go (HandleUDP and a session's two copy
// loops), echo.go (echo through host ICMP sockets), dial.go (the one place
// a Decision becomes a connection, and where dial failures are logged);
// then relay.go and hostconn.go for how bytes move without allocating.
// The decision itself is package route's (route.Router.Decide, whose doc
// lists the built-in rules in order); the upstreams are package proxy's.
package forwarder

import (
	"context"
	"errors"
	"log/slog"
	"net/netip"
	"time"

	"github.com/tungate/tungate/forwarder/flows"
	"github.com/tungate/tungate/forwarder/internal/owned"
	"github.com/tungate/tungate/forwarder/route"
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
	// UDPTimeout is how long a UDP session lives without traffic. Zero
	// means DefaultUDPTimeout.
	UDPTimeout time.Duration
	// Flows, if set, is the flow table every TCP and UDP flow and echo
	// conversation is entered in, with its byte counts, and finished into.
	Flows *flows.Table
	// Unreachable, if set, reports addresses no flow may dial whatever
	// the route (tungate's own API listener); such flows are refused.
	Unreachable func(dst netip.AddrPort) bool
	// Logger receives each flow's decision and fate at debug level and
	// proxy failures at warn level; nil discards them.
	Logger *slog.Logger
}

// Forwarder implements stack.Handler. Its flows live until Close.
type Forwarder struct {
	opts     Options
	log      *slog.Logger
	ctx      context.Context
	cancel   context.CancelFunc
	flows    owned.Group
	udp      *udpTable
	echo     *echoTable
	failures *failureLog
}

// New returns a Forwarder, to be given to stack.New as its Handler.
func New(opts Options) (*Forwarder, error) {
	if opts.Router == nil {
		return nil, errors.New("forwarder: Router is required")
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
	f := &Forwarder{opts: opts, log: log, ctx: ctx, cancel: cancel, failures: newFailureLog(log)}
	f.udp = newUDPTable()
	f.echo = newEchoTable()
	return f, nil
}

// goFlow runs fn as a flow goroutine that Close waits for. It returns
// false (and does not run fn) once Close has begun.
func (f *Forwarder) goFlow(fn func(ctx context.Context)) bool {
	return f.flows.Go(func() { fn(f.ctx) })
}

// Close ends every flow and waits for their goroutines. It is idempotent.
func (f *Forwarder) Close() error {
	f.flows.Close()
	f.cancel()
	f.flows.Wait()
	return nil
}
