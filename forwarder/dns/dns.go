// Package dns answers DNS in-process: flows on port 53, UDP and TCP, that
// tungate answers itself instead of dialing them.
//
// Resolver serves those flows and hands each query to an Answerer: the
// router (forwarder/route) decides which flows it gets, the forwarder
// opens each with Open. It is also a dialer wrapper (DialContext,
// DialPacket) that catches the flows to its own addresses (and, with
// EveryAddr, every flow to port 53) and sends the rest to Options.Next.
// What answers is a separate, small interface: Forward relays queries to
// real resolvers (--dns, or the host's resolv.conf); fake DNS
// (forwarder/fakedns) answers from its table of names.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/tungate/tungate/forwarder/internal/owned"
	"github.com/tungate/tungate/forwarder/proxy"
)

// Port is the port the resolver answers on.
const Port = 53

// Answerer answers DNS queries.
type Answerer interface {
	// Answer returns the response to one DNS message (without the TCP
	// length prefix). network is "udp" or "tcp", how the query arrived: an
	// answer to a UDP query must respect the size the client can take
	// (set the TC bit, as real servers do, to make it retry over TCP). It
	// honours ctx, may be called concurrently and must not keep query
	// after it returns. A nil answer with a nil error means the message
	// is not worth one (it is not a query): a datagram is dropped, a
	// stream ended.
	Answer(ctx context.Context, network string, query []byte) ([]byte, error)
}

// Options configures a Resolver.
type Options struct {
	// Addrs are the addresses the resolver answers on (port 53) when used
	// as a dialer; flows to their other ports are refused with ErrRefused.
	Addrs []netip.Addr
	// EveryAddr makes the resolver answer every flow to port 53, whatever
	// its address, besides Addrs.
	EveryAddr bool
	// Answerer answers the queries. Required.
	Answerer Answerer
	// Inline says that Answerer never blocks (it answers from memory, as
	// fake DNS does): each query is then answered on the goroutine that
	// writes it and the Resolver starts no goroutine at all. Leave it
	// false for an Answerer that can block (Forward): its queries are
	// answered on goroutines each flow owns.
	Inline bool
	// Next dials every flow not addressed to the resolver, when it is
	// used as a dialer; nil refuses them with ErrRefused. Not needed with
	// Open.
	Next proxy.Dialer
	// QueryTimeout bounds one Answer call; zero means 10 s.
	QueryTimeout time.Duration
	// Logger receives failed queries at debug level; nil discards them.
	Logger *slog.Logger
}

// tcpIdle is how long a DNS-over-TCP flow may wait for its next query
// before the resolver hangs up.
const tcpIdle = 2 * time.Minute

// ErrRefused is returned for flows to the resolver's addresses on ports
// other than 53.
var ErrRefused = fmt.Errorf("resolver answers on port %d only: %w", Port, proxy.ErrRefused)

// Resolver is a proxy.Dialer and proxy.PacketDialer. The flows it serves
// are answered in-process until Close; the rest go to Options.Next.
type Resolver struct {
	opts   Options
	log    *slog.Logger
	addrs  map[netip.Addr]bool
	ctx    context.Context // ends with Close; bounds every answer
	cancel context.CancelFunc
	talks  owned.Group   // the flows' answering goroutines
	idle   time.Duration // tcpIdle; tests shorten it

	mu     sync.Mutex
	flows  map[*flow]struct{} // open, for Close to end
	closed bool
}

var (
	_ proxy.Dialer       = (*Resolver)(nil)
	_ proxy.PacketDialer = (*Resolver)(nil)
)

