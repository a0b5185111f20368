// Package dns is the resolver of an app's namespace: an address inside the
// namespace (named in the app's resolv.conf) whose DNS traffic, UDP and TCP
// on port 53, tungate answers itself instead of dialing it.
//
// Resolver is the upstream dialer wrapper that catches those flows and
// hands each query to an Answerer; every other flow goes to the next dialer.
// What answers is a separate, small interface: Forward relays queries to
// real resolvers (--dns, or the host's resolv.conf); other answerers (fake
// DNS for proxies) can take its place without touching Resolver.
package dns

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
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
	// honours ctx and may be called concurrently.
	Answer(ctx context.Context, network string, query []byte) ([]byte, error)
}

// Options configures a Resolver.
type Options struct {
	// Addrs are the addresses the resolver answers on (port 53). Required.
	Addrs []netip.Addr
	// Answerer answers the queries. Required.
	Answerer Answerer
	// Next dials every flow not addressed to the resolver. Required.
	Next proxy.Dialer
	// QueryTimeout bounds one Answer call; zero means 10 s.
	QueryTimeout time.Duration
	// Logger receives failed queries at debug level; nil discards them.
	Logger *slog.Logger
}

// maxInFlight bounds the queries one UDP flow has unanswered; more are
// dropped, as a busy server would, and the client retries.
const maxInFlight = 64

// tcpIdle is how long a TCP connection to the resolver may sit without a
// query.
const tcpIdle = 2 * time.Minute

// ErrRefused is returned for flows to the resolver's addresses on ports
// other than 53.
var ErrRefused = fmt.Errorf("resolver answers on port %d only: %w", Port, proxy.ErrRefused)

// Resolver is a proxy.Dialer and proxy.PacketDialer. Flows to its addresses
// are answered in-process until Close; the rest go to Options.Next.
type Resolver struct {
	opts   Options
	log    *slog.Logger
	addrs  map[netip.Addr]bool
	ctx    context.Context
	cancel context.CancelFunc
	talks  owned.Group
}

var (
	_ proxy.Dialer       = (*Resolver)(nil)
	_ proxy.PacketDialer = (*Resolver)(nil)
)

// New returns a Resolver.
func New(opts Options) (*Resolver, error) {
	if len(opts.Addrs) == 0 || opts.Answerer == nil || opts.Next == nil {
		return nil, errors.New("dns: Addrs, Answerer and Next are required")
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Resolver{opts: opts, log: log, addrs: make(map[netip.Addr]bool)}
	for _, a := range opts.Addrs {
		r.addrs[a] = true
	}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Serves reports whether dst is the resolver (any port of its addresses).
func (r *Resolver) Serves(dst netip.AddrPort) bool {
	return r.addrs[dst.Addr().Unmap()] || r.addrs[dst.Addr()]
}

// DialContext implements proxy.Dialer: a connection to the resolver is a
// DNS-over-TCP conversation answered in-process.
func (r *Resolver) DialContext(ctx context.Context, network, address string) (net.Conn, error) {
	dst, ok, err := r.match(address)
	if !ok {
		return r.opts.Next.DialContext(ctx, network, address)
	}
	if err != nil {
		return nil, err
	}
	return r.dialStream(dst)
}

// DialPacket implements proxy.PacketDialer: each datagram written is a
// query, and its answer is read back.
func (r *Resolver) DialPacket(ctx context.Context, network, address string) (net.Conn, error) {
	dst, ok, err := r.match(address)
	if !ok {
		pd, ok := r.opts.Next.(proxy.PacketDialer)
		if !ok {
			return nil, fmt.Errorf("dial %s %s: %w", network, address, proxy.ErrUDPUnsupported)
		}
		return pd.DialPacket(ctx, network, address)
	}
	if err != nil {
		return nil, err
	}
	return r.newPacketConn(dst)
}

// match says whether address is the resolver's, and if so whether its port
// is the one it answers.
func (r *Resolver) match(address string) (netip.AddrPort, bool, error) {
	dst, err := netip.ParseAddrPort(address)
	if err != nil || !r.Serves(dst) {
		return dst, false, nil
	}
	if dst.Port() != Port {
		return dst, true, fmt.Errorf("dial %s: %w", address, ErrRefused)
	}
	return dst, true, nil
}

// answer runs the Answerer, turning a failure into SERVFAIL so that the
// client learns at once instead of timing out.
func (r *Resolver) answer(ctx context.Context, network string, q []byte) []byte {
	ctx, cancel := context.WithTimeout(ctx, r.opts.QueryTimeout)
	defer cancel()
	ans, err := r.opts.Answerer.Answer(ctx, network, q)
	if err == nil {
		return ans
	}
	if ctx.Err() != nil && r.ctx.Err() != nil {
		return nil // closing
	}
	r.log.Debug("dns query failed", "network", network, "err", err)
	return serverFailure(q)
}

// Close ends every conversation with the resolver and waits for them. It
// is idempotent.
func (r *Resolver) Close() error {
	r.talks.Close()
	r.cancel()
	r.talks.Wait()
	return nil
}
