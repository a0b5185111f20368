// Package udpnat owns the gateway's UDP sessions: an endpoint-independent
// session table, as a "full cone" NAT or the kernel's conntrack keeps it.
//
// A session is one app source address and port. All its datagrams leave
// from one socket per upstream (one host port for direct traffic, one
// SOCKS5 association through a proxy), whatever their destination, so a
// STUN server asked from two addresses reports one mapping, and a port scan
// from one source costs one session. Datagrams coming back are filtered
// (Filter: from anyone, from addresses the app sent to, or only from the
// address and port pairs it sent to) and delivered to the app from the
// address they came from, through an AppSender. An ICMP port unreachable
// for one destination reaches the app for that destination only.
//
// A destination the route rewrites (Destination.To: the host's loopback
// behind run's mapped address; Destination.Resolve: the name behind a fake
// address) shares the mapping too, and its replies come to the app from
// the address the app sent to: each mapping keeps a reverse table from
// the rewritten address to that one. For a name sent by name (Name: a
// SOCKS5 proxy resolves it), the proxy's replies come from an address the
// app never saw; a reply from an address and port the app never sent to
// by address comes from the destination by name that the session most
// recently sent to at that port. So two names at one port used at once
// are told apart wrongly for the one sent to less recently, and a reply
// matching no name keeps its real source. The filter applies to the
// address the app sees.
//
// Sessions end after Options.UnrepliedTimeout if nothing ever came back,
// after Options.Timeout of silence once something did. Each holds a slot
// of a Budget shared with the gateway's other flows (Options.Budget), and
// a descriptor of it per host socket: when the budget is full the least
// recently used idle session makes room, and with none idle the new
// session (or socket) is refused, which the app hears as ICMP port
// unreachable at once.
//
// Host sockets are read by one goroutine for the whole table (an epoll set
// of raw sockets), so an idle direct session parks no goroutine; an
// upstream whose conn is not a host socket (a SOCKS5 association, an
// in-process DNS answerer) gets one reader goroutine per mapping.
//
// It knows nothing of gVisor: datagrams from apps come in through Send,
// and go back to apps through the AppSender.
package udpnat

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tungate/tungate/forwarder/internal/owned"
)

// Defaults for the zero values of Options.
const (
	DefaultTimeout          = 60 * time.Second
	DefaultUnrepliedTimeout = 30 * time.Second
	DefaultMaxSessions      = 8192
	DefaultOpenTimeout      = 10 * time.Second
)

// Sentinels that Send returns.
var (
	// ErrRefused means the route refused the destination: the caller
	// answers the app with ICMP port unreachable.
	ErrRefused = errors.New("udp destination refused")
	// ErrClosed means the table is closed.
	ErrClosed = errors.New("udp session table closed")
)

// Table is the session table. Its methods are safe for concurrent use.
type Table struct {
	opts   Options
	log    *slog.Logger
	ctx    context.Context
	cancel context.CancelFunc
	group  owned.Group
	poll   *poller
	budget Budget
	// evictForNew makes room for a new session (evictIdleLocked).
	evictForNew func() bool
	gather      gatherer // host socket sends gathered per burst (see Flush)

	mu         sync.Mutex
	closed     bool
	sessions   map[netip.AddrPort]*session
	lru        lruList
	byID       map[uint64]*mapping
	nextID     uint64
	lastCapLog time.Time
	evictq     []*session // evicted, to be released after unlocking

	opened, expired, evicted, refusedN, filtered, dropped, openFailed atomic.Uint64
}

