package udpnat

import (
	"errors"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/tungate/tungate/forwarder/proxy"
)

// Limits of one session's state.
const (
	// maxDests bounds a session's routing cache (and the address/port
	// filter's memory of where the app sent to). Past it the session
	// forgets every destination and starts over: a scan of 10,000
	// destinations costs 4,096 entries at most.
	maxDests = 4096
	// maxPending bounds the datagrams a mapping holds while its upstream
	// socket opens; more are dropped and counted.
	maxPending = 16
	// maxDatagram holds any UDP payload.
	maxDatagram = 64 << 10
)

// session is one app source address and port.
type session struct {
	app     netip.AddrPort
	slot    Slot      // its hold on the budget; released by removeLocked
	last    time.Time // the last datagram either way
	replied bool      // something came back
	// dests is the routing cache: how each destination leaves, nil for
	// a refused one.
	dests map[netip.AddrPort]*dest
	// maps has one mapping per upstream; usually one.
	maps       []*mapping
	prev, next *session // the LRU list: next is more recent
}

// mapping is a session's socket toward one upstream.
type mapping struct {
	id uint64
	s  *session
	up proxy.PacketListener

	// closed is set under the table's lock, and read without it by
	// whoever holds mu.
	closed atomic.Bool

	// Guarded by the table's lock.
	conn    proxy.PacketConn // nil while opening
	fd      int              // the host socket, or -1 if conn is none
	pending []pendingDatagram
	waiting []Meter                 // destinations to tell when the socket opens
	addrs   map[netip.Addr]struct{} // FilterAddress: where the app sent to
	// rev maps where rewritten destinations' replies come from (their
	// To) back to the address the app sent to; nil until one exists.
	rev map[netip.AddrPort]netip.AddrPort
	// byPort maps a port to the address the app most recently sent to
	// at that port among its destinations sent by name: a proxy that
	// resolves a name relays its replies from an address the app never
	// saw. nil until one exists.
	byPort map[uint16]netip.AddrPort

	// mu is held for reading by whoever uses conn or fd outside the
	// table's lock, and for writing to close them, so that a raw fd is
	// never used after close (and so never refers to another socket). It
	// is the innermost lock: nobody takes the table's lock holding it.
	mu sync.RWMutex
}

// dest is one destination of a session.
type dest struct {
	m     *mapping
	meter Meter // nil if the route gave none
	// to is where its datagrams go: the address the app sent to, the
	// one the route rewrote it to, or (with name) just the port.
	to   netip.AddrPort
	name string // sent by name, for the upstream to resolve
	// resolving says Destination.Resolve has not answered yet: its
	// datagrams wait in m.pending.
	resolving bool
}

type pendingDatagram struct {
	d    *dest
	dst  netip.AddrPort
	data []byte
}

// network is the socket network for sessions of app's family.
func network(app netip.AddrPort) string {
	if app.Addr().Is4() {
		return "udp4"
	}
	return "udp6"
}

// routeLocked asks the route about dst and records the answer in s's
// cache, opening a mapping for a new upstream. It returns nil if refused,
// and the meters of destinations the cache forgot to make room, for the
// caller to tell after unlocking.
func (t *Table) routeLocked(s *session, dst netip.AddrPort) (*dest, []Meter) {
	var forgot []Meter
	if len(s.dests) >= maxDests {
		forgot = meters(s.dests, nil)
		clear(s.dests)
		for _, m := range s.maps {
			clear(m.addrs)
			clear(m.rev)
			clear(m.byPort)
		}
	}
	r := t.opts.Route(s.app, dst)
	if r.Upstream == nil {
		s.dests[dst] = nil
		return nil, forgot
	}
	var m *mapping
	for _, have := range s.maps {
		if have.up == r.Upstream {
			m = have
			break
		}
	}
	if m == nil {
		if !t.takeSocketLocked(s, dst, r.Meter) {
			if r.Meter != nil {
				forgot = append(forgot, r.Meter)
			}
			return nil, forgot // not cached: the next datagram asks again
		}
		m = t.newMappingLocked(s, r.Upstream)
	}
	d := &dest{m: m, meter: r.Meter, to: dst}
	s.dests[dst] = d
	if t.opts.Filter == FilterAddress {
		m.addrs[dst.Addr()] = struct{}{}
	}
	switch {
	case r.Resolve != nil:
		d.resolving = true
		if !t.group.Go(func() { t.resolve(s, dst, d, r.Resolve, r.Name) }) {
			m.closed.Store(true) // closing: the datagram is lost
		}
		return d, forgot // its meter hears when the name is resolved
	case r.To.IsValid():
		d.to = r.To
		m.reverse(r.To, dst)
	}
	if d.meter != nil {
		if m.conn != nil {
			d.meter.Opened(0, nil)
		} else {
			m.waiting = append(m.waiting, d.meter)
		}
	}
	return d, forgot
}

