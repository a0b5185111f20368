// Package dns answers DNS in-process: flows on port 53, UDP and TCP, that
// tungate answers itself instead of dialing them.
//
// Resolver serves those flows and hands each query to an Answerer: the
// router (forwarder/route) decides which flows it gets (its built-in
// rules for the resolver's own addresses and for fake DNS), and the
// forwarder opens each with Open. What answers is a separate, small
// interface: Forward relays queries to real resolvers (--dns, or the
// host's resolv.conf); fake DNS (forwarder/fakedns) answers from its table
// of names.
package dns

import (
	"context"
	"errors"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/tungate/tungate/forwarder/internal/owned"
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
	// Answerer answers the queries. Required.
	Answerer Answerer
	// Inline says that Answerer never blocks (it answers from memory, as
	// fake DNS does): each query is then answered on the goroutine that
	// writes it and the Resolver starts no goroutine at all. Leave it
	// false for an Answerer that can block (Forward): its queries are
	// answered on goroutines each flow owns.
	Inline bool
	// QueryTimeout bounds one Answer call; zero means 10 s.
	QueryTimeout time.Duration
	// Logger receives failed queries at debug level; nil discards them.
	Logger *slog.Logger
}

// tcpIdle is how long a DNS-over-TCP flow may wait for its next query
// before the resolver hangs up.
const tcpIdle = 2 * time.Minute

// Resolver answers the flows it is given (Open) in-process until Close.
type Resolver struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context // ends with Close; bounds every answer
	cancel context.CancelFunc
	talks  owned.Group   // the flows' answering goroutines
	idle   time.Duration // tcpIdle; tests shorten it

	mu     sync.Mutex
	flows  map[*flow]struct{} // open, for Close to end
	closed bool
}

// New returns a Resolver.
func New(opts Options) (*Resolver, error) {
	if opts.Answerer == nil {
		return nil, errors.New("dns: Answerer is required")
	}
	if opts.QueryTimeout <= 0 {
		opts.QueryTimeout = 10 * time.Second
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	r := &Resolver{opts: opts, log: log, idle: tcpIdle, flows: make(map[*flow]struct{})}
	r.ctx, r.cancel = context.WithCancel(context.Background())
	return r, nil
}

// Open implements route.Server: the resolver's side of a flow to dst, a
// DNS-over-TCP conversation (stream) or a datagram one, answered
// in-process until Close. It never blocks.
func (r *Resolver) Open(dst netip.AddrPort, stream bool) (net.Conn, error) {
	return r.newFlow(dst, stream)
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