// New returns a running table; Close stops it.
func New(opts Options) (*Table, error) {
	if opts.Route == nil || opts.App == nil {
		return nil, errors.New("udpnat: Route and App are required")
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.UnrepliedTimeout <= 0 {
		opts.UnrepliedTimeout = DefaultUnrepliedTimeout
	}
	opts.UnrepliedTimeout = min(opts.UnrepliedTimeout, opts.Timeout)
	if opts.MaxSessions <= 0 {
		opts.MaxSessions = DefaultMaxSessions
	}
	if opts.EvictIdle <= 0 {
		opts.EvictIdle = DefaultEvictIdle
	}
	if opts.OpenTimeout <= 0 {
		opts.OpenTimeout = DefaultOpenTimeout
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p, err := newPoller()
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithCancel(context.Background())
	t := &Table{
		opts: opts, log: log, ctx: ctx, cancel: cancel, poll: p,
		sessions: make(map[netip.AddrPort]*session),
		byID:     make(map[uint64]*mapping),
		budget:   opts.Budget,
	}
	if t.budget == nil {
		t.budget = &sessionCap{max: opts.MaxSessions}
	}
	t.evictForNew = func() bool { return t.evictIdleLocked(nil) }
	t.group.Go(func() { p.run(t.readRaw) })
	t.group.Go(t.sweep)
	return t, nil
}

// Send carries one datagram from the app at src to dst. It never blocks
// on the network: it runs on the stack's packet path. payload is not kept.
// ErrRefused means the route refused dst (tell the app ICMP port
// unreachable); other errors are lost datagrams, already counted.
func (t *Table) Send(src, dst netip.AddrPort, payload []byte) error {
	now := t.opts.Now()
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return ErrClosed
	}
	s := t.sessions[src]
	if s == nil {
		s = t.newSessionLocked(src, dst, now)
	}
	var d *dest
	var forgot []Meter
	if s != nil {
		var known bool
		if d, known = s.dests[dst]; !known {
			d, forgot = t.routeLocked(s, dst)
		}
	}
	evicted := t.takeEvictedLocked()
	if d == nil {
		t.mu.Unlock()
		t.releaseAll(evicted)
		forget(forgot, false)
		return ErrRefused // bare: a refused flood must not allocate
	}
	m := d.m
	s.last = now
	t.lru.moveToFront(s)
	if m.conn == nil || d.resolving {
		m.enqueue(d, dst, payload, &t.dropped)
		t.mu.Unlock()
		t.releaseAll(evicted)
		forget(forgot, false)
		return nil
	}
	if d.name != "" {
		m.sentByName(dst)
	}
	conn, fd, meter := m.conn, m.fd, d.meter
	t.mu.Unlock()
	t.releaseAll(evicted)
	forget(forgot, false)
	// Gathered sends go to an address (d.to: what the app sent to, or
	// the route's rewrite); a name goes to its upstream on its own.
	if fd >= 0 && d.name == "" && t.gather.on.Load() {
		t.gather.add(m, fd, d.to, meter, payload, &t.dropped)
		return nil
	}
	m.mu.RLock() // keeps the socket open until the write is done
	if m.closed.Load() {
		m.mu.RUnlock()
		t.dropped.Add(1)
		return nil
	}
	err := write(conn, fd, payload, d)
	m.mu.RUnlock()
	if err != nil {
		t.dropped.Add(1)
		return fmt.Errorf("udp %s -> %s: %w", src, dst, err)
	}
	if meter != nil {
		meter.Sent(len(payload))
	}
	return nil
}

// deliver passes a datagram that arrived on m from src to the app, from
// the address the app sees (visible), if the filter admits that.
func (t *Table) deliver(m *mapping, src netip.AddrPort, payload []byte) {
	src, app, meter, ok := t.admit(m, src, 1)
	if !ok {
		return
	}
	if err := t.opts.App.SendTo(src, app, payload); err != nil {
		t.dropped.Add(1)
		return
	}
	if meter != nil {
		meter.Received(len(payload))
	}
}

// deliverSegments is deliver for a run of datagrams from src, each as long
// as the first but the last: one write to the device when the App can
// (SegmentSender).
func (t *Table) deliverSegments(m *mapping, src netip.AddrPort, segs [][]byte) {
	ss, ok := t.opts.App.(SegmentSender)
	if !ok || len(segs) == 1 {
		for _, p := range segs {
			t.deliver(m, src, p)
		}
		return
	}
	src, app, meter, ok := t.admit(m, src, len(segs))
	if !ok {
		return
	}
	if err := ss.SendSegments(src, app, segs); err != nil {
		t.dropped.Add(uint64(len(segs)))
		return
	}
	if meter != nil {
		for _, p := range segs {
			meter.Received(len(p))
		}
	}
}

// admit decides the delivery of n datagrams that arrived on m from src:
// the address the app sees them from, the app, the destination's meter,
// and whether the filter admits them (counted if not). An admitted
// delivery is a reply: the session is used now.
func (t *Table) admit(m *mapping, src netip.AddrPort, n int) (netip.AddrPort, netip.AddrPort, Meter, bool) {
	now := t.opts.Now()
	t.mu.Lock()
	defer t.mu.Unlock()
	s := m.s
	if m.closed.Load() {
		return src, netip.AddrPort{}, nil, false
	}
	src = visible(s, m, src)
	if !t.admits(s, m, src) {
		t.filtered.Add(uint64(n))
		return src, netip.AddrPort{}, nil, false
	}
	s.last = now
	s.replied = true
	t.lru.moveToFront(s)
	var meter Meter
	if d := s.dests[src]; d != nil && d.m == m {
		meter = d.meter
	}
	return src, s.app, meter, true
}

// visible is the address a datagram that arrived on m from src comes to
// the app from: the address the app sent to if the route rewrote that to
// src; for a source the app never sent to by address on a mapping that
// carries names, the destination by name the app most recently sent to
// at src's port (the proxy resolved the name to src); otherwise src.
// Under the table's lock.
func visible(s *session, m *mapping, src netip.AddrPort) netip.AddrPort {
	if v, ok := m.rev[src]; ok {
		return v
	}
	if len(m.byPort) > 0 {
		if d := s.dests[src]; d != nil && d.m == m {
			return src
		}
		if v, ok := m.byPort[src.Port()]; ok {
			return v
		}
	}
	return src
}

// admits applies the filter to a datagram from src (as the app sees it)
// arriving on m.
func (t *Table) admits(s *session, m *mapping, src netip.AddrPort) bool {
	switch t.opts.Filter {
	case FilterAddress:
		_, ok := m.addrs[src.Addr()]
		return ok
	case FilterPort:
		d := s.dests[src]
		return d != nil && d.m == m
	}
	return true
}

// refused tells the app that dst refused the datagrams it sent through m,
// if it did send some there through m.
func (t *Table) refused(m *mapping, dst netip.AddrPort) {
	t.mu.Lock()
	s := m.s
	ok := false
	if !m.closed.Load() {
		dst = visible(s, m, dst)
		d := s.dests[dst]
		ok = d != nil && d.m == m
	}
	app := s.app
	t.mu.Unlock()
	if ok {
		t.opts.App.PortUnreachable(app, dst)
	}
}

// End ends the session of the app at src now (a flow killed from the
// control API), if it has one.
func (t *Table) End(src netip.AddrPort) {
	t.mu.Lock()
	s := t.sessions[src]
	if s != nil {
		t.removeLocked(s)
	}
	t.mu.Unlock()
	t.release(s, false)
}

// Stats returns the counters.
func (t *Table) Stats() Stats {
	t.mu.Lock()
	n, maps := len(t.sessions), len(t.byID)
	t.mu.Unlock()
	return Stats{
		Sessions: n, Mappings: maps,
		Opened: t.opened.Load(), Expired: t.expired.Load(), Evicted: t.evicted.Load(), Refused: t.refusedN.Load(),
		Filtered: t.filtered.Load(), Dropped: t.dropped.Load(), OpenFailed: t.openFailed.Load(),
	}
}

// Close ends every session and waits for the table's goroutines. It is
// idempotent and does not wait on the network: opening upstreams see their
// context cancelled.
func (t *Table) Close() error {
	t.mu.Lock()
	if t.closed {
		t.mu.Unlock()
		return nil
	}
	t.closed = true
	all := make([]*session, 0, len(t.sessions))
	for _, s := range t.sessions {
		t.removeLocked(s)
		all = append(all, s)
	}
	t.mu.Unlock()
	t.group.Close()
	t.cancel()
	for _, s := range all {
		t.release(s, false)
	}
	err := t.poll.close()
	t.group.Wait()
	return err
}

func (t *Table) ctxWithOpenTimeout() (context.Context, context.CancelFunc) {
	return context.WithTimeout(t.ctx, t.opts.OpenTimeout)
}

// sweep expires idle sessions until Close.
func (t *Table) sweep() {
	every := min(time.Second, t.opts.UnrepliedTimeout/4)
	tick := time.NewTicker(max(every, 10*time.Millisecond))
	defer tick.Stop()
	for {
		select {
		case <-t.ctx.Done():
			return
		case <-tick.C:
			t.expire(t.opts.Now())
		}
	}
}

// expire ends the sessions idle past their timeout at now.
func (t *Table) expire(now time.Time) {
	var dead []*session
	t.mu.Lock()
	// The list runs from the least recently used: once a session is
	// younger than the shorter timeout, so is every one before it.
	for s := t.lru.back; s != nil && now.Sub(s.last) >= t.opts.UnrepliedTimeout; {
		older := s
		s = s.next
		if older.replied && now.Sub(older.last) < t.opts.Timeout {
			continue
		}
		t.removeLocked(older)
		dead = append(dead, older)
	}
	t.mu.Unlock()
	t.expired.Add(uint64(len(dead)))
	for _, s := range dead {
		t.log.Debug("udp session expired", "src", s.app, "replied", s.replied)
		t.release(s, true)
	}
}