// meters returns the meters of dests that leave through m (any mapping
// if m is nil).
func meters(dests map[netip.AddrPort]*dest, m *mapping) []Meter {
	var out []Meter
	for _, d := range dests {
		if d != nil && d.meter != nil && (m == nil || d.m == m) {
			out = append(out, d.meter)
		}
	}
	return out
}

// forget tells meters that their destinations are forgotten.
func forget(ms []Meter, idle bool) {
	for _, m := range ms {
		m.Forgotten(idle)
	}
}

func (t *Table) newMappingLocked(s *session, up proxy.PacketListener) *mapping {
	t.nextID++
	m := &mapping{id: t.nextID, s: s, up: up, fd: -1}
	if t.opts.Filter == FilterAddress {
		m.addrs = make(map[netip.Addr]struct{})
	}
	t.byID[m.id] = m
	s.maps = append(s.maps, m)
	if !t.group.Go(func() { t.open(m) }) {
		m.closed.Store(true) // closing: the datagram is lost
	}
	return m
}

// removeLocked takes s out of the table and marks its mappings closed;
// the caller releases s after unlocking.
func (t *Table) removeLocked(s *session) {
	if t.sessions[s.app] != s {
		return
	}
	delete(t.sessions, s.app)
	t.lru.remove(s)
	s.slot.Release()
	for _, m := range s.maps {
		m.closed.Store(true)
		delete(t.byID, m.id)
	}
}

// dropMappingLocked forgets a mapping that failed, so that the session's
// next datagram to those destinations opens a new one. It returns the
// meters of the destinations it forgot.
func (t *Table) dropMappingLocked(m *mapping) []Meter {
	s := m.s
	m.closed.Store(true)
	delete(t.byID, m.id)
	s.slot.DropSocket()
	forgot := meters(s.dests, m)
	for dst, have := range s.dests {
		if have != nil && have.m == m {
			delete(s.dests, dst)
		}
	}
	for i, have := range s.maps {
		if have == m {
			s.maps = append(s.maps[:i], s.maps[i+1:]...)
			break
		}
	}
	return forgot
}

// release closes the sockets of a removed session (nil does nothing) and
// tells its destinations' meters; idle says it expired. It waits for
// writers and raw readers using the sockets, so call it unlocked. Nothing
// else touches a removed session's destinations: every path to them
// checks first that its mapping is not closed.
func (t *Table) release(s *session, idle bool) {
	if s == nil {
		return
	}
	for _, m := range s.maps {
		m.closeConn()
	}
	forget(meters(s.dests, nil), idle)
}

func (m *mapping) closeConn() {
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.conn != nil {
		m.conn.Close()
	}
}

// enqueue holds a datagram until the upstream socket is open and its
// destination resolved.
func (m *mapping) enqueue(d *dest, dst netip.AddrPort, payload []byte, dropped *atomic.Uint64) {
	if m.closed.Load() || len(m.pending) >= maxPending {
		dropped.Add(1)
		return
	}
	m.pending = append(m.pending, pendingDatagram{d: d, dst: dst, data: append([]byte(nil), payload...)})
}

// reverse records that replies from to come to the app from visible.
func (m *mapping) reverse(to, visible netip.AddrPort) {
	if m.rev == nil {
		m.rev = make(map[netip.AddrPort]netip.AddrPort, 1)
	}
	m.rev[to] = visible
}

// sentByName records that the app sent to visible, a destination sent by
// name, most recently at its port; under the table's lock. It does not
// allocate once the port is known.
func (m *mapping) sentByName(visible netip.AddrPort) {
	if m.byPort == nil {
		m.byPort = make(map[uint16]netip.AddrPort, 1)
	}
	if m.byPort[visible.Port()] != visible {
		m.byPort[visible.Port()] = visible
	}
}

// errNoNames means an upstream's conn cannot send to a name.
var errNoNames = errors.New("udp upstream cannot send to a name")

// write sends one datagram to d on conn, with a raw system call on fd if
// it is a host socket; the caller holds m.mu for reading, or the table's
// lock before m is closed.
func write(conn proxy.PacketConn, fd int, p []byte, d *dest) error {
	switch {
	case d.name != "":
		nc, ok := conn.(proxy.NamePacketConn)
		if !ok {
			return errNoNames
		}
		return nc.WriteToName(p, d.name, d.to.Port())
	case fd >= 0:
		return sendTo(fd, p, d.to)
	}
	return conn.WriteTo(p, d.to)
}