// New returns a Resolver.
func New(opts Options) (*Resolver, error) {
	switch {
	case opts.Answerer == nil:
		return nil, errors.New("dns: Answerer is required")
	case opts.Next != nil && len(opts.Addrs) == 0 && !opts.EveryAddr:
		return nil, errors.New("dns: a resolver with Next needs Addrs or EveryAddr")
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Resolver{opts: opts, log: log, idle: tcpIdle, addrs: make(map[netip.Addr]bool), flows: make(map[*flow]struct{})}
	for _, a := range opts.Addrs {
		r.addrs[a] = true
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Serves reports whether dst is one of the resolver's addresses (any
// port); EveryAddr does not count.
func (r *Resolver) Serves(dst netip.AddrPort) bool {
	return r.addrs[dst.Addr().Unmap()] || r.addrs[dst.Addr()]
}

// Open implements route.Server: the resolver's side of a flow to dst, a
// DNS-over-TCP conversation (stream) or a datagram one, answered
// in-process until Close. It never blocks.
func (r *Resolver) Open(dst netip.AddrPort, stream bool) (net.Conn, error) {
	return r.newFlow(dst, stream)
}

// next is Options.Next, or a dialer that refuses.
func (r *Resolver) next() proxy.Dialer {
	if r.opts.Next == nil {
		return refuseAll{}
	}
	return r.opts.Next
}

// refuseAll is the Next of a resolver that has none.
type refuseAll struct{}

func (refuseAll) DialContext(_ context.Context, network, address string) (net.Conn, error) {
	return nil, fmt.Errorf("dial %s %s: %w", network, address, ErrRefused)
}

func (refuseAll) DialPacket(_ context.Context, network, address string) (net.Conn, error) {
	return nil, fmt.Errorf("dial %s %s: %w", network, address, ErrRefused)
}

// DialContext implements proxy.Dialer: a connection the resolver serves is
// a DNS-over-TCP conversation answered in-process.
func (r *Resolver) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	dst, ok, err := r.match(address)
	if !ok {
		return r.next().DialContext(ctx, network, address)
	}
	if err != nil {
		return nil, err
	}
	return r.newFlow(dst, true)
}

// DialPacket implements proxy.PacketDialer: each datagram written is a
// query, and its answer is read back.
func (r *Resolver) DialPacket(ctx context.Context, network, address string) (net.Conn, error) {
	dst, ok, err := r.match(address)
	if !ok {
		pd, ok := r.next().(proxy.PacketDialer)
		if !ok {
			return nil, fmt.Errorf("dial %s %s: %w", network, address, proxy.ErrUDPUnsupported)
		}
		return pd.DialPacket(ctx, network, address)
	}
	if err != nil {
		return nil, err
	}
	return r.newFlow(dst, false)
}

// match says whether the resolver serves address, and if so whether it
// answers there or refuses (another port of its addresses).
func (r *Resolver) match(address string) (netip.AddrPort, bool, error) {
	dst, err := netip.ParseAddrPort(address)
	switch {
	case err != nil:
		return dst, false, nil
	case dst.Port() == Port && (r.opts.EveryAddr || r.Serves(dst)):
		return dst, true, nil
	case r.Serves(dst):
		return dst, true, fmt.Errorf("dial %s: %w", address, ErrRefused)
	}
	return dst, false, nil
}

// answer runs the Answerer for a flow whose context is ctx, turning a
// failure into SERVFAIL so that the client learns at once instead of
// timing out.
func (r *Resolver) answer(ctx context.Context, network string, q []byte) []byte {
	qctx, cancel := context.WithTimeout(ctx, r.opts.QueryTimeout)
	defer cancel()
	ans, err := r.opts.Answerer.Answer(qctx, network, q)
	if err == nil {
		return ans
	}
	if ctx.Err() != nil {
		return nil // the flow or the resolver is closing
	}
	r.log.Debug("dns query failed", "network", network, "err", err)
	return serverFailure(q)
}

// Close ends every conversation with the resolver, as a server hanging up
// (their reads return io.EOF once the answers made are read), and waits
// for the queries being answered. It is idempotent.
func (r *Resolver) Close() error {
	r.talks.Close()
	r.cancel()
	r.mu.Lock()
	r.closed = true
	flows := make([]*flow, 0, len(r.flows))
	for f := range r.flows {
		flows = append(flows, f)
	}
	r.mu.Unlock()
	for _, f := range flows {
		f.hangUp()
	}
	r.talks.Wait()
	return nil
}