// flushLocked sends the datagrams that waited for m's socket and their
// destination, keeping those whose destination is still resolving; under
// the table's lock, with m open.
func (t *Table) flushLocked(m *mapping) {
	kept := m.pending[:0]
	for _, p := range m.pending {
		if p.d.resolving {
			kept = append(kept, p)
			continue
		}
		if p.d.name != "" {
			m.sentByName(p.dst)
		}
		switch {
		case write(m.conn, m.fd, p.data, p.d) != nil:
			t.dropped.Add(1)
		case p.d.meter != nil:
			p.d.meter.Sent(len(p.data))
		}
	}
	clear(m.pending[len(kept):])
	m.pending = kept
	if len(m.pending) == 0 {
		m.pending = nil
	}
}

// open opens m's upstream socket, sends what waited for it, and then
// reads it: the table's poller does for a host socket, this goroutine for
// any other conn.
func (t *Table) open(m *mapping) {
	start := time.Now()
	ctx, cancel := t.ctxWithOpenTimeout()
	conn, err := m.up.ListenPacket(ctx, network(m.s.app))
	cancel()
	fd := -1
	if err == nil {
		fd, err = rawSocket(conn)
	}
	took := max(time.Since(start), time.Nanosecond) // non-zero: this one waited
	t.mu.Lock()
	waiting := m.waiting
	m.waiting = nil
	if err != nil || m.closed.Load() {
		pending := m.pending
		m.pending = nil
		failed := err != nil && !m.closed.Load()
		var forgot []Meter
		if failed {
			forgot = t.dropMappingLocked(m)
		}
		app := m.s.app
		t.mu.Unlock()
		if conn != nil {
			conn.Close()
		}
		if failed {
			t.openFailed.Add(1)
			t.log.Debug("udp upstream socket failed", "src", app, "err", err)
			for _, w := range waiting {
				w.Opened(took, err)
			}
			forget(forgot, false)
			t.refuseAll(app, pending)
		}
		return
	}
	m.conn, m.fd = conn, fd
	t.flushLocked(m)
	if fd >= 0 {
		// Under the lock: Close closes the poller only after it has
		// marked every mapping closed, and m is not.
		err = t.poll.add(fd, m.id)
	}
	t.mu.Unlock()
	for _, w := range waiting {
		w.Opened(took, nil)
	}
	switch {
	case err != nil:
		t.log.Warn("udp socket not read: poller refused it", "err", err)
	case fd < 0:
		t.readLoop(m, conn)
	}
}

// refuseAll tells the app that every destination it waited on refused,
// once each, as a failed dial does.
func (t *Table) refuseAll(app netip.AddrPort, pending []pendingDatagram) {
	seen := make(map[netip.AddrPort]bool, len(pending))
	for _, d := range pending {
		if !seen[d.dst] {
			seen[d.dst] = true
			t.opts.App.PortUnreachable(app, d.dst)
		}
	}
}

// readWaiter is a conn that can wait for a datagram without a buffer.
type readWaiter interface{ WaitReadable() error }

// readBufs lends datagram buffers to readLoops; a cache holding nothing
// between uses.
var readBufs = sync.Pool{New: func() any { b := make([]byte, maxDatagram); return &b }}

// readLoop reads a conn that is not a host socket until it closes, with a
// buffer only while a datagram is ready if the conn can wait without one.
// A conn that ends by itself (a proxy closed the association) is
// forgotten, so the next datagram opens a new one.
func (t *Table) readLoop(m *mapping, conn proxy.PacketConn) {
	w, waits := conn.(readWaiter)
	for {
		var n int
		var src netip.AddrPort
		var err error
		if waits {
			err = w.WaitReadable()
		}
		if err == nil {
			bp := readBufs.Get().(*[]byte)
			n, src, err = conn.ReadFrom(*bp)
			if err == nil {
				t.deliver(m, src, (*bp)[:n])
			}
			readBufs.Put(bp)
		}
		switch {
		case err == nil:
			continue
		case errors.Is(err, syscall.ECONNREFUSED) && src.IsValid():
			t.refused(m, src)
			continue
		}
		var forgot []Meter
		t.mu.Lock()
		if !m.closed.Load() {
			forgot = t.dropMappingLocked(m)
			t.log.Debug("udp upstream socket ended", "src", m.s.app, "err", err)
		}
		t.mu.Unlock()
		conn.Close()
		forget(forgot, false)
		return
	}
}

// lruList orders sessions by their last datagram: back is the least
// recently used.
type lruList struct{ front, back *session }

func (l *lruList) pushFront(s *session) {
	s.prev, s.next = l.front, nil
	if l.front != nil {
		l.front.next = s
	}
	l.front = s
	if l.back == nil {
		l.back = s
	}
}

func (l *lruList) remove(s *session) {
	if s.prev != nil {
		s.prev.next = s.next
	} else {
		l.back = s.next
	}
	if s.next != nil {
		s.next.prev = s.prev
	} else {
		l.front = s.prev
	}
	s.prev, s.next = nil, nil
}

func (l *lruList) moveToFront(s *session) {
	if l.front == s {
		return
	}
	l.remove(s)
	l.pushFront(s)
}
